//! `tally-bench witness`: how many C2SP `add-checkpoint` requests one
//! witness sustains with its state made durable before each answer
//! (SPEC.md §14.1), over loopback HTTP and called directly. Also the
//! in-process witnesses `tally-bench intake --witnesses n` starts.
//!
//! Each of `--logs` logs grows by 1–`--batch` leaves per checkpoint; every
//! request carries the consistency proof from the previous checkpoint, as a
//! log's publisher sends it. The requests are built and signed before the
//! clock starts; one client per log sends them in order (a witness
//! serialises one log's checkpoints, so concurrency comes from many logs).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use hyper::body::Bytes;
use ledger_format::checkpoint::Checkpoint;
use ledger_format::hash::leaf_hash;
use ledger_format::merkle::{consistency_proof, MemoryTree};
use ledger_format::note::SignerKey;
use serde_json::json;
use tally::cmd::Report;
use tally::exit::Failure;
use tally::witness::{Config, LogConfig, Witness};

use crate::args::BenchWitnessArgs;
use crate::harness::{percentile, LoadConn};

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Unavailable(anyhow!("{e}"))
}

/// One log's requests, in order, and its final size.
struct LogLoad {
    origin: String,
    vkey: String,
    bodies: Vec<Bytes>,
    final_size: u64,
}

/// Builds `steps` signed checkpoints of a log growing by 1–`batch` leaves.
fn log_load(i: usize, steps: usize, batch: u64) -> Result<LogLoad, Failure> {
    let origin = format!("bench.example/log{i}");
    let key = SignerKey::from_seed(&origin, &[i as u8 ^ 0x5a; 32]).map_err(fail)?;
    let mut tree = MemoryTree::new();
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ (i as u64 + 1);
    let (mut prev, mut leaf) = (0u64, 0u64);
    let mut bodies = Vec::with_capacity(steps);
    for _ in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for _ in 0..1 + x % batch.max(1) {
            tree.push(leaf_hash(&leaf.to_be_bytes()));
            leaf += 1;
        }
        let size = tree.size();
        let proof = if prev == 0 {
            Vec::new()
        } else {
            consistency_proof(prev, size, &tree).map_err(fail)?
        };
        let note = Checkpoint::new(&origin, size, tree.root())
            .and_then(|c| c.sign(&key))
            .map_err(fail)?;
        let mut body = format!("old {prev}\n");
        for h in proof {
            body.push_str(&h.to_base64());
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&note.to_text());
        bodies.push(Bytes::from(body));
        prev = size;
    }
    Ok(LogLoad {
        origin,
        vkey: key.verifier().to_string(),
        bodies,
        final_size: prev,
    })
}

/// Opens a witness of `loads` with its key at `dir/witness.key` (created)
/// and its state in `dir/state`.
fn open_witness(dir: &Path, loads: &[LogLoad]) -> Result<Witness, Failure> {
    let key_file = dir.join("witness.key");
    if !key_file.exists() {
        tally::witness::generate_key("bench.example/witness", &key_file).map_err(fail)?;
    }
    Witness::open(&Config {
        key_file,
        state_dir: dir.join("state"),
        logs: loads
            .iter()
            .map(|l| LogConfig {
                origin: l.origin.clone(),
                keys: vec![l.vkey.clone()],
            })
            .collect(),
    })
    .map_err(fail)
}

/// Checks that the witness ends at every log's final size: every request
/// was cosigned in order, none skipped.
fn check_final(w: &Witness, loads: &[LogLoad]) -> Result<(), Failure> {
    for l in loads {
        let got = w.state(&l.origin).map(|s| s.size);
        if got != Some(l.final_size) {
            return Err(fail(format!(
                "{}: the witness ended at {got:?}, not {}",
                l.origin, l.final_size
            )));
        }
    }
    Ok(())
}

fn summary(lat: &mut [f64], seconds: f64, errors: u64) -> serde_json::Value {
    lat.sort_by(f64::total_cmp);
    json!({
        "cosigned": lat.len(),
        "errors": errors,
        "seconds": seconds,
        "per_s": lat.len() as f64 / seconds,
        "latency_ms": {
            "p50": percentile(lat, 0.5) * 1e3,
            "p99": percentile(lat, 0.99) * 1e3,
            "max": lat.last().copied().unwrap_or(f64::NAN) * 1e3,
        },
    })
}

