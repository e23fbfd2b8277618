//! Policy files (Chainloop `kind: Policy` / `kind: PolicyGroup` YAML, and
//! plain Rego, which the static checks read) never panic the parser, and
//! a JUnit report never panics its projection to a policy's input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tally::policy::spec::parse("p.yaml", data);
    let _ = tally::policy::input::junit(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let limits = tally::policy::Limits {
            time: std::time::Duration::from_millis(50),
            memory: 1 << 30,
        };
        let _ = tally::policy::engine::Script::compile("p.rego", s, &limits);
    }
});
