//! The inputs the corpora start from, built from realistic domain values
//! with halfopen-proto's own encoders (the files from the kernel, /proc and
//! netlink, are recorded by `examples/record_seeds.rs`).
//!
//! The sessions are written by honest collectors ([`Collector`]) that
//! answer every lookup the real engine asks from their own tables, so the
//! seeds reach what a fuzzer could hardly guess: confirmed client_only and
//! server_only findings, stalled greetings, listeners at risk, findings
//! gone, resyncs, chunked full tables, superseded sessions.
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use halfopen_core::{
    Hello, Listener, LookupAnswer, Process, Report, ReportStats, Side, SilentSocket, SocketRecord, SourceKind,
    TcpInfoLite, TcpState, Tuple, Wants,
};
use halfopen_engine::explain::finding_text;
use halfopen_engine::{Action, PageCursor, DEFAULT_GREETING_PORTS};
use halfopen_proto::convert::{
    diagnosis_to_wire, finding_to_wire, hello_to_wire, host_to_wire, lookup_reply_to_wire, lookup_to_wire,
    report_chunk_to_wire, wants_to_wire,
};
use halfopen_proto::v1;
use halfopen_proto::v1::collector_message::Msg;
use prost::Message as _;

use crate::session::SessionWriter;

/// A named seed.
pub type Seed = (String, Vec<u8>);

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("a literal endpoint")
}

fn t(local: &str, remote: &str) -> Tuple {
    Tuple::new(sa(local), sa(remote))
}

fn process(pid: u32, comm: &str, cmdline: &str, uid: u32) -> Process {
    Process {
        pid,
        comm: comm.into(),
        cmdline: cmdline.into(),
        uid,
    }
}

fn sock(tuple: Tuple, state: TcpState, side: Side, cookie: u64, inode: u64) -> SocketRecord {
    SocketRecord {
        tuple,
        state,
        side,
        cookie,
        inode,
        uid: 999,
        keepalive: false,
        info: None,
    }
}

/// One honest collector: its Hello, its table as its kernel holds it, and
/// what it answers.
#[derive(Clone, Debug)]
pub struct Collector {
    pub slot: u8,
    pub hello: Hello,
    pub table: Vec<SocketRecord>,
    pub listeners: Vec<Listener>,
    pub counters: BTreeMap<String, u64>,
    pub sysctls: BTreeMap<String, String>,
    pub silent: Vec<SilentSocket>,
    /// Owner of every client socket, for attributed lookups.
    pub owner: Option<Process>,
    pub seq: u64,
}

