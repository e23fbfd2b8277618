//! Integrations (SPEC.md §17): a real `tally serve` delivers its events to
//! real HTTP receivers on loopback that record what they are sent, and fail
//! or hang on purpose; signatures are checked with OpenSSL.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::common::{code, contracts_repo, stderr};
use crate::controlplane::{craft_release, ok, push, refused_push, valid, workspace, ControlPlane};

const HOOK_SECRET: &str = "hook-secret-0123456789";
const DT_KEY: &str = "odt_0123456789abcdef";

/// What a receiver was sent.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// An HTTP/1.1 receiver on a free loopback port: records every request,
/// answers 500 while `fail` is above zero (counting it down), holds the
/// connection without answering while `hang` is set, else answers 200.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    fail: Arc<AtomicU32>,
    hang: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicU32::new(0));
        let hang = Arc::new(AtomicBool::new(false));
        let (g, f, h) = (got.clone(), fail.clone(), hang.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (g, f, h) = (g.clone(), f.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = answer(conn, &g, &f, &h);
                });
            }
        });
        Receiver { url, got, fail, hang }
    }

    /// Waits (30 s at most) until `n` requests arrived; all of them.
    fn wait_for(&self, n: usize) -> Vec<Got> {
        for _ in 0..600 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let got = self.got.lock().unwrap().clone();
        assert!(got.len() >= n, "{} requests, not {n}: {got:?}", got.len());
        got
    }
}

fn answer(
    conn: std::net::TcpStream,
    got: &Mutex<Vec<Got>>,
    fail: &AtomicU32,
    hang: &AtomicBool,
) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    got.lock().unwrap().push(Got {
        method,
        path,
        headers,
        body,
    });
    let mut w = conn;
    if hang.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(120));
        return Ok(());
    }
    let failing = fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let (status, text) = if failing {
        ("500 Internal Server Error", "{\"error\":\"on purpose\"}")
    } else {
        ("200 OK", "{\"token\":\"7a3c1e0b-0000-4000-8000-000000000000\"}")
    };
    write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )?;
    w.flush()
}

/// HMAC-SHA256 of `body` under `key` by OpenSSL, as `sha256=<hex>`.
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(body).unwrap();
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256={}", text.split_whitespace().next().unwrap())
}

/// A control plane configured with `integrations` (TOML) and their secrets.
fn control_plane(dir: &Path, integrations: &str) -> (ControlPlane, std::path::PathBuf) {
    let repo = contracts_repo(dir);
    let config = dir.join("tally.toml");
    std::fs::write(&config, integrations).unwrap();
    let cp = ControlPlane::start_with_env(
        tempfile::tempdir().unwrap(),
        &repo,
        &["--config", config.to_str().unwrap()],
        &[
            ("TALLY_TEST_HOOK_SECRET", HOOK_SECRET),
            ("TALLY_TEST_DT_KEY", DT_KEY),
        ],
    );
    (cp, config)
}

/// The release pipeline's run, ready, with its CycloneDX SBOM too.
fn craft_with_sbom(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)]) {
    craft_release(cp, ws, env);
    ok(&cp.tally(
        ws,
        env,
        &[
            "attestation",
            "add",
            "--name",
            "sbom-cyclonedx",
            "--value",
            &valid("sbom.cyclonedx-1.5-multiple-tools.json"),
            "--output",
            "json",
        ],
    ));
}

/// The crafted run pushed: the push's answer.
fn accepted_push(cp: &ControlPlane, ws: &Path, env: &[(&str, &str)]) -> Value {
    ok(&push(cp, ws, env, "cosign.key", &["--output", "json"]))
}

/// The `[[integrations]]` table of a webhook to `<url>/events` signed
/// with the test's secret, and `extra` settings.
fn webhook(url: &str, extra: &str) -> String {
    format!(
        "[[integrations]]\nname = \"audit-hook\"\nkind = \"webhook\"\nurl = \"{url}/events\"\n\
         secret_env = \"TALLY_TEST_HOOK_SECRET\"\n{extra}\n"
    )
}

