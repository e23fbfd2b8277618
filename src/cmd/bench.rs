//! `tally bench ledger`: durable appends from concurrent writers, proof
//! generation from storage, and storage per entry after packing. Prints JSON.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use ledger_format::hash::leaf_hash;
use serde_json::json;

use crate::cli::BenchLedgerArgs;
use crate::cmd::Report;
use crate::exit::{Classify, Failure};
use crate::ledger::open_dir;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
pub fn ledger(args: &BenchLedgerArgs) -> Result<Report, Failure> {
    if args.writers == 0 || args.entry_size < 32 || args.entry_size > crate::ledger::MAX_ENTRY_BYTES {
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
    crate::ledger::git::repack(&git_dir, true)
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
