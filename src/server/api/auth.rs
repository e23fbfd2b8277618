//! Who is calling, from the `Authorization: Bearer` header; the decision is
//! below HTTP (`server::auth`), here it meets status codes.

use axum::http::{header, HeaderMap, StatusCode};

use super::error::{ApiError, ApiResult};
use crate::server::auth::{self, AuthError, Denied};
use crate::server::App;

pub use crate::server::auth::Principal;

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        let e = ApiError::new(StatusCode::FORBIDDEN, "forbidden", d.message);
        match d.hint {
            Some(h) => e.hint(h),
            None => e,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(m) => unauthenticated(&m),
            AuthError::InvalidIdToken(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m)
                .hint("send the CI platform's ID token for audience `tally` (or a tally token)"),
            AuthError::Unavailable { what, cause, retry } => {
                ApiError::unavailable_because(what, cause, retry)
            }
        }
    }
}

fn unauthenticated(m: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m)
        .hint("send `Authorization: Bearer <token>` (TALLY_TOKEN for the CLI)")
}

/// Who is calling, from the bearer token.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Principal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthenticated("this endpoint needs a token"));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer <token>`"))?;
    Ok(auth::authenticate(app, secret).await?)
}
