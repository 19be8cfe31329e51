//! Reports: sequence gaps, chunked full tables, findings restored from the
//! store and settled by the first full table.
use super::*;
#[test]
fn sequence_gap_asks_for_resync_and_suspends_judgement() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, vec![]), clk(0));
    w.e.report(c, w.sessions[&c], full(1, vec![]), clk(0));
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let d = Report {
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
        cookie,
        first_seen_ms: 1,
        confirmed_at_ms: 2,
        ..finding(
            FindingKind::ClientOnly,
            conn(Tuple::new(sa(C_IP, port), sa(S_IP, 3306)), "app", "db"),
        )
    };
    let mut e = Engine::new(EngineConfig::default());
    e.restore(vec![f(40001, 7), f(40002, 8)], clk(0));
    assert_eq!(e.findings(clk(0)).len(), 2);
    assert!(e.findings(clk(0))[0].client_host_stale);
    let (s, ss) = connect(&mut e, hello("db", S_IP), clk(0));
    let (c, cs) = connect(&mut e, hello("app", C_IP), clk(0));
    e.report(s, ss, full(1, vec![]), clk(0));
    let still = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let a = e.report(c, cs, full(1, vec![still]), clk(10));
    let gone: Vec<_> = a.iter().filter(|a| matches!(a, Action::Gone { .. })).collect();
    assert_eq!(gone.len(), 1);
    let v = e.findings(clk(10));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].finding.tuple().unwrap().local().port(), 40001);
    assert!(!v[0].client_host_stale);
}
