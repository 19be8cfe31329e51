//! Names of a lab's namespaces and interfaces, and the rules that keep them unique and
//! recognisable: `ho-<tag>-<pid>-<seq>-<host>` for hosts, `ho-<tag>-<pid>-<seq>-sw` for the switch.
//! Pure; nothing here touches the system.

use std::net::Ipv4Addr;

use crate::LabError;

/// Every namespace of every lab starts with this.
pub const NS_PREFIX: &str = "ho-";
/// The host name reserved for the switch namespace.
pub const SWITCH: &str = "sw";
/// The bridge inside the switch namespace.
pub const BRIDGE: &str = "br0";
/// The interface every host gets.
pub const HOST_IF: &str = "eth0";

/// Tags: 1 to 24 of `[a-z0-9_-]`, not starting or ending with `-`.
pub fn validate_tag(tag: &str) -> Result<(), LabError> {
    let ok_chars = tag
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if tag.is_empty() || tag.len() > 24 || !ok_chars || tag.starts_with('-') || tag.ends_with('-') {
        return Err(LabError::invalid(
            "tag",
            tag,
            "use 1 to 24 of a-z 0-9 _ -, not starting or ending with -",
        ));
    }
    Ok(())
}

/// Host names: 1 to 16 of `[a-z0-9_]` (no `-`, so that namespace names parse back), not `sw`.
pub fn validate_host_name(name: &str) -> Result<(), LabError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if name.is_empty() || name.len() > 16 || !ok_chars {
        return Err(LabError::invalid("host name", name, "use 1 to 16 of a-z 0-9 _"));
    }
    if name == SWITCH {
        return Err(LabError::invalid(
            "host name",
            name,
            "reserved for the switch namespace",
        ));
    }
    Ok(())
}

/// Lab addresses must come from 198.18.0.0/15 (RFC 2544 benchmarking) and be usable host
/// addresses of their /24.
pub fn validate_lab_ip(ip: Ipv4Addr) -> Result<(), LabError> {
    let [a, b, _, d] = ip.octets();
    if a != 198 || (b & 0xfe) != 18 {
        return Err(LabError::invalid(
            "address",
            ip.to_string(),
            "lab addresses must be in 198.18.0.0/15",
        ));
    }
    if d == 0 || d == 255 {
        return Err(LabError::invalid(
            "address",
            ip.to_string(),
            "network or broadcast address of its /24",
        ));
    }
    Ok(())
}

/// `ho-<tag>-<pid>-<seq>`: what all of one lab's namespaces start with.
pub fn lab_prefix(tag: &str, pid: u32, seq: u32) -> String {
    format!("{NS_PREFIX}{tag}-{pid}-{seq}")
}

/// The namespace of `host` (or [`SWITCH`]) in the lab with that prefix.
pub fn ns_name(prefix: &str, host: &str) -> String {
    format!("{prefix}-{host}")
}

/// The switch-side end of host number `index`'s veth pair (at most 15 characters).
pub fn switch_port(index: usize) -> String {
    format!("p{index}")
}

/// A namespace name that belongs to a lab with this tag, broken down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNs {
    /// The pid of the process that created the lab.
    pub pid: u32,
    /// The lab's sequence number within that process.
    pub seq: u32,
    /// The host name, or [`SWITCH`].
    pub host: String,
}

/// If `ns` is a namespace of a lab with exactly this `tag`, who made it. Names of other tags
/// (including tags that merely start with this one) give `None`.
pub fn parse_owned(tag: &str, ns: &str) -> Option<OwnedNs> {
    let rest = ns.strip_prefix(NS_PREFIX)?.strip_prefix(tag)?.strip_prefix('-')?;
    let mut parts = rest.split('-');
    let (pid, seq, host) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || host.is_empty() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(seq) {
        return None;
    }
    Some(OwnedNs {
        pid: pid.parse().ok()?,
        seq: seq.parse().ok()?,
        host: host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_hosts() {
        assert!(validate_tag("incident").is_ok());
        assert!(validate_tag("e2e-v6_1").is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "a b", "abcdefghijklmnopqrstuvwxy"] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
        }
        assert!(validate_host_name("server").is_ok());
        assert!(validate_host_name("client_2").is_ok());
        for bad in ["", "sw", "a-b", "Server", "abcdefghijklmnopq"] {
            assert!(validate_host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lab_ips() {
        assert!(validate_lab_ip(Ipv4Addr::new(198, 18, 0, 1)).is_ok());
        assert!(validate_lab_ip(Ipv4Addr::new(198, 19, 255, 254)).is_ok());
        for bad in [
            Ipv4Addr::new(198, 20, 0, 1),
            Ipv4Addr::new(198, 17, 0, 1),
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(198, 18, 0, 0),
            Ipv4Addr::new(198, 18, 0, 255),
        ] {
            assert!(validate_lab_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_parse_back() {
        let prefix = lab_prefix("e2e-x", 4242, 3);
        let ns = ns_name(&prefix, "server");
        assert_eq!(ns, "ho-e2e-x-4242-3-server");
        assert_eq!(
            parse_owned("e2e-x", &ns),
            Some(OwnedNs {
                pid: 4242,
                seq: 3,
                host: "server".into()
            })
        );
        assert_eq!(parse_owned("e2e-x", &ns_name(&prefix, SWITCH)).unwrap().host, "sw");
    }

    #[test]
    fn other_tags_are_not_ours() {
        let ns = ns_name(&lab_prefix("e2e-x", 4242, 3), "server");
        assert_eq!(parse_owned("e2e", &ns), None);
        assert_eq!(parse_owned("e2e-x-4242", &ns), None);
        assert_eq!(parse_owned("e2e-x", "ho-e2e-x-42a-0-server"), None);
        assert_eq!(parse_owned("e2e-x", "ho-e2e-x-42-0-"), None);
        assert_eq!(parse_owned("e2e-x", "e2e-x-42-0-server"), None);
    }

    #[test]
    fn switch_ports_fit_ifnamsiz() {
        assert!(switch_port(9999).len() <= 15);
    }
}
