//! The writer under faults, on real SQLite files: a lock another client
//! holds past the busy timeout, a full disk (a real tmpfs, as root), a
//! refused queue followed by a catch-up. Nothing the queue accepted is lost,
//! the failure is visible in the stats while it lasts, and a finding
//! confirmed again keeps its first sighting.
use halfopen_core::{Evidence, Finding, FindingKind, GoneReason, Subject, Tuple};
use halfopen_lab::Tmpfs;
use halfopen_store::{open_with, StoreCmd, StoreConfig};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("halfopen-store-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn finding(port: u16, cookie: u64, first_seen_ms: i64) -> Finding {
    Finding {
        kind: FindingKind::ClientOnly,
        subject: Subject::Connection {
            tuple: Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "198.18.0.1:3306".parse().unwrap(),
            ),
            client_host: "app".into(),
            server_host: "db".into(),
        },
        cookie,
        process: None,
        server_process: None,
        keepalive: false,
        first_seen_ms,
        confirmed_at_ms: first_seen_ms + 1_000,
        evidence: Evidence::default(),
    }
}

fn confirmed(f: &Finding, words: &str) -> StoreCmd {
    StoreCmd::Confirmed {
        finding: f.clone(),
        explanation: words.to_string(),
    }
}

fn config(queue: usize, busy_ms: u64) -> StoreConfig {
    StoreConfig {
        queue,
        busy_timeout: Duration::from_millis(busy_ms),
        ..Default::default()
    }
}

