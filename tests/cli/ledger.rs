//! The ledger in-process: appends, dedup, reads, restart, fsck, git.

use std::sync::Arc;
use std::time::Duration;

use ledger_format::hash::{leaf_hash, sha256};
use ledger_format::merkle::{verify_consistency, verify_inclusion};
use tally::ledger::{fsck, open_dir, Ledger};

use crate::common::*;

fn tally_entry_with_body(i: u64) -> (Vec<u8>, Vec<u8>) {
    (entry(i).to_bytes(), envelope(i).into_bytes())
}

#[test]
fn appends_concurrently_publishes_and_survives_restart() {
    let d = tmp();
    let ledger = Arc::new(open_dir(d.path(), Some("ledger.test/log")).unwrap());
    let mut handles = Vec::new();
    for w in 0..8u64 {
        let l = ledger.clone();
        handles.push(std::thread::spawn(move || {
            (0..75u64)
                .map(|k| {
                    let i = w * 1000 + k;
                    let (e, b) = tally_entry_with_body(i);
                    (i, l.append(e, vec![b]).unwrap())
                })
                .collect::<Vec<_>>()
        }));
    }
    let acks: Vec<(u64, tally::ledger::Appended)> =
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let mut indices: Vec<u64> = acks.iter().map(|(_, a)| a.index).collect();
    indices.sort();
    assert_eq!(
        indices,
        (0..600).collect::<Vec<_>>(),
        "indices are dense and unique"
    );
    assert_eq!(ledger.wait_published(599, Duration::from_secs(30)).unwrap(), 600);

    // Duplicates return the existing index and add no leaf.
    let (i, a) = acks[17];
    let again = ledger.append(entry(i).to_bytes(), vec![]).unwrap();
    assert_eq!((again.index, again.duplicate), (a.index, true));
    assert_eq!(ledger.sizes().sequenced, 600);

    // Reads from tiles.
    let cp = ledger.checkpoint();
    let vk =
        ledger_format::note::VerifierKey::parse(&std::fs::read_to_string(d.path().join("log.pub")).unwrap())
            .unwrap();
    let v = ledger_format::checkpoint::verify_checkpoint(cp.as_bytes(), &vk, &[], Some("ledger.test/log"))
        .unwrap();
    assert_eq!(v.size(), 600);
    for &(i, a) in acks.iter().step_by(37) {
        let e = ledger.entry(a.index).unwrap();
        assert_eq!(e, entry(i).to_bytes());
        assert_eq!(ledger.index_of(&leaf_hash(&e)), Some(a.index));
        let p = ledger.inclusion_proof(a.index, 600).unwrap();
        verify_inclusion(&leaf_hash(&e), a.index, 600, &p, &v.root()).unwrap();
        assert_eq!(
            ledger.body(&sha256(envelope(i).as_bytes())).unwrap().unwrap(),
            envelope(i).into_bytes()
        );
    }
    assert!(ledger.inclusion_proof(0, 601).is_err());
    ledger.close().unwrap();
    drop(ledger);

    // Restart: same log, appends continue at 600, checkpoints stay consistent.
    let ledger = open_dir(d.path(), None).unwrap();
    assert_eq!(ledger.sizes().published, 600);
    let a = ledger
        .append(entry(9000).to_bytes(), vec![envelope(9000).into_bytes()])
        .unwrap();
    assert_eq!((a.index, a.duplicate), (600, false));
    ledger.wait_published(600, Duration::from_secs(30)).unwrap();
    let new_cp =
        ledger_format::checkpoint::verify_checkpoint(ledger.checkpoint().as_bytes(), &vk, &[], None).unwrap();
    let proof = ledger.consistency_proof(600, 601).unwrap();
    verify_consistency(600, 601, &v.root(), &new_cp.root(), &proof).unwrap();
    ledger.close().unwrap();
    drop(ledger);

    let report = fsck::check_ledger_dir(d.path(), &vk).unwrap();
    assert_eq!(report.size, 601);
    assert_eq!(report.entries_with_bodies, 601);
    assert!(report.commits >= 2);
}

#[test]
fn rejects_bad_input_and_a_second_opener() {
    let d = tmp();
    let ledger = open_dir(d.path(), Some("ledger.test/log")).unwrap();
    assert!(ledger.append(vec![], vec![]).is_err());
    assert!(ledger.append(vec![0; 65_536], vec![]).is_err());
    assert!(matches!(
        open_dir(d.path(), None),
        Err(tally::ledger::LedgerError::Locked(_))
    ));
    assert_eq!(ledger.sizes().sequenced, 0);
    let _: &Ledger = &ledger;
}

#[test]
fn git_repository_passes_git_fsck_and_clones_with_stock_git() {
    let d = tmp();
    let ledger = open_dir(d.path(), Some("ledger.test/log")).unwrap();
    for i in 0..300 {
        let (e, b) = tally_entry_with_body(i);
        ledger.append(e, vec![b]).unwrap();
        if i % 100 == 0 {
            ledger.wait_published(i, Duration::from_secs(30)).unwrap();
        }
    }
    ledger.wait_published(299, Duration::from_secs(30)).unwrap();
    ledger.close().unwrap();
    let git_dir = ledger.git_dir();
    drop(ledger);
    let fsck = std::process::Command::new("git")
        .args([
            "-C",
            git_dir.to_str().unwrap(),
            "fsck",
            "--strict",
            "--no-dangling",
        ])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "git fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let clone = d.path().join("clone");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", git_dir.to_str().unwrap(), clone.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pubkey = d.path().join("log.pub");
    // The clone (its git history) and its working tree (static tiles) both audit clean.
    let o = tally(&[
        "audit",
        clone.to_str().unwrap(),
        "--log-key",
        pubkey.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("300 entries"), "{}", stdout(&o));
    assert!(stdout(&o).contains("publications"), "{}", stdout(&o));
    let o = tally(&[
        "audit",
        clone.to_str().unwrap(),
        "--log-key",
        pubkey.to_str().unwrap(),
        "--static",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
