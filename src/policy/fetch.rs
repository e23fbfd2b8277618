//! Policies referenced by URL (SPEC.md §13.1): `https://…@sha256:<hex>`,
//! fetched once over HTTPS, checked against the pinned digest, and kept in
//! a cache folder by digest — a second load reads the cache, and a cached
//! file that no longer matches its digest is fetched again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{spec, Files};

/// Where fetched policies are kept, and how they are fetched.
#[derive(Debug, Clone)]
pub struct UrlCache {
    dir: PathBuf,
}

/// Files from `inner`, and policies by URL through a [`UrlCache`].
#[derive(Debug)]
pub struct WithUrls<'a, F: Files + ?Sized> {
    /// Repository paths.
    pub inner: &'a F,
    /// URLs.
    pub cache: &'a UrlCache,
}

impl<F: Files + ?Sized> Files for WithUrls<'_, F> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        if path.starts_with("https://") {
            self.cache.fetch(path)
        } else {
            self.inner.read(path)
        }
    }
}

/// `(url, hex)` of a pinned reference.
pub fn pinned(reference: &str) -> Option<(&str, &str)> {
    let (url, hex) = reference.rsplit_once("@sha256:")?;
    (url.starts_with("https://")
        && hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some((url, hex))
}

impl UrlCache {
    /// A cache in `dir` (created when first written).
    pub fn new(dir: PathBuf) -> Self {
        UrlCache { dir }
    }

    /// The CLI's cache: `TALLY_POLICY_CACHE`, else `$XDG_CACHE_HOME/tally/policies`,
    /// else `~/.cache/tally/policies`.
    pub fn for_cli() -> Self {
        let dir = std::env::var_os("TALLY_POLICY_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| Path::new(&d).join("tally/policies")))
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/tally/policies")))
            .unwrap_or_else(|| PathBuf::from(".tally/policies"));
        UrlCache { dir }
    }

    /// The bytes a pinned reference names: from the cache, or fetched and
    /// checked (a digest mismatch is an error and nothing is kept).
    pub fn fetch(&self, reference: &str) -> Result<Vec<u8>, String> {
        let (url, hex) = pinned(reference).ok_or_else(|| {
            format!("{reference}: a policy URL must be https:// and pinned with @sha256:<64 lowercase hex>")
        })?;
        let cached = self.dir.join(hex);
        if let Ok(bytes) = std::fs::read(&cached) {
            if ledger_format::hash::sha256(&bytes).to_hex() == hex {
                return Ok(bytes);
            }
        }
        let bytes = download(url).map_err(|e| format!("{reference}: {e}"))?;
        let got = ledger_format::hash::sha256(&bytes).to_hex();
        if got != hex {
            return Err(format!(
                "{reference}: the file served at {url} has digest sha256:{got}, not the pinned sha256:{hex}"
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        crate::fsutil::write_atomic(&cached, &bytes, 0o644, true)
            .map_err(|e| format!("caching {}: {e}", cached.display()))?;
        Ok(bytes)
    }
}

/// One HTTPS GET of at most [`spec::MAX_POLICY_BYTES`]. `TALLY_POLICY_CA_FILE`
/// names extra trusted roots (PEM), for policies served inside an
/// organisation.
fn download(url: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut b = reqwest::blocking::Client::builder()
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(3));
    if let Some(ca) = std::env::var_os("TALLY_POLICY_CA_FILE") {
        let pem = std::fs::read(&ca)
            .map_err(|e| format!("reading TALLY_POLICY_CA_FILE {}: {e}", Path::new(&ca).display()))?;
        for c in
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("TALLY_POLICY_CA_FILE: {e}"))?
        {
            b = b.add_root_certificate(c);
        }
    }
    let client = b.build().map_err(|e| e.to_string())?;
    let resp = client
        .get(url)
        .send()
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("fetching {url}: {}", resp.status()));
    }
    let mut bytes = Vec::new();
    resp.take(spec::MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading {url}: {e}"))?;
    if bytes.len() > spec::MAX_POLICY_BYTES {
        return Err(format!("{url} is larger than {} bytes", spec::MAX_POLICY_BYTES));
    }
    Ok(bytes)
}
