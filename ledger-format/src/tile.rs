//! C2SP tlog-tiles: tile and entry-bundle paths (path arithmetic only), and
//! the byte encodings of tiles and entry bundles.
//!
//! Not here: fetching or storing tiles.

use std::fmt;

use crate::checkpoint::parse_decimal;
use crate::hash::{leaf_hash, Hash, HASH_LEN};
use crate::merkle::NodeId;

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels spanned by one tile level.
pub const TILE_HEIGHT: u8 = 8;
/// Highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;
/// Largest entry a bundle can hold (u16 length prefix).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// Why a tile path, tile or bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path is not a tile or entry-bundle path.
    #[error("{path:?} is not a tile path: {why}")]
    BadPath {
        /// The offending path.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The tile's byte length is not its width times 32.
    #[error("tile {tile} should be {want} bytes, got {got}")]
    BadTileLength {
        /// The tile's path.
        tile: String,
        /// Expected length.
        want: usize,
        /// Actual length.
        got: usize,
    },
    /// An entry bundle is truncated or has trailing bytes.
    #[error("entry bundle {bundle} is malformed at byte {offset}: {why}")]
    BadBundle {
        /// The bundle's path.
        bundle: String,
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// An entry bundle holds a different number of entries than its width.
    #[error("entry bundle {bundle} should hold {want} entries, holds {got}")]
    BadBundleCount {
        /// The bundle's path.
        bundle: String,
        /// Expected count.
        want: usize,
        /// Actual count.
        got: usize,
    },
    /// An entry is too large for a bundle.
    #[error("entry of {0} bytes is larger than the {MAX_ENTRY_SIZE}-byte bundle limit")]
    EntryTooLarge(usize),
}

/// A tile: level, index within the level, and width (1..=256; 256 = full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level (tree level / 8).
    pub level: u8,
    /// Index of the tile within its level.
    pub index: u64,
    /// Number of hashes (256 for a full tile).
    pub width: u16,
}

/// An entry bundle: index and width (1..=256; 256 = full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    /// Index of the bundle (entries `index*256 ..`).
    pub index: u64,
    /// Number of entries (256 for a full bundle).
    pub width: u16,
}

/// What a parsed path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`
    Tile(TileId),
    /// `tile/entries/<N>[.p/<W>]`
    Entries(BundleId),
}

/// Encodes a tile index as 3-digit groups, all but the last prefixed with `x`.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = Vec::new();
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(groups.len() * 5);
    for (i, g) in groups.iter().rev().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if i + 1 < groups.len() {
            out.push('x');
        }
        out.push_str(&format!("{g:03}"));
    }
    out
}

