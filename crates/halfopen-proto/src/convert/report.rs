//! The collector's messages (Hello, Report, lookup answers) and the
//! reconciler's (Lookup, Config).
use super::decode_all;
use super::socket::{addrs_from_wire, addrs_to_wire, listener_from_wire, listener_to_wire, process_from_wire};
use super::socket::{process_to_wire, socket_from_wire, socket_to_wire, tuple_from_wire, tuple_to_wire};
use crate::v1;
use halfopen_core::{
    DropWitness, FoundSocket, Hello, Instance, LookupAnswer, NatEntry, NatState, Report, ReportStats, SilentSocket,
    TcpState, Tuple, Wants,
};

pub fn hello_to_wire(h: &Hello) -> v1::Hello {
    v1::Hello {
        host_id: h.host_id.clone(),
        addresses: addrs_to_wire(&h.addresses),
        interval_ms: h.interval_ms,
        source: h.source.to_string(),
        version: h.version.clone(),
        instance: Some(v1::Instance {
            machine_id: h.instance.machine_id.clone(),
            boot_id: h.instance.boot_id.clone(),
            netns: h.instance.netns,
            pid: h.instance.pid,
        }),
        blind_spots: h.blind_spots.clone(),
        parent: h.parent.clone(),
        netns_name: h.netns_name.clone(),
        container: h.container.clone(),
        pod: h.pod.clone(),
    }
}

pub fn nat_to_wire(n: &NatEntry) -> v1::NatEntry {
    v1::NatEntry {
        original: Some(tuple_to_wire(&n.original)),
        reply: Some(tuple_to_wire(&n.reply)),
    }
}

pub fn nat_from_wire(n: &v1::NatEntry) -> Option<NatEntry> {
    Some(NatEntry {
        original: tuple_from_wire(n.original.as_ref()?)?,
        reply: tuple_from_wire(n.reply.as_ref()?)?,
    })
}

/// A Hello; an unknown source name (a newer collector) reads as netlink,
/// which only affects what `halfopen hosts` shows.
pub fn hello_from_wire(h: &v1::Hello) -> Hello {
    Hello {
        host_id: h.host_id.clone(),
        addresses: addrs_from_wire(&h.addresses),
        interval_ms: h.interval_ms,
        source: h.source.parse().unwrap_or_default(),
        version: h.version.clone(),
        instance: h
            .instance
            .as_ref()
            .map(|i| Instance {
                machine_id: i.machine_id.clone(),
                boot_id: i.boot_id.clone(),
                netns: i.netns,
                pid: i.pid,
            })
            .unwrap_or_default(),
        blind_spots: h.blind_spots.clone(),
        parent: h.parent.clone(),
        netns_name: h.netns_name.clone(),
        container: h.container.clone(),
        pod: h.pod.clone(),
    }
}

/// One wire message of a report: these ranges of its records, and (taken
/// out of `r`) the host-level part when `last` (see the collector's chunking).
pub fn report_chunk_to_wire(
    r: &mut Report,
    upserted: std::ops::Range<usize>,
    removed: std::ops::Range<usize>,
    seq: u64,
    last: bool,
) -> v1::Report {
    let mut w = v1::Report {
        seq,
        full: r.full,
        last_chunk: last || !r.full,
        taken_at_unix_ms: r.taken_at_ms,
        upserted: r.upserted[upserted].iter().map(socket_to_wire).collect(),
        removed: r.removed[removed].iter().map(tuple_to_wire).collect(),
        ..Default::default()
    };
    if last {
        w.listeners = r.listeners.iter().map(listener_to_wire).collect();
        w.counters = std::mem::take(&mut r.counters).into_iter().collect();
        w.sysctls = std::mem::take(&mut r.sysctls).into_iter().collect();
        w.silent = r
            .silent
            .iter()
            .map(|s| v1::SilentSocket {
                tuple: Some(tuple_to_wire(&s.tuple)),
                silent_ms: s.silent_ms,
                process: s.process.as_ref().map(process_to_wire),
            })
            .collect();
        w.nat = r.nat.iter().map(nat_to_wire).collect();
        w.nat_removed = r.nat_removed.iter().map(tuple_to_wire).collect();
        let (state, error) = match &r.nat_state {
            NatState::Visible => (v1::NatState::Visible, String::new()),
            NatState::Absent => (v1::NatState::Absent, String::new()),
            NatState::Unknown(e) => (v1::NatState::Unknown, e.clone()),
        };
        w.nat_state = state as i32;
        w.nat_error = error;
        w.witnessed = r
            .witnessed
            .iter()
            .map(|d| v1::DropWitness {
                tuple: Some(tuple_to_wire(&d.tuple)),
                witness: Some(super::finding::witness_to_wire(&d.evidence())),
            })
            .collect();
        w.stats = Some(v1::ScanStats {
            sockets: r.stats.sockets,
            scan_us: r.stats.scan_us,
            owners_vanished: r.stats.owners_vanished,
            permission_errors: r.stats.permission_errors,
        });
        w.addresses = addrs_to_wire(&r.addresses);
        w.blind_spots = r.blind_spots.as_ref().map(|b| v1::BlindSpots { items: b.clone() });
    }
    w
}

