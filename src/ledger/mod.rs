//! The ledger: a git-backed, crash-safe tiled transparency log.
//!
//! An entry goes through three stages, named the same everywhere:
//!
//! - **sequenced** — the sequencer thread wrote it to the sequencing log
//!   (`seq/`, see [`wal`]) and `fdatasync`'d it; only then is the caller told
//!   its index. Concurrent appends that arrive while a sync runs share the next
//!   one (group commit); nothing waits for a timer.
//! - **integrated** — the publisher thread appended its leaf hash to the
//!   compact range and computed the tiles and entry bundles it changes.
//! - **published** — those tiles, bundles, bodies and a newly signed
//!   checkpoint were committed to `ledger.git` on `main` and synced.
//!
//! Before signing, the new checkpoint is proven consistent with the last
//! signed one (`state/checkpoint`, replaced atomically before the git commit),
//! so the log never signs two inconsistent checkpoints, even across a crash.
//!
//! With a [`cosign::Cosign`] configured, the publisher hands each signed
//! checkpoint to the witnesses before committing it, and commits the note
//! with their cosignatures (holding it back or publishing it short of its
//! quorum, as configured); appends never wait on a witness. A new ledger
//! publishes a signed checkpoint of size 0 at once, so an empty log can be
//! monitored and witnessed from its start.
//!
//! Not here: HTTP (the server serves what this stores), contracts, OCI,
//! witness URLs and policies (`witness`).

pub mod cosign;
pub mod fsck;
pub mod git;
pub mod wal;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_format::checkpoint::{verify_checkpoint, Checkpoint};
use ledger_format::hash::{leaf_hash, sha256, Hash};
use ledger_format::merkle::{
    consistency_proof, inclusion_proof, verify_consistency, CompactRange, ProofError,
};
use ledger_format::note::{SignerKey, VerifierKey};
use ledger_format::tile::{
    decode_bundle, decode_tile, encode_bundle, encode_index, encode_tile, level_count, BundleId,
    ExpandedTile, TileId, TileNodes, TileReader, TiledHashes, TILE_HEIGHT, TILE_WIDTH,
};

use self::git::{Head, LedgerRepo};
use self::wal::Record;

/// A batch of fewer appends than this waits [`LedgerConfig::group_commit_delay`]
/// for more when the ledger is busy; 64 concurrent writers blocked on their
/// appends already arrive together (measured: 32 keeps `tally-bench ledger`
/// at its rate and gives intake its largest gain).
const GROUP_COMMIT_SMALL_BATCH: usize = 32;

/// A signed checkpoint: its size, root and note text.
type Signed = (u64, Hash, String);

/// The first wait before a failed publication is retried; it doubles up to
/// [`LAST_RETRY`] while the fault lasts.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between retries of a failed publication.
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Largest entry the log accepts: an entry bundle's u16 length prefix.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A filesystem operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The git repository could not be read or written.
    #[error("ledger repository: {0}")]
    Git(String),
    /// Stored data contradicts itself; the ledger refuses to go on.
    #[error("the ledger is damaged: {0}")]
    Corrupt(String),
    /// The entry is empty or larger than the limit.
    #[error("entry of {size} bytes is not accepted: entries must be 1..={limit} bytes")]
    EntrySize {
        /// The entry's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A body is larger than the limit.
    #[error("body of {size} bytes is over the {limit}-byte limit")]
    BodyTooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Asked about something beyond the published log.
    #[error("{what} is beyond the published log of size {published}")]
    Beyond {
        /// What was asked for.
        what: String,
        /// The published size.
        published: u64,
    },
    /// A proof could not be made.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The ledger is shut down, or a background thread failed.
    #[error("the ledger is not accepting appends: {0}")]
    Stopped(String),
    /// The ledger cannot take appends for now (a full disk, an I/O error,
    /// a publication backlog it cannot drain); it recovers by itself.
    #[error("the ledger cannot take appends for now: {0}")]
    Unavailable(String),
    /// Another process has the ledger open.
    #[error("another process holds the ledger lock {0}; stop it first")]
    Locked(PathBuf),
}

impl LedgerError {
    /// Whether the ledger cannot go on after it (stored data contradicts
    /// itself, another process holds it), as opposed to a fault that may
    /// pass (a full disk, an I/O error), which the ledger retries.
    pub fn is_lasting(&self) -> bool {
        matches!(
            self,
            LedgerError::Corrupt(_) | LedgerError::Proof(_) | LedgerError::Locked(_)
        )
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: &str) -> impl FnOnce(io::Error) -> LedgerError + '_ {
        move |source| LedgerError::Io {
            what: what.to_owned(),
            source,
        }
    }
}

/// How a ledger is opened.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The ledger's directory (`ledger.git`, `seq/`, `state/`).
    pub dir: PathBuf,
    /// The log's note signing key; its name is the log's origin.
    pub signer: SignerKey,
    /// Largest entry accepted (at most [`MAX_ENTRY_BYTES`]).
    pub max_entry_bytes: usize,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Most appends sequenced in one write + sync.
    pub max_batch: usize,
    /// Pack loose git objects every this many publications (0: never).
    pub repack_every: u64,
    /// Most entries sequenced but not yet published; the sequencer waits
    /// (and appends queue) beyond it, which bounds memory and the time from
    /// sequenced to published under overload.
    pub max_backlog: u64,
    /// Least time between the starts of two publications: entries sequenced
    /// meanwhile are published together (an idle ledger publishes at once).
    pub publish_interval: std::time::Duration,
    /// How long the sequencer lets appends gather before a write + sync
    /// when the previous sync ended less than four times this ago (busy);
    /// zero: never wait.
    pub group_commit_delay: std::time::Duration,
    /// Witnesses to cosign each signed checkpoint before it is published.
    pub cosigner: Option<Arc<dyn cosign::Cosign>>,
}

impl LedgerConfig {
    /// Defaults for a ledger in `dir` signed by `signer`.
    pub fn new(dir: impl Into<PathBuf>, signer: SignerKey) -> Self {
        LedgerConfig {
            dir: dir.into(),
            signer,
            max_entry_bytes: MAX_ENTRY_BYTES,
            max_body_bytes: 16 << 20,
            max_batch: 8192,
            repack_every: 32,
            max_backlog: 32_768,
            publish_interval: std::time::Duration::from_millis(100),
            group_commit_delay: std::time::Duration::from_micros(500),
            cosigner: None,
        }
    }
}

/// The answer to an append: the entry's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The entry's index in the log.
    pub index: u64,
    /// True when the same entry was already in the log (no new leaf).
    pub duplicate: bool,
}

/// The three sizes of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sizes {
    /// Entries durably given an index.
    pub sequenced: u64,
    /// Entries in the Merkle tree (tiles computed).
    pub integrated: u64,
    /// Entries covered by the latest signed, committed checkpoint.
    pub published: u64,
}

/// One publication of the log: a commit of `ledger.git`'s `main` and the
/// signed checkpoint it published.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The commit.
    pub commit: gix::ObjectId,
    /// When (the commit's time, Unix seconds).
    pub time: i64,
    /// The checkpoint's tree size.
    pub size: u64,
    /// The checkpoint's root hash.
    pub root: Hash,
    /// The signed checkpoint's text, as published (with its cosignatures).
    pub checkpoint: String,
}

