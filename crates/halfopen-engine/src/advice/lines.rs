//! Plain facts for one situation on one server, each with its source: what
//! the diagnosis says about an overflowing accept queue, a connection left
//! on the server only, or a greeting that does not come. Only what the
//! table and the given evidence support; layout is the caller's.
use super::keepalive::{humanize, keepalive_reap_time, KeepaliveSysctls};
use super::servers::KERNEL_CAP;
use super::{Greeting, KeepaliveDefault, Knob, Server, ServerAdvice};

/// What the evidence shows, for [`ServerAdvice::lines_for`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation {
    /// The listener's accept queue overflowed (ListenOverflows, SYN cookies,
    /// client_only findings) or is near full. `backlog` is the listener's
    /// accept-queue limit as the kernel reports it (`ss -tln` Send-Q), i.e.
    /// min(requested backlog, somaxconn); `somaxconn` the host's
    /// net.core.somaxconn when collected.
    AcceptQueue { backlog: u32, somaxconn: Option<u32> },
    /// server_only: the server holds a connection its client no longer has.
    /// `keepalive_armed`: the server's socket has a keepalive timer (from
    /// sock_diag's timer field); `sysctls`: the server host's keepalive
    /// sysctls when collected.
    ServerOnly {
        keepalive_armed: bool,
        sysctls: Option<KeepaliveSysctls>,
    },
    /// stalled_greeting: both ends exist and the client received nothing.
    /// `in_accept_queue`: the server end still waits in the accept queue
    /// (None: not known); `libwrap`: the listener's owner maps TCP wrappers.
    StalledGreeting {
        in_accept_queue: Option<bool>,
        libwrap: bool,
    },
}

/// One plain fact with its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub source: &'static str,
}

fn line(text: String, source: &'static str) -> Line {
    Line { text, source }
}

/// "name (default D): how", or "name: how" without a default.
fn knob_text(k: &Knob) -> String {
    match k.default {
        Some(d) => format!("{} (default {d}): {}", k.name, k.how),
        None => format!("{}: {}", k.name, k.how),
    }
}

impl ServerAdvice {
    /// The facts this server's entry gives for `situation`, in the order an
    /// operator needs them. Never claims more than the evidence shows: a
    /// socket without a keepalive timer is never said to be closed by
    /// keepalive, and host sysctls that were not collected are named as
    /// the Linux defaults "if unchanged".
    pub fn lines_for(&self, situation: &Situation) -> Vec<Line> {
        match *situation {
            Situation::AcceptQueue { backlog, somaxconn } => self.accept_queue_lines(backlog, somaxconn),
            Situation::ServerOnly {
                keepalive_armed,
                sysctls,
            } => self.server_only_lines(keepalive_armed, sysctls),
            Situation::StalledGreeting {
                in_accept_queue,
                libwrap,
            } => self.stalled_lines(in_accept_queue, libwrap),
        }
    }

    fn accept_queue_lines(&self, backlog: u32, somaxconn: Option<u32>) -> Vec<Line> {
        let text = if self.server == Server::Unknown {
            format!("The accept-queue limit is the {}", knob_text(&self.backlog))
        } else {
            format!(
                "{}: the listen() backlog comes from {}",
                self.name,
                knob_text(&self.backlog)
            )
        };
        let mut v = vec![line(text, self.backlog.source)];
        if let Some(n) = self.backlog_note {
            v.push(line(n.text.to_string(), n.source));
        }
        if somaxconn == Some(backlog) {
            v.push(line(
                format!(
                    "The listener's accept-queue limit {backlog} equals net.core.somaxconn: the server may have \
                     asked for more, and raising its setting changes nothing until net.core.somaxconn is raised."
                ),
                KERNEL_CAP.source,
            ));
        }
        for k in self.worker_limits {
            v.push(line(format!("Worker limit {}", knob_text(k)), k.source));
        }
        if let Some(n) = self.accept_note {
            v.push(line(n.text.to_string(), n.source));
        }
        v
    }

