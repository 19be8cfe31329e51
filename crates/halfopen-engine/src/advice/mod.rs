//! Server-specific advice for `halfopen explain`: which setting of the
//! listener's server software sets its listen() backlog, closes its idle
//! connections, arms TCP keepalive, looks up client names before the
//! greeting, or limits its workers, each fact with its source.
//!
//! Pure data and pure functions: [`recognize`] names the server from a
//! process's `comm` (as in /proc/PID/comm, at most 15 bytes) and `cmdline`
//! (argv joined by spaces), [`advice_for`] returns that server's
//! [`ServerAdvice`] (a `'static` table entry), and [`ServerAdvice::lines_for`]
//! turns it, with what a finding's evidence shows, into plain facts. Text
//! layout is the caller's (diagnose.rs).
//!
//! Every [`Knob`] and [`Fact`] carries a `source`: the server's source file
//! and function or its documentation, as read for this module (see the
//! report of the change that added it). A fact that could not be verified
//! says so in its source, starting with "NOT VERIFIED".
//!
//! # Kernel facts used throughout
//! - listen(fd, n) queues at most min(n, net.core.somaxconn) connections
//!   (Linux net/socket.c `__sys_listen`: `if ((unsigned int)backlog >
//!   somaxconn) backlog = somaxconn;`); a negative backlog therefore means
//!   somaxconn.
//! - An accepted socket inherits SO_KEEPALIVE from its listener (Linux
//!   net/ipv4/tcp_minisocks.c `tcp_create_openreq_child` arms the keepalive
//!   timer when SOCK_KEEPOPEN is set on the clone).
//! - Keepalive defaults: net.ipv4.tcp_keepalive_time 7200 s,
//!   tcp_keepalive_intvl 75 s, tcp_keepalive_probes 9 (kernel
//!   Documentation/networking/ip-sysctl.rst).
mod keepalive;
mod lines;
mod recognize;
mod servers;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use keepalive::{
    humanize, keepalive_reap_time, KeepaliveSysctls, SysctlError, LINUX_KEEPALIVE_INTVL_S, LINUX_KEEPALIVE_PROBES,
    LINUX_KEEPALIVE_TIME_S,
};
pub use lines::{Line, Situation};
pub use recognize::{docker_proxy_backend, recognize};

/// A setting of the server software (or of the kernel, for the fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Knob {
    /// The setting's name as the server spells it ("back_log", "tcp-backlog").
    pub name: &'static str,
    /// Where and how to change it (`my.cnf [mysqld] back_log = N`, restart).
    pub how: &'static str,
    /// Its default, with the version it applies to where that differs.
    pub default: Option<&'static str>,
    /// Where the facts above come from: source file and function, or the
    /// documentation page; "NOT VERIFIED ..." when they could not be checked.
    pub source: &'static str,
}

/// A fact about the server's behaviour, with its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub text: &'static str,
    pub source: &'static str,
}

/// Who sends the first bytes on a new connection: what a client waiting for
/// nothing looks like depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Greeting {
    /// The server greets first (SMTP, FTP, IMAP, POP3, SSH, MySQL): a client
    /// that received nothing is waiting for the server.
    ServerFirst,
    /// The client speaks first (HTTP, PostgreSQL, Redis).
    ClientFirst,
    /// Depends on what is behind the server (a relay or a generic runtime).
    Depends,
}

/// Whether the server's own client sockets have TCP keepalive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum KeepaliveDefault {
    /// The server sets SO_KEEPALIVE on its client sockets by default.
    On,
    /// Off unless configured (see [`ServerKeepalive::knob`]).
    Off,
    /// Not known (not verified, or depends on the application).
    Unknown,
}

/// Per-socket keepalive timers a server sets itself, overriding the host's
/// net.ipv4.tcp_keepalive_* sysctls, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KeepaliveTimers {
    pub idle_s: u64,
    pub intvl_s: u64,
    pub probes: u64,
}

/// A server's TCP keepalive behaviour on its accepted sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServerKeepalive {
    pub default: KeepaliveDefault,
    /// What the server does, with its source.
    pub fact: Fact,
    /// The server's own keepalive setting, if it has one.
    pub knob: Option<Knob>,
    /// Timers the server sets by default instead of the host's sysctls
    /// (None: the host's sysctls apply).
    pub timers: Option<KeepaliveTimers>,
}

