//! Engine tests: unit flows and a property test that plays random
//! interleavings of snapshots, deltas and lookups against a simulated world.
use super::*;
use halfopen_core::Listener;
use halfopen_core::{Process, Side, SocketRecord, TcpState, Tuple};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;

const S_IP: &str = "198.18.0.1";
const C_IP: &str = "198.18.0.2";

fn clk(ms: u64) -> Clock {
    Clock {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms as i64,
    }
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn rec(local: SocketAddr, remote: SocketAddr, side: Side, state: TcpState, cookie: u64) -> SocketRecord {
    SocketRecord {
        tuple: Tuple::new(local, remote),
        state,
        side,
        cookie,
        inode: 0,
        uid: 0,
        keepalive: false,
        info: None,
    }
}

fn hello(name: &str, ip: &str) -> HelloIn {
    HelloIn {
        host_id: name.into(),
        addresses: vec![ip.parse().unwrap(), "127.0.0.1".parse().unwrap()],
        interval_ms: 1000,
        source: "netlink".into(),
        peer: String::new(),
    }
}

fn full(seq: u64, recs: Vec<SocketRecord>) -> ReportIn {
    ReportIn {
        seq,
        full: true,
        last_chunk: true,
        upserted: recs,
        ..Default::default()
    }
}

/// Answers every lookup in `actions` from the given tables (tuple -> (state, cookie)).
fn answer(
    e: &mut Engine,
    actions: Vec<Action>,
    tables: &HashMap<HostIdx, HashMap<Tuple, (TcpState, u64)>>,
    sessions: &HashMap<HostIdx, u64>,
    now: Clock,
) -> Vec<Action> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Lookup { host, id, tuples, .. } => {
                let t = &tables[&host];
                let results = tuples
                    .iter()
                    .map(|tu| {
                        let hit = t.get(tu);
                        LookupResultIn {
                            tuple: *tu,
                            present: hit.is_some(),
                            state: hit.map(|h| h.0),
                            cookie: hit.map(|h| h.1).unwrap_or(0),
                            process: hit.map(|_| Process {
                                pid: 42,
                                comm: "java".into(),
                                cmdline: "java -jar app.jar".into(),
                                uid: 1000,
                            }),
                            keepalive: false,
                        }
                    })
                    .collect();
                out.extend(e.lookup_reply(host, sessions[&host], id, results, now));
            }
            other => out.push(other),
        }
    }
    out
}

fn confirmed(actions: &[Action]) -> Vec<Finding> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Confirmed(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

struct TwoHosts {
    e: Engine,
    s: HostIdx,
    c: HostIdx,
    sessions: HashMap<HostIdx, u64>,
}

fn two_hosts() -> TwoHosts {
    let mut e = Engine::new(EngineConfig::default());
    let (s, ss) = e.connect(hello("db", S_IP), clk(0));
    let (c, cs) = e.connect(hello("app", C_IP), clk(0));
    TwoHosts {
        e,
        s,
        c,
        sessions: HashMap::from([(s, ss), (c, cs)]),
    }
}

#[test]
fn orphan_is_confirmed_after_grace_and_both_lookups() {
    let mut w = two_hosts();
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 77);
    let healthy_c = rec(sa(C_IP, 40002), sa(S_IP, 3306), Side::Client, TcpState::Established, 78);
    let healthy_s = rec(sa(S_IP, 3306), sa(C_IP, 40002), Side::Server, TcpState::Established, 99);
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![healthy_s]), clk(10));
    w.e.report(c, w.sessions[&c], full(1, vec![orphan, healthy_c]), clk(20));
    // Before the grace period nothing is asked.
    let a = w.e.tick(clk(500));
    assert!(a.iter().all(|a| !matches!(a, Action::Lookup { .. })), "{a:?}");
    let a = w.e.tick(clk(1100));
    let lookups: Vec<_> = a.iter().filter(|a| matches!(a, Action::Lookup { .. })).collect();
    assert_eq!(lookups.len(), 1);
    match lookups[0] {
        Action::Lookup {
            host,
            tuples,
            attribute,
            ..
        } => {
            assert_eq!(*host, s, "first lookup goes to the server host");
            assert_eq!(tuples, &vec![orphan.tuple.mirror()]);
            assert!(!attribute);
        }
        _ => unreachable!(),
    }
    let tables = HashMap::from([
        (s, HashMap::from([(healthy_s.tuple, (TcpState::Established, 99))])),
        (
            c,
            HashMap::from([
                (orphan.tuple, (TcpState::Established, 77)),
                (healthy_c.tuple, (TcpState::Established, 78)),
            ]),
        ),
    ]);
    // Server says absent -> the engine asks the client, with attribution.
    let a2 = answer(&mut w.e, a, &tables, &w.sessions, clk(1200));
    assert!(confirmed(&a2).is_empty());
    assert!(matches!(&a2[0], Action::Lookup { host, attribute: true, .. } if *host == c));
    let a3 = answer(&mut w.e, a2, &tables, &w.sessions, clk(1300));
    let f = confirmed(&a3);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].tuple, Some(orphan.tuple));
    assert_eq!(f[0].kind, FindingKind::ClientOnly);
    assert!(f[0].explanation.contains("no trace"), "{}", f[0].explanation);
    assert_eq!(f[0].client_host, "app");
    assert_eq!(f[0].server_host, "db");
    assert_eq!(f[0].process.as_ref().unwrap().pid, 42);
    assert_eq!(f[0].first_seen_ms, clk(20).wall_ms);
    assert_eq!(f[0].confirmed_at_ms, clk(1300).wall_ms);
    assert_eq!(w.e.findings(clk(1300)).len(), 1);

    // The client closes it: gone.
    let d = ReportIn {
        seq: 2,
        removed: vec![orphan.tuple],
        last_chunk: true,
        ..Default::default()
    };
    let a4 = w.e.report(c, w.sessions[&c], d, clk(2000));
    assert!(
        matches!(
            &a4[0],
            Action::Gone {
                reason: GoneReason::ClientClosed,
                ..
            }
        ),
        "{a4:?}"
    );
    assert!(w.e.findings(clk(2000)).is_empty());
}

