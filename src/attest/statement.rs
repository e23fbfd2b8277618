//! The attestation tally produces: an in-toto Statement v1 whose predicate
//! is SLSA Provenance v1, with tally's build type (SPEC.md §11.5).
//!
//! Output materials and the git HEAD are the statement's subjects; every
//! other material is a byproduct; the checked-out repository is the one
//! resolved dependency. Keys are emitted sorted, so the same state gives the
//! same bytes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::attest::state::{MaterialRecord, State};

/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// tally's build type (what `externalParameters` and
/// `internalParameters` hold is specified in SPEC.md §11.5).
pub const BUILD_TYPE: &str = "https://tally.dev/attestation/v1";

/// The annotation naming a material's kind.
pub const KIND_ANNOTATION: &str = "tally.material.kind";

fn descriptor(m: &MaterialRecord) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), m.name.clone().into());
    if let Some((alg, hex)) = m.digest.split_once(':') {
        d.insert("digest".into(), json!({ alg: hex }));
    }
    let mut ann: BTreeMap<String, String> = m.annotations.clone();
    ann.insert(KIND_ANNOTATION.into(), m.kind.clone());
    if m.kind == "STRING" {
        ann.insert("tally.material.value".into(), m.value.clone());
    } else if m.kind == "CONTAINER_IMAGE" {
        d.insert("uri".into(), format!("oci://{}", m.value).into());
    } else {
        ann.insert("tally.material.file".into(), m.value.clone());
        ann.insert("tally.material.size".into(), m.size.to_string());
    }
    if !m.in_contract {
        ann.insert("tally.material.extra".into(), "true".into());
    }
    d.insert("annotations".into(), json!(ann));
    Value::Object(d)
}

/// Builds the statement for `state`, with the attestation-level
/// `annotations` and the finishing time.
pub fn build(state: &State, annotations: &BTreeMap<String, String>, finished_on: &str) -> Value {
    let mut subjects: Vec<Value> = state
        .materials
        .iter()
        .filter(|m| m.output)
        .map(descriptor)
        .collect();
    let byproducts: Vec<Value> = state
        .materials
        .iter()
        .filter(|m| !m.output)
        .map(descriptor)
        .collect();
    let mut resolved = Vec::new();
    if let Some(g) = &state.git {
        subjects.push(json!({
            "name": "git.head",
            "digest": { "gitCommit": g.commit },
            "annotations": {
                "tally.git.author": g.author,
                "tally.git.author_date": g.author_date,
                "tally.git.committer": g.committer,
                "tally.git.message": g.message,
                "tally.git.signed": g.signed.to_string(),
                "tally.git.branch": g.branch.clone().unwrap_or_default(),
            }
        }));
        let uri = g
            .remotes
            .iter()
            .find(|r| r.name == "origin")
            .or(g.remotes.first())
            .map(|r| format!("git+{}", r.url))
            .unwrap_or_else(|| "git+file:.".into());
        let uri = match &g.branch {
            Some(b) => format!("{uri}@refs/heads/{b}"),
            None => uri,
        };
        resolved.push(json!({ "uri": uri, "digest": { "gitCommit": g.commit } }));
    }
    if subjects.is_empty() {
        // A statement needs a subject; with no outputs and no git checkout,
        // the run is about the contract revision it satisfied.
        subjects.push(json!({
            "name": format!("tally.contract/{}", state.contract.name),
            "digest": { "gitBlob": state.contract.blob },
        }));
    }
    // The builder is the kind of CI that ran the pipeline (a stable identity
    // a verifier can pin); this run's link is in internalParameters.runner.url.
    let builder_id = format!("https://tally.dev/runner/{}", state.runner.kind);
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "workflow": state.workflow,
                    "project": state.project,
                    "version": state.version,
                    "contract": {
                        "name": state.contract.name,
                        "commit": state.contract.commit,
                        "blob": state.contract.blob,
                    },
                    "annotations": annotations,
                },
                "internalParameters": {
                    "runner": state.runner,
                    "env": state.env,
                    "dryRun": state.dry_run,
                },
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": builder_id,
                    "version": { "tally": env!("CARGO_PKG_VERSION") },
                },
                "metadata": {
                    "invocationId": state.run_id,
                    "startedOn": state.started_at,
                    "finishedOn": finished_on,
                },
                "byproducts": byproducts,
            },
        },
    })
}
