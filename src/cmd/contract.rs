//! `tally contract …`: lint contracts, read their revisions, diff them semantically.

use anyhow::anyhow;
use serde_json::json;

use crate::cli::{ContractCheckArgs, ContractDiffArgs, ContractLintArgs, ContractLogArgs, ContractShowArgs};
use crate::cmd::Report;
use crate::contract::diag::Diagnostic;
use crate::contract::diff::{diff_contracts, diff_workflows, Change};
use crate::contract::lint::{lint_paths, LintReport};
use crate::contract::repo::{ContractsRepo, RepoError};
use crate::exit::{Details, Failure};
use crate::policy;

/// Every policy the contracts reference, read and compiled from `files`
/// (SPEC.md §13.2); `shown` names a repository path in diagnostics.
fn policy_diagnostics(
    report: &mut LintReport,
    files: &dyn policy::Files,
    contract_file: &dyn Fn(&str) -> String,
    shown: &dyn Fn(&str) -> String,
) {
    let cache = policy::UrlCache::for_cli();
    let files = policy::WithUrls {
        inner: files,
        cache: &cache,
    };
    for c in &report.contracts {
        let Err(errors) = policy::Plan::load(c, &files, policy::Limits::default()) else {
            continue;
        };
        for e in errors {
            report
                .diagnostics
                .push(policy_diagnostic(&c.name, &e, contract_file, shown));
        }
    }
}

/// `path:line:col: message` from the policy loader as a diagnostic at
/// that place; anything else is about the contract file.
fn policy_diagnostic(
    contract: &str,
    e: &policy::LoadError,
    contract_file: &dyn Fn(&str) -> String,
    shown: &dyn Fn(&str) -> String,
) -> Diagnostic {
    let message = format!("contract `{contract}`: policy `{}`: {}", e.reference, e.message);
    let mut parts = e.message.splitn(4, ':');
    if let (Some(path), Some(line), Some(col), Some(_)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    {
        let path = path.split('#').next().unwrap_or(path);
        if let (Ok(line), Ok(column)) = (line.trim().parse::<usize>(), col.trim().parse::<usize>()) {
            return Diagnostic {
                file: shown(path),
                line,
                column,
                message,
                hint: None,
                snippet: String::new(),
                width: 0,
            };
        }
    }
    Diagnostic::file(
        &contract_file(contract),
        message,
        Some("fix the policy file, or the reference and its `with` arguments".into()),
    )
}

/// `tally contract lint`: every error, with file:line:column, snippet and hint.
pub fn lint(args: &ContractLintArgs) -> Result<Report, Failure> {
    let mut report = LintReport::default();
    for path in &args.paths {
        let mut one = lint_paths(std::slice::from_ref(path));
        if path.is_dir() {
            let root = path.clone();
            policy_diagnostics(
                &mut one,
                &policy::Dir(root.clone()),
                &|c| root.join(format!("{c}.toml")).display().to_string(),
                &|p| root.join(p).display().to_string(),
            );
        }
        report.files.extend(one.files);
        report.contracts.extend(one.contracts);
        report.workflows.extend(one.workflows);
        report.diagnostics.extend(one.diagnostics);
    }
    if report.diagnostics.is_empty() {
        return Ok(Report {
            text: format!(
                "OK: {} file(s), {} contract(s), {} workflow(s)\n",
                report.files.len(),
                report.contracts.len(),
                report.workflows.len()
            ),
            json: json!({
                "valid": true,
                "files": report.files,
                "contracts": report.contracts.iter().map(|c| &c.name).collect::<Vec<_>>(),
                "workflows": report.workflows.iter().map(|w| &w.name).collect::<Vec<_>>(),
            }),
        });
    }
    let mut text = String::new();
    for d in &report.diagnostics {
        text.push_str(&d.to_string());
        text.push('\n');
    }
    text.push_str(&format!(
        "{} error(s) in {} file(s)",
        report.diagnostics.len(),
        report
            .diagnostics
            .iter()
            .map(|d| d.file.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    ));
    Err(Failure::Invalid(anyhow!(Details {
        message: format!("contract lint failed:\n\n{text}"),
        json: json!({"files": report.files, "errors": report.diagnostics}),
    })))
}

fn open_repo(path: &std::path::Path) -> Result<ContractsRepo, Failure> {
    ContractsRepo::open(path).map_err(|e| Failure::Usage(anyhow!(e)))
}

fn repo_failure(e: RepoError) -> Failure {
    match e {
        RepoError::Git(_) => Failure::Unavailable(anyhow!(e)),
        other => Failure::Usage(anyhow!(other)),
    }
}

fn date(t: i64) -> String {
    // Civil date from Unix seconds (UTC), without a date crate.
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}Z", secs / 3600, secs % 3600 / 60)
}

/// `tally contract log`
pub fn log(args: &ContractLogArgs) -> Result<Report, Failure> {
    let repo = open_repo(&args.repo)?;
    let from = repo.resolve(&args.rev).map_err(repo_failure)?;
    let revs = repo.log_from(&args.name, from, None).map_err(repo_failure)?;
    if revs.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "contract `{}` has no history at {}: is `{}.toml` at the repository root?",
            args.name,
            args.rev,
            args.name
        )));
    }
    let mut text = String::new();
    for r in &revs {
        let what = match &r.blob {
            Some(b) => format!("blob {}", &b[..12.min(b.len())]),
            None => "deleted".to_owned(),
        };
        text.push_str(&format!(
            "{}  {}  {:<14}  {}  {}\n",
            &r.commit[..12],
            date(r.time),
            what,
            r.author,
            r.summary
        ));
    }
    Ok(Report {
        text,
        json: json!({"contract": args.name, "revisions": revs}),
    })
}

