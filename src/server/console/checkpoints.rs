//! The log's checkpoints over time (SPEC.md §16.2): every publication of
//! `ledger.git`, newest first, paged by commit; and the consistency of any
//! two of them, with both signed checkpoints and the proof in the page for
//! the browser to verify (`consistency.js`).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use gix::ObjectId;
use serde::Deserialize;

use super::html::{error, escape, link, page_for, time};
use super::session::Reader;
use crate::ledger::{LedgerError, Publication};
use crate::server::App;

/// Publications per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct From {
    /// The cursor: the commit to list from.
    from: Option<String>,
}

fn commit_id(s: &str) -> Result<ObjectId, Response> {
    ObjectId::from_hex(s.trim().as_bytes()).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("{s:?} is not a full commit id of ledger.git"),
        )
    })
}

fn ledger_error(e: LedgerError) -> Response {
    match e {
        e @ (LedgerError::Corrupt(_) | LedgerError::Git(_)) => {
            tracing::info!(error = %e, "console: not a publication");
            error(
                StatusCode::NOT_FOUND,
                "no publication of this log has that commit",
            )
        }
        e => super::unavailable(e),
    }
}

/// `GET /console/log/checkpoints?from=<commit>`
pub(super) async fn list(
    State(app): State<Arc<App>>,
    reader: Reader,
    q: Result<Query<From>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let from = match q.ok().and_then(|q| q.0.from).filter(|f| !f.trim().is_empty()) {
        Some(f) => match commit_id(&f) {
            Ok(c) => Some(c),
            Err(r) => return r,
        },
        None => None,
    };
    let ledger = app.ledger.clone();
    let (pubs, next) = match tokio::task::spawn_blocking(move || ledger.publications(from, PAGE)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return ledger_error(e),
        Err(e) => return super::unavailable(e),
    };
    let mut body = String::from(
        "<h1>Checkpoints over time</h1>\n<p>Every publication of the log (a commit of \
         <code>ledger.git</code>), newest first. Pick two to have this browser verify that the \
         older is a prefix of the newer.</p>\n",
    );
    if pubs.is_empty() {
        body.push_str("<p>Nothing is published yet.</p>\n");
        return page_for(StatusCode::OK, "Checkpoints", &body, reader.chrome());
    }
    body.push_str(
        "<form method=\"get\" action=\"/console/log/consistency\">\n<table id=\"checkpoints\">\n\
         <thead><tr><th scope=\"col\">Published</th><th scope=\"col\">Size</th><th scope=\"col\">Root hash</th>\
         <th scope=\"col\">Commit</th><th scope=\"col\">Older</th><th scope=\"col\">Newer</th></tr></thead>\n<tbody>\n",
    );
    for (i, p) in pubs.iter().enumerate() {
        let c = p.commit.to_string();
        let _ = writeln!(
            body,
            "<tr><td>{t}</td><td>{size}</td><td><code>{root}</code></td><td><code>{short}</code></td>\
             <td><input type=\"radio\" name=\"old\" value=\"{c}\" aria-label=\"older: size {size}\"{o}></td>\
             <td><input type=\"radio\" name=\"new\" value=\"{c}\" aria-label=\"newer: size {size}\"{n}></td></tr>",
            t = time(p.time),
            size = p.size,
            root = p.root.to_hex(),
            short = &c[..12],
            o = if i == pubs.len().min(2) - 1 && pubs.len() > 1 { " checked" } else { "" },
            n = if i == 0 { " checked" } else { "" },
        );
    }
    body.push_str(
        "</tbody>\n</table>\n<button type=\"submit\" id=\"check\">Check consistency</button>\n</form>\n",
    );
    if let Some(n) = next {
        let href = link("/console/log/checkpoints", &[("from", &n.to_string())]);
        let _ = writeln!(
            body,
            "<p><a rel=\"next\" href=\"{}\">Older checkpoints</a></p>",
            escape(&href)
        );
    }
    page_for(StatusCode::OK, "Checkpoints", &body, reader.chrome())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Pair {
    old: Option<String>,
    new: Option<String>,
}

/// `GET /console/log/consistency?old=<commit>&new=<commit>`
pub(super) async fn consistency(
    State(app): State<Arc<App>>,
    reader: Reader,
    q: Result<Query<Pair>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    let (Some(old), Some(new)) = (q.old, q.new) else {
        return error(
            StatusCode::BAD_REQUEST,
            "pick two checkpoints: ?old=<commit>&new=<commit> (from the checkpoints page)",
        );
    };
    let (old, new) = match (commit_id(&old), commit_id(&new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let ledger = app.ledger.clone();
    let read = tokio::task::spawn_blocking(move || {
        let one = |c| -> Result<Publication, LedgerError> {
            ledger
                .publications(Some(c), 1)?
                .0
                .pop()
                .ok_or_else(|| LedgerError::Corrupt("no publication".into()))
        };
        let (a, b) = (one(old)?, one(new)?);
        let (a, b) = if a.size <= b.size { (a, b) } else { (b, a) };
        // Every tree extends the empty one: nothing to prove.
        let proof = if a.size == 0 {
            Vec::new()
        } else {
            ledger.consistency_proof(a.size, b.size)?
        };
        Ok::<_, LedgerError>((a, b, proof))
    })
    .await;
    let (a, b, proof) = match read {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return ledger_error(e),
        Err(e) => return super::unavailable(e),
    };
    let proof_items: String = proof
        .iter()
        .map(|h| format!("<li><code>{}</code></li>\n", h.to_hex()))
        .collect();
    let body = format!(
        "<h1>Consistency from size {sa} to size {sb}</h1>\n\
         <h2>Older checkpoint (published {ta}, commit <code>{ca}</code>)</h2>\n<pre id=\"checkpoint-old\">{cpa}</pre>\n\
         <h2>Newer checkpoint (published {tb}, commit <code>{cb}</code>)</h2>\n<pre id=\"checkpoint-new\">{cpb}</pre>\n\
         <h2>Consistency proof ({n} hashes)</h2>\n<ol id=\"proof\">\n{proof_items}</ol>\n\
         <section aria-labelledby=\"verify-title\">\n<h2 id=\"verify-title\">Verify in this browser</h2>\n\
         <noscript><p>Verification runs in your browser and needs JavaScript; the rest of this page does not.</p></noscript>\n\
         <form id=\"verify-form\">\n\
         <label for=\"key\">Log verifier key to trust (kept in this browser)</label>\n\
         <input id=\"key\" name=\"key\" size=\"70\" autocomplete=\"off\" spellcheck=\"false\" required>\n\
         <button type=\"submit\" disabled>Verify</button>\n</form>\n\
         <p id=\"verdict\" role=\"status\" aria-live=\"polite\"></p>\n</section>\n\
         <script type=\"module\" src=\"/console/consistency.js\"></script>\n",
        sa = a.size,
        sb = b.size,
        ta = time(a.time),
        tb = time(b.time),
        ca = a.commit,
        cb = b.commit,
        cpa = escape(&a.checkpoint),
        cpb = escape(&b.checkpoint),
        n = proof.len(),
    );
    page_for(StatusCode::OK, "Consistency", &body, reader.chrome())
}
