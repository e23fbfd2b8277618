//! ledger-format's integration tests: conformance against outside vectors
//! (read from `../shared/vectors/` at test time), property tests of the
//! Merkle code, and snapshots of the text formats.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod props;
mod snapshots;
mod vectors;

#[path = "../../../tests/support/vectors.rs"]
mod support_vectors;
pub use support_vectors::{json_files, vectors_dir};
