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
