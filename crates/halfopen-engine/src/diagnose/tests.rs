//! The differential diagnosis on the field trials' situations: each cause
//! only with its evidence, the right server's settings, and nothing claimed
//! that the evidence does not show.
use super::*;
use halfopen_core::Process;

fn listener(backlog: u32, queue: u32, comm: &str, port: u16) -> Listener {
    Listener {
        addr: format!("0.0.0.0:{port}").parse().unwrap(),
        queue,
        backlog,
        inode: 1,
        uid: 0,
        process: Some(Process {
            pid: 77,
            comm: comm.into(),
            cmdline: comm.into(),
            uid: 999,
        }),
        libwrap: false,
        drops: None,
    }
}

fn sysctls() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("net.core.somaxconn".to_string(), "128".to_string()),
        ("net.ipv4.tcp_max_syn_backlog".to_string(), "256".to_string()),
        ("net.ipv4.tcp_syncookies".to_string(), "1".to_string()),
    ])
}

fn seen(kind: &'static str, n: usize) -> Seen {
    Seen {
        by_kind: BTreeMap::from([(kind, n)]),
        ..Default::default()
    }
}

fn diagnose(l: &Listener, deltas: &BTreeMap<String, u64>, syn_sent: u32, seen: &Seen) -> Diagnosis {
    let s = sysctls();
    listener_diagnosis(&ListenerContext {
        host: "db",
        listener: Some(l),
        sysctls: &s,
        deltas,
        window_s: 60,
        syn_sent,
        seen,
    })
}

fn has(v: &[String], needle: &str) -> bool {
    v.iter().any(|x| x.contains(needle))
}

#[test]
fn the_syn_cookie_incident_is_told_with_the_servers_own_setting() {
    let l = listener(4, 5, "mariadbd", 3306);
    let d = BTreeMap::from([
        ("TcpExt.ListenOverflows".to_string(), 965),
        ("TcpExt.SyncookiesSent".to_string(), 185),
    ]);
    let diag = diagnose(&l, &d, 0, &seen("client_only", 185));
    assert_eq!(diag.target, "db:3306");
    assert!(
        has(
            &diag.causes,
            "SYN cookies answered (ListenOverflows +965, SyncookiesSent +185)"
        ),
        "{diag:?}"
    );
    let back = &diag.changes[0];
    assert_eq!(back.setting, "back_log (mariadbd)");
    assert_eq!(
        (back.current.as_str(), back.suggested.as_str()),
        ("4", "2048"),
        "max(4*4, 965*2, 511) rounded up"
    );
    assert!(back.how.contains("back_log"), "{back:?}");
    let som = diag.changes.iter().find(|c| c.setting == "net.core.somaxconn").unwrap();
    assert_eq!((som.current.as_str(), som.suggested.as_str()), ("128", "2048"));
    assert!(diag.changes.iter().any(|c| c.setting == "net.ipv4.tcp_max_syn_backlog"));
    assert!(diag.changes.iter().any(|c| c.setting.contains("timeout")));
    assert!(has(&diag.facts, "185 current client_only findings"));
    assert!(has(&diag.facts, "keepalive is off on all 185 client-only sockets"));
    assert!(has(&diag.facts, "server software: MariaDB/MySQL"));
}

#[test]
fn a_healthy_listener_needs_nothing() {
    let l = listener(511, 0, "nginx", 443);
    let diag = diagnose(&l, &BTreeMap::new(), 0, &Seen::default());
    assert!(diag.changes.is_empty(), "{diag:?}");
    assert_eq!(
        diag.causes,
        vec!["Nothing needs attention on this listener now.".to_string()]
    );
}

/// MariaDB's host rebooted under ten pooled clients with keepalive: the
/// cause is the restart, no backlog advice, keepalive stated as it is.
#[test]
fn orphans_of_a_restart_are_not_told_as_an_overflow() {
    let l = listener(80, 0, "mariadbd", 3306);
    let mut s = seen("client_only", 10);
    s.orphans_of_restart = 10;
    s.restart = Some(Restart {
        what: "host rebooted".into(),
        at_ms: 1_764_091_201_000,
    });
    s.orphans_with_keepalive = 10;
    s.client_keepalive = Some(KeepaliveSysctls {
        time_s: 60,
        intvl_s: 10,
        probes: 6,
    });
    let diag = diagnose(&l, &BTreeMap::new(), 0, &s);
    assert!(
        has(
            &diag.causes,
            "The server side restarted (host rebooted) after 10 of these connections"
        ),
        "{diag:?}"
    );
    assert!(!has(&diag.causes, "overflowed"), "{diag:?}");
    assert!(!diag.changes.iter().any(|c| c.setting.contains("back_log")), "{diag:?}");
    assert!(
        !diag.changes.iter().any(|c| c.setting.contains("keepalive")),
        "all ten have it: {diag:?}"
    );
    assert!(has(
        &diag.facts,
        "keepalive is on for 10 of 10 client-only sockets: the kernel resets those after about 2 min"
    ));
    // They were greeted long ago: a greeting timeout would not end them,
    // validating the pool's idle connections does.
    let settings: Vec<&str> = diag.changes.iter().map(|c| c.setting.as_str()).collect();
    assert_eq!(settings, ["client pool: idle connection validation"], "{diag:?}");
}

