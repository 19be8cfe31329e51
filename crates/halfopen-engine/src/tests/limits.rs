//! Bounds on what peers can make the engine keep: host ids, sockets per
//! host (a full table whose last chunk never comes included), and gone
//! hosts that nothing refers to.
use super::*;

fn socks(n: u16) -> Vec<SocketRecord> {
    (0..n)
        .map(|i| {
            rec(
                sa(C_IP, 40_000 + i),
                sa(S_IP, 3306),
                Side::Client,
                TcpState::Established,
                u64::from(i) + 1,
            )
        })
        .collect()
}

#[test]
fn new_host_ids_beyond_the_limit_are_refused() {
    let mut e = Engine::new(EngineConfig {
        max_hosts: 2,
        ..Default::default()
    });
    connect(&mut e, hello("a", "198.18.1.1"), clk(0));
    connect(&mut e, hello("b", "198.18.1.2"), clk(0));
    let err = e.connect(hello("c", "198.18.1.3"), String::new(), clk(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the reconciler already knows 2 host ids (its --max-hosts): host id \"c\" was refused. Raise --max-hosts if \
         the fleet is that big; hosts gone for --forget-hosts-after are forgotten"
    );
    assert_eq!(e.stats().hosts_refused, 1);
    assert_eq!(e.hosts(clk(0)).len(), 2, "nothing of c is kept");
    // A known host id is not new: it comes back.
    assert!(e.connect(hello("a", "198.18.1.1"), String::new(), clk(100)).is_ok());
}

#[test]
fn a_table_beyond_the_limit_ends_the_session_and_frees_its_buffer() {
    let mut e = Engine::new(EngineConfig {
        max_sockets_per_host: 10,
        ..Default::default()
    });
    let (h, s) = connect(&mut e, hello("app", C_IP), clk(0));
    // A full table in chunks whose last never comes: 6, then 6 more.
    let chunk = |recs| Report {
        seq: 1,
        full: true,
        last_chunk: false,
        upserted: recs,
        ..Default::default()
    };
    assert!(e.report(h, s, chunk(socks(6)), clk(10)).is_empty());
    let a = e.report(h, s, chunk(socks(6)), clk(20));
    let closed: Vec<&String> = a
        .iter()
        .filter_map(|a| match a {
            Action::Close { host, session, reason } if *host == h && *session == s => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        closed,
        [
            &"the table of host \"app\" exceeds 10 sockets (the reconciler's --max-sockets-per-host): the session is \
           ended"
                .to_string()
        ]
    );
    assert_eq!(e.stats().tables_refused, 1);
    let v = e.hosts(clk(30));
    assert!(!v[0].connected, "{v:?}");
    // Later reports of that session are ignored; a new session with a table
    // within the limit is whole.
    assert!(e.report(h, s, full(2, socks(3)), clk(40)).is_empty());
    let (h2, s2) = connect(&mut e, hello("app", C_IP), clk(50));
    e.report(h2, s2, full(1, socks(10)), clk(60));
    assert_eq!(e.hosts(clk(70))[0].sockets, 10);
    // Deltas count too.
    let delta = Report {
        seq: 2,
        upserted: socks(11),
        ..Default::default()
    };
    assert!(e
        .report(h2, s2, delta, clk(80))
        .iter()
        .any(|a| matches!(a, Action::Close { .. })));
}

#[test]
fn gone_hosts_that_nothing_refers_to_are_forgotten_and_their_slot_reused() {
    let mut e = Engine::new(EngineConfig {
        gone_after_ms: 1_000,
        forget_after_ms: 5_000,
        max_hosts: 2,
        ..Default::default()
    });
    let (h, s) = connect(&mut e, hello("pod-1", "198.18.1.1"), clk(0));
    e.report(h, s, full(1, vec![]), clk(0));
    let _ = e.disconnect(h, s, clk(1_000));
    connect(&mut e, hello("keep", "198.18.1.2"), clk(0));
    // Gone, but not yet for the forgetting time.
    let a = e.tick(clk(3_000));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Notice(Notice::HostForgotten { .. }))));
    assert_eq!(e.hosts(clk(3_000)).len(), 2);
    // Checked once a minute: forgotten.
    let a = e.tick(clk(61_000));
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Notice(Notice::HostForgotten { host }) if host == "pod-1")),
        "{a:?}"
    );
    assert_eq!(e.stats().hosts_forgotten, 1);
    let names: Vec<String> = e.hosts(clk(61_000)).into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["keep"]);
    assert_eq!(e.coverage(clk(61_000)).hosts, 1);
    assert_eq!(e.owner_of("198.18.1.1".parse().unwrap()), None, "its address is free");
    // Its slot (and the host limit) take a new host id.
    let (h3, _) = connect(&mut e, hello("pod-2", "198.18.1.3"), clk(62_000));
    assert_eq!(h3, h);
    let names: Vec<String> = e.hosts(clk(62_000)).into_iter().map(|h| h.name).collect();
    assert_eq!(names, ["keep", "pod-2"]);
}

/// The server still holds a leftover of the gone client host: the finding
/// names that host, so it is kept (and listed as gone).
#[test]
fn a_gone_host_named_by_a_finding_is_kept() {
    let mut e = Engine::new(EngineConfig {
        gone_after_ms: 1_000,
        forget_after_ms: 1_000,
        ..Default::default()
    });
    let t = Tuple::new(sa(C_IP, 40_000), sa(S_IP, 3306));
    let mut leftover = finding(FindingKind::ServerOnly, conn(t, "app", "db"));
    leftover.cookie = 9;
    e.restore(vec![leftover], clk(0));
    let (h, s) = connect(&mut e, hello("db", S_IP), clk(0));
    let server_end = rec(sa(S_IP, 3306), sa(C_IP, 40_000), Side::Server, TcpState::Established, 9);
    for i in 0..130u64 {
        let r = if i == 0 {
            full(1, vec![server_end])
        } else {
            Report {
                seq: i + 1,
                ..Default::default()
            }
        };
        e.report(h, s, r, clk(i * 1_000));
        let a = e.tick(clk(i * 1_000));
        assert!(
            !a.iter()
                .any(|a| matches!(a, Action::Notice(Notice::HostForgotten { .. }))),
            "at {i} s: {a:?}"
        );
    }
    let hosts = e.hosts(clk(130_000));
    let app = hosts.iter().find(|v| v.name == "app").expect("app is kept");
    assert!(app.gone, "{app:?}");
    assert_eq!(e.findings(clk(130_000)).len(), 1);
}
