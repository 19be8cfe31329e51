//! `halfopen explain`: the diagnosis of a listener or host, a differential
//! one. Each cause is stated only when its evidence is there (counters that
//! rose, SYN cookies sent, clients stuck in SYN-SENT, a restart, a stuck
//! accept loop, silent greetings, connections a gone host left behind), and
//! what the evidence rules out is said too. The changes come from the
//! listener's server software (`advice`), each with its source. Pure: it
//! takes what the engine sees ([`ListenerContext`]) and returns words.
use crate::advice::{self, Situation};
use crate::explain::{counter_summary, humanize, process_label};
use halfopen_core::counters::overflowed;
use halfopen_core::{Change, Diagnosis, KeepaliveSysctls, Listener, Restart};
use std::collections::{BTreeMap, BTreeSet};

/// What the current findings on one listener (or host) show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Current findings by kind name ("client_only" -> 185).
    pub by_kind: BTreeMap<&'static str, usize>,
    /// client_only findings whose server side restarted after they were made,
    /// and the latest such restart.
    pub orphans_of_restart: usize,
    pub restart: Option<Restart>,
    /// client_only findings whose client socket has keepalive.
    pub orphans_with_keepalive: usize,
    /// The client hosts' keepalive sysctls, when one was reported.
    pub client_keepalive: Option<KeepaliveSysctls>,
    /// server_only findings that only the server confirmed (client host
    /// gone), and those hosts.
    pub leftovers: usize,
    pub gone_hosts: BTreeSet<String>,
    /// server_only findings whose server socket has a keepalive timer.
    pub server_only_with_keepalive: usize,
    /// stalled_greeting findings still in the accept queue / accepted.
    pub stalled_queued: usize,
    pub stalled_accepted: usize,
    /// accept_stalled: the oldest wait, ms, and how many wait.
    pub accept_stall: Option<(u64, u32)>,
    /// client_only findings whose drop the server's kernel witnessed.
    pub orphans_witnessed: usize,
    /// dropped_handshake findings (witnessed drops of unmonitored clients),
    /// and how many per path ("cookie" -> n).
    pub dropped_handshakes: usize,
    pub dropped_paths: BTreeMap<&'static str, usize>,
}

impl Seen {
    fn count(&self, kind: &str) -> usize {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }
}

/// What is known about a server listener and its host.
pub struct ListenerContext<'a> {
    pub host: &'a str,
    pub listener: Option<&'a Listener>,
    pub sysctls: &'a BTreeMap<String, String>,
    /// Counter increases on the host over `window_s` seconds.
    pub deltas: &'a BTreeMap<String, u64>,
    pub window_s: u64,
    /// Client sockets on monitored hosts in SYN-SENT towards the listener.
    pub syn_sent: u32,
    pub seen: &'a Seen,
}

fn sysctl<'a>(s: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    s.get(k).map(String::as_str).unwrap_or("unknown")
}

