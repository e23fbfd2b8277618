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

/// The tag a CONTAINER_IMAGE was given by, when it was resolved in its
/// registry (absent for an image given by digest).
pub const IMAGE_TAG_ANNOTATION: &str = "tally.material.image.tag";

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
            "name": format!("tally.contract/{}", state.contract.revision.name),
            "digest": { "gitBlob": state.contract.revision.blob },
        }));
    }
    // The builder is the kind of CI that ran the pipeline (a stable identity
    // a verifier can pin); this run's link is in internalParameters.runner.url.
    let builder_id = format!("{BUILDER_PREFIX}{}", state.runner.kind);
    let mut external = json!({
        "workflow": state.workflow,
        "project": state.project,
        "version": state.version,
        "contract": state.contract.revision,
        "annotations": annotations,
    });
    if !state.contract.pinned_at.is_empty() {
        external["contractsCommit"] = json!(state.contract.pinned_at);
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
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

/// A tally statement's `runDetails.builder.id`, before the runner type.
pub const BUILDER_PREFIX: &str = "https://tally.dev/runner/";

/// The deepest nesting of arrays and objects a statement may have. tally's
/// own statements nest 6 levels; in-toto predicates rarely exceed 20.
pub const MAX_DEPTH: usize = 64;

/// Refuses JSON text nesting deeper than [`MAX_DEPTH`]: one pass over the
/// bytes, outside strings (a malformed text is left to the parser).
fn check_depth(payload: &[u8]) -> Result<(), serde_json::Error> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in payload.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(<serde_json::Error as serde::de::Error>::custom(format!(
                        "the statement nests arrays and objects deeper than {MAX_DEPTH} levels (at byte {i})"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A string as the payload has it: borrowed unless it holds escapes.
pub type Text<'a> = std::borrow::Cow<'a, str>;

/// The parts of a statement tally checks (server intake, `tally verify`,
/// `tally attestation verify`), borrowed from the payload.
///
/// Parsing a whole `serde_json::Value` allocated a string per key and a map
/// per object: ~4 µs a statement, and more under the allocator contention
/// of a busy server (BENCHMARKS.md, intake). Fields a statement leaves out
/// are empty. Objects and arrays must have their JSON type (a parse error
/// names the line and column); leaf values of another type than tally
/// reads (a number as an annotation, say) read as absent, as the in-toto
/// resource descriptor allows any JSON value there.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct View<'a> {
    /// `_type`.
    #[serde(rename = "_type", borrow)]
    pub statement_type: Leaf<'a>,
    /// `predicateType`.
    #[serde(rename = "predicateType", borrow)]
    pub predicate_type: Leaf<'a>,
    /// `subject`.
    #[serde(borrow)]
    pub subject: Vec<Descriptor<'a>>,
    /// `predicate`.
    #[serde(borrow)]
    pub predicate: Predicate<'a>,
}

/// An in-toto resource descriptor, as far as tally reads it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Descriptor<'a> {
    /// `name`.
    #[serde(borrow)]
    pub name: Leaf<'a>,
    /// `digest`: algorithm → hex.
    #[serde(borrow)]
    pub digest: Pairs<'a>,
    /// `uri` (`oci://…` for a container image).
    #[serde(borrow)]
    pub uri: Leaf<'a>,
    /// `annotations`.
    #[serde(borrow)]
    pub annotations: Pairs<'a>,
}

/// SLSA Provenance v1, as far as tally reads it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Predicate<'a> {
    /// `buildDefinition`.
    #[serde(borrow)]
    pub build_definition: BuildDefinition<'a>,
    /// `runDetails`.
    #[serde(borrow)]
    pub run_details: RunDetails<'a>,
}

/// `predicate.buildDefinition`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BuildDefinition<'a> {
    /// `buildType`.
    #[serde(borrow)]
    pub build_type: Leaf<'a>,
    /// `externalParameters`.
    #[serde(borrow)]
    pub external_parameters: External<'a>,
    /// `internalParameters`.
    #[serde(borrow)]
    pub internal_parameters: Internal<'a>,
    /// `resolvedDependencies`: the source checkout (`git+<url>@<ref>`,
    /// `gitCommit` digest).
    #[serde(borrow)]
    pub resolved_dependencies: Vec<Descriptor<'a>>,
}

