//! Realistic postmortems for the report's tests and its example: a SYN-cookie
//! incident on a MySQL listener (300 client_only connections from three
//! php-fpm processes, the queue at its backlog, drops and SYN cookies rising,
//! a listener_at_risk finding, the clients closing them over 16 minutes),
//! and the edge cases (no samples, one finding, still open, 50,000 findings,
//! hostile process names). Deterministic: the same spec gives the same data.
#![allow(dead_code)]
use halfopen_core::{
    CounterWindow, Evidence, Finding, FindingKind, GoneReason, KeepaliveSysctls, ListenerPoint, ListenerSample,
    Postmortem, Process, Sample, StoredFinding, Subject, Tuple,
};
use halfopen_history::{incident_id, summarize, IncidentKey};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// 2026-11-30T02:15:02Z, ms.
pub const T0: i64 = 1_796_004_902_000;
/// The incident's last connection closes 998 s after T0 (02:31:40).
pub const END_S: i64 = 998;

/// A client process of the fixture: host, its address, pid, comm, cmdline,
/// and how many connections it is left holding.
#[derive(Clone)]
pub struct Client {
    pub host: &'static str,
    pub ip: &'static str,
    pub pid: u32,
    pub comm: String,
    pub cmdline: String,
    pub connections: usize,
    /// When this process closes its connections, s after T0: (first, last);
    /// they close evenly in between.
    pub closes: (i64, i64),
}

/// What to build.
#[derive(Clone)]
pub struct Spec {
    pub clients: Vec<Client>,
    /// Samples every second from 30 s before to 30 s after.
    pub samples: bool,
    /// The last `open` connections (of the last client) are still current.
    pub open: usize,
    /// A listener_at_risk finding on the listener.
    pub at_risk: bool,
    /// `now` for the summary of an ongoing incident, s after T0.
    pub now_s: i64,
}

pub fn php_fpm() -> Vec<Client> {
    let c = |host, ip, pid, n, closes| Client {
        host,
        ip,
        pid,
        comm: "php-fpm".into(),
        cmdline: "php-fpm: pool www".into(),
        connections: n,
        closes,
    };
    vec![
        c("app-1", "198.18.2.1", 2201, 140, (300, 620)),
        c("app-2", "198.18.2.2", 3302, 110, (240, 880)),
        c("app-3", "198.18.2.3", 4403, 50, (700, END_S)),
    ]
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            clients: php_fpm(),
            samples: true,
            open: 0,
            at_risk: true,
            now_s: END_S + 60,
        }
    }
}

impl Spec {
    /// Still open at 700 s, the last 40 connections still held.
    pub fn ongoing() -> Spec {
        Spec {
            open: 40,
            now_s: 700,
            ..Spec::default()
        }
    }

    /// No sample kept: only the findings' evidence.
    pub fn no_samples() -> Spec {
        Spec {
            samples: false,
            ..Spec::default()
        }
    }

    /// One client_only finding, nothing else.
    pub fn one() -> Spec {
        let mut clients = php_fpm();
        clients.truncate(1);
        clients[0].connections = 1;
        Spec {
            clients,
            at_risk: false,
            ..Spec::default()
        }
    }

    /// Only the listener_at_risk finding.
    pub fn listener_only() -> Spec {
        Spec {
            clients: Vec::new(),
            ..Spec::default()
        }
    }
}

/// The realistic incident of the module header.
pub fn realistic() -> Postmortem {
    build(&Spec::default())
}

/// Tiny deterministic generator (an LCG), so fixtures need no rand crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub const LISTENER: &str = "0.0.0.0:3306";
pub const BACKLOG: u32 = 128;

