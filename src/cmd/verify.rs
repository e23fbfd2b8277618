//! `tally verify`: offline verification that an entry is included in a log
//! under a checkpoint signed by the log key (and, optionally, witnesses).

use anyhow::{anyhow, Context as _};
use ledger_format::entry::Entry;
use ledger_format::hash::sha256;
use ledger_format::tlog_proof::{TlogProof, TlogProofError};
use serde_json::json;

use crate::attest::material::Kind;
use crate::cli::VerifyArgs;
use crate::cmd::{load_verifier_key, read_input, witness_policy, Report};
use crate::contract::repo::ContractsRepo;
use crate::exit::{Classify, Failure};
use crate::policy::verdict::{self, Evaluator, Vsa};
use crate::policy::{input, GitTree, Limits, Plan};

/// Verifies a tlog-proof for an entry.
pub fn verify(args: &VerifyArgs) -> Result<Report, Failure> {
    let log_key = load_verifier_key(&args.log_key)?;
    let quorum = witness_policy(&args.witnesses)?;
    let (proof_name, entry_name, proof_bytes, entry, envelope, verdict) = inputs(args)?;
    let proof = TlogProof::parse(&proof_bytes)
        .with_context(|| format!("{proof_name} is not a tlog-proof"))
        .usage()?;
    let origin = if args.any_origin {
        None
    } else {
        Some(args.origin.as_deref().unwrap_or(log_key.name()))
    };
    let verified = match proof.verify(&entry, &log_key, &[], origin) {
        Ok(v) => v,
        // A checkpoint that does not parse is malformed input (2), not a
        // proof that fails (1).
        Err(TlogProofError::Checkpoint(c)) if c.is_malformed() => {
            return Err(Failure::Usage(
                anyhow!(TlogProofError::Checkpoint(c))
                    .context(format!("{proof_name} holds a checkpoint that does not parse")),
            ))
        }
        Err(e) => {
            return Err(Failure::Invalid(
                anyhow!(e).context(format!("{proof_name} does not prove {entry_name}")),
            ))
        }
    };
    let cosigned = match &quorum {
        Some(q) => {
            let note = ledger_format::note::Note::parse(verified.checkpoint().note_text().as_bytes())
                .context("the checkpoint note")
                .invalid()?;
            let r = q.check(&note);
            if !r.satisfied {
                return Err(Failure::Invalid(anyhow!(
                    "the checkpoint is cosigned by {} trusted witness(es) [{}]; the quorum is {}",
                    r.cosigned.len(),
                    r.cosigned.join(", "),
                    q.describe_quorum()
                )));
            }
            r.cosigned
        }
        None => Vec::new(),
    };
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
    // The verdict the entry binds: present, and the exact bytes.
    let verdict = match (parsed.as_ref().and_then(|e| e.verdict), verdict) {
        (None, None) => None,
        (Some((digest, size)), Some(v)) => {
            if sha256(&v) != digest || v.len() as u64 != size {
                return Err(Failure::Invalid(anyhow!(
                    "the bundle's verdict is not the one the entry binds (sha256:{digest}, {size} bytes)"
                )));
            }
            Some(v)
        }
        (Some(_), None) if args.verdict_key.is_some() || args.contracts.is_some() => {
            return Err(Failure::Usage(anyhow!(
                "the entry binds a policy verdict; give the bundle that carries it (--bundle)"
            )))
        }
        (Some(_), None) => None,
        (None, Some(_)) => {
            return Err(Failure::Invalid(anyhow!(
                "the bundle carries a verdict the entry does not bind"
            )))
        }
    };
    let checked_verdict = match (&args.verdict_key, &verdict) {
        (Some(k), Some(v)) => Some(check_verdict(k, v, parsed.as_ref())?),
        (Some(_), None) => {
            return Err(Failure::Invalid(anyhow!(
                "--verdict-key given, but the entry binds no verdict (its contract had no policies and no CI identity vouched for its provenance)"
            )))
        }
        _ => None,
    };
    let (verdict_text, ci_identity) = match checked_verdict {
        Some((t, i)) => (Some(t), i),
        None => (None, None),
    };
    let recheck = match (&args.contracts, &verdict, &envelope, &parsed) {
        (Some(c), Some(v), Some((_, env)), Some(e)) => {
            Some(recheck(c, args.materials.as_deref(), v, env, e)?)
        }
        // --contracts with --ledger: where the key may have been trusted.
        (Some(_), None, _, _) if args.ledger.is_some() => None,
        (Some(_), None, _, _) => {
            return Err(Failure::Usage(anyhow!(
                "--contracts re-checks a policy verdict, and the entry binds none"
            )))
        }
        _ => None,
    };
    let signer = match (&args.key, &envelope) {
        (None, Some((_, env))) if args.ca.is_some() => Some(check_keyless(
            args,
            env,
            parsed.as_ref(),
            &log_key,
            origin,
            verified.inclusion().index(),
        )?),
        (Some(k), Some((_, env))) => Some(check_signature(k, env, parsed.as_ref())?),
        (Some(_), None) => {
            return Err(Failure::Usage(anyhow!(
                "--key checks the envelope's signature: give --envelope or --bundle"
            )))
        }
        _ => None,
    };
    let trust = match (&args.ledger, &args.key, &envelope, &parsed) {
        (Some(l), Some(k), Some((_, env)), Some(e)) => Some(key_trust(
            l,
            args.contracts.as_deref(),
            k,
            &log_key,
            verified.inclusion().index(),
            &entry,
            e,
            env,
        )?),
        (Some(_), _, _, _) => {
            return Err(Failure::Usage(anyhow!(
                "--ledger answers whether --key was trusted for the entry's workflow at its index: give --key and --bundle"
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
        "    checkpoint signed by {} ({} trusted cosignature(s){})\n",
        log_key.name(),
        cosigned.len(),
        match &quorum {
            Some(q) => format!(": [{}]; quorum {} met", cosigned.join(", "), q.describe_quorum()),
            None => String::new(),
        }
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
    if let Some(t) = &trust {
        text.push_str(&format!("    {t}\n"));
    }
    if let Some(v) = &verdict_text {
        text.push_str(&format!("    {v}\n"));
    }
    if let Some(i) = &ci_identity {
        text.push_str(&format!(
            "    provenance vouched for by the CI identity {} ({}): {}\n",
            i.subject, i.issuer, i.level
        ));
        for (field, value) in &i.verified {
            text.push_str(&format!("      ✓ {field} = {value}\n"));
        }
        for field in &i.unstated {
            text.push_str(&format!("      – {field}: not stated by the statement\n"));
        }
        for field in &i.unvouched {
            text.push_str(&format!("      – {field}: not named by the issuer's token\n"));
        }
    }
    if let Some(r) = &recheck {
        text.push_str(&format!(
            "    policies re-evaluated offline: {} evaluation(s) agree with the recorded verdict{}\n",
            r.agree,
            if r.unchecked.is_empty() {
                String::new()
            } else {
                format!("; {} not re-checked", r.unchecked.len())
            }
        ));
        for u in &r.unchecked {
            text.push_str(&format!("      - {u}\n"));
        }
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
            "cosignatures": cosigned.len(),
            "cosigned_by": cosigned,
            "envelope_checked": envelope.is_some(),
            "verdict_checked": verdict_text.is_some(),
            "key_trusted": trust,
            "slsa_build_level": ci_identity.as_ref().map(|i| i.level.clone()),
            "ci_identity": ci_identity,
            "policies_rechecked": recheck.as_ref().map(|r| json!({"agree": r.agree, "unchecked": r.unchecked})),
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

type Inputs = (
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    Option<(String, Vec<u8>)>,
    Option<Vec<u8>>,
);

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
            bundle.verdict,
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
        None,
    ))
}

/// Checks the verdict envelope's signature under the control plane's
/// verdict key, and that it is a VSA about the entry's envelope; returns
/// its summary and what a CI identity vouched for, if anything.
fn check_verdict(
    key: &std::path::Path,
    verdict: &[u8],
    entry: Option<&Entry>,
) -> Result<(String, Option<crate::identity::provenance::Verification>), Failure> {
    use crate::attest::dsse::{Envelope, PublicKey};
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the verdict key {}", key.display()))
        .usage()?;
    let key = PublicKey::from_pem(&pem).usage()?;
    let env = Envelope::parse(verdict).invalid()?;
    let verified = env
        .verify(&[key])
        .context("the policy verdict's signature does not verify with --verdict-key")
        .invalid()?;
    let vsa = Vsa::parse(verified.payload()).map_err(|e| Failure::Invalid(anyhow!(e)))?;
    if let Some(e) = entry {
        if vsa.envelope_digest() != Some(e.envelope_digest.to_hex().as_str()) {
            return Err(Failure::Invalid(anyhow!(
                "the policy verdict is about another envelope than the entry's"
            )));
        }
    }
    let p = &vsa.predicate;
    let failed = p.policy_evaluations.iter().filter(|e| e.failed()).count();
    let text = if p.policies_commit.is_empty() && p.policy_evaluations.is_empty() {
        format!(
            "verdict signed by the control plane: {} (its contract has no policies)",
            p.verification_result
        )
    } else {
        format!(
            "policy verdict signed by the control plane: {} ({} evaluation(s), {failed} failing{}), policies at {}",
            p.verification_result,
            p.policy_evaluations.len(),
            p.exception
                .as_ref()
                .map(|x| format!("; accepted through an exception by {}: {}", x.granted_by, x.reason))
                .unwrap_or_default(),
            p.policies_commit
        )
    };
    Ok((text, p.ci_identity.clone()))
}

/// Re-evaluates the policies a verdict records, at its pinned commit of a
/// contracts clone, on the materials found in `materials` by digest.
fn recheck(
    contracts: &std::path::Path,
    materials: Option<&std::path::Path>,
    verdict: &[u8],
    envelope: &[u8],
    entry: &Entry,
) -> Result<verdict::Recheck, Failure> {
    use crate::attest::dsse::{decode_b64, Envelope};
    let env = Envelope::parse(verdict).invalid()?;
    let payload = decode_b64(&env.payload)
        .ok_or_else(|| anyhow!("the verdict's payload is not base64"))
        .invalid()?;
    let vsa = Vsa::parse(&payload).map_err(|e| Failure::Invalid(anyhow!(e)))?;
    let repo = ContractsRepo::open(contracts)
        .map_err(|e| Failure::Usage(anyhow!("{}: {e}", contracts.display())))?;
    let blob = gix::ObjectId::from_hex(entry.contract.blob.as_bytes()).usage()?;
    let text = repo
        .read_blob(blob)
        .with_context(|| {
            format!(
                "the contract's blob {} is not in {}",
                entry.contract.blob,
                contracts.display()
            )
        })
        .usage()?;
    let text = String::from_utf8(text)
        .context("the contract is not UTF-8")
        .invalid()?;
    let contract = crate::contract::parse_contract(
        &format!("{}.toml", entry.contract.name),
        &text,
        Some(&entry.contract.name),
    )
    .map_err(|d| {
        Failure::Invalid(anyhow!(
            "the pinned contract does not parse: {}",
            d.first().map(|x| x.message.clone()).unwrap_or_default()
        ))
    })?;
    if vsa.predicate.policies_commit.is_empty() {
        // A verdict with no policy evaluation (a CI identity's): right
        // only if the pinned contract has no policies.
        if !contract.policies.is_empty() || !contract.policy_groups.is_empty() {
            return Err(Failure::Invalid(anyhow!(
                "the verdict records no policy evaluation, but contract `{}` @ {} has policies",
                entry.contract.name,
                entry.contract.commit
            )));
        }
        return Ok(verdict::Recheck::default());
    }
    let commit = gix::ObjectId::from_hex(vsa.predicate.policies_commit.as_bytes())
        .context("the verdict's policies commit is not a git object id")
        .invalid()?;
    let limits = Limits::from_env();
    limits.install();
    let cache = crate::policy::UrlCache::for_cli();
    let tree = GitTree { repo: &repo, commit };
    let files = crate::policy::WithUrls {
        inner: &tree,
        cache: &cache,
    };
    let plan = Plan::load(&contract, &files, limits).map_err(|errs| {
        Failure::Invalid(anyhow!(
            "the policies at {commit} do not load: {}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    // The materials given, by digest.
    let mut by_digest = std::collections::HashMap::new();
    if let Some(dir) = materials {
        for e in std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))
            .usage()?
        {
            let path = e.context("reading --materials").usage()?.path();
            if path.is_file() {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .usage()?;
                by_digest.insert(format!("sha256:{}", sha256(&bytes).to_hex()), bytes);
            }
        }
    }
    let statement_bytes = Envelope::parse(envelope)
        .ok()
        .and_then(|e| decode_b64(&e.payload))
        .ok_or_else(|| anyhow!("the attestation envelope's payload is not base64"))
        .invalid()?;
    let st = crate::attest::statement::View::parse(&statement_bytes)
        .context("the attestation is not a statement")
        .invalid()?;
    let mut recomputed = Vec::new();
    let mut not_given = Vec::new();
    for (d, _) in st.descriptors() {
        let Some(name) = d.name.get() else { continue };
        let annotations: std::collections::BTreeMap<String, String> = d
            .annotations
            .strings()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let Some(kind) = annotations
            .get(crate::attest::statement::KIND_ANNOTATION)
            .and_then(|k| Kind::parse(k))
        else {
            continue;
        };
        let Some(hex) = d.digest.get("sha256") else {
            continue;
        };
        if !plan.applies_to(name, kind) {
            continue;
        }
        let digest = format!("sha256:{}", hex.to_ascii_lowercase());
        let value = annotations
            .get("tally.material.value")
            .cloned()
            .or_else(|| d.uri.get().map(|u| u.trim_start_matches("oci://").to_owned()));
        let bytes = by_digest.get(&digest);
        if kind.is_file() && bytes.is_none() {
            not_given.push(name.to_owned());
            continue;
        }
        // Re-computed as the recorded one was (same evaluator label).
        let by = vsa
            .predicate
            .policy_evaluations
            .iter()
            .find(|e| e.material.as_deref() == Some(name))
            .map_or(Evaluator::ControlPlane, |e| e.evaluated_by);
        recomputed.extend(plan.material(
            &input::Material {
                name,
                kind,
                digest: &digest,
                bytes: bytes.map(Vec::as_slice),
                value: value.as_deref(),
                annotations: &annotations,
            },
            by,
        ));
    }
    let digest = format!("sha256:{}", sha256(&statement_bytes).to_hex());
    recomputed.extend(plan.statement(&statement_bytes, &digest, Evaluator::ControlPlane));
    let mut r = verdict::compare(&vsa.predicate.policy_evaluations, &recomputed, &not_given);
    if verdict::result_of(&vsa.predicate.policy_evaluations) != vsa.predicate.verification_result {
        r.disagree.push(format!(
            "verificationResult is {}, but the recorded evaluations make it {}",
            vsa.predicate.verification_result,
            verdict::result_of(&vsa.predicate.policy_evaluations)
        ));
    }
    if !r.disagree.is_empty() {
        return Err(Failure::Invalid(anyhow!(
            "the recorded policy verdict disagrees with a re-evaluation at {commit}:\n  - {}",
            r.disagree.join("\n  - ")
        )));
    }
    if r.agree == 0 {
        return Err(Failure::Usage(anyhow!(
            "no recorded evaluation could be re-checked: give the materials with --materials <dir>"
        )));
    }
    Ok(r)
}

/// Whether `key` was trusted for the entry's workflow at log index `index`
/// (SPEC.md §15.5), from a clone of the ledger (checked whole under the
/// log key, its entry at `index` the bundle's) and, for keys reviewed in
/// git, a clone of the contracts repository: registered by a key entry
/// before `index` and not revoked since, or in `keys/<workflow>/` at the
/// commit the run was pinned at (the statement records it, intake checked
/// it). Not trusted is exit 1, naming why.
#[allow(clippy::too_many_arguments)]
fn key_trust(
    ledger: &std::path::Path,
    contracts: Option<&std::path::Path>,
    key: &std::path::Path,
    log_key: &ledger_format::note::VerifierKey,
    index: u64,
    entry_bytes: &[u8],
    e: &Entry,
    envelope: &[u8],
) -> Result<String, Failure> {
    use crate::ledger::fsck;
    use ledger_format::key::{KeyAction, KeyEntry};
    let pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the key {}", key.display()))
        .usage()?;
    let keyid = crate::attest::signing::keyid_of_pem(&pem).map_err(|m| Failure::Usage(anyhow!(m)))?;
    let (git_dir, is_ledger_dir) = fsck::locate(ledger)
        .ok_or_else(|| anyhow!("{} is not a ledger, nor a git clone of one", ledger.display()))
        .usage()?;
    let git_dir = if is_ledger_dir {
        git_dir.join("ledger.git")
    } else {
        git_dir
    };
    let report = fsck::check_repository(&git_dir, log_key).map_err(|err| {
        Failure::Invalid(anyhow!(
            "the ledger clone {} does not verify: {err}",
            ledger.display()
        ))
    })?;
    if report.size <= index {
        return Err(Failure::Usage(anyhow!(
            "the ledger clone holds {} entries, not entry {index}: fetch it again",
            report.size
        )));
    }
    let head = report
        .head
        .as_ref()
        .ok_or_else(|| anyhow!("the clone has no head"))
        .invalid()?;
    let git = crate::ledger::git::LedgerRepo::open_existing(&git_dir).usage()?;
    type Keep<'f> = &'f mut dyn FnMut(u64, &[u8]) -> Option<(u64, Vec<u8>)>;
    let read = |below: u64, f: Keep<'_>| {
        fsck::scan_entries(&git, head.tree, report.size, below, f)
            .map_err(|err| Failure::Invalid(anyhow!("reading the ledger clone: {err}")))
    };
    let same = read(index + 1, &mut |i, b| (i == index).then(|| (i, b.to_vec())))?;
    if same.first().map(|(_, b)| b.as_slice()) != Some(entry_bytes) {
        return Err(Failure::Invalid(anyhow!(
            "the ledger clone's entry {index} is not the bundle's: another log?"
        )));
    }
    let workflow = &e.workflow;
    let changes = read(index, &mut |i, b| {
        KeyEntry::parse(b)
            .ok()
            .filter(|k| &k.workflow == workflow && k.key_digest.to_hex() == keyid)
            .map(|_| (i, b.to_vec()))
    })?;
    if let Some((at, bytes)) = changes.last() {
        let k = KeyEntry::parse(bytes).invalid()?;
        return match k.action {
            KeyAction::Add => Ok(format!(
                "key {keyid} was trusted for workflow {workflow} at index {index}: registered through the admin API by log entry {at} (by {}), not revoked before it",
                k.by
            )),
            KeyAction::Revoke => Err(Failure::Invalid(anyhow!(
                "key {keyid} was not trusted for workflow {workflow} at index {index}: log entry {at} revoked it (by {})",
                k.by
            ))),
        };
    }
    let statement = crate::attest::dsse::Envelope::parse(envelope)
        .ok()
        .and_then(|env| crate::attest::dsse::decode_b64(&env.payload))
        .ok_or_else(|| anyhow!("the envelope's payload is not base64"))
        .invalid()?;
    let st = crate::attest::statement::View::parse(&statement).invalid()?;
    let Some(pin) = st.external().contracts_commit.get() else {
        return Err(Failure::Invalid(anyhow!(
            "key {keyid} was not registered for workflow {workflow} by a key entry before index {index}, and the statement does not record the contracts commit its run was pinned at"
        )));
    };
    let Some(contracts) = contracts else {
        return Err(Failure::Invalid(anyhow!(
            "key {keyid} was not registered for workflow {workflow} by a key entry before index {index}; give --contracts <clone> to look in keys/{workflow}/ at the run's pinned commit {pin}"
        )));
    };
    let repo = ContractsRepo::open(contracts)
        .map_err(|err| Failure::Usage(anyhow!("{}: {err}", contracts.display())))?;
    let commit = gix::ObjectId::from_hex(pin.as_bytes())
        .context("the statement's contractsCommit is not a git object id")
        .invalid()?;
    let files = repo
        .workflow_keys_at(commit, workflow)
        .with_context(|| format!("reading keys/{workflow}/ at {pin} in {}", contracts.display()))
        .usage()?;
    for (path, bytes) in files {
        let id = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| crate::attest::signing::keyid_of_pem(t).ok());
        if id.as_deref() == Some(keyid.as_str()) {
            return Ok(format!(
                "key {keyid} was trusted for workflow {workflow} at index {index}: {path} of the contracts repository at {pin}, the commit the run was pinned at"
            ));
        }
    }
    Err(Failure::Invalid(anyhow!(
        "key {keyid} was not trusted for workflow {workflow} at index {index}: no key entry registered it before, and keys/{workflow}/ at {pin} (the run's pin) does not hold it"
    )))
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
    check_signed(&envelope, &[key], entry)
}

/// A keyless signature (SPEC.md §15.4): the bundle's certificate entry is
/// in the log (same key, same origin) before the attestation and is the
/// attestation's run's; the envelope's certificate is that entry's and
/// chains to `--ca` (valid when it was issued); its identity meets the
/// `--certificate-*` constraints; its key signed the envelope.
fn check_keyless(
    args: &VerifyArgs,
    env: &[u8],
    entry: Option<&Entry>,
    log_key: &ledger_format::note::VerifierKey,
    origin: Option<&str>,
    index: u64,
) -> Result<String, Failure> {
    use crate::attest::dsse::{Envelope, PublicKey};
    use ledger_format::certificate::CertificateEntry;
    let (Some(ca), Some(b)) = (&args.ca, &args.bundle) else {
        return Err(Failure::Usage(anyhow!("--ca needs --bundle")));
    };
    let ca_pem = std::fs::read_to_string(ca)
        .with_context(|| format!("cannot read the CA certificates {}", ca.display()))
        .usage()?;
    let bundle =
        crate::attest::bundle::Bundle::parse(&read_input(b)?).map_err(|e| Failure::Usage(anyhow!(e)))?;
    let Some(logged) = bundle.certificate else {
        return Err(Failure::Invalid(anyhow!(
            "the bundle carries no logged certificate: a keyless signature is trusted only with its certificate's log entry and inclusion proof"
        )));
    };
    let proof = TlogProof::parse(logged.tlog_proof.as_bytes())
        .context("the certificate's tlog-proof")
        .usage()?;
    proof
        .verify(logged.entry.as_bytes(), log_key, &[], origin)
        .context("the certificate's entry is not proven in the log")
        .invalid()?;
    if logged.log_index != proof.index || logged.log_index >= index {
        return Err(Failure::Invalid(anyhow!(
            "the certificate's entry (index {}) is not logged before the attestation (index {index})",
            logged.log_index
        )));
    }
    let c = CertificateEntry::parse(logged.entry.as_bytes())
        .context("the certificate's log entry")
        .invalid()?;
    if let Some(e) = entry {
        if (c.project.as_str(), c.workflow.as_str(), c.run.as_str())
            != (e.project.as_str(), e.workflow.as_str(), e.run.as_str())
        {
            return Err(Failure::Invalid(anyhow!(
                "the certificate was issued for run {} of {}/{}, not for this attestation's run",
                c.run,
                c.project,
                c.workflow
            )));
        }
    }
    let envelope = Envelope::parse(env).invalid()?;
    let chain = envelope
        .signatures
        .iter()
        .filter_map(|s| s.certificate.as_deref())
        .find(|chain| {
            crate::identity::ca::pem_blocks(chain)
                .ok()
                .and_then(|b| b.into_iter().next())
                .is_some_and(|leaf| sha256(&leaf) == c.certificate_digest)
        })
        .ok_or_else(|| {
            Failure::Invalid(anyhow!(
                "no signature of the envelope carries the logged certificate sha256:{}",
                c.certificate_digest
            ))
        })?;
    let v = crate::identity::cert::verify_chain(chain, &ca_pem, c.not_before as i64).invalid()?;
    let id = &v.identity;
    if let Some(want) = &args.certificate_identity {
        if &id.san != want {
            return Err(Failure::Invalid(anyhow!(
                "the signer's identity is {}, not {want}",
                id.san
            )));
        }
    }
    if let Some(re) = &args.certificate_identity_regexp {
        let re = regex::Regex::new(re)
            .context("--certificate-identity-regexp")
            .usage()?;
        if !re.is_match(&id.san) {
            return Err(Failure::Invalid(anyhow!(
                "the signer's identity {} does not match {re}",
                id.san
            )));
        }
    }
    if let Some(want) = &args.certificate_oidc_issuer {
        if &id.issuer != want {
            return Err(Failure::Invalid(anyhow!(
                "the signer's identity was issued by {}, not {want}",
                id.issuer
            )));
        }
    }
    let key = PublicKey::from_pem(&v.public_key_pem).invalid()?;
    let signed = check_signed(&envelope, &[key], entry)?;
    Ok(format!(
        "keyless signature by {} (issuer {}), certificate {} logged at index {}; {signed}",
        id.san, id.issuer, v.serial, logged.log_index
    ))
}

/// The envelope's signature under one of `keys`, and its statement: of
/// the entry's workflow, run and contract revision.
fn check_signed(
    envelope: &crate::attest::dsse::Envelope,
    keys: &[crate::attest::dsse::PublicKey],
    entry: Option<&Entry>,
) -> Result<String, Failure> {
    let verified = envelope.verify(keys).invalid()?;
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
