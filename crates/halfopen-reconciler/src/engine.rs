//! The matching engine: the latest table of every host, the join by canonical
//! 4-tuple, and the race-free confirmation of one-sided connections.
//!
//! Pure and synchronous: it takes reports, lookup replies and clock readings,
//! and returns [`Action`]s (lookups to send, findings to store). It never
//! touches the network, the database or a clock of its own.
//!
//! # Confirmation without clocks
//! A client-side ESTABLISHED socket whose server address belongs to another
//! monitored host, and which that host's latest table lacks, becomes a
//! *candidate* (reconciler time `t0`, socket cookie `c`). It is reported only
//! after this sequence, each step requested after the previous one's answer
//! arrived:
//! 1. no sooner than `t0 + grace`, the server host looks the tuple up in a
//!    fresh scan and holds it in **no** state (SYN_RECV and TIME_WAIT count);
//! 2. then the client host looks it up in a fresh scan and still holds the
//!    **same socket** (same cookie) ESTABLISHED.
//!
//! The client socket therefore existed continuously from before `t0` until
//! after step 1, while the server had no trace of it at step 1, at least
//! `grace` after the client had completed its handshake. A healthy
//! connection's server end exists from one round trip after the client's
//! handshake until after the client leaves ESTABLISHED, so no interleaving
//! of snapshots can confirm it (see the property test below). The cookie
//! guards against a 4-tuple reused by a new connection.
use halfopen_core::{is_matchable_ip, listener_accepts, Listener, Process, Side, SocketRecord, TcpState, Tuple};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

/// Reconciler time: a monotonic reading for ordering and ages, and the wall
/// clock for what operators read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub mono_ms: u64,
    pub wall_ms: i64,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Minimum time between a candidate's first sighting and the server-side
    /// lookup. Must exceed any healthy handshake's round trip by far.
    pub grace_ms: u64,
    /// A host is stale after this many of its intervals without a report...
    pub stale_intervals: u32,
    /// ...and never sooner than this.
    pub stale_min_ms: u64,
    /// A lookup not answered within this time is abandoned and retried.
    pub lookup_timeout_ms: u64,
    /// Most tuples in one lookup message.
    pub max_lookup_batch: usize,
    /// Ports where the server speaks first.
    pub greeting_ports: Vec<u16>,
    /// A client on a greeting port that received nothing for this long is stalled.
    pub stall_after_ms: u32,
    /// A listener stays at risk this many of its host's intervals after the
    /// last sign (queue near full, counters rising).
    pub risk_intervals: u32,
}

/// Server-speaks-first ports: FTP, SSH, SMTP, POP3, NNTP, IMAP, submission, MySQL/MariaDB.
pub const DEFAULT_GREETING_PORTS: &[u16] = &[21, 22, 25, 110, 119, 143, 587, 3306];

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            grace_ms: 1_000,
            stale_intervals: 3,
            stale_min_ms: 3_000,
            lookup_timeout_ms: 15_000,
            max_lookup_batch: 20_000,
            greeting_ports: DEFAULT_GREETING_PORTS.to_vec(),
            stall_after_ms: 10_000,
            risk_intervals: 3,
        }
    }
}

pub type HostIdx = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The client holds the connection ESTABLISHED; the server host has no trace of it.
    #[default]
    ClientOnly,
    /// The server holds it ESTABLISHED; the (monitored) client host has no trace of it.
    ServerOnly,
    /// Both ends hold it, the server speaks first, and the client has received nothing.
    StalledGreeting,
    /// A listener whose queue is near its backlog, or whose host's overflow or
    /// SYN-cookie counters rose, before (or while) anything is lost.
    ListenerAtRisk,
}

impl FindingKind {
    pub const ALL: [FindingKind; 4] = [
        FindingKind::ClientOnly,
        FindingKind::ServerOnly,
        FindingKind::StalledGreeting,
        FindingKind::ListenerAtRisk,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ClientOnly => "client_only",
            FindingKind::ServerOnly => "server_only",
            FindingKind::StalledGreeting => "stalled_greeting",
            FindingKind::ListenerAtRisk => "listener_at_risk",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The kind of one-sided finding for a socket held on this side.
    fn one_sided(side: Side) -> FindingKind {
        match side {
            Side::Client => FindingKind::ClientOnly,
            Side::Server => FindingKind::ServerOnly,
        }
    }
}

/// A confirmed finding.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Finding {
    pub kind: FindingKind,
    /// Client's view (local = client end, remote = server end); None for
    /// listener_at_risk.
    pub tuple: Option<Tuple>,
    /// listener_at_risk: the listener.
    pub listener: Option<SocketAddr>,
    /// Cookie of the socket the finding is about (the holder's).
    pub cookie: u64,
    pub client_host: String,
    pub server_host: String,
    /// The client end's process.
    pub process: Option<Process>,
    /// The server end's process (the accepted socket's owner, or the listener's).
    pub server_process: Option<Process>,
    pub keepalive: bool,
    pub first_seen_ms: i64,
    pub confirmed_at_ms: i64,
    pub explanation: String,
    /// stalled_greeting: how long the client has received nothing.
    pub silent_ms: u32,
    /// stalled_greeting: the server end is still in the accept queue.
    pub in_accept_queue: bool,
}

/// The order findings are listed and paged in: kind, server end, client end,
/// listener, client host, server host. No two current findings share it (the
/// engine keys a finding by kind, holder host and tuple, all of which it holds).
pub type OrderKey<'a> = (
    FindingKind,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
    &'a str,
    &'a str,
);

/// Where a page of findings ended: the last finding's [`OrderKey`], owned,
/// and carried by clients as an opaque token ([`PageCursor::token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    kind: FindingKind,
    remote: Option<SocketAddr>,
    local: Option<SocketAddr>,
    listener: Option<SocketAddr>,
    client_host: String,
    server_host: String,
}

impl PageCursor {
    pub fn of(f: &Finding) -> PageCursor {
        let (kind, remote, local, listener, client_host, server_host) = f.order_key();
        PageCursor {
            kind,
            remote,
            local,
            listener,
            client_host: client_host.to_string(),
            server_host: server_host.to_string(),
        }
    }

