//! Whether presented evidence satisfies a contract revision (SPEC.md §12.4).
//!
//! One function, [`check`], decides it for every caller: `attestation
//! init` (dry runs), `status` and `push` on the crafting state, the control
//! plane when a run starts and when an attestation is pushed. Its input,
//! [`Evidence`], is built from either the crafting state
//! ([`Evidence::from_state`]) or a verified statement
//! ([`Evidence::from_statement`]); what a caller has not been shown yet (the
//! materials, when a run starts) is `None` and not judged. The result is a
//! list of typed [`Violation`]s; each surface words them for its reader.

use std::collections::BTreeMap;
use std::fmt;

use ledger_format::entry::ContractRevision;

use crate::attest::state::State;
use crate::attest::statement::{View, IMAGE_TAG_ANNOTATION, KIND_ANNOTATION};
use crate::contract::{Annotation, Contract};

/// A material as presented: its kind as recorded, and its annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The kind the crafting CLI recorded (empty: none declared).
    pub kind: &'a str,
    /// Its annotations.
    pub annotations: BTreeMap<&'a str, &'a str>,
}

/// What a run is bound to: the attestation must name the same.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The workflow.
    pub workflow: &'a str,
    /// The run id.
    pub run: &'a str,
    /// The contract revision pinned when the run started.
    pub contract: &'a ContractRevision,
}

/// What is presented to the contract. `None` means "not shown yet" and is
/// not judged; an empty map is judged (nothing present).
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// The run the evidence says it belongs to (statements only).
    pub claims: Option<Binding<'a>>,
    /// Whether it was crafted in a dry run.
    pub dry_run: bool,
    /// The runner kind it was crafted on (empty: unknown).
    pub runner: Option<&'a str>,
    /// Recorded environment variables.
    pub env: Option<BTreeMap<&'a str, &'a str>>,
    /// Materials by name.
    pub materials: Option<BTreeMap<&'a str, Presented<'a>>>,
    /// Attestation-level annotations.
    pub annotations: Option<BTreeMap<&'a str, &'a str>>,
}

impl<'a> Evidence<'a> {
    /// Only the runner: what is known when a run starts.
    pub fn runner(kind: &'a str) -> Self {
        Evidence {
            runner: Some(kind),
            ..Evidence::default()
        }
    }

    /// The crafting state, with the attestation annotations given at push
    /// (`None`: not given yet, as in `status`).
    pub fn from_state(st: &'a State, annotations: Option<&'a BTreeMap<String, String>>) -> Self {
        let materials = st
            .materials
            .iter()
            .map(|m| {
                let annotations = m
                    .annotations
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (
                    m.name.as_str(),
                    Presented {
                        kind: m.kind.as_str(),
                        annotations,
                    },
                )
            })
            .collect();
        Evidence {
            claims: None,
            dry_run: st.dry_run,
            runner: Some(st.runner.kind.as_str()),
            env: Some(st.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
            materials: Some(materials),
            annotations: annotations.map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
        }
    }

    /// A verified statement, with the contract revision it claims.
    pub fn from_statement(st: &'a View<'a>, claimed: &'a ContractRevision) -> Self {
        let ext = st.external();
        let int = st.internal();
        let mut materials = BTreeMap::new();
        for (d, _) in st.descriptors() {
            let Some(name) = d.name.get() else { continue };
            let annotations: BTreeMap<&str, &str> = d.annotations.strings().collect();
            let kind = annotations.get(KIND_ANNOTATION).copied().unwrap_or_default();
            materials.insert(name, Presented { kind, annotations });
        }
        Evidence {
            claims: Some(Binding {
                workflow: ext.workflow.as_str(),
                run: st.invocation_id(),
                contract: claimed,
            }),
            dry_run: int.dry_run.0,
            runner: Some(int.runner.kind.as_str()),
            env: Some(int.env.strings().collect()),
            materials: Some(materials),
            annotations: Some(ext.annotations.strings().collect()),
        }
    }
}

/// The contract revision a statement says it was crafted against.
pub fn claimed_revision(st: &View<'_>) -> ContractRevision {
    let c = &st.external().contract;
    ContractRevision {
        name: c.name.as_str().to_owned(),
        commit: c.commit.as_str().to_owned(),
        blob: c.blob.as_str().to_owned(),
    }
}

/// One way evidence fails a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The attestation names another workflow than its run's.
    WrongWorkflow {
        /// Named by the attestation.
        claimed: String,
        /// The run's.
        run_workflow: String,
        /// The run.
        run: String,
    },
    /// The attestation names another run.
    WrongRun {
        /// Named by the attestation.
        claimed: String,
        /// The run pushed to.
        run: String,
    },
    /// The attestation was crafted against another contract revision.
    WrongRevision {
        /// Named by the attestation.
        claimed: ContractRevision,
        /// Pinned by the run.
        pinned: ContractRevision,
    },
    /// Crafted in a dry run.
    DryRun,
    /// The contract requires another runner.
    Runner {
        /// The contract's name.
        contract: String,
        /// Required.
        required: String,
        /// Crafted on (empty: unknown).
        found: String,
    },
    /// A required environment variable is not recorded.
    Env(String),
    /// A required material is missing.
    MissingMaterial {
        /// Its name.
        name: String,
        /// Its kind.
        kind: String,
    },
    /// A material has another kind than the contract's.
    WrongKind {
        /// Its name.
        name: String,
        /// Required.
        required: String,
        /// Recorded (empty: none).
        found: String,
    },
    /// A `pinned` image was given by tag.
    Unpinned {
        /// The material.
        name: String,
        /// The tag it was given by.
        tag: String,
    },
    /// An annotation (of a material, or of the attestation) is wrong or missing.
    Annotation {
        /// The material (`None`: the attestation).
        material: Option<String>,
        /// The key.
        name: String,
        /// The value found, if any.
        found: Option<String>,
        /// The value the contract fixes (empty: any non-empty value).
        fixed: String,
    },
    /// No member of a group is present.
    Group {
        /// The group.
        group: String,
        /// Its members.
        members: Vec<String>,
    },
    /// A blocking policy failed (`policy::violations` makes these).
    Policy {
        /// The policy's name.
        policy: String,
        /// The material (`None`: the attestation).
        material: Option<String>,
        /// The policy's message.
        message: String,
    },
}

