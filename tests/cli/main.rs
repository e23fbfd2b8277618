//! End-to-end tests of the `tally` binary: keys, proofs, offline
//! verification and whole-log audits over a directory and over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, dead_code)]

mod attest;
mod audit;
mod common;
mod console;
mod contract;
mod controlplane;
mod craft;
mod crash;
mod demo;
mod identity;
mod integration;
mod key;
mod ledger;
mod material;
mod monitor;
mod oci;
mod policy;
mod proof;
mod shell;
mod verify;
mod witness;
