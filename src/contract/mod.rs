//! Workflow contracts: the TOML format SecOps write (SPEC.md §10), parsed
//! into typed values with every problem reported at once, with its position.
//!
//! Not here: git (revisions, history) or enforcement against attestations.

pub mod check;
pub mod diag;
pub mod diff;
pub mod lint;
pub mod repo;
pub mod store;

use std::ops::Range;

use serde::Serialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use self::diag::{did_you_mean, Diagnostic};
pub use crate::attest::material::Kind;
pub use ledger_format::entry::ContractRevision;

/// The `schema` value of this version of the format.
pub const SCHEMA_V1: &str = "tally.dev/contract/v1";
/// Largest contract or workflows file accepted.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The runner types a contract may require; `any` accepts every runner.
pub const RUNNER_TYPES: &[&str] = &[
    "any",
    "github-actions",
    "gitlab",
    "azure-pipelines",
    "jenkins",
    "circleci",
    "teamcity",
    "tekton",
    "dagger",
];

const CONTRACT_KEYS: &[&str] = &[
    "schema",
    "name",
    "description",
    "runner",
    "env",
    "annotations",
    "materials",
    "policies",
    "policy_groups",
];
const MATERIAL_KEYS: &[&str] = &[
    "name",
    "type",
    "optional",
    "output",
    "group",
    "annotations",
    "skip_upload",
    "pinned",
];
const POLICY_KEYS: &[&str] = &["ref", "materials", "with", "blocking"];
const WORKFLOWS_KEYS: &[&str] = &["schema", "workflows"];
const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "project",
    "contract",
    "owners",
    "description",
    "identities",
];
const IDENTITY_KEYS: &[&str] = &["issuer", "audience", "subject", "subject_pattern", "claims"];

/// The audience an ID token must carry when a workflow's identity names none.
pub const DEFAULT_AUDIENCE: &str = "tally";

/// An annotation: a key and a value; an empty value must be supplied when crafting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    /// The key.
    pub name: String,
    /// The value; empty means "to be supplied".
    pub value: String,
}

/// One material the contract asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Material {
    /// Lowercase DNS label, unique in the contract.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Whether the pipeline may omit it.
    pub optional: bool,
    /// Whether it becomes a subject of the attestation.
    pub output: bool,
    /// A group at least one member of which must be present.
    pub group: Option<String>,
    /// Annotations it must carry.
    pub annotations: Vec<Annotation>,
    /// Whether the file is recorded by digest only, not uploaded.
    pub skip_upload: bool,
    /// CONTAINER_IMAGE: whether the image must be given by digest (a tag,
    /// which can be moved, is refused).
    pub pinned: bool,
}

/// A reference to a policy or policy group (evaluated by `policy::Plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// Where the policy is: a repository path, or a URL pinned by digest.
    pub reference: String,
    /// The materials it applies to (none: every material of the policy's
    /// kinds, or the attestation for a policy that names no kind).
    pub materials: Vec<String>,
    /// Arguments, kept as TOML text.
    pub with: Vec<(String, String)>,
    /// Whether a violation refuses the push (`blocking = false`: advisory,
    /// recorded only). Default: blocking.
    pub blocking: bool,
}

/// A validated contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// The contract's name (its file is `<name>.toml`).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The runner type required.
    pub runner: String,
    /// Environment variables that must be set and are recorded.
    pub env: Vec<String>,
    /// Attestation-level annotations.
    pub annotations: Vec<Annotation>,
    /// The materials.
    pub materials: Vec<Material>,
    /// Policy references.
    pub policies: Vec<PolicyRef>,
    /// Policy-group references (a named set of policies, same shape).
    pub policy_groups: Vec<PolicyRef>,
}

/// A workflow: which project it belongs to and which contract it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workflow {
    /// Unique workflow name.
    pub name: String,
    /// The project it belongs to.
    pub project: String,
    /// The contract's name.
    pub contract: String,
    /// Who owns it (people or teams).
    pub owners: Vec<String>,
    /// What it is.
    pub description: String,
    /// The CI identities (OIDC ID tokens) allowed to act for it without a
    /// tally token (SPEC.md §15.6).
    pub identities: Vec<CiIdentity>,
}

