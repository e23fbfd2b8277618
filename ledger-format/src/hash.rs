//! RFC 6962 / RFC 9162 hashing: the 32-byte [`Hash`], leaf and node hashes.
//!
//! This module only hashes; it knows nothing of proofs, tiles or notes.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Length in bytes of every hash in the log (SHA-256).
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
///
/// It can only be built from exactly 32 bytes, so a proof or root of the
/// wrong length never reaches the Merkle code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

/// Why bytes or text could not become a [`Hash`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The input decoded to the wrong number of bytes.
    #[error("a hash must be exactly 32 bytes, got {0}")]
    WrongLength(usize),
    /// The input was neither valid lowercase/uppercase hex nor base64.
    #[error("{0:?} is neither 64 hex digits nor base64 of 32 bytes")]
    BadEncoding(String),
}

impl Hash {
    /// Builds a hash from a slice, rejecting any length but 32.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashError> {
        let arr: [u8; HASH_LEN] = bytes
            .try_into()
            .map_err(|_| HashError::WrongLength(bytes.len()))?;
        Ok(Hash(arr))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, HashError> {
        let bytes = hex::decode(text).map_err(|_| HashError::BadEncoding(text.to_owned()))?;
        Self::from_slice(&bytes)
    }

    /// Parses standard (padded) base64.
    pub fn from_base64(text: &str) -> Result<Self, HashError> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| HashError::BadEncoding(text.to_owned()))?;
        Self::from_slice(&bytes)
    }

    /// Parses either encoding: 64 hex digits, else standard base64.
    pub fn parse_any(text: &str) -> Result<Self, HashError> {
        let text = text.trim();
        if text.len() == 2 * HASH_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Self::from_hex(text);
        }
        Self::from_base64(text)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Standard padded base64, as used in checkpoints and tlog-proof files.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// `SHA-256(0x00 ‖ entry)`: the leaf hash of an entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// `SHA-256(0x01 ‖ left ‖ right)`: an interior node.
///
/// The 65-byte message always pads to exactly two blocks, so they are built
/// here and compressed directly, skipping the streaming hasher's buffering:
/// node hashing is two thirds of the work of appending to a log.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // sha2 0.10's block type is generic-array 0.14's, which newer patch
    // releases mark deprecated in favour of 1.x; sha2 0.10 has no other.
    #[allow(deprecated)]
    let mut blocks = [sha2::digest::generic_array::GenericArray::default(); 2];
    blocks[0][0] = 0x01;
    blocks[0][1..33].copy_from_slice(&left.0);
    blocks[0][33..64].copy_from_slice(&right.0[..31]);
    blocks[1][0] = right.0[31];
    blocks[1][1] = 0x80;
    // Message length in bits, big-endian, in the last 8 bytes: 65 * 8 = 520.
    blocks[1][56..64].copy_from_slice(&(65u64 * 8).to_be_bytes());
    let mut state = SHA256_IV;
    sha2::compress256(&mut state, &blocks[..]);
    let mut out = [0u8; HASH_LEN];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    Hash(out)
}

/// Plain `SHA-256(data)`: content digests of stored bodies (not tree hashes).
pub fn sha256(data: &[u8]) -> Hash {
    Hash(Sha256::digest(data).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn node_hash_equals_streaming_sha256() {
        for i in 0..50u8 {
            let l = Hash([i; 32]);
            let r = sha256(&[i, 1]);
            let mut h = Sha256::new();
            h.update([0x01]);
            h.update(l.0);
            h.update(r.0);
            assert_eq!(node_hash(&l, &r), Hash(h.finalize().into()));
        }
    }

    #[test]
    fn rejects_wrong_lengths_and_encodings() {
        assert_eq!(Hash::from_slice(&[0; 31]), Err(HashError::WrongLength(31)));
        assert!(Hash::parse_any("zz").is_err());
        assert!(Hash::parse_any("ZG9uJ3QgY2FyZSAy").is_err());
        let h = leaf_hash(b"");
        assert_eq!(Hash::parse_any(&h.to_hex()), Ok(h));
        assert_eq!(Hash::parse_any(&h.to_base64()), Ok(h));
    }
}
