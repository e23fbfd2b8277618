//! `tally-bench console`: the web console's pages on a large installation
//! (issue 19's bound: no page slower than 200 ms of server time on a log of
//! 1,000,000 entries and 100,000 runs).
//!
//! Setup (not timed): the data directory is built by the intake benchmark
//! (`--entries` real signed attestations pushed through the API, one run
//! each), then `--extra-runs` runs of three workflows spread over 14 days,
//! a tenth of them FAILED with a refused push recorded, are added to the
//! metadata database, and the admin token is set to one this harness knows.
//! A directory built before is reused as it is.
//!
//! Timed: each page, after one warm-up request, `--requests` times in
//! sequence over loopback as a signed-in admin (and, where the scope
//! changes the query, as a workflow token's session). The latency seen by
//! the client is an upper bound of the server's time.

use std::time::Instant;

use anyhow::{anyhow, Context as _};
use serde_json::json;
use tally::cmd::Report;
use tally::exit::{Classify as _, Failure};
use tally::server::meta::{Meta, RefusalRow, Run, RunFilter};
use tally::server::{self, ServerConfig};

use crate::args::{BenchConsoleArgs, BenchIntakeArgs};
use crate::harness::percentile;

const WORKFLOWS: [&str; 3] = ["payments-release", "payments-quality", "psirt-advisories"];
const OUTCOMES: [&str; 4] = ["SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"];

/// Extra runs, refusals and the known admin token, written to the metadata
/// database before the server opens it.
fn seed(dir: &std::path::Path, extra_runs: usize, admin: &str) -> Result<(), Failure> {
    let meta = Meta::open(&dir.join("meta.db")).unavailable()?;
    meta.set_setting("admin_token_sha256", &hex::encode(server::token_hash(admin)))
        .unavailable()?;
    if meta.setting("bench_console_seeded").unavailable()?.is_some() {
        return Ok(());
    }
    let now = server::unix_now();
    let template = meta
        .runs_page(&RunFilter::default(), 1)
        .unavailable()?
        .pop()
        .ok_or_else(|| Failure::Unavailable(anyhow!("the intake benchmark made no run")))?;
    for i in 0..extra_runs {
        let workflow = WORKFLOWS[i % 3];
        let status = OUTCOMES[(i / 3) % 4];
        let created = now - (i as i64 * 14 * 86_400 / extra_runs.max(1) as i64);
        let id = format!("run-console-{i:08}");
        let run = Run {
            id: id.clone(),
            workflow: workflow.into(),
            status: "INITIALIZED".into(),
            created_at: created,
            log_index: None,
            envelope_digest: None,
            reason: None,
            finished_at: None,
            ..template.clone()
        };
        meta.insert_run(&run).unavailable()?;
        if status == "FAILED" {
            meta.record_refusal(&RefusalRow {
                run_id: id.clone(),
                workflow: workflow.into(),
                caller: "bench".into(),
                code: ["signature", "contract_violation", "policy_violation"][(i / 12) % 3].into(),
                message:
                    "the envelope's signature does not verify: no signature verifies with the workflow's keys"
                        .into(),
                at: created + 30,
            }, &[])
            .unavailable()?;
        }
        meta.finish_run(
            &id,
            status,
            (status != "SUCCEEDED").then_some("bench"),
            created + 60,
        )
        .unavailable()?;
    }
    meta.set_setting("bench_console_seeded", "1").unavailable()?;
    Ok(())
}

/// A session cookie for `token`, through the login form.
fn login(http: &reqwest::blocking::Client, url: &str, token: &str) -> Result<String, Failure> {
    let cookie = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
    };
    let r = http.get(format!("{url}/console/login")).send().unavailable()?;
    let login = cookie(&r, "tally_login").ok_or_else(|| Failure::Unavailable(anyhow!("no login cookie")))?;
    let html = r.text().unavailable()?;
    let at = html
        .find("name=\"csrf\" value=\"")
        .ok_or_else(|| Failure::Unavailable(anyhow!("no csrf field")))?;
    let csrf: String = html[at + 19..].chars().take_while(|c| *c != '"').collect();
    let r = http
        .post(format!("{url}/console/login"))
        .header("cookie", format!("tally_login={login}"))
        .form(&[("token", token), ("csrf", &csrf)])
        .send()
        .unavailable()?;
    cookie(&r, "tally_session").ok_or_else(|| Failure::Unavailable(anyhow!("login refused: {}", r.status())))
}

