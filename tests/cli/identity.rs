//! The control plane's CA checked by outside implementations: OpenSSL
//! verifies an issued chain (code signing, the CA's constraints) and
//! prints Fulcio's extensions; Python's `cryptography` reads the extension
//! values as the DER UTF8Strings Fulcio defines.

use std::process::Command;

use tally::attest::signing::{Algorithm, SigningKey};
use tally::identity::ca::{Ca, Request};
use tally::identity::fulcio::{dotted, oid, Identity};

use crate::common::*;

fn identity() -> Identity {
    Identity {
        san: "https://tally.example/workflows/product-security/psirt-advisories".into(),
        issuer: "https://token.actions.githubusercontent.com".into(),
        build_signer_uri: "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main"
            .into(),
        run_invocation_uri: "https://github.com/acme/widget/actions/runs/42/attempts/1".into(),
        source_repository_uri: Some("https://github.com/acme/widget".into()),
        source_repository_digest: Some("0123456789abcdef0123456789abcdef01234567".into()),
        source_repository_ref: Some("refs/heads/main".into()),
        runner_environment: Some("github-hosted".into()),
        ..Identity::default()
    }
}

/// A certificate for a fresh key of `alg`, issued at `now`.
fn issue(ca: &Ca, alg: Algorithm, now: i64) -> tally::identity::ca::Issued {
    let key = SigningKey::generate(alg).unwrap();
    let proof = key.sign(b"run-1").unwrap();
    let request = Request {
        public_key_pem: key.public_pem(),
        challenge: b"run-1",
        proof: &proof,
        identity: &identity(),
    };
    ca.issue(&request, now).unwrap()
}

#[test]
fn openssl_and_python_cryptography_read_an_issued_certificate() {
    let d = tmp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ca = Ca::open_or_create(d.path(), "tally.example/log", now - 60).unwrap();
    for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
        let issued = issue(&ca, alg, now - 1);
        let leaf = write(d.path(), "leaf.pem", &issued.leaf_pem);
        let root = d.path().join("ca/chain.pem");
        let o = Command::new("openssl")
            .args(["verify", "-x509_strict", "-CAfile"])
            .arg(&root)
            .arg(&leaf)
            .output()
            .unwrap();
        assert!(o.status.success(), "{alg:?}: {}{}", stdout(&o), stderr(&o));
        let o = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&leaf)
            .output()
            .unwrap();
        let text = stdout(&o);
        for want in [
            "Code Signing",
            "URI:https://tally.example/workflows/product-security/psirt-advisories",
            &dotted(oid::ISSUER),
            &dotted(oid::RUN_INVOCATION_URI),
        ] {
            assert!(text.contains(want), "{alg:?}: {want} missing from\n{text}");
        }
        // Another root does not verify it.
        let other = tmp();
        Ca::open_or_create(other.path(), "other", now - 60).unwrap();
        let o = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(other.path().join("ca/chain.pem"))
            .arg(&leaf)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{alg:?}: verified under another CA");
    }
    if !python_has("cryptography") {
        return;
    }
    let issued = issue(&ca, Algorithm::EcdsaP256, now - 1);
    let leaf = write(d.path(), "leaf.pem", &issued.leaf_pem);
    let script = r#"
import sys
from cryptography import x509
cert = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
def utf8(der):
    assert der[0] == 0x0c, der[:4]
    n, i = der[1], 2
    if n & 0x80:
        k = n & 0x7f
        n, i = int.from_bytes(der[2:2 + k], 'big'), 2 + k
    assert len(der) == i + n
    return der[i:].decode()
out = {}
for ext in cert.extensions:
    dotted = ext.oid.dotted_string
    if dotted.startswith('1.3.6.1.4.1.57264.1.'):
        raw = ext.value.value
        out[dotted] = raw.decode() if dotted == '1.3.6.1.4.1.57264.1.1' else utf8(raw)
san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
out['san'] = san.value.get_values_for_type(x509.UniformResourceIdentifier)[0]
out['san_critical'] = san.critical
out['code_signing'] = x509.ExtendedKeyUsageOID.CODE_SIGNING in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
import json
print(json.dumps(out, sort_keys=True))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = identity();
    for (n, want) in [
        (1, id.issuer.as_str()),
        (8, id.issuer.as_str()),
        (9, id.build_signer_uri.as_str()),
        (11, "github-hosted"),
        (12, "https://github.com/acme/widget"),
        (13, "0123456789abcdef0123456789abcdef01234567"),
        (14, "refs/heads/main"),
        (21, id.run_invocation_uri.as_str()),
    ] {
        assert_eq!(got[format!("1.3.6.1.4.1.57264.1.{n}")], want, "{got}");
    }
    assert_eq!(got["san"], id.san.as_str());
    // An empty subject makes the SAN critical (RFC 5280 §4.2.1.6), as Fulcio's are.
    assert_eq!(got["san_critical"], true, "{got}");
    assert_eq!(got["code_signing"], true);
}

