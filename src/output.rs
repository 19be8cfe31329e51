//! What the CLI prints: JSON objects (contracts for scripts) and human tables,
//! built from plain values so they are tested without a reconciler.
use halfopen_core::{Diagnosis, Process, SocketRecord, Tuple};
use halfopen_proto::convert::{addrs_from_wire, process_from_wire, tuple_from_wire};
use halfopen_proto::v1;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// RFC 3339, UTC, millisecond precision ("2026-11-25T17:40:01.123Z").
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// One finding as `halfopen orphans --json` and `halfopen findings --json`
/// print it. The fields named by the orphans contract come first.
#[derive(Debug, Serialize, PartialEq)]
pub struct OrphanJson {
    pub kind: String,
    pub side: String,
    /// None for listener_at_risk.
    pub client: Option<String>,
    /// The server endpoint, or the listener for listener_at_risk.
    pub server: String,
    pub client_host: String,
    pub server_host: String,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub cmdline: Option<String>,
    pub uid: Option<u32>,
    pub keepalive: bool,
    pub first_seen: String,
    pub confirmed_at: String,
    pub client_host_stale: bool,
    pub server_pid: Option<u32>,
    pub server_process: Option<String>,
    pub server_cmdline: Option<String>,
    pub listener: Option<String>,
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_accept_queue: Option<bool>,
}

pub fn orphan_json(f: &v1::Finding) -> Option<OrphanJson> {
    let t: Option<Tuple> = match f.tuple.as_ref() {
        Some(t) => Some(tuple_from_wire(t)?),
        None => None,
    };
    let listener = (!f.listener.is_empty()).then(|| f.listener.clone());
    let server = match (t, &listener) {
        (Some(t), _) => t.remote().to_string(),
        (None, Some(l)) => l.clone(),
        (None, None) => return None,
    };
    let p: Option<Process> = f.process.as_ref().map(process_from_wire);
    let sp: Option<Process> = f.server_process.as_ref().map(process_from_wire);
    let stalled = f.kind == "stalled_greeting";
    Some(OrphanJson {
        kind: f.kind.clone(),
        side: match f.kind.as_str() {
            "stalled_greeting" => "both".to_string(),
            "listener_at_risk" => "server".to_string(),
            k => k.to_string(),
        },
        client: t.map(|t| t.local().to_string()),
        server,
        client_host: f.client_host.clone(),
        server_host: f.server_host.clone(),
        pid: p.as_ref().map(|p| p.pid),
        process: p.as_ref().map(|p| p.comm.clone()),
        cmdline: p.as_ref().map(|p| p.cmdline.clone()),
        uid: p.as_ref().map(|p| p.uid),
        keepalive: f.keepalive,
        first_seen: rfc3339(f.first_seen_unix_ms),
        confirmed_at: rfc3339(f.confirmed_at_unix_ms),
        client_host_stale: f.client_host_stale,
        server_pid: sp.as_ref().map(|p| p.pid),
        server_process: sp.as_ref().map(|p| p.comm.clone()),
        server_cmdline: sp.as_ref().map(|p| p.cmdline.clone()),
        listener,
        explanation: f.explanation.clone(),
        silent_ms: stalled.then_some(f.silent_ms),
        in_accept_queue: stalled.then_some(f.in_accept_queue),
    })
}

