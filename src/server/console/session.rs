//! Signing in to the console (SPEC.md §16.3): a token (the admin's or a
//! workflow's) is exchanged for a session cookie (HttpOnly, SameSite=Strict,
//! Secure behind TLS); every state-changing form carries the session's CSRF
//! token; who the session is for is decided again on every request by
//! `server::auth`, so a revoked or expired token ends its sessions.

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::html::{error, escape, link, page, page_for, Chrome};
use crate::server::auth::{by_token_hash, AuthError, Principal};
use crate::server::meta::SessionRow;
use crate::server::{token_hash, unix_now, App};
use std::sync::Arc;

/// The session cookie's name.
pub(super) const SESSION_COOKIE: &str = "tally_session";
/// The login form's double-submit cookie (CSRF before there is a session).
const LOGIN_COOKIE: &str = "tally_login";
/// How long a session lasts (seconds).
pub(super) const SESSION_SECS: i64 = 12 * 3600;

/// A signed-in reader: who, and the session's CSRF token.
#[derive(Debug)]
pub(super) struct Viewer {
    /// Who the session's token authenticates now.
    pub principal: Principal,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Viewer {
    /// The page chrome for this viewer.
    pub(super) fn chrome(&self) -> Chrome<'_> {
        Chrome {
            who: Some(self.principal.id()),
            csrf: &self.csrf,
        }
    }

    /// Whether a state-changing form's `csrf` field is this session's.
    pub(super) fn check_csrf(&self, sent: &str) -> Result<(), Response> {
        if bool::from(self.csrf.as_bytes().ct_eq(sent.as_bytes())) {
            Ok(())
        } else {
            Err(error(
                StatusCode::FORBIDDEN,
                "this form was not sent from this session's page (CSRF check); reload the page and try again",
            ))
        }
    }
}

/// Whoever reads a public page: the signed-in viewer, whose name and
/// log-out form the page's navigation shows, or `None`. A public page never
/// fails for want of a session: a metadata error here reads as anonymous.
pub(super) struct Reader(pub Option<Viewer>);

impl Reader {
    /// The page chrome for this reader.
    pub(super) fn chrome(&self) -> Chrome<'_> {
        chrome(self.0.as_ref())
    }
}

impl axum::extract::FromRequestParts<Arc<App>> for Reader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Reader(viewer(app, &parts.headers).ok().flatten()))
    }
}

/// The page chrome of an optional viewer.
pub(super) fn chrome(v: Option<&Viewer>) -> Chrome<'_> {
    v.map(Viewer::chrome).unwrap_or_default()
}

/// The value of cookie `name` in the request.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn random() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Whether the browser reached us over TLS (a terminating proxy says so in
/// `X-Forwarded-Proto`; `tally serve` itself speaks plain HTTP).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or(HeaderValue::from_static("tally_invalid=; Max-Age=0"))
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console: the metadata database is unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server's metadata database is unavailable; try again in a few seconds",
    )
}

/// The signed-in viewer, or `None` (no cookie, an unknown or expired
/// session, or a token since revoked or expired).
pub(super) fn viewer(app: &App, headers: &HeaderMap) -> Result<Option<Viewer>, Response> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let id_hash = Sha256::digest(id.as_bytes());
    let Some(s) = app.meta.session(&id_hash, unix_now()).map_err(unavailable)? else {
        return Ok(None);
    };
    match by_token_hash(app, &s.token_hash) {
        Ok(principal) => Ok(Some(Viewer {
            principal,
            csrf: s.csrf,
        })),
        Err(AuthError::Unavailable { cause, .. }) => Err(unavailable(cause)),
        Err(_) => Ok(None),
    }
}

/// The viewer of a page that needs one; anyone else is sent to the login
/// page, and back here after.
pub(super) fn required(app: &App, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    match viewer(app, headers)? {
        Some(v) => Ok(v),
        None => {
            let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
            Err(Redirect::to(&link("/console/login", &[("next", next)])).into_response())
        }
    }
}

