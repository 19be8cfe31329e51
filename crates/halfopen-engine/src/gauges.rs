//! What the engine holds now, counted for monitoring: current findings per
//! (kind, server host, listener), every host's freshness and listeners, the
//! engine's counters, and the findings confirmed and ended per kind since
//! start. Plain data, computed by a pure read of the engine
//! ([`Engine::metrics_snapshot`]); the reconciler publishes it for its
//! metrics endpoint. The engine itself imports no metrics library.
//!
//! Every key is bounded by what is monitored (hosts, their listeners, the
//! kinds and reasons): never a tuple, a client port or a pid.
use crate::{Clock, Engine, EngineStats};
use halfopen_core::{FindingKind, GoneReason};
use std::collections::HashMap;
use std::net::SocketAddr;

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub stats: EngineStats,
    /// Candidates waiting for confirmation now.
    pub candidates: u64,
    /// Every host the engine knows, sorted by name.
    pub hosts: Vec<HostGauges>,
    /// Current findings, one entry per (kind, server host, listener) with at
    /// least one finding, sorted.
    pub findings: Vec<FindingCount>,
    /// Findings confirmed since start, per kind (every kind, in
    /// [`FindingKind::ALL`] order). A finding confirmed again with new
    /// evidence is not counted twice.
    pub confirmed: Vec<(FindingKind, u64)>,
    /// Findings that ended since start, per kind and reason (only pairs
    /// that happened, sorted).
    pub gone: Vec<(FindingKind, GoneReason, u64)>,
}

/// One host as monitoring sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostGauges {
    pub name: String,
    /// Fresh: connected, its full table in place, and a report within its
    /// stale limit; findings are judged against it.
    pub up: bool,
    pub connected: bool,
    /// Disconnected for longer than `gone_after`.
    pub gone: bool,
    /// Reconciler wall clock of its last report, ms since the epoch.
    pub last_report_ms: Option<i64>,
    /// Sockets in its table by side.
    pub client_sockets: u64,
    pub server_sockets: u64,
    /// Its listeners as last reported; empty while it is disconnected (what
    /// it listens on is not known then).
    pub listeners: Vec<ListenerGauges>,
}

/// One listener of a host, as its collector last reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerGauges {
    /// Canonical listening address (`0.0.0.0:3306`, `[::]:443`).
    pub addr: SocketAddr,
    /// Accept queue length (`ss -tln` Recv-Q).
    pub queue: u32,
    /// Accept queue limit (`ss -tln` Send-Q).
    pub backlog: u32,
    /// The socket's absolute drop counter (sk_drops, sock_diag
    /// SK_MEMINFO_DROPS); None when the collector's source cannot read it.
    pub drops: Option<u64>,
}

/// Current findings of one kind on one listener.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingCount {
    pub kind: FindingKind,
    /// The server's host (the listener's host for listener findings).
    pub server_host: String,
    /// The listener the connections were made to (as its host reported it)
    /// when known, else the server end of the connection (NAT applied):
    /// either way an address of the server, never a client's.
    pub listener: SocketAddr,
    pub count: u64,
}

impl Engine {
    /// See [`MetricsSnapshot`]. Linear in hosts, listeners and findings
    /// (no allocation per finding); meant to run about once a second.
    pub fn metrics_snapshot(&self, now: Clock) -> MetricsSnapshot {
        let mut hosts: Vec<HostGauges> = (0..self.hosts.len())
            .filter_map(|h| {
                let x = self.hosts.get(h)?;
                let (client_sockets, server_sockets) = x.table.counts();
                Some(HostGauges {
                    name: x.name.clone(),
                    up: !self.hosts.is_stale(h, now, &self.cfg),
                    connected: x.connected,
                    gone: self.hosts.is_gone(h, now, &self.cfg),
                    last_report_ms: x.last_report.map(|c| c.wall_ms),
                    client_sockets,
                    server_sockets,
                    listeners: if x.connected {
                        x.listeners
                            .iter()
                            .map(|l| ListenerGauges {
                                addr: l.addr,
                                queue: l.queue,
                                backlog: l.backlog,
                                drops: l.drops,
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));

        let mut groups: HashMap<(FindingKind, &str, SocketAddr), u64> = HashMap::new();
        for f in self.findings.iter() {
            let listener = f.listener_addr().unwrap_or_else(|| f.server_end());
            *groups.entry((f.kind, f.subject.server_host(), listener)).or_insert(0) += 1;
        }
        let mut findings: Vec<FindingCount> = groups
            .into_iter()
            .map(|((kind, server_host, listener), count)| FindingCount {
                kind,
                server_host: server_host.to_string(),
                listener,
                count,
            })
            .collect();
        findings.sort();

        MetricsSnapshot {
            stats: self.stats(),
            candidates: self.candidate_count() as u64,
            hosts,
            findings,
            confirmed: FindingKind::ALL
                .iter()
                .map(|&k| (k, self.findings.confirmed_of(k)))
                .collect(),
            gone: self.findings.gone_by_kind(),
        }
    }
}