fn suffix(width: u16) -> String {
    if u64::from(width) == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// How many items a tree of `size` leaves has at tile level `level`
/// (hashes at tree level `8 * level`); 0 beyond the top.
pub fn level_count(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// How many of `count` items tile `index` of their level holds: the full
/// width, the remainder for the last (partial) tile, 0 beyond. The one place
/// tile widths are computed (hash tiles and entry bundles alike).
pub fn width_at(count: u64, index: u64) -> u16 {
    count
        .saturating_sub(index.saturating_mul(TILE_WIDTH))
        .min(TILE_WIDTH) as u16
}

impl TileId {
    /// Tile `index` of `level` as the tree of `size` has it (width 0 when
    /// the tree has nothing there).
    pub fn at(level: u8, index: u64, size: u64) -> Self {
        TileId {
            level,
            index,
            width: width_at(level_count(size, level), index),
        }
    }
    /// The right-most tile of `level` in a tree of `size`: the partial tile
    /// being filled (width 0 when the level ends on a full tile).
    pub fn edge(level: u8, size: u64) -> Self {
        let count = level_count(size, level);
        TileId {
            level,
            index: count / TILE_WIDTH,
            width: (count % TILE_WIDTH) as u16,
        }
    }
    /// A full tile.
    pub fn full(level: u8, index: u64) -> Self {
        TileId {
            level,
            index,
            width: TILE_WIDTH as u16,
        }
    }
    /// Whether the tile is full.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }
    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}{}",
            self.level,
            encode_index(self.index),
            suffix(self.width)
        )
    }
    /// The tree node held at `position` within the tile.
    pub fn node(&self, position: u64) -> NodeId {
        NodeId::new(self.level * TILE_HEIGHT, self.index * TILE_WIDTH + position)
    }
    /// The tile holding a tree node stored at a tile boundary level, and the
    /// node's position in it; `None` when the node's level is not a multiple of 8.
    pub fn containing(node: NodeId) -> Option<(u8, u64, u64)> {
        if node.level % TILE_HEIGHT != 0 {
            return None;
        }
        Some((
            node.level / TILE_HEIGHT,
            node.index / TILE_WIDTH,
            node.index % TILE_WIDTH,
        ))
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

impl BundleId {
    /// A full bundle.
    pub fn full(index: u64) -> Self {
        BundleId {
            index,
            width: TILE_WIDTH as u16,
        }
    }
    /// `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/entries/{}{}", encode_index(self.index), suffix(self.width))
    }
    /// The bundle holding entry `log_index` in a tree of `tree_size`.
    pub fn for_entry(log_index: u64, tree_size: u64) -> Self {
        let index = log_index / TILE_WIDTH;
        BundleId {
            index,
            width: width_at(tree_size, index),
        }
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Parses `<L>` and `<N>[.p/<W>]` into (level, index, width).
pub fn parse_level_index(level: &str, index: &str) -> Result<(u8, u64, u16), TileError> {
    let full = format!("tile/{level}/{index}");
    let bad = |why| TileError::BadPath {
        path: full.clone(),
        why,
    };
    let lvl = parse_decimal(level)
        .filter(|&l| l <= u64::from(MAX_TILE_LEVEL))
        .ok_or_else(|| bad("level must be 0..63 without leading zeros"))? as u8;
    let (idx, width) = parse_index_width(index).map_err(bad)?;
    Ok((lvl, idx, width))
}

fn parse_index_width(s: &str) -> Result<(u64, u16), &'static str> {
    let (index_part, width) = match s.split_once(".p/") {
        Some((i, w)) => {
            let w = parse_decimal(w)
                .filter(|&w| (1..TILE_WIDTH).contains(&w))
                .ok_or("partial width must be 1..255 without leading zeros")?;
            (i, w as u16)
        }
        None => {
            if s.contains(".p") {
                return Err("partial suffix must be .p/<width>");
            }
            (s, TILE_WIDTH as u16)
        }
    };
    let groups: Vec<&str> = index_part.split('/').collect();
    if groups.len() > 6 {
        return Err("index has more than six 3-digit groups");
    }
    if groups.len() > 1 && groups[0] == "x000" {
        // Found by fuzzing: `x000/x234/067` would name the same tile as
        // `x234/067`; only the canonical encoding is accepted.
        return Err("index has a leading all-zero group (not the canonical encoding)");
    }
    let mut n: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *g
        } else {
            g.strip_prefix('x')
                .ok_or("every index group but the last must start with 'x'")?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("index groups must be exactly three digits");
        }
        let v: u64 = digits.parse().map_err(|_| "index group is not a number")?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(v))
            .ok_or("index does not fit in 64 bits")?;
    }
    Ok((n, width))
}

/// Parses a full tile or bundle index `<N>` (canonical 3-digit groups, no
/// partial suffix), as used in `tile/…` paths and the ledger's `bodies/<N>/`.
pub fn parse_index(s: &str) -> Result<u64, &'static str> {
    if s.contains(".p") {
        return Err("an index has no partial suffix here");
    }
    parse_index_width(s).map(|(n, _)| n)
}

/// Parses a `tile/…` path (without a leading slash or URL prefix).
pub fn parse_path(path: &str) -> Result<TilePath, TileError> {
    let bad = |why| TileError::BadPath {
        path: path.to_owned(),
        why,
    };
    let rest = path
        .strip_prefix("tile/")
        .ok_or_else(|| bad("it does not start with tile/"))?;
    if let Some(idx) = rest.strip_prefix("entries/") {
        let (index, width) = parse_index_width(idx).map_err(bad)?;
        return Ok(TilePath::Entries(BundleId { index, width }));
    }
    let (level, idx) = rest.split_once('/').ok_or_else(|| bad("it has no tile index"))?;
    let (level, index, width) = parse_level_index(level, idx)?;
    Ok(TilePath::Tile(TileId { level, index, width }))
}

