//! The web console's in-browser verifier (`/console/verify.js`), run in
//! headless Chromium from the distribution (driven over WebDriver by
//! chromedriver) on `../shared/vectors/`: every verdict must equal the Rust
//! verifier's on the same input.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ledger_format::hash::{leaf_hash, Hash};
use ledger_format::merkle::{verify_consistency, verify_inclusion};
use ledger_format::note::{Note, VerifierKey};
use serde_json::{json, Value};

use crate::common::{free_port, json_files, tmp, vectors_dir};
use crate::controlplane::ControlPlane;

/// A headless Chromium session through chromedriver; both end on drop.
///
/// The W3C WebDriver protocol is four JSON calls here (new session,
/// navigate, execute an async script, delete), made with the blocking HTTP
/// client the tests already use: the WebDriver crates are async clients
/// that would bring a runtime into these synchronous tests for no more.
struct Browser {
    driver: Child,
    url: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts one, or `None` when Chromium is not installed (outside CI).
    fn start() -> Option<Browser> {
        Browser::start_with(json!({}))
    }

    /// One whose pages run no JavaScript (the browser's own setting).
    fn without_javascript() -> Option<Browser> {
        Browser::start_with(json!({"profile.managed_default_content_settings.javascript": 2}))
    }

    /// Starts one with Chromium's preferences `prefs`.
    fn start_with(prefs: Value) -> Option<Browser> {
        let installed =
            Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium and chromium-driver are required under CI=true (.ci/run installs them)"
            );
            eprintln!("skipped: chromium / chromedriver not installed");
            return None;
        }
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        for _ in 0..200 {
            if http.get(format!("{url}/status")).send().is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tmp();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": prefs,
            },
        }}});
        let mut b = Browser {
            driver,
            url,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = b.call("POST", "/session", caps);
        b.session = v["sessionId"].as_str().expect("a WebDriver session").to_owned();
        b.call(
            "POST",
            &format!("/session/{}/timeouts", b.session),
            json!({"script": 120_000}),
        );
        Some(b)
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let req = match method {
            "POST" => self
                .http
                .post(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .body(body.to_string()),
            "DELETE" => self.http.delete(format!("{}{path}", self.url)),
            "GET" => self.http.get(format!("{}{path}", self.url)),
            _ => unreachable!(),
        };
        let v: Value = serde_json::from_slice(&req.send().unwrap().bytes().unwrap()).unwrap();
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            json!({"url": url}),
        );
    }

    /// Runs `script` (its last argument is the callback) with `args`.
    fn run_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/async", self.session),
            json!({"script": script, "args": args}),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.url, self.session))
                .send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs every case through `verify.js` in the page; one answer per case:
/// a hex leaf hash, `true`/`false`, or `"error: …"` (a refused argument).
const RUNNER: &str = r#"
const [cases, done] = arguments;
import('/console/verify.js').then(async (v) => {
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const out = [];
  for (const c of cases) {
    try {
      if (c.op === 'leaf') out.push(hex(await v.leafHash(v.fromHex(c.data))));
      else if (c.op === 'inclusion') out.push(await v.verifyInclusion(BigInt(c.index), BigInt(c.size),
          v.fromHex(c.leaf), c.proof.map(v.fromHex), v.fromHex(c.root)));
      else out.push(await v.verifyConsistency(BigInt(c.size1), BigInt(c.size2),
          v.fromHex(c.root1), v.fromHex(c.root2), c.proof.map(v.fromHex)));
    } catch (e) { out.push('error: ' + e.message); }
  }
  done(out);
}, (e) => done('import failed: ' + e));
"#;

fn b64_hex(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        v => hex::encode(STANDARD.decode(v.as_str().unwrap()).unwrap()),
    }
}

fn proof_hex(v: &Value) -> Vec<String> {
    v.as_array()
        .map_or_else(Vec::new, |a| a.iter().map(b64_hex).collect())
}

fn hash(h: &str) -> Option<Hash> {
    Hash::from_slice(&hex::decode(h).ok()?).ok()
}

fn hashes(p: &[String]) -> Option<Vec<Hash>> {
    p.iter().map(|h| hash(h)).collect()
}

/// The Rust verifier's verdict on a case of [`RUNNER`]'s shape.
fn rust_verdict(c: &Value) -> bool {
    let s = |k: &str| c[k].as_str().unwrap().to_owned();
    let n = |k: &str| {
        c[k].as_str()
            .unwrap()
            .parse::<i128>()
            .ok()
            .and_then(|v| u64::try_from(v).ok())
    };
    let proof: Vec<String> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    (|| match c["op"].as_str()? {
        "inclusion" => verify_inclusion(
            &hash(&s("leaf"))?,
            n("index")?,
            n("size")?,
            &hashes(&proof)?,
            &hash(&s("root"))?,
        )
        .ok()
        .map(drop),
        _ => verify_consistency(
            n("size1")?,
            n("size2")?,
            &hash(&s("root1"))?,
            &hash(&s("root2"))?,
            &hashes(&proof)?,
        )
        .ok()
        .map(drop),
    })()
    .is_some()
}

fn js_verdict(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) if s.starts_with("error: ") => false,
        other => panic!("unexpected answer from verify.js: {other}"),
    }
}

