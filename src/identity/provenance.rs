//! Provenance the control plane vouches for (SPEC.md §15.7): with a CI
//! identity verified from the platform's signed ID token, every field of a
//! statement's SLSA provenance that the token also names — builder, source
//! repository, commit, ref, workflow file, run — is compared with the
//! token. A statement that contradicts its token is refused; what agreed is
//! recorded (in the verdict the log binds) with the issuer that vouched for
//! it, and the SLSA Build level that follows from it.
//!
//! The comparison is a pure function of the claims and the statement, so a
//! test can state exactly what each platform's claims prove.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::oidc::{platform, Claims, Platform};
use crate::attest::statement::{View, BUILDER_PREFIX};

/// The provenance fields compared, by the names the log records.
pub const FIELDS: [&str; 6] = ["builder", "sourceRepository", "commit", "ref", "workflow", "run"];

/// The SLSA Build level when every field was verified on a platform-hosted
/// runner; otherwise a verified CI identity gives [`LEVEL_2`].
pub const LEVEL_3: &str = "SLSA_BUILD_LEVEL_3";
/// The SLSA Build level of a statement signed under a verified CI identity.
pub const LEVEL_2: &str = "SLSA_BUILD_LEVEL_2";

/// What a verified token says the provenance must be. Fields the token's
/// platform does not name are `None` and cannot be vouched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The runner type (`github-actions`, `gitlab`).
    pub builder: Option<String>,
    /// The source repository's web URL (`https://github.com/acme/app`).
    pub repository: Option<String>,
    /// The commit built (hex).
    pub commit: Option<String>,
    /// The full git ref (`refs/heads/main`).
    pub git_ref: Option<String>,
    /// The workflow (GitHub `workflow_ref`, GitLab `ci_config_ref_uri`).
    pub workflow: Option<String>,
    /// The workflow file's path, when the runner records only that (GitLab
    /// `CI_CONFIG_PATH`).
    workflow_path: Option<String>,
    /// The run, as a URL that names it and its attempt.
    pub run: Option<String>,
    run_id: Option<String>,
    run_attempt: Option<String>,
    /// The link the CLI records as `runner.url`.
    run_url: Option<String>,
    /// The token's `runner_environment`.
    pub runner_environment: Option<String>,
    /// Whether that is the platform's hosted (isolated, ephemeral) runners.
    hosted: bool,
}

impl Expected {
    /// What `c`'s claims vouch for, by the claim sets GitHub Actions and
    /// GitLab CI document; another issuer vouches for none of the fields.
    pub fn from_claims(c: &Claims) -> Self {
        let t = |k: &str| c.text(k).filter(|v| !v.is_empty());
        let mut e = Expected {
            issuer: c.issuer.clone(),
            subject: c.subject.clone(),
            runner_environment: t("runner_environment"),
            ..Expected::default()
        };
        match platform(c) {
            Platform::GitHub => {
                let web = github_web(&c.issuer);
                let repo = t("repository");
                e.builder = Some("github-actions".into());
                e.repository = repo.as_ref().map(|r| format!("{web}/{r}"));
                e.commit = t("sha");
                e.git_ref = t("ref");
                e.workflow = t("workflow_ref");
                e.run_id = t("run_id");
                e.run_attempt = t("run_attempt");
                if let (Some(r), Some(id)) = (&repo, &e.run_id) {
                    let url = format!("{web}/{r}/actions/runs/{id}");
                    e.run = Some(format!(
                        "{url}/attempts/{}",
                        e.run_attempt.as_deref().unwrap_or("1")
                    ));
                    e.run_url = Some(url);
                }
                e.hosted = e.runner_environment.as_deref() == Some("github-hosted");
            }
            Platform::GitLab => {
                let base = c.issuer.trim_end_matches('/').to_owned();
                let project = t("project_path");
                e.builder = Some("gitlab".into());
                e.repository = project.as_ref().map(|p| format!("{base}/{p}"));
                e.commit = t("sha");
                e.git_ref = match (t("ref_type").as_deref(), t("ref")) {
                    (Some("branch"), Some(r)) => Some(format!("refs/heads/{r}")),
                    (Some("tag"), Some(r)) => Some(format!("refs/tags/{r}")),
                    _ => t("ref_path"),
                };
                e.workflow = t("ci_config_ref_uri");
                // `gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main`.
                e.workflow_path = e.workflow.as_deref().and_then(|w| {
                    let (_, rest) = w.split_once("//")?;
                    Some(rest.rsplit_once('@').map_or(rest, |(p, _)| p).to_owned())
                });
                e.run_id = t("job_id");
                if let (Some(p), Some(id)) = (&project, &e.run_id) {
                    let url = format!("{base}/{p}/-/jobs/{id}");
                    e.run = Some(url.clone());
                    e.run_url = Some(url);
                }
                e.hosted = e.runner_environment.as_deref() == Some("gitlab-hosted");
            }
            Platform::Other => {}
        }
        e
    }

