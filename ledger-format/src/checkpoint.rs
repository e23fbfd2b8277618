//! C2SP checkpoints: the body of a signed note naming a log's origin, size
//! and root, and their verification into a [`VerifiedCheckpoint`].
//!
//! Not here: signature mechanics (see `note`) or where checkpoints are stored.

use crate::hash::{Hash, HASH_LEN};
use crate::merkle::{verify_consistency, ProofError, VerifiedConsistency};
use crate::note::{Note, NoteError, SignerKey, VerifiedNote, VerifiedSignature, VerifierKey};

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The body has fewer than three lines or does not end with a newline.
    #[error("checkpoint body must be at least three lines, each ending in a newline")]
    TooShort,
    /// The origin line is empty.
    #[error("checkpoint origin (line 1) is empty")]
    EmptyOrigin,
    /// The size line is not a canonical decimal.
    #[error(
        "checkpoint size (line 2) {0:?} is not a decimal number without leading zeros that fits in 64 bits"
    )]
    BadSize(String),
    /// The root line is not base64 of 32 bytes.
    #[error("checkpoint root (line 3) {0:?} is not standard base64 of a 32-byte hash")]
    BadRoot(String),
    /// An extension line is empty.
    #[error("checkpoint extension line {0} is empty; C2SP requires non-empty extension lines")]
    EmptyExtension(usize),
    /// The note around it is malformed or badly signed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The origin is not the one expected.
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    WrongOrigin {
        /// What the checkpoint says.
        found: String,
        /// What the verifier expected.
        expected: String,
    },
    /// The log's own key did not sign it.
    #[error("checkpoint is not signed by the log key {0}")]
    NotSignedByLog(String),
    /// Two checkpoints are not consistent.
    #[error("checkpoints are inconsistent: {0}")]
    Inconsistent(#[from] ProofError),
}

impl CheckpointError {
    /// Whether the checkpoint text itself is malformed (it does not parse as
    /// a signed note or a checkpoint body), as opposed to well-formed but not
    /// verifying (wrong origin, wrong signer, inconsistent).
    pub fn is_malformed(&self) -> bool {
        match self {
            CheckpointError::TooShort
            | CheckpointError::EmptyOrigin
            | CheckpointError::BadSize(_)
            | CheckpointError::BadRoot(_)
            | CheckpointError::EmptyExtension(_) => true,
            CheckpointError::Note(n) => matches!(
                n,
                NoteError::NotUtf8(_)
                    | NoteError::ControlCharacter { .. }
                    | NoteError::NoSignatureBlock
                    | NoteError::NoSignatures
                    | NoteError::MissingFinalNewline
                    | NoteError::BadText
                    | NoteError::BadSignatureLine { .. }
                    | NoteError::TooManySignatures(_)
            ),
            CheckpointError::WrongOrigin { .. }
            | CheckpointError::NotSignedByLog(_)
            | CheckpointError::Inconsistent(_) => false,
        }
    }
}

/// A checkpoint body: origin, tree size, root hash and optional extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

/// Parses a canonical unsigned decimal: no sign, no leading zeros.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

impl Checkpoint {
    /// A checkpoint with no extension lines.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        if origin.is_empty() || origin.contains('\n') {
            return Err(CheckpointError::EmptyOrigin);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// Parses a checkpoint body (the note text).
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let trimmed = body.strip_suffix('\n').ok_or(CheckpointError::TooShort)?;
        let mut lines = trimmed.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CheckpointError::TooShort);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_decimal(size).ok_or_else(|| CheckpointError::BadSize(size.to_owned()))?;
        let root_hash = {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(root)
                .map_err(|_| CheckpointError::BadRoot(root.to_owned()))?;
            if raw.len() != HASH_LEN {
                return Err(CheckpointError::BadRoot(root.to_owned()));
            }
            Hash::from_slice(&raw).map_err(|_| CheckpointError::BadRoot(root.to_owned()))?
        };
        let mut extensions = Vec::new();
        for (i, ext) in lines.enumerate() {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtension(i + 4));
            }
            extensions.push(ext.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root: root_hash,
            extensions,
        })
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// The root hash.
    pub fn root(&self) -> Hash {
        self.root
    }
    /// Extension lines (discouraged by C2SP; carried verbatim).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The body text, each line ending in `\n`.
    pub fn to_body(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Signs the body with the log's key, giving the signed note.
    pub fn sign(&self, key: &SignerKey) -> Result<Note, CheckpointError> {
        let body = self.to_body();
        let mut note = Note::new(&body)?;
        note.push_signature(key.sign(&body));
        Ok(note)
    }
}

