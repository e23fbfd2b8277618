//! Property tests: for random trees up to 2^16 leaves every generated proof
//! verifies, single-bit changes are rejected, and roots equal `rs_merkle`'s.

use std::sync::OnceLock;

use ledger_format::hash::{leaf_hash, Hash};
use ledger_format::merkle::{
    consistency_proof, inclusion_proof, tree_root, verify_consistency, verify_inclusion, CompactRange,
    MemoryTree,
};
use ledger_format::rsmerkle::Rfc6962Hasher;
use proptest::prelude::*;

const MAX: u64 = 1 << 16;

/// One tree of 2^16 leaves; every smaller tree is a prefix of it, and a
/// prefix's complete subtrees are the big tree's, so proofs for any size come
/// from the same store.
fn big_tree() -> &'static (MemoryTree, Vec<Hash>) {
    static TREE: OnceLock<(MemoryTree, Vec<Hash>)> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut t = MemoryTree::new();
        let mut leaves = Vec::with_capacity(MAX as usize);
        for i in 0..MAX {
            let h = leaf_hash(&i.to_le_bytes());
            leaves.push(h);
            t.push(h);
        }
        (t, leaves)
    })
}

/// The control flow of RFC 9162 inclusion verification, without hashing:
/// which side each proof hash is hashed on. `None` if it fails structurally.
fn inclusion_trace(index: u64, size: u64, len: usize) -> Option<Vec<bool>> {
    if index >= size {
        return None;
    }
    trace_walk(index, size - 1, len)
}

/// The walk both verifications share: for each of `len` proof hashes,
/// whether it is hashed on the left; `None` when the length does not fit.
fn trace_walk(mut f: u64, mut s: u64, len: usize) -> Option<Vec<bool>> {
    let mut ops = Vec::new();
    for _ in 0..len {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            ops.push(true);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            ops.push(false);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(ops)
}

/// The control flow of RFC 9162 consistency verification.
fn consistency_trace(m: u64, n: u64, len: usize) -> Option<(bool, Vec<bool>)> {
    if m == 0 || m > n {
        return None;
    }
    if m == n {
        return (len == 0).then(|| (true, Vec::new()));
    }
    if len == 0 {
        return None;
    }
    let pow2 = m.is_power_of_two();
    let steps = if pow2 { len } else { len - 1 };
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    trace_walk(f, s, steps).map(|ops| (pow2, ops))
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[bit / 8 % 32] ^= 1 << (bit % 8);
    Hash(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify_and_bit_flips_fail(size in 1..=MAX, index_seed in any::<u64>(), bit in 0usize..256, ibit in 0u32..64) {
        let (tree, leaves) = big_tree();
        let index = index_seed % size;
        let root = tree_root(size, tree).unwrap();
        let proof = inclusion_proof(index, size, tree).unwrap();
        let leaf = leaves[index as usize];
        verify_inclusion(&leaf, index, size, &proof, &root).unwrap();

        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = bit % bad.len();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size, &proof[..proof.len() - 1], &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());

        // A flipped index or size must be rejected unless the verifier's
        // computation is literally the same (RFC 9162 proofs bind the size
        // only through the signed checkpoint; see SPEC.md §2.3).
        let orig = inclusion_trace(index, size, proof.len());
        let bad_index = index ^ (1 << ibit);
        let same = inclusion_trace(bad_index, size, proof.len()) == orig;
        prop_assert_eq!(verify_inclusion(&leaf, bad_index, size, &proof, &root).is_ok(), same);
        let bad_size = size ^ (1 << ibit);
        let same = inclusion_trace(index, bad_size, proof.len()) == orig;
        prop_assert_eq!(verify_inclusion(&leaf, index, bad_size, &proof, &root).is_ok(), same);
    }

    #[test]
    fn consistency_proofs_verify_and_bit_flips_fail(new in 1..=MAX, old_seed in any::<u64>(), bit in 0usize..256, ibit in 0u32..64) {
        let (tree, _) = big_tree();
        let old = 1 + old_seed % new;
        let r1 = tree_root(old, tree).unwrap();
        let r2 = tree_root(new, tree).unwrap();
        let proof = consistency_proof(old, new, tree).unwrap();
        verify_consistency(old, new, &r1, &r2, &proof).unwrap();

        prop_assert!(verify_consistency(old, new, &flip(&r1, bit), &r2, &proof).is_err());
        prop_assert!(verify_consistency(old, new, &r1, &flip(&r2, bit), &proof).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = bit % bad.len();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(verify_consistency(old, new, &r1, &r2, &bad).is_err());
        }
        let orig = consistency_trace(old, new, proof.len());
        let bad_old = old ^ (1 << ibit);
        let same = consistency_trace(bad_old, new, proof.len()) == orig;
        prop_assert_eq!(verify_consistency(bad_old, new, &r1, &r2, &proof).is_ok(), same);
        let bad_new = new ^ (1 << ibit);
        let same = consistency_trace(old, bad_new, proof.len()) == orig;
        prop_assert_eq!(verify_consistency(old, bad_new, &r1, &r2, &proof).is_ok(), same);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn roots_and_paths_equal_rs_merkle(size in 1..=MAX, index_seed in any::<u64>()) {
        let (tree, leaves) = big_tree();
        let leaves: Vec<[u8; 32]> = leaves[..size as usize].iter().map(|h| h.0).collect();
        let rs = rs_merkle::MerkleTree::<Rfc6962Hasher>::from_leaves(&leaves);
        prop_assert_eq!(rs.root().unwrap(), tree_root(size, tree).unwrap().0);
        let index = (index_seed % size) as usize;
        let rs_path: Vec<[u8; 32]> = rs.proof(&[index]).proof_hashes().to_vec();
        let ours: Vec<[u8; 32]> = inclusion_proof(index as u64, size, tree).unwrap().iter().map(|h| h.0).collect();
        prop_assert_eq!(rs_path, ours);
    }

    /// Appending in batches of random sizes gives the same tree as one by one.
    #[test]
    fn compact_range_batches_equal_one_by_one(cuts in proptest::collection::vec(1usize..600, 1..20)) {
        let (tree, leaves) = big_tree();
        let mut cr = CompactRange::new();
        let mut at = 0usize;
        for c in cuts {
            let end = (at + c).min(leaves.len());
            for h in &leaves[at..end] {
                cr.append(*h);
            }
            at = end;
            prop_assert_eq!(cr.root(), tree_root(at as u64, tree).unwrap());
            let parts = CompactRange::from_parts(at as u64, cr.nodes().to_vec()).unwrap();
            prop_assert_eq!(parts.root(), cr.root());
        }
    }
}
