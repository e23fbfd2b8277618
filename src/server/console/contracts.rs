//! Contracts (SPEC.md §16.5): each contract at the tracked head, its
//! history on the tracked branch, its text at any of those commits, and the
//! semantic diff between two revisions — the one `tally contract diff`
//! prints, breaking changes marked. The admin sees every contract; a
//! workflow token sees the contracts its workflows are held to.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use gix::ObjectId;
use serde::Deserialize;

use super::html::{escape, link, page_for, time};
use super::session::{required, Viewer};
use crate::contract::diff::diff_contracts;
use crate::contract::repo::{short, ContractsRepo, FileChange, RepoError};
use crate::contract::{parse_contract, Contract};
use crate::server::App;

/// Revisions a contract's page lists.
const HISTORY: usize = 200;

/// A page that could not be made: its status and what to say.
type Refused = (StatusCode, String);

fn repo_refused(e: RepoError) -> Refused {
    match e {
        RepoError::UnknownRevision(_) | RepoError::NoContract { .. } => {
            (StatusCode::NOT_FOUND, e.to_string())
        }
        RepoError::Git(m) => {
            tracing::warn!(error = %m, "console: reading the contracts repository");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the contracts repository is unavailable; try again".into(),
            )
        }
    }
}

/// The contract names the viewer may see, with the workflows held to each
/// (`None`: every contract, for the admin).
fn visible(app: &App, v: &Viewer) -> Result<BTreeMap<String, Vec<String>>, Refused> {
    let workflows = app.contracts.workflows().map_err(|e| {
        tracing::warn!(error = %e, "console: reading workflows.toml");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the contracts repository is unavailable; try again".to_owned(),
        )
    })?;
    let mut by_contract: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for w in workflows.iter().filter(|w| v.principal.may(&w.name).is_ok()) {
        by_contract
            .entry(w.contract.clone())
            .or_default()
            .push(w.name.clone());
    }
    Ok(by_contract)
}

fn may_see(app: &App, v: &Viewer, name: &str) -> Result<(), Refused> {
    let admin = v.principal.workflows().is_none();
    if admin || visible(app, v)?.contains_key(name) {
        Ok(())
    } else {
        Err((StatusCode::NOT_FOUND, format!("no contract `{name}`")))
    }
}

/// A contract name as the repository's file stems are: no paths.
fn checked_name(name: &str) -> Result<&str, Refused> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok {
        Ok(name)
    } else {
        Err((
            StatusCode::BAD_REQUEST,
            format!("{name:?} is not a contract name"),
        ))
    }
}

/// A commit on the tracked branch, from a full hex id (`None`: the head).
fn commit_on_branch(app: &App, repo: &ContractsRepo, at: Option<&str>) -> Result<ObjectId, Refused> {
    let head = app.contracts.head().ok_or((
        StatusCode::SERVICE_UNAVAILABLE,
        "the contracts repository has no tracked branch yet".to_owned(),
    ))?;
    let Some(at) = at.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(head);
    };
    let id = ObjectId::from_hex(at.as_bytes())
        .map_err(|_| (StatusCode::BAD_REQUEST, format!("{at:?} is not a full commit id")))?;
    let on = id == head
        || repo.is_ancestor(id, head).map_err(|_| {
            (
                StatusCode::NOT_FOUND,
                format!("commit {at} is not on the contracts repository's tracked branch"),
            )
        })?;
    if !on {
        return Err((
            StatusCode::NOT_FOUND,
            format!("commit {at} is not on the contracts repository's tracked branch"),
        ));
    }
    Ok(id)
}

async fn render(
    app: &Arc<App>,
    headers: &HeaderMap,
    uri: &Uri,
    title: String,
    make: impl FnOnce(&App, &Viewer, &ContractsRepo) -> Result<String, Refused> + Send + 'static,
) -> Response {
    let v = match required(app, headers, uri) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let a = app.clone();
    let made = tokio::task::spawn_blocking(move || {
        // What SecOps merged a moment ago, not what the last run resolved
        // (a branch rewritten is refused here as at intake: the accepted
        // head stays).
        if let Err(e) = a.contracts.refresh() {
            tracing::warn!(error = %e, "console: refreshing the contracts repository");
        }
        let repo = a.contracts.local();
        let body = make(&a, &v, &repo);
        (v, body)
    })
    .await;
    match made {
        Ok((v, Ok(body))) => page_for(StatusCode::OK, &title, &body, v.chrome()),
        Ok((v, Err((status, m)))) => {
            let body = format!("<h1>Not available</h1>\n<p role=\"alert\">{}</p>\n", escape(&m));
            page_for(status, "Not available", &body, v.chrome())
        }
        Err(e) => super::unavailable(e),
    }
}

