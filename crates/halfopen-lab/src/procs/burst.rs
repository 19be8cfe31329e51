//! `burst`: N non-blocking connects issued back to back (all sockets are made first, then every
//! connect(2) is fired in one tight loop), a bounded wait until each is established or failed,
//! then every established connection is held open reading its greeting until `--hold` elapses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{emit, sock, BurstReport, Shutdown};
use crate::duration::parse_duration;
use crate::LabError;

/// Arguments of `burst`.
#[derive(clap::Args, Debug, Clone)]
pub struct BurstArgs {
    /// Where to connect, e.g. 198.18.0.1:3306.
    #[arg(long)]
    pub target: SocketAddr,
    /// How many connects to fire at once.
    #[arg(long)]
    pub count: usize,
    /// How long to hold the connections after they settle (default: until killed).
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// A connect not completed within this is counted as failed (and closed).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub connect_timeout: Duration,
    /// How often to print an "update" line when greetings or closes arrived.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub report_every: Duration,
}

#[derive(Default)]
struct Counters {
    settled: AtomicU64,
    established: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    greeted: AtomicU64,
    closed: AtomicU64,
}

impl Counters {
    fn report(&self, phase: &str, count: u64) -> BurstReport {
        BurstReport {
            phase: phase.into(),
            count,
            established: self.established.load(Relaxed),
            failed: self.failed.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            greeted: self.greeted.load(Relaxed),
            closed: self.closed.load(Relaxed),
        }
    }
}

pub(super) async fn run(args: BurstArgs) -> Result<(), LabError> {
    let mut shutdown = Shutdown::new()?;
    let count = args.count as u64;
    let limit = sock::raise_nofile(count + 64)?;
    if limit < count + 16 {
        return Err(LabError::invalid(
            "count",
            args.count.to_string(),
            format!("the open-files limit is {limit}: spread the connections over several processes"),
        ));
    }
    let counters = Arc::new(Counters::default());

    // Make every socket first, so that the connects themselves go out as close together as
    // possible.
    let mut fds = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        fds.push(sock::tcp_socket(&args.target)?);
    }
    let started = Instant::now();
    let mut pending = Vec::with_capacity(args.count);
    for fd in fds {
        match sock::start_connect_on(fd, args.target) {
            Ok(fd) => pending.push(fd),
            Err(errno) => {
                counters.failed.fetch_add(1, Relaxed);
                counters.settled.fetch_add(1, Relaxed);
                eprintln!("burst: connect {}: {errno}", args.target);
            }
        }
    }
    let fired = started.elapsed();
    for fd in pending {
        let stream = TcpStream::from_std(std::net::TcpStream::from(fd))
            .map_err(|e| LabError::io("registering a connecting socket", e))?;
        tokio::spawn(hold(stream, args.connect_timeout, counters.clone()));
    }

    // Bounded: every task settles within connect_timeout.
    let settle_deadline = Instant::now() + args.connect_timeout + Duration::from_secs(2);
    while counters.settled.load(Relaxed) < count {
        if Instant::now() >= settle_deadline {
            eprintln!("burst: not every connect settled in time");
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
            () = shutdown.recv() => {
                emit(&counters.report("final", count));
                return Ok(());
            }
        }
    }
    eprintln!(
        "burst: {} connects to {} fired in {fired:?}, settled after {:?}",
        args.count,
        args.target,
        started.elapsed()
    );
    let mut last = counters.report("settled", count);
    emit(&last);

    let hold_until = args.hold.map(|h| tokio::time::Instant::now() + h);
    loop {
        let tick = tokio::time::sleep(args.report_every.max(Duration::from_millis(10)));
        let end = async {
            match hold_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tick => {
                let now = counters.report("update", count);
                if (now.greeted, now.closed) != (last.greeted, last.closed) {
                    emit(&now);
                    last = now;
                }
            }
            () = end => break,
            () = shutdown.recv() => break,
        }
    }
    emit(&counters.report("final", count));
    Ok(())
}

/// Waits for the connect to finish, then reads (and discards) until the server closes.
async fn hold(stream: TcpStream, connect_timeout: Duration, counters: Arc<Counters>) {
    let connected = match tokio::time::timeout(connect_timeout, stream.writable()).await {
        Err(_) => {
            counters.timed_out.fetch_add(1, Relaxed);
            false
        }
        Ok(Err(_)) => false,
        Ok(Ok(())) => matches!(stream.take_error(), Ok(None)) && stream.peer_addr().is_ok(),
    };
    if connected {
        counters.established.fetch_add(1, Relaxed);
    } else {
        counters.failed.fetch_add(1, Relaxed);
    }
    counters.settled.fetch_add(1, Relaxed);
    if !connected {
        return;
    }
    let mut stream = stream;
    let mut buf = [0u8; 1024];
    let mut greeted = false;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                counters.closed.fetch_add(1, Relaxed);
                return;
            }
            Ok(_) if !greeted => {
                greeted = true;
                counters.greeted.fetch_add(1, Relaxed);
            }
            Ok(_) => {}
        }
    }
}
