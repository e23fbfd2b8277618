//! Who is calling: bearer tokens (the admin's, a workflow's, or a CI
//! platform's OIDC ID token) and what each may do (SPEC.md §12.2, §15.6).
//! Every handler asks here first.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use subtle::ConstantTimeEq as _;

use crate::identity::oidc::{admits, Claims, OidcError, Verifier};

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
    /// A CI pipeline authenticated by its platform's ID token.
    Ci(Arc<CiCaller>),
}

/// A verified ID token and the workflows whose declared identities admit it.
#[derive(Debug, PartialEq, Eq)]
pub struct CiCaller {
    /// `oidc:<iss>#<sub>`, for budgets and logs.
    pub id: String,
    /// The token's verified claims.
    pub claims: Arc<Claims>,
    /// Workflows it acts for.
    pub workflows: Vec<String>,
    /// Why each other workflow declaring this issuer refused it.
    pub refused: Vec<(String, String)>,
}

impl Principal {
    /// Who, for budgets and logs: the token id, or `admin`.
    pub fn id(&self) -> &str {
        match self {
            Principal::Admin => "admin",
            Principal::Workflow { id, .. } => id,
            Principal::Ci(c) => &c.id,
        }
    }

    /// The workflows the caller acts for; `None` for the admin (all).
    pub fn workflows(&self) -> Option<&[String]> {
        match self {
            Principal::Admin => None,
            Principal::Workflow { workflows, .. } => Some(workflows),
            Principal::Ci(c) => Some(&c.workflows),
        }
    }

    /// The verified ID token's claims, for a CI caller.
    pub fn ci_claims(&self) -> Option<&Arc<Claims>> {
        match self {
            Principal::Ci(c) => Some(&c.claims),
            _ => None,
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
            Principal::Ci(c) if c.workflows.iter().any(|w| w == workflow) => Ok(()),
            Principal::Ci(c) => {
                let why = c
                    .refused
                    .iter()
                    .find(|(w, _)| w == workflow)
                    .map(|(_, why)| format!(": {why}"))
                    .unwrap_or_else(|| ": the workflow declares no identity for this issuer".into());
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "CI identity `{}` from {} is not allowed to act for workflow `{workflow}`{why}",
                        c.claims.subject, c.claims.issuer
                    ),
                )
                .hint("the workflow's [[workflows.identities]] in the contracts repository's workflows.toml say which CI identities may act for it"))
            }
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
            Principal::Ci(c) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{} is a CI identity; this needs the admin token", c.id),
            )),
        }
    }
}

/// Who is calling, from the bearer token.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Principal> {
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
    if Verifier::looks_like_jwt(secret) {
        return ci_caller(app, secret).await.map(Principal::Ci);
    }
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

/// A CI caller from its ID token: verified against the issuers the
/// workflows at the contracts repository's head declare, then matched
/// against each workflow's identities.
async fn ci_caller(app: &App, token: &str) -> ApiResult<Arc<CiCaller>> {
    let workflows = app
        .contracts
        .workflows()
        .map_err(|e| ApiError::unavailable_because("the contracts repository", e, 5))?;
    let trusted: BTreeSet<String> = workflows
        .iter()
        .flat_map(|w| w.identities.iter().map(|i| i.issuer.clone()))
        .collect();
    let claims = app
        .oidc
        .verify(token, &trusted, unix_now())
        .await
        .map_err(|e| match e {
            OidcError::Invalid(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m)
                .hint("send the CI platform's ID token for audience `tally` (or a tally token)"),
            e @ OidcError::Unavailable { .. } => ApiError::unavailable_because("the OIDC issuer", e, 10),
        })?;
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for w in workflows.iter() {
        let mut why = None;
        for rule in w.identities.iter().filter(|i| i.issuer == claims.issuer) {
            match admits(rule, &claims) {
                Ok(()) => {
                    why = None;
                    admitted.push(w.name.clone());
                    break;
                }
                Err(m) => why = why.or(Some(m)),
            }
        }
        if let Some(m) = why {
            refused.push((w.name.clone(), m));
        }
    }
    Ok(Arc::new(CiCaller {
        id: format!("oidc:{}#{}", claims.issuer, claims.subject),
        claims,
        workflows: admitted,
        refused,
    }))
}
