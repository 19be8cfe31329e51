//! Every host the engine knows: its session and the collector instance
//! behind it, its table, addresses, listeners, sysctls, NAT entries and
//! counter history; which addresses identify exactly one host; and whether
//! a host is fresh, stale or gone.
//!
//! Claims on an address: a connected host's claim wins over a disconnected
//! one's at once (an address that moved to a new host), two connected
//! hosts claiming it make it ambiguous (never judged), and a disconnected
//! host keeps its claim only while nobody live claims the address (so that
//! what its leftovers were connected to can still be named).
use crate::counters::CounterHistory;
use crate::table::Table;
use crate::{Clock, EngineConfig};
use halfopen_core::{
    canonical_ip, is_matchable_ip, listener_accepts, HostView, Instance, Listener, NatState, SocketRecord, SourceKind,
    Tuple,
};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

/// A host's index in the engine: stable while the host is known; the slot
/// of a forgotten host is given to the next new host id.
pub type HostIdx = usize;

/// Another collector instance that tried to claim this host id while its
/// session was live: refused, and shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub instance: Instance,
    pub peer: String,
    /// Reconciler time of the first and the latest refused attempt.
    pub first: Clock,
    pub last: Clock,
}

/// One host as the engine knows it.
#[derive(Debug)]
pub(crate) struct HostState {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub table: Table,
    pub session: u64,
    pub connected: bool,
    pub peer: String,
    pub instance: Instance,
    pub blind_spots: Vec<String>,
    /// What its Hello said it is beyond its name (a network namespace of a
    /// machine: parent host id, namespace name, container, pod).
    pub parent: Option<String>,
    pub netns_name: Option<String>,
    pub container: Option<String>,
    pub pod: Option<String>,
    /// When the engine first heard of the host (a restored finding, or a session).
    pub known_since: Clock,
    /// When its last session ended; None while connected (or never connected).
    pub disconnected_at: Option<Clock>,
    pub conflict: Option<Conflict>,
    /// When a new boot of the host was first seen (its collector came back
    /// with another boot id), reconciler time.
    pub rebooted_at: Option<Clock>,
    pub last_report: Option<Clock>,
    pub interval_ms: u32,
    pub source: SourceKind,
    /// Last applied report sequence; None until a full table is in place.
    pub seq: Option<u64>,
    /// Chunks of a full table not yet complete: (seq, records so far).
    pub full_buf: Option<(u64, Vec<SocketRecord>)>,
    pub listeners: Vec<Listener>,
    /// Per listening address ever seen: its socket's inode, and when
    /// (reconciler time) another socket replaced the one before (a restarted
    /// listener); None while it is the first one seen.
    pub listener_since: HashMap<SocketAddr, (u64, Option<Clock>)>,
    /// A judgement of one of this host's own sockets was skipped because the
    /// host was not judgeable: its table is judged again when it is.
    pub own_skipped: bool,
    pub sysctls: BTreeMap<String, String>,
    pub counters: CounterHistory,
    /// Its listeners' drop counters (sk_drops), keyed by listening address.
    pub listener_drops: CounterHistory,
    /// Samples are recorded until this reconciler time (mono ms)...
    pub sampling_until: u64,
    /// ...and, before that, the last few are kept to lead into the next one.
    pub lead_in: std::collections::VecDeque<halfopen_core::Sample>,
    /// Silent client sockets on greeting ports (tuple -> ms without data, owner).
    pub silent: HashMap<Tuple, (u32, Option<halfopen_core::Process>)>,
    /// Per listener: last reconciler time it showed a sign of risk.
    pub risk_seen: HashMap<SocketAddr, u64>,
    /// /proc entries its collector could not read in its last report.
    pub owner_errors: u64,
    /// Whether its NAT entries are complete.
    pub nat_state: NatState,
    /// Its NAT'd connections: original -> reply.
    pub nat: HashMap<Tuple, Tuple>,
    /// A forgotten host's slot, free for the next new host id: no name,
    /// nothing held, skipped by every view.
    pub vacant: bool,
}

