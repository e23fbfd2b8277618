//! The filesystem backend: blobs by digest under `<data>/artifacts`,
//! written to a temporary file, fsync'd, and renamed in only once their
//! digest and length are the announced ones.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;

use super::{
    ArtifactError, ArtifactStore, AttestationArtifact, ByteStream, Stored, Subject, Upload, Verifying,
};

/// Blobs under a directory.
#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        FsStore { root }
    }

    /// Where blob `hex` lives.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    fn tmp_path(&self, hex: &str) -> PathBuf {
        let mut rnd = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
        self.root.join("tmp").join(format!("{hex}.{}", hex::encode(rnd)))
    }

    async fn put_inner(&self, up: &Upload, body: ByteStream) -> Result<Stored, ArtifactError> {
        let dest = self.blob_path(&up.hex);
        if tokio::fs::metadata(&dest).await.is_ok() {
            // Stored already: the caller still proves it has these bytes.
            super::verify_body(body, &up.hex, up.len).await?;
            return Ok(Stored::default());
        }
        let tmp = self.tmp_path(&up.hex);
        let r = receive(&tmp, up, body).await;
        if let Err(e) = r {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        let commit = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::rename(&tmp, &dest).await?;
            sync_dir(dir).await
        };
        commit
            .await
            .map_err(|e| ArtifactError::Internal(format!("storing {}: {e}", dest.display())))?;
        Ok(Stored {
            new: true,
            ..Stored::default()
        })
    }
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

/// Streams the verified body into `tmp`, fsync'd.
async fn receive(tmp: &Path, up: &Upload, body: ByteStream) -> Result<(), ArtifactError> {
    let internal = |e: std::io::Error| ArtifactError::Internal(format!("writing {}: {e}", tmp.display()));
    if let Some(d) = tmp.parent() {
        tokio::fs::create_dir_all(d).await.map_err(internal)?;
    }
    let mut f = tokio::fs::File::create(tmp).await.map_err(internal)?;
    let (mut body, verdict) = Verifying::new(body, &up.hex, up.len);
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => f.write_all(&c).await.map_err(internal)?,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if failed {
        let v = verdict.lock().unwrap_or_else(|p| p.into_inner());
        return Err(v
            .client_error(&up.hex, up.len)
            .unwrap_or_else(|| ArtifactError::Interrupted("the body ended early".into())));
    }
    f.sync_all().await.map_err(internal)
}

impl ArtifactStore for FsStore {
    fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }

    fn check(&self) -> BoxFuture<'_, Result<String, ArtifactError>> {
        async move {
            let probe = self.root.join("tmp").join(".write-check");
            let r = async {
                tokio::fs::create_dir_all(self.root.join("tmp")).await?;
                tokio::fs::write(&probe, b"tally").await?;
                tokio::fs::remove_file(&probe).await
            };
            r.await.map_err(|e| {
                ArtifactError::Unavailable(format!("cannot write to {}: {e}", self.root.display()))
            })?;
            // Leftovers of uploads cut short by a crash.
            if let Ok(mut rd) = tokio::fs::read_dir(self.root.join("tmp")).await {
                while let Ok(Some(e)) = rd.next_entry().await {
                    let _ = tokio::fs::remove_file(e.path()).await;
                }
            }
            Ok(self.describe())
        }
        .boxed()
    }

    fn contains<'a>(&'a self, hex: &'a str) -> BoxFuture<'a, Result<bool, ArtifactError>> {
        async move { Ok(tokio::fs::metadata(self.blob_path(hex)).await.is_ok()) }.boxed()
    }

    fn put<'a>(&'a self, up: &'a Upload, body: ByteStream) -> BoxFuture<'a, Result<Stored, ArtifactError>> {
        self.put_inner(up, body).boxed()
    }

    fn get<'a>(&'a self, hex: &'a str) -> BoxFuture<'a, Result<Option<(u64, ByteStream)>, ArtifactError>> {
        async move {
            let Ok(f) = tokio::fs::File::open(self.blob_path(hex)).await else {
                return Ok(None);
            };
            let len = f
                .metadata()
                .await
                .map_err(|e| ArtifactError::Internal(e.to_string()))?
                .len();
            let s: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(f, 256 << 10));
            Ok(Some((len, s)))
        }
        .boxed()
    }

    fn put_attestation<'a>(
        &'a self,
        _att: &'a AttestationArtifact,
        _subjects: &'a [Subject],
    ) -> BoxFuture<'a, Result<Vec<String>, ArtifactError>> {
        async { Ok(Vec::new()) }.boxed()
    }

    fn stores_attestations(&self) -> bool {
        false
    }

    fn image_subject<'a>(
        &'a self,
        _pinned: &'a str,
    ) -> BoxFuture<'a, Result<Option<Subject>, ArtifactError>> {
        async { Ok(None) }.boxed()
    }
}
