//! `tally ledger …`: create, append to, check and prove from a ledger directory.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use ledger_format::tlog_proof::TlogProof;
use serde_json::json;

use crate::cli::{
    LedgerAppendArgs, LedgerDirArg, LedgerFsckArgs, LedgerInitArgs, LedgerProofArgs, LedgerStressArgs,
};
use crate::cmd::{load_verifier_key, read_input, Report};
use crate::exit::{Classify, Failure};
use crate::ledger::{fsck, open_dir, LedgerError};

fn open_failure(e: LedgerError) -> Failure {
    match e {
        LedgerError::Corrupt(_) => Failure::Invalid(anyhow!(e)),
        LedgerError::Locked(_) | LedgerError::EntrySize { .. } | LedgerError::BodyTooLarge { .. } => {
            Failure::Usage(anyhow!(e))
        }
        other => Failure::Unavailable(anyhow!(other)),
    }
}

/// `tally ledger init`
pub fn init(args: &LedgerInitArgs) -> Result<Report, Failure> {
    if args.dir.join("log.key").exists() {
        return Err(Failure::Usage(anyhow!(
            "{} already holds a ledger",
            args.dir.display()
        )));
    }
    let ledger = open_dir(&args.dir, Some(&args.origin)).map_err(open_failure)?;
    ledger.close().map_err(open_failure)?;
    let vkey = std::fs::read_to_string(args.dir.join("log.pub"))
        .context("reading the verifier key")
        .unavailable()?;
    Ok(Report {
        text: format!(
            "created ledger {} for origin {}\nverifier key: {}",
            args.dir.display(),
            args.origin,
            vkey
        ),
        json: json!({"dir": args.dir, "origin": args.origin, "verifier_key": vkey.trim()}),
    })
}

/// `tally ledger append`
pub fn append(args: &LedgerAppendArgs) -> Result<Report, Failure> {
    let bodies = args
        .bodies
        .iter()
        .map(|p| read_input(p))
        .collect::<Result<Vec<_>, _>>()?;
    let entries = args
        .entries
        .iter()
        .map(|p| read_input(p))
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = open_dir(&args.dir, None).map_err(open_failure)?;
    let mut results = Vec::new();
    let mut text = String::new();
    for (i, (path, e)) in args.entries.iter().zip(entries).enumerate() {
        let b = if i == 0 { bodies.clone() } else { Vec::new() };
        let a = ledger
            .append(e, b)
            .with_context(|| format!("appending {}", path.display()))
            .usage()?;
        text.push_str(&format!(
            "{} → index {}{}\n",
            path.display(),
            a.index,
            if a.duplicate { " (already in the log)" } else { "" }
        ));
        results.push(json!({"file": path, "index": a.index, "duplicate": a.duplicate}));
    }
    let last = results
        .iter()
        .filter_map(|r| r["index"].as_u64())
        .max()
        .unwrap_or(0);
    let published = ledger
        .wait_published(last, Duration::from_secs(60))
        .map_err(open_failure)?;
    ledger.close().map_err(open_failure)?;
    text.push_str(&format!("published: tree size {published}\n"));
    Ok(Report {
        text,
        json: json!({"appended": results, "published_size": published}),
    })
}

