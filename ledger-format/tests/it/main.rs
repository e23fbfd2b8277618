//! ledger-format's integration tests: conformance against outside vectors
//! (read from `../shared/vectors/` at test time), property tests of the
//! Merkle code, and snapshots of the text formats.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod props;
mod snapshots;
mod vectors;

use std::path::PathBuf;

/// The outside vectors directory, or `None` (with a printed notice) when it is
/// absent outside CI. Under `CI=true` a missing folder fails the test.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TALLY_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "shared vectors missing at {} (required under CI=true)",
            dir.display()
        );
    }
    println!("skipping: shared vectors not found at {}", dir.display());
    None
}
