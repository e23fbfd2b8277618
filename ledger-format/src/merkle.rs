//! RFC 9162 Merkle trees: proof verification, proof generation from stored
//! hashes, and incremental append through a compact range.
//!
//! Not here: where hashes are stored (tiles, memory, git) — callers provide a
//! [`HashSource`]; nor how trees are signed (see `checkpoint`).
//!
//! Node addressing: [`NodeId`] `{ level, index }` names the complete subtree
//! covering leaves `[index·2^level, (index+1)·2^level)`. A log only ever
//! stores complete subtrees; the hash of any other range is folded from them.

use std::fmt;

use crate::hash::{empty_root, node_hash, Hash};

/// A complete subtree of the log: leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf).
    pub level: u8,
    /// Position among the nodes of that level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node(level {}, index {})", self.level, self.index)
    }
}

/// Why a proof did not verify, or could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not inside a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old size is larger than the new size.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesReversed {
        /// The older (first) size.
        old: u64,
        /// The newer (second) size.
        new: u64,
    },
    /// Consistency from the empty tree proves nothing (RFC 9162 §2.1.4.2).
    #[error("a consistency proof from tree size 0 proves nothing; every tree extends the empty tree")]
    EmptyOldTree,
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has the wrong number of hashes for this index and size (got {got})")]
    WrongLength {
        /// Number of hashes in the proof.
        got: usize,
    },
    /// Equal sizes need equal roots and an empty proof.
    #[error("tree sizes are equal but the roots differ")]
    EqualSizesDifferentRoots,
    /// The recomputed root differs from the expected one.
    #[error("recomputed root {computed} does not match expected root {expected}")]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash,
        /// The root it was meant to lead to.
        expected: Hash,
    },
    /// A hash the generator needed was not in the store.
    #[error("hash source could not provide {0}: {1}")]
    Source(NodeId, String),
}

/// Proof that a leaf hash is at `index` in the tree of `size` with `root`.
///
/// Only [`verify_inclusion`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInclusion {
    leaf_hash: Hash,
    index: u64,
    size: u64,
    root: Hash,
}

impl VerifiedInclusion {
    /// The leaf hash that was proven.
    pub fn leaf_hash(&self) -> Hash {
        self.leaf_hash
    }
    /// Its index.
    pub fn index(&self) -> u64 {
        self.index
    }
    /// The tree size it was proven in.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The tree root it was proven against.
    pub fn root(&self) -> Hash {
        self.root
    }
}

/// Proof that the tree `(old_size, old_root)` is a prefix of `(new_size, new_root)`.
///
/// Only [`verify_consistency`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsistency {
    old_size: u64,
    old_root: Hash,
    new_size: u64,
    new_root: Hash,
}

impl VerifiedConsistency {
    /// The older tree size.
    pub fn old_size(&self) -> u64 {
        self.old_size
    }
    /// The older root.
    pub fn old_root(&self) -> Hash {
        self.old_root
    }
    /// The newer tree size.
    pub fn new_size(&self) -> u64 {
        self.new_size
    }
    /// The newer root.
    pub fn new_root(&self) -> Hash {
        self.new_root
    }
}

/// The walk up the tree that RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
/// (consistency) verification share: `step(hash, true)` for a proof hash that
/// is the left sibling of the running node, `step(hash, false)` for a right
/// one. The proof's length must match the tree (`got`: its length, for the
/// error).
fn walk(
    mut fnode: u64,
    mut snode: u64,
    path: &[Hash],
    got: usize,
    mut step: impl FnMut(&Hash, bool),
) -> Result<(), ProofError> {
    for p in path {
        if snode == 0 {
            return Err(ProofError::WrongLength { got });
        }
        if fnode & 1 == 1 || fnode == snode {
            step(p, true);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            step(p, false);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength { got });
    }
    Ok(())
}

/// The sizes a consistency proof can exist between: a non-empty older tree
/// no larger than the newer one.
fn check_sizes(old_size: u64, new_size: u64) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesReversed {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    Ok(())
}

/// Verifies an RFC 9162 §2.1.3.2 inclusion proof.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<VerifiedInclusion, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut r = *leaf_hash;
    walk(index, size - 1, proof, proof.len(), |p, left| {
        r = if left { node_hash(p, &r) } else { node_hash(&r, p) };
    })?;
    if r != *root {
        return Err(ProofError::RootMismatch {
            computed: r,
            expected: *root,
        });
    }
    Ok(VerifiedInclusion {
        leaf_hash: *leaf_hash,
        index,
        size,
        root: *root,
    })
}