    /// Whether the token names field `f`.
    fn vouches(&self, f: &str) -> bool {
        match f {
            "builder" => self.builder.is_some(),
            "sourceRepository" => self.repository.is_some(),
            "commit" => self.commit.is_some(),
            "ref" => self.git_ref.is_some(),
            "workflow" => self.workflow.is_some(),
            "run" => self.run.is_some(),
            _ => false,
        }
    }

    /// The value recorded for field `f` once verified.
    fn value(&self, f: &str) -> String {
        match f {
            "builder" => self.builder.clone(),
            "sourceRepository" => self.repository.clone(),
            "commit" => self.commit.clone(),
            "ref" => self.git_ref.clone(),
            "workflow" => self.workflow.clone(),
            "run" => self.run.clone(),
            _ => None,
        }
        .unwrap_or_default()
    }

    /// Contradictions between a run's recorded runner (what `attestation
    /// init` said) and the token, checked before a key is certified.
    pub fn run_contradictions(&self, runner_type: &str, runner_url: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(b) = &self.builder {
            if !runner_type.is_empty() && runner_type != "generic" && runner_type != b {
                out.push(format!(
                    "the run was started on runner {runner_type:?}; the ID token is from {b:?}"
                ));
            }
        }
        if let Some(u) = &self.run_url {
            if !runner_url.is_empty() && runner_url != u {
                out.push(format!(
                    "the run's link is {runner_url:?}; the ID token names run {u:?}"
                ));
            }
        }
        out
    }

    /// Compares `st` with the token: `Err` lists every contradiction (the
    /// statement's location, what it says, what the token says); `Ok`
    /// says what was verified.
    pub fn check(&self, st: &View<'_>) -> Result<Verification, Vec<String>> {
        let mut contradictions = Vec::new();
        let mut verified = BTreeMap::new();
        let mut unstated = Vec::new();
        let mut unvouched = Vec::new();
        for f in FIELDS {
            if !self.vouches(f) {
                unvouched.push(f.to_owned());
                continue;
            }
            let stated = self.stated(f, st);
            if stated.is_empty() {
                unstated.push(f.to_owned());
                continue;
            }
            let before = contradictions.len();
            for s in stated {
                if !s.agrees {
                    contradictions.push(format!(
                        "{f}: the statement's {} is {:?}; the ID token from {} says {:?}",
                        s.location, s.value, self.issuer, s.expected
                    ));
                }
            }
            if contradictions.len() == before {
                verified.insert(f.to_owned(), self.value(f));
            }
        }
        if !contradictions.is_empty() {
            return Err(contradictions);
        }
        let all = verified.len() == FIELDS.len();
        Ok(Verification {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            runner_environment: self.runner_environment.clone(),
            verified,
            unstated,
            unvouched,
            level: if all && self.hosted { LEVEL_3 } else { LEVEL_2 }.to_owned(),
        })
    }