/// Decodes a report; records that do not decode are counted and skipped.
pub fn report_from_wire(r: v1::Report) -> (Report, usize) {
    let mut bad = 0;
    let stats = r.stats.unwrap_or_default();
    let report = Report {
        seq: r.seq,
        full: r.full,
        last_chunk: r.last_chunk,
        upserted: decode_all(&r.upserted, &mut bad, socket_from_wire),
        removed: decode_all(&r.removed, &mut bad, tuple_from_wire),
        listeners: decode_all(&r.listeners, &mut bad, listener_from_wire),
        addresses: addrs_from_wire(&r.addresses),
        counters: r.counters.into_iter().collect(),
        sysctls: r.sysctls.into_iter().collect(),
        silent: decode_all(&r.silent, &mut bad, |s| {
            Some(SilentSocket {
                tuple: tuple_from_wire(s.tuple.as_ref()?)?,
                silent_ms: s.silent_ms,
                process: s.process.as_ref().map(process_from_wire),
            })
        }),
        nat: decode_all(&r.nat, &mut bad, nat_from_wire),
        nat_removed: decode_all(&r.nat_removed, &mut bad, tuple_from_wire),
        nat_state: match v1::NatState::try_from(r.nat_state).unwrap_or(v1::NatState::Unspecified) {
            v1::NatState::Visible => NatState::Visible,
            v1::NatState::Unknown => NatState::Unknown(r.nat_error.clone()),
            // Unspecified: a collector that reads no conntrack (older, or a
            // chunk that is not the last): nothing is known to be translated.
            v1::NatState::Absent | v1::NatState::Unspecified => NatState::Absent,
        },
        witnessed: decode_all(&r.witnessed, &mut bad, |d| {
            let w = super::finding::witness_from_wire(d.witness.as_ref()?)?;
            Some(DropWitness {
                tuple: tuple_from_wire(d.tuple.as_ref()?)?,
                at_ms: w.at_ms,
                path: w.path,
                queue: w.queue,
                backlog: w.backlog,
            })
        }),
        stats: ReportStats {
            sockets: stats.sockets,
            scan_us: stats.scan_us,
            owners_vanished: stats.owners_vanished,
            permission_errors: stats.permission_errors,
        },
        taken_at_ms: r.taken_at_unix_ms,
        blind_spots: r.blind_spots.map(|b| b.items),
    };
    (report, bad)
}

pub fn lookup_to_wire(id: u64, tuples: &[Tuple], attribute: bool) -> v1::Lookup {
    v1::Lookup {
        id,
        tuples: tuples.iter().map(tuple_to_wire).collect(),
        attribute,
    }
}

/// The tuples of a lookup; those that do not decode are counted in the
/// second value (the reconciler asks again for what is not answered).
pub fn lookup_from_wire(l: &v1::Lookup) -> (Vec<Tuple>, usize) {
    let mut bad = 0;
    let t = decode_all(&l.tuples, &mut bad, tuple_from_wire);
    (t, bad)
}

pub fn lookup_reply_to_wire(id: u64, answers: &[LookupAnswer]) -> v1::LookupReply {
    v1::LookupReply {
        id,
        results: answers
            .iter()
            .map(|a| v1::LookupResult {
                tuple: Some(tuple_to_wire(&a.tuple)),
                present: a.socket.is_some(),
                state: a.socket.map(|s| s.state as u32).unwrap_or(0),
                cookie: a.socket.map(|s| s.cookie).unwrap_or(0),
                process: a.process.as_ref().map(process_to_wire),
                keepalive: a.socket.is_some_and(|s| s.keepalive),
                translated: a.translated.as_ref().map(nat_to_wire),
            })
            .collect(),
    }
}

/// Decodes a lookup answer; results that do not decode (or say "present" in
/// no known state) are counted and skipped: the engine asks again for what
/// was not answered.
pub fn lookup_reply_from_wire(r: &v1::LookupReply) -> (Vec<LookupAnswer>, usize) {
    let mut bad = 0;
    let results = decode_all(&r.results, &mut bad, |x| {
        let socket = if x.present {
            Some(FoundSocket {
                state: TcpState::from_kernel(u8::try_from(x.state).ok()?)?,
                cookie: x.cookie,
                keepalive: x.keepalive,
            })
        } else {
            None
        };
        let translated = match &x.translated {
            Some(n) => Some(nat_from_wire(n)?),
            None => None,
        };
        Some(LookupAnswer {
            tuple: tuple_from_wire(x.tuple.as_ref()?)?,
            socket,
            process: x.process.as_ref().map(process_from_wire),
            translated,
        })
    });
    (results, bad)
}

pub fn wants_to_wire(w: &Wants) -> v1::Config {
    v1::Config {
        greeting_ports: w.greeting_ports.iter().map(|&p| p as u32).collect(),
        stall_after_ms: w.stall_after_ms,
    }
}

