//! Where `tally audit` reads a tiled log from: a local directory (a static
//! log or a checked-out clone of a ledger) or an `http(s)://` URL prefix.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use ledger_format::audit::TileSource;

/// Largest resource accepted from a log (a full tile is 8 KiB; a full entry
/// bundle at most 256 × 64 KiB).
pub const MAX_RESOURCE: u64 = 256 * (65_535 + 2) + 1;

/// Reads `prefix/<path>` from a directory.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// A source rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource { root: root.into() }
    }
}

impl TileSource for DirSource {
    type Error = io::Error;
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, io::Error> {
        let p = self.root.join(path);
        match std::fs::metadata(&p) {
            Ok(m) if m.len() > MAX_RESOURCE => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is {} bytes, larger than any tile or bundle",
                        p.display(),
                        m.len()
                    ),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        std::fs::read(&p).map(Some)
    }
}

/// Fetches `<prefix>/<path>` over HTTP(S). 404 means absent.
#[derive(Debug)]
pub struct HttpSource {
    prefix: String,
    client: reqwest::blocking::Client,
}

/// A failed HTTP fetch.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Transport failure.
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    /// A status other than 200 or 404.
    #[error("server answered {0}")]
    Status(reqwest::StatusCode),
    /// The body is larger than any tile or bundle.
    #[error("response is larger than any tile or bundle ({MAX_RESOURCE} bytes)")]
    TooLarge,
}

impl HttpSource {
    /// A source for the log at URL `prefix`.
    pub fn new(prefix: &str) -> Result<Self, reqwest::Error> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("tally/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpSource {
            prefix: prefix.trim_end_matches('/').to_owned(),
            client,
        })
    }
}

impl TileSource for HttpSource {
    type Error = HttpError;
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, HttpError> {
        let url = format!("{}/{}", self.prefix, path);
        let resp = self.client.get(&url).send()?;
        match resp.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                if resp.content_length().is_some_and(|l| l > MAX_RESOURCE) {
                    return Err(HttpError::TooLarge);
                }
                let body = resp.bytes()?;
                if body.len() as u64 > MAX_RESOURCE {
                    return Err(HttpError::TooLarge);
                }
                Ok(Some(body.to_vec()))
            }
            s => Err(HttpError::Status(s)),
        }
    }
}
