//! `ContractStore`: the control plane's view of a contracts repository. It
//! tracks one branch, resolves a workflow's contract at the branch head or at
//! a pinned revision, caches parsed contracts by blob id, and refuses a branch
//! whose history was rewritten under it (a force push).
//!
//! Not here: cloning remote URLs (the server issue adds fetching); the store
//! reads a local repository, which a server keeps current.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gix::ObjectId;

use crate::contract::lint::WORKFLOWS_FILE;
use crate::contract::repo::{ContractsRepo, RepoError};
use crate::contract::{parse_contract, parse_workflows, Contract, Workflow};

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

/// The exact contract revision a run is checked against.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContractRevision {
    /// The contract's name.
    pub name: String,
    /// The commit at which its file last changed.
    pub commit: String,
    /// The blob id of its bytes.
    pub blob: String,
}

/// A workflow with its contract resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The workflow, as declared at the branch head.
    pub workflow: Workflow,
    /// The contract.
    pub contract: Arc<Contract>,
    /// Its revision.
    pub revision: ContractRevision,
}

/// A tracked contracts repository.
#[derive(Debug)]
pub struct ContractStore {
    repo: gix::ThreadSafeRepository,
    branch: String,
    state: Option<PathBuf>,
    head: Mutex<Option<ObjectId>>,
    cache: Mutex<HashMap<ObjectId, Arc<Contract>>>,
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
            branch: branch.to_owned(),
            state,
            head: Mutex::new(recorded),
            cache: Mutex::new(HashMap::new()),
        };
        store.refresh()?;
        Ok(store)
    }

    fn local(&self) -> ContractsRepo {
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

    /// The workflows declared at the accepted head.
    pub fn workflows(&self) -> Result<Vec<Workflow>, StoreError> {
        let head = self
            .head()
            .ok_or_else(|| StoreError::NoBranch(self.branch.clone()))?;
        let repo = self.local();
        let Some(blob) = repo.blob_at(head, WORKFLOWS_FILE)? else {
            return Ok(Vec::new());
        };
        let bytes = repo.read_blob(blob)?;
        let src = String::from_utf8_lossy(&bytes);
        parse_workflows(WORKFLOWS_FILE, &src, None).map_err(|d| StoreError::Invalid {
            file: WORKFLOWS_FILE.into(),
            commit: head.to_string(),
            first: d.first().map(|x| x.message.clone()).unwrap_or_default(),
        })
    }

    /// Resolves `workflow`'s contract at the accepted head, or at `pinned`
    /// (which must be on the tracked branch).
    pub fn resolve(&self, workflow: &str, pinned: Option<&str>) -> Result<Resolved, StoreError> {
        let head = self
            .head()
            .ok_or_else(|| StoreError::NoBranch(self.branch.clone()))?;
        let wf = self
            .workflows()?
            .into_iter()
            .find(|w| w.name == workflow)
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
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&blob)
            .cloned();
        let contract = match cached {
            Some(c) => c,
            None => {
                let file = format!("{}.toml", wf.contract);
                let src = String::from_utf8_lossy(&bytes);
                let c = parse_contract(&file, &src, Some(&wf.contract)).map_err(|d| StoreError::Invalid {
                    file,
                    commit: at.to_string(),
                    first: d.first().map(|x| x.message.clone()).unwrap_or_default(),
                })?;
                let c = Arc::new(c);
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(blob, c.clone());
                c
            }
        };
        Ok(Resolved {
            revision: ContractRevision {
                name: wf.contract.clone(),
                commit: rev.commit,
                blob: blob_hex,
            },
            workflow: wf,
            contract,
        })
    }

    /// How many parsed contracts are cached (by blob id).
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
