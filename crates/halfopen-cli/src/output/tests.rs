//! Whole outputs, compared as snapshots (`cargo insta review` after a
//! deliberate change): every human table and the JSON rows, from fixed
//! domain values.
use super::*;
use halfopen_core::{
    BlindSpot, Change, CounterWindow, Coverage, Diagnosis, Evidence, Finding, FindingKind, FindingView, HostView,
    ListenerSample, Process, SharedAddress, Side, SocketRecord, SourceKind, Subject, TcpInfoLite, TcpState, Tuple,
    Unmonitored,
};

const T0: i64 = 1_764_091_201_123;

fn process(pid: u32, comm: &str) -> Process {
    Process {
        pid,
        comm: comm.into(),
        cmdline: format!("{comm} --serve"),
        uid: 1000,
    }
}

fn conn(kind: FindingKind, client: &str, server: &str, pid: Option<u32>) -> Finding {
    Finding {
        kind,
        subject: Subject::Connection {
            tuple: Tuple::new(client.parse().unwrap(), server.parse().unwrap()),
            client_host: "app".into(),
            server_host: "db".into(),
        },
        cookie: 7,
        process: pid.map(|p| process(p, "java")),
        server_process: Some(process(500, "mariadbd")),
        keepalive: false,
        first_seen_ms: T0,
        confirmed_at_ms: T0 + 1877,
        evidence: Evidence {
            listener: Some(ListenerSample {
                addr: "0.0.0.0:3306".parse().unwrap(),
                queue: 5,
                backlog: 4,
                libwrap: false,
                drops: Some(965),
            }),
            counters: Some(CounterWindow {
                window_ms: 3_000,
                deltas: [("TcpExt.ListenOverflows".to_string(), 965)].into(),
            }),
            sysctls: [("net.core.somaxconn".to_string(), "4096".to_string())].into(),
            ..Default::default()
        },
    }
}

fn view(f: Finding) -> FindingView {
    FindingView {
        finding: f,
        client_host_stale: false,
        client_host_gone: false,
        client_container: None,
        client_pod: None,
        server_container: None,
        server_pod: None,
    }
}

/// Every host fresh, nothing unseen.
fn complete() -> Coverage {
    Coverage {
        hosts: 2,
        fresh: 2,
        ..Default::default()
    }
}

/// A coverage with one of each gap.
fn gaps() -> Coverage {
    Coverage {
        hosts: 5,
        fresh: 2,
        stale: vec!["app-3".into()],
        disconnected: vec![],
        gone: vec!["db-old".into()],
        conflicts: vec!["db".into()],
        shared_addresses: vec![SharedAddress {
            addr: "198.18.0.1".parse().unwrap(),
            hosts: vec!["db".into(), "db-clone".into()],
        }],
        unmonitored: Unmonitored {
            connections: 312,
            servers: 3,
            top: vec![
                ("198.18.9.9:5432".parse().unwrap(), 300),
                ("198.18.9.8:6379".parse().unwrap(), 10),
            ],
        },
        blind_spots: vec![BlindSpot {
            host: "app".into(),
            what: "owners of other users' sockets: the collector lacks CAP_SYS_PTRACE".into(),
        }],
        store: None,
    }
}

/// Every host fresh, but the database write fails (a full disk).
fn unrecorded() -> Coverage {
    Coverage {
        store: Some(halfopen_core::StoreHealth {
            failing_since_ms: Some(T0),
            error: Some("database /var/lib/halfopen/halfopen.db: database or disk is full".into()),
            pending: 372,
            capacity: 200_000,
            refused: 0,
            written: 14,
            dropped: 0,
        }),
        ..complete()
    }
}

fn rows(fs: Vec<(Finding, &str)>) -> Vec<OrphanJson> {
    fs.into_iter()
        .map(|(f, e)| orphan_json(&view(f), e.to_string()))
        .collect()
}

/// The server's kernel witnessed the drop (eBPF), `ms` after T0.
fn witnessed(mut f: Finding, ms: i64, path: halfopen_core::DropPath) -> Finding {
    f.evidence.witness = Some(halfopen_core::Witness {
        at_ms: T0 - 900 + ms,
        path,
        queue: 5,
        backlog: 4,
    });
    f
}

