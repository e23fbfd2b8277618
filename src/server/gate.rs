//! The policy gate at intake (SPEC.md §13.5), below HTTP: the run's pinned
//! policies evaluated again by the control plane — on the statement, and on
//! every material whose bytes it holds (read back from the artifact store
//! and checked against the digest the statement names) — and the verdict
//! it logs: a SLSA VSA signed with the control plane's verdict key.
//!
//! What the client claims about policy results is never used, except for
//! materials the control plane never receives (`skip_upload`): their
//! client-side evaluations are copied from the signed statement and marked
//! `evaluated-by: client`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use ledger_format::hash::sha256;

use crate::attest::material::Kind;
use crate::attest::statement::{View, KIND_ANNOTATION};
use crate::contract::Contract;
use crate::identity::provenance::Verification;
use crate::policy::verdict::{self, Evaluator, Exception, Vsa, CLIENT_EVALUATIONS};
use crate::policy::{input, Evaluation, Plan};
use crate::server::intake::Refusal;
use crate::server::meta::{ExceptionRow, Run};
use crate::server::App;

fn unavailable(what: &'static str) -> impl Fn(String) -> Refusal {
    move |cause| Refusal::Unavailable { what, cause }
}

/// The run's plan and the commit its policies are pinned at, when its
/// contract has policies (`None`: no verdict).
pub async fn plan(
    app: &Arc<App>,
    run: &Run,
    contract: &Arc<Contract>,
) -> Result<Option<(Arc<Plan>, String)>, Refusal> {
    if contract.policies.is_empty() && contract.policy_groups.is_empty() {
        return Ok(None);
    }
    let commit = app
        .meta
        .policies_commit(&run.id)
        .map_err(|e| unavailable("reading the run's policies")(e.to_string()))?
        .ok_or_else(|| {
            unavailable("reading the run's policies")(format!("run {} has no pinned policies", run.id))
        })?;
    let (app, contract, blob, at) = (
        app.clone(),
        contract.clone(),
        run.contract.blob.clone(),
        commit.clone(),
    );
    tokio::task::spawn_blocking(move || app.plan(&contract, &blob, &at))
        .await
        .map_err(|e| unavailable("loading the run's policies")(e.to_string()))?
        .map(|p| Some((p, commit)))
        .map_err(unavailable("loading the run's policies"))
}

/// A material the statement names.
struct Named {
    name: String,
    kind: Kind,
    digest: String,
    value: Option<String>,
    annotations: BTreeMap<String, String>,
}

fn named(st: &View<'_>) -> Vec<Named> {
    let mut out = Vec::new();
    for (d, _) in st.descriptors() {
        let Some(name) = d.name.get() else { continue };
        let annotations: BTreeMap<String, String> = d
            .annotations
            .strings()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let Some(kind) = annotations.get(KIND_ANNOTATION).and_then(|k| Kind::parse(k)) else {
            continue;
        };
        let Some(hex) = d.digest.get("sha256") else {
            continue;
        };
        let value = annotations
            .get("tally.material.value")
            .cloned()
            .or_else(|| d.uri.get().map(|u| u.trim_start_matches("oci://").to_owned()));
        out.push(Named {
            name: name.to_owned(),
            kind,
            digest: format!("sha256:{}", hex.to_ascii_lowercase()),
            value,
            annotations,
        });
    }
    out
}

/// The bytes of an uploaded material, checked against its digest.
async fn fetch(app: &App, digest: &str) -> Result<Vec<u8>, String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let max = app.cfg.policy_max_input_bytes;
    let (len, mut stream) = app
        .artifacts
        .get(hex)
        .await
        .map_err(|e| format!("reading it from the artifact store: {e}"))?
        .ok_or_else(|| {
            "it was not uploaded, and the control plane evaluates policies on the bytes it holds".to_owned()
        })?;
    if len > max {
        return Err(format!(
            "it is {len} bytes; policies are evaluated on at most {max}"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading it from the artifact store: {e}"))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            return Err(format!("it is larger than {max} bytes"));
        }
    }
    if sha256(&bytes).to_hex() != hex {
        return Err("the stored bytes do not match the digest the statement names".into());
    }
    Ok(bytes)
}

/// Evaluates on the CPU pool, off the async workers.
async fn run_blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refusal> {
    app.cpu.run(f).await.map_err(|e| match e {
        crate::server::cpu::CpuError::Saturated(_) => Refusal::Saturated,
        crate::server::cpu::CpuError::Failed(e) => unavailable("evaluating policies")(e),
    })
}

