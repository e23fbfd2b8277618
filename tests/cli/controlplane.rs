//! The control plane end to end: the real `tally serve`, real git
//! repositories, real HTTP, the real CLI — the operator's, the developer's and
//! the auditor's flows, every failure, and authorization on every endpoint.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common::{code, contracts_repo, git, stderr, stdout};

pub struct ControlPlane {
    child: Option<Child>,
    /// Everything the server wrote to stderr so far (drained by a thread, so it never blocks).
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    _stdout: BufReader<std::process::ChildStdout>,
    pub url: String,
    pub admin: String,
    pub vkey: String,
    pub dir: tempfile::TempDir,
}

impl ControlPlane {
    /// `tally verify --bundle <bundle> --log-key <this log's key> --key
    /// cosign.pub --output json`, run in `dir` (an auditor's, offline).
    pub fn verify_bundle(&self, dir: &Path, bundle: &str) -> Output {
        let args = ["verify", "--bundle", bundle, "--log-key", &self.vkey];
        self.tally(
            dir,
            &[],
            &[&args[..], &["--key", "cosign.pub", "--output", "json"]].concat(),
        )
    }

    /// `GET /metrics`, as text.
    pub fn metrics(&self) -> String {
        self.http()
            .get(format!("{}/metrics", self.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// Starts `tally serve` on a free port with a contracts repository at `contracts`.
    pub fn start(contracts: &Path, extra: &[&str]) -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, contracts, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, contracts: &Path, extra: &[&str]) -> ControlPlane {
        Self::start_with_env(dir, contracts, extra, &[])
    }

    /// Starts one in `dir` with `env` added to its environment.
    pub fn start_with_env(
        dir: tempfile::TempDir,
        contracts: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ControlPlane {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--contracts")
            .arg(contracts)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("TALLY_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!("tally serve did not start ({e}): {line} {err}")
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        ControlPlane {
            log,
            child: Some(child),
            _stdout: out,
            url: v["url"].as_str().unwrap().to_owned(),
            admin: v["admin_token"].as_str().unwrap_or_default().to_owned(),
            vkey: v["verifier_key"].as_str().unwrap().to_owned(),
            dir,
        }
    }

    /// SIGKILL: no shutdown, no flush beyond what was made durable.
    pub fn crash(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        c.wait().unwrap()
    }

    pub fn http(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::new()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.http().get(format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        let s = resp.status().as_u16();
        let b = resp.bytes().unwrap();
        (
            s,
            serde_json::from_slice(&b).unwrap_or(Value::String(String::from_utf8_lossy(&b).into())),
        )
    }

    pub fn post(&self, path: &str, token: Option<&str>, ct: &str, body: Vec<u8>) -> (u16, Value) {
        let mut r = self
            .http()
            .post(format!("{}{path}", self.url))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        let s = resp.status().as_u16();
        (
            s,
            serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or(Value::Null),
        )
    }

    pub fn published(&self) -> u64 {
        self.get("/api/v1/log", None).1["sizes"]["sequenced"]
            .as_u64()
            .unwrap()
    }

    /// Runs the CLI against this server in `cwd` with exactly `env` (+ PATH, HOME).
    pub fn tally(&self, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
        c.current_dir(cwd).env_clear();
        for k in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        c.env("TALLY_SERVER", &self.url);
        c.envs(env.iter().copied()).args(args).output().unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn ok(o: &Output) -> Value {
    assert_eq!(code(o), 0, "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

pub(crate) fn valid(name: &str) -> String {
    crate::common::vectors_dir()
        .expect("shared vectors")
        .join("materials/valid")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The GitHub Actions environment of a release job.
pub(crate) fn gh_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_RUN_ID", "991"),
        ("GITHUB_REPOSITORY", "acme/payments"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GIT_SHA", "9fceb02"),
        ("RELEASE_VERSION", "1.4.2"),
        ("TALLY_KEY_PASSWORD", "pw"),
    ]
}

pub(crate) struct Operator {
    pub token: String,
}

impl Operator {
    /// A GitHub Actions pipeline's environment with this workflow's token.
    pub(crate) fn env(&self) -> Vec<(&'static str, &str)> {
        let mut env: Vec<(&'static str, &str)> = gh_env();
        env.push(("TALLY_TOKEN", &self.token));
        env
    }
}

/// A control plane on the example contracts (`tally serve <flags>`), the
/// operator's set-up for `payments-release` and a pipeline workspace — what
/// most tests start from: (temporary directory, contracts repository,
/// control plane, workspace, operator).
pub(crate) fn pipeline(
    flags: &[&str],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    ControlPlane,
    std::path::PathBuf,
    Operator,
) {
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, flags);
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    (d, repo, cp, ws, op)
}

/// A pipeline's workspace (`<dir>/ws`) and the operator's set-up for `workflow`.
pub(crate) fn workspace(cp: &ControlPlane, dir: &Path, workflow: &str) -> (std::path::PathBuf, Operator) {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let op = operator(cp, &ws, workflow);
    (ws, op)
}

/// `git clone <server>/ledger.git <into>` (replacing what is there).
pub(crate) fn clone_ledger(cp: &ControlPlane, into: &Path) -> std::path::PathBuf {
    let _ = std::fs::remove_dir_all(into);
    let o = Command::new("git")
        .args(["clone", "-q", &format!("{}/ledger.git", cp.url)])
        .arg(into)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    into.to_owned()
}

/// Log entries the operator's set-up makes ([`operator`] registers one key:
/// a key entry, SPEC.md §3.2) before any attestation.
pub(crate) const SETUP_ENTRIES: u64 = 1;

/// The operator's flow: a token for the workflow, its signing key registered.
pub(crate) fn operator(cp: &ControlPlane, ws: &Path, workflow: &str) -> Operator {
    let admin = [("TALLY_TOKEN", cp.admin.as_str())];
    let t = ok(&cp.tally(
        ws,
        &admin,
        &[
            "token",
            "create",
            "--workflow",
            workflow,
            "--expires",
            "1d",
            "--output",
            "json",
        ],
    ));
    let token = t["token"].as_str().unwrap().to_owned();
    if !ws.join("cosign.key").exists() {
        ok(&cp.tally(
            ws,
            &[("TALLY_KEY_PASSWORD", "pw")],
            &["key", "generate", "--kind", "signing"],
        ));
    }
    ok(&cp.tally(
        ws,
        &admin,
        &[
            "workflow",
            "key",
            "add",
            "--workflow",
            workflow,
            "--key",
            "cosign.pub",
            "--output",
            "json",
        ],
    ));
    Operator { token }
}

/// `tally attestation push --key <key> --annotation change-ticket=…` and `extra`.
pub(crate) fn push(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)], key: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "attestation",
        "push",
        "--key",
        key,
        "--annotation",
        "change-ticket=CHG-1042",
    ];
    args.extend_from_slice(extra);
    cp.tally(ws, env, &args)
}

/// The crafted run pushed signed with a key the workflow never registered
/// (made in `<ws>/rogue`): refused, exit code 4. The push's output.
pub(crate) fn refused_push(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)]) -> Output {
    let rogue = ws.join("rogue");
    std::fs::create_dir_all(&rogue).unwrap();
    ok(&cp.tally(
        &rogue,
        &[],
        &["key", "generate", "--kind", "signing", "--algorithm", "ed25519"],
    ));
    let o = push(cp, ws, env, "rogue/cosign.key", &[]);
    assert_eq!(crate::common::code(&o), 4, "{}", crate::common::stderr(&o));
    o
}

fn image() -> String {
    format!("ghcr.io/acme/payments@sha256:{}", "5e".repeat(32))
}

/// The developer's flow up to a ready run.
pub(crate) fn craft_release(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)]) -> Value {
    craft_release_with(cp, ws, env, &image()).0
}

/// The developer's flow up to a ready run with `image` as the released
/// image: `init`'s answer and the recorded image, SBOM and test materials.
pub(crate) fn craft_release_with(
    cp: &ControlPlane,
    ws: &Path,
    env: &[(&str, &str)],
    image: &str,
) -> (Value, Vec<Value>) {
    let init = ok(&cp.tally(
        ws,
        env,
        &[
            "attestation",
            "init",
            "--workflow",
            "payments-release",
            "--version",
            "1.4.2",
            "--output",
            "json",
        ],
    ));
    let mut materials = Vec::new();
    for (n, v) in [
        ("image", image.to_owned()),
        ("sbom-spdx", valid("sbom-spdx-container.json")),
        ("unit-tests", valid("junit.xml")),
    ] {
        let a = ok(&cp.tally(
            ws,
            env,
            &[
                "attestation",
                "add",
                "--name",
                n,
                "--value",
                &v,
                "--output",
                "json",
            ],
        ));
        materials.push(a["material"].clone());
    }
    ok(&cp.tally(
        ws,
        env,
        &[
            "attestation",
            "add",
            "--name",
            "code-scan",
            "--value",
            &valid("report.sarif"),
            "--annotation",
            "scanner=tfsec",
        ],
    ));
    (init, materials)
}

#[test]
fn operator_developer_and_auditor_flows_end_to_end() {
    let (d, repo, mut cp, ws, op) = pipeline(&[]);
    let env = op.env();

    let init = craft_release(&cp, &ws, &env);
    let run_id = init["run_id"].as_str().unwrap().to_owned();
    assert_eq!(init["dry_run"], false);
    let status = ok(&cp.tally(&ws, &env, &["attestation", "status", "--output", "json"]));
    assert_eq!(status["ready"], true, "{status}");
    let push = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    let index = push["log_index"].as_u64().unwrap();
    assert_eq!(index, SETUP_ENTRIES);
    let cmd = push["verify_command"].as_str().unwrap();
    assert!(
        cmd.starts_with("tally verify --bundle attestation.bundle.json --log-key "),
        "{cmd}"
    );
    assert!(!ws.join(".tally/attestation.json").exists());

    // The auditor, offline, with only public keys: the bundle.
    let auditor = d.path().join("auditor");
    std::fs::create_dir_all(&auditor).unwrap();
    std::fs::copy(ws.join("attestation.bundle.json"), auditor.join("b.json")).unwrap();
    std::fs::copy(ws.join("cosign.pub"), auditor.join("cosign.pub")).unwrap();
    let v = ok(&cp.verify_bundle(&auditor, "b.json"));
    assert_eq!(v["index"], SETUP_ENTRIES);
    assert_eq!(v["signature_checked"], true);
    assert_eq!(v["entry"]["run"], run_id.as_str());
    // A tampered bundle fails.
    let mut b: Value = serde_json::from_slice(&std::fs::read(auditor.join("b.json")).unwrap()).unwrap();
    b["entry"] = b["entry"]
        .as_str()
        .unwrap()
        .replace("payments-release", "payments-quality")
        .into();
    std::fs::write(auditor.join("bad.json"), b.to_string()).unwrap();
    assert_eq!(
        code(&cp.tally(
            &auditor,
            &[],
            &["verify", "--bundle", "bad.json", "--log-key", &cp.vkey]
        )),
        1
    );

    // The run is SUCCEEDED, visible to its workflow's token and the admin.
    let (s, r) = cp.get(&format!("/api/v1/runs/{run_id}"), Some(&op.token));
    assert_eq!((s, r["status"].as_str()), (200, Some("SUCCEEDED")));
    assert_eq!(r["log_index"], SETUP_ENTRIES);
    let runs = ok(&cp.tally(
        &ws,
        &[("TALLY_TOKEN", &cp.admin)],
        &["run", "list", "--status", "succeeded", "--output", "json"],
    ));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    ok(&cp.tally(&ws, &[("TALLY_TOKEN", &cp.admin)], &["run", "describe", &run_id]));

    // Search by the image digest finds it, with its log index.
    let (s, sr) = cp.get(&format!("/api/v1/search?digest=sha256:{}", "5e".repeat(32)), None);
    assert_eq!(s, 200);
    assert_eq!(sr["results"][0]["log_index"], SETUP_ENTRIES);
    assert_eq!(sr["results"][0]["role"], "subject");
    let (_, sr) = cp.get("/api/v1/search?workflow=payments-release", None);
    assert_eq!(sr["results"].as_array().unwrap().len(), 1);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let (_, sr) = cp.get(&format!("/api/v1/search?contract_revision={commit}"), None);
    assert_eq!(sr["results"].as_array().unwrap().len(), 1, "{sr}");

    // The stored envelope, by digest, is the one in the bundle.
    let bundle =
        tally::attest::bundle::Bundle::parse(&std::fs::read(ws.join("attestation.bundle.json")).unwrap())
            .unwrap();
    let digest = push["envelope_digest"].as_str().unwrap();
    let resp = cp
        .http()
        .get(format!("{}/api/v1/envelopes/{digest}", cp.url))
        .send()
        .unwrap();
    let envelope_bytes = resp.bytes().unwrap().to_vec();
    assert_eq!(envelope_bytes, bundle.envelope);
    let envelope_digest = digest.to_owned();

    // tally audit of the server URL, and of a git clone of its ledger.
    ok(&cp.tally(
        &auditor,
        &[],
        &["audit", &format!("{}/", cp.url), "--log-key", &cp.vkey],
    ));
    let clone = clone_ledger(&cp, &auditor.join("ledger"));
    ok(&cp.tally(
        &auditor,
        &[],
        &["audit", clone.to_str().unwrap(), "--log-key", &cp.vkey],
    ));

    // Artifacts: file materials were uploaded through the control plane.
    let junit = std::fs::read(valid("junit.xml")).unwrap();
    let jd = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&junit))
    );
    ok(&cp.tally(
        &auditor,
        &[("TALLY_TOKEN", &op.token)],
        &["artifact", "download", &jd, "-o", "junit.xml"],
    ));
    assert_eq!(std::fs::read(auditor.join("junit.xml")).unwrap(), junit);
    let other = operator(&cp, &ws, "payments-quality");
    let o = cp.tally(
        &auditor,
        &[("TALLY_TOKEN", &other.token)],
        &["artifact", "download", &jd, "-o", "x.xml"],
    );
    assert_eq!(
        code(&o),
        2,
        "another workflow's token cannot read it: {}",
        stderr(&o)
    );
    assert!(!auditor.join("x.xml").exists());
    // A body that does not have the digest it claims is refused; nothing is stored.
    let fake = format!("sha256:{}", "cd".repeat(32));
    let r = cp
        .http()
        .put(format!(
            "{}/api/v1/artifacts/{fake}?workflow=payments-release",
            cp.url
        ))
        .bearer_auth(&op.token)
        .body("not those bytes")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert!(!cp
        .dir
        .path()
        .join(format!("data/artifacts/sha256/cd/{}", "cd".repeat(32)))
        .exists());
    assert_eq!(
        cp.get(&format!("/api/v1/artifacts/{fake}"), Some(&cp.admin)).0,
        404
    );

    // Stats and metrics.
    let st = ok(&cp.tally(&ws, &[("TALLY_TOKEN", &cp.admin)], &["stats", "--output", "json"]));
    assert_eq!(st["workflows"][0]["succeeded"], 1);
    let m = cp.metrics();
    assert!(
        m.contains("tally_attestations_accepted_total{workflow=\"payments-release\"} 1"),
        "{m}"
    );
    // The two operators' key entries and the attestation.
    assert!(
        m.contains(&format!(
            "tally_tree_size{{stage=\"published\"}} {}",
            2 * SETUP_ENTRIES + 1
        )),
        "{m}"
    );
    assert!(m.contains("tally_runs{status=\"SUCCEEDED\"} 1"));

    // Graceful stop; a restart serves the same log.
    assert!(cp.stop().success());
    // The search index is rebuilt from the log itself: replace it with the
    // tables of an earlier release (string-keyed, holding a stale row the log
    // does not have), restart.
    {
        let db = rusqlite::Connection::open(cp.dir.path().join("data/meta.db")).unwrap();
        db.execute_batch(&format!(
            "DROP TABLE attestations; DROP TABLE digests;
             {}
             INSERT INTO attestations VALUES (7, 'sha256:{stale}', 'w', 'p', 'r', 'c', 'x', 'y', 1);
             INSERT INTO digests VALUES ('sha256:{subject}', 7, 'subject', 'stale');",
            tally::server::meta::EARLIER_SEARCH_TABLES,
            stale = "ee".repeat(32),
            subject = "5e".repeat(32),
        ))
        .unwrap();
    }
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp2 = ControlPlane::start_in(dir, &repo, &[]);
    assert_eq!(cp2.vkey, cp.vkey);
    let setup = 2 * SETUP_ENTRIES;
    assert!(
        cp2.admin.is_empty(),
        "the admin token is shown at first start only"
    );
    assert_eq!(cp2.published(), setup + 1);
    let q = format!("/api/v1/search?digest=sha256:{}", "5e".repeat(32));
    let mut found = Value::Null;
    for _ in 0..100 {
        found = cp2.get(&q, None).1;
        // An answer is complete below the size it states, even while the
        // index is being rebuilt: never "published_size 2, no results"
        // (entry 0 is the key entry).
        assert!(
            found["published_size"].as_u64().unwrap() <= setup
                || found["results"].as_array().is_some_and(|r| !r.is_empty()),
            "{found}"
        );
        if found["results"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(found["results"][0]["log_index"], SETUP_ENTRIES, "{found}");
    assert_eq!(found["results"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["published_size"], setup + 1, "{found}");
    // The envelope is found through the rebuilt index; the stale one is gone.
    let get = |d: &str| {
        cp2.http()
            .get(format!("{}/api/v1/envelopes/{d}", cp2.url))
            .send()
            .unwrap()
    };
    let r = get(&envelope_digest);
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), envelope_bytes);
    assert_eq!(get(&format!("sha256:{}", "ee".repeat(32))).status(), 404);
}

