//! Catching a split view (SPEC.md §14.4): compare the checkpoints several
//! sources serve for one log — the log itself, mirrors, git clones, each
//! witness's latest, a checkpoint someone pasted — and the last one this
//! monitor verified, and report any two that cannot both be true, with both
//! signed notes as evidence.
//!
//! One entry point, [`round`]: it reads every [`Source`], verifies each
//! checkpoint (the log's signature, the origin, the witness quorum asked
//! for), checks that every source with tiles serves tiles that hash to its
//! own checkpoint's root, and then proves each checkpoint consistent with
//! every tree at least as large: equal sizes need equal roots; a smaller
//! checkpoint's root must be the root that tree's tiles give at its size
//! (which, the tree's tiles hashing to its signed root, is what a
//! consistency proof from those tiles would show). Both `tally monitor`
//! (repeatedly, keeping the last verified checkpoint in [`State`]) and
//! `tally audit --compare` (once) use it.
//!
//! Below: `ledger-format`, `ledger::git` (reading a ledger repository),
//! `source` (fetching tiles), `witness::policy` (quorums). Above: `cmd`.

pub mod source;

use std::path::{Path, PathBuf};

use ledger_format::checkpoint::{verify_checkpoint, VerifiedCheckpoint};
use ledger_format::note::{Note, VerifierKey};

pub use source::{Source, SourceError};

use crate::witness::policy::TrustPolicy;

/// What the checkpoints must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The log's verifier key.
    pub log_key: &'a VerifierKey,
    /// The origin every checkpoint must carry (default: the key's name).
    pub origin: Option<&'a str>,
    /// The witness quorum a log's checkpoint must carry (a witness's own
    /// latest checkpoint carries only its cosignature, so it is not held to it).
    pub policy: Option<&'a TrustPolicy>,
}

impl Options<'_> {
    /// The origin compared.
    pub fn origin(&self) -> &str {
        self.origin.unwrap_or(self.log_key.name())
    }
}

/// A verified checkpoint and where it came from.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The source's argument (or `state` for the monitor's last verified one).
    pub source: String,
    /// The checkpoint.
    pub checkpoint: VerifiedCheckpoint,
    /// Whether a tree at least as large proved it consistent this round.
    pub proven: bool,
}

/// Two checkpoints of one log that cannot both be true.
#[derive(Debug, Clone)]
pub struct Fork {
    /// The smaller (or, at equal sizes, the first seen) checkpoint.
    pub a: Seen,
    /// The other.
    pub b: Seen,
    /// Why they are inconsistent.
    pub reason: String,
}

impl Fork {
    /// The fork as text an auditor can act on: both checkpoints, why they
    /// are inconsistent, and both signed notes verbatim.
    pub fn evidence(&self) -> String {
        let line = |s: &Seen| {
            format!(
                "  {}: size {} root {}\n",
                s.source,
                s.checkpoint.size(),
                s.checkpoint.root()
            )
        };
        format!(
            "SPLIT VIEW: two checkpoints of {:?} are not consistent\n{}{}  why: {}\nevidence (both signed notes, verbatim):\n--- from {}\n{}--- from {}\n{}",
            self.a.checkpoint.origin(),
            line(&self.a),
            line(&self.b),
            self.reason,
            self.a.source,
            self.a.checkpoint.note_text(),
            self.b.source,
            self.b.checkpoint.note_text()
        )
    }

    /// The fork as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let side = |s: &Seen| {
            serde_json::json!({
                "source": s.source,
                "tree_size": s.checkpoint.size(),
                "root": s.checkpoint.root().to_hex(),
                "checkpoint": s.checkpoint.note_text(),
            })
        };
        serde_json::json!({ "a": side(&self.a), "b": side(&self.b), "reason": self.reason })
    }
}

/// A source that could not be compared.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The source.
    pub source: String,
    /// True when it answered wrongly (bad signature, wrong origin, quorum
    /// not met, tiles that do not match its checkpoint); false when it could
    /// not be reached.
    pub invalid: bool,
    /// What happened.
    pub message: String,
}

