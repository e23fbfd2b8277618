//! The record of a policy evaluation, and the control plane's verdict on an
//! attestation: a SLSA Verification Summary Attestation (SPEC.md §13.6).
//!
//! Every accepted attestation whose contract has policies gets a VSA,
//! signed by the control plane's verifier key and bound into its log entry
//! (`verdict sha256:<digest>`): which policies (path and git blob id at the
//! pinned commit), on which material digests, with which arguments, the
//! verdicts and messages, and the exception that let a blocked push
//! through, if one did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{engine::Outcome, Bound};

/// The VSA's predicate type.
pub const VSA_PREDICATE: &str = "https://slsa.dev/verification_summary/v1";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Where a tally statement carries the crafting CLI's own evaluations of
/// its materials (`predicate.buildDefinition.internalParameters`).
pub const CLIENT_EVALUATIONS: &str = "policyEvaluations";
/// The DSSE payload type of a VSA.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Who evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evaluator {
    /// The control plane, on bytes it holds (authoritative).
    ControlPlane,
    /// The crafting CLI, on a material the control plane never received
    /// (`skip_upload`): recorded as the client's claim.
    Client,
}

/// One policy evaluated on one material (or on the statement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The policy's name.
    pub policy: String,
    /// Its file in the contracts repository.
    pub path: String,
    /// That file's git blob id at the pinned commit.
    pub blob: String,
    /// The group it came through (`name@blob`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The material (`None`: the attestation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    /// The evaluated bytes' digest (`sha256:<hex>`).
    pub digest: String,
    /// Its arguments.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// Whether a failure refuses the push.
    pub blocking: bool,
    /// Who evaluated.
    pub evaluated_by: Evaluator,
    /// Whether the policy did not apply.
    #[serde(default)]
    pub skipped: bool,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub skip_reason: String,
    /// Whether the policy asked to be ignored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore: bool,
    /// Its violation messages, sorted.
    #[serde(default)]
    pub violations: Vec<String>,
    /// Why it could not be evaluated (budget, runtime error): a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Evaluation {
    pub(super) fn new(
        b: &Bound,
        material: Option<(&str, &str)>,
        by: Evaluator,
        result: Result<Outcome, String>,
    ) -> Self {
        let (outcome, error) = match result {
            Ok(o) => (o, None),
            Err(e) => (Outcome::default(), Some(e)),
        };
        Evaluation {
            policy: b.name.clone(),
            path: b.path.clone(),
            blob: b.blob.clone(),
            group: b.group.clone(),
            material: material.map(|(n, _)| n.to_owned()),
            digest: material.map(|(_, d)| d.to_owned()).unwrap_or_default(),
            args: b.args.clone(),
            blocking: b.blocking,
            evaluated_by: by,
            skipped: outcome.skipped,
            skip_reason: outcome.skip_reason,
            ignore: outcome.ignore,
            violations: outcome.violations,
            error,
        }
    }

    pub(super) fn with_digest(mut self, d: &str) -> Self {
        d.clone_into(&mut self.digest);
        self
    }

    /// Whether it failed: violations or an error, unless skipped or ignored.
    pub fn failed(&self) -> bool {
        self.error.is_some() || (!self.skipped && !self.ignore && !self.violations.is_empty())
    }

    /// The same evaluation with its verdict and provenance, for comparing a
    /// re-check with the record (the material, digest and arguments must
    /// match; messages are compared as sets).
    pub fn same_verdict(&self, other: &Evaluation) -> bool {
        self.policy == other.policy
            && self.blob == other.blob
            && self.material == other.material
            && self.digest == other.digest
            && self.args == other.args
            && self.skipped == other.skipped
            && self.ignore == other.ignore
            && self.violations == other.violations
            && self.error.is_some() == other.error.is_some()
    }

    /// One line for a person: `✓`/`✗`/`–`, the policy, the material, the
    /// verdict (the violations themselves are listed by the caller).
    pub fn summary(&self) -> String {
        let on = match &self.material {
            Some(m) => format!("on material `{m}`"),
            None => "on the attestation".to_owned(),
        };
        let gate = if self.blocking { "blocking" } else { "advisory" };
        if let Some(e) = &self.error {
            format!("✗ policy `{}` ({gate}) {on}: error: {e}", self.policy)
        } else if self.skipped {
            format!(
                "– policy `{}` ({gate}) {on}: skipped ({})",
                self.policy, self.skip_reason
            )
        } else if self.violations.is_empty() {
            format!("✓ policy `{}` ({gate}) {on}: passed", self.policy)
        } else {
            format!(
                "✗ policy `{}` ({gate}) {on}: {} violation(s)",
                self.policy,
                self.violations.len()
            )
        }
    }
}

