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
    /// When there are more hits: the cursor that asks for the next page.
    pub next: Option<i64>,
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

/// Runs `q`: at most `limit` hits (clamped to 1..=10,000), in log order,
/// after the cursor `after` (the `next` of the previous page; none for the
/// first). A digest search's cursor is a [search
/// position](crate::server::meta::search_position), so a page may end
/// between two hits of one entry and the next starts with the rest; a
/// filtered search's is a log index.
pub async fn search(app: &App, q: Search<'_>, after: Option<i64>, limit: i64) -> Result<Found, SearchError> {
    let limit = limit.clamp(1, 10_000);
    let after = match after {
        None => -1,
        Some(a) if a >= 0 => a,
        Some(a) => {
            return Err(SearchError::Bad(format!(
                "after={a} is not a cursor of this search"
            )))
        }
    };
    // Complete up to where both the log is published and the index is
    // written (the index follows the acknowledgement by a few milliseconds;
    // wait for it briefly rather than answer short).
    let published = app
        .indexed
        .reach(app.ledger.sizes().published, Duration::from_secs(2))
        .await as i64;
    // One more than asked says whether there is a next page.
    let (mut hits, mut positions): (Vec<_>, Vec<i64>) = match q {
        Search::Digest(d) => {
            let d = normalize_digest(d)?;
            app.meta
                .search_digest(&d, after, published, limit + 1)?
                .into_iter()
                .map(|(p, a, dr)| ((a, Some(dr)), p))
                .unzip()
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
                .search(workflow, contract_revision, after, published, limit + 1)?
                .into_iter()
                .map(|a| {
                    let i = a.log_index;
                    ((a, None), i)
                })
                .unzip()
        }
    };
    let next = (hits.len() as i64 > limit).then(|| {
        hits.truncate(limit as usize);
        positions.truncate(limit as usize);
        positions[positions.len() - 1]
    });
    Ok(Found {
        published,
        hits,
        next,
    })
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