/// Every evaluation of the run's policies on `st` (verified, with its
/// payload bytes `payload`).
pub async fn evaluate(
    app: &App,
    plan: &Arc<Plan>,
    contract: &Contract,
    st: &View<'_>,
    payload: &[u8],
) -> Result<Vec<Evaluation>, Refusal> {
    let mut out = Vec::new();
    // The client's own evaluations, read from the statement only when a
    // `skip_upload` material needs them (a second parse of the payload).
    let mut client: Option<Vec<Evaluation>> = None;
    for m in named(st) {
        if !plan.applies_to(&m.name, m.kind) {
            continue;
        }
        let skip_upload = contract
            .materials
            .iter()
            .any(|c| c.name == m.name && c.skip_upload);
        if skip_upload {
            let mut claimed: Vec<Evaluation> = client
                .get_or_insert_with(|| client_evaluations(payload))
                .iter()
                .filter(|e| e.material.as_deref() == Some(m.name.as_str()) && e.digest == m.digest)
                .cloned()
                .collect();
            let expected = plan.unevaluated(
                &m.name,
                m.kind,
                &m.digest,
                "the crafting CLI sent no evaluation of this material (it is not uploaded: skip_upload)",
                Evaluator::Client,
            );
            for e in expected {
                match claimed
                    .iter()
                    .position(|c| c.policy == e.policy && c.blob == e.blob)
                {
                    Some(i) => {
                        let mut c = claimed.swap_remove(i);
                        c.evaluated_by = Evaluator::Client;
                        c.blocking = e.blocking;
                        out.push(c);
                    }
                    None => out.push(e),
                }
            }
            continue;
        }
        let bytes = if m.kind.is_file() {
            match fetch(app, &m.digest).await {
                Ok(b) => Some(b),
                Err(why) => {
                    out.extend(plan.unevaluated(
                        &m.name,
                        m.kind,
                        &m.digest,
                        &format!("material `{}`: {why}", m.name),
                        Evaluator::ControlPlane,
                    ));
                    continue;
                }
            }
        } else {
            None
        };
        let plan = plan.clone();
        let evals = run_blocking(app, move || {
            let mi = input::Material {
                name: &m.name,
                kind: m.kind,
                digest: &m.digest,
                bytes: bytes.as_deref(),
                value: m.value.as_deref(),
                annotations: &m.annotations,
            };
            plan.material(&mi, Evaluator::ControlPlane)
        })
        .await?;
        out.extend(evals);
    }
    if plan.has_attestation_policies() {
        let (plan, payload) = (plan.clone(), payload.to_vec());
        let digest = format!("sha256:{}", sha256(&payload).to_hex());
        out.extend(
            run_blocking(app, move || {
                plan.statement(&payload, &digest, Evaluator::ControlPlane)
            })
            .await?,
        );
    }
    Ok(out)
}

/// The evaluations the crafting CLI put in the statement
/// (`internalParameters.policyEvaluations`); none when absent or unreadable.
fn client_evaluations(payload: &[u8]) -> Vec<Evaluation> {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.pointer(&format!(
                "/predicate/buildDefinition/internalParameters/{CLIENT_EVALUATIONS}"
            ))
            .cloned()
        })
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// The exception of `run` usable now, if any.
pub fn usable_exception(app: &App, run: &Run, now: i64) -> Result<Option<ExceptionRow>, Refusal> {
    Ok(app
        .meta
        .exception(&run.id)
        .map_err(|e| unavailable("reading the run's exception")(e.to_string()))?
        .filter(|e| e.until >= now))
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The signed VSA envelope's bytes for an accepted attestation.
#[allow(clippy::too_many_arguments)]
pub fn verdict(
    app: &App,
    run: &Run,
    policies_commit: &str,
    envelope_digest: &str,
    evaluations: Vec<Evaluation>,
    exception: Option<&ExceptionRow>,
    identity: Option<&Verification>,
    now: i64,
) -> Result<Vec<u8>, Refusal> {
    let result = verdict::result_of(&evaluations);
    let hex = envelope_digest.trim_start_matches("sha256:").to_owned();
    let vsa = Vsa {
        kind: verdict::STATEMENT_TYPE.into(),
        subject: vec![verdict::Subject {
            name: format!("{}/{}", run.workflow, run.id),
            digest: BTreeMap::from([("sha256".to_owned(), hex.clone())]),
        }],
        predicate_type: verdict::VSA_PREDICATE.into(),
        predicate: verdict::Predicate {
            verifier: verdict::Verifier {
                id: format!("https://tally.dev/control-plane/{}", app.cfg.origin),
            },
            time_verified: rfc3339(now),
            resource_uri: format!("tally:{}/{}/{}", run.project, run.workflow, run.id),
            policy: verdict::PolicyRef {
                uri: format!("git+contracts:{}.toml@{}", run.contract.name, run.contract.commit),
                digest: BTreeMap::from([("gitBlob".to_owned(), run.contract.blob.clone())]),
            },
            input_attestations: vec![verdict::InputAttestation {
                uri: "tally:envelope".into(),
                digest: BTreeMap::from([("sha256".to_owned(), hex)]),
            }],
            verification_result: result.into(),
            verified_levels: identity.map(|i| vec![i.level.clone()]).unwrap_or_default(),
            ci_identity: identity.cloned(),
            policies_commit: policies_commit.to_owned(),
            policy_evaluations: evaluations,
            exception: exception.filter(|_| result == "FAILED").map(|e| Exception {
                granted_by: e.granted_by.clone(),
                reason: e.reason.clone(),
                granted_at: rfc3339(e.granted_at),
                until: rfc3339(e.until),
            }),
        },
    };
    let payload = serde_json::to_vec(&vsa).map_err(|e| unavailable("writing the verdict")(e.to_string()))?;
    let env = app
        .verdict_key
        .sign_envelope(verdict::PAYLOAD_TYPE, &payload)
        .map_err(|e| unavailable("signing the verdict")(e.to_string()))?;
    serde_json::to_vec(&env).map_err(|e| unavailable("writing the verdict")(e.to_string()))
}