/// An operator's exception for one run: lets blocking violations through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    /// Who granted it (the admin token's id).
    pub granted_by: String,
    /// Why.
    pub reason: String,
    /// When it was granted (RFC 3339).
    pub granted_at: String,
    /// Until when it may be used (RFC 3339).
    pub until: String,
}

/// What the VSA's predicate says beyond the SLSA fields (tally's extension,
/// SPEC.md §13.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    /// `{id}` of the control plane (the log's origin).
    pub verifier: Verifier,
    /// When the control plane decided (not an input of any policy).
    pub time_verified: String,
    /// `tally:<project>/<workflow>/<run>`.
    pub resource_uri: String,
    /// The contract revision, as a git URI and blob digest.
    pub policy: PolicyRef,
    /// The attestation verified.
    pub input_attestations: Vec<InputAttestation>,
    /// PASSED, or FAILED (accepted only through an exception).
    pub verification_result: String,
    /// SLSA Build levels verified: `SLSA_BUILD_LEVEL_3` or `_2` when a CI
    /// identity vouched for the provenance (`ci_identity`), else none.
    pub verified_levels: Vec<String>,
    /// The commit of the contracts repository the policies were read at.
    pub policies_commit: String,
    /// Every evaluation.
    pub policy_evaluations: Vec<Evaluation>,
    /// The exception used, if the result is FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<Exception>,
    /// What a verified CI ID token vouched for in the statement's
    /// provenance (SPEC.md §15.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_identity: Option<crate::identity::provenance::Verification>,
}

/// `verifier` of a VSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifier {
    /// The control plane's identity.
    pub id: String,
}

/// `policy` of a VSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// `git+contracts:<name>.toml@<commit>`.
    pub uri: String,
    /// `{"gitBlob": "<contract blob id>"}`.
    pub digest: BTreeMap<String, String>,
}

/// `inputAttestations[]` of a VSA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAttestation {
    /// Where it is (`tally:envelope`).
    pub uri: String,
    /// `{"sha256": "<envelope digest>"}`.
    pub digest: BTreeMap<String, String>,
}

/// A VSA statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vsa {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub kind: String,
    /// The attestation's envelope, by digest.
    pub subject: Vec<Subject>,
    /// [`VSA_PREDICATE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    pub predicate: Predicate,
}

/// A statement subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Its name.
    pub name: String,
    /// Its digests.
    pub digest: BTreeMap<String, String>,
}

impl Vsa {
    /// Parses and checks the VSA shape tally writes.
    pub fn parse(bytes: &[u8]) -> Result<Vsa, String> {
        let v: Vsa = serde_json::from_slice(bytes).map_err(|e| format!("not a tally VSA: {e}"))?;
        if v.kind != STATEMENT_TYPE || v.predicate_type != VSA_PREDICATE {
            return Err("not an in-toto statement with a SLSA verification summary".into());
        }
        if !matches!(v.predicate.verification_result.as_str(), "PASSED" | "FAILED") {
            return Err(format!(
                "verificationResult `{}` is neither PASSED nor FAILED",
                v.predicate.verification_result
            ));
        }
        Ok(v)
    }

    /// The envelope digest (hex) it is about.
    pub fn envelope_digest(&self) -> Option<&str> {
        self.subject.first()?.digest.get("sha256").map(String::as_str)
    }
}

/// PASSED unless a blocking evaluation failed.
pub fn result_of(evals: &[Evaluation]) -> &'static str {
    if evals.iter().any(|e| e.blocking && e.failed()) {
        "FAILED"
    } else {
        "PASSED"
    }
}

/// What an offline re-check of a recorded verdict found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recheck {
    /// Evaluations re-computed with the same verdict.
    pub agree: usize,
    /// Evaluations whose recorded verdict differs from the re-computed one
    /// (or that one side has and the other lacks), in words.
    pub disagree: Vec<String>,
    /// Evaluations not re-computed (their material was not given).
    pub unchecked: Vec<String>,
}

fn key(e: &Evaluation) -> (String, String, Option<String>, String) {
    (
        e.policy.clone(),
        e.path.clone(),
        e.material.clone(),
        e.digest.clone(),
    )
}