/// A CI identity allowed to act for a workflow: an OIDC ID token from
/// `issuer`, for `audience`, whose subject and claims match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CiIdentity {
    /// The token's `iss`, exactly (an https URL; http only on loopback).
    pub issuer: String,
    /// A value the token's `aud` must hold.
    pub audience: String,
    /// The token's `sub`, exactly; or
    pub subject: Option<String>,
    /// a regular expression the whole `sub` must match.
    pub subject_pattern: Option<String>,
    /// Other claims: each named claim must be a string equal to one of the values.
    pub claims: Vec<(String, Vec<String>)>,
}

/// Collects diagnostics for one file.
struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    diags: Vec<Diagnostic>,
}

type Table<'i> = DeTable<'i>;

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        self.diags
            .push(Diagnostic::at(self.file, self.src, span, message, hint));
    }

    fn check_keys(&mut self, table: &Table<'_>, allowed: &[&str], what: &str) {
        for (k, _) in table.iter() {
            let key = k.get_ref().as_ref();
            if !allowed.contains(&key) {
                let hint = match did_you_mean(key, allowed) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("{what} accepts: {}", allowed.join(", ")),
                };
                self.err(k.span(), format!("unknown field `{key}` in {what}"), Some(hint));
            }
        }
    }

    fn get<'t, 'i>(&self, table: &'t Table<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    fn string(
        &mut self,
        table: &Table<'_>,
        key: &str,
        what: &str,
        required: bool,
        whole: Range<usize>,
    ) -> Option<(String, Range<usize>)> {
        match self.get(table, key) {
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Some((s.to_string(), v.span())),
                _ => {
                    self.err(v.span(), format!("`{key}` in {what} must be a string"), None);
                    None
                }
            },
            None => {
                if required {
                    self.err(
                        whole,
                        format!("{what} has no `{key}`"),
                        Some(format!("add `{key} = \"…\"`")),
                    );
                }
                None
            }
        }
    }

    fn boolean(&mut self, table: &Table<'_>, key: &str, what: &str) -> bool {
        match self.get(table, key) {
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => *b,
                _ => {
                    self.err(v.span(), format!("`{key}` in {what} must be true or false"), None);
                    false
                }
            },
            None => false,
        }
    }

    fn strings(&mut self, table: &Table<'_>, key: &str, what: &str) -> Vec<(String, Range<usize>)> {
        let Some(v) = self.get(table, key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.err(
                v.span(),
                format!("`{key}` in {what} must be a list of strings"),
                None,
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.err(
                    item.span(),
                    format!("`{key}` in {what} must hold only strings"),
                    None,
                ),
            }
        }
        out
    }

    fn annotations(&mut self, table: &Table<'_>, what: &str) -> Vec<Annotation> {
        let Some(v) = self.get(table, "annotations") else {
            return Vec::new();
        };
        let DeValue::Table(t) = v.get_ref() else {
            self.err(
                v.span(),
                format!("`annotations` in {what} must be a table of strings"),
                None,
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, val) in t.iter() {
            let name = k.get_ref().to_string();
            if !is_annotation_key(&name) {
                self.err(
                    k.span(),
                    format!("annotation key `{name}` in {what} is not valid"),
                    Some("use letters, digits, `.`, `_`, `-` and `/`".into()),
                );
            }
            match val.get_ref() {
                DeValue::String(s) => out.push(Annotation {
                    name,
                    value: s.to_string(),
                }),
                _ => self.err(
                    val.span(),
                    format!("annotation `{name}` in {what} must be a string"),
                    Some("write \"\" to require the value when crafting".into()),
                ),
            }
        }
        out
    }

    fn tables<'t, 'i>(&mut self, table: &'t Table<'i>, key: &str) -> Vec<(&'t Table<'i>, Range<usize>)> {
        let Some(v) = self.get(table, key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.err(
                v.span(),
                format!("`{key}` must be an array of tables (`[[{key}]]`)"),
                None,
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span())),
                _ => self.err(
                    item.span(),
                    format!("each `{key}` entry must be a table (`[[{key}]]`)"),
                    None,
                ),
            }
        }
        out
    }
}

