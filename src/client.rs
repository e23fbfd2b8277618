//! The CLI's client of the control plane (blocking HTTP). Server errors
//! (`{error, message, hint}`) become classified failures: the server's words
//! reach the user unchanged.

use std::time::Duration;

use anyhow::anyhow;
use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::StatusCode;
use serde_json::Value;

use crate::exit::{Details, Failure};

/// A control-plane client.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: Http,
    /// For streamed bodies: no overall deadline (a large file takes what it takes).
    streams: Http,
}

impl Client {
    /// A client of `base` (e.g. `http://127.0.0.1:8787`) with a bearer token.
    pub fn new(base: &str, token: Option<&str>) -> Result<Client, Failure> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::Usage(anyhow!(
                "the server URL {base:?} must start with http:// or https://"
            )));
        }
        let http = Http::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::Unavailable(e.into()))?;
        let streams = Http::builder()
            .timeout(None)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::Unavailable(e.into()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()).map(str::to_owned),
            http,
            streams,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self, r: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends with retries on 503 (honouring Retry-After, at most 5 times).
    fn send(&self, make: impl Fn() -> RequestBuilder) -> Result<(StatusCode, Value), Failure> {
        for attempt in 0.. {
            let resp = self.auth(make()).send().map_err(|e| {
                Failure::Unavailable(anyhow!("cannot reach the control plane at {}: {e}", self.base))
            })?;
            let status = resp.status();
            if status == StatusCode::SERVICE_UNAVAILABLE && attempt < 5 {
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(30);
                std::thread::sleep(Duration::from_secs(wait));
                continue;
            }
            let bytes = resp
                .bytes()
                .map_err(|e| Failure::Unavailable(anyhow!("reading the answer of {}: {e}", self.base)))?;
            let body: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            if status.is_success() {
                return Ok((status, body));
            }
            return Err(failure(status, &body));
        }
        unreachable!("the loop returns")
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(|| self.http.get(self.url(path))).map(|(_, v)| v)
    }

    /// GET an answer of the API (`crate::wire`).
    pub fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        decode(path, self.get(path)?)
    }

    /// POST a request of the API and read its answer (`crate::wire`).
    pub fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<(StatusCode, T), Failure> {
        let bytes = serde_json::to_vec(body).map_err(|e| Failure::Usage(e.into()))?;
        self.post_bytes_as(path, &bytes)
    }

    /// POST raw JSON bytes and read the answer (`crate::wire`).
    pub fn post_bytes_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
    ) -> Result<(StatusCode, T), Failure> {
        let (status, v) = self.post_bytes(path, body)?;
        Ok((status, decode(path, v)?))
    }

    /// DELETE and read the answer (`crate::wire`).
    pub fn delete_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        decode(path, self.delete(path)?)
    }

    /// GET whatever the status; only transport failures are errors.
    pub fn get_any(&self, path: &str) -> Result<(StatusCode, Value), Failure> {
        let resp = self.auth(self.http.get(self.url(path))).send().map_err(|e| {
            Failure::Unavailable(anyhow!("cannot reach the control plane at {}: {e}", self.base))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .map_err(|e| Failure::Unavailable(anyhow!("reading the answer of {}: {e}", self.base)))?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// POST a JSON document.
    pub fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value), Failure> {
        let bytes = serde_json::to_vec(body).map_err(|e| Failure::Usage(e.into()))?;
        self.post_bytes(path, &bytes)
    }

    /// POST raw JSON bytes.
    pub fn post_bytes(&self, path: &str, body: &[u8]) -> Result<(StatusCode, Value), Failure> {
        let body = body.to_vec();
        self.send(|| {
            self.http
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
    }

    /// HEAD: the status only; a refused token is an error (a HEAD answer
    /// has no body to say more).
    pub fn head(&self, path: &str) -> Result<StatusCode, Failure> {
        let resp = self.auth(self.http.head(self.url(path))).send().map_err(|e| {
            Failure::Unavailable(anyhow!("cannot reach the control plane at {}: {e}", self.base))
        })?;
        match resp.status() {
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(failure(
                s,
                &serde_json::json!({"message": format!("HEAD {path} was refused"),
                    "hint": "check TALLY_TOKEN: it must be a valid token for this workflow"}),
            )),
            s => Ok(s),
        }
    }

    /// PUT a body of `len` bytes streamed from `reader`, with no overall
    /// deadline (a large file takes what it takes).
    pub fn put_stream(
        &self,
        path: &str,
        reader: impl std::io::Read + Send + 'static,
        len: u64,
    ) -> Result<(StatusCode, Value), Failure> {
        let resp = self
            .auth(self.streams.put(self.url(path)))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::blocking::Body::sized(reader, len))
            .send()
            .map_err(|e| Failure::Unavailable(anyhow!("uploading to {}: {e}", self.base)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .map_err(|e| Failure::Unavailable(anyhow!("reading the answer of {}: {e}", self.base)))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(failure(status, &body))
        }
    }

    /// GET a response to read as a stream.
    pub fn get_stream(&self, path: &str) -> Result<reqwest::blocking::Response, Failure> {
        let resp = self.auth(self.streams.get(self.url(path))).send().map_err(|e| {
            Failure::Unavailable(anyhow!("cannot reach the control plane at {}: {e}", self.base))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: Value = resp
            .bytes()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        Err(failure(status, &body))
    }

    /// A run's crafting state kept on the control plane (SPEC.md §12.8):
    /// its JSON and version.
    pub fn get_state(&self, run: &str) -> Result<(Vec<u8>, i64), Failure> {
        let path = format!("/api/v1/runs/{run}/state");
        let resp = self.get_stream(&path)?;
        let version = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok()?.trim_matches('"').parse::<i64>().ok())
            .ok_or_else(|| Failure::Unavailable(anyhow!("{path}: the answer has no version (ETag)")))?;
        let bytes = resp
            .bytes()
            .map_err(|e| Failure::Unavailable(anyhow!("reading {path}: {e}")))?;
        Ok((bytes.to_vec(), version))
    }

    /// Replaces a run's state if it is still at `expected` (`None`: the
    /// first state): `Ok(Ok(new version))`, or `Ok(Err(()))` when another
    /// job changed it since it was read (412).
    pub fn put_state(
        &self,
        run: &str,
        expected: Option<i64>,
        state: &[u8],
    ) -> Result<Result<i64, ()>, Failure> {
        let path = format!("/api/v1/runs/{run}/state");
        let result = self.send(|| {
            let r = self
                .http
                .put(self.url(&path))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(state.to_vec());
            match expected {
                Some(v) => r.header(reqwest::header::IF_MATCH, format!("\"{v}\"")),
                None => r.header(reqwest::header::IF_NONE_MATCH, "*"),
            }
        });
        match result {
            Ok((_, v)) => Ok(Ok(v["version"].as_i64().unwrap_or_default())),
            Err(f)
                if f.error()
                    .downcast_ref::<Details>()
                    .is_some_and(|d| d.json["status"] == 412) =>
            {
                Ok(Err(()))
            }
            Err(f) => Err(f),
        }
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.send(|| self.http.delete(self.url(path))).map(|(_, v)| v)
    }
}

/// An answer as its API type; a server that answers another shape is
/// unavailable (it is not the control plane this CLI speaks to).
fn decode<T: serde::de::DeserializeOwned>(path: &str, v: Value) -> Result<T, Failure> {
    serde_json::from_value(v).map_err(|e| {
        Failure::Unavailable(anyhow!(
            "the control plane's answer to {path} is not what this tally expects: {e}"
        ))
    })
}

/// Maps a server error to a failure class (SPEC.md §12.6).
fn failure(status: StatusCode, body: &Value) -> Failure {
    let message = body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    let hint = body["hint"]
        .as_str()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    let text = format!("the control plane answered {status}: {message}{hint}");
    let err = anyhow::Error::new(Details {
        message: text,
        json: serde_json::json!({"status": status.as_u16(), "error": body["error"], "details": body["details"]}),
    });
    match status.as_u16() {
        401 | 403 | 409 | 422 => Failure::Refused(err),
        400 | 404 | 413 | 415 => Failure::Usage(err),
        _ => Failure::Unavailable(err),
    }
}
