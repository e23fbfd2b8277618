//! The control plane's JSON API as types (SPEC.md §12): every request body
//! and every answer, serialized by the server and deserialized by the CLI's
//! client, so the two cannot drift apart. `GET /openapi.json` takes its
//! schemas from these types (`utoipa`).
//!
//! Below both the server and the CLI: this module imports neither.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use ledger_format::entry::ContractRevision;

use crate::attest::runner::RunnerContext;

/// Every error: a machine code, a message, what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A machine code (SPEC.md §12.6).
    pub error: String,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Structured details (a push's contract violations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

// ------------------------------------------------------------------ the log

/// The log's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Sizes {
    /// Durably sequenced.
    pub sequenced: u64,
    /// In the Merkle tree.
    pub integrated: u64,
    /// Under a signed, published checkpoint.
    pub published: u64,
}

/// `GET /api/v1/log`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogInfo {
    /// The checkpoint origin.
    pub origin: String,
    /// The log's verifier key (C2SP signed-note vkey).
    pub verifier_key: String,
    /// Its sizes.
    pub sizes: Sizes,
    /// Where the ledger's git repository is served.
    pub git: String,
    /// The public key (PEM) the control plane signs its policy verdicts
    /// (VSAs) with: `tally verify --verdict-key`.
    pub verdict_key: String,
}

/// `GET /api/v1/proof/inclusion`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The entry's index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
    /// The signed checkpoint, when the proof is at its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// A C2SP tlog-proof, when the proof is at the checkpoint's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_proof: Option<String>,
}

/// `GET /api/v1/proof/consistency`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
}

/// One attestation found by `GET /api/v1/search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// Its log index.
    pub log_index: i64,
    /// `sha256:<hex>` of its envelope.
    pub envelope_digest: String,
    /// The workflow.
    pub workflow: String,
    /// The project.
    pub project: String,
    /// The run.
    pub run_id: String,
    /// The contract revision it was checked against (`name`, `commit`, `blob`).
    #[schema(value_type = Object)]
    pub contract: ContractRevision,
    /// Unix seconds.
    pub created_at: i64,
    /// How it names the digest searched (`subject`, `material`, or `envelope`
    /// when it is the attestation's envelope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The descriptor's name that carries the digest searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `GET /api/v1/search`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchAnswer {
    /// Complete up to this log size.
    pub published_size: i64,
    /// What was found, in log order.
    pub results: Vec<SearchHit>,
    /// When there are more results: pass it as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

// --------------------------------------------------------------------- runs

/// `POST /api/v1/runs`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The workflow.
    pub workflow: String,
    /// Its project (checked against workflows.toml when given).
    #[serde(default)]
    pub project: Option<String>,
    /// The version being built.
    #[serde(default)]
    pub version: String,
    /// A commit of the contracts repository to pin (default: its head).
    #[serde(default)]
    pub contract_revision: Option<String>,
    /// The CI runner it runs on.
    #[schema(value_type = Object)]
    pub runner: RunnerContext,
}

/// A workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    /// Its id.
    pub id: String,
    /// The workflow.
    pub workflow: String,
    /// The project.
    pub project: String,
    /// The version built.
    pub version: String,
    /// INITIALIZED, SUCCEEDED, FAILED, CANCELLED or EXPIRED.
    pub status: String,
    /// The contract's name.
    pub contract_name: String,
    /// The pinned revision's commit.
    pub contract_commit: String,
    /// The pinned revision's blob.
    pub contract_blob: String,
    /// The runner type.
    pub runner_type: String,
    /// The runner's link.
    pub runner_url: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub finished_at: Option<i64>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Its attestation's log index.
    pub log_index: Option<i64>,
    /// Its attestation's envelope digest.
    pub envelope_digest: Option<String>,
    /// Where its attestation was copied in the OCI store (describe only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_attestations: Option<Vec<String>>,
    /// The policy exception granted to it, if any (describe only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionGranted>,
}

/// The contract a run was started against, with its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunContract {
    /// The contract's name.
    pub name: String,
    /// The commit at which its file last changed.
    pub commit: String,
    /// The blob id of its bytes.
    pub blob: String,
    /// The TOML text.
    pub text: String,
    /// The commit of the contracts repository its policies are read at
    /// (empty: the contract has none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policies_commit: String,
    /// The contracts repository's commit the run is pinned at (its head
    /// when the run started): its policies and `keys/<workflow>/` are read
    /// there, and the statement records it (SPEC.md §15.5).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_at: String,
    /// Every policy file it uses, by repository path: the bytes the
    /// crafting CLI evaluates (the control plane evaluates the same).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, String>,
}