/// tally's `externalParameters` (SPEC.md §11.5).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct External<'a> {
    /// The workflow.
    #[serde(borrow)]
    pub workflow: Leaf<'a>,
    /// The project.
    #[serde(borrow)]
    pub project: Leaf<'a>,
    /// The contract revision it was crafted against.
    #[serde(borrow)]
    pub contract: ContractParams<'a>,
    /// Attestation-level annotations.
    #[serde(borrow)]
    pub annotations: Pairs<'a>,
    /// The contracts repository's commit the run was pinned at.
    #[serde(rename = "contractsCommit", borrow)]
    pub contracts_commit: Leaf<'a>,
}

/// `externalParameters.contract`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ContractParams<'a> {
    /// Its name.
    #[serde(borrow)]
    pub name: Leaf<'a>,
    /// The commit.
    #[serde(borrow)]
    pub commit: Leaf<'a>,
    /// The blob.
    #[serde(borrow)]
    pub blob: Leaf<'a>,
}

/// tally's `internalParameters` (SPEC.md §11.5).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Internal<'a> {
    /// Crafted without a server.
    pub dry_run: Flag,
    /// The runner.
    #[serde(borrow)]
    pub runner: RunnerParams<'a>,
    /// The recorded environment.
    #[serde(borrow)]
    pub env: Pairs<'a>,
}

/// `internalParameters.runner`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RunnerParams<'a> {
    /// The runner type.
    #[serde(rename = "type", borrow)]
    pub kind: Leaf<'a>,
    /// The runner's run (or job) id.
    #[serde(borrow)]
    pub run_id: Leaf<'a>,
    /// A link to the run.
    #[serde(borrow)]
    pub url: Leaf<'a>,
    /// The commit the runner says it built.
    #[serde(borrow)]
    pub commit: Leaf<'a>,
    /// The branch or tag.
    #[serde(borrow)]
    pub reference: Leaf<'a>,
    /// The runner's recorded variables.
    #[serde(borrow)]
    pub env: Pairs<'a>,
}

/// `predicate.runDetails`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RunDetails<'a> {
    /// `builder`.
    #[serde(borrow)]
    pub builder: Builder<'a>,
    /// `metadata`.
    #[serde(borrow)]
    pub metadata: Metadata<'a>,
    /// `byproducts`: the materials that are not subjects.
    #[serde(borrow)]
    pub byproducts: Vec<Descriptor<'a>>,
}

/// `predicate.runDetails.builder`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Builder<'a> {
    /// `id`: `https://tally.dev/runner/<type>` in tally's statements.
    #[serde(borrow)]
    pub id: Leaf<'a>,
}

/// `predicate.runDetails.metadata`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Metadata<'a> {
    /// The run id.
    #[serde(borrow)]
    pub invocation_id: Leaf<'a>,
}

impl<'a> View<'a> {
    /// Reads the parts tally checks from a statement's JSON.
    ///
    /// A payload nesting arrays and objects deeper than [`MAX_DEPTH`]
    /// anywhere — also inside fields tally does not read — is refused, so
    /// every reader (intake, `tally verify`, `tally attestation verify`, a
    /// `serde_json::Value` with its recursion limit of 128) accepts the same
    /// statements.
    pub fn parse(payload: &'a [u8]) -> Result<Self, serde_json::Error> {
        check_depth(payload)?;
        serde_json::from_slice(payload)
    }

    /// Subjects, then byproducts, with their role in the search index.
    pub fn descriptors(&self) -> impl Iterator<Item = (&Descriptor<'a>, &'static str)> {
        let subjects = self.subject.iter().map(|d| (d, "subject"));
        let by = self
            .predicate
            .run_details
            .byproducts
            .iter()
            .map(|d| (d, "material"));
        subjects.chain(by)
    }

