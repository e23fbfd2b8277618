//! tally's log entry (leaf) format, `tally.dev/entry/v1`: a few text lines
//! binding the exact signed envelope (by digest), the contract revision it
//! was checked against, and the workflow run it came from.
//!
//! Not here: the envelope itself (stored by digest beside the log) or how
//! contracts are resolved. SPEC.md §3 is the normative text.

use std::fmt;

use crate::checkpoint::parse_decimal;
use crate::hash::Hash;

/// First line of every entry.
pub const ENTRY_HEADER: &str = "tally.dev/entry/v1";
/// Longest value a field may hold.
pub const MAX_FIELD_LEN: usize = 256;

/// Why bytes are not a canonical entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not UTF-8 or not ending in a newline.
    #[error("entry must be UTF-8 text ending in a newline")]
    NotText,
    /// A line is missing or out of order.
    #[error("entry line {line}: expected `{expected} <value>`")]
    MissingField {
        /// 1-based line number.
        line: usize,
        /// The field expected there.
        expected: &'static str,
    },
    /// A value has a forbidden character or length.
    #[error("entry field `{field}` has an invalid value {value:?}: {why}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Lines follow the last field.
    #[error("entry has {0} unexpected trailing line(s)")]
    TrailingLines(usize),
}

/// The revision of a contract an attestation was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContractRevision {
    /// The contract's name.
    pub name: String,
    /// The git commit at which the contract file last changed (hex).
    pub commit: String,
    /// The git blob id of the contract file's bytes (hex).
    pub blob: String,
}

/// A log entry: what one leaf of tally's log says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// SHA-256 of the exact DSSE envelope bytes stored beside the log.
    pub envelope_digest: Hash,
    /// Length of those bytes.
    pub envelope_size: u64,
    /// The contract revision the attestation was checked against.
    pub contract: ContractRevision,
    /// The project the workflow belongs to.
    pub project: String,
    /// The workflow name.
    pub workflow: String,
    /// The run id assigned by the control plane.
    pub run: String,
    /// The control plane's verdict (a signed SLSA VSA envelope stored
    /// beside the entry), when the contract has policies: its SHA-256 and
    /// length.
    pub verdict: Option<(Hash, u64)>,
}

/// Field values: 1..=256 printable ASCII characters from a safe set.
pub(crate) fn check_token(field: &'static str, value: &str) -> Result<(), EntryError> {
    let bad = |why| EntryError::BadValue {
        field,
        value: value.chars().take(80).collect(),
        why,
    };
    if value.is_empty() || value.len() > MAX_FIELD_LEN {
        return Err(bad("length must be 1..=256"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:@/+".contains(&b))
    {
        return Err(bad("only ASCII letters, digits and . _ - : @ / + are allowed"));
    }
    Ok(())
}

fn check_git_id(field: &'static str, value: &str) -> Result<(), EntryError> {
    if !(value.len() == 40 || value.len() == 64)
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(EntryError::BadValue {
            field,
            value: value.chars().take(80).collect(),
            why: "a git object id is 40 or 64 lowercase hex digits",
        });
    }
    Ok(())
}

impl Entry {
    /// Checks every field; an entry that passes encodes to at most ~2 KiB.
    pub fn validate(&self) -> Result<(), EntryError> {
        check_token("contract", &self.contract.name)?;
        check_git_id("contract-commit", &self.contract.commit)?;
        check_git_id("contract-blob", &self.contract.blob)?;
        check_token("project", &self.project)?;
        check_token("workflow", &self.workflow)?;
        check_token("run", &self.run)?;
        Ok(())
    }

    /// The canonical bytes (the leaf data). Call [`Entry::validate`] first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Parses canonical entry bytes; anything else is rejected.
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        const FIELDS: [&str; 8] = [
            "envelope",
            "envelope-size",
            "contract",
            "contract-commit",
            "contract-blob",
            "project",
            "workflow",
            "run",
        ];
        let (values, rest) = read_fields(bytes, ENTRY_HEADER, &FIELDS)?;
        let mut verdict = None;
        if let Some(line) = rest.first().filter(|l| l.starts_with("verdict ")) {
            let value = &line["verdict ".len()..];
            let bad = || EntryError::BadValue {
                field: "verdict",
                value: value.chars().take(80).collect(),
                why: "expected sha256:<64 lowercase hex digits> <decimal size>",
            };
            let (d, size) = value.split_once(' ').ok_or_else(bad)?;
            let hash = parse_sha256(d).ok_or_else(bad)?;
            let size = parse_decimal(size).ok_or_else(bad)?;
            verdict = Some((hash, size));
        }
        let used = usize::from(verdict.is_some());
        if rest.len() > used {
            return Err(EntryError::TrailingLines(rest.len() - used));
        }
        let digest = parse_sha256(values[0]).ok_or_else(|| EntryError::BadValue {
            field: "envelope",
            value: values[0].chars().take(80).collect(),
            why: "expected sha256:<64 lowercase hex digits>",
        })?;
        let size = parse_decimal(values[1]).ok_or_else(|| EntryError::BadValue {
            field: "envelope-size",
            value: values[1].to_owned(),
            why: "expected a decimal without leading zeros",
        })?;
        let entry = Entry {
            envelope_digest: digest,
            envelope_size: size,
            contract: ContractRevision {
                name: values[2].to_owned(),
                commit: values[3].to_owned(),
                blob: values[4].to_owned(),
            },
            project: values[5].to_owned(),
            workflow: values[6].to_owned(),
            run: values[7].to_owned(),
            verdict,
        };
        entry.validate()?;
        Ok(entry)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{ENTRY_HEADER}")?;
        writeln!(f, "envelope sha256:{}", self.envelope_digest.to_hex())?;
        writeln!(f, "envelope-size {}", self.envelope_size)?;
        writeln!(f, "contract {}", self.contract.name)?;
        writeln!(f, "contract-commit {}", self.contract.commit)?;
        writeln!(f, "contract-blob {}", self.contract.blob)?;
        writeln!(f, "project {}", self.project)?;
        writeln!(f, "workflow {}", self.workflow)?;
        writeln!(f, "run {}", self.run)?;
        if let Some((d, size)) = &self.verdict {
            writeln!(f, "verdict sha256:{} {size}", d.to_hex())?;
        }
        Ok(())
    }
}

/// The values of `fields` (each on its own line, `<field> <value>`, in
/// order) after the line `header`, and the lines after them. The text
/// must be UTF-8 ending in a newline.
pub(crate) fn read_fields<'a>(
    bytes: &'a [u8],
    header: &'static str,
    fields: &[&'static str],
) -> Result<(Vec<&'a str>, Vec<&'a str>), EntryError> {
    let s = std::str::from_utf8(bytes).map_err(|_| EntryError::NotText)?;
    let body = s.strip_suffix('\n').ok_or(EntryError::NotText)?;
    let mut lines = body.split('\n');
    if lines.next() != Some(header) {
        return Err(EntryError::MissingField {
            line: 1,
            expected: header,
        });
    }
    let mut values = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let missing = EntryError::MissingField {
            line: i + 2,
            expected: field,
        };
        let line = lines.next().ok_or(missing.clone())?;
        values.push(
            line.strip_prefix(field)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or(missing)?,
        );
    }
    Ok((values, lines.collect()))
}

