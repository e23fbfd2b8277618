//! `tally attestation init|add|status|push|reset|verify`: crafting an
//! attestation in a CI pipeline (SPEC.md §11).
//!
//! Every command reads the crafting state, does its work, and writes the
//! state back atomically only when it succeeded — a failed `add` or `push`
//! leaves the state exactly as it was.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use serde_json::json;

use crate::attest::dsse::{Envelope, PublicKey, IN_TOTO_PAYLOAD_TYPE};
use crate::attest::material::{self, Kind, MaterialError, Options};
use crate::attest::signing::{KeyError, SigningKey, PASSWORD_ENV};
use crate::attest::state::{self, ContractRef, MaterialRecord, State, StateError, STATE_SCHEMA};
use crate::attest::{git, image, runner, statement};
use crate::cli::{
    AttAddArgs, AttCommon, AttInitArgs, AttPushArgs, AttResetArgs, AttStatusArgs, AttVerifyArgs, ResetTrigger,
};
use crate::client::Client;
use crate::cmd::Report;
use crate::contract::check::{self, Evidence, Violation};
use crate::contract::{self, Contract, ContractRevision};
use crate::exit::{Details, Failure};
use crate::policy::verdict::Evaluator;
use crate::policy::{Evaluation, Plan};
use crate::wire;

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

fn state_failure(e: StateError) -> Failure {
    match e {
        StateError::Io { .. } => Failure::Unavailable(e.into()),
        StateError::Missing(_) | StateError::Corrupt { .. } => Failure::Usage(e.into()),
    }
}

fn refused(message: String, json: serde_json::Value) -> Failure {
    Failure::Refused(anyhow::Error::new(Details { message, json }))
}

/// The control plane's client, from `--server`/`TALLY_SERVER` and the
/// caller's credential ([`credential`]).
fn server_client(common: &AttCommon, what: &str) -> Result<Client, Failure> {
    connect(common.server.as_deref(), common, what)
}

/// The client of the server a run was started on (the state's URL unless overridden).
fn run_client(st: &State, common: &AttCommon, what: &str) -> Result<Client, Failure> {
    connect(Some(common.server.as_deref().unwrap_or(&st.server)), common, what)
}

/// A crafting state as read: from the local file, or from the control
/// plane (`--remote-state`, SPEC.md §12.8) with its client and the version
/// read.
struct Loaded {
    st: State,
    remote: Option<(Client, i64)>,
}

/// Reads the crafting state `common` names.
fn load_state(common: &AttCommon) -> Result<Loaded, Failure> {
    let path = state::state_path(common.state.as_deref());
    if !common.remote_state {
        let st = State::load(&path).map_err(state_failure)?;
        return Ok(Loaded { st, remote: None });
    }
    let run = match &common.run_id {
        Some(r) => r.clone(),
        None => State::load(&path)
            .map_err(|e| {
                Failure::Usage(anyhow!(
                    "--remote-state needs the run: pass --run-id or set TALLY_RUN_ID (`tally attestation init` prints it); no local state either: {e}"
                ))
            })?
            .run_id,
    };
    let client = server_client(common, "the run's remote crafting state")?;
    let (st, version) = fetch_state(&client, &run)?;
    Ok(Loaded {
        st,
        remote: Some((client, version)),
    })
}

fn fetch_state(client: &Client, run: &str) -> Result<(State, i64), Failure> {
    let (bytes, version) = client.get_state(run)?;
    let st: State = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Unavailable(anyhow!("run {run}'s remote crafting state does not read: {e}")))?;
    if st.run_id != run {
        return Err(Failure::Unavailable(anyhow!(
            "the control plane answered the state of run {} for run {run}",
            st.run_id
        )));
    }
    Ok((st, version))
}

fn state_bytes(st: &State) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(st).map_err(|e| Failure::Unavailable(e.into()))
}

/// `--token`/`TALLY_TOKEN`, else the CI's OIDC ID token (SPEC.md §15.6).
fn credential(common: &AttCommon) -> Result<Option<String>, Failure> {
    if let Some(t) = common.token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_owned()));
    }
    crate::ci_token::find(&crate::ci_token::Sources {
        token: common.id_token.as_deref(),
        file: common.id_token_file.as_deref(),
        audience: &common.oidc_audience,
    })
}

fn connect(server: Option<&str>, common: &AttCommon, what: &str) -> Result<Client, Failure> {
    let Some(url) = server else {
        return Err(Failure::Usage(anyhow!(
            "{what} needs a control plane: set TALLY_SERVER (and TALLY_TOKEN) or pass --server; \
             to work without one, start the run with `tally attestation init --dry-run --contract <file>`"
        )));
    };
    let Some(token) = credential(common)? else {
        return Err(Failure::Usage(anyhow!(
            "{what} on {url} needs a credential: the workflow's token (TALLY_TOKEN or --token), \
             or the CI's OIDC ID token (TALLY_ID_TOKEN, TALLY_ID_TOKEN_FILE, or GitHub Actions with \
             `permissions: id-token: write`) for an identity the workflow declares"
        )));
    };
    Client::new(url, Some(&token))
}

fn parse_annotations(args: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(Failure::Usage(anyhow!("annotation {a:?} is not key=value")));
        };
        let k = k.trim();
        if k.is_empty() || k.chars().any(char::is_whitespace) {
            return Err(Failure::Usage(anyhow!(
                "annotation key {k:?} must be non-empty with no spaces"
            )));
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(Failure::Usage(anyhow!("annotation {k:?} is given twice")));
        }
    }
    Ok(out)
}

/// Merges required annotations (`contract`, empty value = to be supplied)
/// with the user's ([`check::fill_annotations`]); returns the merged set and
/// the keys still missing.
fn merge_annotations(
    contract: &[contract::Annotation],
    given: &BTreeMap<String, String>,
    what: &str,
) -> Result<(BTreeMap<String, String>, Vec<String>), Failure> {
    check::fill_annotations(contract, given).map_err(|e| Failure::Usage(anyhow!("{what}: {e}")))
}

fn load_contract(st: &State) -> Result<Contract, Failure> {
    contract::parse_contract(
        &format!("{}.toml", st.contract.revision.name),
        &st.contract.text,
        None,
    )
    .map_err(|d| {
        Failure::Usage(anyhow!(
            "the contract recorded in the state no longer parses ({}); reset and init again",
            d.first().map(|x| x.message.clone()).unwrap_or_default()
        ))
    })
}

