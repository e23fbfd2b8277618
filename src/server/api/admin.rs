//! The operator's endpoints (SPEC.md §12.5): service tokens, workflows and
//! their keys, statistics. Admin token only, except listing workflows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::authenticate;
use super::body::{query, read_json};
use super::error::{ApiError, ApiResult};
use ledger_format::key::KeyAction;

use crate::server::keys;
use crate::server::meta::ExceptionRow;
use crate::server::{new_secret, token_hash, unix_now, App};
use crate::wire;

fn known_workflows(app: &App) -> ApiResult<Arc<Vec<crate::contract::Workflow>>> {
    app.contracts
        .workflows()
        .map_err(|e| ApiError::unavailable_because("the contracts repository", e, 5))
}

pub(super) async fn create_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    authenticate(&app, &headers).await?.admin()?;
    let (req, _): (wire::CreateToken, _) = read_json(&app, &headers, body).await?;
    if req.workflows.is_empty() {
        return Err(ApiError::bad("a token needs at least one workflow"));
    }
    let known = known_workflows(&app)?;
    for w in &req.workflows {
        if !known.iter().any(|k| &k.name == w) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_workflow",
                format!("workflow `{w}` is not declared in workflows.toml"),
            ));
        }
    }
    let now = unix_now();
    let mut rnd = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let secret = new_secret("tly_wf_");
    let info = wire::TokenInfo {
        id: format!("tok-{}", hex::encode(rnd)),
        workflows: req.workflows.clone(),
        description: req.description.clone(),
        created_at: now,
        expires_at: req.expires_in_secs.map(|s| now + s as i64),
        last_used_at: None,
        revoked_at: None,
    };
    app.meta
        .create_token(&info, &token_hash(&secret))
        .map_err(ApiError::meta)?;
    let created = wire::TokenCreated { info, token: secret };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub(super) async fn list_tokens(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<wire::TokenList>> {
    authenticate(&app, &headers).await?.admin()?;
    let tokens = app.meta.list_tokens().map_err(ApiError::meta)?;
    Ok(Json(wire::TokenList { tokens }))
}

pub(super) async fn revoke_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::TokenRevoked>> {
    authenticate(&app, &headers).await?.admin()?;
    let revoked = app.meta.revoke_token(&id, unix_now()).map_err(ApiError::meta)?;
    app.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
    if !revoked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_token",
            format!("no token {id}"),
        ));
    }
    Ok(Json(wire::TokenRevoked { id, revoked: true }))
}

/// `POST /api/v1/runs/{id}/exception`: the admin lets one run's blocking
/// policy violations through until a time (SPEC.md §13.5).
pub(super) async fn grant_exception(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<wire::ExceptionGranted>> {
    let who = authenticate(&app, &headers).await?;
    who.admin()?;
    let (req, _): (wire::GrantException, _) = read_json(&app, &headers, body).await?;
    let bad = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", m);
    if req.reason.trim().is_empty() || req.by.trim().is_empty() {
        return Err(bad(
            "an exception needs `by` (who grants it) and a `reason`".into()
        ));
    }
    if req.reason.len() > 1024 || req.by.len() > 256 {
        return Err(bad("`reason` is at most 1024 bytes and `by` at most 256".into()));
    }
    let now = unix_now();
    if req.until <= now {
        return Err(bad(format!("`until` ({}) is not in the future", req.until)));
    }
    let run = app
        .meta
        .run(&id)
        .map_err(ApiError::meta)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_run", format!("no run {id}")))?;
    if run.status != "INITIALIZED" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!(
                "run {id} is {}; an exception only helps a run that can still be pushed",
                run.status
            ),
        ));
    }
    let row = ExceptionRow {
        run_id: id.clone(),
        granted_by: format!("{} ({} token)", req.by.trim(), who.id()),
        reason: req.reason.trim().to_owned(),
        granted_at: now,
        until: req.until,
    };
    app.meta.grant_exception(&row).map_err(ApiError::meta)?;
    tracing::info!(run = %id, by = %row.granted_by, until = row.until, "policy exception granted");
    Ok(Json(wire::ExceptionGranted {
        run_id: id,
        granted_by: row.granted_by,
        reason: row.reason,
        granted_at: now,
        until: req.until,
    }))
}

