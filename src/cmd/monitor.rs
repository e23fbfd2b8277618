//! `tally monitor` (SPEC.md §14.4): follow a log, verify each new
//! checkpoint, and compare what every source serves; a split view ends the
//! monitor with both signed notes as evidence. `tally audit --compare`
//! renders its one comparison with [`render`] too.

use std::io::Write as _;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::json;

use crate::cli::{MonitorArgs, Output};
use crate::cmd::{load_verifier_key, witness_policy, Report};
use crate::exit::{Classify, Details, Failure};
use crate::monitor::{self, Options, Round, Source, State};

/// `tally monitor`
pub fn monitor(a: &MonitorArgs) -> Result<Report, Failure> {
    let log_key = load_verifier_key(&a.log_key)?;
    let policy = witness_policy(&a.witnesses)?;
    let opts = Options {
        log_key: &log_key,
        origin: a.origin.as_deref(),
        policy: policy.as_ref(),
    };
    let state = match &a.state {
        Some(dir) => Some(State::open(dir).map_err(|e| Failure::Usage(anyhow!(e)))?),
        None => None,
    };
    // Git remotes are fetched into the state folder (or, without one, a
    // temporary folder that lives as long as the monitor).
    let scratch = tempfile::tempdir().usage()?;
    let work = state.as_ref().map_or(scratch.path(), |s| s.dir()).to_owned();
    let mut sources = a
        .sources
        .iter()
        .map(|s| Source::parse(s, &work))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Usage(anyhow!(e)))?;
    let mut last = match &state {
        Some(s) => s.last(&opts).map_err(|e| Failure::Usage(anyhow!(e)))?,
        None => None,
    };
    loop {
        let r = monitor::round(&mut sources, &opts, last.as_ref());
        let mut evidence = Vec::new();
        if let Some(s) = &state {
            if !r.forks.is_empty() {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                evidence = s
                    .keep_evidence(&r.forks, now)
                    .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
            }
            if let Some(n) = &r.newest {
                if last.as_ref().is_none_or(|l| l.note_text() != n.note_text()) {
                    s.remember(n).map_err(|e| Failure::Unavailable(anyhow!(e)))?;
                }
            }
        }
        let (text, doc) = render(&r, opts.origin(), &evidence);
        if a.once || r.alarming() {
            return outcome(&r, text, doc);
        }
        // Following: one report per round; an unreachable source is a
        // warning, retried next round.
        match a.output {
            Output::Text => print!("{text}"),
            Output::Json => println!("{doc}"),
        }
        let _ = std::io::stdout().flush();
        if r.newest.is_some() {
            last = r.newest;
        }
        std::thread::sleep(Duration::from_secs(a.interval));
    }
}

/// A round's verdict: success, or the failure whose details carry the report.
pub fn outcome(r: &Round, text: String, json: serde_json::Value) -> Result<Report, Failure> {
    if r.alarming() {
        return Err(Failure::Invalid(anyhow!(Details { message: text, json })));
    }
    if !r.problems.is_empty() {
        return Err(Failure::Unavailable(anyhow!(Details { message: text, json })));
    }
    Ok(Report { text, json })
}

/// A round as text and JSON: each source's checkpoint and whether a tree
/// proved it consistent, each fork with its evidence, each problem.
pub fn render(r: &Round, origin: &str, evidence: &[std::path::PathBuf]) -> (String, serde_json::Value) {
    let mut text = String::new();
    if !r.forks.is_empty() {
        for f in &r.forks {
            text.push_str(&f.evidence());
            text.push('\n');
        }
    }
    let head = r
        .newest
        .as_ref()
        .or_else(|| r.seen.iter().map(|s| &s.checkpoint).max_by_key(|c| c.size()));
    let unproven = r.seen.iter().filter(|s| !s.proven).count();
    let verdict = if !r.forks.is_empty() {
        "SPLIT VIEW"
    } else if r.alarming() {
        "INVALID"
    } else if !r.problems.is_empty() {
        "INCOMPLETE"
    } else if unproven > 0 {
        "OK so far"
    } else {
        "OK"
    };
    let forked = |s: &crate::monitor::Seen| {
        r.forks.iter().any(|f| {
            [&f.a, &f.b]
                .iter()
                .any(|x| x.source == s.source && x.checkpoint.note_text() == s.checkpoint.note_text())
        })
    };
    match head {
        _ if !r.forks.is_empty() => text.push_str(&format!(
            "{verdict}: {} view(s) of {origin:?} compared; {} inconsistent pair(s)\n",
            r.seen.len(),
            r.forks.len()
        )),
        Some(c) => text.push_str(&format!(
            "{verdict}: {} view(s) of {origin:?} compared; newest verified checkpoint: size {} root {}\n",
            r.seen.len(),
            c.size(),
            c.root()
        )),
        None => text.push_str(&format!(
            "{verdict}: no checkpoint of {origin:?} could be verified\n"
        )),
    }
    for s in &r.seen {
        let how = if forked(s) {
            "IN A FORK (evidence above)"
        } else if s.proven {
            "consistent (proven from tiles)"
        } else {
            "not provable yet: no tree read is as large"
        };
        text.push_str(&format!(
            "  {}: size {} root {} — {how}\n",
            s.source,
            s.checkpoint.size(),
            s.checkpoint.root()
        ));
    }
    for e in &r.empty {
        text.push_str(&format!("  {e}: no checkpoint of this log yet\n"));
    }
    for p in &r.problems {
        let what = if p.invalid { "INVALID" } else { "unreachable" };
        text.push_str(&format!("  {}: {what}: {}\n", p.source, p.message));
    }
    for e in evidence {
        text.push_str(&format!("  evidence kept in {}\n", e.display()));
    }
    let json = json!({
        "consistent": r.forks.is_empty(),
        "valid": !r.alarming(),
        "origin": origin,
        "tree_size": head.filter(|_| r.forks.is_empty()).map(|c| c.size()),
        "root": head.filter(|_| r.forks.is_empty()).map(|c| c.root().to_hex()),
        "sources": r.seen.iter().map(|s| json!({
            "source": s.source,
            "tree_size": s.checkpoint.size(),
            "root": s.checkpoint.root().to_hex(),
            "proven": s.proven && !forked(s),
            "forked": forked(s),
        })).collect::<Vec<_>>(),
        "forks": r.forks.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
        "problems": r.problems.iter().map(|p| json!({
            "source": p.source,
            "invalid": p.invalid,
            "message": p.message,
        })).collect::<Vec<_>>(),
        "empty": r.empty,
        "evidence": evidence,
    });
    (text, json)
}
