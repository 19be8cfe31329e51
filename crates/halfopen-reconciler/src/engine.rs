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
use halfopen_core::{is_matchable_ip, Listener, Process, Side, SocketRecord, TcpState, Tuple};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            grace_ms: 1_000,
            stale_intervals: 3,
            stale_min_ms: 3_000,
            lookup_timeout_ms: 15_000,
            max_lookup_batch: 20_000,
        }
    }
}

pub type HostIdx = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The client holds the connection ESTABLISHED; the server host has no trace of it.
    ClientOnly,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ClientOnly => "client_only",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_only" => Some(FindingKind::ClientOnly),
            _ => None,
        }
    }
}

/// A confirmed one-sided connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// Client's view: local = client end, remote = server end.
    pub tuple: Tuple,
    pub cookie: u64,
    pub client_host: String,
    pub server_host: String,
    pub process: Option<Process>,
    pub keepalive: bool,
    pub first_seen_ms: i64,
    pub confirmed_at_ms: i64,
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
    /// The client closed it (or its state left ESTABLISHED).
    ClientClosed,
    /// The server host now holds it (a client-speaks-first connection healed).
    ServerHasIt,
    /// The same 4-tuple now belongs to another socket.
    Replaced,
}

impl GoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::ClientClosed => "client_closed",
            GoneReason::ServerHasIt => "server_has_it",
            GoneReason::Replaced => "replaced",
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

/// A collector's report, in domain types (see `wire` for the conversion).
#[derive(Clone, Debug, Default)]
pub struct ReportIn {
    pub seq: u64,
    pub full: bool,
    pub last_chunk: bool,
    pub upserted: Vec<SocketRecord>,
    pub removed: Vec<Tuple>,
    pub listeners: Vec<Listener>,
    pub addresses: Vec<IpAddr>,
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
}

impl Entry {
    fn of(r: &SocketRecord) -> Entry {
        Entry {
            cookie: r.cookie,
            state: r.state,
            side: r.side,
            keepalive: r.keepalive,
        }
    }
}

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
    judgeable_last_tick: bool,
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
    ServerAsked(u64),
    ClientAsked(u64),
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    cookie: u64,
    keepalive: bool,
    server: HostIdx,
    first_seen: Clock,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    ServerCheck,
    ClientCheck,
}

