//! The benchmarks (BENCHMARKS.md): `ledger` — durable appends from
//! concurrent writers, proof generation from storage, and storage per entry
//! after packing; `intake` — the control plane in this process, loaded over
//! loopback HTTP by its own load generator; `artifacts` — the real server and
//! CLI as child processes against an OCI registry. Each prints JSON.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use ledger_format::hash::leaf_hash;
use serde_json::json;

use crate::args::BenchLedgerArgs;
use tally::cmd::Report;
use tally::exit::{Classify, Failure};
use tally::ledger::open_dir;

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU seconds (user + system) used so far by this process and its waited-for
/// children (`git` maintenance), from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // `rest` starts at field 3 (the state letter); utime, stime, cutime and
    // cstime are fields 14 to 17, in clock ticks (USER_HZ, 100 on Linux).
    let f: Vec<i64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let ticks: i64 = f.get(11..15).map_or(0, |x| x.iter().sum());
    ticks as f64 / 100.0
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Runs the ledger benchmark.
pub(crate) fn ledger(args: &BenchLedgerArgs) -> Result<Report, Failure> {
    if args.writers == 0 || args.entry_size < 32 || args.entry_size > tally::ledger::MAX_ENTRY_BYTES {
        return Err(Failure::Usage(anyhow!(
            "need ≥ 1 writer and an entry size of 32..=65535 bytes"
        )));
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()
                .context("creating a temporary directory")
                .unavailable()?;
            tmp.path().join("ledger")
        }
    };
    let ledger =
        Arc::new(open_dir(&dir, Some("bench.tally.test/log")).map_err(|e| Failure::Unavailable(anyhow!(e)))?);
    let start_size = ledger.sizes().sequenced;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(args.duration);

    // Publications: (time since t0, published size).
    let pubs: Arc<Mutex<Vec<(f64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let observer = {
        let (ledger, pubs, stop) = (ledger.clone(), pubs.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            loop {
                let (count, size) = ledger.wait_publication(seen, Duration::from_millis(200));
                if count > seen {
                    seen = count;
                    pubs.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((t0.elapsed().as_secs_f64(), size));
                }
                if stop.load(Ordering::Acquire) && ledger.sizes().published >= ledger.sizes().sequenced {
                    break;
                }
            }
        })
    };

    let writers: Vec<_> = (0..args.writers)
        .map(|w| {
            let ledger = ledger.clone();
            let size = args.entry_size;
            // Open-loop pacing: entry k of this writer is due at start + k / rate,
            // and its latencies count from when it was due (no coordinated omission).
            let interval = if args.rate > 0.0 {
                args.writers as f64 / args.rate
            } else {
                0.0
            };
            let offset = interval * w as f64 / args.writers as f64;
            std::thread::spawn(move || -> Result<Vec<(u64, f64, f64)>, String> {
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ ((w as u64 + 1) << 32) ^ rand::random::<u64>();
                let mut out = Vec::new();
                let mut k = 0u64;
                while Instant::now() < deadline {
                    // Incompressible entries, so packing cannot hide overhead.
                    let mut e = Vec::with_capacity(size);
                    while e.len() < size {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        e.extend_from_slice(&state.to_le_bytes());
                    }
                    e.truncate(size);
                    let submitted = if interval > 0.0 {
                        let due = offset + k as f64 * interval;
                        let now = t0.elapsed().as_secs_f64();
                        if due > now {
                            std::thread::sleep(Duration::from_secs_f64(due - now));
                        }
                        due
                    } else {
                        t0.elapsed().as_secs_f64()
                    };
                    k += 1;
                    let a = ledger.append(e, Vec::new()).map_err(|e| e.to_string())?;
                    out.push((a.index, submitted, t0.elapsed().as_secs_f64() - submitted));
                }
                Ok(out)
            })
        })
        .collect();
    let mut acks = Vec::new();
    for w in writers {
        acks.extend(
            w.join()
                .map_err(|_| Failure::Unavailable(anyhow!("a writer panicked")))?
                .map_err(|e| Failure::Unavailable(anyhow!(e)))?,
        );
    }
    let append_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let _ = observer.join();
    let appended = acks.len() as u64;
    let pubs = pubs.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let mut ack_ms: Vec<f64> = acks.iter().map(|a| a.2 * 1000.0).collect();
    ack_ms.sort_by(f64::total_cmp);
    let mut pub_ms: Vec<f64> = acks
        .iter()
        .filter_map(|&(index, submitted, _)| {
            let i = pubs.partition_point(|&(_, size)| size <= index);
            pubs.get(i).map(|&(t, _)| (t - submitted) * 1000.0)
        })
        .collect();
    pub_ms.sort_by(f64::total_cmp);
    let sizes = ledger.sizes();
    ledger.close().map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    drop(ledger);

    // Proof generation from storage, in a freshly opened ledger (cold tile cache).
    let ledger = Arc::new(open_dir(&dir, None).map_err(|e| Failure::Unavailable(anyhow!(e)))?);
    let size = ledger.sizes().published;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = args.proofs / threads as u64;
    let tp = Instant::now();
    let provers: Vec<_> = (0..threads)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut state = 0x2545_f491_4f6c_dd1du64 + t as u64;
                for _ in 0..per_thread {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = state % size.max(1);
                    ledger.inclusion_proof(i, size).map_err(|e| e.to_string())?;
                }
                Ok(per_thread)
            })
        })
        .collect();
    let mut proofs = 0;
    for p in provers {
        proofs += p
            .join()
            .map_err(|_| Failure::Unavailable(anyhow!("a prover panicked")))?
            .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    }
    let proof_secs = tp.elapsed().as_secs_f64();
    ledger.close().map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    drop(ledger);

    // Storage after packing.
    let git_dir = dir.join("ledger.git");
    let before_pack = dir_bytes(&dir);
    let tpack = Instant::now();
    tally::ledger::git::repack(&git_dir, true)
        .context("packing")
        .unavailable()?;
    let pack_secs = tpack.elapsed().as_secs_f64();
    let after_pack = dir_bytes(&dir);
    let entries_total = size;
    let entry_bytes = entries_total * args.entry_size as u64;
    let overhead = (after_pack as f64 - entry_bytes as f64) / entries_total.max(1) as f64;

    // In-memory baseline: rs_merkle building the same number of leaves.
    let leaves: Vec<[u8; 32]> = (0..appended).map(|i| leaf_hash(&i.to_le_bytes()).0).collect();
    let tb = Instant::now();
    let tree = rs_merkle::MerkleTree::<ledger_format::rsmerkle::Rfc6962Hasher>::from_leaves(&leaves);
    std::hint::black_box(tree.root());
    let baseline_secs = tb.elapsed().as_secs_f64();

    let rate = appended as f64 / append_secs;
    let doc = json!({
        "bench": "ledger",
        "entry_size": args.entry_size,
        "writers": args.writers,
        "offered_rate": if args.rate > 0.0 { json!(args.rate) } else { json!("unlimited") },
        "duration_s": append_secs,
        "start_size": start_size,
        "entries_sequenced": appended,
        "sequenced_per_s": rate.round(),
        "ack_ms": {"p50": percentile(&ack_ms, 0.5), "p99": percentile(&ack_ms, 0.99), "max": percentile(&ack_ms, 1.0)},
        "published_ms": {"p50": percentile(&pub_ms, 0.5), "p99": percentile(&pub_ms, 0.99), "max": percentile(&pub_ms, 1.0)},
        "publications": pubs.len(),
        "final_sizes": {"sequenced": sizes.sequenced, "published": size},
        "proofs": {"count": proofs, "threads": threads, "per_s": (proofs as f64 / proof_secs).round(), "tree_size": size},
        "storage": {
            "bytes_before_pack": before_pack,
            "bytes_after_pack": after_pack,
            "entry_bytes": entry_bytes,
            "overhead_bytes_per_entry": overhead,
            "pack_s": pack_secs,
        },
        "in_memory_baseline": {
            "what": "rs_merkle from_leaves over the same number of leaf hashes",
            "per_s": (appended as f64 / baseline_secs).round(),
            "durable_over_in_memory": rate / (appended as f64 / baseline_secs),
        },
        "dir": dir,
    });
    Ok(Report {
        text: String::new(),
        json: doc,
    })
}