/// `GET /console/contracts`
pub(super) async fn list(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    render(&app, &headers, &uri, "Contracts".into(), |app, v, repo| {
        let head = commit_on_branch(app, repo, None)?;
        let held = visible(app, v)?;
        let admin = v.principal.workflows().is_none();
        let mut names: Vec<String> = repo
            .files(head)
            .map_err(repo_refused)?
            .into_iter()
            .filter_map(|f| f.name.strip_suffix(".toml").map(str::to_owned))
            .filter(|n| n != "workflows")
            .filter(|n| admin || held.contains_key(n))
            .collect();
        names.sort();
        let mut body = format!(
            "<h1>Contracts</h1>\n<p>At the tracked head <code>{}</code> of the contracts repository.</p>\n",
            head
        );
        if names.is_empty() {
            body.push_str("<p>No contracts to show.</p>\n");
            return Ok(body);
        }
        body.push_str(
            "<table id=\"contracts\">\n<thead><tr><th scope=\"col\">Contract</th><th scope=\"col\">Workflows</th>\
             <th scope=\"col\">Last changed</th><th scope=\"col\">By</th><th scope=\"col\">Why</th></tr></thead>\n<tbody>\n",
        );
        for n in &names {
            let last = repo.log_from(n, head, Some(1)).map_err(repo_refused)?;
            let (when, who, why) = last
                .first()
                .map(|c| (time(c.time), c.author.clone(), c.summary.clone()))
                .unwrap_or_default();
            let _ = writeln!(
                body,
                "<tr><td><a href=\"/console/contracts/{n}\">{n}</a></td><td>{wf}</td><td>{when}</td><td>{who}</td><td>{why}</td></tr>",
                n = escape(n),
                wf = escape(&held.get(n).map(|w| w.join(", ")).unwrap_or_default()),
                who = escape(&who),
                why = escape(&why),
            );
        }
        body.push_str("</tbody>\n</table>\n");
        Ok(body)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct At {
    at: Option<String>,
}

fn history_table(name: &str, history: &[FileChange], out: &mut String) {
    out.push_str(
        "<table id=\"history\">\n<thead><tr><th scope=\"col\">Commit</th><th scope=\"col\">When</th>\
         <th scope=\"col\">By</th><th scope=\"col\">Why</th><th scope=\"col\">Changes</th></tr></thead>\n<tbody>\n",
    );
    for (i, c) in history.iter().enumerate() {
        let view = link(&format!("/console/contracts/{name}"), &[("at", &c.commit)]);
        let changes = match (history.get(i + 1), &c.blob) {
            (Some(prev), Some(_)) => format!(
                "<a href=\"{}\">diff with {}</a>",
                escape(&link(
                    &format!("/console/contracts/{name}/diff"),
                    &[("from", &prev.commit), ("to", &c.commit)]
                )),
                escape(&prev.commit[..prev.commit.len().min(12)])
            ),
            (_, None) => "deleted".into(),
            (None, _) => "created".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{view}\"><code>{short}</code></a></td><td>{when}</td><td>{who}</td><td>{why}</td><td>{changes}</td></tr>",
            view = escape(&view),
            short = escape(&c.commit[..c.commit.len().min(12)]),
            when = time(c.time),
            who = escape(&c.author),
            why = escape(&c.summary),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn revision_options(history: &[FileChange], selected: &str) -> String {
    history
        .iter()
        .filter(|c| c.blob.is_some())
        .map(|c| {
            format!(
                "<option value=\"{v}\"{s}>{short} {why}</option>",
                v = escape(&c.commit),
                s = if c.commit == selected { " selected" } else { "" },
                short = escape(&c.commit[..c.commit.len().min(12)]),
                why = escape(&c.summary),
            )
        })
        .collect()
}

/// `GET /console/contracts/{name}?at=<commit>`
pub(super) async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    q: Result<Query<At>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let at = q.ok().and_then(|q| q.0.at);
    render(&app, &headers, &uri, format!("Contract {name}"), move |app, v, repo| {
        let name = checked_name(&name)?;
        may_see(app, v, name)?;
        let head = commit_on_branch(app, repo, None)?;
        let commit = commit_on_branch(app, repo, at.as_deref())?;
        let (rev, bytes) = repo.revision_at(name, commit).map_err(repo_refused)?;
        let history = repo.log_from(name, head, Some(HISTORY)).map_err(repo_refused)?;
        let mut body = format!(
            "<h1>Contract <code>{n}</code></h1>\n<p>At commit <code id=\"contract-at\">{commit}</code>{is_head}: \
             the revision of commit <code>{rc}</code> ({when}, {who}: {why}), blob <code>{blob}</code>.</p>\n\
             <pre id=\"contract-text\">{text}</pre>\n<h2>History</h2>\n",
            n = escape(name),
            is_head = if commit == head { " (the tracked head)" } else { "" },
            rc = escape(&rev.commit),
            when = time(rev.time),
            who = escape(&rev.author),
            why = escape(&rev.summary),
            blob = escape(rev.blob.as_deref().unwrap_or("")),
            text = escape(&String::from_utf8_lossy(&bytes)),
        );
        history_table(name, &history, &mut body);
        if history.iter().filter(|c| c.blob.is_some()).count() > 1 {
            let newest = history.first().map(|c| c.commit.as_str()).unwrap_or("");
            let older = history.get(1).map(|c| c.commit.as_str()).unwrap_or("");
            let _ = write!(
                body,
                "<h2>Compare two revisions</h2>\n<form method=\"get\" action=\"/console/contracts/{n}/diff\">\n\
                 <label for=\"from\">From</label> <select id=\"from\" name=\"from\">{from}</select>\n\
                 <label for=\"to\">To</label> <select id=\"to\" name=\"to\">{to}</select>\n\
                 <button type=\"submit\" id=\"compare\">Compare</button>\n</form>\n",
                n = escape(name),
                from = revision_options(&history, older),
                to = revision_options(&history, newest),
            );
        }
        Ok(body)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Between {
    from: Option<String>,
    to: Option<String>,
}

fn contract_at(
    repo: &ContractsRepo,
    name: &str,
    commit: ObjectId,
) -> Result<(FileChange, Contract), Refused> {
    let (rev, bytes) = repo.revision_at(name, commit).map_err(repo_refused)?;
    let c = parse_contract(
        &format!("{name}.toml"),
        &String::from_utf8_lossy(&bytes),
        Some(name),
    )
    .map_err(|d| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "contract `{name}` at {commit} is invalid: {}",
                d.first().map(|x| x.message.as_str()).unwrap_or("")
            ),
        )
    })?;
    Ok((rev, c))
}

/// `GET /console/contracts/{name}/diff?from=<commit>&to=<commit>`
pub(super) async fn diff(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    q: Result<Query<Between>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    render(&app, &headers, &uri, format!("Contract {name}: changes"), move |app, v, repo| {
        let name = checked_name(&name)?;
        may_see(app, v, name)?;
        let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
            return Err((StatusCode::BAD_REQUEST, "name two commits: ?from=<commit>&to=<commit>".into()));
        };
        let (a, b) = (
            commit_on_branch(app, repo, Some(from))?,
            commit_on_branch(app, repo, Some(to))?,
        );
        let (ra, old) = contract_at(repo, name, a)?;
        let (rb, new) = contract_at(repo, name, b)?;
        let changes = diff_contracts(std::slice::from_ref(&old), std::slice::from_ref(&new));
        let breaking = changes.iter().filter(|c| c.breaking).count();
        let mut body = format!(
            "<h1>Contract <code>{n}</code>: what changed</h1>\n\
             <p>From <a href=\"{la}\"><code>{a}</code></a> (revision <code>{ra}</code>) to \
             <a href=\"{lb}\"><code>{b}</code></a> (revision <code>{rb}</code>). \
             The same semantic diff as <code>tally contract diff {a} {b} {n}</code>.</p>\n",
            n = escape(name),
            la = escape(&link(&format!("/console/contracts/{name}"), &[("at", &a.to_string())])),
            lb = escape(&link(&format!("/console/contracts/{name}"), &[("at", &b.to_string())])),
            ra = short(&ObjectId::from_hex(ra.commit.as_bytes()).unwrap_or(a)),
            rb = short(&ObjectId::from_hex(rb.commit.as_bytes()).unwrap_or(b)),
        );
        if changes.is_empty() {
            body.push_str("<p id=\"no-changes\">No semantic changes.</p>\n");
            return Ok(body);
        }
        let _ = writeln!(
            body,
            "<p id=\"breaking-count\" class=\"{}\">{breaking} breaking change(s) of {}: a pipeline that passed before may now fail.</p>",
            if breaking > 0 { "failed" } else { "" },
            changes.len()
        );
        body.push_str(
            "<table id=\"changes\">\n<thead><tr><th scope=\"col\">Breaking</th><th scope=\"col\">Where</th>\
             <th scope=\"col\">Change</th></tr></thead>\n<tbody>\n",
        );
        for c in &changes {
            let _ = writeln!(
                body,
                "<tr{cls}><td>{b}</td><td>{s}</td><td>{c}</td></tr>",
                cls = if c.breaking { " class=\"breaking\"" } else { "" },
                b = if c.breaking { "<strong>BREAKING</strong>" } else { "" },
                s = escape(&c.subject),
                c = escape(&c.change),
            );
        }
        body.push_str("</tbody>\n</table>\n");
        Ok(body)
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn contract_names_are_file_stems() {
        for ok in ["release", "build-v2", "a_b.c"] {
            assert!(super::checked_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(super::checked_name(bad).is_err(), "{bad}");
        }
    }
}