fn orphans() -> Vec<OrphanJson> {
    rows(vec![
        (
            witnessed(
                conn(
                    FindingKind::ClientOnly,
                    "198.18.0.2:40001",
                    "[::ffff:198.18.0.1]:3306",
                    Some(42),
                ),
                0,
                halfopen_core::DropPath::Cookie,
            ),
            "The server host db has no trace of this connection.",
        ),
        (
            witnessed(
                conn(FindingKind::ClientOnly, "198.18.0.2:40002", "198.18.0.1:3306", Some(42)),
                3,
                halfopen_core::DropPath::Normal,
            ),
            "The server host db has no trace of this connection.",
        ),
        (
            conn(FindingKind::ClientOnly, "198.18.0.2:40003", "198.18.0.1:3306", Some(43)),
            "The server host db has no trace of this connection.",
        ),
        (
            conn(FindingKind::ClientOnly, "[2001:db8::2]:40000", "[2001:db8::1]:25", None),
            "The server host db has no trace of this connection.",
        ),
    ])
}

#[test]
fn orphans_table_groups_by_server_and_process() {
    insta::assert_snapshot!(orphans_table(&orphans(), &complete()));
    insta::assert_snapshot!("orphans_table_empty", orphans_table(&[], &complete()));
    insta::assert_snapshot!("orphans_table_empty_with_gaps", orphans_table(&[], &gaps()));
    insta::assert_snapshot!("orphans_table_with_gaps", orphans_table(&orphans()[..1], &gaps()));
}

#[test]
fn orphan_json_has_the_contract_fields_in_order() {
    let j = serde_json::to_string_pretty(&orphans()[0]).unwrap();
    insta::assert_snapshot!(j);
    let unknown = serde_json::to_value(&orphans()[3]).unwrap();
    assert!(unknown["pid"].is_null());
    assert_eq!(unknown["server"], "[2001:db8::1]:25");
}

