//! `ApiError`, the one error shape of the API: `{error, message, hint}` JSON
//! (`wire::ErrorBody`) with the status that names it (SPEC.md §12.6).
//!
//! An internal failure is logged with the request's id and answered with
//! that id only: its text (paths, SQL, git errors) never reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::wire::ErrorBody;

tokio::task_local! {
    /// The id of the request being handled (set by the router's middleware).
    pub static REQUEST_ID: String;
}

/// The current request's id, or `-` outside a request.
pub fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".into())
}

/// An API error: status, machine code, message, hint.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    message: String,
    hint: Option<String>,
    pub(super) retry_after: Option<u64>,
    details: Option<Value>,
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status, a machine code and a message.
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            message: message.into(),
            hint: None,
            retry_after: None,
            details: None,
        }
    }
    /// Adds what to do.
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
    /// Its machine code.
    pub fn code(&self) -> &'static str {
        self.error
    }
    /// Its message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// Adds structured details.
    pub fn details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }
    /// Asks the client to retry after `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// A 400 `bad_request`.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// A 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A server-side failure: `cause` is logged with the request id; the
    /// client learns only that id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = request_id();
        tracing::error!(request_id = %id, error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (request id {id}); the server's log has the details"),
        )
    }
    /// A metadata database failure: 503 with Retry-After when it may pass
    /// (a full disk, an I/O error, a busy database), else 500.
    pub fn meta(e: crate::server::meta::MetaError) -> Self {
        if e.is_transient() {
            ApiError::unavailable_because("the metadata database", e, 5)
        } else {
            ApiError::internal(e)
        }
    }
    /// A 503 with Retry-After: `message` is for the client.
    pub fn unavailable(message: impl Into<String>, retry: u64) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            .hint("retry after the number of seconds in Retry-After")
            .retry_after(retry)
    }
    /// A 503 whose `cause` is internal: logged with the request id, the
    /// client reads `what` is unavailable.
    pub fn unavailable_because(what: &str, cause: impl std::fmt::Display, retry: u64) -> Self {
        let id = request_id();
        tracing::warn!(request_id = %id, error = %cause, "{what} unavailable");
        ApiError::unavailable(
            format!("{what} is unavailable (request id {id}); try again"),
            retry,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.error.into(),
            message: self.message,
            hint: self.hint,
            details: self.details,
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
