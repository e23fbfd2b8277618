//! The ledger in-process: appends, dedup, reads, restart, fsck, git.

use std::path::Path;
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
            ledger
                .body(a.index, &sha256(envelope(i).as_bytes()))
                .unwrap()
                .unwrap(),
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
    assert!(!stdout(&o).contains("WARNING"), "{}", stdout(&o));

    // A working tree changed after the clone: the git audit still checks
    // main's commit, and says so and which files it did not check; the
    // static audit of the files fails.
    let tile = clone.join("tile/0/000");
    let mut b = std::fs::read(&tile).unwrap();
    b[0] ^= 1;
    std::fs::write(&tile, b).unwrap();
    std::fs::write(clone.join("notes.txt"), "not part of the log\n").unwrap();
    let git_audit = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            clone.to_str().unwrap(),
            "--log-key",
            pubkey.to_str().unwrap(),
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        tally(&args)
    };
    let o = git_audit(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["worktree_differs"],
        serde_json::json!(["notes.txt", "tile/0/000"]),
        "{v}"
    );
    assert_eq!(v["commit"].as_str().map(str::len), Some(40), "{v}");
    let o = tally(&[
        "audit",
        clone.to_str().unwrap(),
        "--log-key",
        pubkey.to_str().unwrap(),
    ]);
    let said = stdout(&o);
    assert!(said.contains("not the working tree's files"), "{said}");
    assert!(
        said.contains("WARNING: 2 file(s) of the working tree differ"),
        "{said}"
    );
    assert!(said.contains("    tile/0/000\n"), "{said}");
    let o = git_audit(&["--static"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));

    // Packed, and served read-only over the dumb HTTP protocol by a plain
    // static file server, it still clones with stock git.
    let o = tally(&["ledger", "pack", "--dir", d.path().to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(git_dir.join("objects/info/packs").is_file());
    let (server, url) = serve(&git_dir);
    let http_clone = d.path().join("http-clone");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", &format!("{url}/"), http_clone.to_str().unwrap()])
        .output()
        .unwrap();
    drop(server);
    assert!(
        out.status.success(),
        "dumb HTTP clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o = tally(&[
        "audit",
        http_clone.to_str().unwrap(),
        "--log-key",
        pubkey.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("300 entries"), "{}", stdout(&o));
}

mod props {
    use std::time::Duration;

    use ledger_format::hash::leaf_hash;
    use ledger_format::note::SignerKey;
    use proptest::prelude::*;
    use tally::ledger::{fsck, Ledger, LedgerConfig};

    use crate::common::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// Random batch sizes, sequencing batch limits, backlog limits and
        /// restarts between batches publish exactly the tree (and the tiles)
        /// of appending the same entries one by one in index order.
        #[test]
        fn batches_and_restarts_give_the_one_by_one_tree(
            batches in proptest::collection::vec(1usize..300, 1..6),
            max_batch in 1usize..64,
            max_backlog in 1u64..512,
            restart_mask in any::<u8>(),
        ) {
            let d = tmp();
            let signer = SignerKey::from_seed("prop.tally.test/log", &[4; 32]).unwrap();
            let open = || {
                let mut cfg = LedgerConfig::new(d.path(), signer.clone());
                cfg.max_batch = max_batch;
                cfg.max_backlog = max_backlog;
                Ledger::open(cfg).unwrap()
            };
            let mut ledger = open();
            let mut by_index: Vec<Option<Vec<u8>>> = Vec::new();
            let mut n = 0u64;
            for (b, &count) in batches.iter().enumerate() {
                // Submit the whole batch concurrently, then collect the indices.
                let entries: Vec<Vec<u8>> = (0..count as u64).map(|k| entry(n + k).to_bytes()).collect();
                let rxs: Vec<_> = entries
                    .iter()
                    .enumerate()
                    .map(|(k, e)| ledger.submit(e.clone(), vec![envelope(n + k as u64).into_bytes()]).unwrap())
                    .collect();
                n += count as u64;
                for (e, rx) in entries.into_iter().zip(rxs) {
                    let a = rx.blocking_recv().unwrap().unwrap();
                    prop_assert!(!a.duplicate);
                    let i = a.index as usize;
                    if by_index.len() <= i {
                        by_index.resize(i + 1, None);
                    }
                    prop_assert!(by_index[i].is_none(), "index {} given twice", i);
                    by_index[i] = Some(e);
                }
                if restart_mask & (1 << (b % 8)) != 0 {
                    ledger.close().unwrap();
                    drop(ledger);
                    ledger = open();
                }
            }
            let entries: Vec<Vec<u8>> = by_index.into_iter().map(|e| e.expect("dense indices")).collect();
            ledger.wait_published(n - 1, Duration::from_secs(60)).unwrap();
            let expected = TestLog::build(entries.clone(), &signer);
            let cp = ledger_format::checkpoint::verify_checkpoint(ledger.checkpoint().as_bytes(), &signer.verifier(), &[], None).unwrap();
            prop_assert_eq!(cp.root(), expected.tree.root());
            for (i, e) in entries.iter().enumerate().step_by(17) {
                prop_assert_eq!(ledger.index_of(&leaf_hash(e)), Some(i as u64));
            }
            let git_dir = ledger.git_dir();
            ledger.close().unwrap();
            drop(ledger);
            // Every tile and bundle in the published tree equals the one-by-one log's.
            let git = tally::ledger::git::LedgerRepo::open_existing(&git_dir).unwrap();
            let head = git.head().unwrap().unwrap();
            for (path, bytes) in &expected.files {
                if path == "checkpoint" {
                    continue;
                }
                let stored = git.read(head.tree, path).unwrap();
                prop_assert_eq!(stored.as_ref(), Some(bytes), "{}", path);
            }
            fsck::check_repository(&git_dir, &signer.verifier()).unwrap();
        }
    }
}

