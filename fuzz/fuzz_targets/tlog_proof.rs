//! tlog-proof parsing never panics and round-trips what it accepts.
#![no_main]
use ledger_format::tlog_proof::TlogProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = TlogProof::parse(data) {
        assert_eq!(p.to_text().as_bytes(), data);
    }
});
