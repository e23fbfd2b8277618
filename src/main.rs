//! The `tally` binary: parse flags, run the command, print, exit.

use std::process::ExitCode;

use clap::Parser as _;
use tally::cli::{
    ArtifactCommand, AttestationCommand, Cli, Command, ContractCommand, IntegrationCommand, KeyCommand,
    LedgerCommand, LogFormat, Output, PolicyCommand, ProofCommand, RunCommand, TokenCommand, WitnessCommand,
    WorkflowCommand, WorkflowKeyCommand,
};
use tally::cmd::{self, Report};
use tally::exit::{Failure, OK};

/// Log lines (tracing) on stderr. `tally serve` logs at `info` (a line per
/// push, with its request id, workflow, run and log index); every other
/// command only warnings, without decoration, as notes to the user.
/// `TALLY_LOG` overrides the level (a tracing filter).
fn init_logging(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let (default, format) = match command {
        Command::Serve(a) => ("info", Some(a.log_format)),
        Command::Witness(WitnessCommand::Serve(_)) => ("info", Some(LogFormat::Text)),
        _ => ("warn", None),
    };
    let filter = EnvFilter::try_from_env("TALLY_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none(),
        );
    let _ = match format {
        Some(LogFormat::Json) => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        Some(LogFormat::Text) => builder.try_init(),
        None => builder
            .without_time()
            .with_target(false)
            .with_level(false)
            .try_init(),
    };
}

