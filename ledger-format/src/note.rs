//! C2SP signed notes: parsing, Ed25519 signing, and verification with
//! Ed25519 (type 0x01), ECDSA P-256 (type 0x02) and cosignature/v1 (type 0x04)
//! verifier keys.
//!
//! Not here: what the note text means (see `checkpoint`), or where keys live.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Most signature lines a note may carry (as Go's `sumdb/note`; C2SP asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// The signature-line prefix: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Signature algorithm identifiers used in key ids.
pub mod alg {
    /// Ed25519 (signed-note).
    pub const ED25519: u8 = 0x01;
    /// ECDSA P-256 with SHA-256 (transparency-dev formats).
    pub const ECDSA_P256: u8 = 0x02;
    /// Ed25519 timestamped cosignature (tlog-cosignature `cosignature/v1`).
    pub const COSIGNATURE_V1: u8 = 0x04;
}

/// Why a note, key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The bytes are not valid UTF-8.
    #[error("note is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    /// A control character other than newline appears.
    #[error("note contains control character U+{code:04X} at byte {offset}")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Its byte offset.
        offset: usize,
    },
    /// There is no blank line separating text and signatures.
    #[error("note has no blank line separating its text from its signatures")]
    NoSignatureBlock,
    /// There is a blank line but nothing after it.
    #[error("note has a blank line but no signature lines after it")]
    NoSignatures,
    /// The last signature line does not end with a newline.
    #[error("the last signature line does not end with a newline")]
    MissingFinalNewline,
    /// The text before the signatures does not end with a newline.
    #[error("note text must be non-empty and end with a newline")]
    BadText,
    /// A line in the signature block is not a signature line.
    #[error("signature line {line} is malformed: {why}")]
    BadSignatureLine {
        /// 1-based line number within the signature block.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// More signature lines than [`MAX_SIGNATURES`].
    #[error("note has {0} signature lines; at most {MAX_SIGNATURES} are accepted")]
    TooManySignatures(usize),
    /// A key name is empty, has whitespace or a '+'.
    #[error("key name {0:?} is invalid: it must be non-empty with no whitespace and no '+'")]
    BadKeyName(String),
    /// Verifier or signer key text is malformed.
    #[error("key text is malformed: {0}")]
    BadKey(String),
    /// The key id in the key text does not match the key.
    #[error("key id {given:08x} in the key text does not match the key (expected {computed:08x})")]
    KeyIdMismatch {
        /// The id written in the text.
        given: u32,
        /// The id computed from name, type and key.
        computed: u32,
    },
    /// A signature from a trusted key did not verify.
    #[error("signature by {name} (key id {key_id:08x}) does not verify")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// No signature from any trusted key was found.
    #[error("note has no signature from any trusted key (known: {known})")]
    NoTrustedSignature {
        /// The names of the keys that were trusted.
        known: String,
    },
}

/// One signature line: the key name, key id and the signature bytes after the id.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl fmt::Debug for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSignature({} {:08x})", self.name, self.key_id)
    }
}

impl NoteSignature {
    /// A signature line's parts.
    pub fn new(name: &str, key_id: u32, signature: Vec<u8>) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id,
            signature,
        })
    }
    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The 4-byte key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
    /// The signature bytes (after the key id).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
    /// The line, without its newline: `— <name> <base64(key id ‖ signature)>`.
    pub fn to_line(&self) -> String {
        let mut raw = self.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}", self.name, STANDARD.encode(raw))
    }
}

/// A parsed, not yet verified, signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(char::is_whitespace) || name.contains('+') {
        return Err(NoteError::BadKeyName(name.to_owned()));
    }
    Ok(())
}

fn check_text_chars(s: &str) -> Result<(), NoteError> {
    for (offset, c) in s.char_indices() {
        if (c < ' ' && c != '\n') || c == '\u{7f}' {
            return Err(NoteError::ControlCharacter {
                code: c as u32,
                offset,
            });
        }
    }
    Ok(())
}

