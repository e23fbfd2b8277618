//! Where a monitor reads checkpoints from (SPEC.md §14.4): a log (URL or
//! directory of C2SP tiles), a git repository of a ledger (a local clone, or
//! a remote fetched into the monitor's work folder), a witness's latest
//! cosigned checkpoint, or a checkpoint file someone pasted.
//!
//! A source with a tree (log, git) can also say what root its tiles give at
//! any size up to its own: that is what proves two checkpoints consistent,
//! or not.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ledger_format::audit::TileSource;
use ledger_format::hash::Hash;
use ledger_format::merkle::tree_root;
use ledger_format::tile::{decode_tile, TileId, TileReader, TiledHashes, TILE_WIDTH};
use sha2::{Digest as _, Sha256};

use crate::ledger::git::LedgerRepo;
use crate::source::{DirSource, HttpSource, MAX_RESOURCE};

/// Why a source could not be read or parsed as one.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The argument names no kind of source.
    #[error("{0}")]
    Spec(String),
    /// The source could not be reached or read.
    #[error("{0}")]
    Unavailable(String),
    /// The source answered with something that is not what it should hold.
    #[error("{0}")]
    Invalid(String),
}

/// One place checkpoints come from.
#[derive(Debug)]
pub struct Source {
    label: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A tiled log over HTTP.
    Http(HttpSource),
    /// A tiled log in a folder.
    Dir(DirSource),
    /// A ledger's git repository (bare, a clone, or a data folder); with a
    /// remote, fetched into `git_dir` before each read.
    Git {
        git_dir: PathBuf,
        remote: Option<String>,
        head: Option<Box<LedgerRepo>>,
        tree: Option<gix::ObjectId>,
    },
    /// A witness's `GET /checkpoints/<origin>`.
    Witness {
        url: String,
        client: reqwest::blocking::Client,
    },
    /// A checkpoint file.
    File(PathBuf),
}

fn http_client() -> Result<reqwest::blocking::Client, SourceError> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("tally-monitor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SourceError::Spec(format!("building the HTTP client: {e}")))
}

