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
    let d = Report {
        seq: 2,
        last_chunk: true,
        silent: vec![SilentSocket {
            tuple: cl.tuple,
            silent_ms: 12_000,
        }],
        ..Default::default()
    };
    let a = w.e.report(c, w.sessions[&c], d, clk(7_000));
    let f = confirmed(&a);
    assert_eq!(f.len(), 1, "{a:?}");
    assert_eq!(f[0].kind, FindingKind::StalledGreeting);
    assert_eq!(f[0].evidence.in_accept_queue, Some(true));
    assert_eq!(f[0].server_process.as_ref().unwrap().comm, "mariadbd");
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
        }],
        ..Default::default()
    };
    assert!(confirmed(&w.e.report(c, w.sessions[&c], d, clk(8_200))).is_empty());
}
