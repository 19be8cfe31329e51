//! The field trials' faults, each as the engine must answer it: NAT (never
//! one-sided when a translation explains it, never judged when it is
//! unknown), two collectors with one identity, addresses that move or are
//! shared, hosts that are gone, stuck accept loops, restarts, and what an
//! all-clear covers.
use super::*;
use crate::explain::finding_text;
use halfopen_core::{NatEntry, NatState};

const B_IP: &str = "198.19.0.2";

fn nat(original: Tuple, reply: Tuple) -> NatEntry {
    NatEntry { original, reply }
}

fn delta(seq: u64) -> Report {
    Report {
        seq,
        last_chunk: true,
        ..Default::default()
    }
}

/// A Docker-published port: db DNATs :7000 to a container behind it (not
/// monitored). Healthy connections are never judged, and a lookup that
/// answers "translated" clears a candidate made before the entry arrived.
#[test]
fn a_connection_dnated_on_the_server_host_is_never_one_sided() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 7000), Side::Client, TcpState::Established, 7);
    let entry = nat(cl.tuple, Tuple::new(sa(B_IP, 7000), sa(C_IP, 40001)));
    // The client's report arrives before the server host's NAT entry.
    let mut r = full(1, vec![]);
    r.nat_state = NatState::Visible;
    w.e.report(s, w.sessions[&s], r, clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![cl]), clk(0));
    assert_eq!(w.e.candidate_count(), 1);
    let a = w.e.tick(clk(1_100));
    let [Action::Lookup { host, id, tuples, .. }] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!((*host, tuples.clone()), (s, vec![cl.tuple.mirror()]));
    // The server host's conntrack, read afresh, translated it.
    let mut ans = LookupAnswer::from_record(cl.tuple.mirror(), None, None);
    ans.translated = Some(entry);
    assert!(confirmed(&w.e.lookup_reply(s, w.sessions[&s], *id, vec![ans], clk(1_200))).is_empty());
    assert_eq!((w.e.candidate_count(), w.e.stats().cleared_by_nat), (0, 1));
    // The entry arrives: the container is not monitored, so never judged.
    let mut d = delta(2);
    d.nat = vec![entry];
    d.nat_state = NatState::Visible;
    w.e.report(s, w.sessions[&s], d, clk(2_000));
    assert_eq!(w.e.candidate_count(), 0);
    for t in (2_100..6_000).step_by(500) {
        assert!(looked_up(&w.e.tick(clk(t))).is_empty());
    }
}

/// kube-proxy's shape for host-network clients: the client host DNATs a
/// VIP to a backend on the monitored db host. The backend's socket holds
/// the reply tuple: neither end is one-sided; with the backend's end
/// missing, the backend host is asked for the reply tuple.
#[test]
fn a_vip_dnated_on_the_client_host_joins_to_the_backend() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let vip = sa("198.18.100.1", 80);
    let cl = rec(sa(C_IP, 40001), vip, Side::Client, TcpState::Established, 7);
    let backend = Tuple::new(sa(S_IP, 8080), sa(C_IP, 40001));
    let sv = SocketRecord {
        tuple: backend,
        side: Side::Server,
        cookie: 8,
        ..cl
    };
    let mut r = full(1, vec![sv]);
    r.nat_state = NatState::Visible;
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut r = full(1, vec![cl]);
    r.nat = vec![nat(cl.tuple, backend)];
    r.nat_state = NatState::Visible;
    w.e.report(c, w.sessions[&c], r, clk(0));
    assert_eq!(w.e.candidate_count(), 0, "both ends are there, through the NAT");
    // The backend's socket goes: the client's is one-sided, asked of the backend host by the reply tuple.
    let mut d = delta(2);
    d.removed = vec![backend];
    d.nat_state = NatState::Visible;
    w.e.report(s, w.sessions[&s], d, clk(500));
    let a = w.e.tick(clk(1_600));
    assert_eq!(looked_up(&a), vec![backend]);
    let tables = HashMap::from([
        (s, HashMap::new()),
        (c, HashMap::from([(cl.tuple, (TcpState::Established, 7))])),
    ]);
    let a = answer(&mut w.e, a, &tables, &w.sessions, clk(1_700));
    let f = confirmed(&answer(&mut w.e, a, &tables, &w.sessions, clk(1_800)));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].server_end(), sa(S_IP, 8080), "the real server end");
    assert_eq!(f[0].tuple().unwrap().remote(), vip, "as dialed");
    let nat = f[0].evidence.nat.as_ref().unwrap();
    assert_eq!(nat.translated_on, "app");
    let text = finding_text(&f[0]);
    assert!(
        text.contains("(the client dialed 198.18.100.1:80, translated by app's NAT)"),
        "{text}"
    );
}

