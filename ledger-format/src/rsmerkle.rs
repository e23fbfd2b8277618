//! An RFC 6962 hasher for the `rs_merkle` crate.
//!
//! `rs_merkle` has no domain separation of its own. With leaves hashed as
//! `H(0x00 ‖ d)` by the caller and interior nodes as `H(0x01 ‖ l ‖ r)` here
//! (a lone right-edge node passed up unchanged), its trees have RFC 6962's
//! shape, roots and inclusion proofs. tally uses it for in-memory cross-checks
//! and as a benchmark baseline; it has no consistency proofs and keeps every
//! leaf in memory, so the log itself uses [`crate::merkle`].

use crate::hash::{node_hash, Hash, HASH_LEN};

/// The RFC 6962 interior-node hasher for `rs_merkle`. Feed it leaf hashes
/// made with [`crate::hash::leaf_hash`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Rfc6962Hasher;

impl rs_merkle::Hasher for Rfc6962Hasher {
    type Hash = [u8; HASH_LEN];

    fn hash(data: &[u8]) -> Self::Hash {
        crate::hash::sha256(data).0
    }

    fn concat_and_hash(left: &Self::Hash, right: Option<&Self::Hash>) -> Self::Hash {
        match right {
            Some(r) => node_hash(&Hash(*left), &Hash(*r)).0,
            None => *left,
        }
    }

    fn hash_size() -> usize {
        HASH_LEN
    }
}
