//! Material kinds and their validators (SPEC.md §11.3).
//!
//! Every validator reads its file as a stream: JSON is deserialized into
//! small typed views that keep only the fields checked (serde skips the rest
//! without buffering), XML is read event by event, archives entry by entry.
//! Only YAML (OpenAPI, a chart's `Chart.yaml`) is read whole, under a size cap.
//! Hashing is a separate streaming pass ([`hash_file`]).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::attest::dsse::{Envelope, PublicKey, IN_TOTO_PAYLOAD_TYPE};

/// Largest YAML document read (YAML parsers hold the whole document).
pub const MAX_YAML_BYTES: u64 = 16 << 20;
/// Largest attestation (DSSE envelope or Sigstore bundle) read as a material.
pub const MAX_ENVELOPE_BYTES: u64 = 64 << 20;
/// Longest STRING material value.
pub const MAX_STRING_BYTES: usize = 64 << 10;

macro_rules! kinds {
    ($($variant:ident => $name:literal, $file:literal;)*) => {
        /// A material kind (SPEC.md §11.3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $(#[doc = $name] $variant,)* }

        impl Kind {
            /// Every kind.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];
            /// The kind's name as contracts spell it.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }
            /// Whether its value is a file (else a string or a reference).
            pub fn is_file(self) -> bool {
                match self { $(Kind::$variant => $file,)* }
            }
            /// Parses a contract's spelling.
            pub fn parse(s: &str) -> Option<Kind> {
                match s { $($name => Some(Kind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    String => "STRING", false;
    Artifact => "ARTIFACT", true;
    Evidence => "EVIDENCE", true;
    ContainerImage => "CONTAINER_IMAGE", false;
    HelmChart => "HELM_CHART", true;
    SbomCyclonedxJson => "SBOM_CYCLONEDX_JSON", true;
    SbomSpdxJson => "SBOM_SPDX_JSON", true;
    JunitXml => "JUNIT_XML", true;
    JacocoXml => "JACOCO_XML", true;
    CoberturaXml => "COBERTURA_XML", true;
    Sarif => "SARIF", true;
    Openvex => "OPENVEX", true;
    CsafVex => "CSAF_VEX", true;
    CsafSecurityAdvisory => "CSAF_SECURITY_ADVISORY", true;
    CsafInformationalAdvisory => "CSAF_INFORMATIONAL_ADVISORY", true;
    CsafSecurityIncidentResponse => "CSAF_SECURITY_INCIDENT_RESPONSE", true;
    SlsaProvenance => "SLSA_PROVENANCE", true;
    Attestation => "ATTESTATION", true;
    OpenapiSpec => "OPENAPI_SPEC", true;
    GitlabSecurityReport => "GITLAB_SECURITY_REPORT", true;
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The order kinds are tried in when neither `--kind` nor the contract names
/// one (SPEC.md §11.3): most specific first, so a document is never taken
/// for a looser kind it also satisfies. EVIDENCE is never guessed; any other
/// file ends as ARTIFACT, any other value as STRING.
pub const DETECTION_ORDER: &[Kind] = &[
    Kind::SlsaProvenance,
    Kind::Attestation,
    Kind::SbomCyclonedxJson,
    Kind::SbomSpdxJson,
    Kind::CsafVex,
    Kind::CsafSecurityAdvisory,
    Kind::CsafInformationalAdvisory,
    Kind::CsafSecurityIncidentResponse,
    Kind::Openvex,
    Kind::Sarif,
    Kind::GitlabSecurityReport,
    Kind::OpenapiSpec,
    Kind::JunitXml,
    Kind::JacocoXml,
    Kind::CoberturaXml,
    Kind::HelmChart,
    Kind::Artifact,
];

/// Why a material was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The file does not exist or cannot be opened.
    #[error("cannot open the material file {path}")]
    Open {
        /// The path given.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file or value is empty.
    #[error("{0} is empty; an empty material proves nothing")]
    Empty(String),
    /// The content is not of the kind.
    #[error("{value} is not a valid {kind}: {reason}")]
    Invalid {
        /// The kind checked.
        kind: Kind,
        /// The file or value.
        value: String,
        /// Why, in words.
        reason: String,
    },
    /// Reading failed midway.
    #[error("reading {path}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// A registry could not be reached to resolve an image.
    #[error("cannot resolve {reference}: {reason}")]
    Unreachable {
        /// The image reference.
        reference: String,
        /// Why.
        reason: String,
    },
}

/// What a validator learned, for the record and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// One line describing the content ("CycloneDX 1.5, 12 components").
    pub summary: String,
    /// Annotations derived from the content (`tally.material.*`).
    pub annotations: Vec<(String, String)>,
}

impl Facts {
    fn new(summary: impl Into<String>) -> Self {
        Facts {
            summary: summary.into(),
            annotations: Vec::new(),
        }
    }
    fn with(mut self, k: &str, v: impl Into<String>) -> Self {
        let v = v.into();
        if !v.is_empty() {
            self.annotations.push((format!("tally.material.{k}"), v));
        }
        self
    }
}

/// Options of a validation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// CycloneDX: check only the header and the shape of `components`.
    pub lenient: bool,
    /// ATTESTATION / SLSA_PROVENANCE: keys one of which must have signed it.
    pub keys: Vec<PublicKey>,
}

/// Validates a file material of `kind` at `path` (not STRING or CONTAINER_IMAGE).
/// When it is not one, the error also says what the file is when its first
/// bytes tell (UTF-16, a byte-order mark, XML given for a JSON kind, JSON
/// for an XML kind, an archive) and which kind it validates as, if any.
pub fn validate_file(kind: Kind, path: &Path, opts: &Options) -> Result<Facts, MaterialError> {
    match check_file(kind, path, opts) {
        Err(MaterialError::Invalid { kind, value, reason }) => {
            let reason = match explain(kind, path, opts) {
                Some(more) => format!("{reason}; {more}"),
                None => reason,
            };
            Err(MaterialError::Invalid { kind, value, reason })
        }
        r => r,
    }
}

/// The formats a kind is written in, for [`explain`].
fn format_of(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::JunitXml | Kind::JacocoXml | Kind::CoberturaXml => Some("XML"),
        Kind::SbomCyclonedxJson
        | Kind::SbomSpdxJson
        | Kind::Sarif
        | Kind::Openvex
        | Kind::CsafVex
        | Kind::CsafSecurityAdvisory
        | Kind::CsafInformationalAdvisory
        | Kind::CsafSecurityIncidentResponse
        | Kind::SlsaProvenance
        | Kind::Attestation
        | Kind::GitlabSecurityReport => Some("JSON"),
        _ => None,
    }
}

/// What a file's first bytes say it is, when that is worth telling.
fn sniff(head: &[u8]) -> Option<&'static str> {
    let text = || {
        let t = head
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|i| &head[i..]);
        match t {
            Some([b'<', ..]) => Some("XML"),
            Some([b'{' | b'[', ..]) => Some("JSON"),
            _ => None,
        }
    };
    match head {
        [0xFF, 0xFE, ..] => Some("UTF-16 (little-endian, with a byte-order mark)"),
        [0xFE, 0xFF, ..] => Some("UTF-16 (big-endian, with a byte-order mark)"),
        [0xEF, 0xBB, 0xBF, ..] => Some("UTF-8 with a byte-order mark"),
        // UTF-16 without a mark: ASCII text with every other byte zero.
        [a, 0, b, 0, ..] | [0, a, 0, b, ..] if a.is_ascii() && b.is_ascii() && *a != 0 && *b != 0 => {
            Some("UTF-16 (no byte-order mark)")
        }
        [b'P', b'K', 3, 4, ..] => Some("a zip archive"),
        [0x1F, 0x8B, ..] => Some("gzip-compressed"),
        _ => text(),
    }
}

/// Why a file that is not a `kind` may have been given: its format as its
/// first bytes show it, and the kind it validates as.
fn explain(kind: Kind, path: &Path, opts: &Options) -> Option<String> {
    let mut head = [0u8; 512];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    let seen = sniff(&head[..n]);
    let expected = format_of(kind);
    let mut out = Vec::new();
    match seen {
        Some(s) if s.starts_with("UTF-16") || s.contains("byte-order") => {
            out.push(format!("the file is {s}; tally reads UTF-8 without a byte-order mark (convert it, e.g. `iconv -f UTF-16 -t UTF-8`, or remove the mark)"));
        }
        Some(s) if expected.is_some_and(|e| e != s) => {
            out.push(format!("the file is {s}, not {}", expected.unwrap_or_default()));
        }
        Some(s @ ("a zip archive" | "gzip-compressed")) => out.push(format!("the file is {s}")),
        _ => {}
    }
    // Which kind it is: each validator reads the file, so only for files
    // small enough to read a dozen times on an error path.
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= 64 << 20);
    if let Some(k) = DETECTION_ORDER
        .iter()
        .copied()
        .filter(|&k| small && k != kind && !matches!(k, Kind::Artifact | Kind::Evidence))
        .find(|&k| check_file(k, path, opts).is_ok())
    {
        out.push(format!("it looks like {k}"));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// [`validate_file`] without the explanation (what detection tries).
fn check_file(kind: Kind, path: &Path, opts: &Options) -> Result<Facts, MaterialError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| MaterialError::Open {
        path: shown.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(MaterialError::Open {
            path: shown,
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    if meta.len() == 0 {
        return Err(MaterialError::Empty(shown));
    }
    let invalid = |reason: String| MaterialError::Invalid {
        kind,
        value: shown.clone(),
        reason,
    };
    let open = || -> Result<BufReader<File>, MaterialError> {
        File::open(path)
            .map(|f| BufReader::with_capacity(64 << 10, f))
            .map_err(|source| MaterialError::Open {
                path: shown.clone(),
                source,
            })
    };
    let r = match kind {
        Kind::String | Kind::ContainerImage => Err(format!("{kind} is not a file kind")),
        Kind::Artifact | Kind::Evidence => Ok(Facts::new(format!("{} bytes", meta.len()))),
        Kind::HelmChart => helm_chart(open()?),
        Kind::SbomCyclonedxJson => cyclonedx(open()?, opts.lenient),
        Kind::SbomSpdxJson => spdx(open()?),
        Kind::JunitXml => junit_any(open()?),
        Kind::JacocoXml => {
            xml_root(open()?, "report", &["name"]).map(|n| Facts::new(format!("JaCoCo report, {n} counters")))
        }
        Kind::CoberturaXml => xml_root(open()?, "coverage", &["line-rate"])
            .map(|n| Facts::new(format!("Cobertura report, {n} classes"))),
        Kind::Sarif => sarif(open()?),
        Kind::Openvex => openvex(open()?),
        Kind::CsafVex
        | Kind::CsafSecurityAdvisory
        | Kind::CsafInformationalAdvisory
        | Kind::CsafSecurityIncidentResponse => csaf(open()?, kind),
        Kind::SlsaProvenance | Kind::Attestation => {
            if meta.len() > MAX_ENVELOPE_BYTES {
                Err(format!("larger than {MAX_ENVELOPE_BYTES} bytes"))
            } else {
                attestation(open()?, kind == Kind::SlsaProvenance, &opts.keys)
            }
        }
        Kind::OpenapiSpec => openapi(open()?, meta.len()),
        Kind::GitlabSecurityReport => gitlab_report(open()?),
    };
    r.map_err(invalid)
}

/// Validates a STRING value.
pub fn validate_string(value: &str) -> Result<Facts, MaterialError> {
    if value.is_empty() {
        return Err(MaterialError::Empty("the value".into()));
    }
    if value.len() > MAX_STRING_BYTES {
        return Err(MaterialError::Invalid {
            kind: Kind::String,
            value: format!("{}…", value.chars().take(40).collect::<String>()),
            reason: format!("longer than {MAX_STRING_BYTES} bytes; add it as a file (ARTIFACT or EVIDENCE)"),
        });
    }
    Ok(Facts::new(format!("{} characters", value.chars().count())))
}

/// Tries [`DETECTION_ORDER`] on a file; the first kind that validates wins.
pub fn detect_file(path: &Path, opts: &Options) -> Result<(Kind, Facts), MaterialError> {
    for &k in DETECTION_ORDER {
        match check_file(k, path, opts) {
            Ok(f) => return Ok((k, f)),
            Err(MaterialError::Invalid { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("ARTIFACT accepts every non-empty readable file")
}

/// `sha256:<hex>` and the size of a file, read in 1 MiB chunks;
/// `progress` is told the bytes read so far.
pub fn hash_file(path: &Path, mut progress: impl FnMut(u64)) -> Result<(String, u64), MaterialError> {
    let shown = path.display().to_string();
    let mut f = File::open(path).map_err(|source| MaterialError::Open {
        path: shown.clone(),
        source,
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(MaterialError::Read { path: shown, source }),
        };
        h.update(&buf[..n]);
        total += n as u64;
        progress(total);
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), total))
}

// ---------------------------------------------------------------- JSON kinds

fn json<T: serde::de::DeserializeOwned>(r: impl Read, what: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let v = T::deserialize(&mut de).map_err(|e| json_reason(&e, what))?;
    de.end().map_err(|e| json_reason(&e, what))?;
    Ok(v)
}

fn json_reason(e: &serde_json::Error, what: &str) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("not well-formed JSON ({e})"),
        Category::Io => format!("read error ({e})"),
        Category::Data => format!("not a {what} document ({e})"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to be type-checked
struct CdxStrict {
    #[serde(rename = "$schema")]
    schema: Option<String>,
    #[serde(rename = "bomFormat")]
    bom_format: String,
    #[serde(rename = "specVersion")]
    spec_version: String,
    #[serde(rename = "serialNumber")]
    serial_number: Option<String>,
    version: Option<u64>,
    metadata: Option<CdxMetadata>,
    components: Option<Vec<CdxComponent>>,
    services: Option<Vec<CdxService>>,
    #[serde(rename = "externalReferences")]
    external_references: Option<Vec<CdxReference>>,
    dependencies: Option<Vec<CdxDependency>>,
    compositions: Option<Vec<IgnoredAny>>,
    properties: Option<Vec<IgnoredAny>>,
    vulnerabilities: Option<Vec<IgnoredAny>>,
    signature: Option<IgnoredAny>,
    annotations: Option<Vec<IgnoredAny>>,
    formulation: Option<Vec<IgnoredAny>>,
    declarations: Option<IgnoredAny>,
    definitions: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct CdxLenient {
    #[serde(rename = "bomFormat")]
    bom_format: String,
    #[serde(rename = "specVersion")]
    spec_version: String,
    metadata: Option<CdxMetadata>,
    components: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct CdxMetadata {
    tools: Option<CdxTools>,
    /// Checked by the strict reading only (the lenient one reads the header).
    timestamp: Option<serde_json::Value>,
    /// Checked by the strict reading only.
    component: Option<serde_json::Value>,
}

/// A CycloneDX hash (`hashes[]`): the schema's closed object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CdxHash {
    alg: String,
    content: String,
}

/// An external reference: only its hashes are checked.
#[derive(Deserialize)]
struct CdxReference {
    hashes: Option<Vec<CdxHash>>,
}

/// `metadata.tools`: an array of tools (≤1.4) or `{components, services}` (1.5+).
#[derive(Deserialize)]
#[serde(untagged)]
enum CdxTools {
    Legacy(Vec<CdxTool>),
    Modern {
        #[serde(default)]
        components: Vec<CdxTool>,
    },
}

#[derive(Deserialize)]
struct CdxTool {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CdxComponent {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    version: Option<String>,
    components: Option<Vec<CdxComponent>>,
    hashes: Option<Vec<CdxHash>>,
    #[serde(rename = "externalReferences")]
    external_references: Option<Vec<CdxReference>>,
}

/// CycloneDX's hash algorithms (`hash-alg`, 1.2 to 1.7) and the hex length
/// of each digest (BLAKE3's is variable: any the schema's pattern allows).
const CDX_HASH_ALGS: &[(&str, Option<usize>)] = &[
    ("MD5", Some(32)),
    ("SHA-1", Some(40)),
    ("SHA-256", Some(64)),
    ("SHA-384", Some(96)),
    ("SHA-512", Some(128)),
    ("SHA3-256", Some(64)),
    ("SHA3-384", Some(96)),
    ("SHA3-512", Some(128)),
    ("BLAKE2b-256", Some(64)),
    ("BLAKE2b-384", Some(96)),
    ("BLAKE2b-512", Some(128)),
    ("BLAKE3", None),
];

/// The schema's `hash-alg` and `hash-content` (hex of 32, 40, 64, 96 or
/// 128 digits), and, stricter than the schema, a content as long as its
/// algorithm's digest: a SHA-256 of 40 digits is a SHA-1 mislabelled.
fn cdx_hashes(hashes: Option<&[CdxHash]>, whose: &str) -> Result<(), String> {
    for h in hashes.unwrap_or_default() {
        let Some((_, len)) = CDX_HASH_ALGS.iter().find(|(a, _)| *a == h.alg) else {
            return Err(format!(
                "{whose} has a hash of algorithm {:?}, not one of CycloneDX's ({})",
                h.alg,
                CDX_HASH_ALGS
                    .iter()
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let n = h.content.len();
        if !h.content.bytes().all(|b| b.is_ascii_hexdigit()) || ![32, 40, 64, 96, 128].contains(&n) {
            return Err(format!(
                "{whose} has a {} hash {:?} that is not 32, 40, 64, 96 or 128 hex digits",
                h.alg, h.content
            ));
        }
        if let Some(want) = len.filter(|w| *w != n) {
            return Err(format!(
                "{whose} has a {} hash of {n} hex digits; a {} digest has {want}",
                h.alg, h.alg
            ));
        }
    }
    Ok(())
}

/// A JSON Schema `date-time`: RFC 3339, with its offset.
fn cdx_timestamp(t: &str, whose: &str) -> Result<(), String> {
    let ok =
        t.len() >= 20 && t.as_bytes()[10].eq_ignore_ascii_case(&b'T') && t.parse::<jiff::Timestamp>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{whose} {t:?} is not an RFC 3339 date-time (e.g. 2024-05-01T12:00:00Z)"
        ))
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CdxService {
    name: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CdxDependency {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(rename = "dependsOn")]
    depends_on: Option<Vec<String>>,
}

const CDX_VERSIONS: &[&str] = &["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"];
const CDX_COMPONENT_TYPES: &[&str] = &[
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
    "cryptographic-asset",
];

fn cdx_header(format: &str, version: &str) -> Result<(), String> {
    if format != "CycloneDX" {
        return Err(format!("bomFormat is {format:?}, expected \"CycloneDX\""));
    }
    if !CDX_VERSIONS.contains(&version) {
        return Err(format!(
            "specVersion {version:?} is not a CycloneDX version (1.0 to 1.7)"
        ));
    }
    Ok(())
}

fn cdx_tool(m: Option<&CdxMetadata>) -> String {
    let tool = match m.and_then(|m| m.tools.as_ref()) {
        Some(CdxTools::Legacy(t)) => t.first(),
        Some(CdxTools::Modern { components }) => components.first(),
        None => None,
    };
    tool.map(|t| {
        let n = t.name.clone().unwrap_or_default();
        match &t.version {
            Some(v) if !n.is_empty() => format!("{n} {v}"),
            _ => n,
        }
    })
    .unwrap_or_default()
}

fn cyclonedx(r: impl Read, lenient: bool) -> Result<Facts, String> {
    if lenient {
        let b: CdxLenient = json(r, "CycloneDX")?;
        cdx_header(&b.bom_format, &b.spec_version)?;
        let n = b.components.map_or(0, |c| c.len());
        return Ok(Facts::new(format!(
            "CycloneDX {}, {n} components (lenient check)",
            b.spec_version
        ))
        .with("sbom.format", "CycloneDX")
        .with("sbom.version", b.spec_version.clone())
        .with("tool", cdx_tool(b.metadata.as_ref())));
    }
    let b: CdxStrict = json(r, "CycloneDX")?;
    cdx_header(&b.bom_format, &b.spec_version)?;
    if let Some(sn) = &b.serial_number {
        if !sn.starts_with("urn:uuid:") || sn.len() != 45 {
            return Err(format!("serialNumber {sn:?} is not urn:uuid:<RFC 4122 UUID>"));
        }
    }
    if b.version == Some(0) {
        return Err("version must be 1 or more".into());
    }
    fn component(c: &CdxComponent) -> Result<(), String> {
        if !CDX_COMPONENT_TYPES.contains(&c.kind.as_str()) {
            return Err(format!(
                "component {:?} has type {:?}, not a CycloneDX component type",
                c.name, c.kind
            ));
        }
        let whose = format!("component {:?}", c.name);
        cdx_hashes(c.hashes.as_deref(), &whose)?;
        for r in c.external_references.as_deref().unwrap_or_default() {
            cdx_hashes(r.hashes.as_deref(), &format!("an external reference of {whose}"))?;
        }
        Ok(())
    }
    fn walk(cs: &[CdxComponent], n: &mut usize) -> Result<(), String> {
        for c in cs {
            component(c)?;
            *n += 1;
            walk(c.components.as_deref().unwrap_or_default(), n)?;
        }
        Ok(())
    }
    if let Some(m) = &b.metadata {
        if let Some(t) = &m.timestamp {
            cdx_timestamp(t.as_str().unwrap_or_default(), "metadata.timestamp")?;
        }
        if let Some(c) = &m.component {
            let c: CdxComponent = serde_json::from_value(c.clone())
                .map_err(|e| format!("metadata.component is not a CycloneDX component ({e})"))?;
            component(&c)?;
        }
    }
    for r in b.external_references.as_deref().unwrap_or_default() {
        cdx_hashes(r.hashes.as_deref(), "an external reference of the BOM")?;
    }
    let mut n = 0;
    walk(b.components.as_deref().unwrap_or_default(), &mut n)?;
    Ok(
        Facts::new(format!("CycloneDX {}, {n} components", b.spec_version))
            .with("sbom.format", "CycloneDX")
            .with("sbom.version", b.spec_version.clone())
            .with("tool", cdx_tool(b.metadata.as_ref())),
    )
}

#[derive(Deserialize)]
struct Spdx {
    #[serde(rename = "spdxVersion")]
    spdx_version: String,
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    #[serde(rename = "dataLicense")]
    data_license: String,
    #[serde(rename = "documentNamespace")]
    document_namespace: Option<String>,
    #[serde(rename = "creationInfo")]
    creation_info: SpdxCreation,
    #[serde(default)]
    packages: Vec<SpdxPackage>,
}

#[derive(Deserialize)]
struct SpdxCreation {
    created: String,
    creators: Vec<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
}

fn spdx(r: impl Read) -> Result<Facts, String> {
    let d: Spdx = json(r, "SPDX")?;
    if !d.spdx_version.starts_with("SPDX-2.") {
        return Err(format!("spdxVersion {:?} is not SPDX-2.x", d.spdx_version));
    }
    if d.spdx_id != "SPDXRef-DOCUMENT" {
        return Err(format!("SPDXID is {:?}, must be \"SPDXRef-DOCUMENT\"", d.spdx_id));
    }
    if d.data_license != "CC0-1.0" {
        return Err(format!(
            "dataLicense is {:?}, must be \"CC0-1.0\"",
            d.data_license
        ));
    }
    if d.name.is_empty() || d.creation_info.created.is_empty() || d.creation_info.creators.is_empty() {
        return Err("name, creationInfo.created and creationInfo.creators must be non-empty".into());
    }
    if d.spdx_version.as_str() >= "SPDX-2.2" && d.document_namespace.as_deref().unwrap_or("").is_empty() {
        return Err("documentNamespace is required".into());
    }
    let tool = d
        .creation_info
        .creators
        .iter()
        .find_map(|c| c.strip_prefix("Tool:").map(|t| t.trim().to_owned()))
        .unwrap_or_default();
    Ok(
        Facts::new(format!("{}, {} packages", d.spdx_version, d.packages.len()))
            .with("sbom.format", "SPDX")
            .with("sbom.version", d.spdx_version.clone())
            .with("tool", tool),
    )
}

#[derive(Deserialize)]
struct Sarif {
    #[serde(rename = "$schema")]
    schema: Option<String>,
    version: String,
    runs: Vec<SarifRun>,
}

#[derive(Deserialize)]
struct SarifRun {
    tool: SarifTool,
    results: Option<Vec<SarifResult>>,
}

#[derive(Deserialize)]
struct SarifTool {
    driver: SarifDriver,
}

#[derive(Deserialize)]
struct SarifDriver {
    name: String,
    version: Option<String>,
    #[allow(dead_code)] // type-checked: each rule needs its id
    rules: Option<Vec<SarifRule>>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // its presence is what the schema requires
struct SarifRule {
    id: String,
}

/// What SARIF 2.1.0's schema requires of a result.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    message: SarifMessage,
    level: Option<String>,
    kind: Option<String>,
    rule_index: Option<i64>,
    rank: Option<f64>,
}

#[derive(Deserialize)]
struct SarifMessage {
    text: Option<String>,
    id: Option<String>,
}

const SARIF_LEVELS: &[&str] = &["none", "note", "warning", "error"];
const SARIF_KINDS: &[&str] = &["notApplicable", "pass", "fail", "review", "open", "informational"];

fn sarif_result(r: &SarifResult, run: usize, i: usize) -> Result<(), String> {
    let at = format!("runs[{run}].results[{i}]");
    if r.message.text.is_none() && r.message.id.is_none() {
        return Err(format!("{at}.message has neither text nor id"));
    }
    if let Some(l) = r.level.as_deref().filter(|l| !SARIF_LEVELS.contains(l)) {
        return Err(format!(
            "{at}.level is {l:?}, not one of {}",
            SARIF_LEVELS.join(", ")
        ));
    }
    if let Some(k) = r.kind.as_deref().filter(|k| !SARIF_KINDS.contains(k)) {
        return Err(format!(
            "{at}.kind is {k:?}, not one of {}",
            SARIF_KINDS.join(", ")
        ));
    }
    if r.rule_index.is_some_and(|x| x < -1) {
        return Err(format!("{at}.ruleIndex is below -1"));
    }
    if r.rank.is_some_and(|x| !(-1.0..=100.0).contains(&x)) {
        return Err(format!("{at}.rank is outside -1 to 100"));
    }
    Ok(())
}

fn sarif(r: impl Read) -> Result<Facts, String> {
    let s: Sarif = json(r, "SARIF")?;
    if s.version != "2.1.0" {
        return Err(format!("version is {:?}; SARIF 2.1.0 is required", s.version));
    }
    if let Some(schema) = &s.schema {
        if !schema.to_ascii_lowercase().contains("sarif") {
            return Err(format!("$schema {schema:?} is not a SARIF schema"));
        }
    }
    for (k, run) in s.runs.iter().enumerate() {
        for (i, r) in run.results.as_deref().unwrap_or_default().iter().enumerate() {
            sarif_result(r, k, i)?;
        }
    }
    let results: usize = s
        .runs
        .iter()
        .map(|r| r.results.as_ref().map_or(0, Vec::len))
        .sum();
    let tool = s.runs.first().map(|r| &r.tool.driver);
    Ok(Facts::new(format!(
        "SARIF {}, {} run(s), {results} result(s)",
        s.version,
        s.runs.len()
    ))
    .with("tool", tool.map(|d| d.name.clone()).unwrap_or_default())
    .with(
        "tool.version",
        tool.and_then(|d| d.version.clone()).unwrap_or_default(),
    ))
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct OpenVex {
    #[serde(rename = "@context")]
    context: String,
    #[serde(rename = "@id")]
    id: String,
    author: String,
    timestamp: String,
    statements: Vec<VexStatement>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct VexStatement {
    vulnerability: IgnoredAny,
    status: String,
}

fn openvex(r: impl Read) -> Result<Facts, String> {
    let v: OpenVex = json(r, "OpenVEX")?;
    if !v.context.starts_with("https://openvex.dev/ns") {
        return Err(format!("@context {:?} is not https://openvex.dev/ns…", v.context));
    }
    if v.id.is_empty() {
        return Err("@id is empty".into());
    }
    for (i, s) in v.statements.iter().enumerate() {
        if !["not_affected", "affected", "fixed", "under_investigation"].contains(&s.status.as_str()) {
            return Err(format!(
                "statements[{i}].status {:?} is not a VEX status",
                s.status
            ));
        }
    }
    Ok(Facts::new(format!(
        "OpenVEX, {} statement(s)",
        v.statements.len()
    )))
}

#[derive(Deserialize)]
struct Csaf {
    document: CsafDocument,
    product_tree: Option<IgnoredAny>,
    vulnerabilities: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct CsafDocument {
    category: String,
    csaf_version: String,
    publisher: CsafPublisher,
    title: String,
    tracking: CsafTracking,
    notes: Option<Vec<CsafNote>>,
    references: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CsafPublisher {
    category: String,
    name: String,
    namespace: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct CsafTracking {
    id: String,
    status: String,
    version: String,
    initial_release_date: String,
    current_release_date: String,
    revision_history: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct CsafNote {
    category: String,
}

fn csaf(r: impl Read, kind: Kind) -> Result<Facts, String> {
    let want = match kind {
        Kind::CsafVex => "csaf_vex",
        Kind::CsafSecurityAdvisory => "csaf_security_advisory",
        Kind::CsafInformationalAdvisory => "csaf_informational_advisory",
        _ => "csaf_security_incident_response",
    };
    let c: Csaf = json(r, "CSAF 2.0")?;
    let d = &c.document;
    if d.csaf_version != "2.0" {
        return Err(format!("csaf_version is {:?}, expected \"2.0\"", d.csaf_version));
    }
    if d.category != want {
        return Err(format!(
            "document.category is {:?}; a {kind} document has category {want:?}",
            d.category
        ));
    }
    if !["draft", "final", "interim"].contains(&d.tracking.status.as_str()) {
        return Err(format!(
            "document.tracking.status {:?} is not draft, final or interim",
            d.tracking.status
        ));
    }
    // The profile rules of CSAF 2.0 §4.
    let notes = d.notes.as_deref().unwrap_or_default();
    let has_note = |cats: &[&str]| notes.iter().any(|n| cats.contains(&n.category.as_str()));
    let vulns = c.vulnerabilities.as_ref().map_or(0, Vec::len);
    match kind {
        Kind::CsafVex | Kind::CsafSecurityAdvisory => {
            if c.product_tree.is_none() {
                return Err(format!("the {want} profile requires /product_tree"));
            }
            if vulns == 0 {
                return Err(format!("the {want} profile requires /vulnerabilities"));
            }
        }
        Kind::CsafInformationalAdvisory => {
            if vulns > 0 {
                return Err("the csaf_informational_advisory profile forbids /vulnerabilities".into());
            }
            if !has_note(&["description", "details", "general", "summary"]) {
                return Err("the csaf_informational_advisory profile requires a note of category description, details, general or summary".into());
            }
        }
        _ => {
            if !has_note(&["description", "details", "general", "summary"])
                || d.references.as_ref().is_none_or(Vec::is_empty)
            {
                return Err("the csaf_security_incident_response profile requires a descriptive note and /document/references".into());
            }
        }
    }
    Ok(Facts::new(format!(
        "CSAF 2.0 {want} {:?} ({}), {vulns} vulnerabilit{}",
        d.tracking.id,
        d.title,
        if vulns == 1 { "y" } else { "ies" }
    ))
    .with("publisher", d.publisher.name.clone()))
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct GitlabReport {
    version: String,
    vulnerabilities: Vec<IgnoredAny>,
    scan: GitlabScan,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct GitlabScan {
    #[serde(rename = "type")]
    kind: String,
    scanner: GitlabScanner,
    status: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct GitlabScanner {
    id: String,
    name: String,
    version: Option<String>,
}

const GITLAB_SCAN_TYPES: &[&str] = &[
    "sast",
    "dependency_scanning",
    "container_scanning",
    "dast",
    "secret_detection",
    "coverage_fuzzing",
    "api_fuzzing",
    "cluster_image_scanning",
];

fn gitlab_report(r: impl Read) -> Result<Facts, String> {
    let g: GitlabReport = json(r, "GitLab security report")?;
    if !GITLAB_SCAN_TYPES.contains(&g.scan.kind.as_str()) {
        return Err(format!("scan.type {:?} is not a GitLab scan type", g.scan.kind));
    }
    if !["success", "failure"].contains(&g.scan.status.as_str()) {
        return Err(format!(
            "scan.status {:?} is not success or failure",
            g.scan.status
        ));
    }
    Ok(Facts::new(format!(
        "GitLab {} report {}, {} vulnerabilities",
        g.scan.kind,
        g.version,
        g.vulnerabilities.len()
    ))
    .with("tool", g.scan.scanner.name.clone()))
}

// ------------------------------------------------------------- attestations

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvelopeOrBundle {
    Bundle {
        #[serde(rename = "mediaType")]
        media_type: String,
        #[serde(rename = "dsseEnvelope")]
        dsse_envelope: Envelope,
    },
    Envelope(Envelope),
}

#[derive(Deserialize)]
struct StatementView {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<SubjectView>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Deserialize)]
struct SubjectView {
    digest: std::collections::BTreeMap<String, String>,
}

fn attestation(r: impl Read, slsa: bool, keys: &[PublicKey]) -> Result<Facts, String> {
    let env = match json::<EnvelopeOrBundle>(r, "DSSE envelope or Sigstore bundle")
        .map_err(|_| "neither a DSSE envelope nor a Sigstore bundle with a DSSE envelope".to_owned())?
    {
        EnvelopeOrBundle::Bundle {
            media_type,
            dsse_envelope,
        } => {
            if !media_type.starts_with("application/vnd.dev.sigstore.bundle") {
                return Err(format!("mediaType {media_type:?} is not a Sigstore bundle"));
            }
            dsse_envelope
        }
        EnvelopeOrBundle::Envelope(e) => e,
    };
    if env.signatures.is_empty() {
        return Err("the envelope has no signatures".into());
    }
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE}",
            env.payload_type
        ));
    }
    let payload = if keys.is_empty() {
        crate::attest::dsse::decode_b64(&env.payload).ok_or("the payload is not base64")?
    } else {
        env.verify(keys).map_err(|e| e.to_string())?.payload().to_vec()
    };
    let st: StatementView = serde_json::from_slice(&payload)
        .map_err(|e| format!("the payload is not an in-toto statement ({e})"))?;
    if !st.statement_type.starts_with("https://in-toto.io/Statement/") {
        return Err(format!(
            "_type {:?} is not an in-toto Statement",
            st.statement_type
        ));
    }
    if st.subject.is_empty() || st.subject.iter().any(|s| s.digest.is_empty()) {
        return Err("the statement has no subject, or a subject without a digest".into());
    }
    if slsa && !st.predicate_type.starts_with("https://slsa.dev/provenance/") {
        return Err(format!(
            "predicateType {:?} is not SLSA provenance (https://slsa.dev/provenance/…)",
            st.predicate_type
        ));
    }
    Ok(Facts::new(format!(
        "in-toto statement, predicate {}, {} subject(s), signature {}",
        st.predicate_type,
        st.subject.len(),
        if keys.is_empty() {
            "not checked (no key given)"
        } else {
            "verified"
        }
    ))
    .with("predicate_type", st.predicate_type.clone()))
}

// -------------------------------------------------------------------- YAML

fn read_capped(mut r: impl Read, len: u64) -> Result<Vec<u8>, String> {
    if len > MAX_YAML_BYTES {
        return Err(format!("larger than {MAX_YAML_BYTES} bytes"));
    }
    let mut buf = Vec::with_capacity(len as usize);
    r.read_to_end(&mut buf).map_err(|e| format!("read error ({e})"))?;
    Ok(buf)
}

#[derive(Deserialize)]
struct OpenApi {
    openapi: Option<String>,
    swagger: Option<String>,
    info: OpenApiInfo,
    paths: Option<serde_norway::Value>,
    webhooks: Option<serde_norway::Value>,
    components: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
struct OpenApiInfo {
    title: String,
    version: String,
}

fn openapi(r: impl Read, len: u64) -> Result<Facts, String> {
    let buf = read_capped(r, len)?;
    // JSON is YAML; one parser reads both.
    let d: OpenApi = serde_norway::from_slice(&buf).map_err(|e| format!("not an OpenAPI document ({e})"))?;
    let version = match (&d.openapi, &d.swagger) {
        (Some(v), None) if v.starts_with("3.") => v.clone(),
        (None, Some(v)) if v == "2.0" => format!("Swagger {v}"),
        _ => return Err("needs `openapi: 3.x.y` or `swagger: \"2.0\"`".into()),
    };
    let paths_optional = d.openapi.as_deref().is_some_and(|v| v.starts_with("3.1"));
    if d.paths.is_none() && !(paths_optional && (d.webhooks.is_some() || d.components.is_some())) {
        return Err("has no `paths`".into());
    }
    Ok(Facts::new(format!(
        "OpenAPI {version}: {} {}",
        d.info.title, d.info.version
    )))
}

#[derive(Deserialize)]
struct ChartYaml {
    #[serde(rename = "apiVersion")]
    api_version: String,
    name: String,
    version: String,
}

fn helm_chart(r: BufReader<File>) -> Result<Facts, String> {
    let gz = flate2::read::GzDecoder::new(r);
    let mut ar = tar::Archive::new(gz);
    let entries = ar
        .entries()
        .map_err(|e| format!("not a gzip'd tar archive ({e})"))?;
    for e in entries {
        let mut e = e.map_err(|e| format!("not a gzip'd tar archive ({e})"))?;
        let path = e
            .path()
            .map_err(|e| format!("bad entry path ({e})"))?
            .into_owned();
        let parts: Vec<_> = path.components().collect();
        if parts.len() == 2 && parts[1].as_os_str() == "Chart.yaml" {
            let dir = parts[0].as_os_str().to_string_lossy().into_owned();
            let size = e.size();
            let buf = read_capped(&mut e, size)?;
            let c: ChartYaml = serde_norway::from_slice(&buf)
                .map_err(|e| format!("{dir}/Chart.yaml is not a chart description ({e})"))?;
            if c.api_version != "v1" && c.api_version != "v2" {
                return Err(format!(
                    "Chart.yaml apiVersion {:?} is not v1 or v2",
                    c.api_version
                ));
            }
            if c.name.is_empty() || c.version.is_empty() {
                return Err("Chart.yaml needs a name and a version".into());
            }
            return Ok(Facts::new(format!("Helm chart {} {}", c.name, c.version))
                .with("chart.name", c.name.clone())
                .with("chart.version", c.version.clone()));
        }
    }
    Err("no <chart>/Chart.yaml in the archive".into())
}

// --------------------------------------------------------------------- XML

/// Counts of a JUnit report.
#[derive(Debug, Default, Clone, Copy)]
struct JunitCounts {
    files: u64,
    suites: u64,
    cases: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
}

fn junit_any(mut r: BufReader<File>) -> Result<Facts, String> {
    use std::io::BufRead as _;
    let head = r.fill_buf().map_err(|e| format!("read error ({e})"))?;
    let mut c = JunitCounts::default();
    if head.starts_with(b"PK\x03\x04") {
        junit_zip(r, &mut c)?;
    } else if head.starts_with(&[0x1f, 0x8b]) {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(r));
        for e in ar.entries().map_err(|e| format!("not a tar.gz archive ({e})"))? {
            let e = e.map_err(|e| format!("not a tar.gz archive ({e})"))?;
            let name = e
                .path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            if e.header().entry_type().is_file() && name.ends_with(".xml") {
                junit(BufReader::new(e), &mut c).map_err(|m| format!("{name}: {m}"))?;
            }
        }
        if c.files == 0 {
            return Err("the archive holds no .xml report".into());
        }
    } else {
        junit(r, &mut c)?;
    }
    Ok(Facts::new(format!(
        "JUnit: {} file(s), {} suite(s), {} test(s), {} failure(s), {} error(s), {} skipped",
        c.files, c.suites, c.cases, c.failures, c.errors, c.skipped
    )))
}

fn junit_zip(r: BufReader<File>, c: &mut JunitCounts) -> Result<(), String> {
    let mut z = zip::ZipArchive::new(r.into_inner()).map_err(|e| format!("not a zip archive ({e})"))?;
    for i in 0..z.len() {
        let f = z.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        let name = f.name().to_owned();
        if f.is_file() && name.ends_with(".xml") {
            junit(BufReader::new(f), c).map_err(|m| format!("{name}: {m}"))?;
        }
    }
    if c.files == 0 {
        return Err("the archive holds no .xml report".into());
    }
    Ok(())
}

fn junit(r: impl std::io::BufRead, c: &mut JunitCounts) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut xr = quick_xml::Reader::from_reader(r);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut root_seen = false;
    loop {
        let ev = xr.read_event_into(&mut buf).map_err(|e| xml_reason(&xr, e))?;
        let (start, empty) = match &ev {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(s) = start {
            let name = s.local_name();
            let name = name.as_ref();
            if depth == 0 {
                if root_seen {
                    return Err("more than one root element".into());
                }
                root_seen = true;
                if name != b"testsuites" && name != b"testsuite" {
                    return Err(format!(
                        "the root element is <{}>, expected <testsuites> or <testsuite>",
                        String::from_utf8_lossy(name)
                    ));
                }
            }
            match name {
                b"testsuite" => c.suites += 1,
                b"testcase" => c.cases += 1,
                b"failure" => c.failures += 1,
                b"error" => c.errors += 1,
                b"skipped" => c.skipped += 1,
                _ => {}
            }
            if !empty {
                depth += 1;
            }
        }
        buf.clear();
    }
    if !root_seen {
        return Err("no root element".into());
    }
    if depth != 0 {
        return Err("the document ends inside an element (truncated?)".into());
    }
    c.files += 1;
    Ok(())
}

/// Checks the root element and its required attributes; returns how many
/// `class` (Cobertura) or `counter` (JaCoCo) elements it saw.
fn xml_root(r: impl std::io::BufRead, root: &str, attrs: &[&str]) -> Result<u64, String> {
    use quick_xml::events::Event;
    let mut xr = quick_xml::Reader::from_reader(r);
    let mut buf = Vec::new();
    let mut seen = None;
    let mut count = 0u64;
    let mut depth = 0usize;
    let counted: &[u8] = if root == "report" { b"counter" } else { b"class" };
    loop {
        let ev = xr.read_event_into(&mut buf).map_err(|e| xml_reason(&xr, e))?;
        match &ev {
            Event::Start(s) | Event::Empty(s) => {
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
                if seen.is_none() {
                    let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    if name != root {
                        return Err(format!("the root element is <{name}>, expected <{root}>"));
                    }
                    for a in attrs {
                        if s.try_get_attribute(*a).ok().flatten().is_none() {
                            return Err(format!("<{root}> has no `{a}` attribute"));
                        }
                    }
                    seen = Some(());
                } else if s.local_name().as_ref() == counted {
                    count += 1;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    seen.ok_or_else(|| "no root element".to_owned())?;
    if depth != 0 {
        return Err("the document ends inside an element (truncated?)".into());
    }
    Ok(count)
}

fn xml_reason<R>(xr: &quick_xml::Reader<R>, e: quick_xml::Error) -> String {
    format!("not well-formed XML at byte {} ({e})", xr.buffer_position())
}
