//! A pushed attestation, below HTTP (SPEC.md §12.4): judged against the
//! exact contract revision its run was started with (`problems`, a pure
//! function of the contract, the run and the verified statement: every
//! problem is reported, in words a developer understands), the digests it
//! names for the search index (`digests`), and accepted (`accept`: verify,
//! judge, claim the run, append) or refused with a typed `Refusal`.

use std::sync::Arc;

use ledger_format::entry::Entry;
use ledger_format::hash::sha256;

use crate::attest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::attest::statement::View;
use crate::contract::check::{self, Binding, Evidence};
use crate::contract::{Contract, ContractRevision};
use crate::identity::oidc::Claims;
use crate::identity::provenance::Expected;
use crate::server::cpu::CpuError;
use crate::server::meta::{AttestationRow, DigestRow, Run, MAX_DIGESTS};
use crate::server::{gate, unix_now, App};

/// Every reason to refuse `st` pushed to `run` (empty: accept it): the
/// statement's shape, the contract check ([`check::check`]) bound to the
/// run, and the search index's bound on digests per attestation.
pub fn problems(contract: &Contract, run: &Run, st: &View<'_>, digests: &[DigestRow]) -> Vec<String> {
    let mut p = st.problems();
    let claimed = check::claimed_revision(st);
    let evidence = Evidence::from_statement(st, &claimed);
    let bound = Binding {
        workflow: &run.workflow,
        run: &run.id,
        contract: &run.contract,
    };
    p.extend(
        check::check(contract, &evidence, Some(bound))
            .iter()
            .map(ToString::to_string),
    );
    if digests.len() > MAX_DIGESTS {
        p.push(format!(
            "the statement names {} digests; the search index takes at most {MAX_DIGESTS} per attestation",
            digests.len(),
        ));
    }
    p
}

/// The digests the statement names, for the search index: subjects first,
/// then byproducts; a digest a name already carries is listed once (first
/// role).
pub fn digests(st: &View<'_>) -> Vec<DigestRow> {
    let mut out: Vec<DigestRow> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (d, role) in st.descriptors() {
        let name = d.name.as_str();
        for (alg, hex) in d.digest.strings() {
            let digest = format!("{alg}:{}", hex.to_ascii_lowercase());
            if !seen.insert((digest.clone(), name)) {
                continue;
            }
            out.push(DigestRow {
                digest,
                role: role.into(),
                name: name.to_owned(),
            });
        }
    }
    out
}

/// Why a push is refused. The log is unchanged whatever the reason.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The workflow has no key to verify with.
    #[error("no public key is trusted for workflow `{0}` (none registered, none in the contracts repository's keys/{0}/ at the run's commit) and no signature carries a certificate")]
    NoKey(String),
    /// No signature verifies with the workflow's keys.
    #[error("the envelope's signature does not verify: {0}")]
    Signature(String),
    /// Not an in-toto payload.
    /// A certificate-carrying signature whose certificate is not trusted
    /// (not issued and logged for this run, or its chain does not verify),
    /// or a certificate request the CA does not sign.
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("payloadType is {0:?}, not {IN_TOTO_PAYLOAD_TYPE}")]
    PayloadType(String),
    /// The payload is not a statement.
    #[error("the payload is not an in-toto statement: {0}")]
    Statement(String),
    /// A blocking policy failed (and no exception lets it through).
    #[error(
        "the attestation fails {} blocking polic{} of contract `{}` @ {}: {}",
        .problems.len(), if .problems.len() == 1 { "y" } else { "ies" }, .contract.name, .contract.commit, .problems.join("; ")
    )]
    Policy {
        /// The run's pinned revision.
        contract: ContractRevision,
        /// Every blocking violation.
        problems: Vec<String>,
        /// Every evaluation (blocking and advisory), for the answer.
        evaluations: Vec<crate::policy::Evaluation>,
    },
    /// The statement's provenance contradicts the verified CI identity the
    /// push was authenticated with (SPEC.md §15.7).
    #[error(
        "the statement's provenance contradicts the CI identity ({} problem(s)): {}",
        .0.len(), .0.join("; ")
    )]
    Provenance(Vec<String>),
    /// The statement breaks the run's contract.
    #[error(
        "the attestation does not satisfy contract `{}` @ {} ({} problem(s)): {}",
        .contract.name, .contract.commit, .problems.len(), .problems.join("; ")
    )]
    Violations {
        /// The run's pinned revision.
        contract: ContractRevision,
        /// Every problem.
        problems: Vec<String>,
    },
    /// The publication backlog is nearly full.
    #[error("the log is catching up; try again")]
    Overload,
    /// Every core is busy verifying or evaluating, and the queue is full.
    #[error("{}", crate::server::cpu::Saturated)]
    Saturated,
    /// Another push to the same run is in flight or was just accepted.
    #[error("run {0} is already being pushed")]
    Busy(String),
    /// Something the push needs is unavailable (logged; not the client's fault).
    #[error("{what}: {cause}")]
    Unavailable {
        /// What.
        what: &'static str,
        /// Why (internal: logged, not sent).
        cause: String,
    },
}