pub(super) async fn list_workflows(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<wire::WorkflowList>> {
    let who = authenticate(&app, &headers).await?;
    let mut out = Vec::new();
    for w in known_workflows(&app)?.iter() {
        if who.may(&w.name).is_err() {
            continue;
        }
        let keys: Vec<String> = app
            .meta
            .workflow_keys(&w.name)
            .map_err(ApiError::meta)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        out.push(wire::WorkflowInfo {
            name: w.name.clone(),
            project: w.project.clone(),
            contract: w.contract.clone(),
            owners: w.owners.clone(),
            keys,
        });
    }
    Ok(Json(wire::WorkflowList { workflows: out }))
}

pub(super) async fn add_key(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let who = authenticate(&app, &headers).await?;
    who.admin()?;
    let (req, _): (wire::AddKey, _) = read_json(&app, &headers, body).await?;
    if !known_workflows(&app)?.iter().any(|w| w.name == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_workflow",
            format!("workflow `{name}` is not declared in workflows.toml"),
        ));
    }
    let (keyid, log_index) = keys::change(&app, KeyAction::Add, &name, &req.public_key, who.id())
        .await
        .map_err(key_error)?;
    let added = wire::KeyAdded {
        workflow: name,
        keyid,
        log_index: Some(log_index),
    };
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

/// `DELETE /api/v1/workflows/{name}/keys/{keyid}` (SPEC.md §15.5): the
/// revocation is a log entry; from it on, the key verifies no new push.
pub(super) async fn revoke_key(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((name, keyid)): Path<(String, String)>,
) -> ApiResult<Json<wire::KeyRevoked>> {
    let who = authenticate(&app, &headers).await?;
    who.admin()?;
    let unknown = || {
        key_error(keys::KeyChangeError::Unknown {
            workflow: name.clone(),
            keyid: keyid.clone(),
        })
    };
    let pem = app
        .meta
        .workflow_key(&name, &keyid)
        .map_err(ApiError::meta)?
        .ok_or_else(unknown)?;
    let (keyid, log_index) = keys::change(&app, KeyAction::Revoke, &name, &pem, who.id())
        .await
        .map_err(key_error)?;
    Ok(Json(wire::KeyRevoked {
        workflow: name,
        keyid,
        log_index,
    }))
}

