//! `tally policy eval` and `tally policy test`: what SecOps use to write
//! policies (SPEC.md §13.8). Both evaluate through `policy::Plan`, the same
//! path as crafting and intake, on a one-material contract built here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::attest::material::{self, Kind};
use crate::cli::{PolicyEvalArgs, PolicyTestArgs};
use crate::cmd::Report;
use crate::contract::{Contract, Material, PolicyRef};
use crate::exit::{Classify, Failure};
use crate::policy::{self, input, verdict::Evaluator, Evaluation, Limits, Plan};

/// One evaluation run: the policy at `policy` on `material`.
struct Run {
    evaluations: Vec<Evaluation>,
    input: Value,
    kind: Kind,
}

fn kind_of(kind: Option<&str>, file: &Path) -> Result<Kind, Failure> {
    match kind {
        Some(k) => Kind::parse(k)
            .ok_or_else(|| {
                anyhow!(
                    "unknown kind `{k}`; one of: {}",
                    Kind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .usage(),
        None => material::detect_file(file, &material::Options::default())
            .map(|(k, _)| k)
            .map_err(|e| anyhow!("{e}"))
            .usage(),
    }
}

fn evaluate(
    policy_file: &Path,
    material_file: &Path,
    kind: Kind,
    name: &str,
    with: &BTreeMap<String, String>,
) -> Result<Run, Failure> {
    let limits = Limits::from_env();
    limits.install();
    let dir = policy_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = policy_file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{} is not a file", policy_file.display()))
        .usage()?;
    let bytes = std::fs::read(material_file)
        .with_context(|| format!("cannot read {}", material_file.display()))
        .usage()?;
    let statement_mode = kind == Kind::Attestation;
    let contract = Contract {
        name: "policy-eval".into(),
        description: String::new(),
        runner: String::new(),
        env: Vec::new(),
        annotations: Vec::new(),
        materials: vec![Material {
            name: name.to_owned(),
            kind,
            optional: false,
            output: false,
            group: None,
            annotations: Vec::new(),
            skip_upload: false,
            pinned: false,
        }],
        policies: vec![PolicyRef {
            reference: file_name,
            materials: if statement_mode {
                Vec::new()
            } else {
                vec![name.to_owned()]
            },
            with: with
                .iter()
                .map(|(k, v)| (k.clone(), toml::Value::String(v.clone()).to_string()))
                .collect(),
            blocking: true,
        }],
        policy_groups: Vec::new(),
    };
    let plan = Plan::load(&contract, &policy::Dir(dir.to_path_buf()), limits).map_err(|errs| {
        Failure::Usage(anyhow!(errs
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("\n")))
    })?;
    let digest = format!("sha256:{}", ledger_format::hash::sha256(&bytes).to_hex());
    let args: Map<String, Value> = plan
        .bound
        .first()
        .map(|b| {
            b.args
                .iter()
                .filter_map(|(k, v)| policy::spec::arg_value(v).map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let annotations = BTreeMap::new();
    if statement_mode || plan.has_attestation_policies() {
        let statement = statement_bytes(&bytes)?;
        let input = input::statement(&statement, &args)
            .map_err(|e| anyhow!(e))
            .usage()?;
        let evaluations = plan.statement(&statement, &digest, Evaluator::Client);
        return Ok(Run {
            evaluations,
            input,
            kind,
        });
    }
    let m = input::Material {
        name,
        kind,
        digest: &digest,
        bytes: Some(&bytes),
        value: None,
        annotations: &annotations,
    };
    let input = input::material(&m, &args).unwrap_or_else(|e| json!({ "error": e }));
    let evaluations = plan.material(&m, Evaluator::Client);
    if evaluations.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "the policy has no script for kind {kind} (it evaluates: {})",
            plan.bound
                .first()
                .map(|b| format!("{:?}", b.target))
                .unwrap_or_default()
        )));
    }
    Ok(Run {
        evaluations,
        input,
        kind,
    })
}

/// A statement, or the payload of a DSSE envelope holding one.
fn statement_bytes(bytes: &[u8]) -> Result<Vec<u8>, Failure> {
    use base64::Engine as _;
    let v: Value = serde_json::from_slice(bytes)
        .context("the attestation is not JSON")
        .usage()?;
    match v.get("payload").and_then(Value::as_str) {
        Some(p) => base64::engine::general_purpose::STANDARD
            .decode(p)
            .context("the envelope's payload is not base64")
            .usage(),
        None => Ok(bytes.to_vec()),
    }
}

fn parse_with(with: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    with.iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--with {w:?}: expected NAME=VALUE"))
                .usage()
        })
        .collect()
}

