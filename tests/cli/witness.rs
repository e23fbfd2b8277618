//! `tally witness serve` as another organisation would run it, against a
//! log tally did not write: the Tessera test log in `../shared/vectors`
//! (its test signing key is public, so forks of it are signed on purpose).

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use ledger_format::checkpoint::Checkpoint;
use ledger_format::hash::Hash;
use ledger_format::merkle::{consistency_proof, MemoryTree};
use ledger_format::note::{Note, SignerKey, VerifierKey};

use crate::common::{code, stderr, tally};

const ORIGIN: &str = "example.com/log/testdata";
const LOG_VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const LOG_SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";

pub(crate) struct Served {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(config: &Path) -> Served {
    serve_at(config, "127.0.0.1:0")
}

pub(crate) fn serve_at(config: &Path, listen: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["witness", "serve", "--listen", listen, "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Served {
        child,
        url: v["url"].as_str().unwrap().to_owned(),
    }
}

/// POST /add-checkpoint: (status, content type, body).
pub(crate) fn add(url: &str, old: u64, proof: &[Hash], checkpoint: &str) -> (u16, String, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&b64.encode(h.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().unwrap())
}

#[test]
fn a_witness_cosigns_only_consistent_checkpoints_of_a_log_it_did_not_write() {
    let Some(vectors) = crate::common::vectors_dir() else {
        return;
    };
    let log = vectors.join("tessera-log");
    let cp = |n: u64| std::fs::read_to_string(log.join(format!("checkpoint.{n}"))).unwrap();
    // The log's leaves, for consistency proofs (its level-0 tile).
    let tile = std::fs::read(log.join("tile/0/000.p/15")).unwrap();
    let mut tree = MemoryTree::new();
    for h in tile.chunks(32) {
        tree.push(Hash(h.try_into().unwrap()));
    }
    let proof = |a: u64, b: u64| consistency_proof(a, b, &tree).unwrap();

    let d = tempfile::tempdir().unwrap();
    let keyfile = d.path().join("witness.key");
    let o = tally(&[
        "witness",
        "keygen",
        "--name",
        "witness.test/w1",
        "--key-file",
        keyfile.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let wkey: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let wvkey = VerifierKey::parse(wkey["verifier_key"].as_str().unwrap()).unwrap();
    // Never overwritten.
    assert_ne!(
        code(&tally(&[
            "witness",
            "keygen",
            "--name",
            "x/y",
            "--key-file",
            keyfile.to_str().unwrap()
        ])),
        0
    );
    let config = d.path().join("witness.toml");
    std::fs::write(
        &config,
        format!("key_file = \"witness.key\"\nstate_dir = \"state\"\n\n[[log]]\norigin = \"{ORIGIN}\"\nkeys = [\"{LOG_VKEY}\"]\n"),
    )
    .unwrap();
    let w = serve(&config);
    let got = reqwest::blocking::get(format!("{}/verifier-key", w.url))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(got.trim(), wvkey.to_string());

    // First sight: old 0, no proof: cosigned. The cosignature verifies
    // (cosignature/v1 over exactly the checkpoint body, timestamped).
    let (s, _, body) = add(&w.url, 0, &[], &cp(5));
    assert_eq!(s, 200, "{body}");
    assert!(
        body.starts_with("— witness.test/w1 ") && body.ends_with('\n'),
        "{body:?}"
    );
    let cosigned = format!("{}{body}", cp(5));
    let note = Note::parse(cosigned.as_bytes()).unwrap();
    let v = note
        .verify(&[VerifierKey::parse(LOG_VKEY).unwrap(), wvkey.clone()])
        .unwrap();
    let c = v
        .verified()
        .iter()
        .find(|s| s.name() == "witness.test/w1")
        .expect("the witness's cosignature");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(c.timestamp().is_some_and(|t| t + 60 > now && t <= now + 1));

    // A client that does not know the witness's size: 409 with it.
    let (s, ct, body) = add(&w.url, 0, &[], &cp(7));
    assert_eq!((s, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "5\n"));
    // Consistent growth: 5 → 7 with the proof.
    let (s, _, body) = add(&w.url, 5, &proof(5, 7), &cp(7));
    assert_eq!(s, 200, "{body}");
    // A wrong proof: 422, nothing cosigned, state unchanged.
    let mut bad = proof(7, 9);
    bad[0].0[0] ^= 1;
    assert_eq!(add(&w.url, 7, &bad, &cp(9)).0, 422);
    // The same checkpoint again: cosigned again.
    assert_eq!(add(&w.url, 7, &[], &cp(7)).0, 200);
    // Older than what it cosigned: old size larger than the checkpoint's: 400.
    assert_eq!(add(&w.url, 7, &[], &cp(5)).0, 400);
    // A fork: another root at size 7, signed with the log's (public) key: 422.
    let skey = SignerKey::parse(LOG_SKEY).unwrap();
    let fork = Checkpoint::new(ORIGIN, 7, Hash([7; 32]))
        .unwrap()
        .sign(&skey)
        .unwrap()
        .to_text();
    let (s, _, body) = add(&w.url, 7, &[], &fork);
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("another root at size 7"), "{body}");
    // A fork that grows from the fork: the proof cannot verify against what it cosigned.
    let fork9 = Checkpoint::new(ORIGIN, 9, Hash([9; 32]))
        .unwrap()
        .sign(&skey)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 7, &proof(7, 9), &fork9).0, 422);
    // Unknown origin: 404. No trusted signature, or a bad one: 403.
    let other = SignerKey::from_seed("other.example/log", &[1; 32]).unwrap();
    let stranger = Checkpoint::new("other.example/log", 3, Hash([3; 32]))
        .unwrap()
        .sign(&other)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 0, &[], &stranger).0, 404);
    let impostor = SignerKey::from_seed(ORIGIN, &[2; 32]).unwrap();
    let unsigned = Checkpoint::new(ORIGIN, 9, Hash([9; 32]))
        .unwrap()
        .sign(&impostor)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 7, &proof(7, 9), &unsigned).0, 403);
    let mut flipped = cp(9).into_bytes();
    let at = flipped.len() - 10;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        add(&w.url, 7, &proof(7, 9), &String::from_utf8(flipped).unwrap()).0,
        403
    );
    // Malformed bodies: 400.
    assert_eq!(add(&w.url, 0, &[], "not a checkpoint\n").0, 400);
    // A size-0 checkpoint must have the empty root.
    let zero = Checkpoint::new(ORIGIN, 0, Hash([1; 32]))
        .unwrap()
        .sign(&skey)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 0, &[], &zero).0, 422);

    // kill -9 after cosigning 7: the state survives; it never cosigns
    // anything inconsistent with 7, and goes on from there.
    drop(w);
    let w = serve(&config);
    let (s, ct, body) = add(&w.url, 0, &[], &cp(9));
    assert_eq!((s, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "7\n"));
    assert_eq!(add(&w.url, 7, &[], &fork).0, 422);
    let (s, _, body) = add(&w.url, 7, &proof(7, 15), &cp(15));
    assert_eq!(s, 200, "{body}");
    // The cosigned checkpoint verifies under the log's and the witness's keys.
    let cosigned = format!("{}{body}", cp(15));
    assert!(Note::parse(cosigned.as_bytes())
        .unwrap()
        .verify(&[VerifierKey::parse(LOG_VKEY).unwrap(), wvkey])
        .is_ok());
}

