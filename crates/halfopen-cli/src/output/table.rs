//! The human forms: tables and the explain text.
use super::json::{HostJson, OrphanJson, SnapshotJson};
use super::{plural, truncate};
use halfopen_core::{Coverage, Diagnosis};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What an answer did not cover, one sentence each (empty when it covers everything).
pub fn not_covered(c: &Coverage) -> Vec<String> {
    not_covered_raw(c).into_iter().map(super::inert).collect()
}

fn not_covered_raw(c: &Coverage) -> Vec<String> {
    let mut v = Vec::new();
    let list = |names: &[String]| names.join(", ");
    if !c.stale.is_empty() {
        v.push(format!(
            "stale (connected, not reporting), nothing judged against them: {}",
            list(&c.stale)
        ));
    }
    if !c.disconnected.is_empty() {
        v.push(format!(
            "disconnected, nothing judged against them: {}",
            list(&c.disconnected)
        ));
    }
    if !c.gone.is_empty() {
        v.push(format!(
            "gone (away longer than --gone-after); only the leftovers servers still hold from them are reported: {}",
            list(&c.gone)
        ));
    }
    for h in &c.conflicts {
        v.push(format!(
            "host id {h} is claimed by two live collectors: the second is refused and its host is not seen (give each its own --host-id)"
        ));
    }
    for a in &c.shared_addresses {
        v.push(format!(
            "address {} is claimed by {}: connections to it are not judged",
            a.addr,
            a.hosts.join(" and ")
        ));
    }
    if c.unmonitored.connections > 0 {
        let top: Vec<String> = c.unmonitored.top.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
        v.push(format!(
            "{} client connection{} to {} unmonitored server{} {} not judged (no collector covers them: {}{})",
            c.unmonitored.connections,
            plural(c.unmonitored.connections as usize),
            c.unmonitored.servers,
            plural(c.unmonitored.servers as usize),
            if c.unmonitored.connections == 1 { "was" } else { "were" },
            top.join(", "),
            if c.unmonitored.servers as usize > top.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    for b in &c.blind_spots {
        v.push(format!("on {}: {}", b.host, b.what));
    }
    v
}

/// What the reconciler's database is not recording now, in one sentence;
/// None while its writes succeed (or it keeps no database). The live
/// answers are unaffected: this is about the record (history, restarts).
pub fn not_recorded(c: &Coverage) -> Option<String> {
    let st = c.store.as_ref()?;
    let since = st.failing_since_ms?;
    let mut line = format!(
        "the database write is failing since {} ({}); {} record{} waiting, retried until written",
        super::rfc3339(since),
        st.error.as_deref().unwrap_or("unknown error"),
        st.pending,
        plural(st.pending as usize)
    );
    if st.refused > 0 {
        let _ = write!(
            line,
            "; {} refused since start because the queue ({}) was full (the current findings are written again once it catches up)",
            st.refused, st.capacity
        );
    }
    Some(line)
}

/// The coverage after an answer: nothing when complete and recorded, else
/// "Not covered:" and its lines, and "Not recorded:" and why.
fn coverage_footer(c: &Coverage, s: &mut String) {
    let lines = not_covered(c);
    if !lines.is_empty() {
        let _ = writeln!(s, "Not covered ({} of {} hosts fresh):", c.fresh, c.hosts);
        for l in lines {
            let _ = writeln!(s, "  - {l}");
        }
    }
    store_footer(c, s);
}

/// "Not recorded: ..." when the database write fails.
pub fn store_footer(c: &Coverage, s: &mut String) {
    if let Some(l) = not_recorded(c) {
        let _ = writeln!(s, "Not recorded: {l}");
    }
}

/// The all-clear: said of what was covered, with what was not.
fn all_clear(what: &str, c: &Coverage, s: &mut String) {
    if c.complete() {
        let _ = writeln!(
            s,
            "{what} ({} host{}, all reporting).",
            c.hosts,
            plural(c.hosts as usize)
        );
        store_footer(c, s);
    } else {
        let _ = writeln!(s, "{what}, among what halfopen can see.");
        coverage_footer(c, s);
    }
}

/// `halfopen coverage`: what the answers cover.
fn coverage_text_raw(c: &Coverage) -> String {
    let mut s = String::new();
    if c.complete() {
        let _ = writeln!(
            s,
            "Everything is covered: {} host{}, all reporting; no shared address, no unmonitored server, no blind spot.",
            c.hosts,
            plural(c.hosts as usize)
        );
        store_footer(c, &mut s);
    } else {
        coverage_footer(c, &mut s);
    }
    s
}

/// `halfopen findings`: one line per finding with its kind, then why.
fn findings_table_raw(rows: &[OrphanJson], c: &Coverage) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        all_clear("No findings: nothing one-sided, stalled or at risk", c, &mut s);
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
    coverage_footer(c, &mut s);
    s
}

/// `halfopen explain`: the diagnosis in plain words, then the changes.
fn explain_text_raw(d: &[Diagnosis], c: &Coverage) -> String {
    let mut s = String::new();
    if d.is_empty() {
        all_clear("Nothing needs attention: no finding and no listener at risk", c, &mut s);
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
    coverage_footer(c, &mut s);
    s
}

/// The human table: grouped by server listener, then by client process.
fn orphans_table_raw(rows: &[OrphanJson], c: &Coverage) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        all_clear(
            "No half-open connections: every connection to a monitored server is held by both ends",
            c,
            &mut s,
        );
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
            let witnessed: Vec<_> = list.iter().filter_map(|r| r.witness.as_ref()).collect();
            if let Some(first) = witnessed.iter().min_by(|a, b| a.at.cmp(&b.at)) {
                let cookie = witnessed.iter().filter(|w| w.path == "cookie").count();
                let _ = writeln!(
                    s,
                    "    witnessed: the server's kernel dropped {} of these on a full accept queue (first at {}, \
                     queue {} of {}; {} on the SYN-cookie path, {} on the normal path)",
                    witnessed.len(),
                    first.at,
                    first.queue,
                    first.backlog,
                    cookie,
                    witnessed.len() - cookie
                );
            }
            if let Some(e) = list.first().map(|r| &r.explanation).filter(|e| !e.is_empty()) {
                let _ = writeln!(s, "    why: {e}");
            }
        }
        s.push('\n');
    }
    coverage_footer(c, &mut s);
    s
}