fn git_blob_id(bytes: &[u8]) -> String {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, bytes)
        .map(|id| id.to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------- init

/// `tally attestation init`
pub fn init(args: &AttInitArgs) -> Result<Report, Failure> {
    let path = state::state_path(args.common.state.as_deref());
    if !args.replace && path.exists() {
        let what = match State::load(&path) {
            Ok(s) => format!(
                "run {} of workflow `{}` started {}",
                s.run_id, s.workflow, s.started_at
            ),
            Err(e) => format!("an unreadable state ({e})"),
        };
        return Err(Failure::Usage(anyhow!(
            "an attestation is already in progress in {}: {what}; push or reset it, or pass --replace to discard it",
            path.display()
        )));
    }
    let runner = runner::detect_here();
    let (contract, cref, project, run_id, server) = if args.dry_run {
        let (contract, cref, project) = dry_run_contract(args, &path)?;
        // The control plane checks the runner when it starts a run; a dry run
        // checks it here, with the same rule.
        let v = check::check(&contract, &Evidence::runner(&runner.kind), None);
        if !v.is_empty() {
            return Err(refused(
                format!(
                    "contract `{}` requires runner `{}` but this is `{}` (detected in the order {}); \
                     run this step on a {} runner, or ask the contract's owners to change `runner`",
                    contract.name,
                    contract.runner,
                    runner.kind,
                    runner::detection_order().join(", "),
                    contract.runner
                ),
                json!({"reason": "runner_mismatch", "required": contract.runner, "detected": runner.kind}),
            ));
        }
        let mut rnd = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
        (
            contract,
            cref,
            project,
            format!("local-{}", hex::encode(rnd)),
            None,
        )
    } else {
        if args.contract.is_some() || args.contracts.is_some() {
            return Err(Failure::Usage(anyhow!(
                "--contract and --contracts are for --dry-run; with a control plane the contract comes from its repository"
            )));
        }
        let client = server_client(&args.common, "start a run")?;
        let (_, started): (_, wire::RunStarted) = client.post_as(
            "/api/v1/runs",
            &wire::StartRun {
                workflow: args.workflow.clone(),
                project: args.project.clone(),
                version: args.version.clone().unwrap_or_default(),
                contract_revision: args.contract_revision.clone(),
                runner: runner.clone(),
            },
        )?;
        let c = started.contract;
        let contract = contract::parse_contract(&format!("{}.toml", c.name), &c.text, Some(&c.name))
            .map_err(|d| {
                Failure::Unavailable(anyhow!(
                    "the control plane sent a contract that does not parse: {}",
                    d.first().map(|x| x.message.clone()).unwrap_or_default()
                ))
            })?;
        let cref = ContractRef {
            revision: ContractRevision {
                name: c.name,
                commit: c.commit,
                blob: c.blob,
            },
            source: format!(
                "{}@{}",
                client.base(),
                args.contract_revision.as_deref().unwrap_or("main")
            ),
            text: c.text,
            policies_commit: c.policies_commit,
            pinned_at: c.pinned_at,
            policies: c.policies,
        };
        let (id, project) = (started.run.id, started.run.project);
        (contract, cref, project, id, Some(client))
    };
    let env: BTreeMap<String, String> = contract
        .env
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let shown = Evidence {
        env: Some(env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
        ..Evidence::default()
    };
    let missing_env: Vec<String> = check::check(&contract, &shown, None)
        .into_iter()
        .filter_map(|v| match v {
            Violation::Env(k) => Some(k),
            _ => None,
        })
        .collect();
    if !missing_env.is_empty() {
        if let Some(c) = &server {
            // The run cannot succeed: end it now rather than let it expire.
            let _ = c.post(
                &format!("/api/v1/runs/{run_id}/reset"),
                &json!({"trigger": "failure", "reason": format!("missing environment: {}", missing_env.join(", "))}),
            );
        }
        return Err(refused(
            format!(
                "contract `{}` requires these environment variables, which are not set: {}; \
                 export them in the pipeline before `tally attestation init`",
                contract.name,
                missing_env.join(", ")
            ),
            json!({"reason": "missing_env", "missing": missing_env}),
        ));
    }
    let cwd = std::env::current_dir().map_err(|e| Failure::Unavailable(e.into()))?;
    let git = git::head(&cwd).map_err(|e| Failure::Unavailable(anyhow!(e)))?;
    let st = State {
        schema: STATE_SCHEMA.into(),
        run_id,
        dry_run: args.dry_run,
        server: server.as_ref().map(|c| c.base().to_owned()).unwrap_or_default(),
        workflow: args.workflow.clone(),
        project,
        version: args.version.clone().unwrap_or_default(),
        contract: cref,
        runner,
        env,
        git,
        started_at: now(),
        materials: Vec::new(),
    };
    st.save(&path).map_err(state_failure)?;
    if args.common.remote_state {
        if st.dry_run {
            return Err(Failure::Usage(anyhow!(
                "--remote-state keeps the state on a control plane; a --dry-run run has none"
            )));
        }
        let client = run_client(&st, &args.common, "storing the crafting state")?;
        if client.put_state(&st.run_id, None, &state_bytes(&st)?)?.is_err() {
            return Err(Failure::Refused(anyhow!(
                "run {} already has a remote state",
                st.run_id
            )));
        }
    }
    let required: Vec<&str> = contract
        .materials
        .iter()
        .filter(|m| !m.optional && m.group.is_none())
        .map(|m| m.name.as_str())
        .collect();
    Ok(Report {
        text: format!(
            "started {}{} for workflow `{}`\n  contract  {} {}\n  runner    {}{}\n  git HEAD  {}\n  state     {}\n  required  {}\nnext: tally attestation add --name <material> --value <file or value>\n",
            st.run_id,
            if st.dry_run { " (dry run)".to_owned() } else { format!(" on {}", st.server) },
            st.workflow,
            st.contract.revision.name,
            revision_text(&st.contract),
            st.runner.kind,
            if st.runner.url.is_empty() { String::new() } else { format!(" ({})", st.runner.url) },
            st.git.as_ref().map_or("(not a git repository)".into(), |g| g.commit.clone()),
            path.display(),
            if required.is_empty() { "(nothing)".into() } else { required.join(", ") },
        ),
        json: json!({
            "run_id": st.run_id,
            "dry_run": st.dry_run,
            "server": st.server,
            "workflow": st.workflow,
            "project": st.project,
            "version": st.version,
            "contract": {"name": st.contract.revision.name, "commit": st.contract.revision.commit, "blob": st.contract.revision.blob, "source": st.contract.source},
            "runner": st.runner,
            "git": st.git,
            "state": path,
        }),
    })
}

fn revision_text(c: &ContractRef) -> String {
    let r = &c.revision;
    if r.commit.is_empty() {
        format!("(file {}, blob {})", c.source, r.blob)
    } else {
        format!("@ {} (blob {})", r.commit, r.blob)
    }
}

fn dry_run_contract(
    args: &AttInitArgs,
    state_path: &Path,
) -> Result<(Contract, ContractRef, String), Failure> {
    if let Some(file) = &args.contract {
        if args.contract_revision.is_some() {
            return Err(Failure::Usage(anyhow!(
                "--contract-revision needs a contracts repository (--contracts); --contract is a plain file"
            )));
        }
        let bytes = std::fs::read(file)
            .map_err(|e| Failure::Unavailable(anyhow!("cannot read the contract {}: {e}", file.display())))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Failure::Invalid(anyhow!("the contract {} is not UTF-8", file.display())))?;
        let c = contract::parse_contract(&file.display().to_string(), &text, None).map_err(|ds| {
            let all: Vec<String> = ds.iter().map(ToString::to_string).collect();
            Failure::Invalid(anyhow!(
                "the contract {} is invalid:\n{}",
                file.display(),
                all.join("\n")
            ))
        })?;
        let cref = ContractRef {
            revision: ContractRevision {
                name: c.name.clone(),
                commit: String::new(),
                blob: git_blob_id(&bytes),
            },
            source: file.display().to_string(),
            text,
            policies_commit: String::new(),
            pinned_at: String::new(),
            policies: BTreeMap::new(),
        };
        // Policies are read beside the contract file (its folder is a
        // contracts checkout).
        let root = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let cref = with_policies(cref, &c, &crate::policy::Dir(root.to_path_buf()), String::new())?;
        return Ok((c, cref, args.project.clone().unwrap_or_else(|| "default".into())));
    }
    let Some(repo) = &args.contracts else {
        return Err(Failure::Usage(anyhow!(
            "a dry run needs the contract: --contract <file> or --contracts <repository path or git URL>"
        )));
    };
    let unavailable = |e: contract::store::StoreError| {
        Failure::Unavailable(anyhow!(
            "cannot fetch the contract of workflow `{}` from {repo}: {e}",
            args.workflow
        ))
    };
    let store = if repo.contains("://") || repo.starts_with("git@") {
        let mirror = state_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("contracts-mirror.git");
        contract::store::ContractStore::open_remote(repo, &mirror, contract::store::DEFAULT_BRANCH, None)
    } else {
        contract::store::ContractStore::open(Path::new(repo), contract::store::DEFAULT_BRANCH, None)
    }
    .map_err(unavailable)?;
    let resolved = store
        .resolve(&args.workflow, args.contract_revision.as_deref())
        .map_err(|e| match e {
            contract::store::StoreError::UnknownWorkflow(_)
            | contract::store::StoreError::NotOnBranch { .. } => Failure::Usage(e.into()),
            contract::store::StoreError::Repo(contract::repo::RepoError::UnknownRevision(_)) => {
                Failure::Usage(e.into())
            }
            other => unavailable(other),
        })?;
    let text =
        String::from_utf8_lossy(&store.blob(&resolved.revision.blob).map_err(unavailable)?).into_owned();
    if let Some(p) = &args.project {
        if *p != resolved.workflow.project {
            return Err(Failure::Usage(anyhow!(
                "workflow `{}` belongs to project `{}`, not `{p}`",
                args.workflow,
                resolved.workflow.project
            )));
        }
    }
    let cref = ContractRef {
        revision: resolved.revision.clone(),
        source: format!(
            "{repo}@{}",
            args.contract_revision
                .as_deref()
                .unwrap_or(contract::store::DEFAULT_BRANCH)
        ),
        text,
        policies_commit: String::new(),
        pinned_at: String::new(),
        policies: BTreeMap::new(),
    };
    let at =
        gix::ObjectId::from_hex(resolved.at.as_bytes()).map_err(|e| Failure::Unavailable(anyhow!("{e}")))?;
    let repo_local = store.local();
    let cref = with_policies(
        cref,
        &resolved.contract,
        &crate::policy::GitTree {
            repo: &repo_local,
            commit: at,
        },
        resolved.at.clone(),
    )?;
    Ok((
        (*resolved.contract).clone(),
        cref,
        resolved.workflow.project.clone(),
    ))
}

/// Loads (and compiles) the contract's policies from `files` into the
/// crafting state, so every later step evaluates the same bytes.
fn with_policies(
    mut cref: ContractRef,
    c: &Contract,
    files: &dyn crate::policy::Files,
    commit: String,
) -> Result<ContractRef, Failure> {
    if c.policies.is_empty() && c.policy_groups.is_empty() {
        return Ok(cref);
    }
    let cache = crate::policy::UrlCache::for_cli();
    let files = crate::policy::WithUrls {
        inner: files,
        cache: &cache,
    };
    let plan = Plan::load(c, &files, crate::policy::Limits::from_env()).map_err(policy_load_failure)?;
    cref.policies = plan.files;
    cref.policies_commit = commit;
    Ok(cref)
}

fn policy_load_failure(errs: Vec<crate::policy::LoadError>) -> Failure {
    let lines: Vec<String> = errs.iter().map(|e| format!("  - {e}")).collect();
    Failure::Invalid(anyhow!(
        "the contract's policies do not load:\n{}",
        lines.join("\n")
    ))
}

/// The crafting state's policies, compiled (`None`: the contract has none).
fn state_plan(st: &State, c: &Contract) -> Result<Option<Plan>, Failure> {
    if c.policies.is_empty() && c.policy_groups.is_empty() {
        return Ok(None);
    }
    let limits = crate::policy::Limits::from_env();
    limits.install();
    Plan::load(c, &st.contract.policies, limits)
        .map(Some)
        .map_err(policy_load_failure)
}

/// Largest file the CLI reads to evaluate its policies (the control plane's default).
const POLICY_MAX_INPUT: u64 = 64 << 20;

// ----------------------------------------------------------------------- add

/// A material problem as a failure class.
pub fn material_failure(e: MaterialError) -> Failure {
    match e {
        MaterialError::Open { .. } => Failure::Usage(e.into()),
        MaterialError::Invalid { .. } | MaterialError::Empty(_) => Failure::Invalid(e.into()),
        MaterialError::Read { .. } | MaterialError::Unreachable { .. } => Failure::Unavailable(e.into()),
    }
}

fn parse_kind(s: &str) -> Result<Kind, Failure> {
    Kind::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        Failure::Usage(anyhow!(
            "unknown material kind {s:?}; kinds are {}",
            all.join(", ")
        ))
    })
}