/// What the latest publication is.
#[derive(Debug, Clone, Default)]
struct Published {
    size: u64,
    root: Hash,
    checkpoint: Arc<str>,
    head: Option<Head>,
    count: u64,
}

struct State {
    sequenced: u64,
    integrated: u64,
    pending: VecDeque<Record>,
    by_hash: HashMap<Hash, u64>,
    published: Published,
    closing: bool,
    /// A fault the ledger cannot go on after (stored data that contradicts
    /// itself): appends are refused until a restart.
    failed: Option<String>,
    /// Why the sequencing log cannot be written now (a full disk, an I/O
    /// error); cleared by the next append that succeeds.
    append_fault: Option<String>,
    /// Why the publisher cannot publish now; it retries with backoff from
    /// what is durable and clears this once a publication succeeds.
    publish_fault: Option<String>,
    witnessing: cosign::Witnessing,
}

type Reply = tokio::sync::oneshot::Sender<Result<Appended, LedgerError>>;

struct Request {
    leaf: Hash,
    record: Record,
    reply: Reply,
}

struct Inner {
    cfg: LedgerConfig,
    git: LedgerRepo,
    state: Mutex<State>,
    /// Signalled when entries are sequenced or closing starts.
    work: Condvar,
    /// Signalled on every publication and on failure.
    published: Condvar,
    tiles: TileCache,
    seq_dir: PathBuf,
    state_dir: PathBuf,
    sequenced_counter: AtomicU64,
}

/// A ledger open for appends and reads.
pub struct Ledger {
    inner: Arc<Inner>,
    /// The entries sequenced but not published when the ledger opened (the
    /// published size then, and their bytes), until taken.
    recovered: Mutex<Option<(u64, Vec<Vec<u8>>)>>,
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: File,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ledger({})", self.inner.cfg.dir.display())
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in another thread while holding the lock leaves consistent
    // data (every update is a single assignment); keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The publication git's head holds (the empty tree when there is none).
fn read_published(git: &LedgerRepo, verifier: &VerifierKey, origin: &str) -> Result<Published, LedgerError> {
    let Some(h) = git.head()? else {
        return Ok(Published {
            root: ledger_format::empty_root(),
            ..Published::default()
        });
    };
    let text = git
        .read(h.tree, "checkpoint")?
        .ok_or_else(|| LedgerError::Corrupt("the head commit has no checkpoint".into()))?;
    let v = verify_checkpoint(&text, verifier, &[], Some(origin))
        .map_err(|e| LedgerError::Corrupt(format!("the published checkpoint: {e}")))?;
    Ok(Published {
        size: v.size(),
        root: v.root(),
        checkpoint: Arc::from(String::from_utf8_lossy(&text).as_ref()),
        head: Some(h),
        count: 0,
    })
}

/// The last signed checkpoint (`state/checkpoint`, else the published one):
/// size, root and text. Never older than the published one.
fn read_signed(
    path: &Path,
    verifier: &VerifierKey,
    origin: &str,
    published: &Published,
) -> Result<Signed, LedgerError> {
    match std::fs::read(path) {
        Ok(text) => {
            let v = verify_checkpoint(&text, verifier, &[], Some(origin))
                .map_err(|e| LedgerError::Corrupt(format!("{}: {e}", path.display())))?;
            if v.size() < published.size {
                return Err(LedgerError::Corrupt(format!(
                    "the last signed checkpoint (size {}) is older than the published one (size {})",
                    v.size(),
                    published.size
                )));
            }
            Ok((v.size(), v.root(), String::from_utf8_lossy(&text).into_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Ok((published.size, published.root, published.checkpoint.to_string()))
        }
        Err(e) => Err(LedgerError::io("reading the last signed checkpoint")(e)),
    }
}

/// Path of a body stored with the entry at `index`: `bodies/<N>/<64 hex>`,
/// where `<N>` names the entry bundle holding the entry (`tile/entries/<N>`,
/// encoded the same way) and the file name is the SHA-256 of the body.
///
/// Grouped by bundle, a publication adds files to the last one or two
/// directories only; the earlier layout by digest prefix rewrote hundreds of
/// trees in every publication (BENCHMARKS.md, intake).
pub fn body_path(index: u64, digest: &Hash) -> String {
    format!("bodies/{}/{}", encode_index(index / TILE_WIDTH), digest.to_hex())
}

/// Decoded tiles by (level, index): the latest version of each (full, or the
/// partial at the published size). Partials of older sizes are prefixes.
#[derive(Default)]
struct TileCache {
    tiles: std::sync::RwLock<TileMap>,
}

/// Decoded tiles by (tile level, tile index).
type TileMap = HashMap<(u8, u64), Arc<ExpandedTile>>;

/// Most tiles kept decoded in memory (8 KiB each).
const TILE_CACHE_MAX: usize = 32_768;

impl TileCache {
    fn get(&self, level: u8, index: u64) -> Option<Arc<ExpandedTile>> {
        self.tiles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(level, index))
            .cloned()
    }
    fn put(&self, level: u8, index: u64, hashes: Arc<ExpandedTile>) {
        let mut t = self.tiles.write().unwrap_or_else(|p| p.into_inner());
        if t.len() >= TILE_CACHE_MAX {
            // Full tiles can always be read again from git; drop some.
            let victims: Vec<(u8, u64)> = t.keys().take(TILE_CACHE_MAX / 8).copied().collect();
            for v in victims {
                t.remove(&v);
            }
        }
        t.insert((level, index), hashes);
    }
}

/// Reads tiles of the published tree of `size` at git tree `head`, through
/// the cache, with an optional overlay of tiles not yet committed.
struct StoreTiles<'a> {
    inner: &'a Inner,
    head: Option<Head>,
    size: u64,
    overlay: Option<&'a TileMap>,
}

impl<'a> StoreTiles<'a> {
    /// The tiles of the publication `p`.
    fn at(inner: &'a Inner, p: &Published) -> Self {
        StoreTiles {
            inner,
            head: p.head,
            size: p.size,
            overlay: None,
        }
    }
}

impl TileReader for StoreTiles<'_> {
    type Error = LedgerError;
    type Tile = Arc<ExpandedTile>;
    fn read_tile(&self, tile: TileId) -> Result<Arc<ExpandedTile>, LedgerError> {
        let w = usize::from(tile.width);
        let found = self
            .overlay
            .and_then(|o| o.get(&(tile.level, tile.index)).cloned())
            .or_else(|| self.inner.tiles.get(tile.level, tile.index));
        if let Some(h) = found.filter(|h| h.hashes().len() >= w) {
            return Ok(h);
        }
        // The version stored at the published head.
        let stored = TileId::at(tile.level, tile.index, self.size);
        if stored.width == 0 || stored.width < tile.width {
            return Err(LedgerError::Corrupt(format!(
                "{} is not in the published tree",
                tile.path()
            )));
        }
        let head = self
            .head
            .ok_or_else(|| LedgerError::Corrupt("no published tree".into()))?;
        let bytes = self.inner.git.read(head.tree, &stored.path())?.ok_or_else(|| {
            LedgerError::Corrupt(format!("{} is missing from the published tree", stored.path()))
        })?;
        let hashes = decode_tile(stored, &bytes).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let hashes = Arc::new(ExpandedTile::new(hashes));
        self.inner.tiles.put(tile.level, tile.index, hashes.clone());
        Ok(hashes)
    }
}

