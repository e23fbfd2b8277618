//! What a policy sees as `input` (SPEC.md §13.4), as Chainloop builds it:
//! a JSON material's document (an array becomes `{"elements": [...]}`),
//! JUnit XML projected to JSON suites, nothing for opaque kinds; always
//! `chainloop_metadata` (the material's descriptor) and `args`.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use serde_json::{json, Map, Value};

use crate::attest::material::Kind;

/// A material as given to its policies.
#[derive(Debug, Clone, Copy)]
pub struct Material<'a> {
    /// Its name in the contract.
    pub name: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// `sha256:<hex>` of its bytes (or of the string value).
    pub digest: &'a str,
    /// The file's bytes (`None`: a string or reference kind, or not readable here).
    pub bytes: Option<&'a [u8]>,
    /// The value of a string or reference kind.
    pub value: Option<&'a str>,
    /// Its annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

/// Kinds whose bytes are one JSON document.
fn is_json(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::SbomCyclonedxJson
            | Kind::SbomSpdxJson
            | Kind::Sarif
            | Kind::Openvex
            | Kind::CsafVex
            | Kind::CsafSecurityAdvisory
            | Kind::CsafInformationalAdvisory
            | Kind::CsafSecurityIncidentResponse
            | Kind::SlsaProvenance
    ) || kind.as_str().ends_with("_JSON")
}

/// A material's input document without `args` (built once, shared by
/// every policy that evaluates the material).
pub fn material_document(m: &Material<'_>) -> Result<regorus::Value, String> {
    let mut doc = match (m.kind, m.bytes) {
        (Kind::JunitXml, Some(b)) => to_regorus(Value::Array(junit(b)?))?,
        (Kind::Attestation | Kind::SlsaProvenance, Some(b)) => to_regorus(statement_of(b)?)?,
        // The hot path (SBOMs, SARIF, VEX…): straight from the bytes.
        (k, Some(b)) if is_json(k) => parse_regorus(b)?,
        (Kind::OpenapiSpec, Some(b)) => match parse_regorus(b) {
            Ok(v) => v,
            Err(_) => to_regorus(
                serde_norway::from_slice::<Value>(b)
                    .map_err(|e| format!("the OpenAPI document is neither JSON nor YAML: {e}"))?,
            )?,
        },
        _ => regorus::Value::new_object(),
    };
    if let regorus::Value::Array(_) = doc {
        let mut o = regorus::Value::new_object();
        o.as_object_mut()
            .map_err(|e| e.to_string())?
            .insert("elements".into(), doc);
        doc = o;
    }
    if !matches!(doc, regorus::Value::Object(_)) {
        return Err("the material is a JSON scalar, not an object or array".into());
    }
    let mut annotations = Map::new();
    annotations.insert("chainloop.material.name".into(), m.name.into());
    annotations.insert("chainloop.material.type".into(), m.kind.as_str().into());
    for (k, v) in m.annotations {
        annotations.insert(k.clone(), v.clone().into());
    }
    let mut descriptor = json!({
        "name": m.name,
        "digest": digest_map(m.digest),
        "annotations": annotations,
    });
    if let Some(v) = m.value {
        descriptor["value"] = v.into();
    }
    doc.as_object_mut()
        .map_err(|e| e.to_string())?
        .insert("chainloop_metadata".into(), to_regorus(descriptor)?);
    Ok(doc)
}

/// An attestation policy's input document without `args`: the statement.
pub fn statement_document(statement_json: &[u8]) -> Result<regorus::Value, String> {
    let v = parse_regorus(statement_json)?;
    if !matches!(v, regorus::Value::Object(_)) {
        return Err("the statement is not a JSON object".into());
    }
    Ok(v)
}

/// `doc` with `args` (a shallow copy: the document is shared).
pub fn with_args(doc: &regorus::Value, args: &Map<String, Value>) -> Result<regorus::Value, String> {
    let mut v = doc.clone();
    v.as_object_mut()
        .map_err(|e| e.to_string())?
        .insert("args".into(), to_regorus(Value::Object(args.clone()))?);
    Ok(v)
}