fn admin(cp: &ControlPlane) -> [(&'static str, &str); 1] {
    [("TALLY_TOKEN", cp.admin.as_str())]
}

#[test]
fn events_reach_each_kind_of_receiver_in_its_format_signed_retried_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let (hook, slack, discord, dtrack) = (
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
        Receiver::start(),
    );
    // The webhook's receiver fails its first two requests.
    hook.fail.store(2, Ordering::SeqCst);
    let (cp, _) = control_plane(
        d.path(),
        &format!(
            r#"{}
[[integrations]]
name = "chat"
kind = "slack"
url = "{}/services/T000/B000/XXXX"

[[integrations]]
name = "ops"
kind = "discord"
url = "{}/api/webhooks/1/abc"
events = ["refused"]

[[integrations]]
name = "dtrack"
kind = "dependency-track"
url = "{}"
secret_env = "TALLY_TEST_DT_KEY"
material = "sbom-cyclonedx"

# The SPDX SBOM: Dependency-Track takes CycloneDX only; given up at once.
[[integrations]]
name = "dtrack-spdx"
kind = "dependency-track"
url = "{}"
secret_env = "TALLY_TEST_DT_KEY"
material = "sbom-spdx"
max_attempts = 5
"#,
            webhook(&hook.url, "backoff_secs = 1"),
            slack.url,
            discord.url,
            dtrack.url,
            dtrack.url
        ),
    );
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    let env = op.env();
    craft_with_sbom(&cp, &ws, &env);
    let _ = refused_push(&cp, &ws, &env);
    let pushed = accepted_push(&cp, &ws, &env);
    let index = pushed["log_index"].as_u64().unwrap();

    // The webhook: two failures, then both events, each CloudEvents JSON
    // signed with the shared secret, its id the Idempotency-Key; a retry
    // sends the same bytes.
    let got = hook.wait_for(4);
    let mut by_id: HashMap<String, Vec<&Got>> = HashMap::new();
    for g in &got {
        assert_eq!((g.method.as_str(), g.path.as_str()), ("POST", "/events"));
        assert_eq!(
            g.header("content-type"),
            "application/cloudevents+json; charset=utf-8"
        );
        assert_eq!(
            g.header("x-tally-signature-256"),
            openssl_hmac(HOOK_SECRET, &g.body)
        );
        let e = g.json();
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(g.header("idempotency-key"), e["id"].as_str().unwrap());
        by_id
            .entry(e["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(g);
    }
    assert_eq!(by_id.len(), 2, "{by_id:?}");
    for tries in by_id.values() {
        assert!(tries.windows(2).all(|w| w[0].body == w[1].body));
    }
    let accepted = &by_id[&format!("accepted-{index}")][0].json();
    assert_eq!(accepted["type"], "dev.tally.attestation.accepted");
    assert_eq!(accepted["data"]["log_index"], index);
    assert_eq!(accepted["data"]["workflow"], "payments-release");
    assert_eq!(accepted["data"]["envelope_digest"], pushed["envelope_digest"]);
    assert!(accepted["data"]["subjects"]
        .to_string()
        .contains(&"5e".repeat(32)));
    let refused = by_id
        .values()
        .map(|t| t[0].json())
        .find(|e| e["type"] == "dev.tally.push.refused")
        .unwrap();
    assert_eq!(refused["data"]["code"], "signature");
    assert!(refused["data"]["message"]
        .as_str()
        .unwrap()
        .contains("does not verify"));

    // Slack and Discord: a line each, as their webhooks take it.
    let texts: Vec<String> = slack
        .wait_for(2)
        .iter()
        .map(|g| g.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("refused (signature)")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("accepted — log entry {index}"))),
        "{texts:?}"
    );
    let ops = discord.wait_for(1);
    assert!(ops[0].json()["content"]
        .as_str()
        .unwrap()
        .contains("refused (signature)"));
    assert_eq!(ops[0].json()["allowed_mentions"]["parse"], serde_json::json!([]));

    // Dependency-Track: the SBOM itself, for the run's project and version.
    let bom = dtrack.wait_for(1);
    assert_eq!(
        (bom[0].method.as_str(), bom[0].path.as_str()),
        ("PUT", "/api/v1/bom")
    );
    assert_eq!(bom[0].header("x-api-key"), DT_KEY);
    let req = bom[0].json();
    assert_eq!(req["projectName"], accepted["data"]["project"]);
    assert_eq!(req["projectVersion"], "1.4.2");
    assert_eq!(req["autoCreate"], true);
    let sent = base64::engine::general_purpose::STANDARD
        .decode(req["bom"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        sent,
        std::fs::read(valid("sbom.cyclonedx-1.5-multiple-tools.json")).unwrap()
    );

    // What the operator sees: counts, attempts, metrics.
    std::thread::sleep(Duration::from_millis(500));
    let list = ok(&cp.tally(&ws, &admin(&cp), &["integration", "list", "--output", "json"]));
    let counts: HashMap<String, (i64, i64, i64)> = list["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let n = |k: &str| i[k].as_i64().unwrap();
            (
                i["name"].as_str().unwrap().to_owned(),
                (n("pending"), n("delivered"), n("failed")),
            )
        })
        .collect();
    assert_eq!(counts["audit-hook"], (0, 2, 0));
    assert_eq!(counts["chat"], (0, 2, 0));
    assert_eq!(counts["ops"], (0, 1, 0));
    assert_eq!(counts["dtrack"], (0, 1, 0));
    assert_eq!(counts["dtrack-spdx"], (0, 0, 1));
    let spdx = ok(&cp.tally(
        &ws,
        &admin(&cp),
        &[
            "integration",
            "status",
            "--integration",
            "dtrack-spdx",
            "--output",
            "json",
        ],
    ));
    assert_eq!(spdx["deliveries"][0]["attempts"], 1, "{spdx}");
    assert!(
        spdx["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("not a CycloneDX JSON SBOM"),
        "{spdx}"
    );
    assert_eq!(dtrack.got.lock().unwrap().len(), 1);
    let endpoint = list["integrations"][1]["endpoint"].as_str().unwrap();
    assert!(
        !endpoint.contains("XXXX"),
        "a chat webhook's secret path is shown: {endpoint}"
    );
    let status = ok(&cp.tally(
        &ws,
        &admin(&cp),
        &[
            "integration",
            "status",
            "--integration",
            "audit-hook",
            "--output",
            "json",
        ],
    ));
    let attempts: i64 = status["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_i64().unwrap())
        .sum();
    assert_eq!(attempts, 4, "{status}");
    let metrics = cp
        .http()
        .get(format!("{}/metrics", cp.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "tally_integration_deliveries_total{integration=\"audit-hook\",outcome=\"retry\"} 2",
        "tally_integration_deliveries_total{integration=\"audit-hook\",outcome=\"delivered\"} 2",
        "tally_integration_outbox{integration=\"dtrack\",outcome=\"delivered\"} 1",
        "tally_integration_outbox{integration=\"audit-hook\",outcome=\"pending\"} 0",
        "tally_integration_outbox{integration=\"dtrack-spdx\",outcome=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    // The answers are what the OpenAPI document says (checked by python-jsonschema).
    if crate::common::python_has("jsonschema") {
        let doc = cp.get("/openapi.json", None).1;
        let all = cp
            .get("/api/v1/integrations/deliveries?limit=2", Some(&cp.admin))
            .1;
        assert!(all["next"].is_i64(), "{all}");
        crate::controlplane::openapi_check(
            &doc,
            d.path(),
            &[
                ("IntegrationList", list.clone()),
                ("DeliveryList", status),
                ("DeliveryList", all),
            ],
        );
    }
    // Only the admin sees the outbox.
    let o = cp.tally(&ws, &env, &["integration", "list"]);
    assert_ne!(code(&o), 0);
}

#[test]
fn a_delivery_that_keeps_failing_is_given_up_and_retried_on_demand_and_a_silent_receiver_times_out() {
    let d = tempfile::tempdir().unwrap();
    let (hook, silent) = (Receiver::start(), Receiver::start());
    hook.fail.store(u32::MAX, Ordering::SeqCst);
    silent.hang.store(true, Ordering::SeqCst);
    let (cp, _) = control_plane(
        d.path(),
        &format!(
            r#"{}
[[integrations]]
name = "silent"
kind = "slack"
url = "{}/hooks/x"
timeout_ms = 500
max_attempts = 1
"#,
            webhook(&hook.url, "max_attempts = 2\nbackoff_secs = 1"),
            silent.url
        ),
    );
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    let env = op.env();
    craft_release(&cp, &ws, &env);
    let _ = refused_push(&cp, &ws, &env);
    hook.wait_for(2);
    let failed = |who: &str| -> Value {
        for _ in 0..200 {
            let s = ok(&cp.tally(
                &ws,
                &admin(&cp),
                &[
                    "integration",
                    "status",
                    "--integration",
                    who,
                    "--state",
                    "failed",
                    "--output",
                    "json",
                ],
            ));
            if !s["deliveries"].as_array().unwrap().is_empty() {
                return s["deliveries"][0].clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{who}: no failed delivery");
    };
    let given_up = failed("audit-hook");
    assert_eq!(given_up["attempts"], 2);
    assert!(
        given_up["last_error"].as_str().unwrap().starts_with("HTTP 500"),
        "{given_up}"
    );
    let timed_out = failed("silent");
    assert!(
        timed_out["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within 500 ms"),
        "{timed_out}"
    );
    // The text table names the failure too.
    let table = cp.tally(&ws, &admin(&cp), &["integration", "status", "--state", "failed"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("HTTP 500"));

    // The receiver recovers; the operator retries: delivered, same event.
    hook.fail.store(0, Ordering::SeqCst);
    let r = ok(&cp.tally(
        &ws,
        &admin(&cp),
        &[
            "integration",
            "retry",
            "--integration",
            "audit-hook",
            "--output",
            "json",
        ],
    ));
    assert_eq!(r["retried"], 1);
    let got = hook.wait_for(3);
    assert_eq!(got[2].header("idempotency-key"), got[0].header("idempotency-key"));
    assert_eq!(got[2].body, got[0].body);
    // Nothing failed is left to retry there, and an unknown id says so.
    let o = cp.tally(&ws, &admin(&cp), &["integration", "retry", "--id", "999"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("no failed delivery 999"), "{}", stderr(&o));
}

#[test]
fn a_delivery_cut_by_kill_9_is_made_again_after_the_restart_with_the_same_idempotency_key() {
    let d = tempfile::tempdir().unwrap();
    let hook = Receiver::start();
    hook.hang.store(true, Ordering::SeqCst);
    let integrations = webhook(&hook.url, "timeout_ms = 60000");
    let (mut cp, config) = control_plane(d.path(), &integrations);
    let (ws, op) = workspace(&cp, d.path(), "payments-release");
    let env = op.env();
    craft_with_sbom(&cp, &ws, &env);
    let pushed = accepted_push(&cp, &ws, &env);
    // The server is mid-delivery (the receiver holds the request): kill -9.
    let first = hook.wait_for(1);
    cp.crash();
    hook.hang.store(false, Ordering::SeqCst);
    let admin_token = cp.admin.clone();
    let dir = std::mem::replace(&mut cp.dir, tempfile::tempdir().unwrap());
    let repo = d.path().join("contracts");
    let cp2 = ControlPlane::start_with_env(
        dir,
        &repo,
        &["--config", config.to_str().unwrap()],
        &[
            ("TALLY_TEST_HOOK_SECRET", HOOK_SECRET),
            ("TALLY_TEST_DT_KEY", DT_KEY),
        ],
    );
    let got = hook.wait_for(2);
    assert_eq!(
        got[1].header("idempotency-key"),
        first[0].header("idempotency-key")
    );
    assert_eq!(
        got[1].header("idempotency-key"),
        format!("accepted-{}", pushed["log_index"])
    );
    assert_eq!(got[1].body, first[0].body);
    let mut delivered = false;
    for _ in 0..100 {
        let s = ok(&cp2.tally(
            &ws,
            &[("TALLY_TOKEN", admin_token.as_str())],
            &[
                "integration",
                "status",
                "--state",
                "delivered",
                "--output",
                "json",
            ],
        ));
        if s["deliveries"].as_array().unwrap().len() == 1 {
            delivered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(delivered, "the event is not delivered after the restart");
}

#[test]
fn a_bad_integration_configuration_is_refused_at_start_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let repo = contracts_repo(d.path());
    let config = d.path().join("tally.toml");
    for (toml, says) in [
        (
            "[[integrations]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"TALLY_TEST_UNSET_SECRET\"\n",
            "TALLY_TEST_UNSET_SECRET is not set",
        ),
        (
            "[[integrations]]\nname = \"h\"\nkind = \"pager\"\nurl = \"http://127.0.0.1:9/\"\n",
            "unknown variant `pager`",
        ),
        (
            "[[integrations]]\nname = \"h\"\nkind = \"slack\"\nurl = \"file:///etc/passwd\"\n",
            "is not http(s)",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(d.path().join("data"))
            .arg("--contracts")
            .arg(&repo)
            .arg("--config")
            .arg(&config)
            .env_remove("TALLY_TEST_UNSET_SECRET")
            .output()
            .unwrap();
        assert_ne!(code(&o), 0);
        assert!(stderr(&o).contains(says), "{toml}: {}", stderr(&o));
    }
}
