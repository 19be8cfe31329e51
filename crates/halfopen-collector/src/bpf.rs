//! The eBPF source: a [`BpfHub`] loads the programs of halfopen-bpf once
//! (they see every network namespace) and a thread of its own drains their
//! rings into one [`Feed`] per namespace it serves; a [`BpfSource`] is a
//! worker's [`TableSource`] for one namespace: a sock_diag dump at start,
//! whenever events were lost and at least every `dump_every`, and between
//! dumps the sockets that changed, from their state transitions.
//!
//! - **Never silently wrong.** The hub reads the programs' loss counters
//!   (ring full, recursion misses the rescue did not cover) every second; a
//!   loss, or a transition that does not follow the table's state, makes the
//!   next report take a dump. A dump is taken while events are being
//!   recorded: the table is rebuilt from the dump and every event recorded
//!   since the dump started is applied again on top (a transition the dump
//!   already shows converges to the same state), so nothing that happened
//!   during the dump is lost.
//! - **Lookups read the kernel afresh** (a sock_diag dump), never this
//!   table: the race-free confirmation rests on it.
//! - **What the table follows**: every socket but TIME_WAIT and request
//!   sockets (SYN_RECV), which have no transitions; the dumps it reports are
//!   cut to the same states, so deltas and full tables agree. A connection
//!   in the accept queue has no inode; one that left it (accept() is not a
//!   transition) is found from the listeners' queue lengths, which the
//!   worker reads every report: the queue is first in, first out, so when a
//!   listener holds `q` connections and the table `k > q`, its `k - q`
//!   oldest were accepted ([`halfopen_core::INODE_UNREAD`] from then on).
//! - **Owners at connect().** The programs record the task that called
//!   connect(): a lookup that asks for the client's process is answered from
//!   /proc/PID of that task (checked to have started before the connect, so
//!   a reused pid is not named), without walking /proc, when the collector
//!   sees the host's pids (initial pid namespace). Otherwise, and for
//!   sockets older than the collector, the walk stays.
//! - **Witnessed drops**: handshakes the namespace's kernel dropped on a
//!   full accept queue, one per tuple between two reports.
//!
//! One program for every namespace: the hub routes events by their netns
//! cookie, so one collector can serve a source per namespace
//! ([`BpfHub::subscribe`] adds one to the programs' filter at run time).
use crate::estab::{Counting, Counts, CurrEstabCheck, Reading, Verdict};
use crate::metrics::CollectorMetrics;
use crate::source::{Changes, TableSource};
use halfopen_bpf::{
    Applied, Bpf, BpfError, ConnectOwner, DropPath as BpfPath, LoadOptions, LossStats, SockEvent, SocketTable,
    WitnessHook, WitnessMode, WitnessedDrop,
};
use halfopen_core::{
    listener_accepts, DropPath, DropWitness, Listener, Process, SocketRecord, SourceKind, TcpState, Tuple, INODE_UNREAD,
};
use halfopen_sockets::{ScanError, ScanStats, Scanner};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// How long the hub waits on the rings between drains. The programs also
/// wake it when 256 KiB are pending, so a burst never waits this long.
pub const POLL_PERIOD: Duration = Duration::from_millis(100);
/// How often the programs' loss counters are read.
const LOSS_EVERY: Duration = Duration::from_secs(1);
/// A dump at least this often, even when nothing was lost (a lost last
/// transition would otherwise leave a stale socket nothing reveals).
pub const DEFAULT_DUMP_EVERY: Duration = Duration::from_secs(60);
/// Sockets changed between two reports beyond which the feed stops listing
/// them one by one (the next report takes a dump): bounds memory while no
/// report is made (the reconciler away).
const MAX_DIRTY: usize = 1 << 20;
/// Witnessed drops kept between two reports (one per tuple).
const MAX_DROPS: usize = 65_536;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Dump states the transitions follow (see [`SocketTable::follows`]), as a
/// `1 << state` mask: [`TcpState::MATCH_MASK`] without TIME_WAIT and the
/// request sockets.
pub fn followed_mask() -> u32 {
    TcpState::MATCH_MASK
        & !(TcpState::TimeWait.mask_bit() | TcpState::SynRecv.mask_bit() | TcpState::NewSynRecv.mask_bit())
}

/// Whether a dumped socket is one the transitions follow: a followed state,
/// and not a FIN_WAIT2 timewait minisocket (inode 0; its full socket went
/// FIN_WAIT2->CLOSE when it was made).
pub fn followed(r: &SocketRecord) -> bool {
    SocketTable::follows(r.state)
        && r.state != TcpState::Listen
        && !(r.state == TcpState::FinWait2 && r.inode == 0)
        && r.cookie != 0
}

/// Which sockets this kernel's CurrEstab counts, guessed from its release
/// (/proc/sys/kernel/osrelease; the check corrects a wrong guess).
fn kernel_counting() -> Counting {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| Counting::for_release(r.trim()))
        .unwrap_or(Counting::EstablishedAndCloseWait)
}

