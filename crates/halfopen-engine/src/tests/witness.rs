//! The server's kernel as a witness: a client_only finding whose drop the
//! server witnessed says so (whether the witness comes before or after its
//! confirmation); a witnessed drop from an unmonitored client on a greeting
//! port becomes a dropped_handshake after a fresh server lookup, and is gone
//! when the server gains the tuple or after the TTL; nothing else does.
use super::*;
use crate::explain::finding_text;
use halfopen_core::{DropPath, DropWitness, GoneReason, Witness};

const UNMONITORED: &str = "198.18.7.7";

fn witness(server_view: Tuple, path: DropPath) -> DropWitness {
    DropWitness {
        tuple: server_view,
        at_ms: 1_700_000_000_400,
        path,
        queue: 5,
        backlog: 4,
    }
}

/// A delta report of host `h` carrying only witnesses (and the listener).
fn witnessed(seq: u64, ws: Vec<DropWitness>) -> Report {
    Report {
        seq,
        last_chunk: true,
        listeners: vec![db_listener(0, 4)],
        witnessed: ws,
        ..Default::default()
    }
}

/// The connection findings among `actions` (listeners at risk, which the
/// orphans also make, are another test's business).
fn conns(actions: &[Action]) -> Vec<Finding> {
    confirmed(actions)
        .into_iter()
        .filter(|f| f.kind != FindingKind::ListenerAtRisk)
        .collect()
}

fn current(e: &Engine, now: Clock) -> Vec<Finding> {
    e.findings(now)
        .into_iter()
        .map(|v| v.finding)
        .filter(|f| f.kind != FindingKind::ListenerAtRisk)
        .collect()
}

fn gone(actions: &[Action]) -> Vec<(FindingKind, GoneReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Gone { finding, reason, .. } if finding.kind != FindingKind::ListenerAtRisk => {
                Some((finding.kind, *reason))
            }
            _ => None,
        })
        .collect()
}

/// Answers the lookups in `actions` from `tables`; returns what followed.
fn answer_all(
    e: &mut Engine,
    actions: Vec<Action>,
    tables: &HashMap<HostIdx, HashMap<Tuple, (TcpState, u64)>>,
    sessions: &HashMap<HostIdx, u64>,
    now: Clock,
) -> Vec<Action> {
    answer(e, actions, tables, sessions, now)
}

#[test]
fn a_client_only_finding_says_the_server_witnessed_its_drop() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 77);
    let other = rec(sa(C_IP, 40002), sa(S_IP, 3306), Side::Client, TcpState::Established, 78);
    let mut db = full(1, vec![]);
    db.listeners = vec![db_listener(0, 4)];
    w.e.report(s, w.sessions[&s], db, clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![orphan, other]), clk(0));
    // The server's collector witnessed the first one's drop (its view: mirrored).
    let a = w.e.report(
        s,
        w.sessions[&s],
        witnessed(2, vec![witness(orphan.tuple.mirror(), DropPath::Cookie)]),
        clk(300),
    );
    assert!(
        conns(&a).is_empty(),
        "a witness alone confirms nothing for a monitored client: {a:?}"
    );
    assert_eq!(w.e.stats().witnessed_drops, 1);
    let tables = HashMap::from([
        (s, HashMap::new()),
        (
            c,
            HashMap::from([
                (orphan.tuple, (TcpState::Established, 77)),
                (other.tuple, (TcpState::Established, 78)),
            ]),
        ),
    ]);
    let a = w.e.tick(clk(1100));
    let a = answer_all(&mut w.e, a, &tables, &w.sessions, clk(1200));
    let a = answer_all(&mut w.e, a, &tables, &w.sessions, clk(1300));
    let f = conns(&a);
    assert_eq!(f.len(), 2);
    let by = |t: Tuple| f.iter().find(|x| x.tuple() == Some(t)).unwrap();
    assert_eq!(
        by(orphan.tuple).evidence.witness,
        Some(Witness {
            at_ms: 1_700_000_000_400,
            path: DropPath::Cookie,
            queue: 5,
            backlog: 4
        })
    );
    assert!(finding_text(by(orphan.tuple)).contains("The server's kernel witnessed the drop"));
    assert_eq!(
        by(other.tuple).evidence.witness,
        None,
        "only the witnessed tuple says so"
    );

    // A witness that arrives after confirmation: the finding again, with it.
    let a = w.e.report(
        s,
        w.sessions[&s],
        witnessed(3, vec![witness(other.tuple.mirror(), DropPath::Normal)]),
        clk(2000),
    );
    let again = conns(&a);
    assert_eq!(again.len(), 1, "{a:?}");
    assert_eq!(again[0].tuple(), Some(other.tuple));
    assert_eq!(again[0].evidence.witness.unwrap().path, DropPath::Normal);
    // The same witness again changes nothing.
    let a = w.e.report(
        s,
        w.sessions[&s],
        witnessed(4, vec![witness(other.tuple.mirror(), DropPath::Normal)]),
        clk(2100),
    );
    assert!(conns(&a).is_empty(), "{a:?}");
    // No dropped_handshake for monitored clients.
    assert!(current(&w.e, clk(2200))
        .iter()
        .all(|f| f.kind == FindingKind::ClientOnly));
}

