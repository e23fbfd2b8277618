//! Who is calling, below HTTP (SPEC.md §12.2, §15.6): the admin, a workflow
//! token, or a CI platform's OIDC ID token, and what each may do. The JSON
//! API (bearer tokens) and the console (session cookies) both ask here, so
//! both apply one authorization.

use std::collections::BTreeSet;
use std::sync::Arc;

use subtle::ConstantTimeEq as _;

use crate::identity::oidc::{admits, Claims, OidcError, Verifier};
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

/// Why an authenticated caller may not do something (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// What was refused, and to whom.
    pub message: String,
    /// What to do instead, when there is something.
    pub hint: Option<String>,
}

/// Why a credential does not authenticate anyone.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown, revoked, expired or invalid (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// An ID token that is not valid (HTTP 401).
    #[error("{0}")]
    InvalidIdToken(String),
    /// Something needed to decide is unavailable (HTTP 503): `what`, and
    /// the cause for the server's log.
    #[error("{what} is unavailable: {cause}")]
    Unavailable {
        /// What is unavailable.
        what: &'static str,
        /// Why (internal).
        cause: String,
        /// Seconds after which to retry.
        retry: u64,
    },
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

    /// Whether the caller may see and act for `workflow`.
    pub fn may(&self, workflow: &str) -> Result<(), Denied> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Workflow { workflows, .. } if workflows.iter().any(|w| w == workflow) => Ok(()),
            Principal::Workflow { id, .. } => Err(Denied {
                message: format!("token {id} is not allowed to act for workflow `{workflow}`"),
                hint: Some(
                    "use the token created for this workflow (tally token create --workflow …)".into(),
                ),
            }),
            Principal::Ci(c) if c.workflows.iter().any(|w| w == workflow) => Ok(()),
            Principal::Ci(c) => {
                let why = c
                    .refused
                    .iter()
                    .find(|(w, _)| w == workflow)
                    .map(|(_, why)| format!(": {why}"))
                    .unwrap_or_else(|| ": the workflow declares no identity for this issuer".into());
                Err(Denied {
                    message: format!(
                        "CI identity `{}` from {} is not allowed to act for workflow `{workflow}`{why}",
                        c.claims.subject, c.claims.issuer
                    ),
                    hint: Some("the workflow's [[workflows.identities]] in the contracts repository's workflows.toml say which CI identities may act for it".into()),
                })
            }
        }
    }

    /// Whether the caller is the admin.
    pub fn admin(&self) -> Result<(), Denied> {
        let message = match self {
            Principal::Admin => return Ok(()),
            Principal::Workflow { id, .. } => {
                format!("token {id} is a workflow token; this needs the admin token")
            }
            Principal::Ci(c) => format!("{} is a CI identity; this needs the admin token", c.id),
        };
        Err(Denied { message, hint: None })
    }
}

/// Who a secret authenticates: an ID token (a JWT) is verified against the
/// issuers the workflows declare; anything else is a tally token.
pub async fn authenticate(app: &App, secret: &str) -> Result<Principal, AuthError> {
    if Verifier::looks_like_jwt(secret) {
        return ci_caller(app, secret).await.map(Principal::Ci);
    }
    by_token_hash(app, &token_hash(secret))
}

/// Who a tally token authenticates, from its hash (what a console session
/// keeps): the admin, or a workflow token that is neither revoked nor
/// expired now.
pub fn by_token_hash(app: &App, hash: &[u8]) -> Result<Principal, AuthError> {
    let unknown = || AuthError::Unauthenticated("the token is not known to this server".into());
    if !app.admin_hash.is_empty() && bool::from(app.admin_hash.ct_eq(hash)) {
        return Ok(Principal::Admin);
    }
    let cached = app
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(hash)
        .cloned();
    let info = match cached {
        Some(i) => i,
        None => {
            let found = app.meta.token_by_hash(hash).map_err(|e| AuthError::Unavailable {
                what: "the metadata database",
                cause: e.to_string(),
                retry: 5,
            })?;
            let Some((info, stored)) = found else {
                return Err(unknown());
            };
            if !bool::from(stored.ct_eq(hash)) {
                return Err(unknown());
            }
            app.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(hash.to_vec(), info.clone());
            info
        }
    };
    let now = unix_now();
    if info.revoked_at.is_some() {
        return Err(AuthError::Unauthenticated(format!(
            "token {} was revoked",
            info.id
        )));
    }
    if info.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthError::Unauthenticated(format!(
            "token {} has expired",
            info.id
        )));
    }
    if info.last_used_at.is_none_or(|t| t < now - 60) {
        let _ = app.meta.touch_token(&info.id, now);
        if let Some(i) = app.tokens.lock().unwrap_or_else(|p| p.into_inner()).get_mut(hash) {
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
async fn ci_caller(app: &App, token: &str) -> Result<Arc<CiCaller>, AuthError> {
    let workflows = app.contracts.workflows().map_err(|e| AuthError::Unavailable {
        what: "the contracts repository",
        cause: e.to_string(),
        retry: 5,
    })?;
    let trusted: BTreeSet<String> = workflows
        .iter()
        .flat_map(|w| w.identities.iter().map(|i| i.issuer.clone()))
        .collect();
    let claims = app
        .oidc
        .verify(token, &trusted, unix_now())
        .await
        .map_err(|e| match e {
            OidcError::Invalid(m) => AuthError::InvalidIdToken(m),
            e @ OidcError::Unavailable { .. } => AuthError::Unavailable {
                what: "the OIDC issuer",
                cause: e.to_string(),
                retry: 10,
            },
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

/// Who may read a stored artifact (SPEC.md §12.7): the workflows that
/// stored it, and whether one of them is public.
#[derive(Debug, Clone)]
pub struct ArtifactReaders {
    /// Workflows that stored it (empty: no such artifact).
    pub owners: Vec<String>,
    /// Whether one of them is a public workflow (anyone may read).
    pub public: bool,
    /// Its size in bytes, as stored.
    pub size: Option<u64>,
}

impl ArtifactReaders {
    /// The readers of `digest` (`sha256:<hex>`).
    pub fn of(app: &App, digest: &str) -> Result<Self, crate::server::meta::MetaError> {
        let rows = app.meta.artifact_owners(digest)?;
        let size = rows.first().map(|(_, s)| (*s).max(0) as u64);
        let owners: Vec<String> = rows.into_iter().map(|(w, _)| w).collect();
        let public = owners
            .iter()
            .any(|o| app.cfg.artifacts.public_workflows.contains(o));
        Ok(ArtifactReaders { owners, public, size })
    }

    /// Whether `who` (`None`: anonymous) may read it: the admin, a caller
    /// acting for a workflow that stored it, anyone for a public one.
    pub fn admit(&self, who: Option<&Principal>) -> bool {
        if self.owners.is_empty() {
            return false;
        }
        if self.public {
            return true;
        }
        match who.map(Principal::workflows) {
            Some(None) => true,
            Some(Some(ws)) => self.owners.iter().any(|o| ws.contains(o)),
            None => false,
        }
    }
}
