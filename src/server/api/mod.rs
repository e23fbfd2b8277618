//! The HTTP API (SPEC.md §12): the router and its middleware. Handlers are
//! split by concern — `log` (public log endpoints), `runs`, `admin`,
//! `artifacts` — over shared `error`, `auth` and `body` helpers. The domain
//! (contract checks, intake, the ledger, metadata) is below this module and
//! never imports from it.
//!
//! Every request gets an id (`x-request-id`, echoed in the answer) carried in
//! its tracing span, so a log line and an internal error's answer name the
//! same request.

pub mod admin;
pub mod artifacts;
pub mod auth;
pub mod body;
pub mod error;
pub mod log;
pub mod openapi;
pub mod run_state;
pub mod runs;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use tracing::Instrument as _;

pub use self::auth::{authenticate, Principal};
pub use self::error::{ApiError, ApiResult};
use crate::server::App;

/// The whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/checkpoint", get(log::checkpoint))
        .route("/tile/{*path}", get(log::tile_file))
        .route("/ledger.git/{*path}", get(log::git_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(log::readyz))
        .route("/metrics", get(log::metrics))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/api/v1/log", get(log::log_info))
        .route("/api/v1/ca", get(log::ca))
        .route("/api/v1/proof/inclusion", get(log::proof_inclusion))
        .route("/api/v1/proof/consistency", get(log::proof_consistency))
        .route("/api/v1/entries/{index}", get(log::entry))
        .route("/api/v1/envelopes/{digest}", get(log::envelope))
        .route("/api/v1/search", get(log::search))
        .route("/api/v1/runs", post(runs::create_run).get(runs::list_runs))
        .route("/api/v1/runs/{id}", get(runs::describe_run))
        .route("/api/v1/runs/{id}/reset", post(runs::reset_run))
        .route("/api/v1/runs/{id}/exception", post(admin::grant_exception))
        .route("/api/v1/runs/{id}/attestation", post(runs::push_attestation))
        .route("/api/v1/runs/{id}/certificate", post(runs::request_certificate))
        .route(
            "/api/v1/runs/{id}/state",
            get(run_state::get_state).put(run_state::put_state),
        )
        .route(
            "/api/v1/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/api/v1/tokens/{id}", axum::routing::delete(admin::revoke_token))
        .route("/api/v1/integrations", get(admin::list_integrations))
        .route("/api/v1/integrations/deliveries", get(admin::list_deliveries))
        .route(
            "/api/v1/integrations/deliveries/retry",
            post(admin::retry_deliveries),
        )
        .route("/api/v1/workflows", get(admin::list_workflows))
        .route(
            "/api/v1/workflows/{name}/keys",
            post(admin::add_key).get(admin::list_keys),
        )
        .route(
            "/api/v1/workflows/{name}/keys/{keyid}",
            axum::routing::delete(admin::revoke_key),
        )
        .route("/api/v1/stats", get(admin::stats))
        .route(
            "/api/v1/artifacts/{digest}",
            get(artifacts::get).put(artifacts::put),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
                .hint("GET /openapi.json lists them")
        })
        .layer(middleware::from_fn(with_request_id))
        .with_state(app)
}

/// Request ids: a per-process random prefix and a counter (unique, cheap,
/// and not guessable across restarts).
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        hex::encode(b)
    });
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

async fn with_request_id(req: Request, next: Next) -> Response {
    let id = next_request_id();
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = error::REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    if resp.status().is_server_error() {
        span.in_scope(|| tracing::warn!(status = resp.status().as_u16(), "answered with a server error"));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
