//! A run's crafting state kept on the control plane, for runs whose jobs
//! share no disk (SPEC.md §12.8): `GET` it with its version (`ETag`),
//! `PUT` a new one only over the version read (`If-Match`), or the first
//! one (`If-None-Match: *`) — optimistic concurrency, so two jobs adding
//! at once never lose a material: the second is told to read again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::authenticate;
use super::body::read_json;
use super::error::{ApiError, ApiResult};
use super::runs::{current_run, open_run};
use crate::server::App;
use crate::wire;

/// The largest state kept (the contract's text and policies included).
pub const MAX_STATE_BYTES: usize = 4 << 20;

/// `GET /api/v1/runs/{id}/state`
pub(super) async fn get_state(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let who = authenticate(&app, &headers).await?;
    let run = current_run(&app, &who, &id)?;
    let Some((version, text)) = app.meta.run_state(&run.id).map_err(ApiError::meta)? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_state",
            format!("run {id} keeps no crafting state on the control plane"),
        )
        .hint("start the run with `tally attestation init --remote-state`"));
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::ETAG, etag(version)),
        ],
        text,
    )
        .into_response())
}

/// `PUT /api/v1/runs/{id}/state`
pub(super) async fn put_state(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let who = authenticate(&app, &headers).await?;
    let run = open_run(&app, &who, &id)?;
    let expected = precondition(&headers)?;
    let (state, bytes): (serde_json::Value, _) = read_json(&app, &headers, body).await?;
    if bytes.len() > MAX_STATE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a crafting state is at most {MAX_STATE_BYTES} bytes"),
        ));
    }
    let named = state.get("run_id").and_then(serde_json::Value::as_str);
    let schema = state.get("schema").and_then(serde_json::Value::as_str);
    if named != Some(id.as_str()) || schema != Some(crate::attest::state::STATE_SCHEMA) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_state",
            format!(
                "the body is not a crafting state ({}) of run {id}",
                crate::attest::state::STATE_SCHEMA
            ),
        ));
    }
    let text = String::from_utf8(bytes).map_err(ApiError::internal)?;
    let (a, run_id) = (app.clone(), run.id.clone());
    let saved = tokio::task::spawn_blocking(move || a.meta.put_run_state(&run_id, expected, &text))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::meta)?;
    match saved {
        Ok(version) => Ok((
            StatusCode::OK,
            [(header::ETAG, etag(version))],
            Json(wire::StateSaved { version }),
        )
            .into_response()),
        Err(current) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "state_conflict",
            match current {
                Some(v) => {
                    format!("run {id}'s state is at version {v}, not the one read: another job changed it")
                }
                None => format!("run {id} has no state to replace"),
            },
        )
        .details(json!({ "version": current }))
        .hint("read the state again and re-apply the change")),
    }
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `If-Match: "<version>"` → `Some(version)`; `If-None-Match: *` → `None`
/// (create); neither: 428.
fn precondition(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let text = |h| {
        headers
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(m) = text(header::IF_MATCH) {
        return m
            .trim_matches('"')
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    format!("If-Match {m:?} is not a state version (\"<n>\")"),
                )
            });
    }
    if text(header::IF_NONE_MATCH) == Some("*") {
        return Ok(None);
    }
    Err(ApiError::new(
        StatusCode::PRECONDITION_REQUIRED,
        "precondition_required",
        "replacing a run's state needs If-Match: \"<version read>\" (or If-None-Match: * for the first)",
    ))
}
