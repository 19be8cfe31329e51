//! Simulated host identities: host `i` is named `sim-<i>` and owns the single
//! address 198.18.(i/250).(i%250+1). The addresses are only labels in
//! messages (no packet is ever sent to them); the mapping is reversible so a
//! tuple in a lookup or a finding names its hosts without any table.
use halfopen_core::ip_from_wire;
use std::net::{IpAddr, Ipv4Addr};

/// Most hosts the addressing scheme can name (198.18.0.1 .. 198.18.255.250).
pub const MAX_HOSTS: usize = 250 * 256;

/// Index of a simulated host (fits: [`MAX_HOSTS`] <= 65,536).
pub type HostIdx = u16;

pub fn host_ip(i: HostIdx) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8)
}

pub fn host_id(i: HostIdx) -> String {
    format!("sim-{i}")
}

/// The host owning `ip`, if it is one of the scheme's addresses.
pub fn host_of_ip(ip: IpAddr) -> Option<HostIdx> {
    let v4 = match halfopen_core::canonical_ip(ip) {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => return None,
    };
    let [a, b, c, d] = v4.octets();
    if a != 198 || b != 18 || d == 0 || d > 250 {
        return None;
    }
    Some(c as u16 * 250 + d as u16 - 1)
}

/// The host owning wire address bytes (4 or 16 bytes, IPv4-mapped folded).
pub fn host_of_wire(b: &[u8]) -> Option<HostIdx> {
    host_of_ip(ip_from_wire(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_addresses() {
        assert_eq!(host_ip(0), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(host_ip(249), Ipv4Addr::new(198, 18, 0, 250));
        assert_eq!(host_ip(250), Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(host_ip((MAX_HOSTS - 1) as u16), Ipv4Addr::new(198, 18, 255, 250));
        assert_eq!(host_id(7), "sim-7");
    }

    #[test]
    fn every_address_maps_back() {
        for i in 0..MAX_HOSTS as u16 {
            let ip = host_ip(i);
            assert_eq!(host_of_ip(IpAddr::V4(ip)), Some(i));
            assert_eq!(host_of_wire(&ip.octets()), Some(i));
            assert_eq!(
                host_of_wire(&ip.to_ipv6_mapped().octets()),
                Some(i),
                "mapped form folds"
            );
        }
    }

    #[test]
    fn foreign_addresses_are_not_hosts() {
        for s in ["198.18.0.0", "198.18.0.251", "198.19.0.1", "10.0.0.1", "2001:db8::1"] {
            assert_eq!(host_of_ip(s.parse().unwrap()), None, "{s}");
        }
        assert_eq!(host_of_wire(&[1, 2, 3]), None);
    }
}
