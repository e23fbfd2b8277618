//! The web console (SPEC.md §16), served by `tally serve` beside the JSON
//! API and apart from it: it reads what the API reads, through the same
//! domain code, and never the other way round. So far it serves the
//! in-browser verifier, a JavaScript module on the browser's WebCrypto that
//! checks the log's proofs without trusting this server (`verify.js`).

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The in-browser verifier's source.
pub const VERIFY_JS: &str = include_str!("verify.js");

/// The console's routes (public: they serve no data of their own).
pub fn router() -> Router {
    Router::new().route("/console/verify.js", get(verify_js))
}

async fn verify_js() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        VERIFY_JS,
    )
}