/// `tally policy eval`
pub fn eval(a: &PolicyEvalArgs) -> Result<Report, Failure> {
    let kind = kind_of(a.kind.as_deref(), &a.material)?;
    let with = parse_with(&a.with)?;
    let run = evaluate(&a.policy, &a.material, kind, &a.name, &with)?;
    let mut text = String::new();
    for e in &run.evaluations {
        text += &e.summary();
        text.push('\n');
        for v in &e.violations {
            text += &format!("  - {v}\n");
        }
    }
    if a.show_input {
        text += &format!(
            "input:\n{}\n",
            serde_json::to_string_pretty(&run.input).unwrap_or_default()
        );
    }
    let failed = run.evaluations.iter().any(Evaluation::failed);
    let verdict = if failed {
        "failed"
    } else if run.evaluations.iter().all(|e| e.skipped) {
        "skipped"
    } else {
        "passed"
    };
    let json = json!({
        "verdict": verdict,
        "kind": run.kind.as_str(),
        "evaluations": run.evaluations,
        "input": run.input,
    });
    if failed {
        let n: usize = run
            .evaluations
            .iter()
            .map(|e| e.violations.len() + usize::from(e.error.is_some()))
            .sum();
        return Err(Failure::Refused(anyhow!(crate::exit::Details {
            message: format!("{text}the policy failed ({n} problem(s))"),
            json,
        })));
    }
    Ok(Report { text, json })
}

/// A policy test file (`*.test.toml`), SPEC.md §13.8.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(rename = "test")]
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    /// The policy, relative to the test file.
    policy: PathBuf,
    /// The fixture, relative to the test file.
    material: PathBuf,
    kind: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, toml::Value>,
    /// pass, fail or skip.
    expect: String,
    /// The exact violations expected (as a set), when given.
    violations: Option<Vec<String>>,
    /// Substrings some violation must contain.
    #[serde(default)]
    contains: Vec<String>,
}

fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)
                    .with_context(|| format!("cannot read {}", d.display()))
                    .usage()?
                {
                    let path = e.context("reading a directory").usage()?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.to_string_lossy().ends_with(".test.toml") {
                        out.push(path);
                    }
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Failure::Usage(anyhow!("no *.test.toml file found")));
    }
    Ok(out)
}

fn run_case(dir: &Path, t: &TestCase) -> Result<(), String> {
    let material = dir.join(&t.material);
    let kind = kind_of(t.kind.as_deref(), &material).map_err(|e| e.to_string())?;
    let with = t
        .with
        .iter()
        .map(|(k, v)| {
            let s = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect();
    let run =
        evaluate(&dir.join(&t.policy), &material, kind, "material", &with).map_err(|e| e.to_string())?;
    let errors: Vec<&str> = run
        .evaluations
        .iter()
        .filter_map(|e| e.error.as_deref())
        .collect();
    if !errors.is_empty() {
        return Err(format!("the policy failed to evaluate: {}", errors.join("; ")));
    }
    let mut got: Vec<String> = run
        .evaluations
        .iter()
        .flat_map(|e| e.violations.clone())
        .collect();
    got.sort();
    let verdict = if run.evaluations.iter().any(Evaluation::failed) {
        "fail"
    } else if run.evaluations.iter().all(|e| e.skipped) {
        "skip"
    } else {
        "pass"
    };
    if verdict != t.expect {
        return Err(format!(
            "expected {}, got {verdict} (violations: {got:?})",
            t.expect
        ));
    }
    if let Some(want) = &t.violations {
        let mut want = want.clone();
        want.sort();
        if want != got {
            return Err(format!(
                "violations differ:\n    expected {want:?}\n    got      {got:?}"
            ));
        }
    }
    for c in &t.contains {
        if !got.iter().any(|g| g.contains(c.as_str())) {
            return Err(format!("no violation contains {c:?} (violations: {got:?})"));
        }
    }
    Ok(())
}

/// `tally policy test`
pub fn test(a: &PolicyTestArgs) -> Result<Report, Failure> {
    let mut text = String::new();
    let mut results = Vec::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in test_files(&a.paths)? {
        let src = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))
            .usage()?;
        let tf: TestFile = toml::from_str(&src)
            .map_err(|e| anyhow!("{}: {e}", file.display()))
            .usage()?;
        let dir = file.parent().unwrap_or(Path::new("."));
        for t in &tf.tests {
            if !matches!(t.expect.as_str(), "pass" | "fail" | "skip") {
                return Err(Failure::Usage(anyhow!(
                    "{}: test {:?}: expect must be pass, fail or skip",
                    file.display(),
                    t.name
                )));
            }
            let outcome = run_case(dir, t);
            match &outcome {
                Ok(()) => {
                    passed += 1;
                    text += &format!("ok   {} :: {}\n", file.display(), t.name);
                }
                Err(why) => {
                    failed += 1;
                    text += &format!("FAIL {} :: {}\n  {why}\n", file.display(), t.name);
                }
            }
            results.push(json!({
                "file": file.display().to_string(),
                "name": t.name,
                "passed": outcome.is_ok(),
                "error": outcome.err(),
            }));
        }
    }
    text += &format!("{passed} passed, {failed} failed\n");
    if failed > 0 {
        return Err(Failure::Invalid(anyhow!(crate::exit::Details {
            message: format!("{text}{failed} policy test(s) failed"),
            json: json!({ "passed": passed, "failed": failed, "tests": results }),
        })));
    }
    Ok(Report {
        text,
        json: json!({ "passed": passed, "failed": failed, "tests": results }),
    })
}
