//! Policies: Rego evaluated on materials and attestations (SPEC.md §13).
//!
//! One entry point, [`Plan::load`]: a contract's `[[policies]]` and
//! `[[policy_groups]]`, read from a [`Files`] (the contracts repository at
//! a commit, a directory, or the bytes a crafting state carries), parsed
//! ([`spec`]), their arguments bound and their Rego compiled ([`engine`]).
//! A plan then evaluates a material ([`Plan::material`]) or a statement
//! ([`Plan::statement`]) into [`Evaluation`]s, the record that goes into
//! the log ([`verdict`]); [`violations`] turns the blocking failures into
//! the contract check's [`Violation`]s, where they join the other rules.
//!
//! Below: `contract` (what a contract references) and `attest::material`
//! (kinds). Above: the CLI (`cmd`) and the control plane (`server`).

pub mod engine;
pub mod fetch;
pub mod input;
pub mod spec;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::attest::material::Kind;
use crate::contract::check::Violation;
use crate::contract::repo::ContractsRepo;
use crate::contract::{Contract, PolicyRef};

pub use engine::Limits;
pub use fetch::{UrlCache, WithUrls};
pub use verdict::Evaluation;

/// Where policy files are read from; paths are repository-relative with
/// `/` separators, already checked to stay inside it.
pub trait Files {
    /// The bytes of the file at `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// A directory (a contracts checkout).
#[derive(Debug, Clone)]
pub struct Dir(pub PathBuf);

impl Files for Dir {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let full = self.0.join(path);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| format!("{path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path}: not a regular file"));
        }
        if meta.len() > spec::MAX_POLICY_BYTES as u64 {
            return Err(format!("{path}: larger than {} bytes", spec::MAX_POLICY_BYTES));
        }
        std::fs::read(&full).map_err(|e| format!("{path}: {e}"))
    }
}

/// The contracts repository at a commit.
#[derive(Debug)]
pub struct GitTree<'a> {
    /// The repository.
    pub repo: &'a ContractsRepo,
    /// The commit.
    pub commit: gix::ObjectId,
}

impl Files for GitTree<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        let id = self
            .repo
            .blob_at(self.commit, path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{path} is not in the contracts repository at {}", self.commit))?;
        self.repo.read_blob(id).map_err(|e| e.to_string())
    }
}

/// Files carried by value (a crafting state's, a run's).
impl Files for BTreeMap<String, String> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.get(path)
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| format!("{path} was not recorded with the contract"))
    }
}

/// The git blob id of `bytes` (how a policy file is named in the log).
pub fn blob_id(bytes: &[u8]) -> String {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, bytes)
        .map(|id| id.to_string())
        .unwrap_or_default()
}

/// What a bound policy is evaluated on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The named materials (of the policy's kinds, if it declares any).
    Materials(Vec<String>),
    /// Every material of the policy's kinds.
    Kinds,
    /// Every material of one kind (a group material with no name).
    Kind(String),
    /// The attestation's statement.
    Attestation,
}

/// One policy as a contract applies it.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The policy's name.
    pub name: String,
    /// The file it came from (repository path).
    pub path: String,
    /// That file's git blob id.
    pub blob: String,
    /// The group it came through, if any.
    pub group: Option<String>,
    /// Whether a violation refuses the push.
    pub blocking: bool,
    /// What it applies to.
    pub target: Target,
    /// Its arguments as given (after defaults and interpolation).
    pub args: BTreeMap<String, String>,
    /// Its arguments as the policy sees them (`input.args`).
    input_args: Map<String, Value>,
    kinds: Vec<Kind>,
    scripts: Scripts,
}

/// A policy's compiled scripts, each with the kind it evaluates.
type Scripts = Vec<(Option<Kind>, Arc<engine::Script>)>;

impl Bound {
    fn script_for(&self, kind: Option<Kind>) -> Option<&Arc<engine::Script>> {
        self.scripts
            .iter()
            .find(|(k, _)| *k == kind && kind.is_some())
            .or_else(|| self.scripts.iter().find(|(k, _)| k.is_none()))
            .map(|(_, s)| s)
    }

    /// Whether it evaluates the attestation's statement.
    fn on_statement(&self) -> bool {
        match self.target {
            Target::Attestation => true,
            Target::Kinds => self.kinds.contains(&Kind::Attestation),
            _ => false,
        }
    }

