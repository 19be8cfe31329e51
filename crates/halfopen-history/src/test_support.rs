//! Findings for the tests.
use halfopen_core::{
    Evidence, Finding, FindingKind, GoneReason, ListenerSample, Process, StoredFinding, Subject, Tuple,
};

pub fn conn(id: i64, host: &str, port: u16, first_seen_ms: i64, gone_at_ms: Option<i64>) -> StoredFinding {
    let client = format!("198.18.0.2:{}", 40_000 + id).parse().unwrap();
    let server = format!("198.18.0.1:{port}").parse().unwrap();
    StoredFinding {
        id,
        finding: Finding {
            kind: FindingKind::ClientOnly,
            subject: Subject::Connection {
                tuple: Tuple::new(client, server),
                client_host: "app".into(),
                server_host: host.into(),
            },
            cookie: id as u64,
            process: Some(Process {
                pid: 4242,
                comm: "php-fpm".into(),
                cmdline: "php-fpm: pool www".into(),
                uid: 33,
            }),
            server_process: None,
            keepalive: false,
            first_seen_ms,
            confirmed_at_ms: first_seen_ms + 2_000,
            evidence: Evidence {
                listener: Some(ListenerSample {
                    addr: format!("0.0.0.0:{port}").parse().unwrap(),
                    queue: 5,
                    backlog: 4,
                    libwrap: false,
                    drops: Some(3),
                }),
                ..Default::default()
            },
        },
        gone_at_ms,
        gone_reason: gone_at_ms.map(|_| GoneReason::ClientClosed),
        explanation: String::new(),
        incident: None,
    }
}

pub fn listener_risk(id: i64, host: &str, port: u16, first_seen_ms: i64, gone_at_ms: Option<i64>) -> StoredFinding {
    let mut f = conn(id, host, port, first_seen_ms, gone_at_ms);
    f.finding.kind = FindingKind::ListenerAtRisk;
    f.finding.subject = Subject::Listener {
        host: host.into(),
        addr: format!("0.0.0.0:{port}").parse().unwrap(),
    };
    f.finding.process = None;
    f.finding.cookie = 0;
    f.gone_reason = gone_at_ms.map(|_| GoneReason::Recovered);
    f
}
