//! `tally audit`: whole-log verification over a directory and over HTTP, on
//! logs written by tally's formats and by an independent writer, and the
//! rejection of every single flipped byte.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::process::Command;

use ledger_format::audit::{audit_log, AuditOptions, TileSource};
use ledger_format::note::SignerKey;

use crate::common::*;

struct MapSource<'a>(&'a BTreeMap<String, Vec<u8>>);

impl TileSource for MapSource<'_> {
    type Error = Infallible;
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.0.get(path).cloned())
    }
}

/// `tally audit <source> --log-key <key> <rest>`.
fn audit(source: &str, key: &str, rest: &[&str]) -> std::process::Output {
    tally(&[&["audit", source, "--log-key", key][..], rest].concat())
}

#[test]
fn audits_a_directory_and_checks_consistency_with_an_older_checkpoint() {
    let key = log_key();
    let log = TestLog::build(tally_entries(700), &key);
    let d = tmp();
    log.write(d.path());
    let pubkey = key.verifier().to_string();
    let o = audit(d.path().to_str().unwrap(), &pubkey, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("700 entries"), "{}", stdout(&o));

    // An older checkpoint of the same history: consistent.
    let older = TestLog::build(tally_entries(300), &key);
    let old_cp = write(d.path(), "old-checkpoint", &older.files["checkpoint"]);
    let o = audit(
        d.path().to_str().unwrap(),
        &pubkey,
        &["--since", old_cp.to_str().unwrap(), "--output", "json"],
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["consistent_with"], 300);

    // A checkpoint from a forked history of the same size: inconsistent.
    let mut forked = tally_entries(300);
    forked[10] = entry(10_000).to_bytes();
    let fork = TestLog::build(forked, &key);
    let fork_cp = write(d.path(), "fork-checkpoint", &fork.files["checkpoint"]);
    let o = audit(
        d.path().to_str().unwrap(),
        &pubkey,
        &["--since", fork_cp.to_str().unwrap()],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("rewritten"), "{}", stderr(&o));

    // A newer checkpoint than the log: the log shrank.
    let bigger = TestLog::build(tally_entries(701), &key);
    let big_cp = write(d.path(), "big-checkpoint", &bigger.files["checkpoint"]);
    let o = audit(
        d.path().to_str().unwrap(),
        &pubkey,
        &["--since", big_cp.to_str().unwrap()],
    );
    assert_eq!(code(&o), 1);

    // Wrong key: invalid. Missing directory: usage.
    let other = SignerKey::from_seed("tally.test/log", &[3; 32])
        .unwrap()
        .verifier()
        .to_string();
    assert_eq!(code(&audit(d.path().to_str().unwrap(), &other, &[])), 1);
    assert_eq!(code(&audit("/nonexistent/log", &pubkey, &[])), 2);
}

#[test]
fn every_flipped_byte_in_any_tile_bundle_or_checkpoint_is_rejected() {
    let key = log_key();
    // 300 entries: a full and a partial level-0 tile and bundle, and a level-1 tile.
    let log = TestLog::build(tally_entries(300), &key);
    let vkey = key.verifier();
    audit_log(&mut MapSource(&log.files), &vkey, &AuditOptions::default()).unwrap();
    let mut flips = 0;
    for (path, bytes) in &log.files {
        for i in 0..bytes.len() {
            let mut files = log.files.clone();
            files.get_mut(path).unwrap()[i] ^= 0xff;
            let got = audit_log(&mut MapSource(&files), &vkey, &AuditOptions::default());
            assert!(got.is_err(), "flipping byte {i} of {path} was not detected");
            flips += 1;
        }
    }
    assert!(flips > 10_000, "{flips}");

    // And through the binary, one flip per kind of file, with a precise report:
    // a tile or bundle that differs is an invalid log (1); a checkpoint the
    // flip made unparsable (not UTF-8) is malformed input (2, SPEC §7).
    for (path, at, exit) in [
        ("tile/0/000", 100usize, 1),
        ("tile/entries/000", 500, 1),
        ("tile/1/000.p/1", 3, 1),
        ("checkpoint", 20, 2),
    ] {
        let d = tmp();
        log.write(d.path());
        let f = d.path().join(path);
        let mut b = std::fs::read(&f).unwrap();
        b[at] ^= 0xff;
        std::fs::write(&f, b).unwrap();
        let o = audit(d.path().to_str().unwrap(), &vkey.to_string(), &[]);
        assert_eq!(code(&o), exit, "{path}: {}", stderr(&o));
        let err = stderr(&o);
        if path.starts_with("tile/0") || path.starts_with("tile/1") {
            assert!(err.contains(path), "report should name {path}: {err}");
        }
    }
}