#[test]
fn server_holding_it_in_any_state_clears_the_candidate() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![cl]), clk(0));
    let a = w.e.tick(clk(1500));
    // The server's fresh scan has it in SYN_RECV (handshake without cookies).
    let tables = HashMap::from([
        (s, HashMap::from([(cl.tuple.mirror(), (TcpState::SynRecv, 1))])),
        (c, HashMap::from([(cl.tuple, (TcpState::Established, 7))])),
    ]);
    let a2 = answer(&mut w.e, a, &tables, &w.sessions, clk(1600));
    assert!(a2.is_empty(), "{a2:?}");
    assert_eq!(w.e.candidate_count(), 0);
    assert_eq!(w.e.stats().cleared_by_other_lookup, 1);
}

#[test]
fn reused_tuple_with_new_cookie_is_not_confirmed() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![cl]), clk(0));
    let a = w.e.tick(clk(1500));
    let mut tables = HashMap::from([
        (s, HashMap::new()),
        (c, HashMap::from([(cl.tuple, (TcpState::Established, 7))])),
    ]);
    let a2 = answer(&mut w.e, a, &tables, &w.sessions, clk(1600));
    // Between the server check and the client check the tuple was closed and
    // reused by a new socket.
    tables.insert(c, HashMap::from([(cl.tuple, (TcpState::Established, 8))]));
    let a3 = answer(&mut w.e, a2, &tables, &w.sessions, clk(1700));
    assert!(confirmed(&a3).is_empty());
    assert_eq!(w.e.stats().cleared_by_holder_lookup, 1);
}

