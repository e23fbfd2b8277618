//! `ContractStore`: the control plane's view of a contracts repository. It
//! tracks one branch, resolves a workflow's contract at the branch head or at
//! a pinned revision, caches parsed contracts by blob id, and refuses a branch
//! whose history was rewritten under it (a force push).
//!
//! A store opens a local repository in place, or mirrors a remote URL
//! (`https://…`, `file://…`) into a local bare repository with gix and
//! fetches it on demand ([`ContractStore::sync`]) and on an interval
//! ([`ContractStore::sync_every`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gix::ObjectId;

use crate::contract::lint::WORKFLOWS_FILE;
use crate::contract::repo::{ContractsRepo, RepoError};
use crate::contract::{parse_contract, parse_workflows, Contract, Workflow};

/// The branch a store tracks unless told otherwise.
pub const DEFAULT_BRANCH: &str = "main";

/// Why a contract could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading the repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The tracked branch does not exist.
    #[error("branch `{0}` does not exist in the contracts repository")]
    NoBranch(String),
    /// The branch no longer contains a head the store already recorded.
    #[error("branch `{branch}` was rewritten: the recorded head {recorded} is not an ancestor of the new head {new}; refusing to follow it (attestations recorded revisions on the old history)")]
    Rewritten {
        /// The branch.
        branch: String,
        /// The head recorded before.
        recorded: String,
        /// The new head.
        new: String,
    },
    /// The workflow is not declared.
    #[error("workflow `{0}` is not declared in workflows.toml")]
    UnknownWorkflow(String),
    /// A pinned revision is not on the tracked branch.
    #[error("revision `{rev}` is not on branch `{branch}`")]
    NotOnBranch {
        /// The revision.
        rev: String,
        /// The branch.
        branch: String,
    },
    /// A file at that revision does not lint.
    #[error("{file} at {commit} is invalid: {first}")]
    Invalid {
        /// The file.
        file: String,
        /// The commit.
        commit: String,
        /// The first problem.
        first: String,
    },
    /// The recorded-head file could not be written.
    #[error("recording the branch head in {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

pub use crate::contract::ContractRevision;

/// A workflow with its contract resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The workflow, as declared at the branch head.
    pub workflow: Workflow,
    /// The contract.
    pub contract: Arc<Contract>,
    /// Its revision.
    pub revision: ContractRevision,
    /// The commit of the repository it was resolved at (the accepted head,
    /// or the pinned revision): policies are read there (SPEC.md §13.2).
    pub at: String,
}

/// A tracked contracts repository.
#[derive(Debug)]
pub struct ContractStore {
    repo: gix::ThreadSafeRepository,
    /// The URL mirrored, for remote stores.
    url: Option<String>,
    branch: String,
    state: Option<PathBuf>,
    head: Mutex<Option<ObjectId>>,
    cache: Mutex<HashMap<ObjectId, Arc<Contract>>>,
    /// `workflows.toml` as parsed at a head.
    workflows: Mutex<Option<(ObjectId, Arc<Vec<Workflow>>)>>,
}

impl ContractStore {
    /// Opens the repository at `path`, tracking `branch`. `state` (if given)
    /// persists the last accepted head, so a rewrite is noticed across restarts.
    pub fn open(path: &Path, branch: &str, state: Option<PathBuf>) -> Result<Self, StoreError> {
        let repo = gix::discover(path)
            .map_err(|e| RepoError::Git(format!("{} is not in a git repository: {e}", path.display())))?
            .into_sync();
        let recorded = match &state {
            Some(p) => std::fs::read_to_string(p)
                .ok()
                .and_then(|s| ObjectId::from_hex(s.trim().as_bytes()).ok()),
            None => None,
        };
        let store = ContractStore {
            repo,
            url: None,
            branch: branch.to_owned(),
            state,
            head: Mutex::new(recorded),
            cache: Mutex::new(HashMap::new()),
            workflows: Mutex::new(None),
        };
        store.refresh()?;
        Ok(store)
    }