impl Collector {
    pub fn new(slot: u8, host_id: &str, addresses: &[&str]) -> Collector {
        Collector {
            slot,
            hello: Hello {
                host_id: host_id.into(),
                addresses: addresses
                    .iter()
                    .map(|a| a.parse::<IpAddr>().expect("a literal address"))
                    .collect(),
                interval_ms: 1_000,
                source: SourceKind::Netlink,
                version: "0.1.0".into(),
                instance: halfopen_core::Instance {
                    machine_id: format!("machine-of-{host_id}"),
                    boot_id: "boot-1".into(),
                    netns: u64::from(slot) + 1,
                    pid: 100 + u32::from(slot),
                },
                blind_spots: Vec::new(),
                parent: None,
                netns_name: None,
                container: None,
                pod: None,
            },
            table: Vec::new(),
            listeners: Vec::new(),
            counters: BTreeMap::new(),
            sysctls: [
                ("net.core.somaxconn", "4096"),
                ("net.ipv4.tcp_max_syn_backlog", "128"),
                ("net.ipv4.tcp_syncookies", "1"),
                ("net.ipv4.tcp_abort_on_overflow", "0"),
                ("net.ipv4.tcp_synack_retries", "5"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            silent: Vec::new(),
            owner: None,
            seq: 0,
        }
    }

    pub fn hello_message(&self) -> v1::CollectorMessage {
        v1::CollectorMessage {
            msg: Some(Msg::Hello(hello_to_wire(&self.hello))),
        }
    }

    fn report(&self, full: bool, upserted: Vec<SocketRecord>, removed: Vec<Tuple>) -> Report {
        Report {
            seq: self.seq,
            full,
            last_chunk: true,
            upserted,
            removed,
            listeners: self.listeners.clone(),
            addresses: Vec::new(),
            counters: self.counters.clone(),
            sysctls: self.sysctls.clone(),
            silent: self.silent.clone(),
            stats: ReportStats {
                sockets: self.table.len() as u64,
                scan_us: 850,
                owners_vanished: 0,
                permission_errors: 0,
            },
            taken_at_ms: 1_764_000_000_000 + self.seq as i64 * 1_000,
            nat: Vec::new(),
            nat_removed: Vec::new(),
            nat_state: Default::default(),
            witnessed: Vec::new(),
            blind_spots: None,
        }
    }

    /// The full table, in chunks of at most `chunk` records (the
    /// collector's chunking: the host-level part on the last one).
    pub fn full(&mut self, chunk: usize) -> Vec<v1::CollectorMessage> {
        self.seq += 1;
        let mut r = self.report(true, self.table.clone(), Vec::new());
        let n = r.upserted.len();
        let chunk = chunk.max(1);
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let end = (at + chunk).min(n);
            let last = end == n;
            out.push(v1::CollectorMessage {
                msg: Some(Msg::Report(report_chunk_to_wire(&mut r, at..end, 0..0, self.seq, last))),
            });
            if last {
                return out;
            }
            at = end;
        }
    }

    /// A delta: `upserted` replace or join the table, `removed` leave it.
    pub fn delta(&mut self, upserted: Vec<SocketRecord>, removed: Vec<Tuple>) -> v1::CollectorMessage {
        self.seq += 1;
        self.table.retain(|s| !removed.contains(&s.tuple));
        for u in &upserted {
            self.table.retain(|s| s.tuple != u.tuple);
            self.table.push(*u);
        }
        let mut r = self.report(false, upserted, removed);
        let (u, rm) = (r.upserted.len(), r.removed.len());
        v1::CollectorMessage {
            msg: Some(Msg::Report(report_chunk_to_wire(&mut r, 0..u, 0..rm, self.seq, true))),
        }
    }

    /// The honest answer to a lookup, from this collector's table.
    pub fn answer(&self, id: u64, tuples: &[Tuple], attribute: bool) -> v1::CollectorMessage {
        let answers: Vec<LookupAnswer> = tuples
            .iter()
            .map(|q| {
                let r = self.table.iter().find(|s| s.tuple == *q);
                let p = if attribute && r.is_some() {
                    self.owner.clone()
                } else {
                    None
                };
                LookupAnswer::from_record(*q, r, p)
            })
            .collect();
        v1::CollectorMessage {
            msg: Some(Msg::LookupReply(lookup_reply_to_wire(id, &answers))),
        }
    }
}

/// A session being written, with the collectors that take part.
pub struct Scenario {
    pub w: SessionWriter,
    pub hosts: Vec<Collector>,
    /// Every action the engine took, in order.
    pub actions: Vec<Action>,
}

impl Scenario {
    pub fn new(hosts: Vec<Collector>) -> Scenario {
        Scenario {
            w: SessionWriter::new(),
            hosts,
            actions: Vec::new(),
        }
    }

    /// Sends `msg` from host `i`, then answers every lookup that follows.
    pub fn send(&mut self, i: usize, advance: u8, tick: bool, msg: &v1::CollectorMessage) {
        let slot = self.hosts[i].slot;
        let a = self.w.send(slot, advance, tick, msg);
        self.answer(a);
    }

    pub fn hello(&mut self, i: usize) {
        let m = self.hosts[i].hello_message();
        self.send(i, 0, false, &m);
    }

