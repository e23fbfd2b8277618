//! The operator's commands against a running control plane: tokens,
//! workflow keys, runs, stats.

use anyhow::anyhow;
use serde_json::{json, Value};

use crate::cli::{
    ArtifactDownloadArgs, ArtifactUploadArgs, ConnArgs, RunDescribeArgs, RunExceptionArgs, RunListArgs,
    ServerConn, StatsArgs, TokenCreateArgs, TokenRevokeArgs, WorkflowKeyAddArgs, WorkflowKeyListArgs,
    WorkflowKeyRevokeArgs,
};
use crate::client::Client;
use crate::cmd::Report;
use crate::exit::Failure;
use crate::wire;

pub(crate) fn client(c: &ServerConn) -> Result<Client, Failure> {
    Client::new(&c.server, c.token.as_deref())
}

/// Parses `30d`, `12h`, `90m`, `3600s` or plain seconds.
pub fn parse_duration(s: &str) -> Result<u64, Failure> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('d') => (&s[..s.len() - 1], 86_400),
        Some('h') => (&s[..s.len() - 1], 3_600),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('s') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| Failure::Usage(anyhow!("{s:?} is not a duration like 30d, 12h, 90m or 3600s")))
}

pub(crate) fn ts(secs: Option<i64>) -> String {
    secs.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| "-".into(), |t| t.to_string())
}

