//! Searching the log's index (SPEC.md §12): by a digest (subject, material
//! or envelope), or by workflow and contract revision. The answer is
//! complete up to `published`: the published size the index has caught up
//! with. Below HTTP: the API and the console both answer from here.

use std::time::Duration;

use crate::server::meta::{AttestationRow, DigestRow, MetaError};
use crate::server::App;

/// What to look for.
#[derive(Debug, Clone, Copy)]
pub enum Search<'a> {
    /// `<algorithm>:<hex>`, any case.
    Digest(&'a str),
    /// Attestations of a workflow and/or checked against a contract revision.
    Filter {
        /// Workflow name.
        workflow: Option<&'a str>,
        /// Contract revision (commit).
        contract_revision: Option<&'a str>,
    },
}

/// The hits, and the log size below which they are complete.
#[derive(Debug)]
pub struct Found {
    /// Entries below this index are all searched.
    pub published: i64,
    /// The attestations found, with the digest's role and name for a digest search.
    pub hits: Vec<(AttestationRow, Option<DigestRow>)>,
}

/// Why a search has no answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The question is malformed.
    #[error("{0}")]
    Bad(String),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Runs `q`, at most `limit` hits (clamped to 1..=10,000).
pub async fn search(app: &App, q: Search<'_>, limit: i64) -> Result<Found, SearchError> {
    let limit = limit.clamp(1, 10_000);
    // Complete up to where both the log is published and the index is
    // written (the index follows the acknowledgement by a few milliseconds;
    // wait for it briefly rather than answer short).
    let published = app
        .indexed
        .reach(app.ledger.sizes().published, Duration::from_secs(2))
        .await as i64;
    let hits = match q {
        Search::Digest(d) => {
            let d = normalize_digest(d)?;
            app.meta
                .search_digest(&d)?
                .into_iter()
                .filter(|(a, _)| a.log_index < published)
                .take(limit as usize)
                .map(|(a, dr)| (a, Some(dr)))
                .collect()
        }
        Search::Filter {
            workflow,
            contract_revision,
        } => {
            if workflow.is_none() && contract_revision.is_none() {
                return Err(SearchError::Bad(
                    "give digest, workflow or contract_revision".into(),
                ));
            }
            app.meta
                .search(workflow, contract_revision, limit)?
                .into_iter()
                .filter(|a| a.log_index < published)
                .map(|a| (a, None))
                .collect()
        }
    };
    Ok(Found { published, hits })
}

/// `<algorithm>:<hex>` with the hex in lowercase, or why not.
pub fn normalize_digest(d: &str) -> Result<String, SearchError> {
    let (alg, hex) = d
        .trim()
        .split_once(':')
        .ok_or_else(|| SearchError::Bad("digest must be <algorithm>:<hex>, e.g. sha256:…".into()))?;
    if alg.is_empty() || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SearchError::Bad(format!("{d:?} is not <algorithm>:<hex>")));
    }
    Ok(format!("{alg}:{}", hex.to_ascii_lowercase()))
}
