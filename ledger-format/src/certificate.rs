//! The log's second kind of entry, `tally.dev/certificate/v1`: a
//! certificate the control plane's CA issued (SPEC.md §3.1), logged before
//! it is handed out, the way Fulcio feeds a CT log. The leaf certificate's
//! DER is stored beside the entry like an envelope; the entry binds it by
//! digest and says whom and until when it vouches for.

use std::fmt;

use crate::entry::{bad_value, check_token, decimal_at, parse_sha256, read_fields, EntryError};
use crate::hash::Hash;

/// First line of a certificate entry.
pub const CERTIFICATE_HEADER: &str = "tally.dev/certificate/v1";

/// A certificate entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateEntry {
    /// SHA-256 of the leaf certificate's DER, stored beside the entry.
    pub certificate_digest: Hash,
    /// Length of that DER.
    pub certificate_size: u64,
    /// The certificate's serial number, lowercase hex.
    pub serial: String,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub not_after: u64,
    /// The project of the run it was issued for.
    pub project: String,
    /// The workflow of that run.
    pub workflow: String,
    /// The run.
    pub run: String,
}

const FIELDS: [&str; 8] = [
    "certificate",
    "certificate-size",
    "serial",
    "not-before",
    "not-after",
    "project",
    "workflow",
    "run",
];

/// Whether `bytes` start like a certificate entry (and so are not an
/// attestation entry, §3).
pub fn is_certificate_entry(bytes: &[u8]) -> bool {
    bytes
        .strip_prefix(CERTIFICATE_HEADER.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b'\n'))
}

impl CertificateEntry {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), EntryError> {
        let hex = |s: &str| {
            (2..=40).contains(&s.len())
                && s.len() % 2 == 0
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(&self.serial) {
            return Err(EntryError::BadValue {
                field: "serial",
                value: self.serial.chars().take(80).collect(),
                why: "a serial number is 1 to 20 bytes of lowercase hex",
            });
        }
        if self.not_after <= self.not_before {
            return Err(EntryError::BadValue {
                field: "not-after",
                value: self.not_after.to_string(),
                why: "must be later than not-before",
            });
        }
        check_token("project", &self.project)?;
        check_token("workflow", &self.workflow)?;
        check_token("run", &self.run)?;
        Ok(())
    }

    /// The canonical bytes (the leaf data). Call [`CertificateEntry::validate`] first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Parses canonical certificate-entry bytes; anything else is rejected.
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        let (v, rest) = read_fields(bytes, CERTIFICATE_HEADER, &FIELDS)?;
        if !rest.is_empty() {
            return Err(EntryError::TrailingLines(rest.len()));
        }
        let decimal = |i: usize| decimal_at(&FIELDS, &v, i);
        let e = CertificateEntry {
            certificate_digest: parse_sha256(v[0])
                .ok_or_else(|| bad_value("certificate", v[0], "expected sha256:<64 lowercase hex digits>"))?,
            certificate_size: decimal(1)?,
            serial: v[2].to_owned(),
            not_before: decimal(3)?,
            not_after: decimal(4)?,
            project: v[5].to_owned(),
            workflow: v[6].to_owned(),
            run: v[7].to_owned(),
        };
        e.validate()?;
        Ok(e)
    }
}

impl fmt::Display for CertificateEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{CERTIFICATE_HEADER}")?;
        writeln!(f, "certificate sha256:{}", self.certificate_digest.to_hex())?;
        writeln!(f, "certificate-size {}", self.certificate_size)?;
        writeln!(f, "serial {}", self.serial)?;
        writeln!(f, "not-before {}", self.not_before)?;
        writeln!(f, "not-after {}", self.not_after)?;
        writeln!(f, "project {}", self.project)?;
        writeln!(f, "workflow {}", self.workflow)?;
        writeln!(f, "run {}", self.run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::hash::sha256;

    fn sample() -> CertificateEntry {
        CertificateEntry {
            certificate_digest: sha256(b"der"),
            certificate_size: 612,
            serial: "5a0f".repeat(8),
            not_before: 1_796_000_000,
            not_after: 1_796_000_600,
            project: "payments".into(),
            workflow: "release".into(),
            run: "01JCRZ6X2V3M5Q8T9W0Y1Z2A3B".into(),
        }
    }

    #[test]
    fn round_trips_canonically_and_is_told_apart_from_an_attestation_entry() {
        let e = sample();
        let bytes = e.to_bytes();
        assert_eq!(CertificateEntry::parse(&bytes).unwrap(), e);
        assert!(is_certificate_entry(&bytes));
        assert!(Entry::parse(&bytes).is_err());
        assert!(!is_certificate_entry(b"tally.dev/certificate/v10\n"));
    }

    #[test]
    fn rejects_anything_not_canonical() {
        let text = sample().to_string();
        for bad in [
            text.replace("certificate-size 612", "certificate-size 0612"),
            text.replace(&"5a0f".repeat(8), &"5A0F".repeat(8)),
            text.replace(&"5a0f".repeat(8), "5a0"),
            text.replace(&"5a0f".repeat(8), &"5a".repeat(21)),
            text.replace("not-after 1796000600", "not-after 1796000000"),
            text.replace("project payments", "project pay ments"),
            format!("{text}extra 1\n"),
            text.trim_end().to_owned(),
            text.replace("sha256:", "sha512:"),
        ] {
            assert!(CertificateEntry::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
