//! Runs (SPEC.md §12.4): start one against the contracts repository's
//! pinned revision, describe, list, end one, and push its attestation. The
//! decisions are below this layer (`contract::check`, `server::intake`);
//! here they meet HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{authenticate, Principal};
use super::body::{query, read_json};
use super::error::{ApiError, ApiResult};
use crate::attest::dsse::Envelope;
use crate::contract::check::{self, Evidence};
use crate::contract::store::StoreError;
use crate::server::intake::{self, Refusal};
use crate::server::meta::{RefusalRow, Run};
use crate::server::{unix_now, App};
use crate::wire;

fn store_error(workflow: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownWorkflow(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_workflow",
            format!("workflow `{workflow}` is not declared in the contracts repository's workflows.toml"),
        )
        .hint("ask SecOps to declare it by pull request"),
        StoreError::NotOnBranch { .. }
        | StoreError::Repo(crate::contract::repo::RepoError::UnknownRevision(_)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "contract_revision",
            e.to_string(),
        )
        .hint("pin a commit of the contracts repository's main branch, or pin none"),
        other => ApiError::unavailable_because("the contracts repository", other, 5),
    }
}

/// A run as the API shows it.
pub fn run_wire(r: &Run) -> wire::Run {
    wire::Run {
        id: r.id.clone(),
        workflow: r.workflow.clone(),
        project: r.project.clone(),
        version: r.version.clone(),
        status: r.status.clone(),
        contract_name: r.contract.name.clone(),
        contract_commit: r.contract.commit.clone(),
        contract_blob: r.contract.blob.clone(),
        runner_type: r.runner_type.clone(),
        runner_url: r.runner_url.clone(),
        created_at: r.created_at,
        finished_at: r.finished_at,
        reason: r.reason.clone(),
        log_index: r.log_index,
        envelope_digest: r.envelope_digest.clone(),
        oci_attestations: None,
        exception: None,
    }
}

pub(super) async fn create_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let who = authenticate(&app, &headers).await?;
    let (req, _): (wire::StartRun, _) = read_json(&app, &headers, body).await?;
    who.may(&req.workflow)?;
    let store = app.contracts.clone();
    let (wf, pinned) = (req.workflow.clone(), req.contract_revision.clone());
    let resolved = tokio::task::spawn_blocking(move || {
        let _ = store.refresh();
        let r = store.resolve(&wf, pinned.as_deref())?;
        let text = store.blob(&r.revision.blob)?;
        Ok::<_, StoreError>((r, text))
    })
    .await
    .map_err(ApiError::internal)?;
    let (resolved, text) = resolved.map_err(|e| store_error(&req.workflow, e))?;
    if let Some(p) = &req.project {
        if *p != resolved.workflow.project {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "project",
                format!(
                    "workflow `{}` belongs to project `{}`, not `{p}`",
                    req.workflow, resolved.workflow.project
                ),
            ));
        }
    }
    let c = &resolved.contract;
    if !check::check(c, &Evidence::runner(&req.runner.kind), None).is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "runner_mismatch",
            format!(
                "contract `{}` requires runner `{}` but this is `{}`",
                c.name, c.runner, req.runner.kind
            ),
        ));
    }
    // A contract with policies pins them at the commit it was resolved at:
    // loaded (and compiled) now, so a broken policy refuses the run here,
    // and sent to the crafting CLI, which evaluates the same bytes.
    let plan = if c.policies.is_empty() && c.policy_groups.is_empty() {
        None
    } else {
        let (a, contract, blob, at) = (
            app.clone(),
            c.clone(),
            resolved.revision.blob.clone(),
            resolved.at.clone(),
        );
        let plan = tokio::task::spawn_blocking(move || a.plan(&contract, &blob, &at))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "policy",
                    format!("the policies of contract `{}` at {} do not load: {e}", c.name, resolved.at),
                )
                .hint("tally contract lint <contracts checkout> names the problem; fix it in the contracts repository")
            })?;
        Some(plan)
    };
    let now = unix_now();
    let mut rnd = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let run = Run {
        id: format!("run-{}", hex::encode(rnd)),
        workflow: req.workflow.clone(),
        project: resolved.workflow.project.clone(),
        version: req.version.clone(),
        status: "INITIALIZED".into(),
        contract: resolved.revision.clone(),
        runner_type: req.runner.kind.clone(),
        runner_url: req.runner.url.clone(),
        created_at: now,
        finished_at: None,
        reason: None,
        log_index: None,
        envelope_digest: None,
    };
    // The pin first (the contracts repository's commit: its policies and
    // `keys/<workflow>/` are read there): a run row never exists without it
    // (a crash between the two leaves only an unused pin).
    app.meta
        .set_policies_commit(&run.id, &resolved.at)
        .map_err(ApiError::meta)?;
    app.meta.insert_run(&run).map_err(ApiError::meta)?;
    let answer = wire::RunStarted {
        run: run_wire(&run),
        expires_at: now + app.cfg.run_ttl_secs as i64,
        contract: wire::RunContract {
            name: run.contract.name.clone(),
            commit: run.contract.commit.clone(),
            blob: run.contract.blob.clone(),
            text: String::from_utf8_lossy(&text).into_owned(),
            policies_commit: if plan.is_some() {
                resolved.at.clone()
            } else {
                String::new()
            },
            pinned_at: resolved.at.clone(),
            policies: plan.map(|p| p.files.clone()).unwrap_or_default(),
        },
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn find_run(app: &App, who: &Principal, id: &str) -> ApiResult<Run> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "unknown_run", format!("no run {id}"));
    let run = app.meta.run(id).map_err(ApiError::meta)?.ok_or_else(unknown)?;
    // A token of another workflow learns nothing, not even that the run exists.
    if who.may(&run.workflow).is_err() {
        return Err(unknown());
    }
    let mut run = run;
    overlay_pending(app, &mut run);
    Ok(run)
}