fn is_annotation_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// A lowercase RFC 1123 DNS label: 1–63 of `a-z 0-9 -`, not starting or ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn env_name_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses TOML, reporting syntax errors as diagnostics.
fn parse_toml<'i>(file: &str, src: &'i str) -> Result<Spanned<Table<'i>>, Vec<Diagnostic>> {
    let (table, errors) = DeTable::parse_recoverable(src);
    if errors.is_empty() {
        return Ok(table);
    }
    Err(errors
        .iter()
        .map(|e| {
            let span = e.span().unwrap_or(0..0);
            Diagnostic::at(
                file,
                src,
                span,
                format!("invalid TOML: {}", e.message().trim()),
                None,
            )
        })
        .collect())
}

fn check_schema(ctx: &mut Ctx<'_>, root: &Table<'_>, whole: Range<usize>, what: &str) {
    match ctx.string(root, "schema", what, true, whole) {
        Some((s, span)) if s != SCHEMA_V1 => ctx.err(
            span,
            format!("unsupported schema `{s}`"),
            Some(format!("this tally reads `{SCHEMA_V1}`")),
        ),
        _ => {}
    }
}

/// Parses and validates a contract; `expected_name` is its file stem.
pub fn parse_contract(
    file: &str,
    src: &str,
    expected_name: Option<&str>,
) -> Result<Contract, Vec<Diagnostic>> {
    let doc = parse_toml(file, src)?;
    let root = doc.get_ref();
    let whole = 0..0;
    let mut ctx = Ctx {
        file,
        src,
        diags: Vec::new(),
    };
    ctx.check_keys(root, CONTRACT_KEYS, "a contract");
    check_schema(&mut ctx, root, whole.clone(), "the contract");
    let name = match ctx.string(root, "name", "the contract", true, whole.clone()) {
        Some((n, span)) => {
            if !is_dns_label(&n) {
                ctx.err(
                    span.clone(),
                    format!("contract name `{n}` is not a lowercase DNS label"),
                    Some("use a-z, 0-9 and `-`, at most 63 characters".into()),
                );
            }
            if let Some(stem) = expected_name {
                if stem != n {
                    ctx.err(
                        span,
                        format!("contract `{n}` is in a file named `{stem}.toml`"),
                        Some(format!(
                            "rename the file to `{n}.toml` or the contract to `{stem}`"
                        )),
                    );
                }
            }
            n
        }
        None => String::new(),
    };
    let description = ctx
        .string(root, "description", "the contract", false, whole.clone())
        .map(|d| d.0)
        .unwrap_or_default();
    let runner = match ctx.string(root, "runner", "the contract", false, whole.clone()) {
        Some((r, span)) => {
            if !RUNNER_TYPES.contains(&r.as_str()) {
                let hint = match did_you_mean(&r, RUNNER_TYPES) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("runner must be one of: {}", RUNNER_TYPES.join(", ")),
                };
                ctx.err(span, format!("unknown runner type `{r}`"), Some(hint));
            }
            r
        }
        None => "any".into(),
    };
    let mut env = Vec::new();
    for (e, span) in ctx.strings(root, "env", "the contract") {
        if !env_name_ok(&e) {
            ctx.err(
                span.clone(),
                format!("`{e}` is not an environment variable name"),
                Some("use letters, digits and `_`, not starting with a digit".into()),
            );
        }
        if env.contains(&e) {
            ctx.err(span, format!("environment variable `{e}` is listed twice"), None);
        }
        env.push(e);
    }
    let annotations = ctx.annotations(root, "the contract");

    let mut materials: Vec<Material> = Vec::new();
    for (t, span) in ctx.tables(root, "materials") {
        ctx.check_keys(t, MATERIAL_KEYS, "a material");
        let what = "a material";
        let Some((mname, nspan)) = ctx.string(t, "name", what, true, span.clone()) else {
            continue;
        };
        let what_named = format!("material `{mname}`");
        if !is_dns_label(&mname) {
            ctx.err(
                nspan.clone(),
                format!("material name `{mname}` is not a lowercase DNS label"),
                Some("use a-z, 0-9 and `-`, at most 63 characters".into()),
            );
        }
        if materials.iter().any(|m| m.name == mname) {
            ctx.err(
                nspan,
                format!("material `{mname}` is declared twice"),
                Some("material names must be unique".into()),
            );
        }
        // An unknown or missing type is a diagnostic, so the placeholder
        // never reaches a `Contract` (none is built for a file with any).
        let kind = match ctx.string(t, "type", &what_named, true, span.clone()) {
            Some((k, kspan)) => Kind::parse(&k).unwrap_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                let hint = match did_you_mean(&k, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("types: {}", names.join(", ")),
                };
                ctx.err(kspan, format!("unknown material type `{k}`"), Some(hint));
                Kind::String
            }),
            None => Kind::String,
        };
        let group = match ctx.string(t, "group", &what_named, false, span.clone()) {
            Some((g, gspan)) => {
                if !is_dns_label(&g) {
                    ctx.err(gspan, format!("group `{g}` is not a lowercase DNS label"), None);
                }
                Some(g)
            }
            None => None,
        };
        let pinned = ctx.boolean(t, "pinned", &what_named);
        if pinned && kind != Kind::ContainerImage {
            ctx.err(
                span.clone(),
                format!("{what_named}: `pinned` applies to CONTAINER_IMAGE materials only"),
                Some("remove `pinned`, or make the material a CONTAINER_IMAGE".into()),
            );
        }
        let material = Material {
            optional: ctx.boolean(t, "optional", &what_named),
            output: ctx.boolean(t, "output", &what_named),
            skip_upload: ctx.boolean(t, "skip_upload", &what_named),
            pinned,
            annotations: ctx.annotations(t, &what_named),
            name: mname,
            kind,
            group,
        };
        materials.push(material);
    }

    let policies = policy_refs(&mut ctx, root, "policies", "a policy", &materials);
    let policy_groups = policy_refs(&mut ctx, root, "policy_groups", "a policy group", &materials);
    if ctx.diags.is_empty() {
        Ok(Contract {
            name,
            description,
            runner,
            env,
            annotations,
            materials,
            policies,
            policy_groups,
        })
    } else {
        Err(ctx.diags)
    }
}