/// `tally attestation add`
pub fn add(args: &AttAddArgs) -> Result<Report, Failure> {
    let path = state::state_path(args.common.state.as_deref());
    let Loaded { mut st, remote } = load_state(&args.common)?;
    let contract = load_contract(&st)?;
    let declared = contract.materials.iter().find(|m| m.name == args.name);
    let given = args.kind.as_deref().map(parse_kind).transpose()?;
    if st.material(&args.name).is_some() && !args.replace {
        return Err(Failure::Usage(anyhow!(
            "material `{}` was already added; pass --replace to replace it",
            args.name
        )));
    }
    if !contract::is_dns_label(&args.name) {
        return Err(Failure::Usage(anyhow!(
            "material name {:?} must be a lowercase DNS label (a-z, 0-9, -)",
            args.name
        )));
    }
    let declared_kind = declared.map(|m| m.kind);
    if let (Some(d), Some(g)) = (declared_kind, given) {
        if d != g {
            return Err(Failure::Usage(anyhow!(
                "material `{}` is {d} in contract `{}`; --kind says {g}. Drop --kind or add it under another name",
                args.name,
                contract.name
            )));
        }
    }
    let user_ann = parse_annotations(&args.annotations)?;
    let (mut annotations, missing) = merge_annotations(
        declared.map(|m| m.annotations.as_slice()).unwrap_or_default(),
        &user_ann,
        &format!("material `{}`", args.name),
    )?;
    if !missing.is_empty() {
        let flags: Vec<String> = missing
            .iter()
            .map(|k| format!("--annotation {k}=<value>"))
            .collect();
        return Err(refused(
            format!(
                "contract `{}` requires material `{}` to carry annotation(s) {}; add them with {}",
                contract.name,
                args.name,
                missing.join(", "),
                flags.join(" ")
            ),
            json!({"reason": "missing_annotations", "material": args.name, "missing": missing}),
        ));
    }
    let mut opts = Options {
        lenient: args.lenient,
        keys: Vec::new(),
    };
    if let Some(k) = &args.verify_key {
        let pem = std::fs::read_to_string(k)
            .map_err(|e| Failure::Usage(anyhow!("cannot read --verify-key {}: {e}", k.display())))?;
        opts.keys
            .push(PublicKey::from_pem(&pem).map_err(|e| Failure::Usage(e.into()))?);
    }
    let kind = declared_kind.or(given);
    let is_file = |k: Kind| k.is_file();
    // A file material given as a URL is fetched first, then validated,
    // hashed and uploaded like a file (SPEC.md §11.3).
    let by_url =
        (args.value.starts_with("https://") || args.value.starts_with("http://")) && kind.is_none_or(is_file);
    // A Helm chart in an OCI registry (`oci://…`, as `helm pull` takes it).
    let kind = match kind {
        None if args.value.starts_with("oci://") => Some(Kind::HelmChart),
        k => k,
    };
    let fetched = if kind == Some(Kind::HelmChart) && args.value.starts_with("oci://") {
        let chart = image::pull_chart(&args.value).map_err(material_failure)?;
        annotations
            .entry("tally.material.oci.reference".into())
            .or_insert_with(|| chart.pinned.clone());
        let dir = path.parent().unwrap_or(Path::new("."));
        Some(Fetched::write(
            dir,
            &chart.file_name,
            &chart.tgz,
            chart.pinned.clone(),
        )?)
    } else if by_url {
        let dir = path.parent().unwrap_or(Path::new("."));
        let f = fetch_material(&args.value, dir)?;
        annotations
            .entry("tally.material.url".into())
            .or_insert_with(|| f.recorded_url.clone());
        Some(f)
    } else {
        None
    };
    let file = fetched
        .as_ref()
        .map_or(Path::new(&args.value), |f| f.path.as_path());
    let (kind, facts) = match kind {
        Some(k) if is_file(k) => (
            k,
            material::validate_file(k, file, &opts).map_err(material_failure)?,
        ),
        Some(Kind::ContainerImage) => (Kind::ContainerImage, material::Facts::default()),
        Some(_) => (
            Kind::String,
            material::validate_string(&args.value).map_err(material_failure)?,
        ),
        None if file.is_file() => material::detect_file(file, &opts).map_err(material_failure)?,
        None if image::parse(&args.value).is_ok_and(|r| r.digest().is_some()) => {
            (Kind::ContainerImage, material::Facts::default())
        }
        None => (
            Kind::String,
            material::validate_string(&args.value).map_err(material_failure)?,
        ),
    };
    for (k, v) in &facts.annotations {
        annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let (value, digest, size, summary) = match kind {
        Kind::String => {
            let d = format!(
                "sha256:{}",
                ledger_format::hash::sha256(args.value.as_bytes()).to_hex()
            );
            (args.value.clone(), d, 0, facts.summary)
        }
        Kind::ContainerImage => {
            let given = image::parse(&args.value).map_err(material_failure)?;
            if declared.is_some_and(|m| m.pinned) && given.digest().is_none() {
                return Err(material_failure(material::MaterialError::Invalid {
                    kind,
                    value: args.value.clone(),
                    reason: format!(
                        "the contract asks for `{}` by digest (pinned), and a tag can be moved: give {}/{}@sha256:<hex>",
                        args.name,
                        given.registry(),
                        given.repository()
                    ),
                }));
            }
            if given.digest().is_none() {
                // A reference without a tag names `latest`.
                let tag = given.tag().unwrap_or("latest").to_owned();
                annotations
                    .entry(crate::attest::statement::IMAGE_TAG_ANNOTATION.into())
                    .or_insert(tag);
            }
            let r = image::resolve(&args.value).map_err(material_failure)?;
            // Whether it is signed is looked for when the registry is asked
            // (a pinned reference is recorded without it).
            let how = if r.resolved_online {
                annotations
                    .entry("tally.material.image.signature".into())
                    .or_insert_with(|| r.signature.annotation().into());
                format!("resolved in its registry, {}", r.signature.describe())
            } else {
                "pinned by digest".into()
            };
            (r.pinned, r.digest, 0, format!("image, {how}"))
        }
        _ => {
            let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            let bar = crate::cmd::progress::bytes(len, format!("hashing {}", args.name));
            let (d, n) = material::hash_file(file, |x| {
                if let Some(b) = &bar {
                    b.set_position(x);
                }
            })
            .map_err(material_failure)?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, d, n, facts.summary)
        }
    };
    let skip_upload = declared.is_some_and(|m| m.skip_upload);
    let stored = if kind.is_file() && skip_upload {
        "not stored (skip_upload)".into()
    } else if kind.is_file() && st.dry_run {
        "not stored (dry run: digest only)".into()
    } else if kind.is_file() {
        upload(&st, &args.common, file, &digest, &args.name, kind)?
    } else {
        String::new()
    };
    let record = MaterialRecord {
        name: args.name.clone(),
        kind: kind.as_str().into(),
        value,
        digest,
        size,
        output: declared.is_some_and(|m| m.output),
        in_contract: declared.is_some(),
        summary,
        annotations,
        lenient: args.lenient,
        stored,
        added_at: now(),
        policy_evaluations: Vec::new(),
    };
    let mut record = record;
    // Its policies, now: the developer sees a violation at `add`, not at push.
    if let Some(plan) = state_plan(&st, &contract)? {
        if plan.applies_to(&record.name, kind) {
            let bytes = if kind.is_file() {
                let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
                if len > POLICY_MAX_INPUT {
                    None
                } else {
                    Some(
                        std::fs::read(file)
                            .map_err(|e| Failure::Unavailable(anyhow!("reading {}: {e}", file.display())))?,
                    )
                }
            } else {
                None
            };
            record.policy_evaluations = if kind.is_file() && bytes.is_none() {
                plan.unevaluated(
                    &record.name,
                    kind,
                    &record.digest,
                    &format!("the file is larger than {POLICY_MAX_INPUT} bytes"),
                    Evaluator::Client,
                )
            } else {
                let value = (!kind.is_file()).then_some(record.value.as_str());
                plan.material(
                    &crate::policy::input::Material {
                        name: &record.name,
                        kind,
                        digest: &record.digest,
                        bytes: bytes.as_deref(),
                        value,
                        annotations: &record.annotations,
                    },
                    Evaluator::Client,
                )
            };
        }
    }
    match remote {
        None => {
            st.materials.retain(|m| m.name != record.name);
            st.materials.push(record.clone());
            st.save(&path).map_err(state_failure)?;
        }
        Some((client, version)) => save_remote_material(&client, st, version, &record, args.replace)?,
    }
    let verdicts = policy_lines(&record.policy_evaluations);
    Ok(Report {
        text: format!(
            "added {} ({}{}): {}\n  {}\n{}{verdicts}",
            record.name,
            record.kind,
            if record.in_contract {
                ""
            } else {
                ", not in the contract"
            },
            record.summary,
            record.digest,
            if record.output {
                "  (an output: it becomes a subject of the attestation)\n"
            } else {
                ""
            }
        ),
        json: json!({ "material": material_json(&record) }),
    })
}