fn complete(t: &Tuple) -> bool {
    t.local_port() != 0 && t.remote_port() != 0 && !t.local_ip().is_unspecified() && !t.remote_ip().is_unspecified()
}

/// What the table keeps per socket beyond [`halfopen_bpf::TableEntry`].
#[derive(Clone, Copy, Debug, Default)]
struct Extra {
    /// From the dump; for sockets born since, [`INODE_UNREAD`], or 0 for a
    /// connection in an accept queue.
    inode: u64,
    uid: u32,
    keepalive: bool,
    /// A server end that was in an accept queue (born LISTEN->SYN_RECV, or
    /// dumped ESTABLISHED without an inode).
    child: bool,
    /// When it became ESTABLISHED (CLOCK_BOOTTIME ns; 0: before the dump):
    /// its place in the accept queue.
    established_ns: u64,
    /// When connect() was called (CLOCK_BOOTTIME ns), for the owner check.
    connect_ns: u64,
}

/// What one namespace's feed did, since the source started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Transitions applied.
    pub transitions: u64,
    /// Transitions that did not follow the table's state after a dump had
    /// settled (a lost or repeated transition: a dump follows).
    pub mismatched: u64,
    /// Dumps taken (start, periodic, forced, full reports).
    pub dumps: u64,
    /// Dumps forced by a loss or a mismatch.
    pub forced_dumps: u64,
    /// Losses found by the kernel's CurrEstab count disagreeing with the
    /// table, twice in a row, with no loss counter raised (each forced a
    /// dump); and readings of the count that could not be judged (a
    /// transition within 2 ms of them).
    pub unseen_losses: u64,
    pub estab_unsure: u64,
    /// Readings that agreed with the table; which sockets the kernel's
    /// CurrEstab counts (as the check found) and the offset (kernel -
    /// table) readings are held to (0 unless the kernel miscounts).
    pub estab_agreed: u64,
    pub estab_counting: Option<Counting>,
    pub estab_offset: i64,
    /// Drops witnessed; and those not kept because too many waited.
    pub witnessed: u64,
    pub witnessed_overflow: u64,
}

#[derive(Default)]
struct FeedState {
    table: SocketTable,
    /// Keyed by socket cookie. FxHash (rustc-hash) in the per-transition
    /// maps: keys come from the kernel, not from an adversary, and SipHash
    /// was a measurable part of the cost per transition.
    extra: FxHashMap<u64, Extra>,
    /// Cookies changed since the last report.
    dirty: FxHashSet<u64>,
    /// Sockets gone since the last report: cookie -> last tuple.
    gone: FxHashMap<u64, Tuple>,
    overflowed: bool,
    /// Events since a dump started, to apply on top of it.
    recording: Option<Vec<SockEvent>>,
    /// Mismatches of events after this (CLOCK_BOOTTIME ns) mean loss.
    trusted_after_ns: u64,
    /// Why the next report must take a dump.
    needs_dump: Option<String>,
    drops: HashMap<Tuple, WitnessedDrop>,
    /// The hub stopped (why): every report takes a dump.
    hub_error: Option<String>,
    stats: FeedStats,
    /// The table's ESTABLISHED + CLOSE_WAIT count against the kernel's.
    estab: CurrEstabCheck,
    /// The hub's last poll of the rings started then (CLOCK_BOOTTIME ns):
    /// every event stamped before is in the table.
    drained_ns: u64,
}

impl FeedState {
    fn apply(&mut self, netns: u64, e: &SockEvent) {
        if let Some(r) = self.recording.as_mut() {
            r.push(e.clone());
        }
        self.stats.transitions += 1;
        let (before, was) = match self.table.get(netns, e.cookie) {
            Some(x) => (Some(x.tuple), Some(x.state)),
            None => (None, None),
        };
        let applied = self.table.apply(e);
        // The socket's state after `apply` (SocketTable::apply): a port
        // record leaves a held socket as it was, CLOSE removes it, any other
        // transition sets `new`. Derived, not looked up again: this runs for
        // every transition.
        let now = match was {
            Some(w) if e.port_only => Some(w),
            _ => (e.new != TcpState::Close).then_some(e.new),
        };
        self.estab.changed(e.boot_ns, was, now);
        match applied {
            Applied::Removed | Applied::UnknownClosed => self.closed(e, before),
            Applied::Mismatched { .. } if e.new == TcpState::Close => self.closed(e, before),
            Applied::Inserted => {
                let child = e.old == TcpState::Listen;
                self.extra.insert(
                    e.cookie,
                    Extra {
                        inode: if child { 0 } else { INODE_UNREAD },
                        uid: e.owner.as_ref().map_or(0, |o| o.uid),
                        keepalive: false,
                        child,
                        established_ns: if e.new == TcpState::Established { e.boot_ns } else { 0 },
                        connect_ns: if e.owner.is_some() { e.boot_ns } else { 0 },
                    },
                );
                self.mark(e.cookie);
            }
            Applied::Updated | Applied::Mismatched { .. } => {
                if let Some(x) = self.extra.get_mut(&e.cookie) {
                    if e.new == TcpState::Established && e.old != TcpState::Established {
                        x.established_ns = e.boot_ns;
                    }
                }
                self.mark(e.cookie);
            }
        }
        if let Applied::Mismatched { had } = applied {
            if e.boot_ns > self.trusted_after_ns && self.recording.is_none() {
                self.stats.mismatched += 1;
                self.needs_dump.get_or_insert_with(|| {
                    format!(
                        "a transition {:?}->{:?} of a socket the table held in {had:?} (a transition was lost or repeated)",
                        e.old, e.new
                    )
                });
            }
        }
    }

