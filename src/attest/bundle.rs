//! The offline bundle `tally attestation push` writes (SPEC.md §6.2): the
//! envelope's exact bytes, the log entry, and its tlog-proof (which carries
//! the signed checkpoint), in one JSON file.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The bundle's media type.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.tally.bundle.v1+json";

/// An offline bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The entry's log index.
    pub log_index: u64,
    /// The entry (`tally.dev/entry/v1` text).
    pub entry: String,
    /// The tlog-proof text.
    pub tlog_proof: String,
    /// The envelope's exact bytes (the entry binds their digest).
    pub envelope: Vec<u8>,
    /// The control plane's signed verdict (a VSA envelope's exact bytes),
    /// when the entry binds one (SPEC.md §13.6).
    pub verdict: Option<Vec<u8>>,
    /// For a keyless signature: the certificate's own log entry and its
    /// inclusion proof (SPEC.md §15.3).
    pub certificate: Option<LoggedCertificate>,
}

/// A certificate entry (`tally.dev/certificate/v1`) and its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggedCertificate {
    /// The entry's log index.
    pub log_index: u64,
    /// The entry's text.
    pub entry: String,
    /// The tlog-proof text.
    pub tlog_proof: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    media_type: String,
    log_index: u64,
    entry: String,
    tlog_proof: String,
    /// Standard base64 of the envelope's bytes.
    envelope: String,
    /// Standard base64 of the verdict envelope's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<LoggedCertificate>,
}

impl Bundle {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        let w = Wire {
            media_type: BUNDLE_MEDIA_TYPE.into(),
            log_index: self.log_index,
            entry: self.entry.clone(),
            tlog_proof: self.tlog_proof.clone(),
            envelope: base64::engine::general_purpose::STANDARD.encode(&self.envelope),
            verdict: self
                .verdict
                .as_ref()
                .map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
            certificate: self.certificate.clone(),
        };
        let mut s = serde_json::to_string_pretty(&w).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses a bundle.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, String> {
        let w: Wire = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if w.media_type != BUNDLE_MEDIA_TYPE {
            return Err(format!(
                "mediaType {:?}, expected {BUNDLE_MEDIA_TYPE}",
                w.media_type
            ));
        }
        let envelope = base64::engine::general_purpose::STANDARD
            .decode(&w.envelope)
            .map_err(|_| "envelope is not base64".to_owned())?;
        let verdict = w
            .verdict
            .map(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| "verdict is not base64".to_owned())
            })
            .transpose()?;
        Ok(Bundle {
            log_index: w.log_index,
            entry: w.entry,
            tlog_proof: w.tlog_proof,
            envelope,
            verdict,
            certificate: w.certificate,
        })
    }
}