/// Each evaluation's summary and violations, indented.
/// Adds `record` to a remote state read at `version`: when another job
/// changed it meanwhile (412), reads it again and re-applies the addition —
/// unless that job added a material of the same name with other bytes (a
/// conflict, without `--replace`).
fn save_remote_material(
    client: &Client,
    mut st: State,
    mut version: i64,
    record: &MaterialRecord,
    replace: bool,
) -> Result<(), Failure> {
    let run = st.run_id.clone();
    for _ in 0..50 {
        st.materials.retain(|m| m.name != record.name);
        st.materials.push(record.clone());
        if client.put_state(&run, Some(version), &state_bytes(&st)?)?.is_ok() {
            return Ok(());
        }
        (st, version) = fetch_state(client, &run)?;
        if let Some(m) = st.material(&record.name) {
            if m.digest == record.digest && m.kind == record.kind {
                return Ok(()); // the same material, added by another job
            }
            if !replace {
                return Err(Failure::Refused(anyhow!(
                    "material `{}` was added to run {run} by another job meanwhile ({}); pass --replace to replace it",
                    record.name,
                    m.digest
                )));
            }
        }
    }
    Err(Failure::Unavailable(anyhow!(
        "run {run}'s remote state kept changing under 50 attempts to add `{}`",
        record.name
    )))
}

fn policy_lines(evals: &[Evaluation]) -> String {
    let mut out = String::new();
    for e in evals {
        out += &format!("  {}\n", e.summary());
        for v in &e.violations {
            out += &format!("      - {v}\n");
        }
    }
    out
}

/// Uploads a file material through the control plane unless the server has
/// it for this workflow already (content addressing); returns where it is.
/// A material fetched from its URL into a temporary directory (removed
/// when dropped).
struct Fetched {
    path: std::path::PathBuf,
    /// The URL as recorded: without its query or fragment (which may carry
    /// a signed token).
    recorded_url: String,
    _dir: tempfile::TempDir,
}

impl Fetched {
    /// `bytes` as `name` in a temporary directory under `dir`.
    fn write(dir: &Path, name: &str, bytes: &[u8], recorded_url: String) -> Result<Fetched, Failure> {
        let tmp = fetch_dir(dir)?;
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).map_err(|e| Failure::Unavailable(e.into()))?;
        Ok(Fetched {
            path,
            recorded_url,
            _dir: tmp,
        })
    }
}

/// A temporary directory under `dir` for a fetched material.
fn fetch_dir(dir: &Path) -> Result<tempfile::TempDir, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::Unavailable(e.into()))?;
    tempfile::Builder::new()
        .prefix("fetch-")
        .tempdir_in(dir)
        .map_err(|e| Failure::Unavailable(e.into()))
}

/// The most a material fetched by URL may weigh.
const MAX_FETCH_BYTES: u64 = 16 << 30;

