//! Contract revisions, read from a contracts repository with gix.
//!
//! A contract revision is the commit at which the contract's file last
//! changed (at or before the revision asked for) plus the blob id of its bytes.

use std::path::Path;

use gix::ObjectId;
use serde::Serialize;

use crate::contract::diag::Diagnostic;
use crate::contract::lint::{lint_text, LintReport, WORKFLOWS_FILE};
use crate::contract::MAX_FILE_BYTES;

/// Why the repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Not a git repository, or unreadable.
    #[error("{0}")]
    Git(String),
    /// The revision does not name a commit.
    #[error("`{0}` does not name a commit in the contracts repository")]
    UnknownRevision(String),
    /// No such contract at that revision.
    #[error("contract `{name}` does not exist at {rev}")]
    NoContract {
        /// The contract.
        name: String,
        /// The revision.
        rev: String,
    },
}

fn git_err(what: &str, e: impl std::fmt::Display) -> RepoError {
    RepoError::Git(format!("{what}: {e}"))
}

/// Most `*.pub` files a workflow's key directory may hold.
pub const MAX_WORKFLOW_KEYS: usize = 64;

/// One revision of a contract file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The commit at which the file changed.
    pub commit: String,
    /// The blob id of the file's bytes; `None` when this commit deleted it.
    pub blob: Option<String>,
    /// Commit time, seconds since the Unix epoch.
    pub time: i64,
    /// Author, `Name <email>`.
    pub author: String,
    /// First line of the commit message.
    pub summary: String,
}

/// A file at a revision.
#[derive(Debug, Clone)]
pub struct File {
    /// File name at the repository root.
    pub name: String,
    /// Blob id.
    pub blob: ObjectId,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A contracts repository.
#[derive(Debug)]
pub struct ContractsRepo {
    repo: gix::Repository,
}

impl ContractsRepo {
    /// Opens the repository containing `path`.
    pub fn open(path: &Path) -> Result<Self, RepoError> {
        let repo = gix::discover(path)
            .map_err(|e| git_err(&format!("{} is not in a git repository", path.display()), e))?;
        Ok(ContractsRepo { repo })
    }

    /// Wraps an open repository.
    pub fn from_repo(repo: gix::Repository) -> Self {
        ContractsRepo { repo }
    }

    /// Whether `ancestor` is reachable from `descendant`.
    pub fn is_ancestor(&self, ancestor: ObjectId, descendant: ObjectId) -> Result<bool, RepoError> {
        let walk = self
            .repo
            .rev_walk([descendant])
            .all()
            .map_err(|e| git_err("walking the history", e))?;
        for info in walk {
            if info.map_err(|e| git_err("walking the history", e))?.id == ancestor {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A blob's bytes.
    pub fn read_blob(&self, id: ObjectId) -> Result<Vec<u8>, RepoError> {
        Ok(self
            .repo
            .find_object(id)
            .map_err(|e| git_err("reading a blob", e))?
            .detach()
            .data)
    }

    /// The commit named by `rev` (a branch, tag, commit id, `HEAD~2`, …).
    pub fn resolve(&self, rev: &str) -> Result<ObjectId, RepoError> {
        let id = self
            .repo
            .rev_parse_single(rev)
            .map_err(|_| RepoError::UnknownRevision(rev.to_owned()))?;
        let commit = id
            .object()
            .map_err(|e| git_err("reading an object", e))?
            .peel_to_commit()
            .map_err(|_| RepoError::UnknownRevision(rev.to_owned()))?;
        Ok(commit.id)
    }

    fn tree_of(&self, commit: ObjectId) -> Result<gix::Tree<'_>, RepoError> {
        self.repo
            .find_commit(commit)
            .map_err(|e| git_err("reading a commit", e))?
            .tree()
            .map_err(|e| git_err("reading a tree", e))
    }

    /// The directory `path` at `commit`, if it is one.
    fn subtree(&self, commit: ObjectId, path: &str) -> Result<Option<gix::Tree<'_>>, RepoError> {
        let tree = self.tree_of(commit)?;
        let Some(entry) = tree
            .lookup_entry_by_path(path)
            .map_err(|e| git_err("looking up a path", e))?
        else {
            return Ok(None);
        };
        if !entry.mode().is_tree() {
            return Ok(None);
        }
        Ok(Some(
            entry
                .object()
                .map_err(|e| git_err("reading a tree", e))?
                .into_tree(),
        ))
    }

    /// The blob id of `path` at `commit`, if present.
    pub fn blob_at(&self, commit: ObjectId, path: &str) -> Result<Option<ObjectId>, RepoError> {
        let tree = self.tree_of(commit)?;
        Ok(tree
            .lookup_entry_by_path(path)
            .map_err(|e| git_err("looking up a path", e))?
            .map(|e| e.object_id()))
    }

    /// The public keys a workflow's signatures may use at `commit`
    /// (SPEC.md §15.5): the `*.pub` files of `keys/<workflow>/`, by name,
    /// at most [`MAX_WORKFLOW_KEYS`] of at most 64 KiB each (more, or
    /// larger, are an error: the linter refuses them first).
    pub fn workflow_keys_at(
        &self,
        commit: ObjectId,
        workflow: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, RepoError> {
        let Some(dir) = self.subtree(commit, &format!("keys/{workflow}"))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| git_err("reading a tree entry", e))?;
            let name = entry.filename().to_string();
            if !name.ends_with(".pub") || !entry.mode().is_blob() {
                continue;
            }
            let bytes = self.read_blob(entry.oid().to_owned())?;
            if bytes.len() > 64 << 10 || out.len() >= MAX_WORKFLOW_KEYS {
                return Err(RepoError::Git(format!(
                    "keys/{workflow}/: at most {MAX_WORKFLOW_KEYS} keys of at most 64 KiB each"
                )));
            }
            out.push((format!("keys/{workflow}/{name}"), bytes));
        }
        Ok(out)
    }

