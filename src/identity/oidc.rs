//! OIDC workload identity (SPEC.md §15.6): a CI platform's ID token (GitHub
//! Actions, GitLab CI, or any OIDC issuer) stands in for a tally token.
//! [`Verifier::verify`] checks its signature against the issuer's JWKS
//! (discovered from `/.well-known/openid-configuration`, cached, fetched
//! again on an unknown `kid`), its `iss`, `exp` and `nbf`; [`admits`]
//! matches its audience, subject and claims against a workflow's declared
//! [`CiIdentity`]; [`fulcio_identity`] maps its claims to the certificate
//! extensions Fulcio writes for the same platform.
//!
//! Only issuers some workflow declares are ever contacted: a token naming
//! any other issuer is refused before any network call.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::contract::{anchored, issuer_ok, CiIdentity};
use crate::identity::fulcio::Identity;

/// Clock skew accepted on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: u64 = 60;
/// The JWKS of an issuer is fetched again after this long.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` fetches the JWKS again at most this often per issuer, so
/// tokens with made-up key ids cannot turn the server into a fetch loop.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
/// The largest discovery document or JWKS read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The longest token read (GitHub's are ~1.5 KB).
pub const MAX_TOKEN: usize = 16 * 1024;
/// Verified tokens remembered (by digest) until they expire.
const CACHE_TOKENS: usize = 4096;
/// The asymmetric algorithms accepted. `none` and the HMAC family never are:
/// an issuer's public key is public.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The token is not one tally accepts (format, algorithm, signature,
    /// time, issuer): 401.
    #[error("{0}")]
    Invalid(String),
    /// The issuer could not be asked for its keys: 503.
    #[error("the OIDC issuer {issuer} could not be reached for its keys: {cause}")]
    Unavailable {
        /// The issuer.
        issuer: String,
        /// What failed.
        cause: String,
    },
}

/// The verified claims of an ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud` (a string or a list in the token).
    pub audience: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires: i64,
    /// Every claim, as the token carries it.
    pub all: Map<String, Value>,
}

