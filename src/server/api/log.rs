//! The log's public endpoints (SPEC.md §12.3): the checkpoint, tiles and
//! entry bundles (C2SP tlog-tiles), the ledger's git repository (dumb HTTP),
//! proofs, entries, envelopes, search, health and metrics. No token needed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_format::tile::{self, BundleId, TilePath};
use ledger_format::tlog_proof::TlogProof;
use serde::Deserialize;

use super::body::{hash_param, query};
use super::error::{ApiError, ApiResult};
use crate::server::meta::AttestationRow;
use crate::server::search::{self, Search, SearchError};
use crate::server::App;
use crate::wire;

pub(super) async fn checkpoint(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let cp = app.ledger.checkpoint();
    if cp.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the log has no checkpoint yet",
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        cp,
    )
        .into_response())
}

pub(super) async fn tile_file(State(app): State<Arc<App>>, Path(path): Path<String>) -> ApiResult<Response> {
    let full = format!("tile/{path}");
    let parsed = tile::parse_path(&full)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.to_string()))?;
    let size = app.ledger.sizes().published;
    let not_found = || ApiError::not_found(format!("{full} is not in the published log"));
    let (level, index, width) = match parsed {
        TilePath::Tile(t) => (Some(t.level), t.index, u64::from(t.width)),
        TilePath::Entries(b) => (None, b.index, u64::from(b.width)),
    };
    let have = u64::from(match level {
        Some(l) => tile::width_at(tile::level_count(size, l), index),
        None => tile::width_at(size, index),
    });
    if have == 0 || width > have {
        return Err(not_found());
    }
    // The stored file: the full tile, or the partial of exactly the published size.
    let stored = match level {
        Some(l) => {
            let mut t = tile::TileId::full(l, index);
            t.width = have as u16;
            t.path()
        }
        None => BundleId {
            index,
            width: have as u16,
        }
        .path(),
    };
    let ledger = app.ledger.clone();
    let bytes = tokio::task::spawn_blocking(move || ledger.read_published(&stored))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    // A narrower partial is a prefix of the stored one.
    let body = if width == have {
        bytes
    } else if level.is_some() {
        bytes[..(width as usize) * 32].to_vec()
    } else {
        let b = BundleId {
            index,
            width: have as u16,
        };
        let entries = tile::decode_bundle(b, &bytes).map_err(ApiError::internal)?;
        tile::encode_bundle(&entries[..width as usize]).map_err(ApiError::internal)?
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response())
}

pub(super) async fn git_file(State(app): State<Arc<App>>, Path(path): Path<String>) -> ApiResult<Response> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_');
    let allowed = path == "HEAD" || path == "info/refs" || path.starts_with("objects/");
    if !allowed
        || !path.chars().all(ok_char)
        || path.split('/').any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "not a file of the ledger repository",
        ));
    }
    let file = app.ledger.git_dir().join(&path);
    let missing = || ApiError::not_found(format!("ledger.git/{path} is not a file of the repository"));
    let f = tokio::fs::File::open(&file).await.map_err(|_| missing())?;
    // A directory opens too (and reads as an error mid-stream): only files.
    let meta = f.metadata().await.map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let len = meta.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 << 10);
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let immutable = path.starts_with("objects/") && !path.starts_with("objects/info/");
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    Ok(r)
}

pub(super) async fn log_info(State(app): State<Arc<App>>) -> Json<wire::LogInfo> {
    let s = app.ledger.sizes();
    Json(wire::LogInfo {
        origin: app.cfg.origin.clone(),
        verifier_key: app.verifier_key.clone(),
        sizes: wire::Sizes {
            sequenced: s.sequenced,
            integrated: s.integrated,
            published: s.published,
        },
        git: "/ledger.git".into(),
        verdict_key: app.verdict_key.public_pem().to_owned(),
    })
}

