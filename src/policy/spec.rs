//! Policy files as SecOps write them (SPEC.md §13.1): Chainloop's
//! `kind: Policy` and `kind: PolicyGroup` YAML, or a plain `.rego`.
//!
//! Parsing only: which Rego applies to which material kind, the inputs a
//! policy declares, the policies a group attaches. Reading referenced files
//! and compiling is `policy::Plan`'s.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::attest::material::Kind;

/// The API versions read (Chainloop's current and legacy spelling).
const API_VERSIONS: &[&str] = &["workflowcontract.chainloop.dev/v1", "chainloop.dev/v1"];

/// Where a policy's Rego is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// Inline in the YAML.
    Embedded(String),
    /// A file, relative to the YAML's folder.
    Path(String),
}

/// One Rego script of a policy, for one material kind (`None`: any kind
/// the attachment selects by name, or the attestation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The kind it evaluates; `None` when the file names none.
    pub kind: Option<Kind>,
    /// Its Rego.
    pub code: Code,
}

/// A declared input (`spec.inputs[]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputSpec {
    /// Its name (`input.args.<name>`).
    pub name: String,
    /// Whether an attachment must give it.
    pub required: bool,
    /// Its value when not given (may interpolate `{{ inputs.x }}`).
    pub default: Option<String>,
}

/// A `kind: Policy` (or a plain `.rego`, which is one kind-less script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// `metadata.name` (a plain `.rego`: its file stem).
    pub name: String,
    /// Declared inputs (none: every argument passes through, as Chainloop does).
    pub inputs: Vec<InputSpec>,
    /// Its scripts, in file order.
    pub scripts: Vec<Script>,
    /// Kinds the file names that tally does not know (their scripts never run).
    pub unknown_kinds: Vec<String>,
}

impl PolicySpec {
    /// The kinds it declares (empty: none, it applies by name or to the attestation).
    pub fn kinds(&self) -> Vec<Kind> {
        self.scripts.iter().filter_map(|s| s.kind).collect()
    }
}

/// A policy attached by a group: a reference and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAttachment {
    /// `ref`: a path relative to the group file (`file://` accepted) or a pinned URL.
    pub reference: String,
    /// `with`: arguments (may interpolate the group's inputs).
    pub with: BTreeMap<String, String>,
}

/// A material a group's policies apply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMaterial {
    /// Its name (may interpolate inputs; empty: every material of `kind`).
    pub name: String,
    /// Its kind, if given.
    pub kind: Option<Kind>,
    /// The policies applied to it.
    pub policies: Vec<GroupAttachment>,
}

/// A `kind: PolicyGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// `metadata.name`.
    pub name: String,
    /// The group's inputs (bound by the contract's `with`).
    pub inputs: Vec<InputSpec>,
    /// `spec.policies.materials`.
    pub materials: Vec<GroupMaterial>,
    /// `spec.policies.attestation`.
    pub attestation: Vec<GroupAttachment>,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// A policy.
    Policy(PolicySpec),
    /// A group of policies.
    Group(GroupSpec),
}

