//! The JSON rows scripts read (contracts: field names and their order are
//! kept; fields are only ever added): a finding as `findings --json` prints
//! it, a stored finding as `history --json` prints it, an incident as
//! `incidents --json` prints it.
use crate::rfc3339;
use halfopen_core::{Evidence, FindingKind, FindingView, Incident, StoredFinding};
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// The data the finding was confirmed on (listener, queue and backlog,
    /// counter increases and their window, sysctls, silent time).
    pub evidence: Evidence,
    /// What the client dialed (differs from `server` when NAT translated it;
    /// None for a listener).
    pub dialed: Option<String>,
    /// The client's host is gone (disconnected longer than --gone-after).
    pub client_host_gone: bool,
    /// Whether the client's side confirmed it (false for a leftover of a
    /// gone host, which only the server could confirm; None for a listener).
    pub confirmed_by_client: Option<bool>,
    /// The container and Kubernetes pod (`namespace/name`) whose network
    /// namespace the client host and the server host are; null when unknown
    /// or not one (a machine's own namespace).
    pub client_container: Option<String>,
    pub client_pod: Option<String>,
    pub server_container: Option<String>,
    pub server_pod: Option<String>,
    /// The server's kernel witnessed this connection's handshake being
    /// dropped on a full accept queue (eBPF source on the server host):
    /// when, by which path, and the queue against its backlog then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessJson>,
}

/// `witness` in a finding row.
#[derive(Debug, Serialize, PartialEq)]
pub struct WitnessJson {
    /// RFC 3339, the server host's clock.
    pub at: String,
    /// "cookie" (a SYN cookie answered: the server kept nothing) or
    /// "normal" (a request socket remains and may still complete).
    pub path: String,
    pub queue: u32,
    pub backlog: u32,
}

/// A listed finding and its explanation as printed.
pub fn orphan_json(v: &FindingView, explanation: String) -> OrphanJson {
    let f = &v.finding;
    let p = f.process.as_ref();
    let sp = f.server_process.as_ref();
    let stalled = f.kind == halfopen_core::FindingKind::StalledGreeting;
    OrphanJson {
        kind: f.kind.to_string(),
        side: f.kind.side_label().to_string(),
        client: f.subject.client_end().map(|c| c.to_string()),
        server: f.server_end().to_string(),
        client_host: f.subject.client_host().unwrap_or("").to_string(),
        server_host: f.subject.server_host().to_string(),
        pid: p.map(|p| p.pid),
        process: p.map(|p| p.comm.clone()),
        cmdline: p.map(|p| p.cmdline.clone()),
        uid: p.map(|p| p.uid),
        keepalive: f.keepalive,
        first_seen: rfc3339(f.first_seen_ms),
        confirmed_at: rfc3339(f.confirmed_at_ms),
        client_host_stale: v.client_host_stale,
        server_pid: sp.map(|p| p.pid),
        server_process: sp.map(|p| p.comm.clone()),
        server_cmdline: sp.map(|p| p.cmdline.clone()),
        listener: f.listener_addr().map(|l| l.to_string()),
        explanation,
        silent_ms: stalled.then(|| f.evidence.silent_ms.unwrap_or(0)),
        in_accept_queue: stalled.then(|| f.evidence.in_accept_queue.unwrap_or(false)),
        evidence: f.evidence.clone(),
        dialed: f.tuple().map(|t| t.remote().to_string()),
        client_host_gone: v.client_host_gone,
        confirmed_by_client: f
            .kind
            .is_connection()
            .then_some(f.evidence.client_host_gone_since_ms.is_none() && f.kind != FindingKind::DroppedHandshake),
        witness: f.evidence.witness.map(|w| WitnessJson {
            at: rfc3339(w.at_ms),
            path: w.path.as_str().to_string(),
            queue: w.queue,
            backlog: w.backlog,
        }),
        client_container: v.client_container.clone(),
        client_pod: v.client_pod.clone(),
        server_container: v.server_container.clone(),
        server_pod: v.server_pod.clone(),
    }
}

/// One finding as `halfopen history --json` prints it: the fields of
/// `findings --json`, then its end and incident.
#[derive(Debug, Serialize, PartialEq)]
pub struct HistoryJson {
    #[serde(flatten)]
    pub finding: OrphanJson,
    /// RFC 3339; null while current.
    pub gone_at: Option<String>,
    /// closed, other_end_has_it, replaced, greeted, recovered, host_gone,
    /// expired; null while current.
    pub gone_reason: Option<String>,
    /// Its incident's id (`HOST:PORT@START`); null for rows from before
    /// incidents.
    pub incident: Option<String>,
}

pub fn history_json(s: &StoredFinding) -> HistoryJson {
    let v = FindingView {
        finding: s.finding.clone(),
        client_host_stale: false,
        client_host_gone: s.finding.evidence.client_host_gone_since_ms.is_some(),
        client_container: None,
        client_pod: None,
        server_container: None,
        server_pod: None,
    };
    HistoryJson {
        finding: orphan_json(&v, s.explanation.clone()),
        gone_at: s.gone_at_ms.map(rfc3339),
        gone_reason: s.gone_reason.map(|g| g.as_str().to_string()),
        incident: s.incident.clone(),
    }
}

/// A client process an incident affected.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClientProcessJson {
    pub client_host: String,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub count: u64,
}

/// One incident as `halfopen incidents --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct IncidentJson {
    pub id: String,
    /// RFC 3339.
    pub start: String,
    /// RFC 3339; null while ongoing.
    pub end: Option<String>,
    /// The listener `ip:port`.
    pub server: String,
    pub server_host: String,
    /// Most one-sided connections (client_only + server_only) at once.
    pub peak: u64,
    /// How many findings.
    pub findings: u64,
    pub kinds: BTreeMap<String, u64>,
    pub client_processes: Vec<ClientProcessJson>,
    /// Counter name -> increase over the incident.
    pub counters: BTreeMap<String, u64>,
    /// ongoing, healed, client_closed, mixed, recovered.
    pub ended: String,
    /// Seconds from start to end (or to now while ongoing).
    pub duration_s: u64,
}

/// `now_ms` ends the duration of an ongoing incident.
pub fn incident_json(i: &Incident, now_ms: i64) -> IncidentJson {
    IncidentJson {
        id: i.id.clone(),
        start: rfc3339(i.start_ms),
        end: i.end_ms.map(rfc3339),
        server: i.server.to_string(),
        server_host: i.server_host.clone(),
        peak: i.peak,
        findings: i.findings,
        kinds: i.kinds.clone(),
        client_processes: i
            .client_processes
            .iter()
            .map(|p| ClientProcessJson {
                client_host: p.client_host.clone(),
                pid: p.pid,
                process: p.process.clone(),
                count: p.count,
            })
            .collect(),
        counters: i.counters.clone(),
        ended: ended_str(i.ended).to_string(),
        duration_s: ((i.end_ms.unwrap_or(now_ms) - i.start_ms).max(0) / 1000) as u64,
    }
}

pub fn ended_str(e: halfopen_core::IncidentEnd) -> &'static str {
    use halfopen_core::IncidentEnd::*;
    match e {
        Ongoing => "ongoing",
        Healed => "healed",
        ClientClosed => "client_closed",
        Mixed => "mixed",
        Recovered => "recovered",
    }
}
