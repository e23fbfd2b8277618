//! `tally-bench intake --abuse`: what the hardening issue's abuse budget
//! asks — honest pushes measured alone, then again while hostile clients
//! hold 1,000 idle connections, four workflow tokens flood the intake with
//! envelopes full of bogus signatures (ignoring every 4xx and Retry-After),
//! and a storm of uploads stalls mid-body; meanwhile `/healthz` is timed
//! every 10 ms from a thread of its own (blocking sockets, so the probe's
//! latency is the server's, not the load generator's scheduler's).

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

/// How much hostility (the figures by default).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Connections opened and left silent (reopened when the server closes them).
    pub(crate) idle: usize,
    /// Flooding clients, one workflow token each.
    pub(crate) floods: usize,
    /// Uploads that announce 1 GiB, send 64 KiB and stall.
    pub(crate) stalled: usize,
}

/// One flooding client's means: its token, a run of its workflow (a
/// refusal does not consume it) and the bodies it sends in turn.
pub(crate) struct Flood {
    pub(crate) token: String,
    pub(crate) run: String,
}

/// The hostile clients, running until stopped.
pub(crate) struct Abuse {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    counts: Arc<Counts>,
    idle_open: Arc<AtomicU64>,
    stalled_open: Arc<AtomicU64>,
}

#[derive(Default)]
struct Counts {
    /// Flood answers by status class.
    flood_422: AtomicU64,
    flood_429: AtomicU64,
    flood_503: AtomicU64,
    flood_other: AtomicU64,
    /// Idle connections (re)opened, stalled uploads (re)started.
    idle_opened: AtomicU64,
    stalled_started: AtomicU64,
}

/// An envelope whose payload is `honest`'s and whose signatures are `n`
/// random byte strings under key ids the server does not know.
pub(crate) fn forged(honest: &[u8], n: usize) -> Vec<u8> {
    let mut env: serde_json::Value = serde_json::from_slice(honest).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sigs: Vec<_> = (0..n)
        .map(|i| {
            let bytes: Vec<u8> = (0..72).map(|_| rand::random::<u8>()).collect();
            json!({"keyid": format!("forged-{i}"), "sig": b64.encode(bytes)})
        })
        .collect();
    env["signatures"] = serde_json::Value::Array(sigs);
    serde_json::to_vec(&env).unwrap_or_default()
}

impl Abuse {
    /// Starts the hostile clients on `rt` and waits until the idle
    /// connections and stalled uploads are in place.
    pub(crate) fn start(
        rt: &tokio::runtime::Runtime,
        addr: SocketAddr,
        budget: Budget,
        floods: Vec<Flood>,
        bodies: Vec<hyper::body::Bytes>,
        upload_workflow: &str,
    ) -> Abuse {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let (idle_open, stalled_open) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..budget.idle {
            let (stop, counts, open) = (stop.clone(), counts.clone(), idle_open.clone());
            tasks.push(rt.spawn(idle(addr, stop, counts, open)));
        }
        let bodies = Arc::new(bodies);
        let tokens: Vec<String> = floods.iter().map(|f| f.token.clone()).collect();
        for f in floods.into_iter().take(budget.floods) {
            let (stop, counts, bodies) = (stop.clone(), counts.clone(), bodies.clone());
            tasks.push(rt.spawn(flood(addr, f, bodies, stop, counts)));
        }
        for i in 0..budget.stalled {
            let (stop, counts, open) = (stop.clone(), counts.clone(), stalled_open.clone());
            let token = tokens.get(i % tokens.len().max(1)).cloned().unwrap_or_default();
            let workflow = upload_workflow.to_owned();
            tasks.push(rt.spawn(stall(addr, workflow, token, stop, counts, open)));
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30)
            && (idle_open.load(Ordering::Relaxed) < budget.idle as u64
                || stalled_open.load(Ordering::Relaxed) < budget.stalled as u64)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        Abuse {
            stop,
            tasks,
            counts,
            idle_open,
            stalled_open,
        }
    }

