//! Who is calling: bearer tokens (the admin's, or a workflow's) and what
//! each may do (SPEC.md §12.2). Every handler asks here first.

use axum::http::{header, HeaderMap, StatusCode};
use subtle::ConstantTimeEq as _;

use super::error::{ApiError, ApiResult};
use crate::server::{token_hash, unix_now, App};

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
    /// Who, for budgets and logs: the token id, or `admin`.
    pub fn id(&self) -> &str {
        match self {
            Principal::Admin => "admin",
            Principal::Workflow { id, .. } => id,
        }
    }

    /// Whether the caller may act for `workflow` (403 otherwise).
    pub fn may(&self, workflow: &str) -> ApiResult<()> {
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
    /// Whether the caller is the admin (403 otherwise).
    pub fn admin(&self) -> ApiResult<()> {
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
            let Some((info, stored)) = app.meta.token_by_hash(&hash).map_err(ApiError::meta)? else {
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