/// The answer to `POST /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunStarted {
    /// The run.
    pub run: Run,
    /// Unix seconds after which it expires unless pushed.
    pub expires_at: i64,
    /// Its contract.
    pub contract: RunContract,
}

/// `GET /api/v1/runs`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<Run>,
}

/// `POST /api/v1/runs/{id}/reset`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRun {
    /// `failure` or `cancellation`.
    pub trigger: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/runs/{id}/certificate`: a key to certify for the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// The ephemeral public key, PEM SubjectPublicKeyInfo (ECDSA P-256 or Ed25519).
    pub public_key: String,
    /// Base64 of the key's signature over the run id (proof of possession).
    pub proof: String,
}

/// The answer to a certificate request: the certificate is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CertificateIssued {
    /// The leaf certificate then the CA's chain, PEM.
    pub certificate_chain: String,
    /// The log index of its `tally.dev/certificate/v1` entry.
    pub log_index: u64,
    /// Hex of its serial number.
    pub serial: String,
    /// When it expires (unix seconds).
    pub not_after: i64,
}

/// The answer to an accepted push (`POST /api/v1/runs/{id}/attestation`).
/// Borrowed on the server (it is on the path of every push), owned in the
/// client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushAnswer<'a> {
    /// The run.
    #[schema(value_type = String)]
    pub run_id: Cow<'a, str>,
    /// Its attestation's log index.
    pub log_index: u64,
    /// `sha256:<hex>` of the envelope.
    #[schema(value_type = String)]
    pub envelope_digest: Cow<'a, str>,
    /// The log entry's text (tally.dev/entry/v1).
    #[schema(value_type = String)]
    pub entry: Cow<'a, str>,
    /// Whether a checkpoint already covers it.
    pub published: bool,
    /// A C2SP tlog-proof, when published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_proof: Option<String>,
    /// Where to get the proof later, when not published yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The control plane's signed verdict (standard base64 of the VSA
    /// envelope the entry binds), when the contract has policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The policy evaluations that verdict records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub policy_evaluations: Vec<crate::policy::Evaluation>,
}

// -------------------------------------------------------------------- admin

/// `POST /api/v1/runs/{id}/exception` (admin): lets this run's blocking
/// policy violations through until `until`; the verdict records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantException {
    /// Who grants it (a person, recorded in the log with the admin principal).
    pub by: String,
    /// Why (recorded in the log).
    pub reason: String,
    /// Unix seconds after which it no longer applies.
    pub until: i64,
}

/// The answer to `POST /api/v1/runs/{id}/exception`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExceptionGranted {
    /// The run.
    pub run_id: String,
    /// Who granted it.
    pub granted_by: String,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub granted_at: i64,
    /// Unix seconds.
    pub until: i64,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The workflows it may act for.
    pub workflows: Vec<String>,
    /// Lifetime in seconds (none: no expiry).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// A service token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Its id.
    pub id: String,
    /// The workflows it may act for.
    pub workflows: Vec<String>,
    /// What it is for.
    pub description: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, or none.
    pub expires_at: Option<i64>,
    /// Unix seconds, or never used.
    pub last_used_at: Option<i64>,
    /// Unix seconds, or not revoked.
    pub revoked_at: Option<i64>,
}

/// The answer to `POST /api/v1/tokens`: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The token.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// Its secret.
    pub token: String,
}

/// `GET /api/v1/tokens`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Every token.
    pub tokens: Vec<TokenInfo>,
}

/// One configured integration and its outbox (`GET /api/v1/integrations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInfo {
    /// Its name.
    pub name: String,
    /// `webhook`, `slack`, `discord` or `dependency-track`.
    pub kind: String,
    /// Where it delivers: scheme, host and port only (a chat webhook's
    /// path is its secret).
    pub endpoint: String,
    /// The events it takes (`accepted`, `refused`).
    pub events: Vec<String>,
    /// The workflows whose events it takes (empty: all).
    pub workflows: Vec<String>,
    /// Events waiting for delivery (or a retry).
    pub pending: i64,
    /// Events delivered.
    pub delivered: i64,
    /// Events given up after `max_attempts` (retriable).
    pub failed: i64,
}