    pub fn full(&mut self, i: usize, chunk: usize) {
        for m in self.hosts[i].full(chunk) {
            self.send(i, 1, false, &m);
        }
    }

    pub fn delta(&mut self, i: usize, advance: u8, upserted: Vec<SocketRecord>, removed: Vec<Tuple>) {
        let m = self.hosts[i].delta(upserted, removed);
        self.send(i, advance, false, &m);
    }

    /// `rounds` report intervals (1 s) pass: every connected collector
    /// sends its (empty) delta, then the engine ticks.
    pub fn beat(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let live: Vec<usize> = (0..self.hosts.len())
                .filter(|&i| self.w.driver.slots[usize::from(self.hosts[i].slot)].is_some())
                .collect();
            for (n, &i) in live.iter().enumerate() {
                self.delta(i, if n == 0 { 3 } else { 0 }, Vec::new(), Vec::new());
            }
            self.idle(0);
        }
    }

    pub fn idle(&mut self, advance: u8) {
        let a = self.w.idle(advance, true);
        self.answer(a);
    }

    /// Answers the lookups among `actions` (and those the answers cause),
    /// honestly, from the asked host's table.
    fn answer(&mut self, actions: Vec<Action>) {
        let mut queue = actions;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for a in queue {
                if let Action::Lookup {
                    host,
                    id,
                    tuples,
                    attribute,
                    ..
                } = &a
                {
                    let who = self
                        .hosts
                        .iter()
                        .position(|c| self.w.driver.slots[usize::from(c.slot)].is_some_and(|(h, _)| h == *host));
                    if let Some(i) = who {
                        let reply = self.hosts[i].answer(*id, tuples, *attribute);
                        next.extend(self.w.send(self.hosts[i].slot, 0, false, &reply));
                    }
                }
                self.actions.push(a);
            }
            queue = next;
        }
    }

    /// How many actions confirmed a finding of each kind.
    pub fn confirmed(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for a in &self.actions {
            if let Action::Confirmed(f) = a {
                *m.entry(f.kind.as_str()).or_insert(0) += 1;
            }
        }
        m
    }

    pub fn gone(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a, Action::Gone { .. })).count()
    }

    pub fn resyncs(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Resync { .. }))
            .count()
    }

    pub fn into_seed(self, name: &str) -> Seed {
        (name.to_string(), self.w.bytes().to_vec())
    }
}