impl Note {
    /// A note with text and no signatures yet. The text must end in `\n`.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_text_chars(text)?;
        if text.is_empty() || !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
            return Err(NoteError::BadText);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note (text, blank line, signature lines).
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        let s = std::str::from_utf8(bytes).map_err(|e| NoteError::NotUtf8(e.valid_up_to()))?;
        check_text_chars(s)?;
        let split = s.rfind("\n\n").ok_or(NoteError::NoSignatureBlock)?;
        let text = &s[..split + 1];
        let sigs = &s[split + 2..];
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        if !sigs.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        let lines: Vec<&str> = sigs[..sigs.len() - 1].split('\n').collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures(lines.len()));
        }
        let mut signatures = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let line_no = i + 1;
            let bad = |why| NoteError::BadSignatureLine { line: line_no, why };
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad("it does not start with an em dash and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("it has no space between key name and signature"))?;
            check_name(name).map_err(|_| bad("the key name is empty or has a '+'"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| bad("the signature is not valid base64"))?;
            if raw.len() < 5 {
                return Err(bad("the signature is shorter than a key id plus one byte"));
            }
            let key_id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id,
                signature: raw[4..].to_vec(),
            });
        }
        if text.len() <= 1 {
            return Err(NoteError::BadText);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The signed text, ending in `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line (at the end).
    pub fn push_signature(&mut self, sig: NoteSignature) {
        self.signatures.push(sig);
    }

    /// The note's exact bytes.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 100 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
            out.push('\n');
        }
        out
    }

    /// Verifies the note against trusted keys.
    ///
    /// Signatures by unknown keys are ignored; a signature by a known key that
    /// does not verify rejects the whole note; at least one signature by a
    /// non-cosignature key is required.
    pub fn verify(&self, keys: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
        let mut verified = Vec::new();
        let mut unverified = Vec::new();
        for sig in &self.signatures {
            let Some(key) = keys.iter().find(|k| k.name == sig.name && k.key_id == sig.key_id) else {
                unverified.push(sig.clone());
                continue;
            };
            let timestamp = key.check(self.text.as_bytes(), &sig.signature).ok_or_else(|| {
                NoteError::InvalidSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                }
            })?;
            if !verified
                .iter()
                .any(|v: &VerifiedSignature| v.key_id == sig.key_id && v.name == sig.name)
            {
                verified.push(VerifiedSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                    algorithm: key.algorithm(),
                    timestamp,
                });
            }
        }
        if !verified.iter().any(|v| v.algorithm != alg::COSIGNATURE_V1) {
            return Err(NoteError::NoTrustedSignature {
                known: keys
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(VerifiedNote {
            note: self.clone(),
            verified,
            unverified,
        })
    }
}

/// A signature that verified under a trusted key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    name: String,
    key_id: u32,
    algorithm: u8,
    timestamp: Option<u64>,
}

impl VerifiedSignature {
    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
    /// The key's algorithm byte (see [`alg`]).
    pub fn algorithm(&self) -> u8 {
        self.algorithm
    }
    /// For a cosignature, the time (seconds since the Unix epoch) it was made.
    pub fn timestamp(&self) -> Option<u64> {
        self.timestamp
    }
}

/// A note whose signatures were checked by [`Note::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    note: Note,
    verified: Vec<VerifiedSignature>,
    unverified: Vec<NoteSignature>,
}

impl VerifiedNote {
    /// The note.
    pub fn note(&self) -> &Note {
        &self.note
    }
    /// The signed text.
    pub fn text(&self) -> &str {
        self.note.text()
    }
    /// Signatures that verified, in note order.
    pub fn verified(&self) -> &[VerifiedSignature] {
        &self.verified
    }
    /// Signatures by keys that were not trusted (ignored).
    pub fn unverified(&self) -> &[NoteSignature] {
        &self.unverified
    }
}

