//! Parsing of the kernel's per-namespace protocol counters (`/proc/net/netstat`, `/proc/net/snmp`):
//! header/value line pairs such as `TcpExt: ... ListenOverflows ...`. Pure; reading them inside a
//! namespace is [`crate::Lab::net_counters`]'s job.

use std::collections::BTreeMap;

/// Parses `/proc/net/netstat` or `/proc/net/snmp` text into `"TcpExt.ListenOverflows" -> n`.
/// Lines come in pairs with the same `Prefix:`; malformed pairs are skipped.
pub fn parse_proc_net_counters(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((p1, names)), Some((p2, values))) = (names.split_once(':'), values.split_once(':')) else {
            continue;
        };
        if p1 != p2 {
            continue;
        }
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            // Some snmp values are negative (Tcp MaxConn -1): keep only counters.
            if let Ok(v) = value.parse::<u64>() {
                out.insert(format!("{p1}.{name}"), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\n\
                    TcpExt: 12 190 185 185\n\
                    IpExt: InOctets\n\
                    IpExt: 999\n\
                    Tcp: RtoAlgorithm MaxConn\n\
                    Tcp: 1 -1\n";
        let c = parse_proc_net_counters(text);
        assert_eq!(c["TcpExt.SyncookiesSent"], 12);
        assert_eq!(c["TcpExt.ListenOverflows"], 185);
        assert_eq!(c["IpExt.InOctets"], 999);
        assert_eq!(c["Tcp.RtoAlgorithm"], 1);
        assert!(!c.contains_key("Tcp.MaxConn"));
    }
}