/// `[[policies]]` or `[[policy_groups]]`: references, validated here;
/// read and compiled by `policy::Plan::load`.
fn policy_refs(
    ctx: &mut Ctx<'_>,
    root: &Table<'_>,
    key: &str,
    what: &str,
    materials: &[Material],
) -> Vec<PolicyRef> {
    let mut policies = Vec::new();
    for (t, span) in ctx.tables(root, key) {
        ctx.check_keys(t, POLICY_KEYS, what);
        let Some((reference, rspan)) = ctx.string(t, "ref", what, true, span) else {
            continue;
        };
        if !policy_ref_ok(&reference) {
            ctx.err(
                rspan,
                format!("{what} has an invalid reference `{reference}`"),
                Some("use a path in the contracts repository (policies/x.rego) or an https:// URL pinned with @sha256:<digest>".into()),
            );
        }
        let mut targets = Vec::new();
        for (m, mspan) in ctx.strings(t, "materials", what) {
            if !materials.iter().any(|x| x.name == m) {
                let names: Vec<&str> = materials.iter().map(|x| x.name.as_str()).collect();
                let hint = did_you_mean(&m, &names).map(|s| format!("did you mean `{s}`?"));
                ctx.err(
                    mspan,
                    format!("{what} applies to material `{m}`, which the contract does not declare"),
                    hint,
                );
            }
            targets.push(m);
        }
        let mut with = Vec::new();
        if let Some(v) = ctx.get(t, "with") {
            match v.get_ref() {
                DeValue::Table(w) => {
                    for (k, val) in w.iter() {
                        with.push((k.get_ref().to_string(), ctx.src[val.span()].to_owned()));
                    }
                }
                _ => ctx.err(
                    v.span(),
                    "`with` in a policy must be a table of arguments".into(),
                    None,
                ),
            }
        }
        let blocking = ctx.get(t, "blocking").is_none() || ctx.boolean(t, "blocking", what);
        policies.push(PolicyRef {
            reference,
            materials: targets,
            with,
            blocking,
        });
    }
    policies
}

