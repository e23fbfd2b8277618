//! The material validators (what `tally attestation add` reads from a CI
//! job's files: SBOMs, SARIF, JUnit, VEX, provenance, archives…) never
//! panic: the input is written to a file and every kind is tried, as
//! automatic detection does.
#![no_main]
use std::io::Write as _;

use libfuzzer_sys::fuzz_target;
use tally::attest::material::{detect_file, validate_string, Options};

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    let _ = detect_file(f.path(), &Options::default());
    let lenient = Options {
        lenient: true,
        ..Options::default()
    };
    let _ = detect_file(f.path(), &lenient);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = validate_string(s);
    }
});