#[test]
fn failures_are_refused_clearly_and_leave_the_log_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, &["--max-body-bytes", "65536"]);
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let op = operator(&cp, &ws, "payments-release");
    let other = operator(&cp, &ws, "payments-quality");
    let mut env = gh_env();
    env.push(("TALLY_TOKEN", &op.token));
    // The two operators' key entries.
    let setup = 2 * SETUP_ENTRIES;
    assert_eq!(cp.published(), setup);

    // Wrong runner: refused at init by the server's contract check.
    let o = cp.tally(
        &ws,
        &[("TALLY_TOKEN", &op.token)],
        &["attestation", "init", "--workflow", "payments-release"],
    );
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("requires runner `github-actions`"),
        "{}",
        stderr(&o)
    );
    // Another workflow's token: refused.
    let mut env_other = gh_env();
    env_other.push(("TALLY_TOKEN", &other.token));
    let o = cp.tally(
        &ws,
        &env_other,
        &["attestation", "init", "--workflow", "payments-release"],
    );
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).contains("not allowed to act for workflow `payments-release`"),
        "{}",
        stderr(&o)
    );
    // Unknown workflow (a workflow token cannot even probe for one: 403 above).
    let mut env_admin = gh_env();
    env_admin.push(("TALLY_TOKEN", &cp.admin));
    let o = cp.tally(&ws, &env_admin, &["attestation", "init", "--workflow", "nope"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not declared"), "{}", stderr(&o));
    // Expired token.
    let t = ok(&cp.tally(
        &ws,
        &[("TALLY_TOKEN", &cp.admin)],
        &[
            "token",
            "create",
            "--workflow",
            "payments-release",
            "--expires",
            "1s",
            "--output",
            "json",
        ],
    ));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let mut env_exp = gh_env();
    let tok = t["token"].as_str().unwrap().to_owned();
    env_exp.push(("TALLY_TOKEN", &tok));
    let o = cp.tally(
        &ws,
        &env_exp,
        &["attestation", "init", "--workflow", "payments-release"],
    );
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("has expired"), "{}", stderr(&o));
    // A revoked token.
    ok(&cp.tally(
        &ws,
        &[("TALLY_TOKEN", &cp.admin)],
        &["token", "revoke", t["id"].as_str().unwrap()],
    ));
    let (s, e) = cp.get("/api/v1/runs", Some(&tok));
    assert_eq!(s, 401);
    assert!(e["message"].as_str().unwrap().contains("revoked"), "{e}");

    // Bad signature: the run is signed with a key the workflow never registered.
    craft_release(&cp, &ws, &env);
    let o = refused_push(&cp, &ws, &env);
    assert!(stderr(&o).contains("signature does not verify"), "{}", stderr(&o));
    assert!(
        ws.join(".tally/attestation.json").exists(),
        "a refused push keeps the state"
    );
    assert_eq!(cp.published(), setup);

    // A missing material the client did not notice (its state's contract was
    // tampered with): the server checks the run's pinned contract itself.
    let sp = ws.join(".tally/attestation.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&sp).unwrap()).unwrap();
    let text = state["contract"]["text"].as_str().unwrap().replace(
        "name = \"unit-tests\"\ntype = \"JUNIT_XML\"",
        "name = \"unit-tests\"\ntype = \"JUNIT_XML\"\noptional = true",
    );
    state["contract"]["text"] = text.into();
    let mats: Vec<Value> = state["materials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] != "unit-tests")
        .cloned()
        .collect();
    state["materials"] = mats.into();
    std::fs::write(&sp, serde_json::to_vec(&state).unwrap()).unwrap();
    let o = push(&cp, &ws, &env, "cosign.key", &["--output", "json"]);
    assert_eq!(code(&o), 4, "{}", stdout(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let violations = j["details"]["details"]["violations"].as_array().unwrap();
    assert!(
        violations.iter().any(|v| v
            .as_str()
            .unwrap()
            .contains("required material `unit-tests` (JUNIT_XML) is missing")),
        "{j}"
    );
    assert_eq!(cp.published(), setup);

    // Raw HTTP: oversized body, malformed JSON, wrong content type.
    let run_id = state["run_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/runs/{run_id}/attestation");
    let (s, e) = cp.post(&path, Some(&op.token), "application/json", vec![b' '; 70_000]);
    assert_eq!(s, 413);
    assert_eq!(e["error"], "too_large");
    assert!(e["hint"].is_string());
    let (s, e) = cp.post(&path, Some(&op.token), "application/json", b"{not json".to_vec());
    assert_eq!((s, e["error"].as_str()), (400, Some("malformed")));
    let (s, e) = cp.post(&path, Some(&op.token), "text/plain", b"{}".to_vec());
    assert_eq!((s, e["error"].as_str()), (415, Some("unsupported_media_type")));
    // A run of an undeclared workflow: the workflow token may not act for
    // it; the admin learns it does not exist.
    let ghost =
        serde_json::to_vec(&json!({"workflow": "ghost", "runner": {"type": "github-actions", "env": {}}}))
            .unwrap();
    for (token, status, error) in [
        (&op.token, 403, "forbidden"),
        (&cp.admin, 404, "unknown_workflow"),
    ] {
        let (s, e) = cp.post("/api/v1/runs", Some(token), "application/json", ghost.clone());
        assert_eq!((s, e["error"].as_str()), (status, Some(error)));
    }
    assert_eq!(cp.published(), setup, "no failure appended anything");

    // A contract changed between init and push: the pinned revision counts.
    ok(&cp.tally(&ws, &env, &["attestation", "reset", "--reason", "retry"]));
    craft_release(&cp, &ws, &env);
    let p = repo.join("build-and-release.toml");
    let mut t = std::fs::read_to_string(&p).unwrap();
    t.push_str("\n[[materials]]\nname = \"pentest\"\ntype = \"EVIDENCE\"\n");
    std::fs::write(&p, t).unwrap();
    git(&repo, &["commit", "-q", "-am", "v2: require a pentest report"]);
    let push = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    assert_eq!(push["log_index"], setup);
    // A run started now is checked against v2.
    let init = ok(&cp.tally(
        &ws,
        &env,
        &[
            "attestation",
            "init",
            "--workflow",
            "payments-release",
            "--output",
            "json",
        ],
    ));
    assert_ne!(
        init["contract"]["commit"],
        git(&repo, &["rev-parse", "HEAD~1"]).as_str()
    );
    let s = ok(&cp.tally(&ws, &env, &["attestation", "status", "--output", "json"]));
    assert!(s["missing_materials"]
        .as_array()
        .unwrap()
        .contains(&json!("pentest")));
    // The run the other workflow cannot even see.
    let rid = init["run_id"].as_str().unwrap();
    assert_eq!(cp.get(&format!("/api/v1/runs/{rid}"), Some(&other.token)).0, 404);
    ok(&cp.tally(&ws, &env, &["attestation", "reset", "--trigger", "cancellation"]));
    assert_eq!(
        cp.get(&format!("/api/v1/runs/{rid}"), Some(&op.token)).1["status"],
        "CANCELLED"
    );
    assert_eq!(cp.published(), setup + 1);
}

/// Every endpoint: anonymous, a workflow token, another workflow's token, the admin.
#[test]
fn authorization_of_every_endpoint() {
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, &[]);
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mine = operator(&cp, &ws, "payments-release").token;
    let theirs = operator(&cp, &ws, "payments-quality").token;
    let admin = cp.admin.clone();
    // A run of payments-release.
    let run = json!({"workflow": "payments-release", "runner": {"type": "github-actions", "env": {}}});
    let (s, r) = cp.post(
        "/api/v1/runs",
        Some(&mine),
        "application/json",
        serde_json::to_vec(&run).unwrap(),
    );
    assert_eq!(s, 201, "{r}");
    let rid = r["run"]["id"].as_str().unwrap().to_owned();

    // (method, path, body) and the status for: none, mine, theirs, admin.
    type Case = (&'static str, String, Option<Value>, [u16; 4]);
    let cases: Vec<Case> = vec![
        ("GET", "/checkpoint".into(), None, [200; 4]), // public; a new log serves its size-0 checkpoint
        ("GET", "/api/v1/log".into(), None, [200; 4]),
        ("GET", "/healthz".into(), None, [200; 4]),
        ("GET", "/readyz".into(), None, [200; 4]),
        ("GET", "/metrics".into(), None, [200; 4]),
        ("GET", "/openapi.json".into(), None, [200; 4]),
        ("GET", "/ledger.git/HEAD".into(), None, [200; 4]),
        ("GET", "/ledger.git/config".into(), None, [404; 4]),
        // A directory of the repository is not a file to serve.
        ("GET", "/ledger.git/objects/pack".into(), None, [404; 4]),
        ("GET", "/tile/0/000".into(), None, [404; 4]),
        // The log holds the two key entries of the operators' set-up.
        ("GET", "/api/v1/proof/inclusion?index=1000".into(), None, [404; 4]),
        (
            "GET",
            "/api/v1/proof/consistency?old=0&new=0".into(),
            None,
            [400; 4],
        ),
        ("GET", "/api/v1/entries/1000".into(), None, [404; 4]),
        (
            "GET",
            format!("/api/v1/envelopes/sha256:{}", "00".repeat(32)),
            None,
            [404; 4],
        ),
        (
            "GET",
            "/api/v1/search?workflow=payments-release".into(),
            None,
            [200; 4],
        ),
        (
            "POST",
            "/api/v1/runs".into(),
            Some(run.clone()),
            [401, 201, 403, 201],
        ),
        ("GET", "/api/v1/runs".into(), None, [401, 200, 200, 200]),
        (
            "GET",
            "/api/v1/runs?workflow=payments-release".into(),
            None,
            [401, 200, 403, 200],
        ),
        ("GET", format!("/api/v1/runs/{rid}"), None, [401, 200, 404, 200]),
        (
            "POST",
            format!("/api/v1/runs/{rid}/attestation"),
            Some(json!({"payload": "", "payloadType": "x", "signatures": []})),
            [401, 422, 404, 422],
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(json!({"workflows": ["payments-release"]})),
            [401, 403, 403, 201],
        ),
        ("GET", "/api/v1/tokens".into(), None, [401, 403, 403, 200]),
        (
            "DELETE",
            "/api/v1/tokens/tok-nope".into(),
            None,
            [401, 403, 403, 404],
        ),
        ("GET", "/api/v1/workflows".into(), None, [401, 200, 200, 200]),
        (
            "POST",
            "/api/v1/workflows/payments-release/keys".into(),
            Some(json!({"public_key": "x"})),
            [401, 403, 403, 422],
        ),
        (
            "GET",
            "/api/v1/workflows/payments-release/keys".into(),
            None,
            [401, 403, 403, 200],
        ),
        (
            "DELETE",
            format!("/api/v1/workflows/payments-release/keys/{}", "ab".repeat(32)),
            None,
            [401, 403, 403, 404],
        ),
        ("GET", "/api/v1/stats".into(), None, [401, 403, 403, 200]),
        ("GET", format!("/api/v1/artifacts/sha256:{}", "ab".repeat(32)), None, [401, 404, 404, 404]),
        ("PUT", "/api/v1/artifacts/sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824?workflow=payments-release".into(), Some(json!("raw:hello")), [401, 201, 403, 200]),
        ("GET", format!("/api/v1/runs/{rid}/state"), None, [401, 404, 404, 404]),
        (
            "PUT",
            format!("/api/v1/runs/{rid}/state"),
            Some(json!({"schema": "tally.dev/crafting-state/v1", "run_id": rid})),
            [401, 428, 404, 428],
        ),
        (
            "POST",
            format!("/api/v1/runs/{rid}/reset"),
            Some(json!({"trigger": "failure"})),
            [401, 200, 404, 409],
        ),
    ];
    for (method, path, body, want) in cases {
        for (who, expect) in [
            None,
            Some(mine.as_str()),
            Some(theirs.as_str()),
            Some(admin.as_str()),
        ]
        .into_iter()
        .zip(want)
        {
            let url = format!("{}{path}", cp.url);
            let mut req = match method {
                "GET" => cp.http().get(&url),
                "PUT" => cp.http().put(&url).body("hello"),
                "POST" => cp
                    .http()
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(body.as_ref().unwrap()).unwrap()),
                _ => cp.http().delete(&url),
            };
            if let Some(t) = who {
                req = req.bearer_auth(t);
            }
            let got = req.send().unwrap();
            let s = got.status().as_u16();
            let b = got.text().unwrap();
            let name = match who {
                None => "anonymous",
                Some(t) if t == mine => "own workflow token",
                Some(t) if t == theirs => "other workflow token",
                _ => "admin",
            };
            assert_eq!(s, expect, "{method} {path} as {name}: {b}");
            if s >= 400 && path.starts_with("/api") {
                let v: Value = serde_json::from_str(&b)
                    .unwrap_or_else(|_| panic!("{method} {path}: error body is not JSON: {b}"));
                assert!(v["error"].is_string() && v["message"].is_string(), "{b}");
            }
        }
    }
    // The workflow-token listing shows only its own workflow's runs.
    let (_, runs) = cp.get("/api/v1/runs", Some(&theirs));
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["workflow"] == "payments-quality"),
        "{runs}"
    );
    // A bearer that is not a token at all.
    assert_eq!(cp.get("/api/v1/runs", Some("tly_wf_forged")).0, 401);
}

#[test]
fn openapi_document_is_stable_and_every_route_exists() {
    let doc = tally::server::api::openapi::document();
    insta::assert_json_snapshot!("openapi", doc);
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, &[]);
    for r in tally::server::api::openapi::ROUTES {
        let path = r
            .path
            .replace("{level}", "0")
            .replace("{index}", "0")
            .replace("{path}", "HEAD")
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{digest}", &format!("sha256:{}", "00".repeat(32)));
        let url = format!("{}{path}", cp.url);
        let resp = match r.method {
            "get" => cp.http().get(&url).send(),
            "post" => cp
                .http()
                .post(&url)
                .header("content-type", "application/json")
                .body("{}")
                .send(),
            "put" => cp.http().put(&url).body("x").send(),
            _ => cp.http().delete(&url).send(),
        }
        .unwrap();
        let s = resp.status().as_u16();
        let body = resp.text().unwrap();
        assert!(
            !(s == 404 && body.contains("no such endpoint")),
            "{} {} is documented but not routed",
            r.method,
            r.path
        );
    }
}

