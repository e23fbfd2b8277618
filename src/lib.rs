//! tally: a software supply-chain ledger.
//!
//! This crate is the `tally` binary's library: the command implementations
//! and the I/O around the pure formats of the `ledger-format` crate. The
//! binary (`main.rs`) is glue: it parses flags and maps outcomes to exit codes.
#![forbid(unsafe_code)]

pub mod attest;
pub mod ci_token;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod contract;
pub mod exit;
pub mod fsutil;
pub mod identity;
pub mod keys;
pub mod ledger;
pub mod monitor;
pub mod policy;
pub mod server;
pub mod source;
pub mod wire;
pub mod witness;