/// One connection of `tally bench intake`'s load generator: plain HTTP/1.1
/// through hyper's connection API (a load generator needs no pool, redirects
/// or URL parsing: reqwest cost it about twice the CPU), reconnecting when
/// the connection breaks.
pub(crate) struct LoadConn {
    addr: std::net::SocketAddr,
    host: String,
    sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>>,
}

impl LoadConn {
    pub(crate) fn new(addr: std::net::SocketAddr) -> Self {
        LoadConn {
            addr,
            host: addr.to_string(),
            sender: None,
        }
    }

    /// Sends `req` (the Host header is added); true when the answer is 2xx
    /// and its body was read whole.
    pub(crate) async fn send(
        &mut self,
        req: hyper::http::request::Builder,
        body: hyper::body::Bytes,
    ) -> bool {
        self.send_read(req, body).await.is_some()
    }

    /// [`LoadConn::send`], returning the 2xx answer's body.
    pub(crate) async fn send_read(
        &mut self,
        req: hyper::http::request::Builder,
        body: hyper::body::Bytes,
    ) -> Option<hyper::body::Bytes> {
        use http_body_util::{BodyExt as _, Full};
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = self.connect().await;
        }
        let s = self.sender.as_mut()?;
        let req = req
            .header(hyper::header::HOST, &self.host)
            .body(Full::new(body))
            .ok()?;
        match s.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let body = resp.into_body().collect().await.ok()?.to_bytes();
                ok.then_some(body)
            }
            Err(_) => {
                self.sender = None;
                None
            }
        }
    }

    async fn connect(
        &self,
    ) -> Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(sender)
    }
}

/// One load-generating client: pushes the next pre-signed attestation until
/// none is left. Returns the acknowledgement latencies and the error count.
async fn push_client(
    addr: std::net::SocketAddr,
    work: Arc<Vec<(String, hyper::body::Bytes)>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    token: String,
    mode: PushMode,
) -> (Vec<f64>, u64) {
    let mut conn = LoadConn::new(addr);
    let (mut lat, mut errors) = (Vec::new(), 0u64);
    let auth = format!("Bearer {token}");
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((id, body)) = work.get(i) else { break };
        let t = Instant::now();
        let env = match mode {
            PushMode::Signed => Some(body.clone()),
            PushMode::Keyless | PushMode::CertificatesOnly => {
                certify_and_splice(&mut conn, &auth, id, body, mode).await
            }
        };
        let ok = match env {
            Some(env) if mode != PushMode::CertificatesOnly => {
                let req = hyper::Request::post(format!("/api/v1/runs/{id}/attestation?wait=0"))
                    .header(hyper::header::AUTHORIZATION, &auth)
                    .header(hyper::header::CONTENT_TYPE, "application/json");
                conn.send(req, env).await
            }
            Some(_) => true,
            None => false,
        };
        if ok {
            lat.push(t.elapsed().as_secs_f64());
        } else {
            errors += 1;
        }
    }
    (lat, errors)
}

/// What one timed request of a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushMode {
    /// Push the pre-signed envelope.
    Signed,
    /// `body` is a certificate request, a newline, then the envelope
    /// (signed by the requested key) with [`CERT_PLACEHOLDER`] where the
    /// chain goes: certify, splice, push.
    Keyless,
    /// As `Keyless`, but stop after the certificate.
    CertificatesOnly,
}

/// Where a keyless envelope's chain is spliced in.
const CERT_PLACEHOLDER: &str = "@@CERTIFICATE@@";

/// Requests the certificate of a keyless work item and returns its
/// envelope with the chain in place (`None` on any failure).
async fn certify_and_splice(
    conn: &mut LoadConn,
    auth: &str,
    id: &str,
    body: &hyper::body::Bytes,
    mode: PushMode,
) -> Option<hyper::body::Bytes> {
    let cut = body.iter().position(|b| *b == b'\n')?;
    let req = hyper::Request::post(format!("/api/v1/runs/{id}/certificate"))
        .header(hyper::header::AUTHORIZATION, auth)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    let answer = conn.send_read(req, body.slice(..cut)).await?;
    if mode == PushMode::CertificatesOnly {
        return Some(answer);
    }
    let issued: tally::wire::CertificateIssued = serde_json::from_slice(&answer).ok()?;
    let quoted = serde_json::to_string(&issued.certificate_chain).ok()?;
    let template = std::str::from_utf8(&body[cut + 1..]).ok()?;
    let env = template.replacen(CERT_PLACEHOLDER, &quoted[1..quoted.len() - 1], 1);
    Some(hyper::body::Bytes::from(env))
}

/// Samples the ledger's (sequenced, published) sizes every millisecond
/// while the intake benchmark runs, so each entry's publish latency — from
/// the sample that first counts it sequenced to the one that first counts
/// it published — is known to about a millisecond. In-process targets only.
struct PublishSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, u64, u64)>>,
}

impl PublishSampler {
    fn start(target: &Target) -> Option<PublishSampler> {
        let Target::Local { app, .. } = target else {
            return None;
        };
        let (app, stop) = (app.clone(), Arc::new(AtomicBool::new(false)));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Acquire) {
                let s = app.ledger.sizes();
                samples.push((Instant::now(), s.sequenced, s.published));
                std::thread::sleep(Duration::from_millis(1));
            }
            let s = app.ledger.sizes();
            samples.push((Instant::now(), s.sequenced, s.published));
            samples
        });
        Some(PublishSampler { stop, thread })
    }

    /// Stops sampling; each entry's seconds from sequenced to published.
    fn finish(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Release);
        let samples = self.thread.join().unwrap_or_default();
        let Some(first) = samples.first() else {
            return Vec::new();
        };
        let (mut out, mut p) = (Vec::new(), 0);
        let mut next = first.1;
        for (t, seq, _) in &samples {
            // Entries [next, seq) were first seen sequenced at `t`.
            while next < *seq {
                while p < samples.len() && samples[p].2 <= next {
                    p += 1;
                }
                let Some(published) = samples.get(p) else {
                    return out;
                };
                out.push(published.0.saturating_duration_since(*t).as_secs_f64());
                next += 1;
            }
        }
        out
    }
}

