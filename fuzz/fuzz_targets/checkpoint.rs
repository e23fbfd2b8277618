//! Checkpoint body parsing never panics and round-trips what it accepts.
#![no_main]
use ledger_format::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cp) = Checkpoint::parse(s) {
            assert_eq!(cp.to_body(), s);
        }
    }
});
