//! The statement view (what intake, reindex and `tally verify` read from a
//! signed statement) never panics, and the contract check over what it read
//! never panics either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tally::attest::statement::View;
use tally::contract::check::{check, claimed_revision, Evidence};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = View::parse(data) {
        let _ = v.problems();
        let claimed = claimed_revision(&v);
        let ev = Evidence::from_statement(&v, &claimed);
        let text = "schema = \"tally.dev/contract/v1\"\nname = \"c\"\n\n[[materials]]\nname = \"m\"\ntype = \"STRING\"\n";
        if let Ok(c) = tally::contract::parse_contract("c.toml", text, None) {
            let _ = check(&c, &ev, None);
        }
    }
});