/// The `[[workflows.identities]]` of one workflow.
fn ci_identities(ctx: &mut Ctx<'_>, t: &Table<'_>, what: &str) -> Vec<CiIdentity> {
    let mut out = Vec::new();
    for (it, span) in ctx.tables(t, "identities") {
        let who = format!("an identity of {what}");
        ctx.check_keys(it, IDENTITY_KEYS, &who);
        let Some((issuer, ispan)) = ctx.string(it, "issuer", &who, true, span.clone()) else {
            continue;
        };
        if let Err(m) = issuer_ok(&issuer) {
            ctx.err(ispan, format!("issuer `{issuer}` of {what}: {m}"), None);
        }
        let audience = ctx
            .string(it, "audience", &who, false, span.clone())
            .map(|a| a.0)
            .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
        let subject = ctx.string(it, "subject", &who, false, span.clone());
        let pattern = ctx.string(it, "subject_pattern", &who, false, span.clone());
        match (&subject, &pattern) {
            (Some(_), Some((_, pspan))) => ctx.err(
                pspan.clone(),
                format!("{who} gives both `subject` and `subject_pattern`"),
                Some("keep one".into()),
            ),
            (None, None) => ctx.err(
                span.clone(),
                format!("{who} names no `subject` or `subject_pattern`"),
                Some("an issuer alone admits every pipeline it serves: add `subject = \"repo:org/repo:ref:refs/heads/main\"` (or a pattern)".into()),
            ),
            _ => {}
        }
        if let Some((p, pspan)) = &pattern {
            if let Err(e) = regex::Regex::new(&anchored(p)) {
                ctx.err(
                    pspan.clone(),
                    format!("`subject_pattern` of {what} is not a regular expression: {e}"),
                    None,
                );
            }
        }
        let mut claims = Vec::new();
        if let Some(v) = ctx.get(it, "claims") {
            match v.get_ref() {
                DeValue::Table(c) => {
                    for (k, val) in c.iter() {
                        let name = k.get_ref().to_string();
                        let values: Option<Vec<String>> = match val.get_ref() {
                            DeValue::String(s) => Some(vec![s.to_string()]),
                            DeValue::Array(items) => items
                                .iter()
                                .map(|i| match i.get_ref() {
                                    DeValue::String(s) => Some(s.to_string()),
                                    _ => None,
                                })
                                .collect::<Option<Vec<_>>>()
                                .filter(|v| !v.is_empty()),
                            _ => None,
                        };
                        match values {
                            Some(values) if !name.is_empty() => claims.push((name, values)),
                            _ => ctx.err(
                                val.span(),
                                format!(
                                    "claim `{name}` of {who} must be a string or a non-empty list of strings"
                                ),
                                None,
                            ),
                        }
                    }
                }
                _ => ctx.err(
                    v.span(),
                    format!("`claims` in {who} must be a table of claim = value(s)"),
                    Some("e.g. `claims = { repository = \"org/repo\", ref = [\"refs/heads/main\"] }`".into()),
                ),
            }
        }
        out.push(CiIdentity {
            issuer,
            audience,
            subject: subject.map(|s| s.0),
            subject_pattern: pattern.map(|p| p.0),
            claims,
        });
    }
    out
}

/// `pattern` made to match a whole string.
pub fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Whether `issuer` may name an OIDC issuer: an https URL without query or
/// fragment (http only on a loopback host, for tests and local issuers).
pub fn issuer_ok(issuer: &str) -> Result<(), &'static str> {
    let u = url::Url::parse(issuer).map_err(|_| "not a URL")?;
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err("an issuer URL has no query, fragment or user");
    }
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => return Err("an issuer URL names a host"),
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("an issuer must be an https URL (http only on a loopback host)"),
    }
}

fn policy_ref_ok(r: &str) -> bool {
    if let Some(rest) = r.strip_prefix("https://") {
        return rest.rsplit_once("@sha256:").is_some_and(|(u, d)| {
            !u.is_empty() && d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())
        });
    }
    !r.is_empty()
        && !r.starts_with('/')
        && !r.split('/').any(|c| c == ".." || c.is_empty())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// Parses and validates `workflows.toml`. `contracts` are the names of the