    /// Every place `st` states field `f`, with whether it agrees.
    fn stated<'s>(&self, f: &str, st: &'s View<'_>) -> Vec<Stated<'s>> {
        let bd = &st.predicate.build_definition;
        let runner = &bd.internal_parameters.runner;
        let env = &runner.env;
        let mut out = Vec::new();
        let mut say = |location: &'static str,
                       value: Option<&'s str>,
                       expected: &str,
                       agrees: &dyn Fn(&str) -> bool| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.push(Stated {
                    location,
                    value: v,
                    expected: expected.to_owned(),
                    agrees: agrees(v),
                });
            }
        };
        // Git sources: resolvedDependencies with a gitCommit digest.
        let sources = || {
            bd.resolved_dependencies
                .iter()
                .filter(|d| d.digest.get("gitCommit").is_some())
        };
        match f {
            "builder" => {
                let b = self.builder.as_deref().unwrap_or_default();
                let id = st.predicate.run_details.builder.id.get();
                let kind = id.map(|i| i.strip_prefix(BUILDER_PREFIX).unwrap_or(i));
                // `generic`: the CLI could not tell the CI (nothing stated).
                say(
                    "runDetails.builder.id",
                    kind.filter(|k| *k != "generic"),
                    b,
                    &|v| v == b,
                );
                let kind = runner.kind.get().filter(|k| *k != "generic");
                say("internalParameters.runner.type", kind, b, &|v| v == b);
            }
            "sourceRepository" => {
                let r = self.repository.as_deref().unwrap_or_default();
                let want = canonical_repository(r);
                let same = |v: &str| canonical_repository(v).is_some() && canonical_repository(v) == want;
                for d in sources() {
                    let uri = d.uri.get().map(|u| u.rsplit_once("@refs/").map_or(u, |(u, _)| u));
                    say("resolvedDependencies[].uri", uri, r, &same);
                }
                if self.builder.as_deref() == Some("github-actions") {
                    let web = github_web(&self.issuer);
                    let owner_repo = r.strip_prefix(&format!("{web}/")).unwrap_or(r).to_owned();
                    say(
                        "GITHUB_REPOSITORY",
                        env.get("GITHUB_REPOSITORY"),
                        &owner_repo,
                        &|v| v.eq_ignore_ascii_case(&owner_repo),
                    );
                } else {
                    say("CI_PROJECT_URL", env.get("CI_PROJECT_URL"), r, &same);
                }
            }
            "commit" => {
                let c = self.commit.as_deref().unwrap_or_default();
                let same = |v: &str| v.eq_ignore_ascii_case(c);
                for s in st.subject.iter().filter(|s| s.name.get() == Some("git.head")) {
                    say("subject git.head", s.digest.get("gitCommit"), c, &same);
                }
                for d in sources() {
                    say(
                        "resolvedDependencies[].digest.gitCommit",
                        d.digest.get("gitCommit"),
                        c,
                        &same,
                    );
                }
                say("internalParameters.runner.commit", runner.commit.get(), c, &same);
            }
            "ref" => {
                let r = self.git_ref.as_deref().unwrap_or_default();
                // A short name (GitLab's CI_COMMIT_REF_NAME) is the ref's last part.
                let short = r
                    .strip_prefix("refs/heads/")
                    .or_else(|| r.strip_prefix("refs/tags/"))
                    .unwrap_or(r);
                let same = |v: &str| v == r || (!v.starts_with("refs/") && v == short);
                // The ref a source's `git+<url>@refs/…` names, if any.
                let at_ref = |u: &str| u.rsplit_once("@refs/").map(|(_, rest)| format!("refs/{rest}"));
                for d in sources() {
                    let uri = d.uri.get().filter(|u| at_ref(u).is_some());
                    say("resolvedDependencies[].uri", uri, r, &|u| {
                        at_ref(u).is_some_and(|f| same(&f))
                    });
                }
                say(
                    "internalParameters.runner.reference",
                    runner.reference.get(),
                    r,
                    &same,
                );
            }
            "workflow" => {
                let w = self.workflow.as_deref().unwrap_or_default();
                say("GITHUB_WORKFLOW_REF", env.get("GITHUB_WORKFLOW_REF"), w, &|v| {
                    v == w
                });
                if let Some(p) = &self.workflow_path {
                    say("CI_CONFIG_PATH", env.get("CI_CONFIG_PATH"), p, &|v| v == p);
                }
            }
            "run" => {
                let id = self.run_id.as_deref().unwrap_or_default();
                say(
                    "internalParameters.runner.run_id",
                    runner.run_id.get(),
                    id,
                    &|v| v == id,
                );
                if let Some(a) = &self.run_attempt {
                    say("GITHUB_RUN_ATTEMPT", env.get("GITHUB_RUN_ATTEMPT"), a, &|v| {
                        v == a
                    });
                }
                if let Some(u) = &self.run_url {
                    say("internalParameters.runner.url", runner.url.get(), u, &|v| v == u);
                }
            }
            _ => {}
        }
        out
    }
}

/// One place a statement states a field.
struct Stated<'s> {
    location: &'static str,
    value: &'s str,
    expected: String,
    agrees: bool,
}

/// What the control plane verified of a statement's provenance, recorded
/// in the verdict the log binds (`predicate.ciIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The token's issuer: who vouched.
    pub issuer: String,
    /// The token's subject.
    pub subject: String,
    /// The token's `runner_environment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_environment: Option<String>,
    /// Field → the value the token and the statement agree on.
    pub verified: BTreeMap<String, String>,
    /// Fields the token names and the statement does not state.
    #[serde(default)]
    pub unstated: Vec<String>,
    /// Fields the issuer's claims do not name.
    #[serde(default)]
    pub unvouched: Vec<String>,
    /// [`LEVEL_3`] or [`LEVEL_2`].
    pub level: String,
}