#[test]
fn missing_tile_is_reported() {
    let key = log_key();
    let log = TestLog::build(tally_entries(20), &key);
    let d = tmp();
    log.write(d.path());
    std::fs::remove_file(d.path().join("tile/0/000.p/20")).unwrap();
    let o = audit(d.path().to_str().unwrap(), &key.verifier().to_string(), &[]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("tile/0/000.p/20 is missing"),
        "{}",
        stderr(&o)
    );
}

fn python_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with the cryptography package is required under CI=true");
        }
        println!("skipping: python3 with cryptography is not available");
    }
    ok
}

/// A log written by an independent implementation (tests/fixtures/c2sp_log.py,
/// from the specs, not from tally's code) audits clean, partial tiles and all.
#[test]
fn audits_a_log_written_by_an_independent_implementation() {
    if !python_available() {
        return;
    }
    let d = tmp();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/c2sp_log.py");
    let out = Command::new("python3")
        .args([
            script,
            d.path().to_str().unwrap(),
            "example.org/indep",
            "70000",
            "--checkpoint-at",
            "300",
            "--checkpoint-at",
            "65537",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let o = audit(
        d.path().to_str().unwrap(),
        &vkey,
        &["--since", d.path().join("checkpoint.300").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("70000 entries"));
    assert!(stdout(&o).contains("extends the older checkpoint of size 300"));
    let cp = d.path().join("checkpoint.65537");
    let o = audit(
        d.path().to_str().unwrap(),
        &vkey,
        &["--since", cp.to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn audits_over_http_and_reports_unreachable_servers() {
    if !python_available() {
        return;
    }
    let key = log_key();
    let log = TestLog::build(tally_entries(600), &key);
    let d = tmp();
    log.write(d.path());
    let (_server, url) = serve(d.path());
    let vkey = key.verifier().to_string();
    let o = audit(&url, &vkey, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("600 entries"));

    let f = d.path().join("tile/entries/001");
    let mut b = std::fs::read(&f).unwrap();
    b[40] ^= 0x01;
    std::fs::write(&f, b).unwrap();
    let o = audit(&url, &vkey, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("tile/0/001"), "{}", stderr(&o));

    let dead = format!("http://127.0.0.1:{}", free_port());
    let o = audit(&dead, &vkey, &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}

fn golden() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The committed golden log (README's first command) audits clean.
#[test]
fn golden_log_audits() {
    let g = golden();
    let o = audit(
        g.join("log").to_str().unwrap(),
        g.join("log.pub").to_str().unwrap(),
        &["--since", g.join("log/checkpoint.300").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("1000 entries"));
}

/// The golden log is exactly what its committed script produces.
#[test]
fn golden_log_is_reproducible() {
    if !python_available() {
        return;
    }
    let d = tmp();
    let out = Command::new("python3")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/c2sp_log.py"),
            d.path().to_str().unwrap(),
            "golden.tally.dev/log",
            "1000",
            "--seed",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "--checkpoint-at",
            "300",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let want_key = std::fs::read_to_string(golden().join("log.pub")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want_key);
    let mut stack = vec![std::path::PathBuf::new()];
    let mut files = 0;
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(golden().join("log").join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.path().is_dir() {
                stack.push(r);
            } else {
                assert_eq!(
                    std::fs::read(e.path()).unwrap(),
                    std::fs::read(d.path().join(&r)).unwrap(),
                    "{}",
                    r.display()
                );
                files += 1;
            }
        }
    }
    assert!(files >= 10);
}

/// A directory with no checkpoint is nothing to audit (exit 3, said so), and a
/// checkpoint that does not parse is malformed input (exit 2): neither is a
/// log that fails its checks (exit 1).
#[test]
fn no_checkpoint_is_unavailable_and_an_unparsable_one_is_malformed() {
    let key = log_key();
    let log = TestLog::build(tally_entries(20), &key);
    let d = tmp();
    log.write(d.path());
    let pubkey = key.verifier().to_string();
    let dir = d.path().to_str().unwrap();
    std::fs::remove_file(d.path().join("checkpoint")).unwrap();
    let o = audit(dir, &pubkey, &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("no checkpoint"), "{}", stderr(&o));
    std::fs::write(d.path().join("checkpoint"), "not a note\n").unwrap();
    let o = audit(dir, &pubkey, &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // Well-formed but signed by another key: invalid.
    let other = TestLog::build(
        tally_entries(20),
        &ledger_format::note::SignerKey::from_seed("golden.tally.dev/log", &[9; 32]).unwrap(),
    );
    std::fs::write(d.path().join("checkpoint"), &other.files["checkpoint"]).unwrap();
    let o = audit(dir, &pubkey, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}