impl Claims {
    /// A string claim.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(Value::as_str)
    }

    /// A claim as text: strings as they are, numbers and booleans printed
    /// (GitLab and GitHub send some ids as strings, some issuers as numbers).
    pub fn text(&self, name: &str) -> Option<String> {
        match self.all.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

struct IssuerKeys {
    keys: JwkSet,
    fetched: Instant,
}

/// Checks ID tokens; one per server, shared by every request.
pub struct Verifier {
    http: reqwest::Client,
    keys: Mutex<HashMap<String, Arc<IssuerKeys>>>,
    /// One fetch at a time: a burst of tokens with a new `kid` fetches once.
    fetching: tokio::sync::Mutex<()>,
    verified: Mutex<HashMap<[u8; 32], Arc<Claims>>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// A verifier with no keys yet.
    pub fn new() -> Verifier {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Verifier {
            http,
            keys: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `bearer` has the shape of a JWT (three base64url parts), as
    /// opposed to a tally token.
    pub fn looks_like_jwt(bearer: &str) -> bool {
        bearer.split('.').count() == 3
            && bearer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    }

    /// The verified claims of `token`, whose issuer must be in `trusted`,
    /// at Unix time `now`.
    pub async fn verify(
        &self,
        token: &str,
        trusted: &BTreeSet<String>,
        now: i64,
    ) -> Result<Arc<Claims>, OidcError> {
        let invalid = |m: String| OidcError::Invalid(m);
        if token.len() > MAX_TOKEN {
            return Err(invalid(format!("the ID token is longer than {MAX_TOKEN} bytes")));
        }
        let digest = ledger_format::hash::sha256(token.as_bytes()).0;
        if let Some(c) = self.lock_verified().get(&digest).cloned() {
            if c.expires + LEEWAY as i64 > now {
                return Ok(c);
            }
        }
        let (alg, kid) = header(token)?;
        let unverified: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| invalid(format!("the ID token's claims do not decode: {e}")))?;
        let Some(iss) = unverified.get("iss").and_then(Value::as_str).map(str::to_owned) else {
            return Err(invalid("the ID token has no `iss`".into()));
        };
        if !trusted.contains(&iss) {
            return Err(invalid(format!(
                "the ID token's issuer `{iss}` is not trusted by any workflow (workflows.toml declares none with this issuer)"
            )));
        }
        let jwk = self.key(&iss, kid.as_deref(), alg).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| {
            invalid(format!(
                "the issuer's key `{}` is not usable: {e}",
                kid.clone().unwrap_or_default()
            ))
        })?;
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        v.validate_aud = false; // per workflow identity, in `admits`
        v.set_issuer(&[iss.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::ExpiredSignature => "the ID token has expired".to_owned(),
                K::ImmatureSignature => "the ID token is not valid yet (`nbf`)".to_owned(),
                K::InvalidSignature => {
                    "the ID token's signature does not verify with the issuer's key".to_owned()
                }
                K::InvalidIssuer => "the ID token's `iss` does not match".to_owned(),
                K::MissingRequiredClaim(c) => format!("the ID token has no `{c}`"),
                K::InvalidAlgorithm => format!("the ID token's alg {alg:?} does not fit the issuer's key"),
                _ => format!("the ID token does not verify: {e}"),
            })
        })?;
        let all = data.claims;
        if let Some(iat) = all.get("iat").and_then(Value::as_i64) {
            if iat > now + LEEWAY as i64 {
                return Err(invalid("the ID token was issued in the future (`iat`)".into()));
            }
        }
        let subject = all
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the ID token's `sub` is not a string".into()))?
            .to_owned();
        let audience = match all.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => {
                return Err(invalid(
                    "the ID token's `aud` is neither a string nor a list".into(),
                ))
            }
        };
        let expires = all
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid("the ID token's `exp` is not an integer".into()))?;
        let claims = Arc::new(Claims {
            issuer: iss,
            subject,
            audience,
            expires,
            all,
        });
        let mut cache = self.lock_verified();
        if cache.len() >= CACHE_TOKENS {
            cache.retain(|_, c| c.expires + LEEWAY as i64 > now);
            if cache.len() >= CACHE_TOKENS {
                cache.clear();
            }
        }
        cache.insert(digest, claims.clone());
        Ok(claims)
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Claims>>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, issuer: &str) -> Option<Arc<IssuerKeys>> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(issuer)
            .cloned()
    }

    /// The issuer's key for `kid` (or its only key when the token names
    /// none), fetching the JWKS when it is missing, old, or lacks `kid`.
    async fn key(&self, issuer: &str, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, OidcError> {
        let find = |set: &IssuerKeys| -> Option<Jwk> {
            match kid {
                Some(k) => set.keys.find(k).cloned(),
                None if set.keys.keys.len() == 1 => set.keys.keys.first().cloned(),
                None => None,
            }
        };
        let fresh = |set: &IssuerKeys| set.fetched.elapsed() < KEYS_TTL;
        if let Some(set) = self.cached(issuer) {
            if fresh(&set) {
                if let Some(k) = find(&set) {
                    return check_use(k, alg);
                }
            }
        }
        let _one = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let cached = self.cached(issuer);
        if let Some(set) = &cached {
            if let Some(k) = find(set).filter(|_| fresh(set)) {
                return check_use(k, alg);
            }
            if set.fetched.elapsed() < REFETCH_AFTER {
                return Err(unknown_kid(issuer, kid));
            }
        }
        match self.fetch(issuer).await {
            Ok(keys) => {
                let set = Arc::new(IssuerKeys {
                    keys,
                    fetched: Instant::now(),
                });
                self.keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(issuer.to_owned(), set.clone());
                find(&set).map_or_else(|| Err(unknown_kid(issuer, kid)), |k| check_use(k, alg))
            }
            // An issuer briefly down does not stop pipelines whose key is known.
            Err(e) => match cached.as_deref().and_then(find) {
                Some(k) => check_use(k, alg),
                None => Err(e),
            },
        }
    }

    /// The issuer's JWKS, through its discovery document.
    async fn fetch(&self, issuer: &str) -> Result<JwkSet, OidcError> {
        let unavailable = |cause: String| OidcError::Unavailable {
            issuer: issuer.to_owned(),
            cause,
        };
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Value = serde_json::from_slice(&self.get(&discovery_url).await.map_err(unavailable)?)
            .map_err(|e| unavailable(format!("{discovery_url}: not JSON: {e}")))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(unavailable(format!(
                "{discovery_url} names issuer {:?}, not `{issuer}`",
                doc.get("issuer")
            )));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| unavailable(format!("{discovery_url} has no `jwks_uri`")))?;
        issuer_ok(jwks_uri).map_err(|m| unavailable(format!("jwks_uri `{jwks_uri}`: {m}")))?;
        serde_json::from_slice(&self.get(jwks_uri).await.map_err(unavailable)?)
            .map_err(|e| unavailable(format!("{jwks_uri}: not a JWK set: {e}")))
    }

    /// A bounded GET.
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut r = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn unknown_kid(issuer: &str, kid: Option<&str>) -> OidcError {
    OidcError::Invalid(match kid {
        Some(k) => format!("the ID token's key id `{k}` is not in the JWKS of {issuer}"),
        None => format!("the ID token names no key id (`kid`) and {issuer} publishes several keys"),
    })
}

