//! Re-checking a whole ledger, or a `git clone` of one: every tile against
//! the entries, every checkpoint in the history (signature, and consistency
//! with every other), and every body against its digest. Reports the first
//! problem precisely.

use std::path::Path;

use ledger_format::audit::{audit_log, AuditOptions, TileSource};
use ledger_format::checkpoint::verify_checkpoint;
use ledger_format::entry::Entry;
use ledger_format::hash::{sha256, Hash};
use ledger_format::merkle::tree_root;
use ledger_format::note::VerifierKey;
use ledger_format::tile::{
    decode_bundle, decode_tile, parse_index, BundleId, TileId, TileReader, TiledHashes, TILE_WIDTH,
};

use crate::ledger::git::{list_blobs, Head, LedgerRepo};
use crate::ledger::{body_path, LedgerError};

/// What a clean check saw.
#[derive(Debug, Clone, Default)]
pub struct FsckReport {
    /// The commit checked (`main`'s head) and its tree.
    pub head: Option<Head>,
    /// Size of the head checkpoint.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// Commits (publications) checked.
    pub commits: u64,
    /// Tiles checked.
    pub tiles: u64,
    /// Bodies checked.
    pub bodies: u64,
    /// Entries that name an envelope (tally entries) whose body was found.
    pub entries_with_bodies: u64,
}

/// The first problem found.
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    /// The repository could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A problem with the log's content.
    #[error("{0}")]
    Problem(String),
}

fn problem(s: impl Into<String>) -> FsckError {
    FsckError::Problem(s.into())
}

/// Reads log resources (tiles, bundles, checkpoint) from one git tree.
#[derive(Debug)]
pub struct TreeSource<'a> {
    /// The repository.
    pub git: &'a LedgerRepo,
    /// The tree (a commit's root tree).
    pub tree: gix::ObjectId,
}

impl TileSource for TreeSource<'_> {
    type Error = LedgerError;
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.git.read(self.tree, path)
    }
}

impl TileReader for TreeSource<'_> {
    type Error = LedgerError;
    type Tile = Vec<ledger_format::Hash>;
    fn read_tile(&self, tile: TileId) -> Result<Vec<ledger_format::Hash>, LedgerError> {
        let bytes = self
            .git
            .read(self.tree, &tile.path())?
            .ok_or_else(|| LedgerError::Corrupt(format!("{} is missing", tile.path())))?;
        decode_tile(tile, &bytes).map_err(|e| LedgerError::Corrupt(e.to_string()))
    }
}

