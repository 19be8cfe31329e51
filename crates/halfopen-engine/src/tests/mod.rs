//! Engine tests, split as the engine is: unit flows per module and a
//! property test that plays random interleavings of snapshots, deltas and
//! lookups against a simulated world. This module holds the shared helpers.
use crate::*;
use halfopen_core::{Evidence, Finding, FindingKind, SilentSocket, Subject};
use halfopen_core::{ExplainTarget, Instance};
use halfopen_core::{
    FoundSocket, Hello, Listener, LookupAnswer, Process, Report, Side, SocketRecord, SourceKind, TcpState, Tuple,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

mod confirm;
mod diagnose;
mod field;
mod gauges;
mod ingest;
mod interleavings;
mod limits;
mod netns;
mod paging;
mod risk;
mod stalled;
mod witness;

const S_IP: &str = "198.18.0.1";
const C_IP: &str = "198.18.0.2";

fn clk(ms: u64) -> Clock {
    Clock {
        mono_ms: ms,
        wall_ms: 1_700_000_000_000 + ms as i64,
    }
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn rec(local: SocketAddr, remote: SocketAddr, side: Side, state: TcpState, cookie: u64) -> SocketRecord {
    SocketRecord {
        tuple: Tuple::new(local, remote),
        state,
        side,
        cookie,
        inode: 0,
        uid: 0,
        keepalive: false,
        info: None,
    }
}

fn hello(name: &str, ip: &str) -> Hello {
    Hello {
        host_id: name.into(),
        addresses: vec![ip.parse().unwrap(), "127.0.0.1".parse().unwrap()],
        interval_ms: 1000,
        source: SourceKind::Netlink,
        version: "test".into(),
        instance: Instance {
            machine_id: format!("machine-of-{name}"),
            boot_id: "boot-1".into(),
            netns: 1,
            pid: 1,
        },
        blind_spots: Vec::new(),
        ..Default::default()
    }
}

fn full(seq: u64, recs: Vec<SocketRecord>) -> Report {
    Report {
        seq,
        full: true,
        last_chunk: true,
        upserted: recs,
        ..Default::default()
    }
}

/// Answers every lookup in `actions` from the given tables (tuple -> (state, cookie)).
fn answer(
    e: &mut Engine,
    actions: Vec<Action>,
    tables: &HashMap<HostIdx, HashMap<Tuple, (TcpState, u64)>>,
    sessions: &HashMap<HostIdx, u64>,
    now: Clock,
) -> Vec<Action> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Lookup { host, id, tuples, .. } => {
                let t = &tables[&host];
                let results = tuples
                    .iter()
                    .map(|tu| {
                        let hit = t.get(tu);
                        LookupAnswer {
                            tuple: *tu,
                            socket: hit.map(|h| FoundSocket {
                                state: h.0,
                                cookie: h.1,
                                keepalive: false,
                            }),
                            process: hit.map(|_| Process {
                                pid: 42,
                                comm: "java".into(),
                                cmdline: "java -jar app.jar".into(),
                                uid: 1000,
                            }),
                            translated: None,
                        }
                    })
                    .collect();
                out.extend(e.lookup_reply(host, sessions[&host], id, results, now));
            }
            other => out.push(other),
        }
    }
    out
}

fn confirmed(actions: &[Action]) -> Vec<Finding> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Confirmed(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

struct TwoHosts {
    e: Engine,
    s: HostIdx,
    c: HostIdx,
    sessions: HashMap<HostIdx, u64>,
}

fn two_hosts() -> TwoHosts {
    let mut e = Engine::new(EngineConfig::default());
    let (s, ss) = connect(&mut e, hello("db", S_IP), clk(0));
    let (c, cs) = connect(&mut e, hello("app", C_IP), clk(0));
    TwoHosts {
        e,
        s,
        c,
        sessions: HashMap::from([(s, ss), (c, cs)]),
    }
}

/// The tuples of the lookups among `actions`.
fn looked_up(actions: &[Action]) -> Vec<Tuple> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Lookup { tuples, .. } => Some(tuples.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn db_listener(queue: u32, backlog: u32) -> Listener {
    Listener {
        addr: "0.0.0.0:3306".parse().unwrap(),
        queue,
        backlog,
        inode: 9,
        uid: 0,
        process: Some(Process {
            pid: 500,
            comm: "mariadbd".into(),
            cmdline: "mariadbd --back-log=4".into(),
            uid: 999,
        }),
        libwrap: true,
        drops: None,
    }
}

/// Opens a session that must not be refused: (host, session).
fn connect(e: &mut Engine, hello: Hello, now: Clock) -> (HostIdx, u64) {
    let c = e.connect(hello, String::new(), now).expect("no conflict");
    (c.host, c.session)
}

/// A finding with nothing but its kind and subject.
fn finding(kind: FindingKind, subject: Subject) -> Finding {
    Finding {
        kind,
        subject,
        cookie: 0,
        process: None,
        server_process: None,
        keepalive: false,
        first_seen_ms: 0,
        confirmed_at_ms: 0,
        evidence: Evidence::default(),
    }
}

fn conn(tuple: Tuple, client_host: &str, server_host: &str) -> Subject {
    Subject::Connection {
        tuple,
        client_host: client_host.into(),
        server_host: server_host.into(),
    }
}
