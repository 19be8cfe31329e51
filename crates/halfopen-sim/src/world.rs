//! The simulated fleet's ground truth: every host's TCP table, kept compact
//! (a `Vec` of 12-byte records per host plus an index by key), changed by
//! churn and planting, and turned into the reports and lookup answers a real
//! collector would send.
//!
//! A connection has a client host (its ephemeral port, >= [`EPHEMERAL_LO`])
//! and a server host (a server port, below it), so a socket's side follows
//! from its local port. Churn closes a connection on both hosts at the same
//! instant and opens a new one; each host then reports the change at its own
//! phase, exactly the race the reconciler's confirmation protocol is for.
//!
//! Changes are recorded as they happen (one small entry per socket added or
//! removed) instead of diffing tables, and resolved against the table when a
//! delta is built.
use crate::addr::{host_ip, host_of_wire, HostIdx};
use crate::rng::{BuildMix, Rng};
use halfopen_core::{Listener, Report, ReportStats, Side, SocketRecord, TcpState, Tuple};
use halfopen_proto::convert::listener_from_wire;
use halfopen_proto::v1;
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};

/// Lowest ephemeral (client) port; server ports must be below it.
pub const EPHEMERAL_LO: u16 = 10_000;
/// Ephemeral ports per host.
pub const EPHEMERAL_PORTS: usize = 65_536 - EPHEMERAL_LO as usize;

/// What a socket is in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One end of a healthy connection (the other host holds the other end).
    Normal,
    /// Planted: the client end of a connection its server does not hold.
    Orphan,
    /// Planted: the server end of a connection its client does not hold.
    ServerOnly,
}

/// One socket on one host (the host is implicit): 12 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sock {
    pub peer: HostIdx,
    pub lport: u16,
    pub rport: u16,
    pub kind: Kind,
    /// Unique per host for the host's life (never 0).
    pub cookie: u32,
}

impl Sock {
    fn key(&self) -> u64 {
        key(self.peer, self.lport, self.rport)
    }
    pub fn side(&self) -> Side {
        side_of_port(self.lport)
    }
}

pub fn side_of_port(lport: u16) -> Side {
    if lport < EPHEMERAL_LO {
        Side::Server
    } else {
        Side::Client
    }
}

/// A host-local socket key: (peer host, local port, remote port).
fn key(peer: HostIdx, lport: u16, rport: u16) -> u64 {
    (peer as u64) << 32 | (lport as u64) << 16 | rport as u64
}

fn key_parts(k: u64) -> (HostIdx, u16, u16) {
    ((k >> 32) as HostIdx, (k >> 16) as u16, k as u16)
}

/// A connection by both ends, as a finding names it (client's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn {
    pub client: HostIdx,
    pub cport: u16,
    pub server: HostIdx,
    pub sport: u16,
}

impl Conn {
    /// The connection as the client sees it (local = client end).
    pub fn client_tuple(&self) -> Tuple {
        Tuple::new(
            SocketAddr::V4(SocketAddrV4::new(host_ip(self.client), self.cport)),
            SocketAddr::V4(SocketAddrV4::new(host_ip(self.server), self.sport)),
        )
    }

    /// From a client-view tuple whose two addresses are simulated hosts.
    pub fn from_client_tuple(t: &Tuple) -> Option<Conn> {
        Some(Conn {
            client: crate::addr::host_of_ip(t.local_ip())?,
            cport: t.local_port(),
            server: crate::addr::host_of_ip(t.remote_ip())?,
            sport: t.remote_port(),
        })
    }

    /// The connection a socket on host `h` belongs to.
    fn of(h: HostIdx, s: &Sock) -> Conn {
        match s.side() {
            Side::Client => Conn {
                client: h,
                cport: s.lport,
                server: s.peer,
                sport: s.rport,
            },
            Side::Server => Conn {
                client: s.peer,
                cport: s.rport,
                server: h,
                sport: s.lport,
            },
        }
    }
}

/// A change to a host's table since its last report.
#[derive(Clone, Copy, Debug)]
struct Change {
    key: u64,
    /// The new socket's cookie; 0 = the socket with this key was removed.
    cookie: u32,
}

struct Host {
    socks: Vec<Sock>,
    index: HashMap<u64, u32, BuildMix>,
    /// Ephemeral ports in use (client sockets and reserved planted ports).
    ports: Vec<u64>,
    cursor: u16,
    next_cookie: u32,
    /// Recorded only once the host's collector has sent a full table.
    tracking: bool,
    changes: Vec<Change>,
    clients: u32,
    servers: u32,
}