#[derive(Debug)]
struct Pending {
    host: HostIdx,
    session: u64,
    purpose: Purpose,
    sent_mono: u64,
    /// Candidate keys (client host, client-view tuple) this lookup serves.
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
    pub cleared_by_server_lookup: u64,
    pub cleared_by_client_lookup: u64,
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
    candidates: HashMap<(HostIdx, Tuple), Candidate>,
    orphans: HashMap<(HostIdx, Tuple), Finding>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    next_session: u64,
    dirty: bool,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            hosts: Vec::new(),
            by_name: HashMap::new(),
            owners: HashMap::new(),
            candidates: HashMap::new(),
            orphans: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            next_session: 1,
            dirty: false,
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
            judgeable_last_tick: false,
        });
        self.by_name.insert(name.to_string(), h);
        h
    }

    /// Puts back findings recorded before a restart. They stay listed until
    /// their client host's first full table says whether they still exist.
    pub fn restore(&mut self, findings: Vec<Finding>) {
        for f in findings {
            let c = self.host_index(&f.client_host);
            self.host_index(&f.server_host);
            self.orphans.insert((c, f.tuple), f);
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
                    self.candidates.remove(&key);
                }
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
        self.dirty = true;
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
    /// findings that went away).
    pub fn report(&mut self, h: HostIdx, session: u64, r: ReportIn, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        if self.hosts.get(h).map(|x| x.session) != Some(session) {
            return out;
        }
        self.stats.reports += 1;
        self.hosts[h].last_report = Some(now);
        if !r.addresses.is_empty() {
            self.set_addresses(h, r.addresses);
        }
        if r.full {
            let host = &mut self.hosts[h];
            match &mut host.full_buf {
                Some((seq, buf)) if *seq == r.seq => buf.extend(r.upserted),
                _ => host.full_buf = Some((r.seq, r.upserted)),
            }
            if !r.last_chunk {
                return out;
            }
            let (_, records) = host.full_buf.take().unwrap_or_default();
            host.listeners = r.listeners;
            let mut new_table: HashMap<Tuple, Entry> = HashMap::with_capacity(records.len());
            for rec in &records {
                new_table.insert(rec.tuple, Entry::of(rec));
            }
            let old = std::mem::replace(&mut host.table, new_table);
            host.seq = Some(r.seq);
            host.client_sockets = 0;
            host.server_sockets = 0;
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
            // Orphans restored from the store (or kept over a reconnect) whose
            // socket is not in the new table are gone.
            let mine: Vec<Tuple> = self.orphans.keys().filter(|(c, _)| *c == h).map(|(_, t)| *t).collect();
            for t in mine {
                if !self.hosts[h].table.contains_key(&t) {
                    self.finish_orphan(h, t, GoneReason::ClientClosed, now, &mut out);
                }
            }
            let entries: Vec<(Tuple, Entry)> = self.hosts[h].table.iter().map(|(t, e)| (*t, *e)).collect();
            for (t, e) in entries {
                self.on_upsert(h, t, e, now, &mut out);
            }
            self.dirty = true;
            return out;
        }

        // Delta.
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
        if r.last_chunk {
            self.hosts[h].listeners = r.listeners;
        }
        for t in r.removed {
            if let Some(e) = self.hosts[h].table.remove(&t) {
                self.count(h, e.side, -1);
                self.on_removed(h, t, e, now, &mut out);
            }
        }
        for rec in r.upserted {
            let e = Entry::of(&rec);
            match self.hosts[h].table.insert(rec.tuple, e) {
                Some(old) => {
                    self.count(h, old.side, -1);
                    self.count(h, e.side, 1);
                }
                None => self.count(h, e.side, 1),
            }
            self.on_upsert(h, rec.tuple, e, now, &mut out);
        }
        out
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
        // Whatever its side, this host now holds the tuple: the other end's
        // candidate or orphan for the mirror is not one-sided any more.
        if let Some(c) = self.owner_of(t.remote_ip()) {
            let key = (c, t.mirror());
            self.candidates.remove(&key);
            if self.orphans.contains_key(&key) {
                self.finish_orphan(c, t.mirror(), GoneReason::ServerHasIt, now, out);
            }
        }
        if e.side == Side::Client {
            self.judge_client(h, t, e, now, out);
        }
    }

    /// A socket left host `h`.
    fn on_removed(&mut self, h: HostIdx, t: Tuple, _e: Entry, now: Clock, out: &mut Vec<Action>) {
        self.candidates.remove(&(h, t));
        if self.orphans.contains_key(&(h, t)) {
            self.finish_orphan(h, t, GoneReason::ClientClosed, now, out);
        }
        // The other end may now be one-sided.
        if let Some(c) = self.owner_of(t.remote_ip()) {
            let m = t.mirror();
            if let Some(&ce) = self.hosts[c].table.get(&m) {
                self.judge_client(c, m, ce, now, out);
            }
        }
    }

    fn finish_orphan(&mut self, c: HostIdx, t: Tuple, reason: GoneReason, now: Clock, out: &mut Vec<Action>) {
        if let Some(f) = self.orphans.remove(&(c, t)) {
            self.stats.gone += 1;
            out.push(Action::Gone {
                finding: f,
                at_ms: now.wall_ms,
                reason,
            });
        }
    }

    /// Decides whether a client-side socket is a candidate.
    fn judge_client(&mut self, c: HostIdx, t: Tuple, e: Entry, now: Clock, out: &mut Vec<Action>) {
        let key = (c, t);
        if e.side != Side::Client || e.state != TcpState::Established {
            self.candidates.remove(&key);
            if self.orphans.contains_key(&key) {
                self.finish_orphan(c, t, GoneReason::ClientClosed, now, out);
            }
            return;
        }
        if let Some(f) = self.orphans.get(&key) {
            if f.cookie == e.cookie {
                return;
            }
            self.finish_orphan(c, t, GoneReason::Replaced, now, out);
        }
        let Some(s) = self.owner_of(t.remote_ip()) else {
            return; // unmonitored or ambiguous server address: never judged
        };
        if !self.judgeable(s, now) || !self.judgeable(c, now) {
            return;
        }
        if self.hosts[s].table.contains_key(&t.mirror()) {
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
                server: s,
                first_seen: now,
                phase: Phase::Wait,
            },
        );
    }

    /// Periodic work: staleness transitions, sweeps, lookup timeouts, and the
    /// next batch of server-side lookups.
    pub fn tick(&mut self, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        for h in 0..self.hosts.len() {
            let j = self.judgeable(h, now);
            if j && !self.hosts[h].judgeable_last_tick {
                self.dirty = true;
            }
            self.hosts[h].judgeable_last_tick = j;
        }
        if self.dirty {
            self.dirty = false;
            self.sweep(now, &mut out);
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

        // Server-side checks, batched per server host.
        let mut batches: HashMap<HostIdx, Vec<(HostIdx, Tuple)>> = HashMap::new();
        let mut drop = Vec::new();
        for (&(c, t), cand) in &self.candidates {
            if cand.phase != Phase::Wait {
                continue;
            }
            if !self.judgeable(c, now) || !self.judgeable(cand.server, now) {
                drop.push((c, t));
                continue;
            }
            if now.mono_ms >= cand.first_seen.mono_ms + self.cfg.grace_ms {
                batches.entry(cand.server).or_default().push((c, t));
            }
        }
        for key in drop {
            self.candidates.remove(&key);
        }
        for (s, keys) in batches {
            for chunk in keys.chunks(self.cfg.max_lookup_batch) {
                let tuples = chunk.iter().map(|(_, t)| t.mirror()).collect();
                let id = self.send(s, Purpose::ServerCheck, chunk.to_vec(), tuples, false, now, &mut out);
                for key in chunk {
                    if let Some(c) = self.candidates.get_mut(key) {
                        c.phase = Phase::ServerAsked(id);
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

    /// Re-judges every client socket of every host: after a host became
    /// judgeable or its addresses changed. Coalesced to once per tick.
    fn sweep(&mut self, now: Clock, out: &mut Vec<Action>) {
        self.stats.sweeps += 1;
        for c in 0..self.hosts.len() {
            if !self.judgeable(c, now) {
                continue;
            }
            let clients: Vec<(Tuple, Entry)> = self.hosts[c]
                .table
                .iter()
                .filter(|(t, e)| {
                    e.side == Side::Client && e.state == TcpState::Established && self.owner_of(t.remote_ip()).is_some()
                })
                .map(|(t, e)| (*t, *e))
                .collect();
            for (t, e) in clients {
                self.judge_client(c, t, e, now, out);
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
            Purpose::ServerCheck => {
                let mut next: HashMap<HostIdx, Vec<(HostIdx, Tuple)>> = HashMap::new();
                for key in p.keys {
                    let Some(cand) = self.candidates.get(&key) else {
                        continue;
                    };
                    if cand.phase != Phase::ServerAsked(id) {
                        continue;
                    }
                    match by_tuple.get(&key.1.mirror()) {
                        Some(r) if !r.present => next.entry(key.0).or_default().push(key),
                        // Present in some state, or not answered: not one-sided.
                        Some(_) => {
                            self.stats.cleared_by_server_lookup += 1;
                            self.candidates.remove(&key);
                        }
                        None => {
                            if let Some(c) = self.candidates.get_mut(&key) {
                                c.phase = Phase::Wait;
                            }
                        }
                    }
                }
                for (c, keys) in next {
                    if !self.judgeable(c, now) {
                        for k in keys {
                            self.candidates.remove(&k);
                        }
                        continue;
                    }
                    for chunk in keys.chunks(self.cfg.max_lookup_batch) {
                        let tuples = chunk.iter().map(|(_, t)| *t).collect();
                        let nid = self.send(c, Purpose::ClientCheck, chunk.to_vec(), tuples, true, now, &mut out);
                        for key in chunk {
                            if let Some(cd) = self.candidates.get_mut(key) {
                                cd.phase = Phase::ClientAsked(nid);
                            }
                        }
                    }
                }
            }
            Purpose::ClientCheck => {
                for key in p.keys {
                    let Some(cand) = self.candidates.get(&key).copied() else {
                        continue;
                    };
                    if cand.phase != Phase::ClientAsked(id) {
                        continue;
                    }
                    self.candidates.remove(&key);
                    let Some(r) = by_tuple.get(&key.1) else {
                        continue;
                    };
                    let same_socket = r.present && r.state == Some(TcpState::Established) && r.cookie == cand.cookie;
                    if !same_socket {
                        self.stats.cleared_by_client_lookup += 1;
                        continue;
                    }
                    let f = Finding {
                        kind: FindingKind::ClientOnly,
                        tuple: key.1,
                        cookie: cand.cookie,
                        client_host: self.hosts[key.0].name.clone(),
                        server_host: self.hosts[cand.server].name.clone(),
                        process: r.process.clone(),
                        keepalive: r.keepalive || cand.keepalive,
                        first_seen_ms: cand.first_seen.wall_ms,
                        confirmed_at_ms: now.wall_ms,
                    };
                    self.stats.confirmed += 1;
                    self.orphans.insert(key, f.clone());
                    out.push(Action::Confirmed(f));
                }
            }
        }
        out
    }

    /// Current findings, ordered by server endpoint then client.
    pub fn findings(&self, now: Clock) -> Vec<FindingView> {
        let mut v: Vec<FindingView> = self
            .orphans
            .iter()
            .map(|(&(c, _), f)| FindingView {
                finding: f.clone(),
                client_host_stale: self.is_stale(c, now),
            })
            .collect();
        v.sort_by_key(|f| {
            (
                f.finding.tuple.remote(),
                f.finding.tuple.local(),
                f.finding.client_host.clone(),
            )
        });
        v
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

    pub fn host_name(&self, h: HostIdx) -> &str {
        &self.hosts[h].name
    }

    /// Number of socket records held, all hosts.
    pub fn socket_count(&self) -> usize {
        self.hosts.iter().map(|h| h.table.len()).sum()
    }

    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }

    /// Hosts that currently own at least one address, by name (tests, debugging).
    pub fn monitored_addresses(&self) -> HashSet<IpAddr> {
        self.owners.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests;
