//! Findings as listed (with their evidence) and their kinds.
use super::socket::{process_from_wire, process_to_wire, tuple_from_wire, tuple_to_wire};
use crate::v1;
use halfopen_core::{
    ip_from_wire, parse_endpoint, wire_bytes, CounterWindow, Evidence, Finding, FindingKind, FindingView,
    KeepaliveSysctls, ListenerSample, NatPath, Restart, Subject, Witness,
};
use std::net::SocketAddr;

pub fn evidence_to_wire(e: &Evidence) -> v1::Evidence {
    v1::Evidence {
        listener: e.listener.as_ref().map(|l| v1::ListenerSample {
            ip: wire_bytes(l.addr.ip()),
            port: l.addr.port() as u32,
            queue: l.queue,
            backlog: l.backlog,
            libwrap: l.libwrap,
            drops: l.drops,
        }),
        counters: e.counters.as_ref().map(|c| v1::CounterWindow {
            window_ms: c.window_ms,
            deltas: c.deltas.clone().into_iter().collect(),
        }),
        sysctls: e.sysctls.clone().into_iter().collect(),
        silent_ms: e.silent_ms,
        in_accept_queue: e.in_accept_queue,
        near_full: e.near_full,
        legacy_explanation: e.legacy_explanation.clone(),
        nat: e.nat.as_ref().map(|n| v1::NatPath {
            translated_on: n.translated_on.clone(),
            server: n.server.to_string(),
            seen_as: n.seen_as.to_string(),
        }),
        server_restarted: e.server_restarted.as_ref().map(|r| v1::Restart {
            what: r.what.clone(),
            at_ms: r.at_ms,
        }),
        client_host_gone_since_ms: e.client_host_gone_since_ms,
        accept_wait_ms: e.accept_wait_ms,
        queued: e.queued,
        syn_sent: e.syn_sent,
        client_keepalive: e.client_keepalive.map(|k| v1::KeepaliveSysctls {
            time_s: k.time_s,
            intvl_s: k.intvl_s,
            probes: k.probes,
        }),
        witness: e.witness.as_ref().map(witness_to_wire),
    }
}

pub fn witness_to_wire(w: &Witness) -> v1::Witness {
    v1::Witness {
        at_ms: w.at_ms,
        path: w.path.as_str().to_string(),
        queue: w.queue,
        backlog: w.backlog,
    }
}

/// None when the path is not one this version knows.
pub fn witness_from_wire(w: &v1::Witness) -> Option<Witness> {
    Some(Witness {
        at_ms: w.at_ms,
        path: w.path.parse().ok()?,
        queue: w.queue,
        backlog: w.backlog,
    })
}

/// Evidence; a listener sample or NAT path whose address does not decode is dropped.
pub fn evidence_from_wire(e: &v1::Evidence) -> Evidence {
    Evidence {
        listener: e.listener.as_ref().and_then(|l| {
            Some(ListenerSample {
                addr: SocketAddr::new(ip_from_wire(&l.ip)?, u16::try_from(l.port).ok()?),
                queue: l.queue,
                backlog: l.backlog,
                libwrap: l.libwrap,
                drops: l.drops,
            })
        }),
        counters: e.counters.as_ref().map(|c| CounterWindow {
            window_ms: c.window_ms,
            deltas: c.deltas.clone().into_iter().collect(),
        }),
        sysctls: e.sysctls.clone().into_iter().collect(),
        silent_ms: e.silent_ms,
        in_accept_queue: e.in_accept_queue,
        near_full: e.near_full,
        legacy_explanation: e.legacy_explanation.clone(),
        nat: e.nat.as_ref().and_then(|n| {
            Some(NatPath {
                translated_on: n.translated_on.clone(),
                server: parse_endpoint(&n.server)?,
                seen_as: parse_endpoint(&n.seen_as)?,
            })
        }),
        server_restarted: e.server_restarted.as_ref().map(|r| Restart {
            what: r.what.clone(),
            at_ms: r.at_ms,
        }),
        client_host_gone_since_ms: e.client_host_gone_since_ms,
        accept_wait_ms: e.accept_wait_ms,
        queued: e.queued,
        syn_sent: e.syn_sent,
        client_keepalive: e.client_keepalive.map(|k| KeepaliveSysctls {
            time_s: k.time_s,
            intvl_s: k.intvl_s,
            probes: k.probes,
        }),
        witness: e.witness.as_ref().and_then(witness_from_wire),
    }
}

