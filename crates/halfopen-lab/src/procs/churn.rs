//! `churn`: healthy, short-lived connections at a steady rate. Each one connects, reads the
//! greeting line, lives a random time in `[0, --max-life]`, then closes normally (FIN, then waits
//! for the server's FIN). The background traffic a half-open detector must not flag.
//!
//! The client closes first, so its side keeps TIME_WAIT entries for 60 s. With the defaults
//! (`tcp_tw_reuse=2`: loopback only; 28,232 ephemeral ports) every connect(2) must search past
//! them: measured here, 1000/s for 5 s is fine, but once ~15,000 TIME_WAIT entries pile up
//! connects become slow (seconds of system time) and then fail. Above ~400/s sustained, set
//! `net.ipv4.tcp_tw_reuse=1` in the client namespace (4000/s then runs cleanly); `churn` warns
//! on stderr when the rate asks for it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use super::{emit, sock, ChurnReport, Shutdown, SplitMix};
use crate::duration::{parse_duration, parse_rate};
use crate::LabError;

/// Arguments of `churn`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChurnArgs {
    /// Where to connect, e.g. 198.18.0.1:3306.
    #[arg(long)]
    pub target: SocketAddr,
    /// New connections per second, e.g. 200/s (also N/m, or a bare N per second). Above ~400/s
    /// sustained, set net.ipv4.tcp_tw_reuse=1 in the client namespace (see the module docs).
    #[arg(long, value_parser = parse_rate)]
    pub rate: f64,
    /// Each connection lives a uniformly random time in [0, max-life] after its greeting.
    #[arg(long, value_parser = parse_duration)]
    pub max_life: Duration,
    /// Stop opening connections after this long, let the open ones finish, print the summary
    /// and exit (default: until SIGTERM/SIGINT).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Bound on each connect.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,
    /// Bound on waiting for the greeting line.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub greet_timeout: Duration,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    completed: AtomicU64,
    connect_errors: AtomicU64,
    greet_errors: AtomicU64,
    close_errors: AtomicU64,
    in_flight: AtomicU64,
}