    fn closed(&mut self, e: &SockEvent, before: Option<Tuple>) {
        self.extra.remove(&e.cookie);
        self.dirty.remove(&e.cookie);
        let t = before.unwrap_or(e.tuple);
        if complete(&t) {
            self.gone.insert(e.cookie, t);
        }
    }

    fn mark(&mut self, cookie: u64) {
        if self.dirty.len() >= MAX_DIRTY && !self.dirty.contains(&cookie) {
            self.overflowed = true;
            return;
        }
        self.dirty.insert(cookie);
    }

    fn drop_witnessed(&mut self, d: WitnessedDrop) {
        self.stats.witnessed += 1;
        if self.drops.len() >= MAX_DROPS && !self.drops.contains_key(&d.tuple) {
            self.stats.witnessed_overflow += 1;
            return;
        }
        // The first drop of a tuple says when it was lost; a client that
        // keeps sending its cookie ACK is witnessed again.
        self.drops.entry(d.tuple).or_insert(d);
    }

    /// The record of socket `cookie` as a report carries it (side decided by
    /// the worker); None for what a report does not carry.
    fn record(&self, netns: u64, cookie: u64) -> Option<SocketRecord> {
        let e = self.table.get(netns, cookie)?;
        if !complete(&e.tuple) || e.state == TcpState::Listen || TcpState::MATCH_MASK & e.state.mask_bit() == 0 {
            return None;
        }
        let x = self.extra.get(&cookie).copied().unwrap_or_default();
        Some(SocketRecord {
            tuple: e.tuple,
            state: e.state,
            side: halfopen_core::Side::Client,
            cookie,
            inode: x.inode,
            uid: x.uid,
            keepalive: x.keepalive,
            info: None,
        })
    }
}

/// One namespace's share of the events.
pub struct Feed {
    netns: u64,
    state: Mutex<FeedState>,
}

impl Feed {
    fn new(netns: u64, counting: Counting) -> Feed {
        Feed {
            netns,
            state: Mutex::new(FeedState {
                needs_dump: Some("the first report".into()),
                estab: CurrEstabCheck::new(counting),
                ..Default::default()
            }),
        }
    }

    pub fn stats(&self) -> FeedStats {
        let s = lock(&self.state);
        let (how, offset) = s.estab.rule();
        FeedStats {
            estab_counting: Some(how),
            estab_offset: offset,
            ..s.stats
        }
    }

    fn apply(&self, events: &[SockEvent]) {
        let mut s = lock(&self.state);
        for e in events {
            s.apply(self.netns, e);
        }
    }

    fn needs_dump(&self, why: &str) {
        lock(&self.state).needs_dump.get_or_insert_with(|| why.to_string());
    }
}

/// What the hub thread is asked to do.
enum HubRequest {
    Subscribe(u64, Arc<Feed>, mpsc::Sender<Result<(), BpfError>>),
    /// The namespace's source is gone: its feed and filter entry go too.
    Unsubscribe(u64),
}

/// The loaded programs and the thread that drains them. Dropping it stops
/// the thread and unloads the programs.
pub struct BpfHub {
    feeds: Arc<Mutex<HashMap<u64, Arc<Feed>>>>,
    requests: Mutex<mpsc::Sender<HubRequest>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    witness: Option<WitnessHook>,
    /// Which sockets this kernel's CurrEstab counts (first guess, per feed).
    counting: Counting,
}

impl std::fmt::Debug for BpfHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfHub")
            .field("witness", &self.witness)
            .finish_non_exhaustive()
    }
}

