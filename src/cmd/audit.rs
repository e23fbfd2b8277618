//! `tally audit`: verify a whole C2SP tiled log from a URL or a directory.

use anyhow::{anyhow, Context as _};
use ledger_format::audit::{audit_log, AuditError, AuditOptions, AuditReport, TileSource};
use serde_json::json;

use crate::cli::AuditArgs;
use crate::cmd::{load_verifier_key, read_input, Report};
use crate::exit::{Classify, Failure};
use crate::source::{DirSource, HttpSource};

/// Audits the log named by `args.log`.
pub fn audit(args: &AuditArgs) -> Result<Report, Failure> {
    let log_key = load_verifier_key(&args.log_key)?;
    let witnesses = args
        .witness_keys
        .iter()
        .map(|k| load_verifier_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let since = args.since.as_deref().map(read_input).transpose()?;
    let opts = AuditOptions {
        witnesses: &witnesses,
        expected_origin: args.origin.as_deref(),
        since: since.as_deref(),
    };
    let started = std::time::Instant::now();
    let report = if args.log.starts_with("http://") || args.log.starts_with("https://") {
        let mut src = HttpSource::new(&args.log)
            .context("building the HTTP client")
            .usage()?;
        run(&mut src, &log_key, &opts)?
    } else {
        let dir = std::path::Path::new(&args.log);
        if !dir.is_dir() {
            return Err(Failure::Usage(anyhow!(
                "{} is neither an http(s):// URL nor a directory",
                args.log
            )));
        }
        run(&mut DirSource::new(dir), &log_key, &opts)?
    };
    let cp = &report.checkpoint;
    let mut text = format!(
        "OK: {} is a consistent log of {} entries\n    origin {}\n    root {}\n    checked {} entry bundle(s), {} tile(s), {} entry bytes in {:.2}s\n",
        args.log,
        cp.size(),
        cp.origin(),
        cp.root(),
        report.bundles,
        report.tiles,
        report.entry_bytes,
        started.elapsed().as_secs_f64()
    );
    if let Some(old) = report.consistent_with {
        text.push_str(&format!("    extends the older checkpoint of size {old}\n"));
    }
    Ok(Report {
        text,
        json: json!({
            "valid": true,
            "origin": cp.origin(),
            "tree_size": cp.size(),
            "root": cp.root().to_hex(),
            "bundles": report.bundles,
            "tiles": report.tiles,
            "entry_bytes": report.entry_bytes,
            "consistent_with": report.consistent_with,
            "cosignatures": cp.cosignatures().count(),
        }),
    })
}

fn run<S: TileSource>(
    src: &mut S,
    key: &ledger_format::note::VerifierKey,
    opts: &AuditOptions<'_>,
) -> Result<AuditReport, Failure> {
    audit_log(src, key, opts).map_err(|e| match e {
        AuditError::Fetch { .. } => Failure::Unavailable(anyhow!(e)),
        other => Failure::Invalid(anyhow!(other).context("the log does not verify")),
    })
}