// The YAML as written. Unknown fields are ignored (Chainloop's files carry
// annotations and descriptions tally does not use).
#[derive(Deserialize)]
struct RawDoc {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<RawMeta>,
    spec: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
struct RawMeta {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPolicySpec {
    #[serde(default)]
    policies: Vec<RawScript>,
    #[serde(default)]
    inputs: Vec<RawInput>,
    // The legacy single-script form.
    #[serde(rename = "type")]
    kind: Option<String>,
    embedded: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
struct RawScript {
    kind: Option<String>,
    embedded: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
struct RawInput {
    name: String,
    #[serde(default)]
    required: bool,
    default: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
struct RawGroupSpec {
    #[serde(default)]
    inputs: Vec<RawInput>,
    #[serde(default)]
    policies: RawGroupPolicies,
}

#[derive(Deserialize, Default)]
struct RawGroupPolicies {
    #[serde(default)]
    materials: Vec<RawGroupMaterial>,
    #[serde(default)]
    attestation: Vec<RawAttachment>,
}

#[derive(Deserialize)]
struct RawGroupMaterial {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    policies: Vec<RawAttachment>,
}

#[derive(Deserialize)]
struct RawAttachment {
    #[serde(rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, serde_norway::Value>,
}

/// Largest policy file read (YAML or Rego).
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// Parses a policy file; `path` decides the format (`.rego`: plain Rego,
/// else YAML). Errors name the file and, for YAML, line and column.
pub fn parse(path: &str, bytes: &[u8]) -> Result<Document, String> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(format!("{path}: larger than {} bytes", MAX_POLICY_BYTES));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("{path}: not UTF-8 ({e})"))?;
    // A pinned URL's format is its path's (`…/x.rego@sha256:…`).
    let named = path.rsplit_once("@sha256:").map_or(path, |(u, _)| u);
    if named.ends_with(".rego") {
        let stem = named.rsplit('/').next().unwrap_or(named);
        let name = stem.strip_suffix(".rego").unwrap_or(stem).to_owned();
        return Ok(Document::Policy(PolicySpec {
            name,
            inputs: Vec::new(),
            scripts: vec![Script {
                kind: None,
                code: Code::Embedded(text.to_owned()),
            }],
            unknown_kinds: Vec::new(),
        }));
    }
    let raw: RawDoc = serde_norway::from_str(text).map_err(|e| yaml_error(path, &e))?;
    match raw.api_version.as_deref() {
        Some(v) if API_VERSIONS.contains(&v) => {}
        Some(v) => {
            return Err(format!(
                "{path}: apiVersion `{v}` is not one of {}",
                API_VERSIONS.join(", ")
            ))
        }
        None => return Err(format!("{path}: missing apiVersion")),
    }
    let name = raw
        .metadata
        .and_then(|m| m.name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{path}: missing metadata.name"))?;
    let spec = raw.spec.ok_or_else(|| format!("{path}: missing spec"))?;
    match raw.kind.as_deref() {
        Some("Policy") => {
            let s: RawPolicySpec = serde_norway::from_value(spec).map_err(|e| yaml_error(path, &e))?;
            policy_spec(path, name, s).map(Document::Policy)
        }
        Some("PolicyGroup") => {
            let s: RawGroupSpec = serde_norway::from_value(spec).map_err(|e| yaml_error(path, &e))?;
            group_spec(path, name, s).map(Document::Group)
        }
        Some(k) => Err(format!("{path}: kind `{k}` is neither Policy nor PolicyGroup")),
        None => Err(format!("{path}: missing kind")),
    }
}

fn yaml_error(path: &str, e: &serde_norway::Error) -> String {
    match e.location() {
        Some(l) => format!("{path}:{}:{}: {e}", l.line(), l.column()),
        None => format!("{path}: {e}"),
    }
}

fn code(path: &str, embedded: Option<String>, file: Option<String>) -> Result<Code, String> {
    match (embedded, file) {
        (Some(e), None) => Ok(Code::Embedded(e)),
        (None, Some(p)) => Ok(Code::Path(p)),
        (Some(_), Some(_)) => Err(format!("{path}: a policy script has both `embedded` and `path`")),
        (None, None) => Err(format!("{path}: a policy script needs `embedded` or `path`")),
    }
}

fn policy_spec(path: &str, name: String, s: RawPolicySpec) -> Result<PolicySpec, String> {
    let mut scripts = Vec::new();
    let mut unknown_kinds = Vec::new();
    let mut push = |kind: Option<String>, c: Code| match kind.as_deref() {
        None | Some("") | Some("MATERIAL_TYPE_UNSPECIFIED") => scripts.push(Script { kind: None, code: c }),
        Some(k) => match Kind::parse(k) {
            Some(kind) => scripts.push(Script {
                kind: Some(kind),
                code: c,
            }),
            None => unknown_kinds.push(k.to_owned()),
        },
    };
    if s.embedded.is_some() || s.path.is_some() {
        push(s.kind, code(path, s.embedded, s.path)?);
    }
    for p in s.policies {
        push(p.kind, code(path, p.embedded, p.path)?);
    }
    if scripts.is_empty() && unknown_kinds.is_empty() {
        return Err(format!(
            "{path}: policy `{name}` has no script (spec.policies is empty)"
        ));
    }
    Ok(PolicySpec {
        name,
        inputs: inputs(path, s.inputs)?,
        scripts,
        unknown_kinds,
    })
}

fn inputs(path: &str, raw: Vec<RawInput>) -> Result<Vec<InputSpec>, String> {
    let mut out: Vec<InputSpec> = Vec::new();
    for i in raw {
        if out.iter().any(|o| o.name == i.name) {
            return Err(format!("{path}: input `{}` is declared twice", i.name));
        }
        let default = i
            .default
            .map(|v| yaml_scalar(&v))
            .transpose()
            .map_err(|w| format!("{path}: input `{}`: default {w}", i.name))?;
        let default = default.filter(|d| !d.is_empty());
        if i.required && default.is_some() {
            return Err(format!(
                "{path}: input `{}` cannot be both required and have a default",
                i.name
            ));
        }
        out.push(InputSpec {
            name: i.name,
            required: i.required,
            default,
        });
    }
    Ok(out)
}

/// A YAML scalar as the string Chainloop passes (arguments are strings).
fn yaml_scalar(v: &serde_norway::Value) -> Result<String, String> {
    use serde_norway::Value as Y;
    match v {
        Y::String(s) => Ok(s.clone()),
        Y::Number(n) => Ok(n.to_string()),
        Y::Bool(b) => Ok(b.to_string()),
        Y::Null => Ok(String::new()),
        Y::Sequence(items) => items
            .iter()
            .map(yaml_scalar)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n")),
        _ => Err("must be a string, number, boolean or list".into()),
    }
}

fn attachment(path: &str, a: RawAttachment) -> Result<GroupAttachment, String> {
    let reference = a.reference.filter(|r| !r.is_empty()).ok_or_else(|| {
        format!("{path}: a group policy needs `ref` (an embedded policy in a group is not read)")
    })?;
    let mut with = BTreeMap::new();
    for (k, v) in a.with {
        with.insert(
            k.clone(),
            yaml_scalar(&v).map_err(|w| format!("{path}: argument `{k}` of `{reference}` {w}"))?,
        );
    }
    Ok(GroupAttachment { reference, with })
}

fn group_spec(path: &str, name: String, s: RawGroupSpec) -> Result<GroupSpec, String> {
    let mut materials = Vec::new();
    for m in s.policies.materials {
        let kind = match m.kind.as_deref() {
            None | Some("") => None,
            Some(k) => Some(
                Kind::parse(k)
                    .ok_or_else(|| format!("{path}: group material kind `{k}` is not a kind tally knows"))?,
            ),
        };
        if m.name.is_empty() && kind.is_none() {
            return Err(format!("{path}: a group material needs a `name` or a `type`"));
        }
        materials.push(GroupMaterial {
            name: m.name,
            kind,
            policies: m
                .policies
                .into_iter()
                .map(|a| attachment(path, a))
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(GroupSpec {
        name,
        inputs: inputs(path, s.inputs)?,
        materials,
        attestation: s
            .policies
            .attestation
            .into_iter()
            .map(|a| attachment(path, a))
            .collect::<Result<_, _>>()?,
    })
}

/// Replaces `{{ inputs.NAME }}` with its binding (empty when unbound, as
/// Chainloop's templates do); any other `{{ … }}` is an error.
pub fn interpolate(s: &str, bindings: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in {s:?}"))?;
        let expr = after[..end].trim();
        let name = expr
            .strip_prefix("inputs.")
            .or_else(|| expr.strip_prefix(".inputs."))
            .filter(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
            .ok_or_else(|| {
                format!("`{{{{ {expr} }}}}` in {s:?}: only `{{{{ inputs.<name> }}}}` is interpolated")
            })?;
        out.push_str(bindings.get(name).map(String::as_str).unwrap_or(""));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The arguments a policy receives: `with` checked against its declared
/// inputs (required, defaults), interpolated with `bindings` (a group's
/// inputs). Chainloop's rule: a policy that declares no inputs receives
/// every argument; one that does receives only those it declares.
pub fn arguments(
    policy: &str,
    declared: &[InputSpec],
    with: &BTreeMap<String, String>,
    bindings: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if declared.is_empty() {
        for (k, v) in with {
            out.insert(k.clone(), interpolate(v, bindings)?);
        }
        return Ok(out);
    }
    for k in with.keys() {
        if !declared.iter().any(|i| &i.name == k) {
            let names: Vec<&str> = declared.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "policy `{policy}` has no input `{k}` (its inputs: {})",
                names.join(", ")
            ));
        }
    }
    for i in declared {
        let given = match with.get(&i.name) {
            Some(v) => interpolate(v, bindings)?,
            None => String::new(),
        };
        if !given.is_empty() {
            out.insert(i.name.clone(), given);
        } else if i.required {
            return Err(format!("policy `{policy}` requires input `{}`", i.name));
        } else if let Some(d) = &i.default {
            out.insert(i.name.clone(), interpolate(d, bindings)?);
        }
    }
    Ok(out)
}

/// An argument as a policy sees it in `input.args`: split on newlines and
/// unescaped commas (`\,` is a literal comma), trimmed, empties dropped;
/// one value is a string, several a list (Chainloop's convention).
pub fn arg_value(v: &str) -> Option<serde_json::Value> {
    let mut values = Vec::new();
    for line in v.trim_end_matches('\n').split('\n') {
        let mut cur = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&',') => {
                    cur.push(',');
                    chars.next();
                }
                ',' => values.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        values.push(cur);
    }
    let values: Vec<String> = values
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    match values.len() {
        0 => None,
        1 => values.into_iter().next().map(serde_json::Value::String),
        _ => Some(serde_json::Value::Array(
            values.into_iter().map(serde_json::Value::String).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chainloop_policy_yaml_is_read() {
        let y = r#"
apiVersion: workflowcontract.chainloop.dev/v1
kind: Policy
metadata:
  name: sbom-quality
  annotations: {category: SBOM}
spec:
  inputs:
    - name: limit
      default: "3"
  policies:
    - kind: SBOM_CYCLONEDX_JSON
      embedded: |
        package main
    - kind: GITLEAKS_JSON
      path: gitleaks.rego
"#;
        let Document::Policy(p) = parse("policies/q.yaml", y.as_bytes()).unwrap() else {
            panic!("not a policy")
        };
        assert_eq!(p.name, "sbom-quality");
        assert_eq!(p.kinds(), vec![Kind::SbomCyclonedxJson]);
        assert_eq!(p.unknown_kinds, vec!["GITLEAKS_JSON".to_owned()]);
        assert_eq!(p.inputs[0].default.as_deref(), Some("3"));
    }

    #[test]
    fn bad_files_are_refused_with_their_place() {
        let e = parse(
            "p.yaml",
            b"apiVersion: chainloop.dev/v1\nkind: Policy\nmetadata: [\n",
        )
        .unwrap_err();
        assert!(e.starts_with("p.yaml:"), "{e}");
        let e = parse("p.yaml", b"apiVersion: v9\nkind: Policy\n").unwrap_err();
        assert!(e.contains("apiVersion `v9`"), "{e}");
        let e = parse("p.yaml", b"apiVersion: chainloop.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {policies: [{kind: SARIF}]}\n").unwrap_err();
        assert!(e.contains("needs `embedded` or `path`"), "{e}");
    }

    #[test]
    fn arguments_follow_chainloops_rules() {
        let declared = vec![
            InputSpec {
                name: "user".into(),
                required: true,
                default: None,
            },
            InputSpec {
                name: "domain".into(),
                required: false,
                default: Some("example.com".into()),
            },
        ];
        let mut with = BTreeMap::new();
        with.insert("user".into(), "{{ inputs.who }}@{{inputs.domain}}".into());
        let mut b = BTreeMap::new();
        b.insert("who".into(), "ana".into());
        b.insert("domain".into(), "x.org".into());
        let a = arguments("p", &declared, &with, &b).unwrap();
        assert_eq!(a["user"], "ana@x.org");
        assert_eq!(a["domain"], "example.com");
        assert!(arguments("p", &declared, &BTreeMap::new(), &b)
            .unwrap_err()
            .contains("requires input `user`"));
        with.insert("other".into(), "1".into());
        assert!(arguments("p", &declared, &with, &b)
            .unwrap_err()
            .contains("no input `other`"));
        assert!(interpolate("{{ env.HOME }}", &b).is_err());
        assert_eq!(
            arg_value("a, b\\,c ,,\nd"),
            Some(serde_json::json!(["a", "b,c", "d"]))
        );
        assert_eq!(arg_value(" x "), Some(serde_json::json!("x")));
        assert_eq!(arg_value(" , "), None);
    }
}
