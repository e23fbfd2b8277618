//! The control plane's metadata: tokens, workflow keys, runs, and the search
//! index, in an embedded SQLite database (rusqlite, bundled SQLite).
//!
//! The log is the record; this database is an index and a work list. Every
//! attestation row can be rebuilt from the ledger (`App::reindex`), so the
//! database runs in WAL mode with `synchronous = NORMAL`: a power cut may lose
//! its last transactions, never an acknowledged attestation.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::contract::ContractRevision;

/// A metadata error.
#[derive(Debug, thiserror::Error)]
#[error("metadata database: {0}")]
pub struct MetaError(#[from] rusqlite::Error);

impl MetaError {
    /// Whether the database could not be used for now (full disk, I/O
    /// error, busy or locked) rather than refusing what was asked: worth
    /// retrying, a 503 and not a 500.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        matches!(
            self.0.sqlite_error_code(),
            Some(DiskFull | SystemIoFailure | DatabaseBusy | DatabaseLocked | CannotOpen | OutOfMemory)
        )
    }
}

type Result<T> = std::result::Result<T, MetaError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, workflows TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, expires_at INTEGER,
  last_used_at INTEGER, revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS workflow_keys (
  workflow TEXT NOT NULL, keyid TEXT NOT NULL, pem TEXT NOT NULL, added_at INTEGER NOT NULL,
  PRIMARY KEY (workflow, keyid));
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, workflow TEXT NOT NULL, project TEXT NOT NULL, version TEXT NOT NULL,
  status TEXT NOT NULL, contract_name TEXT NOT NULL, contract_commit TEXT NOT NULL,
  contract_blob TEXT NOT NULL, runner_type TEXT NOT NULL, runner_url TEXT NOT NULL,
  created_at INTEGER NOT NULL, finished_at INTEGER, reason TEXT, log_index INTEGER,
  envelope_digest TEXT);