/// contracts that exist beside it (checked when `Some`).
pub fn parse_workflows(
    file: &str,
    src: &str,
    contracts: Option<&[String]>,
) -> Result<Vec<Workflow>, Vec<Diagnostic>> {
    let doc = parse_toml(file, src)?;
    let root = doc.get_ref();
    let mut ctx = Ctx {
        file,
        src,
        diags: Vec::new(),
    };
    ctx.check_keys(root, WORKFLOWS_KEYS, "workflows.toml");
    check_schema(&mut ctx, root, 0..0, "workflows.toml");
    let mut out: Vec<Workflow> = Vec::new();
    for (t, span) in ctx.tables(root, "workflows") {
        ctx.check_keys(t, WORKFLOW_KEYS, "a workflow");
        let Some((name, nspan)) = ctx.string(t, "name", "a workflow", true, span.clone()) else {
            continue;
        };
        if !is_dns_label(&name) {
            ctx.err(
                nspan.clone(),
                format!("workflow name `{name}` is not a lowercase DNS label"),
                None,
            );
        }
        if out.iter().any(|w| w.name == name) {
            ctx.err(nspan, format!("workflow `{name}` is declared twice"), None);
        }
        let what = format!("workflow `{name}`");
        let project = ctx
            .string(t, "project", &what, true, span.clone())
            .map(|p| p.0)
            .unwrap_or_default();
        if !project.is_empty() && !is_dns_label(&project) {
            ctx.err(
                span.clone(),
                format!("project `{project}` of {what} is not a lowercase DNS label"),
                None,
            );
        }
        let contract = match ctx.string(t, "contract", &what, true, span.clone()) {
            Some((c, cspan)) => {
                if let Some(known) = contracts {
                    if !known.contains(&c) {
                        let names: Vec<&str> = known.iter().map(String::as_str).collect();
                        let hint = match did_you_mean(&c, &names) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("add contracts/{c}.toml, or use one of: {}", names.join(", ")),
                        };
                        ctx.err(
                            cspan,
                            format!("{what} uses contract `{c}`, which does not exist"),
                            Some(hint),
                        );
                    }
                }
                c
            }
            None => String::new(),
        };
        let owners: Vec<String> = ctx.strings(t, "owners", &what).into_iter().map(|o| o.0).collect();
        if owners.is_empty() {
            ctx.err(
                span.clone(),
                format!("{what} has no `owners`"),
                Some("add `owners = [\"team@example.com\"]`".into()),
            );
        }
        let description = ctx
            .string(t, "description", &what, false, span)
            .map(|d| d.0)
            .unwrap_or_default();
        let identities = ci_identities(&mut ctx, t, &what);
        out.push(Workflow {
            name,
            project,
            contract,
            owners,
            description,
            identities,
        });
    }
    if ctx.diags.is_empty() {
        Ok(out)
    } else {
        Err(ctx.diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflows(identity: &str) -> Result<Vec<Workflow>, Vec<Diagnostic>> {
        let src = format!(
            "schema = \"tally.dev/contract/v1\"\n[[workflows]]\nname = \"w\"\nproject = \"p\"\ncontract = \"c\"\nowners = [\"o\"]\n[[workflows.identities]]\n{identity}"
        );
        parse_workflows("workflows.toml", &src, None)
    }

    #[test]
    fn ci_identities_are_checked_where_they_are_written() {
        let ok = workflows(
            "issuer = \"https://gitlab.com\"\nsubject_pattern = \"project_path:a/b:.+\"\nclaims = { ref = [\"main\", \"dev\"] }\n",
        )
        .unwrap();
        let i = &ok[0].identities[0];
        assert_eq!(i.audience, DEFAULT_AUDIENCE);
        assert_eq!(
            i.claims,
            vec![("ref".to_owned(), vec!["main".to_owned(), "dev".to_owned()])]
        );
        for (identity, says) in [
            (
                "issuer = \"https://gitlab.com\"\n",
                "no `subject` or `subject_pattern`",
            ),
            (
                "issuer = \"https://x\"\nsubject = \"a\"\nsubject_pattern = \"a\"\n",
                "both",
            ),
            ("issuer = \"http://idp.example\"\nsubject = \"a\"\n", "https"),
            (
                "issuer = \"https://x\"\nsubject_pattern = \"(\"\n",
                "not a regular expression",
            ),
            (
                "issuer = \"https://x\"\nsubject = \"a\"\nclaims = { ref = 1 }\n",
                "claim `ref`",
            ),
            (
                "issuer = \"https://x\"\nsubject = \"a\"\naud = \"t\"\n",
                "unknown field `aud`",
            ),
        ] {
            let d = workflows(identity).unwrap_err();
            assert!(d.iter().any(|d| d.message.contains(says)), "{identity}: {d:?}");
        }
        assert!(workflows("issuer = \"http://127.0.0.1:8080\"\nsubject = \"a\"\n").is_ok());
    }
}
