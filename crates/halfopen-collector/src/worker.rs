//! The worker: one thread that owns a [`TableSource`], the owner cache and
//! the last table sent ([`Differ`]), so that the async side never blocks on
//! the kernel. A report is these steps: listeners and the table, sides,
//! listener owners and libwrap, host counters and sysctls, silent
//! greeting-port clients, and the delta. A source that follows changes
//! (eBPF) gives the delta without a dump, except when it needs one. Lookups
//! are answered from a fresh kernel read taken after the request arrived.
//!
//! One worker per covered network namespace ([`Kernel::start_in`]: the
//! thread enters the namespace before it opens its source, so every netlink
//! socket, /proc/thread-self/net file and sysctl it reads is that
//! namespace's); the owner cache is shared by all of them ([`SharedOwners`]:
//! /proc is the machine's, and socket inodes are unique on it).
use crate::differ::{Delta, Differ};
use crate::metrics::CollectorMetrics;
use crate::nat::NatReader;
use crate::source::{Changes, TableSource};
use halfopen_core::{
    Listener, ListenerPorts, LookupAnswer, Report, ReportStats, Side, SilentSocket, SocketRecord, SourceKind, TcpState,
    Tuple, Wants,
};
use halfopen_sockets::netns::{spawn_in_with, NetnsError, NetnsHandle, NetnsThread};
use halfopen_sockets::owners::{Owners, ResolveStats};
use halfopen_sockets::ScanError;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// The owner cache, shared by the workers of every namespace a collector
/// covers (one /proc walk serves them all).
pub type SharedOwners = Arc<Mutex<Owners>>;

/// A new, empty [`SharedOwners`].
pub fn shared_owners() -> SharedOwners {
    Arc::new(Mutex::new(Owners::new()))
}

enum Job {
    Configure(Wants),
    Report {
        full: bool,
        reply: oneshot::Sender<Result<Report, ScanError>>,
    },
    Lookup {
        tuples: Vec<Tuple>,
        attribute: bool,
        reply: oneshot::Sender<Result<Vec<LookupAnswer>, ScanError>>,
    },
    Addresses {
        reply: oneshot::Sender<Result<Vec<IpAddr>, ScanError>>,
    },
}

