//! Attestations: the DSSE envelope that carries an in-toto statement.
//!
//! Not here (yet): building the statement, signing keys on disk — they come
//! with the crafting CLI.

pub mod dsse;
pub mod git;
pub mod material;
pub mod runner;
pub mod signing;
