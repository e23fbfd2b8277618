//! `tally contract lint`: check contract files, `workflows.toml`, or a whole
//! contracts repository directory, reporting every problem at once.

use std::path::{Path, PathBuf};

use crate::contract::diag::Diagnostic;
use crate::contract::{parse_contract, parse_workflows, Contract, Workflow, MAX_FILE_BYTES};

/// The workflows file of a contracts repository.
pub const WORKFLOWS_FILE: &str = "workflows.toml";

/// What linting found.
#[derive(Debug, Default)]
pub struct LintReport {
    /// Files checked.
    pub files: Vec<String>,
    /// Contracts that are valid.
    pub contracts: Vec<Contract>,
    /// Workflows that are valid.
    pub workflows: Vec<Workflow>,
    /// Every problem, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads a file for linting: bounded size, UTF-8, no symlink leaving `root`.
pub fn read_checked(path: &Path, root: Option<&Path>) -> Result<String, Diagnostic> {
    let shown = path.display().to_string();
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Diagnostic::file(&shown, format!("cannot read: {e}"), None))?;
    if meta.file_type().is_symlink() {
        let target = path.canonicalize().map_err(|e| {
            Diagnostic::file(&shown, format!("is a symlink that cannot be followed: {e}"), None)
        })?;
        if let Some(root) = root.and_then(|r| r.canonicalize().ok()) {
            if !target.starts_with(&root) {
                return Err(Diagnostic::file(
                    &shown,
                    format!("is a symlink to {}, outside the repository", target.display()),
                    Some("contracts must be regular files inside the repository".into()),
                ));
            }
        }
    }
    let len = std::fs::metadata(path)
        .map_err(|e| Diagnostic::file(&shown, format!("cannot read: {e}"), None))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(Diagnostic::file(
            &shown,
            format!("is {len} bytes; contract files are limited to {MAX_FILE_BYTES} bytes"),
            Some("a contract is a short declaration; split it or remove embedded data".into()),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Diagnostic::file(&shown, format!("cannot read: {e}"), None))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
        Diagnostic::at(
            &shown,
            &lossy,
            at..at + 1,
            "file is not valid UTF-8".into(),
            Some("TOML files must be UTF-8".into()),
        )
    })
}

/// Lints one contract or workflows file's text.
pub fn lint_text(
    report: &mut LintReport,
    shown: &str,
    file_name: &str,
    src: &str,
    contracts: Option<&[String]>,
) {
    report.files.push(shown.to_owned());
    if file_name == WORKFLOWS_FILE {
        match parse_workflows(shown, src, contracts) {
            Ok(w) => report.workflows.extend(w),
            Err(d) => report.diagnostics.extend(d),
        }
    } else {
        let stem = file_name.strip_suffix(".toml").unwrap_or(file_name);
        match parse_contract(shown, src, Some(stem)) {
            Ok(c) => report.contracts.push(c),
            Err(d) => report.diagnostics.extend(d),
        }
    }
}

fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Lints files and directories. A directory is a contracts repository:
/// every `*.toml` in it is a contract, except `workflows.toml`, whose
/// workflows must name contracts that exist there.
pub fn lint_paths(paths: &[PathBuf]) -> LintReport {
    let mut report = LintReport::default();
    for path in paths {
        if path.is_dir() {
            let files = match toml_files(path) {
                Ok(f) => f,
                Err(e) => {
                    report.diagnostics.push(Diagnostic::file(
                        &path.display().to_string(),
                        format!("cannot list: {e}"),
                        None,
                    ));
                    continue;
                }
            };
            let names: Vec<String> = files
                .iter()
                .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
                .filter(|n| n != WORKFLOWS_FILE)
                .filter_map(|n| n.strip_suffix(".toml").map(str::to_owned))
                .collect();
            if files.is_empty() {
                // Nothing linted is not "valid": a hook or a CI check pointed
                // at the wrong folder would pass anything.
                let below: Vec<String> = std::fs::read_dir(path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.path().is_dir() && toml_files(&e.path()).is_ok_and(|f| !f.is_empty()))
                    .map(|e| format!("{}/", e.file_name().to_string_lossy()))
                    .collect();
                let hint = if below.is_empty() {
                    "a contracts repository keeps its contracts (*.toml) and workflows.toml at its root"
                        .to_owned()
                } else {
                    format!(
                        "contracts sit in {}: lint that folder, or keep them at the repository's root",
                        below.join(", ")
                    )
                };
                report.diagnostics.push(Diagnostic::file(
                    &path.display().to_string(),
                    "no contract or workflows.toml at the root of this directory".into(),
                    Some(hint),
                ));
                continue;
            }
            for f in &files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match read_checked(f, Some(path)) {
                    Ok(src) => lint_text(&mut report, &f.display().to_string(), &name, &src, Some(&names)),
                    Err(d) => {
                        report.files.push(f.display().to_string());
                        report.diagnostics.push(d);
                    }
                }
            }
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match read_checked(path, path.parent()) {
                Ok(src) => lint_text(&mut report, &path.display().to_string(), &name, &src, None),
                Err(d) => {
                    report.files.push(path.display().to_string());
                    report.diagnostics.push(d);
                }
            }
        }
    }
    report
        .diagnostics
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    report
}
