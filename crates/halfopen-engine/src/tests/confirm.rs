//! The race-free confirmation of one-sided connections, step by step: the
//! grace, the two lookups, what clears a candidate, what is never judged,
//! and judgements deferred while a host is not judgeable.
use super::*;
use crate::explain::finding_text;
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
    assert_eq!(f[0].tuple(), Some(orphan.tuple));
    assert_eq!(f[0].kind, FindingKind::ClientOnly);
    assert!(finding_text(&f[0]).contains("no trace"), "{}", finding_text(&f[0]));
    assert_eq!(f[0].subject.client_host(), Some("app"));
    assert_eq!(f[0].subject.server_host(), "db");
    assert_eq!(f[0].process.as_ref().unwrap().pid, 42);
    assert_eq!(f[0].first_seen_ms, clk(20).wall_ms);
    assert_eq!(f[0].confirmed_at_ms, clk(1300).wall_ms);
    assert_eq!(w.e.findings(clk(1300)).len(), 1);

    // The client closes it: gone.
    let d = Report {
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
    // The server's fresh scan has it in TIME_WAIT.
    let tables = HashMap::from([
        (s, HashMap::from([(cl.tuple.mirror(), (TcpState::TimeWait, 1))])),
        (c, HashMap::from([(cl.tuple, (TcpState::Established, 7))])),
    ]);
    let a2 = answer(&mut w.e, a, &tables, &w.sessions, clk(1600));
    assert!(a2.is_empty(), "{a2:?}");
    assert_eq!(w.e.candidate_count(), 0);
    assert_eq!(w.e.stats().cleared_by_other_lookup, 1);
}

#[test]
fn a_request_socket_on_the_server_is_asked_about_again_until_it_expires() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![cl]), clk(0));
    let a = w.e.tick(clk(1500));
    // The server holds a request socket (SYN_RECV: the final ACK was dropped, no SYN cookies):
    // neither one-sided nor healthy yet.
    let mut tables = HashMap::from([
        (s, HashMap::from([(cl.tuple.mirror(), (TcpState::SynRecv, 1))])),
        (c, HashMap::from([(cl.tuple, (TcpState::Established, 7))])),
    ]);
    let a2 = answer(&mut w.e, a, &tables, &w.sessions, clk(1600));
    assert!(a2.is_empty(), "{a2:?}");
    assert_eq!(w.e.candidate_count(), 1, "kept");
    assert!(looked_up(&w.e.tick(clk(2000))).is_empty(), "not at once");
    let a = w.e.tick(clk(2700));
    assert_eq!(looked_up(&a), vec![cl.tuple.mirror()], "asked again");
    // The request expired (the server gave up its SYN-ACKs): now one-sided.
    tables.insert(s, HashMap::new());
    let a = answer(&mut w.e, a, &tables, &w.sessions, clk(2800));
    let a = answer(&mut w.e, a, &tables, &w.sessions, clk(2900));
    assert_eq!(confirmed(&a).len(), 1, "{a:?}");
    assert_eq!(w.e.stats().cleared_by_other_lookup, 0);
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

#[test]
fn unmonitored_server_is_never_judged() {
    let mut e = Engine::new(EngineConfig::default());
    // Only db claims loopback here, so loopback is unambiguous: what keeps
    // it out must be the rule that loopback is never matched.
    let mut app = hello("app", C_IP);
    app.addresses.retain(|a| !a.is_loopback());
    let (s, ss) = connect(&mut e, hello("db", S_IP), clk(0));
    let (c, cs) = connect(&mut e, app, clk(0));
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
    let (s1, ss1) = connect(&mut e, hello("db1", S_IP), clk(0));
    let (s2, ss2) = connect(&mut e, hello("db2", S_IP), clk(0));
    let (s3, ss3) = connect(&mut e, hello("db3", "198.18.0.5"), clk(0));
    let (c, cs) = connect(&mut e, hello("app", C_IP), clk(0));
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
    w.e.disconnect(s, w.sessions[&s], clk(100));
    assert!(w.e.tick(clk(1500)).is_empty());
    assert_eq!(w.e.candidate_count(), 0);
    assert!(w.e.hosts(clk(1500)).iter().find(|h| h.name == "db").unwrap().stale);

    // Stale by silence: a server that reported once, long ago.
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![]), clk(9_000));
    let d = Report {
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
    assert_eq!(f[0].tuple(), Some(orphan.tuple));

    // 2. The orphan appears while the server is silent (stale), then the server reports again.
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![healthy_s]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![healthy_c]), clk(0));
    w.e.tick(clk(100));
    let d = |seq, upserted: Vec<SocketRecord>, removed: Vec<Tuple>| Report {
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
    assert_eq!(f[0].tuple(), Some(healthy_c.tuple));
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
    let delta = |seq| Report {
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
    assert_eq!(found[0].tuple(), Some(orphan.tuple));
}
