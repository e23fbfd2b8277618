//! The HTTP API (SPEC.md §12): routes, authentication, handlers. Errors are
//! always `{error, message, hint}` JSON with the status that names them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ledger_format::entry::{ContractRevision, Entry};
use ledger_format::hash::{sha256, Hash};
use ledger_format::tile::{self, BundleId, TilePath, TILE_WIDTH};
use ledger_format::tlog_proof::TlogProof;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq as _;

use crate::attest::dsse::{Envelope, PublicKey, IN_TOTO_PAYLOAD_TYPE};
use crate::attest::runner::RunnerContext;
use crate::contract::store::StoreError;
use crate::server::meta::{AttestationRow, Run, TokenInfo};
use crate::server::{intake, new_secret, token_hash, unix_now, App};

/// An API error: status, machine code, message, hint.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    message: String,
    hint: Option<String>,
    retry_after: Option<u64>,
    details: Option<Value>,
}

impl ApiError {
    /// An error with a status, a machine code and a message.
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            message: message.into(),
            hint: None,
            retry_after: None,
            details: None,
        }
    }
    /// Adds what to do.
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
    /// Its machine code.
    pub fn code(&self) -> &'static str {
        self.error
    }
    fn details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }
    /// A server-side failure.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
    pub(crate) fn unavailable(message: impl Into<String>, retry: u64) -> Self {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(retry);
        e.hint("retry after the number of seconds in Retry-After")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "message": self.message, "hint": self.hint});
        if let Some(d) = self.details {
            body["details"] = d;
        }
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token.
    Admin,
    /// A workflow service token.
    Workflow {
        /// Token id.
        id: String,
        /// Workflows it acts for.
        workflows: Vec<String>,
    },
}

impl Principal {
    /// Whether the caller may act for `workflow` (403 otherwise).
    pub fn may_act(&self, workflow: &str) -> ApiResult<()> {
        self.may(workflow)
    }

    fn may(&self, workflow: &str) -> ApiResult<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Workflow { workflows, id } if workflows.iter().any(|w| w == workflow) => {
                let _ = id;
                Ok(())
            }
            Principal::Workflow { id, .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("token {id} is not allowed to act for workflow `{workflow}`"),
            )
            .hint("use the token created for this workflow (tally token create --workflow …)")),
        }
    }
    fn admin(&self) -> ApiResult<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Workflow { id, .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("token {id} is a workflow token; this needs the admin token"),
            )),
        }
    }
}

/// Who is calling, from the bearer token.
pub fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Principal> {
    let unauth = |m: &str| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m)
            .hint("send `Authorization: Bearer <token>` (TALLY_TOKEN for the CLI)")
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauth("this endpoint needs a token"));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauth("the Authorization header is not `Bearer <token>`"))?;
    let hash = token_hash(secret);
    if !app.admin_hash.is_empty() && bool::from(app.admin_hash.ct_eq(&hash)) {
        return Ok(Principal::Admin);
    }
    let cached = app
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&hash)
        .cloned();
    let info = match cached {
        Some(i) => i,
        None => {
            let Some((info, stored)) = app.meta.token_by_hash(&hash).map_err(ApiError::internal)? else {
                return Err(unauth("the token is not known to this server"));
            };
            if !bool::from(stored.ct_eq(&hash)) {
                return Err(unauth("the token is not known to this server"));
            }
            app.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash.clone(), info.clone());
            info
        }
    };
    let now = unix_now();
    if info.revoked_at.is_some() {
        return Err(unauth(&format!("token {} was revoked", info.id)));
    }
    if info.expires_at.is_some_and(|e| e <= now) {
        return Err(unauth(&format!("token {} has expired", info.id)));
    }
    if info.last_used_at.is_none_or(|t| t < now - 60) {
        let _ = app.meta.touch_token(&info.id, now);
        if let Some(i) = app
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&hash)
        {
            i.last_used_at = Some(now);
        }
    }
    Ok(Principal::Workflow {
        id: info.id,
        workflows: info.workflows,
    })
}

