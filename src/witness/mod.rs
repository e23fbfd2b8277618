//! A C2SP tlog-witness (SPEC.md §14): cosigns a log's checkpoint only if it
//! is consistent with every checkpoint of that log it cosigned before.
//!
//! One entry point, [`Witness`]: [`Witness::open`] reads the configuration
//! (the logs it witnesses: origin and verifier keys) and its per-log state;
//! [`Witness::add_checkpoint`] takes an `add-checkpoint` request body and
//! returns the cosignature lines, or a [`Refusal`] the HTTP layer
//! (`witness::http`) turns into the status the spec names. The state of a
//! log — the size and root it last cosigned — is written durably (temp
//! file, fsync, rename, fsync of the folder) *before* the cosignature is
//! returned, and the check and the write happen under one lock per log, so
//! no two requests can roll it back, and a kill -9 at any point leaves
//! either the old state or the new one.
//!
//! Below: `ledger-format` (notes, checkpoints, consistency proofs,
//! cosignature/v1). Above: `cmd::witness` and the HTTP layer.

pub mod cosigner;
pub mod http;
pub mod policy;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ledger_format::checkpoint::Checkpoint;
use ledger_format::hash::{empty_root, Hash};
use ledger_format::merkle::verify_consistency;
use ledger_format::note::{Note, NoteError, SignerKey, VerifierKey};
use serde::{Deserialize, Serialize};

/// Most consistency proof lines a request may carry (the spec's bound).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body read.
pub const MAX_BODY: usize = 64 << 10;

/// The witness's configuration file (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file holding the witness's signing key (`PRIVATE+KEY+…`).
    pub key_file: PathBuf,
    /// Where the per-log state is kept.
    pub state_dir: PathBuf,
    /// The logs it witnesses.
    #[serde(rename = "log")]
    pub logs: Vec<LogConfig>,
}

/// One witnessed log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Its checkpoints' origin line.
    pub origin: String,
    /// Its verifier keys (C2SP signed-note `name+id+base64`; any one must sign).
    pub keys: Vec<String>,
}

/// What the witness last cosigned for a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// The state file's JSON: `{"size": n, "root": "<hex>", "checkpoint":
/// "<signed note>"}`; `checkpoint` (the last checkpoint cosigned, with the
/// witness's cosignature, served for monitors) is absent in files written
/// before it was kept.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    size: u64,
    root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
}

/// A log's state with the cosigned checkpoint it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    state: LogState,
    checkpoint: Option<String>,
}

impl Stored {
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&StateFile {
            size: self.state.size,
            root: self.state.root.to_hex(),
            checkpoint: self.checkpoint.clone(),
        })
        .unwrap_or_default()
    }

    fn from_json(b: &[u8]) -> Result<Stored, String> {
        let f: StateFile = serde_json::from_slice(b).map_err(|e| e.to_string())?;
        let root = Hash::from_hex(&f.root).map_err(|e| e.to_string())?;
        Ok(Stored {
            state: LogState { size: f.size, root },
            checkpoint: f.checkpoint,
        })
    }
}

/// Why a checkpoint is not cosigned (SPEC.md §14.1 maps each to a status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is not `old <n>`, proof lines, a blank line, a checkpoint (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The old size is larger than the checkpoint's (400).
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldTooLarge {
        /// Given.
        old: u64,
        /// The checkpoint's.
        size: u64,
    },
    /// The origin is not a witnessed log (404).
    #[error("unknown log origin {0:?}")]
    UnknownLog(String),
    /// No trusted signature, or a trusted key's signature fails (403).
    #[error("the checkpoint is not signed by the log: {0}")]
    Signature(String),
    /// The old size is not the size last cosigned (409; the body is that size).
    #[error("the witness last cosigned size {0} for this log")]
    Conflict(u64),
    /// Inconsistent: a bad proof, another root at the same size, a non-empty
    /// proof from size 0, or a size-0 checkpoint whose root is not empty (422).
    #[error("{0}")]
    Inconsistent(String),
    /// The state could not be read or written (500; nothing was cosigned).
    #[error("the witness state could not be written: {0}")]
    Storage(String),
}

/// A parsed `add-checkpoint` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The size the client says the witness last cosigned.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note's bytes.
    pub checkpoint: Vec<u8>,
}

