//! Single protobuf messages from the other end of a gRPC stream, decoded
//! with prost and converted by `halfopen_proto::convert`, as each receiver
//! does:
//! - [`collector_message`]: what the reconciler receives from a collector
//!   (`ingest.rs`);
//! - [`reconciler_message`]: what a collector receives from the reconciler
//!   (`session.rs`);
//! - [`query_response`]: what the CLI receives from the reconciler
//!   (`commands/{findings,hosts,explain}.rs`).
//!
//! Checked: every record is either decoded or counted as bad; decoded
//! values are canonical (IPv4-mapped addresses folded, as `Tuple` and
//! `canonical_ip` promise); and a decoded value encodes and decodes back to
//! itself, so the two ends of the wire agree on everything that decodes.
use std::net::{IpAddr, SocketAddr};

use halfopen_core::{canonical_ip, Report, Tuple};
use halfopen_proto::convert::{
    diagnosis_from_wire, diagnosis_to_wire, finding_from_wire, finding_to_wire, hello_from_wire, hello_to_wire,
    host_from_wire, host_to_wire, incident_from_wire, incident_to_wire, lookup_from_wire, lookup_reply_from_wire,
    lookup_reply_to_wire, lookup_to_wire, report_chunk_to_wire, report_from_wire, sample_from_wire, sample_to_wire,
    stored_from_wire, stored_to_wire, wants_from_wire, wants_to_wire,
};
use halfopen_proto::v1;
use prost::Message as _;

/// A tuple is canonical when building it again from its endpoints changes
/// nothing.
pub fn assert_canonical_tuple(t: &Tuple) {
    assert_eq!(*t, Tuple::new(t.local(), t.remote()), "non-canonical tuple");
    assert_eq!(t.local_ip(), canonical_ip(t.local_ip()));
    assert_eq!(t.remote_ip(), canonical_ip(t.remote_ip()));
}

pub fn assert_canonical_ip(ip: IpAddr) {
    assert_eq!(ip, canonical_ip(ip), "non-canonical address");
}

pub fn assert_canonical_addr(a: SocketAddr) {
    assert_canonical_ip(a.ip());
}

/// A `halfopen.v1.CollectorMessage` as the reconciler decodes it.
pub fn collector_message(data: &[u8]) {
    let Ok(m) = v1::CollectorMessage::decode(data) else {
        return;
    };
    match m.msg {
        Some(v1::collector_message::Msg::Hello(w)) => {
            let h = hello_from_wire(&w);
            assert!(h.addresses.len() <= w.addresses.len());
            h.addresses.iter().copied().for_each(assert_canonical_ip);
            assert_eq!(hello_from_wire(&hello_to_wire(&h)), h, "Hello round trip");
        }
        Some(v1::collector_message::Msg::Report(w)) => check_report(w),
        Some(v1::collector_message::Msg::LookupReply(w)) => {
            let (answers, bad) = lookup_reply_from_wire(&w);
            assert_eq!(answers.len() + bad, w.results.len());
            for a in &answers {
                assert_canonical_tuple(&a.tuple);
            }
            let again = lookup_reply_from_wire(&lookup_reply_to_wire(w.id, &answers));
            assert_eq!(again, (answers, 0), "LookupReply round trip");
        }
        None => {}
    }
}

fn check_report(w: v1::Report) {
    let total =
        w.upserted.len() + w.removed.len() + w.listeners.len() + w.silent.len() + w.nat.len() + w.nat_removed.len();
    let addresses = w.addresses.len();
    let (r, bad) = report_from_wire(w);
    let decoded =
        r.upserted.len() + r.removed.len() + r.listeners.len() + r.silent.len() + r.nat.len() + r.nat_removed.len();
    assert_eq!(decoded + bad, total, "every record is decoded or counted as bad");
    assert!(r.addresses.len() <= addresses);
    r.upserted.iter().for_each(|s| assert_canonical_tuple(&s.tuple));
    r.removed.iter().for_each(assert_canonical_tuple);
    r.silent.iter().for_each(|s| assert_canonical_tuple(&s.tuple));
    r.listeners.iter().for_each(|l| assert_canonical_addr(l.addr));
    r.addresses.iter().copied().for_each(assert_canonical_ip);

    // One last chunk carries everything: it decodes back to the same report.
    let mut copy = r.clone();
    let wire = report_chunk_to_wire(&mut copy, 0..r.upserted.len(), 0..r.removed.len(), r.seq, true);
    let want = Report { last_chunk: true, ..r };
    assert_eq!(report_from_wire(wire), (want, 0), "Report round trip");
}

