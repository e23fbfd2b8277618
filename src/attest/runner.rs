//! CI runner detection and context capture (SPEC.md §11.2).
//!
//! Runners are tried in one fixed order; the first whose marker is present
//! wins, so a Dagger job inside GitHub Actions is always GitHub Actions
//! (the outermost CI owns the run). Only the documented variables of the
//! detected runner are recorded — never the whole environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One runner's description.
struct Spec {
    /// The contract's spelling (`runner = "…"`).
    id: &'static str,
    /// How it is detected: any of these variables set (and non-empty).
    markers: &'static [&'static str],
    /// What is recorded.
    vars: &'static [&'static str],
    run_id: &'static [&'static str],
    commit: &'static [&'static str],
    reference: &'static [&'static str],
    actor: &'static [&'static str],
    runner_name: &'static [&'static str],
}

/// The detection order (SPEC.md §11.2).
const RUNNERS: &[Spec] = &[
    Spec {
        id: "github-actions",
        markers: &["GITHUB_ACTIONS"],
        vars: &[
            "GITHUB_ACTOR",
            "GITHUB_BASE_REF",
            "GITHUB_EVENT_NAME",
            "GITHUB_HEAD_REF",
            "GITHUB_REF",
            "GITHUB_REPOSITORY",
            "GITHUB_REPOSITORY_OWNER",
            "GITHUB_RUN_ATTEMPT",
            "GITHUB_RUN_ID",
            "GITHUB_RUN_NUMBER",
            "GITHUB_SERVER_URL",
            "GITHUB_SHA",
            "GITHUB_WORKFLOW",
            "GITHUB_WORKFLOW_REF",
            "RUNNER_ARCH",
            "RUNNER_ENVIRONMENT",
            "RUNNER_NAME",
            "RUNNER_OS",
        ],
        run_id: &["GITHUB_RUN_ID"],
        commit: &["GITHUB_SHA"],
        reference: &["GITHUB_REF"],
        actor: &["GITHUB_ACTOR"],
        runner_name: &["RUNNER_NAME"],
    },
    Spec {
        id: "gitlab",
        markers: &["GITLAB_CI"],
        vars: &[
            "CI_COMMIT_REF_NAME",
            "CI_COMMIT_SHA",
            "CI_CONFIG_PATH",
            "CI_JOB_ID",
            "CI_JOB_NAME",
            "CI_JOB_URL",
            "CI_PIPELINE_ID",
            "CI_PIPELINE_SOURCE",
            "CI_PIPELINE_URL",
            "CI_PROJECT_PATH",
            "CI_PROJECT_URL",
            "CI_RUNNER_DESCRIPTION",
            "CI_RUNNER_ID",
            "CI_SERVER_URL",
            "GITLAB_USER_LOGIN",
        ],
        run_id: &["CI_JOB_ID"],
        commit: &["CI_COMMIT_SHA"],
        reference: &["CI_COMMIT_REF_NAME"],
        actor: &["GITLAB_USER_LOGIN"],
        runner_name: &["CI_RUNNER_DESCRIPTION"],
    },
    Spec {
        id: "azure-pipelines",
        markers: &["TF_BUILD"],
        vars: &[
            "AGENT_NAME",
            "AGENT_OS",
            "BUILD_BUILDID",
            "BUILD_BUILDNUMBER",
            "BUILD_BUILDURI",
            "BUILD_REPOSITORY_NAME",
            "BUILD_REPOSITORY_URI",
            "BUILD_REQUESTEDFOR",
            "BUILD_SOURCEBRANCH",
            "BUILD_SOURCEVERSION",
            "SYSTEM_DEFINITIONNAME",
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
            "SYSTEM_TEAMPROJECT",
        ],
        run_id: &["BUILD_BUILDID"],
        commit: &["BUILD_SOURCEVERSION"],
        reference: &["BUILD_SOURCEBRANCH"],
        actor: &["BUILD_REQUESTEDFOR"],
        runner_name: &["AGENT_NAME"],
    },
    Spec {
        id: "jenkins",
        markers: &["JENKINS_URL", "JENKINS_HOME"],
        vars: &[
            "BUILD_ID",
            "BUILD_NUMBER",
            "BUILD_TAG",
            "BUILD_URL",
            "GIT_BRANCH",
            "GIT_COMMIT",
            "GIT_URL",
            "JENKINS_URL",
            "JOB_NAME",
            "JOB_URL",
            "NODE_NAME",
        ],
        run_id: &["BUILD_TAG", "BUILD_ID"],
        commit: &["GIT_COMMIT"],
        reference: &["GIT_BRANCH"],
        actor: &["BUILD_USER_ID"],
        runner_name: &["NODE_NAME"],
    },
    Spec {
        id: "circleci",
        markers: &["CIRCLECI"],
        vars: &[
            "CIRCLE_BRANCH",
            "CIRCLE_BUILD_NUM",
            "CIRCLE_BUILD_URL",
            "CIRCLE_JOB",
            "CIRCLE_PROJECT_REPONAME",
            "CIRCLE_PROJECT_USERNAME",
            "CIRCLE_REPOSITORY_URL",
            "CIRCLE_SHA1",
            "CIRCLE_TAG",
            "CIRCLE_USERNAME",
            "CIRCLE_WORKFLOW_ID",
        ],
        run_id: &["CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"],
        commit: &["CIRCLE_SHA1"],
        reference: &["CIRCLE_TAG", "CIRCLE_BRANCH"],
        actor: &["CIRCLE_USERNAME"],
        runner_name: &[],
    },
    Spec {
        id: "teamcity",
        markers: &["TEAMCITY_VERSION"],
        vars: &[
            "BUILD_NUMBER",
            "BUILD_VCS_NUMBER",
            "TEAMCITY_BUILDCONF_NAME",
            "TEAMCITY_PROJECT_NAME",
            "TEAMCITY_VERSION",
        ],
        run_id: &["BUILD_NUMBER"],
        commit: &["BUILD_VCS_NUMBER"],
        reference: &[],
        actor: &[],
        runner_name: &["AGENT_NAME"],
    },
    Spec {
        id: "tekton",
        // Tekton injects no variables of its own; tasks pass these from
        // $(context.pipelineRun.name) etc. (SPEC.md §11.2).
        markers: &["TEKTON_PIPELINE_RUN", "TEKTON_TASK_RUN"],
        vars: &[
            "TEKTON_NAMESPACE",
            "TEKTON_PIPELINE",
            "TEKTON_PIPELINE_RUN",
            "TEKTON_TASK",
            "TEKTON_TASK_RUN",
            "HOSTNAME",
        ],
        run_id: &["TEKTON_PIPELINE_RUN", "TEKTON_TASK_RUN"],
        commit: &[],
        reference: &[],
        actor: &[],
        runner_name: &["HOSTNAME"],
    },
    Spec {
        id: "dagger",
        markers: &["DAGGER_SESSION_PORT"],
        vars: &["DAGGER_SESSION_PORT", "DAGGER_CLOUD_URL", "HOSTNAME"],
        run_id: &[],
        commit: &[],
        reference: &[],
        actor: &[],
        runner_name: &["HOSTNAME"],
    },
];

