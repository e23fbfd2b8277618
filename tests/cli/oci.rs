//! Artifacts in a real OCI registry (Debian's `docker-registry`, CNCF
//! distribution 2.8.2, which has no referrers API): every kind round-trips,
//! a stock client (oras) reads what tally wrote and finds attestations
//! through the OCI 1.1 referrers tag schema, a registry that dies mid-upload
//! is a clear, retryable error, bad uploads never reach the registry, and
//! the artifacts benchmark runs against it.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest as _;

use crate::common::{code, contracts_repo, registry, registry_with, stderr, stdout, Registry};
use crate::controlplane::{craft_release_with, ok, push, valid, workspace, ControlPlane};

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn oci_server(reg: &Registry, contracts: &Path, extra: &[&str]) -> ControlPlane {
    let repo = format!("{}/tally/artifacts", reg.addr);
    let mut args = vec!["--oci-repository", repo.as_str()];
    args.extend_from_slice(extra);
    ControlPlane::start(contracts, &args)
}

fn python_oras_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import oras.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with oras is required under CI=true (.ci/run installs it)");
        }
        println!("skipping the oras checks: python3 -m pip install oras");
    }
    ok
}

/// Runs a Python snippet with `oras` (argv[1..] = `args`), returning its stdout as JSON.
fn oras(script: &str, args: &[&str]) -> Value {
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oras: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// PUT of raw bytes with the admin token.
fn put(cp: &ControlPlane, digest: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
    let r = cp
        .http()
        .put(format!("{}/api/v1/artifacts/{digest}?{query}", cp.url))
        .bearer_auth(&cp.admin)
        .body(body)
        .send()
        .unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_slice(&r.bytes().unwrap()).unwrap_or(Value::Null),
    )
}

