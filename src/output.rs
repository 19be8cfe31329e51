//! What the CLI prints: JSON objects (contracts for scripts) and human tables,
//! built from plain values so they are tested without a reconciler.
use halfopen_core::{ip_from_wire, Process, SocketRecord, Tuple};
use halfopen_proto::convert::{process_from_wire, tuple_from_wire};
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

/// One finding as `halfopen orphans --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct OrphanJson {
    pub kind: String,
    pub side: String,
    pub client: String,
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
}

pub fn orphan_json(f: &v1::Finding) -> Option<OrphanJson> {
    let t: Tuple = tuple_from_wire(f.tuple.as_ref()?)?;
    let p: Option<Process> = f.process.as_ref().map(process_from_wire);
    Some(OrphanJson {
        kind: f.kind.clone(),
        side: f.kind.clone(),
        client: t.local().to_string(),
        server: t.remote().to_string(),
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
    })
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
        if rows.len() == 1 { "" } else { "s" }
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
            let _ = writeln!(s, "    {:<46} {:<25} CONFIRMED", "CLIENT", "FIRST SEEN");
            for r in list {
                let _ = writeln!(s, "    {:<46} {:<25} {}", r.client, r.first_seen, r.confirmed_at);
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
        addresses: h
            .addresses
            .iter()
            .filter_map(|a| ip_from_wire(a))
            .map(|a| a.to_string())
            .collect(),
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

/// One socket as `halfopen snapshot --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct SnapshotJson {
    pub state: &'static str,
    pub side: &'static str,
    pub local: String,
    pub remote: String,
    pub inode: u64,
    pub uid: u32,
    pub cookie: u64,
    pub keepalive: bool,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_data_recv_ms: Option<u32>,
}

pub fn snapshot_json(r: &SocketRecord, p: Option<&Process>) -> SnapshotJson {
    SnapshotJson {
        state: r.state.name(),
        side: match r.side {
            halfopen_core::Side::Client => "client",
            halfopen_core::Side::Server => "server",
        },
        local: r.tuple.local().to_string(),
        remote: r.tuple.remote().to_string(),
        inode: r.inode,
        uid: r.uid,
        cookie: r.cookie,
        keepalive: r.keepalive,
        pid: p.map(|p| p.pid),
        process: p.map(|p| p.comm.clone()),
        cmdline: p.map(|p| p.cmdline.clone()),
        bytes_received: r.info.map(|i| i.bytes_received),
        bytes_acked: r.info.map(|i| i.bytes_acked),
        last_data_recv_ms: r.info.map(|i| i.last_data_recv_ms),
    }
}

pub fn snapshot_table(rows: &[SnapshotJson]) -> String {
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
