//! End-to-end under faults (issue 12): keep working, lose nothing, say
//! nothing false. Each test builds its own lab of namespaces running the
//! real binary, breaks one thing, and checks what halfopen shows against
//! `ss` and what it wrote against the SQLite file (read with `sqlite3`):
//! SIGTERM with collectors connected; a collector killed with SIGKILL and
//! restarted; the db host partitioned from the reconciler (nftables); a
//! collector stopped (SIGSTOP) past the stale threshold; the database on a
//! 256 KiB tmpfs that fills mid-incident, then grows; the database locked
//! 20 s by another sqlite client; a collector whose wall clock is 10
//! minutes off (libfaketime); the reconciler stopped for 150 s; the
//! reconciler at a 64-file limit under 100 connections.
//!
//! The labs run one at a time (a lock): they measure CPU, memory and
//! staleness, which a neighbour's load would blur.
mod common;

use common::*;
use halfopen_lab::fleet::{ss_client_only, Fleet, RECONCILER_PORT};
use halfopen_lab::{Lab, LabChild, Signal, Tmpfs};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn coverage(lab: &Lab, fleet: &Fleet) -> Value {
    fleet.query(lab, &["coverage"]).unwrap()
}

/// Every current finding, all kinds.
fn all_findings(lab: &Lab, fleet: &Fleet) -> Vec<Value> {
    fleet.query(lab, &["findings"]).unwrap().as_array().cloned().unwrap()
}

/// Findings (any kind) about this port: on a healthy listener, each is false.
fn about_port(findings: &[Value], port: u16) -> Vec<Value> {
    let suffix = format!(":{port}");
    findings
        .iter()
        .filter(|f| {
            ["server", "listener", "client"]
                .iter()
                .any(|k| f[*k].as_str().is_some_and(|s| s.ends_with(&suffix)))
        })
        .cloned()
        .collect()
}

