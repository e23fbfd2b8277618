//! Artifact storage behind the control plane (SPEC.md §12.7): one trait,
//! two backends. The filesystem backend is the embedded default; the OCI
//! backend stores every artifact in a registry as an OCI artifact and every
//! accepted attestation as a referrer of what it attests to.
//!
//! Both verify the digest while the bytes stream through: a body whose
//! digest is not the one announced is never committed, and nothing is held
//! whole in memory.

pub mod fs;
pub mod oci;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::Stream;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio_util::bytes::Bytes;

use crate::server::ConfigError;

/// A stream of bytes in or out of a store.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What is known about an upload besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// `<64 hex>` the bytes must hash to.
    pub hex: String,
    /// Their length (from `Content-Length`).
    pub len: u64,
    /// The workflow storing it.
    pub workflow: String,
    /// The run it belongs to, if any.
    pub run: Option<String>,
    /// The material kind (SPEC.md §11.3), `ARTIFACT` when not given.
    pub kind: String,
    /// The material's name in the run.
    pub name: Option<String>,
}

/// Where a stored artifact is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// False when the bytes were there already (content addressing).
    pub new: bool,
    /// The OCI reference of its manifest (`host/repo@sha256:…`); none on the filesystem.
    pub reference: Option<String>,
    /// The manifest's digest, media type and size (OCI only).
    pub manifest: Option<Descriptor>,
}

/// An OCI descriptor: what a referrer's `subject` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes hash to something else than announced.
    #[error(
        "the uploaded bytes ({size} bytes) have digest sha256:{got}, not sha256:{want}; nothing was stored"
    )]
    Mismatch {
        /// Announced.
        want: String,
        /// Received.
        got: String,
        /// Bytes received.
        size: u64,
    },
    /// Fewer or more bytes than announced arrived.
    #[error("the upload broke off after {got} of {want} bytes; nothing was stored")]
    Truncated {
        /// Announced.
        want: u64,
        /// Received.
        got: u64,
    },
    /// The client's body failed.
    #[error("the upload broke off: {0}; nothing was stored")]
    Interrupted(String),
    /// The backend cannot be reached or refused the operation.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

/// One attestation to store as a referrer (OCI only).
#[derive(Debug, Clone)]
pub struct AttestationArtifact {
    /// The log index of its entry.
    pub log_index: u64,
    /// The DSSE envelope's bytes.
    pub envelope: Vec<u8>,
    /// Its offline bundle (entry, tlog-proof, envelope; SPEC.md §6.2).
    pub bundle: Vec<u8>,
    /// Manifest annotations (workflow, run, contract, log index).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What the rest of the server needs of artifact storage.
pub trait ArtifactStore: Send + Sync + std::fmt::Debug {
    /// `filesystem <dir>` or `oci <repository>`, for the banner and errors.
    fn describe(&self) -> String;
    /// Proves the store is writable (at start).
    fn check(&self) -> BoxFuture<'_, Result<String, ArtifactError>>;
    /// Whether the blob `hex` is stored.
    fn contains<'a>(&'a self, hex: &'a str) -> BoxFuture<'a, Result<bool, ArtifactError>>;
    /// Streams `body` in, verifying `up.hex` and `up.len` before committing.
    fn put<'a>(&'a self, up: &'a Upload, body: ByteStream) -> BoxFuture<'a, Result<Stored, ArtifactError>>;
    /// The blob `hex` as a stream and its length; `None` when absent.
    fn get<'a>(&'a self, hex: &'a str) -> BoxFuture<'a, Result<Option<(u64, ByteStream)>, ArtifactError>>;
    /// Stores an accepted attestation as a referrer of each of `subjects`
    /// (`[]`: stored without a subject); returns the references written.
    /// The filesystem store keeps attestations in the ledger only.
    fn put_attestation<'a>(
        &'a self,
        att: &'a AttestationArtifact,
        subjects: &'a [Subject],
    ) -> BoxFuture<'a, Result<Vec<String>, ArtifactError>>;
    /// Whether attestations are copied into this store.
    fn stores_attestations(&self) -> bool;
    /// The manifest of a pinned container image (`host/repo@sha256:…`) when
    /// it is in this store's registry, as a referrer's subject.
    fn image_subject<'a>(&'a self, pinned: &'a str) -> BoxFuture<'a, Result<Option<Subject>, ArtifactError>>;
}

