//! The log's third kind of entry, `tally.dev/key/v1`: a change to the keys
//! a workflow's signatures may use, made through the control plane's admin
//! API (SPEC.md §3.2), logged before it takes effect. The key's
//! SubjectPublicKeyInfo DER is stored beside the entry like an envelope;
//! its SHA-256 is the key id tally uses everywhere.

use std::fmt;

use crate::entry::{bad_value, check_token, decimal_at, parse_sha256, read_fields, EntryError};
use crate::hash::Hash;

/// First line of a key entry.
pub const KEY_HEADER: &str = "tally.dev/key/v1";

/// What a key entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// From this entry on, the key is trusted for the workflow.
    Add,
    /// From this entry on, it is not.
    Revoke,
}

impl KeyAction {
    /// Its spelling in the entry.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAction::Add => "add",
            KeyAction::Revoke => "revoke",
        }
    }
}

/// A key entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// Add or revoke.
    pub action: KeyAction,
    /// The workflow whose signatures the key may (no longer) make.
    pub workflow: String,
    /// SHA-256 of the key's SubjectPublicKeyInfo DER (the key id), stored
    /// beside the entry.
    pub key_digest: Hash,
    /// Length of that DER.
    pub key_size: u64,
    /// Unix seconds, when the operator asked.
    pub at: u64,
    /// The id of the admin token that asked.
    pub by: String,
}

const FIELDS: [&str; 6] = ["action", "workflow", "key", "key-size", "at", "by"];

/// Whether `bytes` start like a key entry.
pub fn is_key_entry(bytes: &[u8]) -> bool {
    bytes
        .strip_prefix(KEY_HEADER.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b'\n'))
}

impl KeyEntry {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), EntryError> {
        check_token("workflow", &self.workflow)?;
        check_token("by", &self.by)?;
        if self.key_size == 0 || self.key_size > 1024 {
            return Err(EntryError::BadValue {
                field: "key-size",
                value: self.key_size.to_string(),
                why: "a public key's DER is 1 to 1024 bytes",
            });
        }
        Ok(())
    }

    /// The canonical bytes (the leaf data). Call [`KeyEntry::validate`] first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Parses canonical key-entry bytes; anything else is rejected.
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        let (v, rest) = read_fields(bytes, KEY_HEADER, &FIELDS)?;
        if !rest.is_empty() {
            return Err(EntryError::TrailingLines(rest.len()));
        }
        let decimal = |i: usize| decimal_at(&FIELDS, &v, i);
        let action = match v[0] {
            "add" => KeyAction::Add,
            "revoke" => KeyAction::Revoke,
            other => return Err(bad_value("action", other, "expected add or revoke")),
        };
        let e = KeyEntry {
            action,
            workflow: v[1].to_owned(),
            key_digest: parse_sha256(v[2])
                .ok_or_else(|| bad_value("key", v[2], "expected sha256:<64 lowercase hex digits>"))?,
            key_size: decimal(3)?,
            at: decimal(4)?,
            by: v[5].to_owned(),
        };
        e.validate()?;
        Ok(e)
    }
}

impl fmt::Display for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{KEY_HEADER}")?;
        writeln!(f, "action {}", self.action.as_str())?;
        writeln!(f, "workflow {}", self.workflow)?;
        writeln!(f, "key sha256:{}", self.key_digest.to_hex())?;
        writeln!(f, "key-size {}", self.key_size)?;
        writeln!(f, "at {}", self.at)?;
        writeln!(f, "by {}", self.by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{is_certificate_entry, CertificateEntry};
    use crate::entry::Entry;
    use crate::hash::sha256;

    fn sample() -> KeyEntry {
        KeyEntry {
            action: KeyAction::Revoke,
            workflow: "payments-release".into(),
            key_digest: sha256(b"spki"),
            key_size: 44,
            at: 1_796_000_000,
            by: "tok-admin".into(),
        }
    }

    #[test]
    fn round_trips_canonically_and_is_told_apart_from_other_entries() {
        let e = sample();
        let bytes = e.to_bytes();
        assert_eq!(KeyEntry::parse(&bytes).unwrap(), e);
        assert!(is_key_entry(&bytes));
        assert!(!is_certificate_entry(&bytes));
        assert!(Entry::parse(&bytes).is_err());
        assert!(CertificateEntry::parse(&bytes).is_err());
        assert!(!is_key_entry(b"tally.dev/key/v10\n"));
        let add = KeyEntry {
            action: KeyAction::Add,
            ..sample()
        };
        assert!(add.to_string().contains("\naction add\n"));
    }

    #[test]
    fn rejects_anything_not_canonical() {
        let text = sample().to_string();
        for bad in [
            text.replace("action revoke", "action delete"),
            text.replace("key-size 44", "key-size 044"),
            text.replace("key-size 44", "key-size 0"),
            text.replace("key-size 44", "key-size 4096"),
            text.replace("workflow payments-release", "workflow pay ments"),
            text.replace("by tok-admin", "by "),
            format!("{text}extra 1\n"),
            text.trim_end().to_owned(),
            text.replace("sha256:", "sha512:"),
        ] {
            assert!(KeyEntry::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