/// The CLI end to end: init, append with the envelope, prove, verify offline, fsck.
#[test]
fn cli_init_append_proof_verify_fsck() {
    let d = tmp();
    let dir = d.path().join("ledger");
    let dirs = dir.to_str().unwrap();
    let o = tally(&["ledger", "init", "--dir", dirs, "--origin", "cli.tally.test/log"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        code(&tally(&["ledger", "init", "--dir", dirs, "--origin", "x"])),
        2
    );
    let mut files = Vec::new();
    for i in 0..3 {
        files.push(write(d.path(), &format!("entry{i}"), entry(i).to_bytes()));
    }
    let env0 = write(d.path(), "env0", envelope(0));
    let o = tally(&[
        "ledger",
        "append",
        "--dir",
        dirs,
        files[0].to_str().unwrap(),
        "--body",
        env0.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["appended"][0]["index"], 0);
    // Appending the same entry again is a duplicate, not a new leaf.
    let o = tally(&["ledger", "append", "--dir", dirs, files[0].to_str().unwrap()]);
    assert!(stdout(&o).contains("already in the log"), "{}", stdout(&o));
    let proof = d.path().join("e0.tlog-proof");
    let e0 = d.path().join("e0.entry");
    let o = tally(&[
        "ledger",
        "proof",
        "--dir",
        dirs,
        "--index",
        "0",
        "--out",
        proof.to_str().unwrap(),
        "--entry-out",
        e0.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let pubkey = dir.join("log.pub");
    let o = tally(&[
        "verify",
        proof.to_str().unwrap(),
        "--entry",
        e0.to_str().unwrap(),
        "--log-key",
        pubkey.to_str().unwrap(),
        "--envelope",
        env0.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = tally(&["ledger", "fsck", dirs]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // An entry whose envelope was never stored: fsck names it.
    let o = tally(&["ledger", "append", "--dir", dirs, files[1].to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    let o = tally(&["ledger", "fsck", dirs]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("entry 1 names envelope"), "{}", stderr(&o));
    // Too large an entry: a clear error, nothing appended.
    let big = write(d.path(), "big", vec![b'x'; 70_000]);
    let o = tally(&["ledger", "append", "--dir", dirs, big.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("70000 bytes"), "{}", stderr(&o));
}

/// Garbage where a stored tile should be: opening refuses with a typed
/// error, fsck reports the tile, and nothing new is published.
#[test]
fn garbage_tile_is_refused() {
    let d = tmp();
    let dir = d.path().join("ledger");
    let ledger = open_dir(&dir, Some("garbage.tally.test/log")).unwrap();
    for i in 0..20 {
        let (e, b) = tally_entry_with_body(i);
        ledger.append(e, vec![b]).unwrap();
    }
    ledger.wait_published(19, Duration::from_secs(30)).unwrap();
    ledger.close().unwrap();
    drop(ledger);
    let git_dir = dir.join("ledger.git");
    let g = git_at(&git_dir, &d.path().join("index"));
    let blob = g(
        &["hash-object", "-w", "--stdin"],
        Some(b"garbage bytes, not 20 hashes"),
    );
    g(&["read-tree", "main"], None);
    g(
        &[
            "update-index",
            "--cacheinfo",
            &format!("100644,{blob},tile/0/000.p/20"),
        ],
        None,
    );
    let tree = g(&["write-tree"], None);
    let msg = g(&["log", "-1", "--format=%B", "main"], None);
    let commit = g(&["commit-tree", &tree, "-p", "main", "-m", &msg], None);
    g(&["update-ref", "refs/heads/main", &commit], None);

    let err = open_dir(&dir, None).unwrap_err();
    assert!(matches!(err, tally::ledger::LedgerError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("tile/0/000.p/20"), "{err}");
    let o = tally(&["ledger", "fsck", dir.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("tile/0/000.p/20"), "{}", stderr(&o));
}

/// Runs git on a bare ledger repository (with its own index file, to build
/// tampered trees), returning trimmed stdout; panics when git fails.
fn git_at(git_dir: &Path, index: &Path) -> impl Fn(&[&str], Option<&[u8]>) -> String {
    let (git_dir, index) = (git_dir.to_owned(), index.to_owned());
    move |args: &[&str], input: Option<&[u8]>| -> String {
        use std::io::Write as _;
        let mut c = std::process::Command::new("git");
        c.arg("-C").arg(&git_dir).args(args).env("GIT_INDEX_FILE", &index);
        c.env("GIT_AUTHOR_NAME", "x")
            .env("GIT_AUTHOR_EMAIL", "x@x")
            .env("GIT_COMMITTER_NAME", "x")
            .env("GIT_COMMITTER_EMAIL", "x@x");
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(i) = input {
            child.stdin.take().unwrap().write_all(i).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

/// Bodies live beside their entry's bundle (`bodies/<N>/<sha256>`); fsck
/// refuses one under a wrong name, one in a bundle the log does not have,
/// and an entry whose envelope is not beside it.
#[test]
fn bodies_are_stored_beside_their_bundle() {
    let d = tmp();
    let dir = d.path().join("ledger");
    let ledger = open_dir(&dir, Some("bodies.tally.test/log")).unwrap();
    let mut digests = Vec::new();
    for i in 0..20 {
        let (e, b) = tally_entry_with_body(i);
        digests.push(sha256(&b).to_hex());
        let a = ledger.append(e, vec![b.clone()]).unwrap();
        assert_eq!(a.index, i);
    }
    ledger.wait_published(19, Duration::from_secs(30)).unwrap();
    ledger.close().unwrap();
    drop(ledger);
    let git_dir = dir.join("ledger.git");
    let g = git_at(&git_dir, &d.path().join("index"));
    let listed = g(&["ls-tree", "-r", "--name-only", "main", "bodies/"], None);
    let mut want: Vec<String> = digests.iter().map(|h| format!("bodies/000/{h}")).collect();
    want.sort();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);
    let fsck = || tally(&["ledger", "fsck", dir.to_str().unwrap()]);
    assert_eq!(code(&fsck()), 0, "{}", stderr(&fsck()));
    let tip = g(&["rev-parse", "main"], None);
    let msg = g(&["log", "-1", "--format=%B", "main"], None);
    let body0 = g(&["rev-parse", &format!("main:bodies/000/{}", digests[0])], None);
    // Each edit is an `update-index --index-info` line: `<mode> <blob>\t<path>`
    // (mode 0 removes the path).
    let tamper = |edits: &[String], expect: &str| {
        g(&["read-tree", &tip], None);
        g(
            &["update-index", "--index-info"],
            Some(edits.join("\n").as_bytes()),
        );
        let tree = g(&["write-tree"], None);
        let commit = g(&["commit-tree", &tree, "-p", &tip, "-m", &msg], None);
        g(&["update-ref", "refs/heads/main", &commit], None);
        let o = fsck();
        assert_eq!(code(&o), 1, "{expect}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "want {expect:?}: {}", stderr(&o));
        g(&["update-ref", "refs/heads/main", &tip], None);
    };
    let removed = |i: usize| format!("0 {}\tbodies/000/{}", "0".repeat(40), digests[i]);
    let moved = |to: &str| vec![removed(0), format!("100644 {body0}\t{to}")];
    tamper(
        &moved(&format!("bodies/000/{}", "ab".repeat(32))),
        "holds bytes whose SHA-256 is",
    );
    tamper(
        &moved(&format!("bodies/x001/000/{}", digests[0])),
        "stored with entry bundle 1000, but the log has 1 bundle(s)",
    );
    tamper(&moved(&format!("bodies/00/{}", digests[0])), "bodies/00/");
    tamper(
        &[removed(3)],
        &format!("entry 3 names envelope sha256:{}", digests[3]),
    );
    assert_eq!(code(&fsck()), 0);
}

/// Packing is automatic: at a steady append rate loose objects do not pile up.
#[test]
fn packing_keeps_loose_objects_bounded() {
    let d = tmp();
    let signer = ledger_format::note::SignerKey::from_seed("pack.tally.test/log", &[6; 32]).unwrap();
    let mut cfg = tally::ledger::LedgerConfig::new(d.path(), signer);
    cfg.repack_every = 4;
    let ledger = Ledger::open(cfg).unwrap();
    let loose = |git_dir: &std::path::Path| -> u64 {
        let out = std::process::Command::new("git")
            .args(["-C", git_dir.to_str().unwrap(), "count-objects", "-v"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("count: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut max_loose = 0;
    for i in 0..120u64 {
        let (e, b) = tally_entry_with_body(i);
        ledger.append(e, vec![b]).unwrap();
        ledger.wait_published(i, Duration::from_secs(30)).unwrap();
        if i % 8 == 7 {
            ledger.wait_for_maintenance();
            max_loose = max_loose.max(loose(&ledger.git_dir()));
        }
    }
    // Each publication writes ~10 objects: without packing, loose objects
    // would reach ~1,200; packing every 4 publications keeps them to the few
    // written since the last pack (more while a slow pack runs beside them).
    assert!(max_loose < 400, "loose objects grew to {max_loose}");
    let git_dir = ledger.git_dir();
    ledger.close().unwrap();
    drop(ledger);
    let packs = std::fs::read_dir(git_dir.join("objects/pack")).unwrap().count();
    assert!(packs > 0);
    fsck::check_repository(
        &git_dir,
        &ledger_format::note::SignerKey::from_seed("pack.tally.test/log", &[6; 32])
            .unwrap()
            .verifier(),
    )
    .unwrap();
}
