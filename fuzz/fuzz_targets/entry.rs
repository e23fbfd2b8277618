//! Entry parsing (attestation, certificate and key entries) never panics and
//! accepts only canonical bytes.
#![no_main]
use ledger_format::certificate::CertificateEntry;
use ledger_format::entry::Entry;
use ledger_format::key::KeyEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::parse(data) {
        assert_eq!(e.to_bytes(), data);
    }
    if let Ok(e) = CertificateEntry::parse(data) {
        assert_eq!(e.to_bytes(), data);
    }
    if let Ok(e) = KeyEntry::parse(data) {
        assert_eq!(e.to_bytes(), data);
    }
});
