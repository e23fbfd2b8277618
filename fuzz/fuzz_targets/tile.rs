//! Hash-tile decoding never panics and round-trips what it accepts: the
//! first byte picks the tile's width (1..=256), the rest is the tile.
#![no_main]
use ledger_format::tile::{decode_tile, encode_tile, TileId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&w, bytes)) = data.split_first() else { return };
    let tile = TileId {
        level: 0,
        index: 0,
        width: u16::from(w) + 1,
    };
    if let Ok(hashes) = decode_tile(tile, bytes) {
        assert_eq!(hashes.len(), usize::from(tile.width));
        assert_eq!(encode_tile(&hashes), bytes);
    }
});
