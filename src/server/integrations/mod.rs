//! Integrations (SPEC.md §17): what the control plane tells the tools that
//! watch it — a generic webhook (CloudEvents, HMAC-signed), Slack and
//! Discord webhooks, and Dependency-Track (the SBOM of an accepted
//! attestation) — through a durable outbox.
//!
//! The one entry point is [`Integrations`]: built from `[[integrations]]`
//! at start, it turns an accepted attestation or a refused push into
//! outbox rows (written by the metadata database in the same transaction as
//! what they report: the index writer's batch, or the refusal's row), and
//! [`Integrations::run`] delivers them: due rows, each attempt recorded,
//! retried with exponential backoff and jitter, given up after
//! `max_attempts` (then `failed`, retriable by the operator). Nothing here
//! runs on a push's path: intake only adds rows to a transaction it makes
//! anyway. A delivery in flight when the process dies is still `pending`
//! and is made again after the restart: at least once, each carrying its
//! event's id as `Idempotency-Key`.

mod format;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use serde::Deserialize;

use crate::server::meta::{Attempt, AttestationRow, Delivery, DigestRow, OutboxRow, RefusalRow};
use crate::server::{unix_now, App, ConfigError};

/// The type of the event an accepted attestation makes.
pub const ACCEPTED: &str = "dev.tally.attestation.accepted";
/// The type of the event a refused push makes.
pub const REFUSED: &str = "dev.tally.push.refused";

/// One `[[integrations]]` of the server configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// Its name (letters, digits, `-`, `_`), unique.
    pub name: String,
    /// What it talks to.
    pub kind: Kind,
    /// Where: the webhook's URL, or Dependency-Track's base URL.
    pub url: String,
    /// The environment variable holding its secret: the webhook's HMAC key,
    /// Dependency-Track's API key. Required for those two; unused by Slack
    /// and Discord (their URL is the secret).
    #[serde(default)]
    pub secret_env: String,
    /// Which events: `accepted`, `refused` (default: both; Dependency-Track
    /// takes accepted ones only).
    #[serde(default = "all_events")]
    pub events: Vec<EventKind>,
    /// Only these workflows' events (default: every workflow's).
    #[serde(default)]
    pub workflows: Vec<String>,
    /// Dependency-Track: the material (its name in the contract) whose
    /// artifact is the CycloneDX SBOM to upload.
    #[serde(default)]
    pub material: String,
    /// Deadline of one attempt, milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before a delivery is `failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first retry's delay, seconds; each next doubles (at most an
    /// hour), each drawn between half and one and a half of it.
    #[serde(default = "default_backoff_secs")]
    pub backoff_secs: u64,
}

fn all_events() -> Vec<EventKind> {
    vec![EventKind::Accepted, EventKind::Refused]
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    10
}
fn default_backoff_secs() -> u64 {
    2
}

/// What an integration talks to.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Any HTTP receiver: the CloudEvent (structured JSON), HMAC-SHA256 signed.
    Webhook,
    /// A Slack incoming webhook: a `text` message.
    Slack,
    /// A Discord webhook: a `content` message.
    Discord,
    /// Dependency-Track: `PUT /api/v1/bom` with the SBOM.
    DependencyTrack,
}

/// Which events an integration takes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// An attestation accepted into the log.
    Accepted,
    /// A push refused.
    Refused,
}

/// The configured integrations, and the deliverer's wake-up.
pub struct Integrations {
    list: Vec<(IntegrationConfig, Vec<u8>)>,
    origin: String,
    wake: tokio::sync::Notify,
    http: reqwest::Client,
}

