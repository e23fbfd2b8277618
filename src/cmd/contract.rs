//! `tally contract …`: lint contracts.

use anyhow::anyhow;
use serde_json::json;

use crate::cli::ContractLintArgs;
use crate::cmd::Report;
use crate::contract::lint::lint_paths;
use crate::exit::{Details, Failure};

/// `tally contract lint`: every error, with file:line:column, snippet and hint.
pub fn lint(args: &ContractLintArgs) -> Result<Report, Failure> {
    let report = lint_paths(&args.paths);
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
