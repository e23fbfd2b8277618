//! Semantic diff of contracts and workflows: what changed, in words, and
//! whether it is *breaking* — whether a pipeline that passed before may fail.

use serde::Serialize;

use crate::contract::{Annotation, Contract, Material, PolicyRef, Workflow};

/// One semantic change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The contract (or `workflows.toml`) it is in.
    pub subject: String,
    /// What changed, in words.
    pub change: String,
    /// Whether a pipeline that passed before may now fail.
    pub breaking: bool,
}

fn push(out: &mut Vec<Change>, subject: &str, change: String, breaking: bool) {
    out.push(Change {
        subject: subject.to_owned(),
        change,
        breaking,
    });
}

/// A material a pipeline must provide on its own (not optional, not in a group).
fn required(m: &Material) -> bool {
    !m.optional && m.group.is_none()
}

fn annotation_changes(
    out: &mut Vec<Change>,
    subject: &str,
    owner: &str,
    old: &[Annotation],
    new: &[Annotation],
) {
    for a in new {
        match old.iter().find(|o| o.name == a.name) {
            None if a.value.is_empty() => push(
                out,
                subject,
                format!("{owner} annotation `{}` added; pipelines must supply it", a.name),
                true,
            ),
            None => push(
                out,
                subject,
                format!("{owner} annotation `{}` added with value `{}`", a.name, a.value),
                false,
            ),
            Some(o) if o.value != a.value && a.value.is_empty() => push(
                out,
                subject,
                format!(
                    "{owner} annotation `{}` no longer has a fixed value; pipelines must supply it",
                    a.name
                ),
                true,
            ),
            Some(o) if o.value != a.value => push(
                out,
                subject,
                format!(
                    "{owner} annotation `{}` changed from `{}` to `{}`",
                    a.name, o.value, a.value
                ),
                false,
            ),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|a| a.name == o.name) {
            push(
                out,
                subject,
                format!("{owner} annotation `{}` removed", o.name),
                false,
            );
        }
    }
}

/// Policies (or policy groups) added or changed are breaking; removed are not.
fn policy_changes(out: &mut Vec<Change>, subject: &str, what: &str, old: &[PolicyRef], new: &[PolicyRef]) {
    for p in new {
        match old.iter().find(|o| o.reference == p.reference) {
            None => push(out, subject, format!("{what} `{}` added", p.reference), true),
            Some(o) if o != p => push(
                out,
                subject,
                format!("{what} `{}` changed its materials or arguments", p.reference),
                true,
            ),
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|p| p.reference == o.reference) {
            push(out, subject, format!("{what} `{}` removed", o.reference), false);
        }
    }
}