/// The runner a run was crafted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerContext {
    /// `github-actions`, `gitlab`, …, or `generic`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The runner's run (or job) id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// A link to the run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The commit the runner says it built.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
    /// The branch or tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// Who triggered it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// The machine or agent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runner_name: String,
    /// The runner's documented variables that were set.
    pub env: BTreeMap<String, String>,
}

/// The runner types, in detection order, then `generic`.
pub fn detection_order() -> Vec<&'static str> {
    RUNNERS.iter().map(|r| r.id).chain(["generic"]).collect()
}

/// Detects the runner from an environment lookup.
pub fn detect(get: impl Fn(&str) -> Option<String>) -> RunnerContext {
    let get = |k: &str| get(k).filter(|v| !v.is_empty());
    let first = |ks: &[&str]| ks.iter().find_map(|k| get(k)).unwrap_or_default();
    let Some(spec) = RUNNERS
        .iter()
        .find(|s| s.markers.iter().any(|m| get(m).is_some()))
    else {
        return RunnerContext {
            kind: "generic".into(),
            run_id: String::new(),
            url: String::new(),
            commit: String::new(),
            reference: String::new(),
            actor: first(&["USER"]),
            runner_name: first(&["HOSTNAME"]),
            env: BTreeMap::new(),
        };
    };
    let env: BTreeMap<String, String> = spec
        .vars
        .iter()
        .filter_map(|k| get(k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let url = match spec.id {
        "github-actions" => match (
            get("GITHUB_SERVER_URL"),
            get("GITHUB_REPOSITORY"),
            get("GITHUB_RUN_ID"),
        ) {
            (Some(s), Some(r), Some(id)) => format!("{s}/{r}/actions/runs/{id}"),
            _ => String::new(),
        },
        "gitlab" => first(&["CI_JOB_URL", "CI_PIPELINE_URL"]),
        "azure-pipelines" => match (
            get("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"),
            get("SYSTEM_TEAMPROJECT"),
            get("BUILD_BUILDID"),
        ) {
            (Some(c), Some(p), Some(id)) => format!("{c}{p}/_build/results?buildId={id}"),
            _ => String::new(),
        },
        "jenkins" => first(&["BUILD_URL"]),
        "circleci" => first(&["CIRCLE_BUILD_URL"]),
        _ => String::new(),
    };
    RunnerContext {
        kind: spec.id.into(),
        run_id: first(spec.run_id),
        url,
        commit: first(spec.commit),
        reference: first(spec.reference),
        actor: first(spec.actor),
        runner_name: first(spec.runner_name),
        env,
    }
}

/// Detects the runner of this process.
pub fn detect_here() -> RunnerContext {
    detect(|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_ids_are_contract_runner_types() {
        for id in detection_order() {
            assert!(
                id == "generic" || crate::contract::RUNNER_TYPES.contains(&id),
                "{id}"
            );
        }
        assert_eq!(detection_order().len(), crate::contract::RUNNER_TYPES.len());
    }
}