impl Host {
    fn new(cap: usize) -> Host {
        Host {
            socks: Vec::with_capacity(cap),
            index: HashMap::with_capacity_and_hasher(cap, BuildMix::default()),
            ports: vec![0; 65_536 / 64],
            cursor: EPHEMERAL_LO,
            next_cookie: 0,
            tracking: false,
            changes: Vec::new(),
            clients: 0,
            servers: 0,
        }
    }

    fn port_used(&self, p: u16) -> bool {
        self.ports[p as usize / 64] & (1 << (p % 64)) != 0
    }

    fn set_port(&mut self, p: u16, used: bool) {
        let w = &mut self.ports[p as usize / 64];
        if used {
            *w |= 1 << (p % 64);
        } else {
            *w &= !(1 << (p % 64));
        }
    }

    /// The next free ephemeral port after the last one handed out, so a
    /// freed port is reused as late as possible (like the kernel's).
    fn alloc_port(&mut self) -> Option<u16> {
        for _ in 0..EPHEMERAL_PORTS {
            let p = self.cursor;
            self.cursor = if p == u16::MAX { EPHEMERAL_LO } else { p + 1 };
            if !self.port_used(p) {
                self.set_port(p, true);
                return Some(p);
            }
        }
        None
    }

    fn insert(&mut self, peer: HostIdx, lport: u16, rport: u16, kind: Kind) {
        self.next_cookie = self.next_cookie.wrapping_add(1).max(1);
        let s = Sock {
            peer,
            lport,
            rport,
            kind,
            cookie: self.next_cookie,
        };
        let k = s.key();
        let prev = self.index.insert(k, self.socks.len() as u32);
        debug_assert!(prev.is_none(), "duplicate socket key");
        self.socks.push(s);
        match s.side() {
            Side::Client => self.clients += 1,
            Side::Server => self.servers += 1,
        }
        if self.tracking {
            self.changes.push(Change {
                key: k,
                cookie: s.cookie,
            });
        }
    }

    fn remove(&mut self, k: u64) -> Option<Sock> {
        let pos = self.index.remove(&k)? as usize;
        let s = self.socks.swap_remove(pos);
        if let Some(moved) = self.socks.get(pos) {
            self.index.insert(moved.key(), pos as u32);
        }
        match s.side() {
            Side::Client => self.clients -= 1,
            Side::Server => self.servers -= 1,
        }
        if self.tracking {
            self.changes.push(Change { key: k, cookie: 0 });
        }
        Some(s)
    }

    fn get(&self, k: u64) -> Option<&Sock> {
        self.index.get(&k).map(|&p| &self.socks[p as usize])
    }
}

/// A report built from a host's table, and the planted sockets in it.
pub struct Built {
    pub data: Report,
    pub planted: Vec<Conn>,
}

/// Table sizes of one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub sockets: u64,
    pub clients: u64,
    pub servers: u64,
}

pub struct World {
    hosts: Vec<Host>,
    server_ports: Vec<u16>,
    rng: Rng,
    normal: u64,
    orphans: u64,
    server_only: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum WorldError {
    TooFewHosts,
    TooManyHosts,
    BadServerPort(u16),
    NoServerPorts,
    PortsExhausted(HostIdx),
}

impl std::fmt::Display for WorldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorldError::TooFewHosts => write!(f, "at least 2 hosts are needed"),
            WorldError::TooManyHosts => write!(f, "at most {} hosts can be addressed", crate::addr::MAX_HOSTS),
            WorldError::BadServerPort(p) => write!(f, "server port {p} must be in 1..{EPHEMERAL_LO}"),
            WorldError::NoServerPorts => write!(f, "at least one server port is needed"),
            WorldError::PortsExhausted(h) => write!(f, "host sim-{h} ran out of ephemeral ports"),
        }
    }
}

impl std::error::Error for WorldError {}

