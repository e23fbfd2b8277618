//! C2SP tlog-policy: which logs and witnesses are trusted, and the quorum of
//! witnesses a checkpoint needs (SPEC.md §14.3).
//!
//! One file format for every party: the control plane reads the witnesses
//! it asks (their URLs) and the quorum it publishes against; `tally verify`,
//! `tally audit` and `tally monitor` read the same file to decide whether a
//! checkpoint is cosigned enough. [`TrustPolicy::parse`] rejects anything
//! the spec does not allow, naming the line; [`TrustPolicy::check`] counts
//! the valid cosignatures of a note and evaluates the quorum.

use std::collections::HashMap;

use ledger_format::note::{alg, Note, VerifierKey};

/// Most logs, witnesses and groups one policy may define (the spec's
/// recommended minimum to support, used as our ceiling).
pub const MAX_ITEMS: usize = 32;

/// A log the policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// Its verifier key; the key name is the log's origin.
    pub key: VerifierKey,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A witness the policy knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name in this policy (quorum and group members refer to it).
    pub name: String,
    /// Its cosignature (type 0x04) verifier key.
    pub key: VerifierKey,
    /// Its tlog-witness submission prefix, if given.
    pub url: Option<String>,
}

/// A group member: a witness or an earlier group, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None`: `quorum none`.
    quorum: Option<Member>,
}

/// What [`TrustPolicy::check`] found in a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReport {
    /// Names of the policy's witnesses whose cosignature verified.
    pub cosigned: Vec<String>,
    /// Whether they satisfy the quorum.
    pub satisfied: bool,
}

