//! `tally serve`: the control plane (SPEC.md §12). One process holds the
//! ledger, tracks the contracts repository, keeps metadata in SQLite, and
//! serves the HTTP API with axum. Artifacts go to the configured store
//! (`store`: filesystem or an OCI registry).

pub mod api;
pub mod artifact_store;
pub mod auth;
pub mod budget;
pub mod certify;
pub mod console;
pub mod cpu;
pub mod gate;
pub mod intake;
pub mod integrations;
pub mod keys;
pub mod listener;
pub mod meta;
pub mod metrics;
pub mod mirror;
pub mod search;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::attest::statement::View;
use crate::contract::store::ContractStore;

use crate::ledger::Ledger;

use self::meta::Meta;
use self::metrics::Metrics;

/// The server's configuration (SPEC.md §12.1): defaults, then the config
/// file, then `TALLY_*` environment variables, then flags.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The contracts repository: a path or git URL; empty = seeded in the data directory.
    pub contracts: String,
    /// The log's origin (the name of its key), fixed at first start.
    pub origin: String,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest artifact upload, bytes.
    pub max_artifact_bytes: u64,
    /// A run not finished after this many seconds is EXPIRED.
    pub run_ttl_secs: u64,
    /// How long a push waits for the publication of its entry before
    /// answering without the proof.
    pub publish_wait_secs: u64,
    /// How often a remote contracts repository is fetched, seconds.
    pub contracts_sync_secs: u64,
    /// Refused pushes a token may cause per minute (also the burst); past
    /// it, pushes answer 429 until the budget refills. 0: unlimited.
    pub refusals_per_minute: u32,
    /// Most connections open at once (more wait in the accept queue).
    pub max_connections: usize,
    /// Pushes waiting for a core to verify their signatures or evaluate
    /// their policies; one more is answered 503 at once.
    pub cpu_queue: usize,
    /// Seconds a connection may send nothing before it is closed (between
    /// requests, in headers, or mid-body: a stalled upload ends).
    pub idle_timeout_secs: u64,
    /// Where artifacts are stored (`[artifacts]`).
    pub artifacts: artifact_store::ArtifactsConfig,
    /// Wall-clock budget of one policy evaluation, milliseconds.
    pub policy_timeout_ms: u64,
    /// The heap ceiling past which policy evaluations fail, MiB.
    pub policy_memory_mib: u64,
    /// Largest material a policy is evaluated on, bytes (a larger one is a
    /// policy error, so a blocking policy refuses the push).
    pub policy_max_input_bytes: u64,
    /// Witnesses that cosign the log's checkpoints (`[witnesses]`).
    pub witnesses: crate::witness::cosigner::WitnessesConfig,
    /// The CA's private key (PEM), when the operator supplies the CA;
    /// empty: a CA created in the data directory at first start.
    pub ca_key: String,
    /// The CA's certificate then its issuers (PEM), with `ca_key`.
    pub ca_chain: String,
    /// What the control plane tells of accepted and refused pushes, and to
    /// whom (`[[integrations]]`, SPEC.md §17).
    pub integrations: Vec<integrations::IntegrationConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8787".into(),
            data_dir: PathBuf::from("tally-data"),
            contracts: String::new(),
            origin: "tally.localhost/log".into(),
            max_body_bytes: 4 << 20,
            max_artifact_bytes: 16 << 30,
            run_ttl_secs: 3600,
            publish_wait_secs: 10,
            contracts_sync_secs: 30,
            refusals_per_minute: 60,
            max_connections: 4096,
            cpu_queue: 128,
            idle_timeout_secs: 60,
            artifacts: artifact_store::ArtifactsConfig::default(),
            policy_timeout_ms: 2000,
            policy_memory_mib: 2048,
            policy_max_input_bytes: 64 << 20,
            witnesses: crate::witness::cosigner::WitnessesConfig::default(),
            ca_key: String::new(),
            ca_chain: String::new(),
            integrations: Vec::new(),
        }
    }
}