/// The mirror image: the backend's socket never looks server_only while the
/// client host's conntrack shows the translation.
#[test]
fn the_backend_of_a_translated_connection_is_not_server_only() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let vip = sa("198.18.100.1", 80);
    let original = Tuple::new(sa(C_IP, 40001), vip);
    let backend = Tuple::new(sa(S_IP, 8080), sa(C_IP, 40001));
    let sv = rec(
        backend.local(),
        backend.remote(),
        Side::Server,
        TcpState::Established,
        8,
    );
    let cl = rec(
        original.local(),
        original.remote(),
        Side::Client,
        TcpState::Established,
        7,
    );
    let mut r = full(1, vec![sv]);
    r.nat_state = NatState::Visible;
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut r = full(1, vec![cl]);
    r.nat = vec![nat(original, backend)];
    r.nat_state = NatState::Visible;
    w.e.report(c, w.sessions[&c], r, clk(0));
    for t in (500..5_000).step_by(500) {
        assert!(looked_up(&w.e.tick(clk(t))).is_empty());
    }
    assert!(w.e.findings(clk(5_000)).is_empty());
}

/// A host whose conntrack could not be read may have translated anything:
/// connections it holds or serves are not judged, and coverage says so.
#[test]
fn unknown_translations_are_never_judged_and_are_said() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let orphan = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let mut r = full(1, vec![]);
    r.nat_state = NatState::Unknown("the collector lacks CAP_NET_ADMIN".into());
    w.e.report(s, w.sessions[&s], r, clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![orphan]), clk(0));
    assert_eq!(w.e.candidate_count(), 0);
    let cov = w.e.coverage(clk(100));
    assert!(!cov.complete());
    assert!(
        cov.blind_spots.iter().any(|b| b.host == "db"
            && b.what
                .contains("NAT translations unknown (the collector lacks CAP_NET_ADMIN)")),
        "{cov:?}"
    );
}

fn hello_in(name: &str, ip: &str, netns: u64) -> Hello {
    let mut h = hello(name, ip);
    h.instance.machine_id = "same-machine".into();
    h.instance.netns = netns;
    h
}

/// Two namespaces of one machine share its hostname: the second collector
/// claiming the name is refused while the first reports, the conflict is
/// shown, and a restart of the first in its own place replaces it at once.
#[test]
fn a_second_live_instance_of_a_host_id_is_refused() {
    let mut e = Engine::new(EngineConfig::default());
    let (h, s1) = connect(&mut e, hello_in("db", S_IP, 1), clk(0));
    e.report(h, s1, full(1, vec![]), clk(0));
    let err = e.connect(hello_in("db", C_IP, 2), "198.18.0.2:5000".into(), clk(500));
    let Err(ConnectError::Conflict { host, refused, .. }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((host.as_str(), refused.netns), ("db", 2));
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("give each collector its own --host-id"));
    assert_eq!(e.stats().conflicts_refused, 1);
    let view = e.hosts(clk(600));
    assert!(
        view[0].conflict.as_ref().unwrap().contains("from 198.18.0.2:5000"),
        "{view:?}"
    );
    assert!(
        !view[0].addresses.contains(&C_IP.parse().unwrap()),
        "the refused collector's addresses were not taken: {view:?}"
    );
    assert_eq!(e.coverage(clk(600)).conflicts, vec!["db".to_string()]);
    // The first restarts in its own place (same machine, boot, netns): at once.
    let (h2, s2) = connect(&mut e, hello_in("db", S_IP, 1), clk(700));
    assert_eq!(h2, h);
    assert_ne!(s2, s1);
    // A collector that stopped reporting (its host crashed) is replaced by
    // another instance; when that is the one refused before, the conflict
    // is over.
    e.report(h, s2, full(2, vec![]), clk(700));
    assert!(e.connect(hello_in("db", C_IP, 2), String::new(), clk(5_000)).is_ok());
    assert_eq!(e.hosts(clk(5_100))[0].conflict, None);
    assert!(e.coverage(clk(5_100)).conflicts.is_empty());
}

