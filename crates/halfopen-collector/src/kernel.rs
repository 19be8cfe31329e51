//! The kernel worker: one thread that owns the sock_diag scanner, the owner
//! cache and the last table sent, so that the async side never blocks on the
//! kernel. It turns scans into reports (full or delta) and answers lookups
//! from a fresh scan taken after the request arrived.
use halfopen_core::{ListenerPorts, Process, SocketRecord, TcpState, Tuple};
use halfopen_sockets::owners::Owners;
use halfopen_sockets::{ScanError, Scanner, Source};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::warn;

/// What the kernel worker produced for one report.
#[derive(Debug, Default)]
pub struct ReportData {
    pub full: bool,
    pub upserted: Vec<SocketRecord>,
    pub removed: Vec<Tuple>,
    pub listeners: Vec<halfopen_core::Listener>,
    pub sockets: u64,
    pub scan_time: Duration,
    pub owners_vanished: u64,
    pub permission_errors: u64,
}

#[derive(Debug, Clone)]
pub struct LookupHit {
    pub tuple: Tuple,
    pub record: Option<SocketRecord>,
    pub process: Option<Process>,
}

enum Job {
    Report {
        full: bool,
        reply: oneshot::Sender<Result<ReportData, ScanError>>,
    },
    Lookup {
        tuples: Vec<Tuple>,
        attribute: bool,
        reply: oneshot::Sender<Result<Vec<LookupHit>, ScanError>>,
    },
}

/// Handle to the kernel worker thread. Dropping it stops the thread.
pub struct Kernel {
    tx: std_mpsc::Sender<Job>,
    source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("the kernel worker thread has stopped")]
    Stopped,
    #[error("cannot start the kernel worker thread: {0}")]
    Spawn(std::io::Error),
}

impl Kernel {
    /// Opens the scanner (netlink, or /proc/net/tcp when netlink is refused,
    /// or when `force_proc`) and starts the worker.
    pub fn start(force_proc: bool) -> Result<Kernel, KernelError> {
        let scanner = if force_proc {
            Scanner::procnet()
        } else {
            Scanner::open()?
        };
        let source = scanner.source();
        let (tx, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("halfopen-kernel".into())
            .spawn(move || Worker::new(scanner).run(rx))
            .map_err(KernelError::Spawn)?;
        Ok(Kernel { tx, source })
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub async fn report(&self, full: bool) -> Result<ReportData, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Report { full, reply })
            .map_err(|_| KernelError::Stopped)?;
        Ok(rx.await.map_err(|_| KernelError::Stopped)??)
    }

    pub async fn lookup(&self, tuples: Vec<Tuple>, attribute: bool) -> Result<Vec<LookupHit>, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Lookup {
                tuples,
                attribute,
                reply,
            })
            .map_err(|_| KernelError::Stopped)?;
        Ok(rx.await.map_err(|_| KernelError::Stopped)??)
    }
}

struct Worker {
    scanner: Scanner,
    owners: Owners,
    /// The table as last reported: what deltas are computed against.
    sent: HashMap<Tuple, SocketRecord>,
    buf: Vec<SocketRecord>,
    listeners: Vec<halfopen_core::Listener>,
}

impl Worker {
    fn new(scanner: Scanner) -> Self {
        Worker {
            scanner,
            owners: Owners::new(),
            sent: HashMap::new(),
            buf: Vec::new(),
            listeners: Vec::new(),
        }
    }

    fn run(mut self, rx: std_mpsc::Receiver<Job>) {
        for job in rx {
            match job {
                Job::Report { full, reply } => {
                    let _ = reply.send(self.report(full));
                }
                Job::Lookup {
                    tuples,
                    attribute,
                    reply,
                } => {
                    let _ = reply.send(self.lookup(&tuples, attribute));
                }
            }
        }
    }

    /// Listeners, then every socket, sides decided from the listeners.
    fn scan(&mut self) -> Result<Duration, ScanError> {
        let t0 = Instant::now();
        self.listeners.clear();
        self.scanner.listeners(&mut self.listeners)?;
        let ports = ListenerPorts::new(self.listeners.iter().map(|l| l.addr));
        self.buf.clear();
        self.scanner.scan(TcpState::MATCH_MASK, false, &mut self.buf)?;
        for r in &mut self.buf {
            r.side = ports.side_of(r.tuple.local());
        }
        Ok(t0.elapsed())
    }

    fn report(&mut self, full: bool) -> Result<ReportData, ScanError> {
        let scan_time = self.scan()?;
        let mut out = ReportData {
            full,
            sockets: self.buf.len() as u64,
            scan_time,
            ..Default::default()
        };
        // Listener owners: few sockets, resolved through the owner cache.
        let inodes: Vec<u64> = self.listeners.iter().map(|l| l.inode).filter(|&i| i != 0).collect();
        if !inodes.is_empty() {
            let (procs, stats) = self.owners.resolve(&inodes);
            out.owners_vanished = stats.vanished;
            out.permission_errors = stats.permission_errors;
            for l in &mut self.listeners {
                l.process = procs.get(&l.inode).cloned();
            }
        }
        out.listeners = self.listeners.clone();
        let mut next: HashMap<Tuple, SocketRecord> = HashMap::with_capacity(self.buf.len());
        for r in &self.buf {
            // Two records for one tuple can only come from a dump racing a
            // state change; the later one wins.
            next.insert(r.tuple, *r);
        }
        if full {
            out.upserted = next.values().copied().collect();
        } else {
            for (t, r) in &next {
                match self.sent.get(t) {
                    Some(old) if same(old, r) => {}
                    _ => out.upserted.push(*r),
                }
            }
            out.removed = self.sent.keys().filter(|t| !next.contains_key(t)).copied().collect();
        }
        self.sent = next;
        Ok(out)
    }

    fn lookup(&mut self, tuples: &[Tuple], attribute: bool) -> Result<Vec<LookupHit>, ScanError> {
        self.scan()?;
        let wanted: HashSet<Tuple> = tuples.iter().copied().collect();
        let mut found: HashMap<Tuple, SocketRecord> = HashMap::new();
        for r in &self.buf {
            if wanted.contains(&r.tuple) {
                found.insert(r.tuple, *r);
            }
        }
        let mut procs = HashMap::new();
        if attribute {
            let inodes: Vec<u64> = found.values().map(|r| r.inode).filter(|&i| i != 0).collect();
            if !inodes.is_empty() {
                let (p, stats) = self.owners.resolve(&inodes);
                if stats.permission_errors > 0 {
                    warn!(
                        errors = stats.permission_errors,
                        "permission denied reading /proc: some owners unknown (run the collector as root)"
                    );
                }
                procs = p;
            }
        }
        Ok(tuples
            .iter()
            .map(|t| {
                let record = found.get(t).copied();
                let process = record.and_then(|r| procs.get(&r.inode).cloned());
                LookupHit {
                    tuple: *t,
                    record,
                    process,
                }
            })
            .collect())
    }
}

/// Whether two records of the same tuple are the same as far as the
/// reconciler cares (tcp_info is not sent in routine reports).
fn same(a: &SocketRecord, b: &SocketRecord) -> bool {
    a.cookie == b.cookie && a.state == b.state && a.side == b.side && a.keepalive == b.keepalive
}

/// Interface addresses, for the Hello and for change detection.
pub fn addresses() -> Result<Vec<IpAddr>, ScanError> {
    let mut a = halfopen_sockets::ifaddrs::local_addresses()?;
    a.sort();
    a.dedup();
    Ok(a)
}
