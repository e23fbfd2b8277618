//! The log explorer's pages: the log's state, and one entry with everything
//! a browser needs to verify its inclusion itself (`entry.js`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::Deserialize;

use super::html::{error, escape, page};
use crate::server::{checkpoint_size, App};

/// `GET /console/log`: the published checkpoint and a way to an entry.
pub(super) async fn overview(State(app): State<Arc<App>>) -> Response {
    let s = app.ledger.sizes();
    let cp = app.ledger.checkpoint();
    let body = format!(
        "<h1>Log <code>{origin}</code></h1>\n\
         <dl>\n<dt>Published entries</dt><dd id=\"published\">{published}</dd>\n\
         <dt>Sequenced, not yet published</dt><dd>{pending}</dd>\n</dl>\n\
         <h2>Latest checkpoint</h2>\n<pre id=\"checkpoint\">{cp}</pre>\n\
         <p>The server names its verifier key <code>{key}</code>. Do not take it from here: \
         pin the key your organisation publishes (a lying server would show its own).</p>\n\
         <h2>Find an entry</h2>\n\
         <form method=\"get\" action=\"/console/log/entry\">\n\
         <label for=\"index\">Entry index</label>\n\
         <input id=\"index\" name=\"index\" inputmode=\"numeric\" pattern=\"[0-9]+\" required>\n\
         <button type=\"submit\">Open</button>\n</form>\n",
        origin = escape(&app.cfg.origin),
        published = s.published,
        pending = s.sequenced.saturating_sub(s.published),
        cp = escape(&cp),
        key = escape(&app.verifier_key),
    );
    page(StatusCode::OK, "Log", &body)
}

#[derive(Debug, Deserialize)]
pub(super) struct Find {
    index: String,
}

/// `GET /console/log/entry?index=N`: the entry's page (the form's target).
pub(super) async fn find_entry(q: Result<Query<Find>, axum::extract::rejection::QueryRejection>) -> Response {
    match q.map(|q| q.0.index.trim().parse::<u64>()) {
        Ok(Ok(i)) => Redirect::to(&format!("/console/log/entries/{i}")).into_response(),
        _ => error(
            StatusCode::BAD_REQUEST,
            "an entry index is a whole number, such as 0 or 42",
        ),
    }
}

/// `GET /console/log/entries/{index}`: the entry, its inclusion proof at
/// the latest checkpoint and that checkpoint, each in the page where the
/// in-browser verifier reads them.
pub(super) async fn entry(State(app): State<Arc<App>>, Path(index): Path<String>) -> Response {
    let Ok(index) = index.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, &format!("{index:?} is not a log index"));
    };
    let cp = app.ledger.checkpoint();
    let Some(size) = checkpoint_size(&cp) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the log has no checkpoint yet");
    };
    if index >= size {
        return error(
            StatusCode::NOT_FOUND,
            &format!("entry {index} is not in the latest checkpoint (size {size}); new entries are published within seconds"),
        );
    }
    let ledger = app.ledger.clone();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, String>((
            ledger.entry(index).map_err(|e| e.to_string())?,
            ledger.inclusion_proof(index, size).map_err(|e| e.to_string())?,
        ))
    })
    .await;
    let (bytes, proof) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error(StatusCode::NOT_FOUND, &e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let text = String::from_utf8_lossy(&bytes);
    let proof_items: String = proof
        .iter()
        .map(|h| format!("<li><code>{}</code></li>\n", h.to_hex()))
        .collect();
    let body = format!(
        "<h1>Entry {index}</h1>\n\
         <dl>\n<dt>Leaf hash</dt><dd><code>{leaf}</code></dd>\n<dt>Proven at tree size</dt><dd>{size}</dd>\n</dl>\n\
         <h2>Entry</h2>\n<pre id=\"entry\" data-index=\"{index}\" data-bytes=\"{b64}\">{text}</pre>\n\
         <h2>Inclusion proof ({n} hashes)</h2>\n<ol id=\"proof\">\n{proof_items}</ol>\n\
         <h2>Checkpoint</h2>\n<pre id=\"checkpoint\">{cp}</pre>\n\
         <section aria-labelledby=\"verify-title\">\n<h2 id=\"verify-title\">Verify in this browser</h2>\n\
         <noscript><p>Verification runs in your browser and needs JavaScript; the rest of this page does not.</p></noscript>\n\
         <form id=\"verify-form\">\n\
         <label for=\"key\">Log verifier key to trust (kept in this browser)</label>\n\
         <input id=\"key\" name=\"key\" size=\"70\" autocomplete=\"off\" spellcheck=\"false\" required>\n\
         <button type=\"submit\">Verify</button>\n</form>\n\
         <p id=\"verdict\" role=\"status\" aria-live=\"polite\"></p>\n</section>\n\
         <script type=\"module\" src=\"/console/entry.js\"></script>\n",
        leaf = ledger_format::hash::leaf_hash(&bytes).to_hex(),
        b64 = base64::engine::general_purpose::STANDARD.encode(&bytes),
        text = escape(&text),
        n = proof.len(),
        cp = escape(&cp),
    );
    page(StatusCode::OK, &format!("Entry {index}"), &body)
}