    /// `externalParameters`.
    pub fn external(&self) -> &External<'a> {
        &self.predicate.build_definition.external_parameters
    }

    /// `internalParameters`.
    pub fn internal(&self) -> &Internal<'a> {
        &self.predicate.build_definition.internal_parameters
    }

    /// What makes this statement not a tally attestation (empty: it is one).
    pub fn problems(&self) -> Vec<String> {
        let st = self;
        let mut p = Vec::new();
        let shown = |l: &Leaf<'_>| match l.get() {
            Some(t) => format!("{t:?}"),
            None => "missing (or not a string)".to_owned(),
        };
        if st.statement_type.get() != Some(STATEMENT_TYPE) {
            p.push(format!(
                "_type is {}, not {}",
                shown(&st.statement_type),
                STATEMENT_TYPE
            ));
        }
        if st.predicate_type.get() != Some(PREDICATE_TYPE) {
            p.push(format!(
                "predicateType is {}, not {}",
                shown(&st.predicate_type),
                PREDICATE_TYPE
            ));
        }
        if st.predicate.build_definition.build_type.get() != Some(BUILD_TYPE) {
            p.push(format!("buildType is not {}", BUILD_TYPE));
        }
        if st.subject.is_empty() {
            p.push("no subjects".into());
        }
        for x in &st.subject {
            if x.digest.is_empty() {
                p.push(format!("subject {} has no digest", shown(&x.name)));
            }
        }
        p
    }

    /// The run id (`runDetails.metadata.invocationId`).
    pub fn invocation_id(&self) -> &str {
        self.predicate.run_details.metadata.invocation_id.as_str()
    }
}

/// A JSON object's members in document order, values read as [`Leaf`]s.
#[derive(Debug, Default)]
pub struct Pairs<'a>(Vec<(Text<'a>, Leaf<'a>)>);

impl<'a> Pairs<'a> {
    /// The string value of `key` (the last, as JSON objects read).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.get())
    }
    /// Every member whose value is a string, each key once (its last
    /// value), in the order of those last members. Linear in the members:
    /// an object of many members is untrusted input.
    pub fn strings(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut seen = std::collections::HashSet::with_capacity(self.0.len());
        let mut last: Vec<&(Text<'a>, Leaf<'a>)> =
            self.0.iter().rev().filter(|(k, _)| seen.insert(k)).collect();
        last.reverse();
        last.into_iter().filter_map(|(k, v)| Some((k.as_ref(), v.get()?)))
    }
    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}

struct PairsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for PairsVisitor<'a> {
    type Value = Pairs<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Pairs<'a>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some((k, v)) = map.next_entry::<Leaf<'a>, Leaf<'a>>()? {
            out.push((k.0.unwrap_or_default(), v));
        }
        Ok(Pairs(out))
    }
}

/// A JSON value read as a string when it is one, and as absent otherwise
/// (the other value is skipped without being stored).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leaf<'a>(Option<Text<'a>>);

impl<'a> Leaf<'a> {
    /// The string, if the value was one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// The string, or "" when absent or not a string.
    pub fn as_str(&self) -> &str {
        self.get().unwrap_or_default()
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Leaf<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Leaf(
            match d.deserialize_any(AnyVisitor(std::marker::PhantomData))? {
                Seen::Str(t) => Some(t),
                Seen::Bool(_) | Seen::Other => None,
            },
        ))
    }
}

/// `true` only for the JSON value `true`; any other value reads as false.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Flag(matches!(
            d.deserialize_any(AnyVisitor(std::marker::PhantomData))?,
            Seen::Bool(true)
        )))
    }
}

/// What a leaf held: a string, a boolean, or anything else (skipped
/// without being stored).
enum Seen<'a> {
    Str(Text<'a>),
    Bool(bool),
    Other,
}