impl BpfHub {
    /// Loads the programs (transitions, and the drop witness when the
    /// kernel allows one: without it the source still works) for the
    /// namespace `netns` (its cookie; None: no namespace until one
    /// [`subscribe`](Self::subscribe)s, for a collector that does not
    /// cover its own), and starts the thread that drains them. Errors:
    /// what [`Bpf::load`] says (not compiled in, no BTF, no privilege,
    /// refused by the kernel).
    pub fn start(netns: Option<u64>, ring_bytes: Option<u32>) -> Result<Arc<BpfHub>, BpfError> {
        let mut opts = LoadOptions {
            only_netns: Some(netns.into_iter().collect()),
            ..Default::default()
        };
        if let Some(b) = ring_bytes {
            opts.events_ring_bytes = b;
        }
        let bpf = match Bpf::load(&opts) {
            Ok(b) => b,
            Err(e @ (BpfError::NotCompiledIn | BpfError::PermissionDenied { .. } | BpfError::InvalidOption { .. })) => {
                return Err(e)
            }
            Err(e) => {
                // Transitions alone, when no witness hook loads.
                warn!("eBPF drop witness unavailable ({e}); following transitions without it");
                opts.witness = WitnessMode::Off;
                Bpf::load(&opts)?
            }
        };
        let witness = bpf.witness_hook();
        let counting = kernel_counting();
        let feeds: Arc<Mutex<HashMap<u64, Arc<Feed>>>> = Arc::default();
        if let Some(netns) = netns {
            lock(&feeds).insert(netns, Arc::new(Feed::new(netns, counting)));
        }
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (feeds, stop) = (feeds.clone(), stop.clone());
            std::thread::Builder::new()
                .name("halfopen-bpf".into())
                .spawn(move || drain(bpf, feeds, rx, stop))
                .map_err(|e| BpfError::Read {
                    what: "starting the eBPF reader thread",
                    source: e,
                })?
        };
        Ok(Arc::new(BpfHub {
            feeds,
            requests: Mutex::new(tx),
            stop,
            thread: Some(thread),
            witness,
            counting,
        }))
    }

    /// Which hook witnesses dropped handshakes (None: the kernel allows none).
    pub fn witness_hook(&self) -> Option<WitnessHook> {
        self.witness
    }

    /// The feed of namespace `netns`, added to the programs' filter first
    /// when it is new (waits for the hub thread, at most a poll period).
    pub fn subscribe(&self, netns: u64) -> Result<Arc<Feed>, BpfError> {
        if let Some(f) = lock(&self.feeds).get(&netns) {
            return Ok(f.clone());
        }
        let feed = Arc::new(Feed::new(netns, self.counting));
        let (tx, rx) = mpsc::channel();
        let stopped = || BpfError::Read {
            what: "subscribing a namespace",
            source: std::io::Error::other("the eBPF reader thread has stopped"),
        };
        lock(&self.requests)
            .send(HubRequest::Subscribe(netns, feed.clone(), tx))
            .map_err(|_| stopped())?;
        rx.recv_timeout(Duration::from_secs(10)).map_err(|_| stopped())??;
        Ok(feed)
    }

    /// Stops following namespace `netns`: its feed is dropped and its
    /// cookie leaves the programs' filter (at the hub's next poll), so a
    /// namespace that came and went leaves nothing behind. Best effort: a
    /// stopped hub has nothing left to release.
    pub fn unsubscribe(&self, netns: u64) {
        let _ = lock(&self.requests).send(HubRequest::Unsubscribe(netns));
    }
}

impl Drop for BpfHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The hub thread: drains the rings into the feeds, reads the loss
/// counters every second, adds namespaces when asked.
fn drain(
    mut bpf: Bpf,
    feeds: Arc<Mutex<HashMap<u64, Arc<Feed>>>>,
    requests: mpsc::Receiver<HubRequest>,
    stop: Arc<AtomicBool>,
) {
    let (mut socks, mut drops) = (Vec::new(), Vec::new());
    let mut seen = match bpf.lost() {
        Ok(l) => l,
        Err(e) => return fail(&feeds, &format!("reading the eBPF loss counters: {e}")),
    };
    let mut last_loss_read = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(req) = requests.try_recv() {
            match req {
                HubRequest::Subscribe(netns, feed, reply) => {
                    let r = bpf.allow_netns(netns);
                    if r.is_ok() {
                        lock(&feeds).insert(netns, feed);
                    }
                    let _ = reply.send(r);
                }
                HubRequest::Unsubscribe(netns) => {
                    lock(&feeds).remove(&netns);
                    if let Err(e) = bpf.disallow_netns(netns) {
                        warn!(netns, "removing a namespace from the eBPF filter: {e}");
                    }
                }
            }
        }
        let polled_from = halfopen_bpf::ClockAnchor::now().boot_ns;
        if let Err(e) = bpf.poll(POLL_PERIOD, &mut socks, &mut drops) {
            return fail(&feeds, &format!("reading the eBPF rings: {e}"));
        }
        if !socks.is_empty() || !drops.is_empty() {
            let feeds = lock(&feeds);
            route(&feeds, &mut socks, |f, evs| f.apply(evs), |e| e.netns_cookie);
            for d in drops.drain(..) {
                match feeds.get(&d.netns_cookie) {
                    Some(f) => lock(&f.state).drop_witnessed(d),
                    None => debug!(
                        netns = d.netns_cookie,
                        "a drop witnessed in a namespace no source serves: {d}"
                    ),
                }
            }
        }
        // Everything stamped before the poll started is in the tables now.
        for f in lock(&feeds).values() {
            lock(&f.state).drained_ns = polled_from;
        }
        if last_loss_read.elapsed() >= LOSS_EVERY {
            last_loss_read = Instant::now();
            match bpf.lost() {
                Ok(now) => {
                    let d = now.since(&seen);
                    debug!(lost = ?now, activity = ?bpf.activity().ok(), "eBPF counters");
                    seen = now;
                    lost(&feeds, &d);
                }
                Err(e) => return fail(&feeds, &format!("reading the eBPF loss counters: {e}")),
            }
        }
    }
}

