//! `halfopen explain`: the diagnosis of a listener or host from what the
//! engine sees now (its listener, sysctls, counter increases and current
//! findings): facts, causes and the concrete changes, with current and
//! suggested values; and the resolution of what a TARGET names.
use crate::explain::{counter_summary, process_label};
use crate::hosts::HostIdx;
use crate::{Clock, Engine};
use halfopen_core::counters::overflowed;
use halfopen_core::{Change, Diagnosis, ExplainTarget, Listener};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// What is known about a server listener and its host.
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
    let want = (current as u64 * 4).max(lost.saturating_mul(2)).max(511);
    want.min(65_535).next_power_of_two().min(65_535) as u32
}

/// The full diagnosis of a listener: facts, causes and concrete changes.
pub fn listener_diagnosis(ctx: &ListenerContext, findings_by_kind: &BTreeMap<&'static str, usize>) -> Diagnosis {
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

/// A target that names nothing the engine knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown host {0:?}")]
    UnknownHost(String),
    #[error("no monitored host owns {0}")]
    Unowned(std::net::IpAddr),
    #[error("{0:?} is neither a host, a host:port listener, nor an ip:port of a finding")]
    Unknown(String),
}

impl Engine {
    /// Diagnoses for `target`: everything that needs attention (every
    /// listener with findings), a host, a host's listener, a listener's
    /// address, or the client endpoint of a finding.
    pub fn explain(&self, target: &ExplainTarget, now: Clock) -> Result<Vec<Diagnosis>, ExplainError> {
        let raw = target.to_string();
        let want: Vec<(HostIdx, Option<SocketAddr>)> = match target {
            ExplainTarget::Everything => self.attention(None),
            _ if self.hosts.find(&raw).is_some() => {
                let h = self.hosts.find(&raw).unwrap_or_default();
                let v = self.attention(Some(&raw));
                if v.is_empty() {
                    vec![(h, None)]
                } else {
                    v
                }
            }
            ExplainTarget::HostPort { host, port } => {
                let h = self
                    .hosts
                    .find(host)
                    .ok_or_else(|| ExplainError::UnknownHost(host.clone()))?;
                vec![(h, Some(self.listener_on_port(h, *port)))]
            }
            ExplainTarget::Endpoint(ep) => {
                if let Some(h) = self.hosts.find(&ep.ip().to_string()) {
                    vec![(h, Some(self.listener_on_port(h, ep.port())))]
                } else if let Some(f) = self.findings.iter().find(|f| f.subject.client_end() == Some(*ep)) {
                    let s = self
                        .hosts
                        .find(f.subject.server_host())
                        .ok_or_else(|| ExplainError::UnknownHost(f.subject.server_host().to_string()))?;
                    let mut d = self.listener_diag(s, Some(f.subject.server_end()), now);
                    d.facts
                        .insert(0, format!("{} {}: {}", f.kind, ep, crate::explain::finding_text(f)));
                    return Ok(vec![d]);
                } else {
                    let s = self.hosts.owner_of(ep.ip()).ok_or(ExplainError::Unowned(ep.ip()))?;
                    vec![(s, Some(*ep))]
                }
            }
            ExplainTarget::Host(s) => return Err(ExplainError::Unknown(s.clone())),
        };
        Ok(want.into_iter().map(|(h, a)| self.listener_diag(h, a, now)).collect())
    }

    /// The listener of host `h` on `port`, or the wildcard address of that port.
    fn listener_on_port(&self, h: HostIdx, port: u16) -> SocketAddr {
        self.hosts[h]
            .listeners
            .iter()
            .find(|l| l.addr.port() == port)
            .map(|l| l.addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)))
    }

    /// The server listeners of current findings (of those involving `host`
    /// when given), by host and listening address.
    fn attention(&self, host: Option<&str>) -> Vec<(HostIdx, Option<SocketAddr>)> {
        let mut set: BTreeSet<(HostIdx, Option<SocketAddr>)> = BTreeSet::new();
        for f in self.findings.iter() {
            let server_host = f.subject.server_host();
            if host.is_some_and(|n| server_host != n && f.subject.client_host() != Some(n)) {
                continue;
            }
            if let Some(s) = self.hosts.find(server_host) {
                let addr = f.listener_addr().or_else(|| f.tuple().map(|t| t.remote()));
                set.insert((
                    s,
                    addr.and_then(|a| self.hosts[s].listener_for(a).map(|l| l.addr))
                        .or(addr),
                ));
            }
        }
        set.into_iter().collect()
    }

    fn listener_diag(&self, h: HostIdx, addr: Option<SocketAddr>, now: Clock) -> Diagnosis {
        let host = &self.hosts[h];
        let window = self.risk_window_ms(h).max(60_000);
        let deltas = host.counters.deltas_since(now.mono_ms.saturating_sub(window));
        let listener = addr.and_then(|a| host.listener_for(a));
        let mut by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
        for f in self.findings.iter() {
            if f.subject.server_host() != host.name {
                continue;
            }
            let on_it = match (listener, f.tuple(), f.listener_addr()) {
                (Some(l), Some(t), _) => host.listener_for(t.remote()).map(|x| x.addr) == Some(l.addr),
                (Some(l), None, Some(fl)) => fl == l.addr,
                (None, _, _) => true,
                _ => false,
            };
            if on_it {
                *by_kind.entry(f.kind.as_str()).or_insert(0) += 1;
            }
        }
        let ctx = ListenerContext {
            host: &host.name,
            listener,
            sysctls: &host.sysctls,
            deltas: &deltas,
            window_s: window / 1000,
        };
        let mut d = listener_diagnosis(&ctx, &by_kind);
        if self.hosts.is_stale(h, now, &self.cfg) {
            d.facts.insert(
                0,
                format!("host {} is stale: its collector has not reported recently", host.name),
            );
        }
        d
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
        let diag = listener_diagnosis(&ctx, &BTreeMap::from([("client_only", 185)]));
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
    fn suggested_backlog_bounds() {
        assert_eq!(suggested_backlog(4, 0), 512);
        assert_eq!(suggested_backlog(4096, 0), 16384);
        assert_eq!(suggested_backlog(60_000, 0), 65_535);
    }
}