#[test]
fn every_material_kind_round_trips_through_the_oci_backend() {
    let Some(reg) = registry() else { return };
    let d = tempfile::tempdir().unwrap();
    let contracts = contracts_repo(d.path());
    let cfg = d.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[artifacts]\nbackend = \"oci\"\nrepository = \"{}/tally/artifacts\"\npublic_workflows = [\"payments-quality\"]\n",
            reg.addr
        ),
    )
    .unwrap();
    let cp = ControlPlane::start(&contracts, &["--config", cfg.to_str().unwrap()]);
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    // Every file material kind (SPEC.md §11.3), from the one list the CLI validates against.
    let file_kinds = tally::attest::material::Kind::ALL.iter().filter(|k| k.is_file());
    for (i, kind) in file_kinds.map(|k| k.as_str()).enumerate() {
        let bytes = format!("{kind} #{i}\n").repeat(100 + i * 37).into_bytes();
        let hex = sha256(&bytes);
        let name = format!("{}-{i}.bin", kind.to_ascii_lowercase());
        let (s, v) = put(
            &cp,
            &format!("sha256:{hex}"),
            &format!("workflow=payments-release&kind={kind}&name={name}"),
            bytes.clone(),
        );
        assert_eq!(s, 201, "{kind}: {v}");
        let reference = v["reference"].as_str().unwrap();
        let (repo_at, manifest_digest) = reference.split_once('@').unwrap();
        assert_eq!(repo_at, format!("{}/tally/artifacts", reg.addr));
        // The registry holds an OCI artifact of the kind's type with the file as its layer.
        let (st, m) = reg.get(
            &format!("tally/artifacts/manifests/{manifest_digest}"),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(st, 200);
        assert_eq!(format!("sha256:{}", sha256(&m)), manifest_digest);
        let m: Value = serde_json::from_slice(&m).unwrap();
        let expect_type = format!(
            "application/vnd.tally.{}.v1",
            kind.to_ascii_lowercase().replace('_', "-")
        );
        assert_eq!(m["artifactType"], expect_type.as_str());
        assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        assert_eq!(m["layers"][0]["digest"], format!("sha256:{hex}").as_str());
        assert_eq!(m["layers"][0]["size"], bytes.len());
        assert_eq!(
            m["layers"][0]["annotations"]["org.opencontainers.image.title"],
            name.as_str()
        );
        assert_eq!(m["annotations"]["dev.tally.material.kind"], *kind);
        assert_eq!(m["annotations"]["dev.tally.workflow"], "payments-release");
        // Back through the control plane, verified by the CLI.
        let out = ws.join(format!("back-{i}"));
        ok(&cp.tally(
            &ws,
            &[("TALLY_TOKEN", &cp.admin)],
            &[
                "artifact",
                "download",
                &format!("sha256:{hex}"),
                "-o",
                out.to_str().unwrap(),
            ],
        ));
        assert_eq!(std::fs::read(&out).unwrap(), bytes, "{kind}");
    }
    // Uploading again is a no-op (content addressing).
    let bytes = b"ARTIFACT #0\n".repeat(100);
    let (s, v) = put(
        &cp,
        &format!("sha256:{}", sha256(&bytes)),
        "workflow=payments-release&kind=ARTIFACT&name=again",
        bytes.clone(),
    );
    assert_eq!((s, v["stored"].as_str()), (200, Some("already")), "{v}");
    // A kind that is not a file, an unknown kind, a run of another workflow: refused.
    for q in [
        "workflow=payments-release&kind=CONTAINER_IMAGE",
        "workflow=payments-release&kind=NOPE",
        "workflow=payments-release&run=no-such-run",
    ] {
        let (s, v) = put(&cp, &format!("sha256:{}", sha256(&bytes)), q, bytes.clone());
        assert!(s == 400 || s == 404, "{q}: {s} {v}");
    }
    // The CLI with real files of each kind the shared vectors have: validated, stored, read back.
    for (file, kind) in [
        ("sbom.cyclonedx-1.5-multiple-tools.json", "SBOM_CYCLONEDX_JSON"),
        ("sbom-spdx-container.json", "SBOM_SPDX_JSON"),
        ("junit.xml", "JUNIT_XML"),
        ("report.sarif", "SARIF"),
        ("openvex_v0.2.0.json", "OPENVEX"),
        ("csaf_vex_v0.2.0.json", "CSAF_VEX"),
        ("csaf_security_advisory.json", "CSAF_SECURITY_ADVISORY"),
        ("csaf_informational_advisory.json", "CSAF_INFORMATIONAL_ADVISORY"),
    ] {
        let v = ok(&cp.tally(
            &ws,
            &[("TALLY_TOKEN", &cp.admin)],
            &[
                "artifact",
                "upload",
                &valid(file),
                "--workflow",
                "payments-quality",
                "--kind",
                kind,
                "--output",
                "json",
            ],
        ));
        let digest = v["digest"].as_str().unwrap();
        // payments-quality is public: anyone may read its artifacts.
        let r = cp
            .http()
            .get(format!("{}/api/v1/artifacts/{digest}", cp.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(r.bytes().unwrap().to_vec(), std::fs::read(valid(file)).unwrap());
    }
    // payments-release is not public.
    let (s, _) = cp.get(&format!("/api/v1/artifacts/sha256:{}", sha256(&bytes)), None);
    assert_eq!(s, 401);
    // A file that is not of the kind it claims never leaves the machine.
    let o = cp.tally(
        &ws,
        &[("TALLY_TOKEN", &cp.admin)],
        &[
            "artifact",
            "upload",
            &valid("junit.xml"),
            "--workflow",
            "w",
            "--kind",
            "SARIF",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

#[test]
fn oras_reads_what_tally_wrote_and_finds_the_attestation_of_an_image() {
    let Some(reg) = registry() else { return };
    let d = tempfile::tempdir().unwrap();
    let contracts = contracts_repo(d.path());
    let cp = oci_server(&reg, &contracts, &[]);
    // The release's image, pushed to the same registry by its build.
    let image_digest = reg.push_image("acme/payments", "1.4.2", b"payments layer");
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    let env = op.env();
    let image = format!("{}/acme/payments:1.4.2", reg.addr);
    let (_, stored) = craft_release_with(&cp, &ws, &env, &image);
    assert_eq!(stored[0]["digest"], image_digest.as_str(), "{}", stored[0]);
    let pushed = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    let index = pushed["log_index"].as_u64().unwrap();

    // The attestation appears as a referrer of the image, through the tag schema.
    let tag = image_digest.replace(':', "-");
    let deadline = Instant::now() + Duration::from_secs(60);
    let index_doc = loop {
        let (s, b) = reg.get(
            &format!("acme/payments/manifests/{tag}"),
            "application/vnd.oci.image.index.v1+json",
        );
        if s == 200 {
            break serde_json::from_slice::<Value>(&b).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no referrers tag {tag} after 60 s; server log:\n{}",
            cp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let referrers = index_doc["manifests"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{index_doc}");
    assert_eq!(referrers[0]["artifactType"], "application/vnd.in-toto+json");
    assert_eq!(
        referrers[0]["annotations"]["dev.tally.log.index"],
        index.to_string().as_str()
    );
    let referrer = referrers[0]["digest"].as_str().unwrap().to_owned();
    // The referrer's subject is the image, its layer the envelope that was logged.
    let (_, m) = reg.get(
        &format!("acme/payments/manifests/{referrer}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let m: Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(m["subject"]["digest"], image_digest.as_str());
    let env_digest = m["layers"][0]["digest"].as_str().unwrap().to_owned();
    let (s, entry) = cp.get(&format!("/api/v1/entries/{index}"), None);
    assert_eq!(s, 200, "{entry}");
    assert!(entry.to_string().contains(&env_digest), "{entry} vs {env_digest}");

    // The run says where its attestation went.
    let run_id = pushed["run_id"].as_str().map(str::to_owned).unwrap_or_default();
    // (recorded right after the registry writes: wait for it)
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let (s, run) = cp.get(&format!("/api/v1/runs/{run_id}"), Some(&cp.admin));
        assert_eq!(s, 200, "{run} ({pushed})");
        if run["oci_attestations"].as_array().is_some_and(|a| !a.is_empty()) || Instant::now() > deadline {
            break run;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        run["oci_attestations"],
        serde_json::json!([format!("{}/acme/payments@{referrer}", reg.addr)]),
        "{run}"
    );

    // The metrics show the copy and the uploads (two files: the SBOM and the tests).
    let m = cp.metrics();
    // Entries copied: the operator's key entry (nothing to copy) and the attestation.
    assert!(m.contains("tally_attestations_in_artifact_store 2\n"), "{m}");
    assert!(
        m.contains("tally_artifact_uploads_total{outcome=\"new\"} 3\n"),
        "{m}"
    );

    if !python_oras_ready() {
        return;
    }
    // oras: pull the SBOM by its manifest digest and see its artifactType.
    let sbom_ref = stored[1]["stored"]
        .as_str()
        .unwrap()
        .strip_prefix("oci://")
        .unwrap()
        .to_owned();
    let out = d.path().join("pulled");
    let v = oras(
        r#"
import json, sys, oras.client
c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
m = c.get_manifest(sys.argv[2])
files = c.pull(target=sys.argv[2], outdir=sys.argv[3])
print(json.dumps({"artifactType": m.get("artifactType"), "files": files}))
"#,
        &[&reg.addr, &sbom_ref, out.to_str().unwrap()],
    );
    assert_eq!(v["artifactType"], "application/vnd.tally.sbom-spdx-json.v1");
    let f = v["files"][0].as_str().unwrap();
    assert_eq!(
        std::fs::read(f).unwrap(),
        std::fs::read(valid("sbom-spdx-container.json")).unwrap()
    );
    // oras: from the image digest alone, the fallback tag leads to the attestation.
    let v = oras(
        r#"
import json, sys, oras.client
c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
repo, digest = sys.argv[2], sys.argv[3]
idx = c.get_manifest(repo + ":" + digest.replace(":", "-"), allowed_media_type=["application/vnd.oci.image.index.v1+json"])
att = [d for d in idx["manifests"] if d.get("artifactType") == "application/vnd.in-toto+json"]
ref = repo + "@" + att[0]["digest"]
m = c.get_manifest(ref)
files = c.pull(target=ref, outdir=sys.argv[4])
print(json.dumps({"subject": m["subject"]["digest"], "files": files}))
"#,
        &[
            &reg.addr,
            &format!("{}/acme/payments", reg.addr),
            &image_digest,
            d.path().join("att").to_str().unwrap(),
        ],
    );
    assert_eq!(v["subject"], image_digest.as_str());
    let files: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    let env_file = files.iter().find(|f| f.ends_with(".dsse.json")).unwrap();
    let bundle_file = files.iter().find(|f| f.ends_with(".bundle.json")).unwrap();
    let envelope: Value = serde_json::from_slice(&std::fs::read(env_file).unwrap()).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(
        format!("sha256:{}", sha256(&std::fs::read(env_file).unwrap())),
        env_digest
    );
    // What oras pulled verifies offline: inclusion under the signed
    // checkpoint, the envelope's digest, its signature, the entry's fields.
    let o = cp.verify_bundle(&ws, bundle_file);
    let verified = ok(&o);
    assert_eq!(verified["index"], index);
    assert_eq!(verified["signature_checked"], true);
}

/// Sends a PUT by hand: the headers and `first` bytes, then calls `between`,
/// then the rest (errors ignored: the server may have answered already);
/// returns the answer's status line and body.
fn raw_put(
    addr: &str,
    path: &str,
    token: &str,
    len: usize,
    first: &[u8],
    rest: &[u8],
    between: impl FnOnce(),
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    s.write_all(first).unwrap();
    s.flush().unwrap();
    between();
    let mut w = s.try_clone().unwrap();
    let rest = rest.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&rest);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_registry_that_dies_mid_upload_is_a_clear_error_and_the_upload_can_be_retried() {
    let Some(mut reg) = registry() else { return };
    let d = tempfile::tempdir().unwrap();
    let contracts = contracts_repo(d.path());
    let cp = oci_server(&reg, &contracts, &[]);
    let addr = cp.url.strip_prefix("http://").unwrap().to_owned();
    let mut big = vec![0u8; 48 << 20];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i % 251) as u8 ^ (i >> 20) as u8;
    }
    let hex = sha256(&big);
    let path = format!("/api/v1/artifacts/sha256:{hex}?workflow=payments-release");
    let (first, rest) = big.split_at(8 << 20);
    let (status, body) = raw_put(&addr, &path, &cp.admin, big.len(), first, rest, || {
        std::thread::sleep(Duration::from_millis(300));
        reg.stop();
    });
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::String(body.clone()));
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("artifact store is unavailable") && message.contains(&reg.addr),
        "{v}"
    );
    // While it is down, asking whether an artifact is stored says so (503), not "absent".
    let head = |cp: &ControlPlane| {
        cp.http()
            .head(format!("{}/api/v1/artifacts/sha256:{hex}", cp.url))
            .bearer_auth(&cp.admin)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(head(&cp), 503);
    // The CLI, while the registry is down: retried, then a clear error (exit 3).
    let file = d.path().join("big.bin");
    std::fs::write(&file, &big).unwrap();
    let upload = || {
        cp.tally(
            d.path(),
            &[("TALLY_TOKEN", &cp.admin)],
            &[
                "artifact",
                "upload",
                file.to_str().unwrap(),
                "--workflow",
                "payments-release",
                "--output",
                "json",
            ],
        )
    };
    let o = upload();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("retrying") && e.contains("artifact store is unavailable"),
        "{e}"
    );
    // Once the registry is back, nothing of the broken upload is stored; the
    // same command succeeds and the bytes come back.
    reg.restart();
    assert_eq!(head(&cp), 404);
    let v = ok(&upload());
    assert_eq!(v["digest"], format!("sha256:{hex}").as_str());
    let back = d.path().join("back.bin");
    ok(&cp.tally(
        d.path(),
        &[("TALLY_TOKEN", &cp.admin)],
        &[
            "artifact",
            "download",
            &format!("sha256:{hex}"),
            "-o",
            back.to_str().unwrap(),
        ],
    ));
    assert!(std::fs::read(&back).unwrap() == big);
}

#[test]
fn truncated_corrupted_and_unsized_uploads_never_reach_the_registry() {
    let Some(reg) = registry() else { return };
    let d = tempfile::tempdir().unwrap();
    let contracts = contracts_repo(d.path());
    let cp = oci_server(&reg, &contracts, &[]);
    let addr = cp.url.strip_prefix("http://").unwrap().to_owned();
    let data = b"release notes\n".repeat(50_000);
    let hex = sha256(&data);
    let path = format!("/api/v1/artifacts/sha256:{hex}?workflow=payments-release");
    let absent = |what: &str| {
        let (s, _) = reg.get(&format!("tally/artifacts/blobs/sha256:{hex}"), "*/*");
        assert_eq!(s, 404, "{what}: the registry has the blob");
        let (s, _) = cp.get(&format!("/api/v1/artifacts/sha256:{hex}"), Some(&cp.admin));
        assert_eq!(s, 404, "{what}");
    };
    // Truncated: the connection ends before Content-Length bytes.
    let half = &data[..data.len() / 2];
    let (status, body) = raw_put(&addr, &path, &cp.admin, data.len(), half, &[], || {});
    assert!(status == 400 || status == 0, "truncated: {status} {body}");
    absent("truncated");
    // Corrupted: the right length, one byte changed.
    let mut bad = data.clone();
    bad[1234] ^= 0x20;
    let r = cp
        .http()
        .put(format!("{}{path}", cp.url))
        .bearer_auth(&cp.admin)
        .body(bad)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let v: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["error"], "digest_mismatch", "{v}");
    absent("corrupted");
    // No length at all (chunked): 411.
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        sock,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        cp.admin
    )
    .unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    assert!(answer.contains("length_required"), "{answer}");
    absent("unsized");
    // The real bytes then go through.
    let (s, v) = put(
        &cp,
        &format!("sha256:{hex}"),
        "workflow=payments-release",
        data.clone(),
    );
    assert_eq!(s, 201, "{v}");
    let (s, b) = reg.get(&format!("tally/artifacts/blobs/sha256:{hex}"), "*/*");
    assert_eq!((s, b == data), (200, true));
}

#[test]
fn the_server_refuses_to_start_without_a_writable_registry() {
    let d = tempfile::tempdir().unwrap();
    let contracts = contracts_repo(d.path());
    let start = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(d.path().join("data"))
            .arg("--contracts")
            .arg(&contracts)
            .args(extra)
            .env_remove("TALLY_OCI_USERNAME")
            .env_remove("TALLY_OCI_PASSWORD");
        c.envs(env.iter().copied());
        let o = c.output().unwrap();
        (code(&o), stderr(&o), stdout(&o))
    };
    // Nothing listening.
    let port = crate::common::free_port();
    let (c, e, out) = start(&["--oci-repository", &format!("127.0.0.1:{port}/tally/a")], &[]);
    assert_ne!(c, 0);
    assert!(out.is_empty(), "{out}");
    assert!(
        e.contains("cannot write to the artifact repository") && e.contains(&format!("127.0.0.1:{port}")),
        "{e}"
    );
    // Not host/repository.
    let (c, e, _) = start(&["--oci-repository", "tally"], &[]);
    assert_eq!(c, 2, "{e}");
    assert!(e.contains("artifacts.repository"), "{e}");
    // A user without a password.
    let (c, e, _) = start(
        &["--oci-repository", "127.0.0.1:1/x"],
        &[("TALLY_OCI_USERNAME", "ci")],
    );
    assert_ne!(c, 0);
    assert!(e.contains("both a user"), "{e}");

    // A registry that needs a login: wrong password refused at start, the right one works.
    let Some(reg) = login_registry(d.path(), "tally", "s3cret-pw") else {
        return;
    };
    let repo = format!("{}/tally/artifacts", reg.addr);
    let (c, e, _) = start(
        &["--oci-repository", &repo],
        &[("TALLY_OCI_USERNAME", "tally"), ("TALLY_OCI_PASSWORD", "wrong")],
    );
    assert_ne!(c, 0);
    assert!(e.contains("cannot write to the artifact repository"), "{e}");
    let pw = d.path().join("pw");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let cfg = d.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[artifacts]\nbackend = \"oci\"\nrepository = \"{repo}\"\nusername = \"tally\"\npassword_file = \"{}\"\n",
            pw.display()
        ),
    )
    .unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let contracts2 = contracts_repo(d2.path());
    let cp = ControlPlane::start(&contracts2, &["--config", cfg.to_str().unwrap()]);
    let data = b"behind a login".to_vec();
    let (s, v) = put(
        &cp,
        &format!("sha256:{}", sha256(&data)),
        "workflow=payments-release",
        data.clone(),
    );
    assert_eq!(s, 201, "{v}");
    let (s, b) = cp.get(
        &format!("/api/v1/artifacts/sha256:{}", sha256(&data)),
        Some(&cp.admin),
    );
    assert_eq!((s, b), (200, Value::String("behind a login".into())));
}

/// A registry with htpasswd (bcrypt) basic auth, or `None` without python's bcrypt outside CI.
fn login_registry(dir: &Path, user: &str, password: &str) -> Option<Registry> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=5)).decode())",
            password,
        ])
        .output()
        .unwrap();
    if !o.status.success() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "python3 bcrypt is required under CI=true"
        );
        println!("skipping the login registry: python3 -m pip install bcrypt");
        return None;
    }
    let htpasswd = dir.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{user}:{}", String::from_utf8_lossy(&o.stdout).trim()),
    )
    .unwrap();
    registry_with(&format!(
        "auth:\n  htpasswd:\n    realm: tally-test\n    path: {}\n",
        htpasswd.display()
    ))
}