impl Refusal {
    /// The machine code (SPEC.md §12.4), also the metrics' reason label.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoKey(_) => "no_key",
            Refusal::Signature(_) => "signature",
            Refusal::Certificate(_) => "certificate",
            Refusal::PayloadType(_) => "payload_type",
            Refusal::Statement(_) => "statement",
            Refusal::Violations { .. } => "contract_violation",
            Refusal::Provenance(_) => "provenance_mismatch",
            Refusal::Policy { .. } => "policy_violation",
            Refusal::Overload | Refusal::Saturated => "overload",
            Refusal::Busy(_) => "run_finished",
            Refusal::Unavailable { .. } => "unavailable",
        }
    }
}

/// An accepted attestation: durably sequenced at `index`.
#[derive(Debug)]
pub struct Accepted {
    /// Its log index.
    pub index: u64,
    /// The entry's bytes (tally.dev/entry/v1).
    pub entry: Vec<u8>,
    /// Its search-index row.
    pub row: AttestationRow,
    /// The signed verdict (VSA envelope) logged with it, if its contract has policies.
    pub verdict: Option<Vec<u8>>,
    /// The policy evaluations it records.
    pub evaluations: Vec<crate::policy::Evaluation>,
}

/// The run's contract: from the store's cache, or read from git off the
/// async workers on a miss.
async fn run_contract(app: &App, rev: &ContractRevision) -> Result<Arc<Contract>, Refusal> {
    if let Some(c) = app.contracts.cached_contract(&rev.blob) {
        return Ok(c);
    }
    let (store, rev) = (app.contracts.clone(), rev.clone());
    let unavailable = |cause: String| Refusal::Unavailable {
        what: "reading the run's contract",
        cause,
    };
    tokio::task::spawn_blocking(move || store.contract(&rev))
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(e.to_string()))
}

/// The keys a key-based signature of `run` may use: those registered
/// through the admin API, and those the contracts repository lists for the
/// workflow at the commit the run was pinned at (read off the async
/// workers on a miss; SPEC.md §15.5); and that commit (`None` for a run
/// started before runs were pinned).
async fn workflow_keys(
    app: &Arc<App>,
    run: &Run,
) -> Result<(Arc<Vec<crate::attest::dsse::PublicKey>>, Option<String>), Refusal> {
    let unavailable = |cause: String| Refusal::Unavailable {
        what: "reading the workflow's keys",
        cause,
    };
    let registered = app
        .workflow_keys(&run.workflow)
        .map_err(|e| unavailable(e.to_string()))?;
    let Some(commit) = app
        .meta
        .policies_commit(&run.id)
        .map_err(|e| unavailable(e.to_string()))?
    else {
        // A run started before runs were pinned: the registered keys only.
        return Ok((registered, None));
    };
    let pinned = match app.cached_repository_keys(&run.workflow, &commit) {
        Some(k) => k,
        None => {
            let (a, workflow, at) = (app.clone(), run.workflow.clone(), commit.clone());
            tokio::task::spawn_blocking(move || a.repository_keys(&workflow, &at))
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .map_err(|e| unavailable(e.to_string()))?
        }
    };
    if pinned.is_empty() {
        return Ok((registered, Some(commit)));
    }
    Ok((
        Arc::new(registered.iter().chain(pinned.iter()).cloned().collect()),
        Some(commit),
    ))
}