/// A JWK whose declared algorithm (when it declares one) is the token's.
fn check_use(jwk: Jwk, alg: Algorithm) -> Result<Jwk, OidcError> {
    if let Some(a) = jwk.common.key_algorithm {
        if format!("{a:?}") != format!("{alg:?}") {
            return Err(OidcError::Invalid(format!(
                "the ID token is signed with {alg:?} but the issuer's key is for {a:?}"
            )));
        }
    }
    Ok(jwk)
}

/// The token's algorithm and key id, refusing `none` and HMAC by name
/// before anything else reads the token.
fn header(token: &str) -> Result<(Algorithm, Option<String>), OidcError> {
    let invalid = |m: String| OidcError::Invalid(m);
    let first = token.split('.').next().unwrap_or_default();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, first)
        .map_err(|_| invalid("the ID token's header is not base64url".into()))?;
    let h: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| invalid("the ID token's header is not a JSON object".into()))?;
    let alg = h.get("alg").and_then(Value::as_str).unwrap_or("");
    let parsed: Option<Algorithm> = alg.parse().ok();
    let Some(alg) = parsed.filter(|a| ALGORITHMS.contains(a)) else {
        return Err(invalid(format!(
            "the ID token's alg `{alg}` is not accepted: only asymmetric signatures (RS*, PS*, ES256, ES384, EdDSA)"
        )));
    };
    if h.contains_key("crit") {
        return Err(invalid(
            "the ID token's header has `crit` extensions tally does not understand".into(),
        ));
    }
    let kid = match h.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(invalid("the ID token's `kid` is not a string".into())),
    };
    Ok((alg, kid))
}

