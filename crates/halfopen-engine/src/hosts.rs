//! Every host the engine knows: its session, table, addresses, listeners,
//! sysctls and counter history, and which addresses identify exactly one
//! host (an address two hosts claim, loopback and link-local never do).
//! Staleness is decided here: nothing is judged against a host that is
//! disconnected, between a sequence gap and its resync, or silent for
//! `stale_intervals` of its intervals.
use crate::counters::CounterHistory;
use crate::table::Table;
use crate::{Clock, EngineConfig};
use halfopen_core::{
    canonical_ip, is_matchable_ip, listener_accepts, HostView, Listener, SocketRecord, SourceKind, Tuple,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

/// A host's index in the engine (stable for the engine's life).
pub type HostIdx = usize;

/// One host as the engine knows it.
#[derive(Debug)]
pub(crate) struct HostState {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub table: Table,
    pub session: u64,
    pub connected: bool,
    pub peer: String,
    pub last_report: Option<Clock>,
    pub interval_ms: u32,
    pub source: SourceKind,
    /// Last applied report sequence; None until a full table is in place.
    pub seq: Option<u64>,
    /// Chunks of a full table not yet complete: (seq, records so far).
    pub full_buf: Option<(u64, Vec<SocketRecord>)>,
    pub listeners: Vec<Listener>,
    /// A judgement of one of this host's own sockets was skipped because the
    /// host was not judgeable: its table is judged again when it is.
    pub own_skipped: bool,
    pub sysctls: BTreeMap<String, String>,
    pub counters: CounterHistory,
    /// Silent client sockets on greeting ports (tuple -> ms without data).
    pub silent: HashMap<Tuple, u32>,
    /// Per listener: last reconciler time it showed a sign of risk.
    pub risk_seen: HashMap<SocketAddr, u64>,
}

impl HostState {
    fn new(name: &str) -> HostState {
        HostState {
            name: name.to_string(),
            addresses: Vec::new(),
            table: Table::default(),
            session: 0,
            connected: false,
            peer: String::new(),
            last_report: None,
            interval_ms: 5_000,
            source: SourceKind::default(),
            seq: None,
            full_buf: None,
            listeners: Vec::new(),
            own_skipped: false,
            sysctls: BTreeMap::new(),
            counters: CounterHistory::default(),
            silent: HashMap::new(),
            risk_seen: HashMap::new(),
        }
    }

    /// The listener that accepts connections to `addr`, if any: one bound to
    /// that very address first, then a wildcard one.
    pub fn listener_for(&self, addr: SocketAddr) -> Option<&Listener> {
        let local = SocketAddr::new(canonical_ip(addr.ip()), addr.port());
        self.listeners
            .iter()
            .find(|l| l.addr == local)
            .or_else(|| self.listeners.iter().find(|l| listener_accepts(l.addr, local)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Host(HostIdx),
    Ambiguous,
}

/// Every host, by index and by name, and who owns which address.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    list: Vec<HostState>,
    by_name: HashMap<String, HostIdx>,
    owners: HashMap<IpAddr, Owner>,
}

impl Hosts {
    /// The host of this name, created (never connected) if unknown.
    pub fn index(&mut self, name: &str) -> HostIdx {
        if let Some(&h) = self.by_name.get(name) {
            return h;
        }
        let h = self.list.len();
        self.list.push(HostState::new(name));
        self.by_name.insert(name.to_string(), h);
        h
    }

    pub fn find(&self, name: &str) -> Option<HostIdx> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn get(&self, h: HostIdx) -> Option<&HostState> {
        self.list.get(h)
    }

    /// Sets a host's addresses (canonical, sorted, deduplicated). Returns
    /// whether they changed.
    pub fn set_addresses(&mut self, h: HostIdx, mut addrs: Vec<IpAddr>) -> bool {
        addrs.iter_mut().for_each(|a| *a = canonical_ip(*a));
        addrs.sort();
        addrs.dedup();
        if self.list[h].addresses == addrs {
            return false;
        }
        self.list[h].addresses = addrs;
        self.rebuild_owners();
        true
    }

    fn rebuild_owners(&mut self) {
        self.owners.clear();
        for (h, host) in self.list.iter().enumerate() {
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

    /// Whether nothing may be judged against host `h` now.
    pub fn is_stale(&self, h: HostIdx, now: Clock, cfg: &EngineConfig) -> bool {
        let host = &self.list[h];
        if !host.connected || host.seq.is_none() {
            return true;
        }
        let limit = (host.interval_ms as u64 * cfg.stale_intervals as u64).max(cfg.stale_min_ms);
        match host.last_report {
            Some(c) => now.mono_ms.saturating_sub(c.mono_ms) > limit,
            None => true,
        }
    }

    pub fn view(&self, h: HostIdx, now: Clock, cfg: &EngineConfig) -> HostView {
        let x = &self.list[h];
        let (client_sockets, server_sockets) = x.table.counts();
        HostView {
            name: x.name.clone(),
            addresses: x.addresses.clone(),
            last_report_ms: x.last_report.map(|c| c.wall_ms),
            sockets: x.table.len() as u64,
            client_sockets,
            server_sockets,
            listeners: x.listeners.len() as u32,
            stale: self.is_stale(h, now, cfg),
            connected: x.connected,
            source: x.source,
            interval_ms: x.interval_ms,
            peer: x.peer.clone(),
        }
    }
}

impl std::ops::Index<HostIdx> for Hosts {
    type Output = HostState;
    fn index(&self, h: HostIdx) -> &HostState {
        &self.list[h]
    }
}

impl std::ops::IndexMut<HostIdx> for Hosts {
    fn index_mut(&mut self, h: HostIdx) -> &mut HostState {
        &mut self.list[h]
    }
}