/// A `halfopen.v1.ReconcilerMessage` as a collector decodes it.
pub fn reconciler_message(data: &[u8]) {
    let Ok(m) = v1::ReconcilerMessage::decode(data) else {
        return;
    };
    match m.msg {
        Some(v1::reconciler_message::Msg::Lookup(l)) => {
            let (tuples, bad) = lookup_from_wire(&l);
            assert_eq!(tuples.len() + bad, l.tuples.len());
            tuples.iter().for_each(assert_canonical_tuple);
            let again = lookup_from_wire(&lookup_to_wire(l.id, &tuples, l.attribute));
            assert_eq!(again, (tuples, 0), "Lookup round trip");
        }
        Some(v1::reconciler_message::Msg::Config(c)) => {
            let wants = wants_from_wire(&c);
            assert!(wants.greeting_ports.len() <= c.greeting_ports.len());
            assert_eq!(wants_from_wire(&wants_to_wire(&wants)), wants, "Config round trip");
        }
        Some(v1::reconciler_message::Msg::Resync(_)) | None => {}
    }
}

/// The answers the CLI decodes: the first byte says which (0 ListOrphans,
/// 1 ListHosts, 2 Explain, 3 History, 4 Incidents, 5 Incident, modulo 6),
/// the rest is the message.
pub fn query_response(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            let Ok(r) = v1::ListOrphansResponse::decode(body) else {
                return;
            };
            for w in &r.findings {
                let Some((view, explanation)) = finding_from_wire(w) else {
                    continue;
                };
                let f = &view.finding;
                if let Some(t) = f.tuple() {
                    assert_canonical_tuple(&t);
                }
                if let Some(a) = f.listener_addr() {
                    assert_canonical_addr(a);
                }
                assert_eq!(f.kind.is_connection(), f.tuple().is_some());
                let again = finding_from_wire(&finding_to_wire(view.clone(), explanation.clone()));
                assert_eq!(again, Some((view, explanation)), "Finding round trip");
            }
        }
        1 => {
            let Ok(r) = v1::ListHostsResponse::decode(body) else {
                return;
            };
            for w in &r.hosts {
                let h = host_from_wire(w);
                h.addresses.iter().copied().for_each(assert_canonical_ip);
                assert_eq!(host_from_wire(&host_to_wire(&h)), h, "HostInfo round trip");
            }
        }
        2 => {
            let Ok(r) = v1::ExplainResponse::decode(body) else {
                return;
            };
            for w in r.diagnoses {
                let d = diagnosis_from_wire(w);
                assert_eq!(diagnosis_from_wire(diagnosis_to_wire(&d)), d, "Diagnosis round trip");
            }
        }
        3 => {
            let Ok(r) = v1::HistoryResponse::decode(body) else {
                return;
            };
            for w in &r.findings {
                if let Some(s) = stored_from_wire(w) {
                    if let Some(t) = s.finding.tuple() {
                        assert_canonical_tuple(&t);
                    }
                    let again = stored_from_wire(&stored_to_wire(s.clone()));
                    assert_eq!(
                        again.map(|a| (a.id, a.gone_at_ms, a.incident)),
                        Some((s.id, s.gone_at_ms, s.incident))
                    );
                }
            }
        }
        4 => {
            let Ok(r) = v1::IncidentsResponse::decode(body) else {
                return;
            };
            for w in &r.incidents {
                if let Some(i) = incident_from_wire(w) {
                    assert_canonical_addr(i.server);
                    assert_eq!(
                        incident_from_wire(&incident_to_wire(&i)),
                        Some(i),
                        "Incident round trip"
                    );
                }
            }
        }
        _ => {
            let Ok(r) = v1::IncidentResponse::decode(body) else {
                return;
            };
            for w in &r.samples {
                let sample = sample_from_wire(w);
                sample.listeners.iter().for_each(|l| assert_canonical_addr(l.addr));
                assert_eq!(sample_from_wire(&sample_to_wire(&sample)), sample, "Sample round trip");
            }
        }
    }
}
