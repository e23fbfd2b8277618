//! insta snapshots of the text formats: note, checkpoint, tlog-proof, entry.

use ledger_format::checkpoint::Checkpoint;
use ledger_format::entry::{ContractRevision, Entry};
use ledger_format::hash::{leaf_hash, sha256};
use ledger_format::merkle::{inclusion_proof, MemoryTree};
use ledger_format::note::{Note, SignerKey};
use ledger_format::tlog_proof::TlogProof;

fn log_key() -> SignerKey {
    SignerKey::from_seed("tally.example.com/log", &[42; 32]).unwrap()
}

fn sample_entry(i: u32) -> Entry {
    Entry {
        envelope_digest: sha256(format!("envelope {i}").as_bytes()),
        envelope_size: 1000 + u64::from(i),
        contract: ContractRevision {
            name: "build-and-release".into(),
            commit: "3f1c2a4b5d6e7f8091a2b3c4d5e6f708192a3b4c".into(),
            blob: "9d8c7b6a5f4e3d2c1b0a99887766554433221100".into(),
        },
        project: "payments".into(),
        workflow: "release".into(),
        run: format!("run-{i}"),
        verdict: None,
    }
}

#[test]
fn snapshot_note_and_keys() {
    let key = log_key();
    let mut note = Note::new("hello, auditor\n").unwrap();
    note.push_signature(key.sign(note.text()));
    insta::assert_snapshot!("note", note.to_text());
    insta::assert_snapshot!("verifier_key", key.verifier().to_string());
}

#[test]
fn snapshot_checkpoint_and_tlog_proof() {
    let key = log_key();
    let witness = SignerKey::from_seed("witness.example.com", &[7; 32]).unwrap();
    let mut tree = MemoryTree::new();
    for i in 0..5 {
        tree.push(leaf_hash(&sample_entry(i).to_bytes()));
    }
    let cp = Checkpoint::new("tally.example.com/log", tree.size(), tree.root()).unwrap();
    let mut note = cp.sign(&key).unwrap();
    note.push_signature(witness.cosign(&cp.to_body(), 1_764_000_000));
    insta::assert_snapshot!("checkpoint", note.to_text());

    let proof = TlogProof {
        extra: None,
        index: 3,
        proof: inclusion_proof(3, 5, &tree).unwrap(),
        checkpoint: note.to_text(),
    };
    let text = proof.to_text();
    insta::assert_snapshot!("tlog_proof", text);
    let parsed = TlogProof::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed, proof);
    let v = parsed
        .verify(
            &sample_entry(3).to_bytes(),
            &key.verifier(),
            &[witness.cosignature_verifier()],
            Some("tally.example.com/log"),
        )
        .unwrap();
    assert_eq!(v.inclusion().index(), 3);
    assert_eq!(v.checkpoint().cosignatures().count(), 1);
    assert!(parsed
        .verify(&sample_entry(2).to_bytes(), &key.verifier(), &[], None)
        .is_err());
}

#[test]
fn snapshot_entry() {
    insta::assert_snapshot!("entry", sample_entry(1).to_string());
}
