//! `tally attestation …` as a pipeline runs it: the real binary, in a real
//! git checkout, with each runner's environment, against contracts from a
//! file and from a real contracts repository; the envelope checked by an
//! independent in-toto implementation (Python).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{code, contracts_repo, git, stderr, stdout, vectors_dir};

fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts")
}

fn valid(name: &str) -> PathBuf {
    vectors_dir()
        .expect("shared vectors")
        .join("materials/valid")
        .join(name)
}

/// Runs tally in `dir` with exactly `env` (plus PATH and HOME).
/// `attestation init --dry-run <--contract file | --contracts repository>
/// <source> --workflow <w> <rest>`.
fn dry_init<'a>(from: &'a str, source: &'a str, workflow: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let head = [
        "attestation",
        "init",
        "--dry-run",
        from,
        source,
        "--workflow",
        workflow,
    ];
    [&head[..], rest].concat()
}

/// `attestation push --dry-run --key <key> <rest>`.
fn dry_push<'a>(key: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    [&["attestation", "push", "--dry-run", "--key", key][..], rest].concat()
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
    c.current_dir(dir).env_clear();
    for k in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(k) {
            c.env(k, v);
        }
    }
    c.envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run tally")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

fn any_runner_contract(dir: &Path) -> PathBuf {
    let p = dir.join("any.toml");
    std::fs::write(
        &p,
        "schema = \"tally.dev/contract/v1\"\nname = \"any\"\nrunner = \"any\"\n\n[[materials]]\nname = \"version\"\ntype = \"STRING\"\n",
    )
    .unwrap();
    p
}

/// Each runner's environment, the type detected, and the fields captured.
#[test]
fn every_runner_is_detected_in_the_fixed_order_with_its_context() {
    let d = tempfile::tempdir().unwrap();
    let contract = any_runner_contract(d.path());
    let c = contract.to_str().unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "77"),
                ("GITHUB_REPOSITORY", "acme/app"),
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_SHA", "c0ffee"),
                ("GITHUB_ACTOR", "alice"),
                ("GITHUB_REF", "refs/heads/main"),
                ("RUNNER_NAME", "gh-1"),
            ],
            "github-actions",
            "77",
            "https://github.com/acme/app/actions/runs/77",
            "c0ffee",
        ),
        (
            &[
                ("GITLAB_CI", "true"),
                ("CI_JOB_ID", "9"),
                ("CI_JOB_URL", "https://gitlab.example/j/9"),
                ("CI_COMMIT_SHA", "beef"),
                ("GITLAB_USER_LOGIN", "bob"),
                ("CI_COMMIT_REF_NAME", "main"),
            ],
            "gitlab",
            "9",
            "https://gitlab.example/j/9",
            "beef",
        ),
        (
            &[
                ("TF_BUILD", "True"),
                ("BUILD_BUILDID", "5"),
                (
                    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
                    "https://dev.azure.com/acme/",
                ),
                ("SYSTEM_TEAMPROJECT", "app"),
                ("BUILD_SOURCEVERSION", "abcd"),
                ("AGENT_NAME", "agent-1"),
            ],
            "azure-pipelines",
            "5",
            "https://dev.azure.com/acme/app/_build/results?buildId=5",
            "abcd",
        ),
        (
            &[
                ("JENKINS_URL", "https://ci.example/"),
                ("BUILD_URL", "https://ci.example/job/app/3/"),
                ("BUILD_TAG", "jenkins-app-3"),
                ("GIT_COMMIT", "1234"),
                ("NODE_NAME", "n1"),
            ],
            "jenkins",
            "jenkins-app-3",
            "https://ci.example/job/app/3/",
            "1234",
        ),
        (
            &[
                ("CIRCLECI", "true"),
                ("CIRCLE_WORKFLOW_ID", "wf-1"),
                ("CIRCLE_BUILD_URL", "https://circleci.com/gh/acme/app/8"),
                ("CIRCLE_SHA1", "5678"),
            ],
            "circleci",
            "wf-1",
            "https://circleci.com/gh/acme/app/8",
            "5678",
        ),
        (
            &[
                ("TEAMCITY_VERSION", "2024.1"),
                ("BUILD_NUMBER", "12"),
                ("BUILD_VCS_NUMBER", "9abc"),
            ],
            "teamcity",
            "12",
            "",
            "9abc",
        ),
        (
            &[("TEKTON_PIPELINE_RUN", "build-run-x"), ("TEKTON_NAMESPACE", "ci")],
            "tekton",
            "build-run-x",
            "",
            "",
        ),
        (&[("DAGGER_SESSION_PORT", "4321")], "dagger", "", "", ""),
        (&[], "generic", "", "", ""),
        // The order decides, not chance: the outer CI wins over a nested one.
        (
            &[
                ("DAGGER_SESSION_PORT", "1"),
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "1"),
            ],
            "github-actions",
            "1",
            "",
            "",
        ),
        (
            &[("JENKINS_URL", "x"), ("GITLAB_CI", "true"), ("CI_JOB_ID", "2")],
            "gitlab",
            "2",
            "",
            "",
        ),
        // An empty marker is not a marker.
        (
            &[("GITHUB_ACTIONS", ""), ("CIRCLECI", "true")],
            "circleci",
            "",
            "",
            "",
        ),
    ];
    for (env, kind, run_id, url, commit) in cases {
        let o = run(
            d.path(),
            env,
            &dry_init("--contract", c, "w", &["--replace", "--output", "json"]),
        );
        assert_eq!(code(&o), 0, "{kind}: {}", stdout(&o));
        let j = json(&o);
        let r = &j["runner"];
        assert_eq!(r["type"], *kind, "{env:?}");
        assert_eq!(r["run_id"].as_str().unwrap_or(""), *run_id, "{kind}");
        assert_eq!(r["url"].as_str().unwrap_or(""), *url, "{kind}");
        assert_eq!(r["commit"].as_str().unwrap_or(""), *commit, "{kind}");
        // Only documented variables are recorded, never the rest of the environment.
        for (k, v) in r["env"].as_object().unwrap() {
            assert!(
                env.iter().any(|(ek, ev)| ek == k && ev == v),
                "{kind}: {k} recorded"
            );
        }
    }
}

