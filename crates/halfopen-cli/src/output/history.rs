//! `halfopen history` and `halfopen incidents` for people (tables) and for
//! spreadsheets (CSV).
use super::json::{HistoryJson, IncidentJson};
use super::{plural, truncate};
use std::fmt::Write as _;

/// The window an answer covers, as said above it.
pub struct Window<'a> {
    pub since: &'a str,
    pub until: &'a str,
}

fn history_table_raw(rows: &[HistoryJson], w: &Window) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        let _ = writeln!(s, "No findings between {} and {}.", w.since, w.until);
        return s;
    }
    let _ = writeln!(
        s,
        "{} finding{} alive between {} and {}:",
        rows.len(),
        plural(rows.len()),
        w.since,
        w.until
    );
    let _ = writeln!(
        s,
        "{:<24} {:<24} {:<17} {:<24} {:<24} {:<22} {:<16} INCIDENT",
        "FIRST SEEN", "GONE", "KIND", "CLIENT", "SERVER", "CLIENT PROCESS", "HOW IT ENDED"
    );
    for r in rows {
        let f = &r.finding;
        let who = match (f.pid, &f.process) {
            (Some(pid), Some(n)) => truncate(&format!("{n}[{pid}]@{}", f.client_host), 22),
            _ if f.client_host.is_empty() => "-".to_string(),
            _ => truncate(&format!("?@{}", f.client_host), 22),
        };
        let _ = writeln!(
            s,
            "{:<24} {:<24} {:<17} {:<24} {:<24} {:<22} {:<16} {}",
            f.first_seen,
            r.gone_at.as_deref().unwrap_or("(current)"),
            f.kind,
            f.client.as_deref().unwrap_or("-"),
            f.server,
            who,
            r.gone_reason.as_deref().unwrap_or("-"),
            r.incident.as_deref().unwrap_or("-"),
        );
    }
    s
}

/// CSV with a header row: the columns a spreadsheet needs; `--json` has
/// everything.
pub fn history_csv(rows: &[HistoryJson]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "kind",
        "client",
        "server",
        "client_host",
        "server_host",
        "pid",
        "process",
        "cmdline",
        "server_pid",
        "server_process",
        "listener",
        "first_seen",
        "confirmed_at",
        "gone_at",
        "gone_reason",
        "incident",
        "explanation",
        "witness_at",
        "witness_path",
    ])?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for r in rows {
        let f = &r.finding;
        w.write_record([
            f.kind.clone(),
            opt(f.client.clone()),
            f.server.clone(),
            f.client_host.clone(),
            f.server_host.clone(),
            opt(f.pid.map(|p| p.to_string())),
            opt(f.process.clone()),
            opt(f.cmdline.clone()),
            opt(f.server_pid.map(|p| p.to_string())),
            opt(f.server_process.clone()),
            opt(f.listener.clone()),
            f.first_seen.clone(),
            f.confirmed_at.clone(),
            opt(r.gone_at.clone()),
            opt(r.gone_reason.clone()),
            opt(r.incident.clone()),
            f.explanation.clone(),
            opt(f.witness.as_ref().map(|w| w.at.clone())),
            opt(f.witness.as_ref().map(|w| w.path.clone())),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn incidents_table_raw(rows: &[IncidentJson], w: &Window, truncated: bool) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        let _ = writeln!(s, "No incidents between {} and {}.", w.since, w.until);
        return s;
    }
    let _ = writeln!(
        s,
        "{} incident{} between {} and {}:",
        rows.len(),
        plural(rows.len()),
        w.since,
        w.until
    );
    let _ = writeln!(
        s,
        "{:<34} {:<24} {:<10} {:<22} {:>5} {:>8}  {:<14} MOST AFFECTED",
        "ID", "START", "DURATION", "SERVER", "PEAK", "FINDINGS", "ENDED"
    );
    for r in rows {
        let top = r
            .client_processes
            .first()
            .map(|p| match (&p.process, p.pid) {
                (Some(n), Some(pid)) => format!("{n}[{pid}]@{} ×{}", p.client_host, p.count),
                _ => format!("?@{} ×{}", p.client_host, p.count),
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "{:<34} {:<24} {:<10} {:<22} {:>5} {:>8}  {:<14} {}",
            r.id,
            r.start,
            duration(r.duration_s),
            truncate(&format!("{}@{}", r.server, r.server_host), 22),
            r.peak,
            r.findings,
            r.ended,
            top
        );
    }
    if truncated {
        let _ = writeln!(s, "More incidents matched: narrow the window with --since/--until.");
    }
    let _ = writeln!(
        s,
        "Postmortem of one: halfopen incident ID [--format markdown] [--plot FILE.svg]"
    );
    s
}

/// "45s", "12m05s", "3h02m", "2d04h".
pub fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// [`history_table_raw`] with control characters made inert (see [`super::inert`]).
pub fn history_table(rows: &[HistoryJson], w: &Window) -> String {
    super::inert(history_table_raw(rows, w))
}

/// [`incidents_table_raw`] with control characters made inert (see [`super::inert`]).
pub fn incidents_table(rows: &[IncidentJson], w: &Window, truncated: bool) -> String {
    super::inert(incidents_table_raw(rows, w, truncated))
}
