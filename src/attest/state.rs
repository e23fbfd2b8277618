//! The crafting state: what `attestation init` started and every `add`
//! recorded, kept in one JSON file between CI steps (SPEC.md §11.1).
//! Written atomically; a corrupt or foreign file is an error, never guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ledger_format::entry::ContractRevision;

use crate::attest::git::GitHead;
use crate::attest::runner::RunnerContext;

/// The `schema` of this version of the state file.
pub const STATE_SCHEMA: &str = "tally.dev/crafting-state/v1";
/// The environment variable naming the state file.
pub const STATE_ENV: &str = "TALLY_STATE";
/// The state file used when neither `--state` nor `TALLY_STATE` is given.
pub const DEFAULT_STATE: &str = ".tally/attestation.json";

/// The contract a run is checked against, exactly as it was at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRef {
    /// Its revision: name, the commit of the contracts repository that last
    /// changed it (empty for a file given with `--contract`), and its git
    /// blob id (also computed for a plain file).
    #[serde(flatten)]
    pub revision: ContractRevision,
    /// Where it came from (a repository and revision, or a file path).
    pub source: String,
    /// The TOML text, so later steps check against the same bytes.
    pub text: String,
    /// The commit of the contracts repository its policies were read at
    /// (empty: none, or read beside a contract file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policies_commit: String,
    /// The contracts repository's commit the control plane pinned the run
    /// at (empty without a control plane): recorded in the statement.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_at: String,
    /// Its policy files by repository path, so every step evaluates the
    /// same bytes (SPEC.md §13.4).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, String>,
}

/// One material that was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialRecord {
    /// Its name.
    pub name: String,
    /// Its kind (contract spelling).
    pub kind: String,
    /// The value: a STRING's text, an image reference, or the file's name.
    pub value: String,
    /// `sha256:<hex>` of the file, the string, or the image manifest.
    pub digest: String,
    /// File size in bytes (0 for non-files).
    pub size: u64,
    /// Whether it becomes a subject.
    pub output: bool,
    /// Whether the contract names it.
    pub in_contract: bool,
    /// What the validator found.
    pub summary: String,
    /// Annotations: the contract's, the user's, and derived `tally.material.*`.
    pub annotations: BTreeMap<String, String>,
    /// Whether CycloneDX was checked leniently.
    #[serde(default)]
    pub lenient: bool,
    /// Where the file is stored (`dry-run`: nowhere, only its digest is kept).
    pub stored: String,
    /// When it was added (RFC 3339).
    pub added_at: String,
    /// Its policies' verdicts when it was added (evaluated by the CLI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_evaluations: Vec<crate::policy::Evaluation>,
}

/// The state of one crafting run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`STATE_SCHEMA`].
    pub schema: String,
    /// The run's id (from the control plane, or `local-…` in a dry run).
    pub run_id: String,
    /// Whether this run never talks to a control plane.
    pub dry_run: bool,
    /// The control plane's URL (empty in a dry run).
    pub server: String,
    /// The workflow.
    pub workflow: String,
    /// Its project.
    pub project: String,
    /// The project version being built.
    pub version: String,
    /// The contract.
    pub contract: ContractRef,
    /// The detected runner.
    pub runner: RunnerContext,
    /// The values of the contract's env allow-list.
    pub env: BTreeMap<String, String>,
    /// HEAD of the working directory at `init`.
    pub git: Option<GitHead>,
    /// When `init` ran (RFC 3339).
    pub started_at: String,
    /// The materials added so far, in order.
    pub materials: Vec<MaterialRecord>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No run in progress.
    #[error("no attestation in progress ({0} does not exist); run `tally attestation init` first")]
    Missing(PathBuf),
    /// The file is not a state file of this version.
    #[error(
        "the crafting state {path} is corrupt or from another tally ({reason}); \
         run `tally attestation reset` to discard it and `init` again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// I/O.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where the state lives: the flag, else `TALLY_STATE`, else the default.
pub fn state_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(STATE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE))
}

impl State {
    /// Reads the state at `path`.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing(path.to_owned()))
            }
            Err(source) => {
                return Err(StateError::Io {
                    what: "reading",
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let s: State = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if s.schema != STATE_SCHEMA {
            return Err(corrupt(format!(
                "schema {:?}, expected {STATE_SCHEMA:?}",
                s.schema
            )));
        }
        Ok(s)
    }

    /// Writes the state atomically (mode 0600), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |what, source| StateError::Io {
            what,
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| io("serializing", e.into()))?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(path, &bytes, 0o600, true).map_err(|e| io("writing", e))
    }

    /// The material named `name`, if added.
    pub fn material(&self, name: &str) -> Option<&MaterialRecord> {
        self.materials.iter().find(|m| m.name == name)
    }
}

/// Removes the state file; a missing file is fine.
pub fn clear(path: &Path) -> Result<bool, StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io {
            what: "removing",
            path: path.to_owned(),
            source,
        }),
    }
}