fn delta(d: &BTreeMap<String, u64>, k: &str) -> u64 {
    d.get(&format!("TcpExt.{k}")).copied().unwrap_or(0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub use advice::suggested_backlog;

/// The full diagnosis of a listener: facts, causes and concrete changes.
pub fn listener_diagnosis(ctx: &ListenerContext) -> Diagnosis {
    let l = ctx.listener;
    let seen = ctx.seen;
    let comm = l
        .and_then(|l| l.process.as_ref())
        .map(|p| p.comm.as_str())
        .unwrap_or("");
    let cmdline = l
        .and_then(|l| l.process.as_ref())
        .map(|p| p.cmdline.as_str())
        .unwrap_or("");
    let server = advice::advice_for_listener(comm, cmdline, l.map(|l| l.addr.port()));
    let mut d = Diagnosis {
        target: match l {
            Some(l) => format!("{}:{}", ctx.host, l.addr.port()),
            None => ctx.host.to_string(),
        },
        title: match l {
            Some(l) => format!("listener {} on {}", l.addr, ctx.host),
            None => format!("host {}", ctx.host),
        },
        facts: Vec::new(),
        causes: Vec::new(),
        changes: Vec::new(),
    };
    facts(ctx, server, &mut d);
    let cookies = delta(ctx.deltas, "SyncookiesSent").max(delta(ctx.deltas, "SyncookiesRecv"));
    let overflow = overflowed(ctx.deltas);
    let orphans = seen.count("client_only");
    // Handshakes the kernel witnessed dropping count as orphans of the overflow.
    let orphans_overflow = orphans.saturating_sub(seen.orphans_of_restart) + seen.dropped_handshakes;

    // 1. The accept queue overflowed (with or without SYN cookies).
    if overflow {
        if cookies > 0 {
            d.causes.push(format!(
                "The accept queue overflowed and SYN cookies answered ({}): the kernel completed handshakes it \
                 then dropped while the queue was full, so those clients believe they are connected and the server \
                 never saw them. With a server-speaks-first protocol they wait forever for the greeting.",
                counter_summary(ctx.deltas)
            ));
        } else {
            d.causes.push(format!(
                "The accept queue overflowed ({}) and no SYN cookie was sent: the kernel dropped connection \
                 attempts, so no client believes it is connected; clients retry their SYN and wait (SYN-SENT).",
                counter_summary(ctx.deltas)
            ));
        }
    }
    if ctx.syn_sent > 0 {
        d.causes.push(format!(
            "{} client socket{} on monitored hosts {} stuck in SYN-SENT towards this listener: their SYNs are \
             being dropped or not answered.",
            ctx.syn_sent,
            plural(ctx.syn_sent as usize),
            if ctx.syn_sent == 1 { "is" } else { "are" }
        ));
    }
    // 1b. What the server's kernel witnessed, connection by connection.
    if seen.dropped_handshakes > 0 {
        let paths: Vec<String> = seen
            .dropped_paths
            .iter()
            .map(|(p, n)| format!("{n} on the {p} path"))
            .collect();
        d.causes.push(format!(
            "The server's kernel witnessed {} completed handshake{} from unmonitored clients being dropped on this \
             full accept queue ({}): those clients believe they are connected and, on a server-speaks-first port, \
             wait for a greeting until their own timeout.",
            seen.dropped_handshakes,
            plural(seen.dropped_handshakes),
            if paths.is_empty() {
                "path unknown".to_string()
            } else {
                paths.join(", ")
            }
        ));
    }
    if orphans_overflow > 0 && !overflow && seen.orphans_witnessed == 0 && seen.dropped_handshakes == 0 {
        d.causes.push(format!(
            "{orphans_overflow} client-only connection{} here, but no overflow or SYN-cookie counter rose and no \
             restart was seen: this is not an accept-queue overflow. Their server ends went away without a reset \
             reaching the clients (the server closed them while a firewall or NAT dropped the reset, or its host \
             lost them).",
            plural(orphans_overflow)
        ));
    }
    // 2. A restart of the server side.
    if let Some(r) = seen.restart.as_ref().filter(|_| seen.orphans_of_restart > 0) {
        d.causes.push(format!(
            "The server side restarted ({}) after {} of these connection{} were made: their server ends were lost \
             with it and no reset reached the clients. This is not an overflow: a bigger backlog would not have \
             helped.",
            r.what,
            seen.orphans_of_restart,
            plural(seen.orphans_of_restart)
        ));
    }
    // 3. A stuck accept loop.
    if let Some((wait_ms, queued)) = seen.accept_stall {
        d.causes.push(format!(
            "The server is not accepting: {queued} connection{} wait{} in its accept queue, the oldest for {}. \
             Nothing overflows (yet), so no counter shows it: the process is frozen, blocked or out of workers.",
            plural(queued as usize),
            if queued == 1 { "s" } else { "" },
            humanize(wait_ms / 1000)
        ));
    }
    // 4. Greetings that do not come.
    let stalled = seen.stalled_queued + seen.stalled_accepted;
    if stalled > 0 {
        let mut c = format!(
            "{stalled} connection{} on a server-speaks-first port received nothing: ",
            plural(stalled)
        );
        c.push_str(&match (seen.stalled_queued, seen.stalled_accepted) {
            (q, 0) => format!("{q} still wait in the accept queue (the server does not accept them)."),
            (0, a) => format!("{a} were accepted and not greeted (the server is blocked before its greeting)."),
            (q, a) => format!("{q} still wait in the accept queue and {a} were accepted and not greeted."),
        });
        if l.is_some_and(|l| l.libwrap) {
            c.push_str(" The server has TCP wrappers loaded: it resolves each client's address before greeting.");
        }
        d.causes.push(c);
    }
    // 5. Connections the server holds alone.
    if seen.leftovers > 0 {
        d.causes.push(format!(
            "{} connection{} from host{} that {} gone ({}) {} still held here, confirmed by the server alone: \
             leftovers that occupy connection slots until the server closes them.",
            seen.leftovers,
            plural(seen.leftovers),
            plural(seen.gone_hosts.len()),
            if seen.gone_hosts.len() == 1 { "is" } else { "are" },
            seen.gone_hosts.iter().cloned().collect::<Vec<_>>().join(", "),
            if seen.leftovers == 1 { "is" } else { "are" }
        ));
    }
    let server_only = seen.count("server_only").saturating_sub(seen.leftovers);
    if server_only > 0 {
        d.causes.push(format!(
            "{server_only} connection{} the client host{} no longer {}: their clients crashed or their resets never \
             arrived.",
            plural(server_only),
            plural(server_only),
            if server_only == 1 { "has" } else { "have" }
        ));
    }
    changes(ctx, server, orphans_overflow, &mut d);
    if d.causes.is_empty() {
        d.causes.push("Nothing needs attention on this listener now.".into());
    }
    d
}

fn facts(ctx: &ListenerContext, server: &advice::ServerAdvice, d: &mut Diagnosis) {
    if let Some(l) = ctx.listener {
        d.facts.push(format!(
            "listener {} owned by {}: accept queue {} of {} now",
            l.addr,
            process_label(l.process.as_ref(), "unknown process"),
            l.queue,
            l.backlog
        ));
        if l.process.is_some() {
            d.facts.push(if server.server == advice::Server::Unknown {
                "server software: not one halfopen knows the settings of (its accept-queue limit is the \
                 backlog it passes to listen())"
                    .to_string()
            } else {
                format!(
                    "server software: {} (the listen() backlog comes from {})",
                    server.name, server.backlog.name
                )
            });
        }
    }
    d.facts.push(format!(
        "sysctls on {}: net.core.somaxconn={}, net.ipv4.tcp_max_syn_backlog={}, net.ipv4.tcp_syncookies={}, net.ipv4.tcp_abort_on_overflow={}, net.ipv4.tcp_synack_retries={}",
        ctx.host,
        sysctl(ctx.sysctls, "net.core.somaxconn"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_max_syn_backlog"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_syncookies"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_abort_on_overflow"),
        sysctl(ctx.sysctls, "net.ipv4.tcp_synack_retries"),
    ));
    d.facts.push(format!(
        "counters on {} in the last {} s: {}",
        ctx.host,
        ctx.window_s,
        counter_summary(ctx.deltas)
    ));
    for (k, n) in &ctx.seen.by_kind {
        d.facts.push(format!("{n} current {k} finding{}", plural(*n)));
    }
    if ctx.seen.orphans_witnessed > 0 {
        d.facts.push(format!(
            "the server's kernel witnessed the drop of {} of the {} client-only connections (eBPF: its accept queue was \
             full when their final ACK arrived)",
            ctx.seen.orphans_witnessed,
            ctx.seen.count("client_only")
        ));
    }
    if ctx.seen.count("client_only") > 0 {
        let n = ctx.seen.count("client_only");
        let ka = ctx.seen.orphans_with_keepalive;
        d.facts.push(match (ka, ctx.seen.client_keepalive) {
            (0, _) => format!("keepalive is off on all {n} client-only sockets: nothing closes them but the client"),
            (k, Some(s)) => format!(
                "keepalive is on for {k} of {n} client-only sockets: the kernel resets those after about {} without \
                 a reply (tcp_keepalive_time={} s, intvl={} s, probes={} on the client host)",
                humanize(s.reap_time_s()),
                s.time_s,
                s.intvl_s,
                s.probes
            ),
            (k, None) => format!("keepalive is on for {k} of {n} client-only sockets"),
        });
    }
}

fn changes(ctx: &ListenerContext, server: &advice::ServerAdvice, orphans_overflow: usize, d: &mut Diagnosis) {
    let seen = ctx.seen;
    let l = ctx.listener;
    let comm = l
        .and_then(|l| l.process.as_ref())
        .map(|p| p.comm.as_str())
        .unwrap_or("");
    let somaxconn: Option<u32> = ctx.sysctls.get("net.core.somaxconn").and_then(|v| v.parse().ok());
    let syn_backlog: Option<u32> = ctx
        .sysctls
        .get("net.ipv4.tcp_max_syn_backlog")
        .and_then(|v| v.parse().ok());
    let overflow = overflowed(ctx.deltas) || ctx.syn_sent > 0 || orphans_overflow > 0;
    if overflow {
        if let Some(l) = l {
            let lost = delta(ctx.deltas, "ListenOverflows")
                .max(delta(ctx.deltas, "SyncookiesSent"))
                .max(orphans_overflow as u64)
                .max(ctx.syn_sent as u64);
            let want = suggested_backlog(l.backlog, lost);
            d.changes.push(Change {
                setting: format!(
                    "{} ({})",
                    server.backlog.name,
                    if comm.is_empty() { "server" } else { comm }
                ),
                current: l.backlog.to_string(),
                suggested: want.to_string(),
                how: server.backlog.how.to_string(),
            });
            if somaxconn.is_some_and(|s| s < want) {
                d.changes.push(Change {
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
                d.changes.push(Change {
                    setting: "net.ipv4.tcp_max_syn_backlog".into(),
                    current: syn_backlog.map(|v| v.to_string()).unwrap_or_default(),
                    suggested: want.to_string(),
                    how: format!("sysctl -w net.ipv4.tcp_max_syn_backlog={want} on {}", ctx.host),
                });
            }
            for line in server.lines_for(&Situation::AcceptQueue {
                backlog: l.backlog,
                somaxconn,
            }) {
                d.facts.push(format!("{} [{}]", line.text, line.source));
            }
        }
    }
    let orphans = seen.count("client_only");
    if orphans > 0 {
        // Orphans of an overflow were never greeted: a greeting timeout ends
        // them. Orphans of a restart were greeted long ago and sit idle in a
        // pool: only validating idle connections (or keepalive) finds them.
        if orphans > seen.orphans_of_restart {
            d.changes.push(Change {
                setting: "client connect/read timeout".into(),
                current: "unknown (the orphans wait without one)".into(),
                suggested:
                    "a read timeout on the greeting, e.g. 10 s (JDBC connectTimeout/socketTimeout, mysql connect_timeout)"
                        .into(),
                how: "in the client's connection settings or pool".into(),
            });
        }
        if seen.orphans_of_restart > 0 {
            d.changes.push(Change {
                setting: "client pool: idle connection validation".into(),
                current: format!(
                    "{} idle connection{} kept after the server side restarted",
                    seen.orphans_of_restart,
                    plural(seen.orphans_of_restart)
                ),
                suggested: "validate idle connections before use and retire them after a maximum lifetime \
                            (HikariCP keepaliveTime/maxLifetime, JDBC testOnBorrow, a read timeout on queries)"
                    .into(),
                how: "in the client's pool settings".into(),
            });
        }
        let off = orphans - seen.orphans_with_keepalive.min(orphans);
        if off > 0 {
            d.changes.push(Change {
                setting: "client keepalive / TCP_USER_TIMEOUT".into(),
                current: format!("off on {off} of the {orphans} orphaned sockets"),
                suggested: "SO_KEEPALIVE with tcp_keepalive_time=60, or TCP_USER_TIMEOUT=30000".into(),
                how: "socket options in the client (JDBC tcpKeepAlive=true), or sysctl net.ipv4.tcp_keepalive_time"
                    .into(),
            });
        }
    }
    if seen.accept_stall.is_some() {
        for k in server.worker_limits {
            d.changes.push(Change {
                setting: format!("{} ({})", k.name, server.name),
                current: "the accept loop is stuck".into(),
                suggested: k
                    .default
                    .map_or("check it".to_string(), |v| format!("check it (default {v})")),
                how: k.how.to_string(),
            });
        }
        if let Some(n) = server.accept_note {
            d.facts.push(format!("{} [{}]", n.text, n.source));
        }
    }
    let stalled = seen.stalled_queued + seen.stalled_accepted;
    if stalled > 0 {
        for line in server.lines_for(&Situation::StalledGreeting {
            in_accept_queue: if seen.stalled_accepted == 0 {
                Some(true)
            } else if seen.stalled_queued == 0 {
                Some(false)
            } else {
                None
            },
            libwrap: l.is_some_and(|l| l.libwrap),
        }) {
            d.facts.push(format!("{} [{}]", line.text, line.source));
        }
        for k in server.name_lookups {
            d.changes.push(Change {
                setting: format!("{} ({})", k.name, server.name),
                current: k.default.map_or("unknown".to_string(), |v| format!("default {v}")),
                suggested: "no name lookup before the greeting (or a fast local resolver)".into(),
                how: k.how.to_string(),
            });
        }
        if l.is_some_and(|l| l.libwrap) {
            d.changes.push(Change {
                setting: "TCP wrappers (hosts.allow / hosts.deny)".into(),
                current: "libwrap loaded in the server process".into(),
                suggested: "no name-based rules, or a fast local resolver".into(),
                how: "remove hostname patterns from /etc/hosts.allow and /etc/hosts.deny, fix /etc/resolv.conf".into(),
            });
        }
    }
    if seen.count("server_only") > 0 {
        let all = seen.count("server_only");
        let armed = seen.server_only_with_keepalive.min(all);
        for line in server.lines_for(&Situation::ServerOnly {
            keepalive_armed: armed == all,
            sysctls: KeepaliveSysctls::from_sysctls(ctx.sysctls).ok().flatten(),
        }) {
            d.facts.push(format!("{} [{}]", line.text, line.source));
        }
        for k in server.idle_timeouts {
            d.changes.push(Change {
                setting: format!("{} ({})", k.name, server.name),
                current: k.default.map_or("unknown".to_string(), |v| format!("default {v}")),
                suggested: "an idle timeout shorter than the time a dead client may hold a slot".into(),
                how: k.how.to_string(),
            });
        }
        if armed < all {
            if let Some(k) = server.keepalive.knob {
                d.changes.push(Change {
                    setting: format!("{} ({})", k.name, server.name),
                    current: format!("no keepalive timer on {} of {all} server-only sockets", all - armed),
                    suggested: "keepalive on, so the kernel closes connections whose client is gone".into(),
                    how: k.how.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
