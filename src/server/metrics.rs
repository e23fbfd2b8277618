//! Prometheus text-format metrics, kept with atomics and small maps (the
//! label sets are workflows and rejection reasons: few and bounded).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram.
#[derive(Debug)]
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: Mutex<BTreeMap<String, u64>>,
    rejected: Mutex<BTreeMap<(String, String), u64>>,
    /// Time from receiving an attestation to its durable index.
    pub append: Histogram,
    /// Time from receiving an attestation to its publication.
    pub publish: Histogram,
    uploads: Mutex<BTreeMap<&'static str, u64>>,
    upload_bytes: AtomicU64,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Counts an accepted attestation.
    pub fn accepted(&self, workflow: &str) {
        *self
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(workflow.to_owned())
            .or_default() += 1;
    }

    /// Counts a rejected attestation.
    pub fn rejected(&self, workflow: &str, reason: &str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((workflow.to_owned(), reason.to_owned()))
            .or_default() += 1;
    }

    /// Counts an artifact upload by outcome (`new`, `already`, or the error code);
    /// `bytes` stored for a new one.
    pub fn upload(&self, outcome: &'static str, bytes: u64) {
        *self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(outcome)
            .or_default() += 1;
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Renders everything, with the gauges given by the caller (`mirrored`:
    /// how many log entries the OCI store holds, when it copies them).
    pub fn render(
        &self,
        sizes: crate::ledger::Sizes,
        runs: &[(String, i64)],
        mirrored: Option<u64>,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP tally_attestations_accepted_total Attestations accepted and appended to the log.\n# TYPE tally_attestations_accepted_total counter\n");
        for (w, n) in self.accepted.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "tally_attestations_accepted_total{{workflow=\"{}\"}} {n}",
                esc(w)
            );
        }
        out.push_str("# HELP tally_attestations_rejected_total Attestations refused, by reason.\n# TYPE tally_attestations_rejected_total counter\n");
        for ((w, r), n) in self.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "tally_attestations_rejected_total{{workflow=\"{}\",reason=\"{}\"}} {n}",
                esc(w),
                esc(r)
            );
        }
        self.append.render(
            "tally_append_seconds",
            "Time from receiving an attestation to its durable log index.",
            &mut out,
        );
        self.publish.render(
            "tally_publish_seconds",
            "Time from receiving an attestation to a signed checkpoint covering it.",
            &mut out,
        );
        out.push_str("# HELP tally_tree_size Entries in the log by stage.\n# TYPE tally_tree_size gauge\n");
        let _ = writeln!(out, "tally_tree_size{{stage=\"sequenced\"}} {}", sizes.sequenced);
        let _ = writeln!(
            out,
            "tally_tree_size{{stage=\"integrated\"}} {}",
            sizes.integrated
        );
        let _ = writeln!(out, "tally_tree_size{{stage=\"published\"}} {}", sizes.published);
        out.push_str("# HELP tally_artifact_uploads_total Artifact uploads by outcome.\n# TYPE tally_artifact_uploads_total counter\n");
        for (o, n) in self.uploads.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "tally_artifact_uploads_total{{outcome=\"{o}\"}} {n}");
        }
        out.push_str("# HELP tally_artifact_stored_bytes_total Bytes of artifacts newly stored.\n# TYPE tally_artifact_stored_bytes_total counter\n");
        let _ = writeln!(
            out,
            "tally_artifact_stored_bytes_total {}",
            self.upload_bytes.load(Ordering::Relaxed)
        );
        if let Some(m) = mirrored {
            out.push_str("# HELP tally_attestations_in_artifact_store Log entries copied into the OCI store (the rest of tally_tree_size{stage=\"published\"} is its lag).\n# TYPE tally_attestations_in_artifact_store gauge\n");
            let _ = writeln!(out, "tally_attestations_in_artifact_store {m}");
        }
        out.push_str("# HELP tally_runs Workflow runs by status.\n# TYPE tally_runs gauge\n");
        for (s, n) in runs {
            let _ = writeln!(out, "tally_runs{{status=\"{}\"}} {n}", esc(s));
        }
        out
    }
}