pub fn sysctls() -> BTreeMap<String, String> {
    [
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_max_syn_backlog", "512"),
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.ipv4.tcp_abort_on_overflow", "0"),
        ("net.ipv4.tcp_synack_retries", "5"),
        ("net.ipv4.tcp_keepalive_time", "7200"),
        ("net.ipv4.tcp_keepalive_intvl", "75"),
        ("net.ipv4.tcp_keepalive_probes", "9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn mysqld() -> Process {
    Process {
        pid: 1123,
        comm: "mysqld".into(),
        cmdline: "/usr/sbin/mysqld --back-log=128".into(),
        uid: 27,
    }
}

/// The overload: the queue sits at its backlog and the kernel drops and
/// answers with cookies from T0 to T0 + 300 s.
const OVERLOAD_S: i64 = 300;

/// Per-second overflow in the overload (3 or 4), the same for drops,
/// ListenOverflows and SyncookiesSent (cookies a little more).
fn overflow_at(s: i64) -> u64 {
    if (0..OVERLOAD_S).contains(&s) {
        3 + (s % 3 == 0) as u64
    } else {
        0
    }
}

fn evidence(at_s: i64) -> Evidence {
    let window: i64 = 3;
    let overflows: u64 = (at_s - window..at_s).map(overflow_at).sum();
    Evidence {
        listener: Some(ListenerSample {
            addr: LISTENER.parse().unwrap(),
            queue: BACKLOG + 1,
            backlog: BACKLOG,
            libwrap: false,
            drops: Some(overflows),
        }),
        counters: Some(CounterWindow {
            window_ms: 3_000,
            deltas: [
                ("TcpExt.ListenOverflows".to_string(), overflows),
                ("TcpExt.ListenDrops".to_string(), overflows),
                ("TcpExt.SyncookiesSent".to_string(), overflows + 1),
                ("TcpExt.SyncookiesRecv".to_string(), overflows),
            ]
            .into(),
        }),
        sysctls: sysctls(),
        client_keepalive: Some(KeepaliveSysctls::default()),
        ..Default::default()
    }
}

pub fn build(spec: &Spec) -> Postmortem {
    let mut rng = Lcg(0x5eed);
    let server: SocketAddr = "198.18.1.1:3306".parse().unwrap();
    let total: usize = spec.clients.iter().map(|c| c.connections).sum();
    let mut findings = Vec::new();
    let mut id = 1i64;
    if spec.at_risk {
        findings.push(StoredFinding {
            id,
            finding: Finding {
                kind: FindingKind::ListenerAtRisk,
                subject: Subject::Listener {
                    host: "db-1".into(),
                    addr: LISTENER.parse().unwrap(),
                },
                cookie: 0,
                process: None,
                server_process: Some(mysqld()),
                keepalive: false,
                first_seen_ms: T0,
                confirmed_at_ms: T0,
                evidence: Evidence {
                    near_full: Some(true),
                    ..evidence(1)
                },
            },
            gone_at_ms: Some(T0 + (OVERLOAD_S + 30) * 1000).filter(|g| *g <= T0 + spec.now_s * 1000),
            gone_reason: (spec.now_s > OVERLOAD_S + 30).then_some(GoneReason::Recovered),
            explanation: String::new(),
            incident: None,
        });
        id += 1;
    }
    let mut n = 0usize;
    for c in &spec.clients {
        for k in 0..c.connections {
            // First sightings spread over the overload, a little more at its start.
            let frac = (n as f64 / total.max(1) as f64).powf(1.3);
            let first_s = 2.0 + frac * (OVERLOAD_S as f64 - 12.0);
            let first_ms = T0 + (first_s * 1000.0) as i64 + rng.below(700) as i64;
            let (a, b) = c.closes;
            let close_s = a + (b - a) * (k as i64 + 1) / c.connections.max(1) as i64;
            let open = n + spec.open >= total;
            let jitter = if k + 1 == c.connections {
                0
            } else {
                rng.below(900) as i64
            };
            let gone_ms = (!open)
                .then(|| (T0 + close_s * 1000 - jitter).max(first_ms + 5_000))
                .filter(|g| *g <= T0 + spec.now_s * 1000);
            let port = 32_768 + (n as u16 % 28_000) + (n / 28_000) as u16;
            let client: SocketAddr = format!("{}:{port}", c.ip).parse().unwrap();
            findings.push(StoredFinding {
                id,
                finding: Finding {
                    kind: FindingKind::ClientOnly,
                    subject: Subject::Connection {
                        tuple: Tuple::new(client, server),
                        client_host: c.host.into(),
                        server_host: "db-1".into(),
                    },
                    cookie: 10_000 + n as u64,
                    process: Some(Process {
                        pid: c.pid,
                        comm: c.comm.clone(),
                        cmdline: c.cmdline.clone(),
                        uid: 33,
                    }),
                    server_process: Some(mysqld()),
                    keepalive: false,
                    first_seen_ms: first_ms,
                    confirmed_at_ms: first_ms + 1_100 + rng.below(1_400) as i64,
                    evidence: evidence((first_ms - T0) / 1000),
                },
                gone_at_ms: gone_ms,
                gone_reason: gone_ms.map(|_| GoneReason::ClientClosed),
                explanation: String::new(),
                incident: None,
            });
            id += 1;
            n += 1;
        }
    }
    for f in &mut findings {
        f.explanation = halfopen_engine::explain::finding_text(&f.finding);
    }
    let end_s = findings
        .iter()
        .map(|f| f.gone_at_ms.unwrap_or(T0 + spec.now_s * 1000))
        .max()
        .map_or(END_S, |e| (e - T0) / 1000);
    let mut samples = Vec::new();
    if spec.samples {
        let mut drops = 7_000u64; // sk_drops is absolute: the listener dropped before
        for s in -30..=end_s.min(spec.now_s) + 30 {
            let o = overflow_at(s);
            drops += o;
            let queue = if (0..OVERLOAD_S).contains(&s) {
                BACKLOG + (s % 4 == 1) as u32
            } else if (-30..0).contains(&s) {
                (12 + 3 * (s + 30)) as u32
            } else if s < OVERLOAD_S + 20 {
                (BACKLOG as i64 * (OVERLOAD_S + 20 - s) / 20) as u32
            } else {
                (s % 3) as u32
            };
            let mut deltas: BTreeMap<String, u64> = [
                ("Tcp.ActiveOpens".to_string(), 2),
                ("Tcp.PassiveOpens".to_string(), 40 + o),
            ]
            .into();
            if o > 0 {
                deltas.insert("TcpExt.ListenOverflows".into(), o);
                deltas.insert("TcpExt.ListenDrops".into(), o);
                deltas.insert("TcpExt.SyncookiesSent".into(), o + (s % 5 == 0) as u64);
                deltas.insert("TcpExt.SyncookiesRecv".into(), o);
            }
            samples.push(Sample {
                host: "db-1".into(),
                at_ms: T0 + s * 1000 + 250,
                deltas,
                listeners: vec![
                    ListenerPoint {
                        addr: LISTENER.parse().unwrap(),
                        queue,
                        backlog: BACKLOG,
                        drops: Some(drops),
                    },
                    ListenerPoint {
                        addr: "0.0.0.0:33060".parse().unwrap(),
                        queue: 0,
                        backlog: 70,
                        drops: Some(0),
                    },
                ],
            });
        }
    }
    findings.sort_by_key(|f| (f.finding.first_seen_ms, f.id));
    let start = findings.first().map_or(T0, |f| f.finding.first_seen_ms);
    let key = IncidentKey {
        server_host: "db-1".into(),
        port: 3306,
    };
    let iid = incident_id(&key, start);
    for f in &mut findings {
        f.incident = Some(iid.clone());
    }
    let incident = summarize(&iid, &findings, &samples, T0 + spec.now_s * 1000);
    Postmortem {
        incident,
        findings,
        samples,
    }
}

/// `now` for [`realistic`], ms.
pub fn now_ms(spec: &Spec) -> i64 {
    T0 + spec.now_s * 1000
}

/// The realistic incident with one hostile client process: its name and
/// command line carry HTML, a script and terminal escapes.
pub fn hostile() -> Postmortem {
    let mut spec = Spec::default();
    spec.clients[0].comm = "<script>alert(1)</script>\u{1b}[31m".into();
    spec.clients[0].cmdline =
        "evil \u{1b}]0;pwned\u{7} \u{1b}[2J<img src=x onerror=alert(2)> \"q\" 'a' & | * _ ` \u{202e}rev".into();
    build(&spec)
}

/// `n` client_only connections from `procs` processes over two hosts.
pub fn big(n: usize, procs: usize) -> Spec {
    let per = n / procs;
    let clients = (0..procs)
        .map(|i| Client {
            host: if i % 2 == 0 { "web-1" } else { "web-2" },
            ip: if i % 2 == 0 { "198.18.3.1" } else { "198.18.3.2" },
            pid: 5000 + i as u32,
            comm: format!("worker-{i}"),
            cmdline: format!("/srv/app/worker --id {i}"),
            connections: per + if i == 0 { n - per * procs } else { 0 },
            closes: (310 + 20 * i as i64, END_S),
        })
        .collect();
    Spec {
        clients,
        ..Spec::default()
    }
}
