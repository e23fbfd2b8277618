//! The command line, as clap parses it. Commands turn these raw flags into
//! validated values before doing anything.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tally — a software supply-chain ledger with a verifiable transparency log.
#[derive(Debug, Parser)]
#[command(name = "tally", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Verify a Merkle proof given on the command line or as JSON.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Verify offline that an entry is included in a log under a signed checkpoint.
    Verify(VerifyArgs),
    /// Audit a whole C2SP tiled log from a URL, a directory, or a clone of a ledger.
    Audit(AuditArgs),
    /// Operate a ledger directory: create, append, check, prove.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Work with workflow contracts.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Write and test Rego policies: evaluate one on a file, run policy tests.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run a C2SP tlog-witness: cosign checkpoints of configured logs that
    /// are consistent with everything it cosigned before.
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// Follow a log and catch a split view: verify each new checkpoint and
    /// compare what the log, its mirrors, clones and witnesses serve.
    Monitor(MonitorArgs),

    /// Craft an attestation in a CI pipeline: init, add, status, push, reset.
    #[command(subcommand)]
    Attestation(AttestationCommand),
    /// Run the control plane (HTTP API, ledger, contracts, metadata).
    Serve(ServeArgs),
    /// The whole loop on a fresh temporary control plane, printed as the
    /// commands a user would type: serve, a workflow, a refused and an
    /// accepted push, offline verification, an audit of a git clone.
    Demo(DemoArgs),
    /// Manage workflow service tokens (admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage workflows' signing keys (admin).
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// What the integrations were told: the outbox's deliveries (admin).
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Inspect workflow runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// Organization-wide summary: runs per day, success and failure per workflow.
    Stats(StatsArgs),
    /// Artifacts stored through the control plane.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Print a shell completion script: `source <(tally completion bash)`.
    Completion(CompletionArgs),
    /// Write the manual pages (tally(1) and one per subcommand) into a
    /// directory, or print tally(1) in roff.
    Man(ManArgs),
}

/// `tally completion`
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `tally man`
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page here (`tally.1`, `tally-attestation-push.1`, …)
    /// instead of printing tally(1).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Output format (with --dir: the pages written).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally artifact …`
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Download an artifact by digest, verified before it is renamed into place.
    Download(ArtifactDownloadArgs),
    /// Upload a file for a workflow outside a run (its kind validated first).
    Upload(ArtifactUploadArgs),
}

/// `tally artifact upload`
#[derive(Debug, Args)]
pub struct ArtifactUploadArgs {
    /// The file.
    pub file: PathBuf,
    /// The workflow it belongs to (the token must act for it).
    #[arg(long)]
    pub workflow: String,
    /// Its material kind (SPEC.md §11.3), validated like `attestation add` does.
    #[arg(long, default_value = "ARTIFACT")]
    pub kind: String,
    /// Its name [default: the file name].
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally artifact download`
#[derive(Debug, Args)]
pub struct ArtifactDownloadArgs {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Where to write it.
    #[arg(short = 'o', long = "out")]
    pub file: PathBuf,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file (SPEC.md §12.1).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The data directory [default: ./tally-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8787].
    #[arg(long)]
    pub listen: Option<String>,
    /// The contracts repository (path or git URL) [default: seeded in the data directory].
    #[arg(long)]
    pub contracts: Option<String>,
    /// The log's origin, at first start [default: tally.localhost/log].
    #[arg(long)]
    pub origin: Option<String>,
    /// Largest request body in bytes.
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Store artifacts in this OCI repository (`host[:port]/path`) instead of the data directory.
    #[arg(long, value_name = "REPOSITORY")]
    pub oci_repository: Option<String>,
    /// Seconds after which an unfinished run expires.
    #[arg(long)]
    pub run_ttl_secs: Option<u64>,
    /// A file holding the admin token to set at first start (else TALLY_ADMIN_TOKEN, else generated).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Log lines on stderr: human text, or one JSON object per line. The
    /// level comes from TALLY_LOG (a tracing filter, default `info`).
    #[arg(long, value_enum, env = "TALLY_LOG_FORMAT", default_value_t)]
    pub log_format: LogFormat,
}

/// `tally demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to run it (default: a fresh temporary directory, removed after).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Output format (the steps are printed as they run either way).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (request id, workflow, run, log index as fields).
    Json,
}

