//! `tally demo`, the README's first command: the whole loop on a fresh
//! control plane, every step doing what it should.

use serde_json::Value;

use crate::common::*;

#[test]
fn the_demo_runs_the_whole_loop() {
    let d = tmp();
    let o = tally(&["demo", "--dir", d.path().to_str().unwrap(), "--output", "json"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let last = out.lines().last().unwrap();
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let steps = v["steps"].as_array().unwrap();
    let codes: Vec<i64> = steps.iter().map(|s| s["exit_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0], "{v}");
    // Printed as typed, with what each step answered.
    for shown in [
        "$ tally attestation push --key cosign.key",
        "one material of group `vex`",
        "now signs workflow psirt-advisories (log entry 0)",
        "appended to the log at index 1",
        "$ git clone",
        "is a consistent log of 2 entries",
        "registered through the admin API by log entry 0",
    ] {
        assert!(out.contains(shown), "{shown} missing from:\n{out}");
    }
    // The clone is a real git repository of the ledger.
    assert!(d.path().join("ws/ledger/checkpoint").is_file());
}
