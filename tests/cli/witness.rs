//! `tally witness serve` as another organisation would run it, against a
//! log tally did not write: the Tessera test log in `../shared/vectors`
//! (its test signing key is public, so forks of it are signed on purpose).

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use ledger_format::checkpoint::Checkpoint;
use ledger_format::hash::Hash;
use ledger_format::merkle::{consistency_proof, MemoryTree};
use ledger_format::note::{Note, SignerKey, VerifierKey};

use crate::common::{code, stderr, tally};

const ORIGIN: &str = "example.com/log/testdata";
const LOG_VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const LOG_SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["witness", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Served {
        child,
        url: v["url"].as_str().unwrap().to_owned(),
    }
}

/// POST /add-checkpoint: (status, content type, body).
fn add(url: &str, old: u64, proof: &[Hash], checkpoint: &str) -> (u16, String, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&b64.encode(h.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().unwrap())
}

#[test]
fn a_witness_cosigns_only_consistent_checkpoints_of_a_log_it_did_not_write() {
    let Some(vectors) = crate::common::vectors_dir() else {
        return;
    };
    let log = vectors.join("tessera-log");
    let cp = |n: u64| std::fs::read_to_string(log.join(format!("checkpoint.{n}"))).unwrap();
    // The log's leaves, for consistency proofs (its level-0 tile).
    let tile = std::fs::read(log.join("tile/0/000.p/15")).unwrap();
    let mut tree = MemoryTree::new();
    for h in tile.chunks(32) {
        tree.push(Hash(h.try_into().unwrap()));
    }
    let proof = |a: u64, b: u64| consistency_proof(a, b, &tree).unwrap();

    let d = tempfile::tempdir().unwrap();
    let keyfile = d.path().join("witness.key");
    let o = tally(&[
        "witness",
        "keygen",
        "--name",
        "witness.test/w1",
        "--key-file",
        keyfile.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let wkey: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let wvkey = VerifierKey::parse(wkey["verifier_key"].as_str().unwrap()).unwrap();
    // Never overwritten.
    assert_ne!(
        code(&tally(&[
            "witness",
            "keygen",
            "--name",
            "x/y",
            "--key-file",
            keyfile.to_str().unwrap()
        ])),
        0
    );
    let config = d.path().join("witness.toml");
    std::fs::write(
        &config,
        format!("key_file = \"witness.key\"\nstate_dir = \"state\"\n\n[[log]]\norigin = \"{ORIGIN}\"\nkeys = [\"{LOG_VKEY}\"]\n"),
    )
    .unwrap();
    let w = serve(&config);
    let got = reqwest::blocking::get(format!("{}/verifier-key", w.url))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(got.trim(), wvkey.to_string());

    // First sight: old 0, no proof: cosigned. The cosignature verifies
    // (cosignature/v1 over exactly the checkpoint body, timestamped).
    let (s, _, body) = add(&w.url, 0, &[], &cp(5));
    assert_eq!(s, 200, "{body}");
    assert!(
        body.starts_with("— witness.test/w1 ") && body.ends_with('\n'),
        "{body:?}"
    );
    let cosigned = format!("{}{body}", cp(5));
    let note = Note::parse(cosigned.as_bytes()).unwrap();
    let v = note
        .verify(&[VerifierKey::parse(LOG_VKEY).unwrap(), wvkey.clone()])
        .unwrap();
    let c = v
        .verified()
        .iter()
        .find(|s| s.name() == "witness.test/w1")
        .expect("the witness's cosignature");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(c.timestamp().is_some_and(|t| t + 60 > now && t <= now + 1));

    // A client that does not know the witness's size: 409 with it.
    let (s, ct, body) = add(&w.url, 0, &[], &cp(7));
    assert_eq!((s, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "5\n"));
    // Consistent growth: 5 → 7 with the proof.
    let (s, _, body) = add(&w.url, 5, &proof(5, 7), &cp(7));
    assert_eq!(s, 200, "{body}");
    // A wrong proof: 422, nothing cosigned, state unchanged.
    let mut bad = proof(7, 9);
    bad[0].0[0] ^= 1;
    assert_eq!(add(&w.url, 7, &bad, &cp(9)).0, 422);
    // The same checkpoint again: cosigned again.
    assert_eq!(add(&w.url, 7, &[], &cp(7)).0, 200);
    // Older than what it cosigned: old size larger than the checkpoint's: 400.
    assert_eq!(add(&w.url, 7, &[], &cp(5)).0, 400);
    // A fork: another root at size 7, signed with the log's (public) key: 422.
    let skey = SignerKey::parse(LOG_SKEY).unwrap();
    let fork = Checkpoint::new(ORIGIN, 7, Hash([7; 32]))
        .unwrap()
        .sign(&skey)
        .unwrap()
        .to_text();
    let (s, _, body) = add(&w.url, 7, &[], &fork);
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("another root at size 7"), "{body}");
    // A fork that grows from the fork: the proof cannot verify against what it cosigned.
    let fork9 = Checkpoint::new(ORIGIN, 9, Hash([9; 32]))
        .unwrap()
        .sign(&skey)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 7, &proof(7, 9), &fork9).0, 422);
    // Unknown origin: 404. No trusted signature, or a bad one: 403.
    let other = SignerKey::from_seed("other.example/log", &[1; 32]).unwrap();
    let stranger = Checkpoint::new("other.example/log", 3, Hash([3; 32]))
        .unwrap()
        .sign(&other)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 0, &[], &stranger).0, 404);
    let impostor = SignerKey::from_seed(ORIGIN, &[2; 32]).unwrap();
    let unsigned = Checkpoint::new(ORIGIN, 9, Hash([9; 32]))
        .unwrap()
        .sign(&impostor)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 7, &proof(7, 9), &unsigned).0, 403);
    let mut flipped = cp(9).into_bytes();
    let at = flipped.len() - 10;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        add(&w.url, 7, &proof(7, 9), &String::from_utf8(flipped).unwrap()).0,
        403
    );
    // Malformed bodies: 400.
    assert_eq!(add(&w.url, 0, &[], "not a checkpoint\n").0, 400);
    // A size-0 checkpoint must have the empty root.
    let zero = Checkpoint::new(ORIGIN, 0, Hash([1; 32]))
        .unwrap()
        .sign(&skey)
        .unwrap()
        .to_text();
    assert_eq!(add(&w.url, 0, &[], &zero).0, 422);

    // kill -9 after cosigning 7: the state survives; it never cosigns
    // anything inconsistent with 7, and goes on from there.
    drop(w);
    let w = serve(&config);
    let (s, ct, body) = add(&w.url, 0, &[], &cp(9));
    assert_eq!((s, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", "7\n"));
    assert_eq!(add(&w.url, 7, &[], &fork).0, 422);
    let (s, _, body) = add(&w.url, 7, &proof(7, 15), &cp(15));
    assert_eq!(s, 200, "{body}");
    // The cosigned checkpoint verifies under the log's and the witness's keys.
    let cosigned = format!("{}{body}", cp(15));
    assert!(Note::parse(cosigned.as_bytes())
        .unwrap()
        .verify(&[VerifierKey::parse(LOG_VKEY).unwrap(), wvkey])
        .is_ok());
}