/// Hands each feed its events, in ring order; events of namespaces no feed
/// serves are dropped.
fn route(
    feeds: &HashMap<u64, Arc<Feed>>,
    events: &mut Vec<SockEvent>,
    apply: impl Fn(&Feed, &[SockEvent]),
    netns: impl Fn(&SockEvent) -> u64,
) {
    if feeds.len() == 1 {
        if let Some((&ns, f)) = feeds.iter().next() {
            if events.iter().all(|e| netns(e) == ns) {
                apply(f, events);
                events.clear();
                return;
            }
        }
    }
    let mut by: HashMap<u64, Vec<SockEvent>> = HashMap::new();
    for e in events.drain(..) {
        by.entry(netns(&e)).or_default().push(e);
    }
    for (ns, evs) in by {
        if let Some(f) = feeds.get(&ns) {
            apply(f, &evs);
        }
    }
}

/// Loss since the previous read: every feed takes a dump at its next report.
fn lost(feeds: &Mutex<HashMap<u64, Arc<Feed>>>, d: &LossStats) {
    if d.transitions_lost() > 0 {
        let why = format!(
            "{} transitions lost (ring full {}, recursion misses not rescued {}, unreadable {}, undecodable {})",
            d.transitions_lost(),
            d.transitions_ring_full,
            d.recursion_misses.saturating_sub(d.rescued),
            d.unreadable,
            d.undecodable
        );
        for f in lock(feeds).values() {
            f.needs_dump(&why);
        }
    }
    if d.witnesses_lost() > 0 {
        warn!(
            lost = d.witnesses_lost(),
            "eBPF: some dropped handshakes went unwitnessed (witness ring full or its program skipped); the \
             ListenOverflows counter still counts them"
        );
    }
}

/// The hub stopped: every feed says so, and every report takes a dump.
fn fail(feeds: &Mutex<HashMap<u64, Arc<Feed>>>, why: &str) {
    warn!("{why}: the eBPF source falls back to a sock_diag dump every interval");
    for f in lock(feeds).values() {
        lock(&f.state).hub_error = Some(why.to_string());
    }
}

/// Whether this process sees the host's pids (the initial pid namespace,
/// whose nsfs inode is PROC_PID_INIT_INO, include/linux/proc_ns.h): the pids
/// the programs record are those of the initial namespace.
fn in_initial_pid_ns() -> bool {
    const PROC_PID_INIT_INO: &str = "pid:[4026531836]";
    std::fs::read_link("/proc/self/ns/pid").is_ok_and(|l| l.as_os_str() == PROC_PID_INIT_INO)
}

/// When process `pid` started, CLOCK_BOOTTIME ns (field 22 of /proc/PID/stat,
/// in clock ticks since boot, proc(5)); None if unreadable.
fn process_start_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat).map(|t| t.saturating_mul(1_000_000_000) / clock_ticks())
}

/// Field 22 (starttime) of a /proc/PID/stat line; the command (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// A worker's source for one namespace: see the module documentation.
pub struct BpfSource {
    scanner: Scanner,
    /// Keeps the programs loaded (and their thread running) while the source
    /// lives; unsubscribed from when it drops.
    hub: Arc<BpfHub>,
    feed: Arc<Feed>,
    netns: u64,
    dump_every: Duration,
    last_dump: Option<Instant>,
    owners_by_pid: bool,
    buf: Vec<SocketRecord>,
    metrics: CollectorMetrics,
}

impl BpfSource {
    /// The source of the calling thread's namespace, `netns` its cookie:
    /// sock_diag (netlink, required: the dumps and lookups) and the hub's
    /// feed for it.
    pub fn open(
        hub: Arc<BpfHub>,
        netns: u64,
        dump_every: Duration,
        metrics: CollectorMetrics,
    ) -> Result<BpfSource, ScanError> {
        let scanner = Scanner::netlink()?;
        let feed = hub.subscribe(netns).map_err(|e| ScanError::Netlink {
            op: "subscribe (eBPF)",
            source: std::io::Error::other(e.to_string()),
        })?;
        metrics.curr_estab_checks_shown();
        let owners_by_pid = in_initial_pid_ns();
        if !owners_by_pid {
            debug!("the collector is not in the initial pid namespace: client owners come from the /proc walk");
        }
        Ok(BpfSource {
            scanner,
            hub,
            feed,
            netns,
            dump_every,
            last_dump: None,
            owners_by_pid,
            buf: Vec::new(),
            metrics,
        })
    }