/// Checks the git repository at `git_dir` (bare, or a clone's `.git`).
pub fn check_repository(git_dir: &Path, key: &VerifierKey) -> Result<FsckReport, FsckError> {
    let git = LedgerRepo::open_existing(git_dir)?;
    let head: Head = git
        .head()?
        .ok_or_else(|| problem(format!("{} has no commit on main", git_dir.display())))?;

    // 1. The head tree is a complete, correct tiled log.
    let mut src = TreeSource {
        git: &git,
        tree: head.tree,
    };
    let audit = audit_log(&mut src, key, &AuditOptions::default())
        .map_err(|e| problem(format!("head commit {}: {e}", head.commit)))?;
    let size = audit.checkpoint.size();
    let root = audit.checkpoint.root();
    let mut report = FsckReport {
        head: Some(head),
        size,
        root,
        tiles: audit.tiles,
        ..FsckReport::default()
    };

    // 2. Every commit carries a checkpoint signed by the key, equal to the
    //    one in its tree, no larger than its successor's, and with the root
    //    the head's tiles give at its size: all checkpoints are consistent.
    let head_src = TreeSource {
        git: &git,
        tree: head.tree,
    };
    let hashes = TiledHashes::new(&head_src, size);
    let mut commit = Some(head.commit);
    let mut newer_size = u64::MAX;
    while let Some(c) = commit {
        let (message, parents, tree) = git.commit_info(c)?;
        let in_tree = git
            .read(tree, "checkpoint")?
            .ok_or_else(|| problem(format!("commit {c} has no checkpoint file")))?;
        if in_tree != message.as_bytes() {
            return Err(problem(format!(
                "commit {c}: its message is not the checkpoint in its tree"
            )));
        }
        let cp = verify_checkpoint(&in_tree, key, &[], None)
            .map_err(|e| problem(format!("commit {c}: checkpoint: {e}")))?;
        if cp.size() > newer_size {
            return Err(problem(format!(
                "commit {c}: checkpoint size {} is larger than its successor's {newer_size}: the log shrank",
                cp.size()
            )));
        }
        let expected = tree_root(cp.size(), &hashes).map_err(|e| {
            problem(format!(
                "commit {c}: computing the root at size {}: {e}",
                cp.size()
            ))
        })?;
        if expected != cp.root() {
            return Err(problem(format!(
                "commit {c}: checkpoint of size {} has root {}, but the log's first {} entries hash to {expected}: inconsistent history",
                cp.size(),
                cp.root(),
                cp.size()
            )));
        }
        if parents.len() > 1 {
            return Err(problem(format!(
                "commit {c} is a merge; the ledger's history is linear"
            )));
        }
        report.commits += 1;
        newer_size = cp.size();
        commit = parents.first().copied();
    }

    // 3. Bodies: each is stored under its own digest in the directory of an
    //    existing entry bundle, and each tally entry's envelope is present,
    //    beside its entry, with the size the entry names.
    let repo = git.local();
    let bundles = size.div_ceil(TILE_WIDTH);
    for (path, id) in list_blobs(&repo, head.tree, "bodies/")? {
        let data = repo
            .find_object(id)
            .map_err(|e| problem(format!("{path}: {e}")))?
            .detach()
            .data;
        let digest = sha256(&data);
        let (dir, name) = path
            .strip_prefix("bodies/")
            .and_then(|p| p.rsplit_once('/'))
            .ok_or_else(|| problem(format!("{path} is not bodies/<bundle>/<sha256>")))?;
        let bundle = parse_index(dir).map_err(|why| problem(format!("{path}: {why}")))?;
        if bundle >= bundles {
            return Err(problem(format!(
                "{path} is stored with entry bundle {bundle}, but the log has {bundles} bundle(s)"
            )));
        }
        if name != digest.to_hex() {
            return Err(problem(format!("{path} holds bytes whose SHA-256 is {digest}")));
        }
        report.bodies += 1;
    }
    for b in 0..size.div_ceil(TILE_WIDTH) {
        let id = BundleId::for_entry(b * TILE_WIDTH, size);
        let bytes = git
            .read(head.tree, &id.path())?
            .ok_or_else(|| problem(format!("{} is missing", id.path())))?;
        let entries = decode_bundle(id, &bytes).map_err(|e| problem(e.to_string()))?;
        for (i, e) in entries.iter().enumerate() {
            // An attestation entry's envelope, a certificate entry's DER, a key
            // entry's SubjectPublicKeyInfo.
            let (what, digest, size) = if let Ok(entry) = Entry::parse(e) {
                ("envelope", entry.envelope_digest, entry.envelope_size)
            } else if let Ok(c) = ledger_format::certificate::CertificateEntry::parse(e) {
                ("certificate", c.certificate_digest, c.certificate_size)
            } else if let Ok(k) = ledger_format::key::KeyEntry::parse(e) {
                ("key", k.key_digest, k.key_size)
            } else {
                continue;
            };
            let index = b * TILE_WIDTH + i as u64;
            let body = git.read(head.tree, &body_path(index, &digest))?.ok_or_else(|| {
                problem(format!(
                    "entry {index} names {what} sha256:{digest} but {} is missing",
                    body_path(index, &digest)
                ))
            })?;
            if body.len() as u64 != size {
                return Err(problem(format!(
                    "entry {index}'s {what} should be {size} bytes; the stored one has {}",
                    body.len()
                )));
            }
            report.entries_with_bodies += 1;
        }
    }
    Ok(report)
}