/// `halfopen ARGS --reconciler URL` (text, no --json) from the reconciler's host.
fn text(lab: &Lab, fleet: &Fleet, args: &[&str]) -> String {
    let exe = exe().to_string_lossy().into_owned();
    let reader = fleet.reader_args(); // --reconciler URL and the reader certificate
    let mut a = args.to_vec();
    a.extend(reader.iter().map(String::as_str));
    let out = lab
        .run(&fleet.reconciler_host, &exe, &a, Duration::from_secs(30))
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `SELECT count(*) FROM findings WHERE filter`, by the sqlite3 shell.
fn rows(db: &Path, filter: &str) -> i64 {
    let out = Command::new("sqlite3")
        .args(["-readonly", "-cmd", ".timeout 10000"])
        .arg(db)
        .arg(format!("SELECT count(*) FROM findings WHERE {filter}"))
        .output()
        .expect("sqlite3 (apt-get install sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

const CURRENT_ORPHANS: &str = "kind = 'client_only' AND gone_at_ms IS NULL";

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("halfopen-{tag}-{}", std::process::id()));
        let _ = Command::new("umount").arg("-l").arg(&d).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn db(&self) -> PathBuf {
        self.0.join("halfopen.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process started outside the lab, killed on drop.
struct Guarded(std::process::Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process, KiB (VmRSS in /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// CPU time of a process (utime + stime, /proc/PID/stat fields 14 and 15), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// Polls every 200 ms for `dur`, failing at the first round where a finding
/// about `port` (a healthy listener) exists; `each` sees every coverage.
fn no_finding_about(lab: &Lab, fleet: &Fleet, port: u16, dur: Duration, mut each: impl FnMut(&Value)) {
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let bad = about_port(&all_findings(lab, fleet), port);
        assert!(bad.is_empty(), "false findings about healthy port {port}: {bad:#?}");
        each(&coverage(lab, fleet));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn sigterm_stops_the_reconciler_promptly_with_every_finding_written() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-term") else { return };
    let dir = TempDir::new("e2e-flt-term");
    let db = dir.db();
    let fleet = standard_with(&mut lab, "1s", &["--db", db.to_str().unwrap()]);
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    println!("{} orphans confirmed", found.len());

    // SIGTERM while both collectors are connected.
    let began = Instant::now();
    fleet.reconciler.signal(Signal::SIGTERM).unwrap();
    let status = fleet
        .reconciler
        .wait_with_timeout(Duration::from_secs(15))
        .expect("the reconciler exits within 15 s of SIGTERM");
    let took = began.elapsed();
    let log = fleet.reconciler.read_stderr().unwrap();
    println!("reconciler stopped {took:?} after SIGTERM ({status})");
    assert!(status.success(), "{status}\n{log}");
    // The sessions ended because they were told, not because the 3 s grace
    // for open connections ran out.
    assert!(took < Duration::from_secs(3), "{took:?}\n{log}");
    assert!(!log.contains("connections still open"), "{log}");
    assert!(log.contains("database flushed"), "{log}");
    assert_eq!(
        rows(&db, CURRENT_ORPHANS),
        truth.len() as i64,
        "every confirmed finding is in the database after the stop"
    );

    // The collectors were told, and keep trying; SIGTERM stops them at once.
    let app = fleet.collector("app").unwrap().clone();
    wait_for(
        "the collector to hear the reconciler is shutting down",
        Duration::from_secs(10),
        || {
            app.read_stderr()
                .unwrap()
                .contains("reconciler shutting down")
                .then_some(())
        },
    );
    assert!(app.try_wait().unwrap().is_none(), "the collector keeps running");
    let began = Instant::now();
    app.signal(Signal::SIGTERM).unwrap();
    let status = app
        .wait_with_timeout(Duration::from_secs(5))
        .expect("the collector exits within 5 s");
    println!("collector stopped {:?} after SIGTERM ({status})", began.elapsed());
    assert!(status.success(), "{status}");
    lab.teardown().unwrap();
}

#[test]
fn a_collector_killed_and_restarted_drops_its_old_table_and_agrees_again() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-kill") else { return };
    let mut fleet = standard(&mut lab, "1s");
    let inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth1, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);

    fleet.collector("app").unwrap().kill().unwrap();
    wait_for("app to be disconnected", Duration::from_secs(30), || {
        names(&coverage(&lab, &fleet)["disconnected"])
            .contains("app")
            .then_some(())
    });
    // While app's collector is away its clients close: what it held cannot
    // be checked, and nothing new is judged against it.
    inc.burst.kill().unwrap();
    assert!(ss_client_only(&lab, "app", "db", server).unwrap().is_empty());
    fleet.add_collector(&mut lab, "app", "1s").unwrap();
    // Its new session's full table ends what the old one held; no finding
    // ever comes from the old table.
    let start = Instant::now();
    loop {
        let found: BTreeSet<_> = halfopen_lab::fleet::finding_pairs(&fleet.orphans(&lab).unwrap());
        assert!(found.is_subset(&truth1), "a finding the old table never had: {found:?}");
        if found.is_empty() {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "old findings still listed: {}", found.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();
    // A new incident is found as ss shows it.
    let _inc2 = incident(&mut lab, "db", "0.0.0.0:3307", "app", "198.18.0.1:3307", 100);
    wait_for_agreement(&lab, &fleet, "app", "db", "198.18.0.1:3307".parse().unwrap(), TIMEOUT);
    let logs = fleet.reconciler.read_stderr().unwrap();
    assert!(logs.matches("collector connected").count() >= 3, "{logs}");
    lab.teardown().unwrap();
}

const PARTITION: &str = "table inet halfopen_partition {
    chain input { type filter hook input priority 0; policy accept; ip saddr 198.18.0.3 drop; }
    chain output { type filter hook output priority 0; policy accept; ip daddr 198.18.0.3 drop; }
}";

#[test]
fn a_host_partitioned_from_the_reconciler_is_stale_judged_by_nobody_and_recovers() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-part") else { return };
    let fleet = standard(&mut lab, "1s");
    let (_server, churn) = healthy_churn(&mut lab, 8080, "60s");
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(5), |_| {});

    lab.nft("db", PARTITION).unwrap();
    let mut seen_unfresh = false;
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(30), |c| {
        let away: BTreeSet<String> = names(&c["stale"]).union(&names(&c["disconnected"])).cloned().collect();
        if away.contains("db") {
            seen_unfresh = true;
            assert!(
                c["not_covered"].to_string().contains("nothing judged against them"),
                "{c}"
            );
        }
    });
    assert!(
        seen_unfresh,
        "db never showed as stale or disconnected during the partition"
    );

    lab.nft("db", "delete table inet halfopen_partition").unwrap();
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(8), |_| {});
    let c = coverage(&lab, &fleet);
    assert_eq!(c["fresh"], 2, "{c}");
    churn_summary(&churn);
    lab.teardown().unwrap();
}

#[test]
fn a_collector_stopped_past_the_stale_threshold_is_judged_by_nobody_and_recovers() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-stop") else { return };
    let fleet = standard(&mut lab, "1s");
    let (_server, churn) = healthy_churn(&mut lab, 8080, "40s");
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(4), |_| {});

    let db = fleet.collector("db").unwrap().clone();
    db.signal(Signal::SIGSTOP).unwrap();
    let mut seen_stale = false;
    // 12 s: four times the stale threshold (3 intervals), under the 15 s
    // HTTP/2 keepalive, so the session stays and only staleness protects.
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(12), |c| {
        seen_stale |= names(&c["stale"]).contains("db");
    });
    assert!(seen_stale, "db never showed as stale while stopped");
    db.signal(Signal::SIGCONT).unwrap();
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(8), |_| {});
    churn_summary(&churn);
    lab.teardown().unwrap();
}