/// The server `intake` loads: started in this process, or a running one.
enum Target {
    Local {
        app: Arc<tally::server::App>,
        rt: tokio::runtime::Runtime,
        serving: tokio::task::JoinHandle<Result<(), tally::server::ServerError>>,
        stop: tokio::sync::oneshot::Sender<()>,
        _tmp: tempfile::TempDir,
        /// Requests the webhook receiver of `--webhooks` answered.
        hooked: Arc<std::sync::atomic::AtomicU64>,
    },
    Remote {
        client: tally::client::Client,
    },
}

/// The workflow the intake benchmark pushes for (its contract accepts any
/// runner and asks for one VEX document).
const BENCH_WORKFLOW: &str = "psirt-advisories";

impl Target {
    /// (sequenced, published) now.
    fn sizes(&self) -> Result<(u64, u64), Failure> {
        match self {
            Target::Local { app, .. } => {
                let s = app.ledger.sizes();
                Ok((s.sequenced, s.published))
            }
            Target::Remote { client } => {
                let log: tally::wire::LogInfo = client.get_as("/api/v1/log")?;
                Ok((log.sizes.sequenced, log.sizes.published))
            }
        }
    }

    /// Waits (≤ 120 s) until everything sequenced is published.
    fn wait_published(&self) -> Result<(), Failure> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(120) {
            let (seq, publ) = self.sizes()?;
            if publ >= seq {
                return Ok(());
            }
            if let Target::Local { app, .. } = self {
                let _ = app.ledger.wait_published(seq - 1, Duration::from_secs(120));
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

/// Starts the control plane in this process (the default target).
fn local_target(args: &crate::args::BenchIntakeArgs) -> Result<(Target, std::net::SocketAddr), Failure> {
    use tally::server::{self, ServerConfig};
    let tmp = tempfile::tempdir()
        .context("creating a temporary directory")
        .unavailable()?;
    let data = args.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let mut cfg = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: data,
        max_body_bytes: 1 << 20,
        ..ServerConfig::default()
    };
    if args.policies {
        cfg.contracts = gated_contracts(tmp.path())?.to_string_lossy().into_owned();
    }
    if args.witnesses > 0 {
        cfg.witnesses =
            crate::witness::start_witnesses(&rt, tmp.path(), &cfg.data_dir, &cfg.origin, args.witnesses)?;
    }
    if let Some(r) = &args.registry {
        cfg.artifacts.backend = server::artifact_store::Backend::Oci;
        cfg.artifacts.repository = format!("{r}/tally/intake-{}", server::unix_now());
    }
    let hooked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if args.webhooks > 0 {
        let url = rt.block_on(webhook_receiver(hooked.clone()))?;
        // Read by the server's start, below, from this process's environment.
        std::env::set_var("TALLY_BENCH_HOOK_SECRET", "bench-webhook-secret");
        cfg.integrations = (0..args.webhooks)
            .map(|i| tally::server::integrations::IntegrationConfig {
                name: format!("hook-{i}"),
                kind: tally::server::integrations::Kind::Webhook,
                url: format!("{url}/events"),
                secret_env: "TALLY_BENCH_HOOK_SECRET".into(),
                events: vec![tally::server::integrations::EventKind::Accepted],
                workflows: Vec::new(),
                material: String::new(),
                timeout_ms: 10_000,
                max_attempts: 10,
                backoff_secs: 1,
            })
            .collect();
    }
    let started = rt
        .block_on(server::start(cfg, None))
        .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    let app = started.app.clone();
    let addr = started.addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = rt.spawn(server::run(started, async move {
        let _ = stopped.await;
    }));
    let t = Target::Local {
        app,
        rt,
        serving,
        stop,
        _tmp: tmp,
        hooked,
    };
    Ok((t, addr))
}

/// A receiver on loopback that answers every request 200 and counts them: its URL.
async fn webhook_receiver(hits: Arc<std::sync::atomic::AtomicU64>) -> Result<String, Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let app = axum::Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// The workflow and contract of `--policies`: one CycloneDX SBOM, three
/// blocking policies of the example set.
const GATED_WORKFLOW: &str = "bench-gated";

/// A contracts repository (the examples plus `bench-gated`), committed.
fn gated_contracts(dir: &std::path::Path) -> Result<std::path::PathBuf, Failure> {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts");
    let repo = dir.join("contracts");
    let io = |e: std::io::Error| Failure::Unavailable(e.into());
    std::fs::create_dir_all(repo.join("policies")).map_err(io)?;
    for sub in ["", "policies"] {
        for e in std::fs::read_dir(src.join(sub)).map_err(io)? {
            let p = e.map_err(io)?.path();
            if p.is_file() {
                std::fs::copy(&p, repo.join(sub).join(p.file_name().unwrap_or_default())).map_err(io)?;
            }
        }
    }
    let mut workflows = std::fs::read_to_string(repo.join("workflows.toml")).map_err(io)?;
    workflows.push_str(&format!(
        "\n[[workflows]]\nname = \"{GATED_WORKFLOW}\"\nproject = \"bench\"\ncontract = \"bench-gated\"\nowners = [\"bench@example.com\"]\n"
    ));
    std::fs::write(repo.join("workflows.toml"), workflows).map_err(io)?;
    let mut contract = String::from(
        "schema = \"tally.dev/contract/v1\"\nname = \"bench-gated\"\nrunner = \"any\"\n\n[[materials]]\nname = \"sbom\"\ntype = \"SBOM_CYCLONEDX_JSON\"\n",
    );
    for p in [
        "sbom-quality.yaml",
        "licenses-allowed.yaml",
        "no-critical-vulnerabilities.yaml",
    ] {
        contract.push_str(&format!(
            "\n[[policies]]\nref = \"policies/{p}\"\nmaterials = [\"sbom\"]\n"
        ));
    }
    std::fs::write(repo.join("bench-gated.toml"), contract).map_err(io)?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-q",
            "-m",
            "bench",
        ],
    ] {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .status()
            .map_err(io)?
            .success();
        if !ok {
            return Err(Failure::Unavailable(anyhow!("git {args:?} failed")));
        }
    }
    Ok(repo)
}