/// GitHub's web origin for a token issuer: github.com for GitHub's
/// service, the server itself for GitHub Enterprise Server
/// (`https://HOST/_services/token`).
fn github_web(issuer: &str) -> String {
    match issuer.strip_suffix("/_services/token") {
        Some(host) => host.to_owned(),
        None => "https://github.com".to_owned(),
    }
}

/// A git remote (`https://host/path(.git)`, `ssh://user@host:port/path`,
/// `user@host:path`, with or without `git+`) as `https://host/path`,
/// lower-cased, without `.git` or a trailing slash; `None` when it names
/// no host and path.
pub fn canonical_repository(remote: &str) -> Option<String> {
    let r = remote.trim().strip_prefix("git+").unwrap_or(remote.trim());
    let (host, path) = if let Some((scheme, rest)) = r.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git") {
            return None;
        }
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host.split(':').next().unwrap_or(host);
        (host, path)
    } else {
        // scp-like: user@host:path.
        let (authority, path) = r.split_once(':')?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (host, path)
    };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if host.is_empty() || path.is_empty() || host.contains('/') {
        return None;
    }
    Some(format!("https://{}/{}", host, path).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    use crate::identity::oidc::test_claims as claims;

    /// The claims GitHub documents for a job's ID token.
    fn github() -> Claims {
        claims(json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:acme/payments:ref:refs/heads/main",
            "repository": "acme/payments",
            "workflow_ref": "acme/payments/.github/workflows/release.yml@refs/heads/main",
            "job_workflow_ref": "acme/payments/.github/workflows/release.yml@refs/heads/main",
            "ref": "refs/heads/main",
            "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "run_id": "991",
            "run_attempt": "2",
            "runner_environment": "github-hosted",
        }))
    }

    /// A statement as `tally attestation push` writes it on that job.
    fn statement(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut st = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "git.head", "digest": {"gitCommit": "9fceb02d0ae598e95dc970b74767f19372d61af8"}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "x",
                    "externalParameters": {},
                    "internalParameters": {
                        "runner": {
                            "type": "github-actions",
                            "run_id": "991",
                            "url": "https://github.com/acme/payments/actions/runs/991",
                            "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
                            "reference": "refs/heads/main",
                            "env": {
                                "GITHUB_REPOSITORY": "acme/payments",
                                "GITHUB_WORKFLOW_REF": "acme/payments/.github/workflows/release.yml@refs/heads/main",
                                "GITHUB_RUN_ATTEMPT": "2"
                            }
                        }
                    },
                    "resolvedDependencies": [{
                        "uri": "git+git@github.com:Acme/payments.git@refs/heads/main",
                        "digest": {"gitCommit": "9fceb02d0ae598e95dc970b74767f19372d61af8"}
                    }]
                },
                "runDetails": {"builder": {"id": "https://tally.dev/runner/github-actions"}}
            }
        });
        edit(&mut st);
        serde_json::to_vec(&st).unwrap()
    }

    #[test]
    fn a_github_statement_that_agrees_with_its_token_is_level_3() {
        let bytes = statement(|_| {});
        let v = Expected::from_claims(&github())
            .check(&View::parse(&bytes).unwrap())
            .unwrap();
        assert_eq!(v.level, LEVEL_3);
        assert_eq!(v.verified.len(), 6, "{v:?}");
        assert_eq!(v.verified["sourceRepository"], "https://github.com/acme/payments");
        assert_eq!(
            v.verified["run"],
            "https://github.com/acme/payments/actions/runs/991/attempts/2"
        );
        assert!(v.unstated.is_empty() && v.unvouched.is_empty());
    }

    #[test]
    fn every_contradiction_is_named_with_where_the_statement_says_it() {
        let bytes = statement(|st| {
            let bd = &mut st["predicate"]["buildDefinition"];
            bd["resolvedDependencies"][0]["uri"] =
                json!("git+https://github.com/evil/payments@refs/heads/dev");
            bd["internalParameters"]["runner"]["commit"] = json!("0000000000000000000000000000000000000000");
            bd["internalParameters"]["runner"]["env"]["GITHUB_WORKFLOW_REF"] =
                json!("acme/payments/.github/workflows/other.yml@refs/heads/main");
            bd["internalParameters"]["runner"]["run_id"] = json!("990");
            st["predicate"]["runDetails"]["builder"]["id"] = json!("https://tally.dev/runner/gitlab");
        });
        let e = Expected::from_claims(&github())
            .check(&View::parse(&bytes).unwrap())
            .unwrap_err();
        let all = e.join("\n");
        for want in [
            "builder: the statement's runDetails.builder.id is \"gitlab\"",
            "sourceRepository: the statement's resolvedDependencies[].uri is \"git+https://github.com/evil/payments\"",
            "commit: the statement's internalParameters.runner.commit is \"0000000000000000000000000000000000000000\"",
            "ref: the statement's resolvedDependencies[].uri",
            "workflow: the statement's GITHUB_WORKFLOW_REF",
            "run: the statement's internalParameters.runner.run_id is \"990\"",
        ] {
            assert!(all.contains(want), "{want} not in:\n{all}");
        }
        assert_eq!(e.len(), 6, "{all}");
    }

    #[test]
    fn unstated_fields_and_self_hosted_runners_give_level_2() {
        // No git checkout, the CLI could not tell the runner.
        let bytes = statement(|st| {
            let bd = &mut st["predicate"]["buildDefinition"];
            bd["resolvedDependencies"] = json!([]);
            bd["internalParameters"]["runner"]["type"] = json!("generic");
            st["predicate"]["runDetails"]["builder"]["id"] = json!("https://tally.dev/runner/generic");
        });
        let v = Expected::from_claims(&github())
            .check(&View::parse(&bytes).unwrap())
            .unwrap();
        assert_eq!(v.level, LEVEL_2);
        assert_eq!(v.unstated, vec!["builder".to_owned()]);
        let mut c = github();
        c.all.insert("runner_environment".into(), json!("self-hosted"));
        let v = Expected::from_claims(&c)
            .check(&View::parse(&statement(|_| {})).unwrap())
            .unwrap();
        assert_eq!((v.level.as_str(), v.verified.len()), (LEVEL_2, 6));
        // An issuer whose claims name none of the fields vouches for none.
        let other = claims(json!({"iss": "https://ci.example", "sub": "job"}));
        let v = Expected::from_claims(&other)
            .check(&View::parse(&statement(|_| {})).unwrap())
            .unwrap();
        assert!(v.verified.is_empty());
        assert_eq!(v.unvouched.len(), 6);
    }

    #[test]
    fn a_gitlab_statement_is_checked_against_gitlab_claims() {
        let c = claims(json!({
            "iss": "https://gitlab.com",
            "sub": "project_path:acme/payments:ref_type:branch:ref:main",
            "project_path": "acme/payments",
            "ref": "main",
            "ref_type": "branch",
            "ci_config_ref_uri": "gitlab.com/acme/payments//.gitlab-ci.yml@refs/heads/main",
            "sha": "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "job_id": "302",
            "runner_environment": "gitlab-hosted",
        }));
        let bytes = statement(|st| {
            let r = &mut st["predicate"]["buildDefinition"]["internalParameters"]["runner"];
            *r = json!({
                "type": "gitlab",
                "run_id": "302",
                "url": "https://gitlab.com/acme/payments/-/jobs/302",
                "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
                "reference": "main",
                "env": {"CI_CONFIG_PATH": ".gitlab-ci.yml", "CI_PROJECT_URL": "https://gitlab.com/acme/payments"}
            });
            st["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"] =
                json!("git+https://gitlab.com/acme/payments.git@refs/heads/main");
            st["predicate"]["runDetails"]["builder"]["id"] = json!("https://tally.dev/runner/gitlab");
        });
        let e = Expected::from_claims(&c);
        let v = e.check(&View::parse(&bytes).unwrap()).unwrap();
        assert_eq!((v.level.as_str(), v.verified.len()), (LEVEL_3, 6), "{v:?}");
        assert!(e
            .run_contradictions("gitlab", "https://gitlab.com/acme/payments/-/jobs/302")
            .is_empty());
        assert_eq!(e.run_contradictions("github-actions", "").len(), 1);
    }

    #[test]
    fn remotes_are_compared_by_host_and_path() {
        for r in [
            "https://github.com/acme/app",
            "https://github.com/Acme/app.git/",
            "git+ssh://git@github.com:22/acme/app.git",
            "git@github.com:acme/app.git",
            "git+https://token@github.com/acme/app",
        ] {
            assert_eq!(
                canonical_repository(r).as_deref(),
                Some("https://github.com/acme/app"),
                "{r}"
            );
        }
        for r in ["", "file:///tmp/x", "https://github.com", "acme/app"] {
            assert_eq!(canonical_repository(r), None, "{r}");
        }
    }
}
