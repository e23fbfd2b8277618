//! Material validators against the shared vectors: every valid file is
//! accepted as its kind (and detected as it), every invalid one rejected
//! with a reason; plus archives, charts and the CSAF profiles built here.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tally::attest::material::{self, detect_file, validate_file, Kind, MaterialError, Options};

use crate::common::vectors_dir;

/// These tests need the shared vectors (CI always has them).
fn vectors() -> PathBuf {
    vectors_dir().expect("the shared vectors (../shared/vectors or TALLY_VECTORS)")
}

fn valid(name: &str) -> PathBuf {
    vectors().join("materials/valid").join(name)
}
fn invalid(name: &str) -> PathBuf {
    vectors().join("materials/invalid").join(name)
}

/// Each file of `materials/valid` and the kind it is.
const VALID: &[(&str, Kind)] = &[
    ("checkmarx.sarif", Kind::Sarif),
    ("report.sarif", Kind::Sarif),
    (
        "csaf_informational_advisory.json",
        Kind::CsafInformationalAdvisory,
    ),
    ("rhsa-2019_1862.json", Kind::CsafInformationalAdvisory),
    ("csaf_security_advisory.json", Kind::CsafSecurityAdvisory),
    ("csaf_vex_v0.2.0.json", Kind::CsafVex),
    ("example11-rust-hello-server.spdx2.3.json", Kind::SbomSpdxJson),
    ("example7-go-bin.spdx2.2.json", Kind::SbomSpdxJson),
    ("sbom-spdx-container.json", Kind::SbomSpdxJson),
    ("go-vex-v0.2.0.json", Kind::Openvex),
    ("openvex_v0.2.0.json", Kind::Openvex),
    ("junit.xml", Kind::JunitXml),
    ("petclinic-surefire-reports.zip", Kind::JunitXml),
    ("laravel-7.12.0.bom.1.4.json", Kind::SbomCyclonedxJson),
    ("saasbom-apigateway.bom.json", Kind::SbomCyclonedxJson),
    ("sbom.cyclonedx-1.5-multiple-tools.json", Kind::SbomCyclonedxJson),
];

/// Each file of `materials/invalid`, the kind it must be rejected as, and a
/// word the reason must contain.
const INVALID: &[(&str, Kind, &str)] = &[
    ("JSON1001.SyntaxError.sarif", Kind::Sarif, "not well-formed JSON"),
    (
        "csaf_security_incident_response_wrong_category.json",
        Kind::CsafSecurityIncidentResponse,
        "document.category is \"random\"",
    ),
    (
        "empty_array.json",
        Kind::SbomCyclonedxJson,
        "not a CycloneDX document",
    ),
    ("empty_array.json", Kind::Sarif, "not a SARIF document"),
    (
        "go-vex-csaf-not-openvex.json",
        Kind::Openvex,
        "missing field `@context`",
    ),
    (
        "junit-invalid.xml",
        Kind::JunitXml,
        "root element is <testsuites2>",
    ),
    ("random.json", Kind::SbomCyclonedxJson, "unknown field `foo`"),
    ("random.json", Kind::SbomSpdxJson, "missing field `spdxVersion`"),
    ("random.json", Kind::CsafVex, "missing field `document`"),
    (
        "sbom.cyclonedx-invalid-schema.json",
        Kind::SbomCyclonedxJson,
        "unknown field `invalidField`",
    ),
];

#[test]
fn every_valid_vector_is_accepted_as_its_kind_and_detected_as_it() {
    let dir = vectors().join("materials/valid");
    let listed: Vec<&str> = VALID.iter().map(|(n, _)| *n).collect();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            listed.contains(&name.as_str()),
            "vector {name} has no expected kind here"
        );
    }
    for (name, kind) in VALID {
        let facts = validate_file(*kind, &valid(name), &Options::default())
            .unwrap_or_else(|e| panic!("{name} rejected as {kind}: {e}"));
        assert!(!facts.summary.is_empty());
        let (detected, _) = detect_file(&valid(name), &Options::default()).unwrap();
        assert_eq!(detected, *kind, "{name} detected as {detected}");
    }
}

