//! DSSE v1 envelopes: PAE, parsing, and signature verification with ECDSA
//! P-256 (DER or raw r‖s signatures) and Ed25519 keys. Base64 may be standard
//! or URL-safe, padded or not. Verification returns the payload bytes that
//! were verified; callers never re-parse the envelope.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why an envelope was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// Not a DSSE envelope.
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// A field is not base64.
    #[error("envelope field `{0}` is not base64")]
    Base64(&'static str),
    /// No signature verifies under the given keys.
    #[error("no signature of the envelope verifies with the given key(s) ({0} signature(s) tried)")]
    NoValidSignature(usize),
    /// A public key could not be read.
    #[error("public key: {0}")]
    Key(String),
    /// More signatures than anyone verifies: refused before any is tried.
    #[error("the envelope carries {0} signatures; at most {MAX_SIGNATURES} are verified")]
    TooManySignatures(usize),
}

/// The most signatures [`Envelope::verify`] looks at. Each costs a signature
/// verification per key (~50 µs for P-256): without a bound, one request
/// of 4 MiB of bogus signatures cost ~8 s of CPU before it was refused.
pub const MAX_SIGNATURES: usize = 8;

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// An unauthenticated hint naming the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The signature, base64.
    pub sig: String,
    /// For a keyless signature: the certificate chain (PEM, leaf first)
    /// the control plane's CA issued for the signing key (SPEC.md §15.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// A DSSE envelope as it travels (base64 fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// The payload's type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures over PAE(payloadType, payload).
    pub signatures: Vec<Signature>,
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Decodes base64 in any of the four common alphabets/paddings.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// A key an envelope may be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256 with SHA-256.
    EcdsaP256(P256Key),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// An ECDSA P-256 key, with aws-lc's parsed form of it for each signature
/// encoding: parsing the point (on-curve check included) once per key, not
/// once per verification, saves ~1.5 µs of each (BENCHMARKS.md, intake).
#[derive(Clone)]
pub struct P256Key {
    key: p256::ecdsa::VerifyingKey,
    asn1: aws_lc_rs::signature::ParsedPublicKey,
    fixed: aws_lc_rs::signature::ParsedPublicKey,
}

impl P256Key {
    fn new(key: p256::ecdsa::VerifyingKey) -> Result<Self, DsseError> {
        use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED};
        let point = key.to_encoded_point(false);
        let parse = |alg| {
            ParsedPublicKey::new(alg, point.as_bytes())
                .map_err(|e| DsseError::Key(format!("aws-lc rejects the P-256 point: {e}")))
        };
        Ok(P256Key {
            asn1: parse(&ECDSA_P256_SHA256_ASN1)?,
            fixed: parse(&ECDSA_P256_SHA256_FIXED)?,
            key,
        })
    }

    /// The key itself.
    pub fn verifying_key(&self) -> &p256::ecdsa::VerifyingKey {
        &self.key
    }
}

impl PartialEq for P256Key {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for P256Key {}

impl std::fmt::Debug for P256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("P256Key").field(&self.key).finish()
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of either kind.
    pub fn from_pem(pem: &str) -> Result<Self, DsseError> {
        use p256::pkcs8::DecodePublicKey as _;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return P256Key::new(k).map(PublicKey::EcdsaP256);
        }
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::Ed25519)
            .map_err(|_| DsseError::Key("not a PEM ECDSA P-256 or Ed25519 public key".into()))
    }

    /// Reads a SubjectPublicKeyInfo DER of either kind.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, DsseError> {
        use p256::pkcs8::DecodePublicKey as _;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return P256Key::new(k).map(PublicKey::EcdsaP256);
        }
        ed25519_dalek::VerifyingKey::from_public_key_der(der)
            .map(PublicKey::Ed25519)
            .map_err(|_| DsseError::Key("not an ECDSA P-256 or Ed25519 SubjectPublicKeyInfo".into()))
    }

    /// The key's SubjectPublicKeyInfo DER (its SHA-256 is tally's key id).
    pub fn spki_der(&self) -> Result<Vec<u8>, String> {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        match self {
            PublicKey::EcdsaP256(k) => p256::pkcs8::EncodePublicKey::to_public_key_der(&k.key),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
        }
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| e.to_string())
    }

    /// Whether `sig` (DER or fixed r‖s for P-256) signs `msg` under this key.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::EcdsaP256(k) => {
                // aws-lc's P-256 (assembly) verifies several times faster than
                // the p256 crate (SPEC.md §11.6). A 64-byte signature may be
                // the fixed encoding even when it starts like DER.
                let der = !(sig.len() == 64 && sig[0] != 0x30);
                (der && k.asn1.verify_sig(msg, sig).is_ok())
                    || (sig.len() == 64 && k.fixed.verify_sig(msg, sig).is_ok())
            }
            PublicKey::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify_strict(msg, &s).is_ok())
            }
        }
    }
}

/// An envelope whose signature verified: the exact payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnvelope {
    payload_type: String,
    payload: Vec<u8>,
    key_index: usize,
}

impl VerifiedEnvelope {
    /// The payload type.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }
    /// The verified payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// Which of the given keys verified it.
    pub fn key_index(&self) -> usize {
        self.key_index
    }
}

impl Envelope {
    /// Parses an envelope from JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, DsseError> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))?;
        if env.signatures.is_empty() {
            return Err(DsseError::Malformed("it has no signatures".into()));
        }
        Ok(env)
    }

    /// Verifies that at least one signature is valid under one of `keys`.
    /// An envelope with more than [`MAX_SIGNATURES`] signatures is refused
    /// before any is verified.
    pub fn verify(&self, keys: &[PublicKey]) -> Result<VerifiedEnvelope, DsseError> {
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures(self.signatures.len()));
        }
        let payload = decode_b64(&self.payload).ok_or(DsseError::Base64("payload"))?;
        let msg = pae(&self.payload_type, &payload);
        for s in &self.signatures {
            let sig = decode_b64(&s.sig).ok_or(DsseError::Base64("signatures[].sig"))?;
            if let Some(i) = keys.iter().position(|k| k.verify(&msg, &sig)) {
                return Ok(VerifiedEnvelope {
                    payload_type: self.payload_type.clone(),
                    payload,
                    key_index: i,
                });
            }
        }
        Err(DsseError::NoValidSignature(self.signatures.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(signatures: usize) -> Envelope {
        Envelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: "e30".into(),
            signatures: (0..signatures)
                .map(|i| Signature {
                    keyid: None,
                    certificate: None,
                    sig: format!("AAAA{i:04}"),
                })
                .collect(),
        }
    }

    #[test]
    fn signatures_beyond_the_bound_are_refused_before_any_is_tried() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let keys = [PublicKey::Ed25519(key)];
        match envelope(MAX_SIGNATURES).verify(&keys) {
            Err(DsseError::NoValidSignature(n)) => assert_eq!(n, MAX_SIGNATURES),
            other => panic!("{other:?}"),
        }
        match envelope(MAX_SIGNATURES + 1).verify(&keys) {
            Err(DsseError::TooManySignatures(n)) => assert_eq!(n, MAX_SIGNATURES + 1),
            other => panic!("{other:?}"),
        }
    }
}
