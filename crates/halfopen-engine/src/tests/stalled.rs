//! Stalled greetings: found with the server process, gone when greeted, never
//! on a port where the client speaks first.
use super::*;
use crate::explain::finding_text;
#[test]
fn stalled_greeting_is_found_with_the_server_process_and_goes_when_greeted() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 3306), Side::Client, TcpState::Established, 7);
    let mut sv = rec(sa(S_IP, 3306), sa(C_IP, 40001), Side::Server, TcpState::Established, 8);
    sv.inode = 0; // still in the accept queue
    let mut r = full(1, vec![sv]);
    r.listeners = vec![db_listener(1, 4)];
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut r = full(1, vec![cl]);
    r.silent = vec![SilentSocket {
        tuple: cl.tuple,
        silent_ms: 5_000,
        process: None,
    }];
    let a = w.e.report(c, w.sessions[&c], r, clk(10));
    assert!(confirmed(&a).is_empty(), "5 s is under the 10 s threshold");
    // The server keeps reporting (it is not stale).
    let keep = Report {
        seq: 2,
        last_chunk: true,
        listeners: vec![db_listener(1, 4)],
        ..Default::default()
    };
    w.e.report(s, w.sessions[&s], keep, clk(6_500));
    let client_proc = Process {
        pid: 42,
        comm: "mysql".into(),
        cmdline: "mysql -h db".into(),
        uid: 1000,
    };
    let d = Report {
        seq: 2,
        last_chunk: true,
        silent: vec![SilentSocket {
            tuple: cl.tuple,
            silent_ms: 12_000,
            process: Some(client_proc.clone()),
        }],
        ..Default::default()
    };
    // Before it is reported, the server host is asked afresh for its end.
    let a = w.e.report(c, w.sessions[&c], d, clk(7_000));
    assert!(confirmed(&a).is_empty());
    let (id, tuples) = match &a[..] {
        [Action::Lookup {
            host,
            id,
            tuples,
            attribute: true,
            ..
        }] if *host == s => (*id, tuples.clone()),
        other => panic!("expected one lookup to the server host: {other:?}"),
    };
    assert_eq!(tuples, vec![sv.tuple]);
    // Still in the accept queue: nobody holds it yet (no owner).
    let queued = LookupAnswer::from_record(sv.tuple, Some(&sv), None);
    let a = w.e.lookup_reply(s, w.sessions[&s], id, vec![queued], clk(7_100));
    let f = confirmed(&a);
    assert_eq!(f.len(), 1, "{a:?}");
    assert_eq!(f[0].kind, FindingKind::StalledGreeting);
    assert_eq!(f[0].evidence.in_accept_queue, Some(true));
    assert_eq!(f[0].process, Some(client_proc), "the client process is named");
    assert_eq!(
        f[0].server_process.as_ref().unwrap().comm,
        "mariadbd",
        "queued: the listener's owner must accept it"
    );
    assert!(finding_text(&f[0]).contains("accept queue") && finding_text(&f[0]).contains("libwrap"));
    // Greeted: no longer silent.
    let d = Report {
        seq: 3,
        last_chunk: true,
        ..Default::default()
    };
    let a = w.e.report(c, w.sessions[&c], d, clk(8_000));
    assert!(
        matches!(
            &a[0],
            Action::Gone {
                reason: GoneReason::Greeted,
                ..
            }
        ),
        "{a:?}"
    );
    assert!(w.e.findings(clk(8_000)).is_empty());
    // A silent socket on a port that is not a greeting port is never stalled.
    let other = rec(sa(C_IP, 40002), sa(S_IP, 8080), Side::Client, TcpState::Established, 9);
    let sv2 = rec(sa(S_IP, 8080), sa(C_IP, 40002), Side::Server, TcpState::Established, 10);
    w.e.report(
        s,
        w.sessions[&s],
        Report {
            seq: 3,
            last_chunk: true,
            upserted: vec![sv2],
            ..Default::default()
        },
        clk(8_100),
    );
    let d = Report {
        seq: 4,
        last_chunk: true,
        upserted: vec![other],
        silent: vec![SilentSocket {
            tuple: other.tuple,
            silent_ms: 60_000,
            process: None,
        }],
        ..Default::default()
    };
    let a = w.e.report(c, w.sessions[&c], d, clk(8_200));
    assert!(a.is_empty(), "neither asked nor confirmed: {a:?}");
}

/// An accepted connection left silent: the server process named is the one
/// holding the socket (a forked session child), not only the listener's owner.
#[test]
fn a_stalled_greeting_names_the_process_that_holds_the_server_end() {
    let mut w = two_hosts();
    let (s, c) = (w.s, w.c);
    let cl = rec(sa(C_IP, 40001), sa(S_IP, 21), Side::Client, TcpState::Established, 7);
    let mut sv = rec(sa(S_IP, 21), sa(C_IP, 40001), Side::Server, TcpState::Established, 8);
    sv.inode = 99; // accepted
    let mut r = full(1, vec![sv]);
    r.listeners = vec![db_listener(0, 128)];
    r.listeners[0].addr = sa("0.0.0.0", 21);
    w.e.report(s, w.sessions[&s], r, clk(0));
    let mut r = full(1, vec![cl]);
    r.silent = vec![SilentSocket {
        tuple: cl.tuple,
        silent_ms: 15_000,
        process: None,
    }];
    let a = w.e.report(c, w.sessions[&c], r, clk(10));
    let Some(Action::Lookup { id, .. }) = a.first() else {
        panic!("{a:?}")
    };
    let child = Process {
        pid: 777,
        comm: "proftpd".into(),
        cmdline: "proftpd: (accepting connections)".into(),
        uid: 0,
    };
    let ans = LookupAnswer::from_record(sv.tuple, Some(&sv), Some(child.clone()));
    let f = confirmed(&w.e.lookup_reply(s, w.sessions[&s], *id, vec![ans], clk(20)));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].server_process, Some(child));
    assert_eq!(f[0].evidence.in_accept_queue, Some(false));
    assert!(finding_text(&f[0]).contains("proftpd (pid 777) accepted it and has not sent its greeting"));
    // The server end gone by the time it is asked: nothing is reported.
    let mut r = Report {
        seq: 2,
        last_chunk: true,
        silent: vec![SilentSocket {
            tuple: cl.tuple,
            silent_ms: 16_000,
            process: None,
        }],
        ..Default::default()
    };
    r.upserted = vec![];
    assert!(
        w.e.report(c, w.sessions[&c], r, clk(30)).is_empty(),
        "already a finding: only updated"
    );
}