fn key_error(e: keys::KeyChangeError) -> ApiError {
    match e {
        keys::KeyChangeError::BadKey(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_key", m)
            .hint("a PEM P-256 or Ed25519 public key"),
        e @ keys::KeyChangeError::Unknown { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_key", e.to_string())
                .hint("tally workflow key list shows the registered keys")
        }
        keys::KeyChangeError::Unavailable(cause) => ApiError::unavailable_because("the log", cause, 5),
    }
}

/// `GET /api/v1/workflows/{name}/keys`: the keys registered for a workflow.
pub(super) async fn list_keys(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<wire::KeyList>> {
    authenticate(&app, &headers).await?.admin()?;
    let keys = app
        .meta
        .workflow_keys(&name)
        .map_err(ApiError::meta)?
        .into_iter()
        .map(|(keyid, public_key)| wire::RegisteredKey { keyid, public_key })
        .collect();
    Ok(Json(wire::KeyList { workflow: name, keys }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    days: Option<i64>,
}

pub(super) async fn stats(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<wire::Stats>> {
    authenticate(&app, &headers).await?.admin()?;
    let q = query(q)?;
    let days = q.days.unwrap_or(30).clamp(1, 3650);
    let since = unix_now() - days * 86_400;
    let per_day = app.meta.runs_per_day(since).map_err(ApiError::meta)?;
    let wf = app.meta.workflow_stats(since).map_err(ApiError::meta)?;
    let rate = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let workflows = wf
        .iter()
        .map(|w| {
            let finished = w.succeeded + w.failed + w.cancelled + w.expired;
            wire::WorkflowStat {
                workflow: w.workflow.clone(),
                runs: w.runs,
                succeeded: w.succeeded,
                failed: w.failed,
                cancelled: w.cancelled,
                expired: w.expired,
                in_progress: w.initialized,
                success_rate: rate(w.succeeded, finished),
                failure_rate: rate(w.failed + w.expired, finished),
                mean_duration_s: w.mean_duration_s,
            }
        })
        .collect();
    let mut slowest = wf.clone();
    slowest.sort_by(|a, b| {
        b.mean_duration_s
            .unwrap_or(0.0)
            .total_cmp(&a.mean_duration_s.unwrap_or(0.0))
    });
    let mut failing = wf.clone();
    failing.sort_by_key(|w| std::cmp::Reverse(w.failed + w.expired));
    Ok(Json(wire::Stats {
        days,
        runs_per_day: per_day
            .into_iter()
            .map(|(day, runs, succeeded)| wire::DayCount { day, runs, succeeded })
            .collect(),
        workflows,
        slowest: slowest
            .into_iter()
            .filter(|w| w.mean_duration_s.is_some())
            .take(5)
            .map(|w| wire::Slowest {
                workflow: w.workflow,
                mean_duration_s: w.mean_duration_s,
            })
            .collect(),
        most_failing: failing
            .into_iter()
            .filter(|w| w.failed + w.expired > 0)
            .take(5)
            .map(|w| wire::Failing {
                failed: w.failed + w.expired,
                workflow: w.workflow,
            })
            .collect(),
    }))
}

pub(super) async fn list_integrations(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> ApiResult<Json<wire::IntegrationList>> {
    authenticate(&app, &headers).await?.admin()?;
    let counts = app.meta.delivery_counts().map_err(ApiError::meta)?;
    let count = |name: &str, state: &str| {
        counts
            .iter()
            .find(|(i, s, _)| i == name && s == state)
            .map_or(0, |(_, _, n)| *n)
    };
    let mut out: Vec<wire::IntegrationInfo> = app
        .integrations
        .configs()
        .map(|c| wire::IntegrationInfo {
            name: c.name.clone(),
            kind: serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            endpoint: endpoint(&c.url),
            events: c
                .events
                .iter()
                .filter_map(|e| {
                    serde_json::to_value(e)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                })
                .collect(),
            workflows: c.workflows.clone(),
            pending: count(&c.name, "pending"),
            delivered: count(&c.name, "delivered"),
            failed: count(&c.name, "failed"),
        })
        .collect();
    // Events of integrations since removed from the configuration.
    for (name, _, _) in &counts {
        if !out.iter().any(|i| &i.name == name) {
            out.push(wire::IntegrationInfo {
                name: name.clone(),
                kind: "(no longer configured)".into(),
                endpoint: String::new(),
                events: Vec::new(),
                workflows: Vec::new(),
                pending: count(name, "pending"),
                delivered: count(name, "delivered"),
                failed: count(name, "failed"),
            });
        }
    }
    Ok(Json(wire::IntegrationList { integrations: out }))
}

/// Scheme, host and port of `url`: a chat webhook's path is its secret.
fn endpoint(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| String::new(),
        |u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or_default())
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveriesQuery {
    integration: Option<String>,
    state: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub(super) async fn list_deliveries(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<wire::DeliveryList>> {
    authenticate(&app, &headers).await?.admin()?;
    let q = query(q)?;
    if let Some(s) = &q.state {
        if !["pending", "delivered", "failed"].contains(&s.as_str()) {
            return Err(ApiError::bad(format!(
                "state {s:?} is not pending, delivered or failed"
            )));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut rows = app
        .meta
        .deliveries(q.integration.as_deref(), q.state.as_deref(), q.before, limit + 1)
        .map_err(ApiError::meta)?;
    let next = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows[rows.len() - 1].id
    });
    let deliveries = rows
        .into_iter()
        .map(|d| wire::DeliveryInfo {
            id: d.id,
            integration: d.integration,
            event_id: d.event_id,
            event_type: d.event_type,
            state: d.state,
            attempts: d.attempts,
            next_at: d.next_at,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        })
        .collect();
    Ok(Json(wire::DeliveryList { deliveries, next }))
}

pub(super) async fn retry_deliveries(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<wire::DeliveriesRetried>> {
    authenticate(&app, &headers).await?.admin()?;
    let (req, _): (wire::RetryDeliveries, _) = read_json(&app, &headers, body).await?;
    let n = app
        .meta
        .retry_deliveries(req.id, req.integration.as_deref(), unix_now())
        .map_err(ApiError::meta)?;
    if n == 0 {
        let missing = match (&req.id, &req.integration) {
            (Some(id), _) => Some(format!("no failed delivery {id}")),
            (None, Some(i)) => Some(format!("integration `{i}` has no failed delivery")),
            (None, None) => None,
        };
        if let Some(m) = missing {
            return Err(ApiError::not_found(m));
        }
    }
    if n > 0 {
        app.integrations.wake();
    }
    Ok(Json(wire::DeliveriesRetried { retried: n as i64 }))
}
