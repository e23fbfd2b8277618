//! Attestations: the DSSE envelope that carries an in-toto statement.
//!
//! Crafting (SPEC.md §11): material kinds and validators, runner detection,
//! the git HEAD, the crafting state, the statement, signing keys. The
//! commands that drive them are in `cmd::attestation`.

pub mod bundle;
pub mod dsse;
pub mod git;
pub mod image;
pub mod material;
pub mod runner;
pub mod signing;
pub mod state;
pub mod statement;
