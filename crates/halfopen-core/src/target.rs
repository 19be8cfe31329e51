//! [`ExplainTarget`]: what `halfopen explain TARGET` may name, parsed once.
use std::fmt;
use std::net::SocketAddr;

/// A target of `halfopen explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExplainTarget {
    /// Everything that needs attention.
    Everything,
    /// An endpoint "ip:port" / "[v6]:port": a finding's client end, or a
    /// listener's address (which one is decided against what is known).
    Endpoint(SocketAddr),
    /// "host:port": a listener on a host by its host id.
    HostPort { host: String, port: u16 },
    /// A host id (or anything else that is not an endpoint or host:port).
    Host(String),
}

impl ExplainTarget {
    /// Parses a target: empty is everything; "ip:port" an endpoint;
    /// "name:port" a host's listener; anything else a host id.
    pub fn parse(s: &str) -> ExplainTarget {
        let s = s.trim();
        if s.is_empty() {
            return ExplainTarget::Everything;
        }
        if let Some(ep) = crate::tuple::parse_endpoint(s) {
            return ExplainTarget::Endpoint(ep);
        }
        if let Some((host, port)) = s.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if !host.is_empty() {
                return ExplainTarget::HostPort {
                    host: host.to_string(),
                    port,
                };
            }
        }
        ExplainTarget::Host(s.to_string())
    }
}

impl fmt::Display for ExplainTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainTarget::Everything => Ok(()),
            ExplainTarget::Endpoint(e) => write!(f, "{e}"),
            ExplainTarget::HostPort { host, port } => write!(f, "{host}:{port}"),
            ExplainTarget::Host(h) => f.write_str(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(ExplainTarget::parse("  "), ExplainTarget::Everything);
        assert_eq!(
            ExplainTarget::parse("10.0.0.5:3306"),
            ExplainTarget::Endpoint("10.0.0.5:3306".parse().unwrap())
        );
        assert_eq!(
            ExplainTarget::parse("[::ffff:10.0.0.5]:3306"),
            ExplainTarget::Endpoint("10.0.0.5:3306".parse().unwrap())
        );
        assert_eq!(
            ExplainTarget::parse("db-1:3306"),
            ExplainTarget::HostPort {
                host: "db-1".into(),
                port: 3306
            }
        );
        assert_eq!(ExplainTarget::parse("db-1"), ExplainTarget::Host("db-1".into()));
        assert_eq!(
            ExplainTarget::parse("db-1:http"),
            ExplainTarget::Host("db-1:http".into())
        );
        for s in ["db-1:3306", "10.0.0.5:3306", "db-1"] {
            assert_eq!(ExplainTarget::parse(s).to_string(), s);
        }
    }
}