/// The schemas `/openapi.json` publishes (generated from `tally::wire`)
/// describe what the server really answers: live answers validated by an
/// independent validator (python-jsonschema), and every schema a route names
/// exists.
#[test]
fn openapi_schemas_describe_the_live_answers() {
    let doc = tally::server::api::openapi::document();
    for r in tally::server::api::openapi::ROUTES {
        for name in [r.request, r.answer].into_iter().flatten() {
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{} {} names schema {name}, which the document lacks",
                r.method,
                r.path
            );
        }
    }
    if !crate::common::python_has("jsonschema") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, &[]);
    let get = |path: &str, token: Option<&str>| -> serde_json::Value {
        let mut req = cp.http().get(format!("{}{path}", cp.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        serde_json::from_slice(&req.send().unwrap().bytes().unwrap()).unwrap()
    };
    let admin = Some(cp.admin.as_str());
    let served: serde_json::Value = get("/openapi.json", None);
    assert_eq!(served, doc, "the server serves the document the types generate");
    let cases = [
        ("LogInfo", get("/api/v1/log", None)),
        (
            "SearchAnswer",
            get("/api/v1/search?workflow=payments-release", None),
        ),
        ("WorkflowList", get("/api/v1/workflows", admin)),
        ("RunList", get("/api/v1/runs", admin)),
        ("TokenList", get("/api/v1/tokens", admin)),
        ("Stats", get("/api/v1/stats", admin)),
        ("ErrorBody", get("/api/v1/runs/run-none", admin)),
        ("ErrorBody", get("/api/v1/proof/inclusion?index=5", None)),
    ];
    openapi_check(&doc, d.path(), &cases);
}

/// Validates each (schema, answer) of `cases` against the OpenAPI document
/// `doc` with an independent validator (python-jsonschema).
pub(crate) fn openapi_check(doc: &Value, dir: &Path, cases: &[(&str, Value)]) {
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let mut input = String::new();
    for (schema, instance) in cases {
        input.push_str(&serde_json::json!({"schema": schema, "instance": instance}).to_string());
        input.push('\n');
    }
    let (ok, text) = crate::common::python_fixture("openapi_check.py", &[file.as_os_str()], &input);
    assert!(ok, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        cases.len(),
        "{text}"
    );
}

#[test]
fn invalid_configuration_is_a_clear_error_at_start() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("tally.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nmax_body_bytez = 5\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("unknown field `max_body_bytez`"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--listen", "nowhere"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is not an address"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TALLY_RUN_TTL_SECS", "soon")
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("TALLY_RUN_TTL_SECS"), "{}", stderr(&o));
    assert!(
        !d.path().join("tally-data").exists(),
        "nothing is created when the configuration is invalid"
    );
}

