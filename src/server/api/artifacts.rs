//! Artifacts through the control plane (SPEC.md §12.7): the HTTP side. The
//! bytes stream from the client through a digest check into the configured
//! store ([`crate::server::artifact_store`]); nothing is held whole in memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;

use super::auth::authenticate;
use super::error::ApiError;
use crate::attest::material::Kind;
use crate::server::artifact_store::{verify_body, ArtifactError, ByteStream, Upload};
use crate::server::auth::ArtifactReaders;
use crate::server::{unix_now, App};

/// Parses `sha256:<64 lowercase hex>`.
pub fn parse_digest(d: &str) -> Result<String, ApiError> {
    let hex = d.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_digest",
            format!("{d:?} is not sha256:<64 lowercase hex>"),
        ));
    }
    Ok(hex.to_owned())
}

/// Query of an upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    /// The workflow storing it (its token must act for it).
    workflow: String,
    /// The material kind (SPEC.md §11.3); `ARTIFACT` when absent.
    kind: Option<String>,
    /// The material's name.
    name: Option<String>,
    /// The run it belongs to.
    run: Option<String>,
}

/// A store failure as the client sees it.
pub fn store_error(e: ArtifactError) -> ApiError {
    match e {
        ArtifactError::Mismatch { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "digest_mismatch", e.to_string())
                .hint("upload the file again; it may have changed or been truncated")
        }
        ArtifactError::Truncated { .. } | ArtifactError::Interrupted(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "upload_interrupted", e.to_string())
                .hint("retry the upload: nothing was stored")
        }
        ArtifactError::Unavailable(m) => {
            ApiError::unavailable(format!("the artifact store is unavailable: {m}"), 2)
        }
        ArtifactError::Internal(m) => ApiError::internal(m),
    }
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Reads and discards up to `cap` bytes of a body.
async fn drain(body: Body, cap: u64) {
    let mut s = body.into_data_stream();
    let mut n = 0u64;
    while let Some(Ok(c)) = s.next().await {
        n += c.len() as u64;
        if n >= cap {
            break;
        }
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("name {name:?} must be 1 to 256 printable characters"),
        ));
    }
    Ok(())
}

/// `PUT /api/v1/artifacts/{digest}?workflow=<w>[&kind=&name=&run=]`: the body is the blob.
pub async fn put(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
    q: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let r = put_inner(&app, headers, digest, q, body).await;
    match &r {
        Ok((_, outcome, bytes)) => app.metrics.upload(outcome, *bytes),
        Err(e) => app.metrics.upload(e.code(), 0),
    }
    r.map(|(resp, _, _)| resp)
}

