//! `tally-bench`'s flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tally::cli::SigningAlgorithm;

/// tally's benchmarks (BENCHMARKS.md); each prints one JSON document.
#[derive(Debug, Parser)]
#[command(name = "tally-bench", version)]
pub(crate) struct Cli {
    /// Which benchmark.
    #[command(subcommand)]
    pub(crate) command: BenchCommand,
}

/// `tally-bench …`
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Durable appends from concurrent writers, proofs from storage, storage per entry.
    Ledger(BenchLedgerArgs),
    /// The control plane: pre-signed attestations pushed over HTTP by
    /// concurrent clients, then public inclusion-proof reads.
    Intake(BenchIntakeArgs),
    /// Artifacts through the control plane into an OCI registry: a large
    /// file up and down with the real CLI (time, peak memory of CLI and
    /// server), then many small uploads.
    Artifacts(BenchArtifactsArgs),
    /// The example policies on CycloneDX SBOMs of given sizes: the input
    /// document, each policy, the whole set.
    Policy(BenchPolicyArgs),
    /// One witness: C2SP add-checkpoint requests with consistency proofs
    /// from many logs, its state durable before each answer.
    Witness(BenchWitnessArgs),
    /// The web console's pages on a large installation (a data directory
    /// built by the intake benchmark, plus runs and refused pushes).
    Console(BenchConsoleArgs),
}

/// `tally-bench console`
#[derive(Debug, Args)]
pub(crate) struct BenchConsoleArgs {
    /// The data directory: reused when it exists, else built (entries
    /// pushed through the API, then the extra runs seeded).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Attestations pushed to build a new data directory (one run each).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) entries: usize,
    /// Runs added to the metadata (three workflows, 14 days, a quarter
    /// FAILED with a refused push each).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) extra_runs: usize,
    /// Timed requests per page (after one warm-up).
    #[arg(long, default_value_t = 20)]
    pub(crate) requests: usize,
}

impl BenchIntakeArgs {
    /// The intake benchmark building a console dataset: `n` Ed25519-signed
    /// attestations into `dir`, no proof reads.
    pub(crate) fn for_dataset(n: usize, dir: PathBuf) -> Self {
        BenchIntakeArgs {
            attestations: n,
            clients: 64,
            proof_reads: 0,
            algorithm: SigningAlgorithm::Ed25519,
            registry: None,
            dir: Some(dir),
            server: None,
            admin_token: None,
            policies: false,
            sbom_kib: 100,
            distinct_sboms: 1,
            witnesses: 0,
            webhooks: 0,
            abuse: false,
            keyless: false,
            idle_connections: 1000,
            floods: 4,
            stalled_uploads: 200,
        }
    }
}

