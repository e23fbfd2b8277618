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
    /// Audit a whole C2SP tiled log from a URL or a directory.
    Audit(AuditArgs),
}

/// `tally key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a log (note) signing key and its verifier key.
    Generate(KeyGenerateArgs),
}

/// `tally key generate`
#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// The log's origin, which is also the key name (e.g. `tally.example.com/log`).
    #[arg(long)]
    pub origin: String,
    /// Where to write the secret signer key (mode 0600).
    #[arg(long, default_value = "log.key")]
    pub key_out: PathBuf,
    /// Where to write the public verifier key.
    #[arg(long, default_value = "log.pub")]
    pub pub_out: PathBuf,
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
    /// The `.tlog-proof` file.
    pub proof: PathBuf,
    /// The entry (leaf) bytes the proof is for.
    #[arg(long)]
    pub entry: PathBuf,
    /// The log's verifier key: the key text, or a file holding it.
    #[arg(long)]
    pub log_key: String,
    /// Optionally, the envelope the entry names; its digest and size are checked.
    #[arg(long)]
    pub envelope: Option<PathBuf>,
    /// Trusted witness cosignature keys (text or file); repeatable.
    #[arg(long = "witness-key")]
    pub witness_keys: Vec<String>,
    /// How many trusted witnesses must have cosigned.
    #[arg(long, default_value_t = 0)]
    pub min_witnesses: usize,
    /// The origin the checkpoint must carry (default: the log key's name).
    #[arg(long)]
    pub origin: Option<String>,
    /// Accept any checkpoint origin.
    #[arg(long, conflicts_with = "origin")]
    pub any_origin: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
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
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}