/// The incident of seeds/000: a MySQL server (db) whose accept queue
/// overflowed with SYN cookies on; the app holds connections db forgot
/// (client_only), one waiting in db's accept queue for a greeting
/// (stalled_greeting), and db's counters rise (listener_at_risk). Then a
/// forgotten connection closes (gone).
pub fn incident() -> Scenario {
    let mysqld = process(812, "mysqld", "/usr/sbin/mysqld --back-log=4", 27);
    let mut app = Collector::new(0, "app-1", &["198.18.0.2", "127.0.0.1", "fe80::1"]);
    let mut db = Collector::new(1, "db-1", &["198.18.0.1", "127.0.0.1"]);
    app.owner = Some(process(2301, "java", "java -jar billing.jar", 1000));
    db.owner = Some(mysqld.clone());
    db.listeners.push(Listener {
        addr: sa("0.0.0.0:3306"),
        queue: 5,
        backlog: 4,
        inode: 40_112,
        uid: 27,
        process: Some(mysqld),
        libwrap: false,
        drops: Some(0),
    });
    let healthy = t("198.18.0.2:40001", "198.18.0.1:3306");
    let forgot = [
        t("198.18.0.2:40002", "198.18.0.1:3306"),
        t("198.18.0.2:40003", "198.18.0.1:3306"),
    ];
    let queued = t("198.18.0.2:40010", "198.18.0.1:3306");
    let c = |tuple, cookie| SocketRecord {
        keepalive: cookie % 2 == 0,
        info: Some(TcpInfoLite {
            bytes_received: 0,
            bytes_acked: 1,
            last_data_recv_ms: 12_000,
            rtt_us: 180,
        }),
        ..sock(tuple, TcpState::Established, Side::Client, cookie, 50_000 + cookie)
    };
    app.table = vec![
        c(healthy, 7001),
        c(forgot[0], 7002),
        c(forgot[1], 7003),
        c(queued, 7010),
    ];
    app.table.push(sock(
        t("198.18.0.2:40020", "198.18.0.1:3306"),
        TcpState::TimeWait,
        Side::Client,
        7020,
        0,
    ));
    app.silent.push(SilentSocket {
        tuple: queued,
        silent_ms: 12_000,
        process: None,
    });
    db.table = vec![
        sock(healthy.mirror(), TcpState::Established, Side::Server, 9001, 60_001),
        sock(queued.mirror(), TcpState::Established, Side::Server, 9010, 0),
    ];
    let counters = |overflows: u64| -> BTreeMap<String, u64> {
        [
            ("TcpExt.ListenOverflows", overflows),
            ("TcpExt.ListenDrops", overflows),
            ("TcpExt.SyncookiesSent", overflows / 2),
            ("TcpExt.SyncookiesRecv", overflows / 2),
            ("TcpExt.SyncookiesFailed", 0),
            ("TcpExt.TCPReqQFullDoCookies", overflows / 2),
            ("TcpExt.TCPReqQFullDrop", 0),
            ("Tcp.ActiveOpens", 12),
            ("Tcp.PassiveOpens", 4_000 + overflows),
            ("Tcp.CurrEstab", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    db.counters = counters(100);
    app.counters = counters(0);

    let mut s = Scenario::new(vec![app, db]);
    s.hello(0);
    s.hello(1);
    s.full(0, 16_384);
    s.full(1, 16_384);
    s.beat(3); // past the grace: lookups to db, then to app
    s.hosts[1].counters = counters(160);
    s.beat(1);
    s.delta(0, 2, Vec::new(), vec![forgot[1]]); // one forgotten connection closes
    s.beat(1);
    s
}

/// The mirror image over IPv6, with IPv4-mapped addresses on the wire: the
/// server (pg) holds a connection its client (web) reset long ago
/// (server_only), and web's full table arrives in chunks.
pub fn server_only_v6() -> Scenario {
    let mut web = Collector::new(2, "web-7", &["2001:db8::2", "::ffff:198.18.0.4", "::1"]);
    let mut pg = Collector::new(3, "pg-1", &["2001:db8::1", "198.18.0.3"]);
    pg.owner = Some(process(990, "postgres", "postgres: 15/main", 114));
    web.owner = Some(process(3100, "nginx", "nginx: worker process", 33));
    pg.listeners.push(Listener {
        addr: sa("[::]:5432"),
        queue: 0,
        backlog: 244,
        inode: 81_000,
        uid: 114,
        process: pg.owner.clone(),
        libwrap: false,
        drops: Some(0),
    });
    web.listeners.push(Listener {
        addr: sa("[::]:443"),
        queue: 0,
        backlog: 511,
        inode: 82_000,
        uid: 0,
        process: web.owner.clone(),
        libwrap: true,
        drops: Some(0),
    });
    let live = t("[2001:db8::2]:50000", "[2001:db8::1]:5432");
    let reset = t("[2001:db8::1]:5432", "[2001:db8::2]:50001");
    let mapped = t("[::ffff:198.18.0.4]:50002", "[::ffff:198.18.0.3]:5432");
    web.table = vec![
        sock(live, TcpState::Established, Side::Client, 11, 700),
        sock(mapped, TcpState::Established, Side::Client, 12, 701),
        sock(
            t("[2001:db8::2]:443", "[2001:db8::99]:61000"),
            TcpState::Established,
            Side::Server,
            13,
            702,
        ),
        sock(
            t("[2001:db8::2]:50009", "[2001:db8::1]:5432"),
            TcpState::FinWait2,
            Side::Client,
            14,
            0,
        ),
    ];
    pg.table = vec![
        sock(live.mirror(), TcpState::Established, Side::Server, 21, 900),
        sock(mapped.mirror(), TcpState::Established, Side::Server, 22, 901),
        sock(reset, TcpState::Established, Side::Server, 23, 902),
        sock(
            t("[2001:db8::1]:5432", "[2001:db8::2]:50008"),
            TcpState::CloseWait,
            Side::Server,
            24,
            903,
        ),
    ];
    let mut s = Scenario::new(vec![web, pg]);
    s.hello(0);
    s.hello(1);
    s.full(0, 2);
    s.full(1, 3);
    s.beat(3);
    // the server's process closes it: gone
    s.delta(
        1,
        2,
        vec![sock(reset, TcpState::CloseWait, Side::Server, 23, 902)],
        Vec::new(),
    );
    s.beat(1);
    s
}

/// Sessions that go wrong: a sequence gap (resync), a full table again, a
/// second Hello, a collector superseded by another connection with its
/// host id, a stale host, and a stream that breaks.
pub fn churn() -> Scenario {
    let mut a = Collector::new(0, "edge-a", &["198.18.1.10"]);
    let mut b = Collector::new(1, "edge-b", &["198.18.1.11"]);
    let ta = t("198.18.1.10:33000", "198.18.1.11:22");
    a.table = vec![sock(ta, TcpState::Established, Side::Client, 1, 10)];
    b.table = vec![sock(
        t("198.18.1.11:41000", "198.18.1.10:25"),
        TcpState::SynSent,
        Side::Client,
        2,
        20,
    )];
    b.listeners.push(Listener {
        addr: sa("198.18.1.11:22"),
        queue: 0,
        backlog: 128,
        inode: 30,
        uid: 0,
        process: Some(process(600, "sshd", "sshd: /usr/sbin/sshd -D", 0)),
        libwrap: true,
        drops: Some(0),
    });
    let mut s = Scenario::new(vec![a, b]);
    s.hello(0);
    s.hello(1);
    s.full(0, 1);
    s.full(1, 1);
    // a delta that skips a number: the engine asks for a full table
    s.hosts[0].seq += 1;
    s.delta(
        0,
        2,
        vec![sock(ta, TcpState::Established, Side::Client, 1, 10)],
        Vec::new(),
    );
    s.full(0, 1);
    // a second Hello in the session is ignored
    let h = s.hosts[0].hello_message();
    s.send(0, 1, true, &h);
    // another connection claims edge-b: the first session is superseded
    let mut b2 = s.hosts[1].clone();
    b2.slot = 2;
    b2.seq = 0;
    s.hosts.push(b2);
    s.hello(2);
    s.full(2, 16_384);
    s.delta(1, 1, Vec::new(), Vec::new()); // from the superseded session: ignored
    s.idle(5); // edge-a goes stale
    let bytes = s.w.send_raw(0, 1, true, &[0x0a, 0xff, 0x01]); // breaks edge-a's stream
    s.answer(bytes);
    s.idle(6);
    s.idle(7);
    s
}

/// Every collector_session seed.
pub fn sessions() -> Vec<Seed> {
    let mut out = vec![
        incident().into_seed("incident"),
        server_only_v6().into_seed("server_only_v6"),
        churn().into_seed("churn"),
    ];
    // What nothing accepts: a report before any Hello, a blank host id,
    // and records that do not decode.
    let mut w = SessionWriter::new();
    let mut bad = Collector::new(0, "  ", &["198.18.2.1"]);
    bad.table = vec![sock(
        t("198.18.2.1:1000", "198.18.2.2:2000"),
        TcpState::Established,
        Side::Client,
        1,
        1,
    )];
    for m in bad.full(16_384) {
        w.send(0, 0, false, &m);
    }
    w.send(0, 0, false, &bad.hello_message());
    bad.hello.host_id = "odd-host".into();
    w.send(0, 0, false, &bad.hello_message());
    let mut r = bad.full(16_384).remove(0);
    if let Some(Msg::Report(rep)) = &mut r.msg {
        rep.upserted[0].state = 99;
        rep.upserted.push(v1::Socket {
            tuple: Some(v1::Tuple {
                local_ip: vec![1, 2, 3],
                local_port: 70_000,
                remote_ip: vec![0; 16],
                remote_port: 1,
            }),
            side: 0,
            ..Default::default()
        });
    }
    w.send(0, 1, true, &r);
    w.send(0, 0, false, &v1::CollectorMessage { msg: None });
    w.idle(6, true);
    out.push(("rejected".to_string(), w.bytes().to_vec()));
    out
}

/// Single collector messages: every message of the incident session.
pub fn collector_messages() -> Vec<Seed> {
    let mut s = incident();
    let mut out = vec![("hello".to_string(), s.hosts[0].hello_message().encode_to_vec())];
    out.extend(
        s.hosts[1]
            .full(16_384)
            .into_iter()
            .map(|m| ("full_report".to_string(), m.encode_to_vec())),
    );
    let gone = s.hosts[0].table[1].tuple;
    out.push((
        "delta".to_string(),
        s.hosts[0].delta(Vec::new(), vec![gone]).encode_to_vec(),
    ));
    let asked: Vec<Tuple> = s.hosts[0].table.iter().map(|r| r.tuple).collect();
    out.push((
        "lookup_reply".to_string(),
        s.hosts[0].answer(3, &asked, true).encode_to_vec(),
    ));
    out
}

/// What the reconciler sends a collector: the lookups of the incident, the
/// Config, a Resync.
pub fn reconciler_messages() -> Vec<Seed> {
    use v1::reconciler_message::Msg as R;
    let s = incident();
    let mut out: Vec<Seed> = s
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Lookup {
                id, tuples, attribute, ..
            } => Some(R::Lookup(lookup_to_wire(*id, tuples, *attribute))),
            _ => None,
        })
        .take(2)
        .enumerate()
        .map(|(i, m)| {
            (
                format!("lookup_{i}"),
                v1::ReconcilerMessage { msg: Some(m) }.encode_to_vec(),
            )
        })
        .collect();
    let wants = Wants {
        greeting_ports: DEFAULT_GREETING_PORTS.to_vec(),
        stall_after_ms: 10_000,
    };
    out.push((
        "config".to_string(),
        v1::ReconcilerMessage {
            msg: Some(R::Config(wants_to_wire(&wants))),
        }
        .encode_to_vec(),
    ));
    out.push((
        "resync".to_string(),
        v1::ReconcilerMessage {
            msg: Some(R::Resync(v1::Resync {
                reason: "sequence gap: expected 4, got 6".into(),
            })),
        }
        .encode_to_vec(),
    ));
    out
}

/// What the CLI receives: the findings, hosts and diagnoses of the
/// incident and of the IPv6 session, each behind its selector byte.
pub fn query_responses() -> Vec<Seed> {
    let mut out = Vec::new();
    for (name, s) in [("incident", incident()), ("v6", server_only_v6())] {
        let now = s.w.driver.now;
        let e = &s.w.driver.engine;
        // every finding the session confirmed, current or gone since
        let findings = s
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Confirmed(f) => Some(halfopen_core::FindingView {
                    finding: f.clone(),
                    client_host_stale: false,
                    client_host_gone: false,
                    client_container: None,
                    client_pod: None,
                    server_container: None,
                    server_pod: None,
                }),
                _ => None,
            })
            .map(|v| {
                let text = finding_text(&v.finding);
                finding_to_wire(v, text)
            })
            .collect();
        let orphans = v1::ListOrphansResponse {
            findings,
            next_page_token: String::new(),
        };
        let hosts = v1::ListHostsResponse {
            hosts: e.hosts(now).iter().map(host_to_wire).collect(),
        };
        let explain = v1::ExplainResponse {
            diagnoses: e
                .explain(&halfopen_core::ExplainTarget::Everything, now)
                .unwrap_or_default()
                .iter()
                .map(diagnosis_to_wire)
                .collect(),
        };
        for (sel, kind, body) in [
            (0u8, "orphans", orphans.encode_to_vec()),
            (1, "hosts", hosts.encode_to_vec()),
            (2, "explain", explain.encode_to_vec()),
        ] {
            let mut b = vec![sel];
            b.extend(body);
            out.push((format!("{name}_{kind}"), b));
        }
    }
    out
}

