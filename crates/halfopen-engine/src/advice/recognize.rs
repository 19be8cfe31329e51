//! Naming the server software from a listener owner's `comm`, `cmdline` and
//! port, and reading docker-proxy's backend from its command line. Pure
//! string handling of values read from /proc: never panics, whatever bytes
//! it is given.
use super::Server;
use std::net::{IpAddr, SocketAddr};

/// Ports where `master` and `smtpd` are taken to be Postfix even without a
/// telling command line: SMTP (RFC 5321), submissions (RFC 8314), submission (RFC 6409).
const SMTP_PORTS: [u16; 3] = [25, 465, 587];

/// The server behind a listener. `comm` is /proc/PID/comm (at most 15
/// bytes: longer names arrive truncated), `cmdline` the process's argv
/// joined by spaces (empty when unknown), `port` the listener's port when
/// known. The comm decides first; when it names nothing known, the program
/// name in `cmdline` does (its first word's last path component, a trailing
/// ':' removed: "/usr/sbin/mysqld --basedir=/usr" is mysqld, the process
/// title "postgres: checkpointer" is postgres). `java` is told apart by its
/// command line (Tomcat, Jetty, else generic Java). `master` and `smtpd`
/// are Postfix only when the command line says so or the port is an SMTP
/// port, since other software uses those names too (OpenSMTPD's daemon is
/// also `smtpd`). Anything else is [`Server::Unknown`]; the port alone
/// never names a server.
pub fn recognize(comm: &str, cmdline: &str, port: Option<u16>) -> Server {
    let comm = comm.trim();
    if let Some(s) = by_name(comm, cmdline, port) {
        return s;
    }
    match program_name(cmdline) {
        Some(name) if name != comm => by_name(name, cmdline, port).unwrap_or(Server::Unknown),
        _ => Server::Unknown,
    }
}

/// The program name in a command line: the first word's last path
/// component, without a trailing ':' (process titles such as
/// "nginx: worker process").
fn program_name(cmdline: &str) -> Option<&str> {
    let first = cmdline.split_whitespace().next()?;
    let base = first.rsplit('/').next().unwrap_or(first);
    let base = base.trim_end_matches(':');
    (!base.is_empty()).then_some(base)
}

fn by_name(name: &str, cmdline: &str, port: Option<u16>) -> Option<Server> {
    let smtp_port = port.is_some_and(|p| SMTP_PORTS.contains(&p));
    let says_postfix = contains_ci(cmdline, "postfix");
    Some(match name {
        "mysqld" | "mariadbd" | "mysqld_safe" | "mariadbd-safe" => Server::MySql,
        "postgres" | "postmaster" => Server::Postgres,
        "redis-server" => Server::Redis,
        "nginx" => Server::Nginx,
        "apache2" | "httpd" => Server::Apache,
        "haproxy" => Server::Haproxy,
        "postscreen" => Server::Postfix,
        // Postfix's master(8): "/usr/lib/postfix/sbin/master -w".
        "master" if says_postfix || smtp_port => Server::Postfix,
        // Postfix's smtpd(8) runs as "smtpd -n smtp -t inet ...".
        "smtpd" if says_postfix || cmdline.contains(" -t inet") || (smtp_port && cmdline.trim().is_empty()) => {
            Server::Postfix
        }
        "proftpd" => Server::Proftpd,
        "vsftpd" => Server::Vsftpd,
        // Dovecot's login processes; comm truncates submission-login and
        // managesieve-login to 15 bytes.
        "dovecot" | "imap-login" | "pop3-login" | "submission-login" | "submission-logi" | "managesieve-login"
        | "managesieve-log" => Server::Dovecot,
        "node" | "nodejs" => Server::Node,
        "java" => java_flavour(cmdline),
        "sshd" => Server::Sshd,
        "docker-proxy" => Server::DockerProxy,
        _ => return None,
    })
}

/// Tomcat, Jetty or another Java server, from a `java` command line.
fn java_flavour(cmdline: &str) -> Server {
    if contains_ci(cmdline, "org.apache.catalina") || contains_ci(cmdline, "catalina") || contains_ci(cmdline, "tomcat")
    {
        Server::Tomcat
    } else if contains_ci(cmdline, "jetty") {
        Server::Jetty
    } else {
        Server::Java
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

/// The container address docker-proxy relays to, from its command line
/// ("docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip
/// 172.17.0.2 -container-port 80" -> 172.17.0.2:80). Accepts Go's flag
/// forms `-flag value`, `--flag value`, `-flag=value` and `--flag=value`.
/// None when either flag is missing or malformed.
pub fn docker_proxy_backend(cmdline: &str) -> Option<SocketAddr> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let flag = |name: &str| -> Option<&str> {
        for (i, w) in words.iter().enumerate() {
            let Some(bare) = w.strip_prefix("--").or_else(|| w.strip_prefix('-')) else {
                continue;
            };
            if bare == name {
                return words.get(i + 1).copied();
            }
            if let Some(v) = bare.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    };
    let ip: IpAddr = flag("container-ip")?.parse().ok()?;
    let port: u16 = flag("container-port")?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}
