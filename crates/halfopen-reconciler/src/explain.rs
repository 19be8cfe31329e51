//! Explanations and advice: why a finding happened and what to change, in
//! plain words with current and suggested values. Pure functions of what the
//! engine knows (listener, sysctls, counter deltas, findings).
use halfopen_core::counters::OVERFLOW;
pub use halfopen_core::{Change, Diagnosis};
use halfopen_core::{Listener, Process};
use std::collections::BTreeMap;

/// What the engine passes about a server listener and its host.
pub struct ListenerContext<'a> {
    pub host: &'a str,
    pub listener: Option<&'a Listener>,
    pub sysctls: &'a BTreeMap<String, String>,
    /// Counter increases on the host over `window_s` seconds.
    pub deltas: &'a BTreeMap<String, u64>,
    pub window_s: u64,
}

fn sysctl<'a>(s: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    s.get(k).map(String::as_str).unwrap_or("unknown")
}

fn delta(d: &BTreeMap<String, u64>, k: &str) -> u64 {
    d.get(&format!("TcpExt.{k}")).copied().unwrap_or(0)
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

pub fn overflowed(d: &BTreeMap<String, u64>) -> bool {
    OVERFLOW.iter().any(|k| d.get(*k).copied().unwrap_or(0) > 0)
}

/// "comm (pid N)", or `unknown` when there is no process.
pub fn process_label(p: Option<&Process>, unknown: &str) -> String {
    match p {
        Some(p) => format!("{} (pid {})", p.comm, p.pid),
        None => unknown.to_string(),
    }
}

/// The owner of a listener, for explanations.
fn process_name(l: &Listener) -> String {
    process_label(l.process.as_ref(), "unknown process")
}

/// The application setting that sets a listener's backlog, by process name.
pub fn backlog_setting(comm: &str) -> (&'static str, &'static str) {
    match comm {
        "mysqld" | "mariadbd" | "mysqld_safe" => ("back_log", "my.cnf [mysqld] back_log = N (restart)"),
        "apache2" | "httpd" => ("ListenBacklog", "ListenBacklog N in the Apache config (restart)"),
        "nginx" => ("listen ... backlog=N", "nginx: listen 443 backlog=N; (reload)"),
        "postgres" | "postmaster" => ("listen backlog", "PostgreSQL uses min(somaxconn, 64 * max_connections)"),
        "haproxy" => ("backlog", "haproxy: backlog N in the frontend or defaults"),
        "master" | "smtpd" => (
            "smtpd listen backlog",
            "Postfix: raise default_process_limit; backlog follows somaxconn",
        ),
        "sshd" => (
            "sshd backlog",
            "sshd listens with backlog 128; raise MaxStartups instead",
        ),
        _ => (
            "listen() backlog",
            "the backlog argument of listen() in the server's code or config",
        ),
    }
}

/// Suggested accept-queue size for a listener that overflowed.
pub fn suggested_backlog(current: u32, lost: u64) -> u32 {
    let want = (current as u64 * 4).max(lost * 2).max(511);
    want.next_power_of_two().min(65_535) as u32
}

/// Why a client-only connection exists: written when it is confirmed.
pub fn client_only(ctx: &ListenerContext, server: &str, keepalive: bool) -> String {
    let mut s = format!(
        "The server host {} has no trace of this connection to {server}.",
        ctx.host
    );
    if let Some(l) = ctx.listener {
        s.push_str(&format!(
            " Its listener {} ({}) has an accept queue of {}/{} (backlog against net.core.somaxconn={}).",
            l.addr,
            process_name(l),
            l.queue,
            l.backlog,
            sysctl(ctx.sysctls, "net.core.somaxconn")
        ));
    } else {
        s.push_str(" No listener on that port now.");
    }
    if overflowed(ctx.deltas) {
        s.push_str(&format!(
            " In the {} s before it was seen: {} (tcp_syncookies={}): the accept queue overflowed, SYN cookies answered, and the final ACK was dropped while the queue was full.",
            ctx.window_s,
            counter_summary(ctx.deltas),
            sysctl(ctx.sysctls, "net.ipv4.tcp_syncookies")
        ));
    } else {
        s.push_str(&format!(
            " No overflow or SYN-cookie counter rose on {} in the {} s before it was seen.",
            ctx.host, ctx.window_s
        ));
    }
    if keepalive {
        s.push_str(" The client socket has keepalive: it will be reset after the keepalive probes fail.");
    } else {
        s.push_str(
            " The client socket has no keepalive: without an application read timeout it waits forever for the greeting.",
        );
    }
    s
}

pub fn server_only(client_host: &str, server_proc: &str) -> String {
    format!(
        "The client host {client_host} has no trace of this connection, but {server_proc} on the server still holds it \
         ESTABLISHED: the client's host crashed, or its reset never arrived. It occupies a connection slot until the \
         server's keepalive or idle timeout closes it (set tcp_keepalive_time / wait_timeout or the application's idle timeout)."
    )
}

pub fn stalled_greeting(silent_ms: u32, in_accept_queue: bool, server_proc: &str, libwrap: bool) -> String {
    let mut s = format!(
        "The client has received nothing for {:.0} s on a port where the server speaks first. ",
        silent_ms as f64 / 1000.0
    );
    if in_accept_queue {
        s.push_str(&format!(
            "The server end still sits in the accept queue: {server_proc} has not called accept() for it (overloaded, paused, or blocked)."
        ));
    } else {
        s.push_str(&format!("{server_proc} accepted it and has not sent its greeting."));
    }
    if libwrap {
        s.push_str(
            " The server process has TCP wrappers (libwrap) loaded: it does a reverse DNS lookup of every new client \
             before greeting, so a slow resolver stalls every new connection (fix DNS, or remove the hosts.allow/hosts.deny rules for it).",
        );
    }
    s
}

pub fn listener_at_risk(ctx: &ListenerContext, near_full: bool) -> String {
    let l = ctx.listener;
    let mut s = String::new();
    if let Some(l) = l {
        s.push_str(&format!(
            "Listener {} ({}) on {}: accept queue {}/{}.",
            l.addr,
            process_name(l),
            ctx.host,
            l.queue,
            l.backlog
        ));
    }
    if near_full {
        s.push_str(" The accept queue was near its limit.");
    }
    if overflowed(ctx.deltas) {
        s.push_str(&format!(
            " In the last {} s: {}.",
            ctx.window_s,
            counter_summary(ctx.deltas)
        ));
    }
    s.push_str(" Connections arriving in a burst are dropped or answered with SYN cookies and can be lost.");
    s
}

/// The full diagnosis of a listener: facts, causes and concrete changes.
pub fn listener_diagnosis(ctx: &ListenerContext, findings_by_kind: &BTreeMap<String, usize>) -> Diagnosis {
    let l = ctx.listener;
    let target = match l {
        Some(l) => format!("{}:{}", ctx.host, l.addr.port()),
        None => ctx.host.to_string(),
    };
    let mut facts = Vec::new();
    let mut causes = Vec::new();
    let mut changes = Vec::new();
    let somaxconn: Option<u32> = ctx.sysctls.get("net.core.somaxconn").and_then(|v| v.parse().ok());
    let syn_backlog: Option<u32> = ctx
        .sysctls
        .get("net.ipv4.tcp_max_syn_backlog")
        .and_then(|v| v.parse().ok());
    if let Some(l) = l {
        facts.push(format!(
            "listener {} owned by {}: accept queue {} of {} now",
            l.addr,
            process_name(l),
            l.queue,
            l.backlog
        ));
    }
    facts.push(format!(
        "sysctls on {}: net.core.somaxconn={}, net.ipv4.tcp_max_syn_backlog={}, net.ipv4.tcp_syncookies={}, net.ipv4.tcp_abort_on_overflow={}, net.ipv4.tcp_synack_retries={}",
        ctx.host,
        sysctl(ctx.sysctls, "net.core.somaxconn"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_max_syn_backlog"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_syncookies"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_abort_on_overflow"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_synack_retries"),
    ));
    facts.push(format!(
        "counters on {} in the last {} s: {}",
        ctx.host,
        ctx.window_s,
        counter_summary(ctx.deltas)
    ));
    for (k, n) in findings_by_kind {
        facts.push(format!("{n} current {k} finding{}", if *n == 1 { "" } else { "s" }));
    }
    let orphans = findings_by_kind.get("client_only").copied().unwrap_or(0) as u64;
    let lost = delta(ctx.deltas, "ListenOverflows")
        .max(delta(ctx.deltas, "SyncookiesSent"))
        .max(orphans);
    if overflowed(ctx.deltas) || orphans > 0 {
        causes.push(
            "A burst of connects overflowed the accept queue (the application accepted too slowly, or its backlog is too small). \
             With SYN cookies the kernel completed handshakes it then dropped: the clients think they are connected, the server never saw them. \
             With a server-speaks-first protocol those clients wait forever for the greeting."
                .to_string(),
        );
        if let Some(l) = l {
            let want = suggested_backlog(l.backlog, lost);
            let comm = l.process.as_ref().map(|p| p.comm.as_str()).unwrap_or("");
            let (setting, how) = backlog_setting(comm);
            changes.push(Change {
                setting: format!("{setting} ({})", if comm.is_empty() { "server" } else { comm }),
                current: l.backlog.to_string(),
                suggested: want.to_string(),
                how: how.to_string(),
            });
            if somaxconn.is_some_and(|s| s < want) {
                changes.push(Change {
                    setting: "net.core.somaxconn".into(),
                    current: somaxconn.map(|v| v.to_string()).unwrap_or_default(),
                    suggested: want.to_string(),
                    how: format!(
                        "sysctl -w net.core.somaxconn={want} on {} (and in /etc/sysctl.d/)",
                        ctx.host
                    ),
                });
            }
            if syn_backlog.is_some_and(|s| s < want) {
                changes.push(Change {
                    setting: "net.ipv4.tcp_max_syn_backlog".into(),
                    current: syn_backlog.map(|v| v.to_string()).unwrap_or_default(),
                    suggested: want.to_string(),
                    how: format!("sysctl -w net.ipv4.tcp_max_syn_backlog={want} on {}", ctx.host),
                });
            }
        }
        changes.push(Change {
            setting: "client connect/read timeout".into(),
            current: "unknown (the orphans wait without one)".into(),
            suggested:
                "a read timeout on the greeting, e.g. 10 s (JDBC connectTimeout/socketTimeout, mysql connect_timeout)"
                    .into(),
            how: "in the client's connection settings or pool".into(),
        });
        changes.push(Change {
            setting: "client keepalive / TCP_USER_TIMEOUT".into(),
            current: "off on the orphaned sockets".into(),
            suggested: "SO_KEEPALIVE with tcp_keepalive_time=60, or TCP_USER_TIMEOUT=30000".into(),
            how: "socket options in the client (JDBC tcpKeepAlive=true), or sysctl net.ipv4.tcp_keepalive_time".into(),
        });
    }
    if findings_by_kind.get("stalled_greeting").copied().unwrap_or(0) > 0 {
        causes.push(
            "Connections are accepted (or queued) but the server does not greet them: the server is overloaded or blocked \
             before the greeting (e.g. TCP wrappers doing reverse DNS)."
                .to_string(),
        );
        if l.is_some_and(|l| l.libwrap) {
            changes.push(Change {
                setting: "TCP wrappers (hosts.allow / hosts.deny)".into(),
                current: "libwrap loaded in the server process".into(),
                suggested: "no name-based rules, or a fast local resolver".into(),
                how: "remove hostname patterns from /etc/hosts.allow and /etc/hosts.deny, fix /etc/resolv.conf".into(),
            });
        }
    }
    if causes.is_empty() {
        causes.push("Nothing needs attention on this listener now.".into());
    }
    Diagnosis {
        target,
        title: match l {
            Some(l) => format!("listener {} on {}", l.addr, ctx.host),
            None => format!("host {}", ctx.host),
        },
        facts,
        causes,
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::Process;

    fn listener(backlog: u32, comm: &str) -> Listener {
        Listener {
            addr: "0.0.0.0:3306".parse().unwrap(),
            queue: backlog + 1,
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
        }
    }

    fn sysctls() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("net.core.somaxconn".to_string(), "128".to_string()),
            ("net.ipv4.tcp_max_syn_backlog".to_string(), "256".to_string()),
            ("net.ipv4.tcp_syncookies".to_string(), "1".to_string()),
        ])
    }

    #[test]
    fn client_only_names_the_listener_counters_and_keepalive() {
        let l = listener(4, "mariadbd");
        let s = sysctls();
        let d = BTreeMap::from([
            ("TcpExt.ListenOverflows".to_string(), 965),
            ("TcpExt.SyncookiesSent".to_string(), 185),
        ]);
        let ctx = ListenerContext {
            host: "db",
            listener: Some(&l),
            sysctls: &s,
            deltas: &d,
            window_s: 10,
        };
        let e = client_only(&ctx, "198.18.0.1:3306", false);
        assert!(e.contains("accept queue of 5/4"), "{e}");
        assert!(e.contains("mariadbd (pid 77)"), "{e}");
        assert!(e.contains("somaxconn=128"), "{e}");
        assert!(e.contains("ListenOverflows +965, SyncookiesSent +185"), "{e}");
        assert!(e.contains("no keepalive"), "{e}");
        let quiet = BTreeMap::new();
        let ctx2 = ListenerContext { deltas: &quiet, ..ctx };
        assert!(client_only(&ctx2, "x", true).contains("No overflow or SYN-cookie counter rose"));
    }

    #[test]
    fn advice_names_the_right_setting_and_raises_somaxconn_when_needed() {
        let l = listener(4, "mariadbd");
        let s = sysctls();
        let d = BTreeMap::from([("TcpExt.ListenOverflows".to_string(), 965)]);
        let ctx = ListenerContext {
            host: "db",
            listener: Some(&l),
            sysctls: &s,
            deltas: &d,
            window_s: 10,
        };
        let diag = listener_diagnosis(&ctx, &BTreeMap::from([("client_only".to_string(), 185)]));
        assert_eq!(diag.target, "db:3306");
        let back = &diag.changes[0];
        assert!(back.setting.starts_with("back_log (mariadbd)"), "{back:?}");
        assert_eq!(back.current, "4");
        assert_eq!(back.suggested, "2048", "max(4*4, 965*2, 511) rounded up");
        let som = diag.changes.iter().find(|c| c.setting == "net.core.somaxconn").unwrap();
        assert_eq!((som.current.as_str(), som.suggested.as_str()), ("128", "2048"));
        assert!(diag.changes.iter().any(|c| c.setting == "net.ipv4.tcp_max_syn_backlog"));
        assert!(diag.changes.iter().any(|c| c.setting.contains("timeout")));
        assert!(diag
            .facts
            .iter()
            .any(|f| f.contains("185 current client_only findings")));
        assert_eq!(backlog_setting("nginx").0, "listen ... backlog=N");
        assert_eq!(backlog_setting("httpd").0, "ListenBacklog");
    }

    #[test]
    fn healthy_listener_needs_nothing() {
        let mut l = listener(511, "nginx");
        l.queue = 0;
        let s = sysctls();
        let d = BTreeMap::new();
        let ctx = ListenerContext {
            host: "web",
            listener: Some(&l),
            sysctls: &s,
            deltas: &d,
            window_s: 10,
        };
        let diag = listener_diagnosis(&ctx, &BTreeMap::new());
        assert!(diag.changes.is_empty());
        assert_eq!(
            diag.causes,
            vec!["Nothing needs attention on this listener now.".to_string()]
        );
    }

    #[test]
    fn stalled_text_mentions_libwrap_and_queue() {
        let s = stalled_greeting(12_000, true, "mysqld (pid 4)", true);
        assert!(
            s.contains("12 s") && s.contains("accept queue") && s.contains("libwrap"),
            "{s}"
        );
        let s = stalled_greeting(12_000, false, "mysqld (pid 4)", false);
        assert!(s.contains("accepted it") && !s.contains("libwrap"), "{s}");
    }

    #[test]
    fn suggested_backlog_bounds() {
        assert_eq!(suggested_backlog(4, 0), 512);
        assert_eq!(suggested_backlog(4096, 0), 16384);
        assert_eq!(suggested_backlog(60_000, 0), 65_535);
    }
}