impl World {
    /// Every host opens `per_host` connections to random other hosts.
    pub fn new(hosts: usize, per_host: usize, server_ports: &[u16], seed: u64) -> Result<World, WorldError> {
        if hosts < 2 {
            return Err(WorldError::TooFewHosts);
        }
        if hosts > crate::addr::MAX_HOSTS {
            return Err(WorldError::TooManyHosts);
        }
        if server_ports.is_empty() {
            return Err(WorldError::NoServerPorts);
        }
        if let Some(&p) = server_ports.iter().find(|&&p| p == 0 || p >= EPHEMERAL_LO) {
            return Err(WorldError::BadServerPort(p));
        }
        // Server sockets per host are ~Binomial around per_host: leave room.
        let cap = 2 * per_host + per_host / 16 + 64;
        let mut w = World {
            hosts: (0..hosts).map(|_| Host::new(cap)).collect(),
            server_ports: server_ports.to_vec(),
            rng: Rng::new(seed),
            normal: 0,
            orphans: 0,
            server_only: 0,
        };
        for c in 0..hosts {
            for _ in 0..per_host {
                w.open(c as HostIdx)?;
            }
        }
        Ok(w)
    }

    fn other_host(&mut self, h: HostIdx) -> HostIdx {
        self.rng.below_except(self.hosts.len() as u64, h as u64) as HostIdx
    }

    fn server_port(&mut self) -> u16 {
        self.server_ports[self.rng.below(self.server_ports.len() as u64) as usize]
    }

    /// Opens a healthy connection from `c` to a random other host.
    fn open(&mut self, c: HostIdx) -> Result<Conn, WorldError> {
        self.connect(c, Kind::Normal)
    }

    /// A connection from `c` to a random other host, held by both ends
    /// (Normal), only the client (Orphan) or only the server (ServerOnly).
    /// The client port stays reserved either way, so it is never reused.
    fn connect(&mut self, c: HostIdx, kind: Kind) -> Result<Conn, WorldError> {
        let s = self.other_host(c);
        let sport = self.server_port();
        let cport = self.hosts[c as usize]
            .alloc_port()
            .ok_or(WorldError::PortsExhausted(c))?;
        if kind != Kind::ServerOnly {
            self.hosts[c as usize].insert(s, cport, sport, kind);
        }
        if kind != Kind::Orphan {
            self.hosts[s as usize].insert(c, sport, cport, kind);
        }
        match kind {
            Kind::Normal => self.normal += 1,
            Kind::Orphan => self.orphans += 1,
            Kind::ServerOnly => self.server_only += 1,
        }
        Ok(Conn {
            client: c,
            cport,
            server: s,
            sport,
        })
    }

    /// Closes a healthy connection on both hosts at once.
    fn close(&mut self, conn: Conn) {
        let ch = &mut self.hosts[conn.client as usize];
        ch.remove(key(conn.server, conn.cport, conn.sport));
        ch.set_port(conn.cport, false);
        self.hosts[conn.server as usize].remove(key(conn.client, conn.sport, conn.cport));
        self.normal -= 1;
    }

