//! Host TCP counters and sysctls: the parser of /proc/net/netstat and
//! /proc/net/snmp (pairs of header and value lines per prefix), the counters
//! halfopen keeps, and per-interval deltas that survive counter resets (a
//! namespace recreated, a host rebooted) and 32/64-bit wraps.
use std::collections::BTreeMap;

/// Counters sent with every report, as "Prefix.Name". The first seven are
/// [`OVERFLOW`].
pub const TRACKED: &[&str] = &[
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.SyncookiesSent",
    "TcpExt.SyncookiesRecv",
    "TcpExt.SyncookiesFailed",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPAbortOnData",
    "TcpExt.TCPAbortOnTimeout",
    "Tcp.ActiveOpens",
    "Tcp.PassiveOpens",
    "Tcp.AttemptFails",
    "Tcp.EstabResets",
    "Tcp.CurrEstab",
];

/// The tracked counters that show an accept queue overflowing or SYN
/// cookies answering (what explanations cite).
pub const OVERFLOW: &[&str] = TRACKED.split_at(7).0;

/// Whether any [`OVERFLOW`] counter rose in these increases.
pub fn overflowed(deltas: &BTreeMap<String, u64>) -> bool {
    OVERFLOW.iter().any(|k| deltas.get(*k).copied().unwrap_or(0) > 0)
}

/// Sysctls that govern the accept queue, SYN cookies and keepalive, as
/// their /proc/sys paths under /proc/sys (dots in the name are slashes there).
pub const SYSCTLS: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CounterParseError {
    #[error("line {line}: a header line for {prefix:?} is not followed by its values")]
    MissingValues { line: usize, prefix: String },
    #[error("line {line}: {prefix:?} has {names} names but {values} values")]
    Mismatch {
        line: usize,
        prefix: String,
        names: usize,
        values: usize,
    },
}

/// Parses /proc/net/netstat or /proc/net/snmp into "Prefix.Name" -> value.
/// Values that are not unsigned integers (Tcp.MaxConn is -1) are skipped.
pub fn parse_proc_net_counters(text: &str) -> Result<BTreeMap<String, u64>, CounterParseError> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    while let Some((i, header)) = lines.next() {
        let Some((prefix, names)) = header.split_once(':') else {
            continue;
        };
        let Some((_, values_line)) = lines.next() else {
            return Err(CounterParseError::MissingValues {
                line: i + 1,
                prefix: prefix.to_string(),
            });
        };
        let values = values_line.split_once(':').map(|(_, v)| v).unwrap_or("");
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(CounterParseError::Mismatch {
                line: i + 2,
                prefix: prefix.to_string(),
                names: names.len(),
                values: values.len(),
            });
        }
        for (n, v) in names.iter().zip(values) {
            if let Ok(v) = v.parse::<u64>() {
                out.insert(format!("{prefix}.{n}"), v);
            }
        }
    }
    Ok(out)
}

/// The increase of a counter between two readings. A reading lower than the
/// previous one is a reset (new namespace, reboot) when the previous value
/// was far from a wrap boundary, and a wrap when it was close to 2^32 or
/// 2^64: kernels export some of these as 32-bit and some as 64-bit.
pub fn counter_delta(prev: u64, now: u64) -> u64 {
    if now >= prev {
        return now - prev;
    }
    const W32: u64 = 1 << 32;
    if prev < W32 && prev > W32 - (W32 >> 4) {
        // 32-bit wrap: prev was in the top 1/16 of the 32-bit range.
        return (W32 - prev) + now;
    }
    if prev > u64::MAX - (u64::MAX >> 4) {
        return (u64::MAX - prev) + now + 1;
    }
    // Reset: everything counted since is new.
    now
}

/// Deltas of every tracked counter present in both readings (or only in the
/// new one: a counter that appeared counts from zero).
pub fn deltas(prev: &BTreeMap<String, u64>, now: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(k, &v)| (k.clone(), counter_delta(prev.get(k).copied().unwrap_or(0), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_counters_are_the_listen_and_syncookie_ones() {
        assert_eq!(OVERFLOW.first(), Some(&"TcpExt.ListenOverflows"));
        assert_eq!(OVERFLOW.last(), Some(&"TcpExt.TCPReqQFullDrop"));
        assert!(OVERFLOW.iter().all(|c| c.starts_with("TcpExt.")));
    }
    use proptest::prelude::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops TCPReqQFullDoCookies TCPReqQFullDrop
TcpExt: 190 185 0 965 965 190 0
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
";
    const SNMP: &str = "Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab
Tcp: 1 200 120000 -1 3 200 0 0 15
";

    #[test]
    fn parses_netstat_and_snmp() {
        let m = parse_proc_net_counters(NETSTAT).unwrap();
        assert_eq!(m["TcpExt.ListenOverflows"], 965);
        assert_eq!(m["TcpExt.SyncookiesSent"], 190);
        assert_eq!(m["IpExt.InNoRoutes"], 0);
        let s = parse_proc_net_counters(SNMP).unwrap();
        assert_eq!(s["Tcp.PassiveOpens"], 200);
        assert_eq!(s["Tcp.CurrEstab"], 15);
        assert!(!s.contains_key("Tcp.MaxConn"), "-1 is not a counter");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(matches!(
            parse_proc_net_counters("TcpExt: A B\n"),
            Err(CounterParseError::MissingValues { .. })
        ));
        assert!(matches!(
            parse_proc_net_counters("TcpExt: A B\nTcpExt: 1\n"),
            Err(CounterParseError::Mismatch {
                names: 2,
                values: 1,
                ..
            })
        ));
    }

    #[test]
    fn deltas_handle_growth_reset_and_wraps() {
        assert_eq!(counter_delta(10, 15), 5);
        assert_eq!(counter_delta(10, 10), 0);
        // Reset (namespace recreated): the new value is all new.
        assert_eq!(counter_delta(5_000, 3), 3);
        // 32-bit wrap.
        assert_eq!(counter_delta(u32::MAX as u64 - 4, 5), 10);
        // 64-bit wrap.
        assert_eq!(counter_delta(u64::MAX - 1, 3), 5);
        let prev = BTreeMap::from([("a".to_string(), 1u64)]);
        let now = BTreeMap::from([("a".to_string(), 4u64), ("b".to_string(), 2)]);
        assert_eq!(
            deltas(&prev, &now),
            BTreeMap::from([("a".to_string(), 3), ("b".to_string(), 2)])
        );
    }

    proptest! {
        #[test]
        fn delta_never_exceeds_the_new_reading_plus_wrap_room(prev in any::<u64>(), now in any::<u64>()) {
            let d = counter_delta(prev, now);
            if now >= prev { prop_assert_eq!(d, now - prev); } else { prop_assert!(d <= now.saturating_add(1 << 32) || prev > u64::MAX - (u64::MAX >> 4)); }
        }

        #[test]
        fn parser_never_panics(s in ".{0,400}") {
            let _ = parse_proc_net_counters(&s);
        }
    }
}