/// The server software behind a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Server {
    /// MariaDB or MySQL (`mysqld`, `mariadbd`).
    MySql,
    /// PostgreSQL (`postgres`, `postmaster`).
    Postgres,
    /// Redis (`redis-server`).
    Redis,
    Nginx,
    /// Apache httpd (`apache2`, `httpd`).
    Apache,
    Haproxy,
    /// Postfix (`master`, `smtpd`, `postscreen`).
    Postfix,
    Proftpd,
    Vsftpd,
    /// Dovecot (`dovecot`, `imap-login`, `pop3-login`, ...).
    Dovecot,
    /// Node.js (`node`).
    Node,
    /// Apache Tomcat in a `java` process.
    Tomcat,
    /// Eclipse Jetty in a `java` process.
    Jetty,
    /// Another Java server (plain ServerSocket, Netty, ...).
    Java,
    /// OpenSSH `sshd`.
    Sshd,
    /// Docker's userland proxy for a published port.
    DockerProxy,
    Unknown,
}

impl Server {
    /// Every server this module knows, `Unknown` last.
    pub const ALL: [Server; 17] = [
        Server::MySql,
        Server::Postgres,
        Server::Redis,
        Server::Nginx,
        Server::Apache,
        Server::Haproxy,
        Server::Postfix,
        Server::Proftpd,
        Server::Vsftpd,
        Server::Dovecot,
        Server::Node,
        Server::Tomcat,
        Server::Jetty,
        Server::Java,
        Server::Sshd,
        Server::DockerProxy,
        Server::Unknown,
    ];

    /// This server's advice table entry.
    pub fn advice(self) -> &'static ServerAdvice {
        servers::table(self)
    }
}

/// What to change on a listener of this server software, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServerAdvice {
    pub server: Server,
    /// Human name: "MariaDB/MySQL", "PostgreSQL", ..., "unknown server".
    pub name: &'static str,
    /// The setting that sets the listen() backlog, its default (in
    /// `backlog.default`) and source.
    pub backlog: Knob,
    /// How the effective backlog follows from it (the kernel cap, logs).
    pub backlog_note: Option<Fact>,
    /// What closes an idle server-side connection (server_only leftovers).
    pub idle_timeouts: &'static [Knob],
    /// The server's own TCP keepalive behaviour.
    pub keepalive: ServerKeepalive,
    /// Name lookups (reverse DNS, ident) the server may do before greeting.
    pub name_lookups: &'static [Knob],
    /// Process or connection limits that make the accept loop stall or
    /// leave connections queued.
    pub worker_limits: &'static [Knob],
    /// How the server accepts, and what stops it accepting.
    pub accept_note: Option<Fact>,
    /// Who speaks first on a new connection.
    pub greeting: Greeting,
    /// Why the greeting value holds.
    pub greeting_source: &'static str,
}

impl ServerAdvice {
    /// Every knob of this entry (backlog, idle timeouts, keepalive, name
    /// lookups, worker limits), for checks over the whole table.
    pub fn knobs(&self) -> Vec<&Knob> {
        let mut v = vec![&self.backlog];
        v.extend(self.idle_timeouts.iter());
        v.extend(self.keepalive.knob.iter());
        v.extend(self.name_lookups.iter());
        v.extend(self.worker_limits.iter());
        v
    }

    /// Every fact of this entry.
    pub fn facts(&self) -> Vec<&Fact> {
        let mut v = vec![&self.keepalive.fact];
        v.extend(self.backlog_note.iter());
        v.extend(self.accept_note.iter());
        v
    }
}

/// The advice for the owner of a listener, recognised from its `comm` and,
/// failing that, its `cmdline` (see [`recognize`]); the generic advice when
/// neither names a known server.
pub fn advice_for(comm: &str, cmdline: &str) -> &'static ServerAdvice {
    advice_for_listener(comm, cmdline, None)
}

/// As [`advice_for`], with the listener's port when known: it decides the
/// ambiguous names (`master` and `smtpd` are Postfix on an SMTP port).
pub fn advice_for_listener(comm: &str, cmdline: &str, port: Option<u16>) -> &'static ServerAdvice {
    recognize(comm, cmdline, port).advice()
}

/// Suggested accept-queue size for a listener that overflowed: at least four
/// times the current backlog, twice the connections lost, and 511, rounded
/// up to a power of two and capped at 65535. Same semantics as
/// `diagnose::suggested_backlog` (a test keeps them equal), except that
/// absurd `lost` values saturate instead of overflowing.
pub fn suggested_backlog(current: u32, lost: u64) -> u32 {
    let want = (current as u64 * 4).max(lost.saturating_mul(2)).max(511);
    want.checked_next_power_of_two().unwrap_or(u64::MAX).min(65_535) as u32
}
