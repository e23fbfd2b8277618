//! `tally proof inclusion|consistency`: verify a Merkle proof given as flags
//! or as JSON (hashes hex or base64).

use anyhow::{anyhow, Context as _};
use ledger_format::hash::{leaf_hash, Hash};
use ledger_format::merkle::{verify_consistency, verify_inclusion};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::json;

use crate::cli::{ConsistencyArgs, InclusionArgs};
use crate::cmd::{read_input, Report};
use crate::exit::{Classify, Failure};

/// A u64 written as a JSON number or a decimal string (Sigstore bundles use strings).
fn u64_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Str(s) => s.parse().map_err(de::Error::custom),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionJson {
    #[serde(
        alias = "leafIdx",
        alias = "leaf_index",
        alias = "logIndex",
        deserialize_with = "u64_or_string"
    )]
    index: u64,
    #[serde(alias = "treeSize", alias = "tree_size", deserialize_with = "u64_or_string")]
    size: u64,
    #[serde(alias = "rootHash", alias = "root_hash")]
    root: String,
    #[serde(alias = "leafHash")]
    leaf_hash: String,
    #[serde(alias = "hashes", default)]
    proof: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    desc: Option<String>,
    #[serde(default, rename = "wantErr")]
    #[allow(dead_code)]
    want_err: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyJson {
    #[serde(alias = "oldSize", alias = "old_size", deserialize_with = "u64_or_string")]
    size1: u64,
    #[serde(alias = "newSize", alias = "new_size", deserialize_with = "u64_or_string")]
    size2: u64,
    #[serde(alias = "oldRoot", alias = "old_root")]
    root1: String,
    #[serde(alias = "newRoot", alias = "new_root")]
    root2: String,
    #[serde(alias = "hashes", default)]
    proof: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    desc: Option<String>,
    #[serde(default, rename = "wantErr")]
    #[allow(dead_code)]
    want_err: Option<bool>,
}

fn hash(what: &str, s: &str) -> Result<Hash, Failure> {
    Hash::parse_any(s).with_context(|| what.to_owned()).usage()
}

fn hashes(list: &[String]) -> Result<Vec<Hash>, Failure> {
    list.iter()
        .enumerate()
        .map(|(i, h)| hash(&format!("proof hash {i}"), h))
        .collect()
}

fn need<T>(v: Option<T>, flag: &str) -> Result<T, Failure> {
    v.ok_or_else(|| Failure::Usage(anyhow!("missing {flag} (or give the whole proof with --json)")))
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Result<T, Failure> {
    let bytes = read_input(path)?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a valid proof document", path.display()))
        .usage()
}

/// Verifies an inclusion proof.
pub fn inclusion(args: &InclusionArgs) -> Result<Report, Failure> {
    let (leaf, index, size, root, proof) = if let Some(path) = &args.json {
        let j: InclusionJson = parse_json(path)?;
        (
            hash("leafHash", &j.leaf_hash)?,
            j.index,
            j.size,
            hash("root", &j.root)?,
            hashes(&j.proof.unwrap_or_default())?,
        )
    } else {
        let leaf = match (&args.leaf_hash, &args.entry) {
            (Some(h), _) => hash("--leaf-hash", h)?,
            (None, Some(p)) => leaf_hash(&read_input(p)?),
            (None, None) => return Err(Failure::Usage(anyhow!("give --leaf-hash or --entry (or --json)"))),
        };
        (
            leaf,
            need(args.index, "--index")?,
            need(args.size, "--size")?,
            hash("--root", &need(args.root.clone(), "--root")?)?,
            hashes(&args.proof)?,
        )
    };
    let v = verify_inclusion(&leaf, index, size, &proof, &root)
        .with_context(|| format!("inclusion proof of leaf {index} in tree of size {size} is invalid"))
        .invalid()?;
    Ok(Report {
        text: format!(
            "OK: leaf {} is at index {} in the tree of size {} with root {}\n",
            v.leaf_hash(),
            v.index(),
            v.size(),
            v.root()
        ),
        json: json!({
            "valid": true,
            "kind": "inclusion",
            "leaf_hash": v.leaf_hash().to_hex(),
            "index": v.index(),
            "size": v.size(),
            "root": v.root().to_hex(),
        }),
    })
}

/// Verifies a consistency proof.
pub fn consistency(args: &ConsistencyArgs) -> Result<Report, Failure> {
    let (m, n, r1, r2, proof) = if let Some(path) = &args.json {
        let j: ConsistencyJson = parse_json(path)?;
        (
            j.size1,
            j.size2,
            hash("root1", &j.root1)?,
            hash("root2", &j.root2)?,
            hashes(&j.proof.unwrap_or_default())?,
        )
    } else {
        (
            need(args.old_size, "--old-size")?,
            need(args.new_size, "--new-size")?,
            hash("--old-root", &need(args.old_root.clone(), "--old-root")?)?,
            hash("--new-root", &need(args.new_root.clone(), "--new-root")?)?,
            hashes(&args.proof)?,
        )
    };
    let v = verify_consistency(m, n, &r1, &r2, &proof)
        .with_context(|| format!("consistency proof from size {m} to size {n} is invalid"))
        .invalid()?;
    Ok(Report {
        text: format!(
            "OK: the tree of size {} (root {}) is a prefix of the tree of size {} (root {})\n",
            v.old_size(),
            v.old_root(),
            v.new_size(),
            v.new_root()
        ),
        json: json!({
            "valid": true,
            "kind": "consistency",
            "old_size": v.old_size(),
            "old_root": v.old_root().to_hex(),
            "new_size": v.new_size(),
            "new_root": v.new_root().to_hex(),
        }),
    })
}
