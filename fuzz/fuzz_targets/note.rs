//! Signed-note parsing and verification never panic; what parses re-serializes to the same bytes.
#![no_main]
use ledger_format::note::{Note, SignerKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_text().as_bytes(), data);
        if let Ok(key) = SignerKey::from_seed("fuzz", &[1; 32]) {
            let _ = note.verify(&[key.verifier(), key.cosignature_verifier()]);
        }
    }
});