/// Writes the answer on stdout. A reader that went away (`tally … | head`)
/// is not an error to report: the rest is dropped.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command);
    let (output, result): (Output, Result<Report, Failure>) = match &cli.command {
        Command::Key(KeyCommand::Generate(a)) => (a.output, cmd::key::generate(a)),
        Command::Proof(ProofCommand::Inclusion(a)) => (a.output, cmd::proof::inclusion(a)),
        Command::Proof(ProofCommand::Consistency(a)) => (a.output, cmd::proof::consistency(a)),
        Command::Verify(a) => (a.output, cmd::verify::verify(a)),
        Command::Audit(a) => (a.output, cmd::audit::audit(a)),
        Command::Ledger(LedgerCommand::Init(a)) => (a.output, cmd::ledger::init(a)),
        Command::Ledger(LedgerCommand::Append(a)) => (a.output, cmd::ledger::append(a)),
        Command::Ledger(LedgerCommand::Fsck(a)) => (a.output, cmd::ledger::fsck(a)),
        Command::Ledger(LedgerCommand::Proof(a)) => (Output::Text, cmd::ledger::proof(a)),
        Command::Ledger(LedgerCommand::Pack(a)) => (Output::Text, cmd::ledger::pack(a)),
        Command::Ledger(LedgerCommand::Stress(a)) => (Output::Text, cmd::ledger::stress(a)),
        Command::Attestation(AttestationCommand::Init(a)) => (a.common.output, cmd::attestation::init(a)),
        Command::Attestation(AttestationCommand::Add(a)) => (a.common.output, cmd::attestation::add(a)),
        Command::Attestation(AttestationCommand::Status(a)) => (a.common.output, cmd::attestation::status(a)),
        Command::Attestation(AttestationCommand::Push(a)) => (a.common.output, cmd::attestation::push(a)),
        Command::Attestation(AttestationCommand::Reset(a)) => (a.common.output, cmd::attestation::reset(a)),
        Command::Attestation(AttestationCommand::Verify(a)) => (a.output, cmd::attestation::verify(a)),
        Command::Serve(a) => (Output::Text, cmd::serve::serve(a)),
        Command::Demo(a) => (a.output, cmd::demo::demo(a)),
        Command::Completion(a) => (Output::Text, cmd::shell::completion(a)),
        Command::Man(a) => (a.output, cmd::shell::man(a)),
        Command::Token(TokenCommand::Create(a)) => (a.conn.output, cmd::admin::token_create(a)),
        Command::Token(TokenCommand::List(a)) => (a.conn.output, cmd::admin::token_list(a)),
        Command::Token(TokenCommand::Revoke(a)) => (a.conn.output, cmd::admin::token_revoke(a)),
        Command::Integration(IntegrationCommand::List(a)) => (a.conn.output, cmd::integration::list(a)),
        Command::Integration(IntegrationCommand::Status(a)) => (a.conn.output, cmd::integration::status(a)),
        Command::Integration(IntegrationCommand::Retry(a)) => (a.conn.output, cmd::integration::retry(a)),
        Command::Workflow(WorkflowCommand::List(a)) => (a.conn.output, cmd::admin::workflow_list(a)),
        Command::Workflow(WorkflowCommand::Key(WorkflowKeyCommand::Add(a))) => {
            (a.conn.output, cmd::admin::workflow_key_add(a))
        }
        Command::Workflow(WorkflowCommand::Key(WorkflowKeyCommand::Revoke(a))) => {
            (a.conn.output, cmd::admin::workflow_key_revoke(a))
        }
        Command::Workflow(WorkflowCommand::Key(WorkflowKeyCommand::List(a))) => {
            (a.conn.output, cmd::admin::workflow_key_list(a))
        }
        Command::Run(RunCommand::List(a)) => (a.conn.output, cmd::admin::run_list(a)),
        Command::Run(RunCommand::Describe(a)) => (a.conn.output, cmd::admin::run_describe(a)),
        Command::Run(RunCommand::Exception(a)) => (a.conn.output, cmd::admin::run_exception(a)),
        Command::Stats(a) => (a.conn.output, cmd::admin::stats(a)),
        Command::Artifact(ArtifactCommand::Download(a)) => (a.conn.output, cmd::admin::artifact_download(a)),
        Command::Artifact(ArtifactCommand::Upload(a)) => (a.conn.output, cmd::admin::artifact_upload(a)),
        Command::Contract(ContractCommand::Lint(a)) => (a.output, cmd::contract::lint(a)),
        Command::Contract(ContractCommand::Log(a)) => (a.output, cmd::contract::log(a)),
        Command::Contract(ContractCommand::Show(a)) => (a.output, cmd::contract::show(a)),
        Command::Contract(ContractCommand::Diff(a)) => (a.output, cmd::contract::diff(a)),
        Command::Contract(ContractCommand::Check(a)) => (a.output, cmd::contract::check(a)),
        Command::Policy(PolicyCommand::Eval(a)) => (a.output, cmd::policy::eval(a)),
        Command::Policy(PolicyCommand::Test(a)) => (a.output, cmd::policy::test(a)),
        Command::Witness(WitnessCommand::Keygen(a)) => (a.output, cmd::witness::keygen(a)),
        Command::Witness(WitnessCommand::Serve(a)) => (Output::Text, cmd::witness::serve(a)),
        Command::Monitor(a) => (a.output, cmd::monitor::monitor(a)),
    };
    match (result, output) {
        (Ok(r), Output::Text) => {
            emit(&r.text);
            ExitCode::from(OK)
        }
        (Ok(r), Output::Json) => {
            emit(&format!("{}\n", r.json));
            ExitCode::from(OK)
        }
        (Err(f), Output::Text) => {
            eprintln!("error: {f}");
            ExitCode::from(f.code())
        }
        (Err(f), Output::Json) => {
            let chain = f.causes();
            let details = f
                .error()
                .downcast_ref::<tally::exit::Details>()
                .map(|d| d.json.clone());
            emit(&format!(
                "{}\n",
                serde_json::json!({
                    "valid": false,
                    "error": f.kind(),
                    "message": format!("{f}"),
                    "causes": chain,
                    "details": details,
                    "exit_code": f.code(),
                })
            ));
            ExitCode::from(f.code())
        }
    }
}