/// Every tile (all levels) of a tree of `size`, full and partial, lowest level first.
pub fn tiles_for_size(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    let mut level: u8 = 0;
    while level_count(size, level) > 0 && level <= MAX_TILE_LEVEL {
        let count = level_count(size, level);
        out.extend((0..count.div_ceil(TILE_WIDTH)).map(|i| TileId::at(level, i, size)));
        level += 1;
    }
    out
}

/// The tile that holds a given node for a tree of `size`, choosing the
/// partial width the tree has. `None` when the node is not stored in a tile
/// (its level is not a multiple of 8) or not complete in that tree.
pub fn tile_for_node(node: NodeId, size: u64) -> Option<(TileId, u64)> {
    let (level, index, pos) = TileId::containing(node)?;
    if node.index >= level_count(size, level) {
        return None;
    }
    Some((TileId::at(level, index, size), pos))
}

/// Decodes a tile's bytes into its hashes, checking the length.
pub fn decode_tile(tile: TileId, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    let want = usize::from(tile.width) * HASH_LEN;
    if bytes.len() != want {
        return Err(TileError::BadTileLength {
            tile: tile.path(),
            want,
            got: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .map(|c| {
            let mut a = [0u8; HASH_LEN];
            a.copy_from_slice(c);
            Hash(a)
        })
        .collect())
}

/// Encodes hashes as tile bytes.
pub fn encode_tile(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * HASH_LEN);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

/// Appends one entry, length-prefixed, to a bundle being built.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), TileError> {
    let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge(entry.len()))?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Encodes entries as an entry bundle.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        push_bundle_entry(&mut out, e.as_ref())?;
    }
    Ok(out)
}

/// Splits an entry bundle into its entries, checking it holds exactly `width`.
pub fn decode_bundle(bundle: BundleId, bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::with_capacity(usize::from(bundle.width));
    let mut at = 0;
    while at < bytes.len() {
        if at + 2 > bytes.len() {
            return Err(TileError::BadBundle {
                bundle: bundle.path(),
                offset: at,
                why: "a length prefix is cut short",
            });
        }
        let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        at += 2;
        if at + len > bytes.len() {
            return Err(TileError::BadBundle {
                bundle: bundle.path(),
                offset: at,
                why: "an entry is cut short",
            });
        }
        out.push(&bytes[at..at + len]);
        at += len;
    }
    if out.len() != usize::from(bundle.width) {
        return Err(TileError::BadBundleCount {
            bundle: bundle.path(),
            want: usize::from(bundle.width),
            got: out.len(),
        });
    }
    Ok(out)
}

/// The leaf hashes of a bundle's entries.
pub fn bundle_leaf_hashes(entries: &[&[u8]]) -> Vec<Hash> {
    entries.iter().map(|e| leaf_hash(e)).collect()
}

/// Reads stored tiles, for [`TiledHashes`].
pub trait TileReader {
    /// The reader's error.
    type Error: fmt::Display;
    /// What a read returns: the tile's hashes, possibly followed by more
    /// (a later, wider version of the same tile), so a cached tile can be
    /// shared without copying.
    type Tile: TileNodes;
    /// Returns at least the first `tile.width` hashes of `tile`.
    fn read_tile(&self, tile: TileId) -> Result<Self::Tile, Self::Error>;
}

/// A tile's hashes, and the subtrees above them inside the tile.
pub trait TileNodes {
    /// The tile's hashes (at least its width).
    fn hashes(&self) -> &[Hash];
    /// The root of the perfect subtree over `2^height` hashes starting at
    /// `pos` (`height` < 8). Computed by default; [`ExpandedTile`] stores them.
    fn subtree(&self, height: u8, pos: u64) -> Hash {
        subtree_root(&self.hashes()[pos as usize..(pos + (1u64 << height)) as usize])
    }
}