/// The tuples of the lookups among `actions`.
fn looked_up(actions: &[Action]) -> Vec<Tuple> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Lookup { tuples, .. } => Some(tuples.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn unmonitored_server_is_never_judged() {
    let mut e = Engine::new(EngineConfig::default());
    // Only db claims loopback here, so loopback is unambiguous: what keeps
    // it out must be the rule that loopback is never matched.
    let mut app = hello("app", C_IP);
    app.addresses.retain(|a| !a.is_loopback());
    let (s, ss) = e.connect(hello("db", S_IP), clk(0));
    let (c, cs) = e.connect(app, clk(0));
    let unmonitored = rec(
        sa(C_IP, 40001),
        sa("198.18.0.99", 3306),
        Side::Client,
        TcpState::Established,
        7,
    );
    let lo = rec(
        sa("127.0.0.1", 40002),
        sa("127.0.0.1", 3306),
        Side::Client,
        TcpState::Established,
        8,
    );
    // a control that must be judged, so the test sees judging happen
    let control = rec(sa(C_IP, 40003), sa(S_IP, 3306), Side::Client, TcpState::Established, 9);
    e.report(s, ss, full(1, vec![]), clk(0));
    e.report(c, cs, full(1, vec![unmonitored, lo, control]), clk(0));
    assert_eq!(e.candidate_count(), 1, "only the control is a candidate");
    // after the grace period, while both hosts are fresh
    let a = e.tick(clk(1500));
    assert_eq!(looked_up(&a), vec![control.tuple.mirror()], "{a:?}");
}

#[test]
fn ambiguous_address_is_never_judged() {
    let mut e = Engine::new(EngineConfig::default());
    let (s1, ss1) = e.connect(hello("db1", S_IP), clk(0));
    let (s2, ss2) = e.connect(hello("db2", S_IP), clk(0));
    let (s3, ss3) = e.connect(hello("db3", "198.18.0.5"), clk(0));
    let (c, cs) = e.connect(hello("app", C_IP), clk(0));
    for (h, sess) in [(s1, ss1), (s2, ss2), (s3, ss3)] {
        e.report(h, sess, full(1, vec![]), clk(0));
    }
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let control = rec(
        sa(C_IP, 40002),
        sa("198.18.0.5", 3306),
        Side::Client,
        TcpState::Established,
        8,
    );
    e.report(c, cs, full(1, vec![cl, control]), clk(0));
    assert_eq!(e.owner_of(S_IP.parse().unwrap()), None);
    assert_eq!(e.candidate_count(), 1, "only the control is a candidate");
    let a = e.tick(clk(1500));
    assert_eq!(looked_up(&a), vec![control.tuple.mirror()], "{a:?}");
}

#[test]
fn disconnected_or_stale_server_is_never_judged() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![cl]), clk(0));
    assert_eq!(w.e.candidate_count(), 1);
    // The server's collector dies before the grace period ends.
    w.e.disconnect(s, w.sessions[&s]);
    assert!(w.e.tick(clk(1500)).is_empty());
    assert_eq!(w.e.candidate_count(), 0);
    assert!(w.e.hosts(clk(1500)).iter().find(|h| h.name == "db").unwrap().stale);

    // Stale by silence: a server that reported once, long ago.
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![]), clk(9_000));
    let d = ReportIn {
        seq: 2,
        upserted: vec![cl],
        last_chunk: true,
        ..Default::default()
    };
    w.e.report(c, w.sessions[&c], d, clk(9_500));
    assert_eq!(
        w.e.candidate_count(),
        0,
        "server silent for 9.5 s with a 1 s interval is stale"
    );
}

/// Judgements skipped while a host was not judgeable are made when it is,
/// without a sweep of every table: the server joining after the client, the
/// server coming back from silence, the client coming back from silence.
#[test]
fn skipped_judgements_are_made_when_the_host_is_judgeable() {
    fn confirm_by_lookups(
        w: &mut TwoHosts,
        tables: &HashMap<HostIdx, HashMap<Tuple, (TcpState, u64)>>,
        at: u64,
    ) -> Vec<Finding> {
        let a = w.e.tick(clk(at));
        let a = answer(&mut w.e, a, tables, &w.sessions, clk(at));
        let a = answer(&mut w.e, a, tables, &w.sessions, clk(at));
        confirmed(&a)
    }
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let healthy_c = rec(sa(C_IP, 40002), sa(S_IP, 3306), Side::Client, TcpState::Established, 8);
    let healthy_s = rec(sa(S_IP, 3306), sa(C_IP, 40002), Side::Server, TcpState::Established, 9);

    // 1. The client's table arrives before the server's first one.
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(c, w.sessions[&c], full(1, vec![orphan, healthy_c]), clk(0));
    assert_eq!(w.e.candidate_count(), 0, "the server is not judgeable yet");
    w.e.report(s, w.sessions[&s], full(1, vec![healthy_s]), clk(100));
    w.e.tick(clk(200));
    assert_eq!(
        w.e.candidate_count(),
        1,
        "judged at the tick after the server became judgeable"
    );
    let tables = HashMap::from([
        (s, HashMap::from([(healthy_s.tuple, (TcpState::Established, 9))])),
        (
            c,
            HashMap::from([
                (orphan.tuple, (TcpState::Established, 7)),
                (healthy_c.tuple, (TcpState::Established, 8)),
            ]),
        ),
    ]);
    let f = confirm_by_lookups(&mut w, &tables, 1300);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].tuple, Some(orphan.tuple));

    // 2. The orphan appears while the server is silent (stale), then the server reports again.
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![healthy_s]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![healthy_c]), clk(0));
    w.e.tick(clk(100));
    let d = |seq, upserted: Vec<SocketRecord>, removed: Vec<Tuple>| ReportIn {
        seq,
        upserted,
        removed,
        last_chunk: true,
        ..Default::default()
    };
    w.e.report(c, w.sessions[&c], d(2, vec![orphan], vec![]), clk(4_000));
    w.e.tick(clk(4_100));
    assert_eq!(w.e.candidate_count(), 0, "the server is stale");
    w.e.report(s, w.sessions[&s], d(2, vec![], vec![]), clk(4_500));
    w.e.tick(clk(4_600));
    assert_eq!(w.e.candidate_count(), 1, "judged once the server is back");
    assert_eq!(confirm_by_lookups(&mut w, &tables, 5_700).len(), 1);

    // 3. The server's end goes while the client is silent, then the client reports again.
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![healthy_s]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![healthy_c]), clk(0));
    w.e.tick(clk(100));
    w.e.tick(clk(4_000));
    w.e.report(s, w.sessions[&s], d(2, vec![], vec![healthy_s.tuple]), clk(4_000));
    assert_eq!(w.e.candidate_count(), 0, "the client is stale");
    w.e.report(c, w.sessions[&c], d(2, vec![], vec![]), clk(4_500));
    w.e.tick(clk(4_600));
    assert_eq!(w.e.candidate_count(), 1, "judged once the client is back");
    let tables = HashMap::from([
        (s, HashMap::new()),
        (c, HashMap::from([(healthy_c.tuple, (TcpState::Established, 8))])),
    ]);
    let f = confirm_by_lookups(&mut w, &tables, 5_700);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].tuple, Some(healthy_c.tuple));
}