async fn read_json<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(T, Vec<u8>)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {ct:?} is not JSON"),
        )
        .hint("send Content-Type: application/json"));
    }
    let limit = app.cfg.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than {limit} bytes"),
        )
        .hint("the server's max_body_bytes setting bounds it")
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let v = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the body is not the expected JSON: {e}"),
        )
    })?;
    Ok((v, bytes.to_vec()))
}

/// The whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile_file))
        .route("/ledger.git/{*path}", get(git_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::server::openapi::document()) }),
        )
        .route("/api/v1/log", get(log_info))
        .route("/api/v1/proof/inclusion", get(proof_inclusion))
        .route("/api/v1/proof/consistency", get(proof_consistency))
        .route("/api/v1/entries/{index}", get(entry))
        .route("/api/v1/envelopes/{digest}", get(envelope))
        .route("/api/v1/search", get(search))
        .route("/api/v1/runs", post(create_run).get(list_runs))
        .route("/api/v1/runs/{id}", get(describe_run))
        .route("/api/v1/runs/{id}/reset", post(reset_run))
        .route("/api/v1/runs/{id}/attestation", post(push_attestation))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/workflows", get(list_workflows))
        .route("/api/v1/workflows/{name}/keys", post(add_key))
        .route("/api/v1/stats", get(stats))
        .route(
            "/api/v1/artifacts/{digest}",
            get(crate::server::artifacts::get).put(crate::server::artifacts::put),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
                .hint("GET /openapi.json lists them")
        })
        .with_state(app)
}

// ------------------------------------------------------------------ the log

async fn checkpoint(State(app): State<Arc<App>>) -> ApiResult<Response> {
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

/// The tree size of a signed checkpoint's text.
pub fn checkpoint_size(signed: &str) -> Option<u64> {
    let body = signed.split_once("\n\n")?.0;
    ledger_format::checkpoint::Checkpoint::parse(&format!("{body}\n"))
        .ok()
        .map(|c| c.size())
}

/// How many items (hashes, or entries for level `None`) the published tree
/// has in tile `index` of a level.
fn published_width(size: u64, level: Option<u8>, index: u64) -> u64 {
    let count = match level {
        None => size,
        Some(l) => size >> (8 * u32::from(l)),
    };
    count.saturating_sub(index * TILE_WIDTH).min(TILE_WIDTH)
}

async fn tile_file(State(app): State<Arc<App>>, Path(path): Path<String>) -> ApiResult<Response> {
    let full = format!("tile/{path}");
    let parsed = tile::parse_path(&full)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", e.to_string()))?;
    let size = app.ledger.sizes().published;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{full} is not in the published log"),
        )
    };
    let (level, index, width) = match parsed {
        TilePath::Tile(t) => (Some(t.level), t.index, u64::from(t.width)),
        TilePath::Entries(b) => (None, b.index, u64::from(b.width)),
    };
    let have = published_width(size, level, index);
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

async fn git_file(State(app): State<Arc<App>>, Path(path): Path<String>) -> ApiResult<Response> {
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
    let f = tokio::fs::File::open(&file).await.map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("ledger.git/{path} does not exist"),
        )
    })?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
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

async fn log_info(State(app): State<Arc<App>>) -> Json<Value> {
    let s = app.ledger.sizes();
    Json(json!({
        "origin": app.cfg.origin,
        "verifier_key": app.verifier_key,
        "sizes": {"sequenced": s.sequenced, "integrated": s.integrated, "published": s.published},
        "git": "/ledger.git",
    }))
}

async fn readyz(State(app): State<Arc<App>>) -> ApiResult<&'static str> {
    let s = app.ledger.sizes();
    if s.sequenced.saturating_sub(s.published) > app.ledger.max_backlog() * 9 / 10 {
        return Err(ApiError::unavailable("the log's publication backlog is full", 1));
    }
    Ok("ready\n")
}

