//! Log signing keys on disk: generation and the two key files.

use std::io;
use std::path::Path;

use ledger_format::note::{NoteError, SignerKey};
use rand::RngCore as _;

use crate::fsutil::write_atomic;

/// A fresh Ed25519 note signer named `origin`.
pub fn generate(origin: &str) -> Result<SignerKey, NoteError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SignerKey::from_seed(origin, &seed)
}

/// Writes the signer key (mode 0600) and its verifier key, each atomically.
pub fn write_pair(signer: &SignerKey, key_path: &Path, pub_path: &Path, overwrite: bool) -> io::Result<()> {
    write_atomic(
        key_path,
        format!("{}\n", signer.to_secret_text()).as_bytes(),
        0o600,
        overwrite,
    )?;
    write_atomic(
        pub_path,
        format!("{}\n", signer.verifier()).as_bytes(),
        0o644,
        overwrite,
    )
}