#[test]
fn sequence_gap_asks_for_resync_and_suspends_judgement() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![]), clk(0));
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let d = ReportIn {
        seq: 3,
        upserted: vec![cl],
        last_chunk: true,
        ..Default::default()
    };
    let a = w.e.report(c, w.sessions[&c], d, clk(100));
    assert!(matches!(&a[0], Action::Resync { host, .. } if *host == c));
    assert_eq!(w.e.candidate_count(), 0);
    // The full table that follows is applied.
    w.e.report(c, w.sessions[&c], full(4, vec![cl]), clk(200));
    assert_eq!(w.e.candidate_count(), 1);
}

#[test]
fn full_table_in_chunks_is_applied_at_the_last_chunk() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    let a = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let b = rec(sa(C_IP, 40002), sa(S_IP, 3306), Side::Client, TcpState::Established, 8);
    let mut first = full(1, vec![a]);
    first.last_chunk = false;
    w.e.report(c, w.sessions[&c], first, clk(0));
    assert_eq!(w.e.hosts(clk(0)).iter().find(|h| h.name == "app").unwrap().sockets, 0);
    w.e.report(c, w.sessions[&c], full(1, vec![b]), clk(0));
    let hv = w.e.hosts(clk(0));
    let app = hv.iter().find(|h| h.name == "app").unwrap();
    assert_eq!((app.sockets, app.client_sockets), (2, 2));
    assert_eq!(w.e.candidate_count(), 2);
}

#[test]
fn restored_orphan_goes_when_the_client_table_lacks_it_and_stays_when_present() {
    let f = |port, cookie| Finding {
        kind: FindingKind::ClientOnly,
        tuple: Some(Tuple::new(sa(C_IP, port), sa(S_IP, 3306))),
        cookie,
        client_host: "app".into(),
        server_host: "db".into(),
        first_seen_ms: 1,
        confirmed_at_ms: 2,
        ..Default::default()
    };
    let mut e = Engine::new(EngineConfig::default());
    e.restore(vec![f(40001, 7), f(40002, 8)]);
    assert_eq!(e.findings(clk(0)).len(), 2);
    assert!(e.findings(clk(0))[0].client_host_stale);
    let (s, ss) = e.connect(hello("db", S_IP), clk(0));
    let (c, cs) = e.connect(hello("app", C_IP), clk(0));
    e.report(s, ss, full(1, vec![]), clk(0));
    let still = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let a = e.report(c, cs, full(1, vec![still]), clk(10));
    let gone: Vec<_> = a.iter().filter(|a| matches!(a, Action::Gone { .. })).collect();
    assert_eq!(gone.len(), 1);
    let v = e.findings(clk(10));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].finding.tuple.unwrap().local().port(), 40001);
    assert!(!v[0].client_host_stale);
}