/// A configuration problem, found at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ServerConfig {
    /// Reads a TOML config file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Applies `TALLY_*` variables from `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let num = |k: &str, v: String| -> Result<u64, ConfigError> {
            v.trim()
                .parse()
                .map_err(|_| ConfigError(format!("{k}={v:?} is not a whole number")))
        };
        if let Some(v) = get("TALLY_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("TALLY_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("TALLY_CONTRACTS") {
            self.contracts = v;
        }
        if let Some(v) = get("TALLY_ORIGIN") {
            self.origin = v;
        }
        if let Some(v) = get("TALLY_MAX_BODY_BYTES") {
            self.max_body_bytes = num("TALLY_MAX_BODY_BYTES", v)? as usize;
        }
        if let Some(v) = get("TALLY_MAX_ARTIFACT_BYTES") {
            self.max_artifact_bytes = num("TALLY_MAX_ARTIFACT_BYTES", v)?;
        }
        if let Some(v) = get("TALLY_RUN_TTL_SECS") {
            self.run_ttl_secs = num("TALLY_RUN_TTL_SECS", v)?;
        }
        if let Some(v) = get("TALLY_PUBLISH_WAIT_SECS") {
            self.publish_wait_secs = num("TALLY_PUBLISH_WAIT_SECS", v)?;
        }
        if let Some(v) = get("TALLY_REFUSALS_PER_MINUTE") {
            self.refusals_per_minute = num("TALLY_REFUSALS_PER_MINUTE", v)? as u32;
        }
        if let Some(v) = get("TALLY_MAX_CONNECTIONS") {
            self.max_connections = num("TALLY_MAX_CONNECTIONS", v)? as usize;
        }
        if let Some(v) = get("TALLY_CPU_QUEUE") {
            self.cpu_queue = num("TALLY_CPU_QUEUE", v)? as usize;
        }
        if let Some(v) = get("TALLY_CA_KEY") {
            self.ca_key = v;
        }
        if let Some(v) = get("TALLY_CA_CHAIN") {
            self.ca_chain = v;
        }
        if let Some(v) = get("TALLY_IDLE_TIMEOUT_SECS") {
            self.idle_timeout_secs = num("TALLY_IDLE_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = get("TALLY_POLICY_TIMEOUT_MS") {
            self.policy_timeout_ms = num("TALLY_POLICY_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("TALLY_POLICY_MEMORY_MIB") {
            self.policy_memory_mib = num("TALLY_POLICY_MEMORY_MIB", v)?;
        }
        if let Some(v) = get("TALLY_WITNESS_POLICY") {
            self.witnesses.policy = v;
        }
        if let Some(v) = get("TALLY_ARTIFACTS_BACKEND") {
            self.artifacts.backend = match v.as_str() {
                "filesystem" => artifact_store::Backend::Filesystem,
                "oci" => artifact_store::Backend::Oci,
                _ => {
                    return Err(ConfigError(format!(
                        "TALLY_ARTIFACTS_BACKEND={v:?} is not filesystem or oci"
                    )))
                }
            };
        }
        if let Some(v) = get("TALLY_OCI_REPOSITORY") {
            self.artifacts.repository = v;
        }
        if let Some(v) = get("TALLY_OCI_PLAIN_HTTP") {
            self.artifacts.plain_http = match v.as_str() {
                "loopback" => artifact_store::PlainHttp::Loopback,
                "always" => artifact_store::PlainHttp::Always,
                "never" => artifact_store::PlainHttp::Never,
                _ => {
                    return Err(ConfigError(format!(
                        "TALLY_OCI_PLAIN_HTTP={v:?} is not loopback, always or never"
                    )))
                }
            };
        }
        Ok(())
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<SocketAddr, ConfigError> {
        let addr: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError(format!(
                "listen = {:?} is not an address like 127.0.0.1:8787",
                self.listen
            ))
        })?;
        if self.origin.is_empty() || self.origin.contains(char::is_whitespace) || self.origin.contains('+') {
            return Err(ConfigError(format!(
                "origin = {:?} cannot name a log key (no spaces or '+')",
                self.origin
            )));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        if self.run_ttl_secs == 0 {
            return Err(ConfigError("run_ttl_secs must be positive".into()));
        }
        if self.policy_timeout_ms == 0 || self.policy_memory_mib < 64 {
            return Err(ConfigError(
                "policy_timeout_ms must be positive and policy_memory_mib at least 64".into(),
            ));
        }
        self.artifacts.validate()?;
        Ok(addr)
    }
}

/// The running control plane's shared state.
pub struct App {
    /// Configuration in effect.
    pub cfg: ServerConfig,
    /// The log.
    pub ledger: Arc<Ledger>,
    /// Contracts.
    pub contracts: Arc<ContractStore>,
    /// Metadata.
    pub meta: Arc<Meta>,
    /// Metrics.
    pub metrics: Metrics,
    /// Artifact storage.
    pub artifacts: Arc<dyn artifact_store::ArtifactStore>,
    /// What the store's start-up check said.
    pub artifacts_checked: String,
    /// The log's verifier key text.
    pub verifier_key: String,
    /// Verification keys by workflow, cached from `meta`.
    keys: Mutex<HashMap<String, Keys>>,
    /// SHA-256 of the admin token (fixed at first start).
    pub admin_hash: Vec<u8>,
    /// Workflow tokens by the hash of their secret, cached from `meta`.
    pub tokens: Mutex<HashMap<Vec<u8>, meta::TokenInfo>>,
    /// Runs being pushed, and those appended whose SUCCEEDED row is not yet
    /// written: run id → (log index, envelope digest) once appended.
    pub pending: Pending,
    /// Refused pushes per caller (429 past the budget).
    pub refusals: budget::RefusalBudget,
    /// The search-index writer (batches rows into transactions).
    index_tx: Mutex<Option<std::sync::mpsc::Sender<IndexWork>>>,
    /// Logged certificates not yet written to the database.
    pub pending_certificates: PendingCertificates,
    index_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// How far the search index is complete (see [`Indexed`]).
    pub indexed: Arc<Indexed>,
    /// The configured integrations and their outbox's deliverer.
    pub integrations: Arc<integrations::Integrations>,
    /// The key the control plane signs its policy verdicts (VSAs) with.
    pub verdict_key: crate::attest::signing::SigningKey,
    /// Compiled policy plans by (contract blob, policies commit).
    plans: Mutex<HashMap<(String, String), Arc<crate::policy::Plan>>>,
    /// The witnesses asked to cosign checkpoints, when configured.
    pub cosigner: Option<Arc<crate::witness::cosigner::Cosigner>>,
    /// Signature verification and policy evaluation: at most the cores at
    /// once, a bounded queue behind them, off the async workers.
    pub cpu: cpu::CpuPool,
    /// The CA that certifies runs' ephemeral keys (keyless signing).
    pub ca: crate::identity::ca::Ca,
    /// Keys of `keys/<workflow>/` by (commit, workflow).
    repo_keys: Mutex<HashMap<(String, String), Keys>>,
    /// What `GET /api/v1/ca` serves: the CA's chain, then every earlier CA
    /// certificate of this data directory (SPEC.md §15.3).
    pub ca_bundle: String,
    /// Checks CI platforms' ID tokens (tokenless CI, SPEC.md §15.6).
    pub oidc: crate::identity::oidc::Verifier,
}

/// Public keys a workflow's signatures may use.
pub type Keys = Arc<Vec<crate::attest::dsse::PublicKey>>;

/// The search index's watermark: every log index below `below()` has its
/// rows. Entries are indexed out of order (concurrent pushes), so indices
/// above the watermark wait in [`Ranges`] until the gap below them closes.
#[derive(Debug)]
pub struct Indexed {
    state: Mutex<Ranges>,
    below: tokio::sync::watch::Sender<u64>,
}

/// Indexed log indices: all below `next`, plus disjoint half-open ranges
/// above it (keyed by start). Consecutive indices merge into one range, so
/// memory stays bounded by the number of gaps — also when a gap never closes
/// (a failed index write or start-up reindex, until the next start).
#[derive(Debug, Default)]
struct Ranges {
    next: u64,
    above: std::collections::BTreeMap<u64, u64>,
}

impl Ranges {
    fn insert(&mut self, i: u64) {
        if i < self.next {
            return;
        }
        let mut start = i;
        let mut end = i + 1;
        if let Some((&s, &e)) = self.above.range(..=i).next_back() {
            if i < e {
                return;
            }
            if i == e {
                start = s;
            }
        }
        if let Some(e2) = self.above.remove(&end) {
            end = e2;
        }
        self.above.insert(start, end);
        self.advance();
    }

    fn all_below(&mut self, size: u64) {
        self.next = self.next.max(size);
        self.advance();
    }

    fn advance(&mut self) {
        while let Some((&s, &e)) = self.above.first_key_value() {
            if s > self.next {
                break;
            }
            self.above.pop_first();
            self.next = self.next.max(e);
        }
    }
}

impl Indexed {
    fn new() -> Self {
        Indexed {
            state: Mutex::new(Ranges::default()),
            below: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Records that `indices` are indexed.
    fn add(&self, indices: impl IntoIterator<Item = u64>) {
        self.update(|r| indices.into_iter().for_each(|i| r.insert(i)));
    }

    /// Records that every index below `size` is indexed (the start-up
    /// reindex covered them).
    fn all_below(&self, size: u64) {
        self.update(|r| r.all_below(size));
    }

    fn update(&self, f: impl FnOnce(&mut Ranges)) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st);
        self.below.send_replace(st.next);
    }

    /// Every log index below this has its search rows.
    pub fn below(&self) -> u64 {
        *self.below.borrow()
    }

    /// Waits up to `timeout` for the index to cover every index below
    /// `size`; returns how far it does.
    pub async fn reach(&self, size: u64, timeout: Duration) -> u64 {
        let mut rx = self.below.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|b| *b >= size)).await;
        self.below().min(size)
    }
}