/// Verifies, checks and appends an attestation pushed to `run` (SPEC.md
/// §12.4): the envelope's signature against the workflow's keys, the
/// statement against the run's pinned contract ([`problems`]) and, for a
/// caller authenticated by a CI ID token (`ci`), its provenance against the
/// token's claims (SPEC.md §15.7), then one claim per run and the append.
/// Returns once the entry is durable.
pub async fn accept(
    app: &Arc<App>,
    run: &Run,
    env: Envelope,
    bytes: Vec<u8>,
    ci: Option<&Claims>,
) -> Result<Accepted, Refusal> {
    let (keys, pinned_at) = workflow_keys(app, run).await?;
    // Keyless signatures: certificates this control plane logged for the run.
    let now = unix_now();
    let leaves = crate::server::certify::logged_certificates(app, run, &env, now)?;
    if keys.is_empty() && leaves.is_empty() {
        return Err(Refusal::NoKey(run.workflow.clone()));
    }
    // Verification is the CPU a push can cost before it is known genuine:
    // on the bounded pool, not on the threads serving every other request.
    let verified = app
        .cpu
        .run(move || {
            let verified = if leaves.is_empty() {
                env.verify(&keys)
            } else {
                let mut all = keys.to_vec();
                all.extend(crate::server::certify::certified_keys(&leaves)?);
                env.verify(&all)
            };
            verified.map_err(|e| Refusal::Signature(e.to_string()))
        })
        .await
        .map_err(|e| match e {
            CpuError::Saturated(_) => Refusal::Saturated,
            CpuError::Failed(cause) => Refusal::Unavailable {
                what: "verifying the signature",
                cause,
            },
        })??;
    if verified.payload_type() != IN_TOTO_PAYLOAD_TYPE {
        return Err(Refusal::PayloadType(verified.payload_type().to_owned()));
    }
    let st = View::parse(verified.payload()).map_err(|e| Refusal::Statement(e.to_string()))?;
    let contract = run_contract(app, &run.contract).await?;
    let digests = digests(&st);
    let mut found = problems(&contract, run, &st, &digests);
    // The pin the statement records is the run's (SPEC.md §15.5): what an
    // auditor reads the keys and policies at.
    if let (Some(stated), Some(pin)) = (st.external().contracts_commit.get(), &pinned_at) {
        if stated != pin {
            found.push(format!(
                "externalParameters.contractsCommit is {stated:?}; the run is pinned at {pin}"
            ));
        }
    }
    if !found.is_empty() {
        return Err(Refusal::Violations {
            contract: run.contract.clone(),
            problems: found,
        });
    }
    let identity = match ci {
        Some(c) => Some(Expected::from_claims(c).check(&st).map_err(Refusal::Provenance)?),
        None => None,
    };
    // The policy gate: evaluated again here, at the run's pinned revision.
    let digest = sha256(&bytes);
    let now = unix_now();
    let mut verdict = None;
    let mut evaluations = Vec::new();
    let planned = gate::plan(app, run, &contract).await?;
    if let Some((plan, commit)) = &planned {
        evaluations = gate::evaluate(app, plan, &contract, &st, verified.payload()).await?;
        let blocking = crate::policy::violations(&evaluations);
        let exception = if blocking.is_empty() {
            None
        } else {
            match gate::usable_exception(app, run, now)? {
                Some(e) => Some(e),
                None => {
                    return Err(Refusal::Policy {
                        contract: run.contract.clone(),
                        problems: blocking.iter().map(ToString::to_string).collect(),
                        evaluations,
                    })
                }
            }
        };
        verdict = Some(gate::verdict(
            app,
            run,
            commit,
            &digest.to_hex(),
            evaluations.clone(),
            exception.as_ref(),
            identity.as_ref(),
            now,
        )?);
    } else if identity.is_some() {
        // No policies, but a CI identity vouched for the provenance: the
        // verdict records what it verified.
        verdict = Some(gate::verdict(
            app,
            run,
            "",
            &digest.to_hex(),
            Vec::new(),
            None,
            identity.as_ref(),
            now,
        )?);
    }
    let s = app.ledger.sizes();
    if s.sequenced.saturating_sub(s.published) > app.ledger.max_backlog() * 9 / 10 {
        return Err(Refusal::Overload);
    }
    // Claim the run: one attestation per run, even under concurrent pushes.
    {
        let mut p = app.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.contains_key(&run.id) {
            return Err(Refusal::Busy(run.id.clone()));
        }
        p.insert(run.id.clone(), None);
    }
    let entry = Entry {
        envelope_digest: digest,
        envelope_size: bytes.len() as u64,
        contract: run.contract.clone(),
        project: run.project.clone(),
        workflow: run.workflow.clone(),
        run: run.id.clone(),
        verdict: verdict.as_ref().map(|v| (sha256(v), v.len() as u64)),
    }
    .to_bytes();
    let mut bodies = vec![bytes];
    bodies.extend(verdict.clone());
    let appended = match app.ledger.submit(entry.clone(), bodies) {
        Ok(rx) => match rx.await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the log stopped".to_owned()),
        },
        Err(e) => Err(e.to_string()),
    };
    let appended = appended.map_err(|cause| {
        app.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&run.id);
        Refusal::Unavailable {
            what: "appending to the log",
            cause,
        }
    })?;
    let index = appended.index;
    let row = AttestationRow {
        log_index: index as i64,
        envelope_digest: format!("sha256:{}", digest.to_hex()),
        workflow: run.workflow.clone(),
        project: run.project.clone(),
        run_id: run.id.clone(),
        contract: run.contract.clone(),
        created_at: unix_now(),
    };
    app.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run.id.clone(), Some((row.log_index, row.envelope_digest.clone())));
    app.index((row.clone(), digests));
    Ok(Accepted {
        index,
        entry,
        row,
        verdict,
        evaluations,
    })
}