// ------------------------------------------------------------------ property test

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

    let (s, ss) = e.connect(hello("db", S_IP), clk(0));
    let (ch, cs) = e.connect(hello("app", C_IP), clk(0));
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
                    Some(prev) => ReportIn {
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
                        LookupResultIn {
                            tuple: *t,
                            present: hit.is_some(),
                            state: hit.map(|h| h.0),
                            cookie: hit.map(|h| h.1).unwrap_or(0),
                            process: None,
                            keepalive: false,
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
                Action::Gone { .. } => {}
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
            let c = conns.iter().find(|c| Some(c.tuple) == f.tuple && (c.cookie_c == f.cookie || c.cookie_s == f.cookie));
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
            prop_assert!(found.iter().any(|f| f.tuple == Some(m.tuple) && f.cookie == cookie), "missed orphan {:?}", m);
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

fn db_listener(queue: u32, backlog: u32) -> Listener {
    Listener {
        addr: "0.0.0.0:3306".parse().unwrap(),
        queue,
        backlog,
        inode: 9,
        uid: 0,
        process: Some(Process {
            pid: 500,
            comm: "mariadbd".into(),
            cmdline: "mariadbd --back-log=4".into(),
            uid: 999,
        }),
        libwrap: true,
    }
}

#[test]
fn stalled_greeting_is_found_with_the_server_process_and_goes_when_greeted() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let mut sv = rec(sa(S_IP, 3306), sa(C_IP, 40001), Side::Server, TcpState::Established, 8);
    sv.inode = 0; // still in the accept queue
    let mut r = full(1, vec![sv]);
    r.listeners = vec![db_listener(1, 4)];
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut r = full(1, vec![cl]);
    r.silent = vec![(cl.tuple, 5_000)];
    let a = w.e.report(c, w.sessions[&c], r, clk(10));
    assert!(confirmed(&a).is_empty(), "5 s is under the 10 s threshold");
    // The server keeps reporting (it is not stale).
    let keep = ReportIn {
        seq: 2,
        last_chunk: true,
        listeners: vec![db_listener(1, 4)],
        ..Default::default()
    };
    w.e.report(s, w.sessions[&s], keep, clk(6_500));
    let d = ReportIn {
        seq: 2,
        last_chunk: true,
        silent: vec![(cl.tuple, 12_000)],
        ..Default::default()
    };
    let a = w.e.report(c, w.sessions[&c], d, clk(7_000));
    let f = confirmed(&a);
    assert_eq!(f.len(), 1, "{a:?}");
    assert_eq!(f[0].kind, FindingKind::StalledGreeting);
    assert!(f[0].in_accept_queue);
    assert_eq!(f[0].server_process.as_ref().unwrap().comm, "mariadbd");
    assert!(f[0].explanation.contains("accept queue") && f[0].explanation.contains("libwrap"));
    // Greeted: no longer silent.
    let d = ReportIn {
        seq: 3,
        last_chunk: true,
        ..Default::default()
    };
    let a = w.e.report(c, w.sessions[&c], d, clk(8_000));
    assert!(
        matches!(
            &a[0],
            Action::Gone {
                reason: GoneReason::Greeted,
                ..
            }
        ),
        "{a:?}"
    );
    assert!(w.e.findings(clk(8_000)).is_empty());
    // A silent socket on a port that is not a greeting port is never stalled.
    let other = rec(sa(C_IP, 40002), sa(S_IP, 8080), Side::Client, TcpState::Established, 9);
    let sv2 = rec(sa(S_IP, 8080), sa(C_IP, 40002), Side::Server, TcpState::Established, 10);
    w.e.report(
        s,
        w.sessions[&s],
        ReportIn {
            seq: 3,
            last_chunk: true,
            upserted: vec![sv2],
            ..Default::default()
        },
        clk(8_100),
    );
    let d = ReportIn {
        seq: 4,
        last_chunk: true,
        upserted: vec![other],
        silent: vec![(other.tuple, 60_000)],
        ..Default::default()
    };
    assert!(confirmed(&w.e.report(c, w.sessions[&c], d, clk(8_200))).is_empty());
}

#[test]
fn listener_at_risk_from_queue_or_counters_and_recovers() {
    let mut w = two_hosts();
    let s = w.s;
    let counters = |n: u64| {
        BTreeMap::from([
            ("TcpExt.ListenOverflows".to_string(), n),
            ("TcpExt.SyncookiesSent".to_string(), n),
        ])
    };
    let mut r = full(1, vec![]);
    r.listeners = vec![db_listener(0, 4)];
    r.counters = counters(10);
    assert!(confirmed(&w.e.report(s, w.sessions[&s], r, clk(0))).is_empty());
    // Counters rose, and the host has one routable listener: at risk.
    let d = ReportIn {
        seq: 2,
        last_chunk: true,
        listeners: vec![db_listener(0, 4)],
        counters: counters(200),
        ..Default::default()
    };
    let f = confirmed(&w.e.report(s, w.sessions[&s], d, clk(1_000)));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, FindingKind::ListenerAtRisk);
    assert_eq!(f[0].listener, Some("0.0.0.0:3306".parse().unwrap()));
    assert!(
        f[0].explanation.contains("ListenOverflows +190"),
        "{}",
        f[0].explanation
    );
    // Quiet for longer than 3 intervals: recovered.
    let mut seq = 3;
    let mut gone = Vec::new();
    // The rise stays in the 3-interval window until 4 s, then 3 s more.
    for t in (2..=8).map(|s| s * 1_000) {
        let d = ReportIn {
            seq,
            last_chunk: true,
            listeners: vec![db_listener(0, 4)],
            counters: counters(200),
            ..Default::default()
        };
        seq += 1;
        gone.extend(w.e.report(s, w.sessions[&s], d, clk(t)));
    }
    assert!(
        matches!(
            &gone[..],
            [Action::Gone {
                reason: GoneReason::Recovered,
                ..
            }]
        ),
        "{gone:?}"
    );
    // A queue at its limit is at risk even before any counter moves.
    let d = ReportIn {
        seq,
        last_chunk: true,
        listeners: vec![db_listener(5, 4)],
        counters: counters(200),
        ..Default::default()
    };
    assert_eq!(confirmed(&w.e.report(s, w.sessions[&s], d, clk(9_000))).len(), 1);
}