/// A listed finding, with its explanation (rendered by the caller from the
/// evidence). The flat fields older clients read (`listener`, `silent_ms`,
/// `in_accept_queue`) are filled from the evidence.
pub fn finding_to_wire(v: FindingView, explanation: String) -> v1::Finding {
    let f = v.finding;
    let (client_host, server_host) = match &f.subject {
        Subject::Connection {
            client_host,
            server_host,
            ..
        } => (client_host.clone(), server_host.clone()),
        Subject::Listener { host, .. } => (String::new(), host.clone()),
    };
    v1::Finding {
        kind: f.kind.to_string(),
        tuple: f.tuple().as_ref().map(tuple_to_wire),
        client_host,
        server_host,
        process: f.process.as_ref().map(process_to_wire),
        first_seen_unix_ms: f.first_seen_ms,
        confirmed_at_unix_ms: f.confirmed_at_ms,
        keepalive: f.keepalive,
        client_host_stale: v.client_host_stale,
        server_process: f.server_process.as_ref().map(process_to_wire),
        explanation,
        listener: f.listener_addr().map(|l| l.to_string()).unwrap_or_default(),
        silent_ms: f.evidence.silent_ms.unwrap_or(0),
        in_accept_queue: f.evidence.in_accept_queue.unwrap_or(false),
        evidence: Some(evidence_to_wire(&f.evidence)),
        client_host_gone: v.client_host_gone,
        client_container: v.client_container.clone(),
        client_pod: v.client_pod.clone(),
        server_container: v.server_container.clone(),
        server_pod: v.server_pod.clone(),
    }
}

