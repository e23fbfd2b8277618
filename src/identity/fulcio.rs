//! The identity a certificate carries, in the X.509 extensions Fulcio
//! defines under Sigstore's arc 1.3.6.1.4.1.57264.1 (sigstore/fulcio
//! `docs/oid-info.md`): values are DER-encoded UTF8Strings, except the
//! deprecated `Issuer` (.1.1), a raw string, which Fulcio still writes and
//! older verifiers read.

/// Sigstore's Fulcio arc.
const ARC: [u64; 8] = [1, 3, 6, 1, 4, 1, 57264, 1];

/// The extensions tally writes, by their Fulcio number.
pub mod oid {
    /// Issuer (deprecated raw string; .8 supersedes it).
    pub const ISSUER_V1: u64 = 1;
    /// Issuer (V2): the OIDC issuer, or the control plane for token runs.
    pub const ISSUER: u64 = 8;
    /// Build Signer URI: what did the signing (the workflow).
    pub const BUILD_SIGNER_URI: u64 = 9;
    /// Build Signer Digest: the commit of the build instructions.
    pub const BUILD_SIGNER_DIGEST: u64 = 10;
    /// Runner Environment: `github-hosted`, `self-hosted`, …
    pub const RUNNER_ENVIRONMENT: u64 = 11;
    /// Source Repository URI.
    pub const SOURCE_REPOSITORY_URI: u64 = 12;
    /// Source Repository Digest: the commit built.
    pub const SOURCE_REPOSITORY_DIGEST: u64 = 13;
    /// Source Repository Ref.
    pub const SOURCE_REPOSITORY_REF: u64 = 14;
    /// Build Config URI.
    pub const BUILD_CONFIG_URI: u64 = 18;
    /// Run Invocation URI: the run.
    pub const RUN_INVOCATION_URI: u64 = 21;
}

/// The full OID of Fulcio extension `n`.
pub fn oid(n: u64) -> Vec<u64> {
    let mut v = ARC.to_vec();
    v.push(n);
    v
}

/// The dotted text of Fulcio extension `n` (as OpenSSL prints it).
pub fn dotted(n: u64) -> String {
    oid(n).iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Who a certificate vouches for. `san` is the certificate's identity
/// (a URI SAN, what `--certificate-identity` matches); the rest become
/// Fulcio extensions when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The subject alternative name (URI).
    pub san: String,
    /// The issuer of the identity: the OIDC issuer, or the control plane's
    /// URL for a run authenticated with a tally token.
    pub issuer: String,
    /// Build Signer URI.
    pub build_signer_uri: String,
    /// Run Invocation URI.
    pub run_invocation_uri: String,
    /// Build Signer Digest.
    pub build_signer_digest: Option<String>,
    /// Runner Environment.
    pub runner_environment: Option<String>,
    /// Source Repository URI.
    pub source_repository_uri: Option<String>,
    /// Source Repository Digest.
    pub source_repository_digest: Option<String>,
    /// Source Repository Ref.
    pub source_repository_ref: Option<String>,
    /// Build Config URI.
    pub build_config_uri: Option<String>,
}

impl Identity {
    /// (Fulcio number, value) of every extension this identity fills, in
    /// OID order.
    pub fn extensions(&self) -> Vec<(u64, &str)> {
        let mut out = vec![
            (oid::ISSUER, self.issuer.as_str()),
            (oid::BUILD_SIGNER_URI, self.build_signer_uri.as_str()),
        ];
        let optional = [
            (oid::BUILD_SIGNER_DIGEST, &self.build_signer_digest),
            (oid::RUNNER_ENVIRONMENT, &self.runner_environment),
            (oid::SOURCE_REPOSITORY_URI, &self.source_repository_uri),
            (oid::SOURCE_REPOSITORY_DIGEST, &self.source_repository_digest),
            (oid::SOURCE_REPOSITORY_REF, &self.source_repository_ref),
            (oid::BUILD_CONFIG_URI, &self.build_config_uri),
        ];
        out.extend(optional.iter().filter_map(|(n, v)| v.as_deref().map(|v| (*n, v))));
        out.push((oid::RUN_INVOCATION_URI, self.run_invocation_uri.as_str()));
        out
    }
}

/// DER of a UTF8String holding `s`.
pub fn utf8_string(s: &str) -> Vec<u8> {
    let mut out = vec![0x0c];
    der_length(s.len(), &mut out);
    out.extend_from_slice(s.as_bytes());
    out
}

/// The text of a DER UTF8String, or `None` when `der` is not exactly one.
pub fn read_utf8_string(der: &[u8]) -> Option<&str> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x0c {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| a << 8 | usize::from(b));
        // Definite, minimal lengths only (DER).
        if len < 0x80 || rest[0] == 0 {
            return None;
        }
        (len, &rest[n..])
    };
    if body.len() != len {
        return None;
    }
    std::str::from_utf8(body).ok()
}

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
    out.push(0x80 | bytes.len() as u8);
    out.extend(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_strings_round_trip_at_every_length_form() {
        for n in [0, 1, 127, 128, 255, 256, 70_000] {
            let s = "a".repeat(n);
            let der = utf8_string(&s);
            assert_eq!(read_utf8_string(&der), Some(s.as_str()), "length {n}");
        }
        assert_eq!(utf8_string("hi"), vec![0x0c, 2, b'h', b'i']);
        // Not a UTF8String, a wrong length, a non-minimal length.
        assert_eq!(read_utf8_string(&[0x13, 1, b'a']), None);
        assert_eq!(read_utf8_string(&[0x0c, 2, b'a']), None);
        assert_eq!(read_utf8_string(&[0x0c, 0x81, 1, b'a']), None);
        assert_eq!(read_utf8_string(&[0x0c, 1, 0xff]), None);
    }

    #[test]
    fn oids_are_fulcios() {
        assert_eq!(dotted(oid::ISSUER), "1.3.6.1.4.1.57264.1.8");
        assert_eq!(dotted(oid::RUN_INVOCATION_URI), "1.3.6.1.4.1.57264.1.21");
    }
}