    /// Closes one random healthy connection and opens a new one from the
    /// same client host (a pool reconnecting), so table sizes stay steady.
    /// Returns false when no healthy connection was found.
    pub fn churn_one(&mut self) -> Result<bool, WorldError> {
        for _ in 0..64 {
            let h = self.rng.below(self.hosts.len() as u64) as HostIdx;
            let host = &self.hosts[h as usize];
            if host.socks.is_empty() {
                continue;
            }
            let s = host.socks[self.rng.below(host.socks.len() as u64) as usize];
            if s.kind != Kind::Normal {
                continue;
            }
            let conn = Conn::of(h, &s);
            self.close(conn);
            self.open(conn.client)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Plants a client_only connection: the client holds it ESTABLISHED, its
    /// server host has no trace of it.
    pub fn plant_orphan(&mut self) -> Result<Conn, WorldError> {
        self.plant(Kind::Orphan)
    }

    /// Plants a server_only connection: the server host holds it, its client
    /// host does not (the client port stays reserved so it is never reused).
    pub fn plant_server_only(&mut self) -> Result<Conn, WorldError> {
        self.plant(Kind::ServerOnly)
    }

    /// A one-sided connection from a random host.
    fn plant(&mut self, kind: Kind) -> Result<Conn, WorldError> {
        let c = self.rng.below(self.hosts.len() as u64) as HostIdx;
        self.connect(c, kind)
    }

    fn record(&self, h: HostIdx, s: &Sock) -> SocketRecord {
        SocketRecord {
            tuple: Tuple::new(
                SocketAddr::V4(SocketAddrV4::new(host_ip(h), s.lport)),
                SocketAddr::V4(SocketAddrV4::new(host_ip(s.peer), s.rport)),
            ),
            state: TcpState::Established,
            side: s.side(),
            cookie: s.cookie as u64,
            inode: 1_000_000 + s.cookie as u64,
            uid: 1000,
            keepalive: false,
            info: None,
        }
    }

    fn tuple(&self, h: HostIdx, k: u64) -> Tuple {
        let (peer, lport, rport) = key_parts(k);
        Tuple::new(
            SocketAddr::V4(SocketAddrV4::new(host_ip(h), lport)),
            SocketAddr::V4(SocketAddrV4::new(host_ip(peer), rport)),
        )
    }

    /// Every host listens on the server ports (built through the wire form,
    /// so new optional fields default as they would from an older collector).
    fn listeners(&self) -> Vec<Listener> {
        self.server_ports
            .iter()
            .filter_map(|&p| {
                listener_from_wire(&v1::Listener {
                    ip: vec![0, 0, 0, 0],
                    port: p as u32,
                    backlog: 4096,
                    inode: p as u64,
                    uid: 1000,
                    process: Some(v1::Process {
                        pid: 900,
                        comm: "simdb".into(),
                        cmdline: format!("simdb --port {p}"),
                        uid: 1000,
                    }),
                    ..Default::default()
                })
            })
            .collect()
    }

    /// The host's whole table. From now on its changes are recorded.
    pub fn full_report(&mut self, h: HostIdx) -> Built {
        let host = &mut self.hosts[h as usize];
        host.tracking = true;
        host.changes = Vec::new();
        let host = &self.hosts[h as usize];
        let mut planted = Vec::new();
        let upserted = host
            .socks
            .iter()
            .map(|s| {
                if s.kind != Kind::Normal {
                    planted.push(Conn::of(h, s));
                }
                self.record(h, s)
            })
            .collect();
        Built {
            data: Report {
                full: true,
                last_chunk: true,
                upserted,
                removed: Vec::new(),
                listeners: self.listeners(),
                stats: ReportStats {
                    sockets: host.socks.len() as u64,
                    ..Default::default()
                },
                ..Default::default()
            },
            planted,
        }
    }

    /// What changed on the host since its last report. A socket added and
    /// removed in between is only a removal (which the reconciler ignores if
    /// it never saw the socket); one removed and re-added is both.
    pub fn delta_report(&mut self, h: HostIdx) -> Built {
        let changes = std::mem::take(&mut self.hosts[h as usize].changes);
        let host = &self.hosts[h as usize];
        let mut upserted = Vec::new();
        let mut removed = Vec::new();
        let mut planted = Vec::new();
        for ch in changes {
            if ch.cookie == 0 {
                removed.push(self.tuple(h, ch.key));
            } else if let Some(s) = host.get(ch.key).filter(|s| s.cookie == ch.cookie) {
                if s.kind != Kind::Normal {
                    planted.push(Conn::of(h, s));
                }
                upserted.push(self.record(h, s));
            }
        }
        Built {
            data: Report {
                full: false,
                last_chunk: true,
                upserted,
                removed,
                listeners: self.listeners(),
                stats: ReportStats {
                    sockets: host.socks.len() as u64,
                    ..Default::default()
                },
                ..Default::default()
            },
            planted,
        }
    }

    /// The host's collector is disconnected: stop recording its changes (its
    /// next session starts with a full table).
    pub fn host_disconnected(&mut self, h: HostIdx) {
        let host = &mut self.hosts[h as usize];
        host.tracking = false;
        host.changes = Vec::new();
    }

    /// Answers a lookup from host `h`'s table as it is now.
    pub fn lookup(&self, h: HostIdx, tuples: &[v1::Tuple], attribute: bool) -> Vec<v1::LookupResult> {
        let host = &self.hosts[h as usize];
        tuples
            .iter()
            .map(|t| {
                let hit = (|| {
                    if host_of_wire(&t.local_ip)? != h {
                        return None;
                    }
                    let peer = host_of_wire(&t.remote_ip)?;
                    let lport = u16::try_from(t.local_port).ok()?;
                    let rport = u16::try_from(t.remote_port).ok()?;
                    host.get(key(peer, lport, rport))
                })();
                match hit {
                    Some(s) => v1::LookupResult {
                        tuple: Some(t.clone()),
                        present: true,
                        state: TcpState::Established as u32,
                        cookie: s.cookie as u64,
                        process: attribute.then(|| v1::Process {
                            pid: 10_000 + s.cookie % 50_000,
                            comm: "simapp".into(),
                            cmdline: format!("simapp --host sim-{h} --pool 64"),
                            uid: 1000,
                        }),
                        keepalive: false,
                        translated: None,
                    },
                    None => v1::LookupResult {
                        tuple: Some(t.clone()),
                        ..Default::default()
                    },
                }
            })
            .collect()
    }

    pub fn counts(&self, h: HostIdx) -> Counts {
        let host = &self.hosts[h as usize];
        Counts {
            sockets: host.socks.len() as u64,
            clients: host.clients as u64,
            servers: host.servers as u64,
        }
    }

    /// Socket records across all hosts.
    pub fn sockets(&self) -> u64 {
        2 * self.normal + self.orphans + self.server_only
    }

    /// Distinct connections, planted ones included.
    pub fn connections(&self) -> u64 {
        self.normal + self.orphans + self.server_only
    }

    /// Approximate heap bytes held by the tables (for the progress line).
    pub fn heap_bytes(&self) -> u64 {
        self.hosts
            .iter()
            .map(|h| {
                (h.socks.capacity() * std::mem::size_of::<Sock>()
                    + (h.index.capacity() * 8 / 7).next_power_of_two() * (std::mem::size_of::<(u64, u32)>() + 1)
                    + h.ports.len() * 8
                    + h.changes.capacity() * std::mem::size_of::<Change>()) as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_proto::convert::tuple_to_wire;
    use std::collections::HashSet;

    fn world(hosts: usize, per: usize) -> World {
        World::new(hosts, per, &[3306, 5432], 7).unwrap()
    }

    /// Every normal socket's other end exists on its peer; counts add up.
    fn check_invariants(w: &World) {
        let mut total = 0;
        for (h, host) in w.hosts.iter().enumerate() {
            let h = h as HostIdx;
            assert_eq!(host.socks.len(), host.index.len());
            for (i, s) in host.socks.iter().enumerate() {
                assert_eq!(host.index[&s.key()] as usize, i);
                let c = Conn::of(h, s);
                let mirror = w.hosts[s.peer as usize].get(key(h, s.rport, s.lport));
                match s.kind {
                    Kind::Normal => assert!(mirror.is_some(), "{c:?} lacks its other end"),
                    Kind::Orphan | Kind::ServerOnly => assert!(mirror.is_none()),
                }
                assert!(w.hosts[c.client as usize].port_used(c.cport));
            }
            let clients = host.socks.iter().filter(|s| s.side() == Side::Client).count();
            assert_eq!(host.clients as usize, clients);
            assert_eq!(host.servers as usize, host.socks.len() - clients);
            total += host.socks.len() as u64;
        }
        assert_eq!(total, w.sockets());
    }

    #[test]
    fn generation_and_churn_keep_both_ends() {
        let mut w = world(5, 200);
        check_invariants(&w);
        assert_eq!(w.connections(), 1000);
        assert_eq!(w.sockets(), 2000);
        for h in 0..5 {
            assert_eq!(w.counts(h).clients, 200);
        }
        let o = w.plant_orphan().unwrap();
        let so = w.plant_server_only().unwrap();
        for _ in 0..5000 {
            assert!(w.churn_one().unwrap());
        }
        check_invariants(&w);
        assert_eq!(w.connections(), 1002);
        // Churn never touches planted sockets; clients keep their pool size.
        assert!(w.hosts[o.client as usize]
            .get(key(o.server, o.cport, o.sport))
            .is_some());
        assert!(w.hosts[so.server as usize]
            .get(key(so.client, so.sport, so.cport))
            .is_some());
        let clients: u64 = (0..5).map(|h| w.counts(h).clients).sum();
        assert_eq!(clients, 1001);
    }

    #[test]
    fn cookies_unique_per_host() {
        let mut w = world(3, 300);
        for _ in 0..1000 {
            w.churn_one().unwrap();
        }
        for host in &w.hosts {
            let set: HashSet<u32> = host.socks.iter().map(|s| s.cookie).collect();
            assert_eq!(set.len(), host.socks.len());
        }
    }

    #[test]
    fn ports_are_reused_late() {
        let mut h = Host::new(0);
        let a = h.alloc_port().unwrap();
        h.set_port(a, false);
        let b = h.alloc_port().unwrap();
        assert_ne!(a, b, "a freed port is not handed out again at once");
        let mut n = 1; // b
        while h.alloc_port().is_some() {
            n += 1;
        }
        assert_eq!(n, EPHEMERAL_PORTS, "then every port is used once before failing");
    }

    /// Applying reports as the reconciler would reproduces the table exactly.
    #[test]
    fn full_then_deltas_reproduce_the_table() {
        let mut w = world(4, 100);
        let mut mirror: Vec<HashMap<Tuple, u64>> = vec![HashMap::new(); 4];
        for h in 0..4u16 {
            let b = w.full_report(h);
            mirror[h as usize] = b.data.upserted.iter().map(|r| (r.tuple, r.cookie)).collect();
        }
        let o = w.plant_orphan().unwrap();
        let mut seen_planted = Vec::new();
        for round in 0..20 {
            for _ in 0..50 {
                w.churn_one().unwrap();
            }
            for h in 0..4u16 {
                if (h as usize + round).is_multiple_of(3) {
                    continue; // hosts report at different times
                }
                let b = w.delta_report(h);
                seen_planted.extend(b.planted);
                let m = &mut mirror[h as usize];
                for t in &b.data.removed {
                    m.remove(t);
                }
                for r in &b.data.upserted {
                    m.insert(r.tuple, r.cookie);
                }
            }
        }
        for h in 0..4u16 {
            let b = w.delta_report(h);
            let m = &mut mirror[h as usize];
            for t in &b.data.removed {
                m.remove(t);
            }
            for r in &b.data.upserted {
                m.insert(r.tuple, r.cookie);
            }
            let truth: HashMap<Tuple, u64> = w.hosts[h as usize]
                .socks
                .iter()
                .map(|s| (w.record(h, s).tuple, s.cookie as u64))
                .collect();
            assert_eq!(*m, truth, "host {h}");
        }
        assert_eq!(seen_planted, vec![o], "the orphan appears in exactly one delta");
    }

    #[test]
    fn lookups_answer_from_the_current_table() {
        let mut w = world(3, 10);
        let o = w.plant_orphan().unwrap();
        let t = tuple_to_wire(&o.client_tuple());
        let r = w.lookup(o.client, std::slice::from_ref(&t), true);
        assert!(r[0].present);
        assert_eq!(r[0].state, 1);
        assert_ne!(r[0].cookie, 0);
        assert_eq!(r[0].process.as_ref().unwrap().comm, "simapp");
        let m = tuple_to_wire(&o.client_tuple().mirror());
        let r = w.lookup(o.server, std::slice::from_ref(&m), false);
        assert!(!r[0].present, "the server never had it");
        assert_eq!(r[0].tuple.as_ref(), Some(&m));
        // Asking the wrong host, or about a foreign address, finds nothing.
        assert!(!w.lookup(o.server, &[t], false)[0].present);
        let foreign = v1::Tuple {
            local_ip: vec![10, 0, 0, 1],
            local_port: 1,
            remote_ip: vec![10, 0, 0, 2],
            remote_port: 2,
        };
        assert!(!w.lookup(0, &[foreign], true)[0].present);

        // A healthy connection: both ends present; gone from both after close.
        let s = w.hosts[0].socks[0];
        let c = Conn::of(0, &s);
        let ct = tuple_to_wire(&c.client_tuple());
        let st = tuple_to_wire(&c.client_tuple().mirror());
        assert!(w.lookup(c.client, std::slice::from_ref(&ct), false)[0].present);
        assert!(w.lookup(c.server, std::slice::from_ref(&st), false)[0].present);
        w.close(c);
        assert!(!w.lookup(c.client, &[ct], false)[0].present);
        assert!(!w.lookup(c.server, &[st], false)[0].present);
    }

    #[test]
    fn conn_round_trips_through_the_client_tuple() {
        let c = Conn {
            client: 300,
            cport: 40_000,
            server: 2,
            sport: 3306,
        };
        assert_eq!(Conn::from_client_tuple(&c.client_tuple()), Some(c));
        assert_eq!(key_parts(key(63_999, 1, 65_535)), (63_999, 1, 65_535));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(World::new(1, 1, &[3306], 0).err(), Some(WorldError::TooFewHosts));
        assert_eq!(
            World::new(2, 1, &[10_000], 0).err(),
            Some(WorldError::BadServerPort(10_000))
        );
        assert_eq!(World::new(2, 1, &[], 0).err(), Some(WorldError::NoServerPorts));
        assert!(matches!(
            World::new(2, EPHEMERAL_PORTS + 1, &[3306], 0),
            Err(WorldError::PortsExhausted(0))
        ));
    }
}