/// What an attestation refers to in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The repository (`host/path`) holding it.
    pub repository: String,
    /// Its manifest.
    pub descriptor: Descriptor,
}

/// Which backend.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Blobs under the data directory.
    #[default]
    Filesystem,
    /// An OCI registry.
    Oci,
}

/// When the OCI backend may talk plain HTTP.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlainHttp {
    /// Only to a loopback registry (127.0.0.1, ::1, localhost).
    #[default]
    Loopback,
    /// Always (forced by the operator).
    Always,
    /// Never.
    Never,
}

/// `[artifacts]` of the server config (SPEC.md §12.1).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    /// `filesystem` (default) or `oci`.
    pub backend: Backend,
    /// OCI: the repository artifacts go to, `host[:port]/path`.
    pub repository: String,
    /// OCI: when plain HTTP is allowed.
    pub plain_http: PlainHttp,
    /// OCI: the registry user (or `TALLY_OCI_USERNAME`).
    pub username: String,
    /// OCI: a file holding the password (or `TALLY_OCI_PASSWORD`).
    pub password_file: Option<PathBuf>,
    /// Workflows whose artifacts anyone may read.
    pub public_workflows: Vec<String>,
}

impl ArtifactsConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.backend == Backend::Oci {
            oci::parse_repository(&self.repository)
                .map_err(|e| ConfigError(format!("artifacts.repository: {e}")))?;
        }
        Ok(())
    }
}

/// Opens the configured store (not yet checked: see [`ArtifactStore::check`]).
pub fn open(cfg: &ArtifactsConfig, data_dir: &std::path::Path) -> Result<Arc<dyn ArtifactStore>, String> {
    match cfg.backend {
        Backend::Filesystem => Ok(Arc::new(fs::FsStore::new(data_dir.join("artifacts")))),
        Backend::Oci => {
            // The environment overrides the file (SPEC.md §12.1).
            let password = match (std::env::var("TALLY_OCI_PASSWORD"), &cfg.password_file) {
                (Ok(p), _) if !p.is_empty() => Some(p),
                (_, Some(p)) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| format!("cannot read artifacts.password_file {}: {e}", p.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                ),
                _ => None,
            };
            let username = match std::env::var("TALLY_OCI_USERNAME") {
                Ok(u) if !u.is_empty() => u,
                _ => cfg.username.clone(),
            };
            if password.is_some() == username.is_empty() {
                return Err(
                    "the OCI registry needs both a user (artifacts.username or TALLY_OCI_USERNAME) \
                     and a password (artifacts.password_file or TALLY_OCI_PASSWORD), or neither"
                        .into(),
                );
            }
            let creds = password.map(|p| (username, p));
            Ok(Arc::new(oci::OciStore::new(
                &cfg.repository,
                cfg.plain_http,
                creds,
            )?))
        }
    }
}

/// The outcome of streaming an upload through [`Verifying`], read after the
/// backend finished (or failed) with it.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Bytes seen.
    pub size: u64,
    /// Set when the stream ended: the digest of everything seen.
    pub digest: Option<String>,
    /// Set when the client's body failed.
    pub broke: Option<String>,
}

/// Hashes and counts an upload as it passes, and fails the stream (so the
/// backend aborts instead of committing) when the client's body breaks, runs
/// past the announced length, or ends with another digest.
pub struct Verifying {
    inner: ByteStream,
    hasher: Option<Sha256>,
    want_hex: String,
    want_len: u64,
    verdict: Arc<Mutex<Verdict>>,
}

impl std::fmt::Debug for Verifying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifying")
            .field("want_hex", &self.want_hex)
            .field("want_len", &self.want_len)
            .finish_non_exhaustive()
    }
}