/// `tally-bench witness`
#[derive(Debug, Args)]
pub(crate) struct BenchWitnessArgs {
    /// Checkpoints sent, in all.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) checkpoints: usize,
    /// Logs witnessed (one client each).
    #[arg(long, default_value_t = 16)]
    pub(crate) logs: usize,
    /// Most leaves a log grows by between two checkpoints.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch: u64,
    /// Where to put the witness's state (default: a fresh temporary directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

/// `tally-bench policy`
#[derive(Debug, Args)]
pub(crate) struct BenchPolicyArgs {
    /// SBOM sizes, KiB.
    #[arg(long, value_delimiter = ',', default_value = "100,1024,10240")]
    pub(crate) sizes_kib: Vec<usize>,
    /// Iterations for a 1 MiB SBOM (scaled by size, at least 3).
    #[arg(long, default_value_t = 20)]
    pub(crate) iterations: usize,
}

/// `tally-bench artifacts`
#[derive(Debug, Args)]
pub(crate) struct BenchArtifactsArgs {
    /// The registry (`host:port`; started by you, e.g. `docker-registry serve`);
    /// without it the server stores artifacts in its data directory.
    #[arg(long)]
    pub(crate) registry: Option<String>,
    /// Size of the large artifact, MiB.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size_mib: u64,
    /// How many 4 KiB artifacts to upload.
    #[arg(long, default_value_t = 4000)]
    pub(crate) small: usize,
    /// Concurrent clients for the small uploads.
    #[arg(long, default_value_t = 16)]
    pub(crate) clients: usize,
    /// Where to put the files and the server's data (default: a fresh temporary directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

/// `tally-bench intake`
#[derive(Debug, Args)]
pub(crate) struct BenchIntakeArgs {
    /// How many attestations to push (one run each).
    #[arg(long, default_value_t = 50_000)]
    pub(crate) attestations: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// How many inclusion proofs to read afterwards.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) proof_reads: usize,
    /// Signature algorithm of the workflow's key.
    #[arg(long, value_enum, default_value_t = SigningAlgorithm::EcdsaP256)]
    pub(crate) algorithm: SigningAlgorithm,
    /// Store artifacts in this OCI registry (`host:port`) and time how fast
    /// the accepted attestations are copied into it after the pushes.
    #[arg(long)]
    pub(crate) registry: Option<String>,
    /// Where to put the data directory (default: a fresh temporary directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Load this running control plane (`http://host:port`) instead of one
    /// started in this process; its admin token in `--admin-token` /
    /// `TALLY_TOKEN`. Runs, a token and a key for `psirt-advisories` are
    /// created through its API (setup, not timed).
    #[arg(long, requires = "admin_token", conflicts_with_all = ["registry", "dir"])]
    pub(crate) server: Option<String>,
    /// The admin token of `--server`.
    #[arg(long, env = "TALLY_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// Policies on: each attestation names an uploaded CycloneDX SBOM that
    /// a contract with three blocking policies (sbom-quality,
    /// licenses-allowed, no-critical-vulnerabilities) gates at intake.
    #[arg(long, conflicts_with = "server")]
    pub(crate) policies: bool,
    /// The SBOM's size with `--policies`, KiB.
    #[arg(long, default_value_t = 100, requires = "policies")]
    pub(crate) sbom_kib: usize,
    /// With `--policies`: how many distinct SBOMs the runs cycle through
    /// (each uploaded once; 1: every run names the same SBOM).
    #[arg(long, default_value_t = 1, requires = "policies")]
    pub(crate) distinct_sboms: usize,
    /// Witnesses started in this process and asked to cosign every
    /// checkpoint; the quorum is a majority of them (publish mode).
    #[arg(long, default_value_t = 0, conflicts_with = "server")]
    pub(crate) witnesses: usize,
    /// Webhook integrations configured (SPEC.md §17), all delivering to one
    /// receiver in this process that answers 200: what the outbox costs
    /// intake, and how fast it drains.
    #[arg(long, default_value_t = 0, conflicts_with = "server")]
    pub(crate) webhooks: usize,
    /// The abuse budget: push the first half of the attestations alone, the
    /// second while hostile clients hold idle connections, flood the intake
    /// with forged signatures and stall uploads; `/healthz` timed all along.
    #[arg(long)]
    pub(crate) abuse: bool,
    /// Keyless: no workflow key; each push first asks the control plane's
    /// CA for a certificate of its (pre-made) ephemeral key, then pushes the
    /// envelope carrying it — both timed. Certificates alone are timed
    /// first, on as many runs again.
    #[arg(long, conflicts_with_all = ["abuse", "policies", "server"])]
    pub(crate) keyless: bool,
    /// With `--abuse`: silent connections held open.
    #[arg(long, default_value_t = 1000, requires = "abuse")]
    pub(crate) idle_connections: usize,
    /// With `--abuse`: flooding clients (a workflow token each).
    #[arg(long, default_value_t = 4, requires = "abuse")]
    pub(crate) floods: usize,
    /// With `--abuse`: uploads that announce 1 GiB, send 64 KiB and stall.
    #[arg(long, default_value_t = 200, requires = "abuse")]
    pub(crate) stalled_uploads: usize,
}

/// `tally-bench ledger`
#[derive(Debug, Args)]
pub(crate) struct BenchLedgerArgs {
    /// Where to put the ledger (default: a fresh temporary directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Entry size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub(crate) entry_size: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    pub(crate) writers: usize,
    /// How long to append, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub(crate) duration: f64,
    /// Offered load in entries per second over all writers (0: as fast as acknowledged).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// How many inclusion proofs to generate from storage.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) proofs: u64,
}