/// [`find_run`], expired first when its time is up.
pub(super) fn current_run(app: &App, who: &Principal, id: &str) -> ApiResult<Run> {
    let run = find_run(app, who, id)?;
    let now = unix_now();
    if run.status == "INITIALIZED" && run.created_at + app.cfg.run_ttl_secs as i64 <= now {
        let _ = app.meta.expire_runs(run.created_at + 1, now);
        return find_run(app, who, id);
    }
    Ok(run)
}

/// [`current_run`], which must still be INITIALIZED (409 `run_finished`).
pub(super) fn open_run(app: &App, who: &Principal, id: &str) -> ApiResult<Run> {
    let run = current_run(app, who, id)?;
    if run.status != "INITIALIZED" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("run {id} is {}; start a new run", run.status),
        ));
    }
    Ok(run)
}

/// A run appended whose row the index writer has not written yet is SUCCEEDED.
fn overlay_pending(app: &App, run: &mut Run) {
    if let Some(Some((index, digest))) = app.pending.lock().unwrap_or_else(|p| p.into_inner()).get(&run.id) {
        run.status = "SUCCEEDED".into();
        run.log_index = Some(*index);
        run.envelope_digest = Some(digest.clone());
    }
}

pub(super) async fn describe_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Run>> {
    let who = authenticate(&app, &headers).await?;
    let run = find_run(&app, &who, &id)?;
    let mut v = run_wire(&run);
    // Where the mirror put its attestation in the OCI store (SPEC.md §12.7).
    if let Some(i) = run.log_index {
        v.oci_attestations = Some(app.meta.oci_attestations(i).map_err(ApiError::meta)?);
    }
    v.exception = app
        .meta
        .exception(&run.id)
        .map_err(ApiError::meta)?
        .map(|e| wire::ExceptionGranted {
            run_id: e.run_id,
            granted_by: e.granted_by,
            reason: e.reason,
            granted_at: e.granted_at,
            until: e.until,
        });
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<wire::RunList>> {
    let who = authenticate(&app, &headers).await?;
    let q = query(q)?;
    if let Some(w) = &q.workflow {
        who.may(w)?;
    }
    let status = q.status.as_deref().map(str::to_ascii_uppercase);
    let runs = app
        .meta
        .list_runs(
            q.workflow.as_deref(),
            status.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .map_err(ApiError::internal)?;
    let runs = runs
        .into_iter()
        .filter(|r| who.may(&r.workflow).is_ok())
        .map(|mut r| {
            overlay_pending(&app, &mut r);
            run_wire(&r)
        })
        .collect();
    Ok(Json(wire::RunList { runs }))
}

pub(super) async fn reset_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<wire::Run>> {
    let who = authenticate(&app, &headers).await?;
    let (req, _): (wire::ResetRun, _) = read_json(&app, &headers, body).await?;
    let run = find_run(&app, &who, &id)?;
    if app
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&run.id)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("run {id} is being pushed or was just accepted"),
        ));
    }
    let status = match req.trigger.as_str() {
        "failure" => "FAILED",
        "cancellation" => "CANCELLED",
        other => {
            return Err(ApiError::bad(format!(
                "trigger {other:?} is not failure or cancellation"
            )))
        }
    };
    if !app
        .meta
        .finish_run(&run.id, status, req.reason.as_deref(), unix_now())
        .map_err(ApiError::meta)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("run {id} is {}, not in progress", run.status),
        ));
    }
    let run = find_run(&app, &who, &id)?;
    Ok(Json(run_wire(&run)))
}