/// Handle to the worker thread. Dropping it stops the thread.
pub struct Kernel {
    tx: std_mpsc::Sender<Job>,
    source: SourceKind,
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("the kernel worker thread has stopped")]
    Stopped,
    #[error("cannot start the kernel worker thread: {0}")]
    Spawn(std::io::Error),
    /// The worker thread could not enter its network namespace (refused:
    /// CAP_SYS_ADMIN; gone; ...).
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl Kernel {
    /// Starts the worker thread; `open` runs on it (so the source reads the
    /// network namespace of that thread) and its error is returned here.
    pub fn start<S: TableSource + 'static>(
        open: impl FnOnce() -> Result<S, ScanError> + Send + 'static,
    ) -> Result<Kernel, KernelError> {
        Kernel::start_shared(shared_owners(), String::new(), CollectorMetrics::default(), open)
    }

    /// [`Kernel::start`], counting scans and owner lookups into `metrics`.
    pub fn start_with<S: TableSource + 'static>(
        open: impl FnOnce() -> Result<S, ScanError> + Send + 'static,
        metrics: CollectorMetrics,
    ) -> Result<Kernel, KernelError> {
        Kernel::start_shared(shared_owners(), String::new(), metrics, open)
    }

    /// [`Kernel::start_with`] with an owner cache shared with other workers;
    /// `host` names the host in the worker's log lines ("" for none).
    pub fn start_shared<S: TableSource + 'static>(
        owners: SharedOwners,
        host: String,
        metrics: CollectorMetrics,
        open: impl FnOnce() -> Result<S, ScanError> + Send + 'static,
    ) -> Result<Kernel, KernelError> {
        let (tx, rx) = std_mpsc::channel();
        let (opened_tx, opened) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("halfopen-kernel".into())
            .spawn(move || match open() {
                Ok(source) => {
                    let _ = opened_tx.send(Ok(source.kind()));
                    Worker::new(Box::new(source), owners, host, metrics).run(rx)
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(KernelError::Spawn)?;
        let source = opened.recv().map_err(|_| KernelError::Stopped)??;
        Ok(Kernel { tx, source })
    }

    /// Starts the worker thread inside network namespace `ns`: the thread
    /// enters it (setns, checked: halfopen_sockets::netns::spawn_in) and only
    /// then runs `open`, so the source, the conntrack reader, the counters
    /// and sysctls are all that namespace's. Returns the handle and the
    /// thread, which ends once every [`Kernel`] handle is dropped (join it
    /// to know it is gone). Errors: entering refused or failed
    /// ([`KernelError::Netns`], naming CAP_SYS_ADMIN when refused), or the
    /// source could not be opened there.
    pub fn start_in<S: TableSource + 'static>(
        ns: &NetnsHandle,
        owners: SharedOwners,
        host: String,
        metrics: CollectorMetrics,
        open: impl FnOnce() -> Result<S, ScanError> + Send + 'static,
    ) -> Result<(Kernel, NetnsThread<()>), KernelError> {
        let (tx, rx) = std_mpsc::channel();
        let (opened_tx, opened) = std_mpsc::channel();
        // at most 15 bytes show in /proc/PID/task/TID/comm
        let name = format!("ho-ns-{}", ns.inode().ino);
        let thread = spawn_in_with(ns, std::thread::Builder::new().name(name), move || match open() {
            Ok(source) => {
                let _ = opened_tx.send(Ok(source.kind()));
                Worker::new(Box::new(source), owners, host, metrics).run(rx)
            }
            Err(e) => {
                let _ = opened_tx.send(Err(e));
            }
        })?;
        match opened.recv() {
            Ok(Ok(source)) => Ok((Kernel { tx, source }, thread)),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e.into())
            }
            Err(_) => {
                let _ = thread.join();
                Err(KernelError::Stopped)
            }
        }
    }

    pub fn source(&self) -> SourceKind {
        self.source
    }

    /// Sets what every following report includes (greeting-port silence).
    pub fn configure(&self, wants: Wants) -> Result<(), KernelError> {
        self.tx.send(Job::Configure(wants)).map_err(|_| KernelError::Stopped)
    }

    /// A scan turned into a report: the whole table when `full`, else the
    /// delta since the previous report. `seq` and chunking are the session's.
    pub async fn report(&self, full: bool) -> Result<Report, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Report { full, reply })
            .map_err(|_| KernelError::Stopped)?;
        Ok(rx.await.map_err(|_| KernelError::Stopped)??)
    }

    /// The addresses of the worker's network namespace (getifaddrs there).
    pub async fn addresses(&self) -> Result<Vec<IpAddr>, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Addresses { reply })
            .map_err(|_| KernelError::Stopped)?;
        Ok(rx.await.map_err(|_| KernelError::Stopped)??)
    }

    /// One answer per tuple, from a fresh read; owners resolved when `attribute`.
    pub async fn lookup(&self, tuples: Vec<Tuple>, attribute: bool) -> Result<Vec<LookupAnswer>, KernelError> {
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
    source: Box<dyn TableSource>,
    nat: NatReader,
    owners: SharedOwners,
    /// The host this worker reads, for log lines ("" when alone).
    host: String,
    /// "no connection tracking here" was said (once per worker).
    nat_absent_said: bool,
    differ: Differ,
    buf: Vec<SocketRecord>,
    listeners: Vec<Listener>,
    /// Listening addresses of the last scan (which end of a socket is the server).
    ports: ListenerPorts,
    wants: Wants,
    greeting_buf: Vec<SocketRecord>,
    /// pid -> libwrap mapped; refreshed every LIBWRAP_REFRESH reports.
    libwrap: HashMap<u32, bool>,
    reports: u64,
    /// Last count of each recurring problem, to log changes, not every interval.
    last_problem: HashMap<&'static str, String>,
    /// This report's table came from the source's changes, not a dump
    /// (`buf` holds only the changes then).
    following: bool,
    /// The listening addresses of the previous report (sides depend on them).
    listening: Vec<std::net::SocketAddr>,
    metrics: CollectorMetrics,
    /// Witnesses sent lately, carried again by full reports.
    resend: crate::witnesses::Resend,
}

const LIBWRAP_REFRESH: u64 = 60;

impl Worker {
    fn new(source: Box<dyn TableSource>, owners: SharedOwners, host: String, metrics: CollectorMetrics) -> Self {
        Worker {
            source,
            nat: NatReader::open(),
            owners,
            host,
            nat_absent_said: false,
            differ: Differ::default(),
            buf: Vec::new(),
            listeners: Vec::new(),
            ports: ListenerPorts::default(),
            wants: Wants::default(),
            greeting_buf: Vec::new(),
            libwrap: HashMap::new(),
            reports: 0,
            last_problem: HashMap::new(),
            following: false,
            listening: Vec::new(),
            metrics,
            resend: crate::witnesses::Resend::default(),
        }
    }