impl std::fmt::Debug for Integrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integrations")
            .field(
                "names",
                &self.list.iter().map(|(c, _)| &c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Integrations {
    /// Checks `configs` and reads their secrets with `env`.
    pub fn new(
        configs: &[IntegrationConfig],
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Integrations, ConfigError> {
        let mut list = Vec::new();
        for c in configs {
            let bad = |m: String| ConfigError(format!("[[integrations]] `{}`: {m}", c.name));
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("the name must be letters, digits, - or _".into()));
            }
            if list
                .iter()
                .any(|(o, _): &(IntegrationConfig, Vec<u8>)| o.name == c.name)
            {
                return Err(bad("two integrations have this name".into()));
            }
            let url = reqwest::Url::parse(&c.url).map_err(|e| bad(format!("url {:?}: {e}", c.url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad(format!("url {:?} is not http(s)", c.url)));
            }
            if c.events.is_empty() || c.max_attempts == 0 || c.timeout_ms == 0 || c.backoff_secs == 0 {
                return Err(bad(
                    "events must name at least one; max_attempts, timeout_ms and backoff_secs must be positive"
                        .into(),
                ));
            }
            let needs_secret = matches!(c.kind, Kind::Webhook | Kind::DependencyTrack);
            let secret = match (needs_secret, c.secret_env.is_empty()) {
                (true, true) => {
                    return Err(bad("secret_env must name the variable holding its secret".into()))
                }
                (true, false) => env(&c.secret_env)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad(format!("the variable {} is not set", c.secret_env)))?
                    .into_bytes(),
                (false, _) => Vec::new(),
            };
            if c.kind == Kind::DependencyTrack {
                if c.material.is_empty() {
                    return Err(bad(
                        "a dependency-track integration names the SBOM's material".into()
                    ));
                }
                if c.events != [EventKind::Accepted] && c.events != all_events() {
                    return Err(bad("dependency-track takes accepted attestations only".into()));
                }
            }
            list.push((c.clone(), secret));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError(format!("[[integrations]]: the HTTP client: {e}")))?;
        Ok(Integrations {
            list,
            origin: origin.to_owned(),
            wake: tokio::sync::Notify::new(),
            http,
        })
    }

    /// Whether any is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The configured integrations.
    pub fn configs(&self) -> impl Iterator<Item = &IntegrationConfig> {
        self.list.iter().map(|(c, _)| c)
    }

    fn takes(&self, c: &IntegrationConfig, kind: EventKind, workflow: &str) -> bool {
        let kind_ok =
            c.events.contains(&kind) && !(c.kind == Kind::DependencyTrack && kind == EventKind::Refused);
        kind_ok && (c.workflows.is_empty() || c.workflows.iter().any(|w| w == workflow))
    }

    /// The outbox rows of an accepted attestation: one per integration
    /// that takes it, each the same event (id `accepted-<log index>`).
    pub fn accepted(&self, a: &AttestationRow, digests: &[DigestRow]) -> Vec<OutboxRow> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let id = format!("accepted-{}", a.log_index);
        let listed = |role: &str| -> Vec<serde_json::Value> {
            digests
                .iter()
                .filter(|d| d.role == role)
                .map(|d| serde_json::json!({"name": d.name, "digest": d.digest}))
                .collect()
        };
        let data = serde_json::json!({
            "workflow": a.workflow,
            "project": a.project,
            "run_id": a.run_id,
            "log_index": a.log_index,
            "envelope_digest": a.envelope_digest,
            "contract": {"name": a.contract.name, "commit": a.contract.commit},
            "subjects": listed("subject"),
            "materials": listed("material"),
        });
        self.rows(EventKind::Accepted, ACCEPTED, &id, &a.run_id, &a.workflow, data)
    }

    /// The outbox rows of a refused push (a fresh event id each).
    pub fn refused(&self, r: &RefusalRow) -> Vec<OutboxRow> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let mut rnd = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
        let id = format!("refused-{}-{}", r.at, hex::encode(rnd));
        let data = serde_json::json!({
            "workflow": r.workflow,
            "run_id": r.run_id,
            "caller": r.caller,
            "code": r.code,
            "message": r.message,
        });
        self.rows(EventKind::Refused, REFUSED, &id, &r.run_id, &r.workflow, data)
    }

    fn rows(
        &self,
        kind: EventKind,
        event_type: &str,
        id: &str,
        subject: &str,
        workflow: &str,
        data: serde_json::Value,
    ) -> Vec<OutboxRow> {
        let event = serde_json::json!({
            "specversion": "1.0",
            "id": id,
            "source": self.origin,
            "type": event_type,
            "subject": subject,
            "time": jiff::Timestamp::now().to_string(),
            "datacontenttype": "application/json",
            "data": data,
        })
        .to_string();
        self.list
            .iter()
            .filter(|(c, _)| self.takes(c, kind, workflow))
            .map(|(c, _)| OutboxRow {
                integration: c.name.clone(),
                event_id: id.to_owned(),
                event_type: event_type.to_owned(),
                event: event.clone(),
            })
            .collect()
    }

    /// Tells the deliverer that rows were written.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers the outbox until the process ends.
    pub async fn run(app: Arc<App>) {
        let me = &app.integrations;
        loop {
            let meta = app.meta.clone();
            let due = tokio::task::spawn_blocking(move || meta.due_deliveries(unix_now(), 64)).await;
            let due = match due {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "integrations: reading the outbox failed");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                Err(_) => return,
            };
            if due.is_empty() {
                let meta = app.meta.clone();
                let next = tokio::task::spawn_blocking(move || meta.next_delivery_due())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten();
                let wait = next.map_or(60, |at| (at - unix_now()).clamp(0, 60)) as u64;
                let _ = tokio::time::timeout(Duration::from_secs(wait.max(1)), me.wake.notified()).await;
                continue;
            }
            let attempts = due.into_iter().map(|d| me.attempt(&app, d));
            let done = futures_util::future::join_all(attempts).await;
            let meta = app.meta.clone();
            let recorded =
                tokio::task::spawn_blocking(move || meta.deliveries_attempted(&done, unix_now())).await;
            if let Ok(Err(e)) = recorded {
                // Still pending: attempted again (at least once, never lost).
                tracing::warn!(error = %e, "integrations: recording attempts failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// One attempt at `d`, and how it went.
    async fn attempt(&self, app: &Arc<App>, d: Delivery) -> Attempt {
        let Some((c, secret)) = self.list.iter().find(|(c, _)| c.name == d.integration) else {
            // Configured once, since removed: given up, retriable if it returns.
            return Attempt {
                id: d.id,
                error: Some("the integration is no longer configured".into()),
                retry_at: None,
            };
        };
        let outcome = match tokio::time::timeout(
            Duration::from_millis(c.timeout_ms),
            format::deliver(&self.http, app, c, secret, &d),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(format::Failed {
                why: format!("no answer within {} ms", c.timeout_ms),
                permanent: false,
            }),
        };
        let (error, retry_at) = match outcome {
            Ok(()) => (None, None),
            Err(f) if !f.permanent && (d.attempts + 1) < i64::from(c.max_attempts) => (
                Some(f.why),
                Some(unix_now() + backoff(c.backoff_secs, d.attempts)),
            ),
            Err(f) => (Some(f.why), None),
        };
        let label = match (&error, retry_at) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "retry",
            (Some(_), None) => "failed",
        };
        app.metrics.integration_delivery(&c.name, label);
        if let Some(e) = &error {
            tracing::warn!(integration = %c.name, event = %d.event_id, attempt = d.attempts + 1, error = %e, "delivery failed");
        }
        Attempt {
            id: d.id,
            error,
            retry_at,
        }
    }
}

/// The delay before attempt `done + 1` is retried: `base · 2^done`
/// seconds (at most an hour), drawn between half and one and a half of it.
fn backoff(base: u64, done: i64) -> i64 {
    let d = base.saturating_mul(1 << done.clamp(0, 20)).min(3600) as f64;
    let jittered = rand::thread_rng().gen_range(0.5 * d..=1.5 * d);
    jittered.ceil().max(1.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: Kind) -> IntegrationConfig {
        IntegrationConfig {
            name: "hook".into(),
            kind,
            url: "http://127.0.0.1:9/x".into(),
            secret_env: "HOOK_SECRET".into(),
            events: all_events(),
            workflows: Vec::new(),
            material: String::new(),
            timeout_ms: 1000,
            max_attempts: 3,
            backoff_secs: 1,
        }
    }

    #[test]
    fn configurations_are_checked() {
        let env = |k: &str| (k == "HOOK_SECRET").then(|| "s3cret".to_owned());
        assert!(Integrations::new(&[config(Kind::Webhook)], "o", env).is_ok());
        let no_secret = |_: &str| None;
        let e = Integrations::new(&[config(Kind::Webhook)], "o", no_secret).unwrap_err();
        assert!(e.0.contains("HOOK_SECRET is not set"), "{e}");
        let mut c = config(Kind::Slack);
        c.url = "ftp://x".into();
        assert!(Integrations::new(&[c], "o", env)
            .unwrap_err()
            .0
            .contains("not http"));
        let dt = config(Kind::DependencyTrack);
        assert!(Integrations::new(&[dt], "o", env)
            .unwrap_err()
            .0
            .contains("material"));
        let twice = [config(Kind::Slack), config(Kind::Discord)];
        assert!(Integrations::new(&twice, "o", env)
            .unwrap_err()
            .0
            .contains("two integrations"));
        let mut bad = config(Kind::Slack);
        bad.name = "a b".into();
        assert!(Integrations::new(&[bad], "o", env).is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_bounded() {
        for done in 0..30 {
            let d = backoff(2, done) as f64;
            let nominal = (2u64.saturating_mul(1 << done.min(20))).min(3600) as f64;
            assert!(
                d >= (0.5 * nominal).floor() && d <= (1.5 * nominal).ceil(),
                "{done}: {d}"
            );
        }
    }

    #[test]
    fn events_go_to_the_integrations_that_take_them() {
        let env = |_: &str| Some("k".to_owned());
        let mut only_refused = config(Kind::Webhook);
        only_refused.events = vec![EventKind::Refused];
        let mut other_workflow = config(Kind::Slack);
        other_workflow.name = "chat".into();
        other_workflow.workflows = vec!["other".into()];
        let i = Integrations::new(&[only_refused, other_workflow], "log.example/x", env).unwrap();
        let row = AttestationRow {
            log_index: 7,
            envelope_digest: "sha256:ee".into(),
            workflow: "wf".into(),
            project: "p".into(),
            run_id: "r".into(),
            contract: crate::contract::ContractRevision {
                name: "c".into(),
                commit: "0".repeat(40),
                blob: "1".repeat(40),
            },
            created_at: 1,
        };
        assert!(i.accepted(&row, &[]).is_empty());
        let refusal = RefusalRow {
            run_id: "r".into(),
            workflow: "wf".into(),
            caller: "tok".into(),
            code: "signature".into(),
            message: "no".into(),
            at: 5,
        };
        let rows = i.refused(&refusal);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].integration, "hook");
        let ev: serde_json::Value = serde_json::from_str(&rows[0].event).unwrap();
        assert_eq!(ev["specversion"], "1.0");
        assert_eq!(ev["type"], REFUSED);
        assert_eq!(ev["source"], "log.example/x");
        assert_eq!(ev["id"], rows[0].event_id.as_str());
        assert_eq!(ev["data"]["code"], "signature");
    }
}