/// Fetches `url` (https only; no credentials in it) into a temporary
/// directory under `dir`, streaming. Extra trusted roots: `TALLY_CA_FILE`
/// (PEM). A 4xx answer is an invalid material (exit 1); a network failure
/// or a 5xx is unavailable (exit 3).
fn fetch_material(url: &str, dir: &Path) -> Result<Fetched, Failure> {
    use std::io::{Read as _, Write as _};
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Failure::Usage(anyhow!("{url:?} is not a URL: {e}")))?;
    if parsed.scheme() != "https" {
        return Err(Failure::Usage(anyhow!(
            "{url}: a material is fetched over https:// only"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Failure::Usage(anyhow!(
            "the URL carries credentials, which would be recorded in the attestation; pass a URL without them"
        )));
    }
    let mut recorded = parsed.clone();
    recorded.set_query(None);
    recorded.set_fragment(None);
    let unavailable = |e: String| Failure::Unavailable(anyhow!("cannot fetch {recorded}: {e}"));
    let mut b = reqwest::blocking::Client::builder()
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(std::time::Duration::from_secs(1800))
        .redirect(reqwest::redirect::Policy::limited(3));
    if let Some(ca) = std::env::var_os("TALLY_CA_FILE") {
        let pem = std::fs::read(&ca).map_err(|e| {
            Failure::Usage(anyhow!("reading TALLY_CA_FILE {}: {e}", Path::new(&ca).display()))
        })?;
        for c in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Failure::Usage(anyhow!("TALLY_CA_FILE: {e}")))?
        {
            b = b.add_root_certificate(c);
        }
    }
    let client = b.build().map_err(|e| unavailable(e.to_string()))?;
    let resp = client
        .get(parsed.clone())
        .send()
        .map_err(|e| unavailable(e.to_string()))?;
    let status = resp.status();
    if status.is_client_error() {
        return Err(material_failure(material::MaterialError::Invalid {
            kind: Kind::Artifact,
            value: recorded.to_string(),
            reason: format!("the server answered {status}"),
        }));
    }
    if !status.is_success() {
        return Err(unavailable(format!("the server answered {status}")));
    }
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "download".into());
    let tmp = fetch_dir(dir)?;
    let path = tmp.path().join(&name);
    let mut out = std::fs::File::create(&path).map_err(|e| Failure::Unavailable(e.into()))?;
    let mut body = resp.take(MAX_FETCH_BYTES + 1);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| unavailable(e.to_string()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_FETCH_BYTES {
            return Err(unavailable(format!("larger than {MAX_FETCH_BYTES} bytes")));
        }
        out.write_all(&buf[..n])
            .map_err(|e| Failure::Unavailable(e.into()))?;
    }
    out.flush().map_err(|e| Failure::Unavailable(e.into()))?;
    Ok(Fetched {
        path,
        recorded_url: recorded.to_string(),
        _dir: tmp,
    })
}

fn upload(
    st: &State,
    common: &AttCommon,
    file: &Path,
    digest: &str,
    name: &str,
    kind: Kind,
) -> Result<String, Failure> {
    let client = run_client(st, common, "upload the material")?;
    let query = format!(
        "workflow={}&kind={}&name={}&run={}",
        enc(&st.workflow),
        kind.as_str(),
        enc(name),
        enc(&st.run_id)
    );
    let (url, reference) = upload_file(&client, file, digest, name, &query)?;
    Ok(reference.map_or(url, |r| format!("oci://{r}")))
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Streams `file` (whose digest is `digest`) to the control plane unless it
/// has it for this caller (HEAD first); a store that is briefly unavailable
/// is retried. Returns the artifact's URL on the server, and its OCI
/// reference when the server stores artifacts in a registry and this call
/// uploaded it.
pub fn upload_file(
    client: &crate::client::Client,
    file: &Path,
    digest: &str,
    name: &str,
    query: &str,
) -> Result<(String, Option<String>), Failure> {
    let path = format!("/api/v1/artifacts/{digest}");
    let url = format!("{}{path}", client.base());
    let len = std::fs::metadata(file)
        .map_err(|e| Failure::Usage(anyhow!("cannot read the material file {}: {e}", file.display())))?
        .len();
    const ATTEMPTS: u32 = 4;
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        if let Some(why) = last.take() {
            tracing::warn!("{why}; retrying ({attempt}/{ATTEMPTS})");
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        // Asking first: content addressing, and a store that is down shows here.
        match client.head(&path)? {
            s if s.is_success() => return Ok((url, None)),
            reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                last = Some(format!(
                    "the control plane's artifact store is unavailable (HEAD {path} answered 503)"
                ));
                continue;
            }
            _ => {}
        }
        let bar = crate::cmd::progress::bytes(len, format!("uploading {name}"));
        let f = std::fs::File::open(file)
            .map_err(|e| Failure::Usage(anyhow!("cannot open the material file {}: {e}", file.display())))?;
        let reader = crate::cmd::progress::Counting {
            inner: f,
            bar: bar.clone(),
        };
        let sent = client.put_stream(&format!("{path}?{query}"), reader, len);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        match sent {
            Ok((_, answer)) => {
                let stored: wire::ArtifactStored = serde_json::from_value(answer).map_err(|e| {
                    Failure::Unavailable(anyhow!("the control plane's answer to the upload: {e}"))
                })?;
                return Ok((url, stored.reference));
            }
            // 503 (the store failed) or the connection broke: worth another try.
            Err(Failure::Unavailable(e)) => last = Some(format!("{e:#}")),
            Err(e) => return Err(e),
        }
    }
    Err(Failure::Unavailable(anyhow!(
        "{} (gave up after {ATTEMPTS} attempts; nothing was stored, run the same command again later)",
        last.unwrap_or_default()
    )))
}

fn material_json(m: &MaterialRecord) -> serde_json::Value {
    serde_json::to_value(m).unwrap_or_default()
}

// -------------------------------------------------------------------- status

/// What is present and missing, against the contract: the rows `status`
/// shows, and what [`check::check`] says is missing.
struct Check {
    rows: Vec<Row>,
    missing_materials: Vec<String>,
    missing_groups: Vec<String>,
    /// Every other violation (a wrong kind, a material annotation, an
    /// attestation annotation given at push).
    other: Vec<Violation>,
}

struct Row {
    name: String,
    kind: String,
    requirement: String,
    present: Option<MaterialRecord>,
}

