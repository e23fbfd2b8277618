//! The control plane's certificate authority (SPEC.md §15.1): a P-256 key
//! and a CA certificate, created at first start (a self-signed root) or
//! supplied by the operator (an intermediate under the organisation's root,
//! with its chain). It issues short-lived code-signing certificates for a
//! key whose possession the requester proved, binding it to an
//! [`Identity`].
//!
//! Certificates are made with rcgen (ring signs) and read back with
//! x509-parser; nothing here is written by hand except the Fulcio
//! extension values (DER UTF8Strings, [`fulcio`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};

use super::fulcio::{self, Identity};
use crate::attest::dsse::PublicKey;

/// How long an issued certificate is valid: long enough to sign and push,
/// short enough that a leaked ephemeral key is worth little.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(600);

/// How long a CA created at first start is valid.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The CA files in the data directory.
const KEY_FILE: &str = "ca/key.pem";
const CHAIN_FILE: &str = "ca/chain.pem";
/// Every CA certificate the control plane has used, oldest first.
const HISTORY_FILE: &str = "ca/history.pem";

/// Why the CA could not start or issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing its files.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The operator's key or certificate is unusable.
    #[error("the CA {0}")]
    Config(String),
    /// The request is not one the CA signs (the caller's fault).
    #[error("{0}")]
    Refused(String),
    /// Making the certificate failed.
    #[error("issuing a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

