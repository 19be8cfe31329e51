//! `halfopen-lab <cmd>`: the lab processes (greet-server, burst, churn) as a standalone binary,
//! for this crate's tests; the main binary mounts the same commands as `halfopen lab <cmd>`.

use std::process::ExitCode;

use clap::Parser;

/// Lab processes that reproduce the half-open incident inside a lab namespace.
#[derive(Parser, Debug)]
#[command(name = "halfopen-lab", version)]
struct Cli {
    #[command(subcommand)]
    cmd: halfopen_lab::LabCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match halfopen_lab::run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("halfopen-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