    pub fn key(&self) -> OrderKey<'_> {
        (
            self.kind,
            self.remote,
            self.local,
            self.listener,
            &self.client_host,
            &self.server_host,
        )
    }

    /// `kind~remote~local~listener~hex(client host)~hex(server host)`, `-`
    /// for an absent address: printable, and no host name can break it.
    pub fn token(&self) -> String {
        let addr = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        format!(
            "{}~{}~{}~{}~{}~{}",
            self.kind.as_str(),
            addr(self.remote),
            addr(self.local),
            addr(self.listener),
            hex(&self.client_host),
            hex(&self.server_host)
        )
    }

    /// Reads a [`PageCursor::token`]; None if it is not one.
    pub fn parse(token: &str) -> Option<PageCursor> {
        let mut it = token.split('~');
        let mut next = || it.next();
        let kind = FindingKind::parse(next()?)?;
        let addr = |s: &str| -> Option<Option<SocketAddr>> {
            if s == "-" {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        let unhex = |s: &str| -> Option<String> {
            if !s.len().is_multiple_of(2) {
                return None;
            }
            let bytes = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            String::from_utf8(bytes).ok()
        };
        let c = PageCursor {
            kind,
            remote: addr(next()?)?,
            local: addr(next()?)?,
            listener: addr(next()?)?,
            client_host: unhex(next()?)?,
            server_host: unhex(next()?)?,
        };
        next().is_none().then_some(c)
    }
}

impl Finding {
    /// See [`OrderKey`].
    pub fn order_key(&self) -> OrderKey<'_> {
        (
            self.kind,
            self.tuple.map(|t| t.remote()),
            self.tuple.map(|t| t.local()),
            self.listener,
            &self.client_host,
            &self.server_host,
        )
    }

    /// Where this finding lives in the engine: kind, the host that holds it,
    /// and the tuple in that host's view (a listener's own address for
    /// listener_at_risk).
    fn holder_key(&self, host_of: impl Fn(&str) -> HostIdx) -> FKey {
        match (self.kind, self.tuple) {
            (FindingKind::ServerOnly, Some(t)) => (self.kind, host_of(&self.server_host), t.mirror()),
            (_, Some(t)) => (self.kind, host_of(&self.client_host), t),
            (_, None) => (
                self.kind,
                host_of(&self.server_host),
                listener_key(self.listener.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))),
            ),
        }
    }
}

/// kind, holder host, tuple in the holder's view.
type FKey = (FindingKind, HostIdx, Tuple);

fn listener_key(addr: SocketAddr) -> Tuple {
    Tuple::new(addr, SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// A finding as listed: plus what is known about its hosts now.
#[derive(Clone, Debug)]
pub struct FindingView {
    pub finding: Finding,
    pub client_host_stale: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    /// The holder closed it (or its state left ESTABLISHED). For client_only
    /// and stalled_greeting the holder is the client.
    ClientClosed,
    /// The other host now holds it too (a client-speaks-first connection healed).
    ServerHasIt,
    /// The same 4-tuple now belongs to another socket.
    Replaced,
    /// stalled_greeting: the client has received data.
    Greeted,
    /// listener_at_risk: queue and counters back to normal; or the listener is gone.
    Recovered,
}

impl GoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::ClientClosed => "closed",
            GoneReason::ServerHasIt => "other_end_has_it",
            GoneReason::Replaced => "replaced",
            GoneReason::Greeted => "greeted",
            GoneReason::Recovered => "recovered",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a lookup to this host's current session.
    Lookup {
        host: HostIdx,
        session: u64,
        id: u64,
        tuples: Vec<Tuple>,
        attribute: bool,
    },
    /// Ask this host's collector for a full table.
    Resync {
        host: HostIdx,
        session: u64,
        reason: String,
    },
    Confirmed(Finding),
    Gone {
        finding: Finding,
        at_ms: i64,
        reason: GoneReason,
    },
}

/// A collector's report, in domain types (see halfopen_proto::convert).
#[derive(Clone, Debug, Default)]
pub struct ReportIn {
    pub seq: u64,
    pub full: bool,
    pub last_chunk: bool,
    pub upserted: Vec<SocketRecord>,
    pub removed: Vec<Tuple>,
    pub listeners: Vec<Listener>,
    pub addresses: Vec<IpAddr>,
    /// Absolute counter values (last chunk only; empty when not sent).
    pub counters: BTreeMap<String, u64>,
    pub sysctls: BTreeMap<String, String>,
    /// Complete list of silent sockets on greeting ports (last chunk only).
    pub silent: Vec<(Tuple, u32)>,
}

#[derive(Clone, Debug, Default)]
pub struct HelloIn {
    pub host_id: String,
    pub addresses: Vec<IpAddr>,
    pub interval_ms: u32,
    pub source: String,
    pub peer: String,
}

#[derive(Clone, Debug)]
pub struct LookupResultIn {
    pub tuple: Tuple,
    pub present: bool,
    pub state: Option<TcpState>,
    pub cookie: u64,
    pub process: Option<Process>,
    pub keepalive: bool,
}

/// What the engine keeps per socket: 16 bytes beside the 36-byte key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    cookie: u64,
    state: TcpState,
    side: Side,
    keepalive: bool,
    /// ESTABLISHED with inode 0: waiting in an accept queue.
    queued: bool,
}

impl Entry {
    fn of(r: &SocketRecord) -> Entry {
        Entry {
            cookie: r.cookie,
            state: r.state,
            side: r.side,
            keepalive: r.keepalive,
            queued: r.inode == 0 && r.state == TcpState::Established && r.side == Side::Server,
        }
    }
}

/// Counter deltas of one report, by reconciler time.
type CounterSample = (u64, BTreeMap<String, u64>);

/// One host as the engine knows it.
#[derive(Debug)]
pub struct HostState {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    table: HashMap<Tuple, Entry>,
    pub session: u64,
    pub connected: bool,
    pub peer: String,
    pub last_report: Option<Clock>,
    pub interval_ms: u32,
    pub source: String,
    /// Last applied report sequence; None until a full table is in place.
    seq: Option<u64>,
    full_buf: Option<(u64, Vec<SocketRecord>)>,
    pub listeners: Vec<Listener>,
    pub client_sockets: u64,
    pub server_sockets: u64,
    /// A judgement of one of this host's own sockets was skipped because the
    /// host was not judgeable: its table is judged again when it is.
    own_skipped: bool,
    pub sysctls: BTreeMap<String, String>,
    counters: BTreeMap<String, u64>,
    history: VecDeque<CounterSample>,
    silent: HashMap<Tuple, u32>,
    /// Per listener: last reconciler time it showed a sign of risk.
    risk_seen: HashMap<SocketAddr, u64>,
}

/// How much counter history a host keeps.
const HISTORY: usize = 128;

impl HostState {
    /// Counter increases reported at or after `since_mono`.
    fn deltas_since(&self, since_mono: u64) -> BTreeMap<String, u64> {
        let mut sum = BTreeMap::new();
        for (t, d) in &self.history {
            if *t >= since_mono {
                for (k, v) in d {
                    *sum.entry(k.clone()).or_insert(0) += v;
                }
            }
        }
        sum
    }

    /// The listener that accepts connections to `addr`, if any: one bound to
    /// that very address first, then a wildcard one.
    fn listener_for(&self, addr: SocketAddr) -> Option<&Listener> {
        let local = SocketAddr::new(halfopen_core::canonical_ip(addr.ip()), addr.port());
        self.listeners
            .iter()
            .find(|l| l.addr == local)
            .or_else(|| self.listeners.iter().find(|l| listener_accepts(l.addr, local)))
    }
}

/// A listener's accept queue at 80% of its backlog or more.
fn near_full(l: &Listener) -> bool {
    l.backlog > 0 && l.queue as u64 * 10 >= l.backlog as u64 * 8
}