impl Source {
    /// Parses a source argument:
    /// - `http(s)://…`: a tiled log (`<url>/checkpoint`, `<url>/tile/…`);
    /// - `witness+http(s)://…`: a witness's latest cosigned checkpoint;
    /// - `git+<url or path>`: a git remote holding a ledger, fetched into
    ///   `work/git/`;
    /// - a folder: a ledger's git repository (data folder, clone or bare
    ///   repository) or a folder of tiles;
    /// - a file: a signed checkpoint.
    pub fn parse(spec: &str, work: &Path) -> Result<Source, SourceError> {
        let kind = if let Some(url) = spec.strip_prefix("witness+") {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SourceError::Spec(format!(
                    "{spec}: a witness source is witness+http(s)://<witness>"
                )));
            }
            Kind::Witness {
                url: url.trim_end_matches('/').to_owned(),
                client: http_client()?,
            }
        } else if let Some(remote) = spec.strip_prefix("git+") {
            // One copy per remote, named by its digest (a URL is no path).
            let name = hex::encode(&Sha256::digest(remote.as_bytes())[..16]);
            let git_dir = work.join("git").join(name);
            Kind::Git {
                git_dir,
                remote: Some(remote.to_owned()),
                head: None,
                tree: None,
            }
        } else if spec.starts_with("http://") || spec.starts_with("https://") {
            Kind::Http(HttpSource::new(spec).map_err(|e| SourceError::Spec(format!("{spec}: {e}")))?)
        } else {
            let p = Path::new(spec);
            if p.is_dir() {
                match crate::ledger::fsck::locate(p) {
                    Some((dir, true)) => Kind::Git {
                        git_dir: dir.join("ledger.git"),
                        remote: None,
                        head: None,
                        tree: None,
                    },
                    Some((git_dir, false)) => Kind::Git {
                        git_dir,
                        remote: None,
                        head: None,
                        tree: None,
                    },
                    None => Kind::Dir(DirSource::new(p)),
                }
            } else if p.is_file() {
                Kind::File(p.to_owned())
            } else {
                return Err(SourceError::Spec(format!(
                    "{spec} is not an http(s):// log, a witness+http(s):// witness, a git+ remote, a folder or a checkpoint file"
                )));
            }
        };
        Ok(Source {
            label: spec.to_owned(),
            kind,
        })
    }

    /// The argument this source was made from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the source has tiles to prove consistency with.
    pub fn has_tree(&self) -> bool {
        matches!(self.kind, Kind::Http(_) | Kind::Dir(_) | Kind::Git { .. })
    }

    /// What kind of source it is, for reports.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Http(_) | Kind::Dir(_) => "log",
            Kind::Git { .. } => "git",
            Kind::Witness { .. } => "witness",
            Kind::File(_) => "file",
        }
    }

    /// Reads the source's current checkpoint (fetching a git remote first).
    /// `origin` is the log's origin (a witness serves checkpoints per log).
    /// `Ok(None)`: the source holds none yet (a witness that has not
    /// cosigned this log).
    pub fn checkpoint(&mut self, origin: &str) -> Result<Option<Vec<u8>>, SourceError> {
        match &mut self.kind {
            Kind::Http(s) => s
                .fetch("checkpoint")
                .map_err(|e| SourceError::Unavailable(format!("{}/checkpoint: {e}", self.label)))?
                .map(Some)
                .ok_or_else(|| SourceError::Unavailable(format!("{}/checkpoint: not found", self.label))),
            Kind::Dir(s) => s
                .fetch("checkpoint")
                .map_err(|e| SourceError::Unavailable(format!("{}/checkpoint: {e}", self.label)))?
                .map(Some)
                .ok_or_else(|| SourceError::Unavailable(format!("{}/checkpoint: not found", self.label))),
            Kind::Git {
                git_dir,
                remote,
                head,
                tree,
            } => {
                if let Some(remote) = remote {
                    fetch_main(git_dir, remote)?;
                }
                let repo = LedgerRepo::open_existing(git_dir)
                    .map_err(|e| SourceError::Unavailable(format!("{}: {e}", git_dir.display())))?;
                let h = repo
                    .head()
                    .map_err(|e| SourceError::Unavailable(format!("{}: {e}", git_dir.display())))?
                    .ok_or_else(|| SourceError::Unavailable(format!("{}: no commit on main", self.label)))?;
                let bytes = repo
                    .read(h.tree, "checkpoint")
                    .map_err(|e| SourceError::Unavailable(format!("{}: {e}", self.label)))?
                    .ok_or_else(|| {
                        SourceError::Invalid(format!("{}: the head commit has no checkpoint", self.label))
                    })?;
                *tree = Some(h.tree);
                *head = Some(Box::new(repo));
                Ok(Some(bytes))
            }
            Kind::Witness { url, client } => {
                let u = format!("{url}/checkpoints/{origin}");
                let resp = client
                    .get(&u)
                    .send()
                    .map_err(|e| SourceError::Unavailable(format!("{u}: {e}")))?;
                match resp.status() {
                    reqwest::StatusCode::NOT_FOUND => Ok(None),
                    s if s.is_success() => {
                        let b = resp
                            .bytes()
                            .map_err(|e| SourceError::Unavailable(format!("{u}: {e}")))?;
                        if b.len() as u64 > MAX_RESOURCE {
                            return Err(SourceError::Invalid(format!("{u}: answer too large")));
                        }
                        Ok(Some(b.to_vec()))
                    }
                    s => Err(SourceError::Unavailable(format!("{u}: the witness answered {s}"))),
                }
            }
            Kind::File(p) => std::fs::read(&*p)
                .map(Some)
                .map_err(|e| SourceError::Unavailable(format!("{}: {e}", p.display()))),
        }
    }

    /// The root the source's tiles give at `size`, in its tree of
    /// `tree_size` (its checkpoint's size). `None` for sources without a tree.
    pub fn root_at(&mut self, size: u64, tree_size: u64) -> Option<Result<Hash, SourceError>> {
        let reader = match &mut self.kind {
            Kind::Http(s) => Reader::new(Fetcher::Http(s)),
            Kind::Dir(s) => Reader::new(Fetcher::Dir(s)),
            Kind::Git {
                head: Some(repo),
                tree: Some(tree),
                ..
            } => Reader::new(Fetcher::Git(repo, *tree)),
            Kind::Git { .. } => {
                return Some(Err(SourceError::Unavailable(format!(
                    "{}: not read yet",
                    self.label
                ))))
            }
            Kind::Witness { .. } | Kind::File(_) => return None,
        };
        let got = tree_root(size, &TiledHashes::new(&reader, tree_size));
        Some(got.map_err(|e| match reader.failure.into_inner() {
            Some(SourceError::Unavailable(m)) => SourceError::Unavailable(format!("{}: {m}", self.label)),
            _ => SourceError::Invalid(format!("{}: {e}", self.label)),
        }))
    }
}

