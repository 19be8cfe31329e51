//! Listeners at risk: from the queue or the counters, recovered after quiet
//! intervals, kept while their orphans exist.
use super::*;
use crate::explain::finding_text;
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
    let d = Report {
        seq: 2,
        last_chunk: true,
        listeners: vec![db_listener(0, 4)],
        counters: counters(200),
        ..Default::default()
    };
    let f = confirmed(&w.e.report(s, w.sessions[&s], d, clk(1_000)));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, FindingKind::ListenerAtRisk);
    assert_eq!(f[0].listener_addr(), Some("0.0.0.0:3306".parse().unwrap()));
    assert!(
        finding_text(&f[0]).contains("ListenOverflows +190"),
        "{}",
        finding_text(&f[0])
    );
    // Quiet for longer than 3 intervals: recovered.
    let mut seq = 3;
    let mut gone = Vec::new();
    // The rise stays in the 3-interval window until 4 s, then 3 s more.
    for t in (2..=8).map(|s| s * 1_000) {
        let d = Report {
            seq,
            last_chunk: true,
            listeners: vec![db_listener(0, 4)],
            counters: counters(200),
            ..Default::default()
        };
        seq += 1;
        gone.extend(
            w.e.report(s, w.sessions[&s], d, clk(t))
                .into_iter()
                .filter(|a| !matches!(a, Action::Sample(_))),
        );
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
    let d = Report {
        seq,
        last_chunk: true,
        listeners: vec![db_listener(5, 4)],
        counters: counters(200),
        ..Default::default()
    };
    assert_eq!(confirmed(&w.e.report(s, w.sessions[&s], d, clk(9_000))).len(), 1);
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
        let d = Report {
            seq,
            last_chunk: true,
            listeners: vec![db_listener(0, 4)],
            ..Default::default()
        };
        seq += 1;
        risk.extend(w.e.report(s, w.sessions[&s], d, clk(t)));
        let d = Report {
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

/// Two listeners on one host, only one overflowed: its own drop counter
/// (sk_drops) names it; the host-wide counters alone would not.
#[test]
fn the_listener_that_dropped_is_the_one_at_risk() {
    let mut w = two_hosts();
    let s = w.s;
    let mysql = |drops| Listener {
        drops: Some(drops),
        ..db_listener(0, 80)
    };
    let nginx = |drops| Listener {
        addr: sa("0.0.0.0", 443),
        drops: Some(drops),
        process: Some(Process {
            pid: 600,
            comm: "nginx".into(),
            cmdline: "nginx: master process".into(),
            uid: 0,
        }),
        ..db_listener(0, 511)
    };
    let counters = |n: u64| BTreeMap::from([("TcpExt.ListenOverflows".to_string(), n)]);
    let mut r = full(1, vec![]);
    r.listeners = vec![mysql(0), nginx(0)];
    r.counters = counters(0);
    w.e.report(s, w.sessions[&s], r, clk(0));
    let d = Report {
        seq: 2,
        last_chunk: true,
        listeners: vec![mysql(0), nginx(700)],
        counters: counters(700),
        ..Default::default()
    };
    let a = w.e.report(s, w.sessions[&s], d, clk(1_000));
    let f = confirmed(&a);
    assert_eq!(f.len(), 1, "{a:?}");
    assert_eq!(f[0].listener_addr(), Some(sa("0.0.0.0", 443)));
    assert_eq!(f[0].evidence.listener.as_ref().unwrap().drops, Some(700));
    // Samples of the host go to the history while it has signs.
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Sample(s) if s.listeners.len() == 2)),
        "{a:?}"
    );
}