/// An address moves from a host whose collector left to a new live host: at
/// once, with a notice; two live hosts on one address make it shared.
#[test]
fn a_live_claim_wins_over_a_departed_one_and_two_live_claims_are_shared() {
    let mut e = Engine::new(EngineConfig::default());
    let (old, so) = connect(&mut e, hello("db-old", S_IP), clk(0));
    e.report(old, so, full(1, vec![]), clk(0));
    let _ = e.disconnect(old, so, clk(1_000));
    assert_eq!(
        e.owner_of(S_IP.parse().unwrap()),
        Some(old),
        "kept while nobody live claims it"
    );
    let c = e.connect(hello("db", S_IP), String::new(), clk(2_000)).unwrap();
    assert_eq!(e.owner_of(S_IP.parse().unwrap()), Some(c.host));
    assert!(
        c.actions
            .iter()
            .any(|a| matches!(a, Action::Notice(Notice::AddressMoved(m))
            if m.from.as_deref() == Some("db-old") && m.to.as_deref() == Some("db"))),
        "{:?}",
        c.actions
    );
    let other = e.connect(hello("db-clone", S_IP), String::new(), clk(3_000)).unwrap();
    assert_eq!(e.owner_of(S_IP.parse().unwrap()), None);
    assert!(other
        .actions
        .iter()
        .any(|a| matches!(a, Action::Notice(Notice::AddressMoved(m)) if m.ambiguous.len() == 2)));
    let cov = e.coverage(clk(3_000));
    assert_eq!(cov.shared_addresses.len(), 1);
    assert_eq!(
        cov.shared_addresses[0].hosts,
        vec!["db".to_string(), "db-clone".to_string()]
    );
    let hosts = e.hosts(clk(3_000));
    assert!(hosts.iter().filter(|h| !h.shared_addresses.is_empty()).count() == 2);
}

/// The app host dies for good: after `gone_after`, what db still holds from
/// it is reported, confirmed by the server alone; what app held is over.
#[test]
fn leftovers_of_a_gone_host_are_reported_as_server_only() {
    let cfg = EngineConfig {
        gone_after_ms: 60_000,
        ..Default::default()
    };
    let mut e = Engine::new(cfg);
    let (s, ss) = connect(&mut e, hello("redis", S_IP), clk(0));
    let (c, cs) = connect(&mut e, hello("app", C_IP), clk(0));
    let conns: Vec<(SocketRecord, SocketRecord)> = (0..3)
        .map(|i| {
            let cl = rec(
                sa(C_IP, 40001 + i),
                sa(S_IP, 6379),
                Side::Client,
                TcpState::Established,
                100 + i as u64,
            );
            let sv = rec(
                sa(S_IP, 6379),
                sa(C_IP, 40001 + i),
                Side::Server,
                TcpState::Established,
                200 + i as u64,
            );
            (cl, sv)
        })
        .collect();
    e.report(s, ss, full(1, conns.iter().map(|x| x.1).collect()), clk(0));
    e.report(c, cs, full(1, conns.iter().map(|x| x.0).collect()), clk(0));
    let _ = e.disconnect(c, cs, clk(1_000));
    let mut seq = 2;
    let mut found = Vec::new();
    let mut gone = Vec::new();
    let tables = HashMap::from([(
        s,
        conns
            .iter()
            .map(|(_, sv)| (sv.tuple, (TcpState::Established, sv.cookie)))
            .collect::<HashMap<_, _>>(),
    )]);
    let sessions = HashMap::from([(s, ss)]);
    for t in (2_000..61_000).step_by(1_000) {
        e.report(s, ss, delta(seq), clk(t));
        seq += 1;
        let a = e.tick(clk(t));
        gone.extend(
            a.iter()
                .filter(|a| matches!(a, Action::Notice(Notice::HostGone { .. })))
                .cloned(),
        );
        found.extend(confirmed(&answer(&mut e, a, &tables, &sessions, clk(t))));
    }
    assert!(found.is_empty(), "not before gone_after: {found:?}");
    for t in (61_000..75_000).step_by(500) {
        e.report(s, ss, delta(seq), clk(t));
        seq += 1;
        let a = e.tick(clk(t));
        gone.extend(
            a.iter()
                .filter(|a| matches!(a, Action::Notice(Notice::HostGone { .. })))
                .cloned(),
        );
        found.extend(confirmed(&answer(&mut e, a, &tables, &sessions, clk(t))));
    }
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(found.len(), 3, "{found:?}");
    for f in &found {
        assert_eq!(f.kind, FindingKind::ServerOnly);
        assert_eq!(f.evidence.client_host_gone_since_ms, Some(clk(1_000).wall_ms));
        assert_eq!(f.server_process.as_ref().unwrap().pid, 42);
        let text = finding_text(f);
        assert!(text.contains("could not confirm this: only the server did"), "{text}");
    }
    let views = e.findings(clk(75_000));
    assert!(views.iter().all(|v| v.client_host_gone && v.client_host_stale));
    assert_eq!(e.coverage(clk(75_000)).gone, vec!["app".to_string()]);
}