/// Why a policy file is refused: the line (1-based) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct PolicyError {
    /// The line.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl TrustPolicy {
    /// Parses a policy file (C2SP tlog-policy). Names and URLs must be
    /// UTF-8 here (the spec allows opaque high-bit octets; tally reads the
    /// file as text).
    pub fn parse(text: &str) -> Result<TrustPolicy, PolicyError> {
        let mut p = TrustPolicy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut names: HashMap<String, Member> = HashMap::new();
        let mut quorum_seen = false;
        for (n, raw) in text.split('\n').enumerate() {
            let line = n + 1;
            let err = |reason: String| PolicyError { line, reason };
            if let Some(c) = raw
                .chars()
                .find(|&c| c != '\t' && (c as u32) < 0x20 || c == '\x7f')
            {
                return Err(err(format!(
                    "control character U+{:04X} is not allowed",
                    c as u32
                )));
            }
            let words: Vec<&str> = raw.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let Some((&keyword, args)) = words.split_first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            match keyword {
                "log" => {
                    let (key, url) = match args {
                        [k] => (*k, None),
                        [k, u] => (*k, Some((*u).to_owned())),
                        _ => return Err(err("expected `log <vkey> [<url>]`".into())),
                    };
                    let key = VerifierKey::parse(key).map_err(|e| err(format!("log key: {e}")))?;
                    if key.algorithm() == alg::COSIGNATURE_V1 {
                        return Err(err("a log key cannot be a cosignature (type 0x04) key".into()));
                    }
                    if p.logs.iter().any(|l| same_key(&l.key, &key)) {
                        return Err(err("this log key is already listed".into()));
                    }
                    if p.logs.len() == MAX_ITEMS {
                        return Err(err(format!("more than {MAX_ITEMS} logs")));
                    }
                    p.logs.push(PolicyLog { key, url });
                }
                "witness" => {
                    let (name, key, url) = match args {
                        [n, k] => (*n, *k, None),
                        [n, k, u] => (*n, *k, Some((*u).to_owned())),
                        _ => return Err(err("expected `witness <name> <vkey> [<url>]`".into())),
                    };
                    check_new_name(&names, name).map_err(err)?;
                    let key = VerifierKey::parse(key).map_err(|e| err(format!("witness key: {e}")))?;
                    if key.algorithm() != alg::COSIGNATURE_V1 {
                        return Err(err(format!(
                            "witness {name}: a witness key must be a cosignature/v1 (type 0x04) key"
                        )));
                    }
                    if p.witnesses.iter().any(|w| same_key(&w.key, &key)) {
                        return Err(err(format!("witness {name}: this key is already listed")));
                    }
                    if p.witnesses.len() == MAX_ITEMS {
                        return Err(err(format!("more than {MAX_ITEMS} witnesses")));
                    }
                    names.insert(name.to_owned(), Member::Witness(p.witnesses.len()));
                    p.witnesses.push(PolicyWitness {
                        name: name.to_owned(),
                        key,
                        url,
                    });
                }
                "group" => {
                    let [name, threshold, members @ ..] = args else {
                        return Err(err("expected `group <name> <all|any|k> <member>...`".into()));
                    };
                    check_new_name(&names, name).map_err(err)?;
                    if members.is_empty() {
                        return Err(err(format!("group {name} has no members")));
                    }
                    let mut resolved = Vec::with_capacity(members.len());
                    for m in members.iter() {
                        let Some(&member) = names.get(*m) else {
                            return Err(err(format!(
                                "group {name}: {m:?} is not a witness or group defined above"
                            )));
                        };
                        if resolved.contains(&member) {
                            return Err(err(format!("group {name}: {m} is listed twice")));
                        }
                        resolved.push(member);
                    }
                    let n_members = resolved.len();
                    let threshold = match *threshold {
                        "all" => n_members,
                        "any" => 1,
                        k => match ledger_format::checkpoint::parse_decimal(k) {
                            Some(k) if (1..=n_members as u64).contains(&k) => k as usize,
                            _ => {
                                return Err(err(format!(
                                "group {name}: threshold {k:?} must be all, any or a decimal 1..={n_members}"
                            )))
                            }
                        },
                    };
                    if p.groups.len() == MAX_ITEMS {
                        return Err(err(format!("more than {MAX_ITEMS} groups")));
                    }
                    names.insert((*name).to_owned(), Member::Group(p.groups.len()));
                    p.groups.push(Group {
                        name: (*name).to_owned(),
                        threshold,
                        members: resolved,
                    });
                }
                "quorum" => {
                    let [name] = args else {
                        return Err(err("expected `quorum <name>`".into()));
                    };
                    if quorum_seen {
                        return Err(err("a policy has exactly one quorum line".into()));
                    }
                    quorum_seen = true;
                    p.quorum = if *name == "none" {
                        None
                    } else {
                        Some(*names.get(*name).ok_or_else(|| {
                            err(format!("quorum {name:?} is not a witness or group defined above"))
                        })?)
                    };
                }
                other => return Err(err(format!("unknown keyword {other:?}"))),
            }
        }
        if !quorum_seen {
            return Err(PolicyError {
                line: text.split('\n').count(),
                reason: "the policy has no quorum line (write `quorum none` for no witnesses)".into(),
            });
        }
        Ok(p)
    }

    /// The policy "k of these n witnesses" (`--witness-key` ×n,
    /// `--min-witnesses k`): k = 0 is `quorum none`.
    pub fn k_of_n(witnesses: Vec<VerifierKey>, k: usize) -> Result<TrustPolicy, PolicyError> {
        let err = |reason: String| PolicyError { line: 0, reason };
        if k > witnesses.len() {
            return Err(err(format!(
                "{k} cosignatures required but only {} witness keys given",
                witnesses.len()
            )));
        }
        let mut p = TrustPolicy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        for key in witnesses {
            if key.algorithm() != alg::COSIGNATURE_V1 {
                return Err(err(format!("{key}: not a cosignature/v1 (type 0x04) key")));
            }
            if p.witnesses.iter().any(|w| same_key(&w.key, &key)) {
                return Err(err(format!("{key}: given twice")));
            }
            p.witnesses.push(PolicyWitness {
                name: key.name().to_owned(),
                key,
                url: None,
            });
        }
        if k > 0 {
            p.groups.push(Group {
                name: "witnesses".into(),
                threshold: k,
                members: (0..p.witnesses.len()).map(Member::Witness).collect(),
            });
            p.quorum = Some(Member::Group(0));
        }
        Ok(p)
    }

    /// The logs listed.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses listed.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The witnesses' keys (for [`ledger_format::checkpoint::verify_checkpoint`]).
    pub fn witness_keys(&self) -> Vec<VerifierKey> {
        self.witnesses.iter().map(|w| w.key.clone()).collect()
    }

    /// True for `quorum none`.
    pub fn needs_nothing(&self) -> bool {
        self.quorum.is_none()
    }

    /// Whether the witnesses at `cosigned` positions satisfy the quorum.
    pub fn satisfied_by(&self, cosigned: &[bool]) -> bool {
        self.quorum.is_none_or(|q| self.witnessed(q, cosigned))
    }

    fn witnessed(&self, m: Member, cosigned: &[bool]) -> bool {
        match m {
            Member::Witness(i) => cosigned.get(i).copied().unwrap_or(false),
            Member::Group(g) => {
                let g = &self.groups[g];
                g.members.iter().filter(|&&m| self.witnessed(m, cosigned)).count() >= g.threshold
            }
        }
    }

    /// Which of the policy's witnesses validly cosigned `note`, and whether
    /// that is a quorum. Each witness is checked on its own, so a bad
    /// cosignature from one witness does not hide the others (it counts as
    /// absent). The log's own signature is not checked here.
    pub fn check(&self, note: &Note) -> QuorumReport {
        let cosigned: Vec<bool> = self.witnesses.iter().map(|w| cosigned_by(note, &w.key)).collect();
        QuorumReport {
            cosigned: self
                .witnesses
                .iter()
                .zip(&cosigned)
                .filter(|(_, &c)| c)
                .map(|(w, _)| w.name.clone())
                .collect(),
            satisfied: self.satisfied_by(&cosigned),
        }
    }

    /// A one-line description of the quorum (for messages).
    pub fn describe_quorum(&self) -> String {
        match self.quorum {
            None => "none".into(),
            Some(m) => self.describe(m),
        }
    }

    fn describe(&self, m: Member) -> String {
        match m {
            Member::Witness(i) => self.witnesses[i].name.clone(),
            Member::Group(g) => {
                let g = &self.groups[g];
                let members: Vec<String> = g.members.iter().map(|&m| self.describe(m)).collect();
                format!("{} of ({})", g.threshold, members.join(", "))
            }
        }
    }
}