/// How admin commands reach the server.
#[derive(Debug, Args)]
pub struct ServerConn {
    /// The control plane's URL.
    #[arg(long, env = "TALLY_SERVER", hide_env_values = true)]
    pub server: String,
    /// The admin token (or a workflow token where allowed).
    #[arg(long, env = "TALLY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for one or more workflows (shown once).
    Create(TokenCreateArgs),
    /// List tokens.
    List(ConnArgs),
    /// Revoke a token.
    Revoke(TokenRevokeArgs),
}

/// `tally integration …`
#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// The configured integrations, with their pending, delivered and failed events.
    List(ConnArgs),
    /// The outbox's deliveries, newest first: state, attempts, last error.
    Status(IntegrationStatusArgs),
    /// Make failed deliveries pending again (one, an integration's, or all).
    Retry(IntegrationRetryArgs),
}

/// `tally integration status`
#[derive(Debug, Args)]
pub struct IntegrationStatusArgs {
    /// Only this integration's deliveries.
    #[arg(long)]
    pub integration: Option<String>,
    /// Only deliveries in this state.
    #[arg(long, value_parser = ["pending", "delivered", "failed"])]
    pub state: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally integration retry`
#[derive(Debug, Args)]
pub struct IntegrationRetryArgs {
    /// One failed delivery (its id in `tally integration status`).
    #[arg(long, conflicts_with = "integration")]
    pub id: Option<i64>,
    /// Every failed delivery of this integration (neither: every failed one).
    #[arg(long)]
    pub integration: Option<String>,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// Only the connection.
#[derive(Debug, Args)]
pub struct ConnArgs {
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally token create`
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A workflow the token may act for (repeatable).
    #[arg(long = "workflow", required = true)]
    pub workflows: Vec<String>,
    /// Lifetime, e.g. `30d`, `12h`, `90m`, `3600s` (default: no expiry).
    #[arg(long)]
    pub expires: Option<String>,
    /// What the token is for.
    #[arg(long, default_value = "")]
    pub description: String,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally token revoke`
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (`tok-…`).
    pub id: String,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally workflow …`
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// List workflows and their key ids.
    List(ConnArgs),
    /// Signing keys.
    #[command(subcommand)]
    Key(WorkflowKeyCommand),
}

/// `tally workflow key …`
#[derive(Debug, Subcommand)]
pub enum WorkflowKeyCommand {
    /// Register the public key that signs a workflow's attestations (a log
    /// entry).
    Add(WorkflowKeyAddArgs),
    /// Revoke a registered key (a log entry): no new push verifies with
    /// it; attestations it signed before stay valid.
    Revoke(WorkflowKeyRevokeArgs),
    /// The keys registered for a workflow.
    List(WorkflowKeyListArgs),
}

