//! The lab processes that reproduce the incident, as a clap subcommand ([`LabCommand`]) that the
//! main binary mounts as `halfopen lab <cmd>`: a server that speaks first (`greet-server`), a
//! burst of simultaneous connects (`burst`) and healthy short-lived traffic (`churn`). Each prints
//! machine-readable lines on stdout (the report types below) and diagnostics on stderr.

mod burst;
mod churn;
mod greet_server;
mod sock;

use serde::{Deserialize, Serialize};

pub use burst::BurstArgs;
pub use churn::ChurnArgs;
pub use greet_server::GreetServerArgs;

use crate::LabError;

/// A lab process. Mounted by the main binary as the hidden `halfopen lab <cmd>`, and by this
/// crate's own `halfopen-lab` binary.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum LabCommand {
    /// A server that speaks first (MySQL-like greeting): listens with an exact backlog, can delay
    /// its first accept() and each greeting. Prints "listening ADDR" when ready.
    GreetServer(GreetServerArgs),
    /// N non-blocking connects at the same instant, then holds them open reading greetings.
    /// Prints JSON lines (BurstReport).
    Burst(BurstArgs),
    /// Healthy short-lived connections at a steady rate. Prints one JSON summary (ChurnReport)
    /// at the end.
    Churn(ChurnArgs),
}

/// Runs a lab process to its end on a current-thread tokio runtime. Must not be called from
/// inside a tokio runtime; use [`run_async`] there.
pub fn run(cmd: LabCommand) -> Result<(), LabError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io("building the tokio runtime", e))?;
    rt.block_on(run_async(cmd))
}

/// Runs a lab process on the caller's tokio runtime.
pub async fn run_async(cmd: LabCommand) -> Result<(), LabError> {
    match cmd {
        LabCommand::GreetServer(a) => greet_server::run(a).await,
        LabCommand::Burst(a) => burst::run(a).await,
        LabCommand::Churn(a) => churn::run(a).await,
    }
}

/// What `greet-server` prints (one JSON line) when it gets SIGTERM or SIGINT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounters {
    /// Always "counters".
    pub phase: String,
    /// Connections accepted.
    pub accepted: u64,
    /// Greetings sent.
    pub greeted: u64,
    /// Connections the peer closed (EOF) after the greeting.
    pub peer_closed: u64,
    /// Accept, write or read errors.
    pub errors: u64,
    /// Connections still open.
    pub open: u64,
}

/// One JSON line of `burst` output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurstReport {
    /// "settled" once every connect has succeeded or failed, "update" when greetings or closes
    /// arrive, "final" when the hold ends or on SIGTERM/SIGINT.
    pub phase: String,
    /// Connects attempted.
    pub count: u64,
    /// Connects that completed (the client side is ESTABLISHED).
    pub established: u64,
    /// Connects that failed, including those that timed out.
    pub failed: u64,
    /// Of `failed`, those that did not complete within --connect-timeout.
    pub timed_out: u64,
    /// Established connections that received at least one byte (the greeting).
    pub greeted: u64,
    /// Established connections that the server closed or reset.
    pub closed: u64,
}

/// The one JSON line `churn` prints on stdout, at the end (progress goes to stderr).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChurnReport {
    /// "final" (stdout); "progress" in the once-a-second lines on stderr.
    pub phase: String,
    /// Connections started.
    pub opened: u64,
    /// Connections that got the greeting, lived and closed normally.
    pub completed: u64,
    /// Connections that failed somewhere (sum of the three kinds below).
    pub errors: u64,
    /// Of `errors`: connect failed or timed out.
    pub connect_errors: u64,
    /// Of `errors`: no greeting line within --greet-timeout.
    pub greet_errors: u64,
    /// Of `errors`: the close did not go normally.
    pub close_errors: u64,
    /// Connections still under way.
    pub in_flight: u64,
    /// Milliseconds since the start.
    pub elapsed_ms: u64,
}

/// Prints one JSON line on stdout (line-buffered, so readers see it at once).
fn emit<T: Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("cannot serialise report: {e}"),
    }
}

/// Resolves on SIGTERM or SIGINT.
struct Shutdown {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn new() -> Result<Self, LabError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Shutdown {
            term: signal(SignalKind::terminate()).map_err(|e| LabError::io("SIGTERM handler", e))?,
            int: signal(SignalKind::interrupt()).map_err(|e| LabError::io("SIGINT handler", e))?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// A small, fast, non-cryptographic generator (splitmix64) for connection lifetimes.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, max]`, to the nanosecond.
    pub(crate) fn duration_up_to(&mut self, max: std::time::Duration) -> std::time::Duration {
        let max_ns = max.as_nanos().min(u128::from(u64::MAX - 1)) as u64;
        std::time::Duration::from_nanos(self.next_u64() % (max_ns + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: LabCommand,
    }

    #[test]
    fn parses_greet_server() {
        let cli = Cli::try_parse_from([
            "x",
            "greet-server",
            "--listen",
            "[::]:3306",
            "--backlog",
            "4",
            "--accept-delay",
            "4s",
        ])
        .unwrap();
        let LabCommand::GreetServer(a) = cli.cmd else {
            panic!("wrong subcommand")
        };
        assert_eq!(a.listen, "[::]:3306".parse().unwrap());
        assert_eq!(a.backlog, 4);
        assert_eq!(a.accept_delay, Duration::from_secs(4));
        assert_eq!(a.greet_delay, Duration::ZERO);
    }

    #[test]
    fn parses_burst_and_churn() {
        let cli = Cli::try_parse_from([
            "x",
            "burst",
            "--target",
            "198.18.0.1:3306",
            "--count",
            "200",
            "--hold",
            "2m",
        ])
        .unwrap();
        let LabCommand::Burst(a) = cli.cmd else {
            panic!("wrong subcommand")
        };
        assert_eq!((a.count, a.hold), (200, Some(Duration::from_secs(120))));

        let cli = Cli::try_parse_from([
            "x",
            "churn",
            "--target",
            "198.18.0.1:3306",
            "--rate",
            "300/s",
            "--max-life",
            "500ms",
        ])
        .unwrap();
        let LabCommand::Churn(a) = cli.cmd else {
            panic!("wrong subcommand")
        };
        assert_eq!(a.rate, 300.0);
        assert_eq!(a.max_life, Duration::from_millis(500));
        assert_eq!(a.duration, None);
        assert!(Cli::try_parse_from([
            "x",
            "churn",
            "--target",
            "1.2.3.4:1",
            "--rate",
            "0/s",
            "--max-life",
            "1s"
        ])
        .is_err());
    }

    #[test]
    fn splitmix_stays_in_range() {
        let mut r = SplitMix(42);
        let max = Duration::from_millis(3);
        let mut seen_nonzero = false;
        for _ in 0..1000 {
            let d = r.duration_up_to(max);
            assert!(d <= max);
            seen_nonzero |= d > Duration::ZERO;
        }
        assert!(seen_nonzero);
        assert_eq!(r.duration_up_to(Duration::ZERO), Duration::ZERO);
    }
}