    /// Mirrors the repository at `url` into the bare repository `mirror`
    /// (created if absent), then tracks `branch` of the mirror.
    pub fn open_remote(
        url: &str,
        mirror: &Path,
        branch: &str,
        state: Option<PathBuf>,
    ) -> Result<Self, StoreError> {
        if !mirror.join("HEAD").exists() {
            std::fs::create_dir_all(mirror).map_err(|source| StoreError::State {
                path: mirror.to_owned(),
                source,
            })?;
            gix::init_bare(mirror)
                .map_err(|e| RepoError::Git(format!("creating the mirror {}: {e}", mirror.display())))?;
        }
        let repo = gix::open(mirror)
            .map_err(|e| RepoError::Git(format!("opening the mirror {}: {e}", mirror.display())))?;
        fetch_mirror(&repo, url)?;
        let mut store = Self::open(mirror, branch, state)?;
        store.url = Some(url.to_owned());
        Ok(store)
    }

    /// Fetches the remote (for a mirrored store) and accepts the new head if
    /// it extends the recorded one.
    pub fn sync(&self) -> Result<ObjectId, StoreError> {
        if let Some(url) = &self.url {
            fetch_mirror(&self.repo.to_thread_local(), url)?;
        }
        self.refresh()
    }

    /// Syncs every `interval` in a background thread, for as long as the
    /// store is alive; failures (including a rewritten branch) are reported
    /// on stderr and the last accepted head stays in effect.
    pub fn sync_every(self: &Arc<Self>, interval: std::time::Duration) -> std::thread::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        std::thread::spawn(move || loop {
            std::thread::sleep(interval);
            let Some(store) = weak.upgrade() else { return };
            if let Err(e) = store.sync() {
                tracing::warn!(error = %e, "contracts repository: sync failed");
            }
        })
    }

    /// The repository, for reads on this thread (policies at a commit).
    pub fn local(&self) -> ContractsRepo {
        ContractsRepo::from_repo(self.repo.to_thread_local())
    }

    /// Re-reads the branch; accepts the new head only if it extends the
    /// recorded one. Returns the accepted head.
    pub fn refresh(&self) -> Result<ObjectId, StoreError> {
        let repo = self.local();
        let new = repo
            .resolve(&format!("refs/heads/{}", self.branch))
            .map_err(|_| StoreError::NoBranch(self.branch.clone()))?;
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = *head {
            if old != new && !repo.is_ancestor(old, new)? {
                return Err(StoreError::Rewritten {
                    branch: self.branch.clone(),
                    recorded: old.to_string(),
                    new: new.to_string(),
                });
            }
        }
        if *head != Some(new) {
            if let Some(p) = &self.state {
                crate::fsutil::write_atomic(p, format!("{new}\n").as_bytes(), 0o644, true).map_err(
                    |source| StoreError::State {
                        path: p.clone(),
                        source,
                    },
                )?;
            }
            *head = Some(new);
        }
        Ok(new)
    }

    /// The accepted head of the tracked branch.
    pub fn head(&self) -> Option<ObjectId> {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The workflows declared at the accepted head (parsed once per head).
    pub fn workflows(&self) -> Result<Arc<Vec<Workflow>>, StoreError> {
        let head = self
            .head()
            .ok_or_else(|| StoreError::NoBranch(self.branch.clone()))?;
        if let Some((at, w)) = &*self.workflows.lock().unwrap_or_else(|p| p.into_inner()) {
            if *at == head {
                return Ok(w.clone());
            }
        }
        let repo = self.local();
        let parsed = match repo.blob_at(head, WORKFLOWS_FILE)? {
            None => Vec::new(),
            Some(blob) => {
                let bytes = repo.read_blob(blob)?;
                let src = String::from_utf8_lossy(&bytes);
                parse_workflows(WORKFLOWS_FILE, &src, None).map_err(|d| StoreError::Invalid {
                    file: WORKFLOWS_FILE.into(),
                    commit: head.to_string(),
                    first: d.first().map(|x| x.message.clone()).unwrap_or_default(),
                })?
            }
        };
        let parsed = Arc::new(parsed);
        *self.workflows.lock().unwrap_or_else(|p| p.into_inner()) = Some((head, parsed.clone()));
        Ok(parsed)
    }

    /// The bytes of a blob (a contract's exact text at a revision).
    pub fn blob(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let id = ObjectId::from_hex(id.as_bytes()).map_err(|e| RepoError::Git(e.to_string()))?;
        Ok(self.local().read_blob(id)?)
    }

    /// Resolves `workflow`'s contract at the accepted head, or at `pinned`
    /// (which must be on the tracked branch).
    pub fn resolve(&self, workflow: &str, pinned: Option<&str>) -> Result<Resolved, StoreError> {
        let head = self
            .head()
            .ok_or_else(|| StoreError::NoBranch(self.branch.clone()))?;
        let wf = self
            .workflows()?
            .iter()
            .find(|w| w.name == workflow)
            .cloned()
            .ok_or_else(|| StoreError::UnknownWorkflow(workflow.to_owned()))?;
        let repo = self.local();
        let at = match pinned {
            Some(rev) => {
                let c = repo.resolve(rev)?;
                if c != head && !repo.is_ancestor(c, head)? {
                    return Err(StoreError::NotOnBranch {
                        rev: rev.to_owned(),
                        branch: self.branch.clone(),
                    });
                }
                c
            }
            None => head,
        };
        let (rev, bytes) = repo.revision_at(&wf.contract, at)?;
        let blob_hex = rev.blob.clone().unwrap_or_default();
        let blob = ObjectId::from_hex(blob_hex.as_bytes()).map_err(|e| RepoError::Git(e.to_string()))?;
        let contract = match self.cached_contract(&blob_hex) {
            Some(c) => c,
            None => self.parse_cached(blob, &wf.contract, &at.to_string(), &bytes)?,
        };
        Ok(Resolved {
            revision: ContractRevision {
                name: wf.contract.clone(),
                commit: rev.commit,
                blob: blob_hex,
            },
            workflow: wf,
            contract,
            at: at.to_string(),
        })
    }

    /// The parsed contract of a revision, if it is cached (no git read).
    pub fn cached_contract(&self, blob: &str) -> Option<Arc<Contract>> {
        let id = ObjectId::from_hex(blob.as_bytes()).ok()?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// The parsed contract of a revision: cached, or read from git (a
    /// blocking read: call it off the async workers) and cached by blob id.
    /// This cache is the only one: the control plane asks here.
    pub fn contract(&self, rev: &ContractRevision) -> Result<Arc<Contract>, StoreError> {
        if let Some(c) = self.cached_contract(&rev.blob) {
            return Ok(c);
        }
        let id = ObjectId::from_hex(rev.blob.as_bytes()).map_err(|e| RepoError::Git(e.to_string()))?;
        let bytes = self.local().read_blob(id)?;
        self.parse_cached(id, &rev.name, &rev.commit, &bytes)
    }

    fn parse_cached(
        &self,
        blob: ObjectId,
        name: &str,
        commit: &str,
        bytes: &[u8],
    ) -> Result<Arc<Contract>, StoreError> {
        let file = format!("{name}.toml");
        let src = String::from_utf8_lossy(bytes);
        let c = parse_contract(&file, &src, Some(name)).map_err(|d| StoreError::Invalid {
            file,
            commit: commit.to_owned(),
            first: d.first().map(|x| x.message.clone()).unwrap_or_default(),
        })?;
        let c = Arc::new(c);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(blob, c.clone());
        Ok(c)
    }

    /// How many parsed contracts are cached (by blob id).
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Fetches every branch of `url` into the same-named branches of `repo`,
/// forcing updates (so a rewritten remote branch arrives, and is then
/// refused by [`ContractStore::refresh`]).
fn fetch_mirror(repo: &gix::Repository, url: &str) -> Result<(), StoreError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Repo(RepoError::Git(format!("{what} {url}: {e}")))
    };
    let remote = repo
        .remote_at(url)
        .map_err(|e| fail("configuring", &e))?
        .with_refspecs(Some("+refs/heads/*:refs/heads/*"), gix::remote::Direction::Fetch)
        .map_err(|e| fail("configuring", &e))?;
    let conn = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| fail("connecting to", &e))?;
    conn.prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fail("fetching", &e))?
        .receive(gix::progress::Discard, &std::sync::atomic::AtomicBool::new(false))
        .map_err(|e| fail("fetching", &e))?;
    Ok(())
}