    /// The `*.toml` files at the root of `commit`'s tree (larger ones are
    /// returned empty and flagged by the linter).
    pub fn files(&self, commit: ObjectId) -> Result<Vec<File>, RepoError> {
        let tree = self.tree_of(commit)?;
        let mut out = Vec::new();
        for entry in tree.iter() {
            let entry = entry.map_err(|e| git_err("reading a tree entry", e))?;
            let name = entry.filename().to_string();
            if !name.ends_with(".toml") || !entry.mode().is_blob() {
                continue;
            }
            let obj = self
                .repo
                .find_object(entry.oid())
                .map_err(|e| git_err("reading a blob", e))?;
            out.push(File {
                name,
                blob: entry.oid().to_owned(),
                bytes: obj.detach().data,
            });
        }
        Ok(out)
    }

    /// The revision of contract `name` in effect at `commit`: the commit at
    /// which `<name>.toml` last changed, and its blob.
    pub fn revision_at(&self, name: &str, commit: ObjectId) -> Result<(FileChange, Vec<u8>), RepoError> {
        let path = format!("{name}.toml");
        let Some(blob) = self.blob_at(commit, &path)? else {
            return Err(RepoError::NoContract {
                name: name.to_owned(),
                rev: commit.to_string(),
            });
        };
        let log = self.log_from(name, commit, Some(1))?;
        let rev = log.into_iter().next().ok_or_else(|| RepoError::NoContract {
            name: name.to_owned(),
            rev: commit.to_string(),
        })?;
        let bytes = self
            .repo
            .find_object(blob)
            .map_err(|e| git_err("reading a blob", e))?
            .detach()
            .data;
        Ok((rev, bytes))
    }