/// The changes from `old` to `new` of one contract.
pub fn diff_contract(old: &Contract, new: &Contract) -> Vec<Change> {
    let s = new.name.as_str();
    let mut out = Vec::new();
    if old.runner != new.runner {
        let breaking = new.runner != "any";
        push(
            &mut out,
            s,
            format!("runner changed from {} to {}", old.runner, new.runner),
            breaking,
        );
    }
    for e in &new.env {
        if !old.env.contains(e) {
            push(
                &mut out,
                s,
                format!("env var `{e}` added; pipelines must set it"),
                true,
            );
        }
    }
    for e in &old.env {
        if !new.env.contains(e) {
            push(&mut out, s, format!("env var `{e}` removed"), false);
        }
    }
    annotation_changes(&mut out, s, "attestation", &old.annotations, &new.annotations);
    for m in &new.materials {
        let Some(o) = old.materials.iter().find(|o| o.name == m.name) else {
            let (what, breaking) = match &m.group {
                Some(g)
                    if old
                        .materials
                        .iter()
                        .any(|o| o.group.as_deref() == Some(g.as_str())) =>
                {
                    (format!("added to existing group `{g}`"), false)
                }
                Some(g) => (
                    format!("added in new group `{g}`, which needs at least one member"),
                    true,
                ),
                None if m.optional => ("added as optional".to_owned(), false),
                None => ("added as required".to_owned(), true),
            };
            push(
                &mut out,
                s,
                format!("material `{}` ({}) {what}", m.name, m.kind),
                breaking,
            );
            continue;
        };
        let n = &m.name;
        if o.kind != m.kind {
            push(
                &mut out,
                s,
                format!("material `{n}` changed type from {} to {}", o.kind, m.kind),
                true,
            );
        }
        if !required(o) && required(m) {
            push(&mut out, s, format!("material `{n}` became required"), true);
        } else if required(o) && !required(m) {
            let how = match &m.group {
                Some(g) => format!("joined group `{g}`"),
                None => "became optional".to_owned(),
            };
            push(&mut out, s, format!("material `{n}` {how}"), false);
        } else if o.group != m.group && m.group.is_some() {
            push(
                &mut out,
                s,
                format!(
                    "material `{n}` moved from group `{}` to `{}`",
                    o.group.as_deref().unwrap_or("-"),
                    m.group.as_deref().unwrap_or("-")
                ),
                true,
            );
        } else if o.optional != m.optional {
            push(
                &mut out,
                s,
                format!(
                    "material `{n}` optional flag changed (it stays in group `{}`)",
                    m.group.as_deref().unwrap_or("-")
                ),
                false,
            );
        }
        if o.output != m.output {
            let what = if m.output {
                "now becomes a subject of the attestation"
            } else {
                "is no longer a subject of the attestation"
            };
            push(&mut out, s, format!("material `{n}` {what}"), false);
        }
        if o.skip_upload != m.skip_upload {
            let what = if m.skip_upload {
                "is no longer uploaded (digest only)"
            } else {
                "is now uploaded"
            };
            push(&mut out, s, format!("material `{n}` {what}"), false);
        }
        if o.pinned != m.pinned {
            if m.pinned {
                push(
                    &mut out,
                    s,
                    format!("material `{n}` must now be given by digest (pinned)"),
                    true,
                );
            } else {
                push(
                    &mut out,
                    s,
                    format!("material `{n}` may now be given by tag"),
                    false,
                );
            }
        }
        annotation_changes(
            &mut out,
            s,
            &format!("material `{n}`"),
            &o.annotations,
            &m.annotations,
        );
    }
    for o in &old.materials {
        if !new.materials.iter().any(|m| m.name == o.name) {
            push(
                &mut out,
                s,
                format!("material `{}` ({}) removed", o.name, o.kind),
                false,
            );
        }
    }
    policy_changes(&mut out, s, "policy", &old.policies, &new.policies);
    policy_changes(
        &mut out,
        s,
        "policy group",
        &old.policy_groups,
        &new.policy_groups,
    );
    if old.description != new.description {
        push(&mut out, s, "description changed".into(), false);
    }
    out
}

/// The changes between two sets of contracts (by name).
pub fn diff_contracts(old: &[Contract], new: &[Contract]) -> Vec<Change> {
    let mut out = Vec::new();
    for n in new {
        match old.iter().find(|o| o.name == n.name) {
            Some(o) => out.extend(diff_contract(o, n)),
            None => push(&mut out, &n.name, "contract added".into(), false),
        }
    }
    for o in old {
        if !new.iter().any(|n| n.name == o.name) {
            push(
                &mut out,
                &o.name,
                "contract removed; workflows using it can no longer push".into(),
                true,
            );
        }
    }
    out
}

/// The changes between two versions of `workflows.toml`.
pub fn diff_workflows(old: &[Workflow], new: &[Workflow]) -> Vec<Change> {
    let s = "workflows.toml";
    let mut out = Vec::new();
    for w in new {
        match old.iter().find(|o| o.name == w.name) {
            None => push(
                &mut out,
                s,
                format!("workflow `{}` added (contract `{}`)", w.name, w.contract),
                false,
            ),
            Some(o) => {
                // (changed, what, breaking)
                let changes = [
                    (
                        o.contract != w.contract,
                        format!(
                            "workflow `{}` now uses contract `{}` instead of `{}`",
                            w.name, w.contract, o.contract
                        ),
                        true,
                    ),
                    (
                        o.project != w.project,
                        format!(
                            "workflow `{}` moved from project `{}` to `{}`",
                            w.name, o.project, w.project
                        ),
                        false,
                    ),
                    (
                        o.owners != w.owners,
                        format!("workflow `{}` owners changed to {}", w.name, w.owners.join(", ")),
                        false,
                    ),
                ];
                for (_, what, breaking) in changes.into_iter().filter(|c| c.0) {
                    push(&mut out, s, what, breaking);
                }
                for i in w.identities.iter().filter(|i| !o.identities.contains(i)) {
                    push(
                        &mut out,
                        s,
                        format!("workflow `{}` now trusts CI identity {}", w.name, describe(i)),
                        false,
                    );
                }
                for i in o.identities.iter().filter(|i| !w.identities.contains(i)) {
                    push(
                        &mut out,
                        s,
                        format!(
                            "workflow `{}` no longer trusts CI identity {}; its pipelines need another",
                            w.name,
                            describe(i)
                        ),
                        true,
                    );
                }
            }
        }
    }
    for o in old {
        if !new.iter().any(|w| w.name == o.name) {
            push(
                &mut out,
                s,
                format!("workflow `{}` removed; its pipelines can no longer push", o.name),
                true,
            );
        }
    }
    out
}