/// `tally ledger fsck`
pub fn fsck(args: &LedgerFsckArgs) -> Result<Report, Failure> {
    let (git_dir, is_ledger_dir) = fsck::locate(&args.dir).ok_or_else(|| {
        Failure::Usage(anyhow!(
            "{} is neither a ledger directory, a ledger repository nor a clone of one",
            args.dir.display()
        ))
    })?;
    let key_arg = match &args.log_key {
        Some(k) => k.clone(),
        None => args.dir.join("log.pub").to_string_lossy().into_owned(),
    };
    let key = load_verifier_key(&key_arg)?;
    let result = if is_ledger_dir {
        fsck::check_ledger_dir(&git_dir, &key)
    } else {
        fsck::check_repository(&git_dir, &key)
    };
    let r = result.map_err(|e| match e {
        fsck::FsckError::Problem(p) => Failure::Invalid(anyhow!("fsck: {p}")),
        fsck::FsckError::Ledger(LedgerError::Corrupt(c)) => Failure::Invalid(anyhow!("fsck: {c}")),
        fsck::FsckError::Ledger(l) => Failure::Unavailable(anyhow!(l)),
    })?;
    Ok(Report {
        text: format!(
            "OK: {} entries, root {}\n    {} publications with consistent signed checkpoints, {} tiles, {} bodies ({} entries' envelopes present)\n",
            r.size, r.root, r.commits, r.tiles, r.bodies, r.entries_with_bodies
        ),
        json: json!({
            "valid": true, "size": r.size, "root": r.root.to_hex(), "publications": r.commits,
            "tiles": r.tiles, "bodies": r.bodies, "entries_with_bodies": r.entries_with_bodies,
        }),
    })
}

/// `tally ledger proof`
pub fn proof(args: &LedgerProofArgs) -> Result<Report, Failure> {
    let ledger = open_dir(&args.dir, None).map_err(open_failure)?;
    let size = ledger.sizes().published;
    if args.index >= size {
        return Err(Failure::Usage(anyhow!(
            "index {} is not in the published log of size {size}",
            args.index
        )));
    }
    let p = TlogProof {
        extra: None,
        index: args.index,
        proof: ledger.inclusion_proof(args.index, size).map_err(open_failure)?,
        checkpoint: ledger.checkpoint(),
    };
    let entry = ledger.entry(args.index).map_err(open_failure)?;
    ledger.close().map_err(open_failure)?;
    if let Some(out) = &args.entry_out {
        crate::fsutil::write_atomic(out, &entry, 0o644, true)
            .context("writing the entry")
            .unavailable()?;
    }
    let text = p.to_text();
    match &args.out {
        Some(out) => {
            crate::fsutil::write_atomic(out, text.as_bytes(), 0o644, true)
                .context("writing the proof")
                .unavailable()?;
            Ok(Report {
                text: format!(
                    "wrote {} (index {} in tree size {size})\n",
                    out.display(),
                    args.index
                ),
                json: json!({"proof": out, "index": args.index, "tree_size": size}),
            })
        }
        None => Ok(Report {
            text: text.clone(),
            json: json!({"tlog_proof": text, "index": args.index, "tree_size": size}),
        }),
    }
}

/// `tally ledger pack`
pub fn pack(args: &LedgerDirArg) -> Result<Report, Failure> {
    let git = args.dir.join("ledger.git");
    crate::ledger::git::repack(&git, true)
        .context("packing")
        .unavailable()?;
    Ok(Report {
        text: format!("packed {}\n", git.display()),
        json: json!({"packed": git}),
    })
}

/// `tally ledger stress`: appends from many writers until killed, printing
/// `ack <index> <leaf hash hex>` for every acknowledged entry.
pub fn stress(args: &LedgerStressArgs) -> Result<Report, Failure> {
    let ledger = Arc::new(open_dir(&args.dir, Some("stress.tally.test/log")).map_err(open_failure)?);
    let nonce: u64 = rand::random();
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..args.writers)
        .map(|w| {
            let ledger = ledger.clone();
            let out = out.clone();
            let (count, size) = (args.count, args.entry_size.max(32));
            std::thread::spawn(move || -> Result<(), LedgerError> {
                for k in 0..count {
                    let mut e = format!("stress {nonce:016x} writer {w} entry {k} ").into_bytes();
                    e.resize(size, b'.');
                    let leaf = ledger_format::leaf_hash(&e);
                    let a = ledger.append(e, Vec::new())?;
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(o, "ack {} {}", a.index, leaf.to_hex());
                    let _ = o.flush();
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| Failure::Unavailable(anyhow!("a writer panicked")))?
            .map_err(open_failure)?;
    }
    ledger.close().map_err(open_failure)?;
    Ok(Report {
        text: String::new(),
        json: json!({}),
    })
}
