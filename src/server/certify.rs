//! Keyless signing, below HTTP (SPEC.md §15.3): a run's ephemeral key is
//! certified by the control plane's CA ([`certify`]) once the certificate
//! is durably in the log, and a pushed envelope's certificate-carrying
//! signatures are checked against the CA and the log ([`certified_keys`]).

use std::sync::Arc;

use ledger_format::certificate::CertificateEntry;
use ledger_format::hash::sha256;

use crate::attest::dsse::{Envelope, PublicKey};
use crate::identity::ca::{pem_blocks, CaError, Request};
use crate::identity::fulcio::Identity;
use crate::identity::oidc::{fulcio_identity, Claims};
use crate::identity::provenance::Expected;
use crate::server::intake::Refusal;
use crate::server::meta::Run;
use crate::server::{unix_now, App};

/// A certificate issued and logged.
#[derive(Debug)]
pub struct Certified {
    /// The certificate entry's log index.
    pub index: u64,
    /// The leaf then the CA's chain, PEM.
    pub chain_pem: String,
    /// Hex of its serial number.
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// The identity the CA binds to a run's key: the workflow (SAN and Build
/// Signer URI) under this control plane (issuer), and the run.
pub fn run_identity(app: &App, run: &Run) -> Identity {
    let base = format!("https://{}", app.cfg.origin);
    let workflow = format!("{base}/projects/{}/workflows/{}", run.project, run.workflow);
    Identity {
        san: workflow.clone(),
        issuer: base.clone(),
        build_signer_uri: workflow,
        run_invocation_uri: format!("{base}/runs/{}", run.id),
        runner_environment: Some(run.runner_type.clone()).filter(|r| !r.is_empty()),
        ..Identity::default()
    }
}

/// Issues a certificate for `public_key_pem` to `run` (an INITIALIZED run:
/// the caller checked), once `proof` (base64 of a signature over the run
/// id) verifies. A caller authenticated by a CI ID token (`ci`) gets the CI
/// identity its verified claims name (SPEC.md §15.6); any other caller, the
/// run's identity under this control plane. It appends its entry to the log and returns once that entry
/// is durable. The key is certified for [`crate::identity::ca::LEAF_LIFETIME`].
pub async fn certify(
    app: &Arc<App>,
    run: &Run,
    ci: Option<&Arc<Claims>>,
    public_key_pem: String,
    proof: &str,
) -> Result<Certified, Refusal> {
    let proof = crate::attest::dsse::decode_b64(proof)
        .ok_or_else(|| Refusal::Certificate("proof is not base64".into()))?;
    let identity = match ci {
        Some(c) => {
            // The run as `attestation init` described it must be the job
            // the token names (SPEC.md §15.7).
            let wrong = Expected::from_claims(c).run_contradictions(&run.runner_type, &run.runner_url);
            if !wrong.is_empty() {
                return Err(Refusal::Provenance(wrong));
            }
            fulcio_identity(c, &run_identity(app, run))
        }
        None => run_identity(app, run),
    };
    let now = unix_now();
    let (a, challenge) = (app.clone(), run.id.clone());
    let issued = app
        .cpu
        .run(move || {
            a.ca.issue(
                &Request {
                    public_key_pem: &public_key_pem,
                    challenge: challenge.as_bytes(),
                    proof: &proof,
                    identity: &identity,
                },
                now,
            )
        })
        .await
        .map_err(|e| match e {
            crate::server::cpu::CpuError::Saturated(_) => Refusal::Saturated,
            crate::server::cpu::CpuError::Failed(cause) => Refusal::Unavailable {
                what: "issuing a certificate",
                cause,
            },
        })?
        .map_err(|e| match e {
            CaError::Refused(m) => Refusal::Certificate(m),
            other => Refusal::Unavailable {
                what: "issuing a certificate",
                cause: other.to_string(),
            },
        })?;
    let digest = sha256(&issued.leaf_der);
    let entry = CertificateEntry {
        certificate_digest: digest,
        certificate_size: issued.leaf_der.len() as u64,
        serial: issued.serial.clone(),
        not_before: issued.not_before.max(0) as u64,
        not_after: issued.not_after.max(0) as u64,
        project: run.project.clone(),
        workflow: run.workflow.clone(),
        run: run.id.clone(),
    };
    entry
        .validate()
        .map_err(|e| Refusal::Certificate(e.to_string()))?;
    let unavailable = |cause: String| Refusal::Unavailable {
        what: "appending the certificate to the log",
        cause,
    };
    let appended = app
        .ledger
        .submit(entry.to_bytes(), vec![issued.leaf_der.clone()])
        .map_err(|e| unavailable(e.to_string()))?
        .await
        .map_err(|_| unavailable("the log stopped".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    // Trusted at once (the overlay); its row is written in the index
    // writer's next batch.
    app.index_certificate(appended.index, &entry);
    Ok(Certified {
        index: appended.index,
        chain_pem: issued.chain_pem,
        serial: issued.serial,
        not_after: issued.not_after,
    })
}

/// The leaf certificates (DER) of `env`'s certificate-carrying
/// signatures, each one this control plane issued and logged for `run`
/// and not expired at `now` (SPEC.md §15.3). Their keys are read by
/// [`certified_keys`] on the CPU pool.
///
/// The log's record is the trust: a leaf whose SHA-256 is a certificate
/// entry of this log for this run holds exactly the bytes the CA signed,
/// so its chain is not verified again here (the offline verifier does,
/// `tally verify --ca`); this saves a P-256 verification and a parse of
/// the chain and the CA per push.
pub fn logged_certificates(app: &App, run: &Run, env: &Envelope, now: i64) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut leaves = Vec::new();
    for s in env.signatures.iter().take(crate::attest::dsse::MAX_SIGNATURES) {
        let Some(chain) = &s.certificate else { continue };
        let leaf = pem_blocks(chain)
            .map_err(|e| Refusal::Certificate(format!("signatures[].certificate: {e}")))?
            .into_iter()
            .next()
            .ok_or_else(|| Refusal::Certificate("signatures[].certificate holds no certificate".into()))?;
        let digest = format!("sha256:{}", sha256(&leaf).to_hex());
        match app.logged_certificate_row(&digest).map_err(|e| Refusal::Unavailable {
            what: "reading the logged certificates",
            cause: e.to_string(),
        })? {
            Some((_, r, not_after)) if r == run.id => {
                if now > not_after {
                    return Err(Refusal::Certificate(format!(
                        "certificate {digest} expired at {not_after} (now {now}): request a new one"
                    )));
                }
                leaves.push(leaf);
            }
            Some(_) => {
                return Err(Refusal::Certificate(format!(
                    "certificate {digest} was issued for another run"
                )))
            }
            None => {
                return Err(Refusal::Certificate(format!(
                    "certificate {digest} is not in this log: only certificates the control plane issued and logged are trusted"
                )))
            }
        }
    }
    Ok(leaves)
}

/// The public keys of logged leaf certificates (DER), read straight from
/// their SubjectPublicKeyInfo. Runs on the CPU pool.
pub fn certified_keys(leaves: &[Vec<u8>]) -> Result<Vec<PublicKey>, Refusal> {
    leaves
        .iter()
        .map(|der| {
            let spki = crate::identity::cert::public_key_der(der)
                .map_err(|e| Refusal::Certificate(e.to_string()))?;
            PublicKey::from_spki_der(&spki).map_err(|e| Refusal::Certificate(e.to_string()))
        })
        .collect()
}

/// The certificate entry and its proof for an envelope signed keylessly
/// (its first certificate-carrying signature), for the offline bundle.
pub fn logged_certificate(
    app: &App,
    envelope: &[u8],
) -> Result<Option<crate::attest::bundle::LoggedCertificate>, crate::server::ServerError> {
    let Ok(env) = Envelope::parse(envelope) else {
        return Ok(None);
    };
    let Some(leaf) = env
        .signatures
        .iter()
        .filter_map(|s| s.certificate.as_deref())
        .find_map(|c| pem_blocks(c).ok().and_then(|b| b.into_iter().next()))
    else {
        return Ok(None);
    };
    let digest = format!("sha256:{}", sha256(&leaf).to_hex());
    let Some((index, _, _)) = app.logged_certificate_row(&digest)? else {
        return Ok(None);
    };
    let index = index as u64;
    Ok(Some(crate::attest::bundle::LoggedCertificate {
        log_index: index,
        entry: String::from_utf8_lossy(&app.ledger.entry(index)?).into_owned(),
        tlog_proof: app.tlog_proof(index)?,
    }))
}