/// `tally-bench console`
pub(crate) fn console(a: &BenchConsoleArgs) -> Result<Report, Failure> {
    let tmp = tempfile::tempdir()
        .context("creating a temporary directory")
        .unavailable()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
    let built = Instant::now();
    if !dir.join("meta.db").exists() {
        let intake = BenchIntakeArgs::for_dataset(a.entries, dir.clone());
        crate::harness::intake(&intake)?;
    }
    let admin = server::new_secret("tly_admin_");
    seed(&dir, a.extra_runs, &admin)?;
    let setup_s = built.elapsed().as_secs_f64();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unavailable()?;
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        ..ServerConfig::default()
    };
    let started = rt
        .block_on(server::start(cfg, Some(admin.clone())))
        .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    let app = started.app.clone();
    let url = format!("http://{}", started.addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = rt.spawn(server::run(started, async move {
        let _ = stopped.await;
    }));
    // The start-up reindex (if any) finishes before anything is timed.
    while app.indexed.below() < app.ledger.sizes().published {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unavailable()?;
    let wf_token = server::new_secret("tly_wf_");
    app.meta
        .create_token(
            &tally::wire::TokenInfo {
                id: format!("bench-console-{}", server::unix_now()),
                workflows: vec!["payments-quality".into()],
                description: "bench".into(),
                created_at: server::unix_now(),
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            },
            &server::token_hash(&wf_token),
        )
        .unavailable()?;
    let admin_session = login(&http, &url, &admin)?;
    let wf_session = login(&http, &url, &wf_token)?;

    // What the pages are asked about, from the data.
    let sizes = app.ledger.sizes();
    let runs_total: usize = app
        .meta
        .runs_by_status()
        .unavailable()?
        .iter()
        .map(|(_, n)| *n as usize)
        .sum();
    let newest = app.meta.runs_page(&RunFilter::default(), 1).unavailable()?;
    // A run whose attestation is in the log (the seeded runs are not).
    let logged: Vec<Run> = app
        .meta
        .runs_page(
            &RunFilter {
                status: Some("SUCCEEDED".into()),
                workflow: Some("psirt-advisories".into()),
                ..RunFilter::default()
            },
            100_000,
        )
        .unavailable()?
        .into_iter()
        .filter(|r| r.log_index.is_some())
        .take(1)
        .collect();
    let failed = app
        .meta
        .runs_page(
            &RunFilter {
                status: Some("FAILED".into()),
                ..RunFilter::default()
            },
            1,
        )
        .unavailable()?;
    let (logged, failed) = match (logged.first(), failed.first(), newest.first()) {
        (Some(l), Some(f), Some(_)) => (l.clone(), f.clone()),
        _ => {
            return Err(Failure::Unavailable(anyhow!(
                "the data has no logged or failed run"
            )))
        }
    };
    let mid_time = server::unix_now() - 7 * 86_400;
    let (pubs, _) = app.ledger.publications(None, 1).unavailable()?;
    let (older, _) = app.ledger.publications(None, 200).unavailable()?;
    let newest_pub = pubs.first().map(|p| p.commit.to_string()).unwrap_or_default();
    let oldest_pub = older.last().map(|p| p.commit.to_string()).unwrap_or_default();
    let envelope = logged.envelope_digest.clone().unwrap_or_default();
    let last = sizes.published.saturating_sub(1);
    let head = app.contracts.head().map(|h| h.to_string()).unwrap_or_default();

    let pages: Vec<(String, &str)> = vec![
        ("/console".into(), "admin"),
        ("/console".into(), "workflow"),
        ("/console/runs".into(), "admin"),
        ("/console/runs".into(), "workflow"),
        (format!("/console/runs?after={mid_time}:~"), "admin"),
        ("/console/runs?status=FAILED".into(), "admin"),
        (
            "/console/runs?workflow=payments-release&status=cancelled".into(),
            "admin",
        ),
        (
            format!("/console/runs?since={}&until={}", day(mid_time), day(mid_time)),
            "admin",
        ),
        (format!("/console/runs/{}", logged.id), "admin"),
        (format!("/console/runs/{}/bundle", logged.id), "admin"),
        (format!("/console/runs/{}", failed.id), "admin"),
        ("/console/refusals".into(), "admin"),
        ("/console/refusals?code=signature".into(), "workflow"),
        ("/console/contracts".into(), "admin"),
        ("/console/contracts/security-advisories".into(), "admin"),
        (
            format!("/console/contracts/security-advisories/diff?from={head}&to={head}"),
            "admin",
        ),
        ("/console/log".into(), "none"),
        ("/console/log/entries/0".into(), "none"),
        (format!("/console/log/entries/{}", last / 2), "none"),
        (format!("/console/log/entries/{last}"), "none"),
        (format!("/console/log/search?digest={envelope}"), "none"),
        ("/console/log/checkpoints".into(), "none"),
        (
            format!("/console/log/consistency?old={oldest_pub}&new={newest_pub}"),
            "none",
        ),
    ];
    let mut results = Vec::new();
    let mut worst = 0f64;
    for (path, who) in &pages {
        let mut lat = Vec::with_capacity(a.requests);
        let mut bytes = 0;
        for i in 0..=a.requests {
            let mut req = http.get(format!("{url}{path}"));
            match *who {
                "admin" => req = req.header("cookie", format!("tally_session={admin_session}")),
                "workflow" => req = req.header("cookie", format!("tally_session={wf_session}")),
                _ => {}
            }
            let t = Instant::now();
            let r = req.send().unavailable()?;
            let status = r.status().as_u16();
            let body = r.bytes().unavailable()?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if status != 200 {
                return Err(Failure::Unavailable(anyhow!("{path} answered {status}")));
            }
            bytes = body.len();
            if i > 0 {
                lat.push(ms);
            }
        }
        lat.sort_by(f64::total_cmp);
        let max = lat.last().copied().unwrap_or(0.0);
        worst = worst.max(max);
        results.push(json!({
            "page": path,
            "as": who,
            "bytes": bytes,
            "p50_ms": percentile(&lat, 0.50),
            "p99_ms": percentile(&lat, 0.99),
            "max_ms": max,
        }));
    }
    let _ = stop.send(());
    let _ = rt.block_on(serving);
    let deep = deep_search(a.entries, a.requests)?;
    let j = json!({
        "bench": "console",
        "entries_published": sizes.published,
        "runs": runs_total,
        "requests_per_page": a.requests,
        "setup_s": setup_s,
        "worst_ms": worst,
        "pages": results,
        "digest_search_pages": deep,
    });
    Ok(Report {
        text: format!("{j}\n"),
        json: j,
    })
}

/// A digest search's pages at any depth: a metadata database of `entries`
/// attestations that all name one digest (the worst case: a base image in
/// every release), then a page of 101 hits (what the console asks for 100)
/// after the cursor at the start, the middle and the end, `requests` times
/// each. The search index's query alone (the HTTP part is the search page
/// measured above).
fn deep_search(entries: usize, requests: usize) -> Result<serde_json::Value, Failure> {
    use tally::server::meta::{search_position, AttestationRow, DigestRow};
    let tmp = tempfile::tempdir().unavailable()?;
    let meta = Meta::open(&tmp.path().join("meta.db")).unavailable()?;
    let popular = format!("sha256:{}", "ba".repeat(32));
    let built = Instant::now();
    let contract = tally::contract::ContractRevision {
        name: "bench".into(),
        commit: "0".repeat(40),
        blob: "0".repeat(40),
    };
    for start in (0..entries).step_by(10_000) {
        let batch: Vec<_> = (start..(start + 10_000).min(entries))
            .map(|i| {
                let row = AttestationRow {
                    log_index: i as i64,
                    envelope_digest: format!("sha256:{i:064x}"),
                    workflow: WORKFLOWS[i % 3].into(),
                    project: "bench".into(),
                    run_id: format!("run-{i}"),
                    contract: contract.clone(),
                    created_at: 0,
                };
                let named = |digest: String, role: &str, name: &str| DigestRow {
                    digest,
                    role: role.into(),
                    name: name.into(),
                };
                let digests = vec![
                    named(format!("sha256:{:064x}", (i + 1) << 32), "subject", "app"),
                    named(popular.clone(), "material", "base-image"),
                ];
                (row, digests)
            })
            .collect();
        meta.record_attestations(&batch, &[], 0).unavailable()?;
    }
    let build_s = built.elapsed().as_secs_f64();
    let mut pages = Vec::new();
    for (at, entry) in [
        ("first", None),
        ("middle", Some(entries / 2)),
        ("last", Some(entries - 50)),
    ] {
        let after = entry.map_or(-1, |e| search_position(e as i64, 1));
        let mut lat = Vec::with_capacity(requests);
        let mut hits = 0;
        for i in 0..=requests {
            let t = Instant::now();
            hits = meta
                .search_digest(&popular, after, entries as i64, 101)
                .unavailable()?
                .len();
            if i > 0 {
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        lat.sort_by(f64::total_cmp);
        pages.push(json!({
            "page": at,
            "hits": hits,
            "p50_ms": percentile(&lat, 0.50),
            "max_ms": lat.last().copied().unwrap_or(0.0),
        }));
    }
    Ok(json!({"entries_naming_it": entries, "build_s": build_s, "pages": pages}))
}

fn day(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}