/// The publisher's view of the right edge of the tree.
struct Edge {
    range: CompactRange,
    /// Per tile level, the hashes of the current partial tile.
    tiles: Vec<Vec<Hash>>,
    /// Entries of the current partial bundle.
    bundle: Vec<Vec<u8>>,
    /// The last signed checkpoint (size, root).
    signed: (u64, Hash),
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `cfg.dir`, recovering from
    /// any crash: every acknowledged entry is found in the sequencing log and
    /// whatever was sequenced but not published is integrated and published.
    pub fn open(cfg: LedgerConfig) -> Result<Ledger, LedgerError> {
        if cfg.max_entry_bytes == 0 || cfg.max_entry_bytes > MAX_ENTRY_BYTES {
            return Err(LedgerError::EntrySize {
                size: cfg.max_entry_bytes,
                limit: MAX_ENTRY_BYTES,
            });
        }
        let seq_dir = cfg.dir.join("seq");
        let state_dir = cfg.dir.join("state");
        for d in [&cfg.dir, &seq_dir, &state_dir] {
            std::fs::create_dir_all(d).map_err(LedgerError::io("creating the ledger directory"))?;
        }
        let lock_path = cfg.dir.join("lock");
        let lock_file = File::create(&lock_path).map_err(LedgerError::io("creating the ledger lock"))?;
        // Held elsewhere: another process has the ledger open — or, for a
        // moment, a child another thread of this process is starting holds a
        // copy of the descriptor of a just-closed ledger between its fork
        // and its exec. So a few tries over two seconds before giving up.
        let mut tries = 0;
        while rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            tries += 1;
            if tries > 40 {
                return Err(LedgerError::Locked(lock_path.clone()));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let git = LedgerRepo::open_or_init(&cfg.dir.join("ledger.git"))?;
        let verifier = cfg.signer.verifier();
        let origin = cfg.signer.name().to_owned();

        // What git holds (published) and what was last signed.
        let published = read_published(&git, &verifier, &origin)?;
        let signed = read_signed(&state_dir.join("checkpoint"), &verifier, &origin, &published)?;

        let inner = Arc::new(Inner {
            cfg,
            git,
            state: Mutex::new(State {
                sequenced: published.size,
                integrated: published.size,
                pending: VecDeque::new(),
                by_hash: HashMap::new(),
                published: published.clone(),
                closing: false,
                failed: None,
                append_fault: None,
                publish_fault: None,
                witnessing: cosign::Witnessing::default(),
            }),
            work: Condvar::new(),
            published: Condvar::new(),
            tiles: TileCache::default(),
            seq_dir,
            state_dir,
            sequenced_counter: AtomicU64::new(published.size),
        });

        // Rebuild the right edge and the dedup index from the published tiles.
        let edge = inner.load_edge(&published, (signed.0, signed.1))?;
        let mut by_hash = HashMap::with_capacity(published.size as usize);
        inner.index_published(&published, &mut by_hash)?;

        // Everything sequenced after the published size is in the sequencing log.
        let replay = wal::replay(&inner.seq_dir, published.size)?;
        if replay.first != published.size && !replay.records.is_empty() {
            return Err(LedgerError::Corrupt(format!(
                "the sequencing log resumes at index {}, not at the published size {}",
                replay.first, published.size
            )));
        }
        let recovered: Vec<Vec<u8>> = replay.records.iter().map(|r| r.entry.clone()).collect();
        let mut pending = VecDeque::with_capacity(replay.records.len());
        for (k, rec) in replay.records.into_iter().enumerate() {
            by_hash
                .entry(leaf_hash(&rec.entry))
                .or_insert(published.size + k as u64);
            pending.push_back(rec);
        }
        let sequenced = published.size + pending.len() as u64;
        if sequenced < signed.0 {
            return Err(LedgerError::Corrupt(format!(
                "the last signed checkpoint covers {} entries but only {sequenced} were sequenced",
                signed.0
            )));
        }
        if replay.truncated_bytes > 0 {
            tracing::warn!(
                bytes = replay.truncated_bytes,
                "ledger recovery: cut a torn, unacknowledged tail from the sequencing log"
            );
        }
        {
            let mut st = lock(&inner.state);
            st.sequenced = sequenced;
            st.pending = pending;
            st.by_hash = by_hash;
        }
        inner.sequenced_counter.store(sequenced, Ordering::Release);
        let writer = wal::Writer::open(&inner.seq_dir, sequenced)?;

        let (tx, rx) = mpsc::channel::<Request>();
        let seq_inner = inner.clone();
        let sequencer = std::thread::Builder::new()
            .name("tally-sequencer".into())
            .spawn(move || seq_inner.run_sequencer(rx, writer))
            .map_err(LedgerError::io("starting the sequencer"))?;
        let pub_inner = inner.clone();
        let recover_to = (signed.0 > published.size).then_some(signed);
        let publisher = std::thread::Builder::new()
            .name("tally-publisher".into())
            .spawn(move || pub_inner.run_publisher(edge, recover_to))
            .map_err(LedgerError::io("starting the publisher"))?;
        Ok(Ledger {
            recovered: Mutex::new(Some((published.size, recovered))),
            inner,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![sequencer, publisher]),
            _lock: lock_file,
        })
    }