/// `k` distinct SBOMs of about `kib` KiB (they differ in their serial
/// number), stored in the control plane's artifact store; their digests.
fn store_sboms(
    app: &Arc<tally::server::App>,
    rt: &tokio::runtime::Runtime,
    kib: usize,
    k: usize,
) -> Result<Vec<(String, u64)>, Failure> {
    use tally::server::artifact_store::{ByteStream, Upload};
    let base = crate::policy::sbom(kib * 1024);
    let mut out = Vec::with_capacity(k);
    for i in 0..k.max(1) {
        let bytes = String::from_utf8_lossy(&base)
            .replacen(
                "3e671687-395b-41f5-a30f-a58921a69b79",
                &format!("3e671687-395b-41f5-a30f-{i:012x}"),
                1,
            )
            .into_bytes();
        let hex = ledger_format::hash::sha256(&bytes).to_hex();
        let up = Upload {
            hex: hex.clone(),
            len: bytes.len() as u64,
            workflow: GATED_WORKFLOW.into(),
            run: None,
            kind: "SBOM_CYCLONEDX_JSON".into(),
            name: Some("sbom".into()),
        };
        let len = bytes.len() as u64;
        let body: ByteStream = Box::pin(futures_util::stream::once(async move {
            Ok(hyper::body::Bytes::from(bytes))
        }));
        rt.block_on(app.artifacts.put(&up, body))
            .map_err(|e| Failure::Unavailable(anyhow!("storing an SBOM: {e}")))?;
        out.push((format!("sha256:{hex}"), len));
    }
    Ok(out)
}

/// A running control plane at `--server`.
fn remote_target(url: &str, admin: &str) -> Result<(Target, std::net::SocketAddr), Failure> {
    let hostport = url
        .strip_prefix("http://")
        .map(|r| r.trim_end_matches('/'))
        .ok_or_else(|| {
            Failure::Usage(anyhow!(
                "--server must be http://host:port (the load generator speaks plain HTTP/1.1)"
            ))
        })?;
    use std::net::ToSocketAddrs as _;
    let addr = hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Failure::Usage(anyhow!("cannot resolve {hostport}")))?;
    let client = tally::client::Client::new(url, Some(admin))?;
    Ok((Target::Remote { client }, addr))
}

/// A workflow token for `workflow` (id `id` in this process).
fn workflow_token(target: &Target, workflow: &str, id: &str) -> Result<String, Failure> {
    use tally::{server, wire};
    match target {
        Target::Local { app, .. } => {
            let token = server::new_secret("tly_wf_");
            let info = wire::TokenInfo {
                id: id.into(),
                workflows: vec![workflow.into()],
                description: "bench".into(),
                created_at: server::unix_now(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            };
            app.meta
                .create_token(&info, &server::token_hash(&token))
                .map_err(|e| Failure::Unavailable(e.into()))?;
            Ok(token)
        }
        Target::Remote { client } => {
            let (_, t): (_, wire::TokenCreated) = client.post_as(
                "/api/v1/tokens",
                &wire::CreateToken {
                    workflows: vec![workflow.into()],
                    expires_in_secs: Some(86_400),
                    description: format!("tally-bench {id}"),
                },
            )?;
            Ok(t.token)
        }
    }
}

/// A keyless work item for run `id` (see [`PushMode::Keyless`]): a fresh
/// P-256 key's certificate request, then the envelope of `payload` it
/// signed with [`CERT_PLACEHOLDER`] as its certificate. An empty payload
/// gives the request alone.
fn keyless_item(id: &str, payload: &[u8]) -> Vec<u8> {
    use tally::attest::signing::{Algorithm, SigningKey};
    let Ok(key) = SigningKey::generate(Algorithm::EcdsaP256) else {
        return Vec::new();
    };
    let proof = key.sign(id.as_bytes()).unwrap_or_default();
    let req = tally::wire::CertificateRequest {
        public_key: key.public_pem().to_owned(),
        proof: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, proof),
    };
    let mut out = serde_json::to_vec(&req).unwrap_or_default();
    out.push(b'\n');
    if !payload.is_empty() {
        if let Ok(mut env) = key.sign_envelope(tally::attest::dsse::IN_TOTO_PAYLOAD_TYPE, payload) {
            if let Some(s) = env.signatures.first_mut() {
                s.certificate = Some(CERT_PLACEHOLDER.into());
            }
            out.extend(serde_json::to_vec(&env).unwrap_or_default());
        }
    }
    out
}

/// The certificate-only work of `--keyless`: one request per run.
fn keyless_certificate_work(ids: &[String]) -> Result<Vec<(String, hyper::body::Bytes)>, Failure> {
    Ok(ids
        .iter()
        .map(|id| (id.clone(), hyper::body::Bytes::from(keyless_item(id, b""))))
        .collect())
}

/// One timed round of pushes: every client takes the next attestation of
/// `work` until none is left.
struct Phase {
    work: Vec<(String, hyper::body::Bytes)>,
    lat: Vec<f64>,
    errors: u64,
    secs: f64,
}

impl Phase {
    fn run(
        crt: &tokio::runtime::Runtime,
        addr: std::net::SocketAddr,
        work: Vec<(String, hyper::body::Bytes)>,
        clients: usize,
        token: &str,
        mode: PushMode,
    ) -> Phase {
        let shared = Arc::new(work);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t0 = Instant::now();
        let results: Vec<(Vec<f64>, u64)> = crt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (work, next, token) = (shared.clone(), next.clone(), token.to_owned());
                tasks.push(tokio::spawn(push_client(addr, work, next, token, mode)));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_default());
            }
            out
        });
        let secs = t0.elapsed().as_secs_f64();
        let errors = results.iter().map(|r| r.1).sum();
        let lat = results.into_iter().flat_map(|r| r.0).collect();
        let work = Arc::try_unwrap(shared).unwrap_or_else(|a| (*a).clone());
        Phase {
            work,
            lat,
            errors,
            secs,
        }
    }

    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.secs
    }
}

