//! Artifact storage through the control plane, filesystem backend (the
//! embedded default; SPEC.md §12.7): blobs by digest under the data
//! directory, uploaded as a stream whose digest is verified before the blob
//! is renamed into place, so a truncated or corrupted upload stores nothing.
//!
//! Not here yet: the OCI registry backend (its own issue).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::server::api::{authenticate, ApiError, Principal};
use crate::server::{unix_now, App};

/// Where artifact `hex` lives under the data directory.
pub fn blob_path(data: &Path, hex: &str) -> PathBuf {
    data.join("artifacts/sha256").join(&hex[..2]).join(hex)
}

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
}

/// `PUT /api/v1/artifacts/{digest}?workflow=<w>`: the body is the blob.
pub async fn put(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
    q: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let who = authenticate(&app, &headers)?;
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    who.may_act(&q.workflow)?;
    let hex = parse_digest(&digest)?;
    let dest = blob_path(&app.cfg.data_dir, &hex);
    let limit = app.cfg.max_artifact_bytes;
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large(limit));
    }
    if tokio::fs::metadata(&dest).await.is_ok() {
        // Content addressing: already stored, nothing to write again.
        let size = tokio::fs::metadata(&dest).await.map(|m| m.len()).unwrap_or(0);
        app.meta
            .record_artifact(&digest, &q.workflow, size, unix_now())
            .map_err(ApiError::internal)?;
        return Ok((
            StatusCode::OK,
            axum::Json(json!({"digest": digest, "size": size, "stored": "already"})),
        )
            .into_response());
    }
    let tmp_dir = app.cfg.data_dir.join("artifacts/tmp");
    tokio::fs::create_dir_all(&tmp_dir)
        .await
        .map_err(ApiError::internal)?;
    let mut rnd = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let tmp = tmp_dir.join(format!("{hex}.{}", hex::encode(rnd)));
    let result = receive(body, &tmp, limit).await;
    let (got, size) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if got != hex {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "digest_mismatch",
            format!("the uploaded bytes ({size} bytes) have digest sha256:{got}, not {digest}; nothing was stored"),
        )
        .hint("upload the file again; it may have changed or been truncated"));
    }
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(ApiError::internal)?;
    }
    tokio::fs::rename(&tmp, &dest).await.map_err(ApiError::internal)?;
    if let Some(dir) = dest.parent() {
        let dir = dir.to_owned();
        let _ =
            tokio::task::spawn_blocking(move || std::fs::File::open(dir).and_then(|d| d.sync_all())).await;
    }
    app.meta
        .record_artifact(&digest, &q.workflow, size, unix_now())
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"digest": digest, "size": size, "stored": "new"})),
    )
        .into_response())
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the artifact is larger than {limit} bytes"),
    )
    .hint("the server's max_artifact_bytes setting bounds it")
}

/// Streams the body into `tmp` (fsync'd), hashing as it goes.
async fn receive(body: Body, tmp: &Path, limit: u64) -> Result<(String, u64), ApiError> {
    let mut f = tokio::fs::File::create(tmp).await.map_err(ApiError::internal)?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "upload_interrupted",
                format!("the upload broke off: {e}"),
            )
            .hint("retry: nothing was stored")
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        h.update(&chunk);
        f.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    f.sync_all().await.map_err(ApiError::internal)?;
    Ok((hex::encode(h.finalize()), size))
}

/// `GET /api/v1/artifacts/{digest}` (and HEAD): the blob, to the admin and
/// to tokens of a workflow that stored it; 404 to anyone else.
pub async fn get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
) -> Result<Response, ApiError> {
    let who = authenticate(&app, &headers)?;
    let hex = parse_digest(&digest)?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no artifact {digest}"),
        )
    };
    if let Principal::Workflow { workflows, .. } = &who {
        let owners = app.meta.artifact_workflows(&digest).map_err(ApiError::internal)?;
        if !owners.iter().any(|o| workflows.contains(o)) {
            return Err(not_found());
        }
    }
    let path = blob_path(&app.cfg.data_dir, &hex);
    let f = tokio::fs::File::open(&path).await.map_err(|_| not_found())?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        f,
        256 << 10,
    )));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&digest) {
        h.insert("docker-content-digest", v);
    }
    Ok(r)
}