#[test]
fn unfinished_runs_expire_and_cannot_be_pushed() {
    let (_d, _repo, cp, ws, op) = pipeline(&["--run-ttl-secs", "1"]);
    let env = op.env();
    let init = craft_release(&cp, &ws, &env);
    let rid = init["run_id"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let o = push(&cp, &ws, &env, "cosign.key", &[]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("EXPIRED"), "{}", stderr(&o));
    assert_eq!(
        cp.get(&format!("/api/v1/runs/{rid}"), Some(&op.token)).1["status"],
        "EXPIRED"
    );
    assert_eq!(cp.published(), SETUP_ENTRIES);
    let runs = ok(&cp.tally(
        &ws,
        &[("TALLY_TOKEN", &cp.admin)],
        &["run", "list", "--status", "expired", "--output", "json"],
    ));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
}

/// One attestation per run holds across a crash (SPEC.md §12.4): a run whose
/// entry is in the log reads as taken from the first request after a
/// restart — even when the search index had not recorded it (the window
/// between the acknowledgement and the index write, forced here by deleting
/// the index rows while the server is down and blocking their rebuild).
#[test]
fn a_run_in_the_log_stays_taken_across_a_crash() {
    let (_d, repo, mut cp, ws, op) = pipeline(&[]);
    let env = op.env();
    let init = craft_release(&cp, &ws, &env);
    let run_id = init["run_id"].as_str().unwrap().to_owned();
    let state = std::fs::read(ws.join(".tally/attestation.json")).unwrap();
    ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    cp.crash();
    {
        let db = rusqlite::Connection::open(cp.dir.path().join("data/meta.db")).unwrap();
        // The index lost the attestation, and cannot get it back: the
        // start-up reindex fails, so only the log can say the run is taken.
        db.execute_batch(
            "DELETE FROM digests; DELETE FROM attestations; \
             UPDATE runs SET status = 'INITIALIZED', finished_at = NULL, log_index = NULL, envelope_digest = NULL; \
             CREATE TRIGGER no_index BEFORE INSERT ON attestations BEGIN SELECT RAISE(ABORT, 'index blocked'); END;",
        )
        .unwrap();
    }
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp2 = ControlPlane::start_in(dir, &repo, &[]);
    // At once, the same run pushed again with a fresh signature: refused.
    std::fs::write(ws.join(".tally/attestation.json"), &state).unwrap();
    let o = push(&cp2, &ws, &env, "cosign.key", &[]);
    assert_eq!(code(&o), 4, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("run_finished") || stderr(&o).contains("SUCCEEDED"),
        "{}",
        stderr(&o)
    );
    assert_eq!(cp2.published(), SETUP_ENTRIES + 1, "one entry for the run");
    let (s, run) = cp2.get(&format!("/api/v1/runs/{run_id}"), Some(&op.token));
    assert_eq!((s, run["status"].as_str()), (200, Some("SUCCEEDED")), "{run}");
    assert_eq!(run["log_index"], SETUP_ENTRIES);
}

/// A request body that breaks on the wire (a malformed chunk size) is the
/// client's 400 `malformed`, not 413 `too_large`.
#[test]
fn a_malformed_chunked_body_is_a_bad_request() {
    use std::io::{Read as _, Write as _};
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, &[]);
    let addr = cp.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /api/v1/runs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         zz\r\n{{}}\r\n0\r\n\r\n",
        cp.admin
    )
    .unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("too_large"), "{answer}");
}