/// `tally-bench witness`
pub(crate) fn witness(args: &BenchWitnessArgs) -> Result<Report, Failure> {
    if args.logs == 0 || args.checkpoints < args.logs {
        return Err(Failure::Usage(anyhow!("need ≥ 1 log and ≥ 1 checkpoint per log")));
    }
    let tmp = tempfile::tempdir().map_err(fail)?;
    let base = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let t_setup = Instant::now();
    let steps = args.checkpoints / args.logs;
    let loads = (0..args.logs)
        .map(|i| log_load(i, steps, args.batch))
        .collect::<Result<Vec<_>, _>>()?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    let proof_lines: usize = loads
        .iter()
        .flat_map(|l| &l.bodies)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count().saturating_sub(7))
        .sum();

    // Over HTTP: the witness's own axum router on loopback.
    let http_dir = base.join("http");
    std::fs::create_dir_all(&http_dir).map_err(fail)?;
    let w = Arc::new(open_witness(&http_dir, &loads)?);
    let srt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("witness")
        .enable_all()
        .build()
        .map_err(fail)?;
    let listener = srt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    let router = tally::witness::http::router(w.clone());
    srt.spawn(async move { axum::serve(listener, router).await });
    let crt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .map_err(fail)?;
    let t0 = Instant::now();
    let results: Vec<(Vec<f64>, u64)> = crt.block_on(async {
        let mut tasks = Vec::new();
        for l in &loads {
            let bodies = l.bodies.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = LoadConn::new(addr);
                let (mut lat, mut errors) = (Vec::with_capacity(bodies.len()), 0u64);
                for b in bodies {
                    let t = Instant::now();
                    if conn.send(hyper::Request::post("/add-checkpoint"), b).await {
                        lat.push(t.elapsed().as_secs_f64());
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });
    let http_s = t0.elapsed().as_secs_f64();
    let errors: u64 = results.iter().map(|r| r.1).sum();
    let mut lat: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    check_final(&w, &loads)?;
    let http = summary(&mut lat, http_s, errors);
    drop(crt);
    drop(srt);

    // Directly: the same requests through `Witness::add_checkpoint`, one
    // thread per log (the ceiling without HTTP).
    let direct_dir = base.join("direct");
    std::fs::create_dir_all(&direct_dir).map_err(fail)?;
    let w = open_witness(&direct_dir, &loads)?;
    let t1 = Instant::now();
    let results: Vec<(Vec<f64>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = loads
            .iter()
            .map(|l| {
                let w = &w;
                s.spawn(move || {
                    let (mut lat, mut errors) = (Vec::with_capacity(l.bodies.len()), 0u64);
                    for b in &l.bodies {
                        let t = Instant::now();
                        match w.add_checkpoint(b, 1) {
                            Ok(_) => lat.push(t.elapsed().as_secs_f64()),
                            Err(_) => errors += 1,
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let direct_s = t1.elapsed().as_secs_f64();
    let errors: u64 = results.iter().map(|r| r.1).sum();
    let mut lat: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    check_final(&w, &loads)?;
    let direct = summary(&mut lat, direct_s, errors);

    let j = json!({
        "benchmark": "witness",
        "logs": args.logs,
        "checkpoints": steps * args.logs,
        "leaves_per_checkpoint": format!("1-{}", args.batch),
        "proof_lines_mean": proof_lines as f64 / (steps * args.logs) as f64,
        "state_dir": base.display().to_string(),
        "setup_s": setup_s,
        "http": http,
        "direct": direct,
    });
    Ok(Report {
        text: format!("{j}\n"),
        json: j,
    })
}

/// For `tally-bench intake --witnesses n`: writes the log's signing key
/// into the fresh data directory (so the witnesses can be configured with
/// its verifier key before the first start), starts `n` witnesses on `rt`
/// and returns the control plane's `[witnesses]` with a majority quorum.
pub(crate) fn start_witnesses(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    data_dir: &Path,
    origin: &str,
    n: usize,
) -> Result<tally::witness::cosigner::WitnessesConfig, Failure> {
    let key_path = data_dir.join("ledger/log.key");
    if key_path.exists() {
        return Err(Failure::Usage(anyhow!(
            "--witnesses needs a fresh data directory ({} exists)",
            key_path.display()
        )));
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let log_key = SignerKey::from_seed(origin, &seed).map_err(fail)?;
    std::fs::create_dir_all(data_dir.join("ledger")).map_err(fail)?;
    std::fs::write(&key_path, format!("{}\n", log_key.to_secret_text())).map_err(fail)?;
    let log = LogLoad {
        origin: origin.to_owned(),
        vkey: log_key.verifier().to_string(),
        bodies: Vec::new(),
        final_size: 0,
    };
    let mut policy = format!("log {}\n", log.vkey);
    let mut members = Vec::new();
    for i in 0..n {
        let wdir = dir.join(format!("witness{i}"));
        std::fs::create_dir_all(&wdir).map_err(fail)?;
        let w = open_witness(&wdir, std::slice::from_ref(&log))?;
        let vkey = w.verifier_key().to_string();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let router = tally::witness::http::router(Arc::new(w));
        rt.spawn(async move { axum::serve(listener, router).await });
        policy.push_str(&format!("witness w{i} {vkey} http://{addr}\n"));
        members.push(format!("w{i}"));
    }
    policy.push_str(&format!(
        "group majority {} {}\nquorum majority\n",
        n / 2 + 1,
        members.join(" ")
    ));
    let policy_path = dir.join("witnesses.policy");
    std::fs::write(&policy_path, policy).map_err(fail)?;
    Ok(tally::witness::cosigner::WitnessesConfig {
        policy: policy_path.to_string_lossy().into_owned(),
        ..Default::default()
    })
}