fn reject(app: &App, who: &Principal, run: &Run, reason: &str, e: ApiError) -> ApiError {
    app.metrics.rejected(&run.workflow, reason);
    // The server's own faults (5xx) are not the caller's to pay for, nor
    // are they refusals of the push: only the client's are recorded.
    if e.status().is_client_error() {
        app.refusals.spend(who.id());
        let row = RefusalRow {
            run_id: run.id.clone(),
            workflow: run.workflow.clone(),
            caller: who.id().to_owned(),
            code: reason.to_owned(),
            message: e.message().to_owned(),
            at: unix_now(),
        };
        let outbox = app.integrations.refused(&row);
        match app.meta.record_refusal(&row, &outbox) {
            Ok(()) if !outbox.is_empty() => app.integrations.wake(),
            Ok(()) => {}
            Err(m) => tracing::warn!(run = %run.id, error = %m, "could not record a refused push"),
        }
    }
    tracing::info!(
        workflow = %run.workflow,
        run = %run.id,
        reason,
        status = e.status().as_u16(),
        "push refused"
    );
    e
}

/// A refusal as the client reads it.
fn refusal(e: Refusal) -> ApiError {
    let code = e.code();
    match e {
        Refusal::NoKey(ref w) => {
            let hint = format!(
                "push keyless (no --key), add the public key to keys/{w}/ in the contracts repository by pull request, or an operator runs `tally workflow key add --workflow {w} --key <public key>`"
            );
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string()).hint(hint)
        }
        Refusal::Signature(_) | Refusal::Certificate(_) | Refusal::PayloadType(_) | Refusal::Statement(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
        }
        Refusal::Provenance(ref problems) => {
            let details = json!({ "contradictions": problems });
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
                .details(details)
                .hint("the statement must describe the job its ID token names: push from that job, with its checkout")
        }
        Refusal::Violations { ref problems, .. } => {
            let details = json!({ "violations": problems });
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
                .details(details)
                .hint("tally attestation status shows what the contract requires")
        }
        Refusal::Policy {
            ref problems,
            ref evaluations,
            ..
        } => {
            let details = json!({ "violations": problems, "evaluations": evaluations });
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
                .details(details)
                .hint("tally attestation status shows each policy's verdict; an operator can grant this run an exception")
        }
        Refusal::Overload | Refusal::Saturated => ApiError::unavailable(e.to_string(), 1),
        Refusal::Busy(_) => ApiError::new(StatusCode::CONFLICT, code, e.to_string()),
        Refusal::Unavailable { what, cause } => ApiError::unavailable_because(what, cause, 5),
    }
}