/// Verifies an RFC 9162 §2.1.4.2 consistency proof from `old_size` to `new_size`.
///
/// `old_size == 0` is rejected ([`ProofError::EmptyOldTree`]), as in
/// transparency-dev/merkle: such a proof is meaningless. Callers comparing
/// checkpoints treat an empty old tree as trivially consistent instead.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<VerifiedConsistency, ProofError> {
    check_sizes(old_size, new_size)?;
    let verified = VerifiedConsistency {
        old_size,
        old_root: *old_root,
        new_size,
        new_root: *new_root,
    };
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { got: proof.len() });
        }
        if old_root != new_root {
            return Err(ProofError::EqualSizesDifferentRoots);
        }
        return Ok(verified);
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength { got: 0 });
    }
    // If old_size is a power of two, the old root is the first node of the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    walk(fnode, snode, &path[1..], proof.len(), |c, left| {
        if left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    })?;
    if fr != *old_root {
        return Err(ProofError::RootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(verified)
}

/// Where proof generation reads stored hashes of complete subtrees.
///
/// Implemented by the ledger over tiles on disk, by [`MemoryTree`] in memory,
/// and by the auditor over fetched tiles. Requests are batched so a tile-backed
/// source reads each tile once.
pub trait HashSource {
    /// The source's own error.
    type Error: fmt::Display;
    /// Returns the hashes of `ids`, in the same order.
    fn hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees that make up leaves `[start, end)`, left to right.
///
/// Every range the RFC 6962 recursion asks for starts on a boundary aligned
/// to a power of two at least as large as the range, so the pieces shrink from
/// left to right and the range's hash is their right fold.
pub fn range_nodes(mut start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    while start < end {
        let align = if start == 0 { 63 } else { start.trailing_zeros() };
        let fit = 63 - (end - start).leading_zeros();
        let level = align.min(fit);
        out.push(NodeId::new(level as u8, start >> level));
        start += 1u64 << level;
    }
    out
}

/// Right fold of complete-subtree hashes: `node(h0, node(h1, … hk))`.
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, h| node_hash(h, &acc))
}

