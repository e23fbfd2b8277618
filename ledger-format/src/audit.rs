//! Auditing a whole C2SP tlog-tiles log: verify the checkpoint, recompute
//! every tile and the root from the entry bundles, and optionally check
//! consistency with an older checkpoint.
//!
//! The logic is pure: the caller supplies a [`TileSource`] that fetches
//! resources by path (from a directory, an HTTP server, a git tree…). Works
//! on any C2SP log, not only tally's: entries are treated as opaque bytes.

use crate::checkpoint::{verify_checkpoint, CheckpointError, VerifiedCheckpoint};
use crate::hash::{leaf_hash, Hash};
use crate::merkle::CompactRange;
use crate::note::VerifierKey;
use crate::tile::{decode_bundle, decode_tile, BundleId, TileError, TileId, TILE_WIDTH};

/// Fetches log resources by path (`checkpoint`, `tile/0/000`, …).
pub trait TileSource {
    /// The source's own error.
    type Error: std::fmt::Display;
    /// Returns the bytes at `path`, or `None` when it does not exist.
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// The first problem an audit found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A resource could not be read.
    #[error("could not read {path}: {message}")]
    Fetch {
        /// The resource.
        path: String,
        /// The source's error.
        message: String,
    },
    /// The source has no checkpoint at all: there is no log to audit there.
    #[error("there is no checkpoint at this source: nothing to audit (is it the root of a tiled log?)")]
    NoCheckpoint,
    /// A resource the checkpoint requires is missing.
    #[error("{0} is missing, but the checkpoint's tree size requires it")]
    Missing(String),
    /// The checkpoint is malformed or badly signed.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The older checkpoint given with `since` is malformed or badly signed.
    #[error("older checkpoint: {0}")]
    OldCheckpoint(CheckpointError),
    /// A tile or bundle is malformed.
    #[error(transparent)]
    Tile(#[from] TileError),
    /// A stored hash differs from the one recomputed from the entries.
    #[error("{tile} position {position} (tree node level {level}, index {node}): recomputed {expected} from the entries, but the tile holds {found}")]
    TileMismatch {
        /// The tile's path.
        tile: String,
        /// Position in the tile.
        position: u64,
        /// Tree level of the node.
        level: u8,
        /// Node index at that level.
        node: u64,
        /// Hash recomputed from entries.
        expected: Hash,
        /// Hash found in the tile.
        found: Hash,
    },
    /// The root recomputed from the entries differs from the checkpoint's.
    #[error("root recomputed from {size} entries is {computed}, but the checkpoint says {expected}")]
    RootMismatch {
        /// Tree size.
        size: u64,
        /// Recomputed root.
        computed: Hash,
        /// The checkpoint's root.
        expected: Hash,
    },
    /// The older checkpoint is not a prefix of this log.
    #[error("older checkpoint (size {size}) has root {expected}, but the log's first {size} entries hash to {computed}: the log's history was rewritten")]
    Inconsistent {
        /// The older size.
        size: u64,
        /// The older root.
        expected: Hash,
        /// What this log gives at that size.
        computed: Hash,
    },
    /// The older checkpoint is larger than the log.
    #[error("older checkpoint has size {old}, larger than the log's current size {new}: the log shrank")]
    Shrunk {
        /// The older size.
        old: u64,
        /// The current size.
        new: u64,
    },
}

/// What a successful audit saw.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// The verified checkpoint.
    pub checkpoint: VerifiedCheckpoint,
    /// Entry bundles read.
    pub bundles: u64,
    /// Hash tiles read and checked.
    pub tiles: u64,
    /// Total bytes of entries.
    pub entry_bytes: u64,
    /// The older checkpoint's size that was proven consistent, if any.
    pub consistent_with: Option<u64>,
}

/// Options for [`audit_log`].
#[derive(Debug, Clone, Default)]
pub struct AuditOptions<'a> {
    /// Trusted witness cosignature keys.
    pub witnesses: &'a [VerifierKey],
    /// The origin the checkpoint must carry.
    pub expected_origin: Option<&'a str>,
    /// An older signed checkpoint to prove consistency with.
    pub since: Option<&'a [u8]>,
}

fn fetch_required<S: TileSource>(src: &mut S, path: &str) -> Result<Vec<u8>, AuditError> {
    src.fetch(path)
        .map_err(|e| AuditError::Fetch {
            path: path.to_owned(),
            message: e.to_string(),
        })?
        .ok_or_else(|| AuditError::Missing(path.to_owned()))
}

/// Fetches a partial resource, falling back to the full one (C2SP allows
/// logs to delete partials once the full tile exists).
fn fetch_with_fallback<S: TileSource>(
    src: &mut S,
    partial: &str,
    full: &str,
) -> Result<(Vec<u8>, bool), AuditError> {
    let got = src.fetch(partial).map_err(|e| AuditError::Fetch {
        path: partial.to_owned(),
        message: e.to_string(),
    })?;
    match got {
        Some(b) => Ok((b, false)),
        None if partial != full => match src.fetch(full) {
            Ok(Some(b)) => Ok((b, true)),
            _ => Err(AuditError::Missing(partial.to_owned())),
        },
        None => Err(AuditError::Missing(partial.to_owned())),
    }
}

