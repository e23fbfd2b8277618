//! The published log as a git repository, written with gix (no git CLI on
//! the write path): one commit per publication whose tree holds
//! `checkpoint`, `tile/…`, `tile/entries/…` and `bodies/…`.

use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::ledger::LedgerError;

/// The branch that carries the log; it only moves forward.
pub const BRANCH: &str = "refs/heads/main";

/// The ledger's git repository.
#[derive(Debug)]
pub struct GitStore {
    repo: gix::ThreadSafeRepository,
    path: PathBuf,
    /// Set while this repository's background packing runs.
    packing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The commit at the tip of [`BRANCH`] and its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The commit.
    pub commit: ObjectId,
    /// Its tree.
    pub tree: ObjectId,
}

fn git_err(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Git(format!("{what}: {e}"))
}

impl GitStore {
    /// Opens the bare repository at `path`, creating it if absent.
    pub fn open_or_init(path: &Path) -> Result<Self, LedgerError> {
        if !path.join("HEAD").exists() {
            // Create the repository beside its final place and rename it in,
            // so a crash never leaves a half-initialised repository behind.
            let tmp = path.with_extension("git.init");
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)
                    .map_err(LedgerError::io("removing a half-created repository"))?;
            }
            if path.exists() {
                // No HEAD: never a repository we published to.
                std::fs::remove_dir_all(path)
                    .map_err(LedgerError::io("removing a half-created repository"))?;
            }
            drop(gix::init_bare(&tmp).map_err(|e| git_err("creating the ledger repository", e))?);
            // Loose objects are short-lived (packed by maintenance), so write
            // them with fast compression: the publisher is zlib-bound otherwise.
            let mut config =
                std::fs::read_to_string(tmp.join("config")).map_err(LedgerError::io("reading config"))?;
            config.push_str("[core]\n\tlooseCompression = 1\n");
            std::fs::write(tmp.join("config"), config).map_err(LedgerError::io("writing config"))?;
            // Let `git clone` over dumb HTTP work: keep info/refs current.
            std::fs::create_dir_all(tmp.join("info")).map_err(LedgerError::io("creating info/"))?;
            std::fs::rename(&tmp, path).map_err(LedgerError::io("moving the new repository into place"))?;
            if let Some(parent) = path.parent() {
                std::fs::File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(LedgerError::io("syncing the ledger directory"))?;
            }
        }
        clear_stale_locks(path)?;
        let repo = gix::open_opts(path, gix::open::Options::isolated())
            .map_err(|e| git_err("opening the ledger repository", e))?;
        Ok(GitStore {
            repo: repo.into_sync(),
            path: path.to_owned(),
            packing: Default::default(),
        })
    }

    /// Opens an existing repository (bare, or a clone's `.git`) read-only.
    ///
    /// (Takes no write lock: readers may run beside a writer.)
    pub fn open_existing(path: &Path) -> Result<Self, LedgerError> {
        let repo = gix::open_opts(path, gix::open::Options::isolated())
            .map_err(|e| git_err(&format!("opening {}", path.display()), e))?;
        Ok(GitStore {
            repo: repo.into_sync(),
            path: path.to_owned(),
            packing: Default::default(),
        })
    }

    /// The repository's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A thread-local handle.
    pub fn local(&self) -> gix::Repository {
        self.repo.to_thread_local()
    }

    /// The tip of [`BRANCH`], if any commit exists.
    pub fn head(&self) -> Result<Option<Head>, LedgerError> {
        let repo = self.local();
        let Some(mut r) = repo
            .try_find_reference(BRANCH)
            .map_err(|e| git_err("reading main", e))?
        else {
            return Ok(None);
        };
        let commit = r
            .peel_to_commit()
            .map_err(|e| git_err("reading the head commit", e))?;
        let tree = commit
            .tree_id()
            .map_err(|e| git_err("reading the head tree", e))?;
        Ok(Some(Head {
            commit: commit.id,
            tree: tree.detach(),
        }))
    }

    /// Reads the blob at `path` in `tree`, or `None`.
    pub fn read(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let repo = self.local();
        let tree = repo.find_tree(tree).map_err(|e| git_err("reading a tree", e))?;
        let Some(entry) = tree
            .lookup_entry_by_path(path)
            .map_err(|e| git_err(&format!("looking up {path}"), e))?
        else {
            return Ok(None);
        };
        let obj = entry
            .object()
            .map_err(|e| git_err(&format!("reading {path}"), e))?;
        Ok(Some(obj.detach().data))
    }

    /// Reads a commit's message and parents.
    pub fn commit_info(&self, commit: ObjectId) -> Result<(String, Vec<ObjectId>, ObjectId), LedgerError> {
        let repo = self.local();
        let c = repo
            .find_commit(commit)
            .map_err(|e| git_err("reading a commit", e))?;
        let msg = c
            .message_raw()
            .map_err(|e| git_err("reading a commit message", e))?
            .to_string();
        let parents = c.parent_ids().map(|p| p.detach()).collect();
        let tree = c
            .tree_id()
            .map_err(|e| git_err("reading a commit tree", e))?
            .detach();
        Ok((msg, parents, tree))
    }

    /// Writes one publication: blobs at `upserts`, `removes` deleted, on top
    /// of `base` (or an empty tree), committed on [`BRANCH`] with `message`.
    /// gix refuses the commit if `main` moved since `base` was read.
    pub fn publish(
        &self,
        base: Option<Head>,
        upserts: &[(String, Vec<u8>)],
        removes: &[String],
        message: &str,
    ) -> Result<Head, LedgerError> {
        // Packing removes emptied object directories; never while objects are written.
        let _write = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let repo = self.local();
        let base_tree = base.map_or_else(|| ObjectId::empty_tree(repo.object_hash()), |h| h.tree);
        let mut editor = repo
            .edit_tree(base_tree)
            .map_err(|e| git_err("editing the tree", e))?;
        for path in removes {
            editor
                .remove(path.as_str())
                .map_err(|e| git_err(&format!("removing {path}"), e))?;
        }
        for (path, bytes) in upserts {
            let id = repo
                .write_blob(bytes)
                .map_err(|e| git_err(&format!("writing {path}"), e))?;
            editor
                .upsert(path.as_str(), gix::object::tree::EntryKind::Blob, id.detach())
                .map_err(|e| git_err(&format!("adding {path}"), e))?;
        }
        let tree = editor
            .write()
            .map_err(|e| git_err("writing the tree", e))?
            .detach();
        let sig = gix::actor::Signature {
            name: "tally".into(),
            email: "tally@localhost".into(),
            time: gix::date::Time::now_utc(),
        };
        let mut buf = gix::date::parse::TimeBuf::default();
        let sref = sig.to_ref(&mut buf);
        let parents: Vec<ObjectId> = base.map(|h| h.commit).into_iter().collect();
        let commit = repo
            .commit_as(sref, sref, BRANCH, message, tree, parents)
            .map_err(|e| git_err("committing the publication", e))?
            .detach();
        // HEAD of a new bare repository may name another branch; point it at main.
        let head_file = self.path.join("HEAD");
        if std::fs::read_to_string(&head_file).map_or(true, |h| h.trim() != format!("ref: {BRANCH}")) {
            crate::fsutil::write_atomic(&head_file, format!("ref: {BRANCH}\n").as_bytes(), 0o644, true)
                .map_err(LedgerError::io("writing HEAD"))?;
        }
        self.write_info_refs(commit)?;
        Ok(Head { commit, tree })
    }

    /// `info/refs` for the dumb HTTP protocol (what `git update-server-info` writes).
    fn write_info_refs(&self, commit: ObjectId) -> Result<(), LedgerError> {
        let text = format!("{commit}\t{BRANCH}\n");
        crate::fsutil::write_atomic(&self.path.join("info/refs"), text.as_bytes(), 0o644, true)
            .map_err(LedgerError::io("writing info/refs"))
    }

    /// Packs loose objects in the background (maintenance, not the write
    /// path); see [`repack`]. Skipped while this repository's previous packing
    /// still runs, or when git is not installed.
    pub fn repack_in_background(&self) {
        use std::sync::atomic::Ordering;
        if self.packing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (path, flag) = (self.path.clone(), self.packing.clone());
        let spawned = std::thread::Builder::new()
            .name("tally-repack".into())
            .spawn(move || {
                if let Err(e) = repack(&path, false) {
                    eprintln!(
                        "tally ledger: packing {} failed (will retry later): {e}",
                        path.display()
                    );
                }
                flag.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.packing.store(false, Ordering::Release);
        }
    }

    /// Waits until this repository's background packing (if any) is done.
    pub fn wait_for_maintenance(&self) {
        while self.packing.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Flushes everything written to the repository's filesystem to stable
    /// storage (gix does not fsync loose objects or refs itself).
    pub fn sync(&self) -> Result<(), LedgerError> {
        let dir = std::fs::File::open(&self.path).map_err(LedgerError::io("opening the repository"))?;
        rustix::fs::syncfs(&dir).map_err(|e| LedgerError::Io {
            what: "syncing the ledger repository".into(),
            source: e.into(),
        })
    }
}

/// Held while gix writes objects and refs, and while packing deletes loose
/// objects (git prune-packed also removes emptied fan-out directories, which
/// would make a concurrent loose-object write fail).
static WRITE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Removes what a killed process can leave behind in the repository: lock
/// files of reference updates and temporary pack files. Only called by the
/// ledger's opener, which holds the ledger's exclusive lock, so no other
/// writer can own them.
fn clear_stale_locks(path: &Path) -> Result<(), LedgerError> {
    let mut dirs = vec![path.to_owned(), path.join("refs/heads")];
    dirs.push(path.join("objects/pack"));
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lock") || name.starts_with("tmp_") || name.starts_with(".tmp-") {
                std::fs::remove_file(e.path()).map_err(LedgerError::io("removing a stale lock file"))?;
            }
        }
    }
    Ok(())
}

