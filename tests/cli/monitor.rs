//! `tally monitor` and `tally audit --compare` against a deliberately forked
//! log: two histories of one origin under one key, written by the
//! independent C2SP writer (tests/fixtures/c2sp_log.py), with a witness
//! that cosigned one of them.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{code, python_has, stderr, stdout, tally};
use crate::witness::{add, eventually, serve};

const ORIGIN: &str = "example.org/forked";

/// Writes the log `name` in `dir` (300 entries, also published at 250 and
/// 270), or its fork from entry `fork_at`; returns the log's verifier key.
fn write_log(dir: &Path, name: &str, fork_at: Option<u64>) -> String {
    write_log_with(dir, name, fork_at, &[])
}

fn write_log_with(dir: &Path, name: &str, fork_at: Option<u64>, extra: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/c2sp_log.py");
    let mut c = Command::new("python3");
    c.args([script, dir.join(name).to_str().unwrap(), ORIGIN, "300"])
        .args(["--checkpoint-at", "250", "--checkpoint-at", "270"]);
    if let Some(n) = fork_at {
        c.args(["--fork-at", &n.to_string()]);
    }
    let out = c.args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn monitor(dir: &Path, key: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tally"))
        .current_dir(dir)
        .args(["monitor", "--once", "--log-key", key, "--output", "json"])
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)));
    // A failed round carries its report in `details`.
    let report = if v["details"].is_object() {
        v["details"].clone()
    } else {
        v
    };
    (code(&o), report, stderr(&o))
}

