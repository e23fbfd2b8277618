//! The log explorer's pages: the log's state, and one entry with everything
//! a browser needs to verify its inclusion itself (`entry.js`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::Deserialize;

use super::html::{error, escape, page_for};
use super::session::Reader;
use crate::server::search::{self, Search, SearchError};
use crate::server::{checkpoint_size, App};

/// `GET /console/log`: the published checkpoint and a way to an entry.
pub(super) async fn overview(State(app): State<Arc<App>>, reader: Reader) -> Response {
    let s = app.ledger.sizes();
    let cp = app.ledger.checkpoint();
    let body = format!(
        "<h1>Log <code>{origin}</code></h1>\n\
         <dl>\n<dt>Published entries</dt><dd id=\"published\">{published}</dd>\n\
         <dt>Sequenced, not yet published</dt><dd>{pending}</dd>\n</dl>\n\
         <h2>Latest checkpoint</h2>\n<pre id=\"checkpoint\">{cp}</pre>\n\
         <p><a href=\"/console/log/checkpoints\" id=\"checkpoints-link\">Checkpoints over time</a>, \
         and the consistency of any two, verified in this browser.</p>\n\
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
    page_for(StatusCode::OK, "Log", &body, reader.chrome())
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
pub(super) async fn entry(
    State(app): State<Arc<App>>,
    reader: Reader,
    Path(index): Path<String>,
) -> Response {
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
         <label for=\"witness-keys\">Witness keys whose cosignature you require, one per line (optional, kept in this browser)</label>\n\
         <textarea id=\"witness-keys\" name=\"witness-keys\" rows=\"3\" cols=\"70\" autocomplete=\"off\" spellcheck=\"false\"></textarea>\n\
         <button type=\"submit\" disabled>Verify</button>\n</form>\n\
         <p id=\"verdict\" role=\"status\" aria-live=\"polite\"></p>\n</section>\n\
         <script type=\"module\" src=\"/console/entry.js\"></script>\n",
        leaf = ledger_format::hash::leaf_hash(&bytes).to_hex(),
        b64 = base64::engine::general_purpose::STANDARD.encode(&bytes),
        text = escape(&text),
        n = proof.len(),
        cp = escape(&cp),
    );
    page_for(StatusCode::OK, &format!("Entry {index}"), &body, reader.chrome())
}

#[derive(Debug, Deserialize)]
pub(super) struct Lookup {
    digest: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /console/log/search?digest=…`: the attestations naming a digest
/// (subject, material or envelope), each linked to its entry's page, and
/// the size up to which the answer is complete; [`SEARCH_PAGE`] hits a
/// page, the next from the cursor `after`.
pub(super) async fn search(
    State(app): State<Arc<App>>,
    reader: Reader,
    q: Result<Query<Lookup>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (digest, after, limit) = q.map(|q| (q.0.digest, q.0.after, q.0.limit)).unwrap_or_default();
    let digest = digest.unwrap_or_default();
    let form = format!(
        "<h1>Search the log</h1>\n<form method=\"get\" action=\"/console/log/search\">\n\
         <label for=\"digest\">Digest of a subject, material or envelope</label>\n\
         <input id=\"digest\" name=\"digest\" size=\"70\" placeholder=\"sha256:…\" value=\"{}\" \
         spellcheck=\"false\" required>\n<button type=\"submit\">Search</button>\n</form>\n",
        escape(&digest)
    );
    if digest.trim().is_empty() {
        return page_for(StatusCode::OK, "Search", &form, reader.chrome());
    }
    let number = |v: Option<&str>| v.map(str::parse::<i64>).transpose();
    let (Ok(after), Ok(limit)) = (number(after.as_deref()), number(limit.as_deref())) else {
        return page_for(
            StatusCode::BAD_REQUEST,
            "Search",
            &format!("{form}<p role=\"alert\">after must be the cursor of a \"Next hits\" link, and limit a number.</p>\n"),
            reader.chrome(),
        );
    };
    let limit = limit.unwrap_or(SEARCH_PAGE).clamp(1, SEARCH_PAGE);
    let found = match search::search(&app, Search::Digest(&digest), after, limit).await {
        Ok(f) => f,
        Err(SearchError::Bad(m)) => {
            return page_for(
                StatusCode::BAD_REQUEST,
                "Search",
                &format!("{form}<p role=\"alert\">{}</p>\n", escape(&m)),
                reader.chrome(),
            )
        }
        Err(SearchError::Meta(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let rows: String = found
        .hits
        .iter()
        .map(|(a, d)| {
            let (role, name) = d.as_ref().map_or((String::new(), String::new()), |d| (d.role.clone(), d.name.clone()));
            format!(
                "<tr><td><a href=\"/console/log/entries/{i}\">{i}</a></td><td>{role}</td><td>{name}</td>\
                 <td>{workflow}</td><td>{project}</td><td><code>{run}</code></td><td><code>{env}</code></td></tr>\n",
                i = a.log_index,
                role = escape(&role),
                name = escape(&name),
                workflow = escape(&a.workflow),
                project = escape(&a.project),
                run = escape(&a.run_id),
                env = escape(&a.envelope_digest),
            )
        })
        .collect();
    let from = if after.is_some() { " (continued)" } else { "" };
    let table = if found.hits.is_empty() {
        format!(
            "<p id=\"hits\">No{} attestation names this digest.</p>\n",
            if after.is_some() { " further" } else { "" }
        )
    } else {
        format!(
            "<table id=\"hits\">\n<caption>{n} hit(s){from}</caption>\n<thead><tr><th scope=\"col\">Entry</th>\
             <th scope=\"col\">As</th><th scope=\"col\">Name</th><th scope=\"col\">Workflow</th><th scope=\"col\">Project</th>\
             <th scope=\"col\">Run</th><th scope=\"col\">Envelope</th></tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n",
            n = found.hits.len()
        )
    };
    let next = found.next.map_or_else(String::new, |n| {
        format!(
            "<p><a id=\"next\" rel=\"next\" href=\"/console/log/search?digest={}&amp;after={n}{l}\">Next hits</a></p>\n",
            escape(&form_urlencoded::byte_serialize(digest.trim().as_bytes()).collect::<String>()),
            l = if limit == SEARCH_PAGE { String::new() } else { format!("&amp;limit={limit}") },
        )
    });
    let body = format!(
        "{form}{table}{next}<p id=\"complete\">Complete for the first {published} entries of the log (what is \
         published and indexed): every hit among them is on this page{or}.</p>\n",
        published = found.published,
        or = if after.is_some() || found.next.is_some() {
            ", an earlier one or a later one (in log order)"
        } else {
            ""
        },
    );
    page_for(StatusCode::OK, "Search", &body, reader.chrome())
}

/// Most hits a search page lists (`limit` may ask for fewer).
const SEARCH_PAGE: i64 = 100;