/// Parses an `add-checkpoint` body (C2SP tlog-witness).
pub fn parse_request(body: &[u8]) -> Result<Request, Refusal> {
    use base64::Engine as _;
    let bad = |m: &str| Refusal::Malformed(m.to_owned());
    if body.len() > MAX_BODY {
        return Err(bad("the body is larger than 64 KiB"));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line between the proof and the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(ledger_format::checkpoint::parse_decimal)
        .ok_or_else(|| bad("the first line must be `old <size>` (decimal, no leading zeros)"))?;
    let mut proof = Vec::new();
    for l in lines {
        if proof.len() == MAX_PROOF_LINES {
            return Err(bad("more than 63 consistency proof lines"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(l)
            .map_err(|_| bad("a consistency proof line is not standard base64"))?;
        let h: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("a consistency proof line is not a 32-byte hash"))?;
        proof.push(Hash(h));
    }
    Ok(Request {
        old,
        proof,
        checkpoint: checkpoint.as_bytes().to_vec(),
    })
}

/// A running witness.
#[derive(Debug)]
pub struct Witness {
    key: SignerKey,
    logs: HashMap<String, Vec<VerifierKey>>,
    state_dir: PathBuf,
    /// One lock per log: check and persist happen under it.
    states: HashMap<String, Mutex<Option<Stored>>>,
}

/// The file holding a log's state: its origin, hex-encoded (any origin is a
/// valid, collision-free file name that way).
fn state_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!("{}.json", hex::encode(origin.as_bytes())))
}

impl Witness {
    /// Opens a witness: its key, its logs, their states.
    pub fn open(cfg: &Config) -> Result<Witness, String> {
        let text = std::fs::read_to_string(&cfg.key_file)
            .map_err(|e| format!("reading {}: {e}", cfg.key_file.display()))?;
        let key = SignerKey::parse(text.trim()).map_err(|e| format!("{}: {e}", cfg.key_file.display()))?;
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| format!("creating {}: {e}", cfg.state_dir.display()))?;
        let mut logs = HashMap::new();
        let mut states = HashMap::new();
        for l in &cfg.logs {
            if logs.contains_key(&l.origin) {
                return Err(format!("log {:?} is configured twice", l.origin));
            }
            let keys = l
                .keys
                .iter()
                .map(|k| {
                    VerifierKey::parse(k.trim()).map_err(|e| format!("log {:?}: key {k:?}: {e}", l.origin))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Err(format!("log {:?} has no key", l.origin));
            }
            let path = state_file(&cfg.state_dir, &l.origin);
            let state = match std::fs::read(&path) {
                Ok(b) => Some(Stored::from_json(&b).map_err(|e| format!("{}: {e}", path.display()))?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("reading {}: {e}", path.display())),
            };
            logs.insert(l.origin.clone(), keys);
            states.insert(l.origin.clone(), Mutex::new(state));
        }
        Ok(Witness {
            key,
            logs,
            state_dir: cfg.state_dir.clone(),
            states,
        })
    }

    /// The witness's cosignature verifier key (what logs and verifiers pin).
    pub fn verifier_key(&self) -> VerifierKey {
        self.key.cosignature_verifier()
    }

    /// What the witness last cosigned for `origin`.
    pub fn state(&self, origin: &str) -> Option<LogState> {
        let s = self.states.get(origin)?.lock().unwrap_or_else(|p| p.into_inner());
        s.as_ref().map(|s| s.state)
    }

    /// The last checkpoint of `origin` the witness cosigned, as a signed
    /// note carrying the log's signatures and the witness's cosignature
    /// (what a monitor compares with what the log serves).
    pub fn latest(&self, origin: &str) -> Option<String> {
        let s = self.states.get(origin)?.lock().unwrap_or_else(|p| p.into_inner());
        s.as_ref()?.checkpoint.clone()
    }

    /// Handles one `add-checkpoint` body at `now` (Unix seconds): the
    /// cosignature line(s), each ending in a newline.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<String, Refusal> {
        let req = parse_request(body)?;
        let note = Note::parse(&req.checkpoint)
            .map_err(|e| Refusal::Malformed(format!("the checkpoint note: {e}")))?;
        let cp =
            Checkpoint::parse(note.text()).map_err(|e| Refusal::Malformed(format!("the checkpoint: {e}")))?;
        let keys = self
            .logs
            .get(cp.origin())
            .ok_or_else(|| Refusal::UnknownLog(cp.origin().to_owned()))?;
        note.verify(keys).map_err(|e| match e {
            NoteError::InvalidSignature { .. } | NoteError::NoTrustedSignature { .. } => {
                Refusal::Signature(e.to_string())
            }
            other => Refusal::Malformed(other.to_string()),
        })?;
        if req.old > cp.size() {
            return Err(Refusal::OldTooLarge {
                old: req.old,
                size: cp.size(),
            });
        }
        if cp.size() == 0 && cp.root() != empty_root() {
            return Err(Refusal::Inconsistent(
                "a checkpoint of size 0 must have the empty tree's root".into(),
            ));
        }
        let lock = self
            .states
            .get(cp.origin())
            .ok_or_else(|| Refusal::UnknownLog(cp.origin().to_owned()))?;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let known = state.as_ref().map_or(0, |s| s.state.size);
        if req.old != known {
            return Err(Refusal::Conflict(known));
        }
        match state.as_ref().map(|s| s.state) {
            _ if req.old == 0 => {
                if !req.proof.is_empty() {
                    return Err(Refusal::Inconsistent(
                        "a consistency proof from size 0 must be empty".into(),
                    ));
                }
            }
            Some(s) if s.size == cp.size() => {
                if s.root != cp.root() {
                    return Err(Refusal::Inconsistent(format!(
                        "another root at size {}: the witness cosigned {}, this checkpoint says {}",
                        s.size,
                        s.root,
                        cp.root()
                    )));
                }
            }
            Some(s) => {
                verify_consistency(s.size, cp.size(), &s.root, &cp.root(), &req.proof).map_err(|e| {
                    Refusal::Inconsistent(format!("the consistency proof does not verify: {e}"))
                })?;
            }
            None => return Err(Refusal::Conflict(0)),
        }
        // Persist, then answer: a cosignature is never given for a state
        // that a crash could forget.
        let mut line = self.key.cosign(note.text(), now).to_line();
        if !line.ends_with('\n') {
            line.push('\n');
        }
        let new = LogState {
            size: cp.size(),
            root: cp.root(),
        };
        if state.as_ref().map(|s| s.state) != Some(new) {
            let stored = Stored {
                state: new,
                checkpoint: Some(with_cosignature(&note, &self.verifier_key(), &line)),
            };
            crate::fsutil::write_atomic(
                &state_file(&self.state_dir, cp.origin()),
                &stored.to_json(),
                0o644,
                true,
            )
            .map_err(|e| Refusal::Storage(e.to_string()))?;
            *state = Some(stored);
        }
        drop(state);
        Ok(line)
    }
}

