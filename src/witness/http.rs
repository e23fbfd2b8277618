//! The witness's HTTP interface (C2SP tlog-witness): `POST /add-checkpoint`
//! and `GET /verifier-key`; statuses as the spec names them (SPEC.md §14.1).
//! `GET /checkpoints/<origin>` serves the last checkpoint cosigned for a log,
//! for monitors comparing it with what the log serves (SPEC.md §14.4).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{Refusal, Witness, MAX_BODY};

/// The witness's routes.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/verifier-key", get(verifier_key))
        .route("/checkpoints/{*origin}", get(latest))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(w)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let answer = tokio::task::spawn_blocking(move || w.add_checkpoint(&body, now)).await;
    let plain = "text/plain; charset=utf-8";
    match answer {
        Ok(Ok(lines)) => text(StatusCode::OK, plain, lines),
        Ok(Err(r)) => {
            let status = match &r {
                Refusal::Malformed(_) | Refusal::OldTooLarge { .. } => StatusCode::BAD_REQUEST,
                Refusal::UnknownLog(_) => StatusCode::NOT_FOUND,
                Refusal::Signature(_) => StatusCode::FORBIDDEN,
                Refusal::Conflict(size) => {
                    return text(StatusCode::CONFLICT, "text/x.tlog.size", format!("{size}\n"))
                }
                Refusal::Inconsistent(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Refusal::Storage(_) => {
                    tracing::error!(error = %r, "witness state not written; nothing cosigned");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            text(status, plain, format!("{r}\n"))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, plain, format!("{e}\n")),
    }
}

async fn verifier_key(State(w): State<Arc<Witness>>) -> Response {
    text(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        format!("{}\n", w.verifier_key()),
    )
}

async fn latest(State(w): State<Arc<Witness>>, Path(origin): Path<String>) -> Response {
    match w.latest(&origin) {
        Some(note) => text(StatusCode::OK, "text/plain; charset=utf-8", note),
        None => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("no checkpoint of {origin:?} cosigned here\n"),
        ),
    }
}