struct Flow {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Flow {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        git(&ws, &["init", "-q", "-b", "main"]);
        std::fs::write(ws.join("main.rs"), "fn main() {}\n").unwrap();
        git(&ws, &["add", "."]);
        git(&ws, &["commit", "-q", "-m", "release 1.0"]);
        git(
            &ws,
            &[
                "remote",
                "add",
                "origin",
                "https://user:hunter2@git.example.com/acme/app.git",
            ],
        );
        let env = vec![
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_RUN_ID", "4242".into()),
            ("GITHUB_REPOSITORY", "acme/app".into()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
            ("GIT_SHA", "deadbeef".into()),
            ("RELEASE_VERSION", "1.0.0".into()),
            ("AWS_SECRET_ACCESS_KEY", "must-not-be-recorded".into()),
        ];
        Flow { dir, env }
    }
    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }
    fn tally(&self, args: &[&str]) -> Output {
        self.tally_with(&[], args)
    }
    /// `tally attestation status --output json`.
    fn status(&self) -> serde_json::Value {
        json(&self.tally(&["attestation", "status", "--output", "json"]))
    }
    /// `tally attestation add <args>`.
    fn add(&self, args: &[&str]) -> Output {
        self.tally(&[&["attestation", "add"][..], args].concat())
    }
    fn tally_with(&self, extra: &[(&str, &str)], args: &[&str]) -> Output {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        run(&self.ws(), &env, args)
    }
    fn state(&self) -> Vec<u8> {
        std::fs::read(self.ws().join(".tally/attestation.json")).unwrap()
    }
}

fn ok(o: &Output) {
    assert_eq!(code(o), 0, "stdout: {}\nstderr: {}", stdout(o), stderr(o));
}

/// The release pipeline's steps, shared by both signing rounds.
impl Flow {
    fn init_release(&self) {
        let c = contracts_dir().join("build-and-release.toml");
        ok(&self.tally(&dry_init(
            "--contract",
            c.to_str().unwrap(),
            "payments-release",
            &["--project", "payments", "--version", "1.0.0"],
        )));
    }

    /// The image, the CycloneDX SBOM and the unit tests.
    fn add_release_basics(&self, image: &str) {
        let sbom = valid("sbom.cyclonedx-1.5-multiple-tools.json");
        let junit = valid("petclinic-surefire-reports.zip");
        for (n, v) in [
            ("image", image),
            ("sbom-cyclonedx", sbom.to_str().unwrap()),
            ("unit-tests", junit.to_str().unwrap()),
        ] {
            ok(&self.add(&["--name", n, "--value", v]));
        }
    }

    /// The code scan (with the annotation the contract requires) and an
    /// extra material, detected (no --kind, not in the contract).
    fn add_release_rest(&self) {
        ok(&self.add(&[
            "--name",
            "code-scan",
            "--value",
            valid("checkmarx.sarif").to_str().unwrap(),
            "--annotation",
            "scanner=checkmarx",
        ]));
        ok(&self.add(&[
            "--name",
            "advisory",
            "--value",
            valid("csaf_security_advisory.json").to_str().unwrap(),
        ]));
    }
}

