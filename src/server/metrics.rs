//! The server's metrics, kept and rendered by `prometheus-client` (the
//! OpenMetrics text format Prometheus scrapes). Label sets are workflows,
//! rejection reasons, stages and statuses: few and bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The run statuses `tally_runs` reports (absent ones as 0).
const RUN_STATUSES: &[&str] = &["INITIALIZED", "SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowLabel {
    workflow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rejection {
    workflow: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Stage {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessOutcome {
    witness: String,
    outcome: &'static str,
}

/// What `/metrics` reports of witnessing (absent without witnesses).
#[derive(Debug, Clone, Default)]
pub struct WitnessGauges {
    /// The published checkpoint's state.
    pub state: crate::ledger::cosign::Witnessing,
    /// Each witness's request counts.
    pub witnesses: Vec<crate::witness::cosigner::WitnessStatus>,
}

#[derive(Debug)]
struct WitnessMetrics {
    cosignatures: Gauge,
    quorum: Gauge,
    holding: Gauge,
    published_short: Counter,
    requests: Family<WitnessOutcome, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabel {
    integration: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    accepted: Family<WorkflowLabel, Counter>,
    rejected: Family<Rejection, Counter>,
    /// Time from receiving an attestation to its durable index.
    pub append: Histogram,
    /// Time from receiving an attestation to its publication.
    pub publish: Histogram,
    uploads: Family<Outcome, Counter>,
    upload_bytes: Counter,
    tree_size: Family<Stage, Gauge>,
    runs: Family<Status, Gauge>,
    mirrored: Gauge,
    mirrors: bool,
    witnesses: Option<WitnessMetrics>,
    deliveries: Family<IntegrationLabel, Counter>,
    outbox: Family<IntegrationLabel, Gauge>,
}

impl Metrics {
    /// The metrics of a server; `mirrors`: whether its artifact store copies
    /// attestations (then `tally_attestations_in_artifact_store` is reported);
    /// `witnesses`: whether witnesses cosign its checkpoints (then the
    /// `tally_witness_*` and `tally_checkpoint_*` families are reported).
    pub fn new(mirrors: bool, witnesses: bool) -> Self {
        let mut registry = Registry::default();
        let accepted = Family::<WorkflowLabel, Counter>::default();
        registry.register(
            "tally_attestations_accepted",
            "Attestations accepted and appended to the log",
            accepted.clone(),
        );
        let rejected = Family::<Rejection, Counter>::default();
        registry.register(
            "tally_attestations_rejected",
            "Attestations refused, by reason",
            rejected.clone(),
        );
        let append = Histogram::new(BUCKETS.iter().copied());
        registry.register(
            "tally_append_seconds",
            "Time from receiving an attestation to its durable log index",
            append.clone(),
        );
        let publish = Histogram::new(BUCKETS.iter().copied());
        registry.register(
            "tally_publish_seconds",
            "Time from receiving an attestation to a signed checkpoint covering it",
            publish.clone(),
        );
        let tree_size = Family::<Stage, Gauge>::default();
        registry.register(
            "tally_tree_size",
            "Entries in the log by stage",
            tree_size.clone(),
        );
        let uploads = Family::<Outcome, Counter>::default();
        registry.register(
            "tally_artifact_uploads",
            "Artifact uploads by outcome",
            uploads.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register(
            "tally_artifact_stored_bytes",
            "Bytes of artifacts newly stored",
            upload_bytes.clone(),
        );
        let mirrored = Gauge::default();
        if mirrors {
            registry.register(
                "tally_attestations_in_artifact_store",
                "Log entries copied into the OCI store (the rest of tally_tree_size{stage=\"published\"} is its lag)",
                mirrored.clone(),
            );
        }
        let runs = Family::<Status, Gauge>::default();
        registry.register("tally_runs", "Workflow runs by status", runs.clone());
        let deliveries = Family::<IntegrationLabel, Counter>::default();
        registry.register(
            "tally_integration_deliveries",
            "Delivery attempts to each integration, by outcome (delivered, retry, failed)",
            deliveries.clone(),
        );
        let outbox = Family::<IntegrationLabel, Gauge>::default();
        registry.register(
            "tally_integration_outbox",
            "Events in the integrations' outbox, by integration and state (pending, delivered, failed)",
            outbox.clone(),
        );
        let witnesses = witnesses.then(|| {
            let w = WitnessMetrics {
                cosignatures: Gauge::default(),
                quorum: Gauge::default(),
                holding: Gauge::default(),
                published_short: Counter::default(),
                requests: Family::default(),
            };
            registry.register(
                "tally_checkpoint_cosignatures",
                "Witness cosignatures the published checkpoint carries",
                w.cosignatures.clone(),
            );
            registry.register(
                "tally_checkpoint_quorum",
                "1 when the published checkpoint satisfies the witness quorum",
                w.quorum.clone(),
            );
            registry.register(
                "tally_checkpoint_held",
                "1 while a signed checkpoint is held back for its witness quorum (on_no_quorum = hold)",
                w.holding.clone(),
            );
            registry.register(
                "tally_checkpoints_published_short",
                "Checkpoints published without their witness quorum (on_no_quorum = publish)",
                w.published_short.clone(),
            );
            registry.register(
                "tally_witness_requests",
                "add-checkpoint requests to each witness, by outcome (cosigned, failed, conflict)",
                w.requests.clone(),
            );
            w
        });
        Metrics {
            registry,
            accepted,
            rejected,
            append,
            publish,
            uploads,
            upload_bytes,
            tree_size,
            runs,
            mirrored,
            mirrors,
            witnesses,
            deliveries,
            outbox,
        }
    }

    /// Counts a delivery attempt to `integration` (`delivered`, `retry`, `failed`).
    pub fn integration_delivery(&self, integration: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&IntegrationLabel {
                integration: integration.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets the outbox's counts: (integration, state, events).
    pub fn set_outbox(&self, counts: &[(String, String, i64)]) {
        for (integration, state, n) in counts {
            self.outbox
                .get_or_create(&IntegrationLabel {
                    integration: integration.clone(),
                    outcome: state.clone(),
                })
                .set(*n);
        }
    }

    /// Counts an accepted attestation.
    pub fn accepted(&self, workflow: &str) {
        self.accepted
            .get_or_create(&WorkflowLabel {
                workflow: workflow.to_owned(),
            })
            .inc();
    }

    /// Counts a rejected attestation.
    pub fn rejected(&self, workflow: &str, reason: &str) {
        self.rejected
            .get_or_create(&Rejection {
                workflow: workflow.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts an artifact upload by outcome (`new`, `already`, or the error code);
    /// `bytes` stored for a new one.
    pub fn upload(&self, outcome: &str, bytes: u64) {
        self.uploads
            .get_or_create(&Outcome {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.upload_bytes.inc_by(bytes);
    }

    /// Renders everything, with the gauges given by the caller (`mirrored`:
    /// how many log entries the OCI store holds, when it copies them).
    pub fn render(
        &self,
        sizes: crate::ledger::Sizes,
        runs: &[(String, i64)],
        mirrored: Option<u64>,
        witnessing: Option<WitnessGauges>,
    ) -> String {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (stage, n) in [
            ("sequenced", sizes.sequenced),
            ("integrated", sizes.integrated),
            ("published", sizes.published),
        ] {
            self.tree_size.get_or_create(&Stage { stage }).set(gauge(n));
        }
        for status in RUN_STATUSES {
            let n = runs.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
            self.runs
                .get_or_create(&Status {
                    status: (*status).to_owned(),
                })
                .set(n);
        }
        for (status, n) in runs.iter().filter(|(s, _)| !RUN_STATUSES.contains(&s.as_str())) {
            self.runs
                .get_or_create(&Status {
                    status: status.clone(),
                })
                .set(*n);
        }
        if let (true, Some(m)) = (self.mirrors, mirrored) {
            self.mirrored.set(gauge(m));
        }
        if let (Some(m), Some(w)) = (&self.witnesses, witnessing) {
            m.cosignatures.set(gauge(w.state.cosignatures as u64));
            m.quorum.set(i64::from(w.state.quorum));
            m.holding.set(i64::from(w.state.holding));
            let to = |c: &Counter, n: u64| {
                c.inc_by(n.saturating_sub(c.get()));
            };
            to(&m.published_short, w.state.published_short);
            for s in &w.witnesses {
                for (outcome, n) in [
                    ("cosigned", s.cosigned),
                    ("failed", s.failed),
                    ("conflict", s.conflicts),
                ] {
                    let c = m.requests.get_or_create(&WitnessOutcome {
                        witness: s.name.clone(),
                        outcome,
                    });
                    to(&c, n);
                }
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_with_the_documented_names() {
        let m = Metrics::new(true, false);
        m.accepted("wf");
        m.rejected("wf", "signature");
        m.append.observe(0.003);
        m.upload("new", 10);
        let sizes = crate::ledger::Sizes {
            sequenced: 3,
            integrated: 2,
            published: 1,
        };
        let text = m.render(sizes, &[("SUCCEEDED".into(), 1)], Some(1), None);
        for line in [
            "tally_attestations_accepted_total{workflow=\"wf\"} 1",
            "tally_attestations_rejected_total{workflow=\"wf\",reason=\"signature\"} 1",
            "tally_append_seconds_bucket{le=\"0.005\"} 1",
            "tally_append_seconds_count 1",
            "tally_tree_size{stage=\"published\"} 1",
            "tally_runs{status=\"SUCCEEDED\"} 1",
            "tally_runs{status=\"FAILED\"} 0",
            "tally_artifact_uploads_total{outcome=\"new\"} 1",
            "tally_artifact_stored_bytes_total 10",
            "tally_attestations_in_artifact_store 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