impl TileNodes for Vec<Hash> {
    fn hashes(&self) -> &[Hash] {
        self
    }
}

impl<T: TileNodes + ?Sized> TileNodes for std::sync::Arc<T> {
    fn hashes(&self) -> &[Hash] {
        (**self).hashes()
    }
    fn subtree(&self, height: u8, pos: u64) -> Hash {
        (**self).subtree(height, pos)
    }
}

/// A tile with every complete node of its 8 internal levels computed once,
/// so proofs read subtrees instead of rehashing them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedTile {
    /// `levels[h]` holds the complete nodes `h` levels above the tile's hashes.
    levels: Vec<Vec<Hash>>,
}

impl ExpandedTile {
    /// Expands a tile's hashes (255 node hashes for a full tile).
    pub fn new(hashes: Vec<Hash>) -> Self {
        let mut levels = vec![hashes];
        while let Some(last) = levels.last() {
            if last.len() < 2 {
                break;
            }
            let next: Vec<Hash> = last
                .chunks_exact(2)
                .map(|p| crate::hash::node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        ExpandedTile { levels }
    }
}

impl TileNodes for ExpandedTile {
    fn hashes(&self) -> &[Hash] {
        &self.levels[0]
    }
    fn subtree(&self, height: u8, pos: u64) -> Hash {
        match self
            .levels
            .get(usize::from(height))
            .and_then(|l| l.get((pos >> height) as usize))
        {
            Some(h) => *h,
            None => subtree_root(&self.levels[0][pos as usize..(pos + (1u64 << height)) as usize]),
        }
    }
}

/// A [`HashSource`](crate::merkle::HashSource) over the tiles of a tree of
/// `size`: nodes at levels that are multiples of 8 are read from tiles; nodes
/// in between are hashed from the tile below them. Each tile is read once per
/// request batch.
#[derive(Debug)]
pub struct TiledHashes<'r, R> {
    reader: &'r R,
    size: u64,
}

impl<'r, R: TileReader> TiledHashes<'r, R> {
    /// Nodes of the tree of `size`, from `reader`.
    pub fn new(reader: &'r R, size: u64) -> Self {
        TiledHashes { reader, size }
    }
}

/// Why a node could not be had from tiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TiledError {
    /// The node is not a complete subtree of the tree.
    #[error("{node} is not a complete subtree of a tree of size {size}")]
    NotInTree {
        /// The node.
        node: NodeId,
        /// The tree size.
        size: u64,
    },
    /// The tile reader failed.
    #[error("reading {tile}: {message}")]
    Read {
        /// The tile.
        tile: String,
        /// The reader's error.
        message: String,
    },
    /// A tile had too few hashes.
    #[error("{tile} holds {got} hashes, expected {want}")]
    BadTile {
        /// The tile.
        tile: String,
        /// Hashes found.
        got: usize,
        /// Hashes expected.
        want: usize,
    },
}

impl<R: TileReader> crate::merkle::HashSource for TiledHashes<'_, R> {
    type Error = TiledError;
    fn hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, TiledError> {
        let mut cache: Vec<(TileId, R::Tile)> = Vec::new();
        let mut out = Vec::with_capacity(ids.len());
        for &node in ids {
            let size = self.size;
            let not_in_tree = || TiledError::NotInTree { node, size };
            if u32::from(node.level) >= 64
                || (node.index + 1)
                    .checked_shl(u32::from(node.level))
                    .is_none_or(|end| end > size)
            {
                return Err(not_in_tree());
            }
            // The tile level at or below the node, and the node's span in it.
            let tile_level = node.level / TILE_HEIGHT;
            let base = node.level - tile_level * TILE_HEIGHT; // 0..8 levels above the tile's hashes
            let first = node.index << base; // index of the first tile hash under the node
            let stored = NodeId::new(tile_level * TILE_HEIGHT, first);
            let (tile, pos) = tile_for_node(stored, size).ok_or_else(not_in_tree)?;
            let hashes = match cache.iter().position(|(t, _)| *t == tile) {
                Some(i) => &cache[i].1,
                None => {
                    let h = self.reader.read_tile(tile).map_err(|e| TiledError::Read {
                        tile: tile.path(),
                        message: e.to_string(),
                    })?;
                    if h.hashes().len() < usize::from(tile.width) {
                        return Err(TiledError::BadTile {
                            tile: tile.path(),
                            got: h.hashes().len(),
                            want: usize::from(tile.width),
                        });
                    }
                    cache.push((tile, h));
                    &cache[cache.len() - 1].1
                }
            };
            out.push(hashes.subtree(base, pos));
        }
        Ok(out)
    }
}