struct Checker<'s, S: TileSource> {
    src: &'s mut S,
    /// Pending hashes per tile level, not yet a full tile.
    pending: Vec<Vec<Hash>>,
    tiles: u64,
}

impl<S: TileSource> Checker<'_, S> {
    fn push(&mut self, level: u8, index_in_level: u64, h: Hash) -> Result<(), AuditError> {
        let l = usize::from(level);
        if self.pending.len() <= l {
            self.pending.push(Vec::with_capacity(TILE_WIDTH as usize));
        }
        self.pending[l].push(h);
        if self.pending[l].len() as u64 == TILE_WIDTH {
            let hashes = std::mem::take(&mut self.pending[l]);
            let tile = TileId::full(level, index_in_level / TILE_WIDTH);
            self.compare(tile, &hashes, false)?;
            let mut cr = CompactRange::new();
            for h in &hashes {
                cr.append(*h);
            }
            self.push(level + 1, tile.index, cr.root())?;
        }
        Ok(())
    }

    fn compare(
        &mut self,
        tile: TileId,
        expected: &[Hash],
        allow_full_fallback: bool,
    ) -> Result<(), AuditError> {
        let path = tile.path();
        let (bytes, used_full) = if allow_full_fallback {
            fetch_with_fallback(self.src, &path, &TileId::full(tile.level, tile.index).path())?
        } else {
            (fetch_required(self.src, &path)?, false)
        };
        let found = if used_full {
            let mut all = decode_tile(TileId::full(tile.level, tile.index), &bytes)?;
            all.truncate(expected.len());
            all
        } else {
            decode_tile(tile, &bytes)?
        };
        self.tiles += 1;
        for (pos, (e, f)) in expected.iter().zip(&found).enumerate() {
            if e != f {
                let node = tile.node(pos as u64);
                return Err(AuditError::TileMismatch {
                    tile: path,
                    position: pos as u64,
                    level: node.level,
                    node: node.index,
                    expected: *e,
                    found: *f,
                });
            }
        }
        Ok(())
    }

    fn finish(&mut self, size: u64) -> Result<(), AuditError> {
        for l in 0..self.pending.len() {
            let hashes = std::mem::take(&mut self.pending[l]);
            if hashes.is_empty() {
                continue;
            }
            let tile = TileId {
                width: hashes.len() as u16,
                ..TileId::edge(l as u8, size)
            };
            self.compare(tile, &hashes, true)?;
        }
        Ok(())
    }
}

/// Audits a whole tiled log from `src` under `log_key`.
pub fn audit_log<S: TileSource>(
    src: &mut S,
    log_key: &VerifierKey,
    opts: &AuditOptions<'_>,
) -> Result<AuditReport, AuditError> {
    let cp_bytes = match fetch_required(src, "checkpoint") {
        Err(AuditError::Missing(_)) => return Err(AuditError::NoCheckpoint),
        other => other?,
    };
    let checkpoint = verify_checkpoint(&cp_bytes, log_key, opts.witnesses, opts.expected_origin)
        .map_err(AuditError::Checkpoint)?;
    let size = checkpoint.size();
    let old = match opts.since {
        Some(bytes) => {
            let old = verify_checkpoint(bytes, log_key, opts.witnesses, Some(checkpoint.origin()))
                .map_err(AuditError::OldCheckpoint)?;
            if old.size() > size {
                return Err(AuditError::Shrunk {
                    old: old.size(),
                    new: size,
                });
            }
            Some(old)
        }
        None => None,
    };

    let mut checker = Checker {
        src,
        pending: Vec::new(),
        tiles: 0,
    };
    let mut range = CompactRange::new();
    let mut consistent_with = None;
    let check_old = |range: &CompactRange, consistent_with: &mut Option<u64>| -> Result<(), AuditError> {
        if let Some(old) = &old {
            if range.size() == old.size() {
                let computed = range.root();
                if computed != old.root() {
                    return Err(AuditError::Inconsistent {
                        size: old.size(),
                        expected: old.root(),
                        computed,
                    });
                }
                *consistent_with = Some(old.size());
            }
        }
        Ok(())
    };
    check_old(&range, &mut consistent_with)?;
    let mut bundles = 0;
    let mut entry_bytes = 0;
    let bundle_count = size.div_ceil(TILE_WIDTH);
    for b in 0..bundle_count {
        let id = BundleId::for_entry(b * TILE_WIDTH, size);
        let full = BundleId::full(b);
        let (bytes, used_full) = fetch_with_fallback(checker.src, &id.path(), &full.path())?;
        let entries = if used_full {
            let mut all = decode_bundle(full, &bytes)?;
            all.truncate(usize::from(id.width));
            all
        } else {
            decode_bundle(id, &bytes)?
        };
        bundles += 1;
        for (i, e) in entries.iter().enumerate() {
            let index = b * TILE_WIDTH + i as u64;
            let h = leaf_hash(e);
            entry_bytes += e.len() as u64;
            range.append(h);
            check_old(&range, &mut consistent_with)?;
            checker.push(0, index, h)?;
        }
    }
    checker.finish(size)?;
    let computed = range.root();
    if computed != checkpoint.root() {
        return Err(AuditError::RootMismatch {
            size,
            computed,
            expected: checkpoint.root(),
        });
    }
    Ok(AuditReport {
        tiles: checker.tiles,
        checkpoint,
        bundles,
        entry_bytes,
        consistent_with,
    })
}
