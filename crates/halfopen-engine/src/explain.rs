//! A finding's explanation in plain words, rendered from its [`Evidence`]
//! (never stored as the source of truth): which listener, its accept queue
//! against its backlog, what the counters did and over which window, and
//! what happens to the connection next. Pure functions.
//!
//! [`Evidence`]: halfopen_core::Evidence
use halfopen_core::counters::{overflowed, OVERFLOW};
use halfopen_core::{CounterWindow, Finding, FindingKind, Process, Subject};
use std::collections::BTreeMap;

/// "comm (pid N)", or `unknown` when there is no process.
pub fn process_label(p: Option<&Process>, unknown: &str) -> String {
    match p {
        Some(p) => format!("{} (pid {})", p.comm, p.pid),
        None => unknown.to_string(),
    }
}

/// "ListenOverflows +965, SyncookiesSent +185" (only the ones that rose).
pub fn counter_summary(d: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = OVERFLOW
        .iter()
        .filter_map(|k| {
            let v = d.get(*k).copied().unwrap_or(0);
            (v > 0).then(|| format!("{} +{v}", k.trim_start_matches("TcpExt.")))
        })
        .collect();
    if parts.is_empty() {
        "no overflow or SYN-cookie counter rose".to_string()
    } else {
        parts.join(", ")
    }
}

fn sysctl<'a>(s: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    s.get(k).map(String::as_str).unwrap_or("unknown")
}

/// A counter window's length in whole seconds (rounded up).
fn window_s(c: &CounterWindow) -> u64 {
    c.window_ms.div_ceil(1000)
}

/// The explanation of a finding, from its evidence.
pub fn finding_text(f: &Finding) -> String {
    if let Some(old) = &f.evidence.legacy_explanation {
        return old.clone();
    }
    match f.kind {
        FindingKind::ClientOnly => client_only(f),
        FindingKind::ServerOnly => server_only(f),
        FindingKind::StalledGreeting => stalled_greeting(f),
        FindingKind::ListenerAtRisk => listener_at_risk(f),
    }
}

fn client_only(f: &Finding) -> String {
    let e = &f.evidence;
    let host = f.subject.server_host();
    let mut s = format!(
        "The server host {host} has no trace of this connection to {}.",
        f.subject.server_end()
    );
    if let Some(l) = &e.listener {
        s.push_str(&format!(
            " Its listener {} ({}) has an accept queue of {}/{} (backlog against net.core.somaxconn={}).",
            l.addr,
            process_label(f.server_process.as_ref(), "unknown process"),
            l.queue,
            l.backlog,
            sysctl(&e.sysctls, "net.core.somaxconn")
        ));
    } else {
        s.push_str(" No listener on that port now.");
    }
    let empty = CounterWindow::default();
    let c = e.counters.as_ref().unwrap_or(&empty);
    if overflowed(&c.deltas) {
        s.push_str(&format!(
            " In the {} s before it was seen: {} (tcp_syncookies={}): the accept queue overflowed, SYN cookies answered, and the final ACK was dropped while the queue was full.",
            window_s(c),
            counter_summary(&c.deltas),
            sysctl(&e.sysctls, "net.ipv4.tcp_syncookies")
        ));
    } else {
        s.push_str(&format!(
            " No overflow or SYN-cookie counter rose on {host} in the {} s before it was seen.",
            window_s(c)
        ));
    }
    if f.keepalive {
        s.push_str(" The client socket has keepalive: it will be reset after the keepalive probes fail.");
    } else {
        s.push_str(
            " The client socket has no keepalive: without an application read timeout it waits forever for the greeting.",
        );
    }
    s
}

fn server_only(f: &Finding) -> String {
    let client_host = f.subject.client_host().unwrap_or("the client host");
    let server_proc = process_label(f.server_process.as_ref(), "the server process");
    format!(
        "The client host {client_host} has no trace of this connection, but {server_proc} on the server still holds it \
         ESTABLISHED: the client's host crashed, or its reset never arrived. It occupies a connection slot until the \
         server's keepalive or idle timeout closes it (set tcp_keepalive_time / wait_timeout or the application's idle timeout)."
    )
}

fn stalled_greeting(f: &Finding) -> String {
    let e = &f.evidence;
    let server_proc = process_label(f.server_process.as_ref(), "the server process");
    let mut s = format!(
        "The client has received nothing for {:.0} s on a port where the server speaks first. ",
        e.silent_ms.unwrap_or(0) as f64 / 1000.0
    );
    if e.in_accept_queue == Some(true) {
        s.push_str(&format!(
            "The server end still sits in the accept queue: {server_proc} has not called accept() for it (overloaded, paused, or blocked)."
        ));
    } else {
        s.push_str(&format!("{server_proc} accepted it and has not sent its greeting."));
    }
    if e.listener.as_ref().is_some_and(|l| l.libwrap) {
        s.push_str(
            " The server process has TCP wrappers (libwrap) loaded: it does a reverse DNS lookup of every new client \
             before greeting, so a slow resolver stalls every new connection (fix DNS, or remove the hosts.allow/hosts.deny rules for it).",
        );
    }
    s
}