fn check_state(st: &State, c: &Contract, annotations: Option<&BTreeMap<String, String>>) -> Check {
    let mut rows = Vec::new();
    for m in &c.materials {
        let requirement = match (&m.group, m.optional) {
            (Some(g), _) => format!("one of group {g}"),
            (None, true) => "optional".into(),
            (None, false) => "required".into(),
        };
        rows.push(Row {
            name: m.name.clone(),
            kind: m.kind.as_str().into(),
            requirement: if m.output {
                format!("{requirement}, output")
            } else {
                requirement
            },
            present: st.material(&m.name).cloned(),
        });
    }
    for m in st.materials.iter().filter(|m| !m.in_contract) {
        rows.push(Row {
            name: m.name.clone(),
            kind: m.kind.clone(),
            requirement: "extra (not in the contract)".into(),
            present: Some(m.clone()),
        });
    }
    let mut ck = Check {
        rows,
        missing_materials: Vec::new(),
        missing_groups: Vec::new(),
        other: Vec::new(),
    };
    for v in check::check(c, &Evidence::from_state(st, annotations), None) {
        match v {
            Violation::MissingMaterial { name, .. } => ck.missing_materials.push(name),
            Violation::Group { group, .. } => ck.missing_groups.push(group),
            other => ck.other.push(other),
        }
    }
    // The materials' blocking policy failures join the contract's rules
    // (push adds the attestation's own, evaluated on the statement).
    let evals: Vec<Evaluation> = st
        .materials
        .iter()
        .flat_map(|m| m.policy_evaluations.clone())
        .collect();
    ck.other.extend(crate::policy::violations(&evals));
    ck
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// `tally attestation status`
pub fn status(args: &AttStatusArgs) -> Result<Report, Failure> {
    let st = load_state(&args.common)?.st;
    let c = load_contract(&st)?;
    let ck = check_state(&st, &c, None);
    let pending_ann: Vec<String> = c
        .annotations
        .iter()
        .filter(|a| a.value.is_empty())
        .map(|a| a.name.clone())
        .collect();
    let ready = ck.missing_materials.is_empty() && ck.missing_groups.is_empty() && ck.other.is_empty();

    let mut t = String::new();
    t.push_str(&format!(
        "run {}{}  workflow {}  project {}{}\ncontract {} {}\nrunner {}{}   git {}\n\n",
        st.run_id,
        if st.dry_run { " (dry run)" } else { "" },
        st.workflow,
        st.project,
        if st.version.is_empty() {
            String::new()
        } else {
            format!("  version {}", st.version)
        },
        st.contract.revision.name,
        revision_text(&st.contract),
        st.runner.kind,
        if st.runner.url.is_empty() {
            String::new()
        } else {
            format!(" {}", st.runner.url)
        },
        st.git.as_ref().map_or("-".into(), |g| short(&g.commit, 12)),
    ));
    let w = ck.rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let wk = ck.rows.iter().map(|r| r.kind.len()).max().unwrap_or(4).max(4);
    let wr = ck
        .rows
        .iter()
        .map(|r| r.requirement.len())
        .max()
        .unwrap_or(11)
        .max(11);
    t.push_str(&format!(
        "  {:<w$}  {:<wk$}  {:<wr$}  STATUS\n",
        "NAME", "KIND", "REQUIREMENT"
    ));
    for r in &ck.rows {
        let status = match &r.present {
            Some(m) if args.full => format!("added  {}  {}", m.digest, m.summary),
            Some(m) => format!("added  {}", short(&m.digest, 19)),
            None if r.requirement.starts_with("required") => "MISSING".into(),
            None => "-".into(),
        };
        let mark = match (&r.present, r.requirement.starts_with("required")) {
            (Some(_), _) => "✓",
            (None, true) => "✗",
            (None, false) => " ",
        };
        t.push_str(&format!(
            "{mark} {:<w$}  {:<wk$}  {:<wr$}  {status}\n",
            r.name, r.kind, r.requirement
        ));
        if args.full {
            if let Some(m) = &r.present {
                for (k, v) in &m.annotations {
                    t.push_str(&format!("    {k}={v}\n"));
                }
            }
        }
        if let Some(m) = &r.present {
            for line in policy_lines(&m.policy_evaluations).lines() {
                t.push_str(&format!("  {line}\n"));
            }
        }
    }
    if args.full {
        t.push_str("\nenv:\n");
        for (k, v) in &st.env {
            t.push_str(&format!("  {k}={v}\n"));
        }
        t.push_str("runner env:\n");
        for (k, v) in &st.runner.env {
            t.push_str(&format!("  {k}={v}\n"));
        }
    }
    t.push('\n');
    for g in &ck.missing_groups {
        t.push_str(&format!("✗ group {g}: add at least one of its materials\n"));
    }
    if !pending_ann.is_empty() {
        t.push_str(&format!(
            "! push needs annotation(s): {}\n",
            pending_ann
                .iter()
                .map(|a| format!("--annotation {a}=…"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    for v in &ck.other {
        t.push_str(&format!("✗ {v}\n"));
    }
    if !c.policies.is_empty() || !c.policy_groups.is_empty() {
        t.push_str("(attestation policies are evaluated at push, on the signed statement)\n");
    }
    t.push_str(if ready && !pending_ann.is_empty() {
        "materials complete: push with the annotation(s) above\n"
    } else if ready {
        "ready to push\n"
    } else {
        "not ready: see above\n"
    });
    let rows: Vec<serde_json::Value> = ck
        .rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "kind": r.kind, "requirement": r.requirement,
                "present": r.present.is_some(),
                "material": r.present.as_ref().map(material_json),
            })
        })
        .collect();
    Ok(Report {
        text: t,
        json: json!({
            "run_id": st.run_id,
            "dry_run": st.dry_run,
            "workflow": st.workflow,
            "project": st.project,
            "version": st.version,
            "contract": {"name": st.contract.revision.name, "commit": st.contract.revision.commit, "blob": st.contract.revision.blob},
            "runner": st.runner,
            "env": st.env,
            "git": st.git,
            "materials": rows,
            "missing_materials": ck.missing_materials,
            "missing_groups": ck.missing_groups,
            "annotations_required_at_push": pending_ann,
            "ready": ready,
        }),
    })
}

// ---------------------------------------------------------------------- push

fn key_failure(e: KeyError) -> Failure {
    Failure::Usage(anyhow::Error::new(e).context("the signing key"))
}

/// Loads the signing key at `path`, decrypting with `TALLY_KEY_PASSWORD`.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(anyhow!("cannot read the signing key {}: {e}", path.display())))?;
    let pw = std::env::var(PASSWORD_ENV).ok();
    SigningKey::from_pem(&text, pw.as_deref()).map_err(key_failure)
}

/// `tally attestation push`
pub fn push(args: &AttPushArgs) -> Result<Report, Failure> {
    let path = state::state_path(args.common.state.as_deref());
    let st = load_state(&args.common)?.st;
    if st.dry_run && !args.dry_run {
        return Err(Failure::Usage(anyhow!(
            "run {} was started with --dry-run; finish it with `tally attestation push --dry-run`",
            st.run_id
        )));
    }
    let c = load_contract(&st)?;
    let user_ann = parse_annotations(&args.annotations)?;
    let (annotations, missing_ann) = merge_annotations(&c.annotations, &user_ann, "the attestation")?;
    let mut ck = check_state(&st, &c, Some(&annotations));
    // Attestation annotations are listed from `missing_ann`, with the flag to pass.
    ck.other
        .retain(|v| !matches!(v, Violation::Annotation { material: None, .. }));
    if !ck.missing_materials.is_empty()
        || !ck.missing_groups.is_empty()
        || !missing_ann.is_empty()
        || !ck.other.is_empty()
    {
        let mut lines = Vec::new();
        for m in &ck.missing_materials {
            let kind = c
                .materials
                .iter()
                .find(|x| &x.name == m)
                .map_or("", |x| x.kind.as_str());
            lines.push(format!(
                "  - material `{m}` ({kind}): tally attestation add --name {m} --value <…>"
            ));
        }
        for g in &ck.missing_groups {
            let members: Vec<&str> = c
                .materials
                .iter()
                .filter(|x| x.group.as_deref() == Some(g))
                .map(|x| x.name.as_str())
                .collect();
            lines.push(format!(
                "  - one material of group `{g}`: {}",
                members.join(" or ")
            ));
        }
        for a in &missing_ann {
            lines.push(format!(
                "  - annotation `{a}`: pass --annotation {a}=<value> to push"
            ));
        }
        for v in &ck.other {
            lines.push(format!("  - {v}"));
        }
        return Err(refused(
            format!(
                "contract `{}` is not satisfied; nothing was signed or sent. Missing:\n{}",
                c.name,
                lines.join("\n")
            ),
            json!({
                "reason": "contract_unsatisfied",
                "missing_materials": ck.missing_materials,
                "missing_groups": ck.missing_groups,
                "missing_annotations": missing_ann,
                "violations": ck.other.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ));
    }
    let key = match &args.key {
        Some(p) => load_signing_key(p)?,
        None if st.dry_run || args.dry_run => {
            return Err(Failure::Usage(anyhow!(
                "a dry run signs with --key: keyless signing needs the control plane's CA"
            )))
        }
        // Keyless: a key that lives in memory for this push only.
        None => SigningKey::generate(crate::attest::signing::Algorithm::EcdsaP256).map_err(key_failure)?,
    };
    let mut statement = statement::build(&st, &annotations, &now());
    // Policies: the materials' verdicts from `add` travel in the statement
    // (the control plane uses them only for materials it never receives),
    // the attestation's are evaluated now, on the statement as it will be signed.
    let material_evals: Vec<Evaluation> = st
        .materials
        .iter()
        .flat_map(|m| m.policy_evaluations.clone())
        .collect();
    if !material_evals.is_empty() {
        statement["predicate"]["buildDefinition"]["internalParameters"]
            [crate::policy::verdict::CLIENT_EVALUATIONS] =
            serde_json::to_value(&material_evals).map_err(|e| Failure::Usage(e.into()))?;
    }
    let payload = serde_json::to_vec(&statement).map_err(|e| Failure::Usage(e.into()))?;
    if let Some(plan) = state_plan(&st, &c)? {
        let digest = format!("sha256:{}", ledger_format::hash::sha256(&payload).to_hex());
        let mut all = material_evals;
        all.extend(plan.statement(&payload, &digest, Evaluator::Client));
        let blocking = crate::policy::violations(&all);
        if !blocking.is_empty() && !exception_granted(&st, args)? {
            let lines: Vec<String> = blocking.iter().map(|v| format!("  - {v}")).collect();
            return Err(refused(
                format!(
                    "{} blocking policy violation(s); nothing was signed or sent:\n{}\n\
                     fix the material and `tally attestation add --replace` it, or ask an operator for an exception for run {}",
                    blocking.len(),
                    lines.join("\n"),
                    st.run_id
                ),
                json!({
                    "reason": "policy_violation",
                    "violations": blocking.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "evaluations": all,
                }),
            ));
        }
    }
    let certificate = match args.key {
        None => Some(request_certificate(&st, args, &key)?),
        Some(_) => None,
    };
    let mut envelope = key
        .sign_envelope(IN_TOTO_PAYLOAD_TYPE, &payload)
        .map_err(key_failure)?;
    if let (Some(c), Some(s)) = (&certificate, envelope.signatures.first_mut()) {
        s.certificate = Some(c.certificate_chain.clone());
    }
    let mut env_bytes = serde_json::to_vec_pretty(&envelope).map_err(|e| Failure::Usage(e.into()))?;
    env_bytes.push(b'\n');
    let env_digest = format!("sha256:{}", ledger_format::hash::sha256(&env_bytes).to_hex());
    if !args.dry_run {
        return push_to_server(
            args,
            &path,
            &st,
            &env_bytes,
            &env_digest,
            &key,
            certificate.as_ref(),
        );
    }
    crate::fsutil::write_atomic(&args.envelope, &env_bytes, 0o644, true)
        .map_err(|e| Failure::Unavailable(anyhow!("writing {}: {e}", args.envelope.display())))?;
    state::clear(&path).map_err(state_failure)?;
    let subjects: Vec<String> = statement["subject"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Report {
        text: format!(
            "signed attestation for run {} written to {} (dry run: not sent, not logged)\n  envelope {env_digest}\n  key id   {}\n  subjects {}\n  materials {}\nverify it with:\n  tally attestation verify {} --key <public key>\n",
            st.run_id,
            args.envelope.display(),
            key.keyid(),
            subjects.join(", "),
            st.materials.len(),
            args.envelope.display()
        ),
        json: json!({
            "run_id": st.run_id,
            "dry_run": true,
            "envelope": args.envelope,
            "envelope_digest": env_digest,
            "keyid": key.keyid(),
            "subjects": subjects,
            "statement": statement,
        }),
    })
}

/// Keyless signing: asks the control plane's CA to certify `key` for the
/// run (proving possession by signing the run id). The certificate is in
/// the log once this returns.
fn request_certificate(
    st: &State,
    args: &AttPushArgs,
    key: &SigningKey,
) -> Result<wire::CertificateIssued, Failure> {
    let client = run_client(st, &args.common, "certify the signing key")?;
    let proof = key.sign(st.run_id.as_bytes()).map_err(key_failure)?;
    let req = wire::CertificateRequest {
        public_key: key.public_pem().to_owned(),
        proof: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, proof),
    };
    let body = serde_json::to_vec(&req).map_err(|e| Failure::Usage(e.into()))?;
    let (_, issued) = client.post_bytes_as(&format!("/api/v1/runs/{}/certificate", st.run_id), &body)?;
    Ok(issued)
}

/// The certificate's entry and inclusion proof, checked, for the bundle
/// (the attestation is published, and the certificate's entry before it).
fn logged_certificate(
    client: &crate::client::Client,
    c: &wire::CertificateIssued,
    vkey: &ledger_format::note::VerifierKey,
) -> Result<crate::attest::bundle::LoggedCertificate, Failure> {
    use std::io::Read as _;
    let i = c.log_index;
    let mut entry = String::new();
    client
        .get_stream(&format!("/api/v1/entries/{i}"))?
        .read_to_string(&mut entry)
        .map_err(|e| Failure::Unavailable(anyhow!("reading log entry {i}: {e}")))?;
    let p: wire::InclusionProof = client.get_as(&format!("/api/v1/proof/inclusion?index={i}"))?;
    let tlog_proof = p.tlog_proof.ok_or_else(|| {
        Failure::Unavailable(anyhow!(
            "the control plane sent no inclusion proof for the certificate"
        ))
    })?;
    ledger_format::tlog_proof::TlogProof::parse(tlog_proof.as_bytes())
        .map_err(|e| Failure::Invalid(e.into()))?
        .verify(entry.as_bytes(), vkey, &[], Some(vkey.name()))
        .map_err(|e| Failure::Invalid(anyhow!("the certificate's inclusion proof does not verify: {e}")))?;
    let leaf = crate::identity::ca::pem_blocks(&c.certificate_chain)
        .ok()
        .and_then(|b| b.into_iter().next())
        .unwrap_or_default();
    let logged = ledger_format::certificate::CertificateEntry::parse(entry.as_bytes())
        .map_err(|e| Failure::Invalid(anyhow!("log entry {i} is not a certificate entry: {e}")))?;
    if logged.certificate_digest != ledger_format::hash::sha256(&leaf) {
        return Err(Failure::Invalid(anyhow!(
            "log entry {i} names another certificate than the one issued"
        )));
    }
    Ok(crate::attest::bundle::LoggedCertificate {
        log_index: i,
        entry,
        tlog_proof,
    })
}

/// Whether the control plane granted this run a policy exception that is
/// still usable (it decides again at intake).
fn exception_granted(st: &State, args: &AttPushArgs) -> Result<bool, Failure> {
    if st.dry_run || args.dry_run {
        return Ok(false);
    }
    let client = run_client(st, &args.common, "check for a policy exception")?;
    let run: wire::Run = client.get_as(&format!("/api/v1/runs/{}", st.run_id))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(run.exception.is_some_and(|e| e.until >= now))
}

/// The control plane half of `push`: send, wait for the proof, check it,
/// write the offline bundle, clear the state.
fn push_to_server(
    args: &AttPushArgs,
    path: &Path,
    st: &State,
    env_bytes: &[u8],
    env_digest: &str,
    key: &SigningKey,
    certificate: Option<&wire::CertificateIssued>,
) -> Result<Report, Failure> {
    use ledger_format::tlog_proof::TlogProof;
    let client = run_client(st, &args.common, "push the attestation")?;
    let quorum = crate::cmd::witness_policy(&args.witnesses)?;
    let (status, answer): (_, wire::PushAnswer<'static>) =
        client.post_bytes_as(&format!("/api/v1/runs/{}/attestation", st.run_id), env_bytes)?;
    let index = answer.log_index;
    let entry = answer.entry.into_owned();
    // Accepted: the run is over whatever happens next.
    state::clear(path).map_err(state_failure)?;
    let mut tlog = answer.tlog_proof;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.wait_secs);
    // With a witness quorum asked for, a proof under a checkpoint short of
    // it is not good enough: wait for a later (or re-cosigned) checkpoint.
    let short = |t: &Option<String>| -> bool {
        let (Some(q), Some(t)) = (&quorum, t) else {
            return false;
        };
        !TlogProof::parse(t.as_bytes())
            .ok()
            .and_then(|p| ledger_format::note::Note::parse(p.checkpoint.as_bytes()).ok())
            .is_some_and(|n| q.check(&n).satisfied)
    };
    while (tlog.is_none() && status.as_u16() == 202) || short(&tlog) {
        if short(&tlog) {
            if std::time::Instant::now() >= deadline {
                return Err(Failure::Unavailable(anyhow!(
                    "the attestation was accepted at log index {index}, but no checkpoint covering it met the witness quorum ({}) within {} s; \
                     its inclusion proof will be at {}/api/v1/proof/inclusion?index={index}",
                    quorum.as_ref().map(|q| q.describe_quorum()).unwrap_or_default(),
                    args.wait_secs,
                    client.base()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let (s, p) = client.get_any(&format!("/api/v1/proof/inclusion?index={index}"))?;
        if s.is_success() {
            tlog = serde_json::from_value::<wire::InclusionProof>(p)
                .map_err(|e| Failure::Unavailable(anyhow!("the control plane's inclusion proof: {e}")))?
                .tlog_proof;
        } else if std::time::Instant::now() >= deadline {
            return Err(Failure::Unavailable(anyhow!(
                "the attestation was accepted at log index {index} but not published within {} s; \
                 its inclusion proof will be at {}/api/v1/proof/inclusion?index={index}",
                args.wait_secs,
                client.base()
            )));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
    let tlog =
        tlog.ok_or_else(|| Failure::Unavailable(anyhow!("the control plane sent no inclusion proof")))?;
    // Check what we were given before handing it to anyone.
    let log: wire::LogInfo = client.get_as("/api/v1/log")?;
    let vkey_text = log.verifier_key;
    let vkey = ledger_format::note::VerifierKey::parse(&vkey_text)
        .map_err(|e| Failure::Unavailable(anyhow!("the log's verifier key does not parse: {e}")))?;
    let proof = TlogProof::parse(tlog.as_bytes()).map_err(|e| Failure::Invalid(e.into()))?;
    proof
        .verify(entry.as_bytes(), &vkey, &[], Some(vkey.name()))
        .map_err(|e| {
            Failure::Invalid(anyhow!(
                "the control plane's inclusion proof does not verify: {e}"
            ))
        })?;
    let entry_parsed =
        ledger_format::entry::Entry::parse(entry.as_bytes()).map_err(|e| Failure::Invalid(e.into()))?;
    if entry_parsed.envelope_digest != ledger_format::hash::sha256(env_bytes) {
        return Err(Failure::Invalid(anyhow!(
            "the logged entry names another envelope than the one pushed"
        )));
    }
    let verdict = match (&entry_parsed.verdict, &answer.verdict) {
        (None, None) => None,
        (Some((digest, _)), Some(b64)) => {
            let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                .map_err(|_| Failure::Invalid(anyhow!("the control plane's verdict is not base64")))?;
            if ledger_format::hash::sha256(&bytes) != *digest {
                return Err(Failure::Invalid(anyhow!(
                    "the control plane's verdict is not the one its log entry binds"
                )));
            }
            Some(bytes)
        }
        _ => {
            return Err(Failure::Invalid(anyhow!(
                "the log entry and the control plane's answer disagree on whether there is a verdict"
            )))
        }
    };
    let logged_cert = match certificate {
        Some(c) => Some(logged_certificate(&client, c, &vkey)?),
        None => None,
    };
    let bundle = crate::attest::bundle::Bundle {
        log_index: index,
        entry,
        tlog_proof: tlog,
        envelope: env_bytes.to_vec(),
        verdict,
        certificate: logged_cert,
    };
    crate::fsutil::write_atomic(&args.bundle, bundle.to_json().as_bytes(), 0o644, true)
        .map_err(|e| Failure::Unavailable(anyhow!("writing {}: {e}", args.bundle.display())))?;
    let trust = match (&args.key, certificate) {
        (_, Some(_)) => "--ca <the control plane's CA certificate: GET /api/v1/ca>".to_owned(),
        (Some(k), None) if k.with_extension("pub").is_file() => {
            format!("--key {}", k.with_extension("pub").display())
        }
        _ => "--key <the workflow's public key>".to_owned(),
    };
    let mut command = format!(
        "tally verify --bundle {} --log-key '{}' {trust}",
        args.bundle.display(),
        vkey_text,
    );
    if let Some(p) = &args.witnesses.witness_policy {
        command.push_str(&format!(" --witness-policy {}", p.display()));
    } else if quorum.is_some() {
        for k in &args.witnesses.witness_keys {
            command.push_str(&format!(" --witness-key '{k}'"));
        }
        command.push_str(&format!(" --min-witnesses {}", args.witnesses.min_witnesses));
    }
    Ok(Report {
        text: format!(
            "attestation of run {} appended to the log at index {index}\n  envelope {env_digest}\n  key id   {}\n  bundle   {}\nan auditor verifies it offline with:\n  {command}\n",
            st.run_id,
            key.keyid(),
            args.bundle.display()
        ),
        json: json!({
            "run_id": st.run_id,
            "log_index": index,
            "envelope_digest": env_digest,
            "keyid": key.keyid(),
            "certificate_log_index": certificate.map(|c| c.log_index),
            "bundle": args.bundle,
            "verify_command": command,
        }),
    })
}

// --------------------------------------------------------------------- reset

/// `tally attestation reset`
pub fn reset(args: &AttResetArgs) -> Result<Report, Failure> {
    let path = state::state_path(args.common.state.as_deref());
    let run = match State::load(&path) {
        Ok(s) => {
            if !s.dry_run {
                let trigger = match args.trigger {
                    ResetTrigger::Failure => "failure",
                    ResetTrigger::Cancellation => "cancellation",
                };
                let client = run_client(&s, &args.common, "end the run")?;
                client.post(
                    &format!("/api/v1/runs/{}/reset", s.run_id),
                    &json!({"trigger": trigger, "reason": args.reason}),
                )?;
            }
            Some(s.run_id)
        }
        Err(StateError::Missing(_)) => {
            return Err(Failure::Usage(anyhow!(
                "no attestation in progress ({} does not exist); nothing to reset",
                path.display()
            )))
        }
        // A corrupt state is discarded: that is what reset is for.
        Err(StateError::Corrupt { .. }) => None,
        Err(e) => return Err(state_failure(e)),
    };
    state::clear(&path).map_err(state_failure)?;
    let outcome = match args.trigger {
        ResetTrigger::Failure => "failed",
        ResetTrigger::Cancellation => "cancelled",
    };
    Ok(Report {
        text: format!(
            "run {} ended as {outcome}{}; state {} cleared\n",
            run.as_deref().unwrap_or("(unreadable state)"),
            args.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            path.display()
        ),
        json: json!({"run_id": run, "status": outcome, "reason": args.reason, "state": path}),
    })
}

// -------------------------------------------------------------------- verify

/// `tally attestation verify`: signature, statement shape, tally predicate.
pub fn verify(args: &AttVerifyArgs) -> Result<Report, Failure> {
    let bytes = crate::cmd::read_input(&args.envelope)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Usage(anyhow!("{} is not JSON: {e}", args.envelope.display())))?;
    let env_value = if v.get("dsseEnvelope").is_some() {
        v["dsseEnvelope"].clone()
    } else if v.get("envelope").is_some() {
        v["envelope"].clone()
    } else {
        v
    };
    let envelope: Envelope = serde_json::from_value(env_value)
        .map_err(|e| Failure::Usage(anyhow!("{} holds no DSSE envelope: {e}", args.envelope.display())))?;
    let pem = std::fs::read_to_string(&args.key)
        .map_err(|e| Failure::Usage(anyhow!("cannot read the key {}: {e}", args.key.display())))?;
    let key = PublicKey::from_pem(&pem).map_err(|e| Failure::Usage(e.into()))?;
    let verified = envelope.verify(&[key]).map_err(|e| Failure::Invalid(e.into()))?;
    if verified.payload_type() != IN_TOTO_PAYLOAD_TYPE {
        return Err(Failure::Invalid(anyhow!(
            "payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE}",
            verified.payload_type()
        )));
    }
    let view = statement::View::parse(verified.payload())
        .map_err(|e| Failure::Invalid(anyhow!("the signed payload is not an in-toto statement: {e}")))?;
    let problems = view.problems();
    if !problems.is_empty() {
        return Err(Failure::Invalid(anyhow!(
            "the signature is valid but the statement is not a tally attestation: {}",
            problems.join("; ")
        )));
    }
    let ext = view.external();
    let subjects: Vec<String> = view
        .subject
        .iter()
        .map(|s| {
            let d = s.digest.strings().next().map(|(k, v)| format!("{k}:{v}"));
            format!("{} {}", s.name.get().unwrap_or("?"), d.unwrap_or_default())
        })
        .collect();
    let byproducts = view.predicate.run_details.byproducts.len();
    // The statement as signed, echoed for --output json (not read further).
    let echoed: serde_json::Value = serde_json::from_slice(verified.payload())
        .map_err(|e| Failure::Invalid(anyhow!("the signed payload is not JSON: {e}")))?;
    Ok(Report {
        text: format!(
            "OK: signature valid; in-toto Statement v1 with SLSA Provenance v1\n  workflow {} (project {})\n  contract {} @ {} (blob {})\n  run      {}\n  subjects\n{}\n  {byproducts} other material(s)\n",
            ext.workflow.as_str(),
            ext.project.as_str(),
            ext.contract.name.as_str(),
            ext.contract.commit.get().filter(|c| !c.is_empty()).unwrap_or("(uncommitted file)"),
            ext.contract.blob.as_str(),
            view.invocation_id(),
            subjects.iter().map(|s| format!("    {s}")).collect::<Vec<_>>().join("\n"),
        ),
        json: json!({"valid": true, "statement": echoed}),
    })
}
