//! Policies end to end: the example set against real SBOMs, SARIF and JUnit
//! with rego-cpp (regopy) as the independent engine, `tally policy test`,
//! hostile policies, and the whole gate on a real control plane — a clean
//! push, a blocked push (log unchanged), an advisory violation recorded, an
//! exception granted and recorded, an offline re-check that agrees and a
//! doctored verdict that is caught.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{code, git, stderr, stdout, tally};
use crate::controlplane::{ok, valid, workspace, ControlPlane, SETUP_ENTRIES};

/// Where the crafting state is (the default, relative to the workspace).
const STATE: &str = tally::attest::state::DEFAULT_STATE;

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts/policies")
}

fn policy(name: &str) -> String {
    policies_dir().join(name).to_string_lossy().into_owned()
}

/// `tally policy eval --output json`: (verdict, skipped, sorted violations, input).
fn eval(policy: &str, material: &str, kind: &str) -> (String, bool, Vec<String>, Value) {
    let o = tally(&[
        "policy",
        "eval",
        "--policy",
        policy,
        "--material",
        material,
        "--kind",
        kind,
        "--output",
        "json",
    ]);
    assert!(
        matches!(code(&o), 0 | 4),
        "{policy} on {material}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = if v["details"].is_object() {
        v["details"].clone()
    } else {
        v
    };
    let evals = d["evaluations"].as_array().unwrap();
    assert!(evals.iter().all(|e| e["error"].is_null()), "{d}");
    let mut violations: Vec<String> = evals.iter().flat_map(|e| strings(&e["violations"])).collect();
    violations.sort();
    let skipped = evals.iter().all(|e| e["skipped"] == true);
    (
        d["verdict"].as_str().unwrap().to_owned(),
        skipped,
        violations,
        d["input"].clone(),
    )
}

/// A JSON array of strings.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// `o` exited with `code` and said `text` (on stdout or stderr).
fn expect(o: &std::process::Output, code_: i32, text: &str) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert_eq!(code(o), code_, "{all}");
    assert!(all.contains(text), "expected {text:?} in: {all}");
}

/// rego-cpp's verdict on the same policy script and the same input.
fn regopy(policy: &str, kind: &str, input: &Value) -> (bool, Vec<String>) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), serde_json::to_vec(input).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rego_check.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(policy)
        .arg(kind)
        .arg(f.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "rego_check.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut violations = strings(&v["violations"]);
    violations.sort();
    (v["skipped"].as_bool().unwrap(), violations)
}

#[test]
fn example_policies_agree_with_rego_cpp_on_real_inputs() {
    let Some(vectors) = crate::common::vectors_dir() else {
        return;
    };
    if !crate::common::python_has("regopy, yaml") {
        return;
    }
    let v = |n: &str| {
        vectors
            .join("materials/valid")
            .join(n)
            .to_string_lossy()
            .into_owned()
    };
    let fixture = |n: &str| {
        policies_dir()
            .join("tests/fixtures")
            .join(n)
            .to_string_lossy()
            .into_owned()
    };
    let cdx = [
        v("laravel-7.12.0.bom.1.4.json"),
        v("sbom.cyclonedx-1.5-multiple-tools.json"),
        v("saasbom-apigateway.bom.json"),
        fixture("sbom-with-vulnerabilities.cdx.json"),
    ];
    let spdx = [
        v("example11-rust-hello-server.spdx2.3.json"),
        v("example7-go-bin.spdx2.2.json"),
        v("sbom-spdx-container.json"),
    ];
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for m in &cdx {
        for p in [
            "sbom-quality.yaml",
            "licenses-allowed.yaml",
            "no-critical-vulnerabilities.yaml",
            "sbom-has-components.rego",
        ] {
            cases.push((policy(p), m.clone(), "SBOM_CYCLONEDX_JSON"));
        }
    }
    for m in &spdx {
        for p in ["sbom-quality.yaml", "licenses-allowed.yaml"] {
            cases.push((policy(p), m.clone(), "SBOM_SPDX_JSON"));
        }
    }
    for m in [v("checkmarx.sarif"), v("report.sarif")] {
        cases.push((policy("sarif-no-errors.yaml"), m, "SARIF"));
    }
    for m in [
        v("junit.xml"),
        v("petclinic-surefire-reports.zip"),
        fixture("junit-failing.xml"),
    ] {
        cases.push((policy("junit-no-failures.yaml"), m, "JUNIT_XML"));
    }
    let mut failing = 0;
    for (p, m, kind) in &cases {
        let (verdict, skipped, violations, input) = eval(p, m, kind);
        let (r_skipped, r_violations) = regopy(p, kind, &input);
        assert_eq!(
            (skipped, &violations),
            (r_skipped, &r_violations),
            "{p} on {m}: tally and rego-cpp disagree"
        );
        failing += usize::from(verdict == "failed");
    }
    // Not vacuous: most real inputs break at least one example policy.
    assert!(
        failing >= 10,
        "only {failing} of {} cases have violations",
        cases.len()
    );
}