async fn metrics(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let runs = app.meta.runs_by_status().map_err(ApiError::internal)?;
    let mirrored = if app.artifacts.stores_attestations() {
        Some(crate::server::mirror::next(&app).map_err(ApiError::internal)?)
    } else {
        None
    };
    let text = app.metrics.render(app.ledger.sizes(), &runs, mirrored);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: Option<u64>,
    leaf_hash: Option<String>,
    size: Option<u64>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn hash_param(s: &str) -> ApiResult<Hash> {
    let b = hex::decode(s.trim_start_matches("sha256:")).map_err(|_| bad(format!("{s:?} is not hex")))?;
    Hash::from_slice(&b).map_err(|e| bad(e.to_string()))
}

async fn proof_inclusion(
    State(app): State<Arc<App>>,
    q: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    // The proof is at the size of the checkpoint returned, unless a size is asked.
    let cp = app.ledger.checkpoint();
    let published = app.ledger.sizes().published;
    let cp_size = checkpoint_size(&cp).unwrap_or(published);
    let size = q.size.unwrap_or(cp_size);
    let index = match (q.index, &q.leaf_hash) {
        (Some(i), None) => i,
        (None, Some(h)) => {
            let h = hash_param(h)?;
            app.ledger.index_of(&h).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no published entry has that leaf hash",
                )
            })?
        }
        _ => return Err(bad("give exactly one of index or leaf_hash")),
    };
    if index >= size || size > cp_size.max(published) {
        let mut e = ApiError::new(
            StatusCode::NOT_FOUND,
            "not_published",
            format!("entry {index} at size {size} is not published yet (published size {published})"),
        )
        .hint("retry shortly: entries are published within seconds");
        e.retry_after = Some(1);
        return Err(e);
    }
    let ledger = app.ledger.clone();
    let proof = tokio::task::spawn_blocking(move || ledger.inclusion_proof(index, size))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| bad(e.to_string()))?;
    let mut out = json!({
        "index": index,
        "size": size,
        "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
    });
    if size == cp_size {
        out["checkpoint"] = cp.clone().into();
        out["tlog_proof"] = TlogProof {
            extra: None,
            index,
            proof,
            checkpoint: cp,
        }
        .to_text()
        .into();
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

async fn proof_consistency(
    State(app): State<Arc<App>>,
    q: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let new = q.new.unwrap_or(app.ledger.sizes().published);
    let ledger = app.ledger.clone();
    let proof = tokio::task::spawn_blocking(move || ledger.consistency_proof(q.old, new))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(json!({
        "old_size": q.old,
        "new_size": new,
        "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
    })))
}

async fn entry(State(app): State<Arc<App>>, Path(index): Path<String>) -> ApiResult<Response> {
    let index: u64 = index
        .parse()
        .map_err(|_| bad(format!("{index:?} is not a log index")))?;
    let ledger = app.ledger.clone();
    let e = tokio::task::spawn_blocking(move || ledger.entry(index))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], e).into_response())
}

async fn envelope(State(app): State<Arc<App>>, Path(digest): Path<String>) -> ApiResult<Response> {
    let h = hash_param(&digest)?;
    // Bodies are stored beside their entry; the index finds the entry.
    let index = app
        .meta
        .envelope_index(&format!("sha256:{}", h.to_hex()))
        .map_err(ApiError::internal)?;
    let ledger = app.ledger.clone();
    let body = tokio::task::spawn_blocking(move || match index {
        Some(i) => ledger.body(i as u64, &h),
        None => Ok(None),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no published envelope {digest}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    digest: Option<String>,
    workflow: Option<String>,
    contract_revision: Option<String>,
    limit: Option<i64>,
}

fn att_json(a: &AttestationRow) -> Value {
    json!({
        "log_index": a.log_index,
        "envelope_digest": a.envelope_digest,
        "workflow": a.workflow,
        "project": a.project,
        "run_id": a.run_id,
        "contract": {"name": a.contract_name, "commit": a.contract_commit, "blob": a.contract_blob},
        "created_at": a.created_at,
    })
}

async fn search(
    State(app): State<Arc<App>>,
    q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    // Complete up to where both the log is published and the index is
    // written (the index follows the acknowledgement by a few milliseconds;
    // wait for it briefly rather than answer short).
    let published = app
        .indexed
        .reach(app.ledger.sizes().published, Duration::from_secs(2))
        .await as i64;
    let results: Vec<Value> = if let Some(d) = &q.digest {
        let (alg, hex) = d
            .split_once(':')
            .ok_or_else(|| bad("digest must be <algorithm>:<hex>, e.g. sha256:…"))?;
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("{d:?} is not <algorithm>:<hex>")));
        }
        let d = format!("{alg}:{}", hex.to_ascii_lowercase());
        app.meta
            .search_digest(&d)
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|(a, _)| a.log_index < published)
            .take(limit as usize)
            .map(|(a, dr)| {
                let mut v = att_json(&a);
                v["role"] = dr.role.into();
                v["name"] = dr.name.into();
                v
            })
            .collect()
    } else if q.workflow.is_some() || q.contract_revision.is_some() {
        app.meta
            .search(q.workflow.as_deref(), q.contract_revision.as_deref(), limit)
            .map_err(ApiError::internal)?
            .iter()
            .filter(|a| a.log_index < published)
            .map(att_json)
            .collect()
    } else {
        return Err(bad("give digest, workflow or contract_revision"));
    };
    Ok(Json(json!({
        "published_size": published,
        "results": results,
    })))
}