/// The root of a perfect subtree given its `2^k` bottom hashes.
fn subtree_root(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| crate::hash::node_hash(&p[0], &p[1]))
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MemTiles(crate::merkle::MemoryTree);

    impl TileReader for MemTiles {
        type Error = crate::merkle::MissingNode;
        type Tile = Vec<Hash>;
        fn read_tile(&self, tile: TileId) -> Result<Vec<Hash>, Self::Error> {
            use crate::merkle::HashSource as _;
            let ids: Vec<NodeId> = (0..u64::from(tile.width)).map(|p| tile.node(p)).collect();
            self.0.hashes(&ids)
        }
    }

    #[test]
    fn tiled_hashes_give_the_same_proofs_as_memory() {
        use crate::merkle::{consistency_proof, inclusion_proof, tree_root, MemoryTree};
        let mut t = MemoryTree::new();
        for i in 0..70_000u32 {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        let tiles = MemTiles(t.clone());
        for size in [1u64, 2, 255, 256, 257, 511, 65_535, 65_536, 65_537, 70_000] {
            let src = TiledHashes::new(&tiles, size);
            assert_eq!(
                tree_root(size, &src).unwrap(),
                tree_root(size, &t).unwrap(),
                "root {size}"
            );
            for idx in [0, size / 3, size - 1] {
                assert_eq!(
                    inclusion_proof(idx, size, &src).unwrap(),
                    inclusion_proof(idx, size, &t).unwrap()
                );
            }
            for old in [1, size / 2 + 1, size] {
                assert_eq!(
                    consistency_proof(old, size, &src).unwrap(),
                    consistency_proof(old, size, &t).unwrap()
                );
            }
        }
        let expanded = ExpandedTile::new(tiles.read_tile(TileId::full(0, 3)).unwrap());
        for h in 0..8u8 {
            for pos in (0..256u64).step_by(1 << h) {
                let plain = tiles.read_tile(TileId::full(0, 3)).unwrap();
                assert_eq!(expanded.subtree(h, pos), plain.subtree(h, pos));
            }
        }
        let src = TiledHashes::new(&tiles, 300);
        assert!(crate::merkle::HashSource::hashes(&src, &[NodeId::new(8, 1)]).is_err());
    }

    #[test]
    fn index_encoding() {
        assert!(parse_path("tile/0/x000/x234/067.p/89").is_err());
        assert!(parse_path("tile/entries/x000/001").is_err());
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(1000), "x001/000");
    }

    #[test]
    fn tiles_of_70000() {
        let tiles = tiles_for_size(70_000);
        let partial: Vec<String> = tiles.iter().filter(|t| !t.is_full()).map(TileId::path).collect();
        assert_eq!(partial, ["tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"]);
        assert_eq!(tiles.iter().filter(|t| t.level == 0 && t.is_full()).count(), 273);
    }

    #[test]
    fn bundle_round_trip_and_errors() {
        let b = encode_bundle(&[b"a".as_slice(), b"".as_slice(), b"ccc".as_slice()]).expect("enc");
        let id = BundleId { index: 0, width: 3 };
        assert_eq!(
            decode_bundle(id, &b).expect("dec"),
            vec![b"a".as_slice(), b"", b"ccc"]
        );
        assert!(decode_bundle(id, &b[..b.len() - 1]).is_err());
        assert!(decode_bundle(BundleId { index: 0, width: 2 }, &b).is_err());
        assert!(encode_bundle(&[vec![0u8; 70_000]]).is_err());
    }
}
