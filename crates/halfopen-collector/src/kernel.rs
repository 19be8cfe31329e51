//! The kernel worker: one thread that owns the sock_diag scanner, the owner
//! cache and the last table sent, so that the async side never blocks on the
//! kernel. It turns scans into reports (full or delta) and answers lookups
//! from a fresh scan taken after the request arrived.
use halfopen_core::{ListenerPorts, Process, SocketRecord, TcpState, Tuple};
use halfopen_sockets::owners::{Owners, ResolveStats};
use halfopen_sockets::{ScanError, Scanner, Source};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Absolute TCP counters and governing sysctls (empty if unreadable).
    pub counters: BTreeMap<String, u64>,
    pub sysctls: BTreeMap<String, String>,
    /// Client sockets on greeting ports that have received nothing for at
    /// least the configured time, with that time in ms.
    pub silent: Vec<(Tuple, u32)>,
}

#[derive(Debug, Clone)]
pub struct LookupHit {
    pub tuple: Tuple,
    pub record: Option<SocketRecord>,
    pub process: Option<Process>,
}

/// What the reconciler asked for beyond the table (its Config message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wants {
    pub greeting_ports: Vec<u16>,
    pub stall_after_ms: u32,
}

enum Job {
    Configure(Wants),
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

    /// Sets what every following report includes (greeting-port silence).
    pub fn configure(&self, wants: Wants) -> Result<(), KernelError> {
        self.tx.send(Job::Configure(wants)).map_err(|_| KernelError::Stopped)
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
    /// The table as last reported: what deltas are computed against, each
    /// record with the report it was last seen in.
    sent: HashMap<Tuple, Sent, TupleHash>,
    /// Number of the current report (wrapping), for `Sent::seen`.
    generation: u32,
    buf: Vec<SocketRecord>,
    listeners: Vec<halfopen_core::Listener>,
    /// Listening addresses of the last scan (which end of a socket is the server).
    ports: ListenerPorts,
    wants: Wants,
    greeting_buf: Vec<SocketRecord>,
    /// pid -> libwrap mapped; refreshed every LIBWRAP_REFRESH reports.
    libwrap: HashMap<u32, bool>,
    reports: u64,
    /// Last count of each recurring problem, to log changes, not every interval.
    last_problem: HashMap<&'static str, String>,
}

const LIBWRAP_REFRESH: u64 = 60;

impl Worker {
    fn new(scanner: Scanner) -> Self {
        Worker {
            scanner,
            owners: Owners::new(),
            sent: HashMap::default(),
            generation: 0,
            buf: Vec::new(),
            listeners: Vec::new(),
            ports: ListenerPorts::default(),
            wants: Wants::default(),
            greeting_buf: Vec::new(),
            libwrap: HashMap::new(),
            reports: 0,
            last_problem: HashMap::new(),
        }
    }

    /// Logs a recurring problem when it first appears or changes, not every interval.
    fn problem(&mut self, what: &'static str, detail: String) {
        if self.last_problem.get(what) != Some(&detail) {
            warn!("{what}: {detail}");
            self.last_problem.insert(what, detail);
        }
    }

    /// What went wrong reading /proc for owners, logged when it is new.
    fn owner_problems(&mut self, stats: &ResolveStats) {
        if stats.permission_errors > 0 {
            self.problem(
                "permission denied reading /proc",
                format!(
                    "{} entries; those owners stay unknown (run the collector as root or with CAP_SYS_PTRACE)",
                    stats.permission_errors
                ),
            );
        }
        if let Some(e) = &stats.first_error {
            self.problem(
                "unexpected errors reading /proc",
                format!("{} errors; first: {e}", stats.other_errors),
            );
        }
    }