impl HostState {
    fn new(name: &str, now: Clock) -> HostState {
        HostState {
            name: name.to_string(),
            addresses: Vec::new(),
            table: Table::default(),
            session: 0,
            connected: false,
            peer: String::new(),
            instance: Instance::default(),
            blind_spots: Vec::new(),
            parent: None,
            netns_name: None,
            container: None,
            pod: None,
            known_since: now,
            disconnected_at: None,
            conflict: None,
            rebooted_at: None,
            last_report: None,
            interval_ms: 5_000,
            source: SourceKind::default(),
            seq: None,
            full_buf: None,
            listeners: Vec::new(),
            listener_since: HashMap::new(),
            own_skipped: false,
            sysctls: BTreeMap::new(),
            counters: CounterHistory::default(),
            listener_drops: CounterHistory::default(),
            sampling_until: 0,
            lead_in: std::collections::VecDeque::new(),
            silent: HashMap::new(),
            risk_seen: HashMap::new(),
            owner_errors: 0,
            nat_state: NatState::default(),
            nat: HashMap::new(),
            vacant: false,
        }
    }

    /// A listener as evidence, with the drops it counted since `since_mono`.
    pub fn sample(&self, l: &Listener, since_mono: u64) -> halfopen_core::ListenerSample {
        halfopen_core::ListenerSample {
            addr: l.addr,
            queue: l.queue,
            backlog: l.backlog,
            libwrap: l.libwrap,
            drops: l.drops.map(|_| {
                self.listener_drops
                    .deltas_since(since_mono)
                    .get(&l.addr.to_string())
                    .copied()
                    .unwrap_or(0)
            }),
        }
    }

    /// What its collector cannot see now: what it said at start, and what
    /// its last report met (unreadable /proc entries, unknown NAT).
    pub fn blind_spots_now(&self) -> Vec<String> {
        let mut v = self.blind_spots.clone();
        if self.owner_errors > 0 && !v.iter().any(|b| b.contains("owner")) {
            v.push(format!(
                "owners of {} listening sockets unknown: /proc entries unreadable (the collector lacks CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, or a security module refuses it)",
                self.owner_errors
            ));
        }
        if let NatState::Unknown(why) = &self.nat_state {
            if !v.iter().any(|b| b.contains("NAT")) {
                v.push(format!(
                    "NAT translations unknown ({why}): connections to and from it are not judged"
                ));
            }
        }
        v
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

/// Who owns an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Host(HostIdx),
    /// Claimed by several live hosts (or several disconnected ones and no live one).
    Ambiguous(Vec<HostIdx>),
}

/// Every host that recorded a translation of one tuple, with the other
/// tuple it recorded (one entry almost always; several when the conntrack
/// tables of several hosts saw the same connection, e.g. a node and a pod).
type Translations = Vec<(HostIdx, Tuple)>;

/// An address whose owner changed, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub addr: IpAddr,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The live hosts that claim it now when it became ambiguous.
    pub ambiguous: Vec<String>,
}

/// Every host, by index and by name; who owns which address; every host's
/// NAT translations, indexed both ways.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    list: Vec<HostState>,
    by_name: HashMap<String, HostIdx>,
    owners: HashMap<IpAddr, Owner>,
    nat_by_original: HashMap<Tuple, Translations>,
    nat_by_reply: HashMap<Tuple, Translations>,
    /// Slots of forgotten hosts.
    free: Vec<HostIdx>,
}

impl Hosts {
    /// The host of this name, created (never connected) if unknown.
    pub fn index(&mut self, name: &str, now: Clock) -> HostIdx {
        if let Some(&h) = self.by_name.get(name) {
            return h;
        }
        let h = match self.free.pop() {
            Some(h) => {
                self.list[h] = HostState::new(name, now);
                h
            }
            None => {
                self.list.push(HostState::new(name, now));
                self.list.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), h);
        h
    }

    /// Host ids known (forgotten ones not counted).
    pub fn known(&self) -> usize {
        self.by_name.len()
    }