/// What one comparison found.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// Every verified checkpoint, the last verified one first (if any).
    pub seen: Vec<Seen>,
    /// Inconsistent pairs.
    pub forks: Vec<Fork>,
    /// Sources that could not be compared.
    pub problems: Vec<Problem>,
    /// Sources that answered but hold no checkpoint of this log yet.
    pub empty: Vec<String>,
    /// The largest checkpoint backed by tiles and consistent with everything
    /// seen: what the monitor remembers next.
    pub newest: Option<VerifiedCheckpoint>,
}

impl Round {
    /// True when a fork or an invalid source was found.
    pub fn alarming(&self) -> bool {
        !self.forks.is_empty() || self.problems.iter().any(|p| p.invalid)
    }
}

/// Reads every source, verifies and compares what they serve, and what the
/// monitor verified last (`last`).
pub fn round(sources: &mut [Source], opts: &Options<'_>, last: Option<&VerifiedCheckpoint>) -> Round {
    let origin = opts.origin().to_owned();
    let mut r = Round::default();
    if let Some(l) = last {
        r.seen.push(Seen {
            source: "state (the last checkpoint this monitor verified)".into(),
            checkpoint: l.clone(),
            proven: false,
        });
    }
    // Index in `r.seen` → index in `sources` for sources with a tree.
    let mut trees: Vec<(usize, usize)> = Vec::new();
    for (i, s) in sources.iter_mut().enumerate() {
        let bytes = match s.checkpoint(&origin) {
            Ok(Some(b)) => b,
            Ok(None) => {
                r.empty.push(s.label().to_owned());
                continue;
            }
            Err(e) => {
                r.problems.push(Problem {
                    source: s.label().to_owned(),
                    invalid: matches!(e, SourceError::Invalid(_)),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let cp = match verify(&bytes, opts, s.kind() != "witness") {
            Ok(cp) => cp,
            Err(message) => {
                r.problems.push(Problem {
                    source: s.label().to_owned(),
                    invalid: true,
                    message,
                });
                continue;
            }
        };
        // A tree must hash to its own checkpoint's root before it can
        // prove anything about another.
        if let Some(got) = s.root_at(cp.size(), cp.size()) {
            match got {
                Ok(root) if root == cp.root() => trees.push((r.seen.len(), i)),
                Ok(root) => {
                    r.problems.push(Problem {
                        source: s.label().to_owned(),
                        invalid: true,
                        message: format!(
                            "its tiles hash to {root} at size {}, not to its checkpoint's root {}",
                            cp.size(),
                            cp.root()
                        ),
                    });
                    continue;
                }
                Err(e) => {
                    r.problems.push(Problem {
                        source: s.label().to_owned(),
                        invalid: matches!(e, SourceError::Invalid(_)),
                        message: e.to_string(),
                    });
                    continue;
                }
            }
        }
        r.seen.push(Seen {
            source: s.label().to_owned(),
            checkpoint: cp,
            proven: false,
        });
    }

    // Equal sizes: equal roots.
    for b in 0..r.seen.len() {
        for a in 0..b {
            let (x, y) = (&r.seen[a].checkpoint, &r.seen[b].checkpoint);
            if x.size() == y.size() && x.root() != y.root() {
                r.forks.push(Fork {
                    a: r.seen[a].clone(),
                    b: r.seen[b].clone(),
                    reason: format!("two different roots at the same size {}", x.size()),
                });
            }
        }
    }
    // Smaller checkpoints against every tree at least as large.
    for &(t, src) in &trees {
        let tree_size = r.seen[t].checkpoint.size();
        for o in 0..r.seen.len() {
            let (size, root) = (r.seen[o].checkpoint.size(), r.seen[o].checkpoint.root());
            if size > tree_size {
                continue;
            }
            if size == tree_size {
                if root == r.seen[t].checkpoint.root() {
                    r.seen[o].proven = true;
                }
                continue;
            }
            match sources[src].root_at(size, tree_size) {
                Some(Ok(got)) if got == root => r.seen[o].proven = true,
                Some(Ok(got)) => {
                    let reason = format!(
                        "the tiles of {} hash to its signed root at size {tree_size}, and to {got} at size {size}, not to {root}: no consistency proof can exist",
                        r.seen[t].source
                    );
                    r.forks.push(Fork {
                        a: r.seen[o].clone(),
                        b: r.seen[t].clone(),
                        reason,
                    });
                }
                Some(Err(e)) => r.problems.push(Problem {
                    source: r.seen[t].source.clone(),
                    invalid: matches!(e, SourceError::Invalid(_)),
                    message: e.to_string(),
                }),
                None => {}
            }
        }
    }
    if r.forks.is_empty() {
        r.newest = trees
            .iter()
            .map(|&(t, _)| &r.seen[t])
            .filter(|s| s.proven)
            .max_by_key(|s| s.checkpoint.size())
            .map(|s| s.checkpoint.clone())
            .filter(|c| last.is_none_or(|l| c.size() >= l.size()));
    }
    r
}

/// Verifies a checkpoint's signature and origin, and (for a log's
/// checkpoint) the witness quorum.
fn verify(bytes: &[u8], opts: &Options<'_>, quorum: bool) -> Result<VerifiedCheckpoint, String> {
    let cp = verify_checkpoint(bytes, opts.log_key, &[], Some(opts.origin())).map_err(|e| e.to_string())?;
    if let (true, Some(p)) = (quorum, opts.policy) {
        let note = Note::parse(bytes).map_err(|e| e.to_string())?;
        let q = p.check(&note);
        if !q.satisfied {
            return Err(format!(
                "checkpoint of size {} is cosigned by [{}], short of the quorum {}",
                cp.size(),
                q.cosigned.join(", "),
                p.describe_quorum()
            ));
        }
    }
    Ok(cp)
}

/// Where a monitor keeps the last checkpoint it verified, fetched git
/// remotes, and the evidence of each fork it found.
#[derive(Debug, Clone)]
pub struct State {
    dir: PathBuf,
}

impl State {
    /// Opens (creating) the state folder.
    pub fn open(dir: &Path) -> Result<State, String> {
        std::fs::create_dir_all(dir.join("evidence"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(State { dir: dir.to_owned() })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last checkpoint verified, checked again under `opts` (a state
    /// folder of another log is refused, not silently replaced).
    pub fn last(&self, opts: &Options<'_>) -> Result<Option<VerifiedCheckpoint>, String> {
        let path = self.dir.join("checkpoint");
        match std::fs::read(&path) {
            Ok(b) => verify_checkpoint(&b, opts.log_key, &[], Some(opts.origin()))
                .map(Some)
                .map_err(|e| format!("{}: not a checkpoint of this log: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Remembers `cp` (durably: a crash leaves the old one or the new one).
    pub fn remember(&self, cp: &VerifiedCheckpoint) -> Result<(), String> {
        crate::fsutil::write_atomic(
            &self.dir.join("checkpoint"),
            cp.note_text().as_bytes(),
            0o644,
            true,
        )
        .map_err(|e| format!("writing {}: {e}", self.dir.join("checkpoint").display()))
    }

    /// Writes the evidence of `forks` to `evidence/<unix seconds>-<n>.txt`;
    /// returns the files written.
    pub fn keep_evidence(&self, forks: &[Fork], now: u64) -> Result<Vec<PathBuf>, String> {
        let mut out = Vec::new();
        for (i, f) in forks.iter().enumerate() {
            let path = self.dir.join("evidence").join(format!("{now}-{i}.txt"));
            crate::fsutil::write_atomic(&path, f.evidence().as_bytes(), 0o644, true)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            out.push(path);
        }
        Ok(out)
    }
}