/// Whether `note` carries a valid cosignature/v1 by `key`.
pub fn cosigned_by(note: &Note, key: &VerifierKey) -> bool {
    key.algorithm() == alg::COSIGNATURE_V1
        && note
            .signatures()
            .iter()
            .any(|s| key.verifies(note.text(), s).is_some())
}

fn same_key(a: &VerifierKey, b: &VerifierKey) -> bool {
    a.algorithm() == b.algorithm() && a.public_key_bytes() == b.public_key_bytes()
}

fn check_new_name(names: &HashMap<String, Member>, name: &str) -> Result<(), String> {
    if name == "none" {
        return Err("the name `none` is reserved".into());
    }
    if names.contains_key(name) {
        return Err(format!("the name {name:?} is already defined"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_format::checkpoint::Checkpoint;
    use ledger_format::hash::empty_root;
    use ledger_format::note::SignerKey;

    fn witness(name: &str) -> SignerKey {
        SignerKey::from_seed(name, &ledger_format::hash::sha256(name.as_bytes()).0).unwrap()
    }

    #[test]
    fn groups_and_quorum_follow_the_spec_example() {
        let ws: Vec<SignerKey> = ["x1", "x2", "x3", "y1", "y2", "y3"]
            .iter()
            .map(|n| witness(n))
            .collect();
        let mut text = String::from("# example\n\n");
        for w in &ws {
            text.push_str(&format!(
                "witness {} {}\n",
                w.name().to_uppercase(),
                w.cosignature_verifier()
            ));
        }
        text.push_str("group X-witnesses 2 X1 X2 X3\n\tgroup Y-witnesses any Y1 Y2 Y3 \n");
        text.push_str("group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n");
        let p = TrustPolicy::parse(&text).unwrap();
        let sat = |bits: [bool; 6]| p.satisfied_by(&bits);
        assert!(sat([true, true, false, false, false, true]));
        assert!(!sat([true, false, false, true, true, true]));
        assert!(!sat([true, true, true, false, false, false]));
        assert_eq!(p.describe_quorum(), "2 of (2 of (X1, X2, X3), 1 of (Y1, Y2, Y3))");

        let log = SignerKey::from_seed("example.com/log", &[7; 32]).unwrap();
        let body = Checkpoint::new("example.com/log", 0, empty_root())
            .unwrap()
            .to_body();
        let mut note = Checkpoint::parse(&body).unwrap().sign(&log).unwrap();
        for i in [0, 1, 5] {
            note.push_signature(ws[i].cosign(&body, 1_700_000_000));
        }
        // A bad cosignature from a listed witness counts as absent, not fatal.
        let mut forged = ws[3].cosign(&body, 1_700_000_000).to_line();
        forged = forged.replace(forged.chars().nth_back(3).unwrap(), "A");
        let mut text = note.to_text();
        text.push_str(&forged);
        text.push('\n');
        let note = Note::parse(text.as_bytes()).unwrap();
        let r = p.check(&note);
        assert_eq!(r.cosigned, ["X1", "X2", "Y3"]);
        assert!(r.satisfied);
    }

    #[test]
    fn refuses_what_the_spec_does_not_allow() {
        let w = witness("w1").cosignature_verifier();
        let log = SignerKey::from_seed("example.com/log", &[7; 32])
            .unwrap()
            .verifier();
        let cases = [
            (format!("witness a {w}\n"), "no quorum"),
            (
                format!("witness a {w}\nquorum a\nquorum a\n"),
                "exactly one quorum",
            ),
            (
                format!("witness a {w}\nwitness b {w}\nquorum a\n"),
                "already listed",
            ),
            (
                format!(
                    "witness a {w}\nwitness a {}\nquorum a\n",
                    witness("w2").cosignature_verifier()
                ),
                "already defined",
            ),
            (format!("witness none {w}\nquorum none\n"), "reserved"),
            (format!("witness a {log}\nquorum a\n"), "type 0x04"),
            (format!("log {w}\nquorum none\n"), "cannot be a cosignature"),
            (format!("witness a {w}\ngroup g 2 a\nquorum g\n"), "threshold"),
            (format!("witness a {w}\ngroup g 0 a\nquorum g\n"), "threshold"),
            (format!("witness a {w}\ngroup g 01 a\nquorum g\n"), "threshold"),
            (format!("witness a {w}\ngroup g any a a\nquorum g\n"), "twice"),
            (
                format!("witness a {w}\ngroup g any b\nquorum g\n"),
                "defined above",
            ),
            (
                format!("quorum g\nwitness a {w}\ngroup g any a\n"),
                "defined above",
            ),
            ("group g any\nquorum none\n".to_owned(), "no members"),
            ("quorum none\nfrobnicate\n".to_owned(), "unknown keyword"),
            ("quorum none\r\n".to_owned(), "control character"),
        ];
        for (text, want) in cases {
            let e = TrustPolicy::parse(&text).expect_err(&text).to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let p = TrustPolicy::parse(&format!("log {log} https://log.example\nquorum none\n")).unwrap();
        assert!(p.needs_nothing() && p.satisfied_by(&[]));
        assert_eq!(p.logs()[0].url.as_deref(), Some("https://log.example"));
    }
}