/// Page tokens of the findings both sessions confirmed.
pub fn page_tokens() -> Vec<Seed> {
    let mut out = Vec::new();
    for s in [incident(), server_only_v6()] {
        for a in &s.actions {
            if let Action::Confirmed(f) = a {
                let token = PageCursor::of(f).token();
                out.push((format!("{}_{}", f.kind, out.len()), token.into_bytes()));
            }
        }
    }
    out
}

/// Text seeds: what operators type and what container runtimes write,
/// from the formats' documentation and real nodes.
pub fn texts() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "netns_spec",
            vec![
                ("all", "all"),
                ("self", "self"),
                ("list", "self, web,pid:1234 ,db"),
                ("pid", "pid:4194304"),
            ],
        ),
        (
            "explain_target",
            vec![
                ("host", "db-1"),
                ("host_port", "db-1:3306"),
                ("endpoint", "198.18.0.1:3306"),
                ("v6", "[::ffff:198.18.0.5]:3306"),
                ("everything", "  "),
            ],
        ),
        (
            "duration_arg",
            vec![
                ("s", "5s"),
                ("ms", "500ms"),
                ("m", "2m"),
                ("mixed", "1h 30m 15s"),
                ("zero", "0s"),
            ],
        ),
        (
            "cgroup",
            vec![
                ("v2_docker", "0::/system.slice/docker-4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706.scope\n"),
                ("v2_kubepods", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n"),
                ("v1_cgroupfs", "12:pids:/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n11:memory:/docker/4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706\n1:name=systemd:/system.slice/crio-conmon-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n0::/\n"),
                ("podman", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706.scope/container\n"),
            ],
        ),
        (
            "pod_log_dir",
            vec![
                ("pod", "default_web-7d9f8b6c5-x2x4q_0a1b2c3d-4e5f-6789-abcd-ef0123456789"),
                ("static_pod", "kube-system_etcd-node-1_1b2c3d4e5f60718293a4b5c6d7e8f901"),
            ],
        ),
        (
            "docker_config",
            vec![
                ("named", r#"{"StreamConfig":{},"State":{"Running":true,"Pid":4242},"ID":"4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706","Created":"2026-11-30T10:00:00.000000000Z","Path":"docker-entrypoint.sh","Args":["mysqld"],"Config":{"Hostname":"4f3c2e1d0b9a","Env":["MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db"],"Image":"mariadb:11"},"Name":"/db-1","Driver":"overlay2","RestartCount":0}"#),
                ("unnamed", r#"{"ID":"0123","Name":null}"#),
            ],
        ),
        (
            "proc_maps",
            vec![(
                "libwrap",
                "55d0c0a00000-55d0c0a2a000 r--p 00000000 08:01 1311 /usr/sbin/sshd\n7f1e0000-7f1e1000 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libwrap.so.0.7.6\n7ffc1a2b3000-7ffc1a2d4000 rw-p 00000000 00:00 0 [stack]\n",
            )],
        ),
    ]
}
