//! The crash harness: a child process appends from many concurrent writers
//! and is killed with SIGKILL at random moments. After every kill the ledger
//! restarts, recovers and passes fsck; no acknowledged index is lost or
//! changed; every checkpoint is consistent with every earlier one.
//!
//! `TALLY_CRASH_ITERATIONS` sets the number of kills (default 12).

use std::collections::HashMap;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ledger_format::checkpoint::{verify_checkpoint, VerifiedCheckpoint};
use ledger_format::hash::leaf_hash;
use ledger_format::merkle::verify_consistency;
use ledger_format::note::VerifierKey;
use serde_json::json;
use tally::ledger::{fsck, open_dir};

use crate::common::*;

#[test]
fn survives_sigkill_at_random_moments() {
    let iterations: usize = std::env::var("TALLY_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash harness seed {seed}");
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let d = tmp();
    let dir = d.path().join("ledger");
    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut checkpoints: Vec<VerifiedCheckpoint> = Vec::new();
    let mut key: Option<VerifierKey> = None;
    for it in 0..iterations {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "ledger",
                "stress",
                "--dir",
                dir.to_str().unwrap(),
                "--writers",
                "16",
                "--entry-size",
                "300",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split(' ');
                if let (Some("ack"), Some(i), Some(h)) = (parts.next(), parts.next(), parts.next()) {
                    if h.len() == 64 {
                        acks.push((i.parse::<u64>().unwrap(), h.to_owned()));
                    }
                }
            }
            acks
        });
        // Let it start, then kill it at a random moment.
        let wait = if it == 0 { 600 } else { 50 } + next() % 500;
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        for (i, h) in acks {
            if let Some(old) = acked.insert(i, h.clone()) {
                assert_eq!(
                    old, h,
                    "iteration {it}: index {i} was acknowledged for two different entries"
                );
            }
        }

        // Restart: recovery must find and publish every acknowledged entry.
        let t = Instant::now();
        let ledger = open_dir(&dir, None).unwrap_or_else(|e| panic!("iteration {it}: reopening: {e}"));
        let k = key.get_or_insert_with(|| {
            VerifierKey::parse(std::fs::read_to_string(dir.join("log.pub")).unwrap().trim()).unwrap()
        });
        let sizes = ledger.sizes();
        if sizes.sequenced > 0 {
            ledger
                .wait_published(sizes.sequenced - 1, Duration::from_secs(60))
                .unwrap();
        }
        let size = ledger.sizes().published;
        for (&i, h) in &acked {
            assert!(
                i < size,
                "iteration {it}: acknowledged index {i} lost (published size {size})"
            );
            if (i + it as u64) % 7 == 0 {
                assert_eq!(
                    &leaf_hash(&ledger.entry(i).unwrap()).to_hex(),
                    h,
                    "iteration {it}: index {i} changed"
                );
            }
        }
        if size > 0 {
            let cp = verify_checkpoint(ledger.checkpoint().as_bytes(), k, &[], None).unwrap();
            for old in &checkpoints {
                if old.size() > 0 {
                    let proof = ledger.consistency_proof(old.size(), cp.size()).unwrap();
                    verify_consistency(old.size(), cp.size(), &old.root(), &cp.root(), &proof)
                        .unwrap_or_else(|e| {
                            panic!("iteration {it}: checkpoint {} vs {}: {e}", old.size(), cp.size())
                        });
                }
            }
            checkpoints.push(cp);
        }
        ledger.close().unwrap();
        drop(ledger);
        let recovered_in = t.elapsed();
        if size > 0 {
            let report =
                fsck::check_ledger_dir(&dir, k).unwrap_or_else(|e| panic!("iteration {it}: fsck: {e}"));
            assert_eq!(report.size, size);
        }
        println!(
            "kill {it}: {} acknowledged so far, log size {size}, recovered in {recovered_in:?}",
            acked.len()
        );
    }
    assert!(!acked.is_empty(), "the child never acknowledged anything");
    println!(
        "survived {iterations} SIGKILLs; {} acknowledged entries all present",
        acked.len()
    );
}

/// One CI client's view of the server: starts runs and pushes attestations
/// for `psirt-advisories` (one CSAF VEX document) over plain HTTP, signing
/// a fresh envelope for every attempt, as a pipeline re-run would.
pub(crate) struct Pipeline {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) key: tally::attest::signing::SigningKey,
    pub(crate) http: reqwest::blocking::Client,
}

