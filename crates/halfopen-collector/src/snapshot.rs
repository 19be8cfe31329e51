//! This host's connection table with owners, for `halfopen snapshot`: one
//! dump and one walk of /proc, run side by side, joined by inode.
use halfopen_core::SourceKind;
use halfopen_core::{Listener, ListenerPorts, Process, SocketRecord, TcpState};
use halfopen_sockets::owners::{Owners, ResolveStats};
use halfopen_sockets::{ScanError, Scanner};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Snapshot {
    pub source: SourceKind,
    /// Each socket with its owner; a process's sockets share one value.
    pub sockets: Vec<(SocketRecord, Option<Arc<Process>>)>,
    pub listeners: Vec<Listener>,
    pub owner_stats: ResolveStats,
}

/// Reads the table of the caller's network namespace.
pub fn snapshot(force_proc: bool, with_info: bool) -> Result<Snapshot, ScanError> {
    let mut scanner = if force_proc {
        Scanner::procnet()
    } else {
        Scanner::open()?
    };
    let source = scanner.source();
    // The /proc walk does not depend on the dump: run them side by side.
    let (scan, (owners, owner_stats)) = std::thread::scope(|s| {
        let walk = s.spawn(|| Owners::new().resolve_all_shared());
        let scan = (|| -> Result<_, ScanError> {
            let mut listeners = Vec::new();
            scanner.listeners(&mut listeners)?;
            let mut recs = Vec::new();
            scanner.scan(TcpState::MATCH_MASK, with_info, &mut recs)?;
            Ok((listeners, recs))
        })();
        let walked = walk.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (scan, walked)
    });
    let (mut listeners, recs) = scan?;
    let owners: HashMap<u64, Arc<Process>> = owners;
    let ports = ListenerPorts::new(listeners.iter().map(|l| l.addr));
    for l in &mut listeners {
        l.process = owners.get(&l.inode).map(|p| Process::clone(p));
    }
    let sockets = recs
        .into_iter()
        .map(|mut r| {
            r.side = ports.side_of(r.tuple.local());
            let p = if r.inode != 0 {
                owners.get(&r.inode).cloned()
            } else {
                None
            };
            (r, p)
        })
        .collect();
    Ok(Snapshot {
        source,
        sockets,
        listeners,
        owner_stats,
    })
}
