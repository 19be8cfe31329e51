//! An incident from its findings and its server host's samples.
use halfopen_core::{
    ClientProcessCount, FindingKind, GoneReason, Incident, IncidentEnd, Sample, StoredFinding, Subject,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Kinds that count as one-sided connections (the peak).
pub fn one_sided(k: FindingKind) -> bool {
    matches!(k, FindingKind::ClientOnly | FindingKind::ServerOnly)
}

/// The incident `id` made of `findings` (all of it, any order; must not be
/// empty) with `samples` of its server host (any span: those outside the
/// incident are ignored). `now_ms` ends what is still current.
///
/// - `server`: the listener's address when a finding knew it (a wildcard
///   stays a wildcard), else the first finding's server end.
/// - `peak`: the most client_only and server_only findings current at once.
/// - `counters`: the sum of the samples' counter increases within
///   [start, end]; when no sample falls there, the largest increase any
///   finding's evidence saw, per counter (a lower bound).
pub fn summarize(id: &str, findings: &[StoredFinding], samples: &[Sample], now_ms: i64) -> Incident {
    let mut fs: Vec<&StoredFinding> = findings.iter().collect();
    fs.sort_by_key(|f| (f.finding.first_seen_ms, f.id));
    let first = fs.first().map(|f| &f.finding);
    let server_host = first.map(|f| f.subject.server_host().to_string()).unwrap_or_default();
    let server = fs
        .iter()
        .find_map(|f| f.finding.listener_addr())
        .or_else(|| first.map(|f| f.server_end()))
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let start_ms = first.map(|f| f.first_seen_ms).unwrap_or(0);
    let end_ms = fs.iter().try_fold(start_ms, |a, f| f.gone_at_ms.map(|g| a.max(g)));

    // Peak: sweep of [first_seen, end) intervals; ends sort before starts.
    let mut events: Vec<(i64, i64)> = Vec::new();
    for f in fs.iter().filter(|f| one_sided(f.finding.kind)) {
        events.push((f.finding.first_seen_ms, 1));
        events.push((f.end_ms(now_ms).max(f.finding.first_seen_ms), -1));
    }
    events.sort();
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        cur += d;
        peak = peak.max(cur);
    }

    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut procs: BTreeMap<(String, Option<u32>, Option<String>), u64> = BTreeMap::new();
    for f in &fs {
        *kinds.entry(f.finding.kind.as_str().to_string()).or_default() += 1;
        if let Subject::Connection { client_host, .. } = &f.finding.subject {
            let p = f.finding.process.as_ref();
            *procs
                .entry((client_host.clone(), p.map(|p| p.pid), p.map(|p| p.comm.clone())))
                .or_default() += 1;
        }
    }
    let mut client_processes: Vec<ClientProcessCount> = procs
        .into_iter()
        .map(|((client_host, pid, process), count)| ClientProcessCount {
            client_host,
            pid,
            process,
            count,
        })
        .collect();
    ClientProcessCount::sort(&mut client_processes);

    let until = end_ms.unwrap_or(now_ms);
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    let mut sampled = false;
    for s in samples
        .iter()
        .filter(|s| s.host == server_host && s.at_ms >= start_ms && s.at_ms <= until)
    {
        sampled = true;
        for (k, v) in &s.deltas {
            *counters.entry(k.clone()).or_default() += v;
        }
    }
    if !sampled {
        for f in &fs {
            for (k, v) in f.finding.evidence.counters.iter().flat_map(|c| c.deltas.iter()) {
                let e = counters.entry(k.clone()).or_default();
                *e = (*e).max(*v);
            }
        }
    }
    counters.retain(|_, v| *v > 0);

    Incident {
        id: id.to_string(),
        server_host,
        server,
        start_ms,
        end_ms,
        peak: peak as u64,
        findings: fs.len() as u64,
        kinds,
        client_processes,
        counters,
        finding_ids: fs.iter().map(|f| f.id).collect(),
        ended: ended(&fs),
    }
}