/// Idle connections cannot exhaust the server: at most `max_connections`
/// are open (the next waits in the accept queue), and one on which the
/// client sends nothing for `idle_timeout_secs` — also mid-body — is closed.
#[test]
fn idle_and_stalled_connections_are_bounded_and_closed() {
    use std::io::{Read as _, Write as _};
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cfg = d.path().join("serve.toml");
    std::fs::write(&cfg, "max_connections = 4\nidle_timeout_secs = 1\n").unwrap();
    let cp = ControlPlane::start(&repo, &["--config", cfg.to_str().unwrap()]);
    let addr = cp.url.trim_start_matches("http://").to_owned();
    // Four idle connections, one of them stalled inside a request body.
    let mut idle: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stalled,
        "POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        cp.admin
    )
    .unwrap();
    idle.push(stalled);
    // A fifth client is served once the idle ones are closed (~1 s), not never.
    let started = std::time::Instant::now();
    let (s, _) = cp.get("/healthz", None);
    assert_eq!(s, 200);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "served at once: {waited:?}\n{}",
        cp.log.lock().unwrap()
    );
    // Every idle connection was closed by the server (EOF or reset, never a hang).
    for mut c in idle {
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let r = c.read_to_end(&mut buf);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{r:?}"
        );
    }
}

