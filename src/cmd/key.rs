//! `tally key generate`: a log's note signer key and its verifier key.

use anyhow::{anyhow, Context as _};
use serde_json::json;

use crate::cli::KeyGenerateArgs;
use crate::cmd::Report;
use crate::exit::{Classify, Failure};

/// Generates a fresh Ed25519 key named after the log's origin.
pub fn generate(args: &KeyGenerateArgs) -> Result<Report, Failure> {
    let origin = args.origin.trim();
    if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
        return Err(Failure::Usage(anyhow!(
            "origin {origin:?} cannot be a key name: it must be non-empty, with no spaces and no '+' \
             (use the log's URL without scheme, e.g. tally.example.com/log)"
        )));
    }
    if args.key_out == args.pub_out {
        return Err(Failure::Usage(anyhow!(
            "--key-out and --pub-out must be different files"
        )));
    }
    for p in [&args.key_out, &args.pub_out] {
        if !args.force && p.exists() {
            return Err(Failure::Usage(anyhow!(
                "{} already exists; pass --force to replace it (the old key is then lost)",
                p.display()
            )));
        }
    }
    let signer = crate::keys::generate(origin).usage()?;
    let vkey = signer.verifier().to_string();
    crate::keys::write_pair(&signer, &args.key_out, &args.pub_out, args.force)
        .with_context(|| {
            format!(
                "writing {} and {}",
                args.key_out.display(),
                args.pub_out.display()
            )
        })
        .unavailable()?;
    Ok(Report {
        text: format!(
            "signer key:   {} (secret, mode 0600)\nverifier key: {} \n\n{vkey}\n",
            args.key_out.display(),
            args.pub_out.display()
        ),
        json: json!({
            "origin": origin,
            "key_id": format!("{:08x}", signer.key_id()),
            "verifier_key": vkey,
            "signer_key_file": args.key_out,
            "verifier_key_file": args.pub_out,
        }),
    })
}