    fn run(mut self, rx: std_mpsc::Receiver<Job>) {
        for job in rx {
            match job {
                Job::Configure(w) => self.wants = w,
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
        self.ports = ListenerPorts::new(self.listeners.iter().map(|l| l.addr));
        self.buf.clear();
        self.scanner.scan(TcpState::MATCH_MASK, false, &mut self.buf)?;
        for r in &mut self.buf {
            r.side = self.ports.side_of(r.tuple.local());
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
            self.owner_problems(&stats);
            for l in &mut self.listeners {
                l.process = procs.get(&l.inode).cloned();
            }
        }
        self.reports += 1;
        if self.reports.is_multiple_of(LIBWRAP_REFRESH) {
            self.libwrap.clear();
        }
        let mut libwrap_error = None;
        for l in &mut self.listeners {
            if let Some(pid) = l.process.as_ref().map(|p| p.pid) {
                let known = self.libwrap.get(&pid).copied();
                l.libwrap = match known {
                    Some(v) => v,
                    None => {
                        let v = crate::hostinfo::has_libwrap(pid).unwrap_or_else(|e| {
                            // unknown, and said so below: the explanation just lacks the libwrap hint
                            libwrap_error.get_or_insert(e.to_string());
                            false
                        });
                        self.libwrap.insert(pid, v);
                        v
                    }
                };
            }
        }
        if let Some(e) = libwrap_error {
            self.problem("checking a listener for libwrap", e);
        }
        out.listeners = self.listeners.clone();
        match crate::hostinfo::counters() {
            Ok(c) => out.counters = c,
            Err(e) => self.problem("TCP counters unavailable", e.to_string()),
        }
        match crate::hostinfo::sysctls() {
            Ok(s) => out.sysctls = s,
            Err(e) => self.problem("sysctls unavailable", e.to_string()),
        }
        // Without the greeting-port scan the table is still worth sending:
        // stalled greetings are then not detected until it works again.
        out.silent = match self.silent_sockets() {
            Ok(v) => v,
            Err(e) => {
                self.problem("greeting-port scan failed", e.to_string());
                Vec::new()
            }
        };
        // The delta, in place: one hash lookup per socket, then one pass
        // over the table for the removed ones (no second map per interval),
        // and the table keeps only what `same` compares (not whole records).
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let mut changed: Vec<u32> = Vec::new(); // tuples, by their entry's latest index in buf
        self.sent.reserve(self.buf.len().saturating_sub(self.sent.len()));
        for (i, r) in self.buf.iter().enumerate() {
            let i = i as u32;
            let now = Sent::of(r, i, generation);
            match self.sent.entry(r.tuple) {
                Entry::Occupied(mut e) => {
                    let s = e.get_mut();
                    // Two records for one tuple can only come from a dump
                    // racing a state change; the later one wins.
                    let changed_now = full || !s.same(&now) || s.changed == generation;
                    if changed_now && s.changed != generation {
                        changed.push(i);
                    }
                    *s = Sent {
                        changed: if changed_now { generation } else { s.changed },
                        ..now
                    };
                }
                Entry::Vacant(e) => {
                    e.insert(Sent {
                        changed: generation,
                        ..now
                    });
                    changed.push(i);
                }
            }
        }
        let mut removed = Vec::new();
        self.sent.retain(|t, s| {
            let keep = s.seen == generation;
            if !keep {
                removed.push(*t);
            }
            keep
        });
        // each changed tuple once, as its latest record in this scan
        out.upserted = changed
            .iter()
            .map(|&i| {
                let t = self.buf[i as usize].tuple;
                self.sent.get(&t).map_or(i, |s| s.idx)
            })
            .map(|i| self.buf[i as usize])
            .collect();
        if !full {
            out.removed = removed;
        }
        Ok(out)
    }

    /// Client sockets on greeting ports that received nothing for at least
    /// `stall_after_ms`: a second dump, filtered to those ports in the kernel,
    /// with tcp_info (asked only there: it costs 20-30% on a full dump).
    fn silent_sockets(&mut self) -> Result<Vec<(Tuple, u32)>, ScanError> {
        if self.wants.greeting_ports.is_empty() {
            return Ok(Vec::new());
        }
        if self.scanner.source() == Source::ProcNet {
            // /proc/net/tcp has no tcp_info: nothing could be found
            self.problem(
                "stalled greetings cannot be detected",
                "the /proc/net/tcp fallback has no tcp_info (bytes received, last receive)".into(),
            );
            return Ok(Vec::new());
        }
        // The scan just taken says whether any client socket talks to a
        // greeting port; without one the second dump would find nothing
        // (a connection made since then is seen next interval).
        let greeting = halfopen_sockets::filter::PortSet::new(&self.wants.greeting_ports);
        let candidates = self.buf.iter().any(|r| {
            r.state == TcpState::Established
                && r.side == halfopen_core::Side::Client
                && greeting.contains(r.tuple.remote_port())
        });
        if !candidates {
            return Ok(Vec::new());
        }
        self.greeting_buf.clear();
        let mask = TcpState::Established.mask_bit();
        // Remote port only: the server ends on a greeting port (a DB host's
        // every connection) are not client sockets and need no tcp_info.
        let stats = self
            .scanner
            .scan_remote_ports(mask, true, &self.wants.greeting_ports, &mut self.greeting_buf)?;
        if stats.info_parse_failures > 0 {
            self.problem(
                "tcp_info unreadable on greeting-port sockets",
                "stalled greetings among them cannot be detected (kernel older than 4.1?)".into(),
            );
        }
        let ports = &self.ports;
        Ok(self
            .greeting_buf
            .iter()
            .filter(|r| ports.side_of(r.tuple.local()) == halfopen_core::Side::Client)
            .filter_map(|r| {
                let i = r.info?;
                (i.bytes_received == 0 && i.last_data_recv_ms >= self.wants.stall_after_ms)
                    .then_some((r.tuple, i.last_data_recv_ms))
            })
            .collect())
    }

    fn lookup(&mut self, tuples: &[Tuple], attribute: bool) -> Result<Vec<LookupHit>, ScanError> {
        // A fresh dump; the answer needs no listeners or sides (the next
        // report scans afresh anyway).
        self.buf.clear();
        self.scanner.scan(TcpState::MATCH_MASK, false, &mut self.buf)?;
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
                self.owner_problems(&stats);
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

/// What the last report said about a tuple (the fields `same` compares),
/// where its latest record is in the scan buffer, and in which reports it
/// was last seen and last changed.
#[derive(Debug, Clone, Copy)]
struct Sent {
    cookie: u64,
    idx: u32,
    seen: u32,
    changed: u32,
    state: TcpState,
    side: halfopen_core::Side,
    keepalive: bool,
}

impl Sent {
    fn of(r: &SocketRecord, idx: u32, generation: u32) -> Sent {
        Sent {
            cookie: r.cookie,
            idx,
            seen: generation,
            changed: 0,
            state: r.state,
            side: r.side,
            keepalive: r.keepalive,
        }
    }
    /// Whether two records of the same tuple are the same as far as the
    /// reconciler cares (tcp_info is not sent in routine reports).
    fn same(&self, o: &Sent) -> bool {
        self.cookie == o.cookie && self.state == o.state && self.side == o.side && self.keepalive == o.keepalive
    }
}

/// FxHash (rustc-hash): tuples come from the kernel, not from an adversary,
/// and SipHash made hashing most of the delta's cost (BENCHMARKS.md).
type TupleHash = rustc_hash::FxBuildHasher;

/// Interface addresses, for the Hello and for change detection.
pub fn addresses() -> Result<Vec<IpAddr>, ScanError> {
    halfopen_sockets::ifaddrs::local_addresses()
}