struct AnyVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for AnyVisitor<'a> {
    type Value = Seen<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Seen::Str(Text::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Seen::Str(Text::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Seen::Str(Text::Owned(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Seen::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Seen::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Seen::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Seen::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Seen::Other)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Seen::Other)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Seen::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Seen::Other)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn nesting_is_bounded_for_every_reader() {
        let nested = |n: usize| {
            format!(
                r#"{{"_type":"x","unknown":{}1{},"s":"[[[[{{{{"}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        // The statement object itself is one level.
        assert!(View::parse(nested(MAX_DEPTH - 1).as_bytes()).is_ok());
        let e = View::parse(nested(MAX_DEPTH).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("deeper than 64"), "{e}");
        assert!(View::parse(nested(100_000).as_bytes()).is_err());
        // What View accepts, a serde_json::Value reads too.
        let ok = nested(MAX_DEPTH - 1);
        assert!(serde_json::from_str::<serde_json::Value>(&ok).is_ok());
    }
    use super::*;

    #[test]
    fn view_reads_what_tally_checks_and_skips_the_rest() {
        let json = br#"{
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": [
                {"name": "app", "digest": {"sha256": "AB", "sha512": 7, "sha256": "cd"},
                 "annotations": {"tally.material.kind": "ARTIFACT", "n": 1, "o": {"x": [1]}}},
                {"name": 5, "digest": {}}
            ],
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://tally.dev/attestation/v1",
                    "externalParameters": {"workflow": "w\u00e9", "contract": {"name": "c"},
                                           "annotations": {"team": "x"}},
                    "internalParameters": {"dryRun": "yes", "runner": {"type": "github-action"},
                                           "env": {"CI": "true", "CI": null}},
                    "resolvedDependencies": [{"uri": "git+x"}]
                },
                "runDetails": {"metadata": {"invocationId": "run-1"}, "byproducts": [{"name": "sbom"}]}
            }
        }"#;
        let v = View::parse(json).unwrap();
        assert_eq!(v.statement_type.get(), Some(STATEMENT_TYPE));
        assert_eq!(v.subject.len(), 2);
        let app = &v.subject[0];
        // Duplicate members: the last one counts, as with any JSON object reader.
        assert_eq!(app.digest.get("sha256"), Some("cd"));
        assert_eq!(app.digest.strings().collect::<Vec<_>>(), vec![("sha256", "cd")]);
        assert_eq!(app.annotations.get("n"), None);
        assert_eq!(app.annotations.get("tally.material.kind"), Some("ARTIFACT"));
        assert_eq!(v.subject[1].name.get(), None);
        // An escaped string is decoded (owned, not borrowed).
        assert_eq!(v.external().workflow.as_str(), "wé");
        assert_eq!(v.external().contract.name.as_str(), "c");
        assert_eq!(v.external().contract.commit.get(), None);
        assert_eq!(v.external().annotations.get("team"), Some("x"));
        // Only the JSON value `true` is a dry run.
        assert!(!v.internal().dry_run.0);
        let dry =
            View::parse(br#"{"predicate": {"buildDefinition": {"internalParameters": {"dryRun": true}}}}"#);
        assert!(dry.unwrap().internal().dry_run.0);
        assert_eq!(v.internal().runner.kind.as_str(), "github-action");
        assert_eq!(v.internal().env.get("CI"), None);
        assert_eq!(v.invocation_id(), "run-1");
        let roles: Vec<_> = v.descriptors().map(|(d, r)| (d.name.as_str(), r)).collect();
        assert_eq!(
            roles,
            vec![("app", "subject"), ("", "subject"), ("sbom", "material")]
        );
    }

    #[test]
    fn many_members_are_deduplicated_last_value_winning() {
        let n = 200_000;
        let mut json = String::from(r#"{"subject": [{"name": "x", "annotations": {"#);
        for i in 0..n {
            json.push_str(&format!("\"k{}\": \"v{i}\",", i % (n / 2)));
        }
        json.push_str(r#""end": 1}}]}"#);
        let v = View::parse(json.as_bytes()).unwrap();
        // (Quadratic deduplication would make this ~10^10 comparisons.)
        let all: Vec<_> = v.subject[0].annotations.strings().collect();
        assert_eq!(all.len(), n / 2);
        assert_eq!(all[0], ("k0", format!("v{}", n / 2).as_str()));
        assert_eq!(
            v.subject[0].annotations.get("k7"),
            Some(format!("v{}", n / 2 + 7).as_str())
        );
    }

    #[test]
    fn view_rejects_containers_of_the_wrong_type() {
        for bad in [
            &br#"{"subject": {"name": "x"}}"#[..],
            br#"{"subject": [{"digest": ["sha256", "ab"]}]}"#,
            br#"{"predicate": "yes"}"#,
            br#"{"predicate": {"runDetails": {"byproducts": 3}}}"#,
            br#"{"_type": "x""#,
            br#"{"subject": [], "subject": []}"#,
        ] {
            let e = View::parse(bad).unwrap_err();
            assert!(e.to_string().contains("line 1"), "{e}");
        }
        // serde reads a struct from an array too; such a "statement" has no
        // `_type`, so the checks above it reject it.
        assert_eq!(View::parse(b"[1, 2]").unwrap().statement_type.get(), None);
        // An empty object is a statement with nothing in it.
        let v = View::parse(b"{}").unwrap();
        assert!(v.subject.is_empty() && v.invocation_id().is_empty());
    }
}
