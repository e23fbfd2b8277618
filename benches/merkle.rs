//! Merkle benchmarks for BENCHMARKS.md, printing one JSON document.
//!
//! Run: `cargo bench --bench merkle [-- --leaves N --seconds S]`.
//!
//! - append + root for N leaves (default 1M): tally's compact range vs
//!   `rs_merkle` (from_leaves, its fastest path) and `ct-merkle` (push), on the
//!   same inputs, leaf hashing included for all three, best of 3 runs each;
//! - inclusion-proof verification at tree size 2^30 on one core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use ledger_format::hash::{leaf_hash, node_hash, Hash};
use ledger_format::merkle::{verify_inclusion, CompactRange};
use ledger_format::rsmerkle::Rfc6962Hasher;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn best_of<F: FnMut() -> Hash>(runs: usize, mut f: F) -> (Duration, Hash) {
    let mut best = Duration::MAX;
    let mut root = Hash::default();
    for _ in 0..runs {
        let t = Instant::now();
        root = black_box(f());
        best = best.min(t.elapsed());
    }
    (best, root)
}

fn main() {
    let n = arg("--leaves", 1_000_000.0) as u64;
    let seconds = arg("--seconds", 2.0);
    let data: Vec<[u8; 32]> = (0..n)
        .map(|i| {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            d
        })
        .collect();

    let (ours, root_ours) = best_of(3, || {
        let mut cr = CompactRange::new();
        for d in &data {
            cr.append(leaf_hash(d));
        }
        cr.root()
    });
    let (rs, root_rs) = best_of(3, || {
        let leaves: Vec<[u8; 32]> = data.iter().map(|d| leaf_hash(d).0).collect();
        let t = rs_merkle::MerkleTree::<Rfc6962Hasher>::from_leaves(&leaves);
        Hash(t.root().unwrap())
    });
    let (ct, root_ct) = best_of(3, || {
        let mut t = ct_merkle::mem_backed_tree::MemoryBackedTree::<sha2_011::Sha256, [u8; 32]>::new();
        for d in &data {
            t.push(*d);
        }
        Hash::from_slice(t.root().as_bytes()).unwrap()
    });
    assert_eq!(root_ours, root_rs, "rs_merkle disagrees");
    assert_eq!(root_ours, root_ct, "ct-merkle disagrees");

    // Inclusion verification at size 2^30: random indices, valid proofs whose
    // roots are computed independently by folding the audit path.
    let size: u64 = 1 << 30;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let cases: Vec<(u64, Hash, Vec<Hash>, Hash)> = (0..1024)
        .map(|_| {
            let index = rnd() % size;
            let leaf = leaf_hash(&rnd().to_le_bytes());
            let proof: Vec<Hash> = (0..30).map(|_| leaf_hash(&rnd().to_le_bytes())).collect();
            // Perfect tree: bit k of the index says which side sibling k is on.
            let mut r = leaf;
            for (k, p) in proof.iter().enumerate() {
                r = if (index >> k) & 1 == 1 {
                    node_hash(p, &r)
                } else {
                    node_hash(&r, p)
                };
            }
            (index, leaf, proof, r)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut verified = 0u64;
    while Instant::now() < deadline {
        for (i, l, p, r) in &cases {
            black_box(verify_inclusion(l, *i, size, p, r).unwrap());
        }
        verified += cases.len() as u64;
    }
    let rate = verified as f64 / start.elapsed().as_secs_f64();

    let doc = serde_json::json!({
        "bench": "merkle",
        "leaves": n,
        "append_and_root_seconds": {
            "tally_compact_range": ours.as_secs_f64(),
            "rs_merkle_from_leaves": rs.as_secs_f64(),
            "ct_merkle_push": ct.as_secs_f64(),
        },
        "speedup_vs_rs_merkle": rs.as_secs_f64() / ours.as_secs_f64(),
        "speedup_vs_ct_merkle": ct.as_secs_f64() / ours.as_secs_f64(),
        "root": root_ours.to_hex(),
        "inclusion_verify_tree_size": size,
        "inclusion_verify_per_second_one_core": rate.round(),
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}
