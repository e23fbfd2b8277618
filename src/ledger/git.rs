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
pub struct LedgerRepo {
    repo: gix::ThreadSafeRepository,
    path: PathBuf,
    /// Set while this repository's background packing runs.
    packing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Packs written by publications since the last consolidation, with the
    /// commit each one published.
    published_packs: std::sync::Arc<std::sync::Mutex<Vec<(PathBuf, ObjectId)>>>,
    /// The publication up to which publications' packs were consolidated.
    consolidated: std::sync::Arc<std::sync::Mutex<Option<ObjectId>>>,
}

/// The commit at the tip of [`BRANCH`] and its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The commit.
    pub commit: ObjectId,
    /// Its tree.
    pub tree: ObjectId,
    /// Its commit time: when it was published (Unix seconds).
    pub time: i64,
}

fn git_err(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Git(format!("{what}: {e}"))
}

impl LedgerRepo {
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
        // Every publication adds a pack until maintenance folds them: give the
        // object store room for many (each slot is a few dozen bytes).
        let opts = gix::open::Options::isolated()
            .object_store_slots(gix::odb::store::init::Slots::Given(PACK_SLOTS));
        let repo = gix::open_opts(path, opts).map_err(|e| git_err("opening the ledger repository", e))?;
        let store = LedgerRepo {
            repo: repo.into_sync(),
            path: path.to_owned(),
            packing: Default::default(),
            published_packs: Default::default(),
            consolidated: Default::default(),
        };
        // What is published so far is packed already (or loose, folded by
        // the next full repack): consolidation starts after it.
        let head = store.head()?.map(|h| h.commit);
        *store.consolidated.lock().unwrap_or_else(|p| p.into_inner()) = head;
        Ok(store)
    }

    /// Opens an existing repository (bare, or a clone's `.git`) read-only.
    ///
    /// (Takes no write lock: readers may run beside a writer.)
    pub fn open_existing(path: &Path) -> Result<Self, LedgerError> {
        let opts = gix::open::Options::isolated()
            .object_store_slots(gix::odb::store::init::Slots::Given(PACK_SLOTS));
        let repo =
            gix::open_opts(path, opts).map_err(|e| git_err(&format!("opening {}", path.display()), e))?;
        Ok(LedgerRepo {
            repo: repo.into_sync(),
            path: path.to_owned(),
            packing: Default::default(),
            published_packs: Default::default(),
            consolidated: Default::default(),
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
        let time = commit
            .time()
            .map_err(|e| git_err("reading the head commit's time", e))?
            .seconds;
        Ok(Some(Head {
            commit: commit.id,
            tree: tree.detach(),
            time,
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

    /// A commit's time (Unix seconds).
    pub fn commit_time(&self, commit: ObjectId) -> Result<i64, LedgerError> {
        Ok(self
            .local()
            .find_commit(commit)
            .map_err(|e| git_err("reading a commit", e))?
            .time()
            .map_err(|e| git_err("reading a commit's time", e))?
            .seconds)
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
        // Packing deletes packs it folded; never while a publication writes.
        let _write = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // Every object of the publication is collected in memory and written
        // as one pack: a file per object (loose objects) made the publisher
        // filesystem-bound (BENCHMARKS.md, intake).
        let mut repo = self.local().with_object_memory();
        let base_tree = base.map_or_else(|| ObjectId::empty_tree(repo.object_hash()), |h| h.tree);
        // gix's high-level writes ask the object database whether every
        // object (and every entry of every tree written) exists — a search
        // of every pack index and a stat of the loose directory each, which
        // dominated publishing. Everything written here is new or harmlessly
        // repeated, and each tree entry was just written or read from a
        // tree: write straight into the in-memory store instead.
        use gix::objs::Write as _;
        let root: gix::objs::Tree = if base.is_some() {
            repo.find_tree(base_tree)
                .map_err(|e| git_err("reading the tree", e))?
                .decode()
                .map_err(|e| git_err("decoding the tree", e))?
                .into()
        } else {
            gix::objs::Tree::empty()
        };
        let mut editor = gix::objs::tree::Editor::new(root, &repo.objects, repo.object_hash());
        for path in removes {
            editor
                .remove(path.split('/'))
                .map_err(|e| git_err(&format!("removing {path}"), e))?;
        }
        for (path, bytes) in upserts {
            let id = repo
                .objects
                .write_buf(gix::objs::Kind::Blob, bytes)
                .map_err(|e| git_err(&format!("writing {path}"), e))?;
            editor
                .upsert(path.split('/'), gix::object::tree::EntryKind::Blob, id)
                .map_err(|e| git_err(&format!("adding {path}"), e))?;
        }
        let tree = editor
            .write(|t| repo.objects.write(t))
            .map_err(|e| git_err("writing the tree", e))?;
        drop(editor);
        let now = gix::date::Time::now_utc();
        let sig = gix::actor::Signature {
            name: "tally".into(),
            email: "tally@localhost".into(),
            time: now,
        };
        let parents: Vec<ObjectId> = base.map(|h| h.commit).into_iter().collect();
        let commit_obj = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: sig.clone(),
            committer: sig,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        let commit = repo
            .objects
            .write(&commit_obj)
            .map_err(|e| git_err("writing the commit", e))?;
        let objects = repo.objects.take_object_memory().unwrap_or_default();
        let pack = write_pack(&self.path, &objects)?;
        // The objects are durable; now move main, refusing a stale parent.
        use gix::refs::transaction::PreviousValue;
        let constraint = match base {
            Some(h) => PreviousValue::MustExistAndMatch(gix::refs::Target::Object(h.commit)),
            None => PreviousValue::MustNotExist,
        };
        self.local()
            .reference(
                BRANCH,
                commit,
                constraint,
                message.lines().next().unwrap_or("publish"),
            )
            .map_err(|e| git_err("moving main to the publication", e))?;
        // Only a pack main reaches is folded by the background packing.
        self.published_packs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((pack, commit));
        // HEAD of a new bare repository may name another branch; point it at main.
        let head_file = self.path.join("HEAD");
        if std::fs::read_to_string(&head_file).map_or(true, |h| h.trim() != format!("ref: {BRANCH}")) {
            crate::fsutil::write_atomic(&head_file, format!("ref: {BRANCH}\n").as_bytes(), 0o644, true)
                .map_err(LedgerError::io("writing HEAD"))?;
        }
        self.write_info_refs(commit)?;
        Ok(Head {
            commit,
            tree,
            time: now.seconds,
        })
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
        let packs = std::mem::take(&mut *self.published_packs.lock().unwrap_or_else(|p| p.into_inner()));
        let base_slot = self.consolidated.clone();
        let base = *base_slot.lock().unwrap_or_else(|p| p.into_inner());
        let tip = packs.last().map(|p| p.1);
        let spawned = std::thread::Builder::new()
            .name("tally-repack".into())
            .spawn(move || {
                let r = if packs.is_empty() {
                    repack(&path, false)
                } else {
                    consolidate(&path, &packs, base)
                };
                match r {
                    Ok(()) => {
                        if tip.is_some() {
                            *base_slot.lock().unwrap_or_else(|p| p.into_inner()) = tip;
                        }
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "ledger: packing {} failed (will retry later)",
                        path.display()
                    ),
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
    // Listed under the write lock: a publication writes its pack and moves
    // main under it, so every pack listed here belongs to a publication that
    // `rev-list --all` below sees, and its objects go into the new pack.
    let listing = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let old_packs: Vec<PathBuf> = if full {
        std::fs::read_dir(&pack_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pack"))
            .collect()
    } else {
        Vec::new()
    };
    drop(listing);
    let mut list = git(path);
    list.args(["rev-list", "--objects", "--all"]);
    if !full {
        list.arg("--unpacked");
    }
    let objects = run(list, "git rev-list")?;
    if objects.trim().is_empty() {
        return Ok(());
    }
    let out = pack_objects(path, &pack_dir, &objects, 16, false)?;
    let new_pack = out;
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

/// Folds the packs of successive publications into one: the objects
/// introduced after `base` up to the last of them, with the delta hints of
/// [`repack`]; then removes the folded packs.
fn consolidate(path: &Path, packs: &[(PathBuf, ObjectId)], base: Option<ObjectId>) -> std::io::Result<()> {
    let _guard = PACK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(&(_, tip)) = packs.last() else {
        return Ok(());
    };
    let pack_dir = path.join("objects/pack").canonicalize()?;
    let mut list = git(path);
    list.args(["rev-list", "--objects"]).arg(tip.to_string());
    if let Some(b) = base {
        list.arg("--not").arg(b.to_string());
    }
    let objects = run(list, "git rev-list")?;
    // No delta search: consolidation runs often and only merges packs; the
    // full repack that folds consolidated packs searches deltas thoroughly.
    pack_objects(path, &pack_dir, &objects, 0, true)?;
    {
        let _write = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        for (p, _) in packs {
            for ext in ["idx", "pack", "rev", "bitmap"] {
                let _ = std::fs::remove_file(p.with_extension(ext));
            }
        }
        write_info_packs(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    let count = std::fs::read_dir(&pack_dir)?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count();
    if count > MAX_PACKS {
        return repack_locked(path, true);
    }
    Ok(())
}

/// Runs `git pack-objects` over `objects` (`rev-list --objects` output),
/// giving every partial tile its full tile's name as the delta hint; returns
/// the new pack's name.
fn pack_objects(
    path: &Path,
    pack_dir: &Path,
    objects: &str,
    window: u32,
    reuse: bool,
) -> std::io::Result<String> {
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
    pack.args(["pack-objects", "-q", &format!("--window={window}"), "--depth=64"]);
    if !reuse {
        // Objects of the publications' packs are stored whole; reusing them
        // copies them as they are instead of searching deltas for them
        // (measured: 94 instead of 35 bytes per entry).
        pack.arg("--no-reuse-object");
    }
    pack.arg(pack_dir.join("pack"))
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
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Beyond this many packs, maintenance repacks everything into one.
pub const MAX_PACKS: usize = 64;

/// Pack indices the object store can hold at once.
const PACK_SLOTS: u16 = 8192;

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

/// A pack and its index, encoded.
#[derive(Debug)]
pub struct EncodedPack {
    /// The pack's checksum (its name).
    pub id: ObjectId,
    /// The version-2 pack.
    pub pack: Vec<u8>,
    /// Its version-2 index.
    pub idx: Vec<u8>,
}

/// Encodes `objects` as one version-2 pack (whole objects, zlib level 1)
/// and its version-2 index.
///
/// Our own writer rather than gix-pack's, by measurement (`cargo bench
/// --bench pack`, BENCHMARKS.md): gix-pack builds each entry with a fresh
/// deflate stream (`output::Entry::from_data`), and its index writer
/// (`index::File::write_data_iter_to_stream`) re-reads the pack it was given,
/// inflating and hashing every object again to learn ids, offsets and CRCs
/// that the writer of the pack already knows. Here one compressor is reset
/// per object and the index is built from what was just written.
pub fn encode_pack(objects: &gix::odb::memory::Storage) -> Result<EncodedPack, LedgerError> {
    let mut sorted: Vec<(&ObjectId, &(gix::object::Kind, Vec<u8>))> = objects.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut pack = Vec::with_capacity(objects.values().map(|o| o.1.len() / 2 + 32).sum::<usize>() + 32);
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&(sorted.len() as u32).to_be_bytes());
    let mut offsets = Vec::with_capacity(sorted.len());
    let mut crcs = Vec::with_capacity(sorted.len());
    let mut comp = flate2::Compress::new(flate2::Compression::new(1), true);
    for (_, (kind, data)) in &sorted {
        let start = pack.len();
        let code: u8 = match kind {
            gix::object::Kind::Commit => 1,
            gix::object::Kind::Tree => 2,
            gix::object::Kind::Blob => 3,
            gix::object::Kind::Tag => 4,
        };
        let mut size = data.len();
        let mut byte = (code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            pack.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(byte);
        // One compressor, reset per object: a fresh one per object spent
        // most of its time allocating and clearing its tables.
        comp.reset();
        let mut input: &[u8] = data;
        loop {
            if pack.capacity() - pack.len() < 4096 {
                pack.reserve(input.len() + (64 << 10));
            }
            let before = comp.total_in();
            let status = comp
                .compress_vec(input, &mut pack, flate2::FlushCompress::Finish)
                .map_err(|e| LedgerError::Corrupt(format!("compressing an object: {e}")))?;
            input = &input[(comp.total_in() - before) as usize..];
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        offsets.push(start as u64);
        crcs.push(crc32fast::hash(&pack[start..]));
    }
    let sha1 = |bytes: &[u8]| -> Result<ObjectId, LedgerError> {
        let mut h = gix::hash::hasher(gix::hash::Kind::Sha1);
        h.update(bytes);
        h.try_finalize().map_err(|e| git_err("hashing the pack", e))
    };
    let pack_sum = sha1(&pack)?;
    pack.extend_from_slice(pack_sum.as_bytes());

    let mut idx = Vec::with_capacity(8 + 1024 + sorted.len() * 28 + 40);
    idx.extend_from_slice(&[0xff, b't', b'O', b'c']);
    idx.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (id, _) in &sorted {
        fanout[usize::from(id.as_bytes()[0])] += 1;
    }
    let mut running = 0u32;
    for f in fanout {
        running += f;
        idx.extend_from_slice(&running.to_be_bytes());
    }
    for (id, _) in &sorted {
        idx.extend_from_slice(id.as_bytes());
    }
    for c in &crcs {
        idx.extend_from_slice(&c.to_be_bytes());
    }
    let mut large = Vec::new();
    for &o in &offsets {
        if o < 0x8000_0000 {
            idx.extend_from_slice(&(o as u32).to_be_bytes());
        } else {
            idx.extend_from_slice(&(0x8000_0000u32 | large.len() as u32).to_be_bytes());
            large.push(o);
        }
    }
    for o in large {
        idx.extend_from_slice(&o.to_be_bytes());
    }
    idx.extend_from_slice(pack_sum.as_bytes());
    let idx_sum = sha1(&idx)?;
    idx.extend_from_slice(idx_sum.as_bytes());

    Ok(EncodedPack {
        id: pack_sum,
        pack,
        idx,
    })
}

/// Writes `objects` as one pack ([`encode_pack`]) and its index into
/// `objects/pack`: temporary files, fsync, the pack renamed into place before
/// the index (git and gix find packs by their index), the directory fsync'd;
/// then `objects/info/packs` is rewritten so dumb-HTTP clients see the pack.
/// Returns the pack's path.
pub fn write_pack(repo: &Path, objects: &gix::odb::memory::Storage) -> Result<PathBuf, LedgerError> {
    use std::io::Write as _;
    let EncodedPack {
        id: pack_sum,
        pack,
        idx,
    } = encode_pack(objects)?;
    let dir = repo.join("objects/pack");
    std::fs::create_dir_all(&dir).map_err(LedgerError::io("creating objects/pack"))?;
    let name = format!("pack-{}", pack_sum.to_hex());
    let write = |ext: &str, bytes: &[u8]| -> Result<(), LedgerError> {
        let tmp = dir.join(format!(".tmp-{}-{name}.{ext}", std::process::id()));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, dir.join(format!("{name}.{ext}"))));
        written.map_err(|e| {
            // Nothing half-written stays behind (a full disk frees it).
            let _ = std::fs::remove_file(&tmp);
            LedgerError::io(&format!("writing {name}.{ext}"))(e)
        })
    };
    write("pack", &pack)?;
    write("idx", &idx)?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(LedgerError::io("syncing objects/pack"))?;
    write_info_packs(repo)?;
    Ok(dir.join(format!("{name}.pack")))
}

/// `objects/info/packs` (what `git update-server-info` writes for packs).
pub fn write_info_packs(repo: &Path) -> Result<(), LedgerError> {
    let dir = repo.join("objects/pack");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(LedgerError::io("listing objects/pack"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pack-") && n.ends_with(".pack"))
        .filter(|n| dir.join(n.replace(".pack", ".idx")).exists())
        .collect();
    names.sort();
    let mut text = String::new();
    for n in names {
        text.push_str(&format!("P {n}\n"));
    }
    text.push('\n');
    std::fs::create_dir_all(repo.join("objects/info")).map_err(LedgerError::io("creating objects/info"))?;
    crate::fsutil::write_atomic(&repo.join("objects/info/packs"), text.as_bytes(), 0o644, true)
        .map_err(LedgerError::io("writing objects/info/packs"))
}
