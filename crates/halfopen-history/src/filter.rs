//! Which stored findings `halfopen history` lists: by kind, host, server
//! and process (the time window is the store's query).
use halfopen_core::{FindingKind, Process, StoredFinding};
use std::net::SocketAddr;

/// `--server`: an address (`198.18.0.1:3306`, `[::1]:3306`), or a host id
/// and port (`db:3306`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFilter {
    Addr(SocketAddr),
    HostPort(String, u16),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a server: give ADDR:PORT (198.18.0.1:3306, [::1]:3306) or HOST:PORT with a host id (db:3306)")]
pub struct ServerFilterError(pub String);

impl std::str::FromStr for ServerFilter {
    type Err = ServerFilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(ServerFilter::Addr(a));
        }
        match s.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.contains(['[', ']']) => p
                .parse()
                .map(|p| ServerFilter::HostPort(h.to_string(), p))
                .map_err(|_| ServerFilterError(s.to_string())),
            _ => Err(ServerFilterError(s.to_string())),
        }
    }
}

/// Every field set must match; None matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub kind: Option<FindingKind>,
    /// A host id: the client's or the server's host.
    pub host: Option<String>,
    pub server: Option<ServerFilter>,
    /// A process name: the client's or the server's (its comm, or its
    /// command's file name).
    pub process: Option<String>,
}

fn named(p: &Option<Process>, name: &str) -> bool {
    p.as_ref().is_some_and(|p| {
        p.comm == name
            || p.cmdline
                .split_whitespace()
                .next()
                .and_then(|c| c.rsplit('/').next())
                .is_some_and(|c| c == name)
    })
}

impl Filter {
    pub fn matches(&self, s: &StoredFinding) -> bool {
        let f = &s.finding;
        if self.kind.is_some_and(|k| k != f.kind) {
            return false;
        }
        if let Some(h) = &self.host {
            if f.subject.server_host() != h && f.subject.client_host() != Some(h.as_str()) {
                return false;
            }
        }
        if let Some(sv) = &self.server {
            let ok = match sv {
                ServerFilter::HostPort(h, p) => {
                    let k = crate::IncidentKey::of(f);
                    &k.server_host == h && k.port == *p
                }
                ServerFilter::Addr(a) => {
                    f.subject.server_end() == *a
                        || f.server_end() == *a
                        || f.listener_addr()
                            .is_some_and(|l| l == *a || (l.ip().is_unspecified() && l.port() == a.port()))
                }
            };
            if !ok {
                return false;
            }
        }
        if let Some(name) = &self.process {
            if !named(&f.process, name) && !named(&f.server_process, name) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{conn, listener_risk};

    #[test]
    fn servers_parse() {
        assert_eq!(
            "198.18.0.1:3306".parse(),
            Ok(ServerFilter::Addr("198.18.0.1:3306".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:3306".parse(),
            Ok(ServerFilter::Addr("[::1]:3306".parse().unwrap()))
        );
        assert_eq!("db:3306".parse(), Ok(ServerFilter::HostPort("db".into(), 3306)));
        for bad in ["db", "db:x", ":3306", "[::1]", "db:70000"] {
            assert!(bad.parse::<ServerFilter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_field_narrows() {
        let c = conn(1, "db", 3306, 0, None);
        let l = listener_risk(2, "db", 443, 0, None);
        let all = |f: &Filter| {
            [&c, &l]
                .iter()
                .filter(|s| f.matches(s))
                .map(|s| s.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(all(&Filter::default()), [1, 2]);
        assert_eq!(
            all(&Filter {
                kind: Some(FindingKind::ListenerAtRisk),
                ..Default::default()
            }),
            [2]
        );
        assert_eq!(
            all(&Filter {
                host: Some("app".into()),
                ..Default::default()
            }),
            [1]
        );
        assert_eq!(
            all(&Filter {
                host: Some("db".into()),
                ..Default::default()
            }),
            [1, 2]
        );
        assert_eq!(
            all(&Filter {
                host: Some("nope".into()),
                ..Default::default()
            }),
            Vec::<i64>::new()
        );
        let server = |s: &str| Filter {
            server: Some(s.parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(all(&server("db:3306")), [1]);
        assert_eq!(all(&server("198.18.0.1:3306")), [1]);
        // The wildcard listener serves every address on its port.
        assert_eq!(all(&server("198.18.0.1:443")), [2]);
        assert_eq!(all(&server("db:80")), Vec::<i64>::new());
        let process = |s: &str| Filter {
            process: Some(s.into()),
            ..Default::default()
        };
        assert_eq!(all(&process("php-fpm")), [1]);
        assert_eq!(all(&process("php-fpm:")), [1], "the command's first word");
        assert_eq!(all(&process("mysqld")), Vec::<i64>::new());
    }
}