    pub fn stats(&self) -> FeedStats {
        self.feed.stats()
    }

    /// The table as the events built it, as a report carries it (for tests
    /// and the exactness benchmark).
    pub fn table(&self, out: &mut Vec<SocketRecord>) {
        let s = lock(&self.feed.state);
        out.extend(s.table.iter().filter_map(|e| s.record(self.netns, e.cookie)));
    }

    /// Judges the pending reading of the kernel's CurrEstab against the
    /// table ([`crate::estab`]); Some(why) when the table lost a transition
    /// no counter saw (the report takes a dump, and the next one if this one
    /// does not).
    fn check_curr_estab(s: &mut FeedState, metrics: &CollectorMetrics) -> Option<String> {
        let verdict = s.estab.judge(halfopen_bpf::ClockAnchor::now().boot_ns, s.drained_ns);
        if let Some(label) = verdict.label() {
            metrics.curr_estab_checked(label);
        }
        match verdict {
            Verdict::NotYet | Verdict::Suspect(_) => None,
            Verdict::Unsure => {
                s.stats.estab_unsure += 1;
                None
            }
            Verdict::Agrees => {
                s.stats.estab_agreed += 1;
                None
            }
            Verdict::Switched(how) => {
                info!("this kernel's Tcp CurrEstab counts {how:?}: the eBPF table is held to that");
                s.stats.estab_agreed += 1;
                None
            }
            Verdict::Calibrated(offset) => {
                warn!(
                    offset,
                    "the kernel's Tcp CurrEstab differs from a fresh dump by a constant (a kernel that miscounts): \
                     the eBPF table is held to that offset from now on"
                );
                s.stats.estab_agreed += 1;
                None
            }
            Verdict::Lost { kernel, table, offset } => {
                s.stats.unseen_losses += 1;
                let why = format!(
                    "the kernel counts {kernel} connections in Tcp CurrEstab, the eBPF table {table} (offset \
                     {offset}), twice in a row: a transition was lost without a loss counter rising"
                );
                s.needs_dump.get_or_insert_with(|| why.clone());
                Some(why)
            }
        }
    }

    /// Marks queued connections that left their accept queue (see the
    /// module documentation): per listener, the oldest beyond its queue.
    fn accepted(&self, s: &mut FeedState, listeners: &[Listener]) {
        let mut queued: HashMap<SocketAddr, Vec<(u64, u64)>> = HashMap::new();
        for (&cookie, x) in &s.extra {
            if !(x.child && x.inode == 0) {
                continue;
            }
            let Some(e) = s.table.get(self.netns, cookie) else {
                continue;
            };
            if e.state != TcpState::Established {
                continue;
            }
            let local = e.tuple.local();
            let l = listeners
                .iter()
                .find(|l| l.addr == local)
                .or_else(|| listeners.iter().find(|l| listener_accepts(l.addr, local)));
            if let Some(l) = l {
                queued.entry(l.addr).or_default().push((x.established_ns, cookie));
            }
        }
        for (addr, mut v) in queued {
            // SO_REUSEPORT: several listening sockets on one address share its connections.
            let q: usize = listeners
                .iter()
                .filter(|l| l.addr == addr)
                .map(|l| l.queue as usize)
                .sum();
            if v.len() <= q {
                continue;
            }
            v.sort_unstable();
            let n = v.len() - q;
            for &(_, cookie) in &v[..n] {
                if let Some(x) = s.extra.get_mut(&cookie) {
                    x.inode = INODE_UNREAD;
                }
                s.mark(cookie);
            }
        }
    }
}

impl Drop for BpfSource {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.netns);
    }
}

