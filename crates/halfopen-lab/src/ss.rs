//! Ground truth from iproute2's `ss`: [`SsConn`] and the parser of `ss -Htnp state established`
//! output, with IPv4-mapped IPv6 addresses folded to IPv4. Pure; running `ss` in a namespace is
//! [`crate::Lab::ss_established`]'s job.

use std::net::{IpAddr, SocketAddr};

use crate::LabError;

/// One ESTABLISHED TCP connection as `ss` printed it, seen from the namespace it was read in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SsConn {
    /// Local end; `::ffff:a.b.c.d` is folded to `a.b.c.d`.
    pub local: SocketAddr,
    /// Remote end; `::ffff:a.b.c.d` is folded to `a.b.c.d`.
    pub remote: SocketAddr,
    /// The first owning process `ss -p` named, as (pid, comm). `None` when no process holds the
    /// socket, e.g. a connection still waiting in a listener's accept queue.
    pub process: Option<(u32, String)>,
}

impl SsConn {
    /// The same connection as the other end sees it: `(remote, local)`.
    pub fn mirrored(&self) -> (SocketAddr, SocketAddr) {
        (self.remote, self.local)
    }

    /// `(local, remote)`.
    pub fn tuple(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }
}

/// Folds an IPv4-mapped IPv6 socket address (`[::ffff:198.18.0.2]:3306`) to plain IPv4.
pub fn fold_mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Parses an address as `ss -n` prints it: `198.18.0.1:3306`, `[::ffff:198.18.0.1]:3306`,
/// `[fe80::1%eth0]:22` (the scope is dropped), `*:3306`.
pub fn parse_ss_addr(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("no port in {text:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in {text:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.split('%').next().unwrap_or(host);
    let ip: IpAddr = if host == "*" {
        IpAddr::from([0u8; 4])
    } else {
        host.parse().map_err(|_| format!("bad address in {text:?}"))?
    };
    Ok(fold_mapped(SocketAddr::new(ip, port)))
}

/// Parses the `users:(("comm",pid=123,fd=4),...)` column; returns the first process.
fn parse_users(text: &str) -> Option<(u32, String)> {
    let start = text.find("((\"")? + 3;
    let rest = &text[start..];
    let comm_end = rest.find("\",pid=")?;
    let comm = rest[..comm_end].to_string();
    let after = &rest[comm_end + 6..];
    let pid_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
    let pid = after[..pid_end].parse().ok()?;
    Some((pid, comm))
}

/// Parses the output of `ss -Htn[p] state established`: per line `Recv-Q Send-Q Local Peer
/// [users:(...)]` (no State column, because a single state was asked for). Blank lines are
/// skipped; anything else that does not fit is an error.
pub fn parse_ss_established(output: &str) -> Result<Vec<SsConn>, LabError> {
    let mut conns = Vec::new();
    for line in output.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let err = |reason: String| LabError::SsParse {
            line: line.to_string(),
            reason,
        };
        let mut fields = trimmed.split_whitespace();
        let (Some(recv_q), Some(send_q), Some(local), Some(remote)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(err("fewer than 4 columns".into()));
        };
        if recv_q.parse::<u64>().is_err() || send_q.parse::<u64>().is_err() {
            return Err(err("Recv-Q/Send-Q are not numbers (was a state column printed?)".into()));
        }
        let rest: Vec<&str> = fields.collect();
        let process = if rest.is_empty() {
            None
        } else {
            // The users column is the remainder of the line (a comm may contain spaces).
            let idx = trimmed.find("users:(").unwrap_or(trimmed.len());
            parse_users(&trimmed[idx..])
        };
        conns.push(SsConn {
            local: parse_ss_addr(local).map_err(err)?,
            remote: parse_ss_addr(remote).map_err(err)?,
            process,
        });
    }
    Ok(conns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_with_process() {
        let out = "0      0      198.18.0.1:33812 198.18.0.2:3306 users:((\"python3\",pid=5947,fd=3))\n";
        let conns = parse_ss_established(out).unwrap();
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].local, "198.18.0.1:33812".parse().unwrap());
        assert_eq!(conns[0].remote, "198.18.0.2:3306".parse().unwrap());
        assert_eq!(conns[0].process, Some((5947, "python3".to_string())));
    }

    #[test]
    fn folds_mapped_v6_and_handles_missing_process() {
        let out = "0      0      [::ffff:198.18.0.2]:3306 [::ffff:198.18.0.1]:33812\n\n";
        let conns = parse_ss_established(out).unwrap();
        assert_eq!(conns[0].local, "198.18.0.2:3306".parse().unwrap());
        assert_eq!(conns[0].remote, "198.18.0.1:33812".parse().unwrap());
        assert_eq!(conns[0].process, None);
        assert_eq!(
            conns[0].mirrored(),
            ("198.18.0.1:33812".parse().unwrap(), "198.18.0.2:3306".parse().unwrap())
        );
    }

    #[test]
    fn keeps_real_v6_and_drops_scope() {
        assert_eq!(
            parse_ss_addr("[fe80::1%eth0]:22").unwrap(),
            "[fe80::1]:22".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_ss_addr("[2001:db8::1]:443").unwrap(),
            "[2001:db8::1]:443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(parse_ss_addr("*:3306").unwrap(), "0.0.0.0:3306".parse().unwrap());
    }

    #[test]
    fn first_of_several_owners_and_odd_comm() {
        let out = "0 0 198.18.0.1:1 198.18.0.2:2 users:((\"my prog\",pid=12,fd=3),(\"b\",pid=13,fd=4))";
        let conns = parse_ss_established(out).unwrap();
        assert_eq!(conns[0].process, Some((12, "my prog".to_string())));
    }

    #[test]
    fn refuses_garbage() {
        assert!(parse_ss_established("ESTAB 0 0 1.2.3.4:1 5.6.7.8:2").is_err());
        assert!(parse_ss_established("0 0 1.2.3.4 5.6.7.8:2").is_err());
        assert!(parse_ss_established("0 0").is_err());
    }
}