/// Read-only summary of a host for `halfopen hosts`.
#[derive(Clone, Debug)]
pub struct HostView {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub last_report_wall_ms: Option<i64>,
    pub sockets: u64,
    pub client_sockets: u64,
    pub server_sockets: u64,
    pub listeners: u32,
    pub stale: bool,
    pub connected: bool,
    pub source: String,
    pub interval_ms: u32,
    pub peer: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Wait,
    /// The other host was asked whether it holds the tuple.
    OtherAsked(u64),
    /// The holder was asked whether it still holds the same socket.
    HolderAsked(u64),
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    cookie: u64,
    keepalive: bool,
    /// The host that should hold the other end.
    other: HostIdx,
    first_seen: Clock,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    OtherCheck,
    HolderCheck,
}

#[derive(Debug)]
struct Pending {
    host: HostIdx,
    session: u64,
    purpose: Purpose,
    sent_mono: u64,
    /// Candidate keys (holder host, holder-view tuple) this lookup serves.
    keys: Vec<(HostIdx, Tuple)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Host(HostIdx),
    Ambiguous,
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub reports: u64,
    pub resyncs_requested: u64,
    pub candidates_created: u64,
    pub cleared_by_other_lookup: u64,
    pub cleared_by_holder_lookup: u64,
    pub confirmed: u64,
    pub gone: u64,
    pub lookups_sent: u64,
    pub lookups_timed_out: u64,
    pub sweeps: u64,
}

pub struct Engine {
    cfg: EngineConfig,
    hosts: Vec<HostState>,
    by_name: HashMap<String, HostIdx>,
    owners: HashMap<IpAddr, Owner>,
    /// One-sided candidates by (holder host, holder-view tuple); the kind
    /// follows from the holder socket's side.
    candidates: HashMap<(HostIdx, Tuple), Candidate>,
    findings: HashMap<FKey, Finding>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    next_session: u64,
    /// Hosts whose addresses changed since the last sweep: sockets involving
    /// them are re-judged, coalesced.
    changed: HashSet<HostIdx>,
    /// Sockets whose judgement was skipped because the host at their other
    /// end was not judgeable, by that host (with the length at which the list
    /// is next compacted): judged again, and only they, when it is.
    waiting: HashMap<HostIdx, (Vec<(HostIdx, Tuple)>, usize)>,
    last_sweep_mono: u64,
    /// Current stalled_greeting findings per client host (their tuples), so
    /// a report looks only at its own host's, not at every finding.
    stalled: HashMap<HostIdx, HashSet<Tuple>>,
    /// Current client_only findings per (server host, server port): a
    /// listener stays at risk while orphans it caused are still there.
    orphans_by_port: HashMap<(HostIdx, u16), usize>,
    stats: EngineStats,
}