/// Ports above 65535 are dropped.
pub fn wants_from_wire(c: &v1::Config) -> Wants {
    Wants {
        greeting_ports: c.greeting_ports.iter().filter_map(|&p| u16::try_from(p).ok()).collect(),
        stall_after_ms: c.stall_after_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::{Listener, Process, Side, SocketRecord};

    fn rec(port: u16) -> SocketRecord {
        SocketRecord {
            tuple: Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "198.18.0.1:3306".parse().unwrap(),
            ),
            state: TcpState::Established,
            side: Side::Client,
            cookie: port as u64,
            inode: 1,
            uid: 0,
            keepalive: true,
            info: None,
        }
    }

    #[test]
    fn a_report_round_trips_through_one_last_chunk() {
        let mut r = Report {
            seq: 7,
            full: true,
            last_chunk: true,
            upserted: vec![rec(1), rec(2)],
            removed: vec![],
            listeners: vec![Listener {
                addr: "0.0.0.0:3306".parse().unwrap(),
                queue: 1,
                backlog: 4,
                inode: 3,
                uid: 0,
                process: Some(Process {
                    pid: 1,
                    comm: "mysqld".into(),
                    cmdline: "mysqld".into(),
                    uid: 27,
                }),
                libwrap: true,
                drops: None,
            }],
            addresses: vec!["198.18.0.2".parse().unwrap()],
            counters: [("TcpExt.ListenOverflows".to_string(), 5)].into(),
            sysctls: [("net.core.somaxconn".to_string(), "4096".to_string())].into(),
            silent: vec![SilentSocket {
                tuple: rec(1).tuple,
                silent_ms: 12_000,
                process: None,
            }],
            nat: vec![NatEntry {
                original: rec(1).tuple,
                reply: Tuple::new("198.19.0.2:3306".parse().unwrap(), "198.18.0.2:1".parse().unwrap()),
            }],
            nat_removed: vec![],
            nat_state: NatState::Unknown("no CAP_NET_ADMIN".into()),
            witnessed: vec![DropWitness {
                tuple: rec(2).tuple.mirror(),
                at_ms: 1_700_000_000_500,
                path: halfopen_core::DropPath::Normal,
                queue: 5,
                backlog: 4,
            }],
            stats: ReportStats {
                sockets: 2,
                scan_us: 10,
                owners_vanished: 1,
                permission_errors: 0,
            },
            taken_at_ms: 99,
            blind_spots: Some(vec!["network namespace x: cannot enter".into()]),
        };
        let want = r.clone();
        let w = report_chunk_to_wire(&mut r, 0..2, 0..0, 7, true);
        assert_eq!(report_from_wire(w), (want, 0));
        // An empty list is a list (every spot cleared), not "unchanged".
        let mut cleared = Report {
            last_chunk: true,
            blind_spots: Some(Vec::new()),
            ..Default::default()
        };
        let w = report_chunk_to_wire(&mut cleared, 0..0, 0..0, 1, true);
        assert_eq!(report_from_wire(w).0.blind_spots, Some(Vec::new()));
        let mut unchanged = Report::default();
        let w = report_chunk_to_wire(&mut unchanged, 0..0, 0..0, 1, true);
        assert_eq!(report_from_wire(w).0.blind_spots, None);
    }

    #[test]
    fn a_namespace_hello_round_trips() {
        let h = Hello {
            host_id: "node-1/shop/web-7d9f".into(),
            addresses: vec!["198.18.1.2".parse().unwrap()],
            interval_ms: 1000,
            version: "0.1.0".into(),
            parent: Some("node-1".into()),
            netns_name: Some("shop/web-7d9f".into()),
            container: None,
            pod: Some("shop/web-7d9f".into()),
            ..Default::default()
        };
        assert_eq!(hello_from_wire(&hello_to_wire(&h)), h);
        let own = Hello {
            host_id: "node-1".into(),
            ..Default::default()
        };
        assert_eq!(hello_from_wire(&hello_to_wire(&own)), own);
    }

    #[test]
    fn lookup_answers_round_trip_and_bad_ones_are_counted() {
        let mut translated = LookupAnswer::from_record(rec(3).tuple, None, None);
        translated.translated = Some(NatEntry {
            original: rec(3).tuple.mirror(),
            reply: Tuple::new("198.19.0.2:3306".parse().unwrap(), "198.18.0.2:3".parse().unwrap()),
        });
        let a = vec![
            LookupAnswer::from_record(rec(1).tuple, Some(&rec(1)), None),
            LookupAnswer::from_record(rec(2).tuple, None, None),
            translated,
        ];
        let mut w = lookup_reply_to_wire(3, &a);
        assert_eq!(lookup_reply_from_wire(&w), (a, 0));
        w.results[0].state = 99;
        w.results[1].tuple = None;
        assert_eq!(lookup_reply_from_wire(&w).1, 2);
    }
}