/// `halfopen findings`: one line per finding with its kind, then why.
pub fn findings_table(rows: &[OrphanJson]) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("No findings: nothing one-sided, stalled or at risk.\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<17} {:<24} {:<24} {:<22} {:<22} {:<25}",
        "KIND", "CLIENT", "SERVER", "CLIENT PROCESS", "SERVER PROCESS", "FIRST SEEN"
    );
    for r in rows {
        let who = |pid: Option<u32>, name: &Option<String>, host: &str| match (pid, name) {
            (Some(pid), Some(n)) => truncate(&format!("{n}[{pid}]@{host}"), 22),
            _ if host.is_empty() => "-".to_string(),
            _ => truncate(&format!("?@{host}"), 22),
        };
        let _ = writeln!(
            s,
            "{:<17} {:<24} {:<24} {:<22} {:<22} {:<25}",
            r.kind,
            r.client.as_deref().unwrap_or("-"),
            r.server,
            who(r.pid, &r.process, &r.client_host),
            who(r.server_pid, &r.server_process, &r.server_host),
            r.first_seen
        );
        if !r.explanation.is_empty() {
            let _ = writeln!(s, "    {}", r.explanation);
        }
    }
    s
}

/// `halfopen explain`: the diagnosis in plain words, then the changes.
pub fn explain_text(d: &[Diagnosis]) -> String {
    let mut s = String::new();
    if d.is_empty() {
        s.push_str("Nothing needs attention: no finding and no listener at risk.\n");
        return s;
    }
    for x in d {
        let _ = writeln!(s, "== {} ({})", x.title, x.target);
        let _ = writeln!(s, "What halfopen sees:");
        for f in &x.facts {
            let _ = writeln!(s, "  - {f}");
        }
        let _ = writeln!(s, "Why:");
        for c in &x.causes {
            let _ = writeln!(s, "  - {c}");
        }
        if !x.changes.is_empty() {
            let _ = writeln!(s, "What to change:");
            for c in &x.changes {
                let _ = writeln!(s, "  - {}: {} -> {}", c.setting, c.current, c.suggested);
                let _ = writeln!(s, "      how: {}", c.how);
            }
        }
        s.push('\n');
    }
    s
}

/// The human table: grouped by server listener, then by client process.
pub fn orphans_table(rows: &[OrphanJson]) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("No half-open connections: every connection to a monitored server is held by both ends.\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{} half-open connection{} (client_only): the client holds them ESTABLISHED, the server host has no trace of them.\n",
        rows.len(),
        plural(rows.len())
    );
    let mut by_server: BTreeMap<(String, String), Vec<&OrphanJson>> = BTreeMap::new();
    for r in rows {
        by_server
            .entry((r.server.clone(), r.server_host.clone()))
            .or_default()
            .push(r);
    }
    for ((server, server_host), list) in by_server {
        let _ = writeln!(
            s,
            "server {server} on {server_host}: {} orphan{}",
            list.len(),
            plural(list.len())
        );
        let mut by_proc: BTreeMap<(String, Option<u32>, String), Vec<&OrphanJson>> = BTreeMap::new();
        for r in list {
            by_proc
                .entry((r.client_host.clone(), r.pid, r.process.clone().unwrap_or_default()))
                .or_default()
                .push(r);
        }
        for ((client_host, pid, comm), list) in by_proc {
            let who = match pid {
                Some(pid) => format!("pid {pid} {comm} (uid {})", list[0].uid.unwrap_or(0)),
                None => "process unknown".to_string(),
            };
            let ka = list.iter().filter(|r| r.keepalive).count();
            let stale = if list.iter().any(|r| r.client_host_stale) {
                ", client host stale"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {who} on {client_host}: {} connection{}, {}{stale}",
                list.len(),
                plural(list.len()),
                if ka == 0 {
                    "no keepalive: they wait forever without an application timeout".to_string()
                } else {
                    format!("{ka} with keepalive")
                }
            );
            if let Some(cmd) = list[0].cmdline.as_deref().filter(|c| !c.is_empty()) {
                let _ = writeln!(s, "    cmdline: {}", truncate(cmd, 120));
            }
            let _ = writeln!(s, "    {:<12} {:<46} {:<25} CONFIRMED", "KIND", "CLIENT", "FIRST SEEN");
            for r in &list {
                let _ = writeln!(
                    s,
                    "    {:<12} {:<46} {:<25} {}",
                    r.kind,
                    r.client.as_deref().unwrap_or("-"),
                    r.first_seen,
                    r.confirmed_at
                );
            }
            if let Some(e) = list.first().map(|r| &r.explanation).filter(|e| !e.is_empty()) {
                let _ = writeln!(s, "    why: {e}");
            }
        }
        s.push('\n');
    }
    s
}

