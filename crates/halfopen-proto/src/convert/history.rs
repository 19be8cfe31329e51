//! Postmortems on the wire: stored findings, incidents, samples.
use super::finding::{finding_from_wire, finding_to_wire};
use crate::v1;
use halfopen_core::{
    parse_endpoint, ClientProcessCount, FindingView, Incident, IncidentEnd, ListenerPoint, Sample, StoredFinding,
};

pub fn stored_to_wire(s: StoredFinding) -> v1::StoredFinding {
    v1::StoredFinding {
        gone_at_unix_ms: s.gone_at_ms,
        gone_reason: s.gone_reason.map(|g| g.as_str().to_string()).unwrap_or_default(),
        incident: s.incident.unwrap_or_default(),
        id: s.id,
        finding: Some(finding_to_wire(
            FindingView {
                finding: s.finding,
                client_host_stale: false,
                client_host_gone: false,
                client_container: None,
                client_pod: None,
                server_container: None,
                server_pod: None,
            },
            s.explanation,
        )),
    }
}

/// None when its finding does not decode; an unknown gone reason is None.
pub fn stored_from_wire(w: &v1::StoredFinding) -> Option<StoredFinding> {
    let (v, explanation) = finding_from_wire(w.finding.as_ref()?)?;
    Some(StoredFinding {
        id: w.id,
        finding: v.finding,
        gone_at_ms: w.gone_at_unix_ms,
        gone_reason: w.gone_reason.parse().ok(),
        explanation,
        incident: (!w.incident.is_empty()).then(|| w.incident.clone()),
    })
}

pub fn incident_end_str(e: IncidentEnd) -> &'static str {
    match e {
        IncidentEnd::Ongoing => "ongoing",
        IncidentEnd::Healed => "healed",
        IncidentEnd::ClientClosed => "client_closed",
        IncidentEnd::Mixed => "mixed",
        IncidentEnd::Recovered => "recovered",
    }
}

fn incident_end_from(s: &str) -> Option<IncidentEnd> {
    Some(match s {
        "ongoing" => IncidentEnd::Ongoing,
        "healed" => IncidentEnd::Healed,
        "client_closed" => IncidentEnd::ClientClosed,
        "mixed" => IncidentEnd::Mixed,
        "recovered" => IncidentEnd::Recovered,
        _ => return None,
    })
}

pub fn incident_to_wire(i: &Incident) -> v1::Incident {
    v1::Incident {
        id: i.id.clone(),
        server_host: i.server_host.clone(),
        server: i.server.to_string(),
        start_unix_ms: i.start_ms,
        end_unix_ms: i.end_ms,
        peak: i.peak,
        findings: i.findings,
        kinds: i.kinds.clone().into_iter().collect(),
        client_processes: i
            .client_processes
            .iter()
            .map(|p| v1::ClientProcessCount {
                client_host: p.client_host.clone(),
                pid: p.pid,
                process: p.process.clone(),
                count: p.count,
            })
            .collect(),
        counters: i.counters.clone().into_iter().collect(),
        ended: incident_end_str(i.ended).to_string(),
    }
}

/// None when its server address or end does not decode. `finding_ids` are
/// not on the wire (the findings come with the incident when asked).
pub fn incident_from_wire(w: &v1::Incident) -> Option<Incident> {
    let mut client_processes: Vec<ClientProcessCount> = w
        .client_processes
        .iter()
        .map(|p| ClientProcessCount {
            client_host: p.client_host.clone(),
            pid: p.pid,
            process: p.process.clone(),
            count: p.count,
        })
        .collect();
    ClientProcessCount::sort(&mut client_processes);
    Some(Incident {
        id: w.id.clone(),
        server_host: w.server_host.clone(),
        server: parse_endpoint(&w.server)?,
        start_ms: w.start_unix_ms,
        end_ms: w.end_unix_ms,
        peak: w.peak,
        findings: w.findings,
        kinds: w.kinds.clone().into_iter().collect(),
        client_processes,
        counters: w.counters.clone().into_iter().collect(),
        finding_ids: Vec::new(),
        ended: incident_end_from(&w.ended)?,
    })
}

pub fn sample_to_wire(s: &Sample) -> v1::Sample {
    v1::Sample {
        host: s.host.clone(),
        at_unix_ms: s.at_ms,
        deltas: s.deltas.clone().into_iter().collect(),
        listeners: s
            .listeners
            .iter()
            .map(|l| v1::ListenerPoint {
                addr: l.addr.to_string(),
                queue: l.queue,
                backlog: l.backlog,
                drops: l.drops,
            })
            .collect(),
    }
}

/// Listeners whose address does not decode are left out.
pub fn sample_from_wire(w: &v1::Sample) -> Sample {
    Sample {
        host: w.host.clone(),
        at_ms: w.at_unix_ms,
        deltas: w.deltas.clone().into_iter().collect(),
        listeners: w
            .listeners
            .iter()
            .filter_map(|l| {
                Some(ListenerPoint {
                    addr: parse_endpoint(&l.addr)?,
                    queue: l.queue,
                    backlog: l.backlog,
                    drops: l.drops,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::{Evidence, Finding, FindingKind, GoneReason, Subject, Tuple};

    #[test]
    fn postmortems_round_trip() {
        let s = StoredFinding {
            id: 9,
            finding: Finding {
                kind: FindingKind::ClientOnly,
                subject: Subject::Connection {
                    tuple: Tuple::new("198.18.0.2:4000".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
                    client_host: "app".into(),
                    server_host: "db".into(),
                },
                cookie: 0,
                process: None,
                server_process: None,
                keepalive: false,
                first_seen_ms: 1,
                confirmed_at_ms: 2,
                evidence: Evidence::default(),
            },
            gone_at_ms: Some(3),
            gone_reason: Some(GoneReason::ServerHasIt),
            explanation: "why".into(),
            incident: Some("db:3306@19700101T000000Z".into()),
        };
        assert_eq!(stored_from_wire(&stored_to_wire(s.clone())), Some(s));
        let i = Incident {
            id: "db:3306@19700101T000000Z".into(),
            server_host: "db".into(),
            server: "0.0.0.0:3306".parse().unwrap(),
            start_ms: 1,
            end_ms: None,
            peak: 4,
            findings: 5,
            kinds: [("client_only".to_string(), 5)].into(),
            client_processes: vec![ClientProcessCount {
                client_host: "app".into(),
                pid: Some(7),
                process: Some("php".into()),
                count: 5,
            }],
            counters: [("TcpExt.ListenOverflows".to_string(), 9)].into(),
            finding_ids: vec![],
            ended: IncidentEnd::Ongoing,
        };
        assert_eq!(incident_from_wire(&incident_to_wire(&i)), Some(i));
        let sample = Sample {
            host: "db".into(),
            at_ms: 5,
            deltas: [("TcpExt.ListenOverflows".to_string(), 9)].into(),
            listeners: vec![ListenerPoint {
                addr: "[::]:3306".parse().unwrap(),
                queue: 1,
                backlog: 2,
                drops: None,
            }],
        };
        assert_eq!(sample_from_wire(&sample_to_wire(&sample)), sample);
    }
}
