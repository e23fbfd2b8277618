//! The OCI backend (SPEC.md §12.7): artifacts as OCI artifacts in one
//! repository, attestations as referrers of what they attest to, through
//! `oci-client`.
//!
//! - A file material is an image manifest with an `artifactType` naming its
//!   kind, the empty config, and the file as its one layer (pushed as one
//!   streamed PUT whose `?digest=` the registry checks too).
//! - An accepted attestation is a manifest whose layer is the DSSE envelope
//!   and whose `subject` is the artifact or container image it attests to.
//!   Where the registry has no referrers API, the OCI 1.1 tag schema is kept
//!   up to date: an image index tagged `sha256-<subject hex>` listing every
//!   referrer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, TryStreamExt as _};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{
    ArtifactError, ArtifactStore, AttestationArtifact, ByteStream, Descriptor, PlainHttp, Stored, Subject,
    Upload, Verifying,
};

/// OCI image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The empty config of artifacts.
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The digest of `{}`.
pub const EMPTY_DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// `artifactType` of an attestation.
pub const ATTESTATION_TYPE: &str = "application/vnd.in-toto+json";
/// Media type of its layer.
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

/// Manifest media types accepted when reading a subject's manifest.
const ANY_MANIFEST: &[&str] = &[
    MANIFEST,
    INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// `artifactType` of a material kind: `application/vnd.tally.<kind>.v1`,
/// the kind in lower case with dashes.
pub fn artifact_type(kind: &str) -> String {
    format!(
        "application/vnd.tally.{}.v1",
        kind.to_ascii_lowercase().replace('_', "-")
    )
}

/// Media type of a material's layer: the format's registered type where
/// there is one.
pub fn layer_type(kind: &str) -> &'static str {
    match kind {
        "SBOM_CYCLONEDX_JSON" => "application/vnd.cyclonedx+json",
        "SBOM_SPDX_JSON" => "application/spdx+json",
        "SARIF" => "application/sarif+json",
        "OPENVEX" => "application/vnd.openvex+json",
        "CSAF_VEX"
        | "CSAF_SECURITY_ADVISORY"
        | "CSAF_INFORMATIONAL_ADVISORY"
        | "CSAF_SECURITY_INCIDENT_RESPONSE"
        | "GITLAB_SECURITY_REPORT" => "application/json",
        "JUNIT_XML" | "JACOCO_XML" | "COBERTURA_XML" => "application/xml",
        "ATTESTATION" | "SLSA_PROVENANCE" => "application/vnd.dsse.envelope.v1+json",
        "HELM_CHART" => "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        _ => "application/octet-stream",
    }
}

/// Splits `host[:port]/path` into registry and repository, refusing
/// anything that is not exactly that (a tag, a digest, no host).
pub fn parse_repository(s: &str) -> Result<(String, String), String> {
    let (host, path) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not host[:port]/repository"))?;
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        return Err(format!(
            "{s:?} does not start with a registry host (like registry.example.com or 127.0.0.1:5000)"
        ));
    }
    let r: Reference = format!("{s}:probe")
        .parse()
        .map_err(|e| format!("{s:?} is not a repository: {e}"))?;
    if r.registry() != host || r.repository() != path {
        return Err(format!("{s:?} is not host[:port]/repository (no tag or digest)"));
    }
    Ok((host.to_owned(), path.to_owned()))
}

/// Whether `registry` (`host[:port]`) is this machine.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    host == "localhost"
        || host == "[::1]"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// A registry repository as artifact store.