/// The certificate chain of the first keyless signature in a bundle's envelope.
fn bundle_chain(bundle: &std::path::Path) -> (serde_json::Value, String) {
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let env = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        b["envelope"].as_str().unwrap(),
    )
    .unwrap();
    let env: serde_json::Value = serde_json::from_slice(&env).unwrap();
    let chain = env["signatures"][0]["certificate"].as_str().unwrap().to_owned();
    (env, chain)
}

/// A workflow token for `payments-release` (and no key registered).
fn workflow_token(cp: &crate::controlplane::ControlPlane, ws: &std::path::Path) -> String {
    let admin = [("TALLY_TOKEN", cp.admin.as_str())];
    let args = [
        "token",
        "create",
        "--workflow",
        "payments-release",
        "--output",
        "json",
    ];
    crate::controlplane::ok(&cp.tally(ws, &admin, &args))["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An auditor's directory (`<dir>/auditor`) holding the control plane's
/// CA as it serves it (`ca.pem`), fetched once.
fn auditor_with_ca(
    cp: &crate::controlplane::ControlPlane,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let pem = cp
        .http()
        .get(format!("{}/api/v1/ca", cp.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let auditor = dir.join("auditor");
    std::fs::create_dir_all(&auditor).unwrap();
    let ca = write(&auditor, "ca.pem", &pem);
    (auditor, ca)
}

/// `tally attestation push` with no key, as JSON.
fn keyless_push(
    cp: &crate::controlplane::ControlPlane,
    ws: &std::path::Path,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let args = [
        "attestation",
        "push",
        "--annotation",
        "change-ticket=CHG-1042",
        "--output",
        "json",
    ];
    crate::controlplane::ok(&cp.tally(ws, env, &args))
}

/// Keyless signing end to end, through the real server and CLI: a workflow
/// with no registered key pushes with an ephemeral key the control plane's
/// CA certified and logged; an auditor verifies the bundle offline against
/// the CA with cosign-style identity constraints; OpenSSL verifies the
/// chain; a certificate of another run, or one the log never saw, is
/// refused at intake; the log's certificate entries survive a restart.
#[test]
fn a_keyless_push_is_certified_logged_and_verified_offline() {
    use crate::controlplane::{craft_release_with, gh_env, ControlPlane};
    let d = tmp();
    let repo = contracts_repo(d.path());
    let mut cp = ControlPlane::start(&repo, &[]);
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let token = workflow_token(&cp, &ws);
    let mut env = gh_env();
    env.push(("TALLY_TOKEN", &token));
    let image = format!("ghcr.io/acme/payments@sha256:{}", "5e".repeat(32));
    craft_release_with(&cp, &ws, &env, &image);
    // No --key, no key registered for the workflow.
    let pushed = keyless_push(&cp, &ws, &env);
    let (index, cert_index) = (
        pushed["log_index"].as_u64().unwrap(),
        pushed["certificate_log_index"].as_u64().unwrap(),
    );
    assert!(cert_index < index, "{pushed}");
    assert!(
        pushed["verify_command"].as_str().unwrap().contains("--ca"),
        "{pushed}"
    );
    let bundle = ws.join("attestation.bundle.json");
    let (envelope, chain) = bundle_chain(&bundle);
    let entry: String = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&bundle).unwrap())
        .unwrap()["entry"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = entry
        .lines()
        .find_map(|l| l.strip_prefix("project "))
        .unwrap()
        .to_owned();

    // The CA, as an auditor fetches it once.
    let (auditor, ca) = auditor_with_ca(&cp, d.path());
    std::fs::copy(&bundle, auditor.join("b.json")).unwrap();
    let san = format!("https://tally.localhost/log/projects/{project}/workflows/payments-release");
    let verify_with = |bundle: &str, ca: &str, extra: &[&str]| {
        let mut args = vec!["verify", "--bundle", bundle, "--log-key", &cp.vkey, "--ca", ca];
        args.extend_from_slice(extra);
        cp.tally(&auditor, &[], &args)
    };
    let verify = |extra: &[&str]| verify_with("b.json", "ca.pem", extra);
    let o = verify(&[
        "--certificate-identity",
        &san,
        "--certificate-oidc-issuer",
        "https://tally.localhost/log",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("keyless signature by {san}")),
        "{}",
        stdout(&o)
    );
    let o = verify(&["--certificate-identity-regexp", "/workflows/payments-release$"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for (flags, says) in [
        (
            &[
                "--certificate-identity",
                "https://tally.localhost/log/projects/x/workflows/other",
            ][..],
            "not https://",
        ),
        (
            &[
                "--certificate-oidc-issuer",
                "https://token.actions.githubusercontent.com",
            ][..],
            "was issued by",
        ),
        (
            &["--certificate-identity-regexp", "^https://github.com/"][..],
            "does not match",
        ),
    ] {
        let o = verify(flags);
        assert_eq!(code(&o), 1, "{flags:?}: {}", stdout(&o));
        assert!(stderr(&o).contains(says), "{flags:?}: {}", stderr(&o));
    }
    // Another CA is not trusted; a bundle without the certificate's log entry is not either.
    let other = tempfile::tempdir().unwrap();
    let other_ca = Ca::open_or_create(other.path(), "elsewhere", 1_796_000_000).unwrap();
    write(&auditor, "other.pem", other_ca.chain_pem());
    let o = verify_with("b.json", "other.pem", &[]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    b.as_object_mut().unwrap().remove("certificate");
    write(&auditor, "nocert.json", serde_json::to_vec(&b).unwrap());
    let o = verify_with("nocert.json", "ca.pem", &[]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stderr(&o).contains("no logged certificate"), "{}", stderr(&o));

    // OpenSSL: the chain the envelope carries verifies under the CA, for code signing.
    let leaf = write(&auditor, "leaf.pem", &chain);
    let o = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(&ca)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // The log's certificate entries survive a restart; then intake refuses
    // a certificate of another run, and one the log never saw.
    assert!(cp.stop().success());
    // The stored log holds the certificate's DER beside its entry.
    let data = cp.dir.path().join("data/ledger");
    let o = tally(&["ledger", "fsck", data.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let fsck: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(fsck["entries_with_bodies"], 2, "{fsck}");
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp = ControlPlane::start_in(dir, &repo, &[]);
    craft_release_with(&cp, &ws, &env, &image);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.join(".tally/attestation.json")).unwrap()).unwrap();
    let run = state["run_id"].as_str().unwrap().to_owned();
    let push = |body: &serde_json::Value| {
        cp.post(
            &format!("/api/v1/runs/{run}/attestation"),
            Some(&token),
            "application/json",
            serde_json::to_vec(body).unwrap(),
        )
    };
    let (s, body) = push(&envelope);
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"], "certificate", "{body}");
    assert!(body.to_string().contains("issued for another run"), "{body}");
    let mut foreign = envelope.clone();
    let stranger = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
    let proof = stranger.sign(run.as_bytes()).unwrap();
    let issued = other_ca
        .issue(
            &Request {
                public_key_pem: stranger.public_pem(),
                challenge: run.as_bytes(),
                proof: &proof,
                identity: &identity(),
            },
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        )
        .unwrap();
    foreign["signatures"][0]["certificate"] = issued.chain_pem.into();
    let (s, body) = push(&foreign);
    assert_eq!(s, 422, "{body}");
    assert!(body.to_string().contains("is not in this log"), "{body}");
    // And the honest keyless push of this run still goes through.
    let pushed = keyless_push(&cp, &ws, &env);
    assert!(
        pushed["certificate_log_index"].as_u64().unwrap() > index,
        "{pushed}"
    );
}

/// The OCI mirror copies a keyless attestation (the certificate entry
/// before it is passed over, not retried forever) and the bundle it puts
/// in the registry carries the certificate's entry and proof, so an
/// auditor who pulls it verifies the keyless signature with `--ca`.
#[test]
fn the_oci_mirror_copies_keyless_attestations_with_their_certificate() {
    use crate::controlplane::{craft_release_with, gh_env, ControlPlane};
    let Some(reg) = registry() else { return };
    let d = tmp();
    let repo = contracts_repo(d.path());
    let oci = format!("{}/tally/artifacts", reg.addr);
    let cp = ControlPlane::start(&repo, &["--oci-repository", &oci]);
    let image_digest = reg.push_image("acme/payments", "1.4.2", b"payments layer");
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let token = workflow_token(&cp, &ws);
    let mut env = gh_env();
    env.push(("TALLY_TOKEN", &token));
    craft_release_with(&cp, &ws, &env, &format!("{}/acme/payments:1.4.2", reg.addr));
    let pushed = keyless_push(&cp, &ws, &env);
    let index = pushed["log_index"].as_u64().unwrap();
    let tag = image_digest.replace(':', "-");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let referrers = loop {
        let (s, b) = reg.get(
            &format!("acme/payments/manifests/{tag}"),
            "application/vnd.oci.image.index.v1+json",
        );
        if s == 200 {
            break serde_json::from_slice::<serde_json::Value>(&b).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not mirrored after 60 s; server log:\n{}",
            cp.log.lock().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let referrer = referrers["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let (_, m) = reg.get(
        &format!("acme/payments/manifests/{referrer}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(
        m["annotations"]["dev.tally.log.index"],
        index.to_string().as_str(),
        "{m}"
    );
    let bundle_digest = m["layers"][1]["digest"].as_str().unwrap();
    let (s, bundle) = reg.get(&format!("acme/payments/blobs/{bundle_digest}"), "*/*");
    assert_eq!(s, 200);
    let b: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    assert_eq!(
        b["certificate"]["logIndex"], pushed["certificate_log_index"],
        "{b}"
    );
    let (auditor, _) = auditor_with_ca(&cp, d.path());
    write(&auditor, "pulled.json", &bundle);
    let o = cp.tally(
        &auditor,
        &[],
        &[
            "verify",
            "--bundle",
            "pulled.json",
            "--log-key",
            &cp.vkey,
            "--ca",
            "ca.pem",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

/// Trust roots reviewed in git: a workflow's keys are the `*.pub` files of
/// `keys/<workflow>/` in the contracts repository, read at the commit the
/// run was pinned at. The pull-request check refuses a file that is not a
/// key; removing a key (revocation by pull request) refuses it for runs
/// started afterwards, while an attestation it signed before still verifies.
#[test]
fn keys_in_the_contracts_repository_are_pinned_per_run_and_revoked_by_removal() {
    use crate::controlplane::{craft_release_with, gh_env, ok, push, ControlPlane};
    let d = tmp();
    let repo = contracts_repo(d.path());
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let cp = ControlPlane::start(&repo, &[]);
    ok(&cp.tally(
        &ws,
        &[("TALLY_KEY_PASSWORD", "pw")],
        &["key", "generate", "--kind", "signing"],
    ));
    std::fs::create_dir_all(repo.join("keys/payments-release")).unwrap();
    std::fs::copy(ws.join("cosign.pub"), repo.join("keys/payments-release/ci.pub")).unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &["commit", "-q", "-m", "trust the CI key of payments-release"],
    );
    // The pull-request check: a file that is not a key does not merge.
    std::fs::write(repo.join("keys/payments-release/typo.pub"), "not a key\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "a broken key"]);
    let repo_s = repo.to_str().unwrap();
    let o = tally(&[
        "contract", "check", "--repo", repo_s, "--base", "HEAD~1", "--head", "HEAD",
    ]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("keys/payments-release/typo.pub") && stderr(&o).contains("not a public key"),
        "{}",
        stderr(&o)
    );
    git(&repo, &["reset", "-q", "--hard", "HEAD~1"]);

    let token = workflow_token(&cp, &ws);
    let mut env = gh_env();
    env.push(("TALLY_TOKEN", &token));
    let image = format!("ghcr.io/acme/payments@sha256:{}", "5e".repeat(32));
    // No key registered through the API: the repository's key is trusted.
    craft_release_with(&cp, &ws, &env, &image);
    let first = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    std::fs::copy(ws.join("attestation.bundle.json"), ws.join("first.bundle.json")).unwrap();
    // A run started now is pinned before the revocation: it still may.
    craft_release_with(&cp, &ws, &env, &image);
    // Revocation: the key is removed by a reviewed commit.
    git(&repo, &["rm", "-q", "keys/payments-release/ci.pub"]);
    git(
        &repo,
        &["commit", "-q", "-m", "revoke the CI key of payments-release"],
    );
    ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    // A run started after the revocation is refused with that key.
    craft_release_with(&cp, &ws, &env, &image);
    let o = push(&cp, &ws, &env, "cosign.key", &["--output", "json"]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stderr(&o).contains("no public key") || stdout(&o).contains("no_key"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    // What the key signed before is still proven, offline.
    let o = cp.verify_bundle(&ws, "first.bundle.json");
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(first["log_index"].is_u64());
}