fn ended(fs: &[&StoredFinding]) -> IncidentEnd {
    if fs.iter().any(|f| f.gone_at_ms.is_none()) {
        return IncidentEnd::Ongoing;
    }
    let conns: Vec<GoneReason> = fs
        .iter()
        .filter(|f| matches!(f.finding.subject, Subject::Connection { .. }))
        .filter_map(|f| f.gone_reason)
        .collect();
    if conns.is_empty() {
        return IncidentEnd::Recovered;
    }
    let healed = |r: &GoneReason| matches!(r, GoneReason::ServerHasIt | GoneReason::Greeted | GoneReason::Recovered);
    if conns.iter().all(healed) {
        IncidentEnd::Healed
    } else if conns.iter().any(healed) {
        IncidentEnd::Mixed
    } else {
        IncidentEnd::ClientClosed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{conn, listener_risk};
    use halfopen_core::{CounterWindow, ListenerPoint};

    fn sample(host: &str, at_ms: i64, overflows: u64) -> Sample {
        Sample {
            host: host.into(),
            at_ms,
            deltas: [("TcpExt.ListenOverflows".to_string(), overflows)].into(),
            listeners: vec![ListenerPoint {
                addr: "0.0.0.0:3306".parse().unwrap(),
                queue: 5,
                backlog: 4,
                drops: Some(overflows),
            }],
        }
    }

    #[test]
    fn an_incident_in_numbers() {
        let mut fs = vec![
            conn(1, "db", 3306, 1_000, Some(60_000)),
            conn(2, "db", 3306, 2_000, Some(30_000)),
            conn(3, "db", 3306, 40_000, Some(70_000)),
            listener_risk(4, "db", 3306, 500, Some(5_000)),
        ];
        fs[2].finding.process.as_mut().unwrap().pid = 7;
        fs[1].finding.kind = FindingKind::StalledGreeting;
        fs[1].gone_reason = Some(GoneReason::Greeted);
        let samples = vec![
            sample("db", 0, 100),
            sample("db", 1_000, 7),
            sample("db", 6_000, 5),
            sample("db2", 6_000, 1000),
            sample("db", 80_000, 900),
        ];
        let i = summarize("db:3306@x", &fs, &samples, 1_000_000);
        assert_eq!(i.start_ms, 500);
        assert_eq!(i.end_ms, Some(70_000));
        // 1 and 3 overlap (2 is a stalled greeting, not one-sided).
        assert_eq!(i.peak, 2);
        assert_eq!(i.findings, 4);
        assert_eq!(i.server, "0.0.0.0:3306".parse().unwrap());
        assert_eq!(
            i.kinds,
            [
                ("client_only".to_string(), 2),
                ("listener_at_risk".into(), 1),
                ("stalled_greeting".into(), 1)
            ]
            .into()
        );
        let p: Vec<(Option<u32>, u64)> = i.client_processes.iter().map(|p| (p.pid, p.count)).collect();
        assert_eq!(p, [(Some(4242), 2), (Some(7), 1)]);
        assert_eq!(i.counters, [("TcpExt.ListenOverflows".to_string(), 12)].into());
        assert_eq!(i.finding_ids, [4, 1, 2, 3]);
        assert_eq!(i.ended, IncidentEnd::Mixed);
    }

    #[test]
    fn how_it_ended() {
        let now = 1_000_000;
        let open = [conn(1, "db", 3306, 0, None), conn(2, "db", 3306, 0, Some(5))];
        assert_eq!(summarize("x", &open, &[], now).ended, IncidentEnd::Ongoing);
        assert_eq!(summarize("x", &open, &[], now).end_ms, None);
        let closed = [conn(1, "db", 3306, 0, Some(5))];
        assert_eq!(summarize("x", &closed, &[], now).ended, IncidentEnd::ClientClosed);
        let mut healed = conn(1, "db", 3306, 0, Some(5));
        healed.gone_reason = Some(GoneReason::ServerHasIt);
        assert_eq!(summarize("x", &[healed], &[], now).ended, IncidentEnd::Healed);
        let risk = [listener_risk(1, "db", 3306, 0, Some(5))];
        assert_eq!(summarize("x", &risk, &[], now).ended, IncidentEnd::Recovered);
    }

    #[test]
    fn peak_counts_current_findings_until_now_and_touching_ends_do_not_overlap() {
        let fs = [
            conn(1, "db", 3306, 0, Some(10)),
            conn(2, "db", 3306, 10, None),
            conn(3, "db", 3306, 20, None),
        ];
        assert_eq!(summarize("x", &fs, &[], 100).peak, 2);
    }

    #[test]
    fn without_samples_the_evidence_gives_a_lower_bound() {
        let mut fs = vec![conn(1, "db", 3306, 0, Some(10)), conn(2, "db", 3306, 5, Some(10))];
        for (f, n) in fs.iter_mut().zip([40u64, 90]) {
            f.finding.evidence.counters = Some(CounterWindow {
                window_ms: 3_000,
                deltas: [
                    ("TcpExt.ListenOverflows".to_string(), n),
                    ("TcpExt.TCPReqQFullDoCookies".into(), 0),
                ]
                .into(),
            });
        }
        assert_eq!(
            summarize("x", &fs, &[], 100).counters,
            [("TcpExt.ListenOverflows".to_string(), 90)].into()
        );
    }
}