// ------------------------------------------------ the control plane's witnesses

/// A witness of `origin` (log key `log_vkey`) in `dir/<name>` on a fixed
/// loopback port (so a restart keeps its URL): (config path, cosignature
/// verifier key, listen address).
pub(crate) fn witness_of(
    dir: &Path,
    name: &str,
    origin: &str,
    log_vkey: &str,
) -> (std::path::PathBuf, String, String) {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let o = tally(&[
        "witness",
        "keygen",
        "--name",
        &format!("witness.test/{name}"),
        "--key-file",
        home.join("witness.key").to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = home.join("witness.toml");
    std::fs::write(
        &config,
        format!("key_file = \"witness.key\"\nstate_dir = \"state\"\n\n[[log]]\norigin = \"{origin}\"\nkeys = [\"{log_vkey}\"]\n"),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", crate::common::free_port());
    (config, v["verifier_key"].as_str().unwrap().to_owned(), listen)
}

/// The note of the control plane's `/checkpoint`.
fn served_checkpoint(url: &str) -> Note {
    let text = reqwest::blocking::get(format!("{url}/checkpoint"))
        .unwrap()
        .text()
        .unwrap();
    Note::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// Polls `cond` every 100 ms for up to 20 s.
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting until {what}");
}

#[test]
fn the_control_plane_publishes_checkpoints_cosigned_by_a_quorum_of_witnesses() {
    use crate::controlplane::{craft_release_with, ok, workspace, ControlPlane};
    let d = tempfile::tempdir().unwrap();
    let repo = crate::common::contracts_repo(d.path());
    // The log's key exists before the first start, so the witnesses can be
    // configured with it first.
    let origin = "tally.localhost/log";
    let log_key = SignerKey::from_seed(origin, &[42; 32]).unwrap();
    let cp_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cp_dir.path().join("data/ledger")).unwrap();
    std::fs::write(
        cp_dir.path().join("data/ledger/log.key"),
        format!("{}\n", log_key.to_secret_text()),
    )
    .unwrap();
    let log_vkey = log_key.verifier().to_string();
    let ws_cfg: Vec<_> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| witness_of(d.path(), n, origin, &log_vkey))
        .collect();
    let mut witnesses: Vec<Option<Served>> = ws_cfg.iter().map(|(c, _, l)| Some(serve_at(c, l))).collect();
    // A C2SP tlog-policy: 2 of the 3, each with its URL.
    let mut policy = format!("log {log_vkey}\n");
    for (i, (_, vkey, listen)) in ws_cfg.iter().enumerate() {
        policy.push_str(&format!("witness w{} {vkey} http://{listen}\n", i + 1));
    }
    policy.push_str("group two-of-three 2 w1 w2 w3\nquorum two-of-three\n");
    let policy_path = d.path().join("witnesses.policy");
    std::fs::write(&policy_path, &policy).unwrap();
    let config = d.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "publish_wait_secs = 2\n[witnesses]\npolicy = \"{}\"\ntimeout_ms = 1000\nretry_secs = 1\n",
            policy_path.display()
        ),
    )
    .unwrap();
    let cp = ControlPlane::start_in(cp_dir, &repo, &["--config", config.to_str().unwrap()]);
    assert_eq!(cp.vkey, log_vkey);
    let policy_arg = policy_path.to_str().unwrap();
    let keys: Vec<VerifierKey> = ws_cfg
        .iter()
        .map(|(_, k, _)| VerifierKey::parse(k).unwrap())
        .collect();
    let cosigners = |n: &Note| {
        keys.iter()
            .filter(|k| tally::witness::policy::cosigned_by(n, k))
            .count()
    };

    // A new log publishes the empty tree's checkpoint at once, cosigned.
    eventually("the size-0 checkpoint is cosigned by all three", || {
        cp.get("/checkpoint", None).0 == 200 && cosigners(&served_checkpoint(&cp.url)) == 3
    });
    let n = served_checkpoint(&cp.url);
    assert!(n.text().starts_with(&format!("{origin}\n0\n")), "{}", n.text());

    // All three up: the bundle's checkpoint carries three cosignatures and
    // verifies offline under the policy, and under "3 of these 3 keys".
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    let env = op.env();
    let push = |extra: &[&str]| {
        craft_release_with(
            &cp,
            &ws,
            &env,
            &format!("ghcr.io/acme/payments@sha256:{}", "5e".repeat(32)),
        );
        let mut args = vec![
            "attestation",
            "push",
            "--key",
            "cosign.key",
            "--annotation",
            "change-ticket=CHG-1",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--output", "json"]);
        cp.tally(&ws, &env, &args)
    };
    ok(&push(&["--witness-policy", policy_arg, "--bundle", "b1.json"]));
    let verify = |bundle: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--bundle",
            bundle,
            "--log-key",
            &log_vkey,
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        cp.tally(&ws, &[], &args)
    };
    let v = ok(&verify("b1.json", &["--witness-policy", policy_arg]));
    assert_eq!(v["cosignatures"], 3, "{v}");
    let all_keys: Vec<&str> = ws_cfg
        .iter()
        .flat_map(|(_, k, _)| ["--witness-key", k.as_str()])
        .collect();
    ok(&verify(
        "b1.json",
        &[&all_keys[..], &["--min-witnesses", "3"]].concat(),
    ));

    // One witness down: the quorum (2 of 3) is still reached.
    witnesses[2] = None;
    ok(&push(&["--witness-policy", policy_arg, "--bundle", "b2.json"]));
    let v = ok(&verify("b2.json", &["--witness-policy", policy_arg]));
    assert_eq!(v["cosigned_by"], serde_json::json!(["w1", "w2"]), "{v}");
    let o = verify("b2.json", &[&all_keys[..], &["--min-witnesses", "3"]].concat());
    let said = format!("{}{}", crate::common::stdout(&o), stderr(&o));
    assert_eq!(code(&o), 1, "{said}");
    assert!(
        said.contains("the quorum is 3 of (witness.test/w1, witness.test/w2, witness.test/w3)"),
        "{said}"
    );

    // Two down (publish mode): the entry is published with one
    // cosignature; a push that asks for the quorum waits for it...
    witnesses[1] = None;
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            push(&[
                "--witness-policy",
                policy_arg,
                "--bundle",
                "b3.json",
                "--wait-secs",
                "30",
            ])
        });
        // (The count moves a moment before the checkpoint is served.)
        eventually(
            "a checkpoint short of its quorum is published and counted",
            || {
                let m = cp.metrics();
                m.contains("tally_checkpoint_quorum 0")
                    && !m.contains("tally_checkpoints_published_short_total 0")
                    && cosigners(&served_checkpoint(&cp.url)) == 1
            },
        );
        // (publish mode stays ready)
        assert_eq!(cp.get("/readyz", None).0, 200);
        // ... until the second witness is back (after a kill -9: its state
        // survived) and the control plane re-asks: the same checkpoint is
        // re-published with the quorum, and the push writes its bundle.
        witnesses[1] = Some(serve_at(&ws_cfg[1].0, &ws_cfg[1].2));
        let o = waiting.join().unwrap();
        ok(&o);
    });
    let v = ok(&verify("b3.json", &["--witness-policy", policy_arg]));
    assert_eq!(v["cosignatures"], 2, "{v}");
    // A monitor comparing the served log, a git clone of its ledger and a
    // witness's latest view finds one history, under the quorum (twice:
    // the second round fetches into the copy the first one made).
    let ledger = format!("git+{}", cp.dir.path().join("data/ledger/ledger.git").display());
    let witness = format!("witness+http://{}", ws_cfg[0].2);
    for _ in 0..2 {
        let o = cp.tally(
            &ws,
            &[],
            &[
                "monitor",
                "--once",
                "--log-key",
                &log_vkey,
                "--witness-policy",
                policy_arg,
                "--state",
                "monitor",
                "--output",
                "json",
                &cp.url,
                &ledger,
                &witness,
            ],
        );
        let r = ok(&o);
        assert!(r["forks"].as_array().unwrap().is_empty(), "{r}");
        assert!(
            r["sources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["proven"] == true),
            "{r}"
        );
    }
    let m = cp.metrics();
    assert!(m.contains("tally_checkpoint_quorum 1"), "{m}");
    assert!(
        m.contains("tally_witness_requests_total{witness=\"w3\",outcome=\"failed\"}"),
        "{m}"
    );

    // A push that cannot get its quorum in time says so (exit 3) and
    // still names where the proof will be.
    witnesses[1] = None;
    let o = push(&[
        "--witness-policy",
        policy_arg,
        "--bundle",
        "b4.json",
        "--wait-secs",
        "2",
    ]);
    let said = format!("{}{}", crate::common::stdout(&o), stderr(&o));
    assert_eq!(code(&o), 3, "{said}");
    assert!(said.contains("met the witness quorum"), "{said}");
    drop(witnesses);
}