/// `SHA-256(name ‖ "\n" ‖ type ‖ key)[:4]` as a big-endian u32.
pub fn key_id(name: &str, algorithm: u8, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([algorithm]);
    h.update(key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PublicKey {
    Ed25519(VerifyingKey),
    EcdsaP256(Box<p256::ecdsa::VerifyingKey>),
    Cosignature(VerifyingKey),
}

/// A trusted key, from verifier-key text `<name>+<hex id>+<base64(type ‖ key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    key: PublicKey,
    text: String,
}

impl VerifierKey {
    /// Parses verifier-key text.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey(
                "expected <name>+<hex key id>+<base64 key>".into(),
            ));
        };
        check_name(name)?;
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(NoteError::BadKey(format!(
                "key id {id_hex:?} is not 8 lowercase hex digits"
            )));
        }
        let given = u32::from_str_radix(id_hex, 16)
            .map_err(|_| NoteError::BadKey(format!("key id {id_hex:?} is not hex")))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::BadKey("the key is not valid base64".into()))?;
        let Some((&algorithm, key_bytes)) = raw.split_first() else {
            return Err(NoteError::BadKey("the key is empty".into()));
        };
        let (key, computed) = match algorithm {
            alg::ED25519 | alg::COSIGNATURE_V1 => {
                let arr: [u8; 32] = key_bytes.try_into().map_err(|_| {
                    NoteError::BadKey(format!("an Ed25519 key is 32 bytes, got {}", key_bytes.len()))
                })?;
                let vk = VerifyingKey::from_bytes(&arr)
                    .map_err(|_| NoteError::BadKey("not a valid Ed25519 public key".into()))?;
                let pk = if algorithm == alg::ED25519 {
                    PublicKey::Ed25519(vk)
                } else {
                    PublicKey::Cosignature(vk)
                };
                (pk, key_id(name, algorithm, key_bytes))
            }
            alg::ECDSA_P256 => {
                use p256::pkcs8::DecodePublicKey as _;
                let vk = p256::ecdsa::VerifyingKey::from_public_key_der(key_bytes)
                    .map_err(|_| NoteError::BadKey("not a DER-encoded P-256 public key".into()))?;
                let d = Sha256::digest(key_bytes);
                (
                    PublicKey::EcdsaP256(Box::new(vk)),
                    u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
                )
            }
            other => return Err(NoteError::BadKey(format!("unsupported key type 0x{other:02x}"))),
        };
        if computed != given {
            return Err(NoteError::KeyIdMismatch { given, computed });
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: given,
            key,
            text: text.to_owned(),
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
    /// The public key's bytes (Ed25519: 32 bytes; P-256: SEC1 compressed),
    /// without name or id: two keys with equal bytes and algorithm are the
    /// same key under different names (C2SP tlog-policy calls them duplicates).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.key {
            PublicKey::Ed25519(vk) | PublicKey::Cosignature(vk) => vk.as_bytes().to_vec(),
            PublicKey::EcdsaP256(vk) => vk.to_encoded_point(true).as_bytes().to_vec(),
        }
    }

    /// The algorithm byte (see [`alg`]).
    pub fn algorithm(&self) -> u8 {
        match self.key {
            PublicKey::Ed25519(_) => alg::ED25519,
            PublicKey::EcdsaP256(_) => alg::ECDSA_P256,
            PublicKey::Cosignature(_) => alg::COSIGNATURE_V1,
        }
    }

    /// Checks one signature line of a note over its `text`: `None` unless it
    /// names this key (name and id) and verifies; for a cosignature,
    /// `Some(Some(timestamp))`. Unlike [`Note::verify`] this needs no log
    /// signature, so each witness of a quorum can be checked on its own.
    pub fn verifies(&self, text: &str, sig: &NoteSignature) -> Option<Option<u64>> {
        if sig.name != self.name || sig.key_id != self.key_id {
            return None;
        }
        self.check(text.as_bytes(), &sig.signature)
    }

    /// Checks one signature over `text`; for a cosignature, returns its timestamp.
    /// `None` when the signature does not verify.
    fn check(&self, text: &[u8], sig: &[u8]) -> Option<Option<u64>> {
        match &self.key {
            PublicKey::Ed25519(vk) => {
                let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
                vk.verify_strict(text, &sig).ok().map(|()| None)
            }
            PublicKey::EcdsaP256(vk) => {
                use p256::ecdsa::signature::Verifier as _;
                let sig = p256::ecdsa::Signature::from_der(sig).ok()?;
                vk.verify(text, &sig).ok().map(|()| None)
            }
            PublicKey::Cosignature(vk) => {
                if sig.len() != 8 + 64 {
                    return None;
                }
                let (ts, sig) = sig.split_at(8);
                let timestamp = u64::from_be_bytes(ts.try_into().ok()?);
                let sig = ed25519_dalek::Signature::from_slice(sig).ok()?;
                let msg = cosignature_message(timestamp, text);
                vk.verify_strict(&msg, &sig).ok().map(|()| Some(timestamp))
            }
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The message a cosignature/v1 signs: `cosignature/v1\ntime <t>\n` ‖ body.
pub fn cosignature_message(timestamp: u64, checkpoint_body: &[u8]) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    msg.extend_from_slice(checkpoint_body);
    msg
}

/// An Ed25519 note signer, from Go-style signer-key text
/// `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}+{:08x}, secret elided)", self.name, self.key_id)
    }
}