impl Violation {
    /// A short machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::WrongWorkflow { .. } => "workflow",
            Violation::WrongRun { .. } => "run",
            Violation::WrongRevision { .. } => "contract_revision",
            Violation::DryRun => "dry_run",
            Violation::Runner { .. } => "runner_mismatch",
            Violation::Env(_) => "missing_env",
            Violation::MissingMaterial { .. } => "missing_material",
            Violation::WrongKind { .. } => "material_kind",
            Violation::Unpinned { .. } => "unpinned_image",
            Violation::Annotation { .. } => "annotation",
            Violation::Group { .. } => "missing_group",
            Violation::Policy { .. } => "policy",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::WrongWorkflow {
                claimed,
                run_workflow,
                run,
            } => write!(
                f,
                "the attestation is for workflow `{claimed}`, but run {run} is of workflow `{run_workflow}`"
            ),
            Violation::WrongRun { claimed, run } => write!(
                f,
                "the attestation names run `{claimed}`, but it was pushed to run {run}"
            ),
            Violation::WrongRevision { claimed, pinned } => write!(
                f,
                "the attestation says it was crafted against contract {} @ {} (blob {}), but the run was started against {} @ {} (blob {})",
                claimed.name, claimed.commit, claimed.blob, pinned.name, pinned.commit, pinned.blob
            ),
            Violation::DryRun => f.write_str(
                "the attestation was crafted in a dry run; start the run with `tally attestation init` against this server",
            ),
            Violation::Runner {
                contract,
                required,
                found,
            } => write!(
                f,
                "contract `{contract}` requires runner `{required}`; the attestation was crafted on `{}`",
                if found.is_empty() { "an unknown runner" } else { found }
            ),
            Violation::Env(k) => write!(
                f,
                "environment variable `{k}` required by the contract is not recorded"
            ),
            Violation::MissingMaterial { name, kind } => {
                write!(f, "required material `{name}` ({kind}) is missing")
            }
            Violation::Unpinned { name, tag } => write!(
                f,
                "material `{name}` was given by the tag `{tag}`; the contract asks for the image by digest (pinned): give <registry>/<repository>@sha256:<hex>"
            ),
            Violation::WrongKind {
                name,
                required,
                found,
            } => write!(
                f,
                "material `{name}` must be {required} but is {}",
                if found.is_empty() { "of no declared kind" } else { found }
            ),
            Violation::Annotation {
                material,
                name,
                found,
                fixed,
            } => {
                let whose = match material {
                    Some(m) => format!("material `{m}` "),
                    None => String::new(),
                };
                match (found, material) {
                    (Some(v), Some(_)) if !fixed.is_empty() => write!(
                        f,
                        "{whose}has annotation `{name}` = {v:?}; the contract fixes it to {fixed:?}"
                    ),
                    (Some(v), None) if !fixed.is_empty() => write!(
                        f,
                        "annotation `{name}` = {v:?}; the contract fixes it to {fixed:?}"
                    ),
                    (_, Some(_)) => write!(
                        f,
                        "{whose}lacks the annotation `{name}` the contract requires"
                    ),
                    (_, None) => write!(f, "annotation `{name}` required by the contract is missing"),
                }
            }
            Violation::Group { group, members } => {
                write!(f, "group `{group}` needs one of: {}", members.join(", "))
            }
            Violation::Policy {
                policy,
                material,
                message,
            } => match material {
                Some(m) => write!(f, "policy `{policy}` on material `{m}`: {message}"),
                None => write!(f, "policy `{policy}` on the attestation: {message}"),
            },
        }
    }
}