/// Runs the control plane benchmark (`tally-bench intake`).
pub(crate) fn intake(args: &crate::args::BenchIntakeArgs) -> Result<Report, Failure> {
    use tally::attest::signing::{Algorithm, SigningKey};
    use tally::attest::state::{ContractRef, MaterialRecord, State, STATE_SCHEMA};
    use tally::server::{self, meta::Run};
    use tally::wire;

    if args.attestations == 0 || args.clients == 0 {
        return Err(Failure::Usage(anyhow!("need ≥ 1 attestation and ≥ 1 client")));
    }
    let (target, addr) = match &args.server {
        Some(url) => remote_target(url, args.admin_token.as_deref().unwrap_or_default())?,
        None => local_target(args)?,
    };
    let url = format!("http://{addr}");

    // Setup (not measured): a workflow key, a token, one run and one signed
    // attestation per push. The workflow's contract asks for one VEX document.
    let workflow = if args.policies {
        GATED_WORKFLOW
    } else {
        BENCH_WORKFLOW
    };
    let algorithm = match args.algorithm {
        tally::cli::SigningAlgorithm::EcdsaP256 => Algorithm::EcdsaP256,
        tally::cli::SigningAlgorithm::Ed25519 => Algorithm::Ed25519,
    };
    let key = SigningKey::generate(algorithm).usage()?;
    let runner = tally::attest::runner::detect(|k| match k {
        "GITHUB_ACTIONS" => Some("true".into()),
        "GITHUB_RUN_ID" => Some("1".into()),
        _ => None,
    });
    let setup = Instant::now();
    let n = args.attestations;
    let extra = if args.abuse {
        args.floods
    } else if args.keyless {
        n
    } else {
        0
    };
    // The runs (ids), the token, the project and the pinned contract.
    let (mut ids, token, project, contract) = match &target {
        Target::Local { app, .. } => {
            if !args.keyless {
                app.meta
                    .add_workflow_key(workflow, key.keyid(), key.public_pem(), server::unix_now())
                    .map_err(|e| Failure::Unavailable(e.into()))?;
            }
            let token = workflow_token(&target, workflow, "tok-bench")?;
            let resolved = app
                .contracts
                .resolve(workflow, None)
                .map_err(|e| Failure::Unavailable(e.into()))?;
            let blob = app
                .contracts
                .blob(&resolved.revision.blob)
                .map_err(|e| Failure::Unavailable(e.into()))?;
            let contract = ContractRef {
                revision: resolved.revision.clone(),
                source: String::new(),
                text: String::from_utf8_lossy(&blob).into_owned(),
                policies_commit: String::new(),
                pinned_at: String::new(),
                policies: Default::default(),
            };
            let ids: Vec<String> = (0..n + extra).map(|i| format!("run-bench-{i:08}")).collect();
            for id in &ids {
                if args.policies {
                    app.meta
                        .set_policies_commit(id, &resolved.at)
                        .map_err(|e| Failure::Unavailable(e.into()))?;
                }
                app.meta
                    .insert_run(&Run {
                        id: id.clone(),
                        workflow: workflow.into(),
                        project: resolved.workflow.project.clone(),
                        version: "1.0.0".into(),
                        status: "INITIALIZED".into(),
                        contract: resolved.revision.clone(),
                        runner_type: runner.kind.clone(),
                        runner_url: String::new(),
                        created_at: server::unix_now(),
                        finished_at: None,
                        reason: None,
                        log_index: None,
                        envelope_digest: None,
                    })
                    .map_err(|e| Failure::Unavailable(e.into()))?;
            }
            (ids, token, resolved.workflow.project.clone(), contract)
        }
        Target::Remote { client } => {
            let _: (_, wire::KeyAdded) = client.post_as(
                &format!("/api/v1/workflows/{workflow}/keys"),
                &wire::AddKey {
                    public_key: key.public_pem().to_owned(),
                },
            )?;
            let token = workflow_token(&target, workflow, "intake")?;
            let runs = tally::client::Client::new(&url, Some(&token))?;
            let mut ids = Vec::with_capacity(n + extra);
            let mut pinned = None;
            for _ in 0..n + extra {
                let (_, started): (_, wire::RunStarted) = runs.post_as(
                    "/api/v1/runs",
                    &wire::StartRun {
                        workflow: workflow.into(),
                        project: None,
                        version: "1.0.0".into(),
                        contract_revision: None,
                        runner: runner.clone(),
                    },
                )?;
                ids.push(started.run.id.clone());
                pinned.get_or_insert((started.run.project.clone(), started.contract));
            }
            let (project, c) = pinned.ok_or_else(|| Failure::Unavailable(anyhow!("no run was started")))?;
            let contract = ContractRef {
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
            };
            (ids, token, project, contract)
        }
    };
    // Beyond the first n: the flooders' runs (--abuse) or the runs whose
    // certificates alone are timed (--keyless).
    let extra_ids = ids.split_off(n);
    let cert_work = if args.keyless {
        keyless_certificate_work(&extra_ids)?
    } else {
        Vec::new()
    };
    let flood_ids = if args.abuse { extra_ids } else { Vec::new() };
    // With --policies: the SBOMs the runs name, uploaded (setup, not timed).
    let sboms = match (&target, args.policies) {
        (Target::Local { app, rt, .. }, true) => {
            Arc::new(store_sboms(app, rt, args.sbom_kib, args.distinct_sboms)?)
        }
        _ => Arc::new(Vec::new()),
    };
    let template = State {
        schema: STATE_SCHEMA.into(),
        run_id: String::new(),
        dry_run: false,
        server: url.clone(),
        workflow: workflow.into(),
        project,
        version: "1.0.0".into(),
        contract,
        runner: runner.clone(),
        env: Default::default(),
        git: None,
        started_at: "2026-11-25T00:00:00Z".into(),
        materials: Vec::new(),
    };
    let key = Arc::new(key);
    let ids = Arc::new(ids);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keyless = args.keyless;
    let chunks: Vec<Vec<(String, Vec<u8>)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (key, ids, sboms) = (key.clone(), ids.clone(), sboms.clone());
                let template = template.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (t..n).step_by(threads) {
                        let mut st = template.clone();
                        st.run_id = ids[i].clone();
                        let sbom = (!sboms.is_empty()).then(|| &sboms[i % sboms.len()]);
                        st.materials = vec![MaterialRecord {
                            name: if sbom.is_some() { "sbom" } else { "vex-disclosure" }.into(),
                            kind: if sbom.is_some() {
                                "SBOM_CYCLONEDX_JSON"
                            } else {
                                "CSAF_VEX"
                            }
                            .into(),
                            value: "vex.json".into(),
                            digest: sbom.map_or_else(|| format!("sha256:{:064x}", i), |s| s.0.clone()),
                            size: sbom.map_or(2873, |s| s.1),
                            output: false,
                            in_contract: true,
                            summary: String::new(),
                            annotations: Default::default(),
                            lenient: false,
                            stored: String::new(),
                            added_at: String::new(),
                            policy_evaluations: Vec::new(),
                        }];
                        let payload = serde_json::to_vec(&tally::attest::statement::build(
                            &st,
                            &Default::default(),
                            "2026-11-25T00:01:00Z",
                        ))
                        .unwrap_or_default();
                        let env = if keyless {
                            keyless_item(&st.run_id, &payload)
                        } else {
                            key.sign_envelope(tally::attest::dsse::IN_TOTO_PAYLOAD_TYPE, &payload)
                                .map(|e| serde_json::to_vec(&e).unwrap_or_default())
                                .unwrap_or_default()
                        };
                        out.push((st.run_id, env));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let work: Vec<(String, hyper::body::Bytes)> = chunks
        .into_iter()
        .flatten()
        .map(|(id, env)| (id, hyper::body::Bytes::from(env)))
        .collect();
    let envelope_bytes = work.first().map_or(0, |w| w.1.len());
    // With --abuse: the flooders' tokens, each with a run of its own.
    let floods = flood_ids
        .into_iter()
        .enumerate()
        .map(|(i, run)| {
            Ok(crate::abuse::Flood {
                token: workflow_token(&target, workflow, &format!("tok-flood-{i}"))?,
                run,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let setup_s = setup.elapsed().as_secs_f64();

    // Pushes: every client takes the next attestation until none is left.
    // With --abuse: the first half alone, the second under attack.
    let crt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let sampler = PublishSampler::start(&target);
    let cpu0 = cpu_seconds();
    let (calm, abused) = if args.abuse {
        let half = work.len() / 2;
        let mut rest = work;
        let second = rest.split_off(half);
        (rest, second)
    } else {
        (work, Vec::new())
    };
    let probe = args.abuse.then(|| crate::abuse::Probe::start(addr));
    let certificates = (!cert_work.is_empty()).then(|| {
        Phase::run(
            &crt,
            addr,
            cert_work,
            args.clients,
            &token,
            PushMode::CertificatesOnly,
        )
    });
    let mode = if args.keyless {
        PushMode::Keyless
    } else {
        PushMode::Signed
    };
    let calm = Phase::run(&crt, addr, calm, args.clients, &token, mode);
    let calm_probe = probe.map(crate::abuse::Probe::finish);
    let mut abuse_report = serde_json::Value::Null;
    let abused = if args.abuse {
        let honest = calm.work.first().map(|w| w.1.clone()).unwrap_or_default();
        let bodies = vec![
            // The costliest envelope that is verified at all: the most
            // signatures a push may carry, none genuine.
            hyper::body::Bytes::from(crate::abuse::forged(&honest, tally::attest::dsse::MAX_SIGNATURES)),
            // The widest the body limit lets through: refused before any
            // verification, after the body is read and parsed.
            hyper::body::Bytes::from(crate::abuse::forged(&honest, 900 * 1024 / 130)),
        ];
        let budget = crate::abuse::Budget {
            idle: args.idle_connections,
            floods: floods.len(),
            stalled: args.stalled_uploads,
        };
        let attack = crate::abuse::Abuse::start(&crt, addr, budget, floods, bodies, workflow);
        let probe = crate::abuse::Probe::start(addr);
        let phase = Phase::run(&crt, addr, abused, args.clients, &token, PushMode::Signed);
        let probed = probe.finish();
        abuse_report = attack.stop(&crt);
        Some((phase, probed))
    } else {
        None
    };
    let push_cpu_s = cpu_seconds() - cpu0;
    let keyless_report = certificates.map(|c| {
        let mut l = c.lat.clone();
        l.sort_by(f64::total_cmp);
        json!({
            "certificates": l.len(),
            "errors": c.errors,
            "certificates_per_s": c.rate(),
            "certificate_ms": {"p50": percentile(&l, 0.5) * 1e3, "p99": percentile(&l, 0.99) * 1e3, "max": l.last().copied().unwrap_or(f64::NAN) * 1e3},
            "attestations_timed_as": "certificate request + push, one ephemeral P-256 key per run",
        })
    });
    let push_s = calm.secs + abused.as_ref().map_or(0.0, |a| a.0.secs);
    let errors = calm.errors + abused.as_ref().map_or(0, |a| a.0.errors);
    let mut lat: Vec<f64> = calm
        .lat
        .iter()
        .chain(abused.iter().flat_map(|a| a.0.lat.iter()))
        .copied()
        .collect();
    lat.sort_by(f64::total_cmp);
    let accepted = lat.len();
    let limits = match &target {
        Target::Local { app, .. } => json!({
            "refusals_per_minute": app.cfg.refusals_per_minute,
            "cpu_queue": app.cfg.cpu_queue,
            "idle_timeout_secs": app.cfg.idle_timeout_secs,
            "max_connections": app.cfg.max_connections,
            "max_body_bytes": app.cfg.max_body_bytes,
        }),
        Target::Remote { .. } => json!("the remote server's"),
    };
    let abuse = match (&abused, &calm_probe) {
        (Some((phase, (hz, hz_failed))), Some((calm_hz, calm_hz_failed))) => {
            let ms = |v: &[f64], p: f64| percentile(v, p) * 1e3;
            json!({
                "limits": limits,
                "calm": {"attestations_per_s": calm.rate(), "healthz_ms": {"p50": ms(calm_hz, 0.5), "p99": ms(calm_hz, 0.99), "max": ms(calm_hz, 1.0)}, "healthz_failed": calm_hz_failed, "errors": calm.errors},
                "under_attack": {"attestations_per_s": phase.rate(), "healthz_ms": {"p50": ms(hz, 0.5), "p99": ms(hz, 0.99), "max": ms(hz, 1.0)}, "healthz_probes": hz.len(), "healthz_failed": hz_failed, "errors": phase.errors},
                "honest_rate_ratio": phase.rate() / calm.rate(),
                "attackers": abuse_report,
            })
        }
        _ => serde_json::Value::Null,
    };

    // Wait for everything to be published, then read proofs.
    let t_pub = Instant::now();
    target.wait_published()?;
    let publish_tail_s = t_pub.elapsed().as_secs_f64();
    let mut publish = sampler.map(PublishSampler::finish).unwrap_or_default();
    publish.sort_by(f64::total_cmp);
    let publish_ms = if publish.is_empty() {
        serde_json::Value::Null
    } else {
        json!({"entries": publish.len(), "p50": percentile(&publish, 0.5) * 1e3, "p99": percentile(&publish, 0.99) * 1e3, "max": publish.last().copied().unwrap_or(f64::NAN) * 1e3})
    };
    let size = target.sizes()?.1.max(1);
    // With an OCI store: how long until every attestation is copied into it.
    let mirror = match (&target, &args.registry) {
        (Target::Local { app, .. }, Some(_)) => {
            let t = Instant::now();
            let mut copied = 0;
            while t.elapsed() < Duration::from_secs(3600) {
                copied = tally::server::mirror::next(app).map_err(|e| Failure::Unavailable(anyhow!(e)))?;
                if copied >= size {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let s = push_s + t.elapsed().as_secs_f64();
            json!({"copied": copied, "seconds_from_first_push": s, "per_s": copied as f64 / s})
        }
        _ => serde_json::Value::Null,
    };
    // With webhooks: how long until every event reached the receiver.
    let webhooks = match &target {
        Target::Local { hooked, .. } if args.webhooks > 0 => {
            let want = (accepted * args.webhooks) as u64;
            let t = Instant::now();
            while hooked.load(Ordering::Relaxed) < want && t.elapsed() < Duration::from_secs(3600) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let s = push_s + t.elapsed().as_secs_f64();
            let got = hooked.load(Ordering::Relaxed);
            json!({"integrations": args.webhooks, "delivered": got, "seconds_from_first_push": s, "per_s": got as f64 / s})
        }
        _ => serde_json::Value::Null,
    };
    // With witnesses: did every publication meet the quorum?
    let witnessing = match &target {
        Target::Local { app, .. } => app.ledger.witnessing().map_or(serde_json::Value::Null, |w| {
            json!({"cosignatures": w.cosignatures, "quorum": w.quorum, "published_short": w.published_short})
        }),
        Target::Remote { .. } => serde_json::Value::Null,
    };
    let reads = args.proof_reads;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t1 = Instant::now();
    let read_errors: u64 = crt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..args.clients {
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = LoadConn::new(addr);
                let mut errors = 0u64;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ c as u64;
                while next.fetch_add(1, Ordering::Relaxed) < reads {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = x % size;
                    let req = hyper::Request::get(format!("/api/v1/proof/inclusion?index={i}"));
                    if !conn.send(req, hyper::body::Bytes::new()).await {
                        errors += 1;
                    }
                }
                errors
            }));
        }
        let mut e = 0;
        for t in tasks {
            e += t.await.unwrap_or(1);
        }
        e
    });
    let read_s = t1.elapsed().as_secs_f64();
    let remote = matches!(target, Target::Remote { .. });
    if let Target::Local {
        rt, serving, stop, ..
    } = target
    {
        let _ = stop.send(());
        rt.block_on(serving)
            .map_err(|e| Failure::Unavailable(anyhow!(e)))?
            .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    }
    let j = json!({
        "benchmark": "intake",
        "server": if remote { url.as_str() } else { "in this process" },
        "attestations": n,
        "clients": args.clients,
        "algorithm": format!("{:?}", args.algorithm),
        "policies": if args.policies {
            json!({"blocking": 3, "sbom_kib": args.sbom_kib, "distinct_sboms": args.distinct_sboms})
        } else {
            serde_json::Value::Null
        },
        "envelope_bytes": envelope_bytes,
        "setup_s": setup_s,
        "accepted": accepted,
        "errors": errors,
        "push_s": push_s,
        "attestations_per_s": accepted as f64 / push_s,
        // In this process: the server's and the load generator's CPU; for a
        // remote server, the load generator's only.
        "cpu_s": push_cpu_s,
        "cpu_us_per_attestation": push_cpu_s * 1e6 / accepted.max(1) as f64,
        "ack_ms": {"p50": percentile(&lat, 0.5) * 1e3, "p90": percentile(&lat, 0.9) * 1e3, "p99": percentile(&lat, 0.99) * 1e3, "max": lat.last().copied().unwrap_or(f64::NAN) * 1e3},
        "publish_tail_s": publish_tail_s,
        // From sequenced (acknowledged) to published, per entry.
        "publish_ms": publish_ms,
        "witnesses": args.witnesses,
        "witnessing": witnessing,
        "published": size,
        "proof_reads": reads,
        "proof_read_errors": read_errors,
        "proof_reads_per_s": reads as f64 / read_s,
        "oci_mirror": mirror,
        "webhooks": webhooks,
        "abuse": abuse,
        "keyless": keyless_report,
    });
    Ok(Report {
        text: format!("{j}\n"),
        json: j,
    })
}

/// The peak resident memory (VmHWM) of process `pid`, bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `cmd` to its end, sampling its peak memory; returns (seconds, peak bytes, output).
fn run_measured(cmd: &mut std::process::Command) -> Result<(f64, u64, std::process::Output), Failure> {
    use std::io::Read as _;
    let t = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(p) = peak_rss(pid) {
            peak = peak.max(p);
        }
        match child.try_wait().map_err(|e| Failure::Unavailable(e.into()))? {
            Some(s) => break s,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    Ok((
        secs,
        peak,
        std::process::Output {
            status,
            stdout,
            stderr,
        },
    ))
}

/// `tally bench artifacts`: the real server (a child process, OCI backend)
/// and the real CLI (child processes), so each one's memory is its own.
pub(crate) fn artifacts(args: &crate::args::BenchArtifactsArgs) -> Result<Report, Failure> {
    use std::io::{BufRead as _, Write as _};
    if args.size_mib == 0 || args.clients == 0 {
        return Err(Failure::Usage(anyhow!("need --size-mib ≥ 1 and --clients ≥ 1")));
    }
    let tmp = tempfile::tempdir()
        .context("creating a temporary directory")
        .unavailable()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)
        .context("creating the bench directory")
        .unavailable()?;
    // The `tally` binary built beside this one (the real server and CLI).
    let exe = std::env::current_exe()
        .context("finding the tally binary")
        .unavailable()?
        .with_file_name(format!("tally{}", std::env::consts::EXE_SUFFIX));
    let repo = match &args.registry {
        Some(r) => format!("{r}/tally/bench-{}", tally::server::unix_now()),
        None => "the data directory (filesystem backend)".to_owned(),
    };
    let log = std::fs::File::create(dir.join("server.log"))
        .context("creating server.log")
        .unavailable()?;
    // A fresh data directory each time: the admin token is shown only at first start.
    let data = dir.join(format!("data-{}", tally::server::unix_now()));
    let mut server = std::process::Command::new(&exe);
    server
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    if args.registry.is_some() {
        server.args(["--oci-repository", &repo]);
    }
    let mut server = server
        .env_remove("TALLY_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting tally serve")
        .unavailable()?;
    let mut first = String::new();
    if let Some(out) = server.stdout.as_mut() {
        let _ = std::io::BufReader::new(out).read_line(&mut first);
    }
    let started: serde_json::Value = match serde_json::from_str(&first) {
        Ok(v) => v,
        Err(_) => {
            let _ = server.kill();
            let _ = server.wait();
            return Err(Failure::Unavailable(anyhow!(
                "tally serve did not start storing artifacts in {repo} (is the registry running?)"
            )));
        }
    };
    let url = started["url"].as_str().unwrap_or_default().to_owned();
    let admin = started["admin_token"].as_str().unwrap_or_default().to_owned();
    let result = artifacts_measure(args, &exe, &dir, &url, &admin, server.id());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data);
    let mut v = result?;
    v["registry"] = json!(args.registry);
    v["repository"] = json!(repo);
    let text = format!(
        "{} MiB through the control plane to {repo} and back:\n  upload   {:.2} s  {:.0} MB/s (of which hashing {:.2} s; the transfer alone {:.0} MB/s) (CLI peak RSS {:.1} MB)\n  download {:.2} s  {:.0} MB/s (CLI peak RSS {:.1} MB)\n  server peak RSS {:.1} MB\n{} small (4 KiB) uploads from {} clients: {:.0}/s, p99 {:.1} ms\n",
        args.size_mib,
        v["large"]["upload_s"].as_f64().unwrap_or(0.0),
        v["large"]["upload_mb_s"].as_f64().unwrap_or(0.0),
        v["large"]["upload_hash_s"].as_f64().unwrap_or(0.0),
        v["large"]["upload_transfer_mb_s"].as_f64().unwrap_or(0.0),
        v["large"]["upload_cli_rss_mb"].as_f64().unwrap_or(0.0),
        v["large"]["download_s"].as_f64().unwrap_or(0.0),
        v["large"]["download_mb_s"].as_f64().unwrap_or(0.0),
        v["large"]["download_cli_rss_mb"].as_f64().unwrap_or(0.0),
        v["server_rss_mb"].as_f64().unwrap_or(0.0),
        args.small,
        args.clients,
        v["small"]["per_s"].as_f64().unwrap_or(0.0),
        v["small"]["p99_ms"].as_f64().unwrap_or(0.0),
    ) + &match v["small_direct"]["per_s"].as_f64() {
        Some(per_s) => format!(
            "  the registry's own ceiling (tally's OCI store straight to it, same clients, no server): {per_s:.0}/s, p99 {:.1} ms\n",
            v["small_direct"]["p99_ms"].as_f64().unwrap_or(0.0)
        ),
        None => String::new(),
    };
    let _ = std::io::stderr().write_all(text.as_bytes());
    Ok(Report { text, json: v })
}

/// 4 KiB of bytes distinct for each `(seed, i)`.
fn small_body(seed: u64, i: usize) -> Vec<u8> {
    let mut body = vec![0u8; 4096];
    for (j, c) in body.chunks_exact_mut(16).enumerate() {
        c[..8].copy_from_slice(&(i as u64).to_le_bytes());
        c[8..].copy_from_slice(&(seed ^ j as u64).to_le_bytes());
    }
    body
}

/// The registry's own ceiling for small artifacts: the same OCI store the
/// server uses (blob upload and manifest per artifact), driven in this
/// process by `clients` concurrent tasks, with no server or CLI in the path.
fn registry_ceiling(
    registry: &str,
    n: usize,
    clients: usize,
    seed: u64,
) -> Result<serde_json::Value, Failure> {
    use sha2::{Digest as _, Sha256};
    use tally::server::artifact_store::{oci::OciStore, ArtifactStore as _, PlainHttp, Upload};
    let repo = format!("{registry}/tally/bench-direct-{}", tally::server::unix_now());
    let store =
        Arc::new(OciStore::new(&repo, PlainHttp::Loopback, None).map_err(|e| Failure::Usage(anyhow!(e)))?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting a runtime")
        .unavailable()?;
    rt.block_on(async move {
        store
            .check()
            .await
            .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (store, next) = (store.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, tally::server::artifact_store::ArtifactError>(lat);
                    }
                    let body = small_body(seed, i);
                    let up = Upload {
                        hex: hex::encode(Sha256::digest(&body)),
                        len: body.len() as u64,
                        workflow: "bench".into(),
                        kind: "EVIDENCE".into(),
                        ..Upload::default()
                    };
                    let t0 = Instant::now();
                    let stream: tally::server::artifact_store::ByteStream =
                        Box::pin(futures_util::stream::once(std::future::ready(Ok(
                            tokio_util::bytes::Bytes::from(body),
                        ))));
                    store.put(&up, stream).await?;
                    lat.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }));
        }
        let mut lat = Vec::with_capacity(n);
        for t in tasks {
            let part = t
                .await
                .map_err(|e| Failure::Unavailable(anyhow!(e)))?
                .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
            lat.extend(part);
        }
        let secs = t.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        Ok(json!({
            "count": n,
            "clients": clients,
            "repository": repo,
            "seconds": secs,
            "per_s": n as f64 / secs,
            "p50_ms": percentile(&lat, 0.50),
            "p99_ms": percentile(&lat, 0.99),
        }))
    })
}

