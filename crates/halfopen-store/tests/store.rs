//! The store on real SQLite files: findings survive a reopen, gone is
//! recorded, every kind round-trips with its evidence, rows written by an
//! older halfopen read back with their words, a full writer queue is
//! counted, and a path that cannot be written is a clear error.
use halfopen_core::{
    CounterWindow, Evidence, Finding, FindingKind, GoneReason, ListenerSample, Process, Subject, Tuple,
};
use halfopen_store::{open, StoreCmd};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("halfopen-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn finding(port: u16, cookie: u64) -> Finding {
    Finding {
        kind: FindingKind::ClientOnly,
        subject: Subject::Connection {
            tuple: Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "[::ffff:198.18.0.1]:3306".parse().unwrap(),
            ),
            client_host: "app".into(),
            server_host: "db".into(),
        },
        cookie,
        process: Some(Process {
            pid: 7,
            comm: "java".into(),
            cmdline: "java -jar x".into(),
            uid: 1000,
        }),
        server_process: None,
        keepalive: true,
        first_seen_ms: 10,
        confirmed_at_ms: 20,
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

fn confirmed(f: &Finding) -> StoreCmd {
    StoreCmd::Confirmed {
        finding: f.clone(),
        explanation: "why".into(),
    }
}

#[test]
fn survives_reopen_and_gone_is_recorded() {
    let d = dir("reopen");
    let path = d.join("sub/halfopen.db");
    {
        let (w, _) = open(&path, 16).unwrap();
        w.send(confirmed(&finding(40001, u64::MAX)));
        w.send(confirmed(&finding(40001, u64::MAX))); // idempotent
        w.send(confirmed(&finding(40002, 5)));
        w.send(StoreCmd::Gone {
            finding: finding(40002, 5),
            at_ms: 30,
            reason: GoneReason::ClientClosed,
        });
        w.flush();
        assert_eq!(w.stats().written.load(Ordering::Relaxed), 4);
    }
    let (_, r) = open(&path, 16).unwrap();
    let (cur, bad) = r.current().unwrap();
    assert!(bad.is_empty());
    assert_eq!(cur, vec![finding(40001, u64::MAX)]);
    let c = Connection::open(&path).unwrap();
    let (n, reason): (i64, String) = c
        .query_row(
            "SELECT count(*), max(gone_reason) FROM findings WHERE gone_at_ms = 30",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, reason.as_str()), (1, "closed"));
    let total: i64 = c.query_row("SELECT count(*) FROM findings", [], |r| r.get(0)).unwrap();
    assert_eq!(total, 2);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn every_kind_round_trips_with_its_evidence() {
    let d = dir("kinds");
    let path = d.join("h.db");
    let (w, r) = open(&path, 16).unwrap();
    let mut server_only = finding(40003, 9);
    server_only.kind = FindingKind::ServerOnly;
    server_only.process = None;
    server_only.server_process = Some(Process {
        pid: 5,
        comm: "mariadbd".into(),
        cmdline: "mariadbd --back-log=4".into(),
        uid: 27,
    });
    let mut stalled = finding(40004, 10);
    stalled.kind = FindingKind::StalledGreeting;
    stalled.evidence.silent_ms = Some(12_000);
    stalled.evidence.in_accept_queue = Some(true);
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
        ..finding(1, 0)
    };
    // A handshake the server's kernel witnessed dropped, for a client no collector watches.
    let mut dropped = finding(40005, 0);
    dropped.kind = FindingKind::DroppedHandshake;
    dropped.subject = Subject::Connection {
        tuple: Tuple::new("198.18.7.7:40005".parse().unwrap(), "198.18.0.1:3306".parse().unwrap()),
        client_host: String::new(),
        server_host: "db".into(),
    };
    dropped.process = None;
    dropped.evidence.witness = Some(halfopen_core::Witness {
        at_ms: 1_700_000_000_400,
        path: halfopen_core::DropPath::Normal,
        queue: 5,
        backlog: 4,
    });
    for f in [&server_only, &stalled, &risk, &dropped] {
        w.send(confirmed(f));
    }
    // A stalled greeting seen again updates its row.
    let mut later = stalled.clone();
    later.evidence.silent_ms = Some(15_000);
    w.send(confirmed(&later));
    w.flush();
    let (cur, bad) = r.current().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(cur, vec![server_only.clone(), later, risk.clone(), dropped.clone()]);
    w.send(StoreCmd::Gone {
        finding: risk,
        at_ms: 50,
        reason: GoneReason::Recovered,
    });
    w.send(StoreCmd::Gone {
        finding: dropped.clone(),
        at_ms: 60,
        reason: GoneReason::Expired,
    });
    w.flush();
    assert_eq!(r.current().unwrap().0.len(), 2);
    // The new end reason reads back too.
    let hist = r
        .history(0, i64::MAX, &halfopen_history::Filter::default(), None, 100)
        .unwrap()
        .findings;
    let h = hist
        .iter()
        .find(|s| s.finding.kind == FindingKind::DroppedHandshake)
        .unwrap();
    assert_eq!((h.gone_at_ms, h.gone_reason), (Some(60), Some(GoneReason::Expired)));
    assert_eq!(h.finding, dropped);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn rows_of_an_older_halfopen_read_back_with_their_words() {
    let d = dir("legacy");
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("h.db");
    {
        // halfopen 0.1's schema and one of its rows (no evidence column, no version).
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE findings (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, client TEXT NOT NULL, server TEXT NOT NULL,
             client_host TEXT NOT NULL, server_host TEXT NOT NULL, cookie INTEGER NOT NULL, pid INTEGER, process TEXT,
             cmdline TEXT, uid INTEGER, keepalive INTEGER NOT NULL, first_seen_ms INTEGER NOT NULL,
             confirmed_at_ms INTEGER NOT NULL, gone_at_ms INTEGER, gone_reason TEXT, listener TEXT, server_pid INTEGER,
             server_process TEXT, server_cmdline TEXT, explanation TEXT, silent_ms INTEGER, in_accept_queue INTEGER,
             server_uid INTEGER);
             INSERT INTO findings (kind, client, server, client_host, server_host, cookie, keepalive, first_seen_ms,
             confirmed_at_ms, explanation, silent_ms, in_accept_queue, listener)
             VALUES ('stalled_greeting', '198.18.0.2:40000', '198.18.0.1:25', 'app', 'mx', 3, 0, 1, 2,
                     'The client has received nothing for 12 s', 12000, 1, '0.0.0.0:25');",
        )
        .unwrap();
    }
    let (_, r) = open(&path, 4).unwrap();
    let (cur, bad) = r.current().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(cur.len(), 1);
    let e = &cur[0].evidence;
    assert_eq!(
        e.legacy_explanation.as_deref(),
        Some("The client has received nothing for 12 s")
    );
    assert_eq!((e.silent_ms, e.in_accept_queue), (Some(12_000), Some(true)));
    assert_eq!(cur[0].subject.server_end().to_string(), "198.18.0.1:25");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_full_writer_queue_is_counted_and_drains_once_the_database_is_free() {
    let d = dir("full");
    let path = d.join("h.db");
    let (w, r) = open(&path, 2).unwrap();
    // Another client holds the write lock: the writer waits (busy timeout)
    // on its first command while the queue fills.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let accepted: usize = (0..10)
        .map(|i| w.send(confirmed(&finding(41000 + i, i as u64))) as usize)
        .sum();
    assert!((2..=3).contains(&accepted), "accepted {accepted}");
    assert_eq!(w.stats().refused_full.load(Ordering::Relaxed), 10 - accepted as u64);
    other.execute_batch("COMMIT").unwrap();
    let start = Instant::now();
    w.flush();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(r.current().unwrap().0.len(), accepted);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn unwritable_path_is_a_clear_error() {
    let e = open(Path::new("/proc/halfopen/x.db"), 1).err().unwrap().to_string();
    assert!(e.contains("/proc/halfopen"), "{e}");
}

fn at(port: u16, cookie: u64, first_seen_ms: i64) -> Finding {
    let mut f = finding(port, cookie);
    f.first_seen_ms = first_seen_ms;
    f.confirmed_at_ms = first_seen_ms + 2_000;
    f
}

fn gone(f: &Finding, at_ms: i64) -> StoreCmd {
    StoreCmd::Gone {
        finding: f.clone(),
        at_ms,
        reason: GoneReason::ClientClosed,
    }
}

fn sample(at_ms: i64, overflows: u64) -> halfopen_core::Sample {
    halfopen_core::Sample {
        host: "db".into(),
        at_ms,
        deltas: [("TcpExt.ListenOverflows".to_string(), overflows)].into(),
        listeners: vec![halfopen_core::ListenerPoint {
            addr: "0.0.0.0:3306".parse().unwrap(),
            queue: 5,
            backlog: 4,
            drops: Some(overflows),
        }],
    }
}

/// Incidents are assigned as findings are recorded, survive a reopen (a
/// restarted reconciler adds to the same incident), split on the gap, and
/// read back with their samples; history pages through a window.
#[test]
fn incidents_and_history_over_restarts() {
    let d = dir("incidents");
    let path = d.join("halfopen.db");
    let gap = 300_000;
    let a = at(40001, 1, 1_000_000);
    let b = at(40002, 2, 1_010_000);
    let c = at(40003, 3, 1_200_000);
    let late = at(40004, 4, 1_200_000 + 60_000 + gap + 1);
    {
        let (w, _) = open(&path, 64).unwrap();
        w.send(confirmed(&a));
        w.send(confirmed(&b));
        w.send(StoreCmd::Sample(sample(999_000, 2)));
        w.send(StoreCmd::Sample(sample(1_001_000, 900)));
        w.send(StoreCmd::Sample(sample(1_005_000, 65)));
        w.send(gone(&a, 1_100_000));
        w.flush();
    }
    {
        // Restarted: b is still current, so c joins the same incident.
        let (w, _) = open(&path, 64).unwrap();
        w.send(confirmed(&c));
        w.send(gone(&b, 1_150_000));
        w.send(gone(&c, 1_260_000));
        w.send(confirmed(&late));
        w.flush();
        assert_eq!(w.stats().samples.load(Ordering::Relaxed), 0);
    }
    let r = halfopen_store::StoreReader::open(&path).unwrap();
    let (ids, more) = r.incident_ids(0, i64::MAX, 10).unwrap();
    assert_eq!(ids, ["db:3306@19700101T001640Z", "db:3306@19700101T002600Z"]);
    assert!(!more);
    let (pm, bad) = r.postmortem(&ids[0], 2_000_000).unwrap().unwrap();
    assert!(bad.is_empty());
    let i = &pm.incident;
    assert_eq!(
        (i.start_ms, i.end_ms, i.peak, i.findings),
        (1_000_000, Some(1_260_000), 2, 3)
    );
    assert_eq!(i.server, "0.0.0.0:3306".parse().unwrap());
    assert_eq!(
        i.counters,
        [("TcpExt.ListenOverflows".to_string(), 965)].into(),
        "the sample before the start is not counted"
    );
    assert_eq!(i.ended, halfopen_core::IncidentEnd::ClientClosed);
    assert_eq!(pm.samples.len(), 3, "the margin keeps the one before");
    assert_eq!(r.postmortem("db:3306@19700101T000000Z", 0).unwrap(), None);

    // The window: the second incident only.
    let (ids, _) = r.incident_ids(1_300_000, i64::MAX, 10).unwrap();
    assert_eq!(ids, ["db:3306@19700101T002600Z"]);
    let (ids, more) = r.incident_ids(0, i64::MAX, 1).unwrap();
    assert_eq!((ids.len(), more), (1, true));

    // History: everything in a window, paged.
    let all = halfopen_history::Filter::default();
    let p = r.history(0, i64::MAX, &all, None, 3).unwrap();
    let ports: Vec<u16> = p
        .findings
        .iter()
        .map(|f| f.finding.subject.client_end().unwrap().port())
        .collect();
    assert_eq!(ports, [40001, 40002, 40003]);
    assert_eq!(p.findings[0].gone_reason, Some(GoneReason::ClientClosed));
    assert_eq!(p.findings[0].incident.as_deref(), Some("db:3306@19700101T001640Z"));
    let p2 = r.history(0, i64::MAX, &all, p.next, 3).unwrap();
    assert_eq!(p2.findings.len(), 1);
    assert_eq!(p2.findings[0].gone_at_ms, None);
    assert_eq!(p2.next, None);
    // Alive in [1_120_000, 1_130_000]: b (until 1_150_000) only.
    let p = r.history(1_120_000, 1_130_000, &all, None, 100).unwrap();
    assert_eq!(p.findings.len(), 1);
    assert_eq!(p.findings[0].finding.cookie, 2);
    let none = halfopen_history::Filter {
        process: Some("mysqld".into()),
        ..Default::default()
    };
    assert!(r.history(0, i64::MAX, &none, None, 100).unwrap().findings.is_empty());
}

/// Retention deletes what ended before the cutoff, never what is current.
#[test]
fn retention_prunes_only_what_ended() {
    let d = dir("prune");
    let path = d.join("halfopen.db");
    let (w, r) = open(&path, 64).unwrap();
    let old = at(40001, 1, 1_000);
    let current = at(40002, 2, 2_000);
    w.send(confirmed(&old));
    w.send(confirmed(&current));
    w.send(gone(&old, 5_000));
    w.send(StoreCmd::Sample(sample(4_000, 1)));
    w.send(StoreCmd::Sample(sample(6_000, 1)));
    w.send(StoreCmd::Prune { before_ms: 5_500 });
    w.flush();
    assert_eq!(w.stats().pruned.load(Ordering::Relaxed), 2);
    let p = r
        .history(0, i64::MAX, &halfopen_history::Filter::default(), None, 100)
        .unwrap();
    assert_eq!(p.findings.len(), 1);
    assert_eq!(p.findings[0].finding.cookie, 2);
    assert_eq!(r.samples("db", 0, i64::MAX, 100).unwrap().len(), 1);
}
