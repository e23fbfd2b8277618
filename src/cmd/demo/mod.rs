//! `tally demo`: the whole loop on the embedded default, in a fresh
//! temporary directory, printed as the commands a user would type — the
//! control plane (in this process), a workflow of the example contracts, a
//! signing key registered by the operator, a run crafted with a real
//! material, a push the contract refuses, the accepted push, the offline
//! verification of its bundle, an audit of a `git clone` of the ledger, and
//! from that clone, whether the signing key was trusted when it was accepted.
//!
//! The CLI steps are this binary run as child processes (what a pipeline and
//! an auditor run); each step's exit code is checked, and the demo fails
//! (exit 1) at the first one that does not do what it should.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::anyhow;
use serde_json::{json, Value};

use crate::cli::DemoArgs;
use crate::cmd::Report;
use crate::exit::Failure;
use crate::server::{self, ServerConfig};

/// The demo's material: a small OpenVEX document, ours.
const OPENVEX: &str = include_str!("openvex.json");
/// The example workflow the demo runs (its contract accepts any runner).
const WORKFLOW: &str = "psirt-advisories";

struct Steps {
    exe: PathBuf,
    ws: PathBuf,
    base: Vec<(&'static str, String)>,
    done: Vec<Value>,
}

impl Steps {
    /// Runs `tally <args>` in the workspace, prints it as typed and its
    /// output, and checks its exit code.
    fn run(
        &mut self,
        what: &str,
        env: &[(&str, &str)],
        args: &[&str],
        expect: i32,
    ) -> Result<String, Failure> {
        let shown: Vec<String> = env
            .iter()
            .filter(|(k, _)| *k != "TALLY_TOKEN" && *k != "TALLY_SERVER")
            .map(|(k, v)| format!("{k}={v}"))
            .chain(std::iter::once("tally".to_owned()))
            .chain(args.iter().map(|a| quote(a)))
            .collect();
        println!("\n# {what}\n$ {}", shown.join(" "));
        let mut cmd = Command::new(&self.exe);
        // Only what the demo sets: not a TALLY_STATE or TALLY_TOKEN of the caller.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("TALLY_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .args(args)
            .current_dir(&self.ws)
            .envs(self.base.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().copied())
            .output()
            .map_err(|e| Failure::Unavailable(anyhow!("running {}: {e}", self.exe.display())))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stdout.lines().chain(stderr.lines()) {
            println!("  {line}");
        }
        let code = out.status.code().unwrap_or(-1);
        self.done
            .push(json!({"step": what, "command": shown.join(" "), "exit_code": code}));
        if code != expect {
            return Err(Failure::Invalid(anyhow!(
                "demo step `{what}` exited {code}, expected {expect}"
            )));
        }
        Ok(stdout)
    }
}

fn quote(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn field(json_text: &str, key: &str) -> Result<String, Failure> {
    serde_json::from_str::<Value>(json_text)
        .ok()
        .and_then(|v| v[key].as_str().map(str::to_owned))
        .ok_or_else(|| Failure::Invalid(anyhow!("the step's JSON has no `{key}`")))
}

/// `tally demo`
pub fn demo(args: &DemoArgs) -> Result<Report, Failure> {
    let tmp;
    let dir: &Path = match &args.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().map_err(|e| Failure::Unavailable(e.into()))?;
            tmp.path()
        }
    };
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws)
        .map_err(|e| Failure::Unavailable(anyhow!("creating {}: {e}", ws.display())))?;
    std::fs::write(ws.join("vex.json"), OPENVEX).map_err(|e| Failure::Unavailable(e.into()))?;

    // The control plane, in this process, on the embedded default.
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.join("data"),
        ..ServerConfig::default()
    };
    let admin = server::new_secret("tly_admin_");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(e.into()))?;
    let started = rt
        .block_on(server::start(cfg, Some(admin.clone())))
        .map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    let url = format!("http://{}", started.addr);
    let vkey = started.app.verifier_key.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = std::thread::spawn(move || {
        rt.block_on(server::run(started, async {
            let _ = stopped.await;
        }))
    });
    println!(
        "# The control plane: ledger, contracts (the examples), metadata, in {}\n$ tally serve --data-dir {}\n  serving on {url}\n  log key   {vkey}",
        dir.display(),
        dir.join("data").display()
    );

    let mut s = Steps {
        exe: std::env::current_exe().map_err(|e| Failure::Unavailable(e.into()))?,
        ws: ws.clone(),
        base: vec![("TALLY_SERVER", url.clone()), ("NO_COLOR", "1".into())],
        done: Vec::new(),
    };
    let result = (|| -> Result<(), Failure> {
        let admin_env = [("TALLY_TOKEN", admin.as_str())];
        s.run(
            "SecOps: a signing key for the pipeline",
            &[],
            &["key", "generate", "--kind", "signing"],
            0,
        )?;
        let t = s.run(
            "The operator: a token for the workflow",
            &admin_env,
            &[
                "token",
                "create",
                "--workflow",
                WORKFLOW,
                "--expires",
                "1d",
                "--output",
                "json",
            ],
            0,
        )?;
        let token = field(&t, "token")?;
        s.run(
            "The operator: the workflow's public key",
            &admin_env,
            &[
                "workflow",
                "key",
                "add",
                "--workflow",
                WORKFLOW,
                "--key",
                "cosign.pub",
            ],
            0,
        )?;
        let ci = [("TALLY_TOKEN", token.as_str())];
        s.run(
            "CI: start a run; the control plane pins the contract revision",
            &ci,
            &[
                "attestation",
                "init",
                "--workflow",
                WORKFLOW,
                "--version",
                "2026.12",
            ],
            0,
        )?;
        s.run(
            "CI: push too early — the contract needs a VEX document: refused, nothing signed",
            &ci,
            &["attestation", "push", "--key", "cosign.key"],
            4,
        )?;
        s.run(
            "CI: add the material (validated as OpenVEX, hashed, stored)",
            &ci,
            &["attestation", "add", "--name", "openvex", "--value", "vex.json"],
            0,
        )?;
        s.run(
            "CI: what the contract asks, what is there",
            &ci,
            &["attestation", "status"],
            0,
        )?;
        s.run(
            "CI: sign and push: appended to the log, with an offline bundle",
            &ci,
            &["attestation", "push", "--key", "cosign.key"],
            0,
        )?;
        s.run(
            "An auditor, offline: the bundle's inclusion, signature and entry",
            &[],
            &[
                "verify",
                "--bundle",
                "attestation.bundle.json",
                "--log-key",
                &vkey,
                "--key",
                "cosign.pub",
            ],
            0,
        )?;
        println!("\n# An auditor: the whole ledger, cloned with git\n$ git clone {url}/ledger.git ledger");
        let cloned = Command::new("git")
            .args(["clone", "-q", &format!("{url}/ledger.git"), "ledger"])
            .current_dir(&ws)
            .status()
            .map_err(|e| Failure::Unavailable(anyhow!("running git: {e}")))?;
        if !cloned.success() {
            return Err(Failure::Unavailable(anyhow!("git clone of the ledger failed")));
        }
        s.run(
            "An auditor: every tile and checkpoint of the clone recomputed",
            &[],
            &["audit", "ledger", "--log-key", &vkey],
            0,
        )?;
        s.run(
            "An auditor: was the signing key trusted when the attestation was accepted? (the key entry in the clone)",
            &[],
            &[
                "verify",
                "--bundle",
                "attestation.bundle.json",
                "--log-key",
                &vkey,
                "--key",
                "cosign.pub",
                "--ledger",
                "ledger",
            ],
            0,
        )?;
        Ok(())
    })();
    let _ = stop.send(());
    let served = serving.join();
    result?;
    if !matches!(served, Ok(Ok(()))) {
        return Err(Failure::Unavailable(anyhow!(
            "the control plane did not stop cleanly"
        )));
    }
    Ok(Report {
        text: format!(
            "\nOK: the whole loop ran on a fresh control plane in {} ({} steps)\n",
            dir.display(),
            s.done.len() + 2
        ),
        json: json!({"valid": true, "dir": dir, "server": url, "steps": s.done}),
    })
}
