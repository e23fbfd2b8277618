//! `tally verify`: offline verification that an entry is included in a log
//! under a checkpoint signed by the log key (and, optionally, witnesses).

use anyhow::{anyhow, Context as _};
use ledger_format::entry::Entry;
use ledger_format::hash::sha256;
use ledger_format::tlog_proof::TlogProof;
use serde_json::json;

use crate::cli::VerifyArgs;
use crate::cmd::{load_verifier_key, load_verifier_keys, read_input, Report};
use crate::exit::{Classify, Failure};

/// Verifies a tlog-proof for an entry.
pub fn verify(args: &VerifyArgs) -> Result<Report, Failure> {
    let log_key = load_verifier_key(&args.log_key)?;
    let witnesses = load_verifier_keys(&args.witness_keys)?;
    if args.min_witnesses > witnesses.len() {
        return Err(Failure::Usage(anyhow!(
            "--min-witnesses {} is more than the {} --witness-key given",
            args.min_witnesses,
            witnesses.len()
        )));
    }
    let proof_bytes = read_input(&args.proof)?;
    let proof = TlogProof::parse(&proof_bytes)
        .with_context(|| format!("{} is not a tlog-proof file", args.proof.display()))
        .usage()?;
    let entry = read_input(&args.entry)?;
    let origin = if args.any_origin {
        None
    } else {
        Some(args.origin.as_deref().unwrap_or(log_key.name()))
    };
    let verified = proof
        .verify(&entry, &log_key, &witnesses, origin)
        .with_context(|| format!("{} does not prove {}", args.proof.display(), args.entry.display()))
        .invalid()?;
    let cosigned = verified.checkpoint().cosignatures().count();
    if cosigned < args.min_witnesses {
        return Err(Failure::Invalid(anyhow!(
            "checkpoint carries {cosigned} valid cosignature(s) from trusted witnesses; {} required",
            args.min_witnesses
        )));
    }
    let parsed = Entry::parse(&entry).ok();
    if let Some(env_path) = &args.envelope {
        let Some(e) = &parsed else {
            return Err(Failure::Usage(anyhow!(
                "--envelope needs a tally entry (tally.dev/entry/v1); {} is not one",
                args.entry.display()
            )));
        };
        let env = read_input(env_path)?;
        let digest = sha256(&env);
        if digest != e.envelope_digest || env.len() as u64 != e.envelope_size {
            return Err(Failure::Invalid(anyhow!(
                "{} has digest sha256:{} ({} bytes) but the entry names sha256:{} ({} bytes)",
                env_path.display(),
                digest,
                env.len(),
                e.envelope_digest,
                e.envelope_size
            )));
        }
    }
    let cp = verified.checkpoint();
    let inc = verified.inclusion();
    let mut text = format!(
        "OK: entry {} is at index {} of {} (tree size {}, root {})\n",
        args.entry.display(),
        inc.index(),
        cp.origin(),
        cp.size(),
        cp.root()
    );
    text.push_str(&format!(
        "    checkpoint signed by {} ({} trusted cosignature(s))\n",
        log_key.name(),
        cosigned
    ));
    if let Some(e) = &parsed {
        text.push_str(&format!(
            "    envelope sha256:{}{}\n    contract {} at commit {} (blob {})\n    workflow {} / project {} / run {}\n",
            e.envelope_digest,
            if args.envelope.is_some() { " (matches --envelope)" } else { "" },
            e.contract.name,
            e.contract.commit,
            e.contract.blob,
            e.workflow,
            e.project,
            e.run
        ));
    }
    Ok(Report {
        text,
        json: json!({
            "valid": true,
            "index": inc.index(),
            "leaf_hash": inc.leaf_hash().to_hex(),
            "origin": cp.origin(),
            "tree_size": cp.size(),
            "root": cp.root().to_hex(),
            "cosignatures": cosigned,
            "envelope_checked": args.envelope.is_some(),
            "entry": parsed.map(|e| json!({
                "envelope_digest": format!("sha256:{}", e.envelope_digest),
                "envelope_size": e.envelope_size,
                "contract": e.contract.name,
                "contract_commit": e.contract.commit,
                "contract_blob": e.contract.blob,
                "project": e.project,
                "workflow": e.workflow,
                "run": e.run,
            })),
        }),
    })
}
