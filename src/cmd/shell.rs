//! What a shell and `man` need: completion scripts (clap_complete) and
//! manual pages (clap_mangen), generated from the one command definition
//! (`crate::cli::Cli`), so they never drift from the flags.

use anyhow::anyhow;
use clap::CommandFactory as _;
use serde_json::json;

use crate::cli::{Cli, CompletionArgs, ManArgs};
use crate::cmd::Report;
use crate::exit::Failure;

/// `tally completion <shell>`: the script on stdout.
pub fn completion(a: &CompletionArgs) -> Result<Report, Failure> {
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "tally", &mut out);
    let script = String::from_utf8(out).map_err(|e| Failure::Unavailable(e.into()))?;
    Ok(Report {
        json: json!({ "shell": a.shell.to_string(), "script": script }),
        text: script,
    })
}

/// `tally man [--dir <dir>]`: tally(1) in roff on stdout, or every page
/// written into `dir`.
pub fn man(a: &ManArgs) -> Result<Report, Failure> {
    let cmd = Cli::command();
    let Some(dir) = &a.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| Failure::Unavailable(e.into()))?;
        let page = String::from_utf8(out).map_err(|e| Failure::Unavailable(e.into()))?;
        return Ok(Report {
            json: json!({ "page": page }),
            text: page,
        });
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Unavailable(anyhow!("cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(|e| Failure::Unavailable(anyhow!("writing the pages into {}: {e}", dir.display())))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Failure::Unavailable(anyhow!("reading {}: {e}", dir.display())))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("tally") && n.ends_with(".1"))
        .collect();
    pages.sort();
    Ok(Report {
        text: format!(
            "{} manual pages in {} (man -l {}/tally.1)\n",
            pages.len(),
            dir.display(),
            dir.display()
        ),
        json: json!({ "dir": dir, "pages": pages }),
    })
}