#[test]
fn the_browser_verifier_agrees_with_the_rust_one_on_every_merkle_vector() {
    let Some(vectors) = vectors_dir() else { return };
    let Some(browser) = Browser::start() else { return };
    let work = tmp();
    let cp = ControlPlane::start(&crate::common::contracts_repo(work.path()), &[]);
    // The module is served as JavaScript, and the page loads it from the
    // server's origin as a user's browser would.
    let resp = cp
        .http()
        .get(format!("{}/console/verify.js", cp.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/javascript; charset=utf-8");
    browser.goto(&format!("{}/healthz", cp.url));

    // transparency-dev/merkle's vectors, each base case and its mutations.
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (kind, dir) in [
        ("inclusion", "merkle/inclusion"),
        ("consistency", "merkle/consistency"),
    ] {
        let files = json_files(&vectors.join(dir));
        assert!(files.len() >= 90, "{dir}: {} files", files.len());
        for f in files {
            let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            let case = if kind == "inclusion" {
                json!({"op": "inclusion", "index": v["leafIdx"].to_string(), "size": v["treeSize"].to_string(),
                    "leaf": b64_hex(&v["leafHash"]), "proof": proof_hex(&v["proof"]), "root": b64_hex(&v["root"])})
            } else {
                json!({"op": "consistency", "size1": v["size1"].to_string(), "size2": v["size2"].to_string(),
                    "root1": b64_hex(&v["root1"]), "root2": b64_hex(&v["root2"]), "proof": proof_hex(&v["proof"])})
            };
            expected.push((f.display().to_string(), v["wantErr"].as_bool().unwrap()));
            cases.push(case);
        }
    }
    // The classic 8-leaf tree: every leaf hash, every inclusion and
    // consistency proof, and each with its first hash corrupted.
    let eight: Value =
        serde_json::from_slice(&std::fs::read(vectors.join("merkle/rfc6962-8leaf-all-proofs.json")).unwrap())
            .unwrap();
    let root = |size: &Value| eight["roots_hex"][size.to_string()].as_str().unwrap().to_owned();
    let leaves: Vec<String> = eight["leaf_hashes_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    let corrupt = |h: &str| format!("{:02x}{}", u8::from_str_radix(&h[..2], 16).unwrap() ^ 1, &h[2..]);
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect()
    };
    let mut eight_cases = Vec::new();
    for p in eight["inclusion"].as_array().unwrap() {
        let leaf = leaves[p["index"].as_u64().unwrap() as usize].clone();
        let good = json!({"op": "inclusion", "index": p["index"].to_string(), "size": p["size"].to_string(),
            "leaf": leaf, "proof": strs(&p["proof_hex"]), "root": root(&p["size"])});
        let mut bad = good.clone();
        bad["root"] = json!(corrupt(&root(&p["size"])));
        eight_cases.push((good, true));
        eight_cases.push((bad, false));
    }
    for p in eight["consistency"].as_array().unwrap() {
        let good = json!({"op": "consistency", "size1": p["size1"].to_string(), "size2": p["size2"].to_string(),
            "root1": root(&p["size1"]), "root2": root(&p["size2"]), "proof": strs(&p["proof_hex"])});
        let mut bad = good.clone();
        bad["root2"] = json!(corrupt(&root(&p["size2"])));
        eight_cases.push((good, p["size1"] != 0));
        eight_cases.push((bad, false));
    }
    for (c, want) in &eight_cases {
        expected.push((format!("8-leaf {c}"), !want));
        cases.push(c.clone());
    }
    let n = cases.len();
    for (i, data) in eight["leaves_hex"].as_array().unwrap().iter().enumerate() {
        cases.push(json!({"op": "leaf", "data": data}));
        assert_eq!(
            leaf_hash(&hex::decode(data.as_str().unwrap()).unwrap()).to_hex(),
            leaves[i]
        );
    }

    let answers = browser.run_async(RUNNER, json!([cases]));
    let answers = answers
        .as_array()
        .unwrap_or_else(|| panic!("verify.js: {answers}"));
    assert_eq!(answers.len(), cases.len());
    let mut deviations = 0;
    for (i, (name, want_err)) in expected.iter().enumerate() {
        let js = js_verdict(&answers[i]);
        let rust = rust_verdict(&cases[i]);
        assert_eq!(
            js, rust,
            "{name}: the browser says {}, Rust says {rust}",
            answers[i]
        );
        if js == *want_err {
            // The one documented deviation (SPEC.md §2): equal sizes with
            // equal 12-byte roots, which both verifiers refuse.
            assert!(
                name.contains("consistency") && !js,
                "{name}: {} against wantErr {want_err}",
                answers[i]
            );
            deviations += 1;
        }
    }
    assert!(deviations <= 1, "{deviations} deviations from the vectors");
    for (i, want) in leaves.iter().enumerate() {
        assert_eq!(answers[n + i], json!(want), "leaf {i}");
    }
}

/// Verifies each case's note (base64) against its keys in the page:
/// `{ok: true, verified: ["name+keyid[@time]"…]}` or `{ok: false, error}`.
const NOTE_RUNNER: &str = r#"
const [cases, done] = arguments;
import('/console/verify.js').then(async (v) => {
  const out = [];
  for (const c of cases) {
    try {
      const keys = [];
      for (const k of c.keys) keys.push(await v.parseVerifierKey(k));
      const r = await v.verifyNote(v.fromBase64(c.note), keys);
      out.push({ ok: true, verified: r.verified.map((x) => `${x.name}+${x.keyId.toString(16).padStart(8, '0')}`
        + (x.timestamp === null ? '' : `@${x.timestamp}`)) });
    } catch (e) { out.push({ ok: false, error: String(e && e.message || e) }); }
  }
  done(out);
}, (e) => done('import failed: ' + e));
"#;

/// The Rust verifier's answer on a case of [`NOTE_RUNNER`]'s shape.
fn rust_note(keys: &[String], note: &[u8]) -> Value {
    let got = keys
        .iter()
        .map(|k| VerifierKey::parse(k))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|keys| Note::parse(note).and_then(|n| n.verify(&keys)));
    match got {
        Ok(v) => {
            let verified: Vec<String> = v
                .verified()
                .iter()
                .map(|s| {
                    let t = s.timestamp().map_or(String::new(), |t| format!("@{t}"));
                    format!("{}+{:08x}{t}", s.name(), s.key_id())
                })
                .collect();
            json!({"ok": true, "verified": verified})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

#[test]
fn the_browser_verifier_agrees_with_the_rust_one_on_every_signed_note_vector() {
    let Some(vectors) = vectors_dir() else { return };
    let Some(browser) = Browser::start() else { return };
    let work = tmp();
    let cp = ControlPlane::start(&crate::common::contracts_repo(work.path()), &[]);
    browser.goto(&format!("{}/healthz", cp.url));
    let v: Value =
        serde_json::from_slice(&std::fs::read(vectors.join("signed-note/signed-notes.json")).unwrap())
            .unwrap();
    // (what, keys, note bytes, expected to verify)
    let mut cases: Vec<(String, Vec<String>, Vec<u8>, bool)> = Vec::new();
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    for c in v["vectors"].as_array().unwrap() {
        let note = s(&c["note"]);
        let valid = c["expect"].as_str().unwrap().starts_with("valid");
        cases.push((s(&c["id"]), vec![s(&c["vkey"])], note.clone().into_bytes(), valid));
        // The same note with a character of the known key's signature changed.
        let name = c["vkey"].as_str().unwrap().split('+').next().unwrap();
        let line = format!("\u{2014} {name} ");
        let at = note.find(&line).unwrap() + line.len() + 3;
        let mut bad = note.into_bytes();
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        cases.push((
            format!("{} (signature altered)", s(&c["id"])),
            vec![s(&c["vkey"])],
            bad,
            false,
        ));
    }
    let peter = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "go-sumdb-note-peter")
        .map(|c| s(&c["vkey"]))
        .unwrap();
    for (i, item) in v["malformed_notes_must_reject"]["items_b64"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let bytes = STANDARD.decode(item.as_str().unwrap()).unwrap();
        cases.push((format!("malformed note {i}"), vec![peter.clone()], bytes, false));
    }
    let many = &v["too_many_signatures"];
    for (count, ok) in [(101, false), (16, true)] {
        let text = s(&many["note_prefix"]) + &s(&many["repeat_line"]).repeat(count);
        cases.push((
            format!("{count} signature lines"),
            vec![peter.clone()],
            text.into_bytes(),
            ok,
        ));
    }
    let c = &v["generated_cosignature_v1"];
    let (log, witness, cosigned) = (
        s(&c["log_vkey"]),
        s(&c["witness_vkey_type04"]),
        s(&c["cosigned_note"]),
    );
    cases.push((
        "cosigned".into(),
        vec![log.clone(), witness.clone()],
        cosigned.clone().into_bytes(),
        true,
    ));
    let flipped = cosigned.replacen("JLN4UQAAAABlU/EAP16", "JLN4UQAAAABlU/EAP17", 1);
    cases.push((
        "cosignature altered".into(),
        vec![log.clone(), witness.clone()],
        flipped.into_bytes(),
        false,
    ));
    cases.push((
        "only a witness key".into(),
        vec![witness],
        cosigned.into_bytes(),
        false,
    ));
    // Every checkpoint of the Tessera test log (another implementation's).
    let tessera = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx".to_owned();
    for n in 0..=15 {
        let bytes = std::fs::read(vectors.join(format!("tessera-log/checkpoint.{n}"))).unwrap();
        cases.push((
            format!("tessera checkpoint.{n}"),
            vec![tessera.clone()],
            bytes,
            true,
        ));
    }
    // Malformed keys: a wrong key id, an unknown type, uppercase hex.
    for bad_key in [
        log.replace("33d7b496", "33d7b497"),
        log.replace("+Ae", "+Be"),
        log.replace("33d7b496", "33D7B496"),
    ] {
        cases.push((
            format!("key {bad_key}"),
            vec![bad_key],
            s(&c["cosigned_note"]).into_bytes(),
            false,
        ));
    }

    let args: Vec<Value> = cases
        .iter()
        .map(|(_, keys, note, _)| json!({"keys": keys, "note": STANDARD.encode(note)}))
        .collect();
    let answers = browser.run_async(NOTE_RUNNER, json!([args]));
    let answers = answers
        .as_array()
        .unwrap_or_else(|| panic!("verify.js: {answers}"));
    assert_eq!(answers.len(), cases.len());
    for ((what, keys, note, want), js) in cases.iter().zip(answers) {
        let rust = rust_note(keys, note);
        assert_eq!(
            js["ok"], rust["ok"],
            "{what}: the browser says {js}, Rust says {rust}"
        );
        assert_eq!(js["verified"], rust["verified"], "{what}");
        assert_eq!(js["ok"], json!(*want), "{what}: {js}");
    }
    let cosigned = &answers[cases.iter().position(|c| c.0 == "cosigned").unwrap()];
    assert_eq!(
        cosigned["verified"],
        json!(["example.com/log/testdata+33d7b496", "witness+24b37851@1700000000"])
    );
}

impl Browser {
    /// Runs `script` synchronously in the page; its value.
    fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.session),
            json!({"script": script, "args": args}),
        )
    }

    /// Polls `script` until it returns `want` (30 s at most); its last value.
    fn wait_for(&self, script: &str, want: &Value) -> Value {
        let mut v = Value::Null;
        for _ in 0..1200 {
            v = self.run(script, json!([]));
            if v == *want {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        v
    }

    /// The element `css` selects, through WebDriver itself (no script in
    /// the page: these work with JavaScript off).
    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            json!({"using": "css selector", "value": css}),
        );
        v["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Whether `css` selects anything.
    fn has(&self, css: &str) -> bool {
        let v = self.call(
            "POST",
            &format!("/session/{}/elements", self.session),
            json!({"using": "css selector", "value": css}),
        );
        !v.as_array().unwrap().is_empty()
    }

    /// Types `text` into the field `css` selects.
    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &format!("/session/{}/element/{e}/value", self.session),
            json!({ "text": text }),
        );
    }

    /// Clicks what `css` selects (a real click: a link followed, a form submitted).
    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &format!("/session/{}/element/{e}/click", self.session),
            json!({}),
        );
    }

    /// Waits (30 s at most) until `css` selects something.
    fn wait_until_has(&self, css: &str) {
        for _ in 0..1200 {
            if self.has(css) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("nothing matches {css} on {}", self.path());
    }

    /// Clicks what `css` selects and waits for the page `path` to show `then`.
    fn click_then(&self, css: &str, path: &str, then: &str) {
        self.click(css);
        self.wait_until_has(then);
        assert_eq!(self.path(), path, "after clicking {css}");
    }

    /// The rendered text of what `css` selects.
    fn text(&self, css: &str) -> String {
        let e = self.element(css);
        let v = self.call(
            "GET",
            &format!("/session/{}/element/{e}/text", self.session),
            Value::Null,
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The page's path (WebDriver's, not the page's script).
    fn path(&self) -> String {
        let v = self.call("GET", &format!("/session/{}/url", self.session), Value::Null);
        let url = v.as_str().unwrap();
        let after_host = url.splitn(4, '/').nth(3).unwrap_or_default();
        format!("/{}", after_host.split(['?', '#']).next().unwrap_or_default())
    }

    /// Saves a PNG screenshot of the page to `path` (a test artifact).
    fn screenshot(&self, path: &Path) {
        let v = self
            .http
            .get(format!("{}/session/{}/screenshot", self.url, self.session))
            .send()
            .unwrap();
        let v: Value = serde_json::from_slice(&v.bytes().unwrap()).unwrap();
        let png = STANDARD.decode(v["value"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Pins `key`, submits the verify form and waits for the verdict.
    fn verify_entry(&self, key: &str) -> String {
        self.run(
            "document.getElementById('key').value = arguments[0];\
             document.getElementById('verdict').textContent = '';\
             document.getElementById('verify-form').requestSubmit();",
            json!([key]),
        );
        // Generous: under CI, nine browsers verify beside the test suite.
        for _ in 0..1200 {
            let v = self.run("return document.getElementById('verdict').textContent", json!([]));
            let v = v.as_str().unwrap_or_default().to_owned();
            if v.starts_with("Verified") || v.starts_with("Verification FAILED") {
                self.run(
                    "document.getElementById('verify-title').scrollIntoView()",
                    json!([]),
                );
                return v;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let url = self.run("return location.href", json!([]));
        let verdict = self.run(
            "const v = document.getElementById('verdict'); return v ? v.textContent : document.body.innerText.slice(0, 300)",
            json!([]),
        );
        panic!("no verdict in the page {url} after 30 s: {verdict}");
    }
}

/// Waits (30 s at most) until `cp` has published `size` entries.
fn wait_published(cp: &ControlPlane, size: u64) {
    let mut sizes = Value::Null;
    for _ in 0..600 {
        sizes = cp.get("/api/v1/log", None).1["sizes"].clone();
        if sizes["published"].as_u64().is_some_and(|p| p >= size) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{size} entries are not published after 30 s: {sizes}");
}

/// Where the console's screenshots go (kept by CI as artifacts).
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
}

#[test]
fn an_entry_page_verifies_its_inclusion_in_the_browser_and_catches_a_lying_page() {
    let Some(browser) = Browser::start() else { return };
    let work = tmp();
    let cp = ControlPlane::start(&crate::common::contracts_repo(work.path()), &[]);
    // Three log entries: a signing key registered for three workflows.
    let ws = work.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    for w in ["payments-release", "payments-quality", "psirt-advisories"] {
        crate::controlplane::operator(&cp, &ws, w);
    }
    let log = cp.get("/api/v1/log", None).1;
    let key = log["verifier_key"].as_str().unwrap().to_owned();
    wait_published(&cp, 3);

    // The overview and its form lead to the entry.
    browser.goto(&format!("{}/console/log", cp.url));
    assert_eq!(
        browser.run(
            "return document.getElementById('published').textContent",
            json!([])
        ),
        "3"
    );
    browser.screenshot(&screenshots().join("log.png"));
    browser.run(
        "document.getElementById('index').value = '1'; document.querySelector('form').requestSubmit();",
        json!([]),
    );
    assert_eq!(
        browser.wait_for("return location.pathname", &json!("/console/log/entries/1")),
        "/console/log/entries/1"
    );
    assert_eq!(
        browser.run(
            "return document.querySelectorAll('#proof code').length",
            json!([])
        ),
        2
    );

    // The real key verifies what the server sent, and is remembered.
    let v = browser.verify_entry(&key);
    assert!(
        v.starts_with("Verified in this browser") && v.contains("entry 1 is in that tree"),
        "{v}"
    );
    browser.screenshot(&screenshots().join("entry-verified.png"));
    assert_eq!(
        browser.run("return localStorage.getItem('tally.verifierKey')", json!([])),
        json!(key)
    );

    // Another key (a server showing its own): refused.
    let dir = tmp();
    let pub_out = dir.path().join("log.pub");
    let o = crate::common::tally(&[
        "key",
        "generate",
        "--origin",
        "evil.example/log",
        "--key-out",
        dir.path().join("log.key").to_str().unwrap(),
        "--pub-out",
        pub_out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let other = std::fs::read_to_string(&pub_out).unwrap();
    let v = browser.verify_entry(other.trim());
    assert!(
        v.starts_with("Verification FAILED") && v.contains("no signature from any trusted key"),
        "{v}"
    );

    // A page that lies: each tampering is caught by the page itself.
    let tamper = [
        // A proof hash changed.
        "const c = document.querySelector('#proof code'); c.textContent = c.textContent.replace(/^./, (x) => x === '0' ? '1' : '0');",
        // Another entry's bytes, shown and verified.
        "const e = document.getElementById('entry'); const t = e.textContent.replace('payments-quality', 'payments-release'); e.textContent = t; e.dataset.bytes = btoa(t);",
        // The bytes verified are not those shown.
        "const e = document.getElementById('entry'); e.textContent = e.textContent + ' ';",
        // The checkpoint's root replaced (its signature then fails).
        "const c = document.getElementById('checkpoint'); const l = c.textContent.split('\\n'); l[2] = l[2].replace(/^./, (x) => x === 'A' ? 'B' : 'A'); c.textContent = l.join('\\n');",
        // The checkpoint's size claimed larger.
        "const c = document.getElementById('checkpoint'); const l = c.textContent.split('\\n'); l[1] = '4'; c.textContent = l.join('\\n');",
    ];
    for (i, t) in tamper.iter().enumerate() {
        browser.goto(&format!("{}/console/log/entries/1", cp.url));
        browser.run(t, json!([]));
        let v = browser.verify_entry(&key);
        assert!(v.starts_with("Verification FAILED"), "tampering {i} passed: {v}");
        if i == 0 {
            browser.screenshot(&screenshots().join("entry-tampered.png"));
        }
    }

    // The log grows; the browser holds the server to the history it saw.
    let ws2 = work.path().join("ws2");
    std::fs::create_dir_all(&ws2).unwrap();
    for w in ["payments-release", "payments-quality", "psirt-advisories"] {
        crate::controlplane::operator(&cp, &ws2, w);
    }
    wait_published(&cp, 6);
    browser.goto(&format!("{}/console/log/entries/4", cp.url));
    let v = browser.verify_entry(&key);
    assert!(
        v.contains("It extends the checkpoint this browser verified before (size 3)"),
        "{v}"
    );
    browser.screenshot(&screenshots().join("entry-consistent.png"));
    let v = browser.verify_entry(&key);
    assert!(
        v.contains("It is the checkpoint this browser verified before"),
        "{v}"
    );
    // What this browser saw before, rewritten: another history at size 3,
    // then a larger tree than the server now shows.
    let seen = browser.run(
        "return Object.keys(localStorage).find((k) => k.startsWith('tally.seen.'))",
        json!([]),
    );
    let seen = seen.as_str().unwrap().to_owned();
    for (record, want) in [
        (
            json!({"size": "3", "root": "00".repeat(32)}),
            "the server shows different histories",
        ),
        (
            json!({"size": "9", "root": "00".repeat(32)}),
            "the log went back in time",
        ),
    ] {
        browser.run(
            "localStorage.setItem(arguments[0], arguments[1])",
            json!([seen, record.to_string()]),
        );
        let v = browser.verify_entry(&key);
        assert!(v.starts_with("Verification FAILED") && v.contains(want), "{v}");
    }

    // The page's data is plain HTML: only the verification needs JavaScript.
    let html = cp
        .http()
        .get(format!("{}/console/log/entries/1", cp.url))
        .send()
        .unwrap();
    assert_eq!(html.status(), 200);
    let csp = html.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let body = html.text().unwrap();
    assert!(
        body.contains("<noscript>") && body.contains("id=\"checkpoint\""),
        "{body}"
    );
    // Unknown or unpublished entries, and a bad index, say so.
    for (path, status) in [
        ("/console/log/entries/99", 404),
        ("/console/log/entries/x", 400),
        ("/console/log/entry?index=-1", 400),
    ] {
        let r = cp.http().get(format!("{}{path}", cp.url)).send().unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
}

#[test]
fn a_digest_search_finds_the_attestation_whose_entry_then_verifies_in_the_browser() {
    use crate::controlplane::{craft_release, ok, pipeline, push, SETUP_ENTRIES};
    let Some(browser) = Browser::start() else { return };
    let (_d, _repo, cp, ws, op) = pipeline(&[]);
    let env = op.env();
    craft_release(&cp, &ws, &env);
    let pushed = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    assert_eq!(pushed["log_index"], SETUP_ENTRIES);
    let key = cp.get("/api/v1/log", None).1["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();

    browser.goto(&format!("{}/console/log/search", cp.url));
    // The image's digest, typed in upper case.
    browser.run(
        "document.getElementById('digest').value = arguments[0]; document.querySelector('main form').requestSubmit();",
        json!([format!("sha256:{}", "5E".repeat(32))]),
    );
    let link = json!(format!("/console/log/entries/{SETUP_ENTRIES}"));
    assert_eq!(
        browser.wait_for(
            "const a = document.querySelector('#hits a'); return a && a.getAttribute('href')",
            &link
        ),
        link
    );
    let row = browser.run(
        "return document.querySelector('#hits tbody tr').textContent",
        json!([]),
    );
    assert!(
        row.as_str().unwrap().contains("subject") && row.as_str().unwrap().contains("payments-release"),
        "{row}"
    );
    let complete = browser.run(
        "return document.getElementById('complete').textContent",
        json!([]),
    );
    assert!(
        complete.as_str().unwrap().contains("first 2 entries"),
        "{complete}"
    );
    browser.screenshot(&screenshots().join("search.png"));
    browser.run("document.querySelector('#hits a').click()", json!([]));
    browser.wait_for("return location.pathname", &link);
    let v = browser.verify_entry(&key);
    assert!(
        v.starts_with("Verified in this browser")
            && v.contains(&format!("entry {SETUP_ENTRIES} is in that tree")),
        "{v}"
    );

    // Two more releases of the same image: three hits, listed a page at a
    // time through the "Next hits" links (here a page of one), in log order,
    // none repeated or skipped; the last page has no link.
    let mut entries = vec![pushed["log_index"].as_u64().unwrap()];
    for _ in 0..2 {
        craft_release(&cp, &ws, &env);
        let p = ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
        entries.push(p["log_index"].as_u64().unwrap());
    }
    wait_published(&cp, entries[2] + 1);
    browser.goto(&format!(
        "{}/console/log/search?digest=sha256%3A{}&limit=1",
        cp.url,
        "5e".repeat(32)
    ));
    let mut paged = Vec::new();
    loop {
        let hrefs = browser.run(
            "return Array.from(document.querySelectorAll('#hits tbody a')).map((a) => a.getAttribute('href'))",
            json!([]),
        );
        paged.extend(
            hrefs
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_owned()),
        );
        let next = browser.run(
            "const a = document.getElementById('next'); return a && a.getAttribute('href')",
            json!([]),
        );
        let Some(next) = next.as_str() else { break };
        assert!(paged.len() < 10, "the pages do not end: {paged:?}");
        browser.goto(&format!("{}{next}", cp.url));
    }
    let expected: Vec<String> = entries
        .iter()
        .map(|i| format!("/console/log/entries/{i}"))
        .collect();
    assert_eq!(paged, expected);
    // The API pages the same way, and an envelope's digest finds its entry.
    let api = |q: &str| cp.get(&format!("/api/v1/search?{q}"), None).1;
    let first = api(&format!("digest=sha256:{}&limit=2", "5e".repeat(32)));
    let next = first["next"].as_i64().unwrap();
    let rest = api(&format!("digest=sha256:{}&limit=2&after={next}", "5e".repeat(32)));
    let indices = |v: &Value| -> Vec<u64> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["log_index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!([indices(&first), indices(&rest)].concat(), entries);
    assert!(rest.get("next").is_none(), "{rest}");
    let by_envelope = api(&format!("digest={}", pushed["envelope_digest"].as_str().unwrap()));
    assert_eq!(indices(&by_envelope), [entries[0]]);
    assert_eq!(by_envelope["results"][0]["role"], "envelope");
    let r = cp
        .http()
        .get(format!("{}/console/log/search", cp.url))
        .query(&[("digest", pushed["envelope_digest"].as_str().unwrap())])
        .send()
        .unwrap();
    let body = r.text().unwrap();
    assert!(
        body.contains(&format!("/console/log/entries/{}", entries[0])) && body.contains("<td>envelope</td>"),
        "{body}"
    );
    let r = cp
        .http()
        .get(format!(
            "{}/console/log/search?digest=sha256:{}&after=x",
            cp.url,
            "5e".repeat(32)
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("after must be the cursor"));

    // No hit, a malformed digest, markup in the query: said plainly, escaped.
    for (q, status, says) in [
        (
            format!("sha256:{}", "ab".repeat(32)),
            200,
            "No attestation names this digest",
        ),
        ("nonsense".to_owned(), 400, "digest must be"),
        ("<script>x</script>:zz".to_owned(), 400, "&lt;script&gt;"),
    ] {
        let r = cp
            .http()
            .get(format!("{}/console/log/search", cp.url))
            .query(&[("digest", &q)])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{q}");
        let body = r.text().unwrap();
        assert!(body.contains(says) && !body.contains("<script>x"), "{q}: {body}");
    }
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The value of `name` in a response's `Set-Cookie` headers, with the whole header.
fn set_cookie(r: &reqwest::blocking::Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_owned();
            (value, v.to_owned())
        })
}

/// The `value` of the hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Logs in with `token` through the form; the session cookie's value.
fn console_login(cp: &ControlPlane, token: &str) -> String {
    let http = no_redirects();
    let r = http.get(format!("{}/console/login", cp.url)).send().unwrap();
    let (login, _) = set_cookie(&r, "tally_login").expect("the login form's cookie");
    let csrf = hidden(&r.text().unwrap(), "csrf");
    let r = http
        .post(format!("{}/console/login", cp.url))
        .header("cookie", format!("tally_login={login}"))
        .form(&[("token", token), ("csrf", &csrf), ("next", "/console/runs")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().unwrap());
    set_cookie(&r, "tally_session").expect("a session cookie").0
}

/// `GET path` with the session cookie: (status, Location, body).
fn console_get(cp: &ControlPlane, session: Option<&str>, path: &str) -> (u16, String, String) {
    let mut req = no_redirects().get(format!("{}{path}", cp.url));
    if let Some(s) = session {
        req = req.header("cookie", format!("tally_session={s}"));
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().unwrap())
}

/// The release pipeline's run with one refused push (a key the workflow
/// never registered) and then its attestation accepted, a second
/// workflow's operator, and a breaking change to the release contract
/// merged after the run: (tmp, control plane, release token, other
/// workflow's token, run id, the contracts repository).
fn console_fixture() -> (tempfile::TempDir, ControlPlane, String, String, String, PathBuf) {
    use crate::common::git;
    use crate::controlplane::{craft_release, ok, operator, pipeline, push};
    let (d, repo, cp, ws, op) = pipeline(&[]);
    let other = operator(&cp, &ws, "payments-quality");
    let env = op.env();
    craft_release(&cp, &ws, &env);
    let state: Value =
        serde_json::from_slice(&std::fs::read(ws.join(".tally/attestation.json")).unwrap()).unwrap();
    let run = state["run_id"].as_str().unwrap().to_owned();
    let _ = crate::controlplane::refused_push(&cp, &ws, &env);
    ok(&push(&cp, &ws, &env, "cosign.key", &["--output", "json"]));
    let c = repo.join("build-and-release.toml");
    let text = std::fs::read_to_string(&c).unwrap();
    let stricter = text.replace(
        "name = \"chart\"\ntype = \"HELM_CHART\"\noptional = true\n",
        "name = \"chart\"\ntype = \"HELM_CHART\"\n",
    );
    assert_ne!(text, stricter);
    std::fs::write(&c, stricter).unwrap();
    git(&repo, &["commit", "-q", "-am", "releases must ship their chart"]);
    (d, cp, op.token, other.token, run, repo)
}

#[test]
fn console_sessions_and_the_authorization_of_every_page() {
    let (_d, cp, release, quality, run, _repo) = console_fixture();
    let pages = [
        "/console/runs".to_owned(),
        format!("/console/runs/{run}"),
        format!("/console/runs/{run}/bundle"),
        "/console/refusals".to_owned(),
        "/console/contracts".to_owned(),
        "/console/contracts/build-and-release".to_owned(),
    ];
    // Anonymous: the log's pages are public; the rest send to the login
    // page and back.
    for p in [
        "/console",
        "/console/log",
        "/console/log/search",
        "/console/login",
    ] {
        let (s, _, body) = console_get(&cp, None, p);
        assert_eq!(s, 200, "{p}: {body}");
    }
    for p in &pages {
        let (s, location, _) = console_get(&cp, None, p);
        assert_eq!(s, 303, "{p}");
        assert!(
            location.starts_with("/console/login?next=%2Fconsole"),
            "{p}: {location}"
        );
    }
    let (_, _, overview) = console_get(&cp, None, "/console");
    assert!(overview.contains("Log in</a> to see runs") && !overview.contains("runs-per-day"));

    // Logging in: the double-submit check, unknown tokens, CI ID tokens,
    // where it goes after, and the cookie's attributes.
    let http = no_redirects();
    let form = http.get(format!("{}/console/login", cp.url)).send().unwrap();
    let (login, header) = set_cookie(&form, "tally_login").unwrap();
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    let csrf = hidden(&form.text().unwrap(), "csrf");
    let post = |cookie: &str, fields: &[(&str, &str)], proto: Option<&str>| {
        let mut r = http
            .post(format!("{}/console/login", cp.url))
            .header("cookie", format!("tally_login={cookie}"))
            .form(fields);
        if let Some(p) = proto {
            r = r.header("x-forwarded-proto", p);
        }
        r.send().unwrap()
    };
    let r = post("forged", &[("token", &cp.admin), ("csrf", "forged-too")], None);
    assert_eq!(r.status().as_u16(), 403);
    assert!(set_cookie(&r, "tally_session").is_none());
    let r = post(&login, &[("token", &cp.admin), ("csrf", "another")], None);
    assert_eq!(r.status().as_u16(), 403);
    let r = post(&login, &[("token", "tally_nope"), ("csrf", &csrf)], None);
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().unwrap().contains("not known to this server"));
    let r = post(
        &login,
        &[
            ("token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"),
            ("csrf", &csrf),
        ],
        None,
    );
    assert_eq!(r.status().as_u16(), 401);
    let r = post(&login, &[("csrf", &csrf)], None);
    assert_eq!(r.status().as_u16(), 400);
    let r = post(
        &login,
        &[
            ("token", &cp.admin),
            ("csrf", &csrf),
            ("next", "https://evil.example/console"),
        ],
        Some("https"),
    );
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/console");
    let (_, header) = set_cookie(&r, "tally_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Secure"] {
        assert!(header.contains(attr), "{attr} in {header}");
    }
    let plain = console_login(&cp, &cp.admin);
    let r = no_redirects()
        .get(format!("{}/console/login", cp.url))
        .header("cookie", format!("tally_session={plain}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "a signed-in reader skips the form");

    // The admin sees everything.
    let admin = plain;
    for p in &pages {
        let (s, _, body) = console_get(&cp, Some(&admin), p);
        assert_eq!(s, 200, "{p}: {body}");
    }
    let (_, _, page) = console_get(&cp, Some(&admin), &format!("/console/runs/{run}"));
    assert!(page.contains("Signed in as <strong>admin</strong>"));
    assert!(
        page.contains("the envelope&#39;s signature does not verify"),
        "{page}"
    );
    assert!(page.contains("<code>signature</code>"));
    assert!(page.contains("id=\"run-entry\""));
    let (_, _, overview) = console_get(&cp, Some(&admin), "/console");
    assert!(overview.contains("runs-per-day") && overview.contains("refusals-by-reason"));

    // The release workflow's token: its run, its materials, its contract.
    let rel = console_login(&cp, &release);
    let (s, _, page) = console_get(&cp, Some(&rel), &format!("/console/runs/{run}"));
    assert_eq!(s, 200);
    let at = page.find("/console/artifacts/sha256:").expect("a download link");
    let artifact = page[at..at + 26 + 64].to_owned();
    let (s, _, _) = console_get(&cp, Some(&rel), &artifact);
    assert_eq!(s, 200, "{artifact}");
    let (s, _, bundle) = console_get(&cp, Some(&rel), &format!("/console/runs/{run}/bundle"));
    assert_eq!(s, 200);
    let b: Value = serde_json::from_str(&bundle).unwrap();
    assert!(b["logIndex"].is_u64() || b["log_index"].is_u64(), "{b}");

    // Another workflow's token learns nothing of that run, its refusals,
    // its artifacts or its contract.
    let qa = console_login(&cp, &quality);
    for p in [
        format!("/console/runs/{run}"),
        format!("/console/runs/{run}/bundle"),
        artifact.clone(),
        "/console/contracts/build-and-release".to_owned(),
        "/console/contracts/build-and-release/diff?from=0000000000000000000000000000000000000000&to=0000000000000000000000000000000000000000".to_owned(),
    ] {
        let (s, _, body) = console_get(&cp, Some(&qa), &p);
        assert_eq!(s, 404, "{p}: {body}");
    }
    for p in [
        "/console/runs",
        "/console/refusals",
        "/console",
        "/console/contracts",
    ] {
        let (s, _, body) = console_get(&cp, Some(&qa), p);
        assert_eq!(s, 200, "{p}");
        assert!(!body.contains(&run), "{p} shows the other workflow's run");
        assert!(
            !body.contains("build-and-release<"),
            "{p} shows the other workflow's contract"
        );
        assert!(
            !body.contains("refusals-by-reason"),
            "{p} counts the other workflow's refusals"
        );
    }
    let (_, _, contracts) = console_get(&cp, Some(&qa), "/console/contracts");
    assert!(contracts.contains("quality-gates"), "{contracts}");
    // Anonymous readers get no artifact either.
    assert_eq!(console_get(&cp, None, &artifact).0, 404);

    // Hostile input: said plainly, escaped.
    for (p, status) in [
        ("/console/runs?status=<b>x", 400),
        ("/console/runs?since=yesterday", 400),
        ("/console/runs?after=nonsense", 400),
        ("/console/contracts/..%2Fworkflows", 400),
        ("/console/contracts/build-and-release?at=HEAD~1", 400),
        (
            "/console/contracts/build-and-release?at=1111111111111111111111111111111111111111",
            404,
        ),
        ("/console/runs/<script>", 404),
        ("/console/artifacts/sha256:zz", 400),
    ] {
        let (s, _, body) = console_get(&cp, Some(&admin), p);
        assert_eq!(s, status, "{p}: {body}");
        assert!(!body.contains("<script>") && !body.contains("<b>x"), "{p}");
    }

    // Logging out needs the session's CSRF token; then the session is over.
    let (_, _, page) = console_get(&cp, Some(&rel), "/console/runs");
    let csrf = hidden(&page, "csrf");
    let logout = |fields: &[(&str, &str)]| {
        no_redirects()
            .post(format!("{}/console/logout", cp.url))
            .header("cookie", format!("tally_session={rel}"))
            .form(fields)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(logout(&[("csrf", "forged")]), 403);
    assert_eq!(console_get(&cp, Some(&rel), "/console/runs").0, 200);
    assert_eq!(logout(&[("csrf", &csrf)]), 200);
    assert_eq!(console_get(&cp, Some(&rel), "/console/runs").0, 303);

    // Revoking a token ends its sessions.
    let tokens = cp.get("/api/v1/tokens", Some(&cp.admin)).1;
    let id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["workflows"][0] == "payments-quality")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = cp
        .http()
        .delete(format!("{}/api/v1/tokens/{id}", cp.url))
        .bearer_auth(&cp.admin)
        .send()
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(console_get(&cp, Some(&qa), "/console/runs").0, 303);
}

/// Clicks the element `selector` and waits until the page's path is `path`.
fn click_to(browser: &Browser, selector: &str, path: &str) {
    browser.run("document.querySelector(arguments[0]).click()", json!([selector]));
    assert_eq!(
        browser.wait_for("return location.pathname", &json!(path)),
        json!(path),
        "clicking {selector}"
    );
}

fn text_of(browser: &Browser, selector: &str) -> String {
    browser
        .run(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            json!([selector]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn secops_logs_in_finds_why_a_push_was_refused_reads_the_contract_diff_and_logs_out() {
    let Some(browser) = Browser::start() else { return };
    let (_d, cp, _release, _quality, run, _repo) = console_fixture();
    let shots = screenshots();

    browser.goto(&format!("{}/console", cp.url));
    click_to(&browser, "#login-link", "/console/login");
    browser.screenshot(&shots.join("login.png"));
    browser.run(
        "document.getElementById('token').value = arguments[0]; document.querySelector('main form').requestSubmit();",
        json!([cp.admin]),
    );
    assert_eq!(
        browser.wait_for("return location.pathname", &json!("/console")),
        json!("/console")
    );
    assert_eq!(text_of(&browser, "#signed-in"), "Signed in as admin");
    assert!(text_of(&browser, "#refusals-by-reason").contains("signature"));
    browser.screenshot(&shots.join("overview.png"));

    // The refused push, from the overview's count to the run and its reason.
    click_to(&browser, "#refusals-by-reason a", "/console/refusals");
    click_to(&browser, "#refusals a", &format!("/console/runs/{run}"));
    let refusals = text_of(&browser, "#refusals");
    assert!(
        refusals.contains("signature does not verify") && refusals.contains("signature"),
        "{refusals}"
    );
    assert_eq!(text_of(&browser, "#run-status"), "SUCCEEDED");
    let materials = text_of(&browser, "#materials");
    assert!(
        materials.contains("SBOM_SPDX_JSON")
            && materials.contains("JUNIT_XML")
            && materials.contains("download"),
        "{materials}"
    );
    let verdicts = text_of(&browser, "#verdicts");
    assert!(
        verdicts.contains("junit-no-failures")
            && verdicts.contains("FAILED")
            && verdicts.contains("testCase9"),
        "{verdicts}"
    );
    assert!(text_of(&browser, "#statement").contains("https://slsa.dev/provenance/v1"));
    browser.screenshot(&shots.join("run.png"));

    // The contract it was checked against, its history, and what changed since.
    click_to(&browser, "#run-contract", "/console/contracts/build-and-release");
    assert_eq!(
        browser.run(
            "return document.querySelectorAll('#history tbody tr').length",
            json!([])
        ),
        2
    );
    browser.screenshot(&shots.join("contract.png"));
    browser.run("document.getElementById('compare').click()", json!([]));
    assert_eq!(
        browser.wait_for(
            "return location.pathname",
            &json!("/console/contracts/build-and-release/diff")
        ),
        json!("/console/contracts/build-and-release/diff")
    );
    let changes = text_of(&browser, "#changes");
    assert!(
        changes.contains("BREAKING") && changes.contains("chart"),
        "{changes}"
    );
    assert!(text_of(&browser, "#breaking-count").starts_with("1 breaking"));
    browser.screenshot(&shots.join("contract-diff.png"));

    // Logging out ends the session: the runs page asks for a login again.
    browser.run("document.getElementById('logout').click()", json!([]));
    assert_eq!(
        browser.wait_for(
            "const e = document.getElementById('logged-out'); return e !== null",
            &json!(true)
        ),
        json!(true)
    );
    browser.goto(&format!("{}/console/runs", cp.url));
    assert_eq!(
        browser.wait_for("return location.pathname", &json!("/console/login")),
        json!("/console/login")
    );
}

/// Pins `key`, submits the consistency page's form and waits for the verdict.
fn verify_consistency_page(browser: &Browser, key: &str) -> String {
    browser.run(
        "document.getElementById('key').value = arguments[0];\
         document.getElementById('verdict').textContent = '';\
         document.getElementById('verify-form').requestSubmit();",
        json!([key]),
    );
    let done = "const v = document.getElementById('verdict').textContent; \
                return v.startsWith('Verified') || v.startsWith('Verification FAILED')";
    browser.wait_for(done, &json!(true));
    text_of(browser, "#verdict")
}

#[test]
fn any_two_checkpoints_over_time_are_proven_consistent_in_the_browser() {
    let Some(browser) = Browser::start() else { return };
    let work = tmp();
    let cp = ControlPlane::start(&crate::common::contracts_repo(work.path()), &[]);
    let key = cp.get("/api/v1/log", None).1["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two rounds of entries, each published before the next.
    for (round, size) in [("ws1", 3), ("ws2", 6)] {
        let ws = work.path().join(round);
        std::fs::create_dir_all(&ws).unwrap();
        for w in ["payments-release", "payments-quality", "psirt-advisories"] {
            crate::controlplane::operator(&cp, &ws, w);
        }
        wait_published(&cp, size);
    }

    browser.goto(&format!("{}/console/log", cp.url));
    click_to(&browser, "#checkpoints-link", "/console/log/checkpoints");
    let rows = browser.run(
        "return Array.from(document.querySelectorAll('#checkpoints tbody tr'), (r) => r.cells[1].textContent)",
        json!([]),
    );
    let sizes: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes[0], 6, "{sizes:?}");
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "newest first: {sizes:?}");
    assert!(sizes.len() >= 2, "{sizes:?}");
    browser.screenshot(&screenshots().join("checkpoints.png"));
    // The oldest publication of a non-empty tree against the newest.
    let pick = sizes.iter().rposition(|s| *s > 0).unwrap();
    browser.run(
        "document.querySelectorAll('input[name=old]')[arguments[0]].checked = true;\
         document.querySelector('input[name=new]').checked = true; document.getElementById('check').click();",
        json!([pick]),
    );
    browser.wait_for("return location.pathname", &json!("/console/log/consistency"));
    browser.wait_for("return document.getElementById('key') !== null", &json!(true));
    assert!(
        text_of(&browser, "h1").starts_with("Consistency"),
        "{}",
        text_of(&browser, "main")
    );
    let oldest = sizes[pick];
    let v = verify_consistency_page(&browser, &key);
    assert!(
        v.starts_with("Verified in this browser")
            && v.contains(&format!(
                "the tree of size {oldest} is a prefix of the tree of size 6"
            )),
        "{v}"
    );
    browser.screenshot(&screenshots().join("consistency.png"));
    let url = browser.run("return location.href", json!([]));
    let url = url.as_str().unwrap().to_owned();

    // A page that lies, each way caught by the page itself.
    let tamper = [
        "const c = document.querySelector('#proof code'); c.textContent = c.textContent.replace(/^./, (x) => x === '0' ? '1' : '0');",
        "const c = document.getElementById('checkpoint-new'); const l = c.textContent.split('\\n'); l[2] = l[2].replace(/^./, (x) => x === 'A' ? 'B' : 'A'); c.textContent = l.join('\\n');",
        "const c = document.getElementById('checkpoint-old'); const l = c.textContent.split('\\n'); l[1] = '2'; c.textContent = l.join('\\n');",
        "document.getElementById('proof').replaceChildren();",
    ];
    for (i, t) in tamper.iter().enumerate() {
        browser.goto(&url);
        browser.run(t, json!([]));
        let v = verify_consistency_page(&browser, &key);
        assert!(v.starts_with("Verification FAILED"), "tampering {i} passed: {v}");
    }

    // The empty tree of the first publication is a prefix of every tree.
    if *sizes.last().unwrap() == 0 {
        browser.goto(&format!("{}/console/log/checkpoints", cp.url));
        browser.run(
            "const o = document.querySelectorAll('input[name=old]'); o[o.length - 1].checked = true;\
             document.getElementById('check').click();",
            json!([]),
        );
        browser.wait_for("return document.getElementById('key') !== null", &json!(true));
        let v = verify_consistency_page(&browser, &key);
        assert!(v.contains("the older tree is empty"), "{v}");
    }

    // Malformed or unknown commits, and a missing pair, say so.
    for (path, status) in [
        ("/console/log/consistency", 400),
        ("/console/log/consistency?old=zz&new=zz", 400),
        (
            "/console/log/consistency?old=1111111111111111111111111111111111111111&new=1111111111111111111111111111111111111111",
            404,
        ),
        ("/console/log/checkpoints?from=HEAD", 400),
    ] {
        let r = cp.http().get(format!("{}{path}", cp.url)).send().unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
}

#[test]
fn the_entry_page_requires_the_cosignatures_of_the_witnesses_a_reader_pins() {
    use crate::witness::{eventually, serve_at, witness_of};
    let Some(browser) = Browser::start() else { return };
    let d = tmp();
    let repo = crate::common::contracts_repo(d.path());
    // The log's key exists before the first start, so the witness can be
    // configured with it.
    let origin = "tally.localhost/log";
    let log_key = ledger_format::note::SignerKey::from_seed(origin, &[7; 32]).unwrap();
    let cp_dir = tmp();
    std::fs::create_dir_all(cp_dir.path().join("data/ledger")).unwrap();
    std::fs::write(
        cp_dir.path().join("data/ledger/log.key"),
        format!("{}\n", log_key.to_secret_text()),
    )
    .unwrap();
    let log_vkey = log_key.verifier().to_string();
    let (config, witness_vkey, listen) = witness_of(d.path(), "w1", origin, &log_vkey);
    let _witness = serve_at(&config, &listen);
    let (_, stranger_vkey, _) = witness_of(d.path(), "w2", origin, &log_vkey);
    let policy = d.path().join("witnesses.policy");
    std::fs::write(
        &policy,
        format!("log {log_vkey}\nwitness w1 {witness_vkey} http://{listen}\nquorum w1\n"),
    )
    .unwrap();
    let tally_toml = d.path().join("tally.toml");
    std::fs::write(
        &tally_toml,
        format!(
            "[witnesses]\npolicy = \"{}\"\ntimeout_ms = 1000\nretry_secs = 1\n",
            policy.display()
        ),
    )
    .unwrap();
    let cp = ControlPlane::start_in(cp_dir, &repo, &["--config", tally_toml.to_str().unwrap()]);
    let ws = d.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    crate::controlplane::operator(&cp, &ws, "payments-release");
    eventually("the entry is published, cosigned", || {
        let cp_text = cp
            .http()
            .get(format!("{}/checkpoint", cp.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        cp_text.lines().nth(1) == Some("1") && cp_text.contains("— witness.test/w1 ")
    });

    browser.goto(&format!("{}/console/log/entries/0", cp.url));
    let pin = |witnesses: &str| {
        browser.run(
            "document.getElementById('witness-keys').value = arguments[0]",
            json!([witnesses]),
        );
        browser.verify_entry(&log_vkey)
    };
    let v = pin(&format!("\n{witness_vkey}\n"));
    assert!(
        v.starts_with("Verified in this browser")
            && v.contains("Cosigned by the witnesses you require: witness.test/w1 at 20"),
        "{v}"
    );
    browser.screenshot(&screenshots().join("entry-cosigned.png"));
    assert_eq!(
        browser.run("return localStorage.getItem('tally.witnessKeys')", json!([])),
        json!(witness_vkey)
    );
    // A witness that never saw the checkpoint, and a key that is no witness's.
    let v = pin(&format!("{witness_vkey}\n{stranger_vkey}"));
    assert!(
        v.starts_with("Verification FAILED") && v.contains("no cosignature of witness witness.test/w2"),
        "{v}"
    );
    let v = pin(&log_vkey);
    assert!(
        v.starts_with("Verification FAILED") && v.contains("is not a cosignature/v1 key"),
        "{v}"
    );
    // No witness pinned: verified, and it says what was not checked.
    let v = pin("");
    assert!(v.starts_with("Verified") && v.contains("pin witness keys"), "{v}");
}

/// What a page breaks for readers at 400% zoom or on a phone, or without
/// a mouse: overflow to the side, form controls without a label, controls
/// taken out of (or reordered in) the keyboard's order, header cells
/// without a scope, images without text.
const AUDIT: &str = r#"
const problems = [];
const doc = document.documentElement;
if (doc.scrollWidth > window.innerWidth + 1) {
  const wide = Array.from(document.querySelectorAll('main *'))
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.wide'))
    .slice(0, 3)
    .map((e) => `${e.tagName.toLowerCase()}#${e.id}`);
  problems.push(`scrolls sideways: ${doc.scrollWidth} > ${window.innerWidth} (${wide.join(', ')})`);
}
for (const el of document.querySelectorAll('input, select, textarea, button')) {
  if (el.type === 'hidden') continue;
  const named = el.labels?.length > 0 || el.getAttribute('aria-label') || (el.tagName === 'BUTTON' && el.textContent.trim());
  if (!named) problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.id || el.name}`);
}
for (const el of document.querySelectorAll('[tabindex]')) if (el.getAttribute('tabindex') !== '0') problems.push(`tabindex on ${el.tagName}`);
for (const t of document.querySelectorAll('table')) if (!t.parentElement.classList.contains('wide')) problems.push('a table outside a scroll region');
for (const th of document.querySelectorAll('thead th')) if (!th.getAttribute('scope')) problems.push('th without scope');
for (const img of document.querySelectorAll('img')) if (!img.alt) problems.push('img without alt');
if (!document.querySelector('main h1')) problems.push('no h1');
if (document.documentElement.lang !== 'en') problems.push('no lang');
return problems;
"#;

#[test]
fn every_page_reads_at_400_percent_zoom_and_works_from_the_keyboard() {
    let Some(browser) = Browser::start() else { return };
    let (_d, cp, _release, _quality, run, repo) = console_fixture();
    // 1280 CSS px at 400% zoom is a 320 px wide viewport (WCAG 1.4.10).
    browser.call(
        "POST",
        &format!("/session/{}/window/rect", browser.session),
        json!({"width": 320, "height": 640}),
    );
    let width = browser.run("return window.innerWidth", json!([]));
    assert!(width.as_u64().unwrap() <= 400, "the window is {width} px wide");

    browser.goto(&format!("{}/console/login", cp.url));
    // From the keyboard alone: the token field takes focus in order, Enter submits.
    browser.run(
        "const t = document.getElementById('token'); t.focus(); t.value = arguments[0]; \
         t.form.requestSubmit();",
        json!([cp.admin]),
    );
    browser.wait_for("return location.pathname", &json!("/console/runs"));
    let commits = crate::common::git(&repo, &["log", "--format=%H", "--", "build-and-release.toml"]);
    let commits: Vec<&str> = commits.lines().collect();
    let pages = [
        "/console".to_owned(),
        "/console/runs".to_owned(),
        format!("/console/runs/{run}"),
        "/console/refusals".to_owned(),
        "/console/contracts".to_owned(),
        "/console/contracts/build-and-release".to_owned(),
        format!(
            "/console/contracts/build-and-release/diff?from={}&to={}",
            commits[1], commits[0]
        ),
        "/console/log".to_owned(),
        "/console/log/entries/0".to_owned(),
        "/console/log/search?digest=sha256%3A5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e".to_owned(),
        "/console/log/checkpoints".to_owned(),
    ];
    // The audit needs the page's style sheet applied (the scroll regions are
    // CSS): under CI's load a page was once audited before it was.
    let styled = "return Array.from(document.styleSheets).some((s) => { try { return s.cssRules.length > 0; } catch (e) { return false; } })";
    for p in &pages {
        browser.goto(&format!("{}{p}", cp.url));
        if browser.wait_for(styled, &json!(true)) != json!(true) {
            browser.goto(&format!("{}{p}", cp.url));
            assert_eq!(
                browser.wait_for(styled, &json!(true)),
                json!(true),
                "{p}: console.css is not applied"
            );
        }
        let problems = browser.run(AUDIT, json!([]));
        assert_eq!(problems, json!([]), "{p}");
    }
    browser.goto(&format!("{}/console/runs/{run}", cp.url));
    browser.screenshot(&screenshots().join("run-320px.png"));
    // Every link and control is reachable with Tab: none is hidden from it.
    let unreachable = browser.run(
        "return Array.from(document.querySelectorAll('a[href], button, input, select, textarea'))\
           .filter((e) => e.type !== 'hidden' && (e.tabIndex < 0 || e.disabled)).length",
        json!([]),
    );
    assert_eq!(unreachable, 0);
    // The Tab key (a real key press) moves the focus through the page's
    // links and controls in order, each visibly outlined.
    let mut seen = Vec::new();
    for _ in 0..6 {
        browser.call(
            "POST",
            &format!("/session/{}/actions", browser.session),
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": "\u{E004}"}, {"type": "keyUp", "value": "\u{E004}"}
            ]}]}),
        );
        let focused = browser.run(
            "const e = document.activeElement; return [e.tagName, e.textContent.trim().slice(0, 20), getComputedStyle(e).outlineStyle]",
            json!([]),
        );
        assert_eq!(focused[2], "solid", "{focused}");
        seen.push(focused[1].as_str().unwrap().to_owned());
    }
    assert_eq!(&seen[..4], ["Overview", "Runs", "Contracts", "Log"], "{seen:?}");
}

#[test]
fn with_javascript_off_everything_but_verification_works_and_the_page_says_so() {
    let Some(browser) = Browser::without_javascript() else {
        return;
    };
    let (_d, cp, _release, _quality, run, _repo) = console_fixture();
    // Log in: a plain form post.
    browser.goto(&format!("{}/console/login", cp.url));
    browser.type_into("#token", &cp.admin);
    browser.click_then("main form button[type=submit]", "/console", "#signed-in");
    assert_eq!(browser.text("#signed-in"), "Signed in as admin");
    // The refused run and its reason, through the runs filter form.
    browser.goto(&format!("{}/console/runs?status=SUCCEEDED", cp.url));
    browser.click_then(
        &format!("a[href=\"/console/runs/{run}\"]"),
        &format!("/console/runs/{run}"),
        "#refusals",
    );
    assert!(browser.text("#refusals").contains("signature does not verify"));
    // Its contract, and the diff with the head through the compare form.
    browser.click_then(
        "#run-contract",
        "/console/contracts/build-and-release",
        "#history",
    );
    browser.click_then(
        "#compare",
        "/console/contracts/build-and-release/diff",
        "#changes",
    );
    assert!(!browser.text("#changes").is_empty());
    // The public log pages show who is signed in too.
    browser.goto(&format!("{}/console/log", cp.url));
    assert_eq!(browser.text("#signed-in"), "Signed in as admin");
    // Search a digest, follow the hit to its entry.
    browser.goto(&format!("{}/console/log/search", cp.url));
    browser.type_into("#digest", &format!("sha256:{}", "5e".repeat(32)));
    browser.click_then("main form button[type=submit]", "/console/log/search", "#hits");
    let hit = browser.element("#hits tbody a");
    let href = browser.call(
        "GET",
        &format!("/session/{}/element/{hit}/attribute/href", browser.session),
        Value::Null,
    );
    let entry = href.as_str().unwrap().trim_start_matches(&cp.url).to_owned();
    assert!(entry.starts_with("/console/log/entries/"), "{entry}");
    browser.click_then("#hits tbody a", &entry, "#proof");
    // The entry, its proof and checkpoint are there; verification says it
    // needs JavaScript, and no verdict appears.
    assert!(!browser.text("#proof").is_empty() && !browser.text("#checkpoint").is_empty());
    assert!(
        browser.text("noscript p").contains("needs JavaScript"),
        "the page does not say that verification needs JavaScript"
    );
    // Its Verify button stays disabled: nothing pretends to verify.
    let button = browser.element("#verify-form button[type=submit]");
    let enabled = browser.call(
        "GET",
        &format!("/session/{}/element/{button}/enabled", browser.session),
        Value::Null,
    );
    assert_eq!(enabled, json!(false));
    assert!(browser.has("#verdict") && browser.text("#verdict").is_empty());
    browser.screenshot(&screenshots().join("entry-without-javascript.png"));
    // The checkpoints and consistency pages, then log out: a form post.
    browser.goto(&format!("{}/console/log/checkpoints", cp.url));
    assert!(browser.has("#checkpoints tbody tr"));
    browser.click_then("#logout", "/console/logout", "#logged-out");
    assert!(browser.text("#logged-out").contains("The session has ended"));
    browser.goto(&format!("{}/console/runs", cp.url));
    assert_eq!(browser.path(), "/console/login");
}
