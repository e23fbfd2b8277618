//! Reading and checking a certificate chain offline (SPEC.md §15.2): every
//! certificate signed by the next, the last by a pinned root, each valid at
//! the given moment; the leaf a code-signing end-entity certificate. What
//! it yields is the identity the CA bound to the leaf's key.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::ca::pem_blocks;
use super::fulcio::{self, Identity};

/// Why a chain is not trusted.
#[derive(Debug, thiserror::Error)]
#[error("certificate chain: {0}")]
pub struct CertError(pub String);

/// A leaf certificate whose chain verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who it vouches for.
    pub identity: Identity,
    /// Its public key, PEM SubjectPublicKeyInfo.
    pub public_key_pem: String,
    /// Hex of its serial number.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, c) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError("trailing bytes after a certificate".into()));
    }
    Ok(c)
}

/// The SubjectPublicKeyInfo DER of the certificate `der` (one certificate,
/// nothing after it).
pub fn public_key_der(der: &[u8]) -> Result<Vec<u8>, CertError> {
    Ok(parse(der)?.public_key().raw.to_vec())
}

/// Verifies `chain_pem` (leaf first, then intermediates) against the
/// certificates of `roots_pem`, everything valid at unix time `at`.
pub fn verify_chain(chain_pem: &str, roots_pem: &str, at: i64) -> Result<Verified, CertError> {
    let bad = |m: String| CertError(m);
    let chain_der = pem_blocks(chain_pem).map_err(bad)?;
    let roots_der = pem_blocks(roots_pem).map_err(|e| bad(format!("roots: {e}")))?;
    if chain_der.is_empty() {
        return Err(bad("no certificate".into()));
    }
    if chain_der.len() > 8 {
        return Err(bad(format!(
            "{} certificates; at most 8 are read",
            chain_der.len()
        )));
    }
    let chain = chain_der
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let roots = roots_der
        .iter()
        .map(|d| parse(d))
        .collect::<Result<Vec<_>, _>>()?;
    let when = x509_parser::time::ASN1Time::from_timestamp(at).map_err(|e| bad(e.to_string()))?;
    for (i, c) in chain.iter().enumerate() {
        if !c.validity().is_valid_at(when) {
            return Err(bad(format!(
                "certificate {i} ({}) is not valid at {at}: valid {} to {}",
                c.subject(),
                c.validity().not_before,
                c.validity().not_after
            )));
        }
        if i > 0 && !c.is_ca() {
            return Err(bad(format!(
                "certificate {i} ({}) signs another but is not a CA",
                c.subject()
            )));
        }
        if let Some(next) = chain.get(i + 1) {
            c.verify_signature(Some(next.public_key())).map_err(|e| {
                bad(format!(
                    "certificate {i} is not signed by certificate {}: {e}",
                    i + 1
                ))
            })?;
        }
    }
    // The top of the chain is a pinned root, or is signed by one.
    let top = chain.last().ok_or_else(|| bad("no certificate".into()))?;
    let anchored = roots.iter().any(|r| {
        r.is_ca()
            && r.validity().is_valid_at(when)
            && (r.as_ref() == top.as_ref() || top.verify_signature(Some(r.public_key())).is_ok())
    });
    if !anchored {
        return Err(bad(format!(
            "{} is not a pinned root and no pinned root signed it",
            top.issuer()
        )));
    }
    let leaf = &chain[0];
    if leaf.is_ca() {
        return Err(bad("the leaf is a CA certificate".into()));
    }
    let code_signing = leaf
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.code_signing);
    if !code_signing {
        return Err(bad(
            "the leaf is not a code-signing certificate (extendedKeyUsage)".into(),
        ));
    }
    let identity = identity_of(leaf)?;
    Ok(Verified {
        identity,
        public_key_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", leaf.public_key().raw.to_vec())),
        serial: hex::encode(leaf.raw_serial()),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    })
}

