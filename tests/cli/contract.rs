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
    for kind in tally::contract::MATERIAL_TYPES {
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
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "SecOps")
        .env("GIT_AUTHOR_EMAIL", "secops@example.com")
        .env("GIT_COMMITTER_NAME", "SecOps")
        .env("GIT_COMMITTER_EMAIL", "secops@example.com")
        .env("TALLY", env!("CARGO_BIN_EXE_tally"))
        .output()
        .unwrap()
}

fn copy_examples(to: &Path) {
    for e in std::fs::read_dir(contracts_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(to.join("policies")).unwrap();
    std::fs::copy(
        contracts_dir().join("policies/sbom-has-components.rego"),
        to.join("policies/sbom-has-components.rego"),
    )
    .unwrap();
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
