//! `tally key generate`: a log's note signer key and its verifier key, or an
//! attestation signing key pair (PEM, cosign-compatible).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use serde_json::json;

use crate::attest::signing::{Algorithm, SigningKey, PASSWORD_ENV};
use crate::cli::{KeyGenerateArgs, KeyKind, SigningAlgorithm};
use crate::cmd::Report;
use crate::exit::{Classify, Failure};
use crate::fsutil::write_atomic;

/// Generates a fresh key of the requested kind.
pub fn generate(args: &KeyGenerateArgs) -> Result<Report, Failure> {
    let (dk, dp) = match args.kind {
        KeyKind::Log => ("log.key", "log.pub"),
        KeyKind::Signing => ("cosign.key", "cosign.pub"),
    };
    let key_out = args.key_out.clone().unwrap_or_else(|| PathBuf::from(dk));
    let pub_out = args.pub_out.clone().unwrap_or_else(|| PathBuf::from(dp));
    if key_out == pub_out {
        return Err(Failure::Usage(anyhow!(
            "--key-out and --pub-out must be different files"
        )));
    }
    for p in [&key_out, &pub_out] {
        if !args.force && p.exists() {
            return Err(Failure::Usage(anyhow!(
                "{} already exists; pass --force to replace it (the old key is then lost)",
                p.display()
            )));
        }
    }
    match args.kind {
        KeyKind::Log => log_key(args, &key_out, &pub_out),
        KeyKind::Signing => signing_key(args, &key_out, &pub_out),
    }
}

fn log_key(args: &KeyGenerateArgs, key_out: &Path, pub_out: &Path) -> Result<Report, Failure> {
    let origin = args.origin.as_deref().unwrap_or_default().trim();
    if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
        return Err(Failure::Usage(anyhow!(
            "origin {origin:?} cannot be a key name: it must be non-empty, with no spaces and no '+' \
             (use the log's URL without scheme, e.g. tally.example.com/log)"
        )));
    }
    let signer = crate::keys::generate(origin).usage()?;
    let vkey = signer.verifier().to_string();
    crate::keys::write_pair(&signer, key_out, pub_out, args.force)
        .with_context(|| format!("writing {} and {}", key_out.display(), pub_out.display()))
        .unavailable()?;
    Ok(Report {
        text: format!(
            "signer key:   {} (secret, mode 0600)\nverifier key: {} \n\n{vkey}\n",
            key_out.display(),
            pub_out.display()
        ),
        json: json!({
            "kind": "log",
            "origin": origin,
            "key_id": format!("{:08x}", signer.key_id()),
            "verifier_key": vkey,
            "signer_key_file": key_out,
            "verifier_key_file": pub_out,
        }),
    })
}

fn signing_key(args: &KeyGenerateArgs, key_out: &Path, pub_out: &Path) -> Result<Report, Failure> {
    if args.origin.is_some() {
        return Err(Failure::Usage(anyhow!(
            "--origin names a log key; a signing key has none"
        )));
    }
    let algorithm = match args.algorithm {
        SigningAlgorithm::EcdsaP256 => Algorithm::EcdsaP256,
        SigningAlgorithm::Ed25519 => Algorithm::Ed25519,
    };
    let password = std::env::var(PASSWORD_ENV).ok();
    let key = SigningKey::generate(algorithm).usage()?;
    let private = key.private_pem(password.as_deref()).usage()?;
    write_atomic(key_out, private.as_bytes(), 0o600, args.force)
        .and_then(|()| write_atomic(pub_out, key.public_pem().as_bytes(), 0o644, args.force))
        .with_context(|| format!("writing {} and {}", key_out.display(), pub_out.display()))
        .unavailable()?;
    let protection = if password.is_some() {
        format!("encrypted with {PASSWORD_ENV} (cosign format)")
    } else {
        format!("NOT encrypted: set {PASSWORD_ENV} to encrypt it")
    };
    Ok(Report {
        text: format!(
            "signing key: {} (secret, mode 0600, {protection})\npublic key:  {}\nkey id:      {}\n",
            key_out.display(),
            pub_out.display(),
            key.keyid()
        ),
        json: json!({
            "kind": "signing",
            "algorithm": match algorithm { Algorithm::EcdsaP256 => "ecdsa-p256", Algorithm::Ed25519 => "ed25519" },
            "encrypted": password.is_some(),
            "key_id": key.keyid(),
            "signing_key_file": key_out,
            "public_key_file": pub_out,
            "public_key": key.public_pem(),
        }),
    })
}
