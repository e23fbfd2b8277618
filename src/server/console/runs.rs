//! Runs (SPEC.md §16.4): the list a signed-in reader may see, filtered and
//! paged by cursor, and one run with everything a CI owner asks about it —
//! the contract revision it was checked against, every refused push and
//! why, its materials, the policy verdicts, the statement, its log entry
//! and offline bundle. A workflow token sees only its workflows' runs;
//! another workflow's run is "not found", as in the API.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::html::{error, escape, link, page_for, time};
use super::session::{required, Viewer};
use crate::attest::statement::{View, KIND_ANNOTATION};
use crate::policy::verdict::{Evaluator, Vsa};
use crate::server::auth::ArtifactReaders;
use crate::server::meta::{Run, RunFilter};
use crate::server::App;

/// Runs per page.
pub(super) const PAGE: i64 = 50;
/// The statement is shown up to this many bytes.
const MAX_STATEMENT_SHOWN: usize = 256 * 1024;
const STATUSES: [&str; 5] = ["INITIALIZED", "SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"];

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    status: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    since: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    until: String,
    /// The cursor: `<created_at>:<run id>` of the last run shown.
    #[serde(default)]
    after: String,
}

/// Unix seconds at the start of a `YYYY-MM-DD` UTC day.
fn day_start(d: &str) -> Option<i64> {
    let date: jiff::civil::Date = d.trim().parse().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

fn cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once(':')?;
    Some((t.parse().ok()?, id.to_owned()))
}

/// A page's problem with its query, for a 400.
fn filter_of(q: &ListQuery, v: &Viewer) -> Result<RunFilter, String> {
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let status = opt(&q.status).map(|s| s.to_ascii_uppercase());
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(format!("status {s:?} is not one of {}", STATUSES.join(", ")));
        }
    }
    let date = |s: &str, what: &str| match opt(s) {
        None => Ok(None),
        Some(d) => day_start(&d)
            .map(Some)
            .ok_or_else(|| format!("{what} {d:?} is not a date (YYYY-MM-DD)")),
    };
    let after = match opt(&q.after) {
        None => None,
        Some(c) => Some(cursor(&c).ok_or_else(|| format!("cursor {c:?} is not one this page made"))?),
    };
    Ok(RunFilter {
        scope: v.principal.workflows().map(<[String]>::to_vec),
        workflow: opt(&q.workflow),
        project: opt(&q.project),
        status,
        since: date(&q.since, "since")?,
        until: date(&q.until, "until")?.map(|t| t + 86_400),
        after,
    })
}

fn status_cell(status: &str) -> String {
    let class = match status {
        "SUCCEEDED" => "verified",
        "FAILED" | "EXPIRED" => "failed",
        _ => "",
    };
    format!("<span class=\"{class}\">{}</span>", escape(status))
}

/// `GET /console/runs`
pub(super) async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let v = match required(&app, &headers, &uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let q = q.map(|q| q.0).unwrap_or_default();
    let filter = match filter_of(&q, &v) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let meta = app.meta.clone();
    let found = tokio::task::spawn_blocking(move || meta.runs_page(&filter, PAGE + 1)).await;
    let mut runs = match found {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return super::unavailable(e),
        Err(e) => return super::unavailable(e),
    };
    let more = runs.len() as i64 > PAGE;
    runs.truncate(PAGE as usize);
    let mut body = String::from("<h1>Runs</h1>\n");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/runs\" class=\"filters\">\n\
         <label for=\"f-workflow\">Workflow</label> <input id=\"f-workflow\" name=\"workflow\" value=\"{}\">\n\
         <label for=\"f-project\">Project</label> <input id=\"f-project\" name=\"project\" value=\"{}\">\n\
         <label for=\"f-status\">Status</label> <select id=\"f-status\" name=\"status\"><option value=\"\">any</option>{}</select>\n\
         <label for=\"f-since\">From</label> <input id=\"f-since\" name=\"since\" type=\"date\" value=\"{}\">\n\
         <label for=\"f-until\">To</label> <input id=\"f-until\" name=\"until\" type=\"date\" value=\"{}\">\n\
         <button type=\"submit\">Filter</button>\n</form>\n",
        escape(&q.workflow),
        escape(&q.project),
        STATUSES
            .iter()
            .map(|s| format!(
                "<option{}>{s}</option>",
                if q.status.eq_ignore_ascii_case(s) { " selected" } else { "" }
            ))
            .collect::<String>(),
        escape(&q.since),
        escape(&q.until),
    );
    if runs.is_empty() {
        body.push_str("<p id=\"no-runs\">No runs match.</p>\n");
    } else {
        body.push_str(
            "<table id=\"runs\">\n<thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Workflow</th>\
             <th scope=\"col\">Project</th><th scope=\"col\">Version</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">Why</th></tr></thead>\n<tbody>\n",
        );
        for r in &runs {
            let why: String = r.reason.as_deref().unwrap_or("").chars().take(120).collect();
            let _ = writeln!(
                body,
                "<tr><td><a href=\"/console/runs/{id}\">{t}</a></td><td>{w}</td><td>{p}</td><td>{ver}</td><td>{s}</td><td>{why}</td></tr>",
                id = escape(&r.id),
                t = time(r.created_at),
                w = escape(&r.workflow),
                p = escape(&r.project),
                ver = escape(&r.version),
                s = status_cell(&r.status),
                why = escape(&why),
            );
        }
        body.push_str("</tbody>\n</table>\n");
    }
    if let (true, Some(last)) = (more, runs.last()) {
        let after = format!("{}:{}", last.created_at, last.id);
        let next = link(
            "/console/runs",
            &[
                ("workflow", &q.workflow),
                ("project", &q.project),
                ("status", &q.status),
                ("since", &q.since),
                ("until", &q.until),
                ("after", &after),
            ],
        );
        let _ = writeln!(
            body,
            "<p><a id=\"older\" rel=\"next\" href=\"{}\">Older runs</a></p>",
            escape(&next)
        );
    }
    page_for(StatusCode::OK, "Runs", &body, v.chrome())
}