#[cfg(test)]
mod tests {
    use super::Ranges;

    #[test]
    fn watermark_advances_only_over_closed_gaps() {
        let mut r = Ranges::default();
        for i in [2, 4, 3, 7] {
            r.insert(i);
        }
        assert_eq!(r.next, 0);
        assert_eq!(
            r.above.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>(),
            vec![(2, 5), (7, 8)]
        );
        r.insert(0);
        assert_eq!(r.next, 1);
        r.insert(1);
        assert_eq!(r.next, 5, "0..5 all indexed");
        r.insert(6);
        assert_eq!(
            r.above.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>(),
            vec![(6, 8)]
        );
        r.insert(5);
        assert_eq!((r.next, r.above.len()), (8, 0));
        // Duplicates and indices already below change nothing.
        r.insert(3);
        r.insert(7);
        assert_eq!((r.next, r.above.len()), (8, 0));
        // The start-up reindex covers a prefix; what was indexed above it joins.
        let mut r = Ranges::default();
        r.insert(10);
        r.insert(11);
        r.all_below(10);
        assert_eq!((r.next, r.above.len()), (12, 0));
    }

    #[test]
    fn a_gap_that_never_closes_keeps_one_range() {
        let mut r = Ranges::default();
        r.all_below(5);
        // Index 5 was never written; everything after it arrives, out of order.
        for chunk in (6..100_000u64).collect::<Vec<_>>().chunks(64) {
            for &i in chunk.iter().rev() {
                r.insert(i);
            }
        }
        assert_eq!(r.next, 5);
        assert_eq!(r.above.len(), 1);
        r.insert(5);
        assert_eq!((r.next, r.above.len()), (100_000, 0));
    }
}

/// Runs being pushed (`None`) or appended and not yet indexed (log index,
/// envelope digest), by run id.
pub type Pending = Arc<Mutex<HashMap<String, Option<(i64, String)>>>>;

/// A log entry read back from the ledger ([`App::logged`]).
#[derive(Debug)]
pub struct Logged {
    /// The entry, parsed.
    pub entry: ledger_format::entry::Entry,
    /// Its text as logged.
    pub text: Vec<u8>,
    /// Its envelope's bytes.
    pub envelope: Vec<u8>,
    /// The envelope's payload (the statement's JSON), empty when the
    /// envelope does not decode.
    pub payload: Vec<u8>,
    /// The control plane's verdict envelope (a signed VSA), if the entry binds one.
    pub verdict: Option<Vec<u8>>,
}

/// Least time between two search-index transactions under load.
const INDEX_INTERVAL: Duration = Duration::from_millis(50);

/// One accepted attestation for the index writer.
pub type IndexJob = (meta::AttestationRow, Vec<meta::DigestRow>);

/// Certificates logged whose row the index writer has not written yet:
/// leaf digest (`sha256:…`) → (log index, run, not-after). Intake reads it
/// before the database, so a certificate is trusted from the moment its
/// entry is durable (SPEC.md §15.3).
pub type PendingCertificates = Arc<Mutex<HashMap<String, meta::CertificateRow>>>;

/// What the index writer writes.
enum IndexWork {
    Attestation(IndexJob),
    Certificate(meta::CertificateRow),
}