/// `tally contract show`
pub fn show(args: &ContractShowArgs) -> Result<Report, Failure> {
    let (name, rev) = args.contract.split_once('@').unwrap_or((&args.contract, "HEAD"));
    let repo = open_repo(&args.repo)?;
    let at = repo.resolve(rev).map_err(repo_failure)?;
    let (revision, bytes) = repo.revision_at(name, at).map_err(repo_failure)?;
    let content = String::from_utf8_lossy(&bytes).into_owned();
    let blob = revision.blob.clone().unwrap_or_default();
    Ok(Report {
        text: format!(
            "# contract {name} at {rev}: revision commit {} blob {blob}\n{content}",
            revision.commit
        ),
        json: json!({"contract": name, "commit": revision.commit, "blob": blob, "content": content}),
    })
}

/// Lints a side of a diff; an invalid side is a usage error naming its problems.
fn valid_at(repo: &ContractsRepo, rev: &str) -> Result<crate::contract::lint::LintReport, Failure> {
    let id = repo.resolve(rev).map_err(repo_failure)?;
    let mut report = repo.lint_at(id).map_err(repo_failure)?;
    let short = crate::contract::repo::short(&id);
    policy_diagnostics(
        &mut report,
        &policy::GitTree { repo, commit: id },
        &|c| format!("{short}:{c}.toml"),
        &|p| format!("{short}:{p}"),
    );
    if !report.diagnostics.is_empty() {
        let text: String = report.diagnostics.iter().map(|d| format!("{d}\n")).collect();
        return Err(Failure::Invalid(anyhow!(Details {
            message: format!("the contracts at {rev} are invalid:\n\n{text}"),
            json: json!({"revision": rev, "errors": report.diagnostics}),
        })));
    }
    Ok(report)
}

fn changes_text(changes: &[Change]) -> String {
    let mut text = String::new();
    for c in changes {
        text.push_str(&format!(
            "{} {}: {}\n",
            if c.breaking { "BREAKING" } else { "        " },
            c.subject,
            c.change
        ));
    }
    if changes.is_empty() {
        text.push_str("no semantic changes\n");
    }
    text
}

fn semantic_changes(
    old: &crate::contract::lint::LintReport,
    new: &crate::contract::lint::LintReport,
    only: Option<&str>,
) -> Vec<Change> {
    let filter = |cs: &[crate::contract::Contract]| -> Vec<crate::contract::Contract> {
        cs.iter()
            .filter(|c| only.is_none_or(|n| c.name == n))
            .cloned()
            .collect()
    };
    let mut changes = diff_contracts(&filter(&old.contracts), &filter(&new.contracts));
    if only.is_none() {
        changes.extend(diff_workflows(&old.workflows, &new.workflows));
    }
    changes
}

/// `tally contract diff`
pub fn diff(args: &ContractDiffArgs) -> Result<Report, Failure> {
    let repo = open_repo(&args.repo)?;
    let old = valid_at(&repo, &args.rev_a)?;
    let new = valid_at(&repo, &args.rev_b)?;
    if let Some(n) = &args.name {
        if !old.contracts.iter().chain(&new.contracts).any(|c| &c.name == n) {
            return Err(Failure::Usage(anyhow!(
                "contract `{n}` exists at neither {} nor {}",
                args.rev_a,
                args.rev_b
            )));
        }
    }
    let changes = semantic_changes(&old, &new, args.name.as_deref());
    Ok(Report {
        text: changes_text(&changes),
        json: json!({"from": args.rev_a, "to": args.rev_b, "breaking": changes.iter().any(|c| c.breaking), "changes": changes}),
    })
}

/// `tally contract check`
pub fn check(args: &ContractCheckArgs) -> Result<Report, Failure> {
    let repo = open_repo(&args.repo)?;
    let base = repo.resolve(&args.base).map_err(repo_failure)?;
    let head = repo.resolve(&args.head).map_err(repo_failure)?;
    let changed = repo.changed_files(base, head).map_err(repo_failure)?;
    let new = valid_at(&repo, &args.head)?;
    // A base that does not lint (e.g. the first commit of a broken repo) diffs as empty.
    let old = repo.lint_at(base).map_err(repo_failure)?;
    let changes = semantic_changes(&old, &new, None);
    let breaking = changes.iter().filter(|c| c.breaking).count();
    let mut text = format!(
        "changed files: {}\nall contracts and workflows at {} are valid\n\n",
        if changed.is_empty() {
            "none".to_owned()
        } else {
            changed.join(", ")
        },
        args.head
    );
    text.push_str(&changes_text(&changes));
    if args.deny_breaking && breaking > 0 {
        return Err(Failure::Refused(anyhow!(Details {
            message: format!("{text}\n{breaking} breaking change(s), refused by --deny-breaking"),
            json: json!({"changed_files": changed, "changes": changes, "breaking": breaking}),
        })));
    }
    Ok(Report {
        text,
        json: json!({"valid": true, "changed_files": changed, "changes": changes, "breaking": breaking}),
    })
}