pub struct OciStore {
    client: Client,
    registry: String,
    repository: String,
    plain_http: bool,
    auth: RegistryAuth,
    /// When each (repository, push?) was last authenticated.
    authed: Mutex<HashMap<(String, bool), Instant>>,
    /// Whether the registry has the referrers API (probed at `check`).
    referrers_api: Mutex<Option<bool>>,
    /// Serializes read-modify-write of fallback tags.
    tag_lock: tokio::sync::Mutex<()>,
    /// Repositories known to hold the empty config.
    has_empty: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for OciStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciStore")
            .field("registry", &self.registry)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn not_found(e: &OciDistributionError) -> bool {
    let t = e.to_string().to_ascii_lowercase();
    matches!(e, OciDistributionError::ImageManifestNotFoundError(_))
        || [
            "manifest unknown",
            "manifest_unknown",
            "blob unknown",
            "blob_unknown",
            "name unknown",
            "name_unknown",
        ]
        .iter()
        .any(|m| t.contains(m))
}

impl OciStore {
    /// A store for `repository` (`host[:port]/path`).
    pub fn new(repository: &str, plain: PlainHttp, creds: Option<(String, String)>) -> Result<Self, String> {
        let (registry, repo) = parse_repository(repository)?;
        let protocol = match plain {
            PlainHttp::Always => ClientProtocol::Http,
            PlainHttp::Never => ClientProtocol::Https,
            PlainHttp::Loopback if is_loopback(&registry) => ClientProtocol::Http,
            PlainHttp::Loopback => ClientProtocol::Https,
        };
        let plain_http = matches!(protocol, ClientProtocol::Http);
        let client = Client::new(ClientConfig {
            protocol,
            use_monolithic_push: true,
            ..ClientConfig::default()
        });
        Ok(OciStore {
            client,
            registry,
            repository: repo,
            plain_http,
            auth: match creds {
                Some((u, p)) => RegistryAuth::Basic(u, p),
                None => RegistryAuth::Anonymous,
            },
            authed: Mutex::new(HashMap::new()),
            referrers_api: Mutex::new(None),
            tag_lock: tokio::sync::Mutex::new(()),
            has_empty: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn reference(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.registry.clone(), repo.to_owned(), digest.to_owned())
    }

    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> ArtifactError {
        ArtifactError::Unavailable(format!(
            "the artifact registry {} failed {what}: {e}",
            self.registry
        ))
    }

    /// Authenticates for `repo` (again after a minute: tokens expire).
    async fn ensure_auth(&self, repo: &str, push: bool) -> Result<(), ArtifactError> {
        if matches!(self.auth, RegistryAuth::Anonymous) {
            return Ok(());
        }
        let key = (repo.to_owned(), push);
        let fresh = self
            .authed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|t| t.elapsed() < Duration::from_secs(50));
        if fresh {
            return Ok(());
        }
        let r = self.reference(repo, EMPTY_DIGEST);
        for op in [RegistryOperation::Pull, RegistryOperation::Push] {
            if op == RegistryOperation::Push && !push {
                continue;
            }
            self.client.auth(&r, &self.auth, op).await.map_err(|e| {
                ArtifactError::Unavailable(format!(
                    "the artifact registry {} refused the credentials for {repo}: {e}",
                    self.registry
                ))
            })?;
        }
        self.authed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Instant::now());
        Ok(())
    }

    /// Pushes a small blob unless `repo` has it.
    async fn ensure_blob(&self, repo: &str, bytes: &[u8], digest: &str) -> Result<(), ArtifactError> {
        let r = self.reference(repo, digest);
        let have = self
            .client
            .blob_exists(&r, digest)
            .await
            .map_err(|e| self.unavailable(&format!("checking {repo}@{digest}"), e))?;
        if !have {
            self.client
                .push_blob(&r, bytes.to_vec(), digest)
                .await
                .map_err(|e| self.unavailable(&format!("storing a blob in {repo}"), e))?;
        }
        Ok(())
    }

    /// Pushes `manifest` (exactly these bytes) by digest; returns its descriptor.
    async fn push_manifest(
        &self,
        repo: &str,
        manifest: &Value,
        tag: Option<&str>,
    ) -> Result<Descriptor, ArtifactError> {
        let body = serde_json::to_vec(manifest).map_err(|e| ArtifactError::Internal(e.to_string()))?;
        let digest = format!("sha256:{}", sha256_hex(&body));
        let media_type = manifest["mediaType"].as_str().unwrap_or(MANIFEST).to_owned();
        let ct = media_type
            .parse()
            .map_err(|e: axum::http::header::InvalidHeaderValue| ArtifactError::Internal(e.to_string()))?;
        let r = match tag {
            Some(t) => Reference::with_tag(self.registry.clone(), repo.to_owned(), t.to_owned()),
            None => self.reference(repo, &digest),
        };
        let size = body.len() as u64;
        self.client
            .push_manifest_raw(&r, body, ct)
            .await
            .map_err(|e| self.unavailable(&format!("storing a manifest in {repo}"), e))?;
        Ok(Descriptor {
            media_type,
            digest,
            size,
        })
    }