#[test]
fn every_invalid_vector_is_rejected_with_its_reason() {
    let dir = vectors().join("materials/invalid");
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            INVALID.iter().any(|(n, _, _)| *n == name),
            "vector {name} is not checked"
        );
    }
    for (name, kind, why) in INVALID {
        match validate_file(*kind, &invalid(name), &Options::default()) {
            Err(e @ MaterialError::Invalid { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(why), "{name} as {kind}: {msg}");
                assert!(msg.contains(&kind.to_string()), "{msg}");
            }
            other => panic!("{name} as {kind}: {other:?}"),
        }
    }
    // Nothing invalid is taken for the kind it imitates when detecting either.
    for (name, kind, _) in INVALID {
        let (k, _) = detect_file(&invalid(name), &Options::default()).unwrap();
        assert_ne!(k, *kind, "{name}");
    }
}

#[test]
fn valid_vectors_are_rejected_as_other_structured_kinds() {
    // A document of one kind is not accepted as an unrelated structured kind.
    let structured = [
        Kind::SbomCyclonedxJson,
        Kind::SbomSpdxJson,
        Kind::Sarif,
        Kind::Openvex,
        Kind::CsafVex,
        Kind::CsafSecurityAdvisory,
        Kind::CsafInformationalAdvisory,
        Kind::JunitXml,
        Kind::GitlabSecurityReport,
        Kind::Attestation,
    ];
    for (name, kind) in VALID {
        for k in structured.iter().filter(|k| *k != kind) {
            assert!(
                validate_file(*k, &valid(name), &Options::default()).is_err(),
                "{name} accepted as {k}"
            );
        }
    }
}