    /// Forgets host `h`: its name, addresses, table and NAT entries; its
    /// slot goes to the next new host id. The caller makes sure nothing
    /// refers to it any more.
    pub fn vacate(&mut self, h: HostIdx, now: Clock) {
        let name = std::mem::take(&mut self.list[h].name);
        self.by_name.remove(&name);
        self.nat_replace(h, std::iter::empty());
        let mut blank = HostState::new("", now);
        blank.vacant = true;
        self.list[h] = blank;
        self.rebuild_owners();
        self.free.push(h);
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
    /// whether they changed; the caller then calls [`Hosts::rebuild_owners`].
    pub fn set_addresses(&mut self, h: HostIdx, mut addrs: Vec<IpAddr>) -> bool {
        addrs.iter_mut().for_each(|a| *a = canonical_ip(*a));
        addrs.sort();
        addrs.dedup();
        if self.list[h].addresses == addrs {
            return false;
        }
        self.list[h].addresses = addrs;
        true
    }

    /// Recomputes who owns every address (after addresses or connections
    /// changed); returns the addresses whose owner changed.
    pub fn rebuild_owners(&mut self) -> Vec<Handover> {
        let mut claims: HashMap<IpAddr, (Vec<HostIdx>, Vec<HostIdx>)> = HashMap::new();
        for (h, host) in self.list.iter().enumerate() {
            for &a in &host.addresses {
                if !is_matchable_ip(a) {
                    continue;
                }
                let (live, dead) = claims.entry(a).or_default();
                if host.connected {
                    live.push(h)
                } else {
                    dead.push(h)
                }
            }
        }
        let owners: HashMap<IpAddr, Owner> = claims
            .into_iter()
            .map(|(a, (live, dead))| {
                let by = if live.is_empty() { dead } else { live };
                let o = if by.len() == 1 {
                    Owner::Host(by[0])
                } else {
                    Owner::Ambiguous(by)
                };
                (a, o)
            })
            .collect();
        let mut moved = Vec::new();
        let name = |o: Option<&Owner>| match o {
            Some(Owner::Host(h)) => Some(self.list[*h].name.clone()),
            _ => None,
        };
        let mut addrs: Vec<&IpAddr> = owners.keys().chain(self.owners.keys()).collect();
        addrs.sort();
        addrs.dedup();
        for a in addrs {
            let (old, new) = (self.owners.get(a), owners.get(a));
            if old != new {
                moved.push(Handover {
                    addr: *a,
                    from: name(old),
                    to: name(new),
                    ambiguous: match new {
                        Some(Owner::Ambiguous(v)) => v.iter().map(|h| self.list[*h].name.clone()).collect(),
                        _ => Vec::new(),
                    },
                });
            }
        }
        self.owners = owners;
        moved
    }

    /// The monitored host that owns this address, if exactly one does.
    pub fn owner_of(&self, ip: IpAddr) -> Option<HostIdx> {
        match self.owners.get(&ip) {
            Some(Owner::Host(h)) => Some(*h),
            _ => None,
        }
    }

    /// Whether some host claims this address (alone or shared).
    pub fn owns_or_shared(&self, ip: IpAddr) -> bool {
        self.owners.contains_key(&ip)
    }

    /// Addresses that several live hosts claim, with those hosts.
    pub fn ambiguous(&self) -> Vec<(IpAddr, Vec<HostIdx>)> {
        let mut v: Vec<_> = self
            .owners
            .iter()
            .filter_map(|(a, o)| match o {
                Owner::Ambiguous(hs) if hs.iter().any(|h| self.list[*h].connected) => Some((*a, hs.clone())),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// The stale limit of host `h`, ms.
    fn stale_limit(&self, h: HostIdx, cfg: &EngineConfig) -> u64 {
        (self.list[h].interval_ms as u64 * cfg.stale_intervals as u64).max(cfg.stale_min_ms)
    }

    /// Whether host `h` reported within its stale limit (its session may be
    /// between a gap and its resync).
    pub fn reporting(&self, h: HostIdx, now: Clock, cfg: &EngineConfig) -> bool {
        let host = &self.list[h];
        host.connected
            && host
                .last_report
                .is_some_and(|c| now.mono_ms.saturating_sub(c.mono_ms) <= self.stale_limit(h, cfg))
    }

    /// Whether nothing may be judged against host `h` now.
    pub fn is_stale(&self, h: HostIdx, now: Clock, cfg: &EngineConfig) -> bool {
        self.list[h].seq.is_none() || !self.reporting(h, now, cfg)
    }

    /// Disconnected for longer than `gone_after` (or known only from the
    /// store and never connected for that long).
    pub fn is_gone(&self, h: HostIdx, now: Clock, cfg: &EngineConfig) -> bool {
        let host = &self.list[h];
        !host.vacant
            && !host.connected
            && now
                .mono_ms
                .saturating_sub(host.disconnected_at.unwrap_or(host.known_since).mono_ms)
                > cfg.gone_after_ms
    }

    /// Replaces host `h`'s NAT entries (a full report).
    pub fn nat_replace(&mut self, h: HostIdx, entries: impl IntoIterator<Item = (Tuple, Tuple)>) {
        let old: Vec<Tuple> = self.list[h].nat.keys().copied().collect();
        for o in old {
            self.nat_remove(h, &o);
        }
        for (o, r) in entries {
            self.nat_insert(h, o, r);
        }
    }

    pub fn nat_insert(&mut self, h: HostIdx, original: Tuple, reply: Tuple) {
        if let Some(prev) = self.list[h].nat.insert(original, reply) {
            unindex(&mut self.nat_by_reply, &prev, h);
        }
        index(&mut self.nat_by_original, original, h, reply);
        index(&mut self.nat_by_reply, reply, h, original);
    }

    pub fn nat_remove(&mut self, h: HostIdx, original: &Tuple) {
        if let Some(reply) = self.list[h].nat.remove(original) {
            unindex(&mut self.nat_by_original, original, h);
            unindex(&mut self.nat_by_reply, &reply, h);
        }
    }

    /// The reply tuple of a connection whose original is `t`, if some
    /// host's conntrack translated it: `Some(None)` when hosts disagree.
    pub fn nat_reply_of(&self, t: &Tuple) -> Option<Option<Tuple>> {
        agreed(self.nat_by_original.get(t)?)
    }

    /// The original tuple of a connection whose reply is `t` (as above).
    pub fn nat_original_of(&self, t: &Tuple) -> Option<Option<Tuple>> {
        agreed(self.nat_by_reply.get(t)?)
    }

    /// The hosts whose conntrack recorded a translation of original `t`.
    pub fn nat_hosts_of(&self, t: &Tuple) -> Vec<HostIdx> {
        self.nat_by_original
            .get(t)
            .map(|v| v.iter().map(|(h, _)| *h).collect())
            .unwrap_or_default()
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
            instance: x.instance.clone(),
            gone: false,
            disconnected_since_ms: x.disconnected_at.map(|c| c.wall_ms),
            conflict: None,
            shared_addresses: Vec::new(),
            blind_spots: x.blind_spots_now(),
            nat: match &x.nat_state {
                NatState::Visible => "visible".to_string(),
                NatState::Absent => "absent".to_string(),
                NatState::Unknown(why) => format!("unknown: {why}"),
            },
            parent: x.parent.clone(),
            netns_name: x.netns_name.clone(),
            container: x.container.clone(),
            pod: x.pod.clone(),
        }
    }
}

/// The one other tuple every recording host agrees on; `Some(None)` when they do not.
fn agreed(v: &Translations) -> Option<Option<Tuple>> {
    let first = v.first()?.1;
    Some(v.iter().all(|(_, o)| *o == first).then_some(first))
}

fn index(map: &mut HashMap<Tuple, Translations>, key: Tuple, h: HostIdx, other: Tuple) {
    let v = map.entry(key).or_default();
    v.retain(|(x, _)| *x != h);
    v.push((h, other));
}

fn unindex(map: &mut HashMap<Tuple, Translations>, key: &Tuple, h: HostIdx) {
    if let Some(v) = map.get_mut(key) {
        v.retain(|(x, _)| *x != h);
        if v.is_empty() {
            map.remove(key);
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