// --------------------------------------------------------------------- runs

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    workflow: String,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    version: String,
    #[serde(default)]
    contract_revision: Option<String>,
    runner: RunnerContext,
}

fn store_error(workflow: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::UnknownWorkflow(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_workflow",
            format!("workflow `{workflow}` is not declared in the contracts repository's workflows.toml"),
        )
        .hint("ask SecOps to declare it by pull request"),
        StoreError::NotOnBranch { .. }
        | StoreError::Repo(crate::contract::repo::RepoError::UnknownRevision(_)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "contract_revision",
            e.to_string(),
        )
        .hint("pin a commit of the contracts repository's main branch, or pin none"),
        other => ApiError::unavailable(format!("the contracts repository: {other}"), 5),
    }
}

fn run_json(r: &Run) -> Value {
    serde_json::to_value(r).unwrap_or_default()
}

async fn create_run(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let who = authenticate(&app, &headers)?;
    let (req, _): (StartRun, _) = read_json(&app, &headers, body).await?;
    who.may(&req.workflow)?;
    let store = app.store.clone();
    let (wf, pinned) = (req.workflow.clone(), req.contract_revision.clone());
    let resolved = tokio::task::spawn_blocking(move || {
        let _ = store.refresh();
        let r = store.resolve(&wf, pinned.as_deref())?;
        let text = store.blob(&r.revision.blob)?;
        Ok::<_, StoreError>((r, text))
    })
    .await
    .map_err(ApiError::internal)?;
    let (resolved, text) = resolved.map_err(|e| store_error(&req.workflow, e))?;
    if let Some(p) = &req.project {
        if *p != resolved.workflow.project {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "project",
                format!(
                    "workflow `{}` belongs to project `{}`, not `{p}`",
                    req.workflow, resolved.workflow.project
                ),
            ));
        }
    }
    let c = &resolved.contract;
    if c.runner != "any" && c.runner != req.runner.kind {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "runner_mismatch",
            format!(
                "contract `{}` requires runner `{}` but this is `{}`",
                c.name, c.runner, req.runner.kind
            ),
        ));
    }
    app.remember_contract(&resolved.revision.blob, resolved.contract.clone());
    let now = unix_now();
    let mut rnd = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let run = Run {
        id: format!("run-{}", hex::encode(rnd)),
        workflow: req.workflow.clone(),
        project: resolved.workflow.project.clone(),
        version: req.version.clone(),
        status: "INITIALIZED".into(),
        contract_name: resolved.revision.name.clone(),
        contract_commit: resolved.revision.commit.clone(),
        contract_blob: resolved.revision.blob.clone(),
        runner_type: req.runner.kind.clone(),
        runner_url: req.runner.url.clone(),
        created_at: now,
        finished_at: None,
        reason: None,
        log_index: None,
        envelope_digest: None,
    };
    app.meta.insert_run(&run).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "run": run_json(&run),
            "expires_at": now + app.cfg.run_ttl_secs as i64,
            "contract": {
                "name": run.contract_name,
                "commit": run.contract_commit,
                "blob": run.contract_blob,
                "text": String::from_utf8_lossy(&text),
            },
        })),
    )
        .into_response())
}