fn count(path: &Path, filter: &str) -> i64 {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.query_row(&format!("SELECT count(*) FROM findings WHERE {filter}"), [], |r| {
        r.get(0)
    })
    .unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lock_held_past_the_busy_timeout_loses_nothing_and_is_visible() {
    let d = dir("locked");
    let path = d.join("h.db");
    let (w, _) = open_with(&path, config(64, 200)).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for i in 0..20 {
        assert!(w.send(confirmed(&finding(40000 + i, i as u64, 10), "why")));
    }
    wait_until("the writer to report the lock", Duration::from_secs(10), || {
        w.stats().health().failing()
    });
    let h = w.stats().health();
    let err = h.error.clone().unwrap_or_default();
    assert!(err.contains("locked"), "{h:?}");
    assert!(
        err.contains(&path.display().to_string()),
        "the error names the database: {err}"
    );
    assert_eq!(h.pending, 20, "{h:?}");
    assert_eq!(h.written, 0);
    // The flush is bounded: it says what is not written yet.
    let late = w.flush_within(Duration::from_millis(300)).unwrap_err();
    assert_eq!(late.pending, 20, "{late}");
    assert!(late.to_string().contains("20 records not yet written"), "{late}");
    std::thread::sleep(Duration::from_secs(1));
    other.execute_batch("COMMIT").unwrap();
    w.flush_within(Duration::from_secs(30)).unwrap();
    let h = w.stats().health();
    assert!(!h.failing() && h.error.is_none() && h.pending == 0, "{h:?}");
    assert_eq!((h.written, h.dropped, h.refused), (20, 0, 0), "{h:?}");
    assert!(w.stats().retries.load(Ordering::Relaxed) >= 2);
    assert_eq!(count(&path, "gone_at_ms IS NULL"), 20);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_finding_confirmed_again_keeps_its_first_sighting() {
    let d = dir("again");
    let path = d.join("h.db");
    let (w, r) = open_with(&path, config(8, 1000)).unwrap();
    let f = finding(40001, 7, 1_000);
    w.send(confirmed(&f, "first words"));
    // The engine confirms it again after a restart, with a later first sighting.
    let again = finding(40001, 7, 900_000);
    w.send(confirmed(&again, "later words"));
    w.flush();
    let (cur, _) = r.current().unwrap();
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0].first_seen_ms, 1_000, "first_seen is never rewritten");
    let words: String = Connection::open(&path)
        .unwrap()
        .query_row("SELECT explanation FROM findings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(words, "later words", "the explanation is refreshed");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn after_refusals_a_catch_up_records_what_is_current_and_ends_what_ended() {
    let d = dir("catchup");
    let path = d.join("h.db");
    let (w, _) = open_with(&path, config(2, 100)).unwrap();
    let a = finding(40001, 1, 1_000);
    let b = finding(40002, 2, 2_000);
    let c = finding(40003, 3, 3_000);
    w.send(confirmed(&a, "a"));
    w.send(confirmed(&b, "b"));
    w.flush();
    // The database is locked; the queue (2) fills; c's confirmation and
    // b's end are refused.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let filler = finding(40009, 9, 9_000);
    let mut accepted = 0;
    for _ in 0..5 {
        accepted += w.send(confirmed(&filler, "filler")) as usize;
    }
    assert!(!w.send(confirmed(&c, "c")));
    assert!(!w.send(StoreCmd::Gone {
        finding: b.clone(),
        at_ms: 5_000,
        reason: GoneReason::ClientClosed
    }));
    assert_eq!(w.stats().refused_full.load(Ordering::Relaxed), 7 - accepted as u64);
    other.execute_batch("COMMIT").unwrap();
    w.flush_within(Duration::from_secs(30)).unwrap();
    assert_eq!(count(&path, "cookie = 3"), 0, "c was refused");
    // The engine's current findings now: a, c (b ended, filler ended).
    assert!(w.send(StoreCmd::CatchUp {
        current: vec![(a.clone(), "a".into()), (c.clone(), "c".into())],
        at_ms: 6_000,
    }));
    w.flush();
    assert_eq!(count(&path, "gone_at_ms IS NULL AND cookie IN (1, 3)"), 2);
    assert_eq!(
        count(
            &path,
            "gone_at_ms = 6000 AND gone_reason = 'closed' AND cookie IN (2, 9)"
        ),
        2,
        "rows whose end was refused are ended"
    );
    assert_eq!(count(&path, "cookie = 1"), 1, "a is not written twice");
    assert_eq!(w.stats().caught_up_ends.load(Ordering::Relaxed), 2);
    std::fs::remove_dir_all(&d).unwrap();
}

fn root_or_skip(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    let ci = matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"));
    assert!(!ci, "{test} needs root (mounting a tmpfs) and CI is set");
    eprintln!("skipping {test}: needs root to mount a tmpfs");
    false
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn a_full_disk_loses_nothing_and_every_record_is_written_when_space_returns() {
    if !root_or_skip("a_full_disk_loses_nothing") {
        return;
    }
    let d = dir("full");
    let fs = Tmpfs::mount(&d, "256k").unwrap();
    let path = d.join("h.db");
    let (w, r) = open_with(&path, config(4096, 100)).unwrap();
    let words = "x".repeat(1_000);
    let n = 1_000u16;
    for i in 0..n {
        assert!(w.send(confirmed(&finding(40000 + i, i as u64, 10), &words)));
    }
    wait_until("the disk to fill", Duration::from_secs(30), || {
        w.stats().health().failing()
    });
    let h = w.stats().health();
    assert!(h.error.as_deref().unwrap_or("").contains("full"), "{h:?}");
    assert!(h.pending > 0 && h.written < n as u64, "{h:?}");
    // It stays failing, nothing dropped, while the disk is full.
    std::thread::sleep(Duration::from_secs(1));
    let h = w.stats().health();
    assert!(h.failing() && h.dropped == 0, "{h:?}");
    fs.resize("64m").unwrap();
    w.flush_within(Duration::from_secs(60)).unwrap();
    let h = w.stats().health();
    assert!(!h.failing() && h.pending == 0, "{h:?}");
    assert_eq!((h.written, h.dropped, h.refused), (n as u64, 0, 0), "{h:?}");
    assert_eq!(r.current().unwrap().0.len(), n as usize);
    drop(w);
    drop(r);
    drop(fs);
    let _ = std::fs::remove_dir_all(&d);
}