    /// The revisions of contract `name` reachable from `from` along first
    /// parents, newest first (deletions included), at most `limit`.
    pub fn log_from(
        &self,
        name: &str,
        from: ObjectId,
        limit: Option<usize>,
    ) -> Result<Vec<FileChange>, RepoError> {
        let path = format!("{name}.toml");
        let walk = self
            .repo
            .rev_walk([from])
            .first_parent_only()
            .all()
            .map_err(|e| git_err("walking the history", e))?;
        let mut out = Vec::new();
        for info in walk {
            let info = info.map_err(|e| git_err("walking the history", e))?;
            let id = info.id;
            let here = self.blob_at(id, &path)?;
            let commit = self
                .repo
                .find_commit(id)
                .map_err(|e| git_err("reading a commit", e))?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let before = match parent {
                Some(p) => self.blob_at(p, &path)?,
                None => None,
            };
            if here == before {
                continue;
            }
            let author = commit.author().map_err(|e| git_err("reading the author", e))?;
            let time = commit
                .time()
                .map_err(|e| git_err("reading the commit time", e))?
                .seconds;
            let summary = commit
                .message()
                .map_err(|e| git_err("reading the message", e))?
                .summary()
                .to_string();
            out.push(FileChange {
                commit: id.to_string(),
                blob: here.map(|b| b.to_string()),
                time,
                author: format!("{} <{}>", author.name, author.email),
                summary,
            });
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// Lints every contract and `workflows.toml` at `commit`.
    pub fn lint_at(&self, commit: ObjectId) -> Result<LintReport, RepoError> {
        let files = self.files(commit)?;
        let names: Vec<String> = files
            .iter()
            .filter(|f| f.name != WORKFLOWS_FILE)
            .filter_map(|f| f.name.strip_suffix(".toml").map(str::to_owned))
            .collect();
        let mut report = LintReport::default();
        for f in &files {
            let shown = format!("{}:{}", short(&commit), f.name);
            if f.bytes.len() as u64 > MAX_FILE_BYTES {
                report.files.push(shown.clone());
                report.diagnostics.push(Diagnostic::file(
                    &shown,
                    format!(
                        "is {} bytes; contract files are limited to {MAX_FILE_BYTES} bytes",
                        f.bytes.len()
                    ),
                    None,
                ));
                continue;
            }
            match std::str::from_utf8(&f.bytes) {
                Ok(src) => lint_text(&mut report, &shown, &f.name, src, Some(&names)),
                Err(e) => {
                    report.files.push(shown.clone());
                    let lossy = String::from_utf8_lossy(&f.bytes).into_owned();
                    let at = e.valid_up_to();
                    report.diagnostics.push(Diagnostic::at(
                        &shown,
                        &lossy,
                        at..at + 1,
                        "file is not valid UTF-8".into(),
                        None,
                    ));
                }
            }
        }
        self.lint_keys(commit, &mut report)?;
        Ok(report)
    }

    /// Every `keys/<workflow>/*.pub` at `commit` must be a public key tally
    /// verifies with (PEM, ECDSA P-256 or Ed25519), within the limits.
    fn lint_keys(&self, commit: ObjectId, report: &mut LintReport) -> Result<(), RepoError> {
        let Some(keys) = self.subtree(commit, "keys")? else {
            return Ok(());
        };
        let mut workflows = Vec::new();
        for entry in keys.iter() {
            let entry = entry.map_err(|e| git_err("reading a tree entry", e))?;
            if entry.mode().is_tree() {
                workflows.push(entry.filename().to_string());
            }
        }
        for w in workflows {
            let shown = format!("{}:keys/{w}/", short(&commit));
            match self.workflow_keys_at(commit, &w) {
                Ok(files) => {
                    for (path, bytes) in files {
                        let shown = format!("{}:{path}", short(&commit));
                        let text = String::from_utf8_lossy(&bytes);
                        if let Err(e) = crate::attest::dsse::PublicKey::from_pem(&text) {
                            report.files.push(shown.clone());
                            report.diagnostics.push(Diagnostic::file(
                                &shown,
                                format!("is not a public key tally verifies with: {e}"),
                                None,
                            ));
                        }
                    }
                }
                Err(e) => {
                    report.files.push(shown.clone());
                    report
                        .diagnostics
                        .push(Diagnostic::file(&shown, e.to_string(), None));
                }
            }
        }
        Ok(())
    }

    /// The root `*.toml` files that differ between two commits.
    pub fn changed_files(&self, base: ObjectId, head: ObjectId) -> Result<Vec<String>, RepoError> {
        let a = self.files(base)?;
        let b = self.files(head)?;
        let mut names: Vec<String> = Vec::new();
        for f in &b {
            if a.iter().find(|x| x.name == f.name).map(|x| x.blob) != Some(f.blob) {
                names.push(f.name.clone());
            }
        }
        for f in &a {
            if !b.iter().any(|x| x.name == f.name) {
                names.push(f.name.clone());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// The first 12 hex digits of an object id.
pub fn short(id: &ObjectId) -> String {
    id.to_string().chars().take(12).collect()
}