    /// Submits an entry (with the bodies it points to); the receiver yields
    /// its index once it is sequenced (durable).
    pub fn submit(
        &self,
        entry: Vec<u8>,
        bodies: Vec<Vec<u8>>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Appended, LedgerError>>, LedgerError> {
        let limit = self.inner.cfg.max_entry_bytes;
        if entry.is_empty() || entry.len() > limit {
            return Err(LedgerError::EntrySize {
                size: entry.len(),
                limit,
            });
        }
        for b in &bodies {
            if b.len() > self.inner.cfg.max_body_bytes {
                return Err(LedgerError::BodyTooLarge {
                    size: b.len(),
                    limit: self.inner.cfg.max_body_bytes,
                });
            }
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = Request {
            leaf: leaf_hash(&entry),
            record: Record { entry, bodies },
            reply,
        };
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else {
            return Err(LedgerError::Stopped("the ledger is closing".into()));
        };
        tx.send(req).map_err(|_| {
            LedgerError::Stopped(self.failure().unwrap_or_else(|| "the sequencer stopped".into()))
        })?;
        Ok(rx)
    }

    /// Appends an entry and blocks until it is sequenced.
    pub fn append(&self, entry: Vec<u8>, bodies: Vec<Vec<u8>>) -> Result<Appended, LedgerError> {
        self.submit(entry, bodies)?.blocking_recv().map_err(|_| {
            LedgerError::Stopped(self.failure().unwrap_or_else(|| "the sequencer stopped".into()))
        })?
    }

    fn failure(&self) -> Option<String> {
        lock(&self.inner.state).failed.clone()
    }

    /// The entries that were sequenced but not yet published when the
    /// ledger opened, read from the sequencing log: the published size at
    /// open (the first one's index) and their bytes. Given once; later
    /// calls get none. What acknowledged before a crash is known here at
    /// once, without waiting for its publication.
    pub fn take_recovered(&self) -> (u64, Vec<Vec<u8>>) {
        let taken = self.recovered.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.unwrap_or_else(|| (self.sizes().published, Vec::new()))
    }

    /// The sequenced, integrated and published sizes.
    pub fn sizes(&self) -> Sizes {
        let st = lock(&self.inner.state);
        Sizes {
            sequenced: st.sequenced,
            integrated: st.integrated,
            published: st.published.size,
        }
    }

    /// Why the ledger cannot append or publish right now, if it cannot: a
    /// fault it stopped on, or one it retries until it clears (a full disk).
    pub fn fault(&self) -> Option<String> {
        let st = lock(&self.inner.state);
        st.failed
            .clone()
            .or_else(|| st.publish_fault.clone())
            .or_else(|| st.append_fault.clone())
    }

    /// Whether the published checkpoint carries its witness quorum; `None`
    /// when no witnesses are configured.
    pub fn witnessing(&self) -> Option<cosign::Witnessing> {
        self.inner.cfg.cosigner.as_ref()?;
        Some(lock(&self.inner.state).witnessing)
    }

    /// The latest published signed checkpoint, with the cosignatures it
    /// gathered (empty before the first publication, which a new ledger
    /// makes at once: the empty tree).
    pub fn checkpoint(&self) -> String {
        lock(&self.inner.state).published.checkpoint.to_string()
    }

    /// Publications newest first, from commit `from` (default: the
    /// published head), at most `limit`, and the commit the next ones start
    /// at. Each commit's checkpoint must verify under the log's key (a
    /// commit that is not a publication of this log is an error). Blocking.
    pub fn publications(
        &self,
        from: Option<gix::ObjectId>,
        limit: usize,
    ) -> Result<(Vec<Publication>, Option<gix::ObjectId>), LedgerError> {
        let git = &self.inner.git;
        let verifier = self.inner.cfg.signer.verifier();
        let origin = self.inner.cfg.signer.name();
        let mut next = match from {
            Some(c) => Some(c),
            None => self.published().head.map(|h| h.commit),
        };
        let mut out = Vec::new();
        while let Some(commit) = next {
            if out.len() >= limit {
                break;
            }
            let (_, parents, tree) = git.commit_info(commit)?;
            let text = git
                .read(tree, "checkpoint")?
                .ok_or_else(|| LedgerError::Corrupt(format!("commit {commit} has no checkpoint")))?;
            let v = verify_checkpoint(&text, &verifier, &[], Some(origin))
                .map_err(|e| LedgerError::Corrupt(format!("the checkpoint of commit {commit}: {e}")))?;
            out.push(Publication {
                commit,
                time: git.commit_time(commit)?,
                size: v.size(),
                root: v.root(),
                checkpoint: String::from_utf8_lossy(&text).into_owned(),
            });
            next = parents.first().copied();
        }
        Ok((out, next))
    }

    /// When the published checkpoint was published (Unix seconds; `None`
    /// before the first publication).
    pub fn published_at(&self) -> Option<i64> {
        lock(&self.inner.state).published.head.as_ref().map(|h| h.time)
    }

    /// Blocks until the published size exceeds `index` (or `timeout`);
    /// returns the published size.
    pub fn wait_published(&self, index: u64, timeout: Duration) -> Result<u64, LedgerError> {
        let st = self.wait_while(timeout, |st| st.published.size <= index);
        match &st.failed {
            Some(f) if st.published.size <= index => Err(LedgerError::Stopped(f.clone())),
            _ => Ok(st.published.size),
        }
    }

    /// Blocks until a publication newer than `after` (a publication count).
    pub fn wait_publication(&self, after: u64, timeout: Duration) -> (u64, u64) {
        let st = self.wait_while(timeout, |st| st.published.count <= after);
        (st.published.count, st.published.size)
    }

    /// Waits on publications while `pending` holds, until `timeout` or a failure.
    fn wait_while(&self, timeout: Duration, pending: impl Fn(&State) -> bool) -> MutexGuard<'_, State> {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.inner.state);
        while pending(&st) && st.failed.is_none() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .inner
                .published
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st
    }

    fn published(&self) -> Published {
        lock(&self.inner.state).published.clone()
    }

    /// Checks that `size` is published.
    fn check_size(p: &Published, size: u64) -> Result<(), LedgerError> {
        if size > p.size {
            return Err(LedgerError::Beyond {
                what: format!("tree size {size}"),
                published: p.size,
            });
        }
        Ok(())
    }

    /// Inclusion proof of `index` in the published tree of `size`, from tiles.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        let p = self.published();
        Self::check_size(&p, size)?;
        let tiles = StoreTiles::at(&self.inner, &p);
        Ok(inclusion_proof(index, size, &TiledHashes::new(&tiles, size))?)
    }

