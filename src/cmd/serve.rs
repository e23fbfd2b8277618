//! `tally serve`: configuration, first-start secrets, and the server's life.

use anyhow::anyhow;
use serde_json::json;

use crate::cli::ServeArgs;
use crate::cmd::Report;
use crate::exit::Failure;
use crate::server::{self, ServerConfig};

/// Builds the configuration: defaults, the file, `TALLY_*` variables, flags.
pub fn config(args: &ServeArgs) -> Result<ServerConfig, Failure> {
    let mut cfg = match &args.config {
        Some(p) => ServerConfig::from_file(p).map_err(|e| Failure::Usage(e.into()))?,
        None => ServerConfig::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .map_err(|e| Failure::Usage(e.into()))?;
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &args.listen {
        cfg.listen = v.clone();
    }
    if let Some(v) = &args.contracts {
        cfg.contracts = v.clone();
    }
    if let Some(v) = &args.origin {
        cfg.origin = v.clone();
    }
    if let Some(v) = args.max_body_bytes {
        cfg.max_body_bytes = v;
    }
    if let Some(v) = args.run_ttl_secs {
        cfg.run_ttl_secs = v;
    }
    if let Some(v) = &args.oci_repository {
        cfg.artifacts.backend = server::artifact_store::Backend::Oci;
        cfg.artifacts.repository = v.clone();
    }
    cfg.validate().map_err(|e| Failure::Usage(e.into()))?;
    Ok(cfg)
}

/// Runs the control plane until SIGTERM or ctrl-c.
pub fn serve(args: &ServeArgs) -> Result<Report, Failure> {
    let cfg = config(args)?;
    let admin = match &args.admin_token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Failure::Usage(anyhow!("cannot read --admin-token-file {}: {e}", p.display())))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("TALLY_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    if admin.as_deref().is_some_and(|t| t.len() < 16) {
        return Err(Failure::Usage(anyhow!(
            "the admin token must be at least 16 characters"
        )));
    }
    // Everything the server creates (data directory, database, ledger,
    // keys, stored artifacts) is its user's alone, whatever the umask was.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    rt.block_on(async move {
        let started = server::start(cfg, admin)
            .await
            .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
        let app = started.app.clone();
        let url = format!("http://{}", started.addr);
        let mut banner = format!(
            "tally control plane on {url}\n  data      {}\n  artifacts {}\n  log       {}\n  log key   {}\n  contracts {}\n",
            app.cfg.data_dir.display(),
            app.artifacts_checked,
            app.cfg.origin,
            app.verifier_key,
            if app.cfg.contracts.is_empty() {
                app.cfg.data_dir.join("contracts.git").display().to_string()
            } else {
                app.cfg.contracts.clone()
            },
        );
        if let Some(t) = &started.admin_token {
            banner.push_str(&format!(
                "  admin token (shown once, stored only as a hash): {t}\n"
            ));
        }
        eprint!("{banner}");
        // Machine-readable first line on stdout, for scripts and tests.
        println!(
            "{}",
            json!({"url": url, "verifier_key": app.verifier_key, "admin_token": started.admin_token})
        );
        server::run(started, shutdown_signal())
            .await
            .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
        eprintln!("tally control plane stopped; everything sequenced is published");
        Ok(Report {
            text: String::new(),
            json: json!({"stopped": true}),
        })
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