/// `tally workflow key revoke`
#[derive(Debug, Args)]
pub struct WorkflowKeyRevokeArgs {
    /// The workflow.
    #[arg(long)]
    pub workflow: String,
    /// The public key (PEM file), or its key id (64 hex digits).
    #[arg(long)]
    pub key: String,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally workflow key list`
#[derive(Debug, Args)]
pub struct WorkflowKeyListArgs {
    /// The workflow.
    #[arg(long)]
    pub workflow: String,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally workflow key add`
#[derive(Debug, Args)]
pub struct WorkflowKeyAddArgs {
    /// The workflow.
    #[arg(long)]
    pub workflow: String,
    /// The public key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally run …`
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// List runs, newest first.
    List(RunListArgs),
    /// One run.
    Describe(RunDescribeArgs),
    /// Grant one run an exception (admin): its blocking policy violations
    /// no longer refuse its push until it expires; the verdict logged with
    /// the attestation records who, why and until when.
    Exception(RunExceptionArgs),
}

/// `tally run exception`
#[derive(Debug, Args)]
pub struct RunExceptionArgs {
    /// The run id.
    pub id: String,
    /// Who grants it (a person; recorded in the log).
    #[arg(long)]
    pub by: String,
    /// Why (recorded in the log).
    #[arg(long)]
    pub reason: String,
    /// How long it may be used: 30m, 12h, 2d.
    #[arg(long = "for", default_value = "24h")]
    pub valid_for: String,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally run list`
#[derive(Debug, Args)]
pub struct RunListArgs {
    /// Only this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only this status (initialized, succeeded, failed, cancelled, expired).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally run describe`
#[derive(Debug, Args)]
pub struct RunDescribeArgs {
    /// The run id.
    pub id: String,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Over the last this many days.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[command(flatten)]
    pub conn: ServerConn,
}

/// `tally attestation …`
#[derive(Debug, Subcommand)]
pub enum AttestationCommand {
    /// Start a run: detect the runner, fetch the workflow's contract, check it.
    Init(AttInitArgs),
    /// Add a material: validate it against its kind and the contract, hash it, record it.
    Add(AttAddArgs),
    /// What the contract requires, what is present, what is missing.
    Status(AttStatusArgs),
    /// Build, sign and send the attestation (or write it, with --dry-run).
    Push(AttPushArgs),
    /// End the run as failed or cancelled and clear the state.
    Reset(AttResetArgs),
    /// Check a signed attestation offline: signature, statement, predicate.
    Verify(AttVerifyArgs),
}

/// Flags every `tally attestation` command takes.
#[derive(Debug, Args)]
pub struct AttCommon {
    /// The crafting state file [default: $TALLY_STATE, else .tally/attestation.json].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The control plane's URL.
    #[arg(long, env = "TALLY_SERVER", hide_env_values = true)]
    pub server: Option<String>,
    /// The workflow's service token. Without one, the CI's OIDC ID token
    /// is used (tokenless CI): --id-token, --id-token-file, or GitHub
    /// Actions' token service.
    #[arg(long, env = "TALLY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CI's OIDC ID token itself (e.g. a GitLab `id_tokens` entry named TALLY_ID_TOKEN).
    #[arg(long, env = "TALLY_ID_TOKEN", hide_env_values = true)]
    pub id_token: Option<String>,
    /// A file holding the CI's OIDC ID token.
    #[arg(long, env = "TALLY_ID_TOKEN_FILE")]
    pub id_token_file: Option<PathBuf>,
    /// The audience to request from GitHub Actions' token service.
    #[arg(long, env = "TALLY_OIDC_AUDIENCE", default_value = "tally")]
    pub oidc_audience: String,
    /// Keep the crafting state on the control plane, for a run whose jobs
    /// share no disk: `init` stores it there; `add` (from any job), `status`
    /// and `push` read and update it (optimistic concurrency: concurrent
    /// adds never lose a material).
    #[arg(long, env = "TALLY_REMOTE_STATE")]
    pub remote_state: bool,
    /// With --remote-state: the run (`init` prints it) [default: the run of
    /// the local state file].
    #[arg(long, env = "TALLY_RUN_ID")]
    pub run_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally attestation init`
#[derive(Debug, Args)]
pub struct AttInitArgs {
    /// The workflow being attested.
    #[arg(long)]
    pub workflow: String,
    /// Its project (a dry run with --contract only; the control plane knows it otherwise).
    #[arg(long)]
    pub project: Option<String>,
    /// The version of the project being built.
    #[arg(long)]
    pub version: Option<String>,
    /// Check against this contract revision (a commit) instead of the tracked head.
    #[arg(long)]
    pub contract_revision: Option<String>,
    /// Run with no control plane: the contract comes from --contract or --contracts.
    #[arg(long)]
    pub dry_run: bool,
    /// A contract file (with --dry-run).
    #[arg(long, conflicts_with = "contracts")]
    pub contract: Option<PathBuf>,
    /// A contracts repository, a path or a git URL (with --dry-run).
    #[arg(long)]
    pub contracts: Option<String>,
    /// Discard a run already in progress.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub common: AttCommon,
}

/// `tally attestation add`
#[derive(Debug, Args)]
pub struct AttAddArgs {
    /// The material's name (as the contract names it).
    #[arg(long)]
    pub name: String,
    /// Its kind; by default the contract's, else detected (SPEC.md §11.3).
    #[arg(long)]
    pub kind: Option<String>,
    /// A file path, a string, or an image reference.
    #[arg(long)]
    pub value: String,
    /// An annotation `key=value` (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// CycloneDX: check only the header and the shape of `components`.
    #[arg(long)]
    pub lenient: bool,
    /// ATTESTATION / SLSA_PROVENANCE: a public key (PEM) that must have signed it.
    #[arg(long)]
    pub verify_key: Option<PathBuf>,
    /// Replace a material of the same name added before.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub common: AttCommon,
}

/// `tally attestation status`
#[derive(Debug, Args)]
pub struct AttStatusArgs {
    /// Every detail: annotations, digests, runner and env values.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub common: AttCommon,
}

/// `tally attestation push`
#[derive(Debug, Args)]
pub struct AttPushArgs {
    /// The signing key (PEM; cosign-encrypted keys read TALLY_KEY_PASSWORD).
    /// Without it the push is keyless: an ephemeral key, certified for this
    /// run by the control plane's CA, signs and is then forgotten.
    #[arg(long, env = "TALLY_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// An attestation annotation `key=value` (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Write the offline bundle (envelope, entry, tlog-proof with its checkpoint) here.
    #[arg(long, default_value = "attestation.bundle.json")]
    pub bundle: PathBuf,
    /// How long to wait for the inclusion proof (and the witness quorum), seconds.
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
    /// Write the bundle only once its checkpoint is cosigned as these ask.
    #[command(flatten)]
    pub witnesses: WitnessArgs,
    /// Sign and write the envelope to --envelope; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the signed envelope is written.
    #[arg(long, default_value = "attestation.dsse.json")]
    pub envelope: PathBuf,
    #[command(flatten)]
    pub common: AttCommon,
}

/// Why a run ended without an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResetTrigger {
    /// The pipeline failed.
    Failure,
    /// The pipeline was cancelled.
    Cancellation,
}

/// `tally attestation reset`
#[derive(Debug, Args)]
pub struct AttResetArgs {
    /// What ended the run.
    #[arg(long, value_enum, default_value_t = ResetTrigger::Failure)]
    pub trigger: ResetTrigger,
    /// Why, in words.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub common: AttCommon,
}

/// `tally attestation verify`
#[derive(Debug, Args)]
pub struct AttVerifyArgs {
    /// The DSSE envelope (or an offline bundle holding one).
    pub envelope: PathBuf,
    /// The signer's public key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally contract …`
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Check contract files, workflows.toml, or a contracts repository directory.
    Lint(ContractLintArgs),
    /// The revisions of one contract (commit, date, author, message).
    Log(ContractLogArgs),
    /// A contract's text at a revision: `<name>[@<rev>]`.
    Show(ContractShowArgs),
    /// Semantic diff of contracts and workflows between two revisions.
    Diff(ContractDiffArgs),
    /// What a pull request runs: lint the head, print the semantic diff.
    Check(ContractCheckArgs),
}

/// `tally contract log`
#[derive(Debug, Args)]
pub struct ContractLogArgs {
    /// The contract's name.
    pub name: String,
    /// Start from this revision.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// The contracts repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally contract show`
#[derive(Debug, Args)]
pub struct ContractShowArgs {
    /// `<name>` or `<name>@<rev>`.
    pub contract: String,
    /// The contracts repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally contract diff`
#[derive(Debug, Args)]
pub struct ContractDiffArgs {
    /// The older revision.
    pub rev_a: String,
    /// The newer revision.
    pub rev_b: String,
    /// Only this contract.
    pub name: Option<String>,
    /// The contracts repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally contract check`
#[derive(Debug, Args)]
pub struct ContractCheckArgs {
    /// The pull request's base revision.
    #[arg(long)]
    pub base: String,
    /// The pull request's head revision.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// Fail (exit 4) when a change is breaking.
    #[arg(long)]
    pub deny_breaking: bool,
    /// The contracts repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally contract lint`
#[derive(Debug, Args)]
pub struct ContractLintArgs {
    /// Files or directories (a directory is a contracts repository).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally witness …`
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Create a witness signing key; prints its cosignature verifier key.
    Keygen(WitnessKeygenArgs),
    /// Serve `POST /add-checkpoint` (C2SP tlog-witness) and `GET /verifier-key`.
    Serve(WitnessServeArgs),
}

/// `tally witness keygen`
#[derive(Debug, Args)]
pub struct WitnessKeygenArgs {
    /// The witness's name (e.g. `witness.example.com/w1`).
    #[arg(long)]
    pub name: String,
    /// Where to write the secret key (mode 0600; never overwritten).
    #[arg(long, default_value = "witness.key")]
    pub key_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally witness serve`
#[derive(Debug, Args)]
pub struct WitnessServeArgs {
    /// The configuration file (TOML: `key_file`, `state_dir`, `[[log]]` with
    /// `origin` and `keys`).
    #[arg(long)]
    pub config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub listen: String,
}

/// `tally policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a policy (Chainloop `kind: Policy` YAML or plain `.rego`) on
    /// a material file: the verdict, the violations and the input the policy
    /// saw. Exit 0 passed or skipped, 4 violations, 2 a policy that does not compile.
    Eval(PolicyEvalArgs),
    /// Run policy tests (`*.test.toml`: a policy, a fixture, the expected
    /// verdict and violations). Exit 0 all pass, 1 any fails.
    Test(PolicyTestArgs),
}

/// `tally policy eval`
#[derive(Debug, Args)]
pub struct PolicyEvalArgs {
    /// The policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// The material (for an ATTESTATION policy: a statement or a DSSE envelope).
    #[arg(long)]
    pub material: PathBuf,
    /// The material's kind (default: detected, as `attestation add` does).
    #[arg(long)]
    pub kind: Option<String>,
    /// An argument, `name=value` (repeatable).
    #[arg(long = "with", value_name = "NAME=VALUE")]
    pub with: Vec<String>,
    /// The material's name in `input.chainloop_metadata`.
    #[arg(long, default_value = "material")]
    pub name: String,
    /// Print the input as the policy saw it (always in `--output json`).
    #[arg(long)]
    pub show_input: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally policy test`
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// Test files, or directories searched for `*.test.toml`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally ledger …`
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create a ledger directory with a new signing key.
    Init(LedgerInitArgs),
    /// Append entries (files) and wait until they are published.
    Append(LedgerAppendArgs),
    /// Re-check a whole ledger (or a clone of one); exit 1 on the first problem.
    Fsck(LedgerFsckArgs),
    /// Write the tlog-proof of one entry.
    Proof(LedgerProofArgs),
    /// Pack loose git objects now (also done automatically).
    Pack(LedgerDirArg),
    /// Append from many writers until killed, printing each acknowledgement (crash tests).
    #[command(hide = true)]
    Stress(LedgerStressArgs),
}

/// A ledger directory.
#[derive(Debug, Args)]
pub struct LedgerDirArg {
    /// The ledger directory.
    #[arg(long, default_value = "tally-data/ledger")]
    pub dir: PathBuf,
}

/// `tally ledger init`
#[derive(Debug, Args)]
pub struct LedgerInitArgs {
    /// The ledger directory.
    #[arg(long, default_value = "tally-data/ledger")]
    pub dir: PathBuf,
    /// The log's origin (and key name), e.g. `tally.example.com/log`.
    #[arg(long)]
    pub origin: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally ledger append`
#[derive(Debug, Args)]
pub struct LedgerAppendArgs {
    /// The ledger directory.
    #[arg(long, default_value = "tally-data/ledger")]
    pub dir: PathBuf,
    /// Files whose bytes are entries to append.
    #[arg(required = true)]
    pub entries: Vec<PathBuf>,
    /// Files stored by digest beside the log (e.g. the envelopes the entries name).
    #[arg(long = "body")]
    pub bodies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally ledger fsck`
#[derive(Debug, Args)]
pub struct LedgerFsckArgs {
    /// A ledger directory, a bare ledger repository, or a clone of one.
    pub dir: PathBuf,
    /// The log's verifier key (default: `<dir>/log.pub`).
    #[arg(long)]
    pub log_key: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally ledger proof`
#[derive(Debug, Args)]
pub struct LedgerProofArgs {
    /// The ledger directory.
    #[arg(long, default_value = "tally-data/ledger")]
    pub dir: PathBuf,
    /// The entry's index.
    #[arg(long)]
    pub index: u64,
    /// Where to write the tlog-proof (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the entry's bytes here.
    #[arg(long)]
    pub entry_out: Option<PathBuf>,
}

/// `tally ledger stress`
#[derive(Debug, Args)]
pub struct LedgerStressArgs {
    /// The ledger directory (created with origin `stress.tally.test/log`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Entries per writer.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Entry size in bytes.
    #[arg(long, default_value_t = 200)]
    pub entry_size: usize,
}

/// `tally key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a log (note) signing key and its verifier key.
    Generate(KeyGenerateArgs),
}

/// What a generated key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// A log's note signer (Ed25519, C2SP key text).
    Log,
    /// An attestation signing key (PEM; encrypted cosign-style when TALLY_KEY_PASSWORD is set).
    Signing,
}

/// Signing key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

/// `tally key generate`
#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// What the key signs: the log's checkpoints, or attestations.
    #[arg(long, value_enum, default_value_t = KeyKind::Log)]
    pub kind: KeyKind,
    /// The log's origin, which is also the key name (e.g. `tally.example.com/log`); `--kind log` only.
    #[arg(long, required_if_eq("kind", "log"))]
    pub origin: Option<String>,
    /// The signature algorithm of a signing key.
    #[arg(long, value_enum, default_value_t = SigningAlgorithm::EcdsaP256)]
    pub algorithm: SigningAlgorithm,
    /// Where to write the secret key (mode 0600) [default: log.key, or cosign.key for --kind signing].
    #[arg(long)]
    pub key_out: Option<PathBuf>,
    /// Where to write the public key [default: log.pub, or cosign.pub for --kind signing].
    #[arg(long)]
    pub pub_out: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally proof …`
#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// Verify an inclusion proof (RFC 9162 §2.1.3.2).
    Inclusion(InclusionArgs),
    /// Verify a consistency proof (RFC 9162 §2.1.4.2).
    Consistency(ConsistencyArgs),
}

/// `tally proof inclusion`
#[derive(Debug, Args)]
pub struct InclusionArgs {
    /// A JSON file (or `-` for stdin) with index, size, root, leafHash and proof.
    #[arg(long, conflicts_with_all = ["index", "size", "root", "leaf_hash", "proof"])]
    pub json: Option<PathBuf>,
    /// The leaf hash (hex or base64).
    #[arg(long, conflicts_with = "entry")]
    pub leaf_hash: Option<String>,
    /// A file holding the entry itself; its leaf hash is computed.
    #[arg(long)]
    pub entry: Option<PathBuf>,
    /// The leaf index.
    #[arg(long)]
    pub index: Option<u64>,
    /// The tree size.
    #[arg(long)]
    pub size: Option<u64>,
    /// The tree root (hex or base64).
    #[arg(long)]
    pub root: Option<String>,
    /// Proof hashes, leaf's sibling first (hex or base64; repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub proof: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally proof consistency`
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// A JSON file (or `-` for stdin) with size1, size2, root1, root2 and proof.
    #[arg(long, conflicts_with_all = ["old_size", "new_size", "old_root", "new_root", "proof"])]
    pub json: Option<PathBuf>,
    /// The older tree size.
    #[arg(long)]
    pub old_size: Option<u64>,
    /// The newer tree size.
    #[arg(long)]
    pub new_size: Option<u64>,
    /// The older root (hex or base64).
    #[arg(long)]
    pub old_root: Option<String>,
    /// The newer root (hex or base64).
    #[arg(long)]
    pub new_root: Option<String>,
    /// Proof hashes (hex or base64; repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub proof: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The `.tlog-proof` file (or use --bundle).
    pub proof: Option<PathBuf>,
    /// The entry (leaf) bytes the proof is for.
    #[arg(long)]
    pub entry: Option<PathBuf>,
    /// An offline bundle written by `tally attestation push` (proof, entry and envelope in one file).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// The signer's public key (PEM): also check the envelope's signature and statement.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// For a keyless signature: the control plane's CA certificates (PEM,
    /// `GET /api/v1/ca`); the bundle's certificate must chain to one and be
    /// in the log before the attestation (needs --bundle).
    #[arg(long, conflicts_with = "key", requires = "bundle")]
    pub ca: Option<PathBuf>,
    /// With --ca: the identity (certificate SAN URI) the signer must have, exactly.
    #[arg(long, requires = "ca")]
    pub certificate_identity: Option<String>,
    /// With --ca: a regular expression the signer's identity must match.
    #[arg(long, requires = "ca", conflicts_with = "certificate_identity")]
    pub certificate_identity_regexp: Option<String>,
    /// With --ca: the issuer of the signer's identity (the OIDC issuer, or
    /// the control plane's `https://<origin>` for a tally-token run), exactly.
    #[arg(long, requires = "ca")]
    pub certificate_oidc_issuer: Option<String>,
    /// The log's verifier key: the key text, or a file holding it.
    #[arg(long)]
    pub log_key: String,
    /// Optionally, the envelope the entry names; its digest and size are checked.
    #[arg(long)]
    pub envelope: Option<PathBuf>,
    #[command(flatten)]
    pub witnesses: WitnessArgs,
    /// The origin the checkpoint must carry (default: the log key's name).
    #[arg(long)]
    pub origin: Option<String>,
    /// Accept any checkpoint origin.
    #[arg(long, conflicts_with = "origin")]
    pub any_origin: bool,
    /// The control plane's verdict key (PEM, `verdict_key` of GET
    /// /api/v1/log): check the signature of the policy verdict the entry binds.
    #[arg(long)]
    pub verdict_key: Option<PathBuf>,
    /// A clone of the contracts repository: re-evaluate the policies the
    /// verdict records, at its pinned commit (needs --bundle; with --materials).
    #[arg(long, requires = "bundle")]
    pub contracts: Option<PathBuf>,
    /// A folder holding the attestation's materials (found by digest).
    #[arg(long, requires = "contracts")]
    pub materials: Option<PathBuf>,
    /// A clone of the ledger (`git clone <server>/ledger.git`): say whether
    /// --key was trusted for the entry's workflow at its log index —
    /// registered by a key entry before it and not revoked, or (with
    /// --contracts) in `keys/<workflow>/` at the run's pinned commit.
    #[arg(long, requires_all = ["key", "bundle"])]
    pub ledger: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Which witnesses must have cosigned a checkpoint: `--witness-key` ×n
/// with `--min-witnesses k` (k of n), or a C2SP tlog-policy file.
#[derive(Debug, Args, Default, Clone)]
pub struct WitnessArgs {
    /// Trusted witness cosignature keys (text or file); repeatable.
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// How many of the --witness-key witnesses must have cosigned.
    #[arg(long, default_value_t = 0)]
    pub min_witnesses: usize,
    /// A C2SP tlog-policy file (witnesses, groups, quorum) instead.
    #[arg(long, conflicts_with_all = ["witness_keys", "min_witnesses"])]
    pub witness_policy: Option<PathBuf>,
}

/// `tally audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The log: an `http(s)://` URL prefix or a local directory.
    pub log: String,
    /// The log's verifier key: the key text, or a file holding it.
    #[arg(long)]
    pub log_key: String,
    /// An older signed checkpoint file; the log must extend it.
    #[arg(long)]
    pub since: Option<PathBuf>,
    /// Trusted witness cosignature keys (text or file); repeatable.
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// The origin the checkpoint must carry (default: any).
    #[arg(long)]
    pub origin: Option<String>,
    /// Treat a git clone's working tree as static tiles only (skip the history).
    #[arg(long = "static")]
    pub static_only: bool,
    /// Other views of the same log to compare with it: checkpoint files,
    /// log URLs, `witness+<url>`, `git+<remote>`, folders; repeatable. Any
    /// that is not consistent with the audited log fails the audit, with
    /// both signed notes as evidence.
    #[arg(long)]
    pub compare: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `tally monitor`
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// What to compare: log URLs (`https://…`), witnesses
    /// (`witness+https://…`), git remotes (`git+<url>`), folders (tiles, or
    /// a ledger's git repository or clone), checkpoint files.
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// The log's verifier key: the key text, or a file holding it.
    #[arg(long)]
    pub log_key: String,
    /// The origin the checkpoints carry (default: the log key's name).
    #[arg(long)]
    pub origin: Option<String>,
    /// Which witnesses the log's checkpoints must carry cosignatures of.
    #[command(flatten)]
    pub witnesses: WitnessArgs,
    /// Where the last verified checkpoint, fetched git remotes and the
    /// evidence of forks are kept (without it, each run starts afresh).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Compare once and exit (for CI): 0 consistent, 1 fork or invalid
    /// source, 3 a source unreachable.
    #[arg(long)]
    pub once: bool,
    /// Seconds between rounds when following the log.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Output format (with --output json, one JSON document per round).
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}