fn hosts_table_raw(rows: &[HostJson]) -> String {
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
        let state = if h.gone {
            "gone"
        } else if !h.connected {
            "down"
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
        if let Some(parent) = &h.parent {
            let mut of = vec![format!(
                "network namespace {} of {parent}",
                h.netns.as_deref().unwrap_or("?")
            )];
            of.extend(h.pod.as_ref().map(|p| format!("pod {p}")));
            of.extend(h.container.as_ref().map(|c| format!("container {c}")));
            let _ = writeln!(s, "    {}", of.join(", "));
        }
        if let Some(c) = &h.conflict {
            let _ = writeln!(s, "    ! conflict: {c}");
        }
        if !h.shared_addresses.is_empty() {
            let _ = writeln!(
                s,
                "    ! {} also claimed by another live host: connections to it are not judged",
                h.shared_addresses.join(",")
            );
        }
        for b in &h.blind_spots {
            let _ = writeln!(s, "    ! cannot see: {b}");
        }
    }
    s
}

fn snapshot_table_raw(rows: &[SnapshotJson<'_>]) -> String {
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

/// [`coverage_text_raw`] with control characters made inert (see [`super::inert`]).
pub fn coverage_text(c: &Coverage) -> String {
    super::inert(coverage_text_raw(c))
}

/// [`findings_table_raw`] with control characters made inert (see [`super::inert`]).
pub fn findings_table(rows: &[OrphanJson], c: &Coverage) -> String {
    super::inert(findings_table_raw(rows, c))
}

/// [`explain_text_raw`] with control characters made inert (see [`super::inert`]).
pub fn explain_text(d: &[Diagnosis], c: &Coverage) -> String {
    super::inert(explain_text_raw(d, c))
}

/// [`orphans_table_raw`] with control characters made inert (see [`super::inert`]).
pub fn orphans_table(rows: &[OrphanJson], c: &Coverage) -> String {
    super::inert(orphans_table_raw(rows, c))
}

/// [`hosts_table_raw`] with control characters made inert (see [`super::inert`]).
pub fn hosts_table(rows: &[HostJson]) -> String {
    super::inert(hosts_table_raw(rows))
}

/// [`snapshot_table_raw`] with control characters made inert (see [`super::inert`]).
pub fn snapshot_table(rows: &[SnapshotJson<'_>]) -> String {
    super::inert(snapshot_table_raw(rows))
}
