//! `tally audit`: verify a whole C2SP tiled log from a URL or a directory.

use anyhow::{anyhow, Context as _};
use ledger_format::audit::{audit_log, AuditError, AuditOptions, AuditReport, TileSource};
use serde_json::json;

use crate::cli::AuditArgs;
use crate::cmd::{load_verifier_key, load_verifier_keys, read_input, Report};
use crate::exit::{Classify, Failure};
use crate::source::{DirSource, HttpSource};

/// Audits the log named by `args.log`, then compares it with every
/// `--compare` view (SPEC.md §14.4).
pub fn audit(args: &AuditArgs) -> Result<Report, Failure> {
    let mut report = audit_only(args)?;
    if args.compare.is_empty() {
        return Ok(report);
    }
    let log_key = load_verifier_key(&args.log_key)?;
    let origin = report.json["origin"].as_str().map(str::to_owned);
    let opts = crate::monitor::Options {
        log_key: &log_key,
        origin: args.origin.as_deref().or(origin.as_deref()),
        policy: None,
    };
    let scratch = tempfile::tempdir().usage()?;
    let mut sources = std::iter::once(&args.log)
        .chain(&args.compare)
        .map(|s| crate::monitor::Source::parse(s, scratch.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Usage(anyhow!(e)))?;
    let r = crate::monitor::round(&mut sources, &opts, None);
    let (text, json) = crate::cmd::monitor::render(&r, opts.origin(), &[]);
    let compared = crate::cmd::monitor::outcome(&r, text, json)?;
    report.text.push_str(&compared.text);
    report.json["compared"] = compared.json;
    Ok(report)
}

fn audit_only(args: &AuditArgs) -> Result<Report, Failure> {
    let log_key = load_verifier_key(&args.log_key)?;
    let witnesses = load_verifier_keys(&args.witness_keys)?;
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
        if !args.static_only {
            if let Some((git_dir, is_ledger_dir)) = crate::ledger::fsck::locate(dir) {
                return audit_git(args, &git_dir, is_ledger_dir, &log_key, started);
            }
        }
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

/// A tile source that counts what it read on a terminal's progress line.
struct Shown<'a, S> {
    inner: &'a mut S,
    bar: Option<indicatif::ProgressBar>,
}

impl<S: TileSource> TileSource for Shown<'_, S> {
    type Error = S::Error;
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, S::Error> {
        let got = self.inner.fetch(path);
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        got
    }
}

fn run<S: TileSource>(
    src: &mut S,
    key: &ledger_format::note::VerifierKey,
    opts: &AuditOptions<'_>,
) -> Result<AuditReport, Failure> {
    let mut shown = Shown {
        inner: src,
        bar: crate::cmd::progress::counter("auditing: tiles and bundles read"),
    };
    let audited = audit_log(&mut shown, key, opts);
    if let Some(b) = shown.bar {
        b.finish_and_clear();
    }
    audited.map_err(|e| match e {
        // Nothing to read: unavailable (3), not a log that fails (1).
        AuditError::Fetch { .. } | AuditError::NoCheckpoint => Failure::Unavailable(anyhow!(e)),
        // A checkpoint that does not parse is malformed input (2).
        AuditError::Checkpoint(ref c) | AuditError::OldCheckpoint(ref c) if c.is_malformed() => {
            Failure::Usage(anyhow!(e))
        }
        other => Failure::Invalid(anyhow!(other).context("the log does not verify")),
    })
}

