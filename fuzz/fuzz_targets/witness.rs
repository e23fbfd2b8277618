//! The witness's add-checkpoint request body (C2SP tlog-witness: `old N`,
//! proof lines, a blank line, the signed checkpoint) and the witness
//! trust-policy text never panic when parsed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tally::witness::parse_request(data) {
        assert!(r.proof.len() <= 63, "a proof longer than any tree's");
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tally::witness::policy::TrustPolicy::parse(s);
    }
});
