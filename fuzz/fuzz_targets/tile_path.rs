//! Tile-path parsing never panics and round-trips what it accepts.
#![no_main]
use ledger_format::tile::{parse_path, TilePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        match parse_path(s) {
            Ok(TilePath::Tile(t)) => assert_eq!(t.path(), s),
            Ok(TilePath::Entries(b)) => assert_eq!(b.path(), s),
            Err(_) => {}
        }
    }
});