/// The input of a material policy as JSON (`tally policy eval` shows it).
pub fn material(m: &Material<'_>, args: &Map<String, Value>) -> Result<Value, String> {
    to_json(&with_args(&material_document(m)?, args)?)
}

/// The input of an attestation policy as JSON.
pub fn statement(statement_json: &[u8], args: &Map<String, Value>) -> Result<Value, String> {
    to_json(&with_args(&statement_document(statement_json)?, args)?)
}

fn to_regorus(v: Value) -> Result<regorus::Value, String> {
    serde_json::from_value(v).map_err(|e| format!("input: {e}"))
}

/// Deserialized straight into regorus' value: measured faster than parsing
/// with serde_json and converting the tree (BENCHMARKS.md, policies).
fn parse_regorus(b: &[u8]) -> Result<regorus::Value, String> {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    serde_json::from_slice(b).map_err(|e| format!("the material is not JSON ({e})"))
}

/// A regorus value as JSON.
pub fn to_json(v: &regorus::Value) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("input: {e}"))
}

fn digest_map(d: &str) -> Value {
    match d.split_once(':') {
        Some((alg, hex)) => json!({ alg: hex }),
        None => json!({}),
    }
}

fn parse_json(b: &[u8]) -> Result<Value, String> {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    serde_json::from_slice(b).map_err(|e| format!("the material is not JSON ({e})"))
}

/// An attestation material: the statement inside its DSSE envelope (or a
/// Sigstore bundle's), as Chainloop unwraps it.
fn statement_of(b: &[u8]) -> Result<Value, String> {
    use base64::Engine as _;
    let v = parse_json(b)?;
    let env = v.get("dsseEnvelope").unwrap_or(&v);
    match env.get("payload").and_then(Value::as_str) {
        Some(p) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("the envelope's payload is not base64 ({e})"))?;
            parse_json(&bytes)
        }
        None => Ok(v),
    }
}

/// JUnit XML (a file, or a zip or tar.gz of `.xml` reports) as the list of
/// suites Chainloop's policies read: `{name, package, tests: [{name,
/// classname, status, message}], totals: {tests, passed, skipped, failed,
/// error}}`; `status` is passed, failed, error or skipped.
pub fn junit(b: &[u8]) -> Result<Vec<Value>, String> {
    let mut suites = Vec::new();
    if b.starts_with(b"PK\x03\x04") {
        let mut z =
            zip::ZipArchive::new(std::io::Cursor::new(b)).map_err(|e| format!("not a zip archive ({e})"))?;
        let mut names: Vec<String> = z.file_names().map(str::to_owned).collect();
        names.sort();
        for name in names.iter().filter(|n| n.ends_with(".xml")) {
            let f = z.by_name(name).map_err(|e| format!("{name}: {e}"))?;
            junit_file(std::io::BufReader::new(f.take(64 << 20)), &mut suites)
                .map_err(|m| format!("{name}: {m}"))?;
        }
    } else if b.starts_with(&[0x1f, 0x8b]) {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(b));
        let mut files = Vec::new();
        for e in ar.entries().map_err(|e| format!("not a tar.gz archive ({e})"))? {
            let mut e = e.map_err(|e| format!("not a tar.gz archive ({e})"))?;
            let name = e
                .path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            if e.header().entry_type().is_file() && name.ends_with(".xml") {
                let mut buf = Vec::new();
                (&mut e)
                    .take(64 << 20)
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("{name}: {e}"))?;
                files.push((name, buf));
            }
        }
        files.sort();
        for (name, buf) in files {
            junit_file(&buf[..], &mut suites).map_err(|m| format!("{name}: {m}"))?;
        }
    } else {
        junit_file(b, &mut suites)?;
    }
    Ok(suites)
}

#[derive(Default)]
struct Suite {
    name: String,
    package: String,
    tests: Vec<Value>,
    totals: [u64; 5], // tests, passed, skipped, failed, error
}