    /// Stops every hostile client; what they saw.
    pub(crate) fn stop(self, rt: &tokio::runtime::Runtime) -> serde_json::Value {
        let idle_now = self.idle_open.load(Ordering::Relaxed);
        let stalled_now = self.stalled_open.load(Ordering::Relaxed);
        self.stop.store(true, Ordering::Release);
        for t in &self.tasks {
            t.abort();
        }
        rt.block_on(async {
            for t in self.tasks {
                let _ = t.await;
            }
        });
        let c = &self.counts;
        json!({
            "idle_connections_open_at_end": idle_now,
            "idle_connections_opened": c.idle_opened.load(Ordering::Relaxed),
            "stalled_uploads_open_at_end": stalled_now,
            "stalled_uploads_started": c.stalled_started.load(Ordering::Relaxed),
            "flood_answers": {
                "422": c.flood_422.load(Ordering::Relaxed),
                "429": c.flood_429.load(Ordering::Relaxed),
                "503": c.flood_503.load(Ordering::Relaxed),
                "other": c.flood_other.load(Ordering::Relaxed),
            },
        })
    }
}

/// Holds a silent connection open; reopens it when the server closes it.
async fn idle(addr: SocketAddr, stop: Arc<AtomicBool>, counts: Arc<Counts>, open: Arc<AtomicU64>) {
    use tokio::io::AsyncReadExt as _;
    while !stop.load(Ordering::Acquire) {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        counts.idle_opened.fetch_add(1, Ordering::Relaxed);
        open.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 64];
        // Returns when the server closes it (its idle timeout).
        let _ = s.read(&mut buf).await;
        open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Pushes forged envelopes to its run as fast as the server answers,
/// whatever it answers.
async fn flood(
    addr: SocketAddr,
    f: Flood,
    bodies: Arc<Vec<hyper::body::Bytes>>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    use http_body_util::{BodyExt as _, Full};
    let auth = format!("Bearer {}", f.token);
    let mut sender: Option<hyper::client::conn::http1::SendRequest<Full<hyper::body::Bytes>>> = None;
    let mut i = 0usize;
    while !stop.load(Ordering::Acquire) {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let Ok((s, conn)) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
            else {
                continue;
            };
            tokio::spawn(conn);
            sender = Some(s);
        }
        let Some(s) = sender.as_mut() else { continue };
        let body = bodies[i % bodies.len()].clone();
        i += 1;
        let Ok(req) = hyper::Request::post(format!("/api/v1/runs/{}/attestation?wait=0", f.run))
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::AUTHORIZATION, &auth)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
        else {
            continue;
        };
        match s.send_request(req).await {
            Ok(resp) => {
                let c = match resp.status().as_u16() {
                    422 => &counts.flood_422,
                    429 => &counts.flood_429,
                    503 => &counts.flood_503,
                    _ => &counts.flood_other,
                };
                c.fetch_add(1, Ordering::Relaxed);
                let _ = resp.into_body().collect().await;
            }
            Err(_) => sender = None,
        }
    }
}

/// Starts an upload of 1 GiB, sends 64 KiB and stalls; starts another when
/// the server gives up on it.
async fn stall(
    addr: SocketAddr,
    workflow: String,
    token: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    open: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    while !stop.load(Ordering::Acquire) {
        let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let digest: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        // With a valid token: the server starts storing it, and must still
        // bound how long it holds the partial file.
        let head = format!(
            "PUT /api/v1/artifacts/sha256:{digest}?workflow={workflow} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
            1u64 << 30
        );
        if s.write_all(head.as_bytes()).await.is_err() || s.write_all(&[0u8; 64 << 10]).await.is_err() {
            continue;
        }
        counts.stalled_started.fetch_add(1, Ordering::Relaxed);
        open.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 512];
        // Returns when the server answers or closes it.
        let _ = s.read(&mut buf).await;
        open.fetch_sub(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/healthz` timed every 10 ms from a thread of its own, each on a fresh
/// connection (as a load balancer's health check does).
pub(crate) struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<f64>, u64)>,
}

impl Probe {
    pub(crate) fn start(addr: SocketAddr) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut lat, mut failed) = (Vec::new(), 0u64);
            while !flag.load(Ordering::Acquire) {
                let t = Instant::now();
                match healthz(addr) {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64()),
                    Err(_) => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (lat, failed)
        });
        Probe { stop, thread }
    }

    /// Stops probing: latencies (sorted, seconds) and failures (no answer
    /// within 5 s, or not 200).
    pub(crate) fn finish(self) -> (Vec<f64>, u64) {
        self.stop.store(true, Ordering::Release);
        let (mut lat, failed) = self.thread.join().unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        (lat, failed)
    }
}

fn healthz(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_nodelay(true)?;
    s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    if out.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other("not 200"))
    }
}