#[test]
fn a_release_pipeline_end_to_end_verified_by_python_in_toto() {
    let f = Flow::new();
    f.init_release();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let image = format!("ghcr.io/acme/app@{digest}");
    let sarif = valid("checkmarx.sarif");
    f.add_release_basics(&image);

    // Not ready: status says so; push refuses with the full list, and the state is kept.
    let s = f.status();
    assert_eq!(s["ready"], false);
    assert_eq!(s["missing_materials"], serde_json::json!(["code-scan"]));
    let text = stdout(&f.tally(&["attestation", "status"]));
    assert!(
        text.contains("✗ code-scan") && text.contains("MISSING") && text.contains("✓ image"),
        "{text}"
    );
    let before = f.state();
    let o = f.tally(&dry_push("nokey", &[]));
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("material `code-scan` (SARIF)") && e.contains("annotation `change-ticket`"),
        "{e}"
    );
    assert_eq!(f.state(), before);

    // A material annotation the contract requires.
    let o = f.add(&["--name", "code-scan", "--value", sarif.to_str().unwrap()]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).contains("--annotation scanner=<value>"),
        "{}",
        stderr(&o)
    );
    f.add_release_rest();
    let s = f.status();
    assert_eq!(s["ready"], true, "{s}");
    let extra = s["materials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "advisory")
        .unwrap();
    assert_eq!(extra["kind"], "CSAF_SECURITY_ADVISORY");

    for (alg, pw) in [("ecdsa-p256", Some("correct horse")), ("ed25519", None)] {
        let key = format!("{alg}.key");
        let pubk = format!("{alg}.pub");
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if let Some(p) = pw {
            extra.push(("TALLY_KEY_PASSWORD", p));
        }
        let g = f.tally_with(
            &extra,
            &[
                "key",
                "generate",
                "--kind",
                "signing",
                "--algorithm",
                alg,
                "--key-out",
                &key,
                "--pub-out",
                &pubk,
                "--output",
                "json",
            ],
        );
        ok(&g);
        let keyid = json(&g)["key_id"].as_str().unwrap().to_owned();
        if alg == "ecdsa-p256" {
            let k = std::fs::read_to_string(f.ws().join(&key)).unwrap();
            assert!(k.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
            // Wrong password: a usage error, and nothing is signed or cleared.
            let before = f.state();
            let o = f.tally_with(
                &[("TALLY_KEY_PASSWORD", "wrong")],
                &dry_push(&key, &["--annotation", "change-ticket=CHG-7"]),
            );
            assert_eq!(code(&o), 2);
            assert!(stderr(&o).contains("does not decrypt"), "{}", stderr(&o));
            assert_eq!(f.state(), before);
            assert!(!f.ws().join("attestation.dsse.json").exists());
        }
        let env_file = format!("{alg}.dsse.json");
        let o = f.tally_with(
            &extra,
            &dry_push(
                &key,
                &[
                    "--annotation",
                    "change-ticket=CHG-7",
                    "--envelope",
                    &env_file,
                    "--output",
                    "json",
                ],
            ),
        );
        ok(&o);
        let p = json(&o);
        assert_eq!(p["keyid"], keyid.as_str());
        let st = &p["statement"];
        check_statement(st, &image, &digest);
        // The state is gone after a push: the run is over.
        assert!(!f.ws().join(".tally/attestation.json").exists());

        // Our own verifier, and tampering.
        ok(&f.tally(&["attestation", "verify", &env_file, "--key", &pubk]));
        let mut env: Value = serde_json::from_slice(&std::fs::read(f.ws().join(&env_file)).unwrap()).unwrap();
        let sig = env["signatures"][0]["sig"].as_str().unwrap().to_owned();
        let mut bad = sig.into_bytes();
        bad[10] = if bad[10] == b'A' { b'B' } else { b'A' };
        env["signatures"][0]["sig"] = String::from_utf8(bad).unwrap().into();
        std::fs::write(f.ws().join("bad.json"), env.to_string()).unwrap();
        assert_eq!(
            code(&f.tally(&["attestation", "verify", "bad.json", "--key", &pubk])),
            1
        );

        // The independent implementation.
        python_verify(&f.ws().join(&env_file), &f.ws().join(&pubk), &keyid, true);
        python_verify(&f.ws().join("bad.json"), &f.ws().join(&pubk), &keyid, false);

        if alg == "ecdsa-p256" {
            // Start again for the Ed25519 round.
            f.init_release();
            f.add_release_basics(&image);
            f.add_release_rest();
        }
    }
}

fn check_statement(st: &Value, image: &str, digest: &str) {
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects = st["subject"].as_array().unwrap();
    let names: Vec<&str> = subjects.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["image", "git.head"],
        "outputs and the git HEAD are the subjects"
    );
    assert_eq!(
        subjects[0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(subjects[0]["uri"], format!("oci://{image}"));
    assert_eq!(subjects[1]["annotations"]["tally.git.message"], "release 1.0\n");
    let bd = &st["predicate"]["buildDefinition"];
    assert_eq!(bd["buildType"], "https://tally.dev/attestation/v1");
    let ext = &bd["externalParameters"];
    assert_eq!(ext["workflow"], "payments-release");
    assert_eq!(ext["project"], "payments");
    assert_eq!(ext["version"], "1.0.0");
    assert_eq!(ext["contract"]["name"], "build-and-release");
    assert_eq!(ext["annotations"]["change-ticket"], "CHG-7");
    assert_eq!(ext["annotations"]["owner"], "platform-security");
    let int = &bd["internalParameters"];
    assert_eq!(int["runner"]["type"], "github-actions");
    assert_eq!(int["env"]["GIT_SHA"], "deadbeef");
    let all = st.to_string();
    assert!(
        !all.contains("must-not-be-recorded"),
        "an unlisted variable leaked into the statement"
    );
    assert!(
        !all.contains("hunter2"),
        "remote credentials leaked into the statement"
    );
    let dep = &bd["resolvedDependencies"][0];
    assert_eq!(
        dep["uri"],
        "git+https://git.example.com/acme/app.git@refs/heads/main"
    );
    let by = st["predicate"]["runDetails"]["byproducts"].as_array().unwrap();
    let kinds: Vec<&str> = by
        .iter()
        .map(|b| b["annotations"]["tally.material.kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "SBOM_CYCLONEDX_JSON",
            "JUNIT_XML",
            "SARIF",
            "CSAF_SECURITY_ADVISORY"
        ]
    );
    assert_eq!(by[2]["annotations"]["scanner"], "checkmarx");
    assert_eq!(by[3]["annotations"]["tally.material.extra"], "true");
    assert_eq!(
        st["predicate"]["runDetails"]["builder"]["id"],
        "https://tally.dev/runner/github-actions"
    );
    assert_eq!(
        int["runner"]["url"],
        "https://github.com/acme/app/actions/runs/4242"
    );
}

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import securesystemslib, in_toto_attestation, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with securesystemslib and in-toto-attestation is required under CI=true");
        }
        println!("skipping: python3 with securesystemslib and in-toto-attestation is not available");
    }
    ok
}