fn git(path: &Path) -> std::process::Command {
    let mut c = std::process::Command::new("git");
    c.arg("-C").arg(path);
    c
}

fn run(mut c: std::process::Command, what: &str) -> std::io::Result<String> {
    let out = c.stderr(std::process::Stdio::piped()).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Packs the repository with git's pack-objects (maintenance, not the write
/// path). `full` repacks everything into one pack; otherwise only loose
/// objects are packed. Every partial tile or bundle (`….p/<W>`) is given its
/// full tile's name as the delta-search hint, so the many partial versions of
/// a tile, which are prefixes of one another and of the full tile, are stored
/// as deltas instead of whole copies. Then `git update-server-info` keeps the
/// dumb HTTP protocol's indexes current.
pub fn repack(path: &Path, full: bool) -> std::io::Result<()> {
    // One packing at a time in this process: two full repacks racing would
    // each keep the other's pack.
    let _guard = PACK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    repack_locked(path, full)
}

static PACK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn repack_locked(path: &Path, full: bool) -> std::io::Result<()> {
    let pack_dir = path.join("objects/pack");
    std::fs::create_dir_all(&pack_dir)?;
    // pack-objects runs with `-C path`: give it an absolute prefix.
    let pack_dir = pack_dir.canonicalize()?;
    let old_packs: Vec<PathBuf> = if full {
        std::fs::read_dir(&pack_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pack"))
            .collect()
    } else {
        Vec::new()
    };
    let mut list = git(path);
    list.args(["rev-list", "--objects", "--all"]);
    if !full {
        list.arg("--unpacked");
    }
    let objects = run(list, "git rev-list")?;
    if objects.trim().is_empty() {
        return Ok(());
    }
    let mut hinted = String::with_capacity(objects.len());
    for line in objects.lines() {
        match line.split_once(' ') {
            Some((oid, name)) => {
                let name = name.split_once(".p/").map_or(name, |(base, _)| base);
                hinted.push_str(oid);
                hinted.push(' ');
                hinted.push_str(name);
            }
            None => hinted.push_str(line),
        }
        hinted.push('\n');
    }
    let mut pack = git(path);
    pack.args(["pack-objects", "-q", "--window=16", "--depth=64"])
        .arg(pack_dir.join("pack"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = pack.spawn()?;
    {
        use std::io::Write as _;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        stdin.write_all(hinted.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "git pack-objects failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let new_pack = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    {
        let _write = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        for old in old_packs {
            if old
                .file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with(&new_pack))
            {
                continue;
            }
            for ext in ["pack", "idx", "rev", "bitmap"] {
                let _ = std::fs::remove_file(old.with_extension(ext));
            }
        }
        run(
            {
                let mut c = git(path);
                c.arg("prune-packed");
                c
            },
            "git prune-packed",
        )?;
        run(
            {
                let mut c = git(path);
                c.arg("update-server-info");
                c
            },
            "git update-server-info",
        )?;
    }
    // Incremental packs accumulate; fold them into one now and then.
    if !full {
        let packs = std::fs::read_dir(&pack_dir)?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .count();
        if packs > MAX_PACKS {
            return repack_locked(path, true);
        }
    }
    Ok(())
}

/// Beyond this many packs, maintenance repacks everything into one.
pub const MAX_PACKS: usize = 16;

/// Every blob path and id under `prefix` in `tree`.
pub fn list_blobs(
    repo: &gix::Repository,
    tree: ObjectId,
    prefix: &str,
) -> Result<Vec<(String, ObjectId)>, LedgerError> {
    let tree = repo.find_tree(tree).map_err(|e| git_err("reading a tree", e))?;
    let mut rec = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut rec)
        .map_err(|e| git_err("walking a tree", e))?;
    Ok(rec
        .records
        .into_iter()
        .filter(|r| r.mode.is_blob())
        .map(|r| (r.filepath.to_string(), r.oid))
        .filter(|(p, _)| p.starts_with(prefix))
        .collect())
}