impl SignerKey {
    /// A signer for `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, alg::ED25519, key.verifying_key().as_bytes());
        Ok(SignerKey {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses signer-key text.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::BadKey("signer key text must start with PRIVATE+KEY+".into()))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey(
                "expected PRIVATE+KEY+<name>+<hex id>+<base64 key>".into(),
            ));
        };
        let given = u32::from_str_radix(id_hex, 16)
            .ok()
            .filter(|_| id_hex.len() == 8)
            .ok_or_else(|| NoteError::BadKey(format!("key id {id_hex:?} is not 8 hex digits")))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::BadKey("the key is not valid base64".into()))?;
        if raw.first() != Some(&alg::ED25519) {
            return Err(NoteError::BadKey(
                "only Ed25519 (type 0x01) signer keys are supported".into(),
            ));
        }
        let seed: [u8; 32] = raw[1..]
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 seed is 32 bytes".into()))?;
        let signer = Self::from_seed(name, &seed)?;
        if signer.key_id != given {
            return Err(NoteError::KeyIdMismatch {
                given,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signer-key text (a secret).
    pub fn to_secret_text(&self) -> String {
        let mut raw = vec![alg::ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(raw)
        )
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        let mut raw = vec![alg::ED25519];
        raw.extend_from_slice(self.key.verifying_key().as_bytes());
        let text = format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(raw));
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: PublicKey::Ed25519(self.key.verifying_key()),
            text,
        }
    }

    /// The cosignature/v1 verifier key for the same secret (type 0x04 key id).
    pub fn cosignature_verifier(&self) -> VerifierKey {
        let pk = self.key.verifying_key();
        let key_id = key_id(&self.name, alg::COSIGNATURE_V1, pk.as_bytes());
        let mut raw = vec![alg::COSIGNATURE_V1];
        raw.extend_from_slice(pk.as_bytes());
        VerifierKey {
            name: self.name.clone(),
            key_id,
            key: PublicKey::Cosignature(pk),
            text: format!("{}+{:08x}+{}", self.name, key_id, STANDARD.encode(raw)),
        }
    }

    /// Signs note text with Ed25519.
    pub fn sign(&self, text: &str) -> NoteSignature {
        let sig = self.key.sign(text.as_bytes());
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: sig.to_bytes().to_vec(),
        }
    }

    /// Produces a cosignature/v1 over a checkpoint body at `timestamp`.
    pub fn cosign(&self, checkpoint_body: &str, timestamp: u64) -> NoteSignature {
        let msg = cosignature_message(timestamp, checkpoint_body.as_bytes());
        let sig = self.key.sign(&msg);
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&sig.to_bytes());
        NoteSignature {
            name: self.name.clone(),
            key_id: key_id(
                &self.name,
                alg::COSIGNATURE_V1,
                self.key.verifying_key().as_bytes(),
            ),
            signature: bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let signer = SignerKey::from_seed("example.com/log", &[7; 32]).expect("signer");
        let mut note = Note::new("hello\n").expect("note");
        note.push_signature(signer.sign(note.text()));
        let parsed = Note::parse(note.to_text().as_bytes()).expect("parse");
        let v = parsed.verify(&[signer.verifier()]).expect("verify");
        assert_eq!(v.verified().len(), 1);
        let again = SignerKey::parse(&signer.to_secret_text()).expect("reparse");
        assert_eq!(again.verifier(), signer.verifier());
        assert_eq!(
            VerifierKey::parse(&signer.verifier().to_string()).expect("vkey"),
            signer.verifier()
        );
    }

    #[test]
    fn rejects_tampered_text() {
        let signer = SignerKey::from_seed("k", &[1; 32]).expect("signer");
        let mut note = Note::new("a\n").expect("note");
        note.push_signature(signer.sign("a\n"));
        let text = note.to_text().replacen("a\n", "b\n", 1);
        let err = Note::parse(text.as_bytes())
            .expect("parse")
            .verify(&[signer.verifier()])
            .expect_err("must fail");
        assert!(matches!(err, NoteError::InvalidSignature { .. }));
    }

    #[test]
    fn accepts_sixteen_unknown_plus_one_known() {
        let signer = SignerKey::from_seed("log", &[2; 32]).expect("signer");
        let mut note = Note::new("body\n").expect("note");
        for i in 0..16u8 {
            let other = SignerKey::from_seed(&format!("w{i}"), &[i + 10; 32]).expect("w");
            note.push_signature(other.sign("body\n"));
        }
        note.push_signature(signer.sign("body\n"));
        let v = Note::parse(note.to_text().as_bytes())
            .expect("parse")
            .verify(&[signer.verifier()])
            .expect("verify");
        assert_eq!(v.unverified().len(), 16);
    }
}
