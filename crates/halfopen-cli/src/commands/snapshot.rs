//! `halfopen snapshot`: this host's connections as the collector sees them,
//! with sides and owners, like `ss -tnp` (read directly, no reconciler).
use crate::output;
use anyhow::{Context, Result};

pub fn run(json: bool, info: bool, proc_net: bool) -> Result<()> {
    let snap = halfopen_collector::snapshot::snapshot(proc_net, info).context("reading this host's sockets")?;
    let rows = snap.sockets.iter().map(|(r, p)| output::snapshot_json(r, p.as_deref()));
    if json {
        // Streamed: no list of rows and no whole document in memory.
        use serde::ser::Serializer as _;
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        serde_json::Serializer::new(&mut out).collect_seq(rows)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        let mut rows: Vec<_> = rows.collect();
        rows.sort_by_cached_key(|r| (r.side, r.local.to_string(), r.remote.to_string()));
        print!("{}", output::snapshot_table(&rows));
        eprintln!(
            "{} sockets, {} listeners, read through {}",
            rows.len(),
            snap.listeners.len(),
            snap.source
        );
    }
    // Unreadable /proc entries matter when a socket's owner is unknown
    // because of them (a process nobody may inspect may hold no socket).
    let unowned = snap.sockets.iter().filter(|(r, p)| r.inode != 0 && p.is_none()).count();
    if snap.owner_stats.permission_errors > 0 && unowned > 0 {
        eprintln!(
            "warning: owners of {unowned} sockets unknown: {} /proc entries could not be read (permission denied); run as root",
            snap.owner_stats.permission_errors
        );
    }
    if let Some(e) = &snap.owner_stats.first_error {
        eprintln!(
            "warning: {} unexpected errors reading /proc (their processes are not shown); first: {e}",
            snap.owner_stats.other_errors
        );
    }
    Ok(())
}