#[test]
fn a_full_disk_keeps_the_live_view_says_so_and_every_finding_is_written_when_space_returns() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-full") else { return };
    let dir = TempDir::new("e2e-flt-full");
    let fs = Tmpfs::mount(&dir.0, "256k").unwrap();
    let db = dir.db();
    let fleet = standard_with(&mut lab, "1s", &["--db", db.to_str().unwrap()]);
    // Under load the server accepts more of the burst; 700 connects leave
    // 250 or more orphans, whose rows fill the 256 KiB file system.
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 700);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    println!("{} orphans", truth.len());
    assert!(
        truth.len() >= 250,
        "the incident is too small to fill the disk: {}",
        truth.len()
    );

    let c = wait_for("the coverage to say the write fails", TIMEOUT, || {
        let c = coverage(&lab, &fleet);
        (c["store"]["failing"] == true).then_some(c)
    });
    let err = c["store"]["error"].as_str().unwrap();
    assert!(err.contains("full"), "{c}");
    let written_before = rows(&db, CURRENT_ORPHANS);
    println!("written while the disk is full: {written_before} of {}", truth.len());
    assert!(written_before < truth.len() as i64, "the disk did not fill");
    let table = text(&lab, &fleet, &["orphans"]);
    assert!(
        table.contains("Not recorded: the database write is failing since"),
        "{table}"
    );
    assert!(text(&lab, &fleet, &["hosts"]).contains("Not recorded:"));
    let log = fleet.reconciler.read_stderr().unwrap();
    for l in log.lines().filter(|l| l.contains("database")) {
        println!("reconciler: {}", l.chars().take(400).collect::<String>());
    }
    assert!(log.contains("the disk holding the database is full"), "{log}");
    let lines = log.matches("database writes fail").count();
    assert!(lines <= 2, "said once, not per record: {lines} lines");
    // The live view is unaffected.
    wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);

    fs.resize("64m").unwrap();
    let n = wait_for("every current finding to be written", TIMEOUT, || {
        let orphans = fleet.orphans(&lab).unwrap().len() as i64;
        (rows(&db, CURRENT_ORPHANS) == orphans).then_some(orphans)
    });
    assert_eq!(n, truth.len() as i64);
    let c = wait_for("the store to be healthy", TIMEOUT, || {
        let c = coverage(&lab, &fleet);
        (c["store"]["failing"] == false).then_some(c)
    });
    assert_eq!(c["store"]["dropped"], 0, "{c}");
    let log = fleet.reconciler.read_stderr().unwrap();
    for l in log
        .lines()
        .filter(|l| l.contains("caught up") || l.contains("succeed again"))
    {
        println!("reconciler: {}", l.chars().take(400).collect::<String>());
    }
    assert!(log.contains("database caught up"), "{log}");
    assert!(!text(&lab, &fleet, &["orphans"]).contains("Not recorded"));
    lab.teardown().unwrap();
    drop(fs);
}