type Held = (
    std::path::PathBuf,
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
    String,
);

/// A control plane's data directory with its log key, and a config that
/// holds publication for one witness (`w1`, not started) in `hold` mode:
/// (repo, data dir, config path, the witness's config, its verifier key,
/// its listen address).
fn held_setup(d: &Path, seed: u8, extra: &str) -> Held {
    let repo = crate::common::contracts_repo(d);
    let origin = "tally.localhost/log";
    let log_key = SignerKey::from_seed(origin, &[seed; 32]).unwrap();
    let cp_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cp_dir.path().join("data/ledger")).unwrap();
    std::fs::write(
        cp_dir.path().join("data/ledger/log.key"),
        format!("{}\n", log_key.to_secret_text()),
    )
    .unwrap();
    let (wcfg, wvkey, listen) = witness_of(d, "w1", origin, &log_key.verifier().to_string());
    let policy = d.join("p");
    std::fs::write(
        &policy,
        format!("witness w1 {wvkey} http://{listen}\nquorum w1\n"),
    )
    .unwrap();
    let config = d.join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}[witnesses]\npolicy = \"{}\"\non_no_quorum = \"hold\"\ntimeout_ms = 500\nretry_secs = 1\n",
            policy.display()
        ),
    )
    .unwrap();
    (repo, cp_dir, config, wcfg, wvkey, listen)
}