/// `sha256:<64 lowercase hex>`.
/// A refused field value (shown up to 80 characters).
pub(crate) fn bad_value(field: &'static str, value: &str, why: &'static str) -> EntryError {
    EntryError::BadValue {
        field,
        value: value.chars().take(80).collect(),
        why,
    }
}

/// Field `i` of `values` (named `names[i]`) as a canonical decimal.
pub(crate) fn decimal_at(names: &[&'static str], values: &[&str], i: usize) -> Result<u64, EntryError> {
    parse_decimal(values[i])
        .ok_or_else(|| bad_value(names[i], values[i], "expected a decimal without leading zeros"))
}

pub(crate) fn parse_sha256(s: &str) -> Option<Hash> {
    let h = s.strip_prefix("sha256:")?;
    if h.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Hash::from_hex(h).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256;

    fn sample() -> Entry {
        Entry {
            envelope_digest: sha256(b"envelope"),
            envelope_size: 8,
            contract: ContractRevision {
                name: "build-and-release".into(),
                commit: "a".repeat(40),
                blob: "b".repeat(40),
            },
            project: "payments".into(),
            workflow: "release".into(),
            run: "01JCRZ6X2V3M5Q8T9W0Y1Z2A3B".into(),
            verdict: None,
        }
    }

    #[test]
    fn a_verdict_line_round_trips_and_must_be_canonical() {
        let mut e = sample();
        e.verdict = Some((sha256(b"vsa"), 3));
        let bytes = e.to_bytes();
        assert_eq!(Entry::parse(&bytes).expect("parse"), e);
        let text = e.to_string();
        for bad in [
            text.replace(" 3\n", " 03\n"),
            text.replace(" 3\n", "\n"),
            format!("{text}verdict sha256:{} 1\n", "a".repeat(64)),
        ] {
            assert!(Entry::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip_is_canonical() {
        let e = sample();
        e.validate().expect("valid");
        let bytes = e.to_bytes();
        assert_eq!(Entry::parse(&bytes).expect("parse"), e);
        assert!(bytes.len() < 1024);
    }

    #[test]
    fn rejects_non_canonical() {
        let text = sample().to_string();
        for bad in [
            text.replace("envelope-size 8", "envelope-size 08"),
            text.replace("project payments", "project pay ments"),
            text.replace("sha256:", "SHA256:"),
            format!("{text}extra 1\n"),
            text.trim_end().to_owned(),
            text.replace(&"a".repeat(40), &"A".repeat(40)),
        ] {
            assert!(Entry::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
