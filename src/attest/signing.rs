//! Attestation signing keys: ECDSA P-256 and Ed25519, in PKCS#8 PEM or in
//! cosign's encrypted PEM (scrypt + NaCl secretbox), through the `sigstore`
//! crate's key handling (SPEC.md §11.6). Signing emits DER for ECDSA.

use sha2::{Digest as _, Sha256};
use sigstore::crypto::signing_key::{
    ecdsa::{ECDSAKeys, EllipticCurve},
    ed25519::Ed25519Keys,
    kdf, SigStoreKeyPair, SigStoreSigner, COSIGN_PRIVATE_KEY_PEM_LABEL, PRIVATE_KEY_PEM_LABEL,
    SIGSTORE_PRIVATE_KEY_PEM_LABEL,
};
use sigstore::crypto::SigningScheme;

use crate::attest::dsse::{self, decode_b64, Envelope, PublicKey};

/// The environment variable holding a key's password.
pub const PASSWORD_ENV: &str = "TALLY_KEY_PASSWORD";

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is not a PEM private key we know.
    #[error("{0}")]
    Format(String),
    /// The key is encrypted and no password was given.
    #[error("the key is encrypted; set {PASSWORD_ENV} to its password")]
    PasswordRequired,
    /// The password does not decrypt the key.
    #[error("the password in {PASSWORD_ENV} does not decrypt the key (wrong password?)")]
    WrongPassword,
    /// The key is of a kind tally does not sign with.
    #[error("unsupported key: {0}; tally signs with ECDSA P-256 or Ed25519 keys")]
    Unsupported(String),
    /// The crypto library failed.
    #[error("{0}")]
    Crypto(String),
}

/// The algorithms a signing key may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256, DER signatures.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

/// A loaded signing key.
pub struct SigningKey {
    pair: SigStoreKeyPair,
    signer: SigStoreSigner,
    algorithm: Algorithm,
    public_pem: String,
    keyid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("keyid", &self.keyid)
            .finish_non_exhaustive()
    }
}

fn pem_parts(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let not_pem = || KeyError::Format("not a PEM private key (no -----BEGIN …----- line)".into());
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let begin = lines.next().ok_or_else(not_pem)?;
    let label = begin
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(not_pem)?
        .to_owned();
    let mut body = String::new();
    for l in lines {
        if l.starts_with("-----END ") {
            let der =
                decode_b64(&body).ok_or_else(|| KeyError::Format("the PEM body is not base64".into()))?;
            return Ok((label, der));
        }
        body.push_str(l);
    }
    Err(KeyError::Format(
        "the PEM block has no -----END …----- line".into(),
    ))
}

impl SigningKey {
    /// Reads a private key; `password` is used for encrypted keys.
    pub fn from_pem(text: &str, password: Option<&str>) -> Result<Self, KeyError> {
        let (label, body) = pem_parts(text)?;
        let der = match label.as_str() {
            COSIGN_PRIVATE_KEY_PEM_LABEL | SIGSTORE_PRIVATE_KEY_PEM_LABEL => {
                let pw = password.ok_or(KeyError::PasswordRequired)?;
                match kdf::decrypt(&body, pw.as_bytes()) {
                    Ok(der) => der,
                    // sigstore 0.15 reports a failed secretbox open (the
                    // password's key does not authenticate) as an *encrypt* error.
                    Err(sigstore::errors::SigstoreError::PrivateKeyEncryptError(_)) => {
                        return Err(KeyError::WrongPassword)
                    }
                    Err(e) => return Err(KeyError::Format(format!("not a cosign encrypted key: {e}"))),
                }
            }
            PRIVATE_KEY_PEM_LABEL => body,
            "EC PRIVATE KEY" | "RSA PRIVATE KEY" | "OPENSSH PRIVATE KEY" => {
                return Err(KeyError::Unsupported(format!(
                    "a {label} block; convert it to PKCS#8 (`openssl pkcs8 -topk8`) or generate one with \
                     `tally key generate --kind signing`"
                )))
            }
            other => {
                return Err(KeyError::Format(format!(
                    "a PEM {other:?} block is not a private key"
                )))
            }
        };
        Self::from_pkcs8_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let (pair, algorithm) = if let Ok(k) = Ed25519Keys::from_der(der) {
            (SigStoreKeyPair::ED25519(k), Algorithm::Ed25519)
        } else {
            match ECDSAKeys::from_der(der) {
                Ok(k @ ECDSAKeys::P256(_)) => (SigStoreKeyPair::ECDSA(k), Algorithm::EcdsaP256),
                Ok(_) => {
                    return Err(KeyError::Unsupported(
                        "an ECDSA key on a curve other than P-256".into(),
                    ))
                }
                Err(_) => {
                    return Err(KeyError::Unsupported(
                        "a PKCS#8 key that is neither ECDSA P-256 nor Ed25519".into(),
                    ))
                }
            }
        };
        Self::from_pair(pair, algorithm)
    }

