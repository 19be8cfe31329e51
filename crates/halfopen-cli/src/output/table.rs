//! The human forms: tables and the explain text.
use super::json::{HostJson, OrphanJson, SnapshotJson};
use super::{plural, truncate};
use halfopen_core::Diagnosis;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
