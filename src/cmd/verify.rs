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
    let (proof_name, entry_name, proof_bytes, entry, envelope) = inputs(args)?;
    let proof = TlogProof::parse(&proof_bytes)
        .with_context(|| format!("{proof_name} is not a tlog-proof"))
        .usage()?;
    let origin = if args.any_origin {
        None
    } else {
        Some(args.origin.as_deref().unwrap_or(log_key.name()))
    };
    let verified = proof
        .verify(&entry, &log_key, &witnesses, origin)
        .with_context(|| format!("{proof_name} does not prove {entry_name}"))
        .invalid()?;
    let cosigned = verified.checkpoint().cosignatures().count();
    if cosigned < args.min_witnesses {
        return Err(Failure::Invalid(anyhow!(
            "checkpoint carries {cosigned} valid cosignature(s) from trusted witnesses; {} required",
            args.min_witnesses
        )));
    }
    let parsed = Entry::parse(&entry).ok();
    if let Some((env_name, env)) = &envelope {
        let Some(e) = &parsed else {
            return Err(Failure::Usage(anyhow!(
                "an envelope needs a tally entry (tally.dev/entry/v1); {entry_name} is not one"
            )));
        };
        let digest = sha256(env);
        if digest != e.envelope_digest || env.len() as u64 != e.envelope_size {
            return Err(Failure::Invalid(anyhow!(
                "{} has digest sha256:{} ({} bytes) but the entry names sha256:{} ({} bytes)",
                env_name,
                digest,
                env.len(),
                e.envelope_digest,
                e.envelope_size
            )));
        }
    }
    let signer = match (&args.key, &envelope) {
        (Some(k), Some((_, env))) => Some(check_signature(k, env, parsed.as_ref())?),
        (Some(_), None) => {
            return Err(Failure::Usage(anyhow!(
                "--key checks the envelope's signature: give --envelope or --bundle"
            )))
        }
        _ => None,
    };
    let cp = verified.checkpoint();
    let inc = verified.inclusion();
    let mut text = format!(
        "OK: entry {} is at index {} of {} (tree size {}, root {})\n",
        entry_name,
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
            if envelope.is_some() { " (matches the envelope)" } else { "" },
            e.contract.name,
            e.contract.commit,
            e.contract.blob,
            e.workflow,
            e.project,
            e.run
        ));
    }
    if let Some(s) = &signer {
        text.push_str(&format!("    {s}\n"));
    }
    Ok(Report {
        text,
        json: json!({
            "valid": true,
            "signature_checked": signer.is_some(),
            "index": inc.index(),
            "leaf_hash": inc.leaf_hash().to_hex(),
            "origin": cp.origin(),
            "tree_size": cp.size(),
            "root": cp.root().to_hex(),
            "cosignatures": cosigned,
            "envelope_checked": envelope.is_some(),
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

type Inputs = (String, String, Vec<u8>, Vec<u8>, Option<(String, Vec<u8>)>);

/// The proof, the entry and the envelope: from files, or from one bundle.
fn inputs(args: &VerifyArgs) -> Result<Inputs, Failure> {
    if let Some(b) = &args.bundle {
        if args.proof.is_some() || args.entry.is_some() || args.envelope.is_some() {
            return Err(Failure::Usage(anyhow!(
                "--bundle holds the proof, the entry and the envelope; give no other"
            )));
        }
        let name = b.display().to_string();
        let bundle = crate::attest::bundle::Bundle::parse(&read_input(b)?)
            .map_err(|e| Failure::Usage(anyhow!("{name} is not a tally bundle: {e}")))?;
        return Ok((
            format!("{name} (tlog-proof)"),
            format!("{name} (entry)"),
            bundle.tlog_proof.into_bytes(),
            bundle.entry.into_bytes(),
            Some((format!("{name} (envelope)"), bundle.envelope)),
        ));
    }
    let (Some(proof), Some(entry)) = (&args.proof, &args.entry) else {
        return Err(Failure::Usage(anyhow!(
            "give a tlog-proof file and --entry, or --bundle"
        )));
    };
    let envelope = match &args.envelope {
        Some(p) => Some((p.display().to_string(), read_input(p)?)),
        None => None,
    };
    Ok((
        proof.display().to_string(),
        entry.display().to_string(),
        read_input(proof)?,
        read_input(entry)?,
        envelope,
    ))
}

/// Checks the envelope's signature under the key file and that it is a
/// tally statement of the entry's workflow, run and contract revision.
fn check_signature(key: &std::path::Path, env: &[u8], entry: Option<&Entry>) -> Result<String, Failure> {
    use crate::attest::dsse::{Envelope, PublicKey};
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the key {}", key.display()))
        .usage()?;
    let key = PublicKey::from_pem(&pem).usage()?;
    let envelope = Envelope::parse(env).invalid()?;
    let verified = envelope.verify(&[key]).invalid()?;
    let st = crate::attest::statement::View::parse(verified.payload())
        .context("the signed payload is not an in-toto statement")
        .invalid()?;
    let mut problems = st.problems();
    if let Some(e) = entry {
        let ext = st.external();
        if ext.workflow.get() != Some(e.workflow.as_str())
            || st.predicate.run_details.metadata.invocation_id.get() != Some(e.run.as_str())
        {
            problems.push("the statement's workflow or run differs from the entry's".into());
        }
        let c = &ext.contract;
        if c.name.get() != Some(e.contract.name.as_str())
            || c.commit.get() != Some(e.contract.commit.as_str())
            || c.blob.get() != Some(e.contract.blob.as_str())
        {
            problems.push("the statement's contract revision differs from the entry's".into());
        }
    }
    if !problems.is_empty() {
        return Err(Failure::Invalid(anyhow!(
            "the envelope's signature is valid but: {}",
            problems.join("; ")
        )));
    }
    Ok(
        "envelope signature valid; SLSA Provenance v1 statement of this workflow, run and contract revision"
            .into(),
    )
}