    fn applies_to(&self, name: &str, kind: Kind) -> bool {
        let kind_ok = self.kinds.is_empty() || self.kinds.contains(&kind);
        match &self.target {
            Target::Materials(names) => kind_ok && names.iter().any(|n| n == name),
            // ATTESTATION in a policy attached to no material means the statement.
            Target::Kinds => kind != Kind::Attestation && self.kinds.contains(&kind),
            Target::Kind(k) => k == kind.as_str() && kind_ok,
            Target::Attestation => false,
        }
    }
}

/// A contract's policies, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The policies, in contract order (a group's in the group's order).
    pub bound: Vec<Bound>,
    /// Every file read, by repository path: what a run pins.
    pub files: BTreeMap<String, String>,
    /// Outcomes already computed, by policy and input (see [`Memo`]).
    memo: Arc<Memo>,
}

/// Outcomes of this plan's evaluations, by (policy, input identity): a
/// verdict is a function of the policy's bytes, the input and the
/// arguments only (SPEC.md §13.4), so the same material pushed again (a
/// re-run, a matrix job, a shared SBOM) is not evaluated again. Bounded
/// (oldest first out); errors (a budget exceeded under load) are never kept.
#[derive(Debug, Default)]
pub struct Memo {
    map: std::sync::Mutex<MemoMap>,
}

/// Outcomes by key, and the keys oldest first.
#[derive(Debug, Default)]
struct MemoMap {
    outcomes: std::collections::HashMap<[u8; 32], engine::Outcome>,
    order: std::collections::VecDeque<[u8; 32]>,
}

/// How many outcomes a plan keeps.
const MEMO_ENTRIES: usize = 4096;

impl Memo {
    /// Forgets every outcome (benchmarks measure evaluations, not the memo).
    pub fn clear(&self) {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        g.outcomes.clear();
        g.order.clear();
    }

    fn get(&self, k: &[u8; 32]) -> Option<engine::Outcome> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .outcomes
            .get(k)
            .cloned()
    }

    fn put(&self, k: [u8; 32], o: &engine::Outcome) {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if g.outcomes.insert(k, o.clone()).is_none() {
            g.order.push_back(k);
            while g.order.len() > MEMO_ENTRIES {
                if let Some(old) = g.order.pop_front() {
                    g.outcomes.remove(&old);
                }
            }
        }
    }
}

/// The identity of one evaluation's input: the policy (its index in the
/// plan) and everything the input document is built from.
fn memo_key(policy: usize, m: &input::Material<'_>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(&(policy as u64).to_be_bytes());
    field(m.name.as_bytes());
    field(m.kind.as_str().as_bytes());
    field(m.digest.as_bytes());
    field(m.value.unwrap_or_default().as_bytes());
    field(&[u8::from(m.bytes.is_some())]);
    for (k, v) in m.annotations {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    h.finalize().into()
}

/// A problem loading a contract's policies, for `contract lint` and the
/// control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The contract attachment (`ref`) it concerns.
    pub reference: String,
    /// What is wrong (file:line:column first where known).
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "policy `{}`: {}", self.reference, self.message)
    }
}

/// `base`'s folder joined with `rel`, normalized; `None` if it leaves the
/// repository or is not a plain relative path.
fn join(base: &str, rel: &str) -> Option<String> {
    let rel = rel.strip_prefix("file://").unwrap_or(rel);
    if rel.starts_with('/') || rel.contains('\\') || rel.contains("://") {
        return None;
    }
    let mut parts: Vec<&str> = base
        .rsplit_once('/')
        .map(|(d, _)| d.split('/').collect())
        .unwrap_or_default();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Where the `n`-th `embedded:` block scalar of a policy YAML starts, so
/// compile errors point at the YAML's own lines and columns.
fn embedded_origin(path: &str, yaml: &str, n: usize) -> engine::Origin {
    let lines: Vec<&str> = yaml.lines().collect();
    let key = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with("embedded:")
        })
        .nth(n)
        .map(|(i, _)| i);
    let Some(k) = key else {
        return engine::Origin {
            file: path.to_owned(),
            ..engine::Origin::default()
        };
    };
    let indent = lines[k + 1..]
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or(0, |l| l.len() - l.trim_start().len());
    engine::Origin {
        file: path.to_owned(),
        line_offset: k + 1,
        indent,
    }
}

struct Loader<'a> {
    files: &'a dyn Files,
    limits: Limits,
    read: BTreeMap<String, String>,
}

