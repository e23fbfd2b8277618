//! The commands. Each takes its parsed flags, validates them, does the work
//! and returns what to print, or a classified [`crate::exit::Failure`].

pub mod admin;
pub mod attestation;
pub mod audit;
pub mod contract;
pub mod demo;
pub mod integration;
pub mod key;
pub mod ledger;
pub mod monitor;
pub mod policy;
pub mod progress;
pub mod proof;
pub mod serve;
pub mod shell;
pub mod verify;
pub mod witness;

use std::path::Path;

use anyhow::Context as _;
use ledger_format::note::VerifierKey;

use crate::exit::{Classify, Failure};

/// What a successful command prints: text for people, JSON for machines.
#[derive(Debug)]
pub struct Report {
    /// Lines for `--output text`.
    pub text: String,
    /// The document for `--output json`.
    pub json: serde_json::Value,
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("reading standard input")
            .usage()?;
        return Ok(buf);
    }
    std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .usage()
}

/// Parses a verifier key given as text, or as a path to a file holding it.
pub fn load_verifier_key(arg: &str) -> Result<VerifierKey, Failure> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg)
            .with_context(|| format!("cannot read key file {arg}"))
            .usage()?
    } else {
        arg.to_owned()
    };
    VerifierKey::parse(text.trim())
        .with_context(|| {
            format!("{arg:?} is neither a verifier key (<name>+<hex id>+<base64 key>) nor a file holding one")
        })
        .usage()
}

/// Parses every key of a repeatable `--witness-key`-style flag.
pub fn load_verifier_keys(args: &[String]) -> Result<Vec<VerifierKey>, Failure> {
    args.iter().map(|k| load_verifier_key(k)).collect()
}

/// The witness quorum `--witness-policy`, or `--witness-key` ×n with
/// `--min-witnesses k`, ask for; `None` when neither asks for any.
pub fn witness_policy(
    a: &crate::cli::WitnessArgs,
) -> Result<Option<crate::witness::policy::TrustPolicy>, Failure> {
    use crate::witness::policy::TrustPolicy;
    if let Some(path) = &a.witness_policy {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(anyhow::anyhow!("cannot read {}: {e}", path.display())))?;
        let p = TrustPolicy::parse(&text)
            .map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", path.display())))?;
        return Ok(Some(p));
    }
    if a.witness_keys.is_empty() && a.min_witnesses == 0 {
        return Ok(None);
    }
    let keys = load_verifier_keys(&a.witness_keys)?;
    TrustPolicy::k_of_n(keys, a.min_witnesses)
        .map(Some)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("--witness-key/--min-witnesses: {}", e.reason)))
}