/// The db host alone (the mode where only the DB host runs a collector).
fn db_alone() -> (Engine, HostIdx, u64) {
    let mut e = Engine::new(EngineConfig::default());
    let (s, ss) = connect(&mut e, hello("db", S_IP), clk(0));
    let mut r = full(1, vec![]);
    r.listeners = vec![db_listener(0, 4)];
    r.sysctls = BTreeMap::from([("net.ipv4.tcp_syncookies".to_string(), "1".to_string())]);
    e.report(s, ss, r, clk(0));
    (e, s, ss)
}

fn dropped(port: u16, server_port: u16) -> DropWitness {
    witness(
        Tuple::new(sa(S_IP, server_port), sa(UNMONITORED, port)),
        DropPath::Cookie,
    )
}

#[test]
fn an_unmonitored_client_on_a_greeting_port_is_a_dropped_handshake_after_a_server_lookup() {
    let (mut e, s, ss) = db_alone();
    let w = dropped(40001, 3306);
    let a = e.report(s, ss, witnessed(2, vec![w]), clk(100));
    assert!(conns(&a).is_empty());
    // Not before the grace.
    assert!(looked_up(&e.tick(clk(500))).is_empty());
    let a = e.tick(clk(1200));
    assert_eq!(
        looked_up(&a),
        vec![w.tuple],
        "the server is asked about the tuple in its own view"
    );
    let sessions = HashMap::from([(s, ss)]);
    let a = answer(&mut e, a, &HashMap::from([(s, HashMap::new())]), &sessions, clk(1300));
    let f = conns(&a);
    assert_eq!(f.len(), 1, "{a:?}");
    let f = &f[0];
    assert_eq!(f.kind, FindingKind::DroppedHandshake);
    assert_eq!(
        f.tuple(),
        Some(w.tuple.mirror()),
        "the client's view: local = the client"
    );
    assert_eq!(f.subject.client_end(), Some(sa(UNMONITORED, 40001)));
    assert_eq!(f.subject.server_host(), "db");
    assert_eq!(f.subject.client_host(), Some(""));
    assert_eq!(f.server_process.as_ref().unwrap().comm, "mariadbd");
    assert_eq!(f.process, None);
    let l = f.evidence.listener.as_ref().unwrap();
    assert_eq!(
        (l.addr, l.queue, l.backlog),
        ("0.0.0.0:3306".parse().unwrap(), 5, 4),
        "queue at the drop"
    );
    assert_eq!(f.evidence.witness, Some(w.evidence()));
    assert_eq!(f.kind.side_label(), "client_only");
    assert!(
        finding_text(f).contains("The client host is not monitored"),
        "{}",
        finding_text(f)
    );
    let listed: Vec<_> = e
        .findings(clk(1400))
        .into_iter()
        .filter(|v| v.finding.kind == FindingKind::DroppedHandshake)
        .collect();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].client_host_stale, "no client host to be stale");
    // `halfopen explain db:3306` tells the cause and suggests a bigger backlog.
    let d = e
        .explain(
            &ExplainTarget::HostPort {
                host: "db".into(),
                port: 3306,
            },
            clk(1400),
        )
        .unwrap();
    assert!(
        d[0].causes.iter().any(|c| c.starts_with(
            "The server's kernel witnessed 1 completed handshake from unmonitored clients being dropped on this full \
             accept queue (1 on the cookie path)"
        )),
        "{:?}",
        d[0].causes
    );
    assert!(d[0].changes.iter().any(|c| c.current == "4"), "{:?}", d[0].changes);

    // A full table of the server (which lacks it, by definition) keeps it.
    let mut r = full(3, vec![]);
    r.listeners = vec![db_listener(0, 4)];
    let a = e.report(s, ss, r, clk(5000));
    assert!(gone(&a).is_empty(), "{a:?}");

    // Expired after the TTL (10 minutes from when it was first seen).
    let ttl = DEFAULT_DROPPED_HANDSHAKE_TTL_MS;
    assert!(gone(&e.tick(clk(100 + ttl - 1000))).is_empty());
    assert_eq!(
        gone(&e.tick(clk(100 + ttl + 1000))),
        vec![(FindingKind::DroppedHandshake, GoneReason::Expired)]
    );
    assert!(current(&e, clk(100 + ttl + 1000)).is_empty());
}

