//! What a shell and `man` get: completion scripts real bash loads and
//! completes with, manual pages man renders, and output that survives a
//! reader that stops early.

use std::io::Read as _;
use std::process::{Command, Stdio};

use crate::common::*;

/// `tally completion bash`, loaded by bash, completes subcommands and
/// flags; zsh and fish scripts are their formats (neither shell is
/// installed here).
#[test]
fn completion_scripts_complete_in_a_real_bash() {
    let o = tally(&["completion", "bash"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d = tmp();
    let script = write(d.path(), "tally.bash", stdout(&o));
    let complete = |words: &str| {
        let n = words.split(' ').count() - 1;
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={n}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
                 _tally tally \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$((COMP_CWORD-1))]}}\"; echo \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        complete("tally attes").contains("attestation"),
        "{}",
        complete("tally attes")
    );
    let flags = complete("tally attestation push --remote");
    assert!(flags.contains("--remote-state"), "{flags}");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p tally", script.display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("_tally"), "{o:?}");

    assert!(stdout(&tally(&["completion", "zsh"])).starts_with("#compdef tally"));
    assert!(stdout(&tally(&["completion", "fish"])).contains("complete -c tally"));
    assert_eq!(code(&tally(&["completion", "tcsh"])), 2);
}

/// `tally man --dir` writes a page per command that man renders, with
/// the flags of today's binary.
#[test]
fn manual_pages_render_with_man() {
    let d = tmp();
    let dir = d.path().join("man");
    let o = tally(&["man", "--dir", dir.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_default();
    let pages = v["pages"].as_array().map(Vec::len).unwrap_or(0);
    assert!(pages > 40, "{v}");
    let page = dir.join("tally-attestation-push.1");
    let o = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("tally-attestation-push") && text.contains("--remote-state"),
        "{text}"
    );
    assert!(stdout(&tally(&["man"])).contains(".TH tally 1"));
}

/// A reader that stops early (`tally man | head -1`) is not a crash.
#[test]
fn a_reader_that_stops_early_is_not_a_crash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["man"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(status.success(), "{status:?}: {err}");
}

/// Progress is drawn on a terminal (a pty from `script`) and never in a CI
/// log (stderr a pipe), nor with `TALLY_PROGRESS=0`.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/log");
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/log.pub");
    let audit = format!("{} audit {golden} --log-key {key}", env!("CARGO_BIN_EXE_tally"));
    let on_pty = |env: &[(&str, &str)]| {
        let mut c = Command::new("script");
        c.args(["-qec", &audit, "/dev/null"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let shown = on_pty(&[]);
    assert!(
        shown.contains("auditing: tiles and bundles read")
            && shown.contains("is a consistent log of 1000 entries"),
        "{shown}"
    );
    assert!(!on_pty(&[("TALLY_PROGRESS", "0")]).contains("auditing:"));
    let o = tally(&["audit", golden, "--log-key", key]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("auditing:") && !stdout(&o).contains("auditing:"));
}