/// The leaf ranges, in proof order, whose hashes form the inclusion proof.
fn inclusion_ranges(index: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split_point(hi - lo);
    if index < lo + k {
        inclusion_ranges(index, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(index, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// RFC 6962 §2.1.2 SUBPROOF, as leaf ranges in proof order.
fn consistency_ranges(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        consistency_ranges(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// Reads the nodes of every range in one batch and folds each range.
fn hash_ranges<S: HashSource>(ranges: &[(u64, u64)], source: &S) -> Result<Vec<Hash>, ProofError> {
    let pieces: Vec<Vec<NodeId>> = ranges.iter().map(|&(a, b)| range_nodes(a, b)).collect();
    let ids: Vec<NodeId> = pieces.iter().flatten().copied().collect();
    let hashes = source
        .hashes(&ids)
        .map_err(|e| ProofError::Source(ids.first().copied().unwrap_or(NodeId::new(0, 0)), e.to_string()))?;
    if hashes.len() != ids.len() {
        return Err(ProofError::Source(
            ids.first().copied().unwrap_or(NodeId::new(0, 0)),
            format!("asked for {} hashes, got {}", ids.len(), hashes.len()),
        ));
    }
    let mut out = Vec::with_capacity(ranges.len());
    let mut at = 0;
    for p in &pieces {
        out.push(fold_right(&hashes[at..at + p.len()]));
        at += p.len();
    }
    Ok(out)
}

/// Generates the inclusion proof of leaf `index` in the tree of `size`.
pub fn inclusion_proof<S: HashSource>(index: u64, size: u64, source: &S) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::with_capacity(64);
    inclusion_ranges(index, 0, size, &mut ranges);
    hash_ranges(&ranges, source)
}

/// Generates the consistency proof from `old_size` to `new_size`.
pub fn consistency_proof<S: HashSource>(
    old_size: u64,
    new_size: u64,
    source: &S,
) -> Result<Vec<Hash>, ProofError> {
    check_sizes(old_size, new_size)?;
    let mut ranges = Vec::with_capacity(64);
    if old_size < new_size {
        consistency_ranges(old_size, 0, new_size, true, &mut ranges);
    }
    hash_ranges(&ranges, source)
}

/// The root of the tree of `size`, from stored complete subtrees.
pub fn tree_root<S: HashSource>(size: u64, source: &S) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    Ok(hash_ranges(&[(0, size)], source)?[0])
}

/// The right edge of a tree: one complete-subtree hash per set bit of its size.
///
/// Appending a leaf costs amortised O(1) hashes and reports every complete
/// subtree it finishes, which is exactly what a tiled log must store. A log
/// never needs its leaves in memory: restart from [`CompactRange::from_parts`]
/// with the hashes of [`CompactRange::node_ids`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    /// Hashes of the complete subtrees of `[0, size)`, largest (leftmost) first.
    nodes: Vec<Hash>,
}

/// Why a compact range could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a compact range of size {size} needs {want} hashes, got {got}")]
pub struct CompactRangeError {
    size: u64,
    want: usize,
    got: usize,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The complete subtrees whose hashes describe the right edge of `size`.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        range_nodes(0, size)
    }

    /// Rebuilds a compact range from the hashes of [`CompactRange::node_ids`].
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, CompactRangeError> {
        let want = size.count_ones() as usize;
        if nodes.len() != want {
            return Err(CompactRangeError {
                size,
                want,
                got: nodes.len(),
            });
        }
        Ok(CompactRange { size, nodes })
    }

    /// Number of leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete-subtree hashes, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash, calling `on_node` for the leaf and for every
    /// complete subtree it finishes (lowest level first).
    pub fn append_with(&mut self, leaf: Hash, mut on_node: impl FnMut(NodeId, &Hash)) {
        let index = self.size;
        on_node(NodeId::new(0, index), &leaf);
        let mut h = leaf;
        let mut level = 0u8;
        while (self.size >> level) & 1 == 1 {
            // Invariant: one stored node per set bit of size, so a set bit
            // at `level` means the last stored node is that level's.
            let Some(left) = self.nodes.pop() else {
                break;
            };
            h = node_hash(&left, &h);
            level += 1;
            on_node(NodeId::new(level, index >> level), &h);
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// Appends a leaf hash.
    pub fn append(&mut self, leaf: Hash) {
        self.append_with(leaf, |_, _| {});
    }

    /// The root of the tree so far (`SHA-256("")` when empty).
    pub fn root(&self) -> Hash {
        fold_right(&self.nodes)
    }
}

/// Every complete subtree of a tree, in memory: for tests, tools and small
/// logs. Level `l` holds `size >> l` hashes.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
    range: CompactRange,
}

/// A node that a [`MemoryTree`] does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a complete subtree of this tree")]
pub struct MissingNode(pub NodeId);

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.range.append_with(leaf, |id, h| {
            let l = usize::from(id.level);
            if levels.len() <= l {
                levels.push(Vec::new());
            }
            levels[l].push(*h);
        });
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The stored hash of a complete subtree.
    pub fn node(&self, id: NodeId) -> Option<Hash> {
        let idx = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(idx).copied()
    }
}

impl HashSource for MemoryTree {
    type Error = MissingNode;
    fn hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, MissingNode> {
        ids.iter()
            .map(|&id| self.node(id).ok_or(MissingNode(id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    /// The RFC 6962 definition, recursively, over leaf hashes.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn compact_range_matches_definition() {
        let mut tree = MemoryTree::new();
        let mut leaves = Vec::new();
        for i in 0..70u32 {
            assert_eq!(tree.root(), mth(&leaves), "size {i}");
            let h = leaf_hash(&i.to_be_bytes());
            leaves.push(h);
            tree.push(h);
        }
        for size in 1..=70u64 {
            let root = tree_root(size, &tree).expect("root");
            assert_eq!(root, mth(&leaves[..size as usize]));
        }
    }

    #[test]
    fn compact_range_restarts_from_parts() {
        let mut full = MemoryTree::new();
        for i in 0..37u32 {
            full.push(leaf_hash(&i.to_be_bytes()));
        }
        let ids = CompactRange::node_ids(37);
        let parts = full.hashes(&ids).expect("nodes");
        let mut cr = CompactRange::from_parts(37, parts).expect("parts");
        assert_eq!(cr.root(), full.root());
        cr.append(leaf_hash(b"x"));
        full.push(leaf_hash(b"x"));
        assert_eq!(cr.root(), full.root());
        assert!(CompactRange::from_parts(37, vec![]).is_err());
    }

    #[test]
    fn range_nodes_cover_exactly() {
        for start in 0..40u64 {
            for end in start..80u64 {
                let nodes = range_nodes(start, end);
                let mut at = start;
                for n in nodes {
                    assert_eq!(n.index << n.level, at);
                    at += 1 << n.level;
                }
                assert_eq!(at, end);
            }
        }
    }
}