#[test]
fn a_forked_log_is_refused_by_the_witness_and_caught_by_the_monitor() {
    if !python_has("cryptography") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let key = write_log(d.path(), "log", None);
    assert_eq!(write_log(d.path(), "fork", Some(260)), key, "one origin, one key");
    let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap();

    // A witness of the log cosigns its checkpoint of size 300...
    let o = tally(&[
        "witness",
        "keygen",
        "--name",
        "witness.test/m1",
        "--key-file",
        d.path().join("w.key").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let config = d.path().join("w.toml");
    std::fs::write(
        &config,
        format!("key_file = \"w.key\"\nstate_dir = \"wstate\"\n\n[[log]]\norigin = \"{ORIGIN}\"\nkeys = [\"{key}\"]\n"),
    )
    .unwrap();
    let w = serve(&config);
    // (nothing cosigned yet: nothing to compare)
    let (c, r, _) = monitor(d.path(), &key, &["log", &format!("witness+{}", w.url)]);
    assert_eq!(c, 0, "{r}");
    assert_eq!(r["empty"], serde_json::json!([format!("witness+{}", w.url)]));
    let (s, _, body) = add(&w.url, 0, &[], &read("log/checkpoint"));
    assert_eq!(s, 200, "{body}");
    // ... and refuses the fork: another root at size 300, or an older size.
    let (s, _, body) = add(&w.url, 300, &[], &read("fork/checkpoint"));
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("another root at size 300"), "{body}");
    assert_eq!(add(&w.url, 300, &[], &read("fork/checkpoint.270")).0, 400);
    // Its latest cosigned checkpoint is served, with its cosignature.
    let latest = reqwest::blocking::get(format!("{}/checkpoints/{ORIGIN}", w.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(latest.starts_with(&read("log/checkpoint")), "{latest}");
    assert!(latest.contains("— witness.test/m1 "), "{latest}");

    // The log, an older checkpoint of it and the witness agree.
    let witness = format!("witness+{}", w.url);
    let (c, r, _) = monitor(d.path(), &key, &["log", "log/checkpoint.250", &witness]);
    assert_eq!(c, 0, "{r}");
    assert_eq!(r["tree_size"], 300);
    assert!(
        r["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["proven"] == true),
        "{r}"
    );

    // The fork at the same size: caught, both signed notes as evidence.
    let (c, r, _) = monitor(d.path(), &key, &["log", "fork"]);
    assert_eq!(c, 1, "{r}");
    let f = &r["forks"][0];
    assert_eq!(f["a"]["checkpoint"], read("log/checkpoint"));
    assert_eq!(f["b"]["checkpoint"], read("fork/checkpoint"));
    assert!(f["reason"].as_str().unwrap().contains("same size 300"), "{f}");
    // A smaller fork checkpoint someone pasted, against the log's tiles,
    // and against the witness's view.
    let (c, r, _) = monitor(d.path(), &key, &["fork/checkpoint.270", "log", &witness]);
    assert_eq!(c, 1, "{r}");
    let f = &r["forks"][0];
    assert_eq!(f["a"]["checkpoint"], read("fork/checkpoint.270"));
    assert_eq!(f["a"]["source"], "fork/checkpoint.270");
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("no consistency proof can exist"),
        "{f}"
    );
    // A fork checkpoint from before the fork point is consistent (size
    // 250 < 260: both histories share it).
    let (c, r, _) = monitor(d.path(), &key, &["fork/checkpoint.250", "log"]);
    assert_eq!(c, 0, "{r}");

    // A source whose tiles do not hash to its own checkpoint: invalid.
    let bad = d.path().join("bad");
    copy_dir(&d.path().join("log"), &bad);
    // At size 300 the root reads the full tile 0 through its level-1
    // hash, and the last 44 leaves from the partial tile.
    let tile = bad.join("tile/0/001.p/44");
    let mut b = std::fs::read(&tile).unwrap();
    b[5] ^= 1;
    std::fs::write(&tile, b).unwrap();
    let (c, r, _) = monitor(d.path(), &key, &["bad"]);
    assert_eq!(c, 1, "{r}");
    assert!(
        r["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tiles hash to"),
        "{r}"
    );
    // An unreachable source: 3, and the others still compared.
    let gone = format!("http://127.0.0.1:{}", crate::common::free_port());
    let (c, r, _) = monitor(d.path(), &key, &["log", &gone]);
    assert_eq!(c, 3, "{r}");
    assert_eq!(r["problems"][0]["invalid"], false, "{r}");
    assert_eq!(r["tree_size"], 300);
    // Another log's key: every checkpoint is refused, not compared.
    let other = write_log_with(d.path(), "other", None, &["--seed", &"07".repeat(32)]);
    assert_ne!(other, key);
    let (c, r, _) = monitor(d.path(), &other, &["log"]);
    assert_eq!(c, 1, "{r}");
    assert_eq!(r["problems"][0]["invalid"], true, "{r}");

    // State: the monitor remembers what it verified; a fork shown later,
    // alone, is still caught against it, and the evidence is kept.
    let (c, r, _) = monitor(d.path(), &key, &["--state", "st", "log"]);
    assert_eq!(c, 0, "{r}");
    assert_eq!(read("st/checkpoint"), read("log/checkpoint"));
    let (c, r, _) = monitor(d.path(), &key, &["--state", "st", "fork"]);
    assert_eq!(c, 1, "{r}");
    let kept = r["evidence"][0].as_str().unwrap();
    let evidence = read(kept);
    assert!(evidence.contains(&read("log/checkpoint")) && evidence.contains(&read("fork/checkpoint")));
    // The state was not replaced by the fork.
    assert_eq!(read("st/checkpoint"), read("log/checkpoint"));

    // The same comparison, once, in `tally audit --compare`.
    let audit = |extra: &[&str]| {
        let mut args = vec!["audit", "log", "--log-key", &key];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_tally"))
            .current_dir(d.path())
            .args(args)
            .output()
            .unwrap()
    };
    let o = audit(&["--compare", "log/checkpoint.270", "--compare", &witness]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("OK: 3 view(s)"), "{}", stdout(&o));
    let o = audit(&["--compare", "fork/checkpoint.270"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let said = stderr(&o);
    assert!(
        said.contains("SPLIT VIEW") && said.contains(&read("fork/checkpoint.270")),
        "{said}"
    );
}

#[test]
fn a_following_monitor_stops_with_the_evidence_when_the_log_forks() {
    if !python_has("cryptography") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let key = write_log(d.path(), "log", None);
    write_log(d.path(), "fork", Some(100));
    // The log served: its checkpoint of 250 first, then it grows to 300.
    let live = d.path().join("live");
    copy_dir(&d.path().join("log"), &live);
    std::fs::copy(live.join("checkpoint.250"), live.join("checkpoint")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .current_dir(d.path())
        .args([
            "monitor",
            "live",
            "--log-key",
            &key,
            "--state",
            "st",
            "--interval",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("OK: 1 view(s)") && line.contains("size 250"),
        "{line}"
    );
    std::fs::copy(live.join("checkpoint.300"), live.join("checkpoint")).ok();
    std::fs::copy(d.path().join("log/checkpoint"), live.join("checkpoint")).unwrap();
    eventually("the monitor verifies the log's growth", || {
        std::fs::read_to_string(d.path().join("st/checkpoint")).unwrap()
            == std::fs::read_to_string(d.path().join("log/checkpoint")).unwrap()
    });
    // The operator swaps in another history: the monitor stops, exit 1.
    std::fs::remove_dir_all(&live).unwrap();
    copy_dir(&d.path().join("fork"), &live);
    let mut status = None;
    eventually("the monitor stops", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("SPLIT VIEW"), "{err}");
    assert_eq!(
        std::fs::read_dir(d.path().join("st/evidence")).unwrap().count(),
        1
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