#[test]
fn on_no_quorum_hold_publishes_nothing_until_the_witnesses_cosign() {
    use crate::controlplane::ControlPlane;
    let d = tempfile::tempdir().unwrap();
    let (repo, cp_dir, config, wcfg, wvkey, listen) = held_setup(d.path(), 43, "");
    // The witness is down: even the size-0 checkpoint is held back.
    let mut cp = ControlPlane::start_in(cp_dir, &repo, &["--config", config.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(cp.get("/checkpoint", None).0, 404);
    let (s, body) = cp.get("/readyz", None);
    assert_eq!(s, 503, "{body}");
    assert!(body.to_string().contains("witness quorum"), "{body}");
    assert!(cp.metrics().contains("tally_checkpoint_held 1"));
    // Stopping while held is clean; the signed checkpoint waits in state/.
    assert!(cp.stop().success());
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp = ControlPlane::start_in(dir, &repo, &["--config", config.to_str().unwrap()]);
    let _w = serve_at(&wcfg, &listen);
    eventually(
        "the held checkpoint is published once the witness cosigns",
        || cp.get("/readyz", None).0 == 200 && cp.get("/checkpoint", None).0 == 200,
    );
    let n = served_checkpoint(&cp.url);
    assert!(tally::witness::policy::cosigned_by(
        &n,
        &VerifierKey::parse(&wvkey).unwrap()
    ));
}

/// A push acknowledged while publication is held (no witness quorum) and
/// the server then killed: at the restart, with publication still held,
/// the run is taken at once — read from the sequencing log, not from a
/// publication that may not come — and a re-signed push is refused 409.
/// (Before, the start waited up to 600 s for the publication and then
/// left such runs open to a second attestation.)
#[test]
fn a_run_acknowledged_while_publication_is_held_stays_taken_across_a_crash() {
    use crate::controlplane::ControlPlane;
    use crate::crash::{Pipeline, Pushed};
    let d = tempfile::tempdir().unwrap();
    // A witness that never answers: every checkpoint is held.
    let (repo, cp_dir, config, ..) = held_setup(d.path(), 44, "refusals_per_minute = 0\n");
    let args = ["--config", config.to_str().unwrap()];
    let mut cp = ControlPlane::start_in(cp_dir, &repo, &args);
    let key =
        tally::attest::signing::SigningKey::generate(tally::attest::signing::Algorithm::Ed25519).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({"public_key": key.public_pem()})).unwrap();
    assert_eq!(
        cp.post(
            "/api/v1/workflows/psirt-advisories/keys",
            Some(&cp.admin),
            "application/json",
            body
        )
        .0,
        201
    );
    let body =
        serde_json::to_vec(&serde_json::json!({"workflows": ["psirt-advisories"], "description": "t"}))
            .unwrap();
    let (s, t) = cp.post("/api/v1/tokens", Some(&cp.admin), "application/json", body);
    assert_eq!(s, 201, "{t}");
    let pipeline = |url: &str| Pipeline {
        url: url.to_owned(),
        token: t["token"].as_str().unwrap().to_owned(),
        key: tally::attest::signing::SigningKey::from_pem(&key.private_pem(None).unwrap(), None).unwrap(),
        http: reqwest::blocking::Client::new(),
    };
    let p = pipeline(&cp.url);
    let state = p.start().expect("a run");
    let Pushed::Acked(index, _) = p.push(&state, 0) else {
        panic!("the push was not acknowledged")
    };
    assert_eq!(
        cp.get("/checkpoint", None).0,
        404,
        "nothing is published while held"
    );
    cp.crash();
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp = ControlPlane::start_in(dir, &repo, &args);
    assert_eq!(cp.get("/checkpoint", None).0, 404, "still held after the restart");
    let p = pipeline(&cp.url);
    assert!(
        matches!(p.push(&state, 1), Pushed::Refused(409)),
        "run {} (acknowledged at {index}) must stay taken",
        state.run_id
    );
    let (_, log) = cp.get("/api/v1/log", None);
    assert_eq!(log["sizes"]["sequenced"], index + 1, "{log}");
}
