//! Lint diagnostics: `file:line:column`, the offending snippet and a hint.

use std::fmt;
use std::ops::Range;

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The offending line.
    pub snippet: String,
    /// How many characters of the snippet to underline.
    pub width: usize,
}

impl Diagnostic {
    /// A diagnostic for the byte range `span` of `src`.
    pub fn at(file: &str, src: &str, span: Range<usize>, message: String, hint: Option<String>) -> Self {
        let mut start = span.start.min(src.len());
        while !src.is_char_boundary(start) {
            start -= 1;
        }
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let line = src[..start].matches('\n').count() + 1;
        let column = src[line_start..start].chars().count() + 1;
        let mut end = span.end.clamp(start, line_end);
        while !src.is_char_boundary(end) {
            end += 1;
        }
        let width = src[start..end].chars().count().max(1);
        Diagnostic {
            file: file.to_owned(),
            line,
            column,
            message,
            hint,
            snippet: src[line_start..line_end].trim_end_matches('\r').to_owned(),
            width,
        }
    }

    /// A diagnostic about the whole file (no position inside it).
    pub fn file(file: &str, message: String, hint: Option<String>) -> Self {
        Diagnostic {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message,
            hint,
            snippet: String::new(),
            width: 0,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "  --> {}:{}:{}", self.file, self.line, self.column)?;
        if !self.snippet.is_empty() {
            let n = self.line.to_string();
            let pad = " ".repeat(n.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{n} | {}", self.snippet)?;
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(self.column - 1),
                "^".repeat(self.width)
            )?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  = hint: {h}")?;
        }
        Ok(())
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let close = candidates
        .iter()
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min()
        .map(|(_, c)| c);
    // A clear prefix, as in `JUNIT` for `JUNIT_XML`.
    close.or_else(|| {
        let mut prefixed = candidates
            .iter()
            .filter(|c| lower.len() >= 4 && c.to_ascii_lowercase().starts_with(&lower));
        match (prefixed.next(), prefixed.next()) {
            (Some(c), None) => Some(*c),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("optinal", &["optional", "output"]), Some("optional"));
        assert_eq!(did_you_mean("zzz", &["optional", "output"]), None);
        assert_eq!(
            did_you_mean("sbom_cyclonedx", &["SBOM_CYCLONEDX_JSON", "SBOM_SPDX_JSON"]),
            Some("SBOM_CYCLONEDX_JSON")
        );
        assert_eq!(
            did_you_mean("JUNIT", &["JUNIT_XML", "JACOCO_XML"]),
            Some("JUNIT_XML")
        );
        assert_eq!(
            did_you_mean("CSAF", &["CSAF_VEX", "CSAF_SECURITY_ADVISORY"]),
            None
        );
        assert_eq!(
            did_you_mean("SBOM_CYCLONDX_JSON", &["SBOM_CYCLONEDX_JSON", "SBOM_SPDX_JSON"]),
            Some("SBOM_CYCLONEDX_JSON")
        );
    }

    #[test]
    fn spans_inside_a_multibyte_character_do_not_panic() {
        let src = "name = \"caf\u{fffd}\"\n";
        let d = Diagnostic::at("f", src, 11..12, "m".into(), None);
        assert_eq!((d.line, d.column), (1, 12));
    }

    #[test]
    fn positions_are_one_based_with_the_line() {
        let src = "a = 1\nbb = 2\n";
        let d = Diagnostic::at("f.toml", src, 6..8, "m".into(), None);
        assert_eq!(
            (d.line, d.column, d.snippet.as_str(), d.width),
            (2, 1, "bb = 2", 2)
        );
    }
}
