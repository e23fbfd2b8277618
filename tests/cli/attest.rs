//! DSSE against the outside vectors in ../shared/vectors/dsse.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use tally::attest::dsse::{pae, DsseError, Envelope, PublicKey};

use crate::common::*;

fn vectors() -> Option<serde_json::Value> {
    let dir = vectors_dir()?;
    Some(
        serde_json::from_slice(&std::fs::read(dir.join("dsse/dsse-pae-and-envelope-vectors.json")).unwrap())
            .unwrap(),
    )
}

#[test]
fn pae_is_byte_exact() {
    let Some(v) = vectors() else { return };
    for c in v["pae_cases"].as_array().unwrap() {
        let got = pae(
            c["payloadType"].as_str().unwrap(),
            c["payload_utf8"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(got, c["pae_utf8"].as_str().unwrap().as_bytes(), "{}", c["name"]);
    }
}

#[test]
fn spec_envelope_verifies_raw_der_and_url_safe_and_tampering_fails() {
    let Some(v) = vectors() else { return };
    let s = &v["signed_envelope"];
    let key = PublicKey::from_pem(s["public_key_pem_derived_from_X_Y"].as_str().unwrap()).unwrap();
    for which in ["envelope_protocol_md", "envelope_signing_spec_py"] {
        let env = Envelope::parse(s[which].to_string().as_bytes()).unwrap();
        let ok = env.verify(std::slice::from_ref(&key)).unwrap();
        assert_eq!(ok.payload(), b"hello world");
        assert_eq!(ok.payload_type(), "http://example.com/HelloWorld");
    }
    let env = Envelope::parse(s["envelope_protocol_md"].to_string().as_bytes()).unwrap();
    // The same signature DER-encoded, and in URL-safe unpadded base64.
    let raw = STANDARD.decode(&env.signatures[0].sig).unwrap();
    let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    let mut der_env = env.clone();
    der_env.signatures[0].sig = STANDARD.encode(der.as_bytes());
    der_env.verify(std::slice::from_ref(&key)).unwrap();
    let mut url_env = env.clone();
    url_env.signatures[0].sig = URL_SAFE_NO_PAD.encode(&raw);
    url_env.payload = URL_SAFE_NO_PAD.encode(b"hello world");
    url_env.verify(std::slice::from_ref(&key)).unwrap();
    // A different payload or payload type does not verify.
    let mut bad = env.clone();
    bad.payload = STANDARD.encode(b"hello world!");
    assert_eq!(
        bad.verify(std::slice::from_ref(&key)),
        Err(DsseError::NoValidSignature(1))
    );
    let mut bad = env;
    bad.payload_type = "http://example.com/Other".into();
    assert!(bad.verify(&[key]).is_err());
    // Malformed envelopes are clear errors.
    assert!(matches!(Envelope::parse(b"{}"), Err(DsseError::Malformed(_))));
    assert!(matches!(
        Envelope::parse(br#"{"payload":"","payloadType":"x","signatures":[]}"#),
        Err(DsseError::Malformed(_))
    ));
}

#[test]
fn ed25519_envelopes_verify_and_the_wrong_key_does_not() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::Signer as _;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
    let sig = sk.sign(&pae(tally::attest::dsse::IN_TOTO_PAYLOAD_TYPE, payload));
    let env = Envelope {
        payload: STANDARD.encode(payload),
        payload_type: tally::attest::dsse::IN_TOTO_PAYLOAD_TYPE.into(),
        signatures: vec![tally::attest::dsse::Signature {
            keyid: None,
            sig: STANDARD.encode(sig.to_bytes()),
            certificate: None,
        }],
    };
    let pem =
        |k: &ed25519_dalek::SigningKey| k.verifying_key().to_public_key_pem(Default::default()).unwrap();
    let good = PublicKey::from_pem(&pem(&sk)).unwrap();
    let bad = PublicKey::from_pem(&pem(&other)).unwrap();
    assert_eq!(env.verify(&[bad.clone(), good]).unwrap().key_index(), 1);
    assert!(env.verify(&[bad]).is_err());
    assert!(PublicKey::from_pem("not a key").is_err());
}
