//! The overview (SPEC.md §16.6): the log's state for anyone; for a
//! signed-in reader, within what they may see, runs per day by outcome,
//! failing workflows and refused pushes by reason, each linking to the
//! runs or refusals behind the number.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;

use super::html::{error, escape, link, page_for, time};
use super::session::{chrome, required, viewer, Viewer};
use crate::server::{unix_now, App};

/// Days the overview counts back.
const DAYS: i64 = 14;
/// Refusals per page.
const PAGE: i64 = 50;
const OUTCOMES: [&str; 5] = ["SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "INITIALIZED"];

/// What a refusal's code is about, for the overview's grouping.
pub(super) fn refusal_group(code: &str) -> &'static str {
    match code {
        "contract_violation" | "provenance_mismatch" | "run_finished" => "contract",
        "policy_violation" => "policy",
        "signature" | "no_key" | "certificate" => "signature",
        "payload_type" | "statement" | "bad_request" | "unsupported_media_type" | "payload_too_large" => {
            "malformed"
        }
        _ => "other",
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn log_section(app: &App, out: &mut String) {
    let s = app.ledger.sizes();
    let cp = app.ledger.checkpoint();
    let signers: Vec<String> = ledger_format::note::Note::parse(cp.as_bytes())
        .map(|n| n.signatures().iter().map(|s| s.name().to_owned()).collect())
        .unwrap_or_default();
    let log_key = app.verifier_key.split('+').next().unwrap_or("");
    let cosigners: Vec<&String> = signers.iter().filter(|n| n.as_str() != log_key).collect();
    let published = match app.ledger.published_at() {
        Some(t) => format!("{} ({} ago)", time(t), age(unix_now().saturating_sub(t).max(0))),
        None => "never".into(),
    };
    let _ = write!(
        out,
        "<h2>Log</h2>\n<dl>\n<dt>Entries published</dt><dd id=\"log-size\">{size}</dd>\n\
         <dt>Latest checkpoint published</dt><dd id=\"checkpoint-age\">{published}</dd>\n\
         <dt>Cosignatures on it</dt><dd id=\"cosignatures\">{cos}</dd>\n</dl>\n\
         <p>These are what the server says. <a href=\"/console/log\">The log explorer</a> verifies \
         checkpoints and proofs in your browser against a key you pin.</p>\n",
        size = s.published,
        cos = if cosigners.is_empty() {
            "none".to_owned()
        } else {
            format!(
                "{} ({})",
                cosigners.len(),
                cosigners.iter().map(|n| escape(n)).collect::<Vec<_>>().join(", ")
            )
        },
    );
}

fn runs_section(app: &App, v: &Viewer, out: &mut String) -> Result<(), Response> {
    let since = (unix_now() / 86_400 - (DAYS - 1)) * 86_400;
    let scope = v.principal.workflows();
    let counts = app.meta.run_counts(since, scope).map_err(super::unavailable)?;
    let mut days: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    // workflow → (failed, expired, runs)
    let mut by_workflow: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for (day, workflow, status, n) in counts {
        *days.entry(day).or_default().entry(status.clone()).or_default() += n;
        let w = by_workflow.entry(workflow).or_default();
        match status.as_str() {
            "FAILED" => w.0 += n,
            "EXPIRED" => w.1 += n,
            _ => {}
        }
        w.2 += n;
    }
    let _ = write!(
        out,
        "<h2>Runs per day, last {DAYS} days</h2>\n<table id=\"runs-per-day\">\n<thead><tr><th scope=\"col\">Day (UTC)</th>{}</tr></thead>\n<tbody>\n",
        OUTCOMES
            .iter()
            .map(|o| format!("<th scope=\"col\">{}</th>", o.to_lowercase()))
            .collect::<String>()
    );
    if days.is_empty() {
        let _ = writeln!(
            out,
            "<tr><td colspan=\"{}\">No runs.</td></tr>",
            OUTCOMES.len() + 1
        );
    }
    for (day, counts) in days.iter().rev() {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", escape(day));
        for o in OUTCOMES {
            let n = counts.get(o).copied().unwrap_or(0);
            let start = day.as_str();
            let href = link(
                "/console/runs",
                &[("status", o), ("since", start), ("until", start)],
            );
            if n > 0 {
                let _ = write!(out, "<td><a href=\"{}\">{n}</a></td>", escape(&href));
            } else {
                out.push_str("<td>0</td>");
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");

    let mut failing: Vec<(String, (i64, i64, i64))> = by_workflow
        .into_iter()
        .filter(|(_, (failed, expired, _))| failed + expired > 0)
        .collect();
    failing.sort_by(|a, b| (b.1 .0 + b.1 .1).cmp(&(a.1 .0 + a.1 .1)).then(a.0.cmp(&b.0)));
    let _ = writeln!(out, "<h2>Failing workflows, last {DAYS} days</h2>");
    if failing.is_empty() {
        out.push_str("<p id=\"no-failing\">None.</p>\n");
    } else {
        out.push_str(
            "<table id=\"failing\">\n<thead><tr><th scope=\"col\">Workflow</th><th scope=\"col\">Failed</th>\
             <th scope=\"col\">Expired</th><th scope=\"col\">Runs</th></tr></thead>\n<tbody>\n",
        );
        for (workflow, (failed, expired, runs)) in &failing {
            let href = link("/console/runs", &[("workflow", workflow), ("status", "FAILED")]);
            let _ = writeln!(
                out,
                "<tr><td><a href=\"{}\">{}</a></td><td>{failed}</td><td>{expired}</td><td>{runs}</td></tr>",
                escape(&href),
                escape(workflow),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }

    let refused = app
        .meta
        .refusals_by_code(since, scope)
        .map_err(super::unavailable)?;
    let _ = writeln!(out, "<h2>Refused pushes by reason, last {DAYS} days</h2>");
    if refused.is_empty() {
        out.push_str("<p id=\"no-refusals\">None.</p>\n");
    } else {
        out.push_str(
            "<table id=\"refusals-by-reason\">\n<thead><tr><th scope=\"col\">About</th><th scope=\"col\">Reason</th>\
             <th scope=\"col\">Refused</th></tr></thead>\n<tbody>\n",
        );
        for (code, n) in &refused {
            let href = link("/console/refusals", &[("code", code)]);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td><a href=\"{}\">{n}</a></td></tr>",
                refusal_group(code),
                escape(code),
                escape(&href)
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    Ok(())
}

/// `GET /console`
pub(super) async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let a = app.clone();
    let made = tokio::task::spawn_blocking(move || {
        let mut body = format!("<h1>tally — <code>{}</code></h1>\n", escape(&a.cfg.origin));
        log_section(&a, &mut body);
        let done = match &v {
            Some(v) => runs_section(&a, v, &mut body),
            None => {
                body.push_str(
                    "<p><a href=\"/console/login?next=%2Fconsole\">Log in</a> to see runs, failing workflows and refused pushes.</p>\n",
                );
                Ok(())
            }
        };
        (body, v, done)
    })
    .await;
    match made {
        Ok((body, v, Ok(()))) => page_for(StatusCode::OK, "Overview", &body, chrome(v.as_ref())),
        Ok((_, _, Err(r))) => r,
        Err(e) => super::unavailable(e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RefusalsQuery {
    #[serde(default)]
    code: String,
    /// The cursor: the last refusal shown.
    before: Option<i64>,
}

/// `GET /console/refusals`: refused pushes, newest first, each linking to
/// its run.
pub(super) async fn refusals(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<RefusalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let v = match required(&app, &headers, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "the cursor is not one this page made");
    };
    let code = q.code.trim();
    let rows = match app.meta.refusals_page(
        v.principal.workflows(),
        (!code.is_empty()).then_some(code),
        q.before,
        PAGE + 1,
    ) {
        Ok(r) => r,
        Err(e) => return super::unavailable(e),
    };
    let more = rows.len() as i64 > PAGE;
    let rows = &rows[..rows.len().min(PAGE as usize)];
    let mut body = format!(
        "<h1>Refused pushes{}</h1>\n",
        if code.is_empty() {
            String::new()
        } else {
            format!(": <code>{}</code>", escape(code))
        }
    );
    if rows.is_empty() {
        body.push_str("<p>None.</p>\n");
    } else {
        body.push_str(
            "<table id=\"refusals\">\n<thead><tr><th scope=\"col\">When</th><th scope=\"col\">Run</th>\
             <th scope=\"col\">Workflow</th><th scope=\"col\">Reason</th><th scope=\"col\">What the push was told</th></tr></thead>\n<tbody>\n",
        );
        for (_, r) in rows {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td><a href=\"/console/runs/{id}\">{id}</a></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                time(r.at),
                escape(&r.workflow),
                escape(&r.code),
                escape(&r.message),
                id = escape(&r.run_id),
            );
        }
        body.push_str("</tbody>\n</table>\n");
    }
    if let (true, Some((last, _))) = (more, rows.last()) {
        let href = link(
            "/console/refusals",
            &[("code", code), ("before", &last.to_string())],
        );
        let _ = writeln!(
            body,
            "<p><a rel=\"next\" href=\"{}\">Older</a></p>",
            escape(&href)
        );
    }
    page_for(StatusCode::OK, "Refused pushes", &body, v.chrome())
}