/// Whether `found` satisfies a required annotation: any non-empty value when
/// the contract leaves it empty, else exactly the value it fixes.
pub fn annotation_satisfied(required: &Annotation, found: Option<&str>) -> bool {
    match found {
        Some(v) if required.value.is_empty() => !v.is_empty(),
        Some(v) => v == required.value,
        None => false,
    }
}

/// Every way `ev` breaks `contract` or does not belong to the run `bound`
/// to (when given). Empty: satisfied, as far as the evidence goes.
pub fn check(contract: &Contract, ev: &Evidence<'_>, bound: Option<Binding<'_>>) -> Vec<Violation> {
    let mut v = Vec::new();
    if let (Some(claims), Some(run)) = (ev.claims, bound) {
        if claims.workflow != run.workflow {
            v.push(Violation::WrongWorkflow {
                claimed: claims.workflow.into(),
                run_workflow: run.workflow.into(),
                run: run.run.into(),
            });
        }
        if claims.run != run.run {
            v.push(Violation::WrongRun {
                claimed: claims.run.into(),
                run: run.run.into(),
            });
        }
        if claims.contract != run.contract {
            v.push(Violation::WrongRevision {
                claimed: claims.contract.clone(),
                pinned: run.contract.clone(),
            });
        }
        if ev.dry_run {
            v.push(Violation::DryRun);
        }
    }
    if let Some(runner) = ev.runner {
        if contract.runner != "any" && runner != contract.runner {
            v.push(Violation::Runner {
                contract: contract.name.clone(),
                required: contract.runner.clone(),
                found: runner.into(),
            });
        }
    }
    if let Some(env) = &ev.env {
        for k in &contract.env {
            if env.get(k.as_str()).is_none_or(|x| x.is_empty()) {
                v.push(Violation::Env(k.clone()));
            }
        }
    }
    if let Some(present) = &ev.materials {
        let mut groups: BTreeMap<&str, bool> = BTreeMap::new();
        for m in &contract.materials {
            let Some(p) = present.get(m.name.as_str()) else {
                if let Some(g) = &m.group {
                    groups.entry(g).or_default();
                } else if !m.optional {
                    v.push(Violation::MissingMaterial {
                        name: m.name.clone(),
                        kind: m.kind.as_str().into(),
                    });
                }
                continue;
            };
            if let Some(g) = &m.group {
                groups.insert(g, true);
            }
            if let Some(tag) = p.annotations.get(IMAGE_TAG_ANNOTATION).filter(|_| m.pinned) {
                v.push(Violation::Unpinned {
                    name: m.name.clone(),
                    tag: (*tag).to_owned(),
                });
            }
            if p.kind != m.kind.as_str() {
                v.push(Violation::WrongKind {
                    name: m.name.clone(),
                    required: m.kind.as_str().into(),
                    found: p.kind.into(),
                });
            }
            for a in &m.annotations {
                let found = p.annotations.get(a.name.as_str()).copied();
                if !annotation_satisfied(a, found) {
                    v.push(Violation::Annotation {
                        material: Some(m.name.clone()),
                        name: a.name.clone(),
                        found: found.map(str::to_owned),
                        fixed: a.value.clone(),
                    });
                }
            }
        }
        for (g, ok) in groups {
            if !ok {
                v.push(Violation::Group {
                    group: g.into(),
                    members: contract
                        .materials
                        .iter()
                        .filter(|m| m.group.as_deref() == Some(g))
                        .map(|m| m.name.clone())
                        .collect(),
                });
            }
        }
    }
    if let Some(given) = &ev.annotations {
        for a in &contract.annotations {
            let found = given.get(a.name.as_str()).copied();
            if !annotation_satisfied(a, found) {
                v.push(Violation::Annotation {
                    material: None,
                    name: a.name.clone(),
                    found: found.map(str::to_owned),
                    fixed: a.value.clone(),
                });
            }
        }
    }
    v
}

/// A value given for an annotation the contract fixes to another value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {name:?} is fixed to {fixed:?} by the contract; do not pass another value")]
pub struct FixedConflict {
    /// The key.
    pub name: String,
    /// The contract's value.
    pub fixed: String,
}