#[test]
fn policy_tests_of_the_example_set_pass_and_a_wrong_expectation_fails() {
    let o = tally(&["policy", "test", &policies_dir().to_string_lossy()]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0 failed"), "{}", stdout(&o));
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("wrong.test.toml"),
        format!(
            "[[test]]\nname = \"expects a pass\"\npolicy = \"{}\"\nmaterial = \"{}\"\nexpect = \"pass\"\n",
            policy("no-critical-vulnerabilities.yaml"),
            policies_dir()
                .join("tests/fixtures/sbom-with-vulnerabilities.cdx.json")
                .display()
        ),
    )
    .unwrap();
    let o = tally(&["policy", "test", &d.path().to_string_lossy()]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("expected pass, got fail"), "{}", stderr(&o));
}

fn hostile(name: &str, rego: &str, env: &[(&str, &str)]) -> std::process::Output {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, rego).unwrap();
    let m = d.path().join("in.json");
    std::fs::write(&m, "{}").unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
    c.args(["policy", "eval", "--kind", "EVIDENCE", "--policy"])
        .arg(&p)
        .arg("--material")
        .arg(&m);
    c.envs(env.iter().copied()).output().unwrap()
}

/// A hostile policy: its file name, its text, the CLI's environment, the
/// exit code and what the error must say.
type Hostile<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], i32, &'a str);

/// A comprehension of 10^10 steps.
const SLOW: &str = "package slow\nimport rego.v1\nviolations contains m if {\n  n := count([x | some x in numbers.range(1, 100000); some y in numbers.range(1, 100000)])\n  m := sprintf(\"%d\", [n])\n}\n";

#[test]
fn hostile_policies_are_clear_errors_within_the_budget() {
    let deep = format!(
        "package deep\nimport rego.v1\nx := {}1{}\n",
        "[".repeat(1000),
        "]".repeat(1000)
    );
    let cases: [Hostile<'_>; 6] = [
        // The network: refused when compiled, with its place.
        (
            "net.rego",
            "package net\nimport rego.v1\nviolations contains r.body if {\n  r := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1\"})\n}\n",
            &[],
            2,
            "net.rego:4:8: `http.send` is not available",
        ),
        // A policy that does not compile: file:line:column.
        ("broken.rego", "package broken\nimport rego.v1\nviolations contains x if {\n  x := \n}\n", &[], 2, "broken.rego:"),
        // Recursion, which regorus would only find on the stack.
        (
            "rec.rego",
            "package rec\nimport rego.v1\nf(x) := f(x)\nviolations contains y if { y := f(1) }\n",
            &[],
            2,
            "rec.rego:3:1: function `f` is recursive",
        ),
        // Nesting that would make the compiler run for minutes.
        ("deep.rego", &deep, &[], 2, "nested deeper"),
        // A huge comprehension: stopped by the time budget, a policy error.
        ("slow.rego", SLOW, &[("TALLY_POLICY_TIMEOUT_MS", "300")], 4, "time budget"),
        // A huge allocation: stopped by the memory ceiling.
        (
            "mem.rego",
            "package mem\nimport rego.v1\nviolations contains m if {\n  xs := [x | some x in numbers.range(1, 30000000)]\n  m := sprintf(\"%d\", [count(xs)])\n}\n",
            &[("TALLY_POLICY_MEMORY_MIB", "256")],
            4,
            "memory budget",
        ),
    ];
    for (name, rego, env, code_, text) in cases {
        expect(&hostile(name, rego, env), code_, text);
    }
}