/// The checkpoint note with the witness's cosignature `line` added, and
/// any earlier signature line of the same witness key dropped.
fn with_cosignature(note: &Note, own: &VerifierKey, line: &str) -> String {
    let mut out = format!("{}\n", note.text());
    for s in note.signatures() {
        if !(s.name() == own.name() && s.key_id() == own.key_id()) {
            out.push_str(&s.to_line());
            out.push('\n');
        }
    }
    out.push_str(line);
    out
}

/// Writes a new witness key (secret text, mode 0600) at `path`; returns it.
pub fn generate_key(name: &str, path: &Path) -> Result<SignerKey, String> {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let key = SignerKey::from_seed(name, &seed).map_err(|e| e.to_string())?;
    crate::fsutil::write_atomic(
        path,
        format!("{}\n", key.to_secret_text()).as_bytes(),
        0o600,
        false,
    )
    .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let cp =
            "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log AAAA\n";
        let r = parse_request(format!("old 0\n\n{cp}").as_bytes()).unwrap();
        assert_eq!((r.old, r.proof.len()), (0, 0));
        for bad in [
            format!("old 01\n\n{cp}"),
            format!("old x\n\n{cp}"),
            format!("new 0\n\n{cp}"),
            format!("old 0\nnot base64!\n\n{cp}"),
            format!("old 0\nAAAA\n\n{cp}"),
            "old 0\n".to_owned(),
        ] {
            assert!(
                matches!(parse_request(bad.as_bytes()), Err(Refusal::Malformed(_))),
                "{bad:?}"
            );
        }
        let many = format!(
            "old 1\n{}\n{cp}",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n".repeat(64)
        );
        assert!(matches!(parse_request(many.as_bytes()), Err(Refusal::Malformed(m)) if m.contains("63")));
    }
}
