//! The `halfopen` command: the collector and reconciler services, the query
//! commands, `snapshot`, and (feature `demo`) the self-contained demo.
//!
//! - `cli`: commands, flags, defaults (clap); `args`: the values after flags.
//! - `commands`: what each command does; the only place that talks gRPC.
//! - `output`: what the commands print: JSON rows (contracts for scripts)
//!   and human tables, built from domain values.
mod args;
mod cli;
mod commands;
mod output;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Cmd};

/// Logs to stderr with `filter` (RUST_LOG wins when set); a filter that does
/// not parse is an error, not silently "info".
fn init_logging(filter: &str) -> Result<()> {
    let (filter, from) = match std::env::var("RUST_LOG") {
        Ok(f) => (f, "RUST_LOG"),
        Err(_) => (filter.to_string(), "--log/HALFOPEN_LOG"),
    };
    let f = tracing_subscriber::EnvFilter::try_new(&filter).with_context(|| {
        format!("invalid log filter {filter:?} in {from} (examples: info, debug, halfopen_reconciler=debug)")
    })?;
    // only fails if a subscriber is already set, which cannot happen here
    let _ = tracing_subscriber::fmt()
        .with_env_filter(f)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: journald, files and
        // pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        #[cfg(feature = "demo")]
        Cmd::Lab { cmd } => {
            init_logging(&cli.log)?;
            halfopen_lab::run(cmd).map_err(Into::into)
        }
        #[cfg(feature = "demo")]
        Cmd::Demo(args) => {
            init_logging("warn")?;
            commands::demo::run(args)
        }
        Cmd::Snapshot { json, info, proc_net } => commands::snapshot::run(json, info, proc_net),
        Cmd::Certs(cmd) => commands::certs::run(cmd),
        other => {
            init_logging(&cli.log)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(commands::run_async(other))
        }
    }
}
