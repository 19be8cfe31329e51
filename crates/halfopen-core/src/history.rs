//! What the store keeps for postmortems, as plain data: findings with their
//! lifetime ([`StoredFinding`]), samples of a host's listeners and counters
//! over time ([`Sample`]), and [`Incident`]s (findings that belong together,
//! grouped by halfopen-history).
use crate::finding::{Finding, GoneReason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A finding as the store has it: current or gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFinding {
    /// The store's row id (stable for the database's life).
    pub id: i64,
    pub finding: Finding,
    /// Reconciler wall clock when it went away, ms; None while current.
    pub gone_at_ms: Option<i64>,
    pub gone_reason: Option<GoneReason>,
    /// The explanation as rendered when it was recorded.
    pub explanation: String,
    /// The incident it belongs to (halfopen-history assigns it when the
    /// finding is first recorded); None for rows from before incidents.
    pub incident: Option<String>,
}

impl StoredFinding {
    /// When it ended, or `now_ms` while it is current.
    pub fn end_ms(&self, now_ms: i64) -> i64 {
        self.gone_at_ms.unwrap_or(now_ms)
    }
}

/// One listener in a sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerPoint {
    pub addr: SocketAddr,
    /// Accept queue length and limit (`ss -tln` Recv-Q / Send-Q).
    pub queue: u32,
    pub backlog: u32,
    /// Drops the kernel counted on this listening socket (sk_drops,
    /// SK_MEMINFO_DROPS), absolute; None when the source cannot read it.
    pub drops: Option<u64>,
}

/// A host's listeners and TCP counters at one report, kept while the host
/// has current findings or its overflow counters rise, and around that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub host: String,
    /// Reconciler wall clock, ms.
    pub at_ms: i64,
    /// Counter increases since the host's previous report
    /// ("TcpExt.ListenOverflows" -> n).
    pub deltas: BTreeMap<String, u64>,
    pub listeners: Vec<ListenerPoint>,
}

/// A client process an incident affected, with how many of its connections.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ClientProcessCount {
    pub client_host: String,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub count: u64,
}

impl ClientProcessCount {
    /// Most affected first; a known process before an unknown one with the
    /// same count; then by host, pid and name.
    pub fn sort(v: &mut [ClientProcessCount]) {
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| b.pid.is_some().cmp(&a.pid.is_some()))
                .then_with(|| a.cmp(b))
        });
    }
}

/// How an incident ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentEnd {
    /// Still open: some of its findings are current.
    Ongoing,
    /// Every one-sided connection healed (the other end has it now).
    Healed,
    /// The clients closed them (or their hosts went away).
    ClientClosed,
    /// Some healed, some were closed.
    Mixed,
    /// It had only listener findings (at risk, accept stalled), and the
    /// listener is back to normal.
    Recovered,
}

/// Findings on one server listener that belong together: overlapping in
/// time, or separated by less than the gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// Stable for the database's life: `HOST:PORT@START` (START is the first
    /// finding's first sighting, RFC 3339 basic, UTC, seconds).
    pub id: String,
    pub server_host: String,
    /// The listener (`ip:port`), or the server end when no listener was known.
    pub server: SocketAddr,
    /// First sighting of its first finding, ms.
    pub start_ms: i64,
    /// When its last finding ended; None while ongoing.
    pub end_ms: Option<i64>,
    /// Most one-sided connections (client_only + server_only) at once.
    pub peak: u64,
    /// Findings in it, and per kind.
    pub findings: u64,
    pub kinds: BTreeMap<String, u64>,
    pub client_processes: Vec<ClientProcessCount>,
    /// Increases of the server host's counters over the incident.
    pub counters: BTreeMap<String, u64>,
    /// The store ids of its findings, in order of first sighting.
    pub finding_ids: Vec<i64>,
    pub ended: IncidentEnd,
}

/// Everything `halfopen incident` renders: the incident, its findings (in
/// order of first sighting) and its server host's samples around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postmortem {
    pub incident: Incident,
    pub findings: Vec<StoredFinding>,
    /// From a little before the start to a little after the end, at most a
    /// few thousand (evenly thinned when there were more).
    pub samples: Vec<Sample>,
}
