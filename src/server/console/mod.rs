//! The web console (SPEC.md §16), served by `tally serve` beside the JSON
//! API and apart from it: server-rendered pages that read the same domain
//! state the API reads (`App`, the ledger), never through the API's
//! handlers, and a JavaScript verifier that checks the log's proofs in the
//! browser without trusting this server (`verify.js`).

mod html;
mod log;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::server::App;

/// The in-browser verifier's source.
pub const VERIFY_JS: &str = include_str!("verify.js");
const ENTRY_JS: &str = include_str!("entry.js");
const CONSOLE_CSS: &str = include_str!("console.css");

/// The console's routes. The log pages are public, as the log is.
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
            "/console/console.css",
            get(|| async { asset("text/css", CONSOLE_CSS) }),
        )
        .route("/console/log", get(log::overview))
        .route("/console/log/entry", get(log::find_entry))
        .route("/console/log/entries/{index}", get(log::entry))
        .route("/console/log/search", get(log::search))
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