/// `GET /api/v1/integrations`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationList {
    /// Every configured integration, and integrations no longer configured
    /// that still have events in the outbox.
    pub integrations: Vec<IntegrationInfo>,
}

/// One delivery of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryInfo {
    /// Its id (what `retry` takes).
    pub id: i64,
    /// The integration.
    pub integration: String,
    /// The event's id, sent as `Idempotency-Key` at every attempt.
    pub event_id: String,
    /// The event's type (`dev.tally.attestation.accepted`, `dev.tally.push.refused`).
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (unix seconds), while pending.
    pub next_at: i64,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the event was written (unix seconds).
    pub created_at: i64,
    /// When it was delivered (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
}

/// `GET /api/v1/integrations/deliveries`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryInfo>,
    /// When there are more: pass it as `before` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// `POST /api/v1/integrations/deliveries/retry`: a failed delivery, or
/// every failed one of an integration, or (neither) every failed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryDeliveries {
    /// A delivery's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// An integration's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
}

/// The answer to `RetryDeliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesRetried {
    /// How many failed deliveries are pending again.
    pub retried: i64,
}

/// `DELETE /api/v1/tokens/{id}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenRevoked {
    /// The token.
    pub id: String,
    /// Always true.
    pub revoked: bool,
}

/// A workflow as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowInfo {
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: String,
    /// Its contract's name.
    pub contract: String,
    /// Who owns it.
    pub owners: Vec<String>,
    /// Key ids of its registered public keys.
    pub keys: Vec<String>,
}

/// `GET /api/v1/workflows`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowList {
    /// The workflows the caller may see.
    pub workflows: Vec<WorkflowInfo>,
}

/// `POST /api/v1/workflows/{name}/keys`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// A PEM P-256 or Ed25519 public key.
    pub public_key: String,
}

/// The answer to adding a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyAdded {
    /// The workflow.
    pub workflow: String,
    /// The key's id (SHA-256 of its SPKI).
    pub keyid: String,
    /// The index of the log entry that registered it (SPEC.md §3.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// The answer to saving a run's crafting state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateSaved {
    /// The state's new version (its `ETag`).
    pub version: i64,
}

/// The answer to revoking a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyRevoked {
    /// The workflow.
    pub workflow: String,
    /// The key's id.
    pub keyid: String,
    /// The index of the log entry that revoked it.
    pub log_index: u64,
}

/// A workflow's registered keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// The workflow.
    pub workflow: String,
    /// Its keys, oldest first.
    pub keys: Vec<RegisteredKey>,
}

/// One registered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisteredKey {
    /// Its id (SHA-256 of its SPKI).
    pub keyid: String,
    /// PEM.
    pub public_key: String,
}

/// Runs started on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Runs started.
    pub runs: i64,
    /// Of which succeeded.
    pub succeeded: i64,
}

/// One workflow's runs over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowStat {
    /// The workflow.
    pub workflow: String,
    /// Runs started.
    pub runs: i64,
    /// Succeeded.
    pub succeeded: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Expired.
    pub expired: i64,
    /// Still in progress.
    pub in_progress: i64,
    /// Succeeded / finished.
    pub success_rate: f64,
    /// (Failed + expired) / finished.
    pub failure_rate: f64,
    /// Mean seconds from init to the end, of finished runs.
    pub mean_duration_s: Option<f64>,
}

/// A workflow's mean duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Slowest {
    /// The workflow.
    pub workflow: String,
    /// Mean seconds.
    pub mean_duration_s: Option<f64>,
}

/// A workflow's failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Failing {
    /// The workflow.
    pub workflow: String,
    /// Failed or expired runs.
    pub failed: i64,
}

/// `GET /api/v1/stats`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// The period, in days.
    pub days: i64,
    /// Per day.
    pub runs_per_day: Vec<DayCount>,
    /// Per workflow.
    pub workflows: Vec<WorkflowStat>,
    /// The five slowest workflows.
    pub slowest: Vec<Slowest>,
    /// The five most failing workflows.
    pub most_failing: Vec<Failing>,
}

/// The answer to `PUT /api/v1/artifacts/{digest}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactStored {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// `new`, or `already` when the store had it.
    pub stored: String,
    /// The OCI reference, on the OCI backend.
    pub reference: Option<String>,
}
