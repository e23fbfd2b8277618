//! `tally key generate`.

use ledger_format::note::{SignerKey, VerifierKey};

use crate::common::*;

#[test]
fn generates_a_key_pair_with_safe_permissions() {
    let d = tmp();
    let key = d.path().join("log.key");
    let pubf = d.path().join("log.pub");
    let o = tally(&[
        "key",
        "generate",
        "--origin",
        "tally.example.com/log",
        "--key-out",
        key.to_str().unwrap(),
        "--pub-out",
        pubf.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let signer = SignerKey::parse(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let verifier = VerifierKey::parse(&std::fs::read_to_string(&pubf).unwrap()).unwrap();
    assert_eq!(signer.verifier(), verifier);
    assert_eq!(verifier.name(), "tally.example.com/log");
    assert!(stdout(&o).contains(&verifier.to_string()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // No clobbering without --force; nothing changes.
    let before = std::fs::read(&key).unwrap();
    let again = tally(&[
        "key",
        "generate",
        "--origin",
        "x",
        "--key-out",
        key.to_str().unwrap(),
        "--pub-out",
        pubf.to_str().unwrap(),
    ]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn rejects_origins_that_cannot_be_key_names() {
    let d = tmp();
    for bad in ["", "has space", "a+b"] {
        let o = tally(&[
            "key",
            "generate",
            "--origin",
            bad,
            "--key-out",
            d.path().join("k").to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 2, "{bad:?}");
        assert!(!d.path().join("k").exists());
    }
}

#[test]
fn json_output_names_the_key() {
    let d = tmp();
    let o = tally(&[
        "key",
        "generate",
        "--origin",
        "a.example/log",
        "--key-out",
        d.path().join("k").to_str().unwrap(),
        "--pub-out",
        d.path().join("k.pub").to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["origin"], "a.example/log");
    VerifierKey::parse(v["verifier_key"].as_str().unwrap()).unwrap();
}