#[test]
fn a_dropped_handshake_is_gone_when_the_server_gains_the_tuple() {
    let (mut e, s, ss) = db_alone();
    let sessions = HashMap::from([(s, ss)]);
    let w = dropped(40001, 3306);
    e.report(s, ss, witnessed(2, vec![w]), clk(100));
    let a = e.tick(clk(1200));
    let a = answer(&mut e, a, &HashMap::from([(s, HashMap::new())]), &sessions, clk(1300));
    assert_eq!(conns(&a).len(), 1);
    // The client sent data (a client-speaks-first protocol) and the server created the socket.
    let healed = rec(
        sa(S_IP, 3306),
        sa(UNMONITORED, 40001),
        Side::Server,
        TcpState::Established,
        9,
    );
    let d = Report {
        seq: 3,
        last_chunk: true,
        upserted: vec![healed],
        ..Default::default()
    };
    let a = e.report(s, ss, d, clk(2000));
    assert_eq!(gone(&a), vec![(FindingKind::DroppedHandshake, GoneReason::ServerHasIt)]);
    assert!(current(&e, clk(2000)).is_empty());
}

#[test]
fn a_request_socket_still_there_is_asked_again_and_a_healed_one_is_dropped() {
    let (mut e, s, ss) = db_alone();
    let sessions = HashMap::from([(s, ss)]);
    let normal = DropWitness {
        path: DropPath::Normal,
        ..dropped(40001, 3306)
    };
    let healed = dropped(40002, 3306);
    e.report(s, ss, witnessed(2, vec![normal, healed]), clk(100));
    let a = e.tick(clk(1200));
    assert_eq!(looked_up(&a).len(), 2);
    // The normal path's request socket is still in SYN_RECV; the other completed after all.
    let server = HashMap::from([(
        s,
        HashMap::from([
            (normal.tuple, (TcpState::SynRecv, 0)),
            (healed.tuple, (TcpState::Established, 12)),
        ]),
    )]);
    let a = answer(&mut e, a, &server, &sessions, clk(1300));
    assert!(conns(&a).is_empty(), "{a:?}");
    // Asked again, about the request socket only; by then it is gone (the SYN-ACKs were not answered).
    assert!(looked_up(&e.tick(clk(1500))).is_empty(), "not at once");
    let a = e.tick(clk(2400));
    assert_eq!(looked_up(&a), vec![normal.tuple]);
    let a = answer(&mut e, a, &HashMap::from([(s, HashMap::new())]), &sessions, clk(2500));
    let f = conns(&a);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence.witness.unwrap().path, DropPath::Normal);
}

