//! Request bodies and query parameters, read so that every way they are
//! wrong is an API error with the shape of all the others.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{header, HeaderMap, StatusCode};
use ledger_format::hash::Hash;

use super::error::{ApiError, ApiResult};
use crate::server::App;

/// A query string as `T`, or a 400 naming what is wrong.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t).map_err(|e| ApiError::bad(e.body_text()))
}

/// A hash parameter: 64 hex digits, optionally `sha256:`-prefixed.
pub fn hash_param(s: &str) -> ApiResult<Hash> {
    let b = hex::decode(s.trim_start_matches("sha256:"))
        .map_err(|_| ApiError::bad(format!("{s:?} is not hex")))?;
    Hash::from_slice(&b).map_err(|e| ApiError::bad(e.to_string()))
}

/// Reads a JSON request body: its content type (415), its size against
/// `max_body_bytes` (413) and its shape (400) each answered as an API error.
/// Returns the value and the exact bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(T, Vec<u8>)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {ct:?} is not JSON"),
        )
        .hint("send Content-Type: application/json"));
    }
    let limit = app.cfg.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than {limit} bytes"),
        )
        .hint("the server's max_body_bytes setting bounds it")
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // Over the limit is 413; a body that breaks off or is malformed on
        // the wire (a bad chunk size) is the client's 400.
        let over = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if over {
            too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("the request body could not be read: {e}"),
            )
        }
    })?;
    let v = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the body is not the expected JSON: {e}"),
        )
    })?;
    Ok((v, bytes.to_vec()))
}