/// Writes accepted attestations to the metadata in batches, then forgets
/// them from `pending` (whose overlay answered for them meanwhile).
///
/// Under load a transaction starts at most every [`INDEX_INTERVAL`] and takes
/// what arrived meanwhile: each commit rewrites every page it touched (the
/// runs, the attestations and their indexes, the digests' random keys), so
/// fewer, larger transactions write far less (BENCHMARKS.md, intake). An idle
/// server indexes at once.
fn index_writer(
    meta: Arc<Meta>,
    pending: Pending,
    certificates: PendingCertificates,
    indexed: Arc<Indexed>,
    integrations: Arc<integrations::Integrations>,
    rx: std::sync::mpsc::Receiver<IndexWork>,
) {
    let mut last: Option<std::time::Instant> = None;
    while let Ok(first) = rx.recv() {
        // Sleep out the interval rather than wait on the channel: a waiting
        // receiver is woken by every send (a context switch per push).
        if let Some(left) = last.map(|t| INDEX_INTERVAL.saturating_sub(t.elapsed())) {
            std::thread::sleep(left);
        }
        let mut batch = Vec::new();
        let mut certs = Vec::new();
        for work in std::iter::once(first).chain(rx.try_iter().take(1 << 16)) {
            match work {
                IndexWork::Attestation(job) => batch.push(job),
                IndexWork::Certificate(c) => certs.push(c),
            }
        }
        last = Some(std::time::Instant::now());
        if !certs.is_empty() {
            match meta.record_certificates(&certs) {
                Ok(()) => {
                    indexed.add(certs.iter().map(|c| c.log_index as u64));
                    let mut p = certificates.lock().unwrap_or_else(|p| p.into_inner());
                    for c in &certs {
                        p.remove(&c.digest);
                    }
                }
                // Kept in the overlay (trusted) and rebuilt from the log at
                // the next start.
                Err(e) => tracing::error!(count = certs.len(), error = %e, "indexing certificates failed"),
            }
        }
        if batch.is_empty() {
            continue;
        }
        // The integrations' events join the same transaction: written if
        // and only if the rows are (and rebuilt with them by a re-index).
        let outbox: Vec<_> = batch
            .iter()
            .flat_map(|(row, digests)| integrations.accepted(row, digests))
            .collect();
        match meta.record_attestations(&batch, &outbox, unix_now()) {
            Ok(()) => {
                if !outbox.is_empty() {
                    integrations.wake();
                }
                indexed.add(batch.iter().map(|(row, _)| row.log_index as u64));
                // The runs' rows now say SUCCEEDED: the claims can go.
                let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
                for (row, _) in &batch {
                    p.remove(&row.run_id);
                }
            }
            // The rows are rebuilt from the log at the next start; until
            // then the watermark stays below them, and search says so. The
            // claims stay: the runs' rows still read INITIALIZED, and only
            // the claim keeps a second push to them out.
            Err(e) => tracing::error!(count = batch.len(), error = %e, "indexing attestations failed"),
        }
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What goes wrong in the control plane below HTTP. The HTTP layer logs
/// these with the request id and answers 500 or 503; `tally serve` prints
/// them when it cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] meta::MetaError),
    /// The ledger failed.
    #[error("the ledger: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The contracts repository cannot be read.
    #[error("the contracts repository: {0}")]
    Contracts(#[from] crate::contract::store::StoreError),
    /// The artifact store cannot be opened or used.
    #[error("the artifact store: {0}")]
    Artifacts(String),
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the seeded contracts repository failed.
    #[error("seeding the contracts repository: {0}")]
    Seed(String),
    /// A log entry the server reads back is not what it wrote.
    #[error("log entry {index}: {reason}")]
    Entry {
        /// Its index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// Starting would contradict the data directory.
    #[error("{0}")]
    Refused(String),
    /// A task could not be run or joined.
    #[error("{0}")]
    Task(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// The tree size of a signed checkpoint's text.
pub fn checkpoint_size(signed: &str) -> Option<u64> {
    let body = signed.split_once("\n\n")?.0;
    ledger_format::checkpoint::Checkpoint::parse(&format!("{body}\n"))
        .ok()
        .map(|c| c.size())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The SHA-256 of a token's secret, as stored.
pub fn token_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A fresh secret with a recognizable prefix.
pub fn new_secret(prefix: &str) -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// The example contracts, seeded into a new data directory's contracts
/// repository when no `contracts` repository is configured.
const SEED: &[(&str, &str)] = &[
    ("README.md", include_str!("../../contracts/README.md")),
    (
        "build-and-release.toml",
        include_str!("../../contracts/build-and-release.toml"),
    ),
    (
        "quality-gates.toml",
        include_str!("../../contracts/quality-gates.toml"),
    ),
    (
        "security-advisories.toml",
        include_str!("../../contracts/security-advisories.toml"),
    ),
    ("workflows.toml", include_str!("../../contracts/workflows.toml")),
    (
        "policies/sbom-has-components.rego",
        include_str!("../../contracts/policies/sbom-has-components.rego"),
    ),
    (
        "policies/no-critical-vulnerabilities.yaml",
        include_str!("../../contracts/policies/no-critical-vulnerabilities.yaml"),
    ),
    (
        "policies/provenance-builder.yaml",
        include_str!("../../contracts/policies/provenance-builder.yaml"),
    ),
    (
        "policies/sarif-no-errors.yaml",
        include_str!("../../contracts/policies/sarif-no-errors.yaml"),
    ),
    (
        "policies/release-gates.yaml",
        include_str!("../../contracts/policies/release-gates.yaml"),
    ),
    (
        "policies/sbom-quality.yaml",
        include_str!("../../contracts/policies/sbom-quality.yaml"),
    ),
    (
        "policies/licenses-allowed.yaml",
        include_str!("../../contracts/policies/licenses-allowed.yaml"),
    ),
    (
        "policies/junit-no-failures.yaml",
        include_str!("../../contracts/policies/junit-no-failures.yaml"),
    ),
];

/// Creates the bare repository `path` with the example contracts as its first commit on `main`.
pub fn seed_contracts(path: &Path) -> Result<(), ServerError> {
    let repo =
        gix::init_bare(path).map_err(|e| ServerError::Seed(format!("creating {}: {e}", path.display())))?;
    let mut editor = repo
        .edit_tree(gix::ObjectId::empty_tree(repo.object_hash()))
        .map_err(|e| ServerError::Seed(e.to_string()))?;
    for (name, text) in SEED {
        let id = repo
            .write_blob(text.as_bytes())
            .map_err(|e| ServerError::Seed(e.to_string()))?;
        editor
            .upsert(*name, gix::object::tree::EntryKind::Blob, id.detach())
            .map_err(|e| ServerError::Seed(e.to_string()))?;
    }
    let tree = editor
        .write()
        .map_err(|e| ServerError::Seed(e.to_string()))?
        .detach();
    let sig = gix::actor::Signature {
        name: "tally".into(),
        email: "tally@localhost".into(),
        time: gix::date::Time::now_utc(),
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let sref = sig.to_ref(&mut buf);
    repo.commit_as(
        sref,
        sref,
        "refs/heads/main",
        "Seed the example contracts",
        tree,
        Vec::<gix::ObjectId>::new(),
    )
    .map_err(|e| ServerError::Seed(e.to_string()))?;
    std::fs::write(path.join("HEAD"), "ref: refs/heads/main\n").map_err(io("writing the seeded HEAD"))?;
    Ok(())
}

/// Compiled policy plans kept at once (by contract blob and commit).
const MAX_PLANS: usize = 64;

/// The policy budget the configuration sets.
pub fn policy_limits(cfg: &ServerConfig) -> crate::policy::Limits {
    crate::policy::Limits {
        time: Duration::from_millis(cfg.policy_timeout_ms),
        memory: cfg.policy_memory_mib << 20,
    }
}

/// The control plane's verdict key (`verdict.key`, Ed25519, created at
/// first start, private to the data directory).
fn verdict_key(dir: &Path) -> Result<crate::attest::signing::SigningKey, ServerError> {
    use crate::attest::signing::{Algorithm, SigningKey};
    let path = dir.join("verdict.key");
    let refused =
        |e: crate::attest::signing::KeyError| ServerError::Refused(format!("{}: {e}", path.display()));
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        return SigningKey::from_pem(&text, None).map_err(refused);
    }
    let key = SigningKey::generate(Algorithm::Ed25519).map_err(refused)?;
    let pem = key.private_pem(None).map_err(refused)?;
    crate::fsutil::write_atomic(&path, pem.as_bytes(), 0o600, false)
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(key)
}

/// What `start` tells the operator once.
#[derive(Debug)]
pub struct Started {
    /// The app.
    pub app: Arc<App>,
    /// The bound address.
    pub addr: SocketAddr,
    /// A freshly generated admin token (first start only, unless given).
    pub admin_token: Option<String>,
    /// The listener.
    pub listener: tokio::net::TcpListener,
}

/// Opens (creating on first start) everything in the data directory and binds.
pub async fn start(cfg: ServerConfig, admin_token: Option<String>) -> Result<Started, ServerError> {
    let addr = cfg.validate()?;
    let dir = cfg.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let meta = Arc::new(Meta::open(&dir.join("meta.db"))?);
    let mut shown_token = None;
    match (meta.setting("admin_token_sha256")?, admin_token) {
        (None, given) => {
            let token = given.clone().unwrap_or_else(|| new_secret("tly_admin_"));
            meta.set_setting("admin_token_sha256", &hex::encode(token_hash(&token)))?;
            if given.is_none() {
                shown_token = Some(token);
            }
        }
        // The same token given again (a container or a unit that sets it
        // at every start) is fine; another one is refused.
        (Some(stored), Some(given)) if stored != hex::encode(token_hash(&given)) => {
            return Err(ServerError::Refused(
                "another admin token is already set in this data directory; \
                 TALLY_ADMIN_TOKEN / --admin-token-file only set it at first start"
                    .into(),
            ))
        }
        (Some(_), Some(_)) => {}
        (Some(_), None) => {}
    }
    let ledger_dir = dir.join("ledger");
    let cosigner = if cfg.witnesses.policy.is_empty() {
        None
    } else {
        Some(Arc::new(
            crate::witness::cosigner::Cosigner::new(&cfg.witnesses, &cfg.origin)
                .map_err(|e| ServerError::Config(ConfigError(format!("[witnesses] {e}"))))?,
        ))
    };
    let ledger = crate::ledger::open_dir_with(&ledger_dir, Some(&cfg.origin), |c| {
        c.cosigner = cosigner
            .clone()
            .map(|c| c as Arc<dyn crate::ledger::cosign::Cosign>);
    })?;
    let verifier_key = std::fs::read_to_string(ledger_dir.join("log.pub"))
        .map_err(io("reading the log's verifier key"))?
        .trim()
        .to_owned();
    let store = if cfg.contracts.is_empty() {
        let path = dir.join("contracts.git");
        if !path.join("HEAD").exists() {
            seed_contracts(&path)?;
        }
        ContractStore::open(
            &path,
            crate::contract::store::DEFAULT_BRANCH,
            Some(dir.join("contracts.head")),
        )
    } else if cfg.contracts.contains("://") || cfg.contracts.starts_with("git@") {
        ContractStore::open_remote(
            &cfg.contracts,
            &dir.join("contracts-mirror.git"),
            crate::contract::store::DEFAULT_BRANCH,
            Some(dir.join("contracts.head")),
        )
    } else {
        ContractStore::open(
            Path::new(&cfg.contracts),
            crate::contract::store::DEFAULT_BRANCH,
            Some(dir.join("contracts.head")),
        )
    }?;
    let store = Arc::new(store);
    let artifacts = artifact_store::open(&cfg.artifacts, &dir).map_err(ServerError::Artifacts)?;
    let artifacts_checked = artifacts
        .check()
        .await
        .map_err(|e| ServerError::Artifacts(format!("{}: {e}", artifacts.describe())))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(io(format!("cannot listen on {addr}")))?;
    let addr = listener.local_addr().map_err(io("reading the bound address"))?;
    let stored = meta.setting("admin_token_sha256")?.unwrap_or_default();
    let admin_hash = hex::decode(&stored)
        .map_err(|e| ServerError::Refused(format!("the stored admin token hash is not hex: {e}")))?;
    let pending = Arc::new(Mutex::new(HashMap::new()));
    let pending_certificates: PendingCertificates = Arc::new(Mutex::new(HashMap::new()));
    let (index_tx, index_rx) = std::sync::mpsc::channel();
    let indexed = Arc::new(Indexed::new());
    let integrations = Arc::new(
        integrations::Integrations::new(&cfg.integrations, &cfg.origin, |k| std::env::var(k).ok())
            .map_err(ServerError::Config)?,
    );
    let index_thread = {
        let (meta, pending, certs, indexed, integrations) = (
            meta.clone(),
            pending.clone(),
            pending_certificates.clone(),
            indexed.clone(),
            integrations.clone(),
        );
        std::thread::Builder::new()
            .name("tally-indexer".into())
            .spawn(move || index_writer(meta, pending, certs, indexed, integrations, index_rx))
            .map_err(io("starting the indexer"))?
    };
    let refusals = budget::RefusalBudget::new(cfg.refusals_per_minute);
    let verdict_key = verdict_key(&dir)?;
    let ca = match (cfg.ca_key.is_empty(), cfg.ca_chain.is_empty()) {
        (true, true) => crate::identity::ca::Ca::open_or_create(&dir, &cfg.origin, unix_now()),
        (false, false) => {
            crate::identity::ca::Ca::from_files(Path::new(&cfg.ca_key), Path::new(&cfg.ca_chain))
        }
        _ => {
            return Err(ServerError::Config(ConfigError(
                "ca_key and ca_chain go together: set both (an operator's CA) or neither".into(),
            )))
        }
    }
    .map_err(|e| ServerError::Refused(e.to_string()))?;
    let ca_bundle = ca
        .trust_bundle(&dir)
        .map_err(|e| ServerError::Refused(e.to_string()))?;
    policy_limits(&cfg).install();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cpu_queue = cfg.cpu_queue;
    let app = Arc::new(App {
        cfg,
        ledger: Arc::new(ledger),
        contracts: store,
        meta,
        metrics: Metrics::new(artifacts.stores_attestations(), cosigner.is_some()),
        cosigner,
        artifacts,
        artifacts_checked,
        verifier_key,
        keys: Mutex::new(HashMap::new()),
        admin_hash,
        tokens: Mutex::new(HashMap::new()),
        pending,
        refusals,
        index_tx: Mutex::new(Some(index_tx)),
        pending_certificates,
        index_thread: Mutex::new(Some(index_thread)),
        indexed,
        integrations,
        verdict_key,
        plans: Mutex::new(HashMap::new()),
        cpu: cpu::CpuPool::new(cores, cpu_queue),
        ca,
        ca_bundle,
        repo_keys: Mutex::new(HashMap::new()),
        oidc: crate::identity::oidc::Verifier::new(),
    });
    // One attestation per run, also across a crash: before the first request,
    // every run the log holds an entry for reads as taken.
    let claimer = app.clone();
    let claimed = tokio::task::spawn_blocking(move || claimer.claim_logged_runs())
        .await
        .map_err(|e| ServerError::Task(e.to_string()))??;
    if claimed > 0 {
        tracing::info!(runs = claimed, "runs the log holds but the index lacks are taken");
    }
    Ok(Started {
        app,
        addr,
        admin_token: shown_token,
        listener,
    })
}

impl App {
    /// A workflow's verification keys (cached until a key is added).
    /// The keys the contracts repository lists for `workflow` at `commit`
    /// (`keys/<workflow>/*.pub`, SPEC.md §15.5), cached by (commit,
    /// workflow). A file that is not a key is skipped (the linter refuses
    /// it before it merges). Blocking (git).
    pub fn repository_keys(
        &self,
        workflow: &str,
        commit: &str,
    ) -> Result<Arc<Vec<crate::attest::dsse::PublicKey>>, ServerError> {
        if let Some(k) = self.cached_repository_keys(workflow, commit) {
            return Ok(k);
        }
        let at = (commit.to_owned(), workflow.to_owned());
        let id = gix::ObjectId::from_hex(commit.as_bytes())
            .map_err(|e| ServerError::Refused(format!("the run's pinned commit {commit:?}: {e}")))?;
        let files = self
            .contracts
            .local()
            .workflow_keys_at(id, workflow)
            .map_err(|e| ServerError::Contracts(e.into()))?;
        let keys: Vec<_> = files
            .iter()
            .filter_map(|(path, pem)| {
                let key = crate::attest::dsse::PublicKey::from_pem(&String::from_utf8_lossy(pem));
                if let Err(e) = &key {
                    tracing::warn!(%path, commit, error = %e, "not a public key; skipped");
                }
                key.ok()
            })
            .collect();
        let keys = Arc::new(keys);
        let mut cache = self.repo_keys.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(at, keys.clone());
        Ok(keys)
    }

    /// [`App::repository_keys`] when cached.
    pub fn cached_repository_keys(
        &self,
        workflow: &str,
        commit: &str,
    ) -> Option<Arc<Vec<crate::attest::dsse::PublicKey>>> {
        self.repo_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(commit.to_owned(), workflow.to_owned()))
            .cloned()
    }

    pub fn workflow_keys(
        &self,
        workflow: &str,
    ) -> Result<Arc<Vec<crate::attest::dsse::PublicKey>>, ServerError> {
        if let Some(k) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(workflow) {
            return Ok(k.clone());
        }
        let rows = self.meta.workflow_keys(workflow)?;
        let keys: Vec<_> = rows
            .iter()
            .filter_map(|(_, pem)| crate::attest::dsse::PublicKey::from_pem(pem).ok())
            .collect();
        let keys = Arc::new(keys);
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workflow.to_owned(), keys.clone());
        Ok(keys)
    }

    /// Marks, in the pending overlay, the run of every log entry the search
    /// index lacks, so a run whose attestation is in the log reads SUCCEEDED
    /// (and refuses a second push) from the first request after a start,
    /// not only once the background reindex reaches it. The sequencing log
    /// is the durable claim: the entries it held at open are read from it
    /// ([`crate::ledger::Ledger::take_recovered`]), the published ones the index lacks
    /// from the log. Returns how many runs it marked.
    pub fn claim_logged_runs(&self) -> Result<u64, ServerError> {
        // What was sequenced but not published at open comes from the
        // sequencing log itself: no waiting for a publication that a full
        // disk or a witness hold may delay.
        let (first, recovered) = self.ledger.take_recovered();
        let mut claims = Vec::new();
        for i in self.unindexed(first)? {
            claims.push((i, self.ledger.entry(i)?));
        }
        claims.extend(
            recovered
                .into_iter()
                .enumerate()
                .map(|(k, e)| (first + k as u64, e)),
        );
        let n = claims.len() as u64;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (i, text) in claims {
            if ledger_format::certificate::is_certificate_entry(&text) {
                self.record_certificate_text(i, &text)?;
                continue;
            }
            if ledger_format::key::is_key_entry(&text) {
                // A revocation takes effect now; an addition too when its
                // key (the body) is published, else by the reindex once it
                // is (until then the key is not trusted: fail-safe).
                let e = self.parse_key_entry(i, &text)?;
                let pem = self
                    .ledger
                    .body(i, &e.key_digest)?
                    .map(|der| pem::encode(&pem::Pem::new("PUBLIC KEY", der)));
                if e.action == ledger_format::key::KeyAction::Revoke || pem.is_some() {
                    self.record_key_entry(i, &e, pem.as_deref())?;
                }
                continue;
            }
            let e = ledger_format::entry::Entry::parse(&text).map_err(|e| ServerError::Entry {
                index: i,
                reason: e.to_string(),
            })?;
            let digest = format!("sha256:{}", e.envelope_digest.to_hex());
            pending.insert(e.run, Some((i as i64, digest)));
        }
        Ok(n)
    }

    /// Records the certificate entry at `index` (SPEC.md §15.3) in the
    /// search index: intake trusts a certificate only once it is there.
    pub fn record_certificate(
        &self,
        index: u64,
        e: &ledger_format::certificate::CertificateEntry,
    ) -> Result<(), ServerError> {
        let digest = format!("sha256:{}", e.certificate_digest.to_hex());
        self.meta
            .record_certificate(index as i64, &digest, &e.serial, &e.run, e.not_after as i64)?;
        self.indexed.add([index]);
        Ok(())
    }

    /// Applies the key entry at `index` (SPEC.md §3.2) to the registered
    /// keys: `pem` is the key of an `add` (ignored for a `revoke`).
    pub fn record_key_entry(
        &self,
        index: u64,
        e: &ledger_format::key::KeyEntry,
        pem: Option<&str>,
    ) -> Result<(), ServerError> {
        let add = match e.action {
            ledger_format::key::KeyAction::Add => Some(pem.ok_or_else(|| ServerError::Entry {
                index,
                reason: "a key addition without its key".into(),
            })?),
            ledger_format::key::KeyAction::Revoke => None,
        };
        self.meta.record_key_event(
            index as i64,
            &e.workflow,
            &e.key_digest.to_hex(),
            add,
            e.at as i64,
        )?;
        self.indexed.add([index]);
        self.forget_keys(&e.workflow);
        Ok(())
    }

    fn parse_key_entry(&self, index: u64, text: &[u8]) -> Result<ledger_format::key::KeyEntry, ServerError> {
        ledger_format::key::KeyEntry::parse(text).map_err(|e| ServerError::Entry {
            index,
            reason: e.to_string(),
        })
    }

    fn record_certificate_text(&self, index: u64, text: &[u8]) -> Result<(), ServerError> {
        let e =
            ledger_format::certificate::CertificateEntry::parse(text).map_err(|e| ServerError::Entry {
                index,
                reason: e.to_string(),
            })?;
        self.record_certificate(index, &e)
    }

    /// The log indices below `below` the search index lacks, ascending.
    /// Without a gap below the highest indexed entry that is a range after
    /// it; with one, the index is read once for its gaps.
    fn unindexed(&self, below: u64) -> Result<Box<dyn Iterator<Item = u64>>, ServerError> {
        let next = self.meta.max_indexed()?.map_or(0, |m| m as u64 + 1);
        let count = self.meta.indexed_count()?;
        if count == next {
            return Ok(Box::new(next..below.max(next)));
        }
        let gaps = self.meta.unindexed_below(below as i64)?;
        Ok(Box::new(gaps.into_iter().map(|i| i as u64)))
    }

    /// Indexes published entries the search index lacks (after a crash
    /// between sequencing and indexing, or a lost `meta.db`): every entry
    /// and its envelope are read back from the log itself. Returns how many,
    /// and the log size below which every entry is now indexed.
    pub fn reindex(&self) -> Result<(u64, u64), ServerError> {
        let published = self.ledger.sizes().published;
        // No gap below the highest indexed entry: start after it; else look at every entry.
        let mut n = 0;
        for i in self.unindexed(published)? {
            let text = self.ledger.entry(i)?;
            if ledger_format::certificate::is_certificate_entry(&text) {
                self.record_certificate_text(i, &text)?;
                n += 1;
                continue;
            }
            if ledger_format::key::is_key_entry(&text) {
                let e = self.parse_key_entry(i, &text)?;
                let der = self
                    .ledger
                    .body(i, &e.key_digest)?
                    .ok_or_else(|| ServerError::Entry {
                        index: i,
                        reason: "its key is not stored".into(),
                    })?;
                let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
                self.record_key_entry(i, &e, Some(&pem))?;
                n += 1;
                continue;
            }
            let Logged {
                entry: e, payload, ..
            } = self.logged(i)?;
            let digests = intake::digests(&View::parse(&payload).unwrap_or_default());
            let row = meta::AttestationRow {
                log_index: i as i64,
                envelope_digest: format!("sha256:{}", e.envelope_digest.to_hex()),
                workflow: e.workflow.clone(),
                project: e.project.clone(),
                run_id: e.run.clone(),
                contract: e.contract.clone(),
                created_at: unix_now(),
            };
            // An entry the index lacked never had its events written either.
            let outbox = self.integrations.accepted(&row, &digests);
            self.meta
                .record_attestation(&row, &digests, &outbox, unix_now())?;
            if !outbox.is_empty() {
                self.integrations.wake();
            }
            // The run's row now says SUCCEEDED: the overlay is no longer needed.
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&row.run_id);
            n += 1;
        }
        Ok((n, published))
    }

    /// Log entry `i` read back from the ledger: the entry, its text, its
    /// envelope, and the envelope's payload (empty when it does not decode).
    pub fn logged(&self, i: u64) -> Result<Logged, ServerError> {
        let text = self.ledger.entry(i)?;
        let entry = ledger_format::entry::Entry::parse(&text).map_err(|e| ServerError::Entry {
            index: i,
            reason: e.to_string(),
        })?;
        let envelope = self
            .ledger
            .body(i, &entry.envelope_digest)?
            .ok_or_else(|| ServerError::Entry {
                index: i,
                reason: "its envelope is not stored".into(),
            })?;
        let payload = crate::attest::dsse::Envelope::parse(&envelope)
            .ok()
            .and_then(|env| crate::attest::dsse::decode_b64(&env.payload))
            .unwrap_or_default();
        let verdict = match &entry.verdict {
            Some((d, _)) => Some(self.ledger.body(i, d)?.ok_or_else(|| ServerError::Entry {
                index: i,
                reason: "its verdict is not stored".into(),
            })?),
            None => None,
        };
        Ok(Logged {
            entry,
            text,
            envelope,
            payload,
            verdict,
        })
    }

    /// Entry `i` read back, and its offline bundle (SPEC.md §6.2) under the
    /// checkpoint published now: what `tally verify --bundle` checks without
    /// asking this server. Blocking.
    pub fn offline_bundle(&self, i: u64) -> Result<(Logged, Vec<u8>), ServerError> {
        let logged = self.logged(i)?;
        let bundle = crate::attest::bundle::Bundle {
            log_index: i,
            entry: String::from_utf8_lossy(&logged.text).into_owned(),
            tlog_proof: self.tlog_proof(i)?,
            envelope: logged.envelope.clone(),
            verdict: logged.verdict.clone(),
            certificate: certify::logged_certificate(self, &logged.envelope)?,
        }
        .to_json()
        .into_bytes();
        Ok((logged, bundle))
    }

    /// The tlog-proof text (SPEC.md §6) of entry `index` under the checkpoint
    /// published now. Blocking.
    pub fn tlog_proof(&self, index: u64) -> Result<String, ServerError> {
        let checkpoint = self.ledger.checkpoint();
        let size = checkpoint_size(&checkpoint).ok_or_else(|| ServerError::Entry {
            index,
            reason: "the published checkpoint does not parse".into(),
        })?;
        let proof = self.ledger.inclusion_proof(index, size)?;
        Ok(ledger_format::tlog_proof::TlogProof {
            extra: None,
            index,
            proof,
            checkpoint,
        }
        .to_text())
    }

    /// Queues an accepted attestation for the search index.
    pub fn index(&self, job: IndexJob) {
        self.send_index(IndexWork::Attestation(job));
    }

    /// Trusts the certificate entry at `index` at once (the overlay) and
    /// queues its row for the index writer.
    pub fn index_certificate(&self, index: u64, e: &ledger_format::certificate::CertificateEntry) {
        let row = meta::CertificateRow {
            log_index: index as i64,
            digest: format!("sha256:{}", e.certificate_digest.to_hex()),
            serial: e.serial.clone(),
            run: e.run.clone(),
            not_after: e.not_after as i64,
        };
        self.pending_certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(row.digest.clone(), row.clone());
        self.send_index(IndexWork::Certificate(row));
    }

    /// The logged certificate whose leaf has `digest`: (log index, run,
    /// not-after), from the overlay or the database.
    pub fn logged_certificate_row(
        &self,
        digest: &str,
    ) -> Result<Option<(i64, String, i64)>, meta::MetaError> {
        if let Some(c) = self
            .pending_certificates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(Some((c.log_index, c.run.clone(), c.not_after)));
        }
        self.meta.certificate(digest)
    }

    fn send_index(&self, job: IndexWork) {
        let sent = self
            .index_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            tracing::warn!("the indexer has stopped; the entry is indexed from the log at the next start");
        }
    }

    /// Stops the index writer after it wrote everything queued.
    pub fn stop_indexer(&self) {
        self.index_tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.index_thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }

    /// The compiled policies of `contract` (revision blob `blob`) read at
    /// `commit` of the contracts repository: cached, or loaded (blocking:
    /// call off the async workers).
    pub fn plan(
        &self,
        contract: &crate::contract::Contract,
        blob: &str,
        commit: &str,
    ) -> Result<Arc<crate::policy::Plan>, String> {
        let key = (blob.to_owned(), commit.to_owned());
        if let Some(p) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let id = gix::ObjectId::from_hex(commit.as_bytes())
            .map_err(|e| format!("policies commit {commit:?}: {e}"))?;
        let repo = self.contracts.local();
        let plan = crate::policy::Plan::load(
            contract,
            &crate::policy::GitTree {
                repo: &repo,
                commit: id,
            },
            policy_limits(&self.cfg),
        )
        .map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let plan = Arc::new(plan);
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: runs pin recent commits; an old pin is loaded again.
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(key, plan.clone());
        Ok(plan)
    }

    /// Forgets cached keys of a workflow.
    pub fn forget_keys(&self, workflow: &str) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(workflow);
    }
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish, publishes everything sequenced, and closes the ledger.
pub async fn run(
    started: Started,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let app = started.app.clone();
    // Runs left unfinished expire.
    let expirer = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let now = unix_now();
                let _ = app.meta.expire_runs(now - app.cfg.run_ttl_secs as i64, now);
            }
        })
    };
    // Whatever was sequenced before a crash is published by the ledger's
    // recovery; index it once it is.
    {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let target = app.ledger.sizes().sequenced;
            if target > 0 {
                let _ = app.ledger.wait_published(target - 1, Duration::from_secs(120));
            }
            match app.reindex() {
                Ok((n, covered)) => {
                    if n > 0 {
                        tracing::info!(entries = n, "indexed log entries the search index lacked");
                    }
                    app.indexed.all_below(covered);
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "reindexing the log failed; search answers cover only what was indexed since"
                ),
            }
        });
    }
    if !app.cfg.contracts.is_empty() && app.cfg.contracts.contains("://") {
        app.contracts
            .clone()
            .sync_every(Duration::from_secs(app.cfg.contracts_sync_secs.max(1)));
    }
    let mirror = app
        .artifacts
        .stores_attestations()
        .then(|| tokio::spawn(mirror::run(app.clone())));
    let deliverer =
        (!app.integrations.is_empty()).then(|| tokio::spawn(integrations::Integrations::run(app.clone())));
    let router = api::router(app.clone()).merge(console::router(app.clone()));
    let listener = listener::Bounded::new(
        started.listener,
        app.cfg.max_connections,
        Duration::from_secs(app.cfg.idle_timeout_secs.max(1)),
    );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    expirer.abort();
    if let Some(m) = mirror {
        // It resumes from its watermark at the next start.
        m.abort();
    }
    if let Some(d) = deliverer {
        // What it had in flight is still pending: delivered after the restart.
        d.abort();
    }
    let indexer = app.clone();
    let _ = tokio::task::spawn_blocking(move || indexer.stop_indexer()).await;
    let ledger = app.ledger.clone();
    let closed = tokio::task::spawn_blocking(move || ledger.close())
        .await
        .map_err(|e| ServerError::Task(format!("closing the ledger: {e}")))?;
    served.map_err(io("serving"))?;
    Ok(closed?)
}

/// The data directory's path of a file, for messages.
pub fn data_path(cfg: &ServerConfig, name: &str) -> PathBuf {
    cfg.data_dir.join(name)
}