/// Compares the `recorded` evaluations with the `recomputed` ones; a
/// recorded evaluation of a material in `not_given` is only listed.
pub fn compare(recorded: &[Evaluation], recomputed: &[Evaluation], not_given: &[String]) -> Recheck {
    let mut out = Recheck::default();
    for r in recorded {
        let Some(c) = recomputed.iter().find(|c| key(c) == key(r)) else {
            match &r.material {
                Some(m) if not_given.contains(m) => out.unchecked.push(format!(
                    "policy `{}` on material `{m}`: the material ({}) was not given",
                    r.policy, r.digest
                )),
                _ => out.disagree.push(format!(
                    "policy `{}` ({}) on {}: recorded, but the pinned contract does not apply it there",
                    r.policy,
                    r.path,
                    r.material
                        .as_deref()
                        .map_or("the attestation".to_owned(), |m| format!("material `{m}`"))
                )),
            }
            continue;
        };
        if r.same_verdict(c) && r.blocking == c.blocking {
            out.agree += 1;
        } else {
            out.disagree.push(format!(
                "policy `{}` on {}: recorded {}, re-computed {}",
                r.policy,
                r.material
                    .as_deref()
                    .map_or("the attestation".to_owned(), |m| format!("material `{m}`")),
                describe(r),
                describe(c)
            ));
        }
    }
    for c in recomputed {
        if !recorded.iter().any(|r| key(r) == key(c)) {
            out.disagree.push(format!(
                "policy `{}` on {}: the pinned contract applies it, but the verdict does not record it",
                c.policy,
                c.material
                    .as_deref()
                    .map_or("the attestation".to_owned(), |m| format!("material `{m}`"))
            ));
        }
    }
    out
}

fn describe(e: &Evaluation) -> String {
    if let Some(err) = &e.error {
        format!("an error ({err})")
    } else if e.skipped {
        format!("skipped ({})", e.skip_reason)
    } else if e.violations.is_empty() {
        format!("passed (blob {}, args {:?})", e.blob, e.args)
    } else {
        format!(
            "{} violation(s) {:?} (blob {}, args {:?})",
            e.violations.len(),
            e.violations,
            e.blob,
            e.args
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(policy: &str, material: Option<&str>, violations: &[&str]) -> Evaluation {
        Evaluation {
            policy: policy.into(),
            path: format!("policies/{policy}.yaml"),
            blob: "b".repeat(40),
            group: None,
            material: material.map(str::to_owned),
            digest: format!("sha256:{}", "a".repeat(64)),
            args: BTreeMap::new(),
            blocking: true,
            evaluated_by: Evaluator::ControlPlane,
            skipped: false,
            skip_reason: String::new(),
            ignore: false,
            violations: violations.iter().map(|s| (*s).to_owned()).collect(),
            error: None,
        }
    }

    #[test]
    fn a_doctored_verdict_disagrees_with_the_recheck() {
        let truth = vec![
            eval("vulns", Some("sbom"), &["CVE-1 is critical"]),
            eval("builder", None, &[]),
        ];
        // The same: agrees.
        let r = compare(&truth, &truth, &[]);
        assert_eq!((r.agree, r.disagree.len()), (2, 0));
        // A violation erased from the record.
        let mut doctored = truth.clone();
        doctored[0].violations.clear();
        let r = compare(&doctored, &truth, &[]);
        assert_eq!(r.disagree.len(), 1, "{r:?}");
        assert!(r.disagree[0].contains("recorded passed"), "{r:?}");
        // A policy left out of the record, or one the contract does not apply.
        let r = compare(&truth[..1], &truth, &[]);
        assert!(r.disagree[0].contains("does not record it"), "{r:?}");
        let mut extra = truth.clone();
        extra.push(eval("invented", Some("sbom"), &[]));
        let r = compare(&extra, &truth, &[]);
        assert!(r.disagree[0].contains("does not apply it"), "{r:?}");
        // Another policy blob (a policy edited after the fact).
        let mut edited = truth.clone();
        edited[1].blob = "c".repeat(40);
        assert_eq!(compare(&edited, &truth, &[]).disagree.len(), 1);
        // A material not given is listed, not judged.
        let r = compare(&truth, &truth[1..], &["sbom".to_owned()]);
        assert_eq!((r.agree, r.unchecked.len(), r.disagree.len()), (1, 1, 0));
        assert_eq!(result_of(&truth), "FAILED");
        assert_eq!(result_of(&truth[1..]), "PASSED");
    }
}