    /// Whether the registry answers the OCI 1.1 referrers API (a 200 with an
    /// index, even for a subject with no referrers).
    async fn probe_referrers_api(&self) -> bool {
        let url = format!(
            "{}://{}/v2/{}/referrers/{EMPTY_DIGEST}",
            if self.plain() { "http" } else { "https" },
            self.registry,
            self.repository
        );
        let mut req = reqwest::Client::new().get(&url).header("Accept", INDEX);
        if let RegistryAuth::Basic(u, p) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["manifests"].is_array()),
            _ => false,
        }
    }

    fn plain(&self) -> bool {
        self.plain_http
    }

    /// Adds `referrer` to the fallback index tagged `sha256-<subject hex>` in `repo`.
    async fn add_to_fallback_tag(
        &self,
        repo: &str,
        subject: &Descriptor,
        referrer: Value,
    ) -> Result<(), ArtifactError> {
        let _guard = self.tag_lock.lock().await;
        let tag = subject.digest.replace(':', "-");
        let r = Reference::with_tag(self.registry.clone(), repo.to_owned(), tag.clone());
        let mut index = match self.client.pull_manifest_raw(&r, &self.auth, &[INDEX]).await {
            Ok((bytes, _)) => serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                ArtifactError::Internal(format!("the referrers index {repo}:{tag} is not JSON: {e}"))
            })?,
            Err(e) if not_found(&e) => json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}),
            Err(e) => return Err(self.unavailable(&format!("reading {repo}:{tag}"), e)),
        };
        let list = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| ArtifactError::Internal(format!("{repo}:{tag} is not an image index")))?;
        if list.iter().any(|m| m["digest"] == referrer["digest"]) {
            return Ok(());
        }
        list.push(referrer);
        self.push_manifest(repo, &index, Some(&tag)).await.map(|_| ())
    }

    /// The descriptor of the manifest `digest` in `repo` (a container image).
    pub async fn describe_manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<Descriptor>, ArtifactError> {
        self.ensure_auth(repo, false).await?;
        let r = self.reference(repo, digest);
        match self.client.pull_manifest_raw(&r, &self.auth, ANY_MANIFEST).await {
            Ok((bytes, _)) => {
                if format!("sha256:{}", sha256_hex(&bytes)) != digest {
                    return Err(ArtifactError::Internal(format!(
                        "the registry sent a manifest for {repo}@{digest} with another digest"
                    )));
                }
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let media_type = match v["mediaType"].as_str() {
                    Some(m) => m.to_owned(),
                    None if v["manifests"].is_array() => INDEX.to_owned(),
                    None => MANIFEST.to_owned(),
                };
                Ok(Some(Descriptor {
                    media_type,
                    digest: digest.to_owned(),
                    size: bytes.len() as u64,
                }))
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.unavailable(&format!("reading {repo}@{digest}"), e)),
        }
    }

    async fn put_inner(&self, up: &Upload, body: ByteStream) -> Result<Stored, ArtifactError> {
        let repo = self.repository.clone();
        self.ensure_auth(&repo, true).await?;
        let digest = format!("sha256:{}", up.hex);
        let r = self.reference(&repo, &digest);
        // The caller asked `contains` when the digest was known; a blob the
        // registry has from elsewhere is uploaded again, which is harmless.
        let new = true;
        if up.len == 0 {
            const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
            if up.hex != EMPTY_SHA256 {
                return Err(ArtifactError::Mismatch {
                    want: up.hex.clone(),
                    got: EMPTY_SHA256.to_owned(),
                    size: 0,
                });
            }
            // A registry takes an empty blob only monolithically with no body stream.
            self.client
                .push_blob(&r, Vec::new(), &digest)
                .await
                .map_err(|e| self.unavailable("storing an empty blob", e))?;
        } else {
            let (stream, verdict) = Verifying::new(body, &up.hex, up.len);
            let stream = stream.map_err(OciDistributionError::IoError);
            let pushed = self
                .client
                .push_blob_stream(&r, stream, &digest, Some(up.len))
                .await;
            if let Err(e) = pushed {
                let v = verdict.lock().unwrap_or_else(|p| p.into_inner());
                return Err(v
                    .client_error(&up.hex, up.len)
                    .unwrap_or_else(|| self.unavailable(&format!("storing {digest}"), e)));
            }
        }
        let mut annotations = BTreeMap::new();
        annotations.insert("dev.tally.material.kind".to_owned(), up.kind.clone());
        annotations.insert("dev.tally.workflow".to_owned(), up.workflow.clone());
        if let Some(n) = &up.name {
            annotations.insert("dev.tally.material.name".to_owned(), n.clone());
        }
        if let Some(run) = &up.run {
            annotations.insert("dev.tally.run".to_owned(), run.clone());
        }
        let title = up.name.clone().unwrap_or_else(|| up.hex.clone());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": artifact_type(&up.kind),
            "config": {"mediaType": EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
            "layers": [{
                "mediaType": layer_type(&up.kind),
                "digest": digest,
                "size": up.len,
                "annotations": {"org.opencontainers.image.title": title},
            }],
            "annotations": annotations,
        });
        // The empty config was written to this repository by `check`.
        let d = self.push_manifest(&repo, &manifest, None).await?;
        Ok(Stored {
            new,
            reference: Some(format!("{}/{repo}@{}", self.registry, d.digest)),
            manifest: Some(d),
        })
    }

    async fn put_attestation_inner(
        &self,
        att: &AttestationArtifact,
        subjects: &[Subject],
    ) -> Result<Vec<String>, ArtifactError> {
        let env_digest = format!("sha256:{}", sha256_hex(&att.envelope));
        let own = Subject {
            repository: format!("{}/{}", self.registry, self.repository),
            descriptor: Descriptor {
                media_type: String::new(),
                digest: String::new(),
                size: 0,
            },
        };
        let targets: Vec<(&Subject, bool)> = if subjects.is_empty() {
            vec![(&own, false)]
        } else {
            subjects.iter().map(|s| (s, true)).collect()
        };
        let api = *self.referrers_api.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = Vec::new();
        let mut own_copy_needed = false;
        for (s, has_subject) in targets {
            match self.put_referrer(att, &env_digest, s, has_subject, api).await {
                Ok(r) => written.push(r),
                // Another repository (an image's) may refuse us: the
                // attestation then goes into the artifact repository alone.
                Err(e) if has_subject && s.repository != own.repository => {
                    tracing::warn!(
                        log_index = att.log_index,
                        error = %e,
                        "cannot refer to {}@{}; storing the attestation in {} instead",
                        s.repository,
                        s.descriptor.digest,
                        own.repository
                    );
                    own_copy_needed = true;
                }
                Err(e) => return Err(e),
            }
        }
        if own_copy_needed && written.is_empty() {
            written.push(self.put_referrer(att, &env_digest, &own, false, api).await?);
        }
        Ok(written)
    }

    /// Pushes the attestation manifest into the subject's repository (with
    /// `subject` when `has_subject`) and lists it in the fallback tag.
    async fn put_referrer(
        &self,
        att: &AttestationArtifact,
        env_digest: &str,
        s: &Subject,
        has_subject: bool,
        api: Option<bool>,
    ) -> Result<String, ArtifactError> {
        let repo = s
            .repository
            .strip_prefix(&format!("{}/", self.registry))
            .ok_or_else(|| ArtifactError::Internal(format!("{} is not in {}", s.repository, self.registry)))?
            .to_owned();
        self.ensure_auth(&repo, true).await?;
        let known = self
            .has_empty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&repo);
        if !known {
            self.ensure_blob(&repo, b"{}", EMPTY_DIGEST).await?;
            self.has_empty
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(repo.clone());
        }
        // Envelopes and bundles are unique: upload without asking first (a
        // repeat, after a crash, stores the same bytes again, which is harmless).
        self.client
            .push_blob(
                &self.reference(&repo, env_digest),
                att.envelope.clone(),
                env_digest,
            )
            .await
            .map_err(|e| self.unavailable(&format!("storing an envelope in {repo}"), e))?;
        let bundle_digest = format!("sha256:{}", sha256_hex(&att.bundle));
        self.client
            .push_blob(
                &self.reference(&repo, &bundle_digest),
                att.bundle.clone(),
                &bundle_digest,
            )
            .await
            .map_err(|e| self.unavailable(&format!("storing a bundle in {repo}"), e))?;
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": ATTESTATION_TYPE,
            "config": {"mediaType": EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
            "layers": [{
                "mediaType": DSSE,
                "digest": env_digest,
                "size": att.envelope.len(),
                "annotations": {"org.opencontainers.image.title": format!("attestation-{}.dsse.json", att.log_index)},
            }, {
                "mediaType": crate::attest::bundle::BUNDLE_MEDIA_TYPE,
                "digest": bundle_digest,
                "size": att.bundle.len(),
                "annotations": {"org.opencontainers.image.title": format!("attestation-{}.bundle.json", att.log_index)},
            }],
            "annotations": att.annotations,
        });
        if has_subject {
            manifest["subject"] = json!({
                "mediaType": s.descriptor.media_type,
                "digest": s.descriptor.digest,
                "size": s.descriptor.size,
            });
        }
        let d = match self.push_manifest(&repo, &manifest, None).await {
            Ok(d) => d,
            Err(e) => {
                // Perhaps the registry lost the empty config (a garbage
                // collection): ask again next time.
                self.has_empty
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&repo);
                return Err(e);
            }
        };
        if has_subject && api != Some(true) {
            let referrer = json!({
                "mediaType": d.media_type,
                "digest": d.digest,
                "size": d.size,
                "artifactType": ATTESTATION_TYPE,
                "annotations": att.annotations,
            });
            self.add_to_fallback_tag(&repo, &s.descriptor, referrer).await?;
        }
        Ok(format!("{}/{repo}@{}", self.registry, d.digest))
    }
}

