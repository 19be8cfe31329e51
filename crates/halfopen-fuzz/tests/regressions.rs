//! Bugs the fuzz targets found, each as the smallest story that shows it,
//! through the engine's public API (the inputs themselves are in
//! `fuzz/corpus/<target>/regress-*`).
use halfopen_core::{Listener, Side, SilentSocket, SocketRecord, TcpState, Tuple};
use halfopen_engine::PageCursor;
use halfopen_fuzz::seeds::{Collector, Scenario};

fn t(local: &str, remote: &str) -> Tuple {
    Tuple::new(local.parse().unwrap(), remote.parse().unwrap())
}

fn established(tuple: Tuple, side: Side, cookie: u64, inode: u64) -> SocketRecord {
    SocketRecord {
        tuple,
        state: TcpState::Established,
        side,
        cookie,
        inode,
        uid: 0,
        keepalive: false,
        info: None,
    }
}

/// collector_session, "the findings listed are the findings announced":
/// a stalled greeting confirmed while its server reported no listener took
/// the listener into its evidence at a later report, and with it into its
/// listing order key, so a page token given before that pointed before it
/// again: listed twice. Two client hosts with the same (private) address
/// and port, both silent towards one server, make the second listing
/// visible.
#[test]
fn a_finding_keeps_its_place_in_the_listing_when_its_evidence_changes() {
    let stalled = t("198.18.5.5:40000", "198.18.0.1:3306");
    let mut a = Collector::new(0, "app-1", &["198.18.5.5"]);
    let mut b = Collector::new(1, "app-2", &["198.18.5.5"]);
    let mut db = Collector::new(2, "db-1", &["198.18.0.1"]);
    for (c, cookie) in [(&mut a, 1), (&mut b, 2)] {
        c.table = vec![established(stalled, Side::Client, cookie, 10)];
        c.silent = vec![SilentSocket {
            tuple: stalled,
            silent_ms: 12_000,
            process: None,
        }];
    }
    db.table = vec![established(stalled.mirror(), Side::Server, 3, 0)];
    let mut s = Scenario::new(vec![a, b, db]);
    for i in 0..3 {
        s.hello(i);
    }
    for i in [2, 0, 1] {
        s.full(i, 16_384);
    }
    s.beat(1);
    assert_eq!(s.confirmed().get("stalled_greeting"), Some(&2), "{:#?}", s.actions);

    let now = || s.w.driver.now;
    let (first, next) = s.w.driver.engine.findings_page(now(), None, None, 1);
    let cursor = PageCursor::parse(&next.expect("a second page").token()).unwrap();
    assert_eq!(first[0].finding.subject.client_host(), Some("app-1"));

    // db's listener shows up; the clients' next reports bring it into the evidence
    s.hosts[2].listeners.push(Listener {
        addr: "0.0.0.0:3306".parse().unwrap(),
        queue: 1,
        backlog: 4,
        inode: 77,
        uid: 27,
        process: None,
        libwrap: false,
        drops: Some(0),
    });
    s.beat(2);
    // (Whether the evidence now names the listener or not, a finding
    // keeps its place: the order key does not depend on evidence.)
    let now = s.w.driver.now;
    let mut rest = Vec::new();
    let mut after = Some(cursor);
    while let Some(c) = after {
        let (page, next) = s.w.driver.engine.findings_page(now, None, Some(&c), 1);
        rest.extend(
            page.into_iter()
                .map(|v| v.finding.subject.client_host().unwrap().to_string()),
        );
        after = next;
    }
    assert_eq!(rest, ["app-2"], "app-1's finding was on the first page already");
}

/// A collector whose TCP counters jump by a counter's whole range (any
/// reading it sends is taken as absolute; `counter_delta` reads a drop near
/// 2^64 as a wrap).
fn counter_jumps(readings: &[u64]) -> Scenario {
    let mut db = Collector::new(0, "db-9", &["198.18.9.1"]);
    db.listeners.push(Listener {
        addr: "0.0.0.0:3306".parse().unwrap(),
        queue: 1,
        backlog: 128,
        inode: 5,
        uid: 27,
        process: None,
        libwrap: false,
        // Unknown: the host's counters point at it (its only listener).
        drops: None,
    });
    let reading = |v: u64| [("TcpExt.ListenOverflows".to_string(), v)].into_iter().collect();
    db.counters = reading(readings[0]);
    let mut s = Scenario::new(vec![db]);
    s.hello(0);
    s.full(0, 16_384);
    for &v in &readings[1..] {
        s.hosts[0].counters = reading(v);
        s.delta(0, 0, Vec::new(), Vec::new());
    }
    s
}

