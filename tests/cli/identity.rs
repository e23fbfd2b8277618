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
    // And that it was trusted when it was accepted: from clones of the
    // ledger and of the contracts repository, at the run's pinned commit
    // (recorded in the statement), though the key is gone from the head.
    let clone = crate::controlplane::clone_ledger(&cp, &d.path().join("ledger-clone"));
    let trusted = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--bundle",
            "first.bundle.json",
            "--log-key",
            &cp.vkey,
            "--key",
            "cosign.pub",
            "--ledger",
            clone.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cp.tally(&ws, &[], &args)
    };
    let o = trusted(&[]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("give --contracts"), "{}", stderr(&o));
    let o = trusted(&["--contracts", repo_s]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("was trusted for workflow payments-release at index")
            && stdout(&o).contains("keys/payments-release/ci.pub of the contracts repository at"),
        "{}",
        stdout(&o)
    );
}

/// Keys registered through the admin API are log entries
/// (`tally.dev/key/v1`): adding and revoking each append one, durable
/// before they take effect. After a revocation the key verifies no new
/// push, while `tally verify --ledger` proves from a clone that it was
/// trusted when an earlier attestation was accepted; the entries survive a
/// lost metadata database, and `tally audit` checks their bodies.
#[test]
fn admin_key_changes_are_log_entries_and_trust_is_answered_offline() {
    use crate::controlplane::{craft_release_with, ok, pipeline, push};
    let (d, repo, mut cp, ws, op) = pipeline(&[]);
    let env = op.env();
    let admin = [("TALLY_TOKEN", cp.admin.as_str())];
    let image = format!("ghcr.io/acme/payments@sha256:{}", "5e".repeat(32));
    craft_release_with(&cp, &ws, &env, &image);
    let first = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    let first_index = first["log_index"].as_u64().unwrap();
    std::fs::copy(ws.join("attestation.bundle.json"), ws.join("first.bundle.json")).unwrap();
    let keyid = ok(&cp.tally(
        &ws,
        &admin,
        &[
            "workflow",
            "key",
            "list",
            "--workflow",
            "payments-release",
            "--output",
            "json",
        ],
    ))["keys"][0]["keyid"]
        .as_str()
        .unwrap()
        .to_owned();

    let revoked = ok(&cp.tally(
        &ws,
        &admin,
        &[
            "workflow",
            "key",
            "revoke",
            "--workflow",
            "payments-release",
            "--key",
            "cosign.pub",
            "--output",
            "json",
        ],
    ));
    assert_eq!(revoked["keyid"], keyid.as_str());
    let revoked_at = revoked["log_index"].as_u64().unwrap();
    assert!(revoked_at > first_index, "{revoked}");
    let o = cp.tally(
        &ws,
        &admin,
        &[
            "workflow",
            "key",
            "revoke",
            "--workflow",
            "payments-release",
            "--key",
            &keyid,
        ],
    );
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("unknown_key") || stderr(&o).contains("has no registered key"),
        "{}",
        stderr(&o)
    );
    // No new push verifies with it.
    craft_release_with(&cp, &ws, &env, &image);
    let o = push(&cp, &ws, &env, "cosign.key", &[]);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("no public key is trusted"), "{}", stderr(&o));

    // Offline: the clone holds both key entries; the earlier attestation
    // was accepted while the key was trusted.
    let clone = crate::controlplane::clone_ledger(&cp, &d.path().join("ledger-clone"));
    ok(&cp.tally(
        &ws,
        &[],
        &["audit", clone.to_str().unwrap(), "--log-key", &cp.vkey],
    ));
    let trusted = |ledger: &std::path::Path, extra: &[&str]| {
        let args = [
            "verify",
            "--bundle",
            "first.bundle.json",
            "--log-key",
            &cp.vkey,
            "--key",
            "cosign.pub",
            "--ledger",
            ledger.to_str().unwrap(),
        ];
        cp.tally(&ws, &[], &[&args[..], extra].concat())
    };
    let o = trusted(&clone, &["--output", "json"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let said = v["key_trusted"].as_str().unwrap();
    assert!(
        said.contains(&format!(
            "key {keyid} was trusted for workflow payments-release at index {first_index}"
        )) && said.contains("registered through the admin API by log entry")
            && said.contains("(by admin)"),
        "{said}"
    );
    // A folder that holds no ledger is a usage error.
    let o = trusted(tmp().path(), &[]);
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));

    // The registered keys are rebuilt from the log: a lost metadata
    // database still knows the key is revoked.
    cp.crash();
    {
        let db = rusqlite::Connection::open(cp.dir.path().join("data/meta.db")).unwrap();
        db.execute_batch("DELETE FROM key_events; DELETE FROM workflow_keys;")
            .unwrap();
    }
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp2 = crate::controlplane::ControlPlane::start_in(dir, &repo, &[]);
    let listed = ok(&cp2.tally(
        &ws,
        &[("TALLY_TOKEN", cp.admin.as_str())],
        &[
            "workflow",
            "key",
            "list",
            "--workflow",
            "payments-release",
            "--output",
            "json",
        ],
    ));
    assert_eq!(listed["keys"], serde_json::json!([]), "{listed}");
    let db = rusqlite::Connection::open(cp2.dir.path().join("data/meta.db")).unwrap();
    let events: i64 = db
        .query_row("SELECT COUNT(*) FROM key_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 2);
}