impl Verifying {
    /// Wraps `inner`; the verdict is readable once the stream is done.
    pub fn new(inner: ByteStream, hex: &str, len: u64) -> (Self, Arc<Mutex<Verdict>>) {
        let verdict = Arc::new(Mutex::new(Verdict::default()));
        (
            Verifying {
                inner,
                hasher: Some(Sha256::new()),
                want_hex: hex.to_owned(),
                want_len: len,
                verdict: verdict.clone(),
            },
            verdict,
        )
    }
}

impl Stream for Verifying {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(h) = this.hasher.as_mut() else {
            // Decided at the last byte (or failed): nothing more may pass.
            return match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(c))) if !c.is_empty() => {
                    this.verdict.lock().unwrap_or_else(|p| p.into_inner()).size += c.len() as u64;
                    Poll::Ready(Some(Err(std::io::Error::other("longer than announced"))))
                }
                Poll::Ready(Some(Ok(c))) => Poll::Ready(Some(Ok(c))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let mut v = this.verdict.lock().unwrap_or_else(|p| p.into_inner());
                v.size += chunk.len() as u64;
                if v.size > this.want_len {
                    this.hasher = None;
                    return Poll::Ready(Some(Err(std::io::Error::other("longer than announced"))));
                }
                h.update(&chunk);
                if v.size == this.want_len {
                    // The last byte: decide now, before the chunk goes on (a
                    // sized body's reader may never ask for the end).
                    let digest = this
                        .hasher
                        .take()
                        .map(|h| hex::encode(h.finalize()))
                        .unwrap_or_default();
                    let ok = digest == this.want_hex;
                    v.digest = Some(digest);
                    if !ok {
                        return Poll::Ready(Some(Err(std::io::Error::other("digest mismatch"))));
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.hasher = None;
                this.verdict.lock().unwrap_or_else(|p| p.into_inner()).broke = Some(e.to_string());
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let digest = this
                    .hasher
                    .take()
                    .map(|h| hex::encode(h.finalize()))
                    .unwrap_or_default();
                let mut v = this.verdict.lock().unwrap_or_else(|p| p.into_inner());
                let ok = digest == this.want_hex && v.size == this.want_len;
                v.digest = Some(digest);
                if ok {
                    Poll::Ready(None)
                } else {
                    // Fail the body so the backend never commits it.
                    Poll::Ready(Some(Err(std::io::Error::other("digest or length mismatch"))))
                }
            }
        }
    }
}

/// Reads `body` to its end through [`Verifying`], storing nothing: whether
/// it is exactly the announced bytes.
pub async fn verify_body(body: ByteStream, hex: &str, len: u64) -> Result<(), ArtifactError> {
    use futures_util::StreamExt as _;
    let (mut s, verdict) = Verifying::new(body, hex, len);
    while let Some(c) = s.next().await {
        if c.is_err() {
            break;
        }
    }
    let v = verdict.lock().unwrap_or_else(|p| p.into_inner());
    match v.client_error(hex, len) {
        Some(e) => Err(e),
        None if v.digest.is_some() => Ok(()),
        None => Err(ArtifactError::Interrupted("the body ended early".into())),
    }
}

impl Verdict {
    /// The error an unsuccessful upload reports, if the client's bytes
    /// (rather than the backend) were the reason.
    pub fn client_error(&self, want_hex: &str, want_len: u64) -> Option<ArtifactError> {
        if let Some(b) = &self.broke {
            return Some(ArtifactError::Interrupted(b.clone()));
        }
        if self.size > want_len {
            return Some(ArtifactError::Truncated {
                want: want_len,
                got: self.size,
            });
        }
        match &self.digest {
            Some(_) if self.size != want_len => Some(ArtifactError::Truncated {
                want: want_len,
                got: self.size,
            }),
            Some(d) if d != want_hex => Some(ArtifactError::Mismatch {
                want: want_hex.to_owned(),
                got: d.clone(),
                size: self.size,
            }),
            _ => None,
        }
    }
}
