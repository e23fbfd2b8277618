//! The HTTP intake handler, in process: `POST /api/v1/runs/{id}/attestation`
//! through the real router of a control plane started once (the seeded
//! example contracts, a workflow key and token, a run of
//! `psirt-advisories`). The first byte says what the rest is:
//! - even: the raw request body, as any client could send it;
//! - odd: a JSON merge patch (RFC 7386) over a valid statement for the
//!   current run, which the harness then signs with the workflow's key, so
//!   inputs get past the signature into the statement, contract and policy
//!   checks, and some are accepted (a new run is started after each).
//!
//! Whatever the input, the answer is never a 500 and never a panic, and an
//! error answer is the documented JSON shape.
#![no_main]
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tally::attest::signing::{Algorithm, SigningKey};
use tally::server::{self, meta::Run, App, ServerConfig};
use tower::ServiceExt as _;

struct Harness {
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    key: SigningKey,
    token: String,
    /// The current run and a valid statement for it.
    run: Mutex<(String, Value)>,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            refusals_per_minute: 0,
            ..ServerConfig::default()
        };
        let started = rt.block_on(server::start(cfg, None)).unwrap();
        let app = started.app.clone();
        // Dropping `started` leaves the app (and its ledger) running; the
        // router is driven directly, without the listener.
        std::mem::forget(started);
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        app.meta
            .add_workflow_key("psirt-advisories", key.keyid(), key.public_pem(), server::unix_now())
            .unwrap();
        let token = server::new_secret("tly_wf_");
        let info = tally::wire::TokenInfo {
            id: "tok-fuzz".into(),
            workflows: vec!["psirt-advisories".into()],
            description: "fuzz".into(),
            created_at: server::unix_now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        app.meta.create_token(&info, &server::token_hash(&token)).unwrap();
        let run = new_run(&app, 0);
        let h = Harness {
            rt,
            app,
            key,
            token,
            run: Mutex::new(run),
            _dir: dir,
        };
        check_harness(&h);
        h
    })
}

/// Starts run `n` and builds a statement the contract accepts for it.
fn new_run(app: &App, n: u64) -> (String, Value) {
    use tally::attest::state::{ContractRef, MaterialRecord, State, STATE_SCHEMA};
    let resolved = app.contracts.resolve("psirt-advisories", None).unwrap();
    let blob = app.contracts.blob(&resolved.revision.blob).unwrap();
    let runner = tally::attest::runner::detect(|_| None);
    let id = format!("run-fuzz-{n:08}");
    app.meta
        .insert_run(&Run {
            id: id.clone(),
            workflow: "psirt-advisories".into(),
            project: resolved.workflow.project.clone(),
            version: "1.0.0".into(),
            status: "INITIALIZED".into(),
            contract: resolved.revision.clone(),
            runner_type: runner.kind.clone(),
            runner_url: String::new(),
            created_at: server::unix_now(),
            finished_at: None,
            reason: None,
            log_index: None,
            envelope_digest: None,
        })
        .unwrap();
    let state = State {
        schema: STATE_SCHEMA.into(),
        run_id: id.clone(),
        dry_run: false,
        server: "http://127.0.0.1".into(),
        workflow: "psirt-advisories".into(),
        project: resolved.workflow.project.clone(),
        version: "1.0.0".into(),
        contract: ContractRef {
            revision: resolved.revision.clone(),
            source: String::new(),
            text: String::from_utf8_lossy(&blob).into_owned(),
            policies_commit: String::new(),
            pinned_at: String::new(),
            policies: Default::default(),
        },
        runner,
        env: Default::default(),
        git: None,
        started_at: "2026-12-04T00:00:00Z".into(),
        materials: vec![MaterialRecord {
            name: "vex-disclosure".into(),
            kind: "CSAF_VEX".into(),
            value: "vex.json".into(),
            digest: format!("sha256:{n:064x}"),
            size: 2873,
            output: false,
            in_contract: true,
            summary: String::new(),
            annotations: Default::default(),
            lenient: false,
            stored: String::new(),
            added_at: String::new(),
            policy_evaluations: Vec::new(),
        }],
    };
    let st = tally::attest::statement::build(&state, &Default::default(), "2026-12-04T00:01:00Z");
    (id, st)
}

/// RFC 7386: `patch` merged into `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Posts `body` to the current run; the status and the answer.
fn post(h: &Harness, run: &str, body: Vec<u8>) -> (u16, Value) {
    let req = axum::http::Request::post(format!("/api/v1/runs/{run}/attestation?wait=0"))
        .header("authorization", format!("Bearer {}", h.token))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let router = server::api::router(h.app.clone());
    let (status, bytes) = h.rt.block_on(async move {
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, bytes)
    });
    assert_ne!(status.as_u16(), 500, "{}", String::from_utf8_lossy(&bytes));
    let v: Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    (status.as_u16(), v)
}

/// The statement of the current run, patched, signed with the workflow's key.
fn signed(h: &Harness, statement: &Value, patch: &Value) -> Vec<u8> {
    let mut st = statement.clone();
    merge(&mut st, patch);
    let payload = serde_json::to_vec(&st).unwrap();
    let env = h
        .key
        .sign_envelope(tally::attest::dsse::IN_TOTO_PAYLOAD_TYPE, &payload)
        .unwrap();
    serde_json::to_vec(&env).unwrap()
}

/// After an acceptance the run is taken: go on with a fresh one.
fn next_run(h: &Harness) {
    let mut guard = h.run.lock().unwrap();
    let n = guard.0.trim_start_matches("run-fuzz-").parse::<u64>().unwrap() + 1;
    *guard = new_run(&h.app, n);
}

/// The harness reaches the deepest path: an unpatched statement is accepted.
fn check_harness(h: &Harness) {
    let (run, st) = h.run.lock().unwrap().clone();
    let (status, v) = post(h, &run, signed(h, &st, &Value::Object(Default::default())));
    assert!((200..300).contains(&status), "the harness's own statement is refused: {v}");
    next_run(h);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let h = harness();
    let (run, statement) = h.run.lock().unwrap().clone();
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let Ok(patch) = serde_json::from_slice::<Value>(rest) else { return };
        signed(h, &statement, &patch)
    };
    let (status, v) = post(h, &run, body);
    if (200..300).contains(&status) {
        next_run(h);
    } else {
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
});
