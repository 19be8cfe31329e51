//! A finding's explanation in plain words, rendered from its [`Evidence`]
//! (never stored as the source of truth): which listener, its accept queue
//! against its backlog, what the counters did and over which window, and
//! what happens to the connection next. Pure functions.
//!
//! [`Evidence`]: halfopen_core::Evidence
use halfopen_core::counters::{overflowed, OVERFLOW};
use halfopen_core::{CounterWindow, DropPath, Finding, FindingKind, Process, Subject, Witness};
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

pub use crate::advice::humanize;

/// A wall-clock time for an explanation: RFC 3339, UTC, seconds.
fn when(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm): no date crate in the engine.
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
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
        FindingKind::AcceptStalled => accept_stalled(f),
        FindingKind::DroppedHandshake => dropped_handshake(f),
    }
}

/// What the server's kernel witnessed: " The server's kernel witnessed the
/// drop: at T its accept queue was full (5 of 4) and it dropped the client's
/// final ACK (SYN-cookie path: the server kept nothing of it)."
fn witness_sentence(w: &Witness) -> String {
    format!(
        " The server's kernel witnessed the drop: at {} its accept queue was full ({} of {}) and it dropped the \
         client's final ACK ({}).",
        when(w.at_ms),
        w.queue,
        w.backlog,
        path_clause(w.path)
    )
}

fn path_clause(p: DropPath) -> &'static str {
    match p {
        DropPath::Cookie => "SYN-cookie path: the server kept nothing of it",
        DropPath::Normal => {
            "normal path: the server keeps the request in SYN_RECV and may still complete it once the queue drains"
        }
    }
}

/// What keepalive does to a socket of `who` (the holder): when the kernel
/// resets it if the peer is gone, or that nothing will.
fn keepalive_sentence(f: &Finding, who: &str, otherwise: &str) -> String {
    if !f.keepalive {
        return format!(" The {who} socket has no keepalive: {otherwise}");
    }
    match f.evidence.client_keepalive.filter(|_| who == "client") {
        Some(k) => format!(
            " The {who} socket has keepalive: with tcp_keepalive_time={} s, intvl={} s, probes={} the kernel resets it after about {} without a reply.",
            k.time_s,
            k.intvl_s,
            k.probes,
            humanize(k.reap_time_s())
        ),
        None => format!(" The {who} socket has keepalive: it will be reset after the keepalive probes fail."),
    }
}

/// "(dialed 198.18.100.1:80, translated by node-1's NAT)" for a NAT'd connection.
fn nat_clause(f: &Finding) -> String {
    match (&f.evidence.nat, f.tuple()) {
        (Some(n), Some(t)) => {
            let on = if n.translated_on.is_empty() {
                String::new()
            } else {
                format!(" by {}'s NAT", n.translated_on)
            };
            format!(" (the client dialed {}, translated{on})", t.remote())
        }
        _ => String::new(),
    }
}