/// A ledger's git repository (or a clone of one): the head tree as a tiled
/// log, and every publication in its history.
fn audit_git(
    args: &AuditArgs,
    git_dir: &std::path::Path,
    is_ledger_dir: bool,
    key: &ledger_format::note::VerifierKey,
    started: std::time::Instant,
) -> Result<Report, Failure> {
    use crate::ledger::fsck;
    let git_dir = if is_ledger_dir {
        git_dir.join("ledger.git")
    } else {
        git_dir.to_owned()
    };
    let r = fsck::check_repository(&git_dir, key).map_err(|e| match e {
        fsck::FsckError::Problem(p) => Failure::Invalid(anyhow!("the log does not verify: {p}")),
        fsck::FsckError::Ledger(crate::ledger::LedgerError::Corrupt(c)) => {
            Failure::Invalid(anyhow!("the log does not verify: {c}"))
        }
        fsck::FsckError::Ledger(l) => Failure::Unavailable(anyhow!(l)),
    })?;
    let mut consistent_with = None;
    if let Some(path) = &args.since {
        // The older checkpoint must be a prefix of the head: compare roots.
        let bytes = read_input(path)?;
        let old = ledger_format::checkpoint::verify_checkpoint(&bytes, key, &[], None)
            .context("the older checkpoint")
            .invalid()?;
        let git = crate::ledger::git::LedgerRepo::open_existing(&git_dir).usage()?;
        let head = git
            .head()
            .unavailable()?
            .ok_or_else(|| Failure::Invalid(anyhow!("no commit on main")))?;
        let reader = fsck::TreeSource {
            git: &git,
            tree: head.tree,
        };
        if old.size() > r.size {
            return Err(Failure::Invalid(anyhow!(
                "older checkpoint has size {}, larger than the log's {}: the log shrank",
                old.size(),
                r.size
            )));
        }
        let root = ledger_format::merkle::tree_root(
            old.size(),
            &ledger_format::tile::TiledHashes::new(&reader, r.size),
        )
        .context("computing the root at the older size")
        .invalid()?;
        if root != old.root() {
            return Err(Failure::Invalid(anyhow!(
                "older checkpoint (size {}) has root {}, but the log's first {} entries hash to {root}: the log's history was rewritten",
                old.size(),
                old.root(),
                old.size()
            )));
        }
        consistent_with = Some(old.size());
    }
    // What was audited is the repository's `main`, never a clone's files:
    // say so, and name the files of a working tree that differ from it.
    let head = r
        .head
        .ok_or_else(|| Failure::Invalid(anyhow!("no commit on main")))?;
    let worktree = (!is_ledger_dir && git_dir.file_name().is_some_and(|n| n == ".git"))
        .then(|| git_dir.parent().map(std::path::Path::to_owned))
        .flatten();
    let differs = match &worktree {
        Some(w) => {
            let git = crate::ledger::git::LedgerRepo::open_existing(&git_dir).usage()?;
            fsck::worktree_differences(w, &git, head.tree).unavailable()?
        }
        None => Vec::new(),
    };
    let mut text = format!(
        "OK: {} is a consistent log of {} entries\n    root {}\n    audited commit {} (the head of main){}\n    {} publications in its git history, each signed and consistent with the others\n    checked {} tile(s), {} bodies in {:.2}s\n",
        args.log,
        r.size,
        r.root,
        head.commit,
        if worktree.is_some() { ", not the working tree's files" } else { "" },
        r.commits,
        r.tiles,
        r.bodies,
        started.elapsed().as_secs_f64()
    );
    if let Some(old) = consistent_with {
        text.push_str(&format!("    extends the older checkpoint of size {old}\n"));
    }
    if !differs.is_empty() {
        const SHOWN: usize = 10;
        text.push_str(&format!(
            "WARNING: {} file(s) of the working tree differ from the audited commit (not audited; `git status` shows them):\n",
            differs.len()
        ));
        for p in differs.iter().take(SHOWN) {
            text.push_str(&format!("    {p}\n"));
        }
        if differs.len() > SHOWN {
            text.push_str(&format!("    … and {} more\n", differs.len() - SHOWN));
        }
    }
    Ok(Report {
        text,
        json: json!({
            "valid": true,
            "tree_size": r.size,
            "root": r.root.to_hex(),
            "commit": head.commit.to_string(),
            "worktree_differs": differs,
            "publications": r.commits,
            "tiles": r.tiles,
            "bodies": r.bodies,
            "consistent_with": consistent_with,
        }),
    })
}
