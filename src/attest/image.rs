//! CONTAINER_IMAGE materials: a reference resolved to the digest of its
//! manifest in its registry, with `oci-client` (SPEC.md §11.3). A reference
//! pinned by digest is accepted as is, without contacting the registry.
//!
//! Registries on loopback (`localhost`, `127.0.0.1`, `[::1]`) and the hosts
//! listed in `TALLY_INSECURE_REGISTRIES` (comma-separated `host:port`) are
//! spoken to over plain HTTP; every other registry over HTTPS. Pulls are
//! anonymous unless `TALLY_REGISTRY_USERNAME` / `TALLY_REGISTRY_PASSWORD` are set.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::attest::material::MaterialError;

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// `registry/repository@sha256:…`, the immutable reference recorded.
    pub pinned: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// Whether the registry was asked (false: the reference was already pinned).
    pub resolved_online: bool,
    /// Whether the registry holds a signature of it.
    pub signature: Signature,
}

/// What the registry holds that signs an image, as cosign and the sigstore
/// tools leave it (SPEC.md §11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// A manifest at the tag `sha256-<hex>.sig` (cosign's scheme).
    CosignTag,
    /// A referrer of the image whose artifact type is a signature
    /// (cosign's or a sigstore bundle): the referrers API, or its tag
    /// schema where the registry lacks the API.
    Referrer(String),
    /// Neither.
    None,
    /// Not looked for: the reference was pinned (the registry was not asked).
    NotChecked,
    /// The registry did not say (unreachable, refused, too slow).
    Unknown(String),
}

impl Signature {
    /// The value of the `tally.material.image.signature` annotation.
    pub fn annotation(&self) -> &'static str {
        match self {
            Signature::CosignTag => "cosign-tag",
            Signature::Referrer(_) => "referrer",
            Signature::None => "none",
            Signature::NotChecked => "not-checked",
            Signature::Unknown(_) => "unknown",
        }
    }

    /// Words for the material's summary.
    pub fn describe(&self) -> String {
        match self {
            Signature::CosignTag => "signed (a cosign signature tag)".into(),
            Signature::Referrer(t) => format!("signed (a referrer of type {t})"),
            Signature::None => "no signature in its registry".into(),
            Signature::NotChecked => "signature not checked (pinned: the registry was not asked)".into(),
            Signature::Unknown(why) => format!("signature unknown ({why})"),
        }
    }
}

/// Artifact types of referrers that are signatures.
const SIGNATURE_TYPES: &[&str] = &[
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];

fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn invalid(value: &str, reason: String) -> MaterialError {
    MaterialError::Invalid {
        kind: crate::attest::material::Kind::ContainerImage,
        value: value.to_owned(),
        reason,
    }
}

/// Parses `value` as an image reference (no network).
pub fn parse(value: &str) -> Result<Reference, MaterialError> {
    if value.is_empty() {
        return Err(MaterialError::Empty("the image reference".into()));
    }
    if value.chars().any(char::is_whitespace) || value.contains("://") {
        return Err(invalid(
            value,
            "an image reference has no spaces or scheme (e.g. ghcr.io/org/app:1.2 or …@sha256:<hex>)".into(),
        ));
    }
    let r: Reference = value.parse().map_err(|e| invalid(value, format!("{e}")))?;
    if let Some(d) = r.digest() {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(invalid(value, format!("digest {d:?} is not sha256:<64 hex>")));
        }
    }
    Ok(r)
}

/// Resolves `value` to a pinned reference.
pub fn resolve(value: &str) -> Result<ResolvedImage, MaterialError> {
    let r = parse(value)?;
    let name = format!("{}/{}", r.registry(), r.repository());
    if let Some(d) = r.digest() {
        return Ok(ResolvedImage {
            pinned: format!("{name}@{d}"),
            digest: d.to_owned(),
            resolved_online: false,
            signature: Signature::NotChecked,
        });
    }
    let registry = r.resolve_registry().to_owned();
    let (client, auth) = client_for(&registry);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| MaterialError::Unreachable {
            reference: value.to_owned(),
            reason: e.to_string(),
        })?;
    resolve_with(value, &r, &name, &registry, &client, &auth, &rt)
}

/// A client for `registry`: plain HTTP for loopback and
/// `TALLY_INSECURE_REGISTRIES`, credentials from the environment.
fn client_for(registry: &str) -> (Client, RegistryAuth) {
    let mut insecure: Vec<String> = std::env::var("TALLY_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if is_loopback(registry) {
        insecure.push(registry.to_owned());
    }
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure),
        ..ClientConfig::default()
    });
    let auth = match (
        std::env::var("TALLY_REGISTRY_USERNAME"),
        std::env::var("TALLY_REGISTRY_PASSWORD"),
    ) {
        (Ok(u), Ok(p)) => RegistryAuth::Basic(u, p),
        _ => RegistryAuth::Anonymous,
    };
    (client, auth)
}

fn resolve_with(
    value: &str,
    r: &Reference,
    name: &str,
    registry: &str,
    client: &Client,
    auth: &RegistryAuth,
    rt: &tokio::runtime::Runtime,
) -> Result<ResolvedImage, MaterialError> {
    let digest = rt
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                client.fetch_manifest_digest(r, auth),
            )
            .await
        })
        .map_err(|_| MaterialError::Unreachable {
            reference: value.to_owned(),
            reason: format!("registry {registry} did not answer within 30 s"),
        })?
        .map_err(|e| {
            let text = e.to_string();
            let missing = matches!(
                e,
                oci_client::errors::OciDistributionError::ImageManifestNotFoundError(_)
            ) || text.contains("MANIFEST_UNKNOWN")
                || text.to_ascii_lowercase().contains("manifest unknown");
            if missing {
                invalid(value, format!("registry {registry} has no such image ({text})"))
            } else {
                MaterialError::Unreachable {
                    reference: value.to_owned(),
                    reason: format!("registry {registry}: {text}"),
                }
            }
        })?;
    let signature = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            signature(client, auth, r, &digest),
        )
        .await
        .unwrap_or_else(|_| Signature::Unknown(format!("registry {registry} did not answer within 10 s")))
    });
    Ok(ResolvedImage {
        pinned: format!("{name}@{digest}"),
        digest,
        resolved_online: true,
        signature,
    })
}

