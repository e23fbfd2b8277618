//! Signed-note key parsing (verifier keys, signer keys) never panics, and a
//! verifier key it accepts prints back as the text it was given.
#![no_main]
use ledger_format::note::{SignerKey, VerifierKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(k) = VerifierKey::parse(s) {
        assert_eq!(k.to_string(), s.trim());
    }
    let _ = SignerKey::parse(s);
});