/// `POST /api/v1/runs/{id}/certificate` (SPEC.md §15.3): certifies a run's
/// ephemeral key once the certificate is durably in the log.
pub(super) async fn request_certificate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let who = authenticate(&app, &headers).await?;
    let run = open_run(&app, &who, &id)?;
    let (req, _): (wire::CertificateRequest, _) = read_json(&app, &headers, body).await?;
    let c = crate::server::certify::certify(&app, &run, who.ci_claims(), req.public_key, &req.proof)
        .await
        .map_err(|e| reject(&app, &who, &run, e.code(), refusal(e)))?;
    tracing::info!(workflow = %run.workflow, run = %run.id, log_index = c.index, serial = %c.serial, "certificate issued");
    let issued = wire::CertificateIssued {
        certificate_chain: c.chain_pem,
        log_index: c.index,
        serial: c.serial,
        not_after: c.not_after,
    };
    Ok((StatusCode::CREATED, axum::Json(issued)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushQuery {
    /// Seconds to wait for publication before answering 202 (0: answer as
    /// soon as the entry is durably sequenced); capped by the server's setting.
    wait: Option<u64>,
}

pub(super) async fn push_attestation(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<PushQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<Response> {
    let received = Instant::now();
    let q = query(q)?;
    let who = authenticate(&app, &headers).await?;
    let run = current_run(&app, &who, &id)?;
    if run.status != "INITIALIZED" {
        return Err(reject(
            &app,
            &who,
            &run,
            "run_finished",
            ApiError::new(
                StatusCode::CONFLICT,
                "run_finished",
                format!("run {id} is {}; start a new run", run.status),
            ),
        ));
    }
    // A caller whose pushes keep being refused waits before its next body
    // is even read (a refusal does not consume the run).
    if let Some(wait) = app.refusals.check(who.id()) {
        let secs = wait.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many refused pushes from token {}; retry in {secs} s",
                who.id()
            ),
        )
        .hint("fix what the refusals said before pushing again")
        .retry_after(secs));
    }
    let (env, bytes): (Envelope, Vec<u8>) = match read_json(&app, &headers, body).await {
        Ok(x) => x,
        Err(e) => return Err(reject(&app, &who, &run, e.code(), e)),
    };
    let accepted = match intake::accept(&app, &run, env, bytes, who.ci_claims().map(|c| &**c)).await {
        Ok(a) => a,
        // A concurrent push won the run: not counted as a refusal of this workflow.
        Err(e @ Refusal::Busy(_)) => return Err(refusal(e)),
        Err(e) => {
            let code = e.code();
            return Err(reject(&app, &who, &run, code, refusal(e)));
        }
    };
    app.metrics.append.observe(received.elapsed().as_secs_f64());
    app.metrics.accepted(&run.workflow);
    let index = accepted.index;
    tracing::info!(
        workflow = %run.workflow,
        run = %run.id,
        log_index = index,
        envelope = %accepted.row.envelope_digest,
        "attestation accepted"
    );

    let ledger = app.ledger.clone();
    let wait = Duration::from_secs(
        q.wait
            .unwrap_or(app.cfg.publish_wait_secs)
            .min(app.cfg.publish_wait_secs),
    );
    let published = if wait.is_zero() {
        app.ledger.sizes().published
    } else {
        tokio::task::spawn_blocking(move || ledger.wait_published(index, wait))
            .await
            .map_err(ApiError::internal)?
            .unwrap_or(0)
    };
    let entry = String::from_utf8_lossy(&accepted.entry);
    let mut answer = wire::PushAnswer {
        run_id: run.id.as_str().into(),
        log_index: index,
        envelope_digest: accepted.row.envelope_digest.as_str().into(),
        entry,
        published: published > index,
        tlog_proof: None,
        hint: None,
        verdict: accepted
            .verdict
            .as_ref()
            .map(|v| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v)),
        policy_evaluations: accepted.evaluations.clone(),
    };
    if published > index {
        app.metrics.publish.observe(received.elapsed().as_secs_f64());
        let a = app.clone();
        answer.tlog_proof = Some(
            tokio::task::spawn_blocking(move || a.tlog_proof(index))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?,
        );
        return Ok(respond(&answer, StatusCode::OK));
    }
    answer.hint = Some(format!(
        "GET /api/v1/proof/inclusion?index={index} once published"
    ));
    Ok(respond(&answer, StatusCode::ACCEPTED))
}

/// Serialized straight into one right-sized buffer: the answer is on the
/// path of every push, and growing axum's default buffer cost more than
/// building it (BENCHMARKS.md, intake).
fn respond(a: &wire::PushAnswer<'_>, status: StatusCode) -> Response {
    let cap = 256
        + a.entry.len()
        + a.tlog_proof.as_ref().map_or(0, |p| p.len() * 2)
        + a.hint.as_ref().map_or(0, String::len);
    let mut body = Vec::with_capacity(cap);
    match serde_json::to_writer(&mut body, a) {
        Ok(()) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}