#[test]
fn only_unmonitored_clients_on_greeting_ports_make_dropped_handshakes() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let mut db = full(1, vec![]);
    db.listeners = vec![db_listener(0, 4)];
    w.e.report(s, w.sessions[&s], db, clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![]), clk(0));
    // A third collector claims 198.18.9.9 too: shared with... nobody; a second one makes it ambiguous.
    let (x, _) = connect(&mut w.e, hello("x", "198.18.9.9"), clk(0));
    let (y, _) = connect(&mut w.e, hello("y", "198.18.9.9"), clk(0));
    let _ = (x, y);
    let ws = vec![
        // client-speaks-first port (HTTP): it can heal, and does not wait forever
        witness(Tuple::new(sa(S_IP, 8080), sa(UNMONITORED, 40001)), DropPath::Cookie),
        // a monitored client (app): its own collector answers for it
        witness(Tuple::new(sa(S_IP, 3306), sa(C_IP, 40002)), DropPath::Cookie),
        // an address two hosts claim: nobody can answer for it
        witness(Tuple::new(sa(S_IP, 3306), sa("198.18.9.9", 40003)), DropPath::Cookie),
        // loopback: never judged
        witness(
            Tuple::new(sa("127.0.0.1", 3306), sa("127.0.0.1", 40004)),
            DropPath::Cookie,
        ),
    ];
    w.e.report(s, w.sessions[&s], witnessed(2, ws), clk(100));
    for t in [1200, 2400, 5000] {
        let a = w.e.tick(clk(t));
        assert!(
            a.iter()
                .all(|a| !matches!(a, Action::Lookup { host, .. } if *host == s)),
            "{a:?}"
        );
    }
    assert!(current(&w.e, clk(5000)).is_empty());
    assert_eq!(w.e.stats().witnessed_drops, 4);
}

#[test]
fn a_witness_for_a_tuple_the_server_holds_is_no_candidate() {
    let (mut e, s, ss) = db_alone();
    let w = dropped(40001, 3306);
    // The same report shows the server holding it (the normal path completed in the interval).
    let mut r = witnessed(2, vec![w]);
    r.upserted = vec![rec(
        sa(S_IP, 3306),
        sa(UNMONITORED, 40001),
        Side::Server,
        TcpState::Established,
        3,
    )];
    e.report(s, ss, r, clk(100));
    assert!(looked_up(&e.tick(clk(1500))).is_empty());
}

#[test]
fn a_restored_dropped_handshake_expires_from_when_it_was_first_seen() {
    let mut e = Engine::new(EngineConfig::default());
    let now = clk(1_000);
    let ttl = DEFAULT_DROPPED_HANDSHAKE_TTL_MS as i64;
    let mut f = finding(
        FindingKind::DroppedHandshake,
        conn(Tuple::new(sa(UNMONITORED, 40001), sa(S_IP, 3306)), "", "db"),
    );
    // First seen 9 minutes before the restart.
    f.first_seen_ms = now.wall_ms - (ttl - 60_000);
    e.restore(vec![f], now);
    assert_eq!(e.hosts(now).len(), 1, "no host named \"\" was made for the client");
    assert!(gone(&e.tick(clk(50_000))).is_empty());
    assert_eq!(
        gone(&e.tick(clk(62_000))),
        vec![(FindingKind::DroppedHandshake, GoneReason::Expired)]
    );
}