fn find_run(app: &App, who: &Principal, id: &str) -> ApiResult<Run> {
    let run = app
        .meta
        .run(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_run", format!("no run {id}")))?;
    // A token of another workflow learns nothing, not even that the run exists.
    if who.may(&run.workflow).is_err() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_run",
            format!("no run {id}"),
        ));
    }
    let mut run = run;
    overlay_pending(app, &mut run);
    Ok(run)
}

/// A run appended whose row the index writer has not written yet is SUCCEEDED.
fn overlay_pending(app: &App, run: &mut Run) {
    if let Some(Some((index, digest))) = app.pending.lock().unwrap_or_else(|p| p.into_inner()).get(&run.id) {
        run.status = "SUCCEEDED".into();
        run.log_index = Some(*index);
        run.envelope_digest = Some(digest.clone());
    }
}

async fn describe_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let who = authenticate(&app, &headers)?;
    let run = find_run(&app, &who, &id)?;
    let mut v = run_json(&run);
    // Where the mirror put its attestation in the OCI store (SPEC.md §12.7).
    if let Some(i) = run.log_index {
        v["oci_attestations"] = json!(app.meta.oci_attestations(i).map_err(ApiError::internal)?);
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let who = authenticate(&app, &headers)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if let Some(w) = &q.workflow {
        who.may(w)?;
    }
    let status = q.status.as_deref().map(str::to_ascii_uppercase);
    let runs = app
        .meta
        .list_runs(
            q.workflow.as_deref(),
            status.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .map_err(ApiError::internal)?;
    let runs: Vec<Value> = runs
        .into_iter()
        .filter(|r| who.may(&r.workflow).is_ok())
        .map(|mut r| {
            overlay_pending(&app, &mut r);
            run_json(&r)
        })
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRun {
    trigger: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn reset_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let who = authenticate(&app, &headers)?;
    let (req, _): (ResetRun, _) = read_json(&app, &headers, body).await?;
    let run = find_run(&app, &who, &id)?;
    if app
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&run.id)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("run {id} is being pushed or was just accepted"),
        ));
    }
    let status = match req.trigger.as_str() {
        "failure" => "FAILED",
        "cancellation" => "CANCELLED",
        other => return Err(bad(format!("trigger {other:?} is not failure or cancellation"))),
    };
    if !app
        .meta
        .finish_run(&run.id, status, req.reason.as_deref(), unix_now())
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            format!("run {id} is {}, not in progress", run.status),
        ));
    }
    let run = find_run(&app, &who, &id)?;
    Ok(Json(run_json(&run)))
}

