//! Checking a pushed attestation against the exact contract revision its
//! run was started with (SPEC.md §12.4). A pure function of the contract, the
//! run and the verified statement: every violation is reported, in words a
//! developer understands.

use std::collections::BTreeMap;

use crate::attest::statement::View;
use crate::contract::Contract;
use crate::server::meta::{DigestRow, Run};

/// A material as the statement describes it.
struct Described<'a> {
    kind: &'a str,
    annotations: BTreeMap<&'a str, &'a str>,
}

/// Every way the statement breaks the contract or does not belong to the run.
pub fn violations(contract: &Contract, run: &Run, st: &View<'_>) -> Vec<String> {
    let mut v = Vec::new();
    let ext = st.external();
    let int = st.internal();
    let workflow = ext.workflow.as_str();
    if workflow != run.workflow {
        v.push(format!(
            "the attestation is for workflow `{workflow}`, but run {} is of workflow `{}`",
            run.id, run.workflow
        ));
    }
    let inv = st.invocation_id();
    if inv != run.id {
        v.push(format!(
            "the attestation names run `{inv}`, but it was pushed to run {}",
            run.id
        ));
    }
    let c = &ext.contract;
    let (name, commit, blob) = (c.name.as_str(), c.commit.as_str(), c.blob.as_str());
    if name != run.contract_name || commit != run.contract_commit || blob != run.contract_blob {
        v.push(format!(
            "the attestation says it was crafted against contract {name} @ {commit} (blob {blob}), but the run was started against {} @ {} (blob {})",
            run.contract_name,
            run.contract_commit,
            run.contract_blob
        ));
    }
    if int.dry_run.0 {
        v.push("the attestation was crafted in a dry run; start the run with `tally attestation init` against this server".into());
    }
    let runner = int.runner.kind.as_str();
    if contract.runner != "any" && runner != contract.runner {
        v.push(format!(
            "contract `{}` requires runner `{}`; the attestation was crafted on `{}`",
            contract.name,
            contract.runner,
            if runner.is_empty() {
                "an unknown runner"
            } else {
                runner
            }
        ));
    }
    for k in &contract.env {
        if int.env.get(k).is_none_or(str::is_empty) {
            v.push(format!(
                "environment variable `{k}` required by the contract is not recorded"
            ));
        }
    }

    let mut present: BTreeMap<&str, Described<'_>> = BTreeMap::new();
    for (d, _) in st.descriptors() {
        let Some(name) = d.name.get() else { continue };
        let ann: BTreeMap<&str, &str> = d.annotations.strings().collect();
        let kind = ann.get("tally.material.kind").copied().unwrap_or_default();
        present.insert(
            name,
            Described {
                kind,
                annotations: ann,
            },
        );
    }
    let mut groups: BTreeMap<&str, bool> = BTreeMap::new();
    for m in &contract.materials {
        match present.get(m.name.as_str()) {
            None => {
                if let Some(g) = &m.group {
                    groups.entry(g).or_default();
                } else if !m.optional {
                    v.push(format!("required material `{}` ({}) is missing", m.name, m.kind));
                }
            }
            Some(d) => {
                if let Some(g) = &m.group {
                    groups.insert(g, true);
                }
                if d.kind != m.kind {
                    v.push(format!(
                        "material `{}` must be {} but is {}",
                        m.name,
                        m.kind,
                        if d.kind.is_empty() {
                            "of no declared kind"
                        } else {
                            d.kind
                        }
                    ));
                }
                for a in &m.annotations {
                    match d.annotations.get(a.name.as_str()) {
                        Some(val) if a.value.is_empty() && !val.is_empty() => {}
                        Some(val) if !a.value.is_empty() && *val == a.value => {}
                        Some(val) if !a.value.is_empty() => v.push(format!(
                            "material `{}` has annotation `{}` = {val:?}; the contract fixes it to {:?}",
                            m.name, a.name, a.value
                        )),
                        _ => v.push(format!(
                            "material `{}` lacks the annotation `{}` the contract requires",
                            m.name, a.name
                        )),
                    }
                }
            }
        }
    }
    for (g, ok) in groups {
        if !ok {
            let members: Vec<&str> = contract
                .materials
                .iter()
                .filter(|m| m.group.as_deref() == Some(g))
                .map(|m| m.name.as_str())
                .collect();
            v.push(format!("group `{g}` needs one of: {}", members.join(", ")));
        }
    }
    for a in &contract.annotations {
        match ext.annotations.get(&a.name) {
            Some(val) if a.value.is_empty() && !val.is_empty() => {}
            Some(val) if !a.value.is_empty() && val == a.value => {}
            Some(val) if !a.value.is_empty() => v.push(format!(
                "annotation `{}` = {val:?}; the contract fixes it to {:?}",
                a.name, a.value
            )),
            _ => v.push(format!(
                "annotation `{}` required by the contract is missing",
                a.name
            )),
        }
    }
    v
}

/// The digests the statement names, for the search index: subjects first,
/// then byproducts; a digest a name already carries is listed once (first
/// role).
pub fn digests(st: &View<'_>) -> Vec<DigestRow> {
    let mut out: Vec<DigestRow> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (d, role) in st.descriptors() {
        let name = d.name.as_str();
        for (alg, hex) in d.digest.strings() {
            let digest = format!("{alg}:{}", hex.to_ascii_lowercase());
            if !seen.insert((digest.clone(), name)) {
                continue;
            }
            out.push(DigestRow {
                digest,
                role: role.into(),
                name: name.to_owned(),
            });
        }
    }
    out
}