impl ArtifactStore for OciStore {
    fn describe(&self) -> String {
        format!("oci {}/{}", self.registry, self.repository)
    }

    fn check(&self) -> BoxFuture<'_, Result<String, ArtifactError>> {
        async move {
            let repo = self.repository.clone();
            let cannot = |e: ArtifactError| {
                ArtifactError::Unavailable(format!(
                    "cannot write to the artifact repository {}/{repo}: {e}",
                    self.registry
                ))
            };
            self.ensure_auth(&repo, true).await.map_err(cannot)?;
            // Writing the empty config (every artifact needs it) proves we can write.
            let r = self.reference(&repo, EMPTY_DIGEST);
            self.client
                .push_blob(&r, b"{}".to_vec(), EMPTY_DIGEST)
                .await
                .map_err(|e| cannot(self.unavailable("storing the empty config", e)))?;
            self.has_empty
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(repo.clone());
            let api = self.probe_referrers_api().await;
            *self.referrers_api.lock().unwrap_or_else(|p| p.into_inner()) = Some(api);
            Ok(format!(
                "{} (referrers: {})",
                self.describe(),
                if api {
                    "the registry's API"
                } else {
                    "the OCI 1.1 tag schema, sha256-<hex>"
                }
            ))
        }
        .boxed()
    }

    fn contains<'a>(&'a self, hex: &'a str) -> BoxFuture<'a, Result<bool, ArtifactError>> {
        async move {
            self.ensure_auth(&self.repository, false).await?;
            let d = format!("sha256:{hex}");
            self.client
                .blob_exists(&self.reference(&self.repository, &d), &d)
                .await
                .map_err(|e| self.unavailable(&format!("checking {d}"), e))
        }
        .boxed()
    }

    fn put<'a>(&'a self, up: &'a Upload, body: ByteStream) -> BoxFuture<'a, Result<Stored, ArtifactError>> {
        self.put_inner(up, body).boxed()
    }

    fn get<'a>(&'a self, hex: &'a str) -> BoxFuture<'a, Result<Option<(u64, ByteStream)>, ArtifactError>> {
        async move {
            self.ensure_auth(&self.repository, false).await?;
            let d = format!("sha256:{hex}");
            let r = self.reference(&self.repository, &d);
            match self.client.pull_blob_stream(&r, d.as_str()).await {
                Ok(s) => {
                    let len = s.content_length.unwrap_or(0);
                    let stream: ByteStream = Box::pin(s.stream);
                    Ok(Some((len, stream)))
                }
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(self.unavailable(&format!("reading {d}"), e)),
            }
        }
        .boxed()
    }

    fn put_attestation<'a>(
        &'a self,
        att: &'a AttestationArtifact,
        subjects: &'a [Subject],
    ) -> BoxFuture<'a, Result<Vec<String>, ArtifactError>> {
        self.put_attestation_inner(att, subjects).boxed()
    }

    fn stores_attestations(&self) -> bool {
        true
    }

    fn image_subject<'a>(&'a self, pinned: &'a str) -> BoxFuture<'a, Result<Option<Subject>, ArtifactError>> {
        async move {
            let Some((name, digest)) = pinned.split_once('@') else {
                return Ok(None);
            };
            let Some(repo) = name.strip_prefix(&format!("{}/", self.registry)) else {
                return Ok(None);
            };
            // A tag before the digest is not part of the repository.
            let repo = match repo.rsplit_once(':') {
                Some((r, _)) if !r.is_empty() => r,
                _ => repo,
            };
            Ok(self.describe_manifest(repo, digest).await?.map(|d| Subject {
                repository: format!("{}/{repo}", self.registry),
                descriptor: d,
            }))
        }
        .boxed()
    }
}