/// A contracts repository with one workflow, `gated`, whose contract has
/// a blocking policy (no critical vulnerability), an advisory one
/// (licences) and a blocking attestation policy (the builder).
fn gated_repo(dir: &Path, extra_policy: Option<(&str, &str)>) -> PathBuf {
    let repo = dir.join("contracts");
    std::fs::create_dir_all(repo.join("policies")).unwrap();
    for p in [
        "no-critical-vulnerabilities.yaml",
        "licenses-allowed.yaml",
        "provenance-builder.yaml",
    ] {
        std::fs::copy(policies_dir().join(p), repo.join("policies").join(p)).unwrap();
    }
    std::fs::write(
        repo.join("workflows.toml"),
        "schema = \"tally.dev/contract/v1\"\n\n[[workflows]]\nname = \"gated\"\nproject = \"payments\"\ncontract = \"gated\"\nowners = [\"secops@example.com\"]\n",
    )
    .unwrap();
    // A material the control plane never receives (skip_upload): its
    // policy runs on the client only, and the verdict says so.
    std::fs::write(
        repo.join("policies/reviewed.rego"),
        "package reviewed\nimport rego.v1\nviolations contains \"release notes must be reviewed\" if input.chainloop_metadata.annotations.reviewed != \"yes\"\n",
    )
    .unwrap();
    let mut contract = String::from(
        "schema = \"tally.dev/contract/v1\"\nname = \"gated\"\nrunner = \"github-actions\"\n\n\
         [[materials]]\nname = \"sbom\"\ntype = \"SBOM_CYCLONEDX_JSON\"\n\n\
         [[materials]]\nname = \"notes\"\ntype = \"EVIDENCE\"\noptional = true\nskip_upload = true\n\n\
         [[policies]]\nref = \"policies/reviewed.rego\"\nmaterials = [\"notes\"]\n\n\
         [[policies]]\nref = \"policies/no-critical-vulnerabilities.yaml\"\nmaterials = [\"sbom\"]\n\n\
         [[policies]]\nref = \"policies/licenses-allowed.yaml\"\nmaterials = [\"sbom\"]\nblocking = false\n\n\
         [[policies]]\nref = \"policies/provenance-builder.yaml\"\nwith = { builders = \"https://tally.dev/runner/github-actions\" }\n",
    );
    if let Some((name, rego)) = extra_policy {
        std::fs::write(repo.join("policies").join(name), rego).unwrap();
        contract.push_str(&format!(
            "\n[[policies]]\nref = \"policies/{name}\"\nmaterials = [\"sbom\"]\n"
        ));
    }
    std::fs::write(repo.join("gated.toml"), contract).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "gated contract"]);
    repo
}

fn craft(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)], sbom: &str) -> (Value, std::process::Output) {
    let init = ok(&cp.tally(
        ws,
        env,
        &["attestation", "init", "--workflow", "gated", "--output", "json"],
    ));
    let add = cp.tally(
        ws,
        env,
        &["attestation", "add", "--name", "sbom", "--value", sbom],
    );
    (init, add)
}

fn push(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)], bundle: &str) -> std::process::Output {
    cp.tally(
        ws,
        env,
        &[
            "attestation",
            "push",
            "--key",
            "cosign.key",
            "--bundle",
            bundle,
            "--output",
            "json",
        ],
    )
}

/// A client that lies: the CLI's own policy verdicts erased from the
/// crafting state, so its push reaches the control plane whatever they said.
fn erase_client_verdicts(ws: &Path) {
    let state_path = ws.join(STATE);
    let mut st: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    for m in st["materials"].as_array_mut().unwrap() {
        m.as_object_mut().unwrap().remove("policy_evaluations");
    }
    std::fs::write(&state_path, serde_json::to_vec(&st).unwrap()).unwrap();
}