/// One collector as `halfopen hosts --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct HostJson {
    pub host_id: String,
    pub addresses: Vec<String>,
    pub last_report: Option<String>,
    pub sockets: u64,
    pub client_sockets: u64,
    pub server_sockets: u64,
    pub listeners: u32,
    pub stale: bool,
    pub connected: bool,
    pub source: String,
    pub interval_ms: u32,
    pub peer: String,
}

pub fn host_json(h: &v1::HostInfo) -> HostJson {
    HostJson {
        host_id: h.host_id.clone(),
        addresses: addrs_from_wire(&h.addresses).iter().map(|a| a.to_string()).collect(),
        last_report: (h.last_report_unix_ms != 0).then(|| rfc3339(h.last_report_unix_ms)),
        sockets: h.sockets,
        client_sockets: h.client_sockets,
        server_sockets: h.server_sockets,
        listeners: h.listeners,
        stale: h.stale,
        connected: h.connected,
        source: h.source.clone(),
        interval_ms: h.interval_ms,
        peer: h.peer.clone(),
    }
}

pub fn hosts_table(rows: &[HostJson]) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("No collector has connected yet.\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<20} {:<7} {:<26} {:>9} {:>8} {:>8} {:>9} {:<8} ADDRESSES",
        "HOST", "STATE", "LAST REPORT", "SOCKETS", "CLIENT", "SERVER", "LISTENERS", "SOURCE"
    );
    for h in rows {
        let state = if !h.connected {
            "gone"
        } else if h.stale {
            "stale"
        } else {
            "ok"
        };
        let addrs: Vec<&str> = h
            .addresses
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "127.0.0.1" && *a != "::1")
            .collect();
        let _ = writeln!(
            s,
            "{:<20} {:<7} {:<26} {:>9} {:>8} {:>8} {:>9} {:<8} {}",
            truncate(&h.host_id, 20),
            state,
            h.last_report.as_deref().unwrap_or("never"),
            h.sockets,
            h.client_sockets,
            h.server_sockets,
            h.listeners,
            h.source,
            addrs.join(",")
        );
    }
    s
}

/// One socket as `halfopen snapshot --json` prints it. Borrows the record's
/// process; the endpoints are formatted while serializing, not stored.
#[derive(Debug, Serialize, PartialEq)]
pub struct SnapshotJson<'a> {
    pub state: &'static str,
    pub side: &'static str,
    pub local: Endpoint,
    pub remote: Endpoint,
    pub inode: u64,
    pub uid: u32,
    pub cookie: u64,
    pub keepalive: bool,
    pub pid: Option<u32>,
    pub process: Option<&'a str>,
    pub cmdline: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_data_recv_ms: Option<u32>,
}

/// An endpoint that serializes as `SocketAddr`'s Display does
/// ("198.18.0.1:3306", "[2001:db8::1]:443"), IPv4 without going through
/// `fmt` (most of `snapshot --json`'s user time went to that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint(pub std::net::SocketAddr);

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            std::net::SocketAddr::V4(a) => {
                let mut buf = [0u8; 21]; // 255.255.255.255:65535
                let mut n = 0;
                for (i, o) in a.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    n += write_decimal(u32::from(o), &mut buf[n..]);
                }
                buf[n] = b':';
                n += 1;
                n += write_decimal(u32::from(a.port()), &mut buf[n..]);
                s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
            }
            v6 => s.collect_str(&v6),
        }
    }
}

/// Writes `v` in decimal at the start of `out` (which has room); its length.
fn write_decimal(mut v: u32, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    out[..len].copy_from_slice(&tmp[i..]);
    len
}