fn reject(app: &App, run: &Run, reason: &str, e: ApiError) -> ApiError {
    app.metrics.rejected(&run.workflow, reason);
    e
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushQuery {
    /// Seconds to wait for publication before answering 202 (0: answer as
    /// soon as the entry is durably sequenced); capped by the server's setting.
    wait: Option<u64>,
}

async fn push_attestation(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<PushQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<Response> {
    let received = Instant::now();
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let who = authenticate(&app, &headers)?;
    let mut run = find_run(&app, &who, &id)?;
    let now = unix_now();
    if run.status == "INITIALIZED" && run.created_at + app.cfg.run_ttl_secs as i64 <= now {
        let _ = app.meta.expire_runs(run.created_at + 1, now);
        run = find_run(&app, &who, &id)?;
    }
    if run.status != "INITIALIZED" {
        return Err(reject(
            &app,
            &run,
            "run_finished",
            ApiError::new(
                StatusCode::CONFLICT,
                "run_finished",
                format!("run {id} is {}; start a new run", run.status),
            ),
        ));
    }
    let (env, bytes): (Envelope, Vec<u8>) = match read_json(&app, &headers, body).await {
        Ok(x) => x,
        Err(e) => return Err(reject(&app, &run, e.error, e)),
    };
    let unprocessable = |reason: &'static str, message: String| {
        reject(
            &app,
            &run,
            reason,
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason, message),
        )
    };
    let keys = app.workflow_keys(&run.workflow).map_err(ApiError::internal)?;
    if keys.is_empty() {
        return Err(unprocessable(
            "no_key",
            format!("no public key is registered for workflow `{}`", run.workflow),
        )
        .hint(format!(
            "an operator runs `tally workflow key add --workflow {} --key <public key>`",
            run.workflow
        )));
    }
    let verified = env.verify(&keys).map_err(|e| {
        unprocessable(
            "signature",
            format!("the envelope's signature does not verify: {e}"),
        )
    })?;
    if verified.payload_type() != IN_TOTO_PAYLOAD_TYPE {
        return Err(unprocessable(
            "payload_type",
            format!(
                "payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE}",
                verified.payload_type()
            ),
        ));
    }
    let st = crate::attest::statement::View::parse(verified.payload()).map_err(|e| {
        unprocessable(
            "statement",
            format!("the payload is not an in-toto statement: {e}"),
        )
    })?;
    let mut problems = crate::cmd::attestation::statement_problems(&st);
    let contract = app
        .contract_by_blob(&run.contract_name, &run.contract_blob)
        .map_err(|e| ApiError::unavailable(format!("reading the run's contract: {e}"), 5))?;
    problems.extend(intake::violations(&contract, &run, &st));
    let digests = intake::digests(&st);
    if digests.len() > crate::server::meta::MAX_DIGESTS {
        problems.push(format!(
            "the statement names {} digests; the search index takes at most {} per attestation",
            digests.len(),
            crate::server::meta::MAX_DIGESTS
        ));
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(unprocessable(
            "contract_violation",
            format!(
                "the attestation does not satisfy contract `{}` @ {} ({n} problem(s)): {}",
                run.contract_name,
                run.contract_commit,
                problems.join("; ")
            ),
        )
        .details(json!({ "violations": problems }))
        .hint("tally attestation status shows what the contract requires"));
    }
    let s = app.ledger.sizes();
    if s.sequenced.saturating_sub(s.published) > app.ledger.max_backlog() * 9 / 10 {
        return Err(reject(
            &app,
            &run,
            "overload",
            ApiError::unavailable("the log is catching up; try again", 1),
        ));
    }
    // Claim the run: one attestation per run, even under concurrent pushes.
    {
        let mut p = app.pending.lock().unwrap_or_else(|p| p.into_inner());
        if p.contains_key(&run.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "run_finished",
                format!("run {id} is already being pushed"),
            ));
        }
        p.insert(run.id.clone(), None);
    }
    let digest = sha256(&bytes);
    let e = Entry {
        envelope_digest: digest,
        envelope_size: bytes.len() as u64,
        contract: ContractRevision {
            name: run.contract_name.clone(),
            commit: run.contract_commit.clone(),
            blob: run.contract_blob.clone(),
        },
        project: run.project.clone(),
        workflow: run.workflow.clone(),
        run: run.id.clone(),
    };
    let entry_bytes = e.to_bytes();
    let appended = match app.ledger.submit(entry_bytes.clone(), vec![bytes]) {
        Ok(rx) => rx
            .await
            .map_err(|_| ApiError::unavailable("the log stopped", 5))
            .and_then(|r| r.map_err(|e| ApiError::unavailable(format!("appending: {e}"), 5))),
        Err(e) => Err(ApiError::unavailable(format!("appending: {e}"), 5)),
    };
    let appended = match appended {
        Ok(a) => a,
        Err(err) => {
            app.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run.id);
            return Err(err);
        }
    };
    app.metrics.append.observe(received.elapsed().as_secs_f64());
    let index = appended.index;
    let row = AttestationRow {
        log_index: index as i64,
        envelope_digest: format!("sha256:{}", digest.to_hex()),
        workflow: run.workflow.clone(),
        project: run.project.clone(),
        run_id: run.id.clone(),
        contract_name: run.contract_name.clone(),
        contract_commit: run.contract_commit.clone(),
        contract_blob: run.contract_blob.clone(),
        created_at: now,
    };
    app.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run.id.clone(), Some((row.log_index, row.envelope_digest.clone())));
    app.index((row.clone(), digests));
    app.metrics.accepted(&run.workflow);

    let ledger = app.ledger.clone();
    let wait = Duration::from_secs(
        q.wait
            .unwrap_or(app.cfg.publish_wait_secs)
            .min(app.cfg.publish_wait_secs),
    );
    let published = if wait.is_zero() {
        app.ledger.sizes().published
    } else {
        tokio::task::spawn_blocking(move || ledger.wait_published(index, wait))
            .await
            .map_err(ApiError::internal)?
            .unwrap_or(0)
    };
    let entry = String::from_utf8_lossy(&entry_bytes);
    let mut answer = PushAnswer {
        run_id: &run.id,
        log_index: index,
        envelope_digest: &row.envelope_digest,
        entry: &entry,
        published: published > index,
        tlog_proof: None,
        hint: None,
    };
    if published > index {
        app.metrics.publish.observe(received.elapsed().as_secs_f64());
        let a = app.clone();
        answer.tlog_proof = Some(
            tokio::task::spawn_blocking(move || a.tlog_proof(index))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?,
        );
        return Ok(answer.respond(StatusCode::OK));
    }
    answer.hint = Some(format!(
        "GET /api/v1/proof/inclusion?index={index} once published"
    ));
    Ok(answer.respond(StatusCode::ACCEPTED))
}