/// Fetches every commit of the remote's `main` into the bare repository
/// at `git_dir` (created on first use), forcing the update: a rewritten
/// history arrives, and is then caught as inconsistent.
fn fetch_main(git_dir: &Path, remote: &str) -> Result<(), SourceError> {
    let fail =
        |what: &str, e: &dyn std::fmt::Display| SourceError::Unavailable(format!("{what} {remote}: {e}"));
    let repo = if git_dir.join("HEAD").is_file() {
        gix::open(git_dir).map_err(|e| fail("opening the fetched copy of", &e))?
    } else {
        std::fs::create_dir_all(git_dir).map_err(|e| fail("creating a copy of", &e))?;
        gix::init_bare(git_dir).map_err(|e| fail("creating a copy of", &e))?
    };
    let remote_ref = repo
        .remote_at(remote)
        .map_err(|e| fail("configuring", &e))?
        .with_refspecs(
            Some(format!("+{0}:{0}", crate::ledger::git::BRANCH).as_str()),
            gix::remote::Direction::Fetch,
        )
        .map_err(|e| fail("configuring", &e))?;
    let conn = remote_ref
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| fail("connecting to", &e))?;
    conn.prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fail("fetching", &e))?
        .receive(gix::progress::Discard, &std::sync::atomic::AtomicBool::new(false))
        .map_err(|e| fail("fetching", &e))?;
    Ok(())
}

enum Fetcher<'a> {
    Http(&'a mut HttpSource),
    Dir(&'a mut DirSource),
    Git(&'a LedgerRepo, gix::ObjectId),
}

impl Fetcher<'_> {
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Fetcher::Http(s) => s.fetch(path).map_err(|e| e.to_string()),
            Fetcher::Dir(s) => s.fetch(path).map_err(|e| e.to_string()),
            Fetcher::Git(repo, tree) => repo.read(*tree, path).map_err(|e| e.to_string()),
        }
    }
}

/// Tiles by id from a source, each fetched once (a partial tile falls back
/// to the full one, which C2SP lets a log keep instead).
struct Reader<'a> {
    fetcher: RefCell<Fetcher<'a>>,
    cache: RefCell<HashMap<TileId, Vec<Hash>>>,
    /// The first read failure, classified (a fetch that failed is
    /// unavailable; a missing or malformed tile is invalid).
    failure: RefCell<Option<SourceError>>,
}

impl<'a> Reader<'a> {
    fn new(fetcher: Fetcher<'a>) -> Self {
        Reader {
            fetcher: RefCell::new(fetcher),
            cache: RefCell::new(HashMap::new()),
            failure: RefCell::new(None),
        }
    }
}

impl Reader<'_> {
    fn read_uncached(&self, tile: TileId) -> Result<Vec<Hash>, SourceError> {
        let mut f = self.fetcher.borrow_mut();
        let full = TileId {
            width: TILE_WIDTH as u16,
            ..tile
        };
        let mut fetch = |t: TileId| {
            f.fetch(&t.path())
                .map_err(|e| SourceError::Unavailable(format!("{}: {e}", t.path())))
        };
        let bad = |e: ledger_format::tile::TileError| SourceError::Invalid(e.to_string());
        match fetch(tile)? {
            Some(b) => decode_tile(tile, &b).map_err(bad),
            None if tile != full => {
                let b = fetch(full)?
                    .ok_or_else(|| SourceError::Invalid(format!("{} is missing", tile.path())))?;
                let mut h = decode_tile(full, &b).map_err(bad)?;
                h.truncate(usize::from(tile.width));
                Ok(h)
            }
            None => Err(SourceError::Invalid(format!("{} is missing", tile.path()))),
        }
    }
}

impl TileReader for Reader<'_> {
    type Error = String;
    type Tile = Vec<Hash>;
    fn read_tile(&self, tile: TileId) -> Result<Vec<Hash>, String> {
        if let Some(h) = self.cache.borrow().get(&tile) {
            return Ok(h.clone());
        }
        match self.read_uncached(tile) {
            Ok(hashes) => {
                self.cache.borrow_mut().insert(tile, hashes.clone());
                Ok(hashes)
            }
            Err(e) => {
                let msg = e.to_string();
                self.failure.borrow_mut().get_or_insert(e);
                Err(msg)
            }
        }
    }
}