/// A Node.js server with a blocked event loop drops SYNs; no cookie is sent
/// and nobody believes to be connected.
#[test]
fn syn_drops_without_one_sided_connections_are_told_as_such() {
    let l = listener(511, 511, "node", 8080);
    let d = BTreeMap::from([
        ("TcpExt.ListenOverflows".to_string(), 1200),
        ("TcpExt.ListenDrops".to_string(), 1200),
    ]);
    let diag = diagnose(&l, &d, 388, &Seen::default());
    assert!(has(&diag.causes, "no SYN cookie was sent"), "{diag:?}");
    assert!(
        has(
            &diag.causes,
            "388 client sockets on monitored hosts are stuck in SYN-SENT"
        ),
        "{diag:?}"
    );
    assert!(!has(&diag.causes, "believe they are connected"), "{diag:?}");
    let back = &diag.changes[0];
    assert_eq!(back.setting, "server.listen({ port, backlog }) (node)", "{back:?}");
    assert!(!diag
        .changes
        .iter()
        .any(|c| c.setting.contains("client connect/read timeout")));
}

/// Redis holding connections of a host that is gone: the leftovers, Redis's
/// own idle timeout, and never "keepalive will close them" without a timer.
#[test]
fn leftovers_name_the_servers_idle_timeout_and_no_false_keepalive() {
    let l = listener(511, 0, "redis-server", 6379);
    let mut s = seen("server_only", 25);
    s.leftovers = 25;
    s.gone_hosts.insert("app".into());
    let diag = diagnose(&l, &BTreeMap::new(), 0, &s);
    assert!(
        has(
            &diag.causes,
            "25 connections from host that is gone (app) are still held here"
        ),
        "{diag:?}"
    );
    assert!(diag.changes.iter().any(|c| c.setting == "timeout (Redis)"), "{diag:?}");
    assert!(
        has(
            &diag.facts,
            "has no keepalive timer armed: the kernel will not close it"
        ),
        "{diag:?}"
    );
    assert!(!has(&diag.facts, "the kernel resets"), "{diag:?}");
}

#[test]
fn a_stuck_accept_loop_points_at_the_workers_not_the_backlog() {
    let l = listener(100, 60, "postgres", 5432);
    let mut s = seen("accept_stalled", 1);
    s.accept_stall = Some((20_000, 60));
    let diag = diagnose(&l, &BTreeMap::new(), 0, &s);
    assert!(
        has(
            &diag.causes,
            "The server is not accepting: 60 connections wait in its accept queue, the oldest for 20 s"
        ),
        "{diag:?}"
    );
    assert!(
        diag.changes.iter().any(|c| c.setting.starts_with("max_connections")),
        "{diag:?}"
    );
    assert!(
        !diag.changes.iter().any(|c| c.current == "100"),
        "no backlog change: {diag:?}"
    );
}

#[test]
fn stalled_greetings_name_the_servers_name_lookups() {
    let mut l = listener(128, 0, "proftpd", 21);
    l.libwrap = true;
    let mut s = seen("stalled_greeting", 3);
    s.stalled_accepted = 3;
    let diag = diagnose(&l, &BTreeMap::new(), 0, &s);
    assert!(has(&diag.causes, "3 were accepted and not greeted"), "{diag:?}");
    assert!(
        diag.changes.iter().any(|c| c.setting == "UseReverseDNS (ProFTPD)"),
        "{diag:?}"
    );
    assert!(
        diag.changes.iter().any(|c| c.setting.starts_with("TCP wrappers")),
        "{diag:?}"
    );
}

#[test]
fn orphans_without_any_evidence_of_overflow_say_so() {
    let l = listener(128, 0, "mariadbd", 3306);
    let diag = diagnose(&l, &BTreeMap::new(), 0, &seen("client_only", 3));
    assert!(
        has(
            &diag.causes,
            "no overflow or SYN-cookie counter rose and no restart was seen"
        ),
        "{diag:?}"
    );
}

#[test]
fn suggested_backlog_bounds() {
    assert_eq!(suggested_backlog(4, 0), 512);
    assert_eq!(suggested_backlog(4096, 0), 16384);
    assert_eq!(suggested_backlog(60_000, 0), 65_535);
}