pub fn snapshot_json<'a>(r: &SocketRecord, p: Option<&'a Process>) -> SnapshotJson<'a> {
    SnapshotJson {
        state: r.state.name(),
        side: match r.side {
            halfopen_core::Side::Client => "client",
            halfopen_core::Side::Server => "server",
        },
        local: Endpoint(r.tuple.local()),
        remote: Endpoint(r.tuple.remote()),
        inode: r.inode,
        uid: r.uid,
        cookie: r.cookie,
        keepalive: r.keepalive,
        pid: p.map(|p| p.pid),
        process: p.map(|p| p.comm.as_str()),
        cmdline: p.map(|p| p.cmdline.as_str()),
        bytes_received: r.info.map(|i| i.bytes_received),
        bytes_acked: r.info.map(|i| i.bytes_acked),
        last_data_recv_ms: r.info.map(|i| i.last_data_recv_ms),
    }
}

pub fn snapshot_table(rows: &[SnapshotJson<'_>]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<11} {:<6} {:<46} {:<46} PROCESS",
        "STATE", "SIDE", "LOCAL", "REMOTE"
    );
    for r in rows {
        let who = match (r.pid, &r.process) {
            (Some(pid), Some(c)) => format!("{c} (pid {pid})"),
            _ if r.inode == 0 && r.state == "ESTAB" => "(in accept queue)".to_string(),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "{:<11} {:<6} {:<46} {:<46} {}",
            r.state, r.side, r.local, r.remote, who
        );
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_proto::convert::tuple_to_wire;

    fn finding(port: u16, pid: Option<u32>) -> v1::Finding {
        v1::Finding {
            kind: "client_only".into(),
            tuple: Some(tuple_to_wire(&Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "[::ffff:198.18.0.1]:3306".parse().unwrap(),
            ))),
            client_host: "app".into(),
            server_host: "db".into(),
            process: pid.map(|pid| v1::Process {
                pid,
                comm: "java".into(),
                cmdline: "java -jar app.jar".into(),
                uid: 1000,
            }),
            first_seen_unix_ms: 1_764_091_201_123,
            confirmed_at_unix_ms: 1_764_091_203_000,
            keepalive: false,
            client_host_stale: false,
            ..Default::default()
        }
    }

    #[test]
    fn orphan_json_has_the_contract_fields() {
        let j = serde_json::to_value(orphan_json(&finding(40001, Some(42))).unwrap()).unwrap();
        assert_eq!(j["client"], "198.18.0.2:40001");
        assert_eq!(j["server"], "198.18.0.1:3306", "IPv4-mapped folded");
        assert_eq!(j["side"], "client_only");
        assert_eq!(j["client_host"], "app");
        assert_eq!(j["server_host"], "db");
        assert_eq!(j["pid"], 42);
        assert_eq!(j["process"], "java");
        assert_eq!(j["cmdline"], "java -jar app.jar");
        assert_eq!(j["uid"], 1000);
        assert_eq!(j["first_seen"], "2025-11-25T17:20:01.123Z");
        assert_eq!(j["confirmed_at"], "2025-11-25T17:20:03.000Z");
        let unknown = serde_json::to_value(orphan_json(&finding(40002, None)).unwrap()).unwrap();
        assert!(unknown["pid"].is_null());
    }

    #[test]
    fn v6_endpoints_are_bracketed() {
        let mut f = finding(1, None);
        f.tuple = Some(tuple_to_wire(&Tuple::new(
            "[2001:db8::2]:40000".parse().unwrap(),
            "[2001:db8::1]:25".parse().unwrap(),
        )));
        let j = orphan_json(&f).unwrap();
        assert_eq!(j.server, "[2001:db8::1]:25");
    }

    #[test]
    fn findings_of_every_kind_print() {
        let mut stalled = finding(40009, Some(42));
        stalled.kind = "stalled_greeting".into();
        stalled.silent_ms = 12_000;
        stalled.in_accept_queue = true;
        stalled.server_process = Some(v1::Process {
            pid: 7,
            comm: "mysqld".into(),
            cmdline: "mysqld".into(),
            uid: 27,
        });
        stalled.explanation = "The client has received nothing for 12 s".into();
        let risk = v1::Finding {
            kind: "listener_at_risk".into(),
            server_host: "db".into(),
            listener: "0.0.0.0:3306".into(),
            explanation: "queue 5/4".into(),
            ..Default::default()
        };
        let rows: Vec<_> = [stalled, risk].iter().filter_map(orphan_json).collect();
        assert_eq!(rows.len(), 2);
        let j = serde_json::to_value(&rows).unwrap();
        assert_eq!(j[0]["kind"], "stalled_greeting");
        assert_eq!(j[0]["server_pid"], 7);
        assert_eq!(j[0]["server_process"], "mysqld");
        assert_eq!(j[0]["in_accept_queue"], true);
        assert_eq!(j[1]["client"], serde_json::Value::Null);
        assert_eq!(j[1]["server"], "0.0.0.0:3306");
        let t = findings_table(&rows);
        assert!(
            t.contains("stalled_greeting") && t.contains("mysqld[7]@db") && t.contains("listener_at_risk"),
            "{t}"
        );
        assert!(t.contains("queue 5/4"));
    }

    #[test]
    fn explain_text_lists_changes() {
        let d = Diagnosis {
            target: "db:3306".into(),
            title: "listener 0.0.0.0:3306 on db".into(),
            facts: vec!["accept queue 5 of 4".into()],
            causes: vec!["A burst overflowed".into()],
            changes: vec![halfopen_core::Change {
                setting: "back_log (mariadbd)".into(),
                current: "4".into(),
                suggested: "512".into(),
                how: "my.cnf".into(),
            }],
        };
        let t = explain_text(&[d]);
        assert!(t.contains("== listener 0.0.0.0:3306 on db (db:3306)"), "{t}");
        assert!(
            t.contains("  - back_log (mariadbd): 4 -> 512\n      how: my.cnf"),
            "{t}"
        );
        assert!(explain_text(&[]).starts_with("Nothing needs attention"));
    }

    #[test]
    fn table_groups_by_server_and_process() {
        let rows: Vec<_> = [
            finding(40001, Some(42)),
            finding(40002, Some(42)),
            finding(40003, Some(43)),
        ]
        .iter()
        .filter_map(orphan_json)
        .collect();
        let t = orphans_table(&rows);
        assert!(t.starts_with("3 half-open connections"), "{t}");
        assert_eq!(t.matches("server 198.18.0.1:3306 on db: 3 orphans").count(), 1, "{t}");
        assert!(t.contains("pid 42 java (uid 1000) on app: 2 connections"), "{t}");
        assert!(t.contains("pid 43 java (uid 1000) on app: 1 connection,"), "{t}");
        assert!(t.contains("198.18.0.2:40003"));
        assert!(orphans_table(&[]).starts_with("No half-open connections"));
    }

    #[test]
    fn hosts_table_shows_state() {
        let h = v1::HostInfo {
            host_id: "db".into(),
            addresses: vec![vec![198, 18, 0, 1], vec![127, 0, 0, 1]],
            last_report_unix_ms: 1_764_091_201_123,
            sockets: 10,
            stale: true,
            connected: true,
            source: "netlink".into(),
            ..Default::default()
        };
        let j = host_json(&h);
        assert_eq!(j.addresses, vec!["198.18.0.1", "127.0.0.1"]);
        let t = hosts_table(&[j]);
        assert!(t.contains("db "), "{t}");
        assert!(t.contains("stale"), "{t}");
        assert!(t.contains("198.18.0.1") && !t.contains("127.0.0.1"), "{t}");
    }
}