/// A request for a certificate: the public key (PEM SubjectPublicKeyInfo,
/// ECDSA P-256 or Ed25519), a signature by that key over `challenge`
/// (proof of possession), and the identity to bind it to.
#[derive(Debug)]
pub struct Request<'a> {
    /// The key to certify.
    pub public_key_pem: &'a str,
    /// What the key signed to prove possession (the run id).
    pub challenge: &'a [u8],
    /// The signature over `challenge`.
    pub proof: &'a [u8],
    /// Who the key acts for.
    pub identity: &'a Identity,
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The leaf certificate, PEM.
    pub leaf_pem: String,
    /// The leaf's DER bytes.
    pub leaf_der: Vec<u8>,
    /// The leaf then the CA's chain, PEM: what travels with a signature.
    pub chain_pem: String,
    /// Hex of the serial number.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// The certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate then its issuers, PEM.
    chain_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// The CA of data directory `dir`: read from `ca/key.pem` and
    /// `ca/chain.pem`, or created there (a self-signed P-256 root named
    /// after `name`, the log's origin) at first start.
    pub fn open_or_create(dir: &Path, name: &str, now: i64) -> Result<Ca, CaError> {
        let (key, chain) = (dir.join(KEY_FILE), dir.join(CHAIN_FILE));
        if key.exists() || chain.exists() {
            return Ca::from_files(&key, &chain);
        }
        let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, name);
        dn.push(DnType::CommonName, format!("tally CA for {name}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = at(now)?;
        params.not_after = at(now + CA_LIFETIME.as_secs() as i64)?;
        params.serial_number = Some(serial());
        let cert = params.self_signed(&pair)?;
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| CaError::Io { what, path, source }
        };
        std::fs::create_dir_all(dir.join("ca")).map_err(io("creating", &dir.join("ca")))?;
        crate::fsutil::write_atomic(&key, pair.serialize_pem().as_bytes(), 0o600, false)
            .map_err(io("writing", &key))?;
        crate::fsutil::write_atomic(&chain, cert.pem().as_bytes(), 0o644, false)
            .map_err(io("writing", &chain))?;
        Ca::from_files(&key, &chain)
    }

    /// The CA from a PEM private key (PKCS#8, ECDSA P-256) and a PEM file
    /// whose first certificate is the CA's (its issuers may follow). The
    /// certificate must be a CA's and hold the key's public half.
    pub fn from_files(key: &Path, chain: &Path) -> Result<Ca, CaError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| CaError::Io {
                what: "reading",
                path: p.to_owned(),
                source,
            })
        };
        let pair = KeyPair::from_pem(&read(key)?)
            .map_err(|e| CaError::Config(format!("key {} is not a PEM private key: {e}", key.display())))?;
        let chain_pem = read(chain)?;
        let certs =
            pem_blocks(&chain_pem).map_err(|e| CaError::Config(format!("chain {}: {e}", chain.display())))?;
        let Some(first) = certs.first() else {
            return Err(CaError::Config(format!(
                "chain {} holds no certificate",
                chain.display()
            )));
        };
        let (_, cert) = x509_parser::parse_x509_certificate(first)
            .map_err(|e| CaError::Config(format!("chain {}: {e}", chain.display())))?;
        if !cert.is_ca() {
            return Err(CaError::Config(format!(
                "certificate in {} is not a CA certificate (basicConstraints CA:FALSE or absent)",
                chain.display()
            )));
        }
        if cert.public_key().subject_public_key.data.as_ref() != pair.public_key_raw() {
            return Err(CaError::Config(format!(
                "key {} is not the key of the certificate in {}",
                key.display(),
                chain.display()
            )));
        }
        let issuer = Issuer::from_ca_cert_der(&first.clone().into(), pair)
            .map_err(|e| CaError::Config(format!("certificate in {}: {e}", chain.display())))?;
        Ok(Ca { issuer, chain_pem })
    }

    /// The CA certificate and its issuers, PEM (what verifiers pin).
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// Records this CA's certificate in the data directory's history
    /// (`ca/history.pem`, every CA certificate used, oldest first) when it
    /// is not there yet — a rotated CA joins it, the earlier ones stay —
    /// and returns what verifiers pin: this CA's chain, then every earlier
    /// CA certificate, so certificates issued before a rotation still
    /// verify offline (at their issuance).
    pub fn trust_bundle(&self, dir: &Path) -> Result<String, CaError> {
        let path = dir.join(HISTORY_FILE);
        let old = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CaError::Io {
                    what: "reading",
                    path,
                    source,
                })
            }
        };
        let history = pem_blocks(&old).map_err(|e| CaError::Config(format!("{}: {e}", path.display())))?;
        let chain = pem_blocks(&self.chain_pem).map_err(CaError::Config)?;
        let current = chain.first().cloned().unwrap_or_default();
        if !history.contains(&current) {
            let mut text = old.clone();
            text.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", current.clone())));
            std::fs::create_dir_all(dir.join("ca")).map_err(|source| CaError::Io {
                what: "creating",
                path: dir.join("ca"),
                source,
            })?;
            crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644, true).map_err(|source| {
                CaError::Io {
                    what: "writing",
                    path: path.clone(),
                    source,
                }
            })?;
        }
        let mut bundle = self.chain_pem.clone();
        for c in history.iter().filter(|c| !chain.contains(c)) {
            bundle.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", c.clone())));
        }
        Ok(bundle)
    }

    /// Issues a certificate for `req` valid from `now` for [`LEAF_LIFETIME`],
    /// once the request's proof of possession verifies.
    pub fn issue(&self, req: &Request<'_>, now: i64) -> Result<Issued, CaError> {
        let key = PublicKey::from_pem(req.public_key_pem)
            .map_err(|e| CaError::Refused(format!("public_key: {e}")))?;
        if !key.verify(req.challenge, req.proof) {
            return Err(CaError::Refused(
                "the proof of possession does not verify: sign the challenge with the key to certify".into(),
            ));
        }
        let spki = SubjectPublicKeyInfo::from_pem(req.public_key_pem)
            .map_err(|e| CaError::Refused(format!("public_key: {e}")))?;
        let id = req.identity;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let san = id
            .san
            .clone()
            .try_into()
            .map_err(|_| CaError::Refused(format!("identity {:?} is not an IA5 URI", id.san)))?;
        params.subject_alt_names = vec![SanType::URI(san)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        let not_after = now + LEAF_LIFETIME.as_secs() as i64;
        params.not_before = at(now)?;
        params.not_after = at(not_after)?;
        let serial = serial();
        let serial_hex = hex::encode(serial.as_ref());
        params.serial_number = Some(serial);
        params.custom_extensions = std::iter::once(CustomExtension::from_oid_content(
            &fulcio::oid(fulcio::oid::ISSUER_V1),
            id.issuer.as_bytes().to_vec(),
        ))
        .chain(
            id.extensions()
                .into_iter()
                .map(|(n, v)| CustomExtension::from_oid_content(&fulcio::oid(n), fulcio::utf8_string(v))),
        )
        .collect();
        let leaf = params.signed_by(&spki, &self.issuer)?;
        let leaf_pem = leaf.pem();
        Ok(Issued {
            chain_pem: format!("{leaf_pem}{}", self.chain_pem),
            leaf_der: leaf.der().to_vec(),
            leaf_pem,
            serial: serial_hex,
            not_before: now,
            not_after,
        })
    }
}

/// A random positive 16-byte serial number (RFC 5280 allows up to 20).
fn serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

fn at(unix: i64) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|e| CaError::Refused(format!("time {unix} is out of range: {e}")))
}

/// The DER of every `CERTIFICATE` block of a PEM text, in order.
pub fn pem_blocks(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("not PEM: {e}"))?;
    if let Some(b) = blocks.iter().find(|b| b.tag() != "CERTIFICATE") {
        return Err(format!("a {:?} block where certificates were expected", b.tag()));
    }
    Ok(blocks.into_iter().map(pem::Pem::into_contents).collect())
}