#[test]
fn a_database_locked_for_20_s_by_another_client_loses_nothing() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-lock") else { return };
    let dir = TempDir::new("e2e-flt-lock");
    let db = dir.db();
    let fleet = standard_with(&mut lab, "1s", &["--db", db.to_str().unwrap()]);
    // Another sqlite client holds the write lock for 20 s.
    let mut locker = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sqlite3 (apt-get install sqlite3)");
    {
        use std::io::Write;
        let mut stdin = locker.stdin.take().unwrap();
        stdin
            .write_all(b"BEGIN EXCLUSIVE;\n.print locked\n.shell sleep 20\nCOMMIT;\n")
            .unwrap();
    }
    let locked_at = Instant::now();
    let mut locker = Guarded(locker);
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(locker.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
    }
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    assert!(
        locked_at.elapsed() < Duration::from_secs(20),
        "confirmed after the lock ended: proves nothing"
    );
    let c = coverage(&lab, &fleet);
    assert_eq!(c["store"]["failing"], true, "{c}");
    assert!(c["store"]["error"].as_str().unwrap().contains("locked"), "{c}");
    assert_eq!(rows(&db, CURRENT_ORPHANS), 0, "nothing written while locked");
    let st = locker.0.wait().unwrap();
    assert!(st.success(), "the locking sqlite3 failed: {st}");
    println!("lock held {:?}", locked_at.elapsed());
    wait_for("every finding to be written once the lock is gone", TIMEOUT, || {
        (rows(&db, CURRENT_ORPHANS) == truth.len() as i64).then_some(())
    });
    let c = coverage(&lab, &fleet);
    assert_eq!(c["store"]["failing"], false, "{c}");
    assert_eq!(c["store"]["dropped"], 0, "{c}");
    lab.teardown().unwrap();
}

fn rfc3339(s: &str) -> Option<std::time::SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(std::time::SystemTime::from)
}

/// The RFC 3339 time at the start of a log line (tracing's default format).
fn log_time(line: &str) -> Option<std::time::SystemTime> {
    rfc3339(line.split_whitespace().next()?)
}

#[test]
fn a_collector_whose_clock_is_ten_minutes_off_changes_nothing() {
    let _serial = serial();
    let faketime = Path::new("/usr/bin/faketime");
    if !faketime.exists() {
        let ci = matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"));
        assert!(!ci, "faketime is missing (apt-get install faketime) and CI is set");
        eprintln!("skipping: faketime is missing (apt-get install faketime)");
        return;
    }
    let Some(mut lab) = lab("e2e-flt-skew") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    fleet.add_collector(&mut lab, "db", "1s").unwrap();
    // app's collector lives 10 minutes in the past (wall clock only: its
    // monotonic clock, which paces it, is left alone).
    let exe_s = exe().to_string_lossy().into_owned();
    let remote = fleet.collector_args("app").unwrap(); // --reconciler URL and its TLS files
    let mut args = vec![
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
        "/usr/bin/faketime",
        "-f",
        "-10m",
        &exe_s,
        "collector",
        "--interval",
        "1s",
        "--host-id",
        "app",
        "--netns",
        "self",
    ];
    args.extend(remote.iter().map(String::as_str));
    let skewed = lab.spawn("app", Path::new("/usr/bin/env"), &args).unwrap();
    fleet.collectors.push(("app".into(), skewed.clone()));
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();
    // It really is 10 minutes off: its own log says so.
    let log = skewed.read_stderr().unwrap();
    let its_time = log.lines().find_map(log_time).expect("a timestamped log line");
    let behind = std::time::SystemTime::now().duration_since(its_time).unwrap();
    println!("app's collector clock is {behind:?} behind");
    assert!(
        behind > Duration::from_secs(9 * 60) && behind < Duration::from_secs(11 * 60),
        "{behind:?}\n{log}"
    );

    let (_server, churn) = healthy_churn(&mut lab, 8080, "30s");
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (_, found) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    // Times are the reconciler's: none is 10 minutes off.
    let now = std::time::SystemTime::now();
    for f in &found {
        let seen = rfc3339(f["first_seen"].as_str().unwrap()).unwrap();
        let age = now.duration_since(seen).unwrap_or_default();
        assert!(
            age < Duration::from_secs(120),
            "first_seen {} is {age:?} old",
            f["first_seen"]
        );
    }
    no_finding_about(&lab, &fleet, 8080, Duration::from_secs(5), |_| {});
    churn_summary(&churn);
    lab.teardown().unwrap();
}