impl Counters {
    fn report(&self, phase: &str, started: Instant) -> ChurnReport {
        let connect_errors = self.connect_errors.load(Relaxed);
        let greet_errors = self.greet_errors.load(Relaxed);
        let close_errors = self.close_errors.load(Relaxed);
        ChurnReport {
            phase: phase.into(),
            opened: self.opened.load(Relaxed),
            completed: self.completed.load(Relaxed),
            errors: connect_errors + greet_errors + close_errors,
            connect_errors,
            greet_errors,
            close_errors,
            in_flight: self.in_flight.load(Relaxed),
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// Bound on the server's FIN after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many error messages go to stderr.
const ERROR_SAMPLES: u64 = 10;

pub(super) async fn run(args: ChurnArgs) -> Result<(), LabError> {
    let mut shutdown = Shutdown::new()?;
    sock::raise_nofile(u64::MAX)?;
    if let Some(warning) = time_wait_warning(args.rate) {
        eprintln!("churn: warning: {warning}");
    }
    let counters = Arc::new(Counters::default());
    let mut rng = SplitMix::from_entropy();
    let started = Instant::now();
    let end = args.duration.map(|d| started + d);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut next_progress = started + Duration::from_secs(1);
    let mut n: u32 = 0;
    let mut interrupted = false;

    loop {
        let due = started + period * n;
        if end.is_some_and(|e| due >= e) {
            break;
        }
        if due >= next_progress {
            // Progress goes to stderr: stdout carries only the final summary.
            eprintln!("churn: {:?}", counters.report("progress", started));
            next_progress += Duration::from_secs(1);
        }
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = shutdown.recv() => { interrupted = true; break; }
        }
        n += 1;
        counters.opened.fetch_add(1, Relaxed);
        counters.in_flight.fetch_add(1, Relaxed);
        let life = rng.duration_up_to(args.max_life);
        tokio::spawn(one(args.clone(), life, counters.clone()));
    }

    if !interrupted {
        // Let the open connections finish: each is bounded by the sum of its own timeouts.
        let drain = args.connect_timeout + args.greet_timeout + args.max_life + CLOSE_TIMEOUT + Duration::from_secs(1);
        let deadline = Instant::now() + drain;
        while counters.in_flight.load(Relaxed) > 0 && Instant::now() < deadline {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
                () = shutdown.recv() => break,
            }
        }
    }
    emit(&counters.report("final", started));
    Ok(())
}

/// Connections per second above which TIME_WAIT entries (60 s each) would fill half the
/// ephemeral port range, when `tcp_tw_reuse` is not 1 in this namespace.
fn time_wait_warning(rate: f64) -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let reuse = read("/proc/sys/net/ipv4/tcp_tw_reuse")?;
    if reuse.trim() == "1" {
        return None;
    }
    let range = read("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = range.split_whitespace().filter_map(|v| v.parse::<f64>().ok());
    let (lo, hi) = (it.next()?, it.next()?);
    let ports = hi - lo + 1.0;
    (rate * 60.0 > ports / 2.0).then(|| {
        format!(
            "{rate}/s leaves up to {:.0} TIME_WAIT entries for {ports} ephemeral ports and tcp_tw_reuse is {}: \
             connects will slow down and fail; set net.ipv4.tcp_tw_reuse=1 in this namespace",
            rate * 60.0,
            reuse.trim()
        )
    })
}

enum Failure {
    Connect(String),
    Greet(String),
    Close(String),
}

async fn one(args: ChurnArgs, life: Duration, counters: Arc<Counters>) {
    let result = lifecycle(&args, life).await;
    let (counter, what, msg) = match result {
        Ok(()) => {
            counters.completed.fetch_add(1, Relaxed);
            counters.in_flight.fetch_sub(1, Relaxed);
            return;
        }
        Err(Failure::Connect(m)) => (&counters.connect_errors, "connect", m),
        Err(Failure::Greet(m)) => (&counters.greet_errors, "greeting", m),
        Err(Failure::Close(m)) => (&counters.close_errors, "close", m),
    };
    let before = counters.connect_errors.load(Relaxed)
        + counters.greet_errors.load(Relaxed)
        + counters.close_errors.load(Relaxed);
    counter.fetch_add(1, Relaxed);
    if before < ERROR_SAMPLES {
        eprintln!("churn: {what} {}: {msg}", args.target);
    }
    counters.in_flight.fetch_sub(1, Relaxed);
}

async fn lifecycle(args: &ChurnArgs, life: Duration) -> Result<(), Failure> {
    let mut stream = match timeout(args.connect_timeout, TcpStream::connect(args.target)).await {
        Err(_) => return Err(Failure::Connect("timed out".into())),
        Ok(Err(e)) => return Err(Failure::Connect(e.to_string())),
        Ok(Ok(s)) => s,
    };
    // The whole greeting line, so that nothing is left unread when we close (unread data would
    // turn our FIN into a RST).
    let mut buf = [0u8; 1024];
    let greet = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Err("closed before the greeting".to_string()),
                Ok(n) if buf[..n].contains(&b'\n') => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match timeout(args.greet_timeout, greet).await {
        Err(_) => return Err(Failure::Greet("timed out".into())),
        Ok(Err(m)) => return Err(Failure::Greet(m)),
        Ok(Ok(())) => {}
    }
    tokio::time::sleep(life).await;
    stream.shutdown().await.map_err(|e| Failure::Close(e.to_string()))?;
    let drain = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match timeout(CLOSE_TIMEOUT, drain).await {
        Err(_) => Err(Failure::Close("no FIN from the server".into())),
        Ok(Err(m)) => Err(Failure::Close(m)),
        Ok(Ok(())) => Ok(()),
    }
}
