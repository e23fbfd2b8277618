//! `tally verify`: a tlog-proof and an entry, offline, with only public keys.

use ledger_format::merkle::inclusion_proof;
use ledger_format::note::SignerKey;
use ledger_format::tlog_proof::TlogProof;

use crate::common::*;

struct Fixture {
    dir: tempfile::TempDir,
    proof: String,
    entry: String,
    envelope: String,
    pubkey: String,
}

fn fixture(index: u64, size: u64) -> Fixture {
    let key = log_key();
    let log = TestLog::build(tally_entries(size), &key);
    let dir = tmp();
    let proof = TlogProof {
        extra: None,
        index,
        proof: inclusion_proof(index, size, &log.tree).unwrap(),
        checkpoint: TestLog::checkpoint(&log.tree, &key),
    };
    let p = write(dir.path(), "entry.tlog-proof", proof.to_text());
    let e = write(dir.path(), "entry", &log.entries[index as usize]);
    let env = write(dir.path(), "envelope.json", envelope(index));
    let k = write(dir.path(), "log.pub", format!("{}\n", key.verifier()));
    Fixture {
        proof: p.to_str().unwrap().into(),
        entry: e.to_str().unwrap().into(),
        envelope: env.to_str().unwrap().into(),
        pubkey: k.to_str().unwrap().into(),
        dir,
    }
}

/// `tally verify <proof> --entry <entry> --log-key <key> <rest>` on a fixture.
fn verify(f: &Fixture, key: &str, rest: &[&str]) -> std::process::Output {
    tally(
        &[
            &["verify", &f.proof, "--entry", &f.entry, "--log-key", key][..],
            rest,
        ]
        .concat(),
    )
}

#[test]
fn verifies_an_entry_offline() {
    let f = fixture(300, 517);
    let o = verify(&f, &f.pubkey, &["--envelope", &f.envelope]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("index 300"), "{out}");
    assert!(out.contains("workflow build"), "{out}");
    // The key may be given as text too, with JSON output.
    let o = verify(&f, &log_key().verifier().to_string(), &["--output", "json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["index"], 300);
    assert_eq!(v["entry"]["run"], "run-300");
}

#[test]
fn rejects_wrong_entry_key_envelope_and_garbage() {
    let f = fixture(3, 10);
    let other_entry = write(f.dir.path(), "other", entry(4).to_bytes());
    let o = tally(&[
        "verify",
        &f.proof,
        "--entry",
        other_entry.to_str().unwrap(),
        "--log-key",
        &f.pubkey,
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));

    // Same name, different key: the checkpoint is not signed by it.
    let impostor = SignerKey::from_seed("tally.test/log", &[1; 32])
        .unwrap()
        .verifier()
        .to_string();
    let o = verify(&f, &impostor, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));

    let wrong_env = write(f.dir.path(), "env2", envelope(4));
    let o = verify(&f, &f.pubkey, &["--envelope", wrong_env.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("the entry names"), "{}", stderr(&o));

    let garbage = write(
        f.dir.path(),
        "bad.tlog-proof",
        "c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
    );
    let o = tally(&[
        "verify",
        garbage.to_str().unwrap(),
        "--entry",
        &f.entry,
        "--log-key",
        &f.pubkey,
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));

    let o = verify(&f, "not-a-key", &[]);
    assert_eq!(code(&o), 2);

    // A flipped proof hash byte is invalid.
    let mut text = std::fs::read_to_string(&f.proof).unwrap();
    let line_start = text.find("index 3\n").unwrap() + "index 3\n".len();
    let c = text.as_bytes()[line_start];
    let replacement = if c == b'A' { "B" } else { "A" };
    text.replace_range(line_start..line_start + 1, replacement);
    let flipped = write(f.dir.path(), "flipped.tlog-proof", text);
    let o = tally(&[
        "verify",
        flipped.to_str().unwrap(),
        "--entry",
        &f.entry,
        "--log-key",
        &f.pubkey,
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
}

#[test]
fn a_checkpoint_that_does_not_parse_is_input_error_said_once() {
    let f = fixture(3, 10);
    // The proof's checkpoint has no signature block: a note that does not
    // parse is malformed input (exit 2), its cause printed once.
    let text = std::fs::read_to_string(&f.proof).unwrap();
    let (head, _) = text.split_once("\n\n").unwrap();
    let unsigned = write(
        f.dir.path(),
        "unsigned.tlog-proof",
        format!("{head}\n\ntally.test/log\n10\n{}\n", "A".repeat(43) + "="),
    );
    let o = tally(&[
        "verify",
        unsigned.to_str().unwrap(),
        "--entry",
        &f.entry,
        "--log-key",
        &f.pubkey,
    ]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert_eq!(err.matches("no blank line separating").count(), 1, "{err}");

    // A well-formed checkpoint under another key is invalid (1), also said once.
    let impostor = SignerKey::from_seed("tally.test/log", &[1; 32])
        .unwrap()
        .verifier()
        .to_string();
    let o = verify(&f, &impostor, &["--output", "json"]);
    assert_eq!(code(&o), 1);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let causes: Vec<&str> = j["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for (i, c) in causes.iter().enumerate().skip(1) {
        assert!(!causes[i - 1].ends_with(c), "cause repeated: {causes:?}");
    }
    assert_eq!(
        j["message"]
            .as_str()
            .unwrap()
            .matches("no signature from")
            .count(),
        1,
        "{j}"
    );
}

#[test]
fn witness_policy_is_enforced() {
    let f = fixture(0, 1);
    let witness = SignerKey::from_seed("witness.test", &[5; 32]).unwrap();
    let wkey = witness.cosignature_verifier().to_string();
    let o = verify(&f, &f.pubkey, &["--witness-key", &wkey, "--min-witnesses", "1"]);
    assert_eq!(code(&o), 1, "no cosignature yet: {}", stderr(&o));

    // Add the witness's cosignature to the checkpoint inside the proof.
    let mut proof = TlogProof::parse(&std::fs::read(&f.proof).unwrap()).unwrap();
    let mut note = ledger_format::note::Note::parse(proof.checkpoint.as_bytes()).unwrap();
    let body = note.text().to_owned();
    note.push_signature(witness.cosign(&body, 1_764_000_000));
    proof.checkpoint = note.to_text();
    let p = write(f.dir.path(), "cosigned.tlog-proof", proof.to_text());
    let o = tally(&[
        "verify",
        p.to_str().unwrap(),
        "--entry",
        &f.entry,
        "--log-key",
        &f.pubkey,
        "--witness-key",
        &wkey,
        "--min-witnesses",
        "1",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