/// A server that stops calling accept(): connections age in its queue while
/// no counter moves.
#[test]
fn a_stuck_accept_loop_is_a_finding_and_clears_when_it_accepts() {
    let mut w = two_hosts();
    let s = w.s;
    let queued: Vec<SocketRecord> = (0..60)
        .map(|i| {
            let mut r = rec(
                sa(S_IP, 5432),
                sa(C_IP, 30_000 + i),
                Side::Server,
                TcpState::Established,
                500 + i as u64,
            );
            r.inode = 0;
            r
        })
        .collect();
    let mut pg = db_listener(60, 100);
    pg.addr = sa("0.0.0.0", 5432);
    pg.process.as_mut().unwrap().comm = "postgres".into();
    let mut r = full(1, queued.clone());
    r.listeners = vec![pg.clone()];
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut found = Vec::new();
    for (i, t) in (1..=12).map(|x| x * 1_000).enumerate() {
        let mut d = delta(2 + i as u64);
        d.listeners = vec![pg.clone()];
        found.extend(confirmed(&w.e.report(s, w.sessions[&s], d, clk(t))));
    }
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.kind, FindingKind::AcceptStalled);
    assert_eq!(f.evidence.queued, Some(60));
    assert!(f.evidence.accept_wait_ms.unwrap() > 10_000);
    let text = finding_text(f);
    assert!(
        text.starts_with(
            "postgres (pid 500) on db has not accepted 60 connections on 0.0.0.0:5432: the oldest has waited"
        ),
        "{text}"
    );
    // It accepts them all.
    let mut d = delta(14);
    d.upserted = queued.iter().map(|r| SocketRecord { inode: 9, ..*r }).collect();
    let mut drained = pg;
    drained.queue = 0;
    d.listeners = vec![drained];
    let a = w.e.report(s, w.sessions[&s], d, clk(13_000));
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Gone { reason: GoneReason::Recovered, finding, .. } if finding.kind == FindingKind::AcceptStalled)),
        "{a:?}"
    );
}