impl Loader<'_> {
    fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        if path.starts_with("http://") {
            return Err(format!(
                "{path}: a policy URL must be https:// and pinned with @sha256:<digest>"
            ));
        }
        if path.starts_with("chainloop://") || !path.contains('.') && !path.contains('/') {
            return Err(format!("{path}: a reference to Chainloop's policy registry; copy the policy into the contracts repository (policies/) and reference its path"));
        }
        let bytes = self.files.read(path)?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| format!("{path}: not UTF-8"))?;
        self.read.insert(path.to_owned(), text);
        Ok(bytes)
    }

    fn document(&mut self, path: &str) -> Result<spec::Document, String> {
        let bytes = self.read(path)?;
        spec::parse(path, &bytes)
    }

    /// Compiles a policy file's scripts.
    fn policy(&mut self, path: &str, p: &spec::PolicySpec) -> Result<Scripts, String> {
        let mut out = Vec::new();
        let yaml = self.read.get(path).cloned().unwrap_or_default();
        let mut embedded_seen = 0;
        for (i, s) in p.scripts.iter().enumerate() {
            let (origin, at, code) = match &s.code {
                spec::Code::Embedded(c) if path.ends_with(".rego") => (
                    path.to_owned(),
                    engine::Origin {
                        file: path.to_owned(),
                        ..engine::Origin::default()
                    },
                    c.clone(),
                ),
                spec::Code::Embedded(c) => {
                    let at = embedded_origin(path, &yaml, embedded_seen);
                    embedded_seen += 1;
                    (format!("{path}#policies[{i}]"), at, c.clone())
                }
                spec::Code::Path(rel) => {
                    let full = join(path, rel)
                        .ok_or_else(|| format!("{path}: script path `{rel}` leaves the repository"))?;
                    let bytes = self.read(&full)?;
                    let at = engine::Origin {
                        file: full.clone(),
                        ..engine::Origin::default()
                    };
                    (
                        full.clone(),
                        at,
                        String::from_utf8(bytes).map_err(|_| format!("{full}: not UTF-8"))?,
                    )
                }
            };
            out.push((
                s.kind,
                Arc::new(engine::Script::compile_at(&origin, &at, &code, &self.limits)?),
            ));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn bind_policy(
        &mut self,
        path: &str,
        with: &BTreeMap<String, String>,
        bindings: &BTreeMap<String, String>,
        group: Option<&str>,
        blocking: bool,
        target: Target,
        out: &mut Vec<Bound>,
    ) -> Result<(), String> {
        let spec::Document::Policy(p) = self.document(path)? else {
            return Err(format!("{path} is a policy group, where a policy is expected"));
        };
        let args = spec::arguments(&p.name, &p.inputs, with, bindings)?;
        let input_args = args
            .iter()
            .filter_map(|(k, v)| spec::arg_value(v).map(|v| (k.clone(), v)))
            .collect();
        let scripts = self.policy(path, &p)?;
        let kinds = p.kinds();
        let target = match target {
            Target::Kinds if kinds.is_empty() => Target::Attestation,
            Target::Kinds if kinds.contains(&Kind::Attestation) && kinds.len() == 1 => Target::Attestation,
            t => t,
        };
        let blob = blob_id(self.read.get(path).map(String::as_bytes).unwrap_or_default());
        out.push(Bound {
            name: p.name.clone(),
            path: path.to_owned(),
            blob,
            group: group.map(str::to_owned),
            blocking,
            target,
            args,
            input_args,
            kinds,
            scripts,
        });
        Ok(())
    }

    fn bind_group(
        &mut self,
        r: &PolicyRef,
        with: &BTreeMap<String, String>,
        out: &mut Vec<Bound>,
    ) -> Result<(), String> {
        let path = r.reference.as_str();
        let spec::Document::Group(g) = self.document(path)? else {
            return Err(format!(
                "{path} is a policy, where a policy group is expected (list it under [[policies]])"
            ));
        };
        let bindings = spec::arguments(&g.name, &g.inputs, with, &BTreeMap::new())?;
        let group_blob = blob_id(self.read.get(path).map(String::as_bytes).unwrap_or_default());
        let start = out.len();
        // What each of the group's policies applies to: its materials (by
        // name, or every one of a kind), then the attestation.
        let mut attached: Vec<(&spec::GroupAttachment, Target)> = Vec::new();
        for m in &g.materials {
            let name = spec::interpolate(&m.name, &bindings)?;
            if !r.materials.is_empty() && !name.is_empty() && !r.materials.contains(&name) {
                continue;
            }
            let target = match (name.is_empty(), m.kind) {
                (false, _) => Target::Materials(vec![name]),
                (true, Some(k)) => Target::Kind(k.as_str().to_owned()),
                (true, None) => continue,
            };
            attached.extend(m.policies.iter().map(|a| (a, target.clone())));
        }
        attached.extend(g.attestation.iter().map(|a| (a, Target::Attestation)));
        for (a, target) in attached {
            let p = self.resolve(path, &a.reference)?;
            self.bind_policy(&p, &a.with, &bindings, Some(&g.name), r.blocking, target, out)?;
        }
        for b in &mut out[start..] {
            b.group = Some(format!("{}@{}", g.name, group_blob));
        }
        Ok(())
    }

    /// A group's reference to a policy: beside the group file, else from
    /// the repository's root (how Chainloop's `file://` refs are written).
    fn resolve(&self, group: &str, reference: &str) -> Result<String, String> {
        if reference.starts_with("https://") || reference.starts_with("chainloop://") {
            return Ok(reference.to_owned());
        }
        let beside = join(group, reference);
        if let Some(b) = &beside {
            if self.files.read(b).is_ok() {
                return Ok(b.clone());
            }
        }
        join("", reference)
            .or(beside)
            .ok_or_else(|| format!("{group}: policy reference `{reference}` leaves the repository"))
    }
}

fn with_map(r: &PolicyRef) -> BTreeMap<String, String> {
    r.with
        .iter()
        .map(|(k, toml_text)| (k.clone(), toml_arg(toml_text)))
        .collect()
}

/// A `with` value (kept as TOML text by the contract parser) as the string
/// Chainloop passes: strings unquoted, arrays one item per line, other
/// scalars as written.
fn toml_arg(text: &str) -> String {
    let parsed: Result<toml::Table, _> = toml::from_str(&format!("v = {text}"));
    match parsed.ok().and_then(|mut t| t.remove("v")) {
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
        None => text.to_owned(),
    }
}

impl Plan {
    /// Reads and compiles `contract`'s policies from `files`. Every
    /// problem is returned (one per attachment), not just the first.
    pub fn load(contract: &Contract, files: &dyn Files, limits: Limits) -> Result<Plan, Vec<LoadError>> {
        let mut loader = Loader {
            files,
            limits,
            read: BTreeMap::new(),
        };
        let mut bound = Vec::new();
        let mut errors = Vec::new();
        for r in &contract.policies {
            let target = if r.materials.is_empty() {
                Target::Kinds
            } else {
                Target::Materials(r.materials.clone())
            };
            let start = bound.len();
            let res = loader.bind_policy(
                &r.reference,
                &with_map(r),
                &BTreeMap::new(),
                None,
                r.blocking,
                target,
                &mut bound,
            );
            match res {
                Ok(()) => {
                    if let Err(m) = check_kinds(contract, &bound[start..]) {
                        errors.push(LoadError {
                            reference: r.reference.clone(),
                            message: m,
                        });
                    }
                }
                Err(message) => errors.push(LoadError {
                    reference: r.reference.clone(),
                    message,
                }),
            }
        }
        for r in &contract.policy_groups {
            if let Err(message) = loader.bind_group(r, &with_map(r), &mut bound) {
                errors.push(LoadError {
                    reference: r.reference.clone(),
                    message,
                });
            }
        }
        if errors.is_empty() {
            Ok(Plan {
                bound,
                files: loader.read,
                memo: Arc::default(),
            })
        } else {
            Err(errors)
        }
    }

    /// The plan's memo of outcomes.
    pub fn memo(&self) -> &Memo {
        &self.memo
    }

    /// Whether the contract has no policy.
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }

    /// Whether any policy applies to materials of `kind` named `name`.
    pub fn applies_to(&self, name: &str, kind: Kind) -> bool {
        self.bound.iter().any(|b| b.applies_to(name, kind))
    }

    /// Evaluates every policy that applies to material `m`.
    pub fn material(&self, m: &input::Material<'_>, by: verdict::Evaluator) -> Vec<Evaluation> {
        let mut out = Vec::new();
        let mut doc = None;
        // A material's bytes are named by their digest: an input whose
        // bytes were not given is never the same as one whose were.
        let digest_known = m.digest.starts_with("sha256:") && m.digest.len() == 71;
        for (i, b) in self
            .bound
            .iter()
            .enumerate()
            .filter(|(_, b)| b.applies_to(m.name, m.kind))
        {
            let key = digest_known.then(|| memo_key(i, m));
            if let Some(o) = key.and_then(|k| self.memo.get(&k)) {
                out.push(Evaluation::new(b, Some((m.name, m.digest)), by, Ok(o)));
                continue;
            }
            let doc = doc.get_or_insert_with(|| input::material_document(m));
            let result = match (b.script_for(Some(m.kind)), doc) {
                (None, _) => Err(format!("policy `{}` has no script for kind {}", b.name, m.kind)),
                (_, Err(e)) => Err(e.clone()),
                (Some(s), Ok(d)) => input::with_args(d, &b.input_args).and_then(|i| s.eval(i)),
            };
            if let (Some(k), Ok(o)) = (key, &result) {
                self.memo.put(k, o);
            }
            out.push(Evaluation::new(b, Some((m.name, m.digest)), by, result));
        }
        out
    }

    /// Failed evaluations (`why`) of every policy that applies to a
    /// material that could not be evaluated here.
    pub fn unevaluated(
        &self,
        name: &str,
        kind: Kind,
        digest: &str,
        why: &str,
        by: verdict::Evaluator,
    ) -> Vec<Evaluation> {
        self.bound
            .iter()
            .filter(|b| b.applies_to(name, kind))
            .map(|b| Evaluation::new(b, Some((name, digest)), by, Err(why.to_owned())))
            .collect()
    }

    /// Evaluates the attestation policies on a statement.
    pub fn statement(&self, statement_json: &[u8], digest: &str, by: verdict::Evaluator) -> Vec<Evaluation> {
        let mut out = Vec::new();
        let mut doc = None;
        for b in self.bound.iter().filter(|b| b.on_statement()) {
            let doc = doc.get_or_insert_with(|| input::statement_document(statement_json));
            let result = match (b.script_for(Some(Kind::Attestation)), doc) {
                (None, _) => Err(format!("policy `{}` has no script for the attestation", b.name)),
                (_, Err(e)) => Err(e.clone()),
                (Some(s), Ok(d)) => input::with_args(d, &b.input_args).and_then(|i| s.eval(i)),
            };
            out.push(Evaluation::new(b, None, by, result).with_digest(digest));
        }
        out
    }

    /// Whether any policy applies to the statement.
    pub fn has_attestation_policies(&self) -> bool {
        self.bound.iter().any(Bound::on_statement)
    }
}