#[test]
fn explain_a_listener_gives_concrete_changes() {
    let mut w = two_hosts();
    let s = w.s;
    let mut r = full(1, vec![]);
    r.listeners = vec![db_listener(5, 4)];
    r.sysctls = BTreeMap::from([("net.core.somaxconn".to_string(), "128".to_string())]);
    r.counters = BTreeMap::from([("TcpExt.ListenOverflows".to_string(), 0)]);
    w.e.report(s, w.sessions[&s], r, clk(0));
    let d = ReportIn {
        seq: 2,
        last_chunk: true,
        listeners: vec![db_listener(5, 4)],
        counters: BTreeMap::from([("TcpExt.ListenOverflows".to_string(), 900)]),
        ..Default::default()
    };
    w.e.report(s, w.sessions[&s], d, clk(1_000));
    for target in ["db:3306", "198.18.0.1:3306", ""] {
        let diags = w.e.explain(target, clk(1_500)).unwrap();
        assert_eq!(diags.len(), 1, "{target}: {diags:?}");
        let back = &diags[0].changes[0];
        assert!(back.setting.starts_with("back_log (mariadbd)"), "{back:?}");
        assert_eq!(back.current, "4");
        assert!(diags[0]
            .changes
            .iter()
            .any(|c| c.setting == "net.core.somaxconn" && c.current == "128"));
    }
    assert!(w.e.explain("nosuchhost:1", clk(0)).is_err());
    assert!(w.e.explain("garbage", clk(0)).is_err());
}

#[test]
fn a_listener_stays_at_risk_while_its_orphans_exist() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 77);
    let mut r = full(1, vec![]);
    r.listeners = vec![db_listener(0, 4)];
    w.e.report(s, w.sessions[&s], r, clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![orphan]), clk(0));
    let a = w.e.tick(clk(1_100));
    let tables = HashMap::from([
        (s, HashMap::new()),
        (c, HashMap::from([(orphan.tuple, (TcpState::Established, 77))])),
    ]);
    let a = answer(&mut w.e, a, &tables, &w.sessions, clk(1_200));
    let a = answer(&mut w.e, a, &tables, &w.sessions, clk(1_300));
    assert_eq!(confirmed(&a).len(), 1);
    // Quiet counters and an empty queue for a long time, but the orphan is
    // still there: the listener is at risk, and stays so.
    let mut seq = 2;
    let mut risk = Vec::new();
    for t in (2..=20).map(|x| x * 1_000) {
        let d = ReportIn {
            seq,
            last_chunk: true,
            listeners: vec![db_listener(0, 4)],
            ..Default::default()
        };
        seq += 1;
        risk.extend(w.e.report(s, w.sessions[&s], d, clk(t)));
        let d = ReportIn {
            seq: seq - 1,
            last_chunk: true,
            ..Default::default()
        };
        w.e.report(c, w.sessions[&c], d, clk(t));
    }
    assert_eq!(confirmed(&risk).len(), 1, "{risk:?}");
    assert!(risk.iter().all(|a| !matches!(a, Action::Gone { .. })), "{risk:?}");
    let kinds: Vec<_> = w.e.findings(clk(20_000)).iter().map(|f| f.finding.kind).collect();
    assert_eq!(kinds, vec![FindingKind::ClientOnly, FindingKind::ListenerAtRisk]);
}