/// The upload, and its outcome for the metrics (`new` with its bytes, or `already`).
async fn put_inner(
    app: &Arc<App>,
    headers: HeaderMap,
    digest: String,
    q: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<(Response, &'static str, u64), ApiError> {
    let who = authenticate(app, &headers).await?;
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    who.may(&q.workflow)?;
    let hex = parse_digest(&digest)?;
    let kind = q.kind.as_deref().unwrap_or("ARTIFACT");
    if !Kind::parse(kind).is_some_and(Kind::is_file) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("kind {kind:?} is not a file material kind (SPEC.md §11.3)"),
        ));
    }
    if let Some(n) = &q.name {
        check_name(n)?;
    }
    if let Some(run) = &q.run {
        let r = app.meta.run(run).map_err(ApiError::meta)?;
        if r.is_none_or(|r| r.workflow != q.workflow) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no run {run} of workflow {}", q.workflow),
            ));
        }
    }
    let limit = app.cfg.max_artifact_bytes;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "an artifact upload needs a Content-Length",
            )
            .hint("send the file with its length (the tally CLI does)")
        })?;
    if len > limit {
        return Err(too_large(limit));
    }
    let owners = app.meta.artifact_workflows(&digest).map_err(ApiError::meta)?;
    // Only a digest this server stored before can be in the store (a blob put
    // there by others is simply uploaded again).
    let stored = if owners.is_empty() {
        false
    } else {
        match app.artifacts.contains(&hex).await {
            Ok(s) => s,
            Err(e) => {
                // Read what the client sends (within reason) so it sees this
                // answer instead of a connection torn down under its upload.
                drain(body, 64 << 20).await;
                return Err(store_error(e));
            }
        }
    };
    if stored && owners.contains(&q.workflow) {
        // Content addressing: this workflow stored it already.
        return Ok((
            answer(StatusCode::OK, &digest, len, "already", None),
            "already",
            0,
        ));
    }
    if stored && !owners.is_empty() {
        // Stored for another workflow: this one proves it has the bytes
        // before it may read them.
        verify_body(body_stream(body), &hex, len)
            .await
            .map_err(store_error)?;
        app.meta
            .record_artifact(&digest, &q.workflow, len, unix_now())
            .map_err(ApiError::meta)?;
        let reference = app.meta.oci_manifest(&digest).map_err(ApiError::meta)?;
        let reference = reference.map(|(repo, d)| format!("{repo}@{}", d.digest));
        // New for this workflow, and answered exactly as bytes nobody stored:
        // an upload must not tell one workflow what another stored.
        return Ok((
            answer(StatusCode::CREATED, &digest, len, "new", reference),
            "already",
            0,
        ));
    }
    let up = Upload {
        hex: hex.clone(),
        len,
        workflow: q.workflow.clone(),
        run: q.run.clone(),
        kind: kind.to_owned(),
        name: q.name.clone(),
    };
    let s = app
        .artifacts
        .put(&up, body_stream(body))
        .await
        .map_err(store_error)?;
    if let (Some(r), Some(m)) = (&s.reference, &s.manifest) {
        let repo = r.split_once('@').map_or(r.as_str(), |(repo, _)| repo);
        app.meta
            .record_oci_manifest(&digest, repo, m)
            .map_err(ApiError::meta)?;
    }
    app.meta
        .record_artifact(&digest, &q.workflow, len, unix_now())
        .map_err(ApiError::meta)?;
    let status = if s.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let outcome = if s.new { "new" } else { "already" };
    Ok((
        answer(status, &digest, len, outcome, s.reference),
        outcome,
        if s.new { len } else { 0 },
    ))
}

fn answer(status: StatusCode, digest: &str, size: u64, stored: &str, reference: Option<String>) -> Response {
    let a = crate::wire::ArtifactStored {
        digest: digest.to_owned(),
        size,
        stored: stored.to_owned(),
        reference,
    };
    (status, axum::Json(a)).into_response()
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the artifact is larger than {limit} bytes"),
    )
    .hint("the server's max_artifact_bytes setting bounds it")
}

/// `GET /api/v1/artifacts/{digest}` (and HEAD): the blob, to the admin, to
/// tokens of a workflow that stored it, and to anyone when one of those
/// workflows is public; 404 to anyone else.
pub async fn get(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
) -> Result<Response, ApiError> {
    let hex = parse_digest(&digest)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no artifact {digest}"),
        )
    };
    let readers = ArtifactReaders::of(&app, &digest).map_err(ApiError::meta)?;
    let who = if readers.public && !headers.contains_key(header::AUTHORIZATION) {
        None
    } else {
        Some(authenticate(&app, &headers).await?)
    };
    if method == Method::HEAD {
        // Asked before anything else: an uploader learns here (503) that the
        // store is down, before it streams a file.
        let present = app.artifacts.contains(&hex).await.map_err(store_error)?;
        if !present {
            return Err(not_found());
        }
    }
    if !readers.admit(who.as_ref()) {
        return Err(not_found());
    }
    if method == Method::HEAD {
        let mut r = Response::new(Body::empty());
        if let Ok(v) = HeaderValue::from_str(&digest) {
            r.headers_mut().insert("docker-content-digest", v);
        }
        return Ok(r);
    }
    let (len, stream) = app
        .artifacts
        .get(&hex)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if len > 0 {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&digest) {
        h.insert("docker-content-digest", v);
    }
    Ok(r)
}
