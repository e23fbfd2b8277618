//! Copies accepted attestations into the artifact store (OCI only; SPEC.md
//! §12.7), behind the acknowledgement: the log is the queue. A watermark in
//! the metadata (`oci_mirrored_next`) says how far the copy got; it moves
//! only after an entry was written, so a crash or a registry outage delays
//! the copy and never loses it (a copy repeated after a crash may list a
//! second referrer, whose bundle is under a newer checkpoint: harmless).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::attest::statement::View;
use crate::server::artifact_store::{AttestationArtifact, Subject};
use crate::server::{App, ServerError};

/// The mirror's loop: forever, every published entry past the watermark.
pub async fn run(app: Arc<App>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match step(&app).await {
            Ok(true) => backoff = Duration::from_millis(500),
            Ok(false) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "copying attestations to {}; retrying in {backoff:?}",
                    app.artifacts.describe()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The next entry to copy.
pub fn next(app: &App) -> Result<u64, ServerError> {
    Ok(app
        .meta
        .setting("oci_mirrored_next")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Copies the entries published past the watermark; `Ok(false)` when there
/// was nothing to do.
async fn step(app: &Arc<App>) -> Result<bool, ServerError> {
    let start = next(app)?;
    let published = app.ledger.sizes().published;
    if start >= published {
        return Ok(false);
    }
    // Up to 16 copies in flight (each is a few registry round trips); the
    // watermark then moves over the successful prefix, in log order.
    let end = published.min(start + 16);
    let mut work = Vec::new();
    for i in start..end {
        let a = app.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&a, i))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        // A certificate entry has nothing to copy: the watermark passes it.
        let Some((att, payload)) = loaded else {
            work.push((i, None, Vec::new()));
            continue;
        };
        // A payload that does not read as a statement attests to nothing here.
        let subjects = subjects(app, &View::parse(&payload).unwrap_or_default()).await?;
        work.push((i, Some(att), subjects));
    }
    let results = futures_util::future::join_all(work.iter().map(|(_, att, subjects)| async move {
        match att {
            Some(att) => app.artifacts.put_attestation(att, subjects).await,
            None => Ok(Vec::new()),
        }
    }))
    .await;
    for ((i, _, _), r) in work.iter().zip(results) {
        let refs = r.map_err(|e| ServerError::Artifacts(e.to_string()))?;
        app.meta.record_oci_attestation(*i as i64, &refs)?;
    }
    Ok(true)
}

/// Entry `i`'s envelope, its artifact's annotations, and the statement's
/// bytes; `None` for a certificate or key entry (SPEC.md §3.1, §3.2).
fn load(app: &App, i: u64) -> Result<Option<(AttestationArtifact, Vec<u8>)>, ServerError> {
    let text = app.ledger.entry(i)?;
    if ledger_format::certificate::is_certificate_entry(&text) || ledger_format::key::is_key_entry(&text) {
        return Ok(None);
    }
    // The offline bundle (SPEC.md §6.2) at the current checkpoint: whoever
    // pulls the attestation from the registry can check its inclusion with
    // `tally verify --bundle`, without asking this server.
    let (logged, bundle) = app.offline_bundle(i)?;
    let (e, envelope) = (logged.entry, logged.envelope);
    let payload = logged.payload;
    let mut annotations = BTreeMap::new();
    annotations.insert("dev.tally.log.origin".to_owned(), app.cfg.origin.clone());
    annotations.insert("dev.tally.log.index".to_owned(), i.to_string());
    annotations.insert("dev.tally.workflow".to_owned(), e.workflow.clone());
    annotations.insert("dev.tally.run".to_owned(), e.run.clone());
    annotations.insert(
        "dev.tally.contract".to_owned(),
        format!("{}@{}", e.contract.name, e.contract.commit),
    );
    annotations.insert(
        "org.opencontainers.image.created".to_owned(),
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    Ok(Some((
        AttestationArtifact {
            log_index: i,
            envelope,
            bundle,
            annotations,
        },
        payload,
    )))
}

/// What the attestation attests to, in the registry: its subjects that are
/// artifacts stored through this server, and every container image (subject
/// or not) in the store's registry.
async fn subjects(app: &App, st: &View<'_>) -> Result<Vec<Subject>, ServerError> {
    let mut out: Vec<Subject> = Vec::new();
    for (d, role) in st.descriptors() {
        let found = if let Some(pinned) = d.uri.get().and_then(|u| u.strip_prefix("oci://")) {
            // An image we may not read is no subject (its attestation still
            // goes into the artifact repository; an outage fails that push too).
            match app.artifacts.image_subject(pinned).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the image {pinned} in the artifact registry");
                    None
                }
            }
        } else if let (true, Some(hex)) = (role == "subject", d.digest.get("sha256")) {
            app.meta
                .oci_manifest(&format!("sha256:{}", hex.to_ascii_lowercase()))?
                .map(|(repository, descriptor)| Subject {
                    repository,
                    descriptor,
                })
        } else {
            None
        };
        if let Some(s) = found {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}