#[test]
fn lenient_cyclonedx_accepts_unknown_fields_but_not_a_wrong_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bom.json");
    std::fs::write(&p, r#"{"bomFormat":"CycloneDX","specVersion":"1.6","vendorExtension":{"x":1},"components":[{"type":"library","name":"a","weird":true}]}"#).unwrap();
    assert!(validate_file(Kind::SbomCyclonedxJson, &p, &Options::default()).is_err());
    let lenient = Options {
        lenient: true,
        ..Options::default()
    };
    let f = validate_file(Kind::SbomCyclonedxJson, &p, &lenient).unwrap();
    assert!(f.summary.contains("lenient"), "{}", f.summary);
    std::fs::write(&p, r#"{"bomFormat":"SPDX","specVersion":"1.6"}"#).unwrap();
    assert!(validate_file(Kind::SbomCyclonedxJson, &p, &lenient).is_err());
}

#[test]
fn empty_and_missing_files_are_their_own_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.json");
    std::fs::write(&p, b"").unwrap();
    for k in Kind::ALL.iter().filter(|k| k.is_file()) {
        assert!(
            matches!(
                validate_file(*k, &p, &Options::default()),
                Err(MaterialError::Empty(_))
            ),
            "{k}"
        );
        assert!(matches!(
            validate_file(*k, &dir.path().join("nope"), &Options::default()),
            Err(MaterialError::Open { .. })
        ));
    }
    assert!(matches!(
        material::validate_string(""),
        Err(MaterialError::Empty(_))
    ));
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn csaf_with_category(cat: &str) -> String {
    let src =
        std::fs::read_to_string(invalid("csaf_security_incident_response_wrong_category.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&src).unwrap();
    v["document"]["category"] = cat.into();
    v.to_string()
}

#[test]
fn csaf_incident_response_needs_its_category_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(
        dir.path(),
        "ir.json",
        &csaf_with_category("csaf_security_incident_response"),
    );
    validate_file(Kind::CsafSecurityIncidentResponse, &ok, &Options::default()).unwrap();
    assert_eq!(
        detect_file(&ok, &Options::default()).unwrap().0,
        Kind::CsafSecurityIncidentResponse
    );
    for k in [
        Kind::CsafVex,
        Kind::CsafSecurityAdvisory,
        Kind::CsafInformationalAdvisory,
    ] {
        let e = validate_file(k, &ok, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("category"), "{e}");
    }
}

#[test]
fn junit_tar_gz_and_broken_archives() {
    let dir = tempfile::tempdir().unwrap();
    let junit = std::fs::read(valid("junit.xml")).unwrap();
    let tgz = dir.path().join("reports.tar.gz");
    {
        let gz =
            flate2::write::GzEncoder::new(std::fs::File::create(&tgz).unwrap(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for n in ["a/TEST-1.xml", "b/TEST-2.xml"] {
            let mut h = tar::Header::new_gnu();
            h.set_size(junit.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, n, junit.as_slice()).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
    }
    let f = validate_file(Kind::JunitXml, &tgz, &Options::default()).unwrap();
    assert!(f.summary.starts_with("JUnit: 2 file(s)"), "{}", f.summary);
    // A truncated zip, and a zip with a bad report inside, are rejected.
    let zip = std::fs::read(valid("petclinic-surefire-reports.zip")).unwrap();
    let cut = write(dir.path(), "cut.zip", "");
    std::fs::write(&cut, &zip[..zip.len() / 2]).unwrap();
    assert!(validate_file(Kind::JunitXml, &cut, &Options::default()).is_err());
    let bad = dir.path().join("bad.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&bad).unwrap());
        z.start_file("TEST-x.xml", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"<testsuite><testcase></testsuite>").unwrap();
        z.finish().unwrap();
    }
    let e = validate_file(Kind::JunitXml, &bad, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("TEST-x.xml"), "{e}");
    // A truncated XML report.
    let t = write(
        dir.path(),
        "t.xml",
        "<testsuites><testsuite name=\"a\"><testcase name=\"b\"/>",
    );
    assert!(validate_file(Kind::JunitXml, &t, &Options::default()).is_err());
}

#[test]
fn coverage_reports_openapi_gitlab_and_helm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jacoco = write(
        d,
        "jacoco.xml",
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd"><report name="svc"><sessioninfo id="x" start="1" dump="2"/><counter type="LINE" missed="1" covered="9"/></report>"#,
    );
    let cobertura = write(
        d,
        "cobertura.xml",
        r#"<?xml version="1.0" ?><coverage line-rate="0.9" branch-rate="0.5" version="7.4" timestamp="1"><packages><package name="p"><classes><class name="c" filename="c.py" line-rate="1"/></classes></package></packages></coverage>"#,
    );
    let openapi_yaml = write(d, "api.yaml", "openapi: 3.0.3\ninfo:\n  title: Pets\n  version: 1.0.0\npaths:\n  /pets:\n    get:\n      responses:\n        '200':\n          description: ok\n");
    let openapi_json = write(
        d,
        "api.json",
        r#"{"swagger":"2.0","info":{"title":"T","version":"1"},"paths":{}}"#,
    );
    let gitlab = write(
        d,
        "gl.json",
        r#"{"version":"15.0.7","vulnerabilities":[{"id":"1","identifiers":[]}],"scan":{"type":"dependency_scanning","status":"success","scanner":{"id":"gemnasium","name":"Gemnasium"},"analyzer":{"id":"g","name":"G"},"start_time":"2024-01-01T00:00:00","end_time":"2024-01-01T00:00:01"}}"#,
    );
    let cases = [
        (&jacoco, Kind::JacocoXml),
        (&cobertura, Kind::CoberturaXml),
        (&openapi_yaml, Kind::OpenapiSpec),
        (&openapi_json, Kind::OpenapiSpec),
        (&gitlab, Kind::GitlabSecurityReport),
    ];
    for (p, k) in cases {
        validate_file(k, p, &Options::default()).unwrap_or_else(|e| panic!("{k}: {e}"));
        assert_eq!(
            detect_file(p, &Options::default()).unwrap().0,
            k,
            "{}",
            p.display()
        );
    }
    // Swapped roots are rejected with the element named.
    let e = validate_file(Kind::CoberturaXml, &jacoco, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("<report>"), "{e}");
    let bad_api = write(
        d,
        "bad.yaml",
        "openapi: 4.0\ninfo: {title: x, version: y}\npaths: {}\n",
    );
    assert!(validate_file(Kind::OpenapiSpec, &bad_api, &Options::default()).is_err());
    let bad_gl = write(
        d,
        "badgl.json",
        r#"{"version":"15","vulnerabilities":[],"scan":{"type":"magic","status":"success","scanner":{"id":"a","name":"b"}}}"#,
    );
    let e = validate_file(Kind::GitlabSecurityReport, &bad_gl, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("magic"), "{e}");

    // A Helm chart: a .tgz with <name>/Chart.yaml.
    let chart = d.join("demo-0.1.0.tgz");
    let tgz =
        |path: &Path, entries: &[(&str, &str)]| std::fs::write(path, crate::common::tgz(entries)).unwrap();
    tgz(
        &chart,
        &[
            ("demo/values.yaml", "a: 1\n"),
            ("demo/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n"),
        ],
    );
    let f = validate_file(Kind::HelmChart, &chart, &Options::default()).unwrap();
    assert_eq!(f.summary, "Helm chart demo 0.1.0");
    assert_eq!(
        detect_file(&chart, &Options::default()).unwrap().0,
        Kind::HelmChart
    );
    let not_chart = d.join("x.tgz");
    tgz(&not_chart, &[("x/readme.md", "hi")]);
    let e = validate_file(Kind::HelmChart, &not_chart, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Chart.yaml"), "{e}");
    assert_eq!(
        detect_file(&not_chart, &Options::default()).unwrap().0,
        Kind::Artifact
    );
}

#[test]
fn hashing_streams_and_matches_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("blob");
    let body = vec![7u8; 3 << 20];
    std::fs::write(&p, &body).unwrap();
    let mut seen = Vec::new();
    let (d, n) = material::hash_file(&p, |x| seen.push(x)).unwrap();
    assert_eq!(n, body.len() as u64);
    assert_eq!(
        d,
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
        )
    );
    assert_eq!(seen, vec![1 << 20, 2 << 20, 3 << 20]);
}

#[test]
fn attestations_are_checked_as_envelopes_or_bundles_with_an_optional_key() {
    use tally::attest::signing::{Algorithm, SigningKey};
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
    let other = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let statement = |pt: &str| {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": "ab".repeat(32)}}],
            "predicateType": pt,
            "predicate": {}
        })
        .to_string()
    };
    let slsa = key
        .sign_envelope(
            "application/vnd.in-toto+json",
            statement("https://slsa.dev/provenance/v1").as_bytes(),
        )
        .unwrap();
    let p = dir.path().join("slsa.json");
    std::fs::write(&p, serde_json::to_vec(&slsa).unwrap()).unwrap();
    let with = |keys: Vec<tally::attest::dsse::PublicKey>| Options {
        keys,
        ..Options::default()
    };
    validate_file(Kind::SlsaProvenance, &p, &Options::default()).unwrap();
    let f = validate_file(Kind::SlsaProvenance, &p, &with(vec![key.public_key().unwrap()])).unwrap();
    assert!(f.summary.contains("verified"), "{}", f.summary);
    let e = validate_file(Kind::SlsaProvenance, &p, &with(vec![other.public_key().unwrap()])).unwrap_err();
    assert!(e.to_string().contains("no signature"), "{e}");
    assert_eq!(
        detect_file(&p, &Options::default()).unwrap().0,
        Kind::SlsaProvenance
    );

    // The same envelope inside a Sigstore bundle.
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "x"}},
        "dsseEnvelope": slsa,
    });
    let b = dir.path().join("bundle.json");
    std::fs::write(&b, bundle.to_string()).unwrap();
    validate_file(Kind::SlsaProvenance, &b, &with(vec![key.public_key().unwrap()])).unwrap();

    // Another predicate is an ATTESTATION, not SLSA provenance.
    let vsa = key
        .sign_envelope(
            "application/vnd.in-toto+json",
            statement("https://slsa.dev/verification_summary/v1").as_bytes(),
        )
        .unwrap();
    let v = dir.path().join("vsa.json");
    std::fs::write(&v, serde_json::to_vec(&vsa).unwrap()).unwrap();
    let e = validate_file(Kind::SlsaProvenance, &v, &Options::default()).unwrap_err();
    assert!(e.to_string().contains("not SLSA provenance"), "{e}");
    assert_eq!(detect_file(&v, &Options::default()).unwrap().0, Kind::Attestation);
    // An unsigned statement, or a foreign payload type, is not an attestation.
    std::fs::write(&v, statement("x")).unwrap();
    assert!(validate_file(Kind::Attestation, &v, &Options::default()).is_err());
    let foreign = key.sign_envelope("text/plain", b"hello").unwrap();
    std::fs::write(&v, serde_json::to_vec(&foreign).unwrap()).unwrap();
    let e = validate_file(Kind::Attestation, &v, &Options::default()).unwrap_err();
    assert!(e.to_string().contains("payloadType"), "{e}");
}

