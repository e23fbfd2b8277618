//! C2SP tlog-proof files: an entry's index, its inclusion proof and the signed
//! checkpoint it is proven under — everything an auditor needs offline.
//!
//! Not here: fetching checkpoints or tiles to build the proof.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::checkpoint::{parse_decimal, verify_checkpoint, CheckpointError, VerifiedCheckpoint};
use crate::hash::{leaf_hash, Hash};
use crate::merkle::{verify_inclusion, ProofError, VerifiedInclusion};
use crate::note::VerifierKey;

/// The first line of every tlog-proof file.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Why a tlog-proof file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// Not UTF-8.
    #[error("tlog-proof is not valid UTF-8")]
    NotUtf8,
    /// Line `line` is wrong.
    #[error("tlog-proof line {line}: {why}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// There is no blank line before the checkpoint.
    #[error("tlog-proof has no blank line followed by a checkpoint")]
    NoCheckpoint,
    /// The checkpoint did not verify.
    #[error("tlog-proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof did not verify.
    #[error("tlog-proof inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

/// A parsed tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// Inclusion proof, from the leaf's sibling up.
    pub proof: Vec<Hash>,
    /// The signed checkpoint, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// Parses a tlog-proof file.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        let s = std::str::from_utf8(bytes).map_err(|_| TlogProofError::NotUtf8)?;
        let (head, checkpoint) = s.split_once("\n\n").ok_or(TlogProofError::NoCheckpoint)?;
        if checkpoint.is_empty() {
            return Err(TlogProofError::NoCheckpoint);
        }
        let mut lines = head.split('\n').enumerate().peekable();
        let bad = |line: usize, why: &str| TlogProofError::BadLine {
            line: line + 1,
            why: why.to_owned(),
        };
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(bad(0, &format!("the first line must be {HEADER}"))),
        }
        let mut extra = None;
        if let Some((i, l)) = lines.peek().copied() {
            if let Some(b64) = l.strip_prefix("extra ") {
                extra = Some(
                    STANDARD
                        .decode(b64)
                        .map_err(|_| bad(i, "extra data is not base64"))?,
                );
                lines.next();
            }
        }
        let (i, index_line) = lines.next().ok_or_else(|| bad(1, "missing `index <N>` line"))?;
        let index = index_line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or_else(|| bad(i, "expected `index <N>` with N a decimal without leading zeros"))?;
        let mut proof = Vec::new();
        for (i, l) in lines {
            proof.push(Hash::from_base64(l).map_err(|e| bad(i, &format!("proof hash: {e}")))?);
        }
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The file's exact text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            s.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            s.push_str(&h.to_base64());
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Verifies that `entry` is at `index` under the checkpoint, which the
    /// log key (and optionally witnesses) signed.
    pub fn verify(
        &self,
        entry: &[u8],
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
        expected_origin: Option<&str>,
    ) -> Result<VerifiedProof, TlogProofError> {
        self.verify_leaf_hash(&leaf_hash(entry), log_key, witnesses, expected_origin)
    }

    /// As [`TlogProof::verify`], given the leaf hash instead of the entry.
    pub fn verify_leaf_hash(
        &self,
        leaf: &Hash,
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
        expected_origin: Option<&str>,
    ) -> Result<VerifiedProof, TlogProofError> {
        let checkpoint = verify_checkpoint(self.checkpoint.as_bytes(), log_key, witnesses, expected_origin)?;
        let inclusion = verify_inclusion(
            leaf,
            self.index,
            checkpoint.size(),
            &self.proof,
            &checkpoint.root(),
        )?;
        Ok(VerifiedProof {
            checkpoint,
            inclusion,
        })
    }
}

/// An entry proven included under a verified checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedProof {
    checkpoint: VerifiedCheckpoint,
    inclusion: VerifiedInclusion,
}

impl VerifiedProof {
    /// The verified checkpoint.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    /// The verified inclusion.
    pub fn inclusion(&self) -> &VerifiedInclusion {
        &self.inclusion
    }
}
