//! The web console (SPEC.md §16), served by `tally serve` beside the JSON
//! API and apart from it: server-rendered pages that read the same domain
//! state the API reads (`App`, the ledger, `server::auth`), never through
//! the API's handlers, and a JavaScript verifier that checks the log's
//! proofs in the browser without trusting this server (`verify.js`).
//!
//! The log's pages are public, as the log is; runs, refusals and contracts
//! need a session (`session`), and show only what the session's token may
//! see through the API.

// A page's early exit is the whole response it answers with (a redirect to
// the login page, a 404 page): returned by value, once per request.
#![allow(clippy::result_large_err)]

mod checkpoints;
mod contracts;
mod html;
mod log;
mod overview;
mod runs;
mod session;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::auth::ArtifactReaders;
use crate::server::App;

/// The in-browser verifier's source.
pub const VERIFY_JS: &str = include_str!("verify.js");
const ENTRY_JS: &str = include_str!("entry.js");
const CONSISTENCY_JS: &str = include_str!("consistency.js");
const CONSOLE_CSS: &str = include_str!("console.css");
/// Largest form body the console reads (a login is a token and two fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The console's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/console/verify.js",
            get(|| async { asset("text/javascript", VERIFY_JS) }),
        )
        .route(
            "/console/entry.js",
            get(|| async { asset("text/javascript", ENTRY_JS) }),
        )
        .route(
            "/console/consistency.js",
            get(|| async { asset("text/javascript", CONSISTENCY_JS) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css", CONSOLE_CSS) }),
        )
        .route("/console", get(overview::overview))
        .route("/console/login", get(session::login_form).post(session::login))
        .route("/console/logout", axum::routing::post(session::logout))
        .route("/console/runs", get(runs::list))
        .route("/console/runs/{id}", get(runs::show))
        .route("/console/runs/{id}/bundle", get(runs::bundle))
        .route("/console/refusals", get(overview::refusals))
        .route("/console/artifacts/{digest}", get(artifact))
        .route("/console/contracts", get(contracts::list))
        .route("/console/contracts/{name}", get(contracts::show))
        .route("/console/contracts/{name}/diff", get(contracts::diff))
        .route("/console/log", get(log::overview))
        .route("/console/log/entry", get(log::find_entry))
        .route("/console/log/entries/{index}", get(log::entry))
        .route("/console/log/search", get(log::search))
        .route("/console/log/checkpoints", get(checkpoints::list))
        .route("/console/log/consistency", get(checkpoints::consistency))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(app)
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("{kind}; charset=utf-8"))
                    .unwrap_or(HeaderValue::from_static("text/plain")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
}

/// A 503 page for a dependency that failed (logged, not shown).
fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console: a dependency is unavailable");
    html::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server could not read what this page needs; try again in a few seconds",
    )
}

/// `GET /console/artifacts/{digest}`: a stored artifact, to a session that
/// may read it as the API decides (SPEC.md §12.5); "not found" to others.
async fn artifact(State(app): State<Arc<App>>, headers: HeaderMap, Path(digest): Path<String>) -> Response {
    let not_found = || html::error(StatusCode::NOT_FOUND, &format!("no artifact {digest}"));
    let Some(hex) = digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }) else {
        return html::error(
            StatusCode::BAD_REQUEST,
            &format!("{digest:?} is not a digest (sha256:<64 lowercase hex>)"),
        );
    };
    let v = match session::viewer(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let readers = match ArtifactReaders::of(&app, &digest) {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    if !readers.admit(v.as_ref().map(|v| &v.principal)) {
        return not_found();
    }
    match app.artifacts.get(hex).await {
        Ok(Some((len, stream))) => {
            let mut r = Response::new(Body::from_stream(stream));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if len > 0 {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{hex}\""))
                    .unwrap_or(HeaderValue::from_static("attachment")),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(None) => not_found(),
        Err(e) => unavailable(e),
    }
}