fn artifacts_measure(
    args: &crate::args::BenchArtifactsArgs,
    exe: &std::path::Path,
    dir: &std::path::Path,
    url: &str,
    admin: &str,
    server_pid: u32,
) -> Result<serde_json::Value, Failure> {
    use sha2::{Digest as _, Sha256};
    use std::io::Write as _;
    let mb = |b: u64| b as f64 / 1e6;
    // The large file: pseudo-random bytes (xorshift), written once.
    let big = dir.join("large.bin");
    let size = args.size_mib << 20;
    {
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&big)
                .context("writing the large file")
                .unavailable()?,
        );
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ tally::server::unix_now() as u64;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..args.size_mib {
            for c in buf.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&buf)
                .context("writing the large file")
                .unavailable()?;
        }
        f.flush().context("writing the large file").unavailable()?;
    }
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(exe);
        c.args(args).env("TALLY_SERVER", url).env("TALLY_TOKEN", admin);
        c
    };
    let big_s = big.to_string_lossy().into_owned();
    let (up_s, up_rss, out) = run_measured(&mut cli(&[
        "artifact",
        "upload",
        &big_s,
        "--workflow",
        "bench",
        "--output",
        "json",
    ]))?;
    if !out.status.success() {
        return Err(Failure::Unavailable(anyhow!(
            "the upload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let up: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let digest = up["digest"].as_str().unwrap_or_default().to_owned();
    let transfer_s = up["seconds"]["upload"].as_f64().unwrap_or(up_s);
    let hash_s = up["seconds"]["hash"].as_f64().unwrap_or(0.0);
    let back = dir.join("large.back");
    let back_s = back.to_string_lossy().into_owned();
    let (down_s, down_rss, out) = run_measured(&mut cli(&["artifact", "download", &digest, "-o", &back_s]))?;
    if !out.status.success() {
        return Err(Failure::Unavailable(anyhow!(
            "the download failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let back_len = std::fs::metadata(&back).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&back);
    let _ = std::fs::remove_file(&big);
    if back_len != size {
        return Err(Failure::Unavailable(anyhow!(
            "downloaded {back_len} bytes, not {size}"
        )));
    }

    // Small artifacts: distinct 4 KiB blobs PUT by concurrent clients.
    let n = args.small;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let lat = std::sync::Mutex::new(Vec::with_capacity(n));
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let seed = tally::server::unix_now() as u64;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..args.clients {
            s.spawn(|| {
                let http = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let body = small_body(seed, i);
                    let d = hex::encode(Sha256::digest(&body));
                    let t0 = Instant::now();
                    let ok = http
                        .put(format!(
                            "{url}/api/v1/artifacts/sha256:{d}?workflow=bench&kind=EVIDENCE"
                        ))
                        .bearer_auth(admin)
                        .body(body)
                        .send()
                        .is_ok_and(|r| r.status().as_u16() == 201);
                    if !ok {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    lat.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(t0.elapsed().as_secs_f64() * 1e3);
                }
            });
        }
    });
    let small_s = t.elapsed().as_secs_f64();
    let mut lat = lat.into_inner().unwrap_or_else(|p| p.into_inner());
    lat.sort_by(f64::total_cmp);
    let failed = failed.into_inner();
    if failed > 0 {
        return Err(Failure::Unavailable(anyhow!("{failed} small uploads failed")));
    }
    let server_rss = peak_rss(server_pid).unwrap_or(0);
    let direct = match &args.registry {
        Some(r) => Some(registry_ceiling(r, n, args.clients, seed ^ 0x5eed)?),
        None => None,
    };
    Ok(json!({
        "small_direct": direct,
        "large": {
            "bytes": size,
            "upload_s": up_s,
            "upload_mb_s": mb(size) / up_s,
            "upload_hash_s": hash_s,
            "upload_transfer_s": transfer_s,
            "upload_transfer_mb_s": mb(size) / transfer_s,
            "upload_cli_rss_mb": mb(up_rss),
            "download_s": down_s,
            "download_mb_s": mb(size) / down_s,
            "download_cli_rss_mb": mb(down_rss),
        },
        "server_rss_mb": mb(server_rss),
        "small": {
            "count": n,
            "clients": args.clients,
            "seconds": small_s,
            "per_s": n as f64 / small_s,
            "p50_ms": percentile(&lat, 0.50),
            "p99_ms": percentile(&lat, 0.99),
        },
    }))
}