/// The VSA inside a bundle's verdict.
fn vsa_of(bundle: &Path) -> Value {
    use base64::Engine as _;
    let b: Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let env: Value =
        serde_json::from_slice(&b64.decode(b["verdict"].as_str().expect("a verdict")).unwrap()).unwrap();
    serde_json::from_slice(&b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap()
}

#[test]
fn the_policy_gate_end_to_end() {
    if crate::common::vectors_dir().is_none() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let repo = gated_repo(d.path(), None);
    let cp = ControlPlane::start(&repo, &[]);
    let (ws, op) = workspace(&cp, d.path(), "gated");
    let env = op.env();
    let log: Value = cp.get("/api/v1/log", None).1;
    std::fs::write(ws.join("verdict.pub"), log["verdict_key"].as_str().unwrap()).unwrap();

    // 1. A clean push (an advisory violation: a component without licence).
    let sbom = valid("sbom.cyclonedx-1.5-multiple-tools.json");
    let (init, add) = craft(&cp, &ws, &env, &sbom);
    expect(&add, 0, "✓ policy `no-critical-vulnerabilities` (blocking)");
    assert!(
        stdout(&add).contains("✗ policy `licenses-allowed` (advisory)"),
        "{}",
        stdout(&add)
    );
    assert!(stdout(&add).contains("declares no licence"), "{}", stdout(&add));
    std::fs::write(ws.join("NOTES.md"), "release notes\n").unwrap();
    let notes = cp.tally(
        &ws,
        &env,
        &[
            "attestation",
            "add",
            "--name",
            "notes",
            "--value",
            "NOTES.md",
            "--annotation",
            "reviewed=yes",
        ],
    );
    expect(&notes, 0, "✓ policy `reviewed` (blocking)");
    let status = cp.tally(&ws, &env, &["attestation", "status"]);
    assert!(stdout(&status).contains("ready to push"), "{}", stdout(&status));
    let pushed = ok(&push(&cp, &ws, &env, "clean.bundle.json"));
    assert_eq!(pushed["log_index"], SETUP_ENTRIES);
    let vsa = vsa_of(&ws.join("clean.bundle.json"));
    let p = &vsa["predicate"];
    assert_eq!(vsa["predicateType"], "https://slsa.dev/verification_summary/v1");
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["policiesCommit"].as_str().unwrap().len(), 40);
    let evals = p["policyEvaluations"].as_array().unwrap();
    assert_eq!(evals.len(), 4, "{p}");
    let reviewed = evals.iter().find(|e| e["policy"] == "reviewed").unwrap();
    assert_eq!(
        reviewed["evaluatedBy"], "client",
        "a skip_upload material is the client's claim: {reviewed}"
    );
    let lic = evals.iter().find(|e| e["policy"] == "licenses-allowed").unwrap();
    assert_eq!(
        (lic["blocking"].as_bool(), lic["evaluatedBy"].as_str()),
        (Some(false), Some("control-plane"))
    );
    assert!(lic["violations"][0]
        .as_str()
        .unwrap()
        .contains("declares no licence"));
    assert!(evals
        .iter()
        .any(|e| e["policy"] == "provenance-builder" && e["material"].is_null()));
    let run0 = init["run_id"].as_str().unwrap().to_owned();
    assert!(p["resourceUri"].as_str().unwrap().ends_with(&run0));

    // The auditor, offline: proof, signatures, verdict, and a re-evaluation
    // of the pinned policies on the materials.
    let mats = d.path().join("materials");
    std::fs::create_dir_all(&mats).unwrap();
    std::fs::copy(&sbom, mats.join("sbom.json")).unwrap();
    let verify = |bundle: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--bundle",
            bundle,
            "--log-key",
            &cp.vkey,
            "--key",
            "cosign.pub",
            "--verdict-key",
            "verdict.pub",
        ];
        args.extend_from_slice(extra);
        cp.tally(&ws, &[], &args)
    };
    let repo_s = repo.to_string_lossy().into_owned();
    let mats_s = mats.to_string_lossy().into_owned();
    let o = verify(
        "clean.bundle.json",
        &["--contracts", &repo_s, "--materials", &mats_s],
    );
    expect(&o, 0, "policy verdict signed by the control plane: PASSED");
    // The notes were never uploaded and are not given: listed, not judged.
    assert!(
        stdout(&o).contains("3 evaluation(s) agree") && stdout(&o).contains("1 not re-checked"),
        "{}",
        stdout(&o)
    );
    // A doctored verdict (its advisory violation erased) is caught.
    let mut b: Value = serde_json::from_slice(&std::fs::read(ws.join("clean.bundle.json")).unwrap()).unwrap();
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut env: Value =
            serde_json::from_slice(&b64.decode(b["verdict"].as_str().unwrap()).unwrap()).unwrap();
        let text = String::from_utf8(b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
        let doctored = text.replace("declares no licence", "is fine");
        env["payload"] = b64.encode(doctored).into();
        b["verdict"] = b64.encode(serde_json::to_vec(&env).unwrap()).into();
    }
    std::fs::write(ws.join("doctored.bundle.json"), serde_json::to_vec(&b).unwrap()).unwrap();
    let o = verify(
        "doctored.bundle.json",
        &["--contracts", &repo_s, "--materials", &mats_s],
    );
    expect(&o, 1, "not the one the entry binds");

    // 2. A blocked push: a critical vulnerability (and a copyleft licence).
    let bad = PathBuf::from(policy("tests/fixtures/sbom-with-vulnerabilities.cdx.json"));
    let (init, add) = craft(&cp, &ws, &env, bad.to_str().unwrap());
    let run1 = init["run_id"].as_str().unwrap().to_owned();
    // add records the material and shows the violation.
    expect(&add, 0, "CVE-2022-3602 is rated critical by NVD");
    let status = cp.tally(&ws, &env, &["attestation", "status"]);
    assert!(
        stdout(&status).contains("✗ policy `no-critical-vulnerabilities` on material `sbom`: CVE-2022-3602"),
        "{}",
        stdout(&status)
    );
    let o = push(&cp, &ws, &env, "blocked.bundle.json");
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(cp.published(), SETUP_ENTRIES + 1, "nothing was sent");
    // The control plane does not trust the client: with the CLI's verdict
    // erased from the crafting state, the push reaches it and is refused there.
    erase_client_verdicts(&ws);
    let o = push(&cp, &ws, &env, "blocked.bundle.json");
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    let refusal: Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = refusal.to_string();
    assert!(
        text.contains("policy_violation") && text.contains("CVE-2022-3602"),
        "{text}"
    );
    let refused = refusal["details"]["details"]["violations"].to_string();
    assert!(refused.contains("CVE-2022-3602"), "{text}");
    assert!(
        !refused.contains("readline is licensed"),
        "advisory violations do not refuse: {text}"
    );
    assert_eq!(cp.published(), SETUP_ENTRIES + 1, "the log is unchanged");

    // 3. An exception: granted by an operator, the same push goes through,
    // and the verdict records FAILED with who, why and until when.
    let admin = [("TALLY_TOKEN", cp.admin.as_str())];
    let o = cp.tally(
        &ws,
        &admin,
        &[
            "run",
            "exception",
            &run1,
            "--by",
            "alice@example.com",
            "--reason",
            "CVE-2022-3602 mitigated by the WAF rule 9",
            "--for",
            "1h",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let pushed = ok(&push(&cp, &ws, &env, "excepted.bundle.json"));
    assert_eq!(pushed["log_index"], SETUP_ENTRIES + 1);
    let vsa = vsa_of(&ws.join("excepted.bundle.json"));
    let p = &vsa["predicate"];
    assert_eq!(p["verificationResult"], "FAILED");
    assert_eq!(
        p["exception"]["reason"],
        "CVE-2022-3602 mitigated by the WAF rule 9"
    );
    assert!(p["exception"]["grantedBy"]
        .as_str()
        .unwrap()
        .starts_with("alice@example.com"));
    let o = verify("excepted.bundle.json", &[]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("FAILED")
            && stdout(&o).contains("accepted through an exception by alice@example.com"),
        "{}",
        stdout(&o)
    );
    // The re-check agrees with a FAILED verdict too.
    let mats2 = d.path().join("materials2");
    std::fs::create_dir_all(&mats2).unwrap();
    std::fs::copy(&bad, mats2.join("sbom.json")).unwrap();
    let o = verify(
        "excepted.bundle.json",
        &["--contracts", &repo_s, "--materials", &mats2.to_string_lossy()],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn a_hostile_policy_at_intake_is_a_policy_error_and_the_server_carries_on() {
    if crate::common::vectors_dir().is_none() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let repo = gated_repo(d.path(), Some(("slow.rego", SLOW)));
    let cp = ControlPlane::start(&repo, &[]);
    let (ws, op) = workspace(&cp, d.path(), "gated");
    let env = op.env();
    let (_, add) = craft(&cp, &ws, &env, &valid("laravel-7.12.0.bom.1.4.json"));
    assert_eq!(code(&add), 0, "{}", stderr(&add));
    assert!(stdout(&add).contains("time budget"), "{}", stdout(&add));
    // The control plane evaluates it again (the client's verdict erased):
    // a policy error within its budget, a refusal, and the server carries on.
    erase_client_verdicts(&ws);
    let o = push(&cp, &ws, &env, "b.json");
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("time budget"), "{}", stdout(&o));
    assert_eq!(cp.get("/healthz", None).0, 200);
    assert_eq!(cp.published(), SETUP_ENTRIES);
    // A policy that calls the network does not even start a run.
    let other = d.path().join("b");
    let repo2 = gated_repo(
        &other,
        Some(("net.rego", "package net\nimport rego.v1\nviolations contains x if {\n  x := http.send({\"url\": \"http://127.0.0.1:1\", \"method\": \"get\"}).body\n}\n")),
    );
    let cp2 = ControlPlane::start(&repo2, &[]);
    let (ws2, op2) = workspace(&cp2, &other, "gated");
    let o = cp2.tally(&ws2, &op2.env(), &["attestation", "init", "--workflow", "gated"]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("http.send") && stderr(&o).contains("policies/net.rego:4"),
        "{}",
        stderr(&o)
    );
}

/// A CA and a certificate for 127.0.0.1 it signs (OpenSSL): (ca.pem, cert.pem, key.pem).
pub(crate) fn loopback_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=tally test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

#[test]
fn a_policy_pinned_by_url_is_fetched_once_checked_and_cached() {
    let d = tempfile::tempdir().unwrap();
    let served = d.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let yaml = std::fs::read(policies_dir().join("no-critical-vulnerabilities.yaml")).unwrap();
    std::fs::write(served.join("vulns.yaml"), &yaml).unwrap();
    let (ca, cert, key) = loopback_tls(d.path());
    let (mut server, port) = crate::common::python_fixture_server("https_server.py", &[&served, &cert, &key]);
    let hex = ledger_format::hash::sha256(&yaml).to_hex();
    let url = format!("https://127.0.0.1:{port}/vulns.yaml");
    let repo = d.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let write = |digest: &str| {
        std::fs::write(
            repo.join("c.toml"),
            format!(
                "schema = \"tally.dev/contract/v1\"\nname = \"c\"\n\n[[materials]]\nname = \"sbom\"\ntype = \"SBOM_CYCLONEDX_JSON\"\n\n[[policies]]\nref = \"{url}@sha256:{digest}\"\n"
            ),
        )
        .unwrap();
    };
    let cache = d.path().join("cache");
    let lint = || {
        Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["contract", "lint"])
            .arg(&repo)
            .env("TALLY_POLICY_CA_FILE", &ca)
            .env("TALLY_POLICY_CACHE", &cache)
            .output()
            .unwrap()
    };
    // Another digest than the file's: refused, nothing cached.
    write(&"0".repeat(64));
    let o = lint();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("has digest sha256:{hex}, not the pinned")),
        "{}",
        stderr(&o)
    );
    assert!(!cache.join("0".repeat(64)).exists());
    // The pinned digest: fetched, compiled, cached by digest.
    write(&hex);
    let o = lint();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(cache.join(&hex)).unwrap(), yaml);
    // Fetched once: with the server gone, the cache serves it.
    server.kill().unwrap();
    server.wait().unwrap();
    let o = lint();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A policy over plain HTTP is refused.
    std::fs::write(
        repo.join("c.toml"),
        format!("schema = \"tally.dev/contract/v1\"\nname = \"c\"\n\n[[materials]]\nname = \"sbom\"\ntype = \"SBOM_CYCLONEDX_JSON\"\n\n[[policies]]\nref = \"http://127.0.0.1:1/p.yaml@sha256:{hex}\"\n"),
    )
    .unwrap();
    assert_ne!(code(&lint()), 0);
}