/// The server host reboots under ten pooled clients: their sockets become
/// one-sided, and the cause is the restart, not an overflow; the new,
/// quiet listener is not at risk.
#[test]
fn orphans_of_a_server_reboot_are_said_to_be_and_leave_no_listener_at_risk() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let pool: Vec<(SocketRecord, SocketRecord)> = (0..10)
        .map(|i| {
            let mut cl = rec(
                sa(C_IP, 41000 + i),
                sa(S_IP, 3306),
                Side::Client,
                TcpState::Established,
                10 + i as u64,
            );
            cl.keepalive = true;
            let sv = rec(
                sa(S_IP, 3306),
                sa(C_IP, 41000 + i),
                Side::Server,
                TcpState::Established,
                90 + i as u64,
            );
            (cl, sv)
        })
        .collect();
    let mut r = full(1, pool.iter().map(|x| x.1).collect());
    r.listeners = vec![db_listener(0, 80)];
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut r = full(1, pool.iter().map(|x| x.0).collect());
    r.sysctls = [
        ("net.ipv4.tcp_keepalive_time".to_string(), "60".to_string()),
        ("net.ipv4.tcp_keepalive_intvl".to_string(), "10".to_string()),
        ("net.ipv4.tcp_keepalive_probes".to_string(), "6".to_string()),
    ]
    .into();
    w.e.report(c, w.sessions[&c], r, clk(0));
    // db dies silently and comes back with a new boot: nothing it held survived.
    let _ = w.e.disconnect(s, w.sessions[&s], clk(2_000));
    let mut h = hello("db", S_IP);
    h.instance.boot_id = "boot-2".into();
    let (s2, ss2) = connect(&mut w.e, h, clk(20_000));
    assert_eq!(s2, s);
    let mut new_listener = db_listener(0, 80);
    new_listener.inode = 4242;
    let mut r = full(1, vec![]);
    r.listeners = vec![new_listener.clone()];
    w.e.report(s, ss2, r, clk(20_000));
    w.sessions.insert(s, ss2);
    let tables = HashMap::from([
        (s, HashMap::new()),
        (
            c,
            pool.iter()
                .map(|(cl, _)| (cl.tuple, (TcpState::Established, cl.cookie)))
                .collect(),
        ),
    ]);
    let mut found = Vec::new();
    let mut all = Vec::new();
    for (i, t) in (20_100..26_000).step_by(500).enumerate() {
        let mut d = delta(2 + i as u64);
        d.listeners = vec![new_listener.clone()];
        all.extend(w.e.report(s, w.sessions[&s], d, clk(t)));
        w.e.report(c, w.sessions[&c], delta(2 + i as u64), clk(t));
        let a = w.e.tick(clk(t));
        let a = answer(&mut w.e, a, &tables, &w.sessions, clk(t));
        found.extend(confirmed(&answer(&mut w.e, a, &tables, &w.sessions, clk(t))));
    }
    assert_eq!(found.len(), 10, "{found:?}");
    for f in &found {
        let r = f.evidence.server_restarted.as_ref().expect("restart evidence");
        assert_eq!(r.what, "host rebooted");
        let text = finding_text(f);
        assert!(text.contains("This is not an accept-queue overflow"), "{text}");
        assert!(text.contains("resets it after about 2 min without a reply"), "{text}");
    }
    assert!(
        confirmed(&all).iter().all(|f| f.kind != FindingKind::ListenerAtRisk),
        "no listener_at_risk on the new, empty listener"
    );
}

/// Connections to servers no collector covers are counted in the coverage;
/// loopback is not (it is never a connection between two hosts).
#[test]
fn coverage_counts_connections_to_unmonitored_servers() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    let mut socks: Vec<SocketRecord> = (0..7)
        .map(|i| {
            rec(
                sa(C_IP, 42000 + i),
                sa("198.18.9.9", 5432),
                Side::Client,
                TcpState::Established,
                i as u64,
            )
        })
        .collect();
    socks.push(rec(
        sa(C_IP, 43000),
        sa("198.18.9.8", 6379),
        Side::Client,
        TcpState::Established,
        50,
    ));
    socks.push(rec(
        sa("127.0.0.1", 43001),
        sa("127.0.0.1", 6379),
        Side::Client,
        TcpState::Established,
        51,
    ));
    w.e.report(c, w.sessions[&c], full(1, socks), clk(0));
    let cov = w.e.coverage(clk(100));
    assert_eq!(cov.unmonitored.connections, 8);
    assert_eq!(cov.unmonitored.servers, 2);
    assert_eq!(cov.unmonitored.top[0], (sa("198.18.9.9", 5432), 7));
    assert_eq!((cov.hosts, cov.fresh), (2, 2));
    assert!(!cov.complete());
}