/// Where to go after logging in: a console path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/console".to_owned(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

fn login_page(headers: &HeaderMap, status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let csrf = random();
    let problem = problem
        .map(|p| {
            format!(
                "<p role=\"alert\" class=\"failed\" id=\"login-error\">{}</p>\n",
                escape(p)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Log in</h1>\n{problem}\
         <p>Log in with the admin token or a workflow token (<code>tally token create</code>). \
         A workflow token shows only its workflows' runs. The log's pages need no login.</p>\n\
         <form method=\"post\" action=\"/console/login\">\n\
         <label for=\"token\">Token</label>\n\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <button type=\"submit\" id=\"login\">Log in</button>\n</form>\n",
        next = escape(next),
    );
    let mut r = page(status, "Log in", &body);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, &csrf, "/console/login", 900),
    );
    r
}

/// `GET /console/login`: the form (a signed-in viewer goes on to `next`).
pub(super) async fn login_form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<Next>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = safe_next(q.ok().and_then(|q| q.0.next).as_deref());
    match viewer(&app, &headers) {
        Ok(Some(_)) => Redirect::to(&next).into_response(),
        Ok(None) => login_page(&headers, StatusCode::OK, &next, None),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Login {
    token: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /console/login`: a token for a session.
pub(super) async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Login>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return login_page(
            &headers,
            StatusCode::BAD_REQUEST,
            "/console",
            Some("the form was incomplete"),
        );
    };
    let next = safe_next(f.next.as_deref());
    let sent = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(f.csrf.as_bytes())) {
        return login_page(
            &headers,
            StatusCode::FORBIDDEN,
            &next,
            Some("this form was not sent from this server's login page (CSRF check); try again"),
        );
    }
    let secret = f.token.trim();
    if crate::identity::oidc::Verifier::looks_like_jwt(secret) {
        return login_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            &next,
            Some(
                "a CI platform's ID token is for pipelines; log in with the admin token or a workflow token",
            ),
        );
    }
    let hash = token_hash(secret);
    match by_token_hash(&app, &hash) {
        Ok(_) => {}
        Err(AuthError::Unavailable { cause, .. }) => return unavailable(cause),
        Err(_) => {
            return login_page(
                &headers,
                StatusCode::UNAUTHORIZED,
                &next,
                Some("that token is not known to this server, or it was revoked or has expired"),
            )
        }
    }
    let (id, now) = (random(), unix_now());
    let row = SessionRow {
        token_hash: hash,
        csrf: random(),
        expires_at: now + SESSION_SECS,
    };
    if let Err(e) = app.meta.create_session(&Sha256::digest(id.as_bytes()), &row, now) {
        return unavailable(e);
    }
    let mut r = Redirect::to(&next).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &id, "/console", SESSION_SECS),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", "/console/login", 0),
    );
    r
}

#[derive(Debug, Deserialize)]
pub(super) struct Logout {
    csrf: String,
}

/// `POST /console/logout`: ends the session.
pub(super) async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Logout>, axum::extract::rejection::FormRejection>,
) -> Response {
    let v = match viewer(&app, &headers) {
        Ok(Some(v)) => v,
        Ok(None) => return Redirect::to("/console/login").into_response(),
        Err(r) => return r,
    };
    let sent = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Err(r) = v.check_csrf(&sent) {
        return r;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = app.meta.delete_session(&Sha256::digest(id.as_bytes())) {
            return unavailable(e);
        }
    }
    let mut r = page_for(
        StatusCode::OK,
        "Logged out",
        "<h1>Logged out</h1>\n<p id=\"logged-out\">The session has ended. \
         <a href=\"/console/login\">Log in again</a>.</p>\n",
        Chrome::default(),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", "/console", 0),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(
            safe_next(Some("/console/runs?status=FAILED")),
            "/console/runs?status=FAILED"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console",
            "/api/v1/runs",
            "/console\\@evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tally_session=abc"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
