//! Entry-bundle decoding never panics and round-trips what it accepts: the
//! first byte picks the bundle's width (1..=256), the rest is the bundle.
#![no_main]
use ledger_format::tile::{decode_bundle, encode_bundle, BundleId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&w, bytes)) = data.split_first() else { return };
    let id = BundleId {
        index: 0,
        width: u16::from(w) + 1,
    };
    if let Ok(entries) = decode_bundle(id, bytes) {
        assert_eq!(entries.len(), usize::from(id.width));
        assert_eq!(encode_bundle(&entries).ok().as_deref(), Some(bytes));
    }
});