/// The run `id` if the viewer may see it (else "not found": a token of
/// another workflow learns nothing, not even that the run exists).
fn visible_run(app: &App, v: &Viewer, id: &str) -> Result<Run, Response> {
    let unknown = || error(StatusCode::NOT_FOUND, &format!("no run {id}"));
    let run = app
        .meta
        .run(id)
        .map_err(super::unavailable)?
        .ok_or_else(unknown)?;
    if v.principal.may(&run.workflow).is_err() {
        return Err(unknown());
    }
    Ok(run)
}

/// The session's viewer and run `id`, which it may see.
fn session_run(app: &App, headers: &HeaderMap, uri: &Uri, id: &str) -> Result<(Viewer, Run), Response> {
    let v = required(app, headers, uri)?;
    let run = visible_run(app, &v, id)?;
    Ok((v, run))
}

/// What the run's log entry holds, read back from the ledger.
struct Logged {
    payload: Vec<u8>,
    verdict: Option<Vsa>,
}

fn read_logged(app: &App, index: u64) -> Result<Logged, String> {
    let l = app.logged(index).map_err(|e| e.to_string())?;
    let verdict = match &l.verdict {
        Some(bytes) => {
            let env = crate::attest::dsse::Envelope::parse(bytes).map_err(|e| e.to_string())?;
            let payload =
                crate::attest::dsse::decode_b64(&env.payload).ok_or("the verdict's payload is not base64")?;
            Some(serde_json::from_slice::<Vsa>(&payload).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    Ok(Logged {
        payload: l.payload,
        verdict,
    })
}

fn materials(app: &App, v: &Viewer, payload: &[u8], out: &mut String) {
    let Ok(st) = View::parse(payload) else {
        out.push_str("<p class=\"failed\">The logged statement does not parse.</p>\n");
        return;
    };
    out.push_str(
        "<table id=\"materials\">\n<thead><tr><th scope=\"col\">Role</th><th scope=\"col\">Name</th>\
         <th scope=\"col\">Kind</th><th scope=\"col\">Digest</th><th scope=\"col\">Size</th>\
         <th scope=\"col\">Download</th></tr></thead>\n<tbody>\n",
    );
    for (d, role) in st.descriptors() {
        let kind = d.annotations.get(KIND_ANNOTATION).unwrap_or("");
        let digest = d
            .digest
            .strings()
            .next()
            .map(|(alg, hex)| format!("{alg}:{hex}"))
            .unwrap_or_default();
        let readers = digest
            .starts_with("sha256:")
            .then(|| ArtifactReaders::of(app, &digest).ok())
            .flatten();
        let size = readers
            .as_ref()
            .and_then(|r| r.size)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let download = match &readers {
            Some(r) if r.admit(Some(&v.principal)) => format!(
                "<a href=\"/console/artifacts/{d}\" download>download</a>",
                d = escape(&digest)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{role}</td><td>{name}</td><td>{kind}</td><td><code>{digest}</code></td><td>{size}</td><td>{download}</td></tr>",
            name = escape(d.name.get().unwrap_or("")),
            kind = escape(kind),
            digest = escape(&digest),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn verdicts(vsa: &Vsa, out: &mut String) {
    let p = &vsa.predicate;
    let _ = writeln!(
        out,
        "<p>The control plane's signed verdict (a SLSA VSA, logged with the attestation): \
         <strong id=\"verdict-result\">{}</strong>, policies at commit <code>{}</code>.</p>",
        escape(&p.verification_result),
        escape(&p.policies_commit)
    );
    if let Some(e) = &p.exception {
        let _ = writeln!(
            out,
            "<p class=\"failed\">Accepted by exception of {} ({}), until {}: {}</p>",
            escape(&e.granted_by),
            escape(&e.granted_at),
            escape(&e.until),
            escape(&e.reason)
        );
    }
    if p.policy_evaluations.is_empty() {
        out.push_str("<p>No policy was evaluated.</p>\n");
        return;
    }
    out.push_str(
        "<table id=\"verdicts\">\n<thead><tr><th scope=\"col\">Policy</th><th scope=\"col\">On</th>\
         <th scope=\"col\">Result</th><th scope=\"col\">Blocking</th><th scope=\"col\">Evaluated by</th>\
         <th scope=\"col\">Violations</th></tr></thead>\n<tbody>\n",
    );
    for e in &p.policy_evaluations {
        let result = if e.error.is_some() {
            "<span class=\"failed\">ERROR</span>"
        } else if e.skipped {
            "SKIPPED"
        } else if e.failed() {
            "<span class=\"failed\">FAILED</span>"
        } else {
            "<span class=\"verified\">PASSED</span>"
        };
        let mut why: Vec<String> = e.violations.iter().map(|m| escape(m)).collect();
        if let Some(err) = &e.error {
            why.push(escape(err));
        }
        if e.skipped && !e.skip_reason.is_empty() {
            why.push(format!("skipped: {}", escape(&e.skip_reason)));
        }
        let _ = writeln!(
            out,
            "<tr><td>{policy}</td><td>{on}</td><td>{result}</td><td>{blocking}</td><td>{by}</td><td>{why}</td></tr>",
            policy = escape(&e.policy),
            on = escape(e.material.as_deref().unwrap_or("the attestation")),
            blocking = if e.blocking { "yes" } else { "no" },
            by = match e.evaluated_by {
                Evaluator::ControlPlane => "control plane",
                Evaluator::Client => "client (material not uploaded)",
            },
            why = why.join("<br>"),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// `GET /console/runs/{id}`
pub(super) async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let (v, run) = match session_run(&app, &headers, &uri, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let refusals = match app.meta.refusals_of(&run.id, 100) {
        Ok(r) => r,
        Err(e) => return super::unavailable(e),
    };
    let exception = match app.meta.exception(&run.id) {
        Ok(e) => e,
        Err(e) => return super::unavailable(e),
    };
    let c = &run.contract;
    let runner = if run.runner_url.starts_with("https://") || run.runner_url.starts_with("http://") {
        format!(
            "<a href=\"{u}\" rel=\"noreferrer\">{u}</a>",
            u = escape(&run.runner_url)
        )
    } else {
        escape(&run.runner_url)
    };
    let mut body = format!(
        "<h1>Run <code>{id}</code></h1>\n<dl>\n\
         <dt>Workflow</dt><dd id=\"run-workflow\">{wf}</dd>\n<dt>Project</dt><dd>{project}</dd>\n\
         <dt>Version</dt><dd>{version}</dd>\n<dt>Status</dt><dd id=\"run-status\">{status}</dd>\n\
         <dt>Runner</dt><dd>{rt} {runner}</dd>\n<dt>Started</dt><dd>{created}</dd>\n\
         <dt>Ended</dt><dd>{finished}</dd>\n\
         <dt>Contract revision</dt><dd><a id=\"run-contract\" href=\"{clink}\">{cname} at {ccommit}</a> (blob <code>{cblob}</code>)</dd>\n</dl>\n",
        id = escape(&run.id),
        wf = escape(&run.workflow),
        project = escape(&run.project),
        version = escape(&run.version),
        status = status_cell(&run.status),
        rt = escape(&run.runner_type),
        created = time(run.created_at),
        finished = run.finished_at.map(time).unwrap_or_else(|| "—".into()),
        clink = escape(&link(&format!("/console/contracts/{}", c.name), &[("at", &c.commit)])),
        cname = escape(&c.name),
        ccommit = escape(&c.commit),
        cblob = escape(&c.blob),
    );
    if let Some(r) = &run.reason {
        let _ = writeln!(body, "<p id=\"run-reason\">Ended: {}</p>", escape(r));
    }
    if let Some(e) = &exception {
        let _ = writeln!(
            body,
            "<p>Exception granted by {} at {} until {}: {}</p>",
            escape(&e.granted_by),
            time(e.granted_at),
            time(e.until),
            escape(&e.reason)
        );
    }
    body.push_str("<h2>Refused pushes</h2>\n");
    if refusals.is_empty() {
        body.push_str("<p>None.</p>\n");
    } else {
        body.push_str(
            "<table id=\"refusals\">\n<thead><tr><th scope=\"col\">When</th><th scope=\"col\">Reason</th>\
             <th scope=\"col\">By</th><th scope=\"col\">What the push was told</th></tr></thead>\n<tbody>\n",
        );
        for r in &refusals {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                time(r.at),
                escape(&r.code),
                escape(&r.caller),
                escape(&r.message)
            );
        }
        body.push_str("</tbody>\n</table>\n");
    }
    if let Some(index) = run.log_index.filter(|i| *i >= 0) {
        let index = index as u64;
        let a = app.clone();
        let logged = tokio::task::spawn_blocking(move || read_logged(&a, index)).await;
        let _ = writeln!(
            body,
            "<h2>Attestation</h2>\n<p>Log entry <a id=\"run-entry\" href=\"/console/log/entries/{index}\">{index}</a> \
             (verify its inclusion there) · <a id=\"run-bundle\" href=\"/console/runs/{id}/bundle\" download>offline bundle</a> \
             (<code>tally verify --bundle</code>) · envelope <code>{env}</code></p>",
            id = escape(&run.id),
            env = escape(run.envelope_digest.as_deref().unwrap_or("")),
        );
        match logged {
            Ok(Ok(l)) => {
                body.push_str("<h3>Materials</h3>\n");
                materials(&app, &v, &l.payload, &mut body);
                body.push_str("<h3>Policy verdicts</h3>\n");
                match &l.verdict {
                    Some(vsa) => verdicts(vsa, &mut body),
                    None => body.push_str("<p>The contract has no policies; no verdict was logged.</p>\n"),
                }
                body.push_str("<h3>Statement</h3>\n");
                let pretty = serde_json::from_slice::<serde_json::Value>(&l.payload)
                    .ok()
                    .and_then(|j| serde_json::to_string_pretty(&j).ok())
                    .unwrap_or_else(|| String::from_utf8_lossy(&l.payload).into_owned());
                let shown: String = if pretty.len() > MAX_STATEMENT_SHOWN {
                    let mut cut = MAX_STATEMENT_SHOWN;
                    while !pretty.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    format!(
                        "{}\n… ({} bytes in all; the bundle has it whole)",
                        &pretty[..cut],
                        pretty.len()
                    )
                } else {
                    pretty
                };
                let _ = writeln!(body, "<pre id=\"statement\">{}</pre>", escape(&shown));
            }
            Ok(Err(e)) => {
                tracing::warn!(run = %run.id, index, error = %e, "console: reading a logged entry");
                body.push_str("<p class=\"failed\">The entry could not be read back from the log; the server's log has why.</p>\n");
            }
            Err(e) => return super::unavailable(e),
        }
    }
    page_for(StatusCode::OK, &format!("Run {}", run.id), &body, v.chrome())
}

/// `GET /console/runs/{id}/bundle`: the run's offline bundle, a file.
pub(super) async fn bundle(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Response {
    let (_, run) = match session_run(&app, &headers, &uri, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(index) = run.log_index.filter(|i| *i >= 0) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("run {id} has no attestation in the log"),
        );
    };
    let a = app.clone();
    let made = tokio::task::spawn_blocking(move || a.offline_bundle(index as u64)).await;
    match made {
        Ok(Ok((_, bytes))) => {
            let name = format!(
                "attachment; filename=\"run-{}.bundle.json\"",
                run.id.replace(['"', '\\'], "_")
            );
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment")),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(Err(e)) => super::unavailable(e),
        Err(e) => super::unavailable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_cursors_parse_strictly() {
        assert_eq!(day_start("2026-12-05"), Some(1_796_428_800));
        assert_eq!(day_start("2026-13-01"), None);
        assert_eq!(day_start("yesterday"), None);
        assert_eq!(cursor("17:run-a:b"), Some((17, "run-a:b".to_owned())));
        assert_eq!(cursor("x:run"), None);
        assert_eq!(cursor("run"), None);
    }
}
