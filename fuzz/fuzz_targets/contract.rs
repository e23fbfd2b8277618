//! The contract and workflows parsers (TOML SecOps write, read by the linter,
//! the CLI and the control plane) never panic on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = tally::contract::parse_contract("c.toml", s, None);
    let _ = tally::contract::parse_workflows("workflows.toml", s, None);
});
