//! Certificate chains a keyless envelope carries (SPEC.md §15.3): PEM text
//! as sent, and arbitrary DER wrapped as a certificate, never panic the
//! reader or the chain check against the control plane's CA — and no
//! chain verifies that the CA did not issue.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tally::identity::ca::{pem_blocks, Ca};
use tally::identity::cert::verify_chain;

const NOW: i64 = 1_796_000_000;

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = Ca::open_or_create(dir.path(), "fuzz.example/log", NOW - 60).expect("a CA");
        std::mem::forget(dir);
        ca
    })
}

fuzz_target!(|data: &[u8]| {
    let ca = ca();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pem_blocks(text);
        assert!(verify_chain(text, ca.chain_pem(), NOW).is_err(), "a chain the CA never issued verified");
    }
    let wrapped = pem::encode(&pem::Pem::new("CERTIFICATE", data.to_vec()));
    let chain = format!("{wrapped}{}", ca.chain_pem());
    assert!(verify_chain(&chain, ca.chain_pem(), NOW).is_err(), "arbitrary DER verified as a leaf");
});
