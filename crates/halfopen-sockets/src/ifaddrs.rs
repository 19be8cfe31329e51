//! This network namespace's interface addresses (getifaddrs(3)), canonical
//! (IPv4-mapped IPv6 folded to IPv4), sorted and deduplicated, loopback
//! included. The collector uses them to tell its own addresses.
use std::net::IpAddr;

use halfopen_core::canonical_ip;

use crate::error::ScanError;

/// Every address on this network namespace's interfaces, canonical,
/// deduplicated, loopback included.
pub fn local_addresses() -> Result<Vec<IpAddr>, ScanError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| ScanError::Ifaddrs(e.into()))?;
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .map(canonical_ip)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_loopback_and_is_canonical() {
        let a = local_addresses().unwrap();
        assert!(a.contains(&"127.0.0.1".parse().unwrap()), "{a:?}");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates: {a:?}");
        assert!(a.iter().all(|&ip| canonical_ip(ip) == ip));
    }
}
