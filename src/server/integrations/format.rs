//! What each kind of integration is sent (SPEC.md §17.2), and one attempt.

use std::sync::Arc;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::{IntegrationConfig, Kind, ACCEPTED};
use crate::server::meta::Delivery;
use crate::server::App;

/// The largest SBOM sent to Dependency-Track (it is sent base64 in JSON).
const MAX_SBOM_BYTES: u64 = 64 << 20;

/// The `X-Tally-Signature-256` of `body` under `secret`: `sha256=<hex>` of
/// HMAC-SHA256 (as GitHub's webhooks sign theirs).
pub(super) fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
    )
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug)]
pub(super) struct Failed {
    /// What went wrong.
    pub why: String,
    /// Another attempt would fail the same way (a missing or non-CycloneDX
    /// SBOM; a 4xx answer other than 408 and 429): given up at once,
    /// retriable by the operator once fixed.
    pub permanent: bool,
}

fn retriable(why: impl Into<String>) -> Failed {
    Failed {
        why: why.into(),
        permanent: false,
    }
}

fn permanent(why: impl Into<String>) -> Failed {
    Failed {
        why: why.into(),
        permanent: true,
    }
}

/// One attempt at delivering `d` to `c`.
pub(super) async fn deliver(
    http: &reqwest::Client,
    app: &Arc<App>,
    c: &IntegrationConfig,
    secret: &[u8],
    d: &Delivery,
) -> Result<(), Failed> {
    let event: Value = serde_json::from_str(&d.event)
        .map_err(|e| permanent(format!("the stored event is not JSON: {e}")))?;
    let request = match c.kind {
        Kind::Webhook => http
            .post(&c.url)
            .header("content-type", "application/cloudevents+json; charset=utf-8")
            .header("x-tally-signature-256", signature(secret, d.event.as_bytes()))
            .body(d.event.clone()),
        Kind::Slack => json_body(
            http.post(&c.url),
            &json!({ "text": slack_escape(&message(&event)) }),
        ),
        Kind::Discord => json_body(
            http.post(&c.url),
            &json!({
                "content": message(&event),
                "allowed_mentions": { "parse": [] },
            }),
        ),
        Kind::DependencyTrack => {
            let body = dependency_track(app, c, &event).await?;
            json_body(
                http.put(format!("{}/api/v1/bom", c.url.trim_end_matches('/')))
                    .header("x-api-key", String::from_utf8_lossy(secret).into_owned()),
                &body,
            )
        }
    };
    let r = request
        .header("idempotency-key", &d.event_id)
        .header("user-agent", concat!("tally/", env!("CARGO_PKG_VERSION")))
        .send()
        .await
        .map_err(|e| retriable(format!("{e}")))?;
    let status = r.status();
    if status.is_success() {
        return Ok(());
    }
    let text = r.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    let why = format!("HTTP {status}: {text}");
    let again = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
    Err(if again { retriable(why) } else { permanent(why) })
}

fn json_body(r: reqwest::RequestBuilder, v: &Value) -> reqwest::RequestBuilder {
    r.header("content-type", "application/json").body(v.to_string())
}

/// The one-line message of a chat integration.
fn message(e: &Value) -> String {
    let d = &e["data"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if e["type"] == ACCEPTED {
        let commit = s(&d["contract"]["commit"]);
        format!(
            "tally: {} run {} accepted — log entry {}, contract {}@{}",
            s(&d["workflow"]),
            s(&d["run_id"]),
            d["log_index"],
            s(&d["contract"]["name"]),
            &commit[..commit.len().min(12)],
        )
    } else {
        format!(
            "tally: {} push to run {} refused ({}): {}",
            s(&d["workflow"]),
            s(&d["run_id"]),
            s(&d["code"]),
            s(&d["message"]).chars().take(1000).collect::<String>(),
        )
    }
}

/// Slack's three control characters, escaped (its message formatting).
fn slack_escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Dependency-Track's `BomSubmitRequest`: the SBOM material's artifact,
/// base64, for the project and version of the run (created if new).
async fn dependency_track(app: &Arc<App>, c: &IntegrationConfig, e: &Value) -> Result<Value, Failed> {
    let d = &e["data"];
    let digest = d["materials"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(d["subjects"].as_array().into_iter().flatten())
        .find(|m| {
            m["name"] == c.material.as_str() && m["digest"].as_str().is_some_and(|g| g.starts_with("sha256:"))
        })
        .and_then(|m| m["digest"].as_str())
        .ok_or_else(|| {
            permanent(format!(
                "the attestation names no sha256 material `{}`",
                c.material
            ))
        })?;
    let hex = digest.trim_start_matches("sha256:").to_owned();
    let (len, mut stream) = app
        .artifacts
        .get(&hex)
        .await
        .map_err(|e| retriable(format!("reading the SBOM {digest}: {e}")))?
        .ok_or_else(|| permanent(format!("the SBOM {digest} was not uploaded to the control plane")))?;
    if len > MAX_SBOM_BYTES {
        return Err(permanent(format!(
            "the SBOM {digest} is {len} bytes, more than {MAX_SBOM_BYTES}"
        )));
    }
    let mut bom = Vec::with_capacity(len as usize);
    while let Some(chunk) = stream.next().await {
        bom.extend_from_slice(&chunk.map_err(|e| retriable(format!("reading the SBOM {digest}: {e}")))?);
    }
    let format = serde_json::from_slice::<Value>(&bom)
        .ok()
        .map(|v| v["bomFormat"].clone());
    if format != Some(Value::from("CycloneDX")) {
        return Err(permanent(format!(
            "material `{}` ({digest}) is not a CycloneDX JSON SBOM: Dependency-Track takes CycloneDX",
            c.material
        )));
    }
    let run_id = d["run_id"].as_str().unwrap_or_default().to_owned();
    let meta = app.meta.clone();
    let version = tokio::task::spawn_blocking(move || meta.run(&run_id))
        .await
        .map_err(|e| retriable(e.to_string()))?
        .map_err(|e| retriable(e.to_string()))?
        .map(|r| r.version)
        .ok_or_else(|| permanent("the run is not in the metadata database"))?;
    Ok(json!({
        "projectName": d["project"],
        "projectVersion": version,
        "autoCreate": true,
        "bom": base64::engine::general_purpose::STANDARD.encode(bom),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn chat_messages_say_what_happened_and_escape_slack_markup() {
        let e = json!({"type": "dev.tally.push.refused", "data": {
            "workflow": "wf", "run_id": "r1", "code": "signature", "message": "<b>no</b> & more"}});
        assert_eq!(
            slack_escape(&message(&e)),
            "tally: wf push to run r1 refused (signature): &lt;b&gt;no&lt;/b&gt; &amp; more"
        );
        let a = json!({"type": ACCEPTED, "data": {"workflow": "wf", "run_id": "r2", "log_index": 12,
            "contract": {"name": "c", "commit": "0123456789abcdef0123"}}});
        assert_eq!(
            message(&a),
            "tally: wf run r2 accepted — log entry 12, contract c@0123456789ab"
        );
    }
}