/// Findings of every kind over awkward host names and both address families,
/// restored straight into an engine (paging does not care how they came).
fn paging_findings(n: usize) -> Vec<Finding> {
    let hosts = ["app-1", "app~2", "dbé", "", "a-very-long-host-name.example"];
    (0..n)
        .map(|i| {
            let kind = FindingKind::ALL[i % 4];
            let client = if i % 3 == 0 {
                sa("2001:db8::2", 40_000 + (i % 20_000) as u16)
            } else {
                sa("198.18.0.2", 30_000 + (i % 30_000) as u16)
            };
            let server = if i % 3 == 0 {
                sa("2001:db8::1", 3306)
            } else {
                sa("198.18.0.1", 3306 + (i % 7) as u16)
            };
            let listener_kind = kind == FindingKind::ListenerAtRisk;
            Finding {
                kind,
                tuple: (!listener_kind).then(|| Tuple::new(client, server)),
                listener: listener_kind.then(|| sa("198.18.0.1", (1000 + i) as u16)),
                client_host: hosts[i % hosts.len()].into(),
                server_host: hosts[(i / 5) % hosts.len()].into(),
                explanation: format!("finding {i}"),
                ..Default::default()
            }
        })
        .collect()
}

fn keys(v: &[FindingView]) -> Vec<String> {
    v.iter().map(|f| format!("{:?}", f.finding.order_key())).collect()
}

/// Reads every page of `kind` with `limit` per page.
fn all_pages(e: &Engine, kind: Option<FindingKind>, limit: usize) -> (Vec<FindingView>, usize) {
    let mut out = Vec::new();
    let mut after: Option<PageCursor> = None;
    for pages in 1..10_000 {
        let (page, next) = e.findings_page(clk(0), kind, after.as_ref(), limit);
        assert!(page.len() <= limit, "a page holds at most its limit");
        out.extend(page);
        match next {
            // the cursor travels as a token, as it does through the CLI
            Some(c) => after = Some(PageCursor::parse(&c.token()).expect("a token we made parses")),
            None => return (out, pages),
        }
    }
    panic!("paging did not end");
}

#[test]
fn pages_together_are_the_whole_listing_in_order() {
    let mut e = Engine::new(EngineConfig::default());
    e.restore(paging_findings(103));
    let whole = e.findings(clk(0));
    assert_eq!(whole.len(), 103);
    let mut sorted = keys(&whole);
    sorted.dedup();
    assert_eq!(sorted.len(), 103, "no two findings share an order key");
    for limit in [1, 7, 50, 103, 1000] {
        let (paged, pages) = all_pages(&e, None, limit);
        assert_eq!(keys(&paged), keys(&whole), "limit {limit}");
        assert_eq!(
            pages,
            103usize.div_ceil(limit).max(1),
            "limit {limit}: no empty last page"
        );
    }
    for kind in FindingKind::ALL {
        let want: Vec<_> = whole.iter().filter(|f| f.finding.kind == kind).cloned().collect();
        assert!(!want.is_empty());
        assert_eq!(keys(&all_pages(&e, Some(kind), 4).0), keys(&want), "{kind:?}");
    }
}

#[test]
fn findings_appearing_between_pages_are_never_listed_twice() {
    let all = paging_findings(60);
    let mut e = Engine::new(EngineConfig::default());
    e.restore(all[..30].to_vec());
    let (first, next) = e.findings_page(clk(0), None, None, 10);
    e.restore(all[30..].to_vec());
    let (rest, _) = {
        let mut out = Vec::new();
        let mut after = next;
        while let Some(c) = after {
            let (p, n) = e.findings_page(clk(0), None, Some(&c), 10);
            out.extend(p);
            after = n;
        }
        (out, ())
    };
    let mut listed = keys(&first);
    listed.extend(keys(&rest));
    let n = listed.len();
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), n, "a finding was listed twice");
    // Every finding present from the start is listed.
    for f in &all[..30] {
        let k = format!("{:?}", f.order_key());
        assert!(listed.contains(&k), "{k} was present throughout but not listed");
    }
}

proptest! {
    #[test]
    fn page_tokens_round_trip(client in ".*", server in ".*", port in any::<u16>(), v6 in any::<bool>(), k in 0usize..4) {
        let ip = if v6 { "2001:db8::7" } else { "198.18.1.7" };
        let f = Finding {
            kind: FindingKind::ALL[k],
            tuple: (k != 3).then(|| Tuple::new(sa(ip, port), sa(ip, 3306))),
            listener: (k == 3).then(|| sa(ip, port)),
            client_host: client,
            server_host: server,
            ..Default::default()
        };
        let c = PageCursor::of(&f);
        prop_assert_eq!(PageCursor::parse(&c.token()), Some(c));
    }

    #[test]
    fn any_string_as_a_page_token_is_read_or_refused_without_panic(s in ".*") {
        let _ = PageCursor::parse(&s);
    }
}

