//! Canonical addresses and the 4-tuple key.
//!
//! A [`Tuple`] stores both addresses as 16 bytes (IPv4 as IPv4-mapped IPv6),
//! so `198.18.0.2` and `::ffff:198.18.0.2` produce the same bytes: the fold
//! is done once, at construction, and the key is a plain 36-byte value that
//! hashes and compares without allocation. Display folds back to IPv4.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Folds an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to IPv4. Everything
/// else is returned unchanged (the deprecated IPv4-compatible `::a.b.c.d` form
/// is *not* folded: the kernel never reports it for IPv4 traffic).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether an address can identify a host across the fleet: loopback,
/// unspecified, link-local and multicast addresses are the same on every host
/// and never used to join two hosts.
pub fn is_matchable_ip(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_unspecified() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn ip_from16(b: [u8; 16]) -> IpAddr {
    canonical_ip(IpAddr::V6(Ipv6Addr::from(b)))
}

/// "ip:port" with IPv6 as "[addr]:port" and IPv4-mapped folded to IPv4.
pub fn fmt_endpoint(sa: SocketAddr) -> String {
    SocketAddr::new(canonical_ip(sa.ip()), sa.port()).to_string()
}

/// Parses "ip:port" / "[v6]:port"; the address comes back canonical.
pub fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let sa: SocketAddr = s.trim().parse().ok()?;
    Some(SocketAddr::new(canonical_ip(sa.ip()), sa.port()))
}

/// A TCP connection as seen from one host: its local and remote endpoint.
///
/// Fixed-size (36 bytes), `Copy`, hashable; the canonical form is built in
/// by construction. The same connection seen from the other end is
/// [`Tuple::mirror`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    local: [u8; 16],
    remote: [u8; 16],
    lport: u16,
    rport: u16,
}

impl Tuple {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        Tuple {
            local: ip16(local.ip()),
            remote: ip16(remote.ip()),
            lport: local.port(),
            rport: remote.port(),
        }
    }

    /// From raw parts as the kernel or the wire gives them: addresses of 4 or
    /// 16 bytes. Returns None for any other length.
    pub fn from_raw(local_ip: &[u8], lport: u16, remote_ip: &[u8], rport: u16) -> Option<Self> {
        Some(Tuple {
            local: raw16(local_ip)?,
            remote: raw16(remote_ip)?,
            lport,
            rport,
        })
    }

    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(ip_from16(self.local), self.lport)
    }
    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(ip_from16(self.remote), self.rport)
    }
    pub fn local_ip(&self) -> IpAddr {
        ip_from16(self.local)
    }
    pub fn remote_ip(&self) -> IpAddr {
        ip_from16(self.remote)
    }
    pub fn local_port(&self) -> u16 {
        self.lport
    }
    pub fn remote_port(&self) -> u16 {
        self.rport
    }
    /// The same connection seen from the other end.
    pub fn mirror(&self) -> Self {
        Tuple {
            local: self.remote,
            remote: self.local,
            lport: self.rport,
            rport: self.lport,
        }
    }
    /// Address bytes in wire form: 4 bytes for IPv4 (mapped or not), else 16.
    pub fn local_ip_bytes(&self) -> Vec<u8> {
        wire_bytes(self.local_ip())
    }
    pub fn remote_ip_bytes(&self) -> Vec<u8> {
        wire_bytes(self.remote_ip())
    }
}

/// Wire form of an address: 4 bytes for IPv4, 16 for IPv6 (canonicalised).
pub fn wire_bytes(ip: IpAddr) -> Vec<u8> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Parses wire bytes (4 or 16) into a canonical address.
pub fn ip_from_wire(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(ip_from16(a))
        }
        _ => None,
    }
}

fn raw16(b: &[u8]) -> Option<[u8; 16]> {
    match b.len() {
        4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_ipv6_mapped().octets()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(a)
        }
        _ => None,
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", self.local(), self.remote())
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.local(), self.remote())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_v4_folds_to_v4() {
        let a = Tuple::new(sa("[::ffff:198.18.0.1]:3306"), sa("[::ffff:198.18.0.2]:40000"));
        let b = Tuple::new(sa("198.18.0.1:3306"), sa("198.18.0.2:40000"));
        assert_eq!(a, b);
        assert_eq!(a.local().to_string(), "198.18.0.1:3306");
        assert_eq!(a.remote().to_string(), "198.18.0.2:40000");
    }

    #[test]
    fn v6_displays_bracketed() {
        let t = Tuple::new(sa("[2001:db8::1]:443"), sa("[2001:db8::2]:5000"));
        assert_eq!(t.local().to_string(), "[2001:db8::1]:443");
        assert_eq!(fmt_endpoint(sa("[::ffff:198.18.0.9]:25")), "198.18.0.9:25");
    }

    #[test]
    fn v4_compatible_is_not_folded() {
        let ip: IpAddr = "::198.18.0.1".parse().unwrap();
        assert!(canonical_ip(ip).is_ipv6());
    }

    #[test]
    fn matchable() {
        for s in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "::",
            "169.254.1.1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_matchable_ip(s.parse().unwrap()), "{s}");
        }
        for s in ["198.18.0.1", "2001:db8::1", "::ffff:198.18.0.1"] {
            assert!(is_matchable_ip(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn raw_rejects_bad_lengths() {
        assert!(Tuple::from_raw(&[1, 2, 3], 1, &[1, 2, 3, 4], 2).is_none());
        assert!(ip_from_wire(&[0; 5]).is_none());
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        ]
    }

    proptest! {
        #[test]
        fn fold_is_idempotent_and_mapped_equal(b in any::<[u8; 4]>(), p in any::<u16>(), q in any::<u16>(), r in any_ip()) {
            let v4 = IpAddr::V4(Ipv4Addr::from(b));
            let mapped = IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped());
            prop_assert_eq!(canonical_ip(mapped), v4);
            prop_assert_eq!(canonical_ip(canonical_ip(r)), canonical_ip(r));
            let t1 = Tuple::new(SocketAddr::new(v4, p), SocketAddr::new(r, q));
            let t2 = Tuple::new(SocketAddr::new(mapped, p), SocketAddr::new(r, q));
            prop_assert_eq!(t1, t2);
            prop_assert_eq!(t1.mirror().mirror(), t1);
            prop_assert_eq!(t1.mirror().local(), t1.remote());
        }

        #[test]
        fn wire_round_trip(l in any_ip(), r in any_ip(), p in any::<u16>(), q in any::<u16>()) {
            let t = Tuple::new(SocketAddr::new(l, p), SocketAddr::new(r, q));
            let back = Tuple::from_raw(&t.local_ip_bytes(), p, &t.remote_ip_bytes(), q).unwrap();
            prop_assert_eq!(back, t);
            prop_assert_eq!(ip_from_wire(&wire_bytes(l)).unwrap(), canonical_ip(l));
            prop_assert_eq!(parse_endpoint(&fmt_endpoint(SocketAddr::new(l, p))).unwrap(), SocketAddr::new(canonical_ip(l), p));
        }
    }
}