/// collector_session: the engine summed a host's counter increases over
/// its risk window with `+=`, which overflows (a panic in debug builds,
/// a wrong small sum in release) when a collector's readings go 0,
/// 2^64-1, 2^64-2 (two increases of 2^64-1 each).
#[test]
fn counter_increases_add_up_without_overflowing() {
    let s = counter_jumps(&[0, u64::MAX, u64::MAX - 1]);
    let f = s.w.driver.engine.findings(s.w.driver.now);
    assert_eq!(f.len(), 1, "the listener is at risk: {f:?}");
    let window = f[0].finding.evidence.counters.as_ref().expect("counter evidence");
    assert_eq!(window.get("TcpExt.ListenOverflows"), u64::MAX, "the sum saturates");
}

/// collector_session: `explain` suggested an accept queue of
/// `2 * lost` rounded up to a power of two, which overflows for
/// increases from 2^62 up (a panic in debug builds; in release `lost * 2`
/// wraps, or `next_power_of_two` gives 0 and the advice was a backlog of
/// 0). The advice is capped at 65535 as for any large loss.
#[test]
fn explain_after_a_counter_jump_suggests_the_largest_backlog() {
    for jump in [(1 << 62) + 1, 1 << 63, u64::MAX - 1] {
        let s = counter_jumps(&[0, jump]);
        let target = halfopen_core::ExplainTarget::Host("db-9".into());
        let d = s.w.driver.engine.explain(&target, s.w.driver.now).unwrap();
        let suggested: Vec<&str> = d
            .iter()
            .flat_map(|d| &d.changes)
            .filter(|c| c.setting.starts_with("listen() backlog"))
            .map(|c| c.suggested.as_str())
            .collect();
        assert_eq!(suggested, ["65535"], "after a jump of {jump}: {d:#?}");
    }
}

/// proc_net_tcp: an address field of the right length in bytes but with a
/// multi-byte character across a word boundary was sliced at a byte that
/// is not a char boundary: a panic where an error belongs.
#[test]
fn a_non_ascii_address_in_proc_net_tcp_is_an_error() {
    use halfopen_sockets::procnet::{parse_line, ParseError};
    use halfopen_sockets::Family;
    let addr = "0000000é00000000000000000000000";
    assert_eq!(addr.len(), 32);
    let line = format!(
        "   0: {addr}:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1"
    );
    assert_eq!(parse_line(&line, Family::V6), Err(ParseError::Invalid("local_address")));
    assert_eq!(
        parse_line(&line.replace(addr, "000000é"), Family::V4),
        Err(ParseError::Invalid("local_address"))
    );
}

/// pod_log_dir and cgroup: a pod uid was any 32 to 36 characters with 32
/// hex digits and dashes anywhere, although its documentation (and the
/// targets' check) say a UUID (8-4-4-4-12) or a static pod's 32-digit hash.
#[test]
fn a_pod_uid_is_a_uuid_or_a_32_digit_hash() {
    use halfopen_sockets::containers::{parse_cgroup, parse_pod_log_dir, ContainerRef};
    assert_eq!(
        parse_pod_log_dir("kube-system_etcd-node-1_1b2c3d4e5f60-718293a4b5c6d7e8f901"),
        None
    );
    let hash = parse_pod_log_dir("kube-system_etcd-node-1_1b2c3d4e5f60718293a4b5c6d7e8f901").unwrap();
    assert_eq!(hash.uid, "1b2c3d4e5f60718293a4b5c6d7e8f901");
    let uuid = parse_pod_log_dir("default_web_0A1B2C3D-4E5F-6789-ABCD-EF0123456789").unwrap();
    assert_eq!(uuid.uid, "0a1b2c3d-4e5f-6789-abcd-ef0123456789");
    let cgroup = |uid: &str| format!("0::/kubepods/besteffort/pod{uid}/\n");
    assert_eq!(parse_cgroup(&cgroup("0a1b2c3d-4e5f77839-abcd-f1087644679")), None);
    assert_eq!(parse_cgroup(&cgroup("0a1b2c3d-4e5ffffffffffffff3456789")), None);
    assert!(matches!(
        parse_cgroup(&cgroup("0a1b2c3d-4e5f-6789-abcd-ef0123456789")),
        Some(ContainerRef::Pod { .. })
    ));
}