fn python_verify(envelope: &Path, key: &Path, keyid: &str, expect_ok: bool) {
    if !python_ready() {
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/intoto_verify.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(envelope)
        .arg(key)
        .arg(keyid)
        .output()
        .unwrap();
    assert_eq!(
        o.status.success(),
        expect_ok,
        "python in-toto check of {}: {}{}",
        envelope.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if expect_ok {
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("OK https://slsa.dev/provenance/v1"));
    }
}

/// A contracts repository: the contract at the tracked head, or at a pinned revision.
#[test]
fn contract_from_a_repository_at_head_or_pinned() {
    let f = Flow::new();
    let repo = contracts_repo(f.dir.path());
    let v1 = git(&repo, &["rev-parse", "HEAD"]);
    let v1 = v1.as_str();
    // v2 makes the advisory contract require a CSAF informational advisory too.
    let p = repo.join("security-advisories.toml");
    let mut t = std::fs::read_to_string(&p).unwrap();
    t.push_str("\n[[materials]]\nname = \"info\"\ntype = \"CSAF_INFORMATIONAL_ADVISORY\"\n");
    std::fs::write(&p, t).unwrap();
    git(
        &repo,
        &["commit", "-q", "-am", "v2: require an informational advisory"],
    );
    let r = repo.to_str().unwrap();

    let o = f.tally(&dry_init(
        "--contracts",
        r,
        "psirt-advisories",
        &["--output", "json"],
    ));
    ok(&o);
    let j = json(&o);
    assert_eq!(j["project"], "product-security");
    assert_ne!(j["contract"]["commit"], v1);
    let s = f.status();
    assert!(
        s["missing_materials"]
            .as_array()
            .unwrap()
            .contains(&"info".into()),
        "{s}"
    );

    let o = f.tally(&dry_init(
        "--contracts",
        r,
        "psirt-advisories",
        &["--contract-revision", v1, "--replace", "--output", "json"],
    ));
    ok(&o);
    assert_eq!(json(&o)["contract"]["commit"], v1);
    let s = f.status();
    assert!(
        !s["missing_materials"]
            .as_array()
            .unwrap()
            .contains(&"info".into()),
        "{s}"
    );
    // Pinned: the materials of v1 are enough.
    ok(&f.add(&[
        "--name",
        "vex-disclosure",
        "--value",
        valid("csaf_vex_v0.2.0.json").to_str().unwrap(),
    ]));
    let s = f.status();
    assert_eq!(s["ready"], true, "v1 needs only one of group vex: {s}");
    let o = f.tally(&dry_push("none.key", &[]));
    assert_eq!(
        code(&o),
        2,
        "ready, so push gets as far as the key: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("cannot read the signing key"),
        "{}",
        stderr(&o)
    );

    // An unknown workflow and an unknown revision are usage errors; a missing repository is unavailable.
    let o = f.tally(&dry_init("--contracts", r, "nope", &["--replace"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("not declared"));
    let o = f.tally(&dry_init(
        "--contracts",
        r,
        "psirt-advisories",
        &[
            "--contract-revision",
            "0123456789012345678901234567890123456789",
            "--replace",
        ],
    ));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let missing_repo = f.dir.path().join("no-such-repo");
    let o = f.tally(&dry_init(
        "--contracts",
        missing_repo.to_str().unwrap(),
        "psirt-advisories",
        &["--replace"],
    ));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot fetch the contract"), "{}", stderr(&o));
}

/// Each bad input: one clear error, its exit code class, the state as it was.
#[test]
fn bad_input_is_a_clear_error_with_its_exit_class_and_the_state_untouched() {
    let f = Flow::new();
    let contract = contracts_dir().join("build-and-release.toml");
    let c = contract.to_str().unwrap();
    // A contract that cannot be fetched: unavailable.
    let o = f.tally(&dry_init("--contract", "/nonexistent/c.toml", "w", &[]));
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("cannot read the contract"));
    // An invalid contract: invalid, every problem listed.
    std::fs::write(
        f.ws().join("bad.toml"),
        "schema = \"tally.dev/contract/v1\"\nname = \"Bad Name\"\nrunner = \"travis\"\n",
    )
    .unwrap();
    let o = f.tally(&dry_init("--contract", "bad.toml", "w", &[]));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // A runner mismatch: refused.
    let o = run(
        &f.ws(),
        &[("GIT_SHA", "x"), ("RELEASE_VERSION", "y")],
        &dry_init("--contract", c, "w", &[]),
    );
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).contains("requires runner `github-actions` but this is `generic`"),
        "{}",
        stderr(&o)
    );
    // A missing env var: refused, naming it.
    let o = run(
        &f.ws(),
        &[("GITHUB_ACTIONS", "true"), ("GIT_SHA", "x")],
        &dry_init("--contract", c, "w", &["--output", "json"]),
    );
    assert_eq!(code(&o), 4);
    let j = json(&o);
    assert_eq!(j["details"]["missing"], serde_json::json!(["RELEASE_VERSION"]));
    assert!(
        !f.ws().join(".tally/attestation.json").exists(),
        "a refused init leaves no state"
    );
    // No server and no --dry-run: usage, pointing at both ways out.
    let o = f.tally(&["attestation", "init", "--workflow", "w"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("TALLY_SERVER") && stderr(&o).contains("--dry-run"));

    ok(&f.tally(&dry_init("--contract", c, "w", &[])));
    let state = f.state();
    // A second init does not clobber the run.
    let o = f.tally(&dry_init("--contract", c, "w", &[]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already in progress") && stderr(&o).contains("--replace"));
    assert_eq!(f.state(), state);
    std::fs::write(f.ws().join("empty.xml"), "").unwrap();
    let sarif = valid("report.sarif");
    let sarif = sarif.to_str().unwrap();
    // (arguments of `add`, exit code, what the error says)
    let failures: [(&[&str], i32, &str); 5] = [
        // A material of the wrong type: invalid, with the reason.
        (
            &["--name", "unit-tests", "--value", sarif],
            1,
            "not a valid JUNIT_XML",
        ),
        // A kind that contradicts the contract: usage.
        (
            &["--name", "unit-tests", "--kind", "SARIF", "--value", sarif],
            2,
            "is JUNIT_XML in contract",
        ),
        // A file that does not exist: usage.
        (
            &["--name", "unit-tests", "--value", "missing.xml"],
            2,
            "cannot open the material file missing.xml",
        ),
        // An empty file: invalid.
        (&["--name", "unit-tests", "--value", "empty.xml"], 1, "is empty"),
        // An unknown kind: usage, listing the kinds.
        (
            &["--name", "x", "--kind", "SBOM", "--value", "a"],
            2,
            "SBOM_CYCLONEDX_JSON",
        ),
    ];
    for (args, exit, says) in failures {
        let o = f.add(args);
        assert_eq!(code(&o), exit, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert_eq!(f.state(), state, "failed adds leave the state as it was");

    // A corrupt state: usage, with the way out; reset clears it.
    std::fs::write(f.ws().join(".tally/attestation.json"), b"{\"schema\":").unwrap();
    for args in [
        &["attestation", "status"][..],
        &["attestation", "add", "--name", "a", "--value", "b"][..],
    ] {
        let o = f.tally(args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(
            stderr(&o).contains("corrupt") && stderr(&o).contains("tally attestation reset"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(f.state(), b"{\"schema\":");
    let o = f.tally(&[
        "attestation",
        "reset",
        "--trigger",
        "cancellation",
        "--reason",
        "bad state",
        "--output",
        "json",
    ]);
    ok(&o);
    assert_eq!(json(&o)["status"], "cancelled");
    assert!(!f.ws().join(".tally/attestation.json").exists());
    // Nothing in progress: status and reset say so.
    assert_eq!(code(&f.tally(&["attestation", "status"])), 2);
    assert_eq!(code(&f.tally(&["attestation", "reset"])), 2);
    // TALLY_STATE moves the state.
    let o = f.tally_with(
        &[("TALLY_STATE", "elsewhere/s.json")],
        &dry_init("--contract", c, "w", &[]),
    );
    ok(&o);
    assert!(f.ws().join("elsewhere/s.json").exists());
    ok(&f.tally_with(
        &[("TALLY_STATE", "elsewhere/s.json")],
        &["attestation", "reset", "--reason", "done"],
    ));
}

/// The statement's exact shape for a fixed state (SPEC.md §11.5 shows it).
#[test]
fn statement_shape_is_stable() {
    use std::collections::BTreeMap;
    use tally::attest::git::{GitHead, Remote};
    use tally::attest::runner::RunnerContext;
    use tally::attest::state::{ContractRef, MaterialRecord, State, STATE_SCHEMA};
    let m =
        |name: &str, kind: &str, value: &str, digest: &str, size: u64, output: bool, ann: &[(&str, &str)]| {
            MaterialRecord {
                name: name.into(),
                kind: kind.into(),
                value: value.into(),
                digest: digest.into(),
                size,
                output,
                in_contract: true,
                summary: String::new(),
                annotations: ann.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
                lenient: false,
                stored: String::new(),
                added_at: "2026-11-25T10:00:00Z".into(),
                policy_evaluations: Vec::new(),
            }
        };
    let st = State {
        schema: STATE_SCHEMA.into(),
        run_id: "run-7f3a".into(),
        dry_run: false,
        server: "https://tally.example.com".into(),
        workflow: "payments-release".into(),
        project: "payments".into(),
        version: "1.4.2".into(),
        contract: ContractRef {
            revision: tally::contract::ContractRevision {
                name: "build-and-release".into(),
                commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
                blob: "ea2fa1b6c257a958d4988b8bf857d881c8c42e24".into(),
            },
            source: "contracts@main".into(),
            text: String::new(),
            policies_commit: String::new(),
            pinned_at: String::new(),
            policies: BTreeMap::new(),
        },
        runner: RunnerContext {
            kind: "github-actions".into(),
            run_id: "8812".into(),
            url: "https://github.com/acme/payments/actions/runs/8812".into(),
            commit: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
            reference: "refs/tags/v1.4.2".into(),
            actor: "alice".into(),
            runner_name: "gh-runner-3".into(),
            env: BTreeMap::from([("GITHUB_RUN_ID".into(), "8812".into())]),
        },
        env: BTreeMap::from([
            ("GIT_SHA".into(), "9fceb02".into()),
            ("RELEASE_VERSION".into(), "1.4.2".into()),
        ]),
        git: Some(GitHead {
            commit: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
            branch: Some("main".into()),
            author: "Alice <alice@example.com>".into(),
            author_date: "2026-11-25T09:58:00Z".into(),
            committer: "Alice <alice@example.com>".into(),
            message: "Release 1.4.2\n".into(),
            signed: true,
            remotes: vec![Remote {
                name: "origin".into(),
                url: "https://github.com/acme/payments.git".into(),
            }],
        }),
        started_at: "2026-11-25T10:00:00Z".into(),
        materials: vec![
            m(
                "image",
                "CONTAINER_IMAGE",
                "ghcr.io/acme/payments@sha256:5e1f…",
                &format!("sha256:{}", "5e".repeat(32)),
                0,
                true,
                &[],
            ),
            m(
                "sbom-cyclonedx",
                "SBOM_CYCLONEDX_JSON",
                "bom.json",
                &format!("sha256:{}", "c1".repeat(32)),
                48213,
                false,
                &[
                    ("tally.material.sbom.format", "CycloneDX"),
                    ("tally.material.sbom.version", "1.5"),
                ],
            ),
            m(
                "version",
                "STRING",
                "1.4.2",
                &format!("sha256:{}", "a4".repeat(32)),
                0,
                false,
                &[],
            ),
        ],
    };
    let ann = BTreeMap::from([
        ("change-ticket".to_owned(), "CHG-1042".to_owned()),
        ("owner".to_owned(), "platform-security".to_owned()),
    ]);
    let v = tally::attest::statement::build(&st, &ann, "2026-11-25T10:04:12Z");
    insta::assert_json_snapshot!("provenance_statement", v);
}

/// A CONTAINER_IMAGE given by tag is resolved to its digest in a real registry.
#[test]
fn container_images_resolve_by_tag_in_a_real_registry() {
    let Some(reg) = crate::common::registry() else {
        return;
    };
    let digest = reg.push_image("acme/app", "1.4.2", b"layer bytes");
    let f = Flow::new();
    let c = contracts_dir().join("build-and-release.toml");
    ok(&f.tally(&dry_init("--contract", c.to_str().unwrap(), "w", &[])));
    let o = f.add(&[
        "--name",
        "image",
        "--value",
        &format!("{}/acme/app:1.4.2", reg.addr),
        "--output",
        "json",
    ]);
    ok(&o);
    let m = &json(&o)["material"];
    assert_eq!(m["digest"], digest.as_str());
    assert_eq!(m["value"], format!("{}/acme/app@{digest}", reg.addr));
    assert!(m["summary"]
        .as_str()
        .unwrap()
        .contains("resolved in its registry"));
    let signature = |f: &Flow, value: &str| -> (String, String) {
        let o = f.add(&[
            "--name",
            "image",
            "--replace",
            "--value",
            value,
            "--output",
            "json",
        ]);
        ok(&o);
        let m = json(&o)["material"].clone();
        (
            m["annotations"]["tally.material.image.signature"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            m["summary"].as_str().unwrap().to_owned(),
        )
    };
    let by_tag = format!("{}/acme/app:1.4.2", reg.addr);
    let (sig, summary) = signature(&f, &by_tag);
    assert_eq!(sig, "none", "{summary}");
    assert!(summary.contains("no signature in its registry"), "{summary}");
    // Whether it is signed, as cosign leaves it: a manifest at sha256-<hex>.sig.
    reg.push_image(
        "acme/app",
        &format!("{}.sig", digest.replace(':', "-")),
        b"signature",
    );
    let (sig, summary) = signature(&f, &by_tag);
    assert_eq!(sig, "cosign-tag", "{summary}");
    // Or a referrer of a signature's artifact type (found through the OCI
    // referrers tag schema: this registry has no referrers API); a referrer
    // of another type (tally's own attestation, say) signs nothing.
    let other = reg.push_image("acme/other", "1", b"other layer");
    let referrer = reg.push_image("acme/other", "bundle", b"a sigstore bundle");
    let (_, body) = reg.get(
        &format!("acme/other/manifests/{referrer}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    for (artifact_type, want) in [
        ("application/vnd.dev.tally.attestation.v1+json", "none"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "referrer"),
    ] {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": referrer, "size": body.len(), "artifactType": artifact_type,
            }],
        });
        let r = reqwest::blocking::Client::new()
            .put(format!(
                "http://{}/v2/acme/other/manifests/{}",
                reg.addr,
                other.replace(':', "-")
            ))
            .header("content-type", "application/vnd.oci.image.index.v1+json")
            .body(index.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let (sig, summary) = signature(&f, &format!("{}/acme/other:1", reg.addr));
        assert_eq!(sig, want, "{artifact_type}: {summary}");
    }
    // A contract that pins the image refuses a tag (it can be moved), at
    // `add`, and takes the digest.
    let text = std::fs::read_to_string(&c).unwrap();
    let pinned = text.replace(
        "name = \"image\"\ntype = \"CONTAINER_IMAGE\"\n",
        "name = \"image\"\ntype = \"CONTAINER_IMAGE\"\npinned = true\n",
    );
    assert_ne!(pinned, text);
    let strict = Flow::new();
    let pc = crate::common::contracts_repo(strict.dir.path()).join("build-and-release.toml");
    std::fs::write(&pc, pinned).unwrap();
    ok(&strict.tally(&dry_init("--contract", pc.to_str().unwrap(), "w", &[])));
    let o = strict.add(&["--name", "image", "--value", &by_tag]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("asks for `image` by digest (pinned)"),
        "{}",
        stderr(&o)
    );
    ok(&strict.add(&[
        "--name",
        "image",
        "--value",
        &format!("{}/acme/app@{digest}", reg.addr),
    ]));
    // An unknown tag is not an image (exit 1); a registry that is down is unavailable (exit 3).
    let o = f.add(&[
        "--name",
        "image",
        "--replace",
        "--value",
        &format!("{}/acme/app:9.9.9", reg.addr),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("has no such image"), "{}", stderr(&o));
    let down = format!("127.0.0.1:{}", crate::common::free_port());
    let o = f.add(&[
        "--name",
        "image",
        "--replace",
        "--value",
        &format!("{down}/acme/app:1"),
    ]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot resolve"), "{}", stderr(&o));
}

/// A file material given as an https:// URL is fetched, validated as its
/// kind, hashed and recorded with its URL (without the query).
#[test]
fn a_material_given_by_https_url_is_fetched_validated_and_recorded() {
    let f = Flow::new();
    let served = f.dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let junit = std::fs::read(crate::controlplane::valid("junit.xml")).unwrap();
    std::fs::write(served.join("junit.xml"), &junit).unwrap();
    std::fs::write(served.join("notes.txt"), "not a test report\n").unwrap();
    let (ca, cert, key) = crate::policy::loopback_tls(f.dir.path());
    let (mut server, port) = crate::common::python_fixture_server("https_server.py", &[&served, &cert, &key]);
    let c = contracts_dir().join("build-and-release.toml");
    ok(&f.tally(&dry_init("--contract", c.to_str().unwrap(), "w", &[])));
    let ca = ca.to_str().unwrap();
    let url = format!("https://127.0.0.1:{port}/junit.xml");
    let o = f.tally_with(
        &[("TALLY_CA_FILE", ca)],
        &[
            "attestation",
            "add",
            "--name",
            "unit-tests",
            "--value",
            &format!("{url}?token=secret"),
            "--output",
            "json",
        ],
    );
    ok(&o);
    let m = &json(&o)["material"];
    assert_eq!(m["kind"], "JUNIT_XML");
    assert_eq!(m["value"], "junit.xml");
    assert_eq!(
        m["digest"],
        format!("sha256:{}", ledger_format::hash::sha256(&junit).to_hex())
    );
    assert_eq!(
        m["annotations"]["tally.material.url"],
        url.as_str(),
        "the query is not recorded"
    );
    // Nothing fetched is left behind.
    let left: Vec<_> = std::fs::read_dir(f.ws().join(".tally"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("fetch-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Not its kind (exit 1, validated as any file is), missing (exit 1),
    // untrusted certificate (exit 3), plain http or credentials (exit 2).
    for (value, env, exit, says) in [
        (
            format!("https://127.0.0.1:{port}/notes.txt"),
            true,
            1,
            "not a valid JUNIT_XML",
        ),
        (format!("https://127.0.0.1:{port}/missing.xml"), true, 1, "404"),
        (url.clone(), false, 3, "cannot fetch"),
        (
            format!("http://127.0.0.1:{port}/junit.xml"),
            true,
            2,
            "over https:// only",
        ),
        (
            format!("https://u:p@127.0.0.1:{port}/junit.xml"),
            true,
            2,
            "carries credentials",
        ),
    ] {
        let extra: Vec<(&str, &str)> = if env { vec![("TALLY_CA_FILE", ca)] } else { vec![] };
        let o = f.tally_with(
            &extra,
            &[
                "attestation",
                "add",
                "--name",
                "unit-tests",
                "--replace",
                "--value",
                &value,
            ],
        );
        assert_eq!(code(&o), exit, "{value}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{value}: {}", stderr(&o));
    }
    let _ = server.kill();
}

/// A HELM_CHART given as `oci://…` is pulled from its registry (the chart
/// layer of its manifest, as `helm pull` takes it), validated, hashed and
/// recorded with the manifest pinned.
#[test]
fn a_helm_chart_is_pulled_from_an_oci_registry() {
    let Some(reg) = crate::common::registry() else {
        return;
    };
    let f = Flow::new();
    let tgz = crate::common::tgz;
    let chart = tgz(&[
        (
            "payments/Chart.yaml",
            "apiVersion: v2\nname: payments\nversion: 1.4.2\n",
        ),
        ("payments/values.yaml", "replicas: 2\n"),
    ]);
    let config = br#"{"apiVersion":"v2","name":"payments","version":"1.4.2"}"#;
    let helm = |repo: &str, tag: &str, layer: &[u8]| {
        reg.push_artifact(
            repo,
            tag,
            ("application/vnd.cncf.helm.config.v1+json", config),
            &[(tally::attest::image::HELM_CHART_LAYER, layer)],
        )
    };
    let manifest = helm("charts/payments", "1.4.2", &chart);
    let c = contracts_dir().join("build-and-release.toml");
    ok(&f.tally(&dry_init("--contract", c.to_str().unwrap(), "w", &[])));
    let o = f.add(&[
        "--name",
        "chart",
        "--value",
        &format!("oci://{}/charts/payments:1.4.2", reg.addr),
        "--output",
        "json",
    ]);
    ok(&o);
    let m = &json(&o)["material"];
    assert_eq!(m["kind"], "HELM_CHART");
    assert_eq!(m["value"], "payments-1.4.2.tgz");
    assert_eq!(
        m["digest"],
        format!("sha256:{}", ledger_format::hash::sha256(&chart).to_hex())
    );
    assert_eq!(
        m["annotations"]["tally.material.oci.reference"],
        format!("{}/charts/payments@{manifest}", reg.addr)
    );
    assert_eq!(m["annotations"]["tally.material.chart.name"], "payments");
    // By digest too; an image is not a chart; a layer that is not a chart
    // is refused as one; an unknown tag is not a chart.
    ok(&f.add(&[
        "--name",
        "chart",
        "--replace",
        "--value",
        &format!("oci://{}/charts/payments@{manifest}", reg.addr),
    ]));
    reg.push_image("charts/not-a-chart", "1", b"image layer");
    helm("charts/broken", "1", &tgz(&[("x/readme.md", "hi")]));
    for (value, says) in [
        (
            format!("oci://{}/charts/not-a-chart:1", reg.addr),
            "not a Helm chart",
        ),
        (format!("oci://{}/charts/broken:1", reg.addr), "Chart.yaml"),
        (
            format!("oci://{}/charts/payments:9.9.9", reg.addr),
            "no such chart",
        ),
    ] {
        let o = f.add(&["--name", "chart", "--replace", "--value", &value]);
        assert_eq!(code(&o), 1, "{value}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{value}: {}", stderr(&o));
    }
}