/// The media type of a Helm chart's content in an OCI registry.
pub const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// The most a chart pulled from a registry may weigh.
const MAX_CHART_BYTES: usize = 256 << 20;

/// A Helm chart pulled from an OCI registry: its `.tgz` bytes, and the
/// chart's manifest pinned (`registry/repository@sha256:…`).
#[derive(Debug)]
pub struct PulledChart {
    /// The chart archive.
    pub tgz: Vec<u8>,
    /// `registry/repository@sha256:<manifest digest>`.
    pub pinned: String,
    /// `<last repository segment>-<tag>.tgz` (or the digest's hex).
    pub file_name: String,
}

/// Pulls the chart `oci://registry/repository[:tag|@sha256:…]` (as `helm
/// pull oci://…` does): the manifest's one chart layer.
pub fn pull_chart(value: &str) -> Result<PulledChart, MaterialError> {
    let bare = value.strip_prefix("oci://").unwrap_or(value);
    let r = parse(bare)?;
    let registry = r.resolve_registry().to_owned();
    let (client, auth) = client_for(&registry);
    let unreachable = |reason: String| MaterialError::Unreachable {
        reference: value.to_owned(),
        reason,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let image = rt
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(120),
                client.pull(&r, &auth, vec![HELM_CHART_LAYER]),
            )
            .await
        })
        .map_err(|_| unreachable(format!("registry {registry} did not answer within 120 s")))?
        .map_err(|e| {
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("manifest unknown") || text.contains("MANIFEST_UNKNOWN") {
                invalid(value, format!("registry {registry} has no such chart ({text})"))
            } else if text.contains("media type") || text.contains("MediaType") {
                invalid(value, format!("not a Helm chart: {text}"))
            } else {
                unreachable(format!("registry {registry}: {text}"))
            }
        })?;
    let mut layers = image
        .layers
        .into_iter()
        .filter(|l| l.media_type == HELM_CHART_LAYER);
    let (Some(layer), None) = (layers.next(), layers.next()) else {
        return Err(invalid(
            value,
            format!("the artifact does not have exactly one {HELM_CHART_LAYER} layer"),
        ));
    };
    if layer.data.len() > MAX_CHART_BYTES {
        return Err(invalid(
            value,
            format!("the chart is larger than {MAX_CHART_BYTES} bytes"),
        ));
    }
    let digest = image
        .digest
        .ok_or_else(|| unreachable(format!("registry {registry} did not name the manifest's digest")))?;
    let last = r.repository().rsplit('/').next().unwrap_or("chart");
    let file_name = match r.tag() {
        Some(t) if r.digest().is_none() => format!("{last}-{t}.tgz"),
        _ => format!("{last}-{}.tgz", digest.trim_start_matches("sha256:")),
    };
    Ok(PulledChart {
        tgz: layer.data.to_vec(),
        pinned: format!("{}/{}@{digest}", r.registry(), r.repository()),
        file_name,
    })
}

/// Looks for a signature of the image `digest` in `r`'s repository: the
/// cosign tag first, then referrers.
async fn signature(client: &Client, auth: &RegistryAuth, r: &Reference, digest: &str) -> Signature {
    let (registry, repository) = (r.registry().to_owned(), r.repository().to_owned());
    let tag = Reference::with_tag(
        registry.clone(),
        repository.clone(),
        format!("{}.sig", digest.replace(':', "-")),
    );
    let tag_error = match client.fetch_manifest_digest(&tag, auth).await {
        Ok(_) => return Signature::CosignTag,
        Err(e) => e.to_string(),
    };
    let missing = |t: &str| {
        let t = t.to_ascii_lowercase();
        t.contains("manifest unknown")
            || t.contains("manifest_unknown")
            || t.contains("not found")
            || t.contains("404")
    };
    if !missing(&tag_error) {
        return Signature::Unknown(tag_error);
    }
    let image = Reference::with_digest(registry, repository, digest.to_owned());
    match client.pull_referrers(&image, None).await {
        Ok(index) => index
            .manifests
            .iter()
            .filter_map(|m| m.artifact_type.as_deref())
            .find(|t| SIGNATURE_TYPES.contains(t))
            .map_or(Signature::None, |t| Signature::Referrer(t.to_owned())),
        Err(e) if missing(&e.to_string()) => Signature::None,
        Err(e) => Signature::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_references_need_no_registry() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = resolve(&format!("ghcr.io/org/app@{d}")).unwrap();
        assert_eq!(r.pinned, format!("ghcr.io/org/app@{d}"));
        assert!(!r.resolved_online);
        let r = resolve(&format!("alpine@{d}")).unwrap();
        assert_eq!(r.pinned, format!("docker.io/library/alpine@{d}"));
        assert!(resolve("ghcr.io/org/app@sha256:abc").is_err());
        assert!(resolve("https://ghcr.io/x").is_err());
        assert!(resolve("Not A Ref").is_err());
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost") && !is_loopback("ghcr.io"));
    }
}