/// Refused pushes are budgeted per token: past `refusals_per_minute`, a push
/// is answered 429 with Retry-After before its body is read.
#[test]
fn refused_pushes_are_rate_limited_per_token() {
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cfg = d.path().join("serve.toml");
    std::fs::write(&cfg, "refusals_per_minute = 3\n").unwrap();
    let cp = ControlPlane::start(&repo, &["--config", cfg.to_str().unwrap()]);
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    let env = op.env();
    let init = craft_release(&cp, &ws, &env);
    let path = format!("/api/v1/runs/{}/attestation", init["run_id"].as_str().unwrap());
    let bogus = serde_json::to_vec(&json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": "e30",
        "signatures": [{"sig": "AAAA"}],
    }))
    .unwrap();
    for _ in 0..3 {
        let (s, e) = cp.post(&path, Some(&op.token), "application/json", bogus.clone());
        assert_eq!((s, e["error"].as_str()), (422, Some("signature")), "{e}");
    }
    let (s, e) = cp.post(&path, Some(&op.token), "application/json", bogus.clone());
    assert_eq!((s, e["error"].as_str()), (429, Some("rate_limited")), "{e}");
    // Another token is not affected.
    let (s, e) = cp.post(&path, Some(&cp.admin), "application/json", bogus);
    assert_eq!((s, e["error"].as_str()), (422, Some("signature")), "{e}");
    assert_eq!(cp.published(), SETUP_ENTRIES);
}

/// `tally-bench intake --server` loads a control plane it did not start:
/// runs, a token and a key created through the API, every push accepted.
#[test]
fn the_intake_benchmark_loads_an_external_server() {
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let cp = ControlPlane::start(&repo, &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_tally-bench"))
        .args([
            "intake",
            "--server",
            &cp.url,
            "--attestations",
            "40",
            "--proof-reads",
            "40",
            "--clients",
            "4",
        ])
        .env("TALLY_TOKEN", &cp.admin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["errors"].as_u64()),
        (Some(40), Some(0)),
        "{v}"
    );
    assert_eq!(v["server"], cp.url.as_str());
    // The bench registers its key (a key entry), then pushes 40.
    assert_eq!(cp.published(), 41);
}

/// strace attached to `pid` failing `syscalls` with `errno` (strace's
/// `when`: `N` the N-th call only, `N+` from the N-th on), as a full or
/// failing disk would; the fault clears when it is dropped (SIGTERM: strace
/// detaches). `None` where strace cannot attach here.
struct Fault {
    strace: Option<Child>,
    trace: tempfile::NamedTempFile,
}

impl Fault {
    fn inject(pid: u32, syscalls: &str, when: &str) -> Option<Fault> {
        Self::inject_errno(pid, syscalls, "ENOSPC", when)
    }