/// A file given as the wrong kind is named for what it is: XML for a JSON
/// kind, JSON for an XML kind, UTF-16 or a byte-order mark, with the kind
/// it validates as.
#[test]
fn a_file_of_the_wrong_format_says_what_it_is() {
    let d = tempfile::tempdir().unwrap();
    let reason = |kind: Kind, path: &Path| match validate_file(kind, path, &Options::default()) {
        Err(MaterialError::Invalid { reason, .. }) => reason,
        other => panic!("{kind} {}: {other:?}", path.display()),
    };
    // JUnit XML given as a CycloneDX SBOM, and the SBOM given as JUnit.
    let r = reason(Kind::SbomCyclonedxJson, &valid("junit.xml"));
    assert!(
        r.contains("the file is XML, not JSON") && r.contains("it looks like JUNIT_XML"),
        "{r}"
    );
    let sbom = valid("laravel-7.12.0.bom.1.4.json");
    let r = reason(Kind::JunitXml, &sbom);
    assert!(
        r.contains("the file is JSON, not XML") && r.contains("it looks like SBOM_CYCLONEDX_JSON"),
        "{r}"
    );
    // The same SBOM saved as UTF-16 (as PowerShell's `>` does), and with a UTF-8 mark.
    let text = std::fs::read_to_string(&sbom).unwrap();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let p = d.path().join("bom16.json");
    std::fs::write(&p, utf16).unwrap();
    let r = reason(Kind::SbomCyclonedxJson, &p);
    assert!(
        r.contains("UTF-16 (little-endian, with a byte-order mark)") && r.contains("iconv"),
        "{r}"
    );
    let p = d.path().join("bom-bom.json");
    std::fs::write(&p, [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat()).unwrap();
    let r = reason(Kind::SbomCyclonedxJson, &p);
    assert!(r.contains("UTF-8 with a byte-order mark"), "{r}");
    // A file of the right format but wrong content says nothing more.
    let r = reason(Kind::Sarif, &sbom);
    assert!(!r.contains("the file is"), "{r}");
}

/// Each real CycloneDX vector changed by each case (a hash given to its
/// first component, its metadata's timestamp set): (what, the BOM, whether
/// it must be accepted), once for tally and once for the official schema.
fn cyclonedx_variants() -> Vec<(String, serde_json::Value, bool)> {
    let hash = |alg: &str, content: String| serde_json::json!([{ "alg": alg, "content": content }]);
    // (what, the change, accepted by the schema, accepted by tally)
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let with_hash = |h: serde_json::Value| -> Mutation {
        Box::new(move |b: &mut serde_json::Value| b["components"][0]["hashes"] = h.clone())
    };
    let cases: Vec<(&str, Mutation, bool, bool)> = vec![
        (
            "as published",
            Box::new(|_: &mut serde_json::Value| {}),
            true,
            true,
        ),
        (
            "a SHA-256",
            with_hash(hash("SHA-256", "ab".repeat(32))),
            true,
            true,
        ),
        (
            "a SHA-512",
            with_hash(hash("SHA-512", "CD".repeat(64))),
            true,
            true,
        ),
        ("a BLAKE3", with_hash(hash("BLAKE3", "ef".repeat(32))), true, true),
        (
            "an unknown algorithm",
            with_hash(hash("SHA-999", "ab".repeat(32))),
            false,
            false,
        ),
        (
            "a lowercase algorithm",
            with_hash(hash("sha-256", "ab".repeat(32))),
            false,
            false,
        ),
        (
            "content not hex",
            with_hash(hash("SHA-256", "zz".repeat(32))),
            false,
            false,
        ),
        (
            "content of 63 digits",
            with_hash(hash("SHA-256", "a".repeat(63))),
            false,
            false,
        ),
        (
            "a field the hash object does not have",
            with_hash(serde_json::json!([{ "alg": "MD5", "content": "ab".repeat(16), "note": "x" }])),
            false,
            false,
        ),
        // Stricter than the schema: 40 digits is a SHA-1, not a SHA-256.
        (
            "a SHA-256 of 40 digits",
            with_hash(hash("SHA-256", "ab".repeat(20))),
            true,
            false,
        ),
        (
            "a date as timestamp",
            Box::new(|b: &mut serde_json::Value| b["metadata"]["timestamp"] = "2024-05-01".into()),
            false,
            false,
        ),
        (
            "words as timestamp",
            Box::new(|b: &mut serde_json::Value| b["metadata"]["timestamp"] = "yesterday".into()),
            false,
            false,
        ),
        (
            "an RFC 3339 timestamp",
            Box::new(|b: &mut serde_json::Value| {
                b["metadata"]["timestamp"] = "2024-05-01T12:30:00+02:00".into()
            }),
            true,
            true,
        ),
    ];
    let mut out = Vec::new();
    for (name, _) in VALID.iter().filter(|(_, k)| *k == Kind::SbomCyclonedxJson) {
        let text = std::fs::read_to_string(valid(name)).unwrap();
        for (what, mutate, schema_ok, tally_ok) in &cases {
            let mut bom: serde_json::Value = serde_json::from_str(&text).unwrap();
            if bom["metadata"].is_null() {
                bom["metadata"] = serde_json::json!({});
            }
            if bom["components"].as_array().is_none_or(Vec::is_empty) {
                bom["components"] = serde_json::json!([{ "type": "library", "name": "added-by-the-test" }]);
            }
            mutate(&mut bom);
            out.push((format!("{name}: {what}"), bom.clone(), *tally_ok));
            out.push((format!("{name}: {what} (schema)"), bom, *schema_ok));
        }
    }
    out
}

#[test]
fn cyclonedx_hashes_and_timestamps_are_checked_as_the_official_schema_does() {
    let dir = tempfile::tempdir().unwrap();
    let variants = cyclonedx_variants();
    // tally's verdicts.
    for (what, bom, ok) in variants.iter().filter(|(w, _, _)| !w.ends_with("(schema)")) {
        let f = dir.path().join("bom.json");
        std::fs::write(&f, bom.to_string()).unwrap();
        let r = validate_file(Kind::SbomCyclonedxJson, &f, &Options::default());
        assert_eq!(r.is_ok(), *ok, "{what}: {r:?}");
    }
    // The official schema's, by an independent validator.
    if !crate::common::python_has("cyclonedx.validation.json") {
        return;
    }
    // The Laravel BOM takes the Python validator 7.5 s per valid variant
    // (its 1.4 schema over every component): the two others are compared.
    let schema_cases: Vec<_> = variants
        .iter()
        .filter(|(w, _, _)| w.ends_with("(schema)") && !w.starts_with("laravel"))
        .collect();
    let input: String = schema_cases.iter().map(|(_, b, _)| format!("{b}\n")).collect();
    let (_, out) = crate::common::python_fixture("cyclonedx_check.py", &[], &input);
    let verdicts: Vec<&str> = out.lines().collect();
    assert_eq!(verdicts.len(), schema_cases.len());
    for ((what, _, ok), verdict) in schema_cases.iter().zip(&verdicts) {
        assert_eq!(
            *verdict == "ok",
            *ok,
            "{what}: the official schema says {verdict}"
        );
    }
}

#[test]
fn sarif_results_are_checked_as_the_schema_requires() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["report.sarif", "checkmarx.sarif"] {
        let text = std::fs::read_to_string(valid(name)).unwrap();
        let base: serde_json::Value = serde_json::from_str(&text).unwrap();
        let results = base["runs"][0]["results"].as_array().map_or(0, Vec::len);
        assert!(results > 0, "{name} has results to mutate");
        for (what, field, value, says) in [
            (
                "a level SARIF lacks",
                "level",
                serde_json::json!("fatal"),
                "level is \"fatal\"",
            ),
            (
                "a message of nothing",
                "message",
                serde_json::json!({}),
                "neither text nor id",
            ),
            (
                "a kind SARIF lacks",
                "kind",
                serde_json::json!("broken"),
                "kind is \"broken\"",
            ),
            (
                "a rule index below -1",
                "ruleIndex",
                serde_json::json!(-2),
                "ruleIndex is below -1",
            ),
            (
                "a rank above 100",
                "rank",
                serde_json::json!(101),
                "rank is outside",
            ),
        ] {
            let mut s = base.clone();
            s["runs"][0]["results"][0][field] = value;
            let f = dir.path().join("r.sarif");
            std::fs::write(&f, s.to_string()).unwrap();
            let e = validate_file(Kind::Sarif, &f, &Options::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{name}, {what}: {e}");
        }
        let mut s = base.clone();
        s["runs"][0]["results"][0]["level"] = "note".into();
        let f = dir.path().join("r.sarif");
        std::fs::write(&f, s.to_string()).unwrap();
        validate_file(Kind::Sarif, &f, &Options::default()).unwrap();
    }
}
