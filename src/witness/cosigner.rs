//! The log's side of witnessing (SPEC.md §14.2): [`Cosigner`] sends each
//! signed checkpoint to every witness of the operator's policy, in
//! parallel and within one deadline, with the consistency proof from the
//! size that witness last cosigned (learnt from its last answer, or from
//! its 409), keeps the cosignature lines that verify under the witness's
//! key, and evaluates the quorum. It implements the ledger's
//! [`Cosign`](crate::ledger::cosign::Cosign); the ledger decides what to do
//! with the result.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ledger_format::note::Note;
use serde::Deserialize;

use super::policy::{cosigned_by, PolicyWitness, TrustPolicy};
use crate::ledger::cosign::{Cosign, Cosigned, ProofFn};

/// `[witnesses]` of the server configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessesConfig {
    /// A C2SP tlog-policy file: the witnesses (with their URLs) and the
    /// quorum. Empty: no witnessing.
    pub policy: String,
    /// Short of the quorum: `publish` (with the cosignatures gathered, and
    /// ask again every `retry_secs`) or `hold` (publish nothing until the
    /// quorum is reached; appends are still acknowledged up to the backlog).
    pub on_no_quorum: OnNoQuorum,
    /// Deadline of one round of requests to every witness, milliseconds.
    pub timeout_ms: u64,
    /// Seconds between two attempts for a checkpoint short of its quorum.
    pub retry_secs: u64,
}

impl Default for WitnessesConfig {
    fn default() -> Self {
        WitnessesConfig {
            policy: String::new(),
            on_no_quorum: OnNoQuorum::Publish,
            timeout_ms: 3000,
            retry_secs: 10,
        }
    }
}

/// What the publisher does with a checkpoint short of its quorum.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnNoQuorum {
    /// Publish it with the cosignatures gathered; ask again later.
    #[default]
    Publish,
    /// Hold it back until the quorum cosigns.
    Hold,
}

/// The outcome of the last request to one witness (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitnessStatus {
    /// The witness's name in the policy.
    pub name: String,
    /// Requests answered with a valid cosignature.
    pub cosigned: u64,
    /// Requests that failed (down, timeout, refusal, bad cosignature).
    pub failed: u64,
    /// 409 answers (the witness knew another size; retried from it).
    pub conflicts: u64,
    /// The size the witness last cosigned, as far as the log knows.
    pub size: Option<u64>,
    /// The last failure, if the last request failed.
    pub last_error: Option<String>,
}

/// Asks the policy's witnesses for cosignatures.
#[derive(Debug)]
pub struct Cosigner {
    policy: TrustPolicy,
    origin: String,
    hold: bool,
    timeout: Duration,
    retry: Duration,
    /// Built on first use, on the publisher's thread: reqwest's blocking
    /// client must not be created on an async worker.
    http: std::sync::OnceLock<Result<reqwest::blocking::Client, String>>,
    /// Per witness (policy order): what is known of it.
    status: Mutex<Vec<WitnessStatus>>,
}

/// How one witness answered one checkpoint.
enum Answer {
    Cosigned(String),
    Conflict(u64),
    Failed(String),
}

