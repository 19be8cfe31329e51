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
    });
    s.beat(2);
    let views = s.w.driver.engine.findings(s.w.driver.now);
    assert!(
        views.iter().all(|v| v.finding.listener_addr().is_some()),
        "the evidence now names the listener"
    );
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