impl TableSource for BpfSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Bpf
    }

    fn follows(&self) -> bool {
        true
    }

    fn listeners(&mut self, out: &mut Vec<Listener>) -> Result<(), ScanError> {
        self.scanner.listeners(out)
    }

    /// A sock_diag dump, with the table rebuilt from it (and from the events
    /// recorded while it ran); what the table follows goes to `out`.
    fn dump(&mut self, out: &mut Vec<SocketRecord>) -> Result<ScanStats, ScanError> {
        {
            let mut s = lock(&self.feed.state);
            s.recording = Some(Vec::new());
            if s.needs_dump.take().is_some() && self.last_dump.is_some() {
                s.stats.forced_dumps += 1;
            }
        }
        self.buf.clear();
        let scanned = self.scanner.scan(followed_mask(), false, &mut self.buf);
        let done_ns = halfopen_bpf::ClockAnchor::now().boot_ns;
        let mut s = lock(&self.feed.state);
        let recorded = s.recording.take().unwrap_or_default();
        let stats = match scanned {
            Ok(st) => st,
            Err(e) => {
                s.needs_dump.get_or_insert_with(|| "the previous dump failed".into());
                return Err(e);
            }
        };
        let mut table = SocketTable::new();
        let mut extra = FxHashMap::with_capacity_and_hasher(self.buf.len(), Default::default());
        for r in self.buf.iter().filter(|r| followed(r)) {
            if table.seed(self.netns, r) {
                extra.insert(
                    r.cookie,
                    Extra {
                        inode: r.inode,
                        uid: r.uid,
                        keepalive: r.keepalive,
                        child: r.inode == 0 && r.state == TcpState::Established,
                        established_ns: 0,
                        connect_ns: 0,
                    },
                );
            }
        }
        // Owners learnt at connect() survive the dump.
        for (cookie, x) in &mut extra {
            if let Some(old) = s.extra.get(cookie) {
                x.connect_ns = old.connect_ns;
            }
        }
        let owners: Vec<(u64, ConnectOwner)> = s
            .table
            .iter()
            .filter_map(|e| Some((e.cookie, e.owner.clone()?)))
            .collect();
        s.table = table;
        s.extra = extra;
        s.trusted_after_ns = done_ns;
        for e in &recorded {
            s.apply(self.netns, e);
        }
        for (cookie, o) in owners {
            // A dumped socket whose connect() the events saw keeps its owner.
            s.table.set_owner(self.netns, cookie, o);
        }
        let counts = Counts::of(s.table.iter().map(|e| e.state));
        s.estab.rebuilt(counts, done_ns);
        s.dirty.clear();
        s.gone.clear();
        s.overflowed = false;
        s.stats.dumps += 1;
        out.extend(s.table.iter().filter_map(|e| s.record(self.netns, e.cookie)));
        drop(s);
        self.last_dump = Some(Instant::now());
        Ok(stats)
    }

    fn changes(&mut self, listeners: &[Listener], out: &mut Vec<SocketRecord>, removed: &mut Vec<Tuple>) -> Changes {
        let due = self.last_dump.is_none_or(|t| t.elapsed() >= self.dump_every);
        let mut s = lock(&self.feed.state);
        if let Some(why) = s.hub_error.clone() {
            return Changes::Whole(format!("the eBPF reader stopped ({why})"));
        }
        if let Some(why) = s.needs_dump.clone() {
            return Changes::Whole(why);
        }
        if s.overflowed {
            return Changes::Whole(format!("more than {MAX_DIRTY} sockets changed since the last report"));
        }
        if due {
            return Changes::Whole(format!("the periodic dump (every {:?})", self.dump_every));
        }
        if let Some(why) = Self::check_curr_estab(&mut s, &self.metrics) {
            return Changes::Whole(why);
        }
        self.accepted(&mut s, listeners);
        let dirty: Vec<u64> = s.dirty.drain().collect();
        let base = out.len();
        out.extend(dirty.iter().filter_map(|&c| s.record(self.netns, c)));
        let present: HashSet<Tuple> = out[base..].iter().map(|r| r.tuple).collect();
        removed.extend(s.gone.drain().map(|(_, t)| t).filter(|t| !present.contains(t)));
        Changes::Delta
    }

    fn witnessed(&mut self, out: &mut Vec<DropWitness>) {
        let mut s = lock(&self.feed.state);
        out.extend(s.drops.drain().map(|(_, d)| {
            debug!("witnessed: {d}");
            DropWitness {
                tuple: d.tuple,
                at_ms: d
                    .at
                    .duration_since(UNIX_EPOCH)
                    .map(|x| x.as_millis() as i64)
                    .unwrap_or(0),
                path: match d.path {
                    BpfPath::SynCookie => DropPath::Cookie,
                    BpfPath::Normal => DropPath::Normal,
                },
                queue: d.queue,
                backlog: d.backlog,
            }
        }));
    }

    fn connect_owner(&mut self, cookie: u64) -> Option<Process> {
        if !self.owners_by_pid {
            return None;
        }
        let (pid, connect_ns) = {
            let s = lock(&self.feed.state);
            let pid = s.table.get(self.netns, cookie)?.owner.as_ref()?.pid;
            (pid, s.extra.get(&cookie).map_or(0, |x| x.connect_ns))
        };
        // A pid reused since the connect belongs to a process that started after it.
        let started = process_start_ns(pid)?;
        if connect_ns == 0 || started > connect_ns {
            return None;
        }
        halfopen_sockets::owners::process_of(pid).0
    }

    fn kernel_counted(&mut self, reading: Reading) {
        lock(&self.feed.state).estab.read(reading);
    }

    fn greeting_clients(&mut self, ports: &[u16], out: &mut Vec<SocketRecord>) -> Option<Result<ScanStats, ScanError>> {
        Some(
            self.scanner
                .scan_remote_ports(TcpState::Established.mask_bit(), true, ports, out),
        )
    }

    fn lookup(&mut self, tuples: &[Tuple], out: &mut Vec<SocketRecord>) -> Result<(), ScanError> {
        // A fresh dump, as the polling source does: never the table.
        crate::source::fresh_lookup(&mut self.scanner, &mut self.buf, tuples, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CurrEstab check as the source runs it: the table's counts move
    /// with the applied transitions, a kernel reading one more than the
    /// table twice in a row (a connection whose transitions never came)
    /// makes the report take a dump (and the next, until one is taken),
    /// and the loss is counted.
    #[test]
    fn a_connection_the_events_never_carried_makes_the_report_take_a_dump() {
        let ns = 7;
        let ev = |cookie, old, new, boot_ns| SockEvent {
            boot_ns,
            at: UNIX_EPOCH,
            netns_cookie: ns,
            cookie,
            family: halfopen_bpf::Family::V4,
            old,
            new,
            tuple: Tuple::new("198.18.0.2:40000".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
            owner: None,
            rescued: false,
            port_only: false,
            cpu: 0,
        };
        let mut s = FeedState::default();
        s.estab.rebuilt(Counts::default(), 1);
        s.apply(ns, &ev(1, TcpState::Close, TcpState::SynSent, 10));
        s.apply(ns, &ev(1, TcpState::SynSent, TcpState::Established, 20));
        s.apply(ns, &ev(1, TcpState::Established, TcpState::CloseWait, 30));
        s.apply(ns, &ev(2, TcpState::Close, TcpState::SynSent, 40));
        s.apply(ns, &ev(2, TcpState::SynSent, TcpState::Established, 50));
        s.apply(ns, &ev(2, TcpState::Established, TcpState::Close, 60));
        assert_eq!(
            s.estab.counts(),
            Counts {
                established: 0,
                close_wait: 1
            },
            "what the table holds"
        );
        let metrics = CollectorMetrics::default();
        let settle = Duration::from_nanos(crate::estab::SETTLE_NS + 10_000_000);
        // One report: the reading the worker took with the last report's
        // counters is judged, then this report's is handed over.
        let mut report = |kernel: i64| {
            std::thread::sleep(settle);
            s.drained_ns = halfopen_bpf::ClockAnchor::now().boot_ns; // the hub polled
            let why = BpfSource::check_curr_estab(&mut s, &metrics);
            let now = halfopen_bpf::ClockAnchor::now().boot_ns;
            s.estab.read(Reading {
                kernel,
                from_ns: now,
                to_ns: now,
            });
            why
        };
        assert_eq!(report(1), None, "nothing to judge yet");
        assert_eq!(report(2), None, "1 agreed; now one the table lacks");
        assert_eq!(report(2), None, "suspect once");
        let why = report(2).expect("twice in a row: a loss");
        assert_eq!(
            why,
            "the kernel counts 2 connections in Tcp CurrEstab, the eBPF table 1 (offset 0), twice in a row: a \
             transition was lost without a loss counter rising"
        );
        assert_eq!(
            s.needs_dump.as_deref(),
            Some(why.as_str()),
            "the next report dumps too, until one does"
        );
        assert_eq!((s.stats.unseen_losses, s.stats.estab_agreed), (1, 1));
    }

    #[test]
    fn start_time_is_field_22_after_the_command() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 \
                    10 18446744073709551615";
        assert_eq!(parse_start_ticks(stat), Some(123_456));
        assert_eq!(parse_start_ticks("garbage"), None);
        assert_eq!(parse_start_ticks("1 (x) S 1"), None);
        // This process started before now.
        let me = process_start_ns(std::process::id()).unwrap();
        assert!(me <= halfopen_bpf::ClockAnchor::now().boot_ns);
    }

    #[test]
    fn the_followed_mask_leaves_out_what_has_no_transitions() {
        let m = followed_mask();
        for s in [
            TcpState::TimeWait,
            TcpState::SynRecv,
            TcpState::NewSynRecv,
            TcpState::Listen,
        ] {
            assert_eq!(m & s.mask_bit(), 0, "{s:?}");
        }
        for s in [
            TcpState::Established,
            TcpState::SynSent,
            TcpState::FinWait2,
            TcpState::CloseWait,
        ] {
            assert_ne!(m & s.mask_bit(), 0, "{s:?}");
        }
        let rec = |state, inode| SocketRecord {
            tuple: Tuple::new("198.18.0.1:1".parse().unwrap(), "198.18.0.2:2".parse().unwrap()),
            state,
            side: halfopen_core::Side::Client,
            cookie: 5,
            inode,
            uid: 0,
            keepalive: false,
            info: None,
        };
        assert!(followed(&rec(TcpState::FinWait2, 7)));
        assert!(!followed(&rec(TcpState::FinWait2, 0)), "a timewait minisocket");
        assert!(
            followed(&rec(TcpState::Established, 0)),
            "a connection in the accept queue"
        );
    }
}
