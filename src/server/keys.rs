//! Workflow keys registered through the admin API, below HTTP (SPEC.md
//! §3.2, §15.5): every change is a `tally.dev/key/v1` entry, durable in the
//! log before it takes effect, so the log answers which keys were trusted
//! for a workflow at any index.

use std::sync::Arc;

use ledger_format::hash::sha256;
use ledger_format::key::{KeyAction, KeyEntry};

use crate::server::{unix_now, App};

/// Why a key change was not made.
#[derive(Debug, thiserror::Error)]
pub enum KeyChangeError {
    /// Not a key tally verifies with.
    #[error("{0}")]
    BadKey(String),
    /// A revocation of a key the workflow does not have registered.
    #[error("workflow `{workflow}` has no registered key {keyid}")]
    Unknown {
        /// The workflow.
        workflow: String,
        /// The key id asked for.
        keyid: String,
    },
    /// The log or the metadata could not be written (nothing changed).
    #[error("{0}")]
    Unavailable(String),
}

/// Appends `action` of `key_pem` for `workflow` by the admin token `by`,
/// and applies it once the entry is durable. Returns the key id and the
/// entry's log index.
pub async fn change(
    app: &Arc<App>,
    action: KeyAction,
    workflow: &str,
    key_pem: &str,
    by: &str,
) -> Result<(String, u64), KeyChangeError> {
    let key = crate::attest::dsse::PublicKey::from_pem(key_pem)
        .map_err(|e| KeyChangeError::BadKey(e.to_string()))?;
    let der = key.spki_der().map_err(KeyChangeError::BadKey)?;
    let keyid = sha256(&der).to_hex();
    let unavailable = |e: &dyn std::fmt::Display| KeyChangeError::Unavailable(e.to_string());
    if action == KeyAction::Revoke
        && app
            .meta
            .workflow_key(workflow, &keyid)
            .map_err(|e| unavailable(&e))?
            .is_none()
    {
        return Err(KeyChangeError::Unknown {
            workflow: workflow.to_owned(),
            keyid,
        });
    }
    let entry = KeyEntry {
        action,
        workflow: workflow.to_owned(),
        key_digest: sha256(&der),
        key_size: der.len() as u64,
        at: unix_now().max(0) as u64,
        by: by.to_owned(),
    };
    entry
        .validate()
        .map_err(|e| KeyChangeError::BadKey(e.to_string()))?;
    let appended = app
        .ledger
        .submit(entry.to_bytes(), vec![der])
        .map_err(|e| unavailable(&e))?
        .await
        .map_err(|_| unavailable(&"the log stopped"))?
        .map_err(|e| unavailable(&e))?;
    let pem = pem::encode(&pem::Pem::new(
        "PUBLIC KEY",
        key.spki_der().map_err(KeyChangeError::BadKey)?,
    ));
    let (a, index) = (app.clone(), appended.index);
    tokio::task::spawn_blocking(move || a.record_key_entry(index, &entry, Some(&pem)))
        .await
        .map_err(|e| unavailable(&e))?
        .map_err(|e| unavailable(&e))?;
    Ok((keyid, index))
}