/// Checks a ledger data directory: its repository, and that the last
/// signed checkpoint in `state/` is consistent with what was published.
pub fn check_ledger_dir(dir: &Path, key: &VerifierKey) -> Result<FsckReport, FsckError> {
    let report = check_repository(&dir.join("ledger.git"), key)?;
    let signed_path = dir.join("state/checkpoint");
    if let Ok(text) = std::fs::read(&signed_path) {
        let cp = verify_checkpoint(&text, key, &[], None)
            .map_err(|e| problem(format!("{}: {e}", signed_path.display())))?;
        if cp.size() < report.size || (cp.size() == report.size && cp.root() != report.root) {
            return Err(problem(format!(
                "{} (size {}, root {}) contradicts the published checkpoint (size {}, root {})",
                signed_path.display(),
                cp.size(),
                cp.root(),
                report.size,
                report.root
            )));
        }
    }
    Ok(report)
}

/// Where the repository of `path` is: a ledger data directory, a bare
/// repository, or a clone's working tree.
pub fn locate(path: &Path) -> Option<(std::path::PathBuf, bool)> {
    if path.join("ledger.git/HEAD").is_file() {
        return Some((path.to_owned(), true));
    }
    if path.join(".git").is_dir() {
        return Some((path.join(".git"), false));
    }
    if path.join("HEAD").is_file() && path.join("objects").is_dir() {
        return Some((path.to_owned(), false));
    }
    None
}

/// Where a clone's working tree differs from the audited `tree`: files
/// changed or missing in the working tree, and files the tree does not
/// have (`.git` aside), sorted. An audit reads the repository's objects,
/// never these files, so a report on a clone names what it did not check.
pub fn worktree_differences(
    worktree: &Path,
    git: &LedgerRepo,
    tree: gix::ObjectId,
) -> Result<Vec<String>, LedgerError> {
    let repo = git.local();
    let blobs = list_blobs(&repo, tree, "")?;
    let mut out = Vec::new();
    for (path, id) in &blobs {
        let same = std::fs::read(worktree.join(path))
            .ok()
            .and_then(|b| gix::objs::compute_hash(repo.object_hash(), gix::objs::Kind::Blob, &b).ok())
            .is_some_and(|got| got == *id);
        if !same {
            out.push(path.clone());
        }
    }
    let known: std::collections::HashSet<&str> = blobs.iter().map(|(p, _)| p.as_str()).collect();
    let mut stack = vec![(worktree.to_owned(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(LedgerError::io("listing the working tree"))?;
        for e in entries {
            let e = e.map_err(LedgerError::io("listing the working tree"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if prefix.is_empty() && name == ".git" {
                continue;
            }
            let path = format!("{prefix}{name}");
            if e.file_type()
                .map_err(LedgerError::io("listing the working tree"))?
                .is_dir()
            {
                stack.push((e.path(), format!("{path}/")));
            } else if !known.contains(path.as_str()) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The entries of `tree` (a checked head of a ledger of `size`) at indices
/// below `below`, oldest first, as `f` keeps them: read bundle by bundle.
pub fn scan_entries<T>(
    git: &LedgerRepo,
    tree: gix::ObjectId,
    size: u64,
    below: u64,
    mut f: impl FnMut(u64, &[u8]) -> Option<T>,
) -> Result<Vec<T>, FsckError> {
    let below = below.min(size);
    let mut out = Vec::new();
    for b in 0..below.div_ceil(TILE_WIDTH) {
        let id = BundleId::for_entry(b * TILE_WIDTH, size);
        let bytes = git
            .read(tree, &id.path())?
            .ok_or_else(|| problem(format!("{} is missing", id.path())))?;
        let entries = decode_bundle(id, &bytes).map_err(|e| problem(e.to_string()))?;
        for (i, e) in entries.iter().enumerate() {
            let index = b * TILE_WIDTH + i as u64;
            if index >= below {
                break;
            }
            out.extend(f(index, e));
        }
    }
    Ok(out)
}
