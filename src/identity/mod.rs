//! Who signed an attestation (SPEC.md §15). One entry point, [`ca::Ca`]:
//! the control plane's certificate authority for keyless signing, which
//! binds a pipeline's ephemeral key to the run's identity in a short-lived
//! X.509 certificate carrying Fulcio's extensions ([`fulcio`]), so
//! identity policies written for Sigstore read it unchanged. [`oidc`]
//! checks a CI platform's ID token (tokenless CI) and maps its claims to
//! the same extensions; [`provenance`] compares a statement's SLSA
//! provenance with those verified claims (SPEC.md §15.7).
//!
//! Below the HTTP layer: the server's API calls into it, it imports
//! nothing from `server`.

pub mod ca;
pub mod cert;
pub mod fulcio;
pub mod oidc;
pub mod provenance;
