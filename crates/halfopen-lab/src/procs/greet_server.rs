//! `greet-server`: a server that speaks first, like MySQL. Listens with an exact backlog, waits
//! `--accept-delay` before its first accept() (the accept queue fills meanwhile), then accepts
//! everything; each connection waits `--greet-delay` (a TCP-wrappers host doing slow reverse DNS),
//! gets the greeting line, and is kept open until the client closes it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{emit, sock, ServerCounters, Shutdown};
use crate::duration::parse_duration;
use crate::LabError;

/// Arguments of `greet-server`.
#[derive(clap::Args, Debug, Clone)]
pub struct GreetServerArgs {
    /// Address to listen on, e.g. 0.0.0.0:3306, or [::]:3306 for dual-stack (IPV6_V6ONLY off).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The backlog passed to listen(2), exactly (at most 4096).
    #[arg(long)]
    pub backlog: i32,
    /// Sleep this long before the first accept() (e.g. 4s).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub accept_delay: Duration,
    /// Wait this long after accepting a connection before greeting it.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub greet_delay: Duration,
    /// The greeting line (a newline is added).
    #[arg(long, default_value = "5.5.5-10.11.6-MariaDB halfopen-lab greeting")]
    pub greeting: String,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    greeted: AtomicU64,
    peer_closed: AtomicU64,
    errors: AtomicU64,
    open: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ServerCounters {
        ServerCounters {
            phase: "counters".into(),
            accepted: self.accepted.load(Relaxed),
            greeted: self.greeted.load(Relaxed),
            peer_closed: self.peer_closed.load(Relaxed),
            errors: self.errors.load(Relaxed),
            open: self.open.load(Relaxed),
        }
    }
}

pub(super) async fn run(args: GreetServerArgs) -> Result<(), LabError> {
    let mut shutdown = Shutdown::new()?;
    sock::raise_nofile(u64::MAX)?;
    let std_listener = sock::listener(args.listen, args.backlog)?;
    let listener =
        tokio::net::TcpListener::from_std(std_listener).map_err(|e| LabError::io("registering the listener", e))?;
    let local = listener.local_addr().map_err(|e| LabError::io("listener address", e))?;
    println!("listening {local}");
    eprintln!(
        "greet-server: listening on {local} backlog {} accept-delay {:?} greet-delay {:?}",
        args.backlog, args.accept_delay, args.greet_delay
    );

    let counters = Arc::new(Counters::default());
    let greeting: Arc<[u8]> = format!("{}\n", args.greeting).into_bytes().into();
    let accept_loop = {
        let counters = counters.clone();
        async move {
            tokio::time::sleep(args.accept_delay).await;
            println!("accepting");
            loop {
                match listener.accept().await {
                    Ok((stream, _peer)) => {
                        counters.accepted.fetch_add(1, Relaxed);
                        counters.open.fetch_add(1, Relaxed);
                        tokio::spawn(serve(stream, args.greet_delay, greeting.clone(), counters.clone()));
                    }
                    Err(e) => {
                        counters.errors.fetch_add(1, Relaxed);
                        eprintln!("greet-server: accept: {e}");
                        // EMFILE and friends: do not spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = accept_loop => {}
        () = shutdown.recv() => {}
    }
    let snapshot = counters.snapshot();
    eprintln!("greet-server: stopping: {snapshot:?}");
    emit(&snapshot);
    Ok(())
}

async fn serve(mut stream: TcpStream, greet_delay: Duration, greeting: Arc<[u8]>, counters: Arc<Counters>) {
    tokio::time::sleep(greet_delay).await;
    if stream.write_all(&greeting).await.is_ok() {
        counters.greeted.fetch_add(1, Relaxed);
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    counters.peer_closed.fetch_add(1, Relaxed);
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    counters.errors.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
    } else {
        counters.errors.fetch_add(1, Relaxed);
    }
    counters.open.fetch_sub(1, Relaxed);
}