#[test]
fn knowing_a_digest_never_grants_reading_it() {
    // Filesystem store; workflow A stores a file.
    let d = tempfile::tempdir().unwrap();
    let contracts = contracts_repo(d.path());
    let mut cp = ControlPlane::start(&contracts, &[]);
    let secret = b"payments signing material\n".repeat(1000);
    let digest = format!("sha256:{}", sha256(&secret));
    let (s, v) = put(&cp, &digest, "workflow=payments-release", secret.clone());
    assert_eq!(s, 201, "{v}");
    // A token of another workflow that only knows the digest gets nothing,
    // even when the server lost its record of who stored what.
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let other = crate::controlplane::operator(&cp, &ws, "payments-quality").token;
    let try_claim = |cp: &ControlPlane, token: &str| {
        let r = cp
            .http()
            .put(format!(
                "{}/api/v1/artifacts/{digest}?workflow=payments-quality",
                cp.url
            ))
            .bearer_auth(token)
            .body(vec![0u8; secret.len()])
            .send()
            .unwrap();
        let s = r.status().as_u16();
        let read = cp
            .http()
            .get(format!("{}/api/v1/artifacts/{digest}", cp.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16();
        (s, read)
    };
    assert_eq!(try_claim(&cp, &other), (422, 404));
    // The exact bytes from the other workflow: answered as any new upload
    // (201 `new`), so an upload is no oracle of what another workflow stored.
    let r = cp
        .http()
        .put(format!(
            "{}/api/v1/artifacts/{digest}?workflow=payments-quality",
            cp.url
        ))
        .bearer_auth(&other)
        .body(secret.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["stored"], "new", "{v}");
    assert!(cp.stop().success());
    {
        let db = rusqlite::Connection::open(cp.dir.path().join("data/meta.db")).unwrap();
        db.execute_batch("DELETE FROM artifacts;").unwrap();
    }
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp2 = ControlPlane::start_in(dir, &contracts, &[]);
    assert_eq!(try_claim(&cp2, &other), (422, 404));
}

#[test]
fn the_artifacts_benchmark_measures_the_server_and_the_registry_alone() {
    let Some(reg) = registry() else { return };
    let d = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally-bench"))
        .args(["artifacts", "--registry", &reg.addr])
        .args(["--size-mib", "1", "--small", "24", "--clients", "4", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["large"]["bytes"], 1 << 20, "{v}");
    for phase in ["small", "small_direct"] {
        assert_eq!(v[phase]["count"], 24, "{v}");
        assert!(v[phase]["per_s"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    }
    // The direct phase wrote to a repository of its own in the same registry.
    let repo = v["small_direct"]["repository"].as_str().unwrap();
    let path = repo.split_once('/').unwrap().1;
    let empty = reqwest::blocking::Client::new()
        .head(format!(
            "http://{}/v2/{path}/blobs/sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            reg.addr
        ))
        .send()
        .unwrap();
    assert_eq!(empty.status().as_u16(), 200, "the empty config is in {repo}");
}