/// A checkpoint whose log signature (and any trusted cosignatures) verified.
///
/// Only [`verify_checkpoint`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: VerifiedNote,
    note_text: String,
}

impl VerifiedCheckpoint {
    /// The checkpoint body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The tree size.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }
    /// The root.
    pub fn root(&self) -> Hash {
        self.checkpoint.root
    }
    /// The origin.
    pub fn origin(&self) -> &str {
        &self.checkpoint.origin
    }
    /// The signed note exactly as it was verified.
    pub fn note_text(&self) -> &str {
        &self.note_text
    }
    /// Cosignatures from trusted witnesses that verified.
    pub fn cosignatures(&self) -> impl Iterator<Item = &VerifiedSignature> {
        self.note.verified().iter().filter(|s| s.timestamp().is_some())
    }
    /// Signature lines from keys that were not trusted.
    pub fn unverified_signatures(&self) -> usize {
        self.note.unverified().len()
    }

    /// Checks that `newer` extends this checkpoint, given a consistency proof
    /// from this size to its size. An empty old tree is trivially consistent.
    pub fn check_consistent(
        &self,
        newer: &VerifiedCheckpoint,
        proof: &[Hash],
    ) -> Result<Option<VerifiedConsistency>, CheckpointError> {
        if self.size() == 0 && proof.is_empty() {
            return Ok(None);
        }
        Ok(Some(verify_consistency(
            self.size(),
            newer.size(),
            &self.root(),
            &newer.root(),
            proof,
        )?))
    }
}

/// Verifies a signed checkpoint: the log key must have signed it and, when
/// `expected_origin` is given, its origin must match. Trusted witness keys
/// (type 0x04) may be passed in `witnesses`; their cosignatures are checked.
pub fn verify_checkpoint(
    note_bytes: &[u8],
    log_key: &VerifierKey,
    witnesses: &[VerifierKey],
    expected_origin: Option<&str>,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let note = Note::parse(note_bytes)?;
    let mut keys = Vec::with_capacity(1 + witnesses.len());
    keys.push(log_key.clone());
    keys.extend_from_slice(witnesses);
    let verified = note.verify(&keys)?;
    if !verified
        .verified()
        .iter()
        .any(|s| s.name() == log_key.name() && s.key_id() == log_key.key_id())
    {
        return Err(CheckpointError::NotSignedByLog(log_key.to_string()));
    }
    let checkpoint = Checkpoint::parse(note.text())?;
    if let Some(expected) = expected_origin {
        if checkpoint.origin() != expected {
            return Err(CheckpointError::WrongOrigin {
                found: checkpoint.origin().to_owned(),
                expected: expected.to_owned(),
            });
        }
    }
    Ok(VerifiedCheckpoint {
        checkpoint,
        note: verified,
        note_text: note.to_text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::empty_root;

    #[test]
    fn round_trip_and_verify() {
        let key = SignerKey::from_seed("example.com/log", &[3; 32]).expect("key");
        let cp = Checkpoint::new("example.com/log", 0, empty_root()).expect("cp");
        let note = cp.sign(&key).expect("sign");
        let v = verify_checkpoint(
            note.to_text().as_bytes(),
            &key.verifier(),
            &[],
            Some("example.com/log"),
        )
        .expect("verify");
        assert_eq!(v.checkpoint(), &cp);
        let err = verify_checkpoint(note.to_text().as_bytes(), &key.verifier(), &[], Some("other"))
            .expect_err("origin");
        assert!(matches!(err, CheckpointError::WrongOrigin { .. }));
    }

    #[test]
    fn rejects_leading_zero_and_short_root() {
        assert!(matches!(
            Checkpoint::parse("Log\n0123\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"),
            Err(CheckpointError::BadSize(_))
        ));
        assert!(matches!(
            Checkpoint::parse("Log\n123\nYmFuYW5hcw==\n"),
            Err(CheckpointError::BadRoot(_))
        ));
    }
}
