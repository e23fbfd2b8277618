//! `tally witness keygen` and `tally witness serve` (SPEC.md §14): a
//! standalone C2SP tlog-witness, so another organisation can run one.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use serde_json::json;

use crate::cli::{WitnessKeygenArgs, WitnessServeArgs};
use crate::cmd::Report;
use crate::exit::{Classify, Failure};
use crate::witness::{self, Config, Witness};

/// `tally witness keygen`
pub fn keygen(a: &WitnessKeygenArgs) -> Result<Report, Failure> {
    let key = witness::generate_key(&a.name, &a.key_file).map_err(|e| Failure::Usage(anyhow!(e)))?;
    let vkey = key.cosignature_verifier().to_string();
    Ok(Report {
        text: format!(
            "witness key written to {} (keep it secret)\ncosignature verifier key (give it to logs and verifiers):\n{vkey}\n",
            a.key_file.display()
        ),
        json: json!({"key_file": a.key_file, "verifier_key": vkey}),
    })
}

/// `tally witness serve`
pub fn serve(a: &WitnessServeArgs) -> Result<Report, Failure> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("cannot read {}", a.config.display()))
        .usage()?;
    let mut cfg: Config = toml::from_str(&text)
        .map_err(|e| anyhow!("{}: {e}", a.config.display()))
        .usage()?;
    // Relative paths are relative to the configuration file.
    let base = a.config.parent().unwrap_or(std::path::Path::new("."));
    cfg.key_file = base.join(&cfg.key_file);
    cfg.state_dir = base.join(&cfg.state_dir);
    let w = Arc::new(Witness::open(&cfg).map_err(|e| Failure::Usage(anyhow!(e)))?);
    let addr: std::net::SocketAddr = a
        .listen
        .parse()
        .map_err(|_| anyhow!("--listen {:?} is not an address like 127.0.0.1:8788", a.listen))
        .usage()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
            .unavailable()?;
        let bound = listener
            .local_addr()
            .context("reading the bound address")
            .unavailable()?;
        let url = format!("http://{bound}");
        eprintln!(
            "tally witness on {url}\n  verifier key {}\n  logs        {}",
            w.verifier_key(),
            cfg.logs
                .iter()
                .map(|l| l.origin.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Machine-readable first line on stdout, for scripts and tests.
        println!(
            "{}",
            json!({"url": url, "verifier_key": w.verifier_key().to_string()})
        );
        axum::serve(listener, witness::http::router(w))
            .with_graceful_shutdown(crate::cmd::serve::shutdown_signal())
            .await
            .context("serving")
            .unavailable()?;
        Ok(Report {
            text: String::new(),
            json: json!({"stopped": true}),
        })
    })
}