/// Sweeps run at most this often.
const SWEEP_EVERY_MS: u64 = 1_000;

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            hosts: Vec::new(),
            by_name: HashMap::new(),
            owners: HashMap::new(),
            candidates: HashMap::new(),
            findings: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            next_session: 1,
            changed: HashSet::new(),
            waiting: HashMap::new(),
            last_sweep_mono: 0,
            stalled: HashMap::new(),
            orphans_by_port: HashMap::new(),
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    fn host_index(&mut self, name: &str) -> HostIdx {
        if let Some(&h) = self.by_name.get(name) {
            return h;
        }
        let h = self.hosts.len();
        self.hosts.push(HostState {
            name: name.to_string(),
            addresses: Vec::new(),
            table: HashMap::new(),
            session: 0,
            connected: false,
            peer: String::new(),
            last_report: None,
            interval_ms: 5_000,
            source: String::new(),
            seq: None,
            full_buf: None,
            listeners: Vec::new(),
            client_sockets: 0,
            server_sockets: 0,
            own_skipped: false,
            sysctls: BTreeMap::new(),
            counters: BTreeMap::new(),
            history: VecDeque::new(),
            silent: HashMap::new(),
            risk_seen: HashMap::new(),
        });
        self.by_name.insert(name.to_string(), h);
        h
    }

    /// Puts back findings recorded before a restart. They stay listed until
    /// their holder's first full table says whether they still exist.
    pub fn restore(&mut self, findings: Vec<Finding>) {
        for f in findings {
            // listener_at_risk has no client host: "" is not a host
            for name in [&f.client_host, &f.server_host] {
                if !name.is_empty() {
                    self.host_index(name);
                }
            }
            let key = f.holder_key(|n| self.by_name.get(n).copied().unwrap_or(0));
            self.track_stalled(key, true);
            self.track_orphan(&f, 1);
            if let Some(old) = self.findings.insert(key, f) {
                self.track_orphan(&old, -1);
            }
        }
    }

    /// A collector opened a session. Returns its host index and session id;
    /// an older session of the same host id is superseded.
    pub fn connect(&mut self, hello: HelloIn, now: Clock) -> (HostIdx, u64) {
        let h = self.host_index(&hello.host_id);
        let session = self.next_session;
        self.next_session += 1;
        self.drop_pending_for(h);
        let host = &mut self.hosts[h];
        host.session = session;
        host.connected = true;
        host.peer = hello.peer;
        host.interval_ms = hello.interval_ms.max(1);
        host.source = hello.source;
        host.seq = None;
        host.full_buf = None;
        host.last_report = Some(now);
        self.set_addresses(h, hello.addresses);
        (h, session)
    }

    /// The session ended (stream closed or broken). Nothing is judged against
    /// the host until it is back with a full table.
    pub fn disconnect(&mut self, h: HostIdx, session: u64) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.session != session {
            return;
        }
        host.connected = false;
        host.seq = None;
        host.full_buf = None;
        self.drop_pending_for(h);
    }

    fn drop_pending_for(&mut self, h: HostIdx) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.host == h)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                for key in p.keys {
                    if self.candidates.remove(&key).is_some() {
                        self.defer(key, h);
                    }
                }
            }
        }
    }

    /// Remembers that `key`'s judgement waits for host `on` to be judgeable.
    fn defer(&mut self, key: (HostIdx, Tuple), on: HostIdx) {
        if key.0 == on {
            self.hosts[on].own_skipped = true;
            return;
        }
        let (list, compact_at) = self.waiting.entry(on).or_insert_with(|| (Vec::new(), 4096));
        list.push(key);
        if list.len() >= *compact_at {
            // Bounded by the live sockets involving `on`, not by how often
            // they were judged: drop duplicates and sockets gone since.
            list.sort_unstable();
            list.dedup();
            let hosts = &self.hosts;
            list.retain(|(c, t)| hosts[*c].table.contains_key(t));
            *compact_at = (list.len() * 2).max(4096);
        }
    }

    /// Judges again what waited for host `h`: its own table if a judgement
    /// of it was skipped, and the sockets elsewhere whose other end is `h`.
    fn rejudge(&mut self, h: HostIdx, now: Clock, out: &mut Vec<Action>) {
        self.stats.sweeps += 1;
        if std::mem::take(&mut self.hosts[h].own_skipped) {
            let socks: Vec<(Tuple, Entry)> = self.hosts[h]
                .table
                .iter()
                .filter(|(_, e)| e.state == TcpState::Established)
                .map(|(t, e)| (*t, *e))
                .collect();
            for (t, e) in socks {
                self.judge(h, t, e, now, out);
            }
        }
        let (mut list, _) = self.waiting.remove(&h).unwrap_or_default();
        list.sort_unstable();
        list.dedup();
        for (c, t) in list {
            if let Some(&e) = self.hosts[c].table.get(&t) {
                self.judge(c, t, e, now, out);
            }
        }
    }

    fn set_addresses(&mut self, h: HostIdx, mut addrs: Vec<IpAddr>) {
        addrs.iter_mut().for_each(|a| *a = halfopen_core::canonical_ip(*a));
        addrs.sort();
        addrs.dedup();
        if self.hosts[h].addresses == addrs {
            return;
        }
        self.hosts[h].addresses = addrs;
        self.rebuild_owners();
        self.changed.insert(h);
    }

    fn rebuild_owners(&mut self) {
        self.owners.clear();
        for (h, host) in self.hosts.iter().enumerate() {
            for &a in &host.addresses {
                if !is_matchable_ip(a) {
                    continue;
                }
                self.owners
                    .entry(a)
                    .and_modify(|o| {
                        if *o != Owner::Host(h) {
                            *o = Owner::Ambiguous
                        }
                    })
                    .or_insert(Owner::Host(h));
            }
        }
    }

    /// The monitored host that owns this address, if exactly one does.
    pub fn owner_of(&self, ip: IpAddr) -> Option<HostIdx> {
        match self.owners.get(&ip) {
            Some(Owner::Host(h)) => Some(*h),
            _ => None,
        }
    }

    fn is_stale(&self, h: HostIdx, now: Clock) -> bool {
        let host = &self.hosts[h];
        if !host.connected || host.seq.is_none() {
            return true;
        }
        let limit = (host.interval_ms as u64 * self.cfg.stale_intervals as u64).max(self.cfg.stale_min_ms);
        match host.last_report {
            Some(c) => now.mono_ms.saturating_sub(c.mono_ms) > limit,
            None => true,
        }
    }

    /// Whether findings may be judged with this host as one end.
    fn judgeable(&self, h: HostIdx, now: Clock) -> bool {
        !self.is_stale(h, now)
    }

    /// Applies a report. Returns actions (a resync request on a sequence gap,
    /// findings that appeared or went away).
    pub fn report(&mut self, h: HostIdx, session: u64, mut r: ReportIn, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        if self.hosts.get(h).map(|x| x.session) != Some(session) {
            return out;
        }
        self.stats.reports += 1;
        self.hosts[h].last_report = Some(now);
        if !r.addresses.is_empty() {
            self.set_addresses(h, std::mem::take(&mut r.addresses));
        }
        if r.full {
            let host = &mut self.hosts[h];
            match &mut host.full_buf {
                Some((seq, buf)) if *seq == r.seq => buf.append(&mut r.upserted),
                _ => host.full_buf = Some((r.seq, std::mem::take(&mut r.upserted))),
            }
            if !r.last_chunk {
                return out;
            }
            let (_, records) = host.full_buf.take().unwrap_or_default();
            let mut new_table: HashMap<Tuple, Entry> = HashMap::with_capacity(records.len());
            for rec in &records {
                new_table.insert(rec.tuple, Entry::of(rec));
            }
            let old = std::mem::replace(&mut host.table, new_table);
            host.seq = Some(r.seq);
            let (mut c, mut s) = (0, 0);
            for e in host.table.values() {
                match e.side {
                    Side::Client => c += 1,
                    Side::Server => s += 1,
                }
            }
            host.client_sockets = c;
            host.server_sockets = s;
            for (t, e) in &old {
                if !self.hosts[h].table.contains_key(t) {
                    self.on_removed(h, *t, *e, now, &mut out);
                }
            }
            // Findings restored from the store (or kept over a reconnect)
            // whose socket is not in the new table are gone.
            let mine: Vec<FKey> = self
                .findings
                .keys()
                .filter(|(k, x, _)| *x == h && *k != FindingKind::ListenerAtRisk)
                .copied()
                .collect();
            for key in mine {
                if !self.hosts[h].table.contains_key(&key.2) {
                    self.finish(key, GoneReason::ClientClosed, now, &mut out);
                }
            }
            let entries: Vec<(Tuple, Entry)> = self.hosts[h].table.iter().map(|(t, e)| (*t, *e)).collect();
            // Every socket of the table is judged here; sockets elsewhere whose
            // other end is here wait in `waiting` until the next tick.
            self.hosts[h].own_skipped = false;
            for (t, e) in entries {
                self.on_upsert(h, t, e, now, &mut out);
            }
        } else {
            let expected = self.hosts[h].seq.map(|s| s + 1);
            if expected != Some(r.seq) {
                let reason = match expected {
                    None => "delta before a full table".to_string(),
                    Some(e) => format!("sequence gap: expected {e}, got {}", r.seq),
                };
                self.hosts[h].seq = None;
                self.stats.resyncs_requested += 1;
                out.push(Action::Resync {
                    host: h,
                    session,
                    reason,
                });
                return out;
            }
            self.hosts[h].seq = Some(r.seq);
            for t in &r.removed {
                if let Some(e) = self.hosts[h].table.remove(t) {
                    self.count(h, e.side, -1);
                    self.on_removed(h, *t, e, now, &mut out);
                }
            }
            for rec in &r.upserted {
                let e = Entry::of(rec);
                match self.hosts[h].table.insert(rec.tuple, e) {
                    Some(old) => {
                        self.count(h, old.side, -1);
                        self.count(h, e.side, 1);
                    }
                    None => self.count(h, e.side, 1),
                }
                self.on_upsert(h, rec.tuple, e, now, &mut out);
            }
        }
        if r.last_chunk {
            self.host_state_report(h, r, now, &mut out);
        }
        out
    }

    /// The host-level part of a report: listeners, counters, sysctls, silent
    /// sockets; then the findings that depend on them.
    fn host_state_report(&mut self, h: HostIdx, r: ReportIn, now: Clock, out: &mut Vec<Action>) {
        let host = &mut self.hosts[h];
        host.listeners = r.listeners;
        if !r.sysctls.is_empty() {
            host.sysctls = r.sysctls;
        }
        if !r.counters.is_empty() {
            if !host.counters.is_empty() {
                let d = halfopen_core::counters::deltas(&host.counters, &r.counters);
                host.history.push_back((now.mono_ms, d));
                while host.history.len() > HISTORY {
                    host.history.pop_front();
                }
            }
            host.counters = r.counters;
        }
        host.silent = r.silent.into_iter().collect();
        self.judge_stalled(h, now, out);
        self.judge_listeners(h, now, out);
    }

    fn count(&mut self, h: HostIdx, side: Side, d: i64) {
        let host = &mut self.hosts[h];
        let c = match side {
            Side::Client => &mut host.client_sockets,
            Side::Server => &mut host.server_sockets,
        };
        *c = (*c as i64 + d).max(0) as u64;
    }

    /// A socket appeared or changed on host `h`.
    fn on_upsert(&mut self, h: HostIdx, t: Tuple, e: Entry, now: Clock, out: &mut Vec<Action>) {
        // Whatever its side and state, this host now holds the tuple: the
        // other end's candidate or finding for the mirror is not one-sided.
        if let Some(o) = self.owner_of(t.remote_ip()) {
            let m = t.mirror();
            self.candidates.remove(&(o, m));
            for kind in [FindingKind::ClientOnly, FindingKind::ServerOnly] {
                self.finish((kind, o, m), GoneReason::ServerHasIt, now, out);
            }
        }
        self.judge(h, t, e, now, out);
    }

    /// A socket left host `h`.
    fn on_removed(&mut self, h: HostIdx, t: Tuple, _e: Entry, now: Clock, out: &mut Vec<Action>) {
        self.candidates.remove(&(h, t));
        for kind in [
            FindingKind::ClientOnly,
            FindingKind::ServerOnly,
            FindingKind::StalledGreeting,
        ] {
            self.finish((kind, h, t), GoneReason::ClientClosed, now, out);
        }
        // The other end may now be one-sided, and no longer stalled.
        if let Some(o) = self.owner_of(t.remote_ip()) {
            let m = t.mirror();
            self.finish((FindingKind::StalledGreeting, o, m), GoneReason::ClientClosed, now, out);
            if let Some(&oe) = self.hosts[o].table.get(&m) {
                self.judge(o, m, oe, now, out);
            }
        }
    }

    /// Keeps `orphans_by_port` in step with client_only findings.
    fn track_orphan(&mut self, f: &Finding, d: isize) {
        if f.kind != FindingKind::ClientOnly {
            return;
        }
        let (Some(t), Some(&s)) = (f.tuple, self.by_name.get(&f.server_host)) else {
            return;
        };
        let n = self.orphans_by_port.entry((s, t.remote_port())).or_insert(0);
        *n = n.saturating_add_signed(d);
        if *n == 0 {
            self.orphans_by_port.remove(&(s, t.remote_port()));
        }
    }

    /// Keeps [`Engine::stalled`] in step with the findings (any other kind: nothing).
    fn track_stalled(&mut self, (kind, h, t): FKey, present: bool) {
        if kind != FindingKind::StalledGreeting {
            return;
        }
        if present {
            self.stalled.entry(h).or_default().insert(t);
        } else if let Some(set) = self.stalled.get_mut(&h) {
            set.remove(&t);
            if set.is_empty() {
                self.stalled.remove(&h);
            }
        }
    }

    fn finish(&mut self, key: FKey, reason: GoneReason, now: Clock, out: &mut Vec<Action>) {
        if let Some(f) = self.findings.remove(&key) {
            self.track_orphan(&f, -1);
            self.track_stalled(key, false);
            self.stats.gone += 1;
            out.push(Action::Gone {
                finding: f,
                at_ms: now.wall_ms,
                reason,
            });
        }
    }

    /// Decides whether a socket held by `h` is a one-sided candidate: client
    /// side for client_only, server side for server_only.
    fn judge(&mut self, h: HostIdx, t: Tuple, e: Entry, now: Clock, out: &mut Vec<Action>) {
        let key = (h, t);
        let kind = FindingKind::one_sided(e.side);
        let other_kind = FindingKind::one_sided(match e.side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        });
        // A side flip (a listener appeared on the port) retires the other kind.
        self.finish((other_kind, h, t), GoneReason::Replaced, now, out);
        if e.state != TcpState::Established {
            self.candidates.remove(&key);
            self.finish((kind, h, t), GoneReason::ClientClosed, now, out);
            return;
        }
        if let Some(f) = self.findings.get(&(kind, h, t)) {
            if f.cookie == e.cookie {
                return;
            }
            self.finish((kind, h, t), GoneReason::Replaced, now, out);
        }
        let Some(o) = self.owner_of(t.remote_ip()) else {
            return; // unmonitored or ambiguous address: never judged
        };
        if !self.judgeable(h, now) {
            self.defer(key, h);
            return;
        }
        if !self.judgeable(o, now) {
            self.defer(key, o);
            return;
        }
        if self.hosts[o].table.contains_key(&t.mirror()) {
            self.candidates.remove(&key);
            return;
        }
        if let Some(cand) = self.candidates.get(&key) {
            if cand.cookie == e.cookie {
                return;
            }
        }
        self.stats.candidates_created += 1;
        self.candidates.insert(
            key,
            Candidate {
                cookie: e.cookie,
                keepalive: e.keepalive,
                other: o,
                first_seen: now,
                phase: Phase::Wait,
            },
        );
    }

    /// stalled_greeting from host `c`'s complete list of silent sockets.
    fn judge_stalled(&mut self, c: HostIdx, now: Clock, out: &mut Vec<Action>) {
        // Findings whose socket is no longer silent: greeted (or closed).
        let current: Vec<FKey> = self
            .stalled
            .get(&c)
            .into_iter()
            .flatten()
            .filter(|t| !self.hosts[c].silent.contains_key(t))
            .map(|&t| (FindingKind::StalledGreeting, c, t))
            .collect();
        for key in current {
            let reason = if self.hosts[c].table.contains_key(&key.2) {
                GoneReason::Greeted
            } else {
                GoneReason::ClientClosed
            };
            self.finish(key, reason, now, out);
        }
        if !self.judgeable(c, now) {
            return;
        }
        let silent: Vec<(Tuple, u32)> = self.hosts[c].silent.iter().map(|(t, ms)| (*t, *ms)).collect();
        for (t, ms) in silent {
            if ms < self.cfg.stall_after_ms || !self.cfg.greeting_ports.contains(&t.remote_port()) {
                continue;
            }
            let Some(&e) = self.hosts[c].table.get(&t) else {
                continue;
            };
            if e.side != Side::Client || e.state != TcpState::Established {
                continue;
            }
            let Some(s) = self.owner_of(t.remote_ip()) else {
                continue;
            };
            if !self.judgeable(s, now) {
                continue;
            }
            // The server must hold it: otherwise this is client_only territory.
            let Some(&se) = self.hosts[s].table.get(&t.mirror()) else {
                continue;
            };
            if se.state != TcpState::Established {
                continue;
            }
            let key = (FindingKind::StalledGreeting, c, t);
            let listener = self.hosts[s].listener_for(t.remote()).cloned();
            let server_proc = listener.as_ref().and_then(|l| l.process.clone());
            let proc_name = crate::explain::process_label(server_proc.as_ref(), "the server process");
            let explanation = crate::explain::stalled_greeting(
                ms,
                se.queued,
                &proc_name,
                listener.as_ref().is_some_and(|l| l.libwrap),
            );
            if let Some(f) = self.findings.get_mut(&key) {
                f.silent_ms = ms;
                f.in_accept_queue = se.queued;
                f.explanation = explanation;
                continue;
            }
            let f = Finding {
                kind: FindingKind::StalledGreeting,
                tuple: Some(t),
                listener: listener.as_ref().map(|l| l.addr),
                cookie: e.cookie,
                client_host: self.hosts[c].name.clone(),
                server_host: self.hosts[s].name.clone(),
                process: None,
                server_process: server_proc,
                keepalive: e.keepalive,
                first_seen_ms: now.wall_ms,
                confirmed_at_ms: now.wall_ms,
                explanation,
                silent_ms: ms,
                in_accept_queue: se.queued,
            };
            self.stats.confirmed += 1;
            self.track_stalled(key, true);
            self.findings.insert(key, f.clone());
            out.push(Action::Confirmed(f));
        }
    }

    /// The window used for "recently": `risk_intervals` of the host's intervals.
    fn risk_window_ms(&self, h: HostIdx) -> u64 {
        self.hosts[h].interval_ms as u64 * self.cfg.risk_intervals.max(1) as u64
    }

    /// listener_at_risk for host `s` after a report.
    fn judge_listeners(&mut self, s: HostIdx, now: Clock, out: &mut Vec<Action>) {
        let window = self.risk_window_ms(s);
        let since = now.mono_ms.saturating_sub(window);
        let deltas = self.hosts[s].deltas_since(since);
        let counters_rose = crate::explain::overflowed(&deltas);
        let listeners = self.hosts[s].listeners.clone();
        // Listeners that current client_only findings point at.
        let orphaned = |port: u16| self.orphans_by_port.contains_key(&(s, port));
        let routable: Vec<&Listener> = listeners.iter().filter(|l| !l.addr.ip().is_loopback()).collect();
        let only_one = routable.len() == 1;
        let mut hot = Vec::new();
        for l in &listeners {
            let near_full = near_full(l);
            let half_full = l.backlog > 0 && l.queue as u64 * 2 >= l.backlog as u64;
            let has_orphans = orphaned(l.addr.port());
            let culprit = half_full || has_orphans || (only_one && !l.addr.ip().is_loopback());
            // Still at risk while the orphans its overflow left are there.
            if near_full || has_orphans || (counters_rose && culprit) {
                hot.push(l.addr);
            }
        }
        for a in hot {
            self.hosts[s].risk_seen.insert(a, now.mono_ms);
        }
        let host_name = self.hosts[s].name.clone();
        let live: HashSet<SocketAddr> = listeners.iter().map(|l| l.addr).collect();
        let seen: Vec<(SocketAddr, u64)> = self.hosts[s].risk_seen.iter().map(|(a, t)| (*a, *t)).collect();
        for (addr, last) in seen {
            let key = (FindingKind::ListenerAtRisk, s, listener_key(addr));
            if !live.contains(&addr) || now.mono_ms.saturating_sub(last) > window {
                self.hosts[s].risk_seen.remove(&addr);
                self.finish(key, GoneReason::Recovered, now, out);
                continue;
            }
            let l = listeners.iter().find(|l| l.addr == addr).cloned();
            let near_full = l.as_ref().is_some_and(near_full);
            let ctx = crate::explain::ListenerContext {
                host: &host_name,
                listener: l.as_ref(),
                sysctls: &self.hosts[s].sysctls,
                deltas: &deltas,
                window_s: window / 1000,
            };
            let explanation = crate::explain::listener_at_risk(&ctx, near_full);
            if let Some(f) = self.findings.get_mut(&key) {
                // Keep the explanation of the worst moment: only replace it
                // when there is something to say now.
                if near_full || counters_rose {
                    f.explanation = explanation;
                }
                continue;
            }
            let f = Finding {
                kind: FindingKind::ListenerAtRisk,
                tuple: None,
                listener: Some(addr),
                cookie: 0,
                client_host: String::new(),
                server_host: host_name.clone(),
                process: None,
                server_process: l.as_ref().and_then(|l| l.process.clone()),
                keepalive: false,
                first_seen_ms: now.wall_ms,
                confirmed_at_ms: now.wall_ms,
                explanation,
                silent_ms: 0,
                in_accept_queue: false,
            };
            self.stats.confirmed += 1;
            self.findings.insert(key, f.clone());
            out.push(Action::Confirmed(f));
        }
    }

    /// Periodic work: staleness transitions, sweeps, lookup timeouts, and the
    /// next batch of lookups to the other hosts.
    pub fn tick(&mut self, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        for h in 0..self.hosts.len() {
            let j = self.judgeable(h, now);
            if j && (self.hosts[h].own_skipped || self.waiting.contains_key(&h)) {
                self.rejudge(h, now, &mut out);
            }
        }
        if !self.changed.is_empty() && now.mono_ms >= self.last_sweep_mono + SWEEP_EVERY_MS {
            let changed = std::mem::take(&mut self.changed);
            self.last_sweep_mono = now.mono_ms;
            self.sweep(&changed, now, &mut out);
        }

        // Lookups that were never answered: the candidates start over.
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.mono_ms.saturating_sub(p.sent_mono) > self.cfg.lookup_timeout_ms)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                self.stats.lookups_timed_out += 1;
                for key in p.keys {
                    if let Some(c) = self.candidates.get_mut(&key) {
                        c.phase = Phase::Wait;
                    }
                }
            }
        }

        // Checks on the other end, batched per host.
        let mut batches: HashMap<HostIdx, Vec<(HostIdx, Tuple)>> = HashMap::new();
        let mut drop = Vec::new();
        for (&(h, t), cand) in &self.candidates {
            if cand.phase != Phase::Wait {
                continue;
            }
            if !self.judgeable(h, now) {
                drop.push(((h, t), h));
                continue;
            }
            if !self.judgeable(cand.other, now) {
                drop.push(((h, t), cand.other));
                continue;
            }
            if now.mono_ms >= cand.first_seen.mono_ms + self.cfg.grace_ms {
                batches.entry(cand.other).or_default().push((h, t));
            }
        }
        for (key, on) in drop {
            self.candidates.remove(&key);
            self.defer(key, on);
        }
        for (o, keys) in batches {
            for chunk in keys.chunks(self.cfg.max_lookup_batch) {
                let tuples = chunk.iter().map(|(_, t)| t.mirror()).collect();
                let id = self.send(o, Purpose::OtherCheck, chunk.to_vec(), tuples, false, now, &mut out);
                for key in chunk {
                    if let Some(c) = self.candidates.get_mut(key) {
                        c.phase = Phase::OtherAsked(id);
                    }
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        host: HostIdx,
        purpose: Purpose,
        keys: Vec<(HostIdx, Tuple)>,
        tuples: Vec<Tuple>,
        attribute: bool,
        now: Clock,
        out: &mut Vec<Action>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let session = self.hosts[host].session;
        self.pending.insert(
            id,
            Pending {
                host,
                session,
                purpose,
                sent_mono: now.mono_ms,
                keys,
            },
        );
        self.stats.lookups_sent += 1;
        out.push(Action::Lookup {
            host,
            session,
            id,
            tuples,
            attribute,
        });
        id
    }

    /// Re-judges the ESTABLISHED sockets that involve a host in `changed`
    /// (held by it, or with their other end on it): after it became judgeable
    /// or its addresses changed. Coalesced, at most once a second.
    fn sweep(&mut self, changed: &HashSet<HostIdx>, now: Clock, out: &mut Vec<Action>) {
        self.stats.sweeps += 1;
        for h in 0..self.hosts.len() {
            if !self.judgeable(h, now) {
                continue;
            }
            let all = changed.contains(&h);
            let socks: Vec<(Tuple, Entry)> = self.hosts[h]
                .table
                .iter()
                .filter(|(t, e)| {
                    e.state == TcpState::Established
                        && match self.owner_of(t.remote_ip()) {
                            Some(o) => all || changed.contains(&o),
                            None => false,
                        }
                })
                .map(|(t, e)| (*t, *e))
                .collect();
            for (t, e) in socks {
                self.judge(h, t, e, now, out);
            }
        }
    }

    /// A collector answered a lookup.
    pub fn lookup_reply(
        &mut self,
        h: HostIdx,
        session: u64,
        id: u64,
        results: Vec<LookupResultIn>,
        now: Clock,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(p) = self.pending.remove(&id) else {
            return out;
        };
        if p.host != h || p.session != session {
            // Not this session's: put it back for its owner or the timeout.
            self.pending.insert(id, p);
            return out;
        }
        let by_tuple: HashMap<Tuple, LookupResultIn> = results.into_iter().map(|r| (r.tuple, r)).collect();
        match p.purpose {
            Purpose::OtherCheck => {
                let mut next: HashMap<HostIdx, Vec<(HostIdx, Tuple)>> = HashMap::new();
                for key in p.keys {
                    let Some(cand) = self.candidates.get(&key) else {
                        continue;
                    };
                    if cand.phase != Phase::OtherAsked(id) {
                        continue;
                    }
                    match by_tuple.get(&key.1.mirror()) {
                        Some(r) if !r.present => next.entry(key.0).or_default().push(key),
                        // Present in some state: not one-sided.
                        Some(_) => {
                            self.stats.cleared_by_other_lookup += 1;
                            self.candidates.remove(&key);
                        }
                        None => {
                            if let Some(c) = self.candidates.get_mut(&key) {
                                c.phase = Phase::Wait;
                            }
                        }
                    }
                }
                for (h2, keys) in next {
                    if !self.judgeable(h2, now) {
                        // judged again once the holder is judgeable (dropping
                        // them lost an orphan whose socket never changes)
                        for k in keys {
                            self.candidates.remove(&k);
                            self.defer(k, h2);
                        }
                        continue;
                    }
                    for chunk in keys.chunks(self.cfg.max_lookup_batch) {
                        let tuples = chunk.iter().map(|(_, t)| *t).collect();
                        let nid = self.send(h2, Purpose::HolderCheck, chunk.to_vec(), tuples, true, now, &mut out);
                        for key in chunk {
                            if let Some(cd) = self.candidates.get_mut(key) {
                                cd.phase = Phase::HolderAsked(nid);
                            }
                        }
                    }
                }
            }
            Purpose::HolderCheck => {
                for key in p.keys {
                    let Some(cand) = self.candidates.get(&key).copied() else {
                        continue;
                    };
                    if cand.phase != Phase::HolderAsked(id) {
                        continue;
                    }
                    let Some(r) = by_tuple.get(&key.1) else {
                        // not answered for: asked again, as for the other side
                        if let Some(c) = self.candidates.get_mut(&key) {
                            c.phase = Phase::Wait;
                        }
                        continue;
                    };
                    self.candidates.remove(&key);
                    let same_socket = r.present && r.state == Some(TcpState::Established) && r.cookie == cand.cookie;
                    let Some(&e) = self.hosts[key.0].table.get(&key.1) else {
                        continue;
                    };
                    if !same_socket {
                        self.stats.cleared_by_holder_lookup += 1;
                        continue;
                    }
                    let f = self.one_sided_finding(key.0, key.1, e.side, &cand, r, now);
                    self.track_orphan(&f, 1);
                    self.stats.confirmed += 1;
                    self.findings.insert((f.kind, key.0, key.1), f.clone());
                    out.push(Action::Confirmed(f));
                }
            }
        }
        out
    }

    /// Builds a confirmed client_only / server_only finding with its explanation.
    fn one_sided_finding(
        &self,
        holder: HostIdx,
        t: Tuple,
        side: Side,
        cand: &Candidate,
        r: &LookupResultIn,
        now: Clock,
    ) -> Finding {
        let other = cand.other;
        let keepalive = r.keepalive || cand.keepalive;
        match side {
            Side::Client => {
                let server = &self.hosts[other];
                let listener = server.listener_for(t.remote());
                // The counters in the window around its appearance: from two
                // of the server's intervals before it was first seen.
                let since = cand.first_seen.mono_ms.saturating_sub(2 * server.interval_ms as u64);
                let deltas = server.deltas_since(since);
                let ctx = crate::explain::ListenerContext {
                    host: &server.name,
                    listener,
                    sysctls: &server.sysctls,
                    deltas: &deltas,
                    window_s: now.mono_ms.saturating_sub(since).div_ceil(1000),
                };
                Finding {
                    kind: FindingKind::ClientOnly,
                    tuple: Some(t),
                    listener: listener.map(|l| l.addr),
                    cookie: cand.cookie,
                    client_host: self.hosts[holder].name.clone(),
                    server_host: server.name.clone(),
                    process: r.process.clone(),
                    server_process: listener.and_then(|l| l.process.clone()),
                    keepalive,
                    first_seen_ms: cand.first_seen.wall_ms,
                    confirmed_at_ms: now.wall_ms,
                    explanation: crate::explain::client_only(&ctx, &t.remote().to_string(), keepalive),
                    silent_ms: 0,
                    in_accept_queue: false,
                }
            }
            Side::Server => {
                let proc_name = crate::explain::process_label(r.process.as_ref(), "the server process");
                let listener = self.hosts[holder].listener_for(t.local());
                Finding {
                    kind: FindingKind::ServerOnly,
                    tuple: Some(t.mirror()),
                    listener: listener.map(|l| l.addr),
                    cookie: cand.cookie,
                    client_host: self.hosts[other].name.clone(),
                    server_host: self.hosts[holder].name.clone(),
                    process: None,
                    server_process: r.process.clone(),
                    keepalive,
                    first_seen_ms: cand.first_seen.wall_ms,
                    confirmed_at_ms: now.wall_ms,
                    explanation: crate::explain::server_only(&self.hosts[other].name, &proc_name),
                    silent_ms: 0,
                    in_accept_queue: false,
                }
            }
        }
    }

    /// Current findings, ordered by kind, server endpoint, then client.
    /// Every current finding, in [`Finding::order_key`] order.
    pub fn findings(&self, now: Clock) -> Vec<FindingView> {
        self.findings_page(now, None, None, usize::MAX).0
    }

    /// Up to `limit` findings of `kind` (every kind if None) that come after
    /// `after` in [`Finding::order_key`] order, and the cursor to ask for the
    /// next page with (None when nothing follows). Findings that appear or go
    /// between pages are seen or not, but none is listed twice.
    pub fn findings_page(
        &self,
        now: Clock,
        kind: Option<FindingKind>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> (Vec<FindingView>, Option<PageCursor>) {
        let mut v: Vec<(&FKey, &Finding)> = self
            .findings
            .iter()
            .filter(|(_, f)| kind.is_none_or(|k| f.kind == k) && after.is_none_or(|a| f.order_key() > a.key()))
            .collect();
        let more = v.len() > limit;
        if more {
            v.select_nth_unstable_by(limit, |a, b| a.1.order_key().cmp(&b.1.order_key()));
            v.truncate(limit);
        }
        v.sort_unstable_by(|a, b| a.1.order_key().cmp(&b.1.order_key()));
        let next = if more {
            v.last().map(|(_, f)| PageCursor::of(f))
        } else {
            None
        };
        let views = v
            .into_iter()
            .map(|(&(_, h, _), f)| FindingView {
                finding: f.clone(),
                client_host_stale: match f.kind {
                    FindingKind::ClientOnly | FindingKind::StalledGreeting => self.is_stale(h, now),
                    _ => self.by_name.get(&f.client_host).is_some_and(|&c| self.is_stale(c, now)),
                },
            })
            .collect();
        (views, next)
    }

    pub fn hosts(&self, now: Clock) -> Vec<HostView> {
        let mut v: Vec<HostView> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(h, x)| HostView {
                name: x.name.clone(),
                addresses: x.addresses.clone(),
                last_report_wall_ms: x.last_report.map(|c| c.wall_ms),
                sockets: x.table.len() as u64,
                client_sockets: x.client_sockets,
                server_sockets: x.server_sockets,
                listeners: x.listeners.len() as u32,
                stale: self.is_stale(h, now),
                connected: x.connected,
                source: x.source.clone(),
                interval_ms: x.interval_ms,
                peer: x.peer.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Diagnoses for `target`: empty = every listener at risk or with
    /// findings; a host id; "host:port" or "ip:port" of a listener; or the
    /// client endpoint of a finding.
    pub fn explain(&self, target: &str, now: Clock) -> Result<Vec<crate::explain::Diagnosis>, String> {
        let target = target.trim();
        let mut want: Vec<(HostIdx, Option<SocketAddr>)> = Vec::new();
        if target.is_empty() {
            let mut set: BTreeSet<(HostIdx, Option<SocketAddr>)> = BTreeSet::new();
            for ((_, _, _), f) in &self.findings {
                if let Some(&s) = self.by_name.get(&f.server_host) {
                    let addr = f.listener.or_else(|| f.tuple.map(|t| t.remote()));
                    set.insert((
                        s,
                        addr.and_then(|a| self.hosts[s].listener_for(a).map(|l| l.addr))
                            .or(addr),
                    ));
                }
            }
            want.extend(set);
        } else if let Some(&h) = self.by_name.get(target) {
            let mut set: BTreeSet<(HostIdx, Option<SocketAddr>)> = BTreeSet::new();
            for f in self
                .findings
                .values()
                .filter(|f| f.server_host == target || f.client_host == target)
            {
                if let Some(&s) = self.by_name.get(&f.server_host) {
                    let addr = f.listener.or_else(|| f.tuple.map(|t| t.remote()));
                    set.insert((
                        s,
                        addr.and_then(|a| self.hosts[s].listener_for(a).map(|l| l.addr))
                            .or(addr),
                    ));
                }
            }
            if set.is_empty() {
                set.insert((h, None));
            }
            want.extend(set);
        } else if let Some((host, port)) = target
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Some(&h) = self.by_name.get(host) {
                let l = self.hosts[h]
                    .listeners
                    .iter()
                    .find(|l| l.addr.port() == port)
                    .map(|l| l.addr);
                want.push((h, l.or(Some(SocketAddr::from(([0, 0, 0, 0], port))))));
            } else if let Some(ep) = halfopen_core::parse_endpoint(target) {
                // A finding's client endpoint, or a listener's ip:port.
                let by_client = self
                    .findings
                    .values()
                    .find(|f| f.tuple.is_some_and(|t| t.local() == ep));
                if let Some(f) = by_client {
                    let s = *self.by_name.get(&f.server_host).ok_or("unknown server host")?;
                    let mut d = self.listener_diag(s, f.tuple.map(|t| t.remote()), now);
                    d.facts
                        .insert(0, format!("{} {}: {}", f.kind.as_str(), ep, f.explanation));
                    return Ok(vec![d]);
                }
                let s = self
                    .owner_of(ep.ip())
                    .ok_or_else(|| format!("no monitored host owns {}", ep.ip()))?;
                want.push((s, Some(ep)));
            } else {
                return Err(format!("unknown host {host:?}"));
            }
        } else {
            return Err(format!(
                "{target:?} is neither a host, a host:port listener, nor an ip:port of a finding"
            ));
        }
        Ok(want.into_iter().map(|(h, a)| self.listener_diag(h, a, now)).collect())
    }

    fn listener_diag(&self, h: HostIdx, addr: Option<SocketAddr>, now: Clock) -> crate::explain::Diagnosis {
        let host = &self.hosts[h];
        let window = self.risk_window_ms(h).max(60_000);
        let deltas = host.deltas_since(now.mono_ms.saturating_sub(window));
        let listener = addr.and_then(|a| host.listener_for(a));
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for f in self.findings.values() {
            let on_it = match (listener, f.tuple, f.listener) {
                (Some(l), Some(t), _) => {
                    f.server_host == host.name && host.listener_for(t.remote()).map(|x| x.addr) == Some(l.addr)
                }
                (Some(l), None, Some(fl)) => f.server_host == host.name && fl == l.addr,
                (None, _, _) => f.server_host == host.name,
                _ => false,
            };
            if on_it {
                *by_kind.entry(f.kind.as_str().to_string()).or_insert(0) += 1;
            }
        }
        let ctx = crate::explain::ListenerContext {
            host: &host.name,
            listener,
            sysctls: &host.sysctls,
            deltas: &deltas,
            window_s: window / 1000,
        };
        let mut d = crate::explain::listener_diagnosis(&ctx, &by_kind);
        if self.is_stale(h, now) {
            d.facts.insert(
                0,
                format!("host {} is stale: its collector has not reported recently", host.name),
            );
        }
        d
    }

    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }
}

#[cfg(test)]
mod tests;