/// Fills the values a contract fixes into the annotations a user gives
/// (crafting: `add --annotation`, `push --annotation`); returns the merged
/// set and the keys the user must still supply. Giving a fixed key another
/// value is an error.
pub fn fill_annotations(
    required: &[Annotation],
    given: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, Vec<String>), FixedConflict> {
    let mut out = given.clone();
    let mut missing = Vec::new();
    for a in required {
        let found = given.get(&a.name).map(String::as_str);
        match (a.value.is_empty(), found) {
            (false, Some(v)) if v != a.value => {
                return Err(FixedConflict {
                    name: a.name.clone(),
                    fixed: a.value.clone(),
                })
            }
            (false, _) => {
                out.insert(a.name.clone(), a.value.clone());
            }
            (true, f) if !annotation_satisfied(a, f) => missing.push(a.name.clone()),
            (true, _) => {}
        }
    }
    Ok((out, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_contract;

    fn contract() -> Contract {
        let text = r#"
schema = "tally.dev/contract/v1"
name = "c"
runner = "gitlab"
env = ["GIT_SHA"]
annotations = { ticket = "", team = "payments" }

[[materials]]
name = "sbom"
type = "SBOM_CYCLONEDX_JSON"
annotations = { tool = "" }

[[materials]]
name = "junit"
type = "JUNIT_XML"
group = "tests"

[[materials]]
name = "sarif"
type = "SARIF"
group = "tests"

[[materials]]
name = "extra"
type = "STRING"
optional = true
"#;
        match parse_contract("c.toml", text, None) {
            Ok(c) => c,
            Err(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn nothing_shown_nothing_judged() {
        assert!(check(&contract(), &Evidence::default(), None).is_empty());
        let v = check(&contract(), &Evidence::runner("jenkins"), None);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].code(), "runner_mismatch");
    }

    #[test]
    fn every_rule_reports_once() {
        let mut ev = Evidence::runner("gitlab");
        ev.env = Some(BTreeMap::new());
        let mut sbom = Presented {
            kind: "SARIF",
            ..Presented::default()
        };
        sbom.annotations.insert("tool", "");
        ev.materials = Some(BTreeMap::from([("sbom", sbom)]));
        ev.annotations = Some(BTreeMap::from([("team", "core")]));
        let codes: Vec<_> = check(&contract(), &ev, None)
            .iter()
            .map(Violation::code)
            .collect();
        assert_eq!(
            codes,
            [
                "missing_env",
                "material_kind",
                "annotation",
                "missing_group",
                "annotation",
                "annotation"
            ]
        );
    }

    #[test]
    fn a_pinned_image_given_by_tag_is_refused() {
        let c = parse_contract(
            "c.toml",
            "schema = \"tally.dev/contract/v1\"\nname = \"c\"\n[[materials]]\nname = \"image\"\ntype = \"CONTAINER_IMAGE\"\npinned = true\n",
            None,
        )
        .unwrap();
        let image = |tag: Option<&'static str>| {
            let mut p = Presented {
                kind: "CONTAINER_IMAGE",
                ..Presented::default()
            };
            if let Some(t) = tag {
                p.annotations.insert(IMAGE_TAG_ANNOTATION, t);
            }
            Evidence {
                materials: Some(BTreeMap::from([("image", p)])),
                ..Evidence::default()
            }
        };
        let v = check(&c, &image(Some("1.4.2")), None);
        assert_eq!(
            v.iter().map(Violation::code).collect::<Vec<_>>(),
            ["unpinned_image"]
        );
        assert!(v[0].to_string().contains("given by the tag `1.4.2`"), "{}", v[0]);
        assert!(check(&c, &image(None), None).is_empty());
    }

    #[test]
    fn satisfied() {
        let mut ev = Evidence::runner("gitlab");
        ev.env = Some(BTreeMap::from([("GIT_SHA", "abc")]));
        let sbom = Presented {
            kind: "SBOM_CYCLONEDX_JSON",
            annotations: BTreeMap::from([("tool", "syft")]),
        };
        let junit = Presented {
            kind: "JUNIT_XML",
            ..Presented::default()
        };
        ev.materials = Some(BTreeMap::from([("sbom", sbom), ("junit", junit)]));
        ev.annotations = Some(BTreeMap::from([("team", "payments"), ("ticket", "T-1")]));
        assert_eq!(check(&contract(), &ev, None), vec![]);
    }

    #[test]
    fn fixed_annotations_are_filled_and_guarded() {
        let c = contract();
        let (merged, missing) = fill_annotations(&c.annotations, &BTreeMap::new()).unwrap();
        assert_eq!(merged.get("team").map(String::as_str), Some("payments"));
        assert_eq!(missing, ["ticket"]);
        let wrong = BTreeMap::from([("team".to_owned(), "core".to_owned())]);
        assert!(fill_annotations(&c.annotations, &wrong).is_err());
    }
}