/// The answer as `--output json` prints it: exactly what the server sent.
pub(crate) fn echo(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `tally token create`
pub fn token_create(a: &TokenCreateArgs) -> Result<Report, Failure> {
    let expires = a.expires.as_deref().map(parse_duration).transpose()?;
    let (_, t): (_, wire::TokenCreated) = client(&a.conn)?.post_as(
        "/api/v1/tokens",
        &wire::CreateToken {
            workflows: a.workflows.clone(),
            expires_in_secs: expires,
            description: a.description.clone(),
        },
    )?;
    Ok(Report {
        text: format!(
            "token {} for workflow(s) {} (expires {})\n{}\nIt is shown once; store it as the pipeline's TALLY_TOKEN secret.\n",
            t.info.id,
            a.workflows.join(", "),
            ts(t.info.expires_at),
            t.token
        ),
        json: echo(&t),
    })
}

/// `tally token list`
pub fn token_list(a: &ConnArgs) -> Result<Report, Failure> {
    let list: wire::TokenList = client(&a.conn)?.get_as("/api/v1/tokens")?;
    let mut t = format!(
        "{:<18} {:<30} {:<22} {:<22} STATE\n",
        "ID", "WORKFLOWS", "EXPIRES", "LAST USED"
    );
    for k in &list.tokens {
        t.push_str(&format!(
            "{:<18} {:<30} {:<22} {:<22} {}\n",
            k.id,
            k.workflows.join(","),
            ts(k.expires_at),
            ts(k.last_used_at),
            if k.revoked_at.is_none() {
                "active"
            } else {
                "revoked"
            }
        ));
    }
    Ok(Report {
        text: t,
        json: echo(&list),
    })
}

/// `tally token revoke`
pub fn token_revoke(a: &TokenRevokeArgs) -> Result<Report, Failure> {
    let r: wire::TokenRevoked = client(&a.conn)?.delete_as(&format!("/api/v1/tokens/{}", a.id))?;
    Ok(Report {
        text: format!("token {} revoked\n", r.id),
        json: echo(&r),
    })
}

/// `tally workflow list`
pub fn workflow_list(a: &ConnArgs) -> Result<Report, Failure> {
    let list: wire::WorkflowList = client(&a.conn)?.get_as("/api/v1/workflows")?;
    let mut t = String::new();
    for w in &list.workflows {
        t.push_str(&format!(
            "{} (project {}, contract {}): {} key(s)\n",
            w.name,
            w.project,
            w.contract,
            w.keys.len()
        ));
    }
    Ok(Report {
        text: t,
        json: echo(&list),
    })
}

/// `tally workflow key add`
pub fn workflow_key_add(a: &WorkflowKeyAddArgs) -> Result<Report, Failure> {
    let pem = std::fs::read_to_string(&a.key)
        .map_err(|e| Failure::Usage(anyhow!("cannot read {}: {e}", a.key.display())))?;
    let (_, k): (_, wire::KeyAdded) = client(&a.conn)?.post_as(
        &format!("/api/v1/workflows/{}/keys", a.workflow),
        &wire::AddKey { public_key: pem },
    )?;
    let at = k
        .log_index
        .map(|i| format!(" (log entry {i})"))
        .unwrap_or_default();
    Ok(Report {
        text: format!("key {} now signs workflow {}{at}\n", k.keyid, a.workflow),
        json: echo(&k),
    })
}

/// `tally workflow key revoke`
pub fn workflow_key_revoke(a: &WorkflowKeyRevokeArgs) -> Result<Report, Failure> {
    let is_keyid = a.key.len() == 64 && a.key.bytes().all(|b| b.is_ascii_hexdigit());
    let keyid = if is_keyid {
        a.key.to_ascii_lowercase()
    } else {
        let pem = std::fs::read_to_string(&a.key)
            .map_err(|e| Failure::Usage(anyhow!("cannot read {}: {e}", a.key)))?;
        crate::attest::signing::keyid_of_pem(&pem).map_err(|e| Failure::Usage(anyhow!("{}: {e}", a.key)))?
    };
    let k: wire::KeyRevoked =
        client(&a.conn)?.delete_as(&format!("/api/v1/workflows/{}/keys/{keyid}", a.workflow))?;
    Ok(Report {
        text: format!(
            "key {} revoked for workflow {} (log entry {}); attestations it signed before stay valid\n",
            k.keyid, k.workflow, k.log_index
        ),
        json: echo(&k),
    })
}

/// `tally workflow key list`
pub fn workflow_key_list(a: &WorkflowKeyListArgs) -> Result<Report, Failure> {
    let k: wire::KeyList = client(&a.conn)?.get_as(&format!("/api/v1/workflows/{}/keys", a.workflow))?;
    let mut text = String::new();
    for key in &k.keys {
        text.push_str(&format!("{}\n", key.keyid));
    }
    if k.keys.is_empty() {
        text.push_str(&format!("no key is registered for workflow {}\n", k.workflow));
    }
    Ok(Report { text, json: echo(&k) })
}

fn run_line(r: &wire::Run) -> String {
    format!(
        "{:<29} {:<22} {:<12} {:<22} {}\n",
        r.id,
        r.workflow,
        r.status,
        ts(Some(r.created_at)),
        r.log_index.map(|i| format!("log index {i}")).unwrap_or_default()
    )
}

/// `tally run list`
pub fn run_list(a: &RunListArgs) -> Result<Report, Failure> {
    let mut q = format!("/api/v1/runs?limit={}", a.limit);
    if let Some(w) = &a.workflow {
        q.push_str(&format!("&workflow={w}"));
    }
    if let Some(s) = &a.status {
        q.push_str(&format!("&status={}", s.to_ascii_uppercase()));
    }
    let list: wire::RunList = client(&a.conn)?.get_as(&q)?;
    let mut t = format!(
        "{:<29} {:<22} {:<12} {:<22} \n",
        "RUN", "WORKFLOW", "STATUS", "STARTED"
    );
    for r in &list.runs {
        t.push_str(&run_line(r));
    }
    Ok(Report {
        text: t,
        json: echo(&list),
    })
}

/// `tally run describe`
/// `tally run exception`
pub fn run_exception(a: &RunExceptionArgs) -> Result<Report, Failure> {
    let secs = parse_duration(&a.valid_for)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (_, e): (_, wire::ExceptionGranted) = client(&a.conn)?.post_as(
        &format!("/api/v1/runs/{}/exception", a.id),
        &wire::GrantException {
            by: a.by.clone(),
            reason: a.reason.clone(),
            until: now + secs as i64,
        },
    )?;
    Ok(Report {
        text: format!(
            "exception granted to run {} by {} until {}: {}\nits push is accepted despite blocking policy violations; the logged verdict records this exception\n",
            e.run_id,
            e.granted_by,
            ts(Some(e.until)),
            e.reason
        ),
        json: serde_json::to_value(&e).unwrap_or_default(),
    })
}

pub fn run_describe(a: &RunDescribeArgs) -> Result<Report, Failure> {
    let r: wire::Run = client(&a.conn)?.get_as(&format!("/api/v1/runs/{}", a.id))?;
    let log_index = r.log_index.map(|i| i.to_string());
    let fields: [(&str, Option<&str>); 13] = [
        ("id", Some(&r.id)),
        ("workflow", Some(&r.workflow)),
        ("project", Some(&r.project)),
        ("version", Some(&r.version)),
        ("status", Some(&r.status)),
        ("contract_name", Some(&r.contract_name)),
        ("contract_commit", Some(&r.contract_commit)),
        ("contract_blob", Some(&r.contract_blob)),
        ("runner_type", Some(&r.runner_type)),
        ("runner_url", Some(&r.runner_url)),
        ("reason", r.reason.as_deref()),
        ("log_index", log_index.as_deref()),
        ("envelope_digest", r.envelope_digest.as_deref()),
    ];
    let mut t = String::new();
    for (k, v) in fields {
        if let Some(v) = v {
            t.push_str(&format!("{k:<16} {v}\n"));
        }
    }
    t.push_str(&format!(
        "{:<16} {}\n{:<16} {}\n",
        "created_at",
        ts(Some(r.created_at)),
        "finished_at",
        ts(r.finished_at)
    ));
    Ok(Report {
        text: t,
        json: echo(&r),
    })
}

/// `tally stats`
pub fn stats(a: &StatsArgs) -> Result<Report, Failure> {
    let s: wire::Stats = client(&a.conn)?.get_as(&format!("/api/v1/stats?days={}", a.days))?;
    let mut t = format!("last {} day(s)\n\nruns per day:\n", a.days);
    for d in &s.runs_per_day {
        t.push_str(&format!(
            "  {}  {:>5} runs, {:>5} succeeded\n",
            d.day, d.runs, d.succeeded
        ));
    }
    t.push_str("\nper workflow:\n");
    for w in &s.workflows {
        t.push_str(&format!(
            "  {:<24} {:>5} runs  success {:>5.1}%  failure {:>5.1}%  mean {:>7}\n",
            w.workflow,
            w.runs,
            w.success_rate * 100.0,
            w.failure_rate * 100.0,
            w.mean_duration_s
                .map_or_else(|| "-".into(), |s| format!("{s:.0}s"))
        ));
    }
    let slowest: Vec<&str> = s.slowest.iter().map(|w| w.workflow.as_str()).collect();
    let failing: Vec<&str> = s.most_failing.iter().map(|w| w.workflow.as_str()).collect();
    t.push_str(&format!(
        "\nslowest: {}\nmost failing: {}\n",
        slowest.join(", "),
        failing.join(", ")
    ));
    Ok(Report {
        text: t,
        json: echo(&s),
    })
}

/// `tally artifact upload`: validates the file as its kind, hashes it, and
/// streams it to the control plane (nothing when it is there already).
pub fn artifact_upload(a: &ArtifactUploadArgs) -> Result<Report, Failure> {
    use crate::attest::material::{self, Kind};
    let kind = Kind::parse(&a.kind).filter(|k| k.is_file()).ok_or_else(|| {
        Failure::Usage(anyhow!(
            "{:?} is not a file material kind (SPEC.md §11.3)",
            a.kind
        ))
    })?;
    let bad = crate::cmd::attestation::material_failure;
    material::validate_file(kind, &a.file, &material::Options::default()).map_err(bad)?;
    let t = std::time::Instant::now();
    let (digest, size) = material::hash_file(&a.file, |_| {}).map_err(bad)?;
    let hash_s = t.elapsed().as_secs_f64();
    let name = match &a.name {
        Some(n) => n.clone(),
        None => a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "artifact".into()),
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let query = format!(
        "workflow={}&kind={}&name={}",
        enc(&a.workflow),
        kind.as_str(),
        enc(&name)
    );
    let t = std::time::Instant::now();
    let (url, reference) =
        crate::cmd::attestation::upload_file(&client(&a.conn)?, &a.file, &digest, &name, &query)?;
    let upload_s = t.elapsed().as_secs_f64();
    Ok(Report {
        text: format!(
            "{digest} ({size} bytes) stored: {url}\n{}",
            reference
                .as_ref()
                .map(|r| format!("  OCI artifact: {r}\n"))
                .unwrap_or_default()
        ),
        json: json!({"digest": digest, "size": size, "url": url, "reference": reference,
            "kind": kind.as_str(), "name": name, "seconds": {"hash": hash_s, "upload": upload_s}}),
    })
}

/// `tally artifact download`: streams to a temporary file beside the output,
/// hashing; renames it into place only when the digest matches.
pub fn artifact_download(a: &ArtifactDownloadArgs) -> Result<Report, Failure> {
    use sha2::{Digest as _, Sha256};
    use std::io::{Read as _, Write as _};
    let want = a
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Failure::Usage(anyhow!("{:?} is not sha256:<64 hex>", a.digest)))?
        .to_ascii_lowercase();
    let resp = client(&a.conn)?.get_stream(&format!("/api/v1/artifacts/sha256:{want}"))?;
    let bar = crate::cmd::progress::bytes(
        resp.content_length().unwrap_or(0),
        format!("downloading sha256:{}", &want[..12]),
    );
    let mut resp = crate::cmd::progress::Counting {
        inner: resp,
        bar: bar.clone(),
    };
    let dir = match a.file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Failure::Unavailable(anyhow!("creating a file in {}: {e}", dir.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = resp
            .read(&mut buf)
            .map_err(|e| Failure::Unavailable(anyhow!("the download broke off after {size} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| Failure::Unavailable(anyhow!("writing {}: {e}", tmp.path().display())))?;
        size += n as u64;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let got = hex::encode(h.finalize());
    if got != want {
        // The temporary file is removed on drop: a mismatch leaves no file.
        return Err(Failure::Invalid(anyhow!(
            "the server sent {size} bytes with digest sha256:{got}, not sha256:{want}; nothing was written"
        )));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Failure::Unavailable(anyhow!("syncing: {e}")))?;
    tmp.persist(&a.file)
        .map_err(|e| Failure::Unavailable(anyhow!("writing {}: {e}", a.file.display())))?;
    Ok(Report {
        text: format!(
            "sha256:{want} ({size} bytes) verified and written to {}\n",
            a.file.display()
        ),
        json: json!({"digest": format!("sha256:{want}"), "size": size, "output": a.file}),
    })
}