impl Cosigner {
    /// A cosigner for the log `origin` from its configuration; the policy
    /// file is read and checked here (every witness needs a URL).
    pub fn new(cfg: &WitnessesConfig, origin: &str) -> Result<Cosigner, String> {
        let text =
            std::fs::read_to_string(&cfg.policy).map_err(|e| format!("reading {}: {e}", cfg.policy))?;
        let policy = TrustPolicy::parse(&text).map_err(|e| format!("{}: {e}", cfg.policy))?;
        if let Some(w) = policy.witnesses().iter().find(|w| w.url.is_none()) {
            return Err(format!(
                "{}: witness {} has no URL; the log needs one to ask it",
                cfg.policy, w.name
            ));
        }
        if cfg.timeout_ms == 0 || cfg.retry_secs == 0 {
            return Err("[witnesses] timeout_ms and retry_secs must be positive".into());
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let status = policy
            .witnesses()
            .iter()
            .map(|w| WitnessStatus {
                name: w.name.clone(),
                ..WitnessStatus::default()
            })
            .collect();
        Ok(Cosigner {
            policy,
            origin: origin.to_owned(),
            hold: cfg.on_no_quorum == OnNoQuorum::Hold,
            timeout,
            retry: Duration::from_secs(cfg.retry_secs),
            http: std::sync::OnceLock::new(),
            status: Mutex::new(status),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    /// What is known of each witness.
    pub fn status(&self) -> Vec<WitnessStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks one witness, retrying once from the size a 409 names.
    fn ask(
        &self,
        w: &PolicyWitness,
        known: Option<u64>,
        note: &str,
        size: u64,
        proof: &ProofFn<'_>,
        deadline: Instant,
    ) -> (Answer, bool) {
        let mut old = known.filter(|&k| k <= size).unwrap_or(0);
        let mut conflicted = false;
        for _ in 0..2 {
            match self.post(w, old, note, size, proof, deadline) {
                Answer::Conflict(theirs) if !conflicted && theirs <= size => {
                    conflicted = true;
                    old = theirs;
                }
                Answer::Conflict(theirs) if theirs > size => {
                    return (
                        Answer::Failed(format!(
                            "the witness has cosigned size {theirs}, beyond this checkpoint's {size}"
                        )),
                        true,
                    )
                }
                a => return (a, conflicted),
            }
        }
        (Answer::Failed("409 twice".into()), true)
    }

    fn post(
        &self,
        w: &PolicyWitness,
        old: u64,
        note: &str,
        size: u64,
        proof: &ProofFn<'_>,
        deadline: Instant,
    ) -> Answer {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Answer::Failed("deadline passed".into());
        }
        let lines = if old == 0 || old == size {
            Vec::new()
        } else {
            match proof(old) {
                Ok(p) => p,
                Err(e) => return Answer::Failed(format!("no consistency proof from {old}: {e}")),
            }
        };
        let mut body = format!("old {old}\n");
        for h in &lines {
            body.push_str(&base64::engine::general_purpose::STANDARD.encode(h.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let url = format!(
            "{}/add-checkpoint",
            w.url.as_deref().unwrap_or_default().trim_end_matches('/')
        );
        let http = match self.http.get_or_init(|| {
            reqwest::blocking::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("the witness HTTP client: {e}"))
        }) {
            Ok(c) => c,
            Err(e) => return Answer::Failed(e.clone()),
        };
        let resp = match http.post(&url).timeout(left).body(body).send() {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("POST {url}: {e}")),
        };
        let status = resp.status();
        let text = match resp.text() {
            Ok(t) => t,
            Err(e) => return Answer::Failed(format!("POST {url}: reading the answer: {e}")),
        };
        if status.as_u16() == 409 {
            return match ledger_format::checkpoint::parse_decimal(text.trim_end_matches('\n')) {
                Some(n) => Answer::Conflict(n),
                None => Answer::Failed("409 without a size".into()),
            };
        }
        if !status.is_success() {
            return Answer::Failed(format!("{status}: {}", text.trim()));
        }
        // Keep only lines that are this witness's valid cosignature.
        let body_text = match Note::parse(note.as_bytes()) {
            Ok(n) => n.text().to_owned(),
            Err(e) => return Answer::Failed(e.to_string()),
        };
        for line in text.lines() {
            let candidate = format!("{body_text}\n{line}\n");
            if let Ok(n) = Note::parse(candidate.as_bytes()) {
                if cosigned_by(&n, &w.key) {
                    return Answer::Cosigned(format!("{line}\n"));
                }
            }
        }
        Answer::Failed("the answer holds no valid cosignature by the witness's key".into())
    }
}

impl Cosign for Cosigner {
    fn cosign(&self, checkpoint: &str, size: u64, proof: &ProofFn<'_>) -> Cosigned {
        let deadline = Instant::now() + self.timeout;
        let known: Vec<Option<u64>> = self.status().iter().map(|s| s.size).collect();
        let answers: Vec<(Answer, bool)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .policy
                .witnesses()
                .iter()
                .zip(&known)
                .map(|(w, &k)| scope.spawn(move || self.ask(w, k, checkpoint, size, proof, deadline)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or((Answer::Failed("the request panicked".into()), false))
                })
                .collect()
        });
        let mut cosigned = vec![false; answers.len()];
        let mut lines = Vec::new();
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        for (i, (a, conflicted)) in answers.into_iter().enumerate() {
            let s = &mut status[i];
            if conflicted {
                s.conflicts += 1;
            }
            match a {
                Answer::Cosigned(line) => {
                    s.cosigned += 1;
                    s.size = Some(size);
                    s.last_error = None;
                    cosigned[i] = true;
                    lines.push(line);
                }
                Answer::Conflict(n) => {
                    s.failed += 1;
                    s.size = Some(n);
                    s.last_error = Some(format!("409: the witness is at size {n}"));
                }
                Answer::Failed(e) => {
                    s.failed += 1;
                    tracing::warn!(witness = %s.name, origin = %self.origin, size, error = %e, "witness did not cosign");
                    s.last_error = Some(e);
                }
            }
        }
        Cosigned {
            witnesses: lines.len(),
            lines,
            quorum: self.policy.satisfied_by(&cosigned),
        }
    }

    fn assess(&self, checkpoint: &str) -> Cosigned {
        match Note::parse(checkpoint.as_bytes()) {
            Ok(n) => {
                let r = self.policy.check(&n);
                Cosigned {
                    lines: Vec::new(),
                    witnesses: r.cosigned.len(),
                    quorum: r.satisfied,
                }
            }
            Err(_) => Cosigned::default(),
        }
    }

    fn hold_without_quorum(&self) -> bool {
        self.hold
    }

    fn retry_interval(&self) -> Duration {
        self.retry
    }
}