fn client_only(f: &Finding) -> String {
    let e = &f.evidence;
    let host = f.subject.server_host();
    let mut s = format!(
        "The server host {host} has no trace of this connection to {}{}.",
        f.server_end(),
        nat_clause(f)
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
    if let Some(r) = &e.server_restarted {
        s.push_str(&format!(
            " The server side restarted after this connection was made ({} at {}): the server's end was lost with it, \
             and no reset reached the client. This is not an accept-queue overflow.",
            r.what,
            when(r.at_ms)
        ));
    } else if overflowed(&c.deltas) {
        let cookies = c.get("TcpExt.SyncookiesSent") > 0 || c.get("TcpExt.SyncookiesRecv") > 0;
        s.push_str(&format!(
            " In the {} s before it was seen: {} (tcp_syncookies={}): ",
            window_s(c),
            counter_summary(&c.deltas),
            sysctl(&e.sysctls, "net.ipv4.tcp_syncookies")
        ));
        s.push_str(if cookies {
            "the accept queue overflowed, SYN cookies answered, and the final ACK was dropped while the queue was full."
        } else {
            "the accept queue overflowed and the client's final ACK was dropped while the queue was full."
        });
    } else {
        s.push_str(&format!(
            " No overflow or SYN-cookie counter rose on {host} in the {} s before it was seen: this is not an \
             accept-queue overflow (the server's end was closed without a reset reaching the client, or the server host lost it).",
            window_s(c)
        ));
    }
    if let Some(w) = &e.witness {
        s.push_str(&witness_sentence(w));
    }
    s.push_str(&keepalive_sentence(
        f,
        "client",
        "without an application read timeout it waits forever for the greeting.",
    ));
    s
}

fn dropped_handshake(f: &Finding) -> String {
    let e = &f.evidence;
    let host = f.subject.server_host();
    let client = f
        .subject
        .client_end()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "the client".into());
    let mut s = format!(
        "The kernel of {host} dropped the completed handshake of {client} to {}",
        f.server_end()
    );
    if let Some(l) = &e.listener {
        s.push_str(&format!(
            ": the accept queue of its listener {} ({}) was full",
            l.addr,
            process_label(f.server_process.as_ref(), "unknown process")
        ));
    }
    match &e.witness {
        Some(w) => s.push_str(&format!(
            " ({} of {}, backlog against net.core.somaxconn={}, tcp_syncookies={}) at {}, {}.",
            w.queue,
            w.backlog,
            sysctl(&e.sysctls, "net.core.somaxconn"),
            sysctl(&e.sysctls, "net.ipv4.tcp_syncookies"),
            when(w.at_ms),
            path_clause(w.path)
        )),
        None => s.push('.'),
    }
    s.push_str(&format!(
        " The client host is not monitored, so only the server's kernel saw this: the client believes it is \
         connected and, since the server speaks first on port {}, waits for a greeting that never comes unless it has \
         a timeout.",
        f.server_end().port()
    ));
    s
}

fn server_only(f: &Finding) -> String {
    let client_host = f.subject.client_host().unwrap_or("the client host");
    let server_proc = process_label(f.server_process.as_ref(), "the server process");
    let mut s = match f.evidence.client_host_gone_since_ms {
        Some(since) => format!(
            "The client host {client_host} has been gone since {} (its collector is away), so it could not confirm this: \
             only the server did. {server_proc} still holds it ESTABLISHED{}. If {client_host} is gone for good, this is a \
             leftover that occupies one of the server's connection slots until the server closes it.",
            when(since),
            nat_clause(f)
        ),
        None => format!(
            "The client host {client_host} has no trace of this connection, but {server_proc} on the server still holds it \
             ESTABLISHED{}: the client's host crashed, or its reset never arrived. It occupies a connection slot until the \
             server closes it.",
            nat_clause(f)
        ),
    };
    s.push_str(&keepalive_sentence(
        f,
        "server",
        "keepalive will not close it; only the server's own idle timeout will (see halfopen explain).",
    ));
    s
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
    let rose = e.counters.as_ref().filter(|c| overflowed(&c.deltas));
    if let Some(c) = rose {
        s.push_str(&format!(
            " In the last {} s: {}.",
            window_s(c),
            counter_summary(&c.deltas)
        ));
    }
    if let Some(n) = e.syn_sent {
        s.push_str(&format!(
            " {n} client socket{} on monitored hosts {} stuck in SYN-SENT towards it: their SYNs are being dropped.",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        ));
    }
    let cookies = rose.is_some_and(|c| c.get("TcpExt.SyncookiesSent") > 0);
    s.push_str(if cookies {
        " Connections arriving in a burst are answered with SYN cookies and can be lost: the client believes it is \
         connected, the server never saw it."
    } else if rose.is_some() || e.syn_sent.is_some() {
        " New connections are being dropped: clients retry their SYN (and wait in SYN-SENT) until the queue drains or they time out."
    } else {
        " A burst of connects can overflow it."
    });
    s
}

