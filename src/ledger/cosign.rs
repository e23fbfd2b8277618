//! What the publisher needs from witnesses, as an interface: the ledger
//! signs a checkpoint, hands it to a [`Cosign`] with a way to make
//! consistency proofs, and publishes the note with the cosignature lines it
//! gets back (SPEC.md §14.2). `witness::Cosigner` implements it over HTTP;
//! the ledger knows nothing of URLs or policies.

use std::time::Duration;

use ledger_format::hash::Hash;
use ledger_format::note::Note;

/// Makes the consistency proof from an older size to the checkpoint's size.
pub type ProofFn<'a> = dyn Fn(u64) -> Result<Vec<Hash>, String> + Sync + 'a;

/// Collects witness cosignatures for signed checkpoints.
pub trait Cosign: Send + Sync + std::fmt::Debug {
    /// Asks the witnesses to cosign `checkpoint` (the log-signed note) of
    /// tree `size`; `proof(old)` proves it extends the size `old` a witness
    /// last cosigned. Never fails: a witness that is down or refuses just
    /// adds no line. Bounded in time by the implementation's deadline.
    fn cosign(&self, checkpoint: &str, size: u64, proof: &ProofFn<'_>) -> Cosigned;
    /// The witnesses and quorum a note already carries (a published
    /// checkpoint read back at start); `lines` is left empty.
    fn assess(&self, checkpoint: &str) -> Cosigned;
    /// With no quorum, hold the checkpoint back (retrying) rather than
    /// publishing it with fewer cosignatures.
    fn hold_without_quorum(&self) -> bool;
    /// How long to wait between two attempts for a checkpoint short of its
    /// quorum.
    fn retry_interval(&self) -> Duration;
}

/// What one round of cosigning gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cosigned {
    /// Cosignature lines (`— <name> <base64>\n` each), every one verified.
    pub lines: Vec<String>,
    /// How many distinct witnesses cosigned.
    pub witnesses: usize,
    /// Whether they satisfy the quorum.
    pub quorum: bool,
}

/// The witnessing state of the published checkpoint, for `/readyz` and
/// `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Witnessing {
    /// Witnesses whose cosignature the published checkpoint carries.
    pub cosignatures: usize,
    /// Whether those satisfy the quorum.
    pub quorum: bool,
    /// A signed checkpoint is held back, waiting for its quorum.
    pub holding: bool,
    /// Publications made without a quorum (publish mode), since start.
    pub published_short: u64,
}

/// `checkpoint` (a signed note) with `lines` added; an earlier signature
/// by a key that signs again in `lines` is replaced.
pub fn with_cosignatures(checkpoint: &str, lines: &[String]) -> Result<String, String> {
    if lines.is_empty() {
        return Ok(checkpoint.to_owned());
    }
    let base = Note::parse(checkpoint.as_bytes()).map_err(|e| format!("the signed checkpoint: {e}"))?;
    let added = Note::parse(format!("{}\n{}", base.text(), lines.concat()).as_bytes())
        .map_err(|e| format!("a cosignature line: {e}"))?;
    let mut out = Note::new(base.text()).map_err(|e| e.to_string())?;
    for s in base.signatures() {
        if !added
            .signatures()
            .iter()
            .any(|a| a.name() == s.name() && a.key_id() == s.key_id())
        {
            out.push_signature(s.clone());
        }
    }
    for s in added.signatures() {
        out.push_signature(s.clone());
    }
    Ok(out.to_text())
}