#[test]
fn collectors_stay_bounded_while_the_reconciler_is_away_for_minutes_and_reconnect() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-away") else { return };
    let fleet = standard(&mut lab, "1s");
    let (_server, _churn) = healthy_churn(&mut lab, 8080, "300s");
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    let pids: Vec<(String, u32)> = fleet.collectors.iter().map(|(h, c)| (h.clone(), c.pid())).collect();
    let start: Vec<u64> = pids.iter().map(|(_, p)| rss_kib(*p)).collect();

    fleet.reconciler.signal(Signal::SIGSTOP).unwrap();
    let away = Duration::from_secs(150);
    let began = Instant::now();
    let mut max = start.clone();
    while began.elapsed() < away {
        std::thread::sleep(Duration::from_secs(5));
        for (i, (host, pid)) in pids.iter().enumerate() {
            let c: &LabChild = fleet.collector(host).unwrap();
            assert!(c.try_wait().unwrap().is_none(), "the {host} collector exited");
            max[i] = max[i].max(rss_kib(*pid));
        }
    }
    fleet.reconciler.signal(Signal::SIGCONT).unwrap();
    for (i, (host, _)) in pids.iter().enumerate() {
        println!(
            "{host} collector RSS: {} KiB at start, at most {} KiB while the reconciler was away",
            start[i], max[i]
        );
        assert!(
            max[i] <= 2 * start[i] + 8 * 1024,
            "{host}: RSS grew from {} to {} KiB",
            start[i],
            max[i]
        );
    }
    let back = Instant::now();
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();
    println!("collectors fresh again {:?} after SIGCONT", back.elapsed());
    wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    lab.teardown().unwrap();
}

#[test]
fn at_its_file_limit_the_reconciler_does_not_spin_logs_and_keeps_serving() {
    let _serial = serial();
    let Some(mut lab) = lab("e2e-flt-nofile") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    let listen = format!("198.18.0.3:{RECONCILER_PORT}");
    let exe_s = exe().to_string_lossy().into_owned();
    // Over mutual TLS like every lab fleet: the certificates Fleet::start makes.
    let certs = halfopen_lab::fleet::certs_dir(&lab);
    halfopen_lab::fleet::ensure_ca(&exe(), &certs).unwrap();
    halfopen_lab::fleet::ensure_cert(&exe(), &certs, "--reconciler", "198.18.0.3").unwrap();
    halfopen_lab::fleet::ensure_cert(&exe(), &certs, "--reader", "lab-reader").unwrap();
    let tls = halfopen_lab::fleet::tls_flags(&certs, "198.18.0.3");
    let mut args = vec!["--nofile=64:64", &exe_s, "reconciler", "--listen", &listen, "--no-db"];
    args.extend(tls.iter().map(String::as_str));
    // prlimit sets the limit and execs the reconciler (same pid).
    let reconciler = lab.spawn("recon", Path::new("/usr/bin/prlimit"), &args).unwrap();
    let mut fleet = Fleet {
        exe: exe(),
        reconciler_host: "recon".into(),
        url: format!("https://{listen}"),
        reconciler: reconciler.clone(),
        collectors: Vec::new(),
        certs,
        server_name: "198.18.0.3".into(),
    };
    wait_for("the reconciler to answer", Duration::from_secs(20), || {
        fleet.hosts(&lab).ok()
    });
    fleet.add_collector(&mut lab, "db", "1s").unwrap();
    fleet.add_collector(&mut lab, "app", "1s").unwrap();
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();

    // 100 connections that never speak: more than 64 files.
    let flood = burst(&mut lab, "app", &listen, 100);
    flood
        .wait_for_line(|l| l.contains("\"established\""), Duration::from_secs(30))
        .unwrap();
    wait_for(
        "the reconciler to log the refused accepts",
        Duration::from_secs(20),
        || {
            reconciler
                .read_stderr()
                .unwrap()
                .contains("cannot accept connections")
                .then_some(())
        },
    );
    let pid = reconciler.pid();
    let cpu0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(5));
    let cpu = cpu_seconds(pid) - cpu0;
    println!("reconciler CPU at its file limit: {cpu:.2} s in 5 s");
    assert!(
        cpu < 1.0,
        "the reconciler spins at its file limit: {cpu:.2} s of CPU in 5 s"
    );
    let log = reconciler.read_stderr().unwrap();
    assert!(log.contains("open-file limit"), "{log}");
    let lines = log.matches("cannot accept connections").count();
    assert!(lines <= 2, "rate-limited: {lines} lines in ~6 s");
    assert!(reconciler.try_wait().unwrap().is_none(), "the reconciler died");

    // Once the flood is gone, it answers; the collectors' sessions lived on.
    flood.kill().unwrap();
    wait_for("hosts to answer after the flood", Duration::from_secs(30), || {
        fleet.hosts(&lab).ok()
    });
    fleet.wait_for_collectors(&lab, TIMEOUT).unwrap();
    let logs = reconciler.read_stderr().unwrap();
    assert_eq!(
        logs.matches("collector connected").count(),
        2,
        "the collectors' sessions survived the flood: {logs}"
    );
    lab.teardown().unwrap();
}
