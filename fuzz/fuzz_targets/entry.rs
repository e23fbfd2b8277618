//! Entry parsing (attestation and certificate entries) never panics and
//! accepts only canonical bytes.
#![no_main]
use ledger_format::certificate::CertificateEntry;
use ledger_format::entry::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::parse(data) {
        assert_eq!(e.to_bytes(), data);
    }
    if let Ok(e) = CertificateEntry::parse(data) {
        assert_eq!(e.to_bytes(), data);
    }
});