fn every_kind() -> Vec<OrphanJson> {
    let mut stalled = conn(
        FindingKind::StalledGreeting,
        "198.18.0.2:40009",
        "198.18.0.1:3306",
        Some(42),
    );
    stalled.evidence.silent_ms = Some(12_000);
    stalled.evidence.in_accept_queue = Some(true);
    let mut server_only = conn(FindingKind::ServerOnly, "198.18.0.2:40010", "198.18.0.1:3306", None);
    server_only.keepalive = true;
    let risk = Finding {
        kind: FindingKind::ListenerAtRisk,
        subject: Subject::Listener {
            host: "db".into(),
            addr: "0.0.0.0:3306".parse().unwrap(),
        },
        cookie: 0,
        process: None,
        evidence: Evidence {
            near_full: Some(true),
            ..Default::default()
        },
        ..conn(FindingKind::ClientOnly, "198.18.0.2:1", "198.18.0.1:3306", None)
    };
    let mut dropped = witnessed(
        conn(
            FindingKind::DroppedHandshake,
            "198.18.7.7:40011",
            "198.18.0.1:3306",
            None,
        ),
        0,
        halfopen_core::DropPath::Cookie,
    );
    dropped.subject = Subject::Connection {
        tuple: Tuple::new("198.18.7.7:40011".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
        client_host: String::new(),
        server_host: "db".into(),
    };
    dropped.cookie = 0;
    rows(vec![
        (
            conn(FindingKind::ClientOnly, "198.18.0.2:40001", "198.18.0.1:3306", Some(42)),
            "The server host db has no trace of this connection.",
        ),
        (server_only, "The client host app has no trace of this connection."),
        (
            dropped,
            "The kernel of db dropped the completed handshake of 198.18.7.7:40011 to 198.18.0.1:3306.",
        ),
        (stalled, "The client has received nothing for 12 s"),
        (
            risk,
            "Listener 0.0.0.0:3306 (mariadbd (pid 500)) on db: accept queue 5/4.",
        ),
    ])
}

#[test]
fn findings_table_prints_every_kind() {
    insta::assert_snapshot!(findings_table(&every_kind(), &complete()));
    insta::assert_snapshot!("findings_table_empty", findings_table(&[], &complete()));
}

#[test]
fn findings_json_of_every_kind() {
    insta::assert_snapshot!(serde_json::to_string_pretty(&every_kind()).unwrap());
}

#[test]
fn explain_text_lists_facts_causes_and_changes() {
    let d = Diagnosis {
        target: "db:3306".into(),
        title: "listener 0.0.0.0:3306 on db".into(),
        facts: vec!["accept queue 5 of 4".into()],
        causes: vec!["A burst overflowed".into()],
        changes: vec![Change {
            setting: "back_log (mariadbd)".into(),
            current: "4".into(),
            suggested: "512".into(),
            how: "my.cnf".into(),
        }],
    };
    insta::assert_snapshot!(explain_text(&[d], &complete()));
    insta::assert_snapshot!("explain_text_empty", explain_text(&[], &complete()));
    insta::assert_snapshot!("explain_text_empty_with_gaps", explain_text(&[], &gaps()));
}

#[test]
fn hosts_table_shows_state_and_routable_addresses() {
    let h = |name: &str, stale: bool, connected: bool, last: Option<i64>| HostView {
        name: name.into(),
        addresses: vec!["198.18.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        last_report_ms: last,
        sockets: 10,
        client_sockets: 4,
        server_sockets: 6,
        listeners: 2,
        stale,
        connected,
        source: SourceKind::Netlink,
        interval_ms: 1000,
        peer: "198.18.0.1:40000".into(),
        gone: !connected && last.is_none(),
        ..Default::default()
    };
    let mut conflicted = h("db-2", false, true, Some(T0));
    conflicted.conflict = Some("a second collector (machine 3f2a…, boot 9c1d…, netns 4026532286, pid 77, from 198.18.0.5:40000) claims this host id and has been refused for 5 s".into());
    conflicted.shared_addresses = vec!["198.18.0.1".parse().unwrap()];
    conflicted.blind_spots = vec!["owners of other users' sockets: the collector lacks CAP_SYS_PTRACE".into()];
    // One network namespace of node-a (halfopen collector --netns), a pod's.
    let mut pod = h("node-a/shop/web-7d9f", false, true, Some(T0));
    pod.addresses = vec!["198.18.1.2".parse().unwrap()];
    pod.parent = Some("node-a".into());
    pod.netns_name = Some("shop/web-7d9f".into());
    pod.pod = Some("shop/web-7d9f".into());
    pod.instance.netns = 4097;
    let rows: Vec<_> = [
        h("db", false, true, Some(T0)),
        h("app", true, true, Some(T0)),
        h("old-db", true, false, None),
        h("down-db", true, false, Some(T0)),
        conflicted,
        pod,
    ]
    .iter()
    .map(host_json)
    .collect();
    insta::assert_snapshot!(hosts_table(&rows));
    insta::assert_snapshot!(serde_json::to_string_pretty(&rows[0]).unwrap());
    insta::assert_snapshot!(
        "hosts_json_of_a_pods_namespace",
        serde_json::to_string_pretty(&rows[5]).unwrap()
    );
    insta::assert_snapshot!("hosts_table_empty", hosts_table(&[]));
}

#[test]
fn snapshot_table_and_json() {
    let rec = |l: &str, r: &str, side, inode, info| SocketRecord {
        tuple: Tuple::new(l.parse().unwrap(), r.parse().unwrap()),
        state: TcpState::Established,
        side,
        cookie: 9,
        inode,
        uid: 0,
        keepalive: false,
        info,
    };
    let p = process(42, "java");
    let recs = [
        rec("198.18.0.2:40001", "198.18.0.1:3306", Side::Client, 77, None),
        rec(
            "198.18.0.1:3306",
            "198.18.0.2:40002",
            Side::Server,
            0,
            Some(TcpInfoLite {
                bytes_received: 0,
                bytes_acked: 1,
                last_data_recv_ms: 12_000,
                rtt_us: 50,
            }),
        ),
    ];
    let rows = vec![snapshot_json(&recs[0], Some(&p)), snapshot_json(&recs[1], None)];
    insta::assert_snapshot!(snapshot_table(&rows));
    insta::assert_snapshot!(serde_json::to_string_pretty(&rows).unwrap());
}

#[test]
fn coverage_in_words_and_json() {
    insta::assert_snapshot!("coverage_complete", coverage_text(&complete()));
    insta::assert_snapshot!("coverage_gaps", coverage_text(&gaps()));
    insta::assert_snapshot!(
        "coverage_gaps_json",
        serde_json::to_string_pretty(&coverage_json(&gaps())).unwrap()
    );
}

#[test]
fn a_failing_database_write_is_said_after_every_answer() {
    let c = unrecorded();
    insta::assert_snapshot!("coverage_unrecorded", coverage_text(&c));
    insta::assert_snapshot!("orphans_table_empty_unrecorded", orphans_table(&[], &c));
    insta::assert_snapshot!(
        "coverage_unrecorded_json",
        serde_json::to_string_pretty(&coverage_json(&c)).unwrap()
    );
    // Refusals are said too; a healthy store says nothing.
    let mut refused = c.clone();
    refused.store.as_mut().unwrap().refused = 3;
    assert!(not_recorded(&refused)
        .unwrap()
        .ends_with("; 3 refused since start because the queue (200000) was full (the current findings are written again once it catches up)"));
    let mut healthy = c;
    healthy.store = Some(halfopen_core::StoreHealth {
        pending: 5,
        ..Default::default()
    });
    assert_eq!(not_recorded(&healthy), None);
    assert_eq!(coverage_text(&healthy), coverage_text(&complete()));
}

#[test]
fn long_names_are_truncated_with_an_ellipsis() {
    assert_eq!(truncate("abcdef", 4), "abc…");
    assert_eq!(truncate("abc", 4), "abc");
    assert_eq!(rfc3339(T0), "2025-11-25T17:20:01.123Z");
}

fn stored() -> Vec<halfopen_core::StoredFinding> {
    let id = "db:3306@20251125T172001Z";
    let mut a = conn(
        FindingKind::ClientOnly,
        "198.18.0.2:40001",
        "198.18.0.1:3306",
        Some(4242),
    );
    a.cmdline_for_test("java -jar \"billing, v2\".jar");
    let b = conn(FindingKind::ClientOnly, "198.18.0.2:40002", "198.18.0.1:3306", None);
    vec![
        halfopen_core::StoredFinding {
            id: 1,
            finding: a,
            gone_at_ms: Some(T0 + 65_000),
            gone_reason: Some(halfopen_core::GoneReason::ClientClosed),
            explanation: "client_only: the server never accepted it".into(),
            incident: Some(id.into()),
        },
        halfopen_core::StoredFinding {
            id: 2,
            finding: b,
            gone_at_ms: None,
            gone_reason: None,
            explanation: "client_only".into(),
            incident: Some(id.into()),
        },
    ]
}

trait CmdlineForTest {
    fn cmdline_for_test(&mut self, c: &str);
}
impl CmdlineForTest for Finding {
    fn cmdline_for_test(&mut self, c: &str) {
        if let Some(p) = self.process.as_mut() {
            p.cmdline = c.into();
        }
    }
}

#[test]
fn history_as_table_json_and_csv() {
    let rows: Vec<HistoryJson> = stored().iter().map(history_json).collect();
    let w = Window {
        since: "2025-11-25T16:40:01.123Z",
        until: "2025-11-25T17:45:00.000Z",
    };
    insta::assert_snapshot!("history_table", history_table(&rows, &w));
    insta::assert_snapshot!("history_table_empty", history_table(&[], &w));
    insta::assert_snapshot!("history_json", serde_json::to_string_pretty(&rows).unwrap());
    // Quotes and commas in a command line stay in their field.
    let csv = history_csv(&rows).unwrap();
    insta::assert_snapshot!("history_csv", csv);
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let recs: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(&recs[0][7], "java -jar \"billing, v2\".jar");
}

#[test]
fn incidents_as_table_and_json() {
    let fs = stored();
    let i = halfopen_history::summarize("db:3306@20251125T172001Z", &fs, &[], T0 + 3_700_000);
    let rows = vec![incident_json(&i, T0 + 3_700_000)];
    let w = Window {
        since: "2025-11-18T17:40:01.123Z",
        until: "2025-11-25T18:40:00.000Z",
    };
    insta::assert_snapshot!("incidents_table", incidents_table(&rows, &w, true));
    insta::assert_snapshot!("incidents_table_empty", incidents_table(&[], &w, false));
    insta::assert_snapshot!("incidents_json", serde_json::to_string_pretty(&rows).unwrap());
    assert_eq!(duration(59), "59s");
    assert_eq!(duration(725), "12m05s");
    assert_eq!(duration(10_920), "3h02m");
    assert_eq!(duration(187_200), "2d04h");
}

/// Escape sequences in what hosts and processes send (a process renamed
/// to clear the screen, a host id with a bidi override) reach the
/// terminal as visible text, never as control characters.
#[test]
fn hostile_names_are_inert_in_every_table() {
    let mut f = conn(
        FindingKind::ClientOnly,
        "198.18.0.2:40001",
        "198.18.0.1:3306",
        Some(4242),
    );
    f.process.as_mut().unwrap().comm = "\u{1b}[2J\u{1b}]0;owned\u{7}java".into();
    f.subject = Subject::Connection {
        tuple: f.tuple().unwrap(),
        client_host: "app\u{202e}gnp.exe".into(),
        server_host: "db\u{9b}31m".into(),
    };
    let rows = rows(vec![(f, "why \u{1b}[31mred")]);
    let table = orphans_table(&rows, &complete());
    insta::assert_snapshot!("hostile_orphans_table", table);
    for t in [&table, &findings_table(&rows, &complete())] {
        assert!(
            !t.chars()
                .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{t:?}"
        );
        assert!(t.contains("\\x1b[2J"), "{t}");
    }
    assert_eq!(inert("a\tb\nc".to_string()), "a\tb\nc", "the tables' own layout stays");
}