/// A listed finding and its explanation; None when it does not decode (an
/// unknown kind, a connection without a tuple, a listener without an address).
pub fn finding_from_wire(w: &v1::Finding) -> Option<(FindingView, String)> {
    let kind: FindingKind = w.kind.parse().ok()?;
    let subject = match kind {
        FindingKind::ListenerAtRisk | FindingKind::AcceptStalled => Subject::Listener {
            host: w.server_host.clone(),
            addr: parse_endpoint(&w.listener)?,
        },
        FindingKind::ClientOnly
        | FindingKind::ServerOnly
        | FindingKind::StalledGreeting
        | FindingKind::DroppedHandshake => Subject::Connection {
            tuple: tuple_from_wire(w.tuple.as_ref()?)?,
            client_host: w.client_host.clone(),
            server_host: w.server_host.clone(),
        },
    };
    let mut evidence = w.evidence.as_ref().map(evidence_from_wire).unwrap_or_default();
    // From a reconciler that sends only the flat fields.
    if w.evidence.is_none() && kind == FindingKind::StalledGreeting {
        evidence.silent_ms = Some(w.silent_ms);
        evidence.in_accept_queue = Some(w.in_accept_queue);
    }
    let finding = Finding {
        kind,
        subject,
        cookie: 0,
        process: w.process.as_ref().map(process_from_wire),
        server_process: w.server_process.as_ref().map(process_from_wire),
        keepalive: w.keepalive,
        first_seen_ms: w.first_seen_unix_ms,
        confirmed_at_ms: w.confirmed_at_unix_ms,
        evidence,
    };
    Some((
        FindingView {
            finding,
            client_host_stale: w.client_host_stale,
            client_host_gone: w.client_host_gone,
            client_container: w.client_container.clone(),
            client_pod: w.client_pod.clone(),
            server_container: w.server_container.clone(),
            server_pod: w.server_pod.clone(),
        },
        w.explanation.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::{Process, Tuple};

    #[test]
    fn findings_round_trip_with_their_evidence() {
        let conn = Finding {
            kind: FindingKind::StalledGreeting,
            subject: Subject::Connection {
                tuple: Tuple::new("198.18.0.2:4000".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
                client_host: "app".into(),
                server_host: "db".into(),
            },
            cookie: 0,
            process: None,
            server_process: Some(Process {
                pid: 3,
                comm: "mysqld".into(),
                cmdline: "mysqld".into(),
                uid: 27,
            }),
            keepalive: true,
            first_seen_ms: 1,
            confirmed_at_ms: 2,
            evidence: Evidence {
                listener: Some(ListenerSample {
                    addr: "[::]:3306".parse().unwrap(),
                    queue: 1,
                    backlog: 4,
                    libwrap: true,
                    drops: Some(12),
                }),
                counters: Some(CounterWindow {
                    window_ms: 3000,
                    deltas: [("TcpExt.ListenDrops".to_string(), 4)].into(),
                }),
                sysctls: [("net.core.somaxconn".to_string(), "4096".to_string())].into(),
                silent_ms: Some(12_000),
                in_accept_queue: Some(false),
                nat: Some(NatPath {
                    translated_on: "node-1".into(),
                    server: "198.19.0.2:3306".parse().unwrap(),
                    seen_as: "198.18.0.7:40000".parse().unwrap(),
                }),
                server_restarted: Some(Restart {
                    what: "host rebooted".into(),
                    at_ms: 5,
                }),
                client_host_gone_since_ms: Some(4),
                syn_sent: Some(3),
                client_keepalive: Some(KeepaliveSysctls {
                    time_s: 60,
                    intvl_s: 10,
                    probes: 6,
                }),
                ..Default::default()
            },
        };
        let risk = Finding {
            kind: FindingKind::ListenerAtRisk,
            subject: Subject::Listener {
                host: "db".into(),
                addr: "0.0.0.0:3306".parse().unwrap(),
            },
            evidence: Evidence {
                near_full: Some(true),
                ..Default::default()
            },
            ..conn.clone()
        };
        // A handshake dropped for an unmonitored client: no client host, the witness.
        let dropped = Finding {
            kind: FindingKind::DroppedHandshake,
            subject: Subject::Connection {
                tuple: Tuple::new("198.18.9.9:5000".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
                client_host: String::new(),
                server_host: "db".into(),
            },
            process: None,
            evidence: Evidence {
                witness: Some(Witness {
                    at_ms: 1_700_000_000_000,
                    path: halfopen_core::DropPath::Cookie,
                    queue: 5,
                    backlog: 4,
                }),
                ..Default::default()
            },
            ..conn.clone()
        };
        for f in [conn, risk, dropped] {
            let v = FindingView {
                finding: f,
                client_host_stale: true,
                client_host_gone: false,
                client_container: None,
                client_pod: Some("shop/web-7d9f".into()),
                server_container: Some("mysql-1".into()),
                server_pod: None,
            };
            let w = finding_to_wire(v.clone(), "why".into());
            assert_eq!(finding_from_wire(&w), Some((v, "why".to_string())));
        }
    }

    #[test]
    fn undecodable_findings_are_none() {
        let w = v1::Finding {
            kind: "orphan".into(),
            ..Default::default()
        };
        assert!(finding_from_wire(&w).is_none());
        let w = v1::Finding {
            kind: "client_only".into(),
            ..Default::default()
        };
        assert!(finding_from_wire(&w).is_none(), "a connection needs its tuple");
        // A witness whose path this version does not know is left out, not made up.
        let e = v1::Evidence {
            witness: Some(v1::Witness {
                path: "syn".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(evidence_from_wire(&e).witness, None);
    }
}