/// The answer to an accepted push (SPEC.md §12.4).
#[derive(Serialize)]
struct PushAnswer<'a> {
    run_id: &'a str,
    log_index: u64,
    envelope_digest: &'a str,
    entry: &'a str,
    published: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tlog_proof: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl PushAnswer<'_> {
    /// Serialized straight into one right-sized buffer: the answer is on the
    /// path of every push, and growing axum's default buffer cost more than
    /// building it (BENCHMARKS.md, intake).
    fn respond(&self, status: StatusCode) -> Response {
        let cap = 256
            + self.entry.len()
            + self.tlog_proof.as_ref().map_or(0, |p| p.len() * 2)
            + self.hint.as_ref().map_or(0, String::len);
        let mut body = Vec::with_capacity(cap);
        match serde_json::to_writer(&mut body, self) {
            Ok(()) => (
                status,
                [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            Err(e) => ApiError::internal(e).into_response(),
        }
    }
}

// -------------------------------------------------------------------- admin

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    workflows: Vec<String>,
    #[serde(default)]
    expires_in_secs: Option<u64>,
    #[serde(default)]
    description: String,
}

fn known_workflows(app: &App) -> ApiResult<Vec<crate::contract::Workflow>> {
    app.store
        .workflows()
        .map_err(|e| ApiError::unavailable(format!("the contracts repository: {e}"), 5))
}

async fn create_token(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    authenticate(&app, &headers)?.admin()?;
    let (req, _): (CreateToken, _) = read_json(&app, &headers, body).await?;
    if req.workflows.is_empty() {
        return Err(bad("a token needs at least one workflow"));
    }
    let known = known_workflows(&app)?;
    for w in &req.workflows {
        if !known.iter().any(|k| &k.name == w) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_workflow",
                format!("workflow `{w}` is not declared in workflows.toml"),
            ));
        }
    }
    let now = unix_now();
    let mut rnd = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let secret = new_secret("tly_wf_");
    let info = TokenInfo {
        id: format!("tok-{}", hex::encode(rnd)),
        workflows: req.workflows.clone(),
        description: req.description.clone(),
        created_at: now,
        expires_at: req.expires_in_secs.map(|s| now + s as i64),
        last_used_at: None,
        revoked_at: None,
    };
    app.meta
        .create_token(&info, &token_hash(&secret))
        .map_err(ApiError::internal)?;
    let mut v = serde_json::to_value(&info).unwrap_or_default();
    v["token"] = secret.into();
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_tokens(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    authenticate(&app, &headers)?.admin()?;
    Ok(Json(
        json!({"tokens": app.meta.list_tokens().map_err(ApiError::internal)?}),
    ))
}