/// A policy applied to named materials must declare their kinds (when it
/// declares any): the check `contract lint` makes.
fn check_kinds(contract: &Contract, bound: &[Bound]) -> Result<(), String> {
    for b in bound {
        let Target::Materials(names) = &b.target else {
            continue;
        };
        if b.kinds.is_empty() {
            continue;
        }
        for n in names {
            if let Some(m) = contract.materials.iter().find(|m| &m.name == n) {
                if !b.kinds.contains(&m.kind) {
                    let ks: Vec<&str> = b.kinds.iter().map(|k| k.as_str()).collect();
                    return Err(format!(
                        "policy `{}` evaluates {}, but material `{n}` is {}",
                        b.name,
                        ks.join(", "),
                        m.kind
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The blocking failures among `evals`, as contract violations.
pub fn violations(evals: &[Evaluation]) -> Vec<Violation> {
    evals
        .iter()
        .filter(|e| e.blocking && e.failed())
        .flat_map(|e| {
            let msgs: Vec<String> = match &e.error {
                Some(err) => vec![format!("policy error: {err}")],
                None => e.violations.clone(),
            };
            msgs.into_iter().map(move |message| Violation::Policy {
                policy: e.policy.clone(),
                material: e.material.clone(),
                message,
            })
        })
        .collect()
}

/// Loads `contract`'s policies from a checkout at `root` (`contract lint`).
pub fn load_dir(contract: &Contract, root: &Path) -> Result<Plan, Vec<LoadError>> {
    Plan::load(contract, &Dir(root.to_path_buf()), Limits::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_repository() {
        assert_eq!(
            join("policies/g.yaml", "p.yaml").as_deref(),
            Some("policies/p.yaml")
        );
        assert_eq!(
            join("policies/g.yaml", "file://../x/p.rego").as_deref(),
            Some("x/p.rego")
        );
        assert_eq!(join("g.yaml", "../p.rego"), None);
        assert_eq!(join("policies/g.yaml", "/etc/passwd"), None);
        assert_eq!(toml_arg("\"a,b\""), "a,b");
        assert_eq!(toml_arg("[\"a\", \"b\"]"), "a\nb");
        assert_eq!(toml_arg("3"), "3");
    }
}