fn accept_stalled(f: &Finding) -> String {
    let e = &f.evidence;
    let (host, addr) = match &f.subject {
        Subject::Listener { host, addr } => (host.as_str(), *addr),
        Subject::Connection { .. } => return String::new(),
    };
    let n = e.queued.unwrap_or(0);
    let mut s = format!(
        "{} on {host} has not accepted {n} connection{} on {addr}: the oldest has waited {} in its accept queue",
        process_label(f.server_process.as_ref(), "The listener's process"),
        if n == 1 { "" } else { "s" },
        humanize(e.accept_wait_ms.unwrap_or(0) / 1000)
    );
    if let Some(l) = &e.listener {
        s.push_str(&format!(" (queue {}/{})", l.queue, l.backlog));
    }
    s.push_str(
        ". Nothing has overflowed, so no counter shows it: the server's accept loop is stuck (the process is frozen or \
         blocked, or out of workers). Clients wait for their first byte until their own timeout.",
    );
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
                    drops: None,
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
            quiet.contains(
                "No overflow or SYN-cookie counter rose on db in the 10 s before it was seen: this is not an accept-queue overflow"
            ),
            "{quiet}"
        );
        assert!(
            quiet.ends_with("it will be reset after the keepalive probes fail."),
            "{quiet}"
        );
    }

    #[test]
    fn a_witnessed_drop_is_told_with_its_time_queue_and_path() {
        let mut f = orphan(BTreeMap::from([("TcpExt.ListenOverflows".to_string(), 3)]), false);
        f.evidence.witness = Some(Witness {
            at_ms: 1_764_091_201_123,
            path: DropPath::Cookie,
            queue: 5,
            backlog: 4,
        });
        let t = finding_text(&f);
        assert!(
            t.contains(
                "The server's kernel witnessed the drop: at 2025-11-25T17:20:01Z its accept queue was full (5 of 4) and \
                 it dropped the client's final ACK (SYN-cookie path: the server kept nothing of it). The client socket"
            ),
            "{t}"
        );
        let mut d = f.clone();
        d.kind = FindingKind::DroppedHandshake;
        d.subject = Subject::Connection {
            tuple: Tuple::new("198.18.7.7:40000".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
            client_host: String::new(),
            server_host: "db".into(),
        };
        d.evidence.witness.as_mut().unwrap().path = DropPath::Normal;
        assert_eq!(
            finding_text(&d),
            "The kernel of db dropped the completed handshake of 198.18.7.7:40000 to 198.18.0.1:3306: the accept \
             queue of its listener 0.0.0.0:3306 (mariadbd (pid 77)) was full (5 of 4, backlog against \
             net.core.somaxconn=128, tcp_syncookies=1) at 2025-11-25T17:20:01Z, normal path: the server keeps the \
             request in SYN_RECV and may still complete it once the queue drains. The client host is not monitored, \
             so only the server's kernel saw this: the client believes it is connected and, since the server speaks \
             first on port 3306, waits for a greeting that never comes unless it has a timeout."
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

    #[test]
    fn keepalive_names_when_it_reaps_and_times_read_as_utc() {
        let mut f = orphan(BTreeMap::new(), true);
        f.evidence.client_keepalive = Some(halfopen_core::KeepaliveSysctls {
            time_s: 7200,
            intvl_s: 75,
            probes: 9,
        });
        let t = finding_text(&f);
        assert!(
            t.ends_with(
                "The client socket has keepalive: with tcp_keepalive_time=7200 s, intvl=75 s, probes=9 the kernel resets it after about 2 h 11 min without a reply."
            ),
            "{t}"
        );
        assert_eq!(when(1_764_091_201_123), "2025-11-25T17:20:01Z");
        assert_eq!(when(0), "1970-01-01T00:00:00Z");
        assert_eq!(when(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