    /// Consistency proof between two published tree sizes, from tiles.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        let p = self.published();
        Self::check_size(&p, new)?;
        let tiles = StoreTiles::at(&self.inner, &p);
        Ok(consistency_proof(old, new, &TiledHashes::new(&tiles, new))?)
    }

    /// Inclusion proof of the published entry with `leaf` hash, in the tree of `size`.
    pub fn inclusion_proof_by_hash(&self, leaf: &Hash, size: u64) -> Result<(u64, Vec<Hash>), LedgerError> {
        let index = self.index_of(leaf).ok_or_else(|| LedgerError::Beyond {
            what: format!("leaf hash {leaf}"),
            published: self.sizes().published,
        })?;
        Ok((index, self.inclusion_proof(index, size)?))
    }

    /// The index of a published entry with `leaf` hash.
    pub fn index_of(&self, leaf: &Hash) -> Option<u64> {
        let st = lock(&self.inner.state);
        st.by_hash.get(leaf).copied().filter(|&i| i < st.published.size)
    }

    /// The published entry at `index`, from its entry bundle.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let p = self.published();
        if index >= p.size {
            return Err(LedgerError::Beyond {
                what: format!("entry {index}"),
                published: p.size,
            });
        }
        let head = p
            .head
            .ok_or_else(|| LedgerError::Corrupt("no published tree".into()))?;
        let b = BundleId::for_entry(index, p.size);
        let bytes = self
            .inner
            .git
            .read(head.tree, &b.path())?
            .ok_or_else(|| LedgerError::Corrupt(format!("{} is missing", b.path())))?;
        let entries = decode_bundle(b, &bytes).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        Ok(entries[(index % TILE_WIDTH) as usize].to_vec())
    }

    /// A published body of the entry at `index`, by its SHA-256 digest.
    pub fn body(&self, index: u64, digest: &Hash) -> Result<Option<Vec<u8>>, LedgerError> {
        let p = self.published();
        let Some(head) = p.head else { return Ok(None) };
        if index >= p.size {
            return Ok(None);
        }
        self.inner.git.read(head.tree, &body_path(index, digest))
    }

    /// A file of the latest published tree (`tile/…`, `bodies/…`), if present.
    pub fn read_published(&self, path: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let p = self.published();
        let Some(head) = p.head else { return Ok(None) };
        self.inner.git.read(head.tree, path)
    }

    /// The maximum backlog (sequenced but unpublished entries) configured.
    pub fn max_backlog(&self) -> u64 {
        self.inner.cfg.max_backlog
    }

    /// Waits for background packing of the ledger's repository to finish.
    pub fn wait_for_maintenance(&self) {
        self.inner.git.wait_for_maintenance();
    }

    /// The ledger's git repository directory.
    pub fn git_dir(&self) -> PathBuf {
        self.inner.git.path().to_owned()
    }

    /// Stops accepting appends, publishes everything sequenced, and stops.
    pub fn close(&self) -> Result<(), LedgerError> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        // The sequencer ends once every sender is gone and its queue is drained.
        if !threads.is_empty() {
            let seq = threads.remove(0);
            let _ = seq.join();
        }
        {
            let mut st = lock(&self.inner.state);
            st.closing = true;
        }
        self.inner.work.notify_all();
        for t in threads {
            let _ = t.join();
        }
        if let Some(f) = self.failure() {
            return Err(LedgerError::Stopped(f));
        }
        self.inner.git.wait_for_maintenance();
        // Everything sequenced is published and synced: the sequencing log
        // holds nothing that git does not, so its segments can go.
        let sizes = self.sizes();
        if sizes.published == sizes.sequenced {
            wal::delete_all(&self.inner.seq_dir)?;
        }
        Ok(())
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Inner {
    fn fail(&self, msg: String) {
        tracing::error!(reason = %msg, "ledger stopped");
        let mut st = lock(&self.state);
        if st.failed.is_none() {
            st.failed = Some(msg);
        }
        drop(st);
        self.published.notify_all();
        self.work.notify_all();
    }

    /// Rebuilds the right edge of the published tree from its stored tiles.
    fn load_edge(&self, p: &Published, signed: (u64, Hash)) -> Result<Edge, LedgerError> {
        let tiles = StoreTiles::at(self, p);
        let src = TiledHashes::new(&tiles, p.size);
        let ids = CompactRange::node_ids(p.size);
        let hashes = ledger_format::merkle::HashSource::hashes(&src, &ids)
            .map_err(|e| LedgerError::Corrupt(format!("reading the tree's right edge: {e}")))?;
        let range =
            CompactRange::from_parts(p.size, hashes).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        if range.root() != p.root {
            return Err(LedgerError::Corrupt(format!(
                "the published tiles give root {} but the published checkpoint says {}",
                range.root(),
                p.root
            )));
        }
        let mut edge_tiles = Vec::new();
        let mut level = 0u8;
        while level_count(p.size, level) > 0 {
            let edge = TileId::edge(level, p.size);
            if edge.width == 0 {
                edge_tiles.push(Vec::new());
            } else {
                let t = tiles.read_tile(edge)?;
                edge_tiles.push(t.hashes()[..usize::from(edge.width)].to_vec());
            }
            level += 1;
        }
        let mut bundle = Vec::new();
        if p.size % TILE_WIDTH != 0 {
            let b = BundleId::for_entry(p.size - 1, p.size);
            let head = p
                .head
                .ok_or_else(|| LedgerError::Corrupt("no published tree".into()))?;
            let bytes = self
                .git
                .read(head.tree, &b.path())?
                .ok_or_else(|| LedgerError::Corrupt(format!("{} is missing", b.path())))?;
            bundle = decode_bundle(b, &bytes)
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
        }
        Ok(Edge {
            range,
            tiles: edge_tiles,
            bundle,
            signed,
        })
    }

    /// Fills the dedup index with every published leaf hash.
    fn index_published(&self, p: &Published, by_hash: &mut HashMap<Hash, u64>) -> Result<(), LedgerError> {
        let tiles = StoreTiles::at(self, p);
        for n in 0..p.size.div_ceil(TILE_WIDTH) {
            let t = TileId::at(0, n, p.size);
            let hashes = tiles.read_tile(t)?;
            for (i, h) in hashes.hashes()[..usize::from(t.width)].iter().enumerate() {
                by_hash.entry(*h).or_insert(n * TILE_WIDTH + i as u64);
            }
        }
        Ok(())
    }

    /// The sequencer: drain requests, give new entries indices, write them to
    /// the sequencing log in one write and one `fdatasync`, then answer.
    fn run_sequencer(&self, rx: mpsc::Receiver<Request>, mut writer: wal::Writer) {
        let max = self.cfg.max_batch.max(1);
        let mut buf = Vec::with_capacity(1 << 20);
        let delay = self.cfg.group_commit_delay;
        let mut last_sync: Option<std::time::Instant> = None;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter().take(max - 1));
            // Busy (the previous sync ended moments ago) but only a few
            // appends waiting: let more join this batch. Each sync costs a
            // device flush and the wake-ups around it, so fewer, larger
            // batches leave CPU to the appenders (BENCHMARKS.md, intake). A
            // batch of many waiting appenders, or an idle ledger, syncs at once.
            if !delay.is_zero()
                && batch.len() < GROUP_COMMIT_SMALL_BATCH
                && last_sync.is_some_and(|t| t.elapsed() < delay * 4)
            {
                std::thread::sleep(delay);
                let room = max.saturating_sub(batch.len());
                batch.extend(rx.try_iter().take(room));
            }
            // Backpressure: wait for the publisher when it is far behind;
            // while it cannot publish at all, refuse instead of waiting.
            let refuse = {
                let mut st = lock(&self.state);
                let full =
                    |st: &State| st.sequenced.saturating_sub(st.published.size) >= self.cfg.max_backlog;
                while full(&st) && st.failed.is_none() && st.publish_fault.is_none() {
                    st = self
                        .published
                        .wait_timeout(st, Duration::from_millis(100))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                match (&st.failed, &st.publish_fault) {
                    (Some(f), _) => Some((true, f.clone())),
                    (None, Some(f)) if full(&st) => Some((
                        false,
                        format!("the publication backlog is full and publishing fails: {f}"),
                    )),
                    _ => None,
                }
            };
            if let Some((stopped, why)) = refuse {
                for r in batch {
                    let e = if stopped {
                        LedgerError::Stopped(why.clone())
                    } else {
                        LedgerError::Unavailable(why.clone())
                    };
                    let _ = r.reply.send(Err(e));
                }
                continue;
            }
            let start = self.sequenced_counter.load(Ordering::Acquire);
            let mut next = start;
            let mut local: HashMap<Hash, u64> = HashMap::new();
            let mut answers: Vec<(Reply, Appended)> = Vec::with_capacity(batch.len());
            let mut fresh: Vec<(Hash, Record)> = Vec::new();
            buf.clear();
            {
                let st = lock(&self.state);
                for r in batch {
                    if let Some(&i) = st.by_hash.get(&r.leaf).or_else(|| local.get(&r.leaf)) {
                        answers.push((
                            r.reply,
                            Appended {
                                index: i,
                                duplicate: true,
                            },
                        ));
                        continue;
                    }
                    local.insert(r.leaf, next);
                    wal::encode(&r.record, &mut buf);
                    answers.push((
                        r.reply,
                        Appended {
                            index: next,
                            duplicate: false,
                        },
                    ));
                    fresh.push((r.leaf, r.record));
                    next += 1;
                }
            }
            if !fresh.is_empty() {
                let r = writer.append_durably(start, &buf);
                last_sync = Some(std::time::Instant::now());
                if let Err(e) = r {
                    // Nothing of this batch is acknowledged, and the writer
                    // cuts what it wrote before the next append: refuse the
                    // batch, keep going, and say so until an append succeeds.
                    let msg = format!("writing the sequencing log failed: {e}");
                    if lock(&self.state).append_fault.replace(msg.clone()).is_none() {
                        tracing::error!(reason = %msg, "ledger: appends refused until the sequencing log can be written");
                    }
                    for (reply, _) in answers {
                        let _ = reply.send(Err(LedgerError::Unavailable(msg.clone())));
                    }
                    continue;
                }
                let mut st = lock(&self.state);
                if st.append_fault.take().is_some() {
                    tracing::info!("ledger: the sequencing log is written again");
                }
                // The publisher waits on `work` only when it has nothing to
                // do; while it works or waits out its interval, a wake-up per
                // batch would be a context switch for nothing.
                let idle = st.pending.is_empty();
                for (k, (leaf, rec)) in fresh.into_iter().enumerate() {
                    st.by_hash.insert(leaf, start + k as u64);
                    st.pending.push_back(rec);
                }
                st.sequenced = next;
                self.sequenced_counter.store(next, Ordering::Release);
                drop(st);
                if idle {
                    self.work.notify_one();
                }
            }
            for (reply, a) in answers {
                let _ = reply.send(Ok(a));
            }
        }
    }

    /// The publisher: integrate whatever is sequenced, sign, have it
    /// cosigned, commit, repeat. A ledger that has never published starts
    /// with the empty tree's checkpoint; a published checkpoint short of its
    /// quorum (publish mode) is offered to the witnesses again every retry
    /// interval while nothing new arrives.
    fn run_publisher(&self, mut edge: Edge, recover_to: Option<Signed>) {
        let mut recover_to = recover_to;
        let mut backoff = FIRST_RETRY;
        let mut publications = 0u64;
        let interval = self.cfg.publish_interval;
        let mut last: Option<std::time::Instant> = None;
        let mut empty_first = recover_to.is_none() && lock(&self.state).published.head.is_none();
        if let Some(c) = &self.cfg.cosigner {
            let mut st = lock(&self.state);
            if st.published.head.is_some() {
                let a = c.assess(&st.published.checkpoint);
                st.witnessing.cosignatures = a.witnesses;
                st.witnessing.quorum = a.quorum;
            }
        }
        loop {
            enum Next {
                Publish(Vec<Record>, Published),
                Recosign,
            }
            let next = {
                let mut st = lock(&self.state);
                while st.pending.is_empty() && !empty_first && !st.closing && st.failed.is_none() {
                    match self.cfg.cosigner.as_ref().filter(|_| !st.witnessing.quorum) {
                        Some(c) => {
                            let (g, waited) = self
                                .work
                                .wait_timeout(st, c.retry_interval())
                                .unwrap_or_else(|p| p.into_inner());
                            st = g;
                            if waited.timed_out() && st.pending.is_empty() && !st.closing {
                                break;
                            }
                        }
                        None => st = self.work.wait(st).unwrap_or_else(|p| p.into_inner()),
                    }
                }
                if st.failed.is_some() || (st.pending.is_empty() && st.closing) {
                    return;
                }
                if st.pending.is_empty() && !empty_first {
                    Next::Recosign
                } else {
                    // Under load, entries arriving within the interval share
                    // one publication (one commit, one pack, one set of tree
                    // writes); an idle ledger publishes at once. Closing does
                    // not wait.
                    while let Some(left) = last
                        .map(|t| interval.saturating_sub(t.elapsed()))
                        .filter(|d| !d.is_zero() && !st.closing && st.failed.is_none())
                    {
                        st = self
                            .work
                            .wait_timeout(st, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    last = Some(std::time::Instant::now());
                    if st.failed.is_some() {
                        return;
                    }
                    let take = match &recover_to {
                        Some((size, _, _)) => (*size - st.integrated) as usize,
                        None => st.pending.len().min(1 << 20),
                    };
                    let take = take.min(st.pending.len());
                    let records: Vec<Record> = st.pending.drain(..take).collect();
                    Next::Publish(records, st.published.clone())
                }
            };
            let mut unpublished = None;
            let done = match next {
                Next::Recosign => self.recosign().map(|()| true),
                Next::Publish(records, base) => {
                    let r = self.publish_round(&mut edge, &base, &records, recover_to.take());
                    if r.is_err() {
                        unpublished = Some((base.size, records));
                    }
                    r
                }
            };
            match done {
                Ok(true) => {
                    empty_first = false;
                    backoff = FIRST_RETRY;
                    if lock(&self.state).publish_fault.take().is_some() {
                        tracing::info!("ledger: publishing again");
                    }
                    publications += 1;
                    if self.cfg.repack_every > 0 && publications % self.cfg.repack_every == 0 {
                        self.git.repack_in_background();
                    }
                }
                // Closing while a checkpoint waits for its quorum: it stays
                // signed in `state/`, and the next start publishes it.
                Ok(false) => return,
                Err(e) if e.is_lasting() => {
                    self.fail(format!("publishing failed: {e}"));
                    return;
                }
                Err(e) => match self.recover(e, unpublished, &mut backoff) {
                    Some((new_edge, signed_ahead)) => {
                        edge = new_edge;
                        recover_to = signed_ahead;
                    }
                    None => return,
                },
            }
        }
    }

    /// After a publication failed for a reason that may pass (a full disk,
    /// an I/O error): says so (`publish_fault`, which readiness reports),
    /// waits `backoff` (doubling it, up to [`LAST_RETRY`]), and rebuilds from
    /// what is durable — git's head, its tiles, the last signed checkpoint
    /// — giving back to the queue the records git does not hold. Returns
    /// the right edge and the signed checkpoint to publish as it is (if it
    /// is ahead of git); `None` when the ledger closes meanwhile (the
    /// sequencing log keeps the records for the next start) or stored data
    /// contradicts itself (then the ledger stops).
    fn recover(
        &self,
        error: LedgerError,
        mut unpublished: Option<(u64, Vec<Record>)>,
        backoff: &mut Duration,
    ) -> Option<(Edge, Option<Signed>)> {
        let mut why = format!("publishing failed: {error}");
        loop {
            {
                let mut st = lock(&self.state);
                if st.publish_fault.replace(why.clone()).is_none() {
                    tracing::error!(reason = %why, "ledger: publishing stalled; retrying until it succeeds");
                }
                // Appenders waiting on a full backlog learn of the fault.
                self.published.notify_all();
                let (g, _) = self
                    .work
                    .wait_timeout_while(st, *backoff, |st| !st.closing)
                    .unwrap_or_else(|p| p.into_inner());
                st = g;
                if st.closing {
                    return None;
                }
            }
            *backoff = (*backoff * 2).min(LAST_RETRY);
            let reloaded = self.reload().and_then(|(published, edge, signed_ahead)| {
                // Git moved before the failure (the commit landed, a later
                // step failed, maybe its sync): that publication is shown
                // only once a sync of it succeeds.
                let moved =
                    published.head.map(|h| h.commit) != lock(&self.state).published.head.map(|h| h.commit);
                if moved {
                    self.git.sync()?;
                }
                Ok((published, edge, signed_ahead, moved))
            });
            match reloaded {
                Ok((published, edge, signed_ahead, moved)) => {
                    let mut st = lock(&self.state);
                    if let Some((first, records)) = unpublished.take() {
                        let held = published.size.saturating_sub(first) as usize;
                        for r in records.into_iter().skip(held).rev() {
                            st.pending.push_front(r);
                        }
                    }
                    st.integrated = published.size;
                    if moved {
                        let count = st.published.count + 1;
                        st.published = Published { count, ..published };
                    }
                    // Nothing left to redo: the fault is over (else the next
                    // publication that succeeds says so).
                    if st.pending.is_empty() && signed_ahead.is_none() && st.publish_fault.take().is_some() {
                        tracing::info!("ledger: publishing again");
                    }
                    drop(st);
                    self.published.notify_all();
                    return Some((edge, signed_ahead));
                }
                Err(e) if e.is_lasting() => {
                    self.fail(format!(
                        "publishing failed ({why}), and what is stored contradicts itself: {e}"
                    ));
                    return None;
                }
                Err(e) => {
                    why = format!("publishing failed: {error}; reading back what is durable failed: {e}")
                }
            }
        }
    }

    /// What is durable, read back: the publication git's head holds, the
    /// tree's right edge from its tiles, and the last signed checkpoint
    /// when it is ahead of git (it must be published as it is, never
    /// re-signed).
    fn reload(&self) -> Result<(Published, Edge, Option<Signed>), LedgerError> {
        let verifier = self.cfg.signer.verifier();
        let origin = self.cfg.signer.name();
        let published = read_published(&self.git, &verifier, origin)?;
        let signed = read_signed(&self.state_dir.join("checkpoint"), &verifier, origin, &published)?;
        let edge = self.load_edge(&published, (signed.0, signed.1))?;
        let ahead = (signed.0 > published.size).then_some(signed);
        Ok((published, edge, ahead))
    }

    /// One publication, in the steps Tessera also keeps apart:
    /// [`Inner::integrate`] the records into the tree, [`Inner::sign`] a
    /// checkpoint consistent with the last one, [`Inner::witness`] it,
    /// [`Inner::publish`] all to git. False: closing while the checkpoint
    /// was held for its quorum (nothing published).
    fn publish_round(
        &self,
        edge: &mut Edge,
        base: &Published,
        records: &[Record],
        recover_to: Option<Signed>,
    ) -> Result<bool, LedgerError> {
        let integrated = self.integrate(edge, records)?;
        let mut checkpoint = self.sign(edge, base, &integrated, recover_to)?;
        if let Some(c) = &self.cfg.cosigner {
            let tiles = StoreTiles {
                inner: self,
                head: base.head,
                size: base.size,
                overlay: Some(&integrated.overlay),
            };
            let size = integrated.size;
            let proof = |old: u64| {
                consistency_proof(old, size, &TiledHashes::new(&tiles, size)).map_err(|e| e.to_string())
            };
            match self.witness(c.as_ref(), &checkpoint, size, &proof)? {
                Some(text) => checkpoint = text,
                None => return Ok(false),
            }
        }
        self.publish(base, integrated, checkpoint)?;
        Ok(true)
    }

    /// Has `checkpoint` cosigned: the note with the cosignatures gathered.
    /// Short of the quorum, publish mode returns it as it is; hold mode asks
    /// again every retry interval, and gives `None` if the ledger closes
    /// meanwhile.
    fn witness(
        &self,
        c: &dyn cosign::Cosign,
        checkpoint: &str,
        size: u64,
        proof: &cosign::ProofFn<'_>,
    ) -> Result<Option<String>, LedgerError> {
        loop {
            let got = c.cosign(checkpoint, size, proof);
            let hold = !got.quorum && c.hold_without_quorum();
            {
                let mut st = lock(&self.state);
                st.witnessing.holding = hold;
                if !hold {
                    st.witnessing.cosignatures = got.witnesses;
                    st.witnessing.quorum = got.quorum;
                    if !got.quorum {
                        st.witnessing.published_short += 1;
                    }
                }
            }
            if !hold {
                let text = cosign::with_cosignatures(checkpoint, &got.lines).map_err(LedgerError::Corrupt)?;
                return Ok(Some(text));
            }
            tracing::warn!(
                size,
                cosignatures = got.witnesses,
                "checkpoint held back: its witness quorum is not reached"
            );
            let st = lock(&self.state);
            let (st, _) = self
                .work
                .wait_timeout_while(st, c.retry_interval(), |st| !st.closing)
                .unwrap_or_else(|p| p.into_inner());
            if st.closing {
                return Ok(None);
            }
        }
    }

    /// Offers the published checkpoint, short of its quorum, to the
    /// witnesses again; commits it anew if more of them cosign.
    fn recosign(&self) -> Result<(), LedgerError> {
        let Some(c) = &self.cfg.cosigner else {
            return Ok(());
        };
        let (p, had) = {
            let st = lock(&self.state);
            (st.published.clone(), st.witnessing.cosignatures)
        };
        let tiles = StoreTiles::at(self, &p);
        let size = p.size;
        let proof = |old: u64| {
            consistency_proof(old, size, &TiledHashes::new(&tiles, size)).map_err(|e| e.to_string())
        };
        let got = c.cosign(&p.checkpoint, size, &proof);
        if got.witnesses <= had {
            return Ok(());
        }
        let text = cosign::with_cosignatures(&p.checkpoint, &got.lines).map_err(LedgerError::Corrupt)?;
        let upserts = [("checkpoint".to_owned(), text.clone().into_bytes())];
        let head = self.git.publish(p.head, &upserts, &[], &text)?;
        self.git.sync()?;
        {
            let mut st = lock(&self.state);
            st.published.checkpoint = Arc::from(text.as_str());
            st.published.head = Some(head);
            st.published.count += 1;
            st.witnessing.cosignatures = got.witnesses;
            st.witnessing.quorum = got.quorum;
        }
        self.published.notify_all();
        Ok(())
    }

    /// Appends `records` to the right edge of the tree: the Merkle work and
    /// every tile, bundle and body file it completes or changes. Touches
    /// neither git nor the signed checkpoint; moves `integrated`.
    fn integrate(&self, edge: &mut Edge, records: &[Record]) -> Result<Integrated, LedgerError> {
        let old_size = edge.range.size();
        let mut upserts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut overlay: TileMap = HashMap::new();
        let mut bodies_seen = std::collections::HashSet::new();
        for rec in records {
            let index = edge.range.size();
            let leaf = leaf_hash(&rec.entry);
            edge.bundle.push(rec.entry.clone());
            if edge.bundle.len() as u64 == TILE_WIDTH {
                let idx = edge.range.size() / TILE_WIDTH;
                let bytes = encode_bundle(&edge.bundle).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
                upserts.push((BundleId::full(idx).path(), bytes));
                edge.bundle.clear();
            }
            let tiles = &mut edge.tiles;
            edge.range.append_with(leaf, |id, h| {
                if id.level % TILE_HEIGHT != 0 {
                    return;
                }
                let l = usize::from(id.level / TILE_HEIGHT);
                if tiles.len() <= l {
                    tiles.push(Vec::new());
                }
                tiles[l].push(*h);
                if tiles[l].len() as u64 == TILE_WIDTH {
                    let t = TileId::full(l as u8, id.index / TILE_WIDTH);
                    let hashes = std::mem::take(&mut tiles[l]);
                    upserts.push((t.path(), encode_tile(&hashes)));
                    overlay.insert((t.level, t.index), Arc::new(ExpandedTile::new(hashes)));
                }
            });
            for b in &rec.bodies {
                let path = body_path(index, &sha256(b));
                if bodies_seen.insert(path.clone()) {
                    upserts.push((path, b.clone()));
                }
            }
        }
        let size = edge.range.size();
        // Partial tiles and bundle at the new size; drop the old partials.
        let mut removes = Vec::new();
        for (l, hashes) in edge.tiles.iter().enumerate() {
            let level = l as u8;
            let old_t = TileId::edge(level, old_size);
            let new_t = TileId::edge(level, size);
            if old_t.width != 0 && old_t != new_t {
                removes.push(old_t.path());
            }
            if new_t.width != 0 && old_t != new_t {
                upserts.push((new_t.path(), encode_tile(hashes)));
                overlay.insert((level, new_t.index), Arc::new(ExpandedTile::new(hashes.clone())));
            }
        }
        let old_b = BundleId::for_entry(old_size.saturating_sub(1), old_size);
        let new_b = BundleId::for_entry(size.saturating_sub(1), size);
        if old_size % TILE_WIDTH != 0 && old_b != new_b {
            removes.push(old_b.path());
        }
        if size % TILE_WIDTH != 0 && old_b != new_b {
            let bytes = encode_bundle(&edge.bundle).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            upserts.push((new_b.path(), bytes));
        }
        lock(&self.state).integrated = size;
        Ok(Integrated {
            size,
            root: edge.range.root(),
            upserts,
            removes,
            overlay,
        })
    }

    /// The signed checkpoint for the integrated tree: signed only after a
    /// consistency proof from the last signed checkpoint verifies, and
    /// persisted (atomically) before it is returned. Recovering after a
    /// crash, the checkpoint signed before it is reused — never re-signed.
    fn sign(
        &self,
        edge: &mut Edge,
        base: &Published,
        t: &Integrated,
        recover_to: Option<Signed>,
    ) -> Result<String, LedgerError> {
        let (size, root) = (t.size, t.root);
        let text = match recover_to {
            Some((signed_size, signed_root, text)) => {
                // Re-publishing what was signed before a crash: same entries,
                // same indices, so the same root; never re-sign.
                if signed_size != size || signed_root != root {
                    return Err(LedgerError::Corrupt(format!(
                        "the sequencing log gives root {root} at size {size}, but the signed checkpoint says {signed_root} at size {signed_size}"
                    )));
                }
                text
            }
            None => {
                let (signed_size, signed_root) = edge.signed;
                if signed_size > 0 {
                    let tiles = StoreTiles {
                        inner: self,
                        head: base.head,
                        size: base.size,
                        overlay: Some(&t.overlay),
                    };
                    let proof = consistency_proof(signed_size, size, &TiledHashes::new(&tiles, size))?;
                    verify_consistency(signed_size, size, &signed_root, &root, &proof).map_err(|e| {
                        LedgerError::Corrupt(format!(
                            "refusing to sign size {size}: not consistent with the signed size {signed_size}: {e}"
                        ))
                    })?;
                }
                let cp = Checkpoint::new(self.cfg.signer.name(), size, root)
                    .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
                let text = cp
                    .sign(&self.cfg.signer)
                    .map_err(|e| LedgerError::Corrupt(e.to_string()))?
                    .to_text();
                crate::fsutil::write_atomic(&self.state_dir.join("checkpoint"), text.as_bytes(), 0o644, true)
                    .map_err(LedgerError::io("persisting the signed checkpoint"))?;
                text
            }
        };
        edge.signed = (size, root);
        Ok(text)
    }

    /// Commits the integrated files and the signed checkpoint to git, syncs,
    /// then makes them visible: the tile cache, `published`, waiters; and
    /// deletes the sequencing-log segments git now holds.
    fn publish(&self, base: &Published, t: Integrated, checkpoint: String) -> Result<(), LedgerError> {
        let Integrated {
            size,
            root,
            mut upserts,
            removes,
            overlay,
        } = t;
        upserts.push(("checkpoint".into(), checkpoint.clone().into_bytes()));
        let head = self.git.publish(base.head, &upserts, &removes, &checkpoint)?;
        self.git.sync()?;
        for ((l, i), h) in overlay {
            self.tiles.put(l, i, h);
        }
        {
            let mut st = lock(&self.state);
            st.published = Published {
                size,
                root,
                checkpoint: Arc::from(checkpoint.as_str()),
                head: Some(head),
                count: st.published.count + 1,
            };
        }
        self.published.notify_all();
        // Published segments left behind are skipped on replay and deleted
        // after a later publication: not a failure of this one.
        if let Err(e) = wal::delete_published(&self.seq_dir, size) {
            tracing::warn!(error = %e, "ledger: deleting published sequencing-log segments failed");
        }
        Ok(())
    }
}

/// What integrating a batch produced, not yet signed or published.
struct Integrated {
    size: u64,
    root: Hash,
    /// Files to write (tiles, bundles, bodies) at their repository paths.
    upserts: Vec<(String, Vec<u8>)>,
    /// Partial tiles and bundles the new size replaces.
    removes: Vec<String>,
    /// The tiles written, for the tile cache once published.
    overlay: TileMap,
}

/// Opens the ledger in `dir`, whose signing key is `dir/log.key` (and
/// verifier key `dir/log.pub`). With `origin`, a missing key is generated.
pub fn open_dir(dir: &Path, origin: Option<&str>) -> Result<Ledger, LedgerError> {
    open_dir_with(dir, origin, |_| {})
}

/// [`open_dir`], with the configuration adjusted by `configure` first.
pub fn open_dir_with(
    dir: &Path,
    origin: Option<&str>,
    configure: impl FnOnce(&mut LedgerConfig),
) -> Result<Ledger, LedgerError> {
    let key_path = dir.join("log.key");
    let signer = if key_path.exists() {
        load_signer(&key_path)?
    } else {
        let Some(origin) = origin else {
            return Err(LedgerError::Corrupt(format!(
                "{} does not exist; create the ledger with an origin first",
                key_path.display()
            )));
        };
        std::fs::create_dir_all(dir).map_err(LedgerError::io("creating the ledger directory"))?;
        let signer = crate::keys::generate(origin)
            .map_err(|e| LedgerError::Corrupt(format!("origin {origin:?}: {e}")))?;
        crate::keys::write_pair(&signer, &key_path, &dir.join("log.pub"), false)
            .map_err(LedgerError::io("writing the log keys"))?;
        signer
    };
    let pub_path = dir.join("log.pub");
    if !pub_path.exists() {
        crate::fsutil::write_atomic(
            &pub_path,
            format!("{}\n", signer.verifier()).as_bytes(),
            0o644,
            false,
        )
        .map_err(LedgerError::io("writing the log verifier key"))?;
    }
    let mut cfg = LedgerConfig::new(dir, signer);
    configure(&mut cfg);
    Ledger::open(cfg)
}

/// Opens a ledger directory's signer key file.
pub fn load_signer(path: &Path) -> Result<SignerKey, LedgerError> {
    let text = std::fs::read_to_string(path).map_err(LedgerError::io("reading the log signing key"))?;
    SignerKey::parse(text.trim()).map_err(|e| LedgerError::Corrupt(format!("{}: {e}", path.display())))
}
