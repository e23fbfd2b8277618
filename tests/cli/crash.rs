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