    fn inject_errno(pid: u32, syscalls: &str, errno: &str, when: &str) -> Option<Fault> {
        let trace = tempfile::NamedTempFile::new().ok()?;
        let mut c = Command::new("strace")
            .args(["-f", "-p", &pid.to_string(), "-e"])
            .arg(format!("trace={syscalls}"))
            .arg("-e")
            .arg(format!("inject={syscalls}:error={errno}:when={when}"))
            .arg("-o")
            .arg(trace.path())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        // strace says "Process <pid> attached" once it is.
        let mut err = BufReader::new(c.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).ok()?;
        if !line.contains("attached") {
            let _ = c.kill();
            let _ = c.wait();
            eprintln!("strace cannot attach here: {line}");
            return None;
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Some(Fault {
            strace: Some(c),
            trace,
        })
    }

    /// Clears the fault (strace detaches). strace can hang detaching from
    /// a child the server is forking (a `git` it spawns): after 3 s it is
    /// killed, which detaches and resumes every tracee.
    fn clear(&mut self) {
        if let Some(mut c) = self.strace.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            for _ in 0..30 {
                if !matches!(c.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Clears the fault; how many calls it failed.
    fn injected(mut self) -> usize {
        self.clear();
        std::fs::read_to_string(self.trace.path()).map_or(0, |t| t.matches("(INJECTED)").count())
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        self.clear();
    }
}

/// SIGTERM exits 0 after the faults, and `tally audit` finds the ledger clean.
fn stop_and_audit(cp: &mut ControlPlane) {
    assert!(cp.stop().success(), "a clean shutdown after the faults");
    let o = cp.tally(
        cp.dir.path(),
        &[],
        &["audit", "data/ledger", "--log-key", &cp.vkey],
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

/// Polls `/readyz` until it answers `want` (10 s at most).
fn readyz_becomes(cp: &ControlPlane, want: u16) {
    let mut last = 0;
    for _ in 0..100 {
        last = cp
            .http()
            .get(format!("{}/readyz", cp.url))
            .send()
            .map_or(0, |r| r.status().as_u16());
        if last == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("/readyz stayed {last}, not {want}");
}

/// A disk that fails (ENOSPC injected into the server's syscalls by strace,
/// first into the sequencing log's fdatasync, then into the renames that
/// publish) makes the server refuse appends with 503 or hold publication,
/// say not-ready, and recover by itself once the fault clears: the pushes
/// retried by the CLI land, nothing acknowledged is lost, no restart, a
/// clean SIGTERM, and the ledger audits clean.
#[test]
fn a_failing_disk_is_survived_without_a_restart() {
    let (_d, repo, mut cp, ws, op) = pipeline(&[]);
    let env = op.env();
    craft_release(&cp, &ws, &env);
    ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    assert_eq!(cp.published(), SETUP_ENTRIES + 1);

    // (phase, syscalls failed, from which call, log size before, what the
    // server logs when the fault starts, and when it is over)
    for (phase, syscalls, when, sequenced_before, said, back) in [
        // The sequencing log cannot be synced: the push is refused (503,
        // Retry-After) and nothing is sequenced.
        (
            "append",
            "fdatasync",
            "1+",
            SETUP_ENTRIES + 1,
            "appends refused",
            "written again",
        ),
        // The sequencing log works but the pack, ref and checkpoint renames
        // fail from the second on (the signed checkpoint is persisted, its
        // publication fails): the push is acknowledged, publication waits.
        (
            "publish",
            "rename,renameat,renameat2",
            "2+",
            SETUP_ENTRIES + 2,
            "publishing stalled",
            "publishing again",
        ),
    ] {
        craft_release(&cp, &ws, &env);
        let Some(fault) = Fault::inject(cp.pid(), syscalls, when) else {
            eprintln!("SKIPPED: strace cannot inject faults on this machine");
            return;
        };
        let pushed = std::thread::scope(|s| {
            let h = s.spawn(|| push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
            readyz_becomes(&cp, 503);
            let log = cp.log.lock().unwrap().clone();
            assert!(log.contains(said), "{phase}: {log}");
            if phase == "publish" {
                // Acknowledged (sequenced) but not published yet.
                let (_, l) = cp.get("/api/v1/log", None);
                assert_eq!(l["sizes"]["sequenced"], sequenced_before + 1, "{l}");
                assert_eq!(l["sizes"]["published"], sequenced_before, "{l}");
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            drop(fault);
            h.join().unwrap()
        });
        let v = ok(&pushed);
        assert_eq!(v["log_index"], sequenced_before, "{phase}: {v}");
        readyz_becomes(&cp, 200);
        assert_eq!(cp.published(), sequenced_before + 1, "{phase}");
        let log = cp.log.lock().unwrap().clone();
        assert!(log.contains(back), "{phase}: {log}");
    }
    let (_, l) = cp.get("/api/v1/log", None);
    assert_eq!(l["sizes"]["published"], SETUP_ENTRIES + 3, "{l}");

    // SIGTERM while publishing fails: a clean exit (0), and the next start
    // publishes what was acknowledged meanwhile.
    craft_release(&cp, &ws, &env);
    let fault = Fault::inject(cp.pid(), "rename,renameat,renameat2", "1+").expect("strace attached above");
    let pushed = std::thread::scope(|s| {
        let h = s.spawn(|| {
            push(
                &cp,
                &ws,
                &env,
                "cosign.key",
                &["--output", "json", "--wait-secs", "2"],
            )
        });
        readyz_becomes(&cp, 503);
        let (_, l) = cp.get("/api/v1/log", None);
        assert_eq!(
            (l["sizes"]["sequenced"].as_u64(), l["sizes"]["published"].as_u64()),
            (Some(SETUP_ENTRIES + 4), Some(SETUP_ENTRIES + 3)),
            "{l}"
        );
        h.join().unwrap()
    });
    assert!(cp.stop().success(), "SIGTERM during a fault exits 0");
    drop(fault);
    assert_eq!(
        code(&pushed),
        3,
        "acknowledged, not published in time: {}",
        stderr(&pushed)
    );
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let mut cp = ControlPlane::start_in(dir, &repo, &[]);
    // The start does not wait for it (its run is claimed from the
    // sequencing log), but publishes it.
    crate::witness::eventually("published after the next start", || {
        cp.get("/api/v1/log", None).1["sizes"]["published"] == SETUP_ENTRIES + 4
    });

    stop_and_audit(&mut cp);
}

/// Fault injection along the path of an append and a publication: for each
/// of the durable-write syscalls, each errno and each N, the N-th call after
/// a push starts fails once (strace). After each, the push (retried by the
/// CLI as CI does) lands exactly once, the log publishes it without a
/// restart, and readiness comes back; at the end a clean SIGTERM, the
/// ledger audits clean, and a restart finds every run once.
/// `TALLY_FAULT_SWEEP=N` sets the largest N (default 3; RELIABILITY.md has
/// the full sweep).
#[test]
fn a_fault_at_any_durable_write_loses_nothing() {
    let max_n: u32 = std::env::var("TALLY_FAULT_SWEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (_d, repo, mut cp, ws, op) = pipeline(&[]);
    let env = op.env();
    let mut runs = Vec::new();
    let mut expected = SETUP_ENTRIES;
    let mut injected = 0;
    for syscalls in ["fdatasync", "fsync", "rename,renameat,renameat2", "openat"] {
        for errno in ["ENOSPC", "EIO"] {
            let mut reached = 0;
            for n in 1..=max_n {
                let init = craft_release(&cp, &ws, &env);
                runs.push(init["run_id"].as_str().unwrap().to_owned());
                let Some(fault) = Fault::inject_errno(cp.pid(), syscalls, errno, &n.to_string()) else {
                    eprintln!("SKIPPED: strace cannot inject faults on this machine");
                    return;
                };
                let o = push(&cp, &ws, &env, "cosign.key", &["--output", "json"]);
                let hit = fault.injected();
                injected += hit;
                if hit > 0 {
                    reached = n;
                }
                // The path of every push reaches each of these calls.
                assert!(
                    n > 1 || hit > 0,
                    "{syscalls} {errno}: the first call was not failed"
                );
                let what = format!("{syscalls} {errno} #{n} ({hit} injected)");
                let v = ok(&o);
                assert_eq!(v["log_index"], expected, "{what}: {v}");
                expected += 1;
                readyz_becomes(&cp, 200);
                let (_, l) = cp.get("/api/v1/log", None);
                assert_eq!(l["sizes"]["sequenced"], expected, "{what}: {l}");
                assert_eq!(l["sizes"]["published"], expected, "{what}: {l}");
            }
            println!("fault sweep: {syscalls} {errno}: calls 1..={reached} of a push failed in turn");
        }
    }
    println!("fault sweep: {injected} faults injected over {expected} pushes, each landed once");
    stop_and_audit(&mut cp);
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let cp2 = ControlPlane::start_in(dir, &repo, &[]);
    for (i, run) in runs.iter().enumerate() {
        let (s, r) = cp2.get(&format!("/api/v1/runs/{run}"), Some(&op.token));
        assert_eq!((s, r["status"].as_str()), (200, Some("SUCCEEDED")), "{r}");
        assert_eq!(r["log_index"], SETUP_ENTRIES + i as u64, "{r}");
    }
    assert_eq!(cp2.published(), expected);
}

/// `tally attestation add --name <name> --kind STRING --value <value>` in `dir`.
fn add_string(cp: &ControlPlane, dir: &Path, env: &[(&str, &str)], name: &str, value: &str) -> Output {
    cp.tally(
        dir,
        env,
        &[
            "attestation",
            "add",
            "--name",
            name,
            "--kind",
            "STRING",
            "--value",
            value,
        ],
    )
}

/// A run whose jobs share no disk (SPEC.md §12.8): `init --remote-state`
/// keeps the crafting state on the control plane; twelve jobs (processes,
/// each in its own empty directory) add materials at once and none is
/// lost; two jobs adding one name with different bytes: one wins, the
/// other is told; `status` from anywhere shows everything; one job pushes,
/// and the attestation names every job's material.
#[test]
fn jobs_that_share_no_disk_craft_one_run_through_the_remote_state() {
    let (d, _repo, cp, ws, _) = pipeline(&[]);
    let op = operator(&cp, &ws, "psirt-advisories");
    let token = op.token.clone();
    let base = [("TALLY_TOKEN", token.as_str()), ("TALLY_REMOTE_STATE", "true")];
    let init = ok(&cp.tally(
        &ws,
        &base,
        &[
            "attestation",
            "init",
            "--workflow",
            "psirt-advisories",
            "--version",
            "2026.12",
            "--output",
            "json",
        ],
    ));
    let run = init["run_id"].as_str().unwrap().to_owned();
    let mut env = base.to_vec();
    env.push(("TALLY_RUN_ID", run.as_str()));
    let job = |n: &str| {
        let dir = d.path().join(format!("job-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    std::thread::scope(|s| {
        let adds: Vec<_> = (0..12)
            .map(|i| {
                let (dir, env) = (job(&i.to_string()), env.clone());
                let cp = &cp;
                s.spawn(move || {
                    add_string(
                        cp,
                        &dir,
                        &env,
                        &format!("shard-{i}"),
                        &format!("result of shard {i}"),
                    )
                })
            })
            .collect();
        for (i, h) in adds.into_iter().enumerate() {
            let o = h.join().unwrap();
            assert_eq!(code(&o), 0, "shard {i}: {}{}", stdout(&o), stderr(&o));
        }
    });
    // One name, two different values, at once: exactly one is kept.
    let (a, b) = std::thread::scope(|s| {
        let one = |v: &'static str, n: &'static str| {
            let (dir, env, cp) = (job(n), env.clone(), &cp);
            s.spawn(move || add_string(cp, &dir, &env, "release-notes", v))
        };
        let (a, b) = (one("notes from job a", "a"), one("notes from job b", "b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        [code(&a), code(&b)].iter().filter(|c| **c == 0).count(),
        1,
        "{}{}\n{}{}",
        stdout(&a),
        stderr(&a),
        stdout(&b),
        stderr(&b)
    );
    let lost = if code(&a) == 0 { &b } else { &a };
    assert!(
        stderr(lost).contains("was added to run") || stderr(lost).contains("was already added"),
        "{}",
        stderr(lost)
    );

    // The protocol itself: a write over a stale version is 412, a write
    // without a precondition 428.
    let url = format!("{}/api/v1/runs/{run}/state", cp.url);
    let current = cp.http().get(&url).bearer_auth(&token).send().unwrap();
    let version: i64 = current.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    assert!(version >= 14, "{version}: one version per add at least");
    let body = current.bytes().unwrap().to_vec();
    let put = |h: Option<(&str, String)>| {
        let mut r = cp
            .http()
            .put(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some((k, v)) = h {
            r = r.header(k, v);
        }
        let a = r.send().unwrap();
        let status = a.status().as_u16();
        (
            status,
            serde_json::from_slice::<Value>(&a.bytes().unwrap()).unwrap_or(Value::Null),
        )
    };
    let (s412, e) = put(Some(("if-match", format!("\"{}\"", version - 1))));
    assert_eq!((s412, e["error"].as_str()), (412, Some("state_conflict")), "{e}");
    assert_eq!(e["details"]["version"], version);
    assert_eq!(put(None).0, 428);
    assert_eq!(put(Some(("if-none-match", "*".into()))).0, 412);

    // Another job, anywhere: the VEX document, then the push.
    let last = job("last");
    std::fs::write(
        last.join("vex.json"),
        include_str!("../../src/cmd/demo/openvex.json"),
    )
    .unwrap();
    ok(&cp.tally(
        &last,
        &env,
        &["attestation", "add", "--name", "openvex", "--value", "vex.json"],
    ));
    let status = ok(&cp.tally(&last, &env, &["attestation", "status", "--output", "json"]));
    let names: Vec<&str> = status["materials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for i in 0..12 {
        assert!(
            names.contains(&format!("shard-{i}").as_str()),
            "shard-{i} lost: {status}"
        );
    }
    assert!(
        names.contains(&"release-notes") && names.contains(&"openvex"),
        "{status}"
    );
    std::fs::copy(ws.join("cosign.key"), last.join("cosign.key")).unwrap();
    let mut push_env = env.clone();
    push_env.push(("TALLY_KEY_PASSWORD", "pw"));
    let pushed = ok(&cp.tally(
        &last,
        &push_env,
        &["attestation", "push", "--key", "cosign.key", "--output", "json"],
    ));
    let digest = pushed["envelope_digest"].as_str().unwrap();
    let envelope: Value = cp.get(&format!("/api/v1/envelopes/{digest}"), None).1;
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        envelope["payload"].as_str().unwrap_or_default(),
    )
    .unwrap_or_default();
    let text = String::from_utf8_lossy(&payload);
    for i in 0..12 {
        assert!(text.contains(&format!("\"shard-{i}\"")), "shard-{i} not attested");
    }
    // The run is finished: its state no longer changes.
    let o = add_string(&cp, &last, &env, "late", "x");
    assert_ne!(code(&o), 0, "{}", stdout(&o));
}