#[test]
fn foreign_page_tokens_are_refused() {
    let good = PageCursor::of(&paging_findings(1)[0]).token();
    assert!(PageCursor::parse(&good).is_some());
    for bad in [
        String::new(),
        "client_only".to_string(),
        good.replacen("client_only", "orphan", 1),
        format!("{good}~00"),
        good.rsplit_once('~').unwrap().0.to_string(),
        format!("{}~0", good.rsplit_once('~').unwrap().0),  // odd hex
        format!("{}~zz", good.rsplit_once('~').unwrap().0), // not hex
        format!("{}~ff", good.rsplit_once('~').unwrap().0), // not UTF-8
        good.replacen("2001:db8::1", "2001:dbx::1", 1),     // not an address
    ] {
        assert_eq!(PageCursor::parse(&bad), None, "{bad:?}");
    }
}

#[test]
fn a_restored_listener_at_risk_adds_no_nameless_host() {
    let mut e = Engine::new(EngineConfig::default());
    e.restore(vec![Finding {
        kind: FindingKind::ListenerAtRisk,
        listener: Some(sa(S_IP, 3306)),
        server_host: "db".into(),
        ..Default::default()
    }]);
    let hosts: Vec<String> = e.hosts(clk(0)).into_iter().map(|h| h.name).collect();
    assert_eq!(hosts, vec!["db".to_string()]);
    let f = e.findings(clk(0));
    assert_eq!(f.len(), 1);
    assert!(!f[0].client_host_stale, "a listener has no client host to be stale");
}

#[test]
fn a_holder_check_that_leaves_a_tuple_unanswered_asks_again() {
    let mut w = two_hosts();
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 77);
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(10));
    w.e.report(c, w.sessions[&c], full(1, vec![orphan]), clk(20));
    let a = w.e.tick(clk(1100));
    let tables = HashMap::from([
        (s, HashMap::new()),
        (c, HashMap::from([(orphan.tuple, (TcpState::Established, 77))])),
    ]);
    let a2 = answer(&mut w.e, a, &tables, &w.sessions, clk(1200));
    let Some(Action::Lookup { host, id, .. }) = a2.first() else {
        panic!("the holder is asked: {a2:?}")
    };
    assert_eq!(*host, c);
    // The holder answers, but not for this tuple (a reply cut short or
    // undecodable): the candidate is not dropped, it is asked about again.
    let out = w.e.lookup_reply(c, w.sessions[&c], *id, Vec::new(), clk(1300));
    assert!(confirmed(&out).is_empty());
    assert_eq!(w.e.candidate_count(), 1, "the candidate is kept");
    let again = w.e.tick(clk(2500));
    let asked = answer(&mut w.e, again, &tables, &w.sessions, clk(2600));
    let f = confirmed(&answer(&mut w.e, asked, &tables, &w.sessions, clk(2700)));
    assert_eq!(f.len(), 1, "confirmed after asking again");
}

#[test]
fn an_orphan_whose_holder_goes_stale_mid_confirmation_is_judged_again() {
    let mut w = two_hosts();
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 77);
    let (s, c) = (w.s, w.c);
    let delta = |seq| ReportIn {
        seq,
        last_chunk: true,
        ..Default::default()
    };
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![orphan]), clk(0));
    let tables = HashMap::from([
        (s, HashMap::new()),
        (c, HashMap::from([(orphan.tuple, (TcpState::Established, 77))])),
    ]);
    let asked = w.e.tick(clk(1100));
    assert_eq!(looked_up(&asked), vec![orphan.tuple.mirror()]);
    w.e.report(s, w.sessions[&s], delta(2), clk(2000));
    // The server's "absent" arrives when the client host is stale (no report
    // for 3 s): the holder cannot be asked now...
    let a = answer(&mut w.e, asked, &tables, &w.sessions, clk(3500));
    assert!(looked_up(&a).is_empty(), "{a:?}");
    // ...but once it reports again the orphan, unchanged, is judged again.
    w.e.report(c, w.sessions[&c], delta(2), clk(3600));
    w.e.report(s, w.sessions[&s], delta(3), clk(3600));
    let mut found = Vec::new();
    for t in (3700..9000).step_by(100) {
        let a = w.e.tick(clk(t));
        let a = answer(&mut w.e, a, &tables, &w.sessions, clk(t));
        let a = answer(&mut w.e, a, &tables, &w.sessions, clk(t));
        found.extend(confirmed(&a));
    }
    assert_eq!(found.len(), 1, "the orphan was dropped for good");
    assert_eq!(found[0].tuple, Some(orphan.tuple));
}
