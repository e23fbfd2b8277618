//! Checking a pushed attestation against the exact contract revision its
//! run was started with (SPEC.md §12.4). A pure function of the contract, the
//! run and the verified statement: every violation is reported, in words a
//! developer understands.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::contract::Contract;
use crate::server::meta::{DigestRow, Run};

/// A material as the statement describes it.
struct Described<'a> {
    kind: &'a str,
    annotations: BTreeMap<&'a str, &'a str>,
}

fn descriptors(st: &Value) -> impl Iterator<Item = (&Value, &'static str)> {
    let subjects = st["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d, "subject"));
    let by = st["predicate"]["runDetails"]["byproducts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d, "material"));
    subjects.chain(by)
}

/// Every way the statement breaks the contract or does not belong to the run.
pub fn violations(contract: &Contract, run: &Run, st: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let ext = &st["predicate"]["buildDefinition"]["externalParameters"];
    let int = &st["predicate"]["buildDefinition"]["internalParameters"];
    let s = |x: &Value| x.as_str().unwrap_or_default().to_owned();
    if s(&ext["workflow"]) != run.workflow {
        v.push(format!(
            "the attestation is for workflow `{}`, but run {} is of workflow `{}`",
            s(&ext["workflow"]),
            run.id,
            run.workflow
        ));
    }
    let inv = s(&st["predicate"]["runDetails"]["metadata"]["invocationId"]);
    if inv != run.id {
        v.push(format!(
            "the attestation names run `{inv}`, but it was pushed to run {}",
            run.id
        ));
    }
    let c = &ext["contract"];
    if s(&c["name"]) != run.contract_name
        || s(&c["commit"]) != run.contract_commit
        || s(&c["blob"]) != run.contract_blob
    {
        v.push(format!(
            "the attestation says it was crafted against contract {} @ {} (blob {}), but the run was started against {} @ {} (blob {})",
            s(&c["name"]),
            s(&c["commit"]),
            s(&c["blob"]),
            run.contract_name,
            run.contract_commit,
            run.contract_blob
        ));
    }
    if int["dryRun"].as_bool() == Some(true) {
        v.push("the attestation was crafted in a dry run; start the run with `tally attestation init` against this server".into());
    }
    let runner = s(&int["runner"]["type"]);
    if contract.runner != "any" && runner != contract.runner {
        v.push(format!(
            "contract `{}` requires runner `{}`; the attestation was crafted on `{}`",
            contract.name,
            contract.runner,
            if runner.is_empty() {
                "an unknown runner"
            } else {
                &runner
            }
        ));
    }
    for k in &contract.env {
        if int["env"][k].as_str().is_none_or(str::is_empty) {
            v.push(format!(
                "environment variable `{k}` required by the contract is not recorded"
            ));
        }
    }

    let mut present: BTreeMap<&str, Described<'_>> = BTreeMap::new();
    for (d, _) in descriptors(st) {
        let Some(name) = d["name"].as_str() else { continue };
        let ann: BTreeMap<&str, &str> = d["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
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
        match ext["annotations"][&a.name].as_str() {
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

/// The digests the statement names, for the search index.
pub fn digests(st: &Value) -> Vec<DigestRow> {
    let mut out = Vec::new();
    for (d, role) in descriptors(st) {
        let name = d["name"].as_str().unwrap_or_default().to_owned();
        for (alg, hex) in d["digest"].as_object().into_iter().flatten() {
            if let Some(h) = hex.as_str() {
                out.push(DigestRow {
                    digest: format!("{alg}:{}", h.to_ascii_lowercase()),
                    role: role.into(),
                    name: name.clone(),
                });
            }
        }
    }
    out
}
