//! The advice table: one `static` [`ServerAdvice`] per known server, every
//! setting and fact with the source it was verified against. Versions and
//! commits read: MariaDB 10.11.19 (Debian bookworm package, `mariadbd
//! --no-defaults --verbose --help`), MySQL sql/sys_vars.cc and WL#9704,
//! PostgreSQL pqcomm.c (master, and 15.20 headers and docs from Debian),
//! Redis 4f8cdc2a (2024-10), nginx 3f6f7824, Apache httpd 0cb68044
//! (2024-10), HAProxy 3.5-dev5, Postfix 17830e5c, ProFTPD 1dbfb9d7, vsftpd
//! 3.0.2, Dovecot 2.3.21.1 and 2.4 (f28b5a92), Node.js doc/api, Tomcat
//! 84ac9af0, OpenSSH portable 0ef0f5a8, Go src/net.
mod databases;
mod mail;
mod web;

use super::{Fact, Greeting, KeepaliveDefault, Knob, Server, ServerAdvice, ServerKeepalive};
use databases::{MYSQL, POSTGRES, REDIS};
use mail::{DOVECOT, POSTFIX, PROFTPD, SSHD, VSFTPD};
use web::{APACHE, DOCKER_PROXY, HAPROXY, JAVA, JETTY, NGINX, NODE, TOMCAT};

/// The entry for `s`.
pub(super) fn table(s: Server) -> &'static ServerAdvice {
    match s {
        Server::MySql => &MYSQL,
        Server::Postgres => &POSTGRES,
        Server::Redis => &REDIS,
        Server::Nginx => &NGINX,
        Server::Apache => &APACHE,
        Server::Haproxy => &HAPROXY,
        Server::Postfix => &POSTFIX,
        Server::Proftpd => &PROFTPD,
        Server::Vsftpd => &VSFTPD,
        Server::Dovecot => &DOVECOT,
        Server::Node => &NODE,
        Server::Tomcat => &TOMCAT,
        Server::Jetty => &JETTY,
        Server::Java => &JAVA,
        Server::Sshd => &SSHD,
        Server::DockerProxy => &DOCKER_PROXY,
        Server::Unknown => &UNKNOWN,
    }
}

/// The kernel's cap on every backlog.
pub(super) const KERNEL_CAP: Fact = Fact {
    text: "The kernel caps the backlog at net.core.somaxconn: the accept queue holds at most \
           min(backlog, net.core.somaxconn) connections (`ss -tln` shows that limit as Send-Q).",
    source: "Linux net/socket.c __sys_listen: if ((unsigned int)backlog > somaxconn) backlog = somaxconn",
};

// ---------------------------------------------------------------- unknown

static UNKNOWN: ServerAdvice = ServerAdvice {
    server: Server::Unknown,
    name: "unknown server",
    backlog: Knob {
        name: "listen() backlog",
        how: "the backlog argument of listen() in the server's code or configuration; net.core.somaxconn >= it",
        default: None,
        source: "listen(2); Linux net/socket.c __sys_listen",
    },
    backlog_note: Some(KERNEL_CAP),
    idle_timeouts: &[],
    keepalive: ServerKeepalive {
        default: KeepaliveDefault::Unknown,
        fact: Fact {
            text: "Sockets have no TCP keepalive unless the server sets SO_KEEPALIVE (on the socket or its \
                   listener); the timers are then the host's net.ipv4.tcp_keepalive_* sysctls unless it sets \
                   TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT.",
            source: "socket(7) SO_KEEPALIVE, tcp(7) TCP_KEEPIDLE; kernel Documentation/networking/ip-sysctl.rst",
        },
        knob: None,
        timers: None,
    },
    name_lookups: &[],
    worker_limits: &[],
    accept_note: None,
    greeting: Greeting::Depends,
    greeting_source: "unknown server",
};
