//! Where the CLI finds a CI platform's OIDC ID token (tokenless CI, SPEC.md
//! §15.6), when no tally token is given: the token itself
//! (`TALLY_ID_TOKEN`, e.g. a GitLab `id_tokens` entry of that name), a file
//! holding it (`TALLY_ID_TOKEN_FILE`, for any other issuer), or GitHub
//! Actions' token service (`ACTIONS_ID_TOKEN_REQUEST_URL` and
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, present when the job has
//! `permissions: id-token: write`), asked for `audience`.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;

use crate::exit::Failure;

/// GitHub Actions' variables for its token service.
const GITHUB_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const GITHUB_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where to look, as the flags and environment give it.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    /// The ID token itself.
    pub token: Option<&'a str>,
    /// A file holding it.
    pub file: Option<&'a Path>,
    /// The audience to ask GitHub for.
    pub audience: &'a str,
}

/// The ID token, or `None` when no source is present.
pub fn find(s: &Sources<'_>) -> Result<Option<String>, Failure> {
    if let Some(t) = s.token.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_owned()));
    }
    if let Some(p) = s.file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| Failure::Usage(anyhow!("cannot read the ID token file {}: {e}", p.display())))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(Failure::Usage(anyhow!(
                "the ID token file {} is empty",
                p.display()
            )));
        }
        return Ok(Some(t.to_owned()));
    }
    match (std::env::var(GITHUB_URL), std::env::var(GITHUB_TOKEN)) {
        (Ok(url), Ok(bearer)) if !url.is_empty() => github(&url, &bearer, s.audience).map(Some),
        _ => Ok(None),
    }
}

/// Asks GitHub Actions' token service for an ID token for `audience`.
fn github(url: &str, bearer: &str, audience: &str) -> Result<String, Failure> {
    let mut u =
        url::Url::parse(url).map_err(|e| Failure::Usage(anyhow!("{GITHUB_URL} is not a URL: {e}")))?;
    u.query_pairs_mut().append_pair("audience", audience);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let resp = http
        .get(u)
        .header("authorization", format!("bearer {bearer}"))
        .header("accept", "application/json")
        .send()
        .map_err(|e| Failure::Unavailable(anyhow!("cannot reach GitHub Actions' ID token service: {e}")))?;
    let status = resp.status();
    let text = resp.text().map_err(|e| {
        Failure::Unavailable(anyhow!("reading GitHub Actions' ID token service's answer: {e}"))
    })?;
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Failure::Unavailable(anyhow!(
            "GitHub Actions' ID token service answered {status} without JSON: {e}"
        ))
    })?;
    match body.get("value").and_then(|v| v.as_str()) {
        Some(t) if status.is_success() => Ok(t.to_owned()),
        _ => Err(Failure::Unavailable(anyhow!(
            "GitHub Actions' ID token service answered {status}: {body}"
        ))),
    }
}