pub(super) async fn readyz(State(app): State<Arc<App>>) -> ApiResult<&'static str> {
    if let Some(why) = app.ledger.fault() {
        // Logged when it started; the probe says only that it lasts.
        tracing::debug!(reason = %why, "not ready");
        return Err(ApiError::unavailable(
            "the log cannot append or publish now (see the server's log); it retries by itself",
            5,
        ));
    }
    let s = app.ledger.sizes();
    if s.sequenced.saturating_sub(s.published) > app.ledger.max_backlog() * 9 / 10 {
        return Err(ApiError::unavailable("the log's publication backlog is full", 1));
    }
    if app.ledger.witnessing().is_some_and(|w| w.holding) {
        return Err(ApiError::unavailable(
            "the log holds its latest checkpoint back until its witness quorum cosigns it",
            5,
        ));
    }
    Ok("ready\n")
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let runs = app.meta.runs_by_status().map_err(ApiError::meta)?;
    if !app.integrations.is_empty() {
        // Every configured integration's three states, 0 when it has none
        // (a gauge left at its last count would lie once the outbox drains).
        let counts = app.meta.delivery_counts().map_err(ApiError::meta)?;
        let mut names: Vec<&str> = app.integrations.configs().map(|c| c.name.as_str()).collect();
        names.extend(counts.iter().map(|(n, _, _)| n.as_str()));
        names.sort_unstable();
        names.dedup();
        let all: Vec<(String, String, i64)> = names
            .iter()
            .flat_map(|n| {
                ["pending", "delivered", "failed"].map(|state| {
                    let k = counts
                        .iter()
                        .find(|(i, s, _)| i == n && s == state)
                        .map_or(0, |(_, _, k)| *k);
                    ((*n).to_owned(), state.to_owned(), k)
                })
            })
            .collect();
        app.metrics.set_outbox(&all);
    }
    let mirrored = if app.artifacts.stores_attestations() {
        Some(crate::server::mirror::next(&app).map_err(ApiError::internal)?)
    } else {
        None
    };
    let witnessing = app
        .ledger
        .witnessing()
        .map(|state| crate::server::metrics::WitnessGauges {
            state,
            witnesses: app.cosigner.as_ref().map(|c| c.status()).unwrap_or_default(),
        });
    let text = app
        .metrics
        .render(app.ledger.sizes(), &runs, mirrored, witnessing);
    Ok((
        [(header::CONTENT_TYPE, crate::server::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InclusionQuery {
    index: Option<u64>,
    leaf_hash: Option<String>,
    size: Option<u64>,
}

pub(super) async fn proof_inclusion(
    State(app): State<Arc<App>>,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<wire::InclusionProof>> {
    let q = query(q)?;
    // The proof is at the size of the checkpoint returned, unless a size is asked.
    let cp = app.ledger.checkpoint();
    let published = app.ledger.sizes().published;
    let cp_size = crate::server::checkpoint_size(&cp).unwrap_or(published);
    let size = q.size.unwrap_or(cp_size);
    let index = match (q.index, &q.leaf_hash) {
        (Some(i), None) => i,
        (None, Some(h)) => {
            let h = hash_param(h)?;
            app.ledger
                .index_of(&h)
                .ok_or_else(|| ApiError::not_found("no published entry has that leaf hash"))?
        }
        _ => return Err(ApiError::bad("give exactly one of index or leaf_hash")),
    };
    if index >= size || size > cp_size.max(published) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_published",
            format!("entry {index} at size {size} is not published yet (published size {published})"),
        )
        .hint("retry shortly: entries are published within seconds")
        .retry_after(1));
    }
    let ledger = app.ledger.clone();
    let proof = tokio::task::spawn_blocking(move || ledger.inclusion_proof(index, size))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let mut out = wire::InclusionProof {
        index,
        size,
        proof: proof.iter().map(|h| h.to_hex()).collect(),
        checkpoint: None,
        tlog_proof: None,
    };
    if size == cp_size {
        out.checkpoint = Some(cp.clone());
        out.tlog_proof = Some(
            TlogProof {
                extra: None,
                index,
                proof,
                checkpoint: cp,
            }
            .to_text(),
        );
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

pub(super) async fn proof_consistency(
    State(app): State<Arc<App>>,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<wire::ConsistencyProof>> {
    let q = query(q)?;
    let new = q.new.unwrap_or(app.ledger.sizes().published);
    let ledger = app.ledger.clone();
    let proof = tokio::task::spawn_blocking(move || ledger.consistency_proof(q.old, new))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(wire::ConsistencyProof {
        old_size: q.old,
        new_size: new,
        proof: proof.iter().map(|h| h.to_hex()).collect(),
    }))
}

/// `GET /api/v1/ca`: the CA's certificate then its issuers, then the CA
/// certificates used before a rotation (PEM): what a verifier of keyless
/// signatures pins (`tally verify --ca`).
pub(super) async fn ca(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        app.ca_bundle.clone(),
    )
        .into_response()
}

pub(super) async fn entry(State(app): State<Arc<App>>, Path(index): Path<String>) -> ApiResult<Response> {
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad(format!("{index:?} is not a log index")))?;
    let ledger = app.ledger.clone();
    let e = tokio::task::spawn_blocking(move || ledger.entry(index))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], e).into_response())
}

pub(super) async fn envelope(State(app): State<Arc<App>>, Path(digest): Path<String>) -> ApiResult<Response> {
    let h = hash_param(&digest)?;
    // Bodies are stored beside their entry; the index finds the entry.
    let index = app
        .meta
        .envelope_index(&format!("sha256:{}", h.to_hex()))
        .map_err(ApiError::meta)?;
    let ledger = app.ledger.clone();
    let body = tokio::task::spawn_blocking(move || match index {
        Some(i) => ledger.body(i as u64, &h),
        None => Ok(None),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::not_found(format!("no published envelope {digest}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    digest: Option<String>,
    workflow: Option<String>,
    contract_revision: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
}

fn hit(a: AttestationRow, found: Option<crate::server::meta::DigestRow>) -> wire::SearchHit {
    let (role, name) = match found {
        Some(d) => (Some(d.role), Some(d.name)),
        None => (None, None),
    };
    wire::SearchHit {
        log_index: a.log_index,
        envelope_digest: a.envelope_digest,
        workflow: a.workflow,
        project: a.project,
        run_id: a.run_id,
        contract: a.contract,
        created_at: a.created_at,
        role,
        name,
    }
}

pub(super) async fn search(
    State(app): State<Arc<App>>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<wire::SearchAnswer>> {
    let q = query(q)?;
    let what = match &q.digest {
        Some(d) => Search::Digest(d),
        None => Search::Filter {
            workflow: q.workflow.as_deref(),
            contract_revision: q.contract_revision.as_deref(),
        },
    };
    let found = search::search(&app, what, q.after, q.limit.unwrap_or(1000))
        .await
        .map_err(|e| match e {
            SearchError::Bad(m) => ApiError::bad(m),
            SearchError::Meta(e) => ApiError::meta(e),
        })?;
    Ok(Json(wire::SearchAnswer {
        published_size: found.published,
        results: found.hits.into_iter().map(|(a, d)| hit(a, d)).collect(),
        next: found.next,
    }))
}