    fn server_only_lines(&self, keepalive_armed: bool, sysctls: Option<KeepaliveSysctls>) -> Vec<Line> {
        let mut v = Vec::new();
        let ka = &self.keepalive;
        if keepalive_armed {
            match (ka.timers, ka.knob) {
                (Some(t), Some(k)) => {
                    // The server sets per-socket timers: the host's sysctls do not apply.
                    v.push(line(
                        format!(
                            "The server's socket has a keepalive timer armed. {} sets its own per-socket timers: \
                             with {} at its default, idle {} s, interval {} s, {} probes, so a client host that \
                             answers no probe is given up after at most {} (one that answers with a reset, after \
                             {}).",
                            self.name,
                            k.name,
                            t.idle_s,
                            t.intvl_s,
                            t.probes,
                            humanize(keepalive_reap_time(t.idle_s, t.intvl_s, t.probes)),
                            humanize(t.idle_s),
                        ),
                        ka.fact.source,
                    ));
                    v.push(line(
                        format!("How its timers are set: {}", ka.fact.text),
                        ka.fact.source,
                    ));
                    v.push(line(format!("Setting: {}", knob_text(&k)), k.source));
                }
                _ => {
                    let (s, whose) = match sysctls {
                        Some(s) => (s, "the host's"),
                        None => (
                            KeepaliveSysctls::default(),
                            "the Linux default (if unchanged on this host)",
                        ),
                    };
                    v.push(line(
                        format!(
                            "The server's socket has a keepalive timer armed. With {whose} \
                             net.ipv4.tcp_keepalive_time={}, tcp_keepalive_intvl={}, tcp_keepalive_probes={}: if \
                             the client host is up, its answer to the first probe (after {} idle) resets the \
                             socket; if it is unreachable, the kernel gives up after at most {}.",
                            s.time_s,
                            s.intvl_s,
                            s.probes,
                            humanize(s.time_s),
                            humanize(s.reap_time_s()),
                        ),
                        "kernel Documentation/networking/ip-sysctl.rst tcp_keepalive_time/intvl/probes",
                    ));
                    if let Some(k) = ka.knob {
                        v.push(line(
                            format!(
                                "{}'s own setting replaces those timers when set: {}",
                                self.name,
                                knob_text(&k)
                            ),
                            k.source,
                        ));
                    }
                }
            }
        } else {
            v.push(line(
                "The server's socket has no keepalive timer armed: the kernel will not close it. It stays until \
                 the server closes it (an idle timeout) or the server process exits."
                    .to_string(),
                "socket(7) SO_KEEPALIVE; sock_diag reports the socket's timer",
            ));
            if ka.default == KeepaliveDefault::On {
                v.push(line(
                    format!(
                        "{} normally turns keepalive on for its client sockets, yet this socket has none.",
                        self.name
                    ),
                    ka.fact.source,
                ));
            }
            if let Some(k) = ka.knob {
                v.push(line(
                    format!("To have keepalive close such sockets: {}", knob_text(&k)),
                    k.source,
                ));
            }
        }
        if self.idle_timeouts.is_empty() {
            v.push(line(
                format!(
                    "No idle timeout of {} is known here: check the application's own.",
                    self.name
                ),
                "halfopen advice table: no idle timeout recorded for this server",
            ));
        }
        for k in self.idle_timeouts {
            v.push(line(format!("Server-side idle timeout: {}", knob_text(k)), k.source));
        }
        v
    }

    fn stalled_lines(&self, in_accept_queue: Option<bool>, libwrap: bool) -> Vec<Line> {
        let mut v = Vec::new();
        if self.greeting == Greeting::ClientFirst {
            v.push(line(
                format!(
                    "{}: the client speaks first on this protocol, so a client that received nothing may not have \
                     sent its request yet.",
                    self.name
                ),
                self.greeting_source,
            ));
        }
        match in_accept_queue {
            Some(true) => {
                v.push(line(
                    format!(
                        "The connection still waits in the accept queue: {} has not accepted it.",
                        self.name
                    ),
                    "sock_diag: a queued connection is ESTABLISHED with inode 0",
                ));
                if let Some(n) = self.accept_note {
                    v.push(line(n.text.to_string(), n.source));
                }
                for k in self.worker_limits {
                    v.push(line(format!("Worker limit {}", knob_text(k)), k.source));
                }
            }
            Some(false) | None => {
                if in_accept_queue == Some(false) {
                    let text = if self.greeting == Greeting::ClientFirst {
                        format!(
                            "{} accepted the connection; it sends nothing until the client's request arrives.",
                            self.name
                        )
                    } else {
                        format!("{} accepted the connection but has not greeted.", self.name)
                    };
                    v.push(line(text, "sock_diag: the server's socket has an inode (accepted)"));
                }
                for k in self.name_lookups {
                    v.push(line(
                        format!("Name lookup before the greeting {}", knob_text(k)),
                        k.source,
                    ));
                }
                if in_accept_queue.is_none() {
                    if let Some(n) = self.accept_note {
                        v.push(line(n.text.to_string(), n.source));
                    }
                }
            }
        }
        if libwrap {
            v.push(line(
                "The server process has TCP wrappers (libwrap) loaded: host names in /etc/hosts.allow or \
                 /etc/hosts.deny make it resolve each client's address before serving it."
                    .to_string(),
                "hosts_access(5); the collector saw libwrap mapped in the listener's owner",
            ));
        }
        v
    }
}