async fn revoke_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    authenticate(&app, &headers)?.admin()?;
    let revoked = app
        .meta
        .revoke_token(&id, unix_now())
        .map_err(ApiError::internal)?;
    app.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
    if !revoked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_token",
            format!("no token {id}"),
        ));
    }
    Ok(Json(json!({"id": id, "revoked": true})))
}

async fn list_workflows(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let who = authenticate(&app, &headers)?;
    let mut out = Vec::new();
    for w in known_workflows(&app)? {
        if who.may(&w.name).is_err() {
            continue;
        }
        let keys: Vec<String> = app
            .meta
            .workflow_keys(&w.name)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        out.push(json!({"name": w.name, "project": w.project, "contract": w.contract, "owners": w.owners, "keys": keys}));
    }
    Ok(Json(json!({"workflows": out})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddKey {
    public_key: String,
}

async fn add_key(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    authenticate(&app, &headers)?.admin()?;
    let (req, _): (AddKey, _) = read_json(&app, &headers, body).await?;
    if !known_workflows(&app)?.iter().any(|w| w.name == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_workflow",
            format!("workflow `{name}` is not declared in workflows.toml"),
        ));
    }
    PublicKey::from_pem(&req.public_key).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_key", e.to_string())
            .hint("a PEM P-256 or Ed25519 public key")
    })?;
    let keyid = crate::attest::signing::keyid_of_pem(&req.public_key)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_key", e))?;
    app.meta
        .add_workflow_key(&name, &keyid, &req.public_key, unix_now())
        .map_err(ApiError::internal)?;
    app.forget_keys(&name);
    Ok((
        StatusCode::CREATED,
        Json(json!({"workflow": name, "keyid": keyid})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    days: Option<i64>,
}

async fn stats(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    authenticate(&app, &headers)?.admin()?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let days = q.days.unwrap_or(30).clamp(1, 3650);
    let since = unix_now() - days * 86_400;
    let per_day = app.meta.runs_per_day(since).map_err(ApiError::internal)?;
    let wf = app.meta.workflow_stats(since).map_err(ApiError::internal)?;
    let rate = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let workflows: Vec<Value> = wf
        .iter()
        .map(|w| {
            let finished = w.succeeded + w.failed + w.cancelled + w.expired;
            json!({
                "workflow": w.workflow, "runs": w.runs, "succeeded": w.succeeded, "failed": w.failed,
                "cancelled": w.cancelled, "expired": w.expired, "in_progress": w.initialized,
                "success_rate": rate(w.succeeded, finished), "failure_rate": rate(w.failed + w.expired, finished),
                "mean_duration_s": w.mean_duration_s,
            })
        })
        .collect();
    let mut slowest = wf.clone();
    slowest.sort_by(|a, b| {
        b.mean_duration_s
            .unwrap_or(0.0)
            .total_cmp(&a.mean_duration_s.unwrap_or(0.0))
    });
    let mut failing = wf.clone();
    failing.sort_by_key(|w| std::cmp::Reverse(w.failed + w.expired));
    Ok(Json(json!({
        "days": days,
        "runs_per_day": per_day.iter().map(|(d, n, s)| json!({"day": d, "runs": n, "succeeded": s})).collect::<Vec<_>>(),
        "workflows": workflows,
        "slowest": slowest.iter().filter(|w| w.mean_duration_s.is_some()).take(5).map(|w| json!({"workflow": w.workflow, "mean_duration_s": w.mean_duration_s})).collect::<Vec<_>>(),
        "most_failing": failing.iter().filter(|w| w.failed + w.expired > 0).take(5).map(|w| json!({"workflow": w.workflow, "failed": w.failed + w.expired})).collect::<Vec<_>>(),
    })))
}
