//! `tally-bench`: the benchmarks of BENCHMARKS.md, a binary of its own so the
//! load generator (a hyper HTTP client) and the harnesses are not in the
//! `tally` binary the server runs.
//!
//! ```sh
//! cargo build --release && ./target/release/tally-bench intake
//! ./target/release/tally-bench ledger --duration 60
//! ./target/release/tally-bench artifacts --registry 127.0.0.1:5000
//! ./target/release/tally-bench policy --sizes-kib 100,1024,10240
//! ./target/release/tally-bench witness
//! ./target/release/tally-bench intake --witnesses 3
//! ./target/release/tally-bench intake --abuse
//! ./target/release/tally-bench console --dir /tmp/console-data
//! ```

use std::process::ExitCode;

use clap::Parser as _;

mod abuse;
mod args;
mod console;
mod harness;
mod policy;
mod witness;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let result = match &cli.command {
        args::BenchCommand::Ledger(a) => harness::ledger(a),
        args::BenchCommand::Intake(a) => harness::intake(a),
        args::BenchCommand::Artifacts(a) => harness::artifacts(a),
        args::BenchCommand::Policy(a) => policy::policy(a),
        args::BenchCommand::Witness(a) => witness::witness(a),
        args::BenchCommand::Console(a) => console::console(a),
    };
    match result {
        Ok(r) => {
            println!("{}", r.json);
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("error: {f}");
            ExitCode::from(f.code())
        }
    }
}
