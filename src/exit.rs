//! Command outcomes and the process exit codes they map to (SPEC.md §7).

use std::fmt;

/// Exit code: success, or the thing checked is valid.
pub const OK: u8 = 0;
/// Exit code: the thing checked is invalid (bad proof, bad signature, a log
/// that does not match its checkpoint).
pub const INVALID: u8 = 1;
/// Exit code: usage or input error (bad flags, unreadable or malformed input).
pub const USAGE: u8 = 2;
/// Exit code: an I/O or network failure prevented the check.
pub const UNAVAILABLE: u8 = 3;
/// Exit code: refused by a policy the caller asked for (e.g. `--deny-breaking`).
pub const REFUSED: u8 = 4;

/// Why a command failed, classified for the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The input was well-formed and did not verify.
    Invalid(anyhow::Error),
    /// The input or flags were wrong.
    Usage(anyhow::Error),
    /// Something could not be read or reached.
    Unavailable(anyhow::Error),
    /// Valid input that a requested policy refuses.
    Refused(anyhow::Error),
}

impl Failure {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Invalid(_) => INVALID,
            Failure::Usage(_) => USAGE,
            Failure::Unavailable(_) => UNAVAILABLE,
            Failure::Refused(_) => REFUSED,
        }
    }
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Invalid(_) => "invalid",
            Failure::Usage(_) => "usage",
            Failure::Unavailable(_) => "unavailable",
            Failure::Refused(_) => "refused",
        }
    }
    /// The underlying error.
    pub fn error(&self) -> &anyhow::Error {
        match self {
            Failure::Invalid(e) | Failure::Usage(e) | Failure::Unavailable(e) | Failure::Refused(e) => e,
        }
    }
}

impl Failure {
    /// The error and its causes, outermost first, each said once: a cause
    /// whose text its parent already ends with (an error type that both
    /// prints its source and names it as its source) is left out.
    pub fn causes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.error().chain() {
            let text = e.to_string();
            if out.last().is_some_and(|parent| parent.ends_with(&text)) {
                continue;
            }
            out.push(text);
        }
        out
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.causes().join(": "))
    }
}

/// Shorthands to classify any error.
pub trait Classify<T> {
    /// As a usage/input error.
    fn usage(self) -> Result<T, Failure>;
    /// As an invalid-input verdict.
    fn invalid(self) -> Result<T, Failure>;
    /// As an availability failure.
    fn unavailable(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn usage(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Usage(e.into()))
    }
    fn invalid(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Invalid(e.into()))
    }
    fn unavailable(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Unavailable(e.into()))
    }
}

/// An error that also carries a structured description for `--output json`.
#[derive(Debug)]
pub struct Details {
    /// The text for people.
    pub message: String,
    /// The structure for machines.
    pub json: serde_json::Value,
}

impl fmt::Display for Details {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Details {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner problem")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[from] Inner);

    #[test]
    fn a_cause_its_parent_already_prints_is_said_once() {
        let e = anyhow::Error::from(Outer(Inner)).context("the proof does not verify");
        let f = Failure::Invalid(e);
        assert_eq!(f.causes(), ["the proof does not verify", "outer: inner problem"]);
        assert_eq!(f.to_string(), "the proof does not verify: outer: inner problem");
        // A cause that is not a suffix of its parent is kept.
        let f = Failure::Usage(anyhow::Error::from(Inner).context("reading x"));
        assert_eq!(f.to_string(), "reading x: inner problem");
    }
}