/// What one push attempt ended with.
pub(crate) enum Pushed {
    /// 2xx: acknowledged at this index with this envelope digest.
    Acked(u64, String),
    /// A 4xx refusal (its status).
    Refused(u16),
    /// No answer: the server died mid-request, or kept answering 503.
    Unknown,
}

impl Pipeline {
    /// Starts a run; its id and the envelope-to-be's state, or `None` when
    /// the server does not answer.
    pub(crate) fn start(&self) -> Option<tally::attest::state::State> {
        use tally::attest::state::{ContractRef, State, STATE_SCHEMA};
        let runner = tally::attest::runner::detect(|_| None);
        let body = tally::wire::StartRun {
            workflow: "psirt-advisories".into(),
            project: None,
            version: "1.0.0".into(),
            contract_revision: None,
            runner: runner.clone(),
        };
        let resp = self
            .http
            .post(format!("{}/api/v1/runs", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).ok()?)
            .send()
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let started: tally::wire::RunStarted = serde_json::from_slice(&resp.bytes().ok()?).ok()?;
        let c = started.contract;
        Some(State {
            schema: STATE_SCHEMA.into(),
            run_id: started.run.id,
            dry_run: false,
            server: self.url.clone(),
            workflow: "psirt-advisories".into(),
            project: started.run.project,
            version: "1.0.0".into(),
            contract: ContractRef {
                revision: tally::contract::ContractRevision {
                    name: c.name,
                    commit: c.commit,
                    blob: c.blob,
                },
                source: String::new(),
                text: c.text,
                policies_commit: c.policies_commit,
                pinned_at: c.pinned_at,
                policies: c.policies,
            },
            runner,
            env: Default::default(),
            git: None,
            started_at: "2026-12-04T00:00:00Z".into(),
            materials: vec![tally::attest::state::MaterialRecord {
                name: "vex-disclosure".into(),
                kind: "CSAF_VEX".into(),
                value: "vex.json".into(),
                digest: format!("sha256:{:064x}", rand_u64()),
                size: 2873,
                output: false,
                in_contract: true,
                summary: String::new(),
                annotations: Default::default(),
                lenient: false,
                stored: String::new(),
                added_at: String::new(),
                policy_evaluations: Vec::new(),
            }],
        })
    }