    /// Logs a recurring problem when it first appears or changes, not every interval.
    fn problem(&mut self, what: &'static str, detail: String) {
        if self.last_problem.get(what) != Some(&detail) {
            if self.host.is_empty() {
                warn!("{what}: {detail}");
            } else {
                warn!(host = %self.host, "{what}: {detail}");
            }
            self.last_problem.insert(what, detail);
        }
    }

    /// Owners of these inodes through the shared cache (a poisoned lock is
    /// taken over: the cache holds no invariant a panic could break).
    fn resolve(&self, inodes: &[u64]) -> (HashMap<u64, halfopen_core::Process>, ResolveStats) {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).resolve(inodes)
    }

    /// What went wrong reading /proc for owners, logged when it is new.
    /// Unreadable entries matter only when a socket's owner stayed unknown
    /// (`unresolved`): a process whose fds no one may read (pid 1 in some
    /// sandboxes) holds none of the sockets asked about.
    fn owner_problems(&mut self, stats: &ResolveStats, unresolved: usize) {
        self.metrics.owners(stats);
        if stats.permission_errors > 0 && unresolved > 0 {
            self.problem(
                "permission denied reading /proc",
                format!(
                    "owners of {unresolved} sockets unknown, {} /proc entries unreadable (the collector needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, or root; with both, a security module refused it)",
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
                    let r = self.report(full);
                    if r.is_err() {
                        self.metrics.scan_failed();
                    }
                    let _ = reply.send(r);
                }
                Job::Lookup {
                    tuples,
                    attribute,
                    reply,
                } => {
                    let r = self.lookup(&tuples, attribute);
                    if r.is_err() {
                        self.metrics.scan_failed();
                    }
                    let _ = reply.send(r);
                }
                Job::Addresses { reply } => {
                    let _ = reply.send(halfopen_sockets::local_addresses());
                }
            }
        }
    }

    /// Listeners, then every socket, sides decided from the listeners.
    fn scan(&mut self) -> Result<u64, ScanError> {
        let t0 = Instant::now();
        self.listeners.clear();
        self.source.listeners(&mut self.listeners)?;
        self.ports = ListenerPorts::new(self.listeners.iter().map(|l| l.addr));
        self.buf.clear();
        self.source.dump(&mut self.buf)?;
        for r in &mut self.buf {
            r.side = self.ports.side_of(r.tuple.local());
        }
        let took = t0.elapsed();
        self.metrics.scanned(took, &self.buf, self.listeners.len());
        Ok(took.as_micros() as u64)
    }

    /// A source that follows changes (eBPF): this report's listeners and
    /// the delta from the sockets that changed, without a dump. None when
    /// the source does not follow changes, needs a dump, the listening
    /// addresses changed (sides may have) or the report is full: then
    /// [`Worker::scan`] dumps.
    fn follow(&mut self, full: bool) -> Result<Option<(u64, Delta)>, ScanError> {
        self.following = false;
        if full || !self.source.follows() {
            return Ok(None);
        }
        let t0 = Instant::now();
        self.listeners.clear();
        self.source.listeners(&mut self.listeners)?;
        let mut listening: Vec<std::net::SocketAddr> = self.listeners.iter().map(|l| l.addr).collect();
        listening.sort_unstable();
        listening.dedup();
        self.buf.clear();
        let mut removed = Vec::new();
        match self.source.changes(&self.listeners, &mut self.buf, &mut removed) {
            Changes::Unfollowed => return Ok(None),
            Changes::Whole(why) => {
                if why.contains("lost") || why.contains("repeated") || why.contains("stopped") {
                    self.problem("the eBPF source took a dump", why);
                } else {
                    tracing::debug!("the eBPF source takes a dump: {why}");
                }
                return Ok(None);
            }
            Changes::Delta => {}
        }
        if listening != self.listening {
            self.listening = listening;
            return Ok(None);
        }
        for r in &mut self.buf {
            r.side = self.ports.side_of(r.tuple.local());
        }
        let delta = self.differ.apply(&self.buf, &removed);
        self.following = true;
        let took = t0.elapsed();
        // The socket gauges follow the table between dumps too.
        self.metrics.table(took, self.differ.counts(), self.listeners.len());
        Ok(Some((took.as_micros() as u64, delta)))
    }

    fn report(&mut self, full: bool) -> Result<Report, ScanError> {
        let (scan_us, followed) = match self.follow(full)? {
            Some((us, delta)) => (us, Some(delta)),
            None => {
                let us = self.scan()?;
                self.listening = self.listeners.iter().map(|l| l.addr).collect();
                self.listening.sort_unstable();
                self.listening.dedup();
                (us, None)
            }
        };
        let taken_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut stats = ReportStats {
            sockets: if self.following {
                self.differ.len() as u64
            } else {
                self.buf.len() as u64
            },
            scan_us,
            ..Default::default()
        };
        self.listener_owners(&mut stats);
        self.listener_libwrap();
        let mut r = Report {
            full,
            last_chunk: true,
            listeners: self.listeners.clone(),
            stats,
            taken_at_ms,
            ..Default::default()
        };
        let from_ns = halfopen_bpf::ClockAnchor::now().boot_ns;
        match crate::hostinfo::counters() {
            Ok(c) => r.counters = c,
            Err(e) => self.problem("TCP counters unavailable", e.to_string()),
        }
        if let Some(&kernel) = r.counters.get("Tcp.CurrEstab") {
            self.source.kernel_counted(crate::estab::Reading {
                kernel: kernel as i64,
                from_ns,
                to_ns: halfopen_bpf::ClockAnchor::now().boot_ns,
            });
        }
        match crate::hostinfo::sysctls() {
            Ok(s) => r.sysctls = s,
            Err(e) => self.problem("sysctls unavailable", e.to_string()),
        }
        // Without the greeting-port scan the table is still worth sending:
        // stalled greetings are then not detected until it works again.
        r.silent = match self.silent_sockets() {
            Ok(v) => v,
            Err(e) => {
                self.problem("greeting-port scan failed", e.to_string());
                Vec::new()
            }
        };
        let Delta { upserted, removed } = match followed {
            Some(d) => d,
            None => self.differ.diff(&self.buf, full),
        };
        r.upserted = upserted;
        r.removed = removed;
        self.source.witnessed(&mut r.witnessed);
        // A full report (a new session, or after a failed one) carries again
        // the witnesses that a lost report may have taken with it.
        self.resend.carry(std::time::Instant::now(), full, &mut r.witnessed);
        // After the sockets: every connection in the scan has its conntrack
        // entry already (made with its first packet).
        let nat = self.nat.delta(full);
        if let halfopen_core::NatState::Unknown(why) = &nat.state {
            self.problem("NAT translations unknown", why.clone());
        }
        if nat.state == halfopen_core::NatState::Absent && !self.nat_absent_said {
            self.nat_absent_said = true;
            info!(
                host = %self.host,
                "no connection tracking in this network namespace (nf_conntrack_netlink not loaded): nothing is translated here, so there is nothing to map"
            );
        }
        r.nat = nat.upserted;
        r.nat_removed = nat.removed;
        r.nat_state = nat.state;
        Ok(r)
    }

    /// Listener owners: few sockets, resolved through the owner cache.
    fn listener_owners(&mut self, stats: &mut ReportStats) {
        let inodes: Vec<u64> = self.listeners.iter().map(|l| l.inode).filter(|&i| i != 0).collect();
        if inodes.is_empty() {
            return;
        }
        let (procs, s) = self.resolve(&inodes);
        let unresolved = inodes.iter().filter(|i| !procs.contains_key(i)).count();
        stats.owners_vanished = s.vanished;
        stats.permission_errors = if s.permission_errors > 0 { unresolved as u64 } else { 0 };
        self.owner_problems(&s, unresolved);
        for l in &mut self.listeners {
            l.process = procs.get(&l.inode).cloned();
        }
    }

    /// Whether each listener's owner has TCP wrappers mapped (cached per pid).
    fn listener_libwrap(&mut self) {
        self.reports += 1;
        if self.reports.is_multiple_of(LIBWRAP_REFRESH) {
            self.libwrap.clear();
        }
        let mut libwrap_error = None;
        for l in &mut self.listeners {
            if let Some(pid) = l.process.as_ref().map(|p| p.pid) {
                l.libwrap = *self.libwrap.entry(pid).or_insert_with(|| {
                    crate::hostinfo::has_libwrap(pid).unwrap_or_else(|e| {
                        // unknown, and said so below: the explanation just lacks the libwrap hint
                        libwrap_error.get_or_insert(e.to_string());
                        false
                    })
                });
            }
        }
        if let Some(e) = libwrap_error {
            self.problem("checking a listener for libwrap", e);
        }
    }

    /// Client sockets on greeting ports that received nothing for at least
    /// `stall_after_ms`: a second dump, filtered to those ports in the kernel,
    /// with tcp_info (asked only there: it costs 20-30% on a full dump).
    fn silent_sockets(&mut self) -> Result<Vec<SilentSocket>, ScanError> {
        if self.wants.greeting_ports.is_empty() {
            return Ok(Vec::new());
        }
        // The scan just taken says whether any client socket talks to a
        // greeting port; without one the second dump would find nothing
        // (a connection made since then is seen next interval).
        let greeting = halfopen_sockets::filter::PortSet::new(&self.wants.greeting_ports);
        let candidates = if self.following {
            // `buf` holds only what changed: the table as reported says.
            self.differ.any(|t, state, side| {
                state == TcpState::Established && side == Side::Client && greeting.contains(t.remote_port())
            })
        } else {
            self.buf.iter().any(|r| {
                r.state == TcpState::Established && r.side == Side::Client && greeting.contains(r.tuple.remote_port())
            })
        };
        if !candidates {
            return Ok(Vec::new());
        }
        self.greeting_buf.clear();
        let Some(stats) = self
            .source
            .greeting_clients(&self.wants.greeting_ports, &mut self.greeting_buf)
        else {
            self.problem(
                "stalled greetings cannot be detected",
                format!(
                    "the {} source has no tcp_info (bytes received, last receive)",
                    self.source.kind()
                ),
            );
            return Ok(Vec::new());
        };
        if stats?.info_parse_failures > 0 {
            self.problem(
                "tcp_info unreadable on greeting-port sockets",
                "stalled greetings among them cannot be detected (kernel older than 4.1?)".into(),
            );
        }
        let (ports, stall_after) = (&self.ports, self.wants.stall_after_ms);
        let silent: Vec<SocketRecord> = self
            .greeting_buf
            .iter()
            .filter(|r| ports.side_of(r.tuple.local()) == Side::Client)
            .filter(|r| {
                r.info
                    .is_some_and(|i| i.bytes_received == 0 && i.last_data_recv_ms >= stall_after)
            })
            .copied()
            .collect();
        // Their owners: few sockets, through the owner cache.
        let inodes: Vec<u64> = silent.iter().map(|r| r.inode).filter(|&i| i != 0).collect();
        let procs = if inodes.is_empty() {
            HashMap::new()
        } else {
            let (p, stats) = self.resolve(&inodes);
            let unresolved = inodes.iter().filter(|i| !p.contains_key(i)).count();
            self.owner_problems(&stats, unresolved);
            p
        };
        Ok(silent
            .into_iter()
            .map(|r| SilentSocket {
                tuple: r.tuple,
                silent_ms: r.info.map_or(0, |i| i.last_data_recv_ms),
                process: procs.get(&r.inode).cloned(),
            })
            .collect())
    }

    fn lookup(&mut self, tuples: &[Tuple], attribute: bool) -> Result<Vec<LookupAnswer>, ScanError> {
        // A fresh read; the answer needs no listeners or sides (the next
        // report scans afresh anyway).
        self.buf.clear();
        self.source.lookup(tuples, &mut self.buf)?;
        let found: HashMap<Tuple, SocketRecord> = self.buf.iter().map(|r| (r.tuple, *r)).collect();
        let mut procs = HashMap::new();
        // Owners the source saw call connect() (eBPF): no walk for them.
        let mut connected: HashMap<u64, halfopen_core::Process> = HashMap::new();
        if attribute {
            for r in found.values().filter(|r| r.cookie != 0) {
                if let Some(p) = self.source.connect_owner(r.cookie) {
                    connected.insert(r.cookie, p);
                }
            }
            let inodes: HashSet<u64> = found
                .values()
                .filter(|r| !connected.contains_key(&r.cookie))
                .map(|r| r.inode)
                .filter(|&i| i != 0)
                .collect();
            if !inodes.is_empty() {
                let inodes: Vec<u64> = inodes.into_iter().collect();
                let (p, stats) = self.resolve(&inodes);
                let unresolved = inodes.iter().filter(|i| !p.contains_key(i)).count();
                self.owner_problems(&stats, unresolved);
                procs = p;
            }
        }
        // Translations, from a fresh conntrack read as well.
        let translated = self.nat.lookup(tuples);
        Ok(tuples
            .iter()
            .map(|t| {
                let record = found.get(t);
                let process = record.and_then(|r| connected.get(&r.cookie).or_else(|| procs.get(&r.inode)).cloned());
                let mut a = LookupAnswer::from_record(*t, record, process);
                a.translated = translated.get(t).copied();
                a
            })
            .collect())
    }
}
