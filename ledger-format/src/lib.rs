//! `ledger-format`: the formats of tally's transparency log, pure.
//!
//! RFC 9162 Merkle hashing and proofs ([`merkle`]), C2SP signed notes
//! ([`note`]), checkpoints and cosignatures ([`checkpoint`]), tlog-tiles paths
//! and encodings ([`tile`]), tlog-proof files ([`tlog_proof`]), tally's entry
//! formats ([`entry`], [`certificate`], [`key`]) and whole-log auditing over any tile source ([`audit`]).
//!
//! What it is not: it does no I/O, no async, no HTTP, git or OCI. It is what
//! an auditor compiles to verify a log offline. Verification returns witness
//! types ([`checkpoint::VerifiedCheckpoint`], [`merkle::VerifiedInclusion`],
//! [`merkle::VerifiedConsistency`], [`tlog_proof::VerifiedProof`]) that only
//! the verifying functions can construct.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod certificate;
pub mod checkpoint;
pub mod entry;
pub mod hash;
pub mod key;
pub mod merkle;
pub mod note;
pub mod rsmerkle;
pub mod tile;
pub mod tlog_proof;

pub use hash::{empty_root, leaf_hash, node_hash, Hash};