fn listener_at_risk(f: &Finding) -> String {
    let e = &f.evidence;
    let mut s = String::new();
    if let (Some(l), Subject::Listener { host, .. }) = (&e.listener, &f.subject) {
        s.push_str(&format!(
            "Listener {} ({}) on {host}: accept queue {}/{}.",
            l.addr,
            process_label(f.server_process.as_ref(), "unknown process"),
            l.queue,
            l.backlog
        ));
    }
    if e.near_full == Some(true) {
        s.push_str(" The accept queue was near its limit.");
    }
    if let Some(c) = e.counters.as_ref().filter(|c| overflowed(&c.deltas)) {
        s.push_str(&format!(
            " In the last {} s: {}.",
            window_s(c),
            counter_summary(&c.deltas)
        ));
    }
    s.push_str(" Connections arriving in a burst are dropped or answered with SYN cookies and can be lost.");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::{Evidence, ListenerSample, Tuple};

    fn sysctls() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("net.core.somaxconn".to_string(), "128".to_string()),
            ("net.ipv4.tcp_max_syn_backlog".to_string(), "256".to_string()),
            ("net.ipv4.tcp_syncookies".to_string(), "1".to_string()),
        ])
    }

    fn orphan(deltas: BTreeMap<String, u64>, keepalive: bool) -> Finding {
        Finding {
            kind: FindingKind::ClientOnly,
            subject: Subject::Connection {
                tuple: Tuple::new("198.18.0.2:40000".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
                client_host: "app".into(),
                server_host: "db".into(),
            },
            cookie: 1,
            process: None,
            server_process: Some(Process {
                pid: 77,
                comm: "mariadbd".into(),
                cmdline: "mariadbd".into(),
                uid: 999,
            }),
            keepalive,
            first_seen_ms: 0,
            confirmed_at_ms: 0,
            evidence: Evidence {
                listener: Some(ListenerSample {
                    addr: "0.0.0.0:3306".parse().unwrap(),
                    queue: 5,
                    backlog: 4,
                    libwrap: false,
                }),
                counters: Some(CounterWindow {
                    window_ms: 9_500,
                    deltas,
                }),
                sysctls: sysctls(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn client_only_names_the_listener_counters_and_keepalive() {
        let d = BTreeMap::from([
            ("TcpExt.ListenOverflows".to_string(), 965),
            ("TcpExt.SyncookiesSent".to_string(), 185),
        ]);
        assert_eq!(
            finding_text(&orphan(d, false)),
            "The server host db has no trace of this connection to 198.18.0.1:3306. Its listener 0.0.0.0:3306 \
             (mariadbd (pid 77)) has an accept queue of 5/4 (backlog against net.core.somaxconn=128). In the 10 s \
             before it was seen: ListenOverflows +965, SyncookiesSent +185 (tcp_syncookies=1): the accept queue \
             overflowed, SYN cookies answered, and the final ACK was dropped while the queue was full. The client \
             socket has no keepalive: without an application read timeout it waits forever for the greeting."
        );
        let quiet = finding_text(&orphan(BTreeMap::new(), true));
        assert!(
            quiet.contains("No overflow or SYN-cookie counter rose on db in the 10 s before it was seen."),
            "{quiet}"
        );
        assert!(
            quiet.ends_with("it will be reset after the keepalive probes fail."),
            "{quiet}"
        );
    }

    #[test]
    fn a_legacy_explanation_is_shown_as_written() {
        let mut f = orphan(BTreeMap::new(), false);
        f.evidence = Evidence {
            legacy_explanation: Some("written by 0.1".into()),
            ..Default::default()
        };
        assert_eq!(finding_text(&f), "written by 0.1");
    }

    #[test]
    fn stalled_text_mentions_libwrap_and_queue() {
        let mut f = orphan(BTreeMap::new(), false);
        f.kind = FindingKind::StalledGreeting;
        f.server_process = Some(Process {
            pid: 4,
            comm: "mysqld".into(),
            cmdline: "mysqld".into(),
            uid: 27,
        });
        f.evidence.silent_ms = Some(12_000);
        f.evidence.in_accept_queue = Some(true);
        f.evidence.listener.as_mut().unwrap().libwrap = true;
        assert_eq!(
            finding_text(&f),
            "The client has received nothing for 12 s on a port where the server speaks first. The server end still \
             sits in the accept queue: mysqld (pid 4) has not called accept() for it (overloaded, paused, or blocked). \
             The server process has TCP wrappers (libwrap) loaded: it does a reverse DNS lookup of every new client \
             before greeting, so a slow resolver stalls every new connection (fix DNS, or remove the hosts.allow/hosts.deny \
             rules for it)."
        );
        f.evidence.in_accept_queue = Some(false);
        f.evidence.listener.as_mut().unwrap().libwrap = false;
        let s = finding_text(&f);
        assert!(
            s.ends_with("mysqld (pid 4) accepted it and has not sent its greeting."),
            "{s}"
        );
    }
}
