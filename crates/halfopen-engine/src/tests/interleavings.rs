//! The property test: random interleavings of snapshots, deltas and lookups
//! against a simulated world never confirm a healthy connection, and find
//! every long-lived orphan.
use super::*;
use proptest::prelude::*;
/// A connection in the simulated world.
#[derive(Clone, Debug)]
struct Conn {
    tuple: Tuple, // client view
    open: u64,
    /// The client leaves ESTABLISHED here (None: never within the run).
    close: Option<u64>,
    /// Healthy: both ends; the server end exists from open + handshake until
    /// close + tail (CLOSE_WAIT after close). ClientOnly: the server never
    /// holds it. ServerOnly: the client never holds it.
    kind: Planted,
    handshake: u64,
    tail: u64,
    cookie_c: u64,
    cookie_s: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planted {
    Healthy,
    ClientOnly,
    ServerOnly,
}

impl Conn {
    fn client_state(&self, t: u64) -> Option<TcpState> {
        if t < self.open || self.kind == Planted::ServerOnly {
            return None;
        }
        match self.close {
            Some(c) if t >= c => {
                // TIME_WAIT for a while after an active close.
                if t < c + 3_000 && self.kind == Planted::Healthy {
                    Some(TcpState::TimeWait)
                } else {
                    None
                }
            }
            _ => Some(TcpState::Established),
        }
    }
    fn server_state(&self, t: u64) -> Option<TcpState> {
        if self.kind == Planted::ClientOnly || t < self.open + self.handshake {
            return None;
        }
        match self.close {
            Some(c) if self.kind == Planted::ServerOnly && t >= c => None,
            Some(c) if t >= c + self.tail => None,
            Some(c) if t >= c => Some(TcpState::CloseWait),
            _ => Some(TcpState::Established),
        }
    }
    fn orphan(&self) -> bool {
        self.kind != Planted::Healthy
    }
    /// Time the reconciler has to be told this can't be a healthy one.
    fn end_of_life(&self) -> u64 {
        self.close.map(|c| c + self.tail + 3_000).unwrap_or(u64::MAX)
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Host takes a snapshot now; it is delivered at a later time.
    Snapshot(usize),
    Deliver(usize, u64 /* snapshot index */),
    /// A lookup's scan happens now, its reply is delivered later.
    Scan(u64 /* lookup id */),
    Reply(u64),
    Tick,
}

/// A simulated host's table: tuple -> (state, cookie, side).
type World = HashMap<Tuple, (TcpState, u64, Side)>;

fn world_table(conns: &[Conn], host: usize, t: u64) -> World {
    let mut m = HashMap::new();
    for c in conns {
        if host == 1 {
            if let Some(st) = c.client_state(t) {
                m.insert(c.tuple, (st, c.cookie_c, Side::Client));
            }
        } else if let Some(st) = c.server_state(t) {
            m.insert(c.tuple.mirror(), (st, c.cookie_s, Side::Server));
        }
    }
    m
}

/// Plays one random world; returns (confirmed findings, planted orphans that
/// must have been found).
fn play(seed: u64, n_conns: usize, reuse_ports: u16) -> (Vec<Finding>, Vec<Conn>, Vec<Conn>) {
    let mut rng = Rng(seed | 1);
    let grace = 1_000;
    let cfg = EngineConfig {
        grace_ms: grace,
        lookup_timeout_ms: 20_000,
        ..Default::default()
    };
    let mut e = Engine::new(cfg);
    let horizon: u64 = 60_000;
    // Connections on a small set of client ports so tuples get reused.
    let mut next_free: BTreeMap<u16, u64> = BTreeMap::new();
    let mut conns = Vec::new();
    let mut cookie = 1000;
    for _ in 0..n_conns {
        let port = 40000 + (rng.next() % reuse_ports as u64) as u16;
        let earliest = *next_free.get(&port).unwrap_or(&0);
        let open = earliest.max(rng.range(0, horizon - 5_000));
        if open >= horizon - 5_000 {
            continue;
        }
        let kind = match rng.next() % 10 {
            0 | 1 => Planted::ClientOnly,
            2 => Planted::ServerOnly,
            _ => Planted::Healthy,
        };
        let life = match rng.next() % 4 {
            0 => rng.range(1, 200),
            1 => rng.range(200, 3_000),
            2 => rng.range(3_000, 20_000),
            _ => u64::MAX,
        };
        let close = if life == u64::MAX { None } else { Some(open + life) };
        // Handshake completes on the server within the grace period.
        let handshake = rng.range(0, grace - 1);
        let tail = rng.range(0, 5_000);
        cookie += 2;
        let c = Conn {
            tuple: Tuple::new(sa(C_IP, port), sa(S_IP, 3306)),
            open,
            close,
            kind,
            handshake,
            tail,
            cookie_c: cookie,
            cookie_s: cookie + 1,
        };
        // The next connection on this port starts after both ends are gone.
        let free = c.end_of_life().saturating_add(1);
        next_free.insert(port, free);
        conns.push(c);
    }

    let (s, ss) = connect(&mut e, hello("db", S_IP), clk(0));
    let (ch, cs) = connect(&mut e, hello("app", C_IP), clk(0));
    let idx = [s, ch];
    let sess = [ss, cs];
    let interval = 1_000;

    // Event queue ordered by time.
    let mut q: BTreeMap<(u64, u64), Ev> = BTreeMap::new();
    let mut seqno = 0u64;
    let mut push = |q: &mut BTreeMap<(u64, u64), Ev>, t: u64, ev: Ev| {
        seqno += 1;
        q.insert((t, seqno), ev);
    };
    for host in 0..2 {
        let mut t = rng.range(0, interval);
        while t < horizon + 30_000 {
            push(&mut q, t, Ev::Snapshot(host));
            t += rng.range(interval / 2, interval * 3 / 2);
        }
    }
    let mut t = 0;
    while t < horizon + 40_000 {
        push(&mut q, t, Ev::Tick);
        t += 100;
    }

    let mut snapshots: Vec<World> = Vec::new();
    let mut last_sent: [Option<World>; 2] = [None, None];
    let mut seqs = [0u64; 2];
    let mut last_delivery = [0u64; 2];
    let mut lookups: HashMap<u64, (usize, Vec<Tuple>, Option<World>)> = HashMap::new();
    let mut found = Vec::new();

    while let Some(((now, _), ev)) = q.pop_first() {
        let c = clk(now);
        let mut actions = Vec::new();
        match ev {
            Ev::Snapshot(host) => {
                snapshots.push(world_table(&conns, host, now));
                // Reports from one host arrive in order, after a random delay.
                let at = (now + rng.range(0, 2_500)).max(last_delivery[host]);
                last_delivery[host] = at;
                push(&mut q, at, Ev::Deliver(host, snapshots.len() as u64 - 1));
            }
            Ev::Deliver(host, si) => {
                let snap = snapshots[si as usize].clone();
                let to_rec = |t: &Tuple, v: &(TcpState, u64, Side)| SocketRecord {
                    tuple: *t,
                    state: v.0,
                    side: v.2,
                    cookie: v.1,
                    inode: 1,
                    uid: 0,
                    keepalive: false,
                    info: None,
                };
                seqs[host] += 1;
                let r = match &last_sent[host] {
                    None => full(seqs[host], snap.iter().map(|(t, v)| to_rec(t, v)).collect()),
                    Some(prev) => Report {
                        seq: seqs[host],
                        full: false,
                        last_chunk: true,
                        upserted: snap
                            .iter()
                            .filter(|(t, v)| prev.get(t) != Some(v))
                            .map(|(t, v)| to_rec(t, v))
                            .collect(),
                        removed: prev.keys().filter(|t| !snap.contains_key(t)).copied().collect(),
                        ..Default::default()
                    },
                };
                last_sent[host] = Some(snap);
                actions = e.report(idx[host], sess[host], r, c);
            }
            Ev::Tick => actions = e.tick(c),
            Ev::Scan(id) => {
                let (host, _, ref mut result) = lookups.get_mut(&id).unwrap();
                *result = Some(world_table(&conns, *host, now));
                push(&mut q, now + rng.range(0, 1_500), Ev::Reply(id));
            }
            Ev::Reply(id) => {
                let (host, tuples, result) = lookups.remove(&id).unwrap();
                let table = result.unwrap();
                let results = tuples
                    .iter()
                    .map(|t| {
                        let hit = table.get(t);
                        LookupAnswer {
                            tuple: *t,
                            socket: hit.map(|h| FoundSocket {
                                state: h.0,
                                cookie: h.1,
                                keepalive: false,
                            }),
                            process: None,
                            translated: None,
                        }
                    })
                    .collect();
                actions = e.lookup_reply(idx[host], sess[host], id, results, c);
            }
        }
        for a in actions {
            match a {
                Action::Lookup { host, id, tuples, .. } => {
                    let hn = if host == s { 0 } else { 1 };
                    lookups.insert(id, (hn, tuples, None));
                    // The scan happens after the request arrives.
                    push(&mut q, now + rng.range(0, 1_500), Ev::Scan(id));
                }
                Action::Confirmed(f) => found.push(f),
                Action::Resync { .. } => panic!("in-order reports never need a resync"),
                Action::Close { reason, .. } => panic!("no limit is near: {reason}"),
                Action::Gone { .. } | Action::Notice(_) | Action::Sample(_) => {}
            }
        }
    }
    // Orphans that lived long enough must have been found: detection needs a
    // snapshot + delivery (<= 1.5 s + 2.5 s), the grace (1 s), two lookups
    // (<= 3 s each), with slack.
    let must: Vec<Conn> = conns
        .iter()
        .filter(|c| {
            c.orphan() && c.close.map(|x| x - c.open).unwrap_or(u64::MAX) > 15_000 && c.open + 15_000 < horizon + 30_000
        })
        .cloned()
        .collect();
    (found, conns, must)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn random_interleavings_never_confirm_a_healthy_connection(seed in any::<u64>(), n in 5usize..80, reuse in 3u16..40) {
        let (found, conns, must) = play(seed, n, reuse);
        for f in &found {
            let c = conns.iter().find(|c| Some(c.tuple) == f.tuple() && (c.cookie_c == f.cookie || c.cookie_s == f.cookie));
            prop_assert!(c.is_some(), "confirmed something that never existed: {:?}", f);
            let c = c.unwrap();
            let expected = match c.kind {
                Planted::ClientOnly => Some(FindingKind::ClientOnly),
                Planted::ServerOnly => Some(FindingKind::ServerOnly),
                Planted::Healthy => None,
            };
            prop_assert_eq!(Some(f.kind), expected, "false positive: {:?} {:?}", f, c);
        }
        for m in &must {
            let cookie = if m.kind == Planted::ServerOnly { m.cookie_s } else { m.cookie_c };
            prop_assert!(found.iter().any(|f| f.tuple() == Some(m.tuple) && f.cookie == cookie), "missed orphan {:?}", m);
        }
    }
}

#[test]
fn simulation_plants_and_finds_orphans() {
    // Guards the property test against a world that never exercises anything.
    let mut total_found = 0;
    let mut total_must = 0;
    let mut server_only = 0;
    for seed in 1..20u64 {
        let (found, conns, must) = play(seed * 7919, 60, 10);
        assert!(conns.iter().any(|c| !c.orphan()));
        total_found += found.len();
        total_must += must.len();
        server_only += found.iter().filter(|f| f.kind == FindingKind::ServerOnly).count();
    }
    assert!(total_must >= 10, "too few long-lived orphans planted: {total_must}");
    assert!(total_found >= total_must);
    assert!(server_only >= 2, "too few server-only found: {server_only}");
}