impl Suite {
    fn into_json(self) -> Value {
        let [tests, passed, skipped, failed, error] = self.totals;
        json!({
            "name": self.name,
            "package": self.package,
            "tests": self.tests,
            "totals": {"tests": tests, "passed": passed, "skipped": skipped, "failed": failed, "error": error},
        })
    }
}

fn attr(s: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> String {
    s.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
        .unwrap_or_default()
}

fn junit_file(r: impl BufRead, out: &mut Vec<Value>) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut xr = quick_xml::Reader::from_reader(r);
    let mut buf = Vec::new();
    let mut suite: Option<Suite> = None;
    // The open test case: its name, class, status and message.
    let mut case: Option<(String, String, &'static str, String)> = None;
    loop {
        let ev = xr
            .read_event_into(&mut buf)
            .map_err(|e| format!("not well-formed XML at byte {} ({e})", xr.buffer_position()))?;
        match &ev {
            Event::Start(s) | Event::Empty(s) => {
                let empty = matches!(ev, Event::Empty(_));
                match s.local_name().as_ref() {
                    b"testsuite" => {
                        if let Some(done) = suite.take() {
                            out.push(done.into_json());
                        }
                        suite = Some(Suite {
                            name: attr(s, b"name"),
                            package: attr(s, b"package"),
                            ..Suite::default()
                        });
                        if empty {
                            if let Some(done) = suite.take() {
                                out.push(done.into_json());
                            }
                        }
                    }
                    b"testcase" => {
                        let c = (attr(s, b"name"), attr(s, b"classname"), "passed", String::new());
                        if empty {
                            finish_case(suite.get_or_insert_with(Suite::default), c);
                        } else {
                            case = Some(c);
                        }
                    }
                    tag @ (b"failure" | b"error" | b"skipped") => {
                        if let Some(c) = case.as_mut() {
                            c.2 = match tag {
                                b"failure" => "failed",
                                b"error" => "error",
                                _ => "skipped",
                            };
                            c.3 = attr(s, b"message");
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"testcase" => {
                    if let Some(c) = case.take() {
                        finish_case(suite.get_or_insert_with(Suite::default), c);
                    }
                }
                b"testsuite" => {
                    if let Some(done) = suite.take() {
                        out.push(done.into_json());
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if let Some(done) = suite.take() {
        out.push(done.into_json());
    }
    Ok(())
}

fn finish_case(s: &mut Suite, (name, classname, status, message): (String, String, &'static str, String)) {
    s.totals[0] += 1;
    let i = match status {
        "passed" => 1,
        "skipped" => 2,
        "failed" => 3,
        _ => 4,
    };
    s.totals[i] += 1;
    s.tests
        .push(json!({"name": name, "classname": classname, "status": status, "message": message}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_projects_suites_cases_and_totals() {
        let x = br#"<testsuites><testsuite name="a"><testcase name="t1" classname="C"/><testcase name="t2" classname="C"><failure message="boom">trace</failure></testcase><testcase name="t3"><skipped/></testcase></testsuite></testsuites>"#;
        let s = junit(x).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0]["totals"],
            json!({"tests": 3, "passed": 1, "skipped": 1, "failed": 1, "error": 0})
        );
        assert_eq!(s[0]["tests"][1]["message"], "boom");
    }

    #[test]
    fn arrays_become_elements_and_metadata_is_added() {
        let ann = BTreeMap::new();
        let m = Material {
            name: "vex",
            kind: Kind::SbomCyclonedxJson,
            digest: "sha256:ab",
            bytes: Some(b"[1,2]"),
            value: None,
            annotations: &ann,
        };
        let v = material(&m, &Map::new()).unwrap();
        assert_eq!(v["elements"], json!([1, 2]));
        assert_eq!(v["chainloop_metadata"]["digest"]["sha256"], "ab");
        assert_eq!(
            v["chainloop_metadata"]["annotations"]["chainloop.material.type"],
            "SBOM_CYCLONEDX_JSON"
        );
    }
}