/// The identity a leaf carries: its URI SAN and Fulcio extensions.
fn identity_of(leaf: &X509Certificate<'_>) -> Result<Identity, CertError> {
    let mut id = Identity::default();
    for ext in leaf.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                if let GeneralName::URI(u) = n {
                    id.san = (*u).to_owned();
                }
            }
            continue;
        }
        let oid: Vec<u64> = match ext.oid.iter() {
            Some(it) => it.collect(),
            None => continue,
        };
        let Some((&n, arc)) = oid.split_last() else {
            continue;
        };
        if arc != fulcio::oid(0).split_last().map_or(&[][..], |(_, a)| a) || n == fulcio::oid::ISSUER_V1 {
            continue;
        }
        let value = fulcio::read_utf8_string(ext.value)
            .ok_or_else(|| CertError(format!("extension {} is not a DER UTF8String", fulcio::dotted(n))))?
            .to_owned();
        use fulcio::oid as o;
        let slot = match n {
            o::ISSUER => {
                id.issuer = value;
                continue;
            }
            o::BUILD_SIGNER_URI => {
                id.build_signer_uri = value;
                continue;
            }
            o::RUN_INVOCATION_URI => {
                id.run_invocation_uri = value;
                continue;
            }
            o::BUILD_SIGNER_DIGEST => &mut id.build_signer_digest,
            o::RUNNER_ENVIRONMENT => &mut id.runner_environment,
            o::SOURCE_REPOSITORY_URI => &mut id.source_repository_uri,
            o::SOURCE_REPOSITORY_DIGEST => &mut id.source_repository_digest,
            o::SOURCE_REPOSITORY_REF => &mut id.source_repository_ref,
            o::BUILD_CONFIG_URI => &mut id.build_config_uri,
            _ => continue,
        };
        *slot = Some(value);
    }
    if id.san.is_empty() {
        return Err(CertError(
            "the leaf names no URI identity (subjectAltName)".into(),
        ));
    }
    if id.issuer.is_empty() {
        return Err(CertError(format!(
            "the leaf has no issuer extension ({})",
            fulcio::dotted(fulcio::oid::ISSUER)
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::super::ca::{Ca, CaError, Issued, Request, LEAF_LIFETIME};
    use super::*;
    use crate::attest::signing::{Algorithm, SigningKey};

    const NOW: i64 = 1_796_000_000;

    fn identity() -> Identity {
        Identity {
            san: "https://tally.example/workflows/product-security/psirt-advisories".into(),
            issuer: "https://tally.example".into(),
            build_signer_uri: "https://tally.example/workflows/product-security/psirt-advisories".into(),
            run_invocation_uri: "https://tally.example/api/v1/runs/run-1".into(),
            source_repository_uri: Some("https://github.com/acme/widget".into()),
            source_repository_ref: Some("refs/heads/main".into()),
            ..Identity::default()
        }
    }

    /// `key` certified by `ca` for `challenge`, the proof signed by `signer` over `signed`.
    fn request(
        ca: &Ca,
        key: &SigningKey,
        challenge: &[u8],
        signer: &SigningKey,
        signed: &[u8],
    ) -> Result<Issued, CaError> {
        let proof = signer.sign(signed).unwrap();
        let req = Request {
            public_key_pem: key.public_pem(),
            challenge,
            proof: &proof,
            identity: &identity(),
        };
        ca.issue(&req, NOW)
    }

    fn issue(ca: &Ca, key: &SigningKey, challenge: &[u8]) -> Result<Issued, CaError> {
        request(ca, key, challenge, key, challenge)
    }

    #[test]
    fn an_issued_certificate_verifies_and_carries_its_identity() {
        let d = tempfile::tempdir().unwrap();
        let ca = Ca::open_or_create(d.path(), "tally.example/log", NOW - 10).unwrap();
        for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let key = SigningKey::generate(alg).unwrap();
            let issued = issue(&ca, &key, b"run-1").unwrap();
            let v = verify_chain(&issued.chain_pem, ca.chain_pem(), NOW + 1).unwrap();
            assert_eq!(v.identity, identity());
            assert_eq!(v.public_key_pem.trim(), key.public_pem().trim());
            assert_eq!(v.not_after - v.not_before, LEAF_LIFETIME.as_secs() as i64);
            assert_eq!(v.serial, issued.serial);
            // Outside its validity, or against another root: refused.
            let late = verify_chain(&issued.chain_pem, ca.chain_pem(), NOW + 601).unwrap_err();
            assert!(late.to_string().contains("not valid at"), "{late}");
            let other = Ca::open_or_create(tempfile::tempdir().unwrap().path(), "other", NOW).unwrap();
            let e = verify_chain(&issued.leaf_pem, other.chain_pem(), NOW + 1).unwrap_err();
            assert!(e.to_string().contains("not a pinned root"), "{e}");
            // The CA's own certificate is no leaf.
            let e = verify_chain(ca.chain_pem(), ca.chain_pem(), NOW + 1).unwrap_err();
            assert!(e.to_string().contains("leaf is a CA"), "{e}");
        }
    }

    /// A rotated CA (the operator's new key and certificate in the same
    /// data directory) joins the history: the trust bundle then holds both,
    /// and a certificate the first CA issued before the rotation still
    /// verifies against it, at its issuance.
    #[test]
    fn after_a_rotation_the_trust_bundle_still_verifies_earlier_certificates() {
        let d = tempfile::tempdir().unwrap();
        let first = Ca::open_or_create(d.path(), "tally.example/log", NOW - 10).unwrap();
        assert_eq!(first.trust_bundle(d.path()).unwrap(), first.chain_pem());
        let key = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        let before = issue(&first, &key, b"run-1").unwrap();
        // The operator's new CA, made elsewhere, supplied by path.
        let made = tempfile::tempdir().unwrap();
        let second = Ca::open_or_create(made.path(), "tally.example/log", NOW).unwrap();
        let rotated =
            Ca::from_files(&made.path().join("ca/key.pem"), &made.path().join("ca/chain.pem")).unwrap();
        let bundle = rotated.trust_bundle(d.path()).unwrap();
        assert_eq!(rotated.trust_bundle(d.path()).unwrap(), bundle, "recorded once");
        assert!(bundle.starts_with(second.chain_pem()), "the active chain first");
        assert_eq!(crate::identity::ca::pem_blocks(&bundle).unwrap().len(), 2);
        verify_chain(&before.chain_pem, &bundle, NOW + 1).unwrap();
        let after = issue(&rotated, &key, b"run-2").unwrap();
        verify_chain(&after.chain_pem, &bundle, NOW + 1).unwrap();
        // Only the active CA's chain is what intake trusts.
        assert!(verify_chain(&before.chain_pem, rotated.chain_pem(), NOW + 1).is_err());
    }

    #[test]
    fn the_ca_is_kept_across_restarts_and_refuses_a_key_without_proof() {
        let d = tempfile::tempdir().unwrap();
        let first = Ca::open_or_create(d.path(), "tally.example/log", NOW).unwrap();
        let again = Ca::open_or_create(d.path(), "tally.example/log", NOW + 5).unwrap();
        assert_eq!(first.chain_pem(), again.chain_pem());
        let key = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        let other = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        let e = request(&again, &key, b"run-1", &other, b"run-1").unwrap_err();
        assert!(e.to_string().contains("proof of possession"), "{e}");
        // The right key, but over something else than the challenge: refused too.
        let wrong = request(&again, &key, b"run-1", &key, b"run-2");
        assert!(wrong.is_err());
    }

    #[test]
    fn an_operator_ca_must_be_a_ca_holding_the_given_key() {
        let d = tempfile::tempdir().unwrap();
        let ca = Ca::open_or_create(d.path(), "tally.example/log", NOW).unwrap();
        let key = d.path().join("ca/key.pem");
        let chain = d.path().join("ca/chain.pem");
        assert!(Ca::from_files(&key, &chain).is_ok());
        // Another key with this certificate.
        let other = tempfile::tempdir().unwrap();
        Ca::open_or_create(other.path(), "x", NOW).unwrap();
        let e = Ca::from_files(&other.path().join("ca/key.pem"), &chain).unwrap_err();
        assert!(e.to_string().contains("is not the key of the certificate"), "{e}");
        // A leaf given as the CA certificate.
        let k = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
        let leaf = issue(&ca, &k, b"r").unwrap();
        let leaf_file = d.path().join("leaf.pem");
        std::fs::write(&leaf_file, &leaf.leaf_pem).unwrap();
        let e = Ca::from_files(&key, &leaf_file).unwrap_err();
        assert!(e.to_string().contains("not a CA certificate"), "{e}");
        // Not PEM at all.
        std::fs::write(&leaf_file, "garbage").unwrap();
        assert!(Ca::from_files(&key, &leaf_file).is_err());
    }
}