DROP INDEX IF EXISTS runs_by_workflow;
DROP INDEX IF EXISTS runs_by_status;
CREATE INDEX IF NOT EXISTS runs_by_workflow_page ON runs (workflow, created_at, id);
CREATE INDEX IF NOT EXISTS runs_by_status_page ON runs (status, created_at, id);
CREATE INDEX IF NOT EXISTS runs_by_workflow_status ON runs (workflow, status, created_at, id);
CREATE TABLE IF NOT EXISTS attestations (
  log_index INTEGER PRIMARY KEY, envelope_digest TEXT NOT NULL, workflow TEXT NOT NULL,
  project TEXT NOT NULL, run_id TEXT NOT NULL, contract_name TEXT NOT NULL,
  contract_commit TEXT NOT NULL, contract_blob TEXT NOT NULL, created_at INTEGER NOT NULL,
  envelope_key INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attestations_by_workflow ON attestations (workflow);
CREATE INDEX IF NOT EXISTS attestations_by_commit ON attestations (contract_commit);
CREATE INDEX IF NOT EXISTS attestations_by_envelope_key ON attestations (envelope_key);
CREATE TABLE IF NOT EXISTS artifacts (
  digest TEXT NOT NULL, workflow TEXT NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (digest, workflow));
CREATE TABLE IF NOT EXISTS oci_manifests (
  digest TEXT PRIMARY KEY, repository TEXT NOT NULL, manifest TEXT NOT NULL, media_type TEXT NOT NULL,
  size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS oci_attestations (
  log_index INTEGER NOT NULL, reference TEXT NOT NULL, PRIMARY KEY (log_index, reference));
CREATE TABLE IF NOT EXISTS digests (
  id INTEGER PRIMARY KEY, key INTEGER NOT NULL, digest TEXT NOT NULL, log_index INTEGER NOT NULL,
  role TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS digests_by_key ON digests (key);
CREATE TABLE IF NOT EXISTS certificates (
  log_index INTEGER PRIMARY KEY, digest TEXT NOT NULL UNIQUE, serial TEXT NOT NULL,
  run_id TEXT NOT NULL, not_after INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS key_events (
  log_index INTEGER PRIMARY KEY, workflow TEXT NOT NULL, keyid TEXT NOT NULL, action TEXT NOT NULL,
  at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run_states (
  run_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_policies (run_id TEXT PRIMARY KEY, policies_commit TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exceptions (
  run_id TEXT PRIMARY KEY, granted_by TEXT NOT NULL, reason TEXT NOT NULL,
  granted_at INTEGER NOT NULL, until INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at, id);
CREATE TABLE IF NOT EXISTS refusals (
  id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, workflow TEXT NOT NULL, caller TEXT NOT NULL,
  code TEXT NOT NULL, message TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS refusals_by_run ON refusals (run_id);
CREATE INDEX IF NOT EXISTS refusals_by_time ON refusals (at);
CREATE TABLE IF NOT EXISTS run_counts (
  day TEXT NOT NULL, workflow TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (day, workflow, status)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS run_counts_insert AFTER INSERT ON runs BEGIN
  INSERT INTO run_counts (day, workflow, status, n)
    VALUES (date(NEW.created_at, 'unixepoch'), NEW.workflow, NEW.status, 1)
    ON CONFLICT (day, workflow, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS run_counts_update AFTER UPDATE OF status ON runs
WHEN OLD.status IS NOT NEW.status BEGIN
  UPDATE run_counts SET n = n - 1
    WHERE day = date(OLD.created_at, 'unixepoch') AND workflow = OLD.workflow AND status = OLD.status;
  INSERT INTO run_counts (day, workflow, status, n)
    VALUES (date(NEW.created_at, 'unixepoch'), NEW.workflow, NEW.status, 1)
    ON CONFLICT (day, workflow, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS run_counts_delete AFTER DELETE ON runs BEGIN
  UPDATE run_counts SET n = n - 1
    WHERE day = date(OLD.created_at, 'unixepoch') AND workflow = OLD.workflow AND status = OLD.status;
END;
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY, integration TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
  event TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL,
  last_error TEXT, created_at INTEGER NOT NULL, delivered_at INTEGER,
  UNIQUE (integration, event_id));
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
CREATE TABLE IF NOT EXISTS console_sessions (
  id_hash BLOB PRIMARY KEY, token_hash BLOB NOT NULL, csrf TEXT NOT NULL,
  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
";

/// The search tables of releases before the compact keys, as they created
/// them: [`Meta::open`] recognizes them (no `envelope_key` column) and drops
/// them with [`OLD_SEARCH`]; the upgrade tests create them.
#[doc(hidden)]
pub const EARLIER_SEARCH_TABLES: &str = "
CREATE TABLE attestations (
  log_index INTEGER PRIMARY KEY, envelope_digest TEXT NOT NULL, workflow TEXT NOT NULL,
  project TEXT NOT NULL, run_id TEXT NOT NULL, contract_name TEXT NOT NULL,
  contract_commit TEXT NOT NULL, contract_blob TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX attestations_by_workflow ON attestations (workflow);
CREATE INDEX attestations_by_commit ON attestations (contract_commit);
CREATE INDEX attestations_by_envelope ON attestations (envelope_digest);
CREATE TABLE digests (
  digest TEXT NOT NULL, log_index INTEGER NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,
  PRIMARY KEY (digest, log_index, name)) WITHOUT ROWID;
";

/// Drops the search index of an earlier release (then rebuilt from the log
/// by `App::reindex`).
const OLD_SEARCH: &str = "
DROP INDEX IF EXISTS attestations_by_workflow;
DROP INDEX IF EXISTS attestations_by_commit;
DROP INDEX IF EXISTS attestations_by_envelope;
DROP TABLE IF EXISTS attestations;
DROP TABLE IF EXISTS digests;
";

/// A logged certificate's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// Its entry's log index.
    pub log_index: i64,
    /// `sha256:<hex>` of the leaf's DER.
    pub digest: String,
    /// Hex serial.
    pub serial: String,
    /// The run it was issued for.
    pub run: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// The search key of a digest string (`sha256:<hex>`): the first 8 bytes of
/// its SHA-256, as a signed integer.
///
/// The random-order lookups of the search index (by envelope, by subject or
/// material digest) go through an index of these keys rather than of the
/// 71-character strings: each insert into a random place of a B-tree
/// dirties a page, and smaller entries mean far fewer pages — the index
/// writer's cost per attestation roughly halved (BENCHMARKS.md, intake).
/// Lookups compare the full string too, so a key collision costs a row
/// read, never a wrong answer.
pub fn search_key(digest: &str) -> i64 {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(digest.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    i64::from_be_bytes(b)
}

/// Digest rows of one attestation get ids `log_index << DIGEST_ID_BITS`
/// onward, in the statement's order: appended in log order (no random
/// placement), and re-indexing an entry replaces its rows instead of adding
/// more.
const DIGEST_ID_BITS: u32 = 20;

/// The most digests one attestation may name (intake refuses more: 422).
pub const MAX_DIGESTS: usize = (1 << DIGEST_ID_BITS) - 1;

/// The slot of an entry's envelope among its search positions: the last,
/// which no digest row takes.
const ENVELOPE_SLOT: i64 = MAX_DIGESTS as i64;

/// Where a hit of a digest search sits in the log's order: the entry's
/// index, then the digest's place in the statement (its row id), the
/// envelope last. Search pages are cut after a position.
pub fn search_position(log_index: i64, slot: i64) -> i64 {
    (log_index << DIGEST_ID_BITS) | slot
}

pub use crate::wire::TokenInfo;

/// A workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The contract revision pinned when it started.
    pub contract: ContractRevision,
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
}

/// An operator's exception for one run (SPEC.md §13.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    /// The run.
    pub run_id: String,
    /// Who granted it (the admin principal's id).
    pub granted_by: String,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub granted_at: i64,
    /// Unix seconds after which it no longer applies.
    pub until: i64,
}

/// One attestation in the search index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRow {
    /// Log index.
    pub log_index: i64,
    /// `sha256:<hex>` of the envelope.
    pub envelope_digest: String,
    /// Workflow.
    pub workflow: String,
    /// Project.
    pub project: String,
    /// Run.
    pub run_id: String,
    /// The contract revision it was checked against.
    pub contract: ContractRevision,
    /// Unix seconds.
    pub created_at: i64,
}

/// A digest named by an attestation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DigestRow {
    /// `sha256:<hex>` (or `gitCommit:<hex>`).
    pub digest: String,
    /// `subject`, `material` or (in a search's answer) `envelope`.
    pub role: String,
    /// The descriptor's name.
    pub name: String,
}

/// Per-workflow run counts for `stats`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WorkflowStats {
    /// Workflow.
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
    /// In progress.
    pub initialized: i64,
    /// Mean seconds from init to the end, of finished runs.
    pub mean_duration_s: Option<f64>,
}

/// A refused push, as recorded for the console (SPEC.md §16.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRow {
    /// The run pushed to.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Who pushed (token id, `admin` or `oidc:<iss>#<sub>`).
    pub caller: String,
    /// The refusal's machine code (SPEC.md §12.4).
    pub code: String,
    /// What the client was told.
    pub message: String,
    /// Unix seconds.
    pub at: i64,
}

/// An event for one integration, written to the outbox in the same
/// transaction as what it reports (SPEC.md §17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The integration's name.
    pub integration: String,
    /// The event's id: its idempotency key, the same at every attempt.
    pub event_id: String,
    /// `dev.tally.attestation.accepted` or `dev.tally.push.refused`.
    pub event_type: String,
    /// The CloudEvent (JSON) the delivery is made from.
    pub event: String,
}

/// How an attempt at a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery.
    pub id: i64,
    /// Why it failed; none: delivered.
    pub error: Option<String>,
    /// When to try again after a failure; none: give up.
    pub retry_at: Option<i64>,
}

/// A delivery of the outbox: an event for an integration and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The integration's name.
    pub integration: String,
    /// The event's id (its idempotency key).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The CloudEvent (JSON).
    #[serde(skip)]
    pub event: String,
    /// `pending`, `delivered` or `failed` (attempts exhausted; retriable).
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (unix seconds), while pending.
    pub next_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the event was written (unix seconds).
    pub created_at: i64,
    /// When it was delivered (unix seconds).
    pub delivered_at: Option<i64>,
}

/// A console session (SPEC.md §16.3): only hashes of secrets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the token the session was opened with.
    pub token_hash: Vec<u8>,
    /// The session's CSRF token.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Which runs a page lists, newest first (SPEC.md §16.3).
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only these workflows (`None`: all; the caller's scope).
    pub scope: Option<Vec<String>>,
    /// One workflow.
    pub workflow: Option<String>,
    /// One project.
    pub project: Option<String>,
    /// One status.
    pub status: Option<String>,
    /// Created at or after (unix seconds).
    pub since: Option<i64>,
    /// Created before (unix seconds).
    pub until: Option<i64>,
    /// Strictly after this (created_at, id) in the listing's order.
    pub after: Option<(i64, String)>,
}

/// The metadata store.
pub struct Meta {
    conn: Mutex<Connection>,
    /// A second connection for the hot reads, so they never wait behind the
    /// index writer's transactions (WAL lets readers run beside a writer).
    read: Mutex<Connection>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meta")
    }
}

/// A contract revision from three columns (name, commit, blob) from `first`.
fn revision_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ContractRevision> {
    Ok(ContractRevision {
        name: r.get(first)?,
        commit: r.get(first + 1)?,
        blob: r.get(first + 2)?,
    })
}

fn run_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        workflow: r.get(1)?,
        project: r.get(2)?,
        version: r.get(3)?,
        status: r.get(4)?,
        contract: revision_from(r, 5)?,
        runner_type: r.get(8)?,
        runner_url: r.get(9)?,
        created_at: r.get(10)?,
        finished_at: r.get(11)?,
        reason: r.get(12)?,
        log_index: r.get(13)?,
        envelope_digest: r.get(14)?,
    })
}

macro_rules! run_cols {
    () => {
        "id, workflow, project, version, status, contract_name, contract_commit, contract_blob, \
         runner_type, runner_url, created_at, finished_at, reason, log_index, envelope_digest"
    };
}
const RUN_COLS: &str = run_cols!();
/// Looked up on every push: a literal, so the statement cache is hit without
/// formatting the query first.
const RUN_BY_ID: &str = concat!("SELECT ", run_cols!(), " FROM runs WHERE id = ?1");

fn refusal_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<RefusalRow> {
    Ok(RefusalRow {
        run_id: r.get(0)?,
        workflow: r.get(1)?,
        caller: r.get(2)?,
        code: r.get(3)?,
        message: r.get(4)?,
        at: r.get(5)?,
    })
}

/// A scope of workflows as the JSON array `json_each` reads (`None`: all).
fn scope_json(scope: Option<&[String]>) -> Option<String> {
    scope.map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()))
}