    fn from_pair(pair: SigStoreKeyPair, algorithm: Algorithm) -> Result<Self, KeyError> {
        let scheme = match algorithm {
            Algorithm::EcdsaP256 => SigningScheme::ECDSA_P256_SHA256_ASN1,
            Algorithm::Ed25519 => SigningScheme::ED25519,
        };
        let crypto = |e: sigstore::errors::SigstoreError| KeyError::Crypto(e.to_string());
        let signer = pair.to_sigstore_signer(&scheme).map_err(crypto)?;
        let public_pem = pair.public_key_to_pem().map_err(crypto)?;
        let spki = pair.public_key_to_der().map_err(crypto)?;
        Ok(SigningKey {
            pair,
            signer,
            algorithm,
            public_pem,
            keyid: hex::encode(Sha256::digest(&spki)),
        })
    }

    /// A fresh key.
    pub fn generate(algorithm: Algorithm) -> Result<Self, KeyError> {
        let crypto = |e: sigstore::errors::SigstoreError| KeyError::Crypto(e.to_string());
        let pair = match algorithm {
            Algorithm::EcdsaP256 => {
                SigStoreKeyPair::ECDSA(ECDSAKeys::new(EllipticCurve::P256).map_err(crypto)?)
            }
            Algorithm::Ed25519 => SigStoreKeyPair::ED25519(Ed25519Keys::new().map_err(crypto)?),
        };
        Self::from_pair(pair, algorithm)
    }

    /// The private key as PEM: cosign's encrypted format with a password,
    /// plain PKCS#8 without.
    pub fn private_pem(&self, password: Option<&str>) -> Result<String, KeyError> {
        let r = match password {
            Some(pw) => self.pair.private_key_to_encrypted_pem(pw.as_bytes()),
            None => self.pair.private_key_to_pem(),
        };
        r.map(|z| z.to_string())
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// The public key as PEM (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The key id put in envelopes: hex SHA-256 of the public key's DER.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key for verification.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_pem(&self.public_pem).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Signs `msg` as is (DER for ECDSA): a proof of possession, say.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.signer.sign(msg).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Signs `payload` of `payload_type` into a DSSE envelope.
    pub fn sign_envelope(&self, payload_type: &str, payload: &[u8]) -> Result<Envelope, KeyError> {
        use base64::Engine as _;
        let msg = dsse::pae(payload_type, payload);
        let sig = self
            .signer
            .sign(&msg)
            .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Envelope {
            payload: b64.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![dsse::Signature {
                keyid: Some(self.keyid.clone()),
                sig: b64.encode(sig),
                certificate: None,
            }],
        })
    }
}

/// The key id tally uses for a PEM public key: hex SHA-256 of its DER.
pub fn keyid_of_pem(pem: &str) -> Result<String, String> {
    let der = PublicKey::from_pem(pem).map_err(|e| e.to_string())?.spki_der()?;
    Ok(hex::encode(Sha256::digest(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_envelopes_that_verify_and_ecdsa_is_der() {
        for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let k = SigningKey::generate(alg).unwrap();
            let env = k.sign_envelope(dsse::IN_TOTO_PAYLOAD_TYPE, b"{}").unwrap();
            let v = env.verify(&[k.public_key().unwrap()]).unwrap();
            assert_eq!(v.payload(), b"{}");
            let sig = decode_b64(&env.signatures[0].sig).unwrap();
            if alg == Algorithm::EcdsaP256 {
                assert_eq!(sig[0], 0x30, "DER SEQUENCE");
            } else {
                assert_eq!(sig.len(), 64);
            }
            assert_eq!(keyid_of_pem(k.public_pem()).unwrap(), k.keyid());
            // Round trip through plain PEM.
            let again = SigningKey::from_pem(&k.private_pem(None).unwrap(), None).unwrap();
            assert_eq!(again.keyid(), k.keyid());
        }
    }

    #[test]
    fn encrypted_keys_need_the_right_password() {
        let k = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        let pem = k.private_pem(Some("s3cret")).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
            "{pem}"
        );
        assert!(matches!(
            SigningKey::from_pem(&pem, None),
            Err(KeyError::PasswordRequired)
        ));
        assert!(matches!(
            SigningKey::from_pem(&pem, Some("nope")),
            Err(KeyError::WrongPassword)
        ));
        let again = SigningKey::from_pem(&pem, Some("s3cret")).unwrap();
        assert_eq!(again.keyid(), k.keyid());
        // cosign's older label is read too.
        let cosign = pem.replace("SIGSTORE", "COSIGN");
        assert_eq!(
            SigningKey::from_pem(&cosign, Some("s3cret")).unwrap().keyid(),
            k.keyid()
        );
        assert!(matches!(
            SigningKey::from_pem("hello", None),
            Err(KeyError::Format(_))
        ));
    }
}
