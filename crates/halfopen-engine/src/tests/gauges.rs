//! The metrics snapshot: findings counted per (kind, server host, listener)
//! whatever the number of client ports, per-kind totals, hosts' freshness
//! and listeners, and series that go away with what they counted.
use super::*;
use crate::gauges::{FindingCount, MetricsSnapshot};

/// Confirms every candidate of `w` through both lookups, answered from `tables`.
fn confirm_all(w: &mut TwoHosts, tables: &HashMap<HostIdx, HashMap<Tuple, (TcpState, u64)>>, at: u64) -> Vec<Finding> {
    let a = w.e.tick(clk(at));
    let a = answer(&mut w.e, a, tables, &w.sessions, clk(at + 10));
    let a = answer(&mut w.e, a, tables, &w.sessions, clk(at + 20));
    confirmed(&a)
}

fn client_only(s: &MetricsSnapshot) -> Vec<&FindingCount> {
    s.findings
        .iter()
        .filter(|f| f.kind == FindingKind::ClientOnly)
        .collect()
}

#[test]
fn findings_are_counted_per_listener_never_per_client_port_and_go_away_with_them() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let mut listener = db_listener(0, 4);
    listener.drops = Some(5);
    let orphans: Vec<SocketRecord> = (0..40u16)
        .map(|i| {
            rec(
                sa(C_IP, 40000 + i),
                sa(S_IP, 3306),
                Side::Client,
                TcpState::Established,
                100 + i as u64,
            )
        })
        .collect();
    w.e.report(
        s,
        w.sessions[&s],
        Report {
            listeners: vec![listener.clone()],
            ..full(1, Vec::new())
        },
        clk(10),
    );
    w.e.report(c, w.sessions[&c], full(1, orphans.clone()), clk(20));
    let tables = HashMap::from([
        (s, HashMap::new()),
        (
            c,
            orphans
                .iter()
                .map(|r| (r.tuple, (TcpState::Established, r.cookie)))
                .collect(),
        ),
    ]);
    assert_eq!(confirm_all(&mut w, &tables, 1100).len(), 40);

    let snap = w.e.metrics_snapshot(clk(1200));
    assert_eq!(
        client_only(&snap),
        vec![&FindingCount {
            kind: FindingKind::ClientOnly,
            server_host: "db".into(),
            listener: "0.0.0.0:3306".parse().unwrap(),
            count: 40,
        }],
        "40 client ports, one series"
    );
    assert_eq!(snap.confirmed[0], (FindingKind::ClientOnly, 40));
    assert_eq!(snap.confirmed.len(), FindingKind::ALL.len());
    assert!(snap.gone.is_empty());
    assert_eq!(snap.stats.findings, 40);
    let names: Vec<&str> = snap.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["app", "db"]);
    let db = &snap.hosts[1];
    assert!(db.up && db.connected && !db.gone);
    assert_eq!(db.last_report_ms, Some(clk(10).wall_ms));
    assert_eq!(db.listeners.len(), 1);
    assert_eq!(db.listeners[0].drops, Some(5));
    assert_eq!((db.listeners[0].queue, db.listeners[0].backlog), (0, 4));
    assert_eq!(snap.hosts[0].client_sockets, 40);

    // The client closes ten: counted as gone, the gauge follows.
    let d = Report {
        seq: 2,
        removed: orphans[..10].iter().map(|r| r.tuple).collect(),
        last_chunk: true,
        ..Default::default()
    };
    w.e.report(c, w.sessions[&c], d, clk(1500));
    let snap = w.e.metrics_snapshot(clk(1500));
    assert_eq!(client_only(&snap)[0].count, 30);
    assert_eq!(snap.gone, vec![(FindingKind::ClientOnly, GoneReason::ClientClosed, 10)]);

    // All of them: the series is gone, not left at its last value.
    let d = Report {
        seq: 3,
        removed: orphans[10..].iter().map(|r| r.tuple).collect(),
        last_chunk: true,
        ..Default::default()
    };
    w.e.report(c, w.sessions[&c], d, clk(1600));
    let snap = w.e.metrics_snapshot(clk(1600));
    assert!(snap.findings.is_empty(), "{:?}", snap.findings);
    assert_eq!(
        snap.confirmed[0],
        (FindingKind::ClientOnly, 40),
        "a counter never goes back"
    );

    // The server's collector goes away: down, and its listeners unknown.
    w.e.disconnect(s, w.sessions[&s], clk(1700));
    let snap = w.e.metrics_snapshot(clk(1700));
    let db = &snap.hosts[1];
    assert!(!db.up && !db.connected);
    assert!(db.listeners.is_empty());
    assert_eq!(db.last_report_ms, Some(clk(10).wall_ms));
}

#[test]
fn a_host_that_stops_reporting_is_down_while_still_connected() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    w.e.report(s, w.sessions[&s], full(1, Vec::new()), clk(0));
    w.e.report(c, w.sessions[&c], full(1, Vec::new()), clk(0));
    assert!(w.e.metrics_snapshot(clk(1000)).hosts.iter().all(|h| h.up));
    // Interval 1 s, stale after 3 intervals but never under 3 s.
    let snap = w.e.metrics_snapshot(clk(3001));
    assert!(snap.hosts.iter().all(|h| !h.up && h.connected), "{:?}", snap.hosts);
}

#[test]
fn a_host_that_never_sent_a_full_table_is_not_up() {
    let w = two_hosts();
    let snap = w.e.metrics_snapshot(clk(10));
    assert_eq!(snap.hosts.len(), 2);
    // Connected (the Hello counts as its last word), but nothing is judged
    // against it until its table is in place.
    assert!(snap.hosts.iter().all(|h| !h.up && h.connected), "{:?}", snap.hosts);
}