/// Whether `rule` admits the token: `Err` says which check failed.
pub fn admits(rule: &CiIdentity, c: &Claims) -> Result<(), String> {
    if c.issuer != rule.issuer {
        return Err(format!("issuer `{}` is not `{}`", c.issuer, rule.issuer));
    }
    if !c.audience.contains(&rule.audience) {
        return Err(format!(
            "aud [{}] does not include `{}`",
            c.audience.join(", "),
            rule.audience
        ));
    }
    if let Some(s) = &rule.subject {
        if c.subject != *s {
            return Err(format!("sub `{}` is not `{s}`", c.subject));
        }
    }
    if let Some(p) = &rule.subject_pattern {
        let re =
            regex::Regex::new(&anchored(p)).map_err(|e| format!("subject_pattern does not compile: {e}"))?;
        if !re.is_match(&c.subject) {
            return Err(format!("sub `{}` does not match `{p}`", c.subject));
        }
    }
    for (name, allowed) in &rule.claims {
        match c.text(name) {
            Some(v) if allowed.contains(&v) => {}
            Some(v) => {
                return Err(format!(
                    "claim `{name}` is `{v}`, not {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ))
            }
            None => return Err(format!("the token has no string claim `{name}`")),
        }
    }
    Ok(())
}

/// The CI platform a token's claims come from, told by their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// GitHub Actions (`job_workflow_ref`, `repository`, `run_id`).
    GitHub,
    /// GitLab CI (`ci_config_ref_uri`, `project_path`, `job_id`).
    GitLab,
    /// Any other issuer.
    Other,
}

/// Which platform issued `c`.
pub fn platform(c: &Claims) -> Platform {
    let has = |k: &str| c.text(k).is_some();
    if has("job_workflow_ref") && has("repository") && has("run_id") {
        Platform::GitHub
    } else if has("ci_config_ref_uri") && has("project_path") && has("job_id") {
        Platform::GitLab
    } else {
        Platform::Other
    }
}

/// GitHub's web origin, which its tokens do not carry (Fulcio configures it
/// per issuer too).
const GITHUB: &str = "https://github.com";

/// The certificate identity of a CI caller, as Fulcio maps the same
/// platform's claims (sigstore/fulcio `docs/oid-info.md`); `fallback` is
/// the control plane's own identity of the run, used for what the token
/// does not say.
pub fn fulcio_identity(c: &Claims, fallback: &Identity) -> Identity {
    let t = |k: &str| c.text(k);
    match platform(c) {
        Platform::GitHub => {
            let repo = t("repository").unwrap_or_default();
            let signer = format!("{GITHUB}/{}", t("job_workflow_ref").unwrap_or_default());
            Identity {
                san: signer.clone(),
                issuer: c.issuer.clone(),
                build_signer_uri: signer,
                build_signer_digest: t("job_workflow_sha"),
                runner_environment: t("runner_environment"),
                source_repository_uri: Some(format!("{GITHUB}/{repo}")),
                source_repository_digest: t("sha"),
                source_repository_ref: t("ref"),
                build_config_uri: t("workflow_ref").map(|w| format!("{GITHUB}/{w}")),
                run_invocation_uri: format!(
                    "{GITHUB}/{repo}/actions/runs/{}/attempts/{}",
                    t("run_id").unwrap_or_default(),
                    t("run_attempt").unwrap_or_else(|| "1".into())
                ),
            }
        }
        Platform::GitLab => {
            let base = c.issuer.trim_end_matches('/').to_owned();
            let project = t("project_path").unwrap_or_default();
            let signer = format!("https://{}", t("ci_config_ref_uri").unwrap_or_default());
            let git_ref = match (t("ref_type").as_deref(), t("ref")) {
                (Some("branch"), Some(r)) => Some(format!("refs/heads/{r}")),
                (Some("tag"), Some(r)) => Some(format!("refs/tags/{r}")),
                _ => None,
            };
            Identity {
                san: signer.clone(),
                issuer: c.issuer.clone(),
                build_signer_uri: signer.clone(),
                build_signer_digest: t("ci_config_sha"),
                runner_environment: t("runner_environment"),
                source_repository_uri: Some(format!("{base}/{project}")),
                source_repository_digest: t("sha"),
                source_repository_ref: git_ref,
                build_config_uri: Some(signer),
                run_invocation_uri: format!("{base}/{project}/-/jobs/{}", t("job_id").unwrap_or_default()),
            }
        }
        Platform::Other => Identity {
            // A URI SAN: the subject when it is a URL, else issuer#subject.
            san: if url::Url::parse(&c.subject).is_ok() {
                c.subject.clone()
            } else {
                format!("{}#{}", c.issuer, c.subject)
            },
            issuer: c.issuer.clone(),
            ..fallback.clone()
        },
    }
}

/// Claims as a verified token would carry them (`iss`, `sub` required),
/// for tests.
#[cfg(test)]
pub(crate) fn test_claims(all: Value) -> Claims {
    let all = all.as_object().expect("an object").clone();
    Claims {
        issuer: all["iss"].as_str().expect("iss").to_owned(),
        subject: all["sub"].as_str().expect("sub").to_owned(),
        audience: vec!["tally".into()],
        expires: 0,
        all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_claims as claims;

    fn rule() -> CiIdentity {
        CiIdentity {
            issuer: "https://token.actions.githubusercontent.com".into(),
            audience: "tally".into(),
            subject: None,
            subject_pattern: Some("repo:acme/payments:ref:refs/heads/(main|release/.+)".into()),
            claims: vec![("environment".into(), vec!["production".into()])],
        }
    }

    fn github() -> Claims {
        claims(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:acme/payments:ref:refs/heads/main",
            "repository": "acme/payments",
            "job_workflow_ref": "acme/payments/.github/workflows/release.yml@refs/heads/main",
            "workflow_ref": "acme/payments/.github/workflows/release.yml@refs/heads/main",
            "ref": "refs/heads/main",
            "sha": "9fceb02",
            "run_id": "991",
            "run_attempt": "2",
            "environment": "production",
        }))
    }

    #[test]
    fn identities_match_subject_patterns_whole_and_claims_exactly() {
        assert_eq!(admits(&rule(), &github()), Ok(()));
        let mut c = github();
        c.subject = "repo:acme/payments:ref:refs/heads/main-evil".into();
        // The pattern is anchored: a suffix does not slip through.
        assert!(admits(&rule(), &c).unwrap_err().contains("does not match"));
        let mut c = github();
        c.all.insert("environment".into(), "staging".into());
        assert!(admits(&rule(), &c).unwrap_err().contains("`staging`"));
        let mut c = github();
        c.all.remove("environment");
        assert!(admits(&rule(), &c).unwrap_err().contains("no string claim"));
        let mut c = github();
        c.audience = vec!["sigstore".into()];
        assert!(admits(&rule(), &c).unwrap_err().contains("aud"));
    }

    #[test]
    fn claims_map_to_fulcio_extensions_per_platform() {
        let gh = fulcio_identity(&github(), &Identity::default());
        assert_eq!(
            gh.san,
            "https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/main"
        );
        assert_eq!(
            gh.source_repository_uri.as_deref(),
            Some("https://github.com/acme/payments")
        );
        assert_eq!(
            gh.run_invocation_uri,
            "https://github.com/acme/payments/actions/runs/991/attempts/2"
        );
        let gl = claims(serde_json::json!({
            "iss": "https://gitlab.com",
            "sub": "project_path:acme/payments:ref_type:tag:ref:v1.4.2",
            "project_path": "acme/payments",
            "ci_config_ref_uri": "gitlab.com/acme/payments//.gitlab-ci.yml@refs/tags/v1.4.2",
            "ref": "v1.4.2",
            "ref_type": "tag",
            "job_id": "302",
        }));
        assert_eq!(platform(&gl), Platform::GitLab);
        let gl = fulcio_identity(&gl, &Identity::default());
        assert_eq!(
            gl.san,
            "https://gitlab.com/acme/payments//.gitlab-ci.yml@refs/tags/v1.4.2"
        );
        assert_eq!(gl.source_repository_ref.as_deref(), Some("refs/tags/v1.4.2"));
        assert_eq!(
            gl.run_invocation_uri,
            "https://gitlab.com/acme/payments/-/jobs/302"
        );
        let other = claims(serde_json::json!({"iss": "https://idp.example", "sub": "svc-build"}));
        let fallback = Identity {
            build_signer_uri: "https://tally/workflows/x".into(),
            ..Identity::default()
        };
        let o = fulcio_identity(&other, &fallback);
        assert_eq!(o.san, "https://idp.example#svc-build");
        assert_eq!(o.build_signer_uri, "https://tally/workflows/x");
    }

    #[test]
    fn headers_refuse_none_hmac_and_crit_before_anything_else() {
        let b64 = |v: Value| {
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string())
        };
        for (h, says) in [
            (serde_json::json!({"alg": "none"}), "`none`"),
            (serde_json::json!({"alg": "HS256"}), "`HS256`"),
            (serde_json::json!({"typ": "JWT"}), "alg ``"),
            (serde_json::json!({"alg": "RS256", "crit": ["b64"]}), "crit"),
            (serde_json::json!({"alg": "RS256", "kid": 7}), "kid"),
        ] {
            let token = format!("{}.e30.", b64(h));
            let e = header(&token).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        assert!(Verifier::looks_like_jwt("eyJ.eyJ.c2ln"));
        assert!(!Verifier::looks_like_jwt("tly_wf_0123"));
        assert!(!Verifier::looks_like_jwt("a.b.c d"));
    }
}