/// The local OIDC issuer (tests/fixtures/oidc_issuer.py): discovery and
/// JWKS over HTTP on loopback, tokens minted by PyJWT.
struct Issuer {
    child: std::process::Child,
    url: String,
}

impl Issuer {
    /// `None` (skipped) outside CI when PyJWT is missing.
    fn start() -> Option<Issuer> {
        if !python_has("jwt, cryptography") {
            return None;
        }
        let (child, port) = python_fixture_server("oidc_issuer.py", &[]);
        Some(Issuer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    fn post(&self, path: &str, body: serde_json::Value) -> String {
        reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// A token with `claims` (over the issuer's defaults), made `how`.
    fn mint(&self, claims: serde_json::Value, how: &str) -> String {
        self.post("/mint", serde_json::json!({ "claims": claims, "how": how }))
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The claims GitHub Actions documents for a release job's ID token.
fn github_claims() -> serde_json::Value {
    serde_json::json!({
        "aud": "tally",
        "sub": "repo:acme/payments:ref:refs/heads/main",
        "repository": "acme/payments",
        "repository_owner": "acme",
        "workflow_ref": "acme/payments/.github/workflows/release.yml@refs/heads/main",
        "job_workflow_ref": "acme/payments/.github/workflows/release.yml@refs/heads/main",
        "job_workflow_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "event_name": "push",
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "environment": "production",
        "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "run_id": "991",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
    })
}

/// The claims GitLab documents for a job's `id_tokens` entry.
fn gitlab_claims() -> serde_json::Value {
    serde_json::json!({
        "aud": "tally",
        "sub": "project_path:acme/payments:ref_type:branch:ref:main",
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "20",
        "project_path": "acme/payments",
        "user_id": "5",
        "user_login": "octocat",
        "pipeline_id": "574",
        "pipeline_source": "push",
        "job_id": "302",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "ci_config_ref_uri": "gitlab.com/acme/payments//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "runner_id": "1",
        "runner_environment": "gitlab-hosted",
    })
}

/// A contracts repository whose `payments-release` trusts the local
/// issuer's GitHub-shaped tokens from acme/payments' main branch, and
/// `payments-quality` its GitLab-shaped tokens from any branch.
fn contracts_trusting(dir: &std::path::Path, issuer: &str) -> std::path::PathBuf {
    let repo = contracts_repo(dir);
    let path = repo.join("workflows.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "description = \"Release pipeline of the payments service\"\n",
            &format!(
                "description = \"Release pipeline of the payments service\"\n\n\
                 [[workflows.identities]]\nissuer = \"{issuer}\"\n\
                 subject = \"repo:acme/payments:ref:refs/heads/main\"\n\
                 claims = {{ repository = \"acme/payments\", ref = [\"refs/heads/main\"], environment = \"production\" }}\n"
            ),
        )
        .replace(
            "owners = [\"team-payments@example.com\"]\n\n# GitLab",
            &format!(
                "owners = [\"team-payments@example.com\"]\n\n\
                 [[workflows.identities]]\nissuer = \"{issuer}\"\n\
                 subject_pattern = \"project_path:acme/payments:ref_type:branch:ref:.+\"\n\n# GitLab"
            ),
        );
    assert!(text.matches(issuer).count() == 2, "{text}");
    std::fs::write(&path, text).unwrap();
    let o = tally(&["contract", "lint", repo.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    git(&repo, &["commit", "-q", "-am", "trust the CI's ID tokens"]);
    repo
}

/// Tokenless CI end to end: a GitHub Actions job with no tally token gets
/// its ID token from the (local) token service, starts a run, uploads,
/// and pushes keylessly; its certificate carries the CI identity in
/// Fulcio's extensions (read by OpenSSL), and the bundle verifies offline
/// with cosign-style `--certificate-identity`/`--certificate-oidc-issuer`.
#[test]
fn a_tokenless_github_job_pushes_with_its_id_token_and_is_certified_as_itself() {
    use crate::controlplane::{craft_release_with, gh_env, ControlPlane};
    let Some(issuer) = Issuer::start() else { return };
    let d = tmp();
    let repo = contracts_trusting(d.path(), &issuer.url);
    let cp = ControlPlane::start(&repo, &[]);
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let service = format!("{}/github-token?api-version=2.0", issuer.url);
    let mut env = gh_env();
    env.push(("ACTIONS_ID_TOKEN_REQUEST_URL", &service));
    env.push(("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"));
    let image = format!("ghcr.io/acme/payments@sha256:{}", "7a".repeat(32));
    craft_release_with(&cp, &ws, &env, &image);
    let pushed = keyless_push(&cp, &ws, &env);
    assert!(pushed["certificate_log_index"].as_u64().is_some(), "{pushed}");

    let bundle = ws.join("attestation.bundle.json");
    let (_, chain) = bundle_chain(&bundle);
    let leaf = write(
        d.path(),
        "leaf.pem",
        chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap(),
    );
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let san = "https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/main";
    assert!(text.contains(&format!("URI:{san}")), "{text}");
    for (n, value) in [
        (oid::ISSUER, issuer.url.as_str()),
        (oid::SOURCE_REPOSITORY_URI, "https://github.com/acme/payments"),
        (oid::SOURCE_REPOSITORY_REF, "refs/heads/main"),
        (
            oid::SOURCE_REPOSITORY_DIGEST,
            "9fceb02d0ae598e95dc970b74767f19372d61af8",
        ),
        (oid::RUNNER_ENVIRONMENT, "github-hosted"),
        (
            oid::RUN_INVOCATION_URI,
            "https://github.com/acme/payments/actions/runs/991/attempts/1",
        ),
    ] {
        let at = text
            .find(&dotted(n))
            .unwrap_or_else(|| panic!("{} missing: {text}", dotted(n)));
        assert!(
            text[at..].lines().nth(1).unwrap().contains(value),
            "{}: {text}",
            dotted(n)
        );
    }

    let (auditor, _) = auditor_with_ca(&cp, d.path());
    std::fs::copy(&bundle, auditor.join("b.json")).unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--bundle",
            "b.json",
            "--log-key",
            &cp.vkey,
            "--ca",
            "ca.pem",
        ];
        args.extend_from_slice(extra);
        cp.tally(&auditor, &[], &args)
    };
    let o = verify(&[
        "--certificate-identity",
        san,
        "--certificate-oidc-issuer",
        &issuer.url,
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("keyless signature by {san}")),
        "{}",
        stdout(&o)
    );
    let o = verify(&["--certificate-oidc-issuer", "https://tally.localhost/log"]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));

    // Without any credential the CLI says what it looked for.
    let o = cp.tally(
        &ws,
        &gh_env(),
        &[
            "attestation",
            "init",
            "--workflow",
            "payments-release",
            "--version",
            "1",
            "--state",
            "other.json",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("TALLY_ID_TOKEN"), "{}", stderr(&o));
}

/// A GitHub Actions job's checkout (`main`, origin on github.com) with
/// one commit, and the ID token GitHub would give that job.
fn github_job(issuer: &Issuer, dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String, String) {
    let ws = dir.join(name);
    std::fs::create_dir_all(&ws).unwrap();
    git(&ws, &["init", "-q", "-b", "main"]);
    write(&ws, "README.md", format!("{name}\n"));
    git(&ws, &["add", "README.md"]);
    git(&ws, &["commit", "-q", "-m", "release"]);
    git(
        &ws,
        &["remote", "add", "origin", "git@github.com:acme/payments.git"],
    );
    let sha = git(&ws, &["rev-parse", "HEAD"]);
    let mut claims = github_claims();
    claims["sha"] = serde_json::json!(sha);
    let token = issuer.mint(claims, "good");
    (ws, sha, token)
}

/// SLSA Build L3 through the control plane (SPEC.md §15.7): a tokenless
/// job whose statement agrees with its ID token on builder, repository,
/// commit, ref, workflow and run is vouched for at level 3 in the verdict
/// the log binds, which `tally verify` reads offline; a statement that
/// contradicts its token is refused naming each contradiction, and a run
/// started as another job than the token's gets no certificate.
#[test]
fn provenance_is_checked_against_the_id_token_and_recorded_with_its_slsa_level() {
    use crate::controlplane::{craft_release_with, gh_env, ControlPlane};
    let Some(issuer) = Issuer::start() else { return };
    let d = tmp();
    let repo = contracts_trusting(d.path(), &issuer.url);
    let cp = ControlPlane::start(&repo, &[]);
    let image = format!("ghcr.io/acme/payments@sha256:{}", "7a".repeat(32));
    let job_env = |sha: &'static str, token: &'static str| {
        let mut env = gh_env();
        env.extend([
            ("TALLY_ID_TOKEN", token),
            ("GITHUB_SHA", sha),
            ("GITHUB_REF", "refs/heads/main"),
            (
                "GITHUB_WORKFLOW_REF",
                "acme/payments/.github/workflows/release.yml@refs/heads/main",
            ),
            ("GITHUB_RUN_ATTEMPT", "1"),
        ]);
        env
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };

    // 1. The job as its token describes it: level 3, every field verified.
    let (ws, sha, token) = github_job(&issuer, d.path(), "job");
    let (sha, token) = (leak(sha), leak(token));
    let env = job_env(sha, token);
    craft_release_with(&cp, &ws, &env, &image);
    keyless_push(&cp, &ws, &env);
    let (auditor, _) = auditor_with_ca(&cp, d.path());
    let log: serde_json::Value = cp.get("/api/v1/log", None).1;
    write(&auditor, "verdict.pub", log["verdict_key"].as_str().unwrap());
    std::fs::copy(ws.join("attestation.bundle.json"), auditor.join("b.json")).unwrap();
    let verify = |extra: &[&str]| {
        let args = [
            "verify",
            "--bundle",
            "b.json",
            "--log-key",
            &cp.vkey,
            "--ca",
            "ca.pem",
            "--verdict-key",
            "verdict.pub",
        ];
        cp.tally(&auditor, &[], &[&args[..], extra].concat())
    };
    let o = verify(&["--output", "json"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["slsa_build_level"], "SLSA_BUILD_LEVEL_3", "{report}");
    let ci = &report["ci_identity"];
    assert_eq!(ci["issuer"], issuer.url.as_str());
    assert_eq!(ci["subject"], "repo:acme/payments:ref:refs/heads/main");
    assert_eq!(ci["verified"]["commit"], sha);
    assert_eq!(
        ci["verified"]["sourceRepository"],
        "https://github.com/acme/payments"
    );
    assert_eq!(ci["verified"]["ref"], "refs/heads/main");
    assert_eq!(ci["verified"]["builder"], "github-actions");
    assert_eq!(
        ci["verified"]["workflow"],
        "acme/payments/.github/workflows/release.yml@refs/heads/main"
    );
    assert_eq!(
        ci["verified"]["run"],
        "https://github.com/acme/payments/actions/runs/991/attempts/1"
    );
    let o = verify(&[]);
    assert!(
        stdout(&o).contains(&format!("provenance vouched for by the CI identity repo:acme/payments:ref:refs/heads/main ({}): SLSA_BUILD_LEVEL_3", issuer.url))
            && stdout(&o).contains(&format!("✓ commit = {sha}")),
        "{}",
        stdout(&o)
    );

    // 2. The token of that job, the checkout of another commit: refused,
    // naming where the statement says what.
    let (other, other_sha, _) = github_job(&issuer, d.path(), "other");
    let env = job_env(sha, token);
    craft_release_with(&cp, &other, &env, &image);
    let push = ["attestation", "push", "--annotation", "change-ticket=CHG-1042"];
    let o = cp.tally(&other, &env, &push);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("provenance contradicts the CI identity")
            && err.contains(&format!("commit: the statement's subject git.head is {other_sha:?}; the ID token from {} says {sha:?}", issuer.url)),
        "{err}"
    );
    assert!(
        !err.contains("runner.commit"),
        "GITHUB_SHA agrees with the token: {err}"
    );

    // 3. A run started as another job (run 992) gets no certificate for
    // the token of run 991.
    let (third, third_sha, third_token) = github_job(&issuer, d.path(), "third");
    let mut env = job_env(leak(third_sha), leak(third_token));
    env.retain(|(k, _)| *k != "GITHUB_RUN_ID");
    env.push(("GITHUB_RUN_ID", "992"));
    craft_release_with(&cp, &third, &env, &image);
    let o = cp.tally(&third, &env, &push);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("the run's link is \"https://github.com/acme/payments/actions/runs/992\"; the ID token names run \"https://github.com/acme/payments/actions/runs/991\""),
        "{}",
        stderr(&o)
    );
}

/// Every way an ID token can be wrong is refused before a run starts, with
/// a message naming what is wrong; GitLab-shaped and ES256 tokens are
/// accepted; a rotated issuer key is fetched on its first unknown `kid`.
#[test]
fn every_wrong_id_token_is_refused_and_a_rotated_key_is_fetched() {
    use crate::controlplane::ControlPlane;
    let Some(issuer) = Issuer::start() else { return };
    let d = tmp();
    let repo = contracts_trusting(d.path(), &issuer.url);
    let cp = ControlPlane::start(&repo, &[]);
    let start = |token: &str, workflow: &str| {
        let runner = if workflow == "payments-quality" {
            "gitlab"
        } else {
            "github-actions"
        };
        let body = serde_json::json!({ "workflow": workflow, "runner": { "type": runner, "env": {} } });
        cp.post(
            "/api/v1/runs",
            Some(token),
            "application/json",
            body.to_string().into_bytes(),
        )
    };
    let with = |changes: serde_json::Value| {
        let mut c = github_claims();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let (s, v) = start(&issuer.mint(github_claims(), "good"), "payments-release");
    assert_eq!(s, 201, "{v}");
    let (s, v) = start(&issuer.mint(github_claims(), "es256"), "payments-release");
    assert_eq!(s, 201, "{v}");
    let (s, v) = start(&issuer.mint(gitlab_claims(), "good"), "payments-quality");
    assert_eq!(s, 201, "{v}");

    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "expired",
            issuer.mint(with(serde_json::json!({"iat": now - 4000, "nbf": now - 4000, "exp": now - 3600})), "good"),
            "payments-release",
            401,
            "expired",
        ),
        (
            "not yet valid",
            issuer.mint(with(serde_json::json!({"nbf": now + 3600, "exp": now + 7200})), "good"),
            "payments-release",
            401,
            "nbf",
        ),
        ("wrong audience", issuer.mint(with(serde_json::json!({"aud": "sigstore"})), "good"), "payments-release", 403, "aud"),
        (
            "wrong issuer",
            issuer.mint(with(serde_json::json!({"iss": "https://token.example.net"})), "good"),
            "payments-release",
            401,
            "not trusted",
        ),
        ("unknown kid", issuer.mint(github_claims(), "unknown-kid"), "payments-release", 401, "k9"),
        ("alg none", issuer.mint(github_claims(), "none"), "payments-release", 401, "alg `none`"),
        ("HS256 with the public key", issuer.mint(github_claims(), "hs256"), "payments-release", 401, "alg `HS256`"),
        ("no kid, several keys", issuer.mint(github_claims(), "no-kid"), "payments-release", 401, "no key id"),
        (
            "another branch",
            issuer.mint(with(serde_json::json!({"sub": "repo:acme/payments:ref:refs/heads/dev", "ref": "refs/heads/dev"})), "good"),
            "payments-release",
            403,
            "sub `repo:acme/payments:ref:refs/heads/dev` is not",
        ),
        (
            "another environment",
            issuer.mint(with(serde_json::json!({"environment": "staging"})), "good"),
            "payments-release",
            403,
            "claim `environment` is `staging`",
        ),
        ("a workflow declaring no identity", issuer.mint(github_claims(), "good"), "psirt-advisories", 403, "declares no identity"),
        ("not a JWT", "eyJ.eyJ.sig".to_owned(), "payments-release", 401, "header"),
    ];
    for (what, token, workflow, status, says) in &cases {
        let (s, v) = start(token, workflow);
        assert_eq!(s, *status, "{what}: {v}");
        assert!(v.to_string().contains(says), "{what}: {v}");
    }
    // A forged signature over the right claims.
    let good = issuer.mint(github_claims(), "good");
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = issuer.mint(
        with(serde_json::json!({"sub": "repo:acme/other:ref:refs/heads/main"})),
        "good",
    );
    let (_, sig) = forged.rsplit_once('.').unwrap();
    let (s, v) = start(&format!("{head}.{sig}"), "payments-release");
    assert_eq!(s, 401, "{v}");
    assert!(v.to_string().contains("signature"), "{v}");
    // A CI identity is never the admin.
    let (s, _) = cp.get("/api/v1/tokens", Some(&good));
    assert_eq!(s, 403);

    // The issuer rotates its key; the first token under the new kid makes
    // the server fetch the JWKS again (at most once per 5 s per issuer).
    issuer.post("/rotate", serde_json::json!({}));
    std::thread::sleep(std::time::Duration::from_millis(5200));
    let (s, v) = start(&issuer.mint(github_claims(), "good"), "payments-release");
    assert_eq!(s, 201, "{v}");
}
