//! `tally contract lint` and the git hooks, on real files and real git repositories.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn contracts_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts")
}

/// Lint output with the temporary directory replaced, for stable snapshots.
fn lint_text(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = tally(args);
    let text = format!("{}{}", stdout(&o), stderr(&o)).replace(&format!("{}/", dir.display()), "");
    (code(&o), text)
}

/// A directory with no contract at its root is an error, not "OK: 0 files"
/// (a hook or CI check pointed at a repository that keeps its contracts in a
/// subfolder would pass anything), and the subfolder is named.
#[test]
fn linting_a_directory_without_contracts_fails_and_names_the_subfolder() {
    let d = tmp();
    std::fs::create_dir_all(d.path().join("contracts")).unwrap();
    std::fs::copy(
        contracts_dir().join("workflows.toml"),
        d.path().join("contracts/workflows.toml"),
    )
    .unwrap();
    let o = tally(&["contract", "lint", d.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("no contract or workflows.toml"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("contracts/"), "{}", stderr(&o));
}

#[test]
fn example_contracts_are_valid_and_cover_every_material_type() {
    let o = tally(&[
        "contract",
        "lint",
        contracts_dir().to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let report = tally::contract::lint::lint_paths(&[contracts_dir()]);
    for kind in tally::contract::Kind::ALL {
        assert!(
            report
                .contracts
                .iter()
                .any(|c| c.materials.iter().any(|m| m.kind == *kind)),
            "no example contract uses {kind}"
        );
    }
    assert_eq!(report.workflows.len(), 3);
}

#[test]
fn every_error_at_once_with_positions_snippets_and_hints() {
    let d = tmp();
    write(
        d.path(),
        "release.toml",
        r#"schema = "tally.dev/contract/v1"
name = "release"
runner = "github-action"
env = ["GIT SHA", "GIT_SHA", "GIT_SHA"]
descripton = "typo"

[annotations]
owner = 3

[[materials]]
name = "SBOM"
type = "SBOM_CYCLONDX_JSON"
optinal = true

[[materials]]
name = "tests"
type = "JUNIT_XML"

[[materials]]
name = "tests"
type = "SARIF"
skip_upload = "yes"

[[policies]]
ref = "../outside.rego"
materials = ["test"]
"#,
    );
    let (c, text) = lint_text(
        d.path(),
        &[
            "contract",
            "lint",
            d.path().join("release.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(c, 1);
    insta::assert_snapshot!("lint_many_errors", text);
}

#[test]
fn workflows_must_name_existing_contracts() {
    let d = tmp();
    write(
        d.path(),
        "release.toml",
        "schema = \"tally.dev/contract/v1\"\nname = \"release\"\n",
    );
    write(
        d.path(),
        "workflows.toml",
        "schema = \"tally.dev/contract/v1\"\n\n[[workflows]]\nname = \"api\"\nproject = \"payments\"\ncontract = \"relase\"\nowners = [\"a@example.com\"]\n\n[[workflows]]\nname = \"api\"\nproject = \"payments\"\ncontract = \"release\"\n",
    );
    let (c, text) = lint_text(d.path(), &["contract", "lint", d.path().to_str().unwrap()]);
    assert_eq!(c, 1);
    insta::assert_snapshot!("lint_workflows", text);
}

#[test]
fn bad_files_are_clear_errors() {
    let d = tmp();
    // Malformed TOML.
    write(
        d.path(),
        "broken.toml",
        "schema = \"tally.dev/contract/v1\"\nname = \n",
    );
    // Not UTF-8.
    write(
        d.path(),
        "latin1.toml",
        b"schema = \"tally.dev/contract/v1\"\nname = \"caf\xe9\"\n",
    );
    // 10 MB.
    write(d.path(), "huge.toml", vec![b'#'; 10 << 20]);
    // A symlink to a file outside the repository.
    let outside = tmp();
    write(
        outside.path(),
        "secret.toml",
        "schema = \"tally.dev/contract/v1\"\nname = \"secret\"\n",
    );
    std::os::unix::fs::symlink(outside.path().join("secret.toml"), d.path().join("secret.toml")).unwrap();
    let o = tally(&["contract", "lint", d.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(err.contains("broken.toml:2:8"), "{err}");
    assert!(err.contains("invalid TOML"), "{err}");
    assert!(
        err.contains("latin1.toml:2:12") && err.contains("not valid UTF-8"),
        "{err}"
    );
    assert!(
        err.contains("huge.toml") && err.contains("10485760 bytes"),
        "{err}"
    );
    assert!(err.contains("outside the repository"), "{err}");
    assert!(err.contains("4 error(s) in 4 file(s)"), "{err}");
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    crate::common::git_command(dir, args).output().unwrap()
}

fn copy_examples(to: &Path) {
    for e in std::fs::read_dir(contracts_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(to.join("policies")).unwrap();
    for e in std::fs::read_dir(contracts_dir().join("policies")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join("policies").join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn pre_commit_hook_refuses_an_invalid_staged_contract() {
    let d = tmp();
    let repo = d.path();
    assert!(git(repo, &["init", "-q", "-b", "main"]).status.success());
    copy_examples(repo);
    let hooks = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hooks");
    assert!(git(repo, &["config", "core.hooksPath", hooks.to_str().unwrap()])
        .status
        .success());
    assert!(git(repo, &["add", "-A"]).status.success());
    let ok = git(repo, &["commit", "-q", "-m", "contracts"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let text = std::fs::read_to_string(repo.join("quality-gates.toml"))
        .unwrap()
        .replace("JUNIT_XML", "JUNIT");
    std::fs::write(repo.join("quality-gates.toml"), text).unwrap();
    assert!(git(repo, &["add", "quality-gates.toml"]).status.success());
    let refused = git(repo, &["commit", "-q", "-m", "break it"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("quality-gates.toml:") && err.contains("unknown material type `JUNIT`"),
        "{err}"
    );
    assert!(err.contains("did you mean `JUNIT_XML`?"), "{err}");
}

#[test]
fn pre_receive_hook_rejects_a_push_with_an_invalid_contract() {
    let d = tmp();
    let server = d.path().join("server.git");
    let work = d.path().join("work");
    assert!(git(
        d.path(),
        &["init", "-q", "--bare", "-b", "main", server.to_str().unwrap()]
    )
    .status
    .success());
    let hook = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("hooks/pre-receive");
    std::fs::copy(&hook, server.join("hooks/pre-receive")).unwrap();
    assert!(git(
        d.path(),
        &["clone", "-q", server.to_str().unwrap(), work.to_str().unwrap()]
    )
    .status
    .success());
    copy_examples(&work);
    assert!(git(&work, &["add", "-A"]).status.success());
    assert!(git(&work, &["commit", "-q", "-m", "contracts"]).status.success());
    let pushed = git(&work, &["push", "-q", "origin", "main"]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    let text = std::fs::read_to_string(work.join("workflows.toml"))
        .unwrap()
        .replace("contract = \"quality-gates\"", "contract = \"quality-gate\"");
    std::fs::write(work.join("workflows.toml"), text).unwrap();
    assert!(git(&work, &["commit", "-q", "-am", "typo"]).status.success());
    let rejected = git(&work, &["push", "-q", "origin", "main"]);
    assert!(!rejected.status.success());
    let err = String::from_utf8_lossy(&rejected.stderr);
    assert!(
        err.contains("remote: error: workflow `payments-quality` uses contract `quality-gate`"),
        "{err}"
    );
    assert!(err.contains("did you mean `quality-gates`?"), "{err}");
    assert!(err.contains("pre-receive: rejected refs/heads/main"), "{err}");
}

/// The JSON Schema in contracts/schema agrees with the linter: an independent
/// validator (python-jsonschema) accepts the examples and rejects what tally
/// rejects for structural reasons.
#[test]
fn json_schema_agrees_with_the_linter() {
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema, tomllib"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3 with jsonschema is required under CI=true");
        }
        println!("skipping: python3 with jsonschema is not available");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/check_schema.py");
    let schemas = contracts_dir().join("schema");
    let mut files: Vec<String> = std::fs::read_dir(contracts_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let out = Command::new("python3")
        .arg(script)
        .arg(&schemas)
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let d = tmp();
    let base = "schema = \"tally.dev/contract/v1\"\nname = \"c\"\n";
    for (i, bad) in [
        "runner = \"github-action\"\n",
        "surprise = 1\n",
        "[[materials]]\nname = \"m\"\ntype = \"SBOM\"\n",
        "[[materials]]\nname = \"Bad Name\"\ntype = \"STRING\"\n",
        "env = [\"GIT SHA\"]\n",
        "[[policies]]\nref = \"../x.rego\"\n",
    ]
    .iter()
    .enumerate()
    {
        let f = write(
            d.path(),
            &format!("c{i}.toml"),
            format!("{base}{bad}").replace("name = \"c\"", &format!("name = \"c{i}\"")),
        );
        let schema = Command::new("python3")
            .arg(script)
            .arg(&schemas)
            .arg(&f)
            .output()
            .unwrap();
        assert!(!schema.status.success(), "schema accepted {bad:?}");
        let lint = tally(&["contract", "lint", f.to_str().unwrap()]);
        assert_eq!(code(&lint), 1, "tally accepted {bad:?}");
    }
}

/// A contracts repository with history, built with the git CLI.
fn history_repo(d: &Path) -> std::path::PathBuf {
    let repo = d.join("contracts");
    std::fs::create_dir_all(&repo).unwrap();
    assert!(git(&repo, &["init", "-q", "-b", "main"]).status.success());
    copy_examples(&repo);
    assert!(git(&repo, &["add", "-A"]).status.success());
    assert!(git(&repo, &["commit", "-q", "-m", "initial contracts"])
        .status
        .success());
    assert!(git(&repo, &["tag", "v1"]).status.success());
    let edit = |file: &str, from: &str, to: &str| {
        let p = repo.join(file);
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains(from), "{from}");
        std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
    };
    edit(
        "build-and-release.toml",
        "env = [\"GIT_SHA\", \"RELEASE_VERSION\"]",
        "env = [\"GIT_SHA\", \"RELEASE_VERSION\", \"BUILD_ID\"]",
    );
    edit(
        "build-and-release.toml",
        "name = \"chart\"\ntype = \"HELM_CHART\"\noptional = true",
        "name = \"chart\"\ntype = \"HELM_CHART\"",
    );
    edit("build-and-release.toml", "[[materials]]\nname = \"provenance\"", "[[materials]]\nname = \"licenses\"\ntype = \"EVIDENCE\"\noptional = true\n\n[[materials]]\nname = \"provenance\"");
    edit(
        "security-advisories.toml",
        "runner = \"any\"",
        "runner = \"github-actions\"",
    );
    edit(
        "quality-gates.toml",
        "name = \"tests\"\ntype = \"JUNIT_XML\"",
        "name = \"tests\"\ntype = \"JUNIT_XML\"\noptional = true",
    );
    edit(
        "workflows.toml",
        "owners = [\"team-payments@example.com\"]\ndescription",
        "owners = [\"payments-leads@example.com\"]\ndescription",
    );
    assert!(
        git(&repo, &["commit", "-q", "-am", "tighten release, relax quality"])
            .status
            .success()
    );
    repo
}

#[test]
fn log_show_and_pinned_revisions() {
    let d = tmp();
    let repo = history_repo(d.path());
    let r = repo.to_str().unwrap();
    let o = tally(&[
        "contract",
        "log",
        "build-and-release",
        "--repo",
        r,
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let revs = v["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2);
    assert_eq!(revs[0]["summary"], "tighten release, relax quality");
    assert_eq!(revs[1]["summary"], "initial contracts");
    assert_eq!(revs[0]["author"], "SecOps <secops@example.com>");
    // Unchanged since v1: its revision is still the first commit.
    let o = tally(&[
        "contract",
        "log",
        "security-advisories",
        "--repo",
        r,
        "--rev",
        "v1",
    ]);
    assert_eq!(stdout(&o).lines().count(), 1);

    // The pinned revision shows the old text and names the commit and blob.
    let o = tally(&[
        "contract",
        "show",
        "build-and-release@v1",
        "--repo",
        r,
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!v["content"].as_str().unwrap().contains("BUILD_ID"));
    assert_eq!(v["commit"], revs[1]["commit"]);
    let blob = String::from_utf8(git(&repo, &["rev-parse", "v1:build-and-release.toml"]).stdout).unwrap();
    assert_eq!(v["blob"], blob.trim());
    // The revision in effect at HEAD for an unchanged contract is the old commit.
    let o = tally(&[
        "contract",
        "show",
        "quality-gates@v1",
        "--repo",
        r,
        "--output",
        "json",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(code(&tally(&["contract", "show", "nope", "--repo", r])), 2);
    assert_eq!(
        code(&tally(&[
            "contract",
            "show",
            "build-and-release@no-such-rev",
            "--repo",
            r
        ])),
        2
    );

    // A rename: the old name's history ends with a deletion, the new one starts.
    assert!(git(&repo, &["mv", "quality-gates.toml", "service-quality.toml"])
        .status
        .success());
    let p = repo.join("service-quality.toml");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("name = \"quality-gates\"", "name = \"service-quality\""),
    )
    .unwrap();
    let w = repo.join("workflows.toml");
    std::fs::write(
        &w,
        std::fs::read_to_string(&w)
            .unwrap()
            .replace("contract = \"quality-gates\"", "contract = \"service-quality\""),
    )
    .unwrap();
    assert!(git(&repo, &["commit", "-q", "-am", "rename quality-gates"])
        .status
        .success());
    let o = tally(&["contract", "log", "quality-gates", "--repo", r]);
    assert!(
        stdout(&o).lines().next().unwrap().contains("deleted"),
        "{}",
        stdout(&o)
    );
    let o = tally(&["contract", "log", "service-quality", "--repo", r]);
    assert_eq!(stdout(&o).lines().count(), 1);
}

#[test]
fn semantic_diff_marks_breaking_changes() {
    let d = tmp();
    let repo = history_repo(d.path());
    let r = repo.to_str().unwrap();
    let o = tally(&["contract", "diff", "v1", "main", "--repo", r]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!("semantic_diff", stdout(&o));
    let o = tally(&[
        "contract",
        "diff",
        "v1",
        "main",
        "security-advisories",
        "--repo",
        r,
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 1);
    assert_eq!(v["changes"][0]["breaking"], true);

    // The pull-request check: valid head, diff printed, breaking refused on request.
    let o = tally(&["contract", "check", "--base", "v1", "--head", "main", "--repo", r]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = tally(&[
        "contract",
        "check",
        "--base",
        "v1",
        "--head",
        "main",
        "--repo",
        r,
        "--deny-breaking",
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("refused by --deny-breaking"));
}

#[test]
fn deleting_a_contract_a_workflow_uses_fails_the_check() {
    let d = tmp();
    let repo = history_repo(d.path());
    let r = repo.to_str().unwrap();
    assert!(git(&repo, &["rm", "-q", "security-advisories.toml"])
        .status
        .success());
    assert!(git(&repo, &["commit", "-q", "-m", "drop advisories"])
        .status
        .success());
    let o = tally(&[
        "contract", "check", "--base", "HEAD~1", "--head", "HEAD", "--repo", r,
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "workflow `psirt-advisories` uses contract `security-advisories`, which does not exist"
        ),
        "{}",
        stderr(&o)
    );
    // Before the deletion it was fine, and the log shows the deletion.
    let o = tally(&["contract", "log", "security-advisories", "--repo", r]);
    assert!(stdout(&o).lines().next().unwrap().contains("deleted"));
}

#[test]
fn contract_store_resolves_pins_caches_and_refuses_rewritten_history() {
    use tally::contract::store::{ContractStore, StoreError};
    let d = tmp();
    let repo = history_repo(d.path());
    let state = d.path().join("contracts-head");
    let store = ContractStore::open(&repo, "main", Some(state.clone())).unwrap();

    // At the head, the release workflow needs BUILD_ID; pinned at v1 it does not.
    let head = store.resolve("payments-release", None).unwrap();
    assert!(head.contract.env.contains(&"BUILD_ID".to_owned()));
    let pinned = store.resolve("payments-release", Some("v1")).unwrap();
    assert!(!pinned.contract.env.contains(&"BUILD_ID".to_owned()));
    assert_ne!(head.revision.commit, pinned.revision.commit);
    let v1 = String::from_utf8(git(&repo, &["rev-parse", "v1"]).stdout).unwrap();
    assert_eq!(pinned.revision.commit, v1.trim());
    let blob = String::from_utf8(git(&repo, &["rev-parse", "v1:build-and-release.toml"]).stdout).unwrap();
    assert_eq!(pinned.revision.blob, blob.trim());
    // Cached by blob: the unchanged advisories contract is parsed once for both revisions.
    let before = store.cached();
    store.resolve("payments-release", None).unwrap();
    assert_eq!(store.cached(), before);
    assert!(matches!(
        store.resolve("nope", None),
        Err(StoreError::UnknownWorkflow(_))
    ));

    // A commit on another branch is not a valid pin.
    assert!(git(&repo, &["checkout", "-q", "-b", "experiment"])
        .status
        .success());
    std::fs::write(
        repo.join("extra.toml"),
        "schema = \"tally.dev/contract/v1\"\nname = \"extra\"\n",
    )
    .unwrap();
    assert!(git(&repo, &["add", "extra.toml"]).status.success());
    assert!(git(&repo, &["commit", "-q", "-m", "experiment"]).status.success());
    assert!(matches!(
        store.resolve("payments-release", Some("experiment")),
        Err(StoreError::NotOnBranch { .. })
    ));
    assert!(git(&repo, &["checkout", "-q", "main"]).status.success());

    // A fast-forward is followed.
    let w = repo.join("workflows.toml");
    std::fs::write(&w, std::fs::read_to_string(&w).unwrap() + "\n# comment\n").unwrap();
    assert!(git(&repo, &["commit", "-q", "-am", "comment"]).status.success());
    let new_head = store.refresh().unwrap();
    assert_eq!(store.head(), Some(new_head));

    // A force push (history rewritten under the recorded head) is refused, now
    // and after a restart, and the store keeps its last good head.
    assert!(git(&repo, &["reset", "-q", "--hard", "HEAD~2"]).status.success());
    std::fs::write(&w, std::fs::read_to_string(&w).unwrap() + "\n# rewritten\n").unwrap();
    assert!(git(&repo, &["commit", "-q", "-am", "rewrite"]).status.success());
    let err = store.refresh().unwrap_err();
    assert!(matches!(err, StoreError::Rewritten { .. }), "{err}");
    assert_eq!(store.head(), Some(new_head));
    assert!(matches!(
        ContractStore::open(&repo, "main", Some(state)),
        Err(StoreError::Rewritten { .. })
    ));
}

#[test]
fn contract_store_mirrors_a_remote_and_refuses_a_force_push() {
    use tally::contract::store::{ContractStore, StoreError};
    let d = tmp();
    let work = history_repo(d.path());
    let origin = d.path().join("origin.git");
    assert!(git(
        d.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            origin.to_str().unwrap()
        ]
    )
    .status
    .success());
    let url = format!("file://{}", origin.display());
    let mirror = d.path().join("mirror.git");
    let store = std::sync::Arc::new(
        ContractStore::open_remote(&url, &mirror, "main", Some(d.path().join("head"))).unwrap(),
    );
    let first = store.head().unwrap();
    assert!(store
        .resolve("payments-release", None)
        .unwrap()
        .contract
        .env
        .contains(&"BUILD_ID".to_owned()));

    // A new commit pushed to the remote arrives on sync.
    assert!(git(&work, &["remote", "add", "origin", origin.to_str().unwrap()])
        .status
        .success());
    let w = work.join("workflows.toml");
    std::fs::write(&w, std::fs::read_to_string(&w).unwrap() + "\n# more\n").unwrap();
    assert!(git(&work, &["commit", "-q", "-am", "more"]).status.success());
    assert!(git(&work, &["push", "-q", "origin", "main"]).status.success());
    let second = store.sync().unwrap();
    assert_ne!(first, second);

    // A force push that drops it is fetched, noticed and refused.
    assert!(git(&work, &["reset", "-q", "--hard", "HEAD~1"]).status.success());
    std::fs::write(&w, std::fs::read_to_string(&w).unwrap() + "\n# other\n").unwrap();
    assert!(git(&work, &["commit", "-q", "-am", "other"]).status.success());
    assert!(git(&work, &["push", "-q", "--force", "origin", "main"])
        .status
        .success());
    assert!(matches!(store.sync(), Err(StoreError::Rewritten { .. })));
    assert_eq!(store.head(), Some(second));
    // Contracts still resolve at the last accepted head.
    store.resolve("payments-release", None).unwrap();
    // Background sync runs and keeps refusing; it stops with the store.
    let handle = store.sync_every(std::time::Duration::from_millis(20));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(store.head(), Some(second));
    drop(store);
    handle.join().unwrap();
    // An unreachable remote is a clear error.
    let err = ContractStore::open_remote(
        "file:///nonexistent/repo.git",
        &d.path().join("m2.git"),
        "main",
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/repo.git"), "{err}");
}

#[test]
fn policy_groups_are_parsed_validated_and_diffed() {
    let src = "schema = \"tally.dev/contract/v1\"\nname = \"p\"\n[[materials]]\nname = \"sbom\"\ntype = \"SBOM_SPDX_JSON\"\n\n[[policy_groups]]\nref = \"https://policies.example.com/slsa.yaml@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nmaterials = [\"sbom\"]\n";
    let c = tally::contract::parse_contract("p.toml", src, Some("p")).unwrap();
    assert_eq!(c.policy_groups.len(), 1);
    let bad = src
        .replace("@sha256:", "@sha1:")
        .replace("[\"sbom\"]", "[\"sbon\"]");
    let errs = tally::contract::parse_contract("p.toml", &bad, Some("p")).unwrap_err();
    let msgs: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("a policy group has an invalid reference")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("a policy group applies to material `sbon`")),
        "{msgs:?}"
    );
    let without = tally::contract::parse_contract(
        "p.toml",
        &src[..src.find("[[policy_groups]]").unwrap()],
        Some("p"),
    )
    .unwrap();
    let d = tally::contract::diff::diff_contract(&without, &c);
    assert_eq!((d.len(), d[0].breaking), (1, true));
}

/// Contracts are untrusted input: no mangling of the examples makes the
/// parser panic, and every error it reports points inside the file.
#[test]
fn mangled_contracts_never_panic() {
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let alphabet = b"[]{}=\"'.,#\n xyz0-_\\";
    for f in ["build-and-release.toml", "quality-gates.toml", "workflows.toml"] {
        let src = std::fs::read_to_string(contracts_dir().join(f)).unwrap();
        for _ in 0..400 {
            let mut bytes = src.clone().into_bytes();
            for _ in 0..(1 + next() % 4) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                    _ => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            let lines = text.lines().count().max(1);
            let result = if f == "workflows.toml" {
                tally::contract::parse_workflows(f, &text, None).map(|_| ())
            } else {
                tally::contract::parse_contract(f, &text, None).map(|_| ())
            };
            if let Err(diags) = result {
                assert!(!diags.is_empty());
                for d in diags {
                    assert!(d.line >= 1 && d.line <= lines + 1, "{d:?}");
                }
            }
        }
    }
}