/// One line naming a CI identity: issuer, subject and claims.
fn describe(i: &crate::contract::CiIdentity) -> String {
    let subject = match (&i.subject, &i.subject_pattern) {
        (Some(s), _) => format!("sub `{s}`"),
        (None, Some(p)) => format!("sub ~ `{p}`"),
        (None, None) => "any sub".into(),
    };
    let claims: Vec<String> = i
        .claims
        .iter()
        .map(|(k, v)| format!("{k} ∈ [{}]", v.join(", ")))
        .collect();
    let mut out = format!("{} {subject} (aud `{}`)", i.issuer, i.audience);
    if !claims.is_empty() {
        out.push_str(&format!(" with {}", claims.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_contract;

    fn c(src: &str) -> Contract {
        parse_contract(
            "t.toml",
            &format!("schema = \"tally.dev/contract/v1\"\nname = \"t\"\n{src}"),
            Some("t"),
        )
        .unwrap()
    }

    #[test]
    fn breaking_and_not() {
        let old = c("runner = \"any\"\nenv = [\"A\"]\n[[materials]]\nname = \"sbom\"\ntype = \"SARIF\"\noptional = true\n");
        let new = c(
            "runner = \"github-actions\"\nenv = [\"B\"]\n[[materials]]\nname = \"sbom\"\ntype = \"SARIF\"\n",
        );
        let d = diff_contract(&old, &new);
        let text: Vec<(String, bool)> = d.into_iter().map(|c| (c.change, c.breaking)).collect();
        assert_eq!(
            text,
            vec![
                ("runner changed from any to github-actions".to_owned(), true),
                ("env var `B` added; pipelines must set it".to_owned(), true),
                ("env var `A` removed".to_owned(), false),
                ("material `sbom` became required".to_owned(), true),
            ]
        );
        assert!(diff_contract(&new, &new).is_empty());
    }

    #[test]
    fn pinning_an_image_breaks_pipelines_that_give_a_tag() {
        let tag = c("[[materials]]\nname = \"image\"\ntype = \"CONTAINER_IMAGE\"\n");
        let pinned = c("[[materials]]\nname = \"image\"\ntype = \"CONTAINER_IMAGE\"\npinned = true\n");
        let d: Vec<(String, bool)> = diff_contract(&tag, &pinned)
            .into_iter()
            .map(|c| (c.change, c.breaking))
            .collect();
        assert_eq!(
            d,
            vec![(
                "material `image` must now be given by digest (pinned)".to_owned(),
                true
            )]
        );
        let d: Vec<(String, bool)> = diff_contract(&pinned, &tag)
            .into_iter()
            .map(|c| (c.change, c.breaking))
            .collect();
        assert_eq!(
            d,
            vec![("material `image` may now be given by tag".to_owned(), false)]
        );
        // Only images can be pinned.
        let e = parse_contract(
            "t.toml",
            "schema = \"tally.dev/contract/v1\"\nname = \"t\"\n[[materials]]\nname = \"sbom\"\ntype = \"SARIF\"\npinned = true\n",
            Some("t"),
        )
        .unwrap_err();
        assert!(
            format!("{e:?}").contains("applies to CONTAINER_IMAGE materials only"),
            "{e:?}"
        );
    }
}