fn att_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttestationRow> {
    Ok(AttestationRow {
        log_index: r.get(0)?,
        envelope_digest: r.get(1)?,
        workflow: r.get(2)?,
        project: r.get(3)?,
        run_id: r.get(4)?,
        contract: revision_from(r, 5)?,
        created_at: r.get(8)?,
    })
}

const DELIVERY_COLS: &str =
    "id, integration, event_id, event_type, event, state, attempts, next_at, last_error, created_at, delivered_at";

fn delivery_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        integration: r.get(1)?,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        event: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        next_at: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        delivered_at: r.get(10)?,
    })
}

const ATT_COLS: &str =
    "log_index, envelope_digest, workflow, project, run_id, contract_name, contract_commit, \
     contract_blob, created_at";

impl Meta {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Meta> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let compact: bool = conn.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'attestations') \
             OR EXISTS (SELECT 1 FROM pragma_table_info('attestations') WHERE name = 'envelope_key')",
            [],
            |r| r.get(0),
        )?;
        if !compact {
            // A database of an earlier release: its search index is rebuilt
            // from the log at start (the rest is kept).
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(OLD_SEARCH)?;
            tx.execute_batch(SCHEMA)?;
            tx.commit()?;
        }
        let counted: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'run_counts')",
            [],
            |r| r.get(0),
        )?;
        conn.execute_batch(SCHEMA)?;
        if !counted {
            // A database of an earlier release: the per-day counts the
            // triggers keep from now on start from the runs it holds.
            conn.execute_batch(
                "INSERT INTO run_counts (day, workflow, status, n) \
                 SELECT date(created_at, 'unixepoch'), workflow, status, COUNT(*) FROM runs GROUP BY 1, 2, 3",
            )?;
        }
        let read = Connection::open(path)?;
        read.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Meta {
            conn: Mutex::new(conn),
            read: Mutex::new(read),
        })
    }

    fn c(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn r(&self) -> MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .c()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.c().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }

    /// Stores a new token by the hash of its secret.
    pub fn create_token(&self, info: &TokenInfo, hash: &[u8]) -> Result<()> {
        self.c().execute(
            "INSERT INTO tokens (id, hash, workflows, description, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![info.id, hash, info.workflows.join(","), info.description, info.created_at, info.expires_at],
        )?;
        Ok(())
    }

    /// The token whose secret hashes to `hash`.
    pub fn token_by_hash(&self, hash: &[u8]) -> Result<Option<(TokenInfo, Vec<u8>)>> {
        Ok(self
            .r()
            .query_row(
                "SELECT id, workflows, description, created_at, expires_at, last_used_at, revoked_at, hash FROM tokens WHERE hash = ?1",
                [hash],
                |r| {
                    let wf: String = r.get(1)?;
                    Ok((
                        TokenInfo {
                            id: r.get(0)?,
                            workflows: wf.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                            description: r.get(2)?,
                            created_at: r.get(3)?,
                            expires_at: r.get(4)?,
                            last_used_at: r.get(5)?,
                            revoked_at: r.get(6)?,
                        },
                        r.get(7)?,
                    ))
                },
            )
            .optional()?)
    }

    /// Records a token's use (at most once a minute per token).
    pub fn touch_token(&self, id: &str, now: i64) -> Result<()> {
        self.c().execute(
            "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
            params![id, now],
        )?;
        Ok(())
    }

    /// Every token.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let c = self.c();
        let mut st = c.prepare(
            "SELECT id, workflows, description, created_at, expires_at, last_used_at, revoked_at FROM tokens ORDER BY created_at, id",
        )?;
        let rows = st.query_map([], |r| {
            let wf: String = r.get(1)?;
            Ok(TokenInfo {
                id: r.get(0)?,
                workflows: wf
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                description: r.get(2)?,
                created_at: r.get(3)?,
                expires_at: r.get(4)?,
                last_used_at: r.get(5)?,
                revoked_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes a token; false when there is no such token.
    pub fn revoke_token(&self, id: &str, now: i64) -> Result<bool> {
        Ok(self.c().execute(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now],
        )? == 1)
    }

    /// Registers a public key for a workflow, without a log entry: for
    /// in-process harnesses (the admin API goes through
    /// `server::keys::change`, which logs it first).
    pub fn add_workflow_key(&self, workflow: &str, keyid: &str, pem: &str, now: i64) -> Result<()> {
        self.c().execute(
            "INSERT OR REPLACE INTO workflow_keys (workflow, keyid, pem, added_at) VALUES (?1, ?2, ?3, ?4)",
            params![workflow, keyid, pem, now],
        )?;
        Ok(())
    }

    /// Applies the key entry at `log_index` (SPEC.md §3.2): an `add`
    /// registers `pem` for the workflow, a `revoke` removes it — unless a
    /// later entry about the same key is already recorded (it decides), so
    /// entries may be recorded in any order and again (a replay of the log
    /// after a crash).
    pub fn record_key_event(
        &self,
        log_index: i64,
        workflow: &str,
        keyid: &str,
        add: Option<&str>,
        at: i64,
    ) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let action = if add.is_some() { "add" } else { "revoke" };
        tx.execute(
            "INSERT OR IGNORE INTO key_events (log_index, workflow, keyid, action, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![log_index, workflow, keyid, action, at],
        )?;
        let latest: i64 = tx.query_row(
            "SELECT MAX(log_index) FROM key_events WHERE workflow = ?1 AND keyid = ?2",
            params![workflow, keyid],
            |r| r.get(0),
        )?;
        if latest == log_index {
            match add {
                Some(pem) => tx.execute(
                    "INSERT OR REPLACE INTO workflow_keys (workflow, keyid, pem, added_at) VALUES (?1, ?2, ?3, ?4)",
                    params![workflow, keyid, pem, at],
                )?,
                None => tx.execute(
                    "DELETE FROM workflow_keys WHERE workflow = ?1 AND keyid = ?2",
                    params![workflow, keyid],
                )?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    /// The PEM of `workflow`'s registered key `keyid`, if registered.
    pub fn workflow_key(&self, workflow: &str, keyid: &str) -> Result<Option<String>> {
        Ok(self
            .c()
            .query_row(
                "SELECT pem FROM workflow_keys WHERE workflow = ?1 AND keyid = ?2",
                params![workflow, keyid],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A workflow's keys: (keyid, pem).
    pub fn workflow_keys(&self, workflow: &str) -> Result<Vec<(String, String)>> {
        let c = self.c();
        let mut st =
            c.prepare_cached("SELECT keyid, pem FROM workflow_keys WHERE workflow = ?1 ORDER BY added_at")?;
        let rows = st.query_map([workflow], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Inserts a new run.
    pub fn insert_run(&self, r: &Run) -> Result<()> {
        self.c().execute(
            &format!("INSERT INTO runs ({RUN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                r.id, r.workflow, r.project, r.version, r.status, r.contract.name, r.contract.commit,
                r.contract.blob, r.runner_type, r.runner_url, r.created_at, r.finished_at, r.reason,
                r.log_index, r.envelope_digest
            ],
        )?;
        Ok(())
    }

    /// A run's crafting state kept for its jobs: (version, JSON text).
    pub fn run_state(&self, run: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .c()
            .query_row(
                "SELECT version, state FROM run_states WHERE run_id = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Replaces a run's state if it is at version `expected` (`None`: only
    /// if it has none). `Ok(Ok(new version))`, or `Ok(Err(current
    /// version))` when another writer got there first.
    pub fn put_run_state(
        &self,
        run: &str,
        expected: Option<i64>,
        text: &str,
    ) -> Result<std::result::Result<i64, Option<i64>>> {
        let mut c = self.c();
        let tx = c.transaction()?;
        let current: Option<i64> = tx
            .query_row("SELECT version FROM run_states WHERE run_id = ?1", [run], |r| {
                r.get(0)
            })
            .optional()?;
        if current != expected {
            return Ok(Err(current));
        }
        let next = current.unwrap_or(0) + 1;
        tx.execute(
            "INSERT OR REPLACE INTO run_states (run_id, version, state) VALUES (?1, ?2, ?3)",
            params![run, next, text],
        )?;
        tx.commit()?;
        Ok(Ok(next))
    }

    /// Records the commit a run's policies are read at (runs whose
    /// contract has policies; SPEC.md §13.2).
    pub fn set_policies_commit(&self, run: &str, commit: &str) -> Result<()> {
        self.c().execute(
            "INSERT INTO run_policies (run_id, policies_commit) VALUES (?1, ?2)",
            params![run, commit],
        )?;
        Ok(())
    }

    /// The commit a run's policies are read at, if it has policies.
    pub fn policies_commit(&self, run: &str) -> Result<Option<String>> {
        Ok(self
            .r()
            .query_row(
                "SELECT policies_commit FROM run_policies WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Grants (or replaces) the exception of one run.
    pub fn grant_exception(&self, e: &ExceptionRow) -> Result<()> {
        self.c().execute(
            "INSERT INTO exceptions (run_id, granted_by, reason, granted_at, until) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(run_id) DO UPDATE SET granted_by = ?2, reason = ?3, granted_at = ?4, until = ?5",
            params![e.run_id, e.granted_by, e.reason, e.granted_at, e.until],
        )?;
        Ok(())
    }

    /// The exception granted to a run, if any (expired ones included).
    pub fn exception(&self, run: &str) -> Result<Option<ExceptionRow>> {
        Ok(self
            .r()
            .query_row(
                "SELECT run_id, granted_by, reason, granted_at, until FROM exceptions WHERE run_id = ?1",
                [run],
                |r| {
                    Ok(ExceptionRow {
                        run_id: r.get(0)?,
                        granted_by: r.get(1)?,
                        reason: r.get(2)?,
                        granted_at: r.get(3)?,
                        until: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// A run by id.
    pub fn run(&self, id: &str) -> Result<Option<Run>> {
        let c = self.r();
        let mut st = c.prepare_cached(RUN_BY_ID)?;
        Ok(st.query_row([id], run_from).optional()?)
    }

    /// Runs, newest first, optionally filtered.
    pub fn list_runs(&self, workflow: Option<&str>, status: Option<&str>, limit: i64) -> Result<Vec<Run>> {
        let c = self.c();
        let mut st = c.prepare(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2) \
             ORDER BY created_at DESC, id LIMIT ?3"
        ))?;
        let rows = st.query_map(params![workflow, status, limit], run_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ends an INITIALIZED run; false when it was not INITIALIZED.
    pub fn finish_run(&self, id: &str, status: &str, reason: Option<&str>, now: i64) -> Result<bool> {
        Ok(self.c().execute(
            "UPDATE runs SET status = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1 AND status = 'INITIALIZED'",
            params![id, status, reason, now],
        )? == 1)
    }

    /// Marks INITIALIZED runs created before `cutoff` EXPIRED; returns how many.
    pub fn expire_runs(&self, cutoff: i64, now: i64) -> Result<usize> {
        Ok(self.c().execute(
            "UPDATE runs SET status = 'EXPIRED', finished_at = ?2, reason = 'not finished in time' \
             WHERE status = 'INITIALIZED' AND created_at < ?1",
            params![cutoff, now],
        )?)
    }

    /// Records an accepted attestation: the run SUCCEEDED, the search rows.
    pub fn record_attestation(
        &self,
        a: &AttestationRow,
        digests: &[DigestRow],
        outbox: &[OutboxRow],
        now: i64,
    ) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        Self::record_in(&tx, a, digests, now)?;
        Self::enqueue_in(&tx, outbox, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a batch of attestations and their integrations' events in
    /// one transaction.
    pub fn record_attestations(
        &self,
        batch: &[(AttestationRow, Vec<DigestRow>)],
        outbox: &[OutboxRow],
        now: i64,
    ) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        for (a, digests) in batch {
            Self::record_in(&tx, a, digests, now)?;
        }
        Self::enqueue_in(&tx, outbox, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes events to the outbox, due now; an event already there (the
    /// same integration and id: a re-index) is left as it is.
    fn enqueue_in(tx: &rusqlite::Transaction<'_>, outbox: &[OutboxRow], now: i64) -> Result<()> {
        if outbox.is_empty() {
            return Ok(());
        }
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO outbox (integration, event_id, event_type, event, state, attempts, next_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5)",
        )?;
        for o in outbox {
            st.execute(params![o.integration, o.event_id, o.event_type, o.event, now])?;
        }
        Ok(())
    }

    fn record_in(
        tx: &rusqlite::Transaction<'_>,
        a: &AttestationRow,
        digests: &[DigestRow],
        now: i64,
    ) -> Result<()> {
        tx.prepare_cached(
            "UPDATE runs SET status = 'SUCCEEDED', finished_at = ?2, log_index = ?3, envelope_digest = ?4 \
             WHERE id = ?1",
        )?
        .execute(params![a.run_id, now, a.log_index, a.envelope_digest])?;
        tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO attestations ({ATT_COLS}, envelope_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?
        .execute(params![
            a.log_index,
            a.envelope_digest,
            a.workflow,
            a.project,
            a.run_id,
            a.contract.name,
            a.contract.commit,
            a.contract.blob,
            a.created_at,
            search_key(&a.envelope_digest),
        ])?;
        let first = u64::try_from(a.log_index)
            .ok()
            .filter(|i| *i < 1 << (63 - DIGEST_ID_BITS))
            .ok_or_else(|| MetaError(rusqlite::Error::IntegralValueOutOfRange(0, a.log_index)))?
            << DIGEST_ID_BITS;
        if digests.len() > MAX_DIGESTS {
            return Err(MetaError(rusqlite::Error::ToSqlConversionFailure(
                format!(
                    "entry {} names {} digests; the search index takes at most {MAX_DIGESTS}",
                    a.log_index,
                    digests.len(),
                )
                .into(),
            )));
        }
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO digests (id, key, digest, log_index, role, name) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, d) in digests.iter().enumerate() {
                st.execute(params![
                    (first + i as u64) as i64,
                    search_key(&d.digest),
                    d.digest,
                    a.log_index,
                    d.role,
                    d.name
                ])?;
            }
        }
        Ok(())
    }

    /// The highest indexed log index (attestation or certificate), if any.
    pub fn max_indexed(&self) -> Result<Option<i64>> {
        Ok(self.c().query_row(
            "SELECT MAX(m) FROM (SELECT MAX(log_index) AS m FROM attestations
             UNION ALL SELECT MAX(log_index) FROM certificates
             UNION ALL SELECT MAX(log_index) FROM key_events)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Records the certificate entry at `log_index`: the leaf's digest
    /// (`sha256:…`), serial, run and expiry. Recording it again is a no-op.
    pub fn record_certificate(
        &self,
        log_index: i64,
        digest: &str,
        serial: &str,
        run: &str,
        not_after: i64,
    ) -> Result<()> {
        self.c().execute(
            "INSERT OR IGNORE INTO certificates (log_index, digest, serial, run_id, not_after) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![log_index, digest, serial, run, not_after],
        )?;
        Ok(())
    }

    /// Records certificate rows in one transaction (the index writer's
    /// batches). Recording one again is a no-op.
    pub fn record_certificates(&self, rows: &[CertificateRow]) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO certificates (log_index, digest, serial, run_id, not_after) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in rows {
                st.execute(params![r.log_index, r.digest, r.serial, r.run, r.not_after])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The log index, run and expiry (unix seconds) of the logged
    /// certificate whose DER has `digest` (`sha256:…`).
    pub fn certificate(&self, digest: &str) -> Result<Option<(i64, String, i64)>> {
        Ok(self
            .r()
            .prepare_cached("SELECT log_index, run_id, not_after FROM certificates WHERE digest = ?1")?
            .query_row([digest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?)
    }

    /// Records that `workflow` stored the artifact `digest`.
    pub fn record_artifact(&self, digest: &str, workflow: &str, size: u64, now: i64) -> Result<()> {
        self.c().execute(
            "INSERT OR IGNORE INTO artifacts (digest, workflow, size, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![digest, workflow, size as i64, now],
        )?;
        Ok(())
    }

    /// Records the OCI manifest that keeps the blob `digest` in `repository`.
    pub fn record_oci_manifest(
        &self,
        digest: &str,
        repository: &str,
        d: &crate::server::artifact_store::Descriptor,
    ) -> Result<()> {
        self.c().execute(
            "INSERT OR IGNORE INTO oci_manifests (digest, repository, manifest, media_type, size) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![digest, repository, d.digest, d.media_type, d.size as i64],
        )?;
        Ok(())
    }

    /// The OCI manifest of the blob `digest`: its repository and descriptor.
    pub fn oci_manifest(
        &self,
        digest: &str,
    ) -> Result<Option<(String, crate::server::artifact_store::Descriptor)>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT repository, manifest, media_type, size FROM oci_manifests WHERE digest = ?1",
        )?;
        Ok(st
            .query_row([digest], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    crate::server::artifact_store::Descriptor {
                        digest: r.get(1)?,
                        media_type: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                    },
                ))
            })
            .optional()?)
    }

    /// Records where the attestation at `log_index` was stored in the registry,
    /// and that the mirror moves on past it.
    pub fn record_oci_attestation(&self, log_index: i64, references: &[String]) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        for r in references {
            tx.execute(
                "INSERT OR IGNORE INTO oci_attestations (log_index, reference) VALUES (?1, ?2)",
                params![log_index, r],
            )?;
        }
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('oci_mirrored_next', ?1) \
             ON CONFLICT(key) DO UPDATE SET value = ?1",
            params![(log_index + 1).to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Where the attestation at `log_index` is in the registry.
    pub fn oci_attestations(&self, log_index: i64) -> Result<Vec<String>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT reference FROM oci_attestations WHERE log_index = ?1 ORDER BY reference",
        )?;
        let rows = st.query_map([log_index], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The workflows that stored the artifact `digest`.
    pub fn artifact_workflows(&self, digest: &str) -> Result<Vec<String>> {
        let c = self.r();
        let mut st =
            c.prepare_cached("SELECT workflow FROM artifacts WHERE digest = ?1 ORDER BY workflow")?;
        let rows = st.query_map([digest], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The workflows that stored artifact `digest`, with the size each stored.
    pub fn artifact_owners(&self, digest: &str) -> Result<Vec<(String, i64)>> {
        let c = self.r();
        let mut st =
            c.prepare_cached("SELECT workflow, size FROM artifacts WHERE digest = ?1 ORDER BY workflow")?;
        let rows = st.query_map([digest], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many entries (attestations and certificates) are indexed.
    pub fn indexed_count(&self) -> Result<u64> {
        Ok(self.c().query_row(
            "SELECT (SELECT COUNT(*) FROM attestations) + (SELECT COUNT(*) FROM certificates)
             + (SELECT COUNT(*) FROM key_events)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// The log indices below `below` that neither the attestation rows nor
    /// the certificate rows hold, ascending: one ordered scan of each
    /// table's primary key, merged (a start-up after a crash with a gap in
    /// the index reads the index once, not once per log entry).
    pub fn unindexed_below(&self, below: i64) -> Result<Vec<i64>> {
        let c = self.c();
        let mut a =
            c.prepare("SELECT log_index FROM attestations WHERE log_index < ?1 ORDER BY log_index")?;
        let mut b =
            c.prepare("SELECT log_index FROM certificates WHERE log_index < ?1 ORDER BY log_index")?;
        let mut a = a.query_map([below], |r| r.get::<_, i64>(0))?.peekable();
        let mut b = b.query_map([below], |r| r.get::<_, i64>(0))?.peekable();
        let mut missing = Vec::new();
        let mut next = 0i64;
        loop {
            let pa = a.peek().map(|r| r.as_ref().map_or(i64::MIN, |v| *v));
            let pb = b.peek().map(|r| r.as_ref().map_or(i64::MIN, |v| *v));
            let take_a = match (pa, pb) {
                (None, None) => break,
                (Some(x), Some(y)) => x <= y,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            let i = if take_a { a.next() } else { b.next() };
            let i = match i {
                Some(r) => r?,
                None => break,
            };
            missing.extend(next..i);
            next = next.max(i + 1);
        }
        missing.extend(next..below);
        // Key entries are few: read whole, taken out of what is missing.
        let keys: Vec<i64> = c
            .prepare("SELECT log_index FROM key_events WHERE log_index < ?1 ORDER BY log_index")?
            .query_map([below], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if !keys.is_empty() {
            missing.retain(|i| keys.binary_search(i).is_err());
        }
        Ok(missing)
    }

    /// Whether `index` is in the search index.
    pub fn is_indexed(&self, index: i64) -> Result<bool> {
        Ok(self
            .c()
            .query_row(
                "SELECT 1 FROM attestations WHERE log_index = ?1
                 UNION ALL SELECT 1 FROM certificates WHERE log_index = ?1
                 UNION ALL SELECT 1 FROM key_events WHERE log_index = ?1",
                [index],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The log index of the attestation whose envelope has `digest` (`sha256:…`).
    pub fn envelope_index(&self, digest: &str) -> Result<Option<i64>> {
        Ok(self
            .r()
            .prepare_cached(
                "SELECT MIN(log_index) FROM attestations WHERE envelope_key = ?1 AND envelope_digest = ?2",
            )?
            .query_row(params![search_key(digest), digest], |r| r.get(0))?)
    }

    /// One page of the attestations naming `digest` as a subject, a
    /// material or their envelope, in log order: at most `limit` hits whose
    /// [search position](search_position) is above `after` and whose entry
    /// is below `below`, each with its position. Both lookups are range
    /// scans of an index (digest ids are positions), so a page costs the
    /// same at any depth.
    pub fn search_digest(
        &self,
        digest: &str,
        after: i64,
        below: i64,
        limit: i64,
    ) -> Result<Vec<(i64, AttestationRow, DigestRow)>> {
        let c = self.c();
        let key = search_key(digest);
        let mut named = c
            .prepare_cached(&format!(
                "SELECT {}, d.role, d.name, d.id FROM digests d JOIN attestations a ON a.log_index = d.log_index \
                 WHERE d.key = ?1 AND d.digest = ?2 AND d.id > ?3 AND d.log_index < ?4 ORDER BY d.id LIMIT ?5",
                ATT_COLS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
            ))?
            .query_map(params![key, digest, after, below, limit], |r| {
                Ok((
                    r.get::<_, i64>(11)?,
                    att_from(r)?,
                    DigestRow {
                        digest: digest.to_owned(),
                        role: r.get(9)?,
                        name: r.get(10)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // The envelope's position is its entry's last slot, which no digest
        // row takes: entries above `after`'s, or `after`'s own when `after`
        // is not that slot already.
        let from = (after >> DIGEST_ID_BITS) + i64::from(after & ENVELOPE_SLOT == ENVELOPE_SLOT);
        let enveloped = c
            .prepare_cached(&format!(
                "SELECT {ATT_COLS} FROM attestations WHERE envelope_key = ?1 AND envelope_digest = ?2 \
                 AND log_index >= ?3 AND log_index < ?4 ORDER BY log_index LIMIT ?5"
            ))?
            .query_map(params![key, digest, from.max(0), below, limit], |r| {
                let a = att_from(r)?;
                Ok((
                    search_position(a.log_index, ENVELOPE_SLOT),
                    a,
                    DigestRow {
                        digest: digest.to_owned(),
                        role: "envelope".into(),
                        name: String::new(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if !enveloped.is_empty() {
            named.extend(enveloped);
            named.sort_by_key(|(p, _, _)| *p);
            named.truncate(usize::try_from(limit).unwrap_or(0));
        }
        Ok(named)
    }

    /// Attestations of a workflow, or checked against a contract commit:
    /// at most `limit` entries above `after` and below `below`, in log order.
    pub fn search(
        &self,
        workflow: Option<&str>,
        commit: Option<&str>,
        after: i64,
        below: i64,
        limit: i64,
    ) -> Result<Vec<AttestationRow>> {
        let c = self.c();
        let mut st = c.prepare_cached(&format!(
            "SELECT {ATT_COLS} FROM attestations WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR contract_commit = ?2) \
             AND log_index > ?3 AND log_index < ?4 ORDER BY log_index LIMIT ?5"
        ))?;
        let rows = st.query_map(params![workflow, commit, after, below, limit], att_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Run counts per workflow since `since` (unix seconds).
    pub fn workflow_stats(&self, since: i64) -> Result<Vec<WorkflowStats>> {
        let c = self.c();
        let mut st = c.prepare(
            "SELECT workflow, COUNT(*), \
               SUM(status = 'SUCCEEDED'), SUM(status = 'FAILED'), SUM(status = 'CANCELLED'), \
               SUM(status = 'EXPIRED'), SUM(status = 'INITIALIZED'), \
               AVG(CASE WHEN finished_at IS NOT NULL THEN finished_at - created_at END) \
             FROM runs WHERE created_at >= ?1 GROUP BY workflow ORDER BY workflow",
        )?;
        let rows = st.query_map([since], |r| {
            Ok(WorkflowStats {
                workflow: r.get(0)?,
                runs: r.get(1)?,
                succeeded: r.get(2)?,
                failed: r.get(3)?,
                cancelled: r.get(4)?,
                expired: r.get(5)?,
                initialized: r.get(6)?,
                mean_duration_s: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs per UTC day since `since`: (YYYY-MM-DD, runs, succeeded).
    pub fn runs_per_day(&self, since: i64) -> Result<Vec<(String, i64, i64)>> {
        let c = self.c();
        let mut st = c.prepare(
            "SELECT date(created_at, 'unixepoch'), COUNT(*), SUM(status = 'SUCCEEDED') FROM runs \
             WHERE created_at >= ?1 GROUP BY 1 ORDER BY 1",
        )?;
        let rows = st.query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a refused push; the message is cut to 8 KiB.
    pub fn record_refusal(&self, r: &RefusalRow, outbox: &[OutboxRow]) -> Result<()> {
        let mut message = r.message.clone();
        if message.len() > 8192 {
            let mut cut = 8192;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let mut c = self.c();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO refusals (run_id, workflow, caller, code, message, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.run_id, r.workflow, r.caller, r.code, message, r.at],
        )?;
        Self::enqueue_in(&tx, outbox, r.at)?;
        tx.commit()?;
        Ok(())
    }

    /// Pending deliveries due by `now`, oldest due first (at most `limit`).
    pub fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<Delivery>> {
        let c = self.r();
        let mut st = c.prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM outbox WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![now, limit], delivery_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// When the next pending delivery is due (unix seconds), if any.
    pub fn next_delivery_due(&self) -> Result<Option<i64>> {
        Ok(self
            .r()
            .prepare_cached("SELECT MIN(next_at) FROM outbox WHERE state = 'pending'")?
            .query_row([], |r| r.get(0))?)
    }

    /// Records attempts, in one transaction: each delivered (no error), due
    /// again at its retry time, or given up (`failed`) when it has none.
    pub fn deliveries_attempted(&self, attempts: &[Attempt], now: i64) -> Result<()> {
        let mut c = self.c();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET state = ?2, attempts = attempts + 1, next_at = ?3, last_error = ?4, \
                 delivered_at = ?5 WHERE id = ?1 AND state = 'pending'",
            )?;
            for a in attempts {
                let (state, next_at, delivered_at) = match (&a.error, a.retry_at) {
                    (None, _) => ("delivered", now, Some(now)),
                    (Some(_), Some(at)) => ("pending", at, None),
                    (Some(_), None) => ("failed", now, None),
                };
                st.execute(params![a.id, state, next_at, a.error, delivered_at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deliveries, newest first, before the cursor `before` (an id), of an
    /// integration and/or in a state (at most `limit`).
    pub fn deliveries(
        &self,
        integration: Option<&str>,
        state: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let c = self.r();
        let mut st = c.prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM outbox WHERE (?1 IS NULL OR integration = ?1) AND (?2 IS NULL OR state = ?2) \
             AND id < ?3 ORDER BY id DESC LIMIT ?4"
        ))?;
        let rows = st.query_map(
            params![integration, state, before.unwrap_or(i64::MAX), limit],
            delivery_from,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Per integration: deliveries by state, and the last error and delivery time.
    pub fn delivery_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT integration, state, COUNT(*) FROM outbox GROUP BY integration, state ORDER BY integration, state",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Makes failed deliveries pending again, due `now` (with their attempts
    /// counted afresh): delivery `id`, or every failed one of `integration`,
    /// or every failed one. How many.
    pub fn retry_deliveries(&self, id: Option<i64>, integration: Option<&str>, now: i64) -> Result<usize> {
        Ok(self.c().execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?3 \
             WHERE state = 'failed' AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR integration = ?2)",
            params![id, integration, now],
        )?)
    }

    /// A run's refused pushes, oldest first (at most `limit`).
    pub fn refusals_of(&self, run: &str, limit: i64) -> Result<Vec<RefusalRow>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT run_id, workflow, caller, code, message, at FROM refusals WHERE run_id = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![run, limit], refusal_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Refused pushes newest first, within `scope`, of one code if given,
    /// older than refusal `before` (the cursor): (cursor, refusal).
    pub fn refusals_page(
        &self,
        scope: Option<&[String]>,
        code: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(i64, RefusalRow)>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT run_id, workflow, caller, code, message, at, id FROM refusals WHERE \
               (?1 IS NULL OR workflow IN (SELECT value FROM json_each(?1))) \
               AND (?2 IS NULL OR code = ?2) AND (?3 IS NULL OR id < ?3) \
             ORDER BY id DESC LIMIT ?4",
        )?;
        let rows = st.query_map(params![scope_json(scope), code, before, limit], |r| {
            Ok((r.get(6)?, refusal_from(r)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Refused pushes since `since` by code, within `scope` (`None`: all
    /// workflows), most frequent first.
    pub fn refusals_by_code(&self, since: i64, scope: Option<&[String]>) -> Result<Vec<(String, i64)>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT code, COUNT(*) FROM refusals WHERE at >= ?1 \
             AND (?2 IS NULL OR workflow IN (SELECT value FROM json_each(?2))) \
             GROUP BY code ORDER BY 2 DESC, 1",
        )?;
        let rows = st.query_map(params![since, scope_json(scope)], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A page of runs, newest first: `filter`, at most `limit`.
    ///
    /// Each page is one range scan of an index in (created_at, id) order:
    /// the query names only the conditions given (so the planner sees
    /// them), and a scope of several workflows is a scan per workflow,
    /// merged here (at most `limit` rows each).
    pub fn runs_page(&self, f: &RunFilter, limit: i64) -> Result<Vec<Run>> {
        let workflows: Vec<Option<&str>> = match (&f.scope, &f.workflow) {
            (Some(scope), Some(w)) if !scope.contains(w) => return Ok(Vec::new()),
            (_, Some(w)) => vec![Some(w.as_str())],
            (Some(scope), None) => scope.iter().map(|w| Some(w.as_str())).collect(),
            (None, None) => vec![None],
        };
        let mut out: Vec<Run> = Vec::new();
        for w in workflows {
            out.extend(self.runs_scan(f, w, limit)?);
        }
        out.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }

    fn runs_scan(&self, f: &RunFilter, workflow: Option<&str>, limit: i64) -> Result<Vec<Run>> {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut cond = |sql_part: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {sql_part} ?{}", args.len()));
        };
        if let Some(w) = workflow {
            cond("workflow =", w.to_owned().into());
        }
        if let Some(p) = &f.project {
            cond("project =", p.clone().into());
        }
        if let Some(s) = &f.status {
            cond("status =", s.clone().into());
        }
        if let Some(t) = f.since {
            cond("created_at >=", t.into());
        }
        if let Some(t) = f.until {
            cond("created_at <", t.into());
        }
        if let Some((t, id)) = &f.after {
            args.push((*t).into());
            args.push(id.clone().into());
            sql.push_str(&format!(
                " AND (created_at, id) < (?{}, ?{})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(limit.into());
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT ?{}",
            args.len()
        ));
        let c = self.r();
        let mut st = c.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), run_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs per UTC day, workflow and status since `since`, within
    /// `scope`: (YYYY-MM-DD, workflow, status, count), oldest day first.
    /// Read from the counts the triggers on `runs` keep, so it costs the
    /// number of days × workflows, not the number of runs.
    pub fn run_counts(
        &self,
        since: i64,
        scope: Option<&[String]>,
    ) -> Result<Vec<(String, String, String, i64)>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT day, workflow, status, n FROM run_counts WHERE day >= date(?1, 'unixepoch') AND n > 0 \
             AND (?2 IS NULL OR workflow IN (SELECT value FROM json_each(?2))) ORDER BY 1, 2, 3",
        )?;
        let rows = st.query_map(params![since, scope_json(scope)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Opens a console session (by the SHA-256 of its id).
    pub fn create_session(&self, id_hash: &[u8], s: &SessionRow, now: i64) -> Result<()> {
        let c = self.c();
        c.execute("DELETE FROM console_sessions WHERE expires_at <= ?1", [now])?;
        c.execute(
            "INSERT INTO console_sessions (id_hash, token_hash, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id_hash, s.token_hash, s.csrf, now, s.expires_at],
        )?;
        Ok(())
    }

    /// A console session that has not expired at `now`.
    pub fn session(&self, id_hash: &[u8], now: i64) -> Result<Option<SessionRow>> {
        let c = self.r();
        let mut st = c.prepare_cached(
            "SELECT token_hash, csrf, expires_at FROM console_sessions WHERE id_hash = ?1 AND expires_at > ?2",
        )?;
        Ok(st
            .query_row(params![id_hash, now], |r| {
                Ok(SessionRow {
                    token_hash: r.get(0)?,
                    csrf: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Ends a console session.
    pub fn delete_session(&self, id_hash: &[u8]) -> Result<()> {
        self.c()
            .execute("DELETE FROM console_sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    /// Runs by status (for metrics).
    pub fn runs_by_status(&self) -> Result<Vec<(String, i64)>> {
        let c = self.c();
        let mut st = c.prepare("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64, envelope: &str) -> AttestationRow {
        AttestationRow {
            log_index: i,
            envelope_digest: envelope.into(),
            workflow: "wf".into(),
            project: "p".into(),
            run_id: format!("run-{i}"),
            contract: ContractRevision {
                name: "c".into(),
                commit: "0".repeat(40),
                blob: "1".repeat(40),
            },
            created_at: 1,
        }
    }

    fn digest(d: &str, role: &str, name: &str) -> DigestRow {
        DigestRow {
            digest: d.into(),
            role: role.into(),
            name: name.into(),
        }
    }

    fn a_run(id: &str, workflow: &str, created_at: i64) -> Run {
        Run {
            id: id.into(),
            workflow: workflow.into(),
            project: "p".into(),
            version: "1".into(),
            status: "INITIALIZED".into(),
            contract: ContractRevision {
                name: "c".into(),
                commit: "0".repeat(40),
                blob: "1".repeat(40),
            },
            runner_type: "github-actions".into(),
            runner_url: String::new(),
            created_at,
            finished_at: None,
            reason: None,
            log_index: None,
            envelope_digest: None,
        }
    }

    #[test]
    fn run_counts_follow_every_change_of_status_and_start_from_an_older_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let day = 1_796_428_800; // 2026-12-05
        {
            let m = Meta::open(&path).unwrap();
            m.insert_run(&a_run("r1", "a", day + 10)).unwrap();
            m.insert_run(&a_run("r2", "a", day + 20)).unwrap();
            m.insert_run(&a_run("r3", "b", day - 10)).unwrap();
            assert!(m.finish_run("r1", "FAILED", Some("x"), day + 30).unwrap());
            assert_eq!(m.expire_runs(day, day + 40).unwrap(), 1);
            m.record_attestation(
                &AttestationRow {
                    run_id: "r2".into(),
                    ..row(0, &format!("sha256:{}", "c".repeat(64)))
                },
                &[],
                &[],
                day + 50,
            )
            .unwrap();
            let counts = m.run_counts(day - 86_400, None).unwrap();
            let want = vec![
                ("2026-12-04".to_owned(), "b".to_owned(), "EXPIRED".to_owned(), 1),
                ("2026-12-05".into(), "a".into(), "FAILED".into(), 1),
                ("2026-12-05".into(), "a".into(), "SUCCEEDED".into(), 1),
            ];
            assert_eq!(counts, want);
            assert_eq!(m.run_counts(day, Some(&["b".to_owned()])).unwrap(), vec![]);
            // Back to the schema of the release before the counts.
            let c = m.c();
            c.execute_batch("DROP TABLE run_counts; DROP TRIGGER run_counts_insert; DROP TRIGGER run_counts_update; DROP TRIGGER run_counts_delete;").unwrap();
        }
        // A database without the counts (an earlier release): rebuilt at open.
        let m = Meta::open(&path).unwrap();
        assert_eq!(m.run_counts(day - 86_400, None).unwrap().len(), 3);
        m.insert_run(&a_run("r4", "b", day + 60)).unwrap();
        assert_eq!(
            m.run_counts(day, Some(&["b".to_owned()])).unwrap(),
            vec![(
                "2026-12-05".to_owned(),
                "b".to_owned(),
                "INITIALIZED".to_owned(),
                1
            )]
        );
    }

    #[test]
    fn search_by_digest_and_envelope_through_compact_keys() {
        let dir = tempfile::tempdir().unwrap();
        let m = Meta::open(&dir.path().join("meta.db")).unwrap();
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        m.record_attestations(
            &[
                (
                    row(0, "sha256:e0"),
                    vec![digest(&a, "subject", "app"), digest(&b, "material", "sbom")],
                ),
                (row(1, "sha256:e1"), vec![digest(&a, "material", "dep")]),
            ],
            &[],
            2,
        )
        .unwrap();
        // Indexing an entry again (a reindex after a crash) replaces its rows.
        m.record_attestation(&row(1, "sha256:e1"), &[digest(&a, "material", "dep")], &[], 3)
            .unwrap();
        let found = |d: &str, after: i64, limit: i64| -> Vec<(i64, String, String)> {
            m.search_digest(d, after, 10, limit)
                .unwrap()
                .into_iter()
                .map(|(_, r, d)| (r.log_index, d.role, d.name))
                .collect()
        };
        assert_eq!(
            found(&a, -1, 10),
            vec![
                (0, "subject".into(), "app".into()),
                (1, "material".into(), "dep".into())
            ]
        );
        assert_eq!(found(&b, -1, 10).len(), 1);
        assert!(found("sha256:cc", -1, 10).is_empty());
        // An envelope's digest finds its entry, last among the entry's hits.
        assert_eq!(
            found("sha256:e1", -1, 10),
            vec![(1, "envelope".into(), String::new())]
        );
        // Pages: cut after a position, never repeating or skipping a hit.
        let page = m.search_digest(&a, -1, 10, 1).unwrap();
        assert_eq!((page.len(), page[0].1.log_index), (1, 0));
        let rest = m.search_digest(&a, page[0].0, 10, 5).unwrap();
        assert_eq!(rest.iter().map(|h| h.1.log_index).collect::<Vec<_>>(), vec![1]);
        assert!(m.search_digest(&a, rest[0].0, 10, 5).unwrap().is_empty());
        // Below the bound only.
        assert_eq!(m.search_digest(&a, -1, 1, 10).unwrap().len(), 1);
        assert_eq!(m.envelope_index("sha256:e1").unwrap(), Some(1));
        assert_eq!(m.envelope_index("sha256:e2").unwrap(), None);
        assert_eq!(m.indexed_count().unwrap(), 2);
    }

    #[test]
    fn the_gaps_of_the_index_are_found_across_attestations_and_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let m = Meta::open(&dir.path().join("meta.db")).unwrap();
        assert_eq!(m.unindexed_below(3).unwrap(), vec![0, 1, 2]);
        m.record_attestation(&row(0, "sha256:e0"), &[], &[], 1).unwrap();
        m.record_attestation(&row(2, "sha256:e2"), &[], &[], 1).unwrap();
        m.record_certificate(3, "sha256:c3", "01", "run-3", 9).unwrap();
        m.record_attestation(&row(7, "sha256:e7"), &[], &[], 1).unwrap();
        assert_eq!(m.unindexed_below(6).unwrap(), vec![1, 4, 5]);
        assert_eq!(m.unindexed_below(9).unwrap(), vec![1, 4, 5, 6, 8]);
        assert_eq!(m.indexed_count().unwrap(), 4);
        assert_eq!(m.max_indexed().unwrap(), Some(7));
        assert!(m.is_indexed(3).unwrap() && !m.is_indexed(4).unwrap());
        assert_eq!(m.certificate("sha256:c3").unwrap(), Some((3, "run-3".into(), 9)));
        // The index writer's batch of certificates: same rows, same answers.
        let batch = CertificateRow {
            log_index: 8,
            digest: "sha256:c8".into(),
            serial: "02".into(),
            run: "run-8".into(),
            not_after: 10,
        };
        m.record_certificates(&[batch.clone(), batch]).unwrap();
        assert_eq!(m.certificate("sha256:c8").unwrap(), Some((8, "run-8".into(), 10)));
        assert_eq!(m.unindexed_below(9).unwrap(), vec![1, 4, 5, 6]);
    }

    #[test]
    fn an_earlier_search_index_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO settings VALUES ('origin', 'kept');
                 {EARLIER_SEARCH_TABLES}
                 INSERT INTO attestations VALUES (0, 'sha256:e0', 'wf', 'p', 'r', 'c', 'x', 'y', 1);
                 INSERT INTO digests VALUES ('sha256:aa', 0, 'subject', 'app');"
            ))
            .unwrap();
        }
        let m = Meta::open(&path).unwrap();
        assert_eq!(m.setting("origin").unwrap().as_deref(), Some("kept"));
        // Rebuilt from the log by the server's start-up reindex.
        assert_eq!(m.indexed_count().unwrap(), 0);
        assert!(m.search_digest("sha256:aa", -1, 9, 9).unwrap().is_empty());
        m.record_attestation(
            &row(0, "sha256:e0"),
            &[digest("sha256:aa", "subject", "app")],
            &[],
            2,
        )
        .unwrap();
        assert_eq!(m.search_digest("sha256:aa", -1, 9, 9).unwrap().len(), 1);
        drop(m);
        // A database already in the current form is left as it is.
        let m = Meta::open(&path).unwrap();
        assert_eq!(m.indexed_count().unwrap(), 1);
    }

    #[test]
    fn key_entries_decide_by_log_order_whatever_the_order_they_are_recorded_in() {
        let dir = tempfile::tempdir().unwrap();
        let m = Meta::open(&dir.path().join("meta.db")).unwrap();
        let pem = "-----BEGIN PUBLIC KEY-----\nk\n-----END PUBLIC KEY-----\n";
        // The revocation (index 5) recorded before the addition (index 2),
        // as a start-up applies revocations before the reindex adds keys.
        m.record_key_event(5, "wf", "k1", None, 20).unwrap();
        m.record_key_event(2, "wf", "k1", Some(pem), 10).unwrap();
        assert!(m.workflow_key("wf", "k1").unwrap().is_none());
        // Re-added later: trusted; replaying an old revocation changes nothing.
        m.record_key_event(9, "wf", "k1", Some(pem), 30).unwrap();
        m.record_key_event(5, "wf", "k1", None, 20).unwrap();
        assert_eq!(m.workflow_key("wf", "k1").unwrap().as_deref(), Some(pem));
        assert_eq!(m.workflow_keys("wf").unwrap().len(), 1);
        // Key entries count as indexed.
        assert_eq!(m.unindexed_below(10).unwrap(), vec![0, 1, 3, 4, 6, 7, 8]);
        assert!(m.is_indexed(9).unwrap());
    }

    #[test]
    fn a_run_state_is_replaced_only_over_the_version_read() {
        let dir = tempfile::tempdir().unwrap();
        let m = Meta::open(&dir.path().join("meta.db")).unwrap();
        assert_eq!(m.put_run_state("r", None, "{}").unwrap(), Ok(1));
        assert_eq!(m.put_run_state("r", None, "{}").unwrap(), Err(Some(1)));
        assert_eq!(m.put_run_state("r", Some(1), "{\"a\":1}").unwrap(), Ok(2));
        assert_eq!(m.put_run_state("r", Some(1), "{\"b\":1}").unwrap(), Err(Some(2)));
        assert_eq!(m.run_state("r").unwrap(), Some((2, "{\"a\":1}".to_owned())));
        assert_eq!(m.put_run_state("other", Some(1), "{}").unwrap(), Err(None));
    }
}