    /// Signs `state` afresh (a new finishing time: a new envelope digest)
    /// and pushes it, retrying 503 as the CLI does (a short wait here).
    pub(crate) fn push(&self, state: &tally::attest::state::State, attempt: u32) -> Pushed {
        let finished = format!("2026-12-04T01:{:02}:{:02}Z", attempt / 60 % 60, attempt % 60);
        let payload = serde_json::to_vec(&tally::attest::statement::build(
            state,
            &Default::default(),
            &finished,
        ))
        .unwrap();
        let env = self
            .key
            .sign_envelope(tally::attest::dsse::IN_TOTO_PAYLOAD_TYPE, &payload)
            .unwrap();
        let body = serde_json::to_vec(&env).unwrap();
        for _ in 0..20 {
            let sent = self
                .http
                .post(format!(
                    "{}/api/v1/runs/{}/attestation?wait=0",
                    self.url, state.run_id
                ))
                .bearer_auth(&self.token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let Ok(resp) = sent else { return Pushed::Unknown };
            let status = resp.status().as_u16();
            if status == 503 {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if (200..300).contains(&status) {
                let Some(v) = resp
                    .bytes()
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                else {
                    return Pushed::Unknown;
                };
                let index = v["log_index"].as_u64().unwrap();
                let digest = v["envelope_digest"].as_str().unwrap().to_owned();
                return Pushed::Acked(index, digest);
            }
            return Pushed::Refused(status);
        }
        Pushed::Unknown
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// Kill -9 of the real `tally serve` under HTTP load: concurrent pipelines
/// start runs and push (retrying 503), the server is killed at a random
/// moment, restarted on the same data directory, and at once every run
/// whose push was acknowledged or in flight is pushed again with a fresh
/// signature (a CI retry). After every restart: a run with an entry in
/// the log is refused (409), the log holds at most one entry per run,
/// every acknowledged attestation is at its index with its digest, every
/// checkpoint is consistent with the earlier ones; every tenth (every
/// hundredth past 100), fsck of the killed server's ledger is clean. At the end: SIGTERM exits 0 and `tally
/// audit` of the ledger is clean.
///
/// `TALLY_HTTP_KILLS` sets the number of kills (default 6).
#[test]
fn survives_sigkill_under_http_load_with_one_attestation_per_run() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use crate::controlplane::ControlPlane;

    let kills: usize = std::env::var("TALLY_HTTP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let d = tmp();
    let repo = contracts_repo(d.path());
    // The harness re-pushes finished runs on purpose: no refusal budget.
    let config = write(d.path(), "tally.toml", "refusals_per_minute = 0\n");
    let config = ["--config", config.to_str().unwrap()];
    let mut cp = ControlPlane::start(&repo, &config);
    let vkey = VerifierKey::parse(&cp.vkey).unwrap();
    let key =
        tally::attest::signing::SigningKey::generate(tally::attest::signing::Algorithm::Ed25519).unwrap();
    let (s, _) = cp.post(
        "/api/v1/workflows/psirt-advisories/keys",
        Some(&cp.admin),
        "application/json",
        serde_json::to_vec(&json!({"public_key": key.public_pem()})).unwrap(),
    );
    assert_eq!(s, 201);
    let (s, t) = cp.post(
        "/api/v1/tokens",
        Some(&cp.admin),
        "application/json",
        serde_json::to_vec(&json!({"workflows": ["psirt-advisories"], "description": "crash harness"}))
            .unwrap(),
    );
    assert_eq!(s, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    let pem = key.private_pem(None).unwrap();

    // run id → (index, envelope digest) of every acknowledgement.
    let mut acked: HashMap<String, (u64, String)> = HashMap::new();
    // run id → its index in the log (read back from the log itself).
    let mut logged: HashMap<String, u64> = HashMap::new();
    let mut checkpoints: Vec<VerifiedCheckpoint> = Vec::new();
    let (mut read, mut attempts, mut refused_again, mut accepted_on_retry) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for it in 0..kills {
        let pipeline = |url: &str| Pipeline {
            url: url.to_owned(),
            token: token.clone(),
            key: tally::attest::signing::SigningKey::from_pem(&pem, None).unwrap(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        // Load: pipelines push until the server dies under them.
        let results: Arc<Mutex<Vec<(tally::attest::state::State, Pushed)>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (p, results, stop) = (pipeline(&cp.url), results.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        let Some(state) = p.start() else { return };
                        let r = p.push(&state, 0);
                        let dead = matches!(r, Pushed::Unknown);
                        results.lock().unwrap().push((state, r));
                        if dead {
                            return;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rand_u64() % 400));
        cp.crash();
        stop.store(true, std::sync::atomic::Ordering::Release);
        for w in workers {
            w.join().unwrap();
        }
        let results = std::mem::take(&mut *results.lock().unwrap());
        attempts += results.len() as u64;
        for (state, r) in &results {
            if let Pushed::Acked(i, dg) = r {
                assert!(
                    acked.insert(state.run_id.clone(), (*i, dg.clone())).is_none(),
                    "kill {it}: run {} acknowledged twice",
                    state.run_id
                );
            }
        }
        // fsck reads the whole log: every 10th kill, every 100th past 100.
        if it % 10 == 0 && (it < 100 || it % 100 == 0) {
            let report = fsck::check_ledger_dir(&cp.dir.path().join("data/ledger"), &vkey)
                .unwrap_or_else(|e| panic!("kill {it}: fsck of the killed server's ledger: {e}"));
            // Published never shrinks, and grows by at most this round's pushes.
            assert!(
                (read..=read + results.len() as u64).contains(&report.size),
                "kill {it}: the killed ledger's checkpoint is at {}, outside {read}..={}",
                report.size,
                read + results.len() as u64
            );
        }

        // Restart, and at once push every run of this round again, freshly signed.
        let dir = std::mem::replace(&mut cp.dir, tmp());
        cp = ControlPlane::start_in(dir, &repo, &config);
        let p = pipeline(&cp.url);
        for (n, (state, first)) in results.iter().enumerate() {
            match (first, p.push(state, 1 + n as u32)) {
                (Pushed::Acked(..), Pushed::Refused(409)) => refused_again += 1,
                (Pushed::Acked(i, _), other) => panic!(
                    "kill {it}: run {} (acknowledged at {i}) pushed again after the restart: {}",
                    state.run_id,
                    match other {
                        Pushed::Acked(j, _) => format!("accepted again at {j}"),
                        Pushed::Refused(s) => format!("answered {s}, not 409"),
                        Pushed::Unknown => "no answer".into(),
                    }
                ),
                (_, Pushed::Acked(i, dg)) => {
                    accepted_on_retry += 1;
                    acked.insert(state.run_id.clone(), (i, dg));
                }
                (_, Pushed::Refused(409)) => refused_again += 1,
                (_, Pushed::Refused(s)) => panic!("kill {it}: retry of run {} answered {s}", state.run_id),
                (_, Pushed::Unknown) => panic!("kill {it}: retry of run {} got no answer", state.run_id),
            }
        }

        // One client for the round's reads (making one costs more than a request).
        let http = cp.http();
        // Everything sequenced is published; read the new entries back.
        let t = Instant::now();
        let size = loop {
            let log: serde_json::Value = serde_json::from_slice(
                &http
                    .get(format!("{}/api/v1/log", cp.url))
                    .send()
                    .unwrap()
                    .bytes()
                    .unwrap(),
            )
            .unwrap();
            let (seq, publ) = (
                log["sizes"]["sequenced"].as_u64().unwrap(),
                log["sizes"]["published"].as_u64().unwrap(),
            );
            if publ >= seq {
                break publ;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "kill {it}: not published: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let size_before = read;
        for i in read..size {
            let bytes = http
                .get(format!("{}/api/v1/entries/{i}", cp.url))
                .send()
                .unwrap()
                .bytes()
                .unwrap();
            if ledger_format::key::is_key_entry(&bytes) {
                continue; // the operator's key registration
            }
            let e = ledger_format::entry::Entry::parse(&bytes).unwrap();
            if let Some(j) = logged.insert(e.run.clone(), i) {
                panic!("kill {it}: run {} has two entries, at {j} and {i}", e.run);
            }
        }
        read = size;
        // Every acknowledged run is at its index; the digests of this
        // round's acknowledgements and of 20 older ones, read back.
        let mut sample: Vec<(&String, &(u64, String))> =
            acked.iter().filter(|(_, (i, _))| *i >= size_before).collect();
        sample.extend(
            acked
                .iter()
                .filter(|(_, (i, _))| *i < size_before && rand_u64() % acked.len() as u64 <= 20),
        );
        for (run, (i, _)) in &acked {
            assert_eq!(
                logged.get(run),
                Some(i),
                "kill {it}: acknowledged run {run} not at {i}"
            );
        }
        for (_, (i, dg)) in sample {
            let bytes = http
                .get(format!("{}/api/v1/entries/{i}", cp.url))
                .send()
                .unwrap()
                .bytes()
                .unwrap();
            let e = ledger_format::entry::Entry::parse(&bytes).unwrap();
            assert_eq!(
                &format!("sha256:{}", e.envelope_digest.to_hex()),
                dg,
                "kill {it}: index {i} changed"
            );
        }

        // The checkpoint, consistent with the one before and a random earlier one.
        let text = http
            .get(format!("{}/checkpoint", cp.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let now = verify_checkpoint(text.as_bytes(), &vkey, &[], None).unwrap();
        assert_eq!(now.size(), size);
        let earlier: HashSet<usize> = [
            checkpoints.len().checked_sub(1),
            checkpoints
                .len()
                .checked_sub(1 + rand_u64() as usize % checkpoints.len().max(1)),
        ]
        .into_iter()
        .flatten()
        .collect();
        for k in earlier {
            let old = &checkpoints[k];
            if old.size() == 0 {
                continue;
            }
            let (s, v) = cp.get(
                &format!("/api/v1/proof/consistency?old={}&new={}", old.size(), now.size()),
                None,
            );
            assert_eq!(s, 200, "{v}");
            let proof: Vec<ledger_format::hash::Hash> = v["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| ledger_format::hash::Hash::from_hex(h.as_str().unwrap()).unwrap())
                .collect();
            verify_consistency(old.size(), now.size(), &old.root(), &now.root(), &proof)
                .unwrap_or_else(|e| panic!("kill {it}: checkpoint {} vs {}: {e}", old.size(), now.size()));
        }
        checkpoints.push(now);
        println!(
            "kill {it}: {} pushes this round, log size {size}, {} acknowledged so far",
            results.len(),
            acked.len()
        );
    }
    assert!(!acked.is_empty(), "nothing was ever acknowledged");
    assert!(cp.stop().success(), "SIGTERM after the kills exits 0");
    let o = cp.tally(
        cp.dir.path(),
        &[],
        &["audit", "data/ledger", "--log-key", &cp.vkey],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    println!(
        "survived {kills} SIGKILLs under HTTP load in {:?}: {attempts} pushes, {} runs acknowledged, {} entries, \
         0 runs logged twice; after the restarts {refused_again} re-pushes refused 409, {accepted_on_retry} in-flight ones landed",
        started.elapsed(),
        acked.len(),
        read,
    );
}
