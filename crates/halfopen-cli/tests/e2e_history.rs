//! End-to-end for postmortems: real incidents in a lab recorded in a real
//! SQLite file, read back through `history`, `incidents` and `incident`.
//! The reconciler is killed with SIGKILL mid-incident and restarted on the
//! same database; while the collectors reconnect and resend their tables no
//! false finding appears, the history stays whole and the incident keeps
//! its id.
//! Two incidents on one listener more than the gap apart are two; two
//! listeners are two; of two listeners on one host, the one that dropped
//! connections is the one named.
mod common;

use common::*;
use halfopen_lab::fleet::Fleet;
use halfopen_lab::Lab;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
const GAP: &str = "20s";

fn reconciler_args(db: &str) -> Vec<String> {
    ["--db", db, "--incident-gap", GAP]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `halfopen ARGS --reconciler URL` (no --json added) from the reconciler's host.
fn raw(lab: &Lab, fleet: &Fleet, args: &[&str]) -> String {
    let exe = exe().to_string_lossy().into_owned();
    let reader = fleet.reader_args();
    let mut a = args.to_vec();
    a.extend(reader.iter().map(String::as_str));
    let out = lab
        .run(&fleet.reconciler_host, &exe, &a, Duration::from_secs(30))
        .unwrap();
    assert!(
        out.status.success(),
        "halfopen {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn array(v: Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn history(lab: &Lab, fleet: &Fleet, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["history"];
    if !extra.contains(&"--since") {
        args.extend_from_slice(&["--since", "1h"]);
    }
    args.extend_from_slice(extra);
    array(fleet.query(lab, &args).unwrap())
}

fn incidents(lab: &Lab, fleet: &Fleet) -> Vec<Value> {
    array(fleet.query(lab, &["incidents", "--since", "1h"]).unwrap())
}

fn clients(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(|r| r["client"].as_str().unwrap().to_string()).collect()
}

#[test]
fn incidents_survive_a_kill_9_and_are_told_apart() {
    let Some(mut lab) = lab("e2e-history") else { return };
    let db_dir = tempdir("e2e-history");
    let db = db_dir.join("halfopen.db");
    let db = db.to_str().unwrap();
    let args = reconciler_args(db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut fleet = standard_with(&mut lab, "1s", &args);

    // A healthy listener on the same host, busy while 3306 overflows.
    let _healthy = greet_server(&mut lab, "db", "0.0.0.0:8080", &["--backlog", "4096"]);
    let _healthy_clients = burst(&mut lab, "app", "198.18.0.1:8080", 20);

    // Incident 1 on db:3306.
    let inc1 = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth1, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    let first = wait_for("incident 1 in the database", TIMEOUT, || {
        let rows = history(&lab, &fleet, &["--kind", "client_only"]);
        (clients(&rows).len() >= truth1.len()).then_some(rows)
    });
    let id1 = first[0]["incident"].as_str().unwrap().to_string();
    assert!(id1.starts_with("db:3306@"), "{id1}");
    assert!(first.iter().all(|r| r["incident"] == id1.as_str()), "one incident");
    assert!(first.iter().all(|r| r["gone_at"].is_null()), "all current");
    // Per-listener drops: the orphans' listener dropped, and only 3306 is at risk.
    assert!(
        first
            .iter()
            .all(|r| r["evidence"]["listener"]["drops"].as_u64() > Some(0)),
        "{}",
        first[0]
    );
    let risk = fleet.findings(&lab, "listener_at_risk").unwrap();
    assert!(risk.iter().any(|r| r["listener"] == "0.0.0.0:3306"), "{risk:?}");
    assert!(!risk.iter().any(|r| r["listener"] == "0.0.0.0:8080"), "{risk:?}");

    // SIGKILL mid-incident; a new reconciler on the same database.
    fleet.restart_reconciler(&mut lab, &args).unwrap();
    // While the tables rebuild (the collectors reconnect and resend full
    // tables, one after the other), poll every 200 ms: nothing about the
    // healthy listener, and no orphan that was not recorded before the kill.
    let rebuild = std::time::Instant::now();
    let mut both_fresh: Option<std::time::Instant> = None;
    let mut rounds = 0;
    while both_fresh.is_none_or(|t| t.elapsed() < Duration::from_secs(3)) {
        for f in array(fleet.query(&lab, &["findings"]).unwrap()) {
            let about_8080 = ["server", "listener"]
                .iter()
                .any(|k| f[*k].as_str().is_some_and(|s| s.ends_with(":8080")));
            assert!(
                !about_8080,
                "a finding about the healthy listener while tables rebuild: {f}"
            );
            if f["kind"] == "client_only" {
                let c = f["client"].as_str().unwrap().to_string();
                assert!(clients(&first).contains(&c), "a new orphan while tables rebuild: {f}");
            }
        }
        let fresh = fleet
            .hosts(&lab)
            .unwrap()
            .iter()
            .filter(|h| h["stale"] == false && h["connected"] == true && h["last_report"].is_string())
            .count();
        if fresh == 2 {
            both_fresh.get_or_insert_with(std::time::Instant::now);
        }
        assert!(
            rebuild.elapsed() < Duration::from_secs(60),
            "the tables did not rebuild"
        );
        rounds += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("tables rebuilt, {rounds} polls without a false finding");
    fleet.wait_for_collectors(&lab, Duration::from_secs(60)).unwrap();
    // The collectors resynced: each opened a second session.
    for (host, c) in &fleet.collectors {
        let sessions = c.read_stderr().unwrap().matches(": connected").count();
        assert!(
            sessions >= 2,
            "the {host} collector did not reconnect ({sessions} sessions)"
        );
    }
    // The live view recovers, and the history is whole, in the same incident.
    wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    let after = history(&lab, &fleet, &["--kind", "client_only"]);
    assert_eq!(clients(&after), clients(&first), "the history after the restart");
    assert!(
        after.iter().all(|r| r["incident"] == id1.as_str()),
        "the same incident id"
    );

    // The clients close: incident 1 ends.
    inc1.burst.kill().unwrap();
    let ended = wait_for("incident 1 to end", TIMEOUT, || {
        let i = incidents(&lab, &fleet);
        i.iter()
            .find(|i| i["id"] == id1.as_str() && !i["end"].is_null())
            .cloned()
    });
    assert_eq!(ended["ended"], "client_closed", "{ended}");
    assert_eq!(ended["server"], "0.0.0.0:3306", "{ended}");
    assert_eq!(ended["server_host"], "db", "{ended}");
    assert!(ended["peak"].as_u64().unwrap() >= truth1.len() as u64, "{ended}");
    assert!(
        ended["kinds"]["client_only"].as_u64().unwrap() >= truth1.len() as u64,
        "{ended}"
    );
    let burst_pid = inc1.burst.pid() as u64;
    let procs = ended["client_processes"].as_array().unwrap();
    assert!(
        procs
            .iter()
            .any(|p| p["pid"].as_u64() == Some(burst_pid) && p["client_host"] == "app"),
        "{ended}"
    );
    assert!(ended["counters"]["TcpExt.SyncookiesSent"].as_u64() > Some(0), "{ended}");
    let gone = history(&lab, &fleet, &["--kind", "client_only", "--server", "db:3306"]);
    assert!(gone
        .iter()
        .all(|r| r["gone_reason"] == "closed" && !r["gone_at"].is_null()));

    // The postmortem as data: its findings and samples, the healthy
    // listener's samples with no drops.
    let pm = array_or_obj(raw(&lab, &fleet, &["incident", &id1, "--format", "json"]));
    assert_eq!(pm["incident"]["id"], id1.as_str());
    // The findings and the count of one answer agree (a listener can be at
    // risk again between two queries, so not across answers).
    assert_eq!(
        pm["findings"].as_array().unwrap().len() as u64,
        pm["incident"]["findings"].as_u64().unwrap()
    );
    assert!(pm["incident"]["findings"].as_u64() >= ended["findings"].as_u64());
    let samples = pm["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "samples around the incident");
    let drops_of = |port: &str| -> u64 {
        let pts: Vec<u64> = samples
            .iter()
            .flat_map(|s| s["listeners"].as_array().unwrap().iter())
            .filter(|l| l["addr"] == port)
            .filter_map(|l| l["drops"].as_u64())
            .collect();
        pts.iter().max().copied().unwrap_or(0) - pts.iter().min().copied().unwrap_or(0)
    };
    assert!(drops_of("0.0.0.0:3306") > 0, "3306 dropped");
    assert_eq!(drops_of("0.0.0.0:8080"), 0, "8080 did not");

    // More than the gap later: incident 2 on 3306 and one on 3307 at once.
    inc1.server.kill().unwrap();
    std::thread::sleep(Duration::from_secs(22));
    let between = chrono_now();
    let _inc2 = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 80);
    let _inc3 = incident(&mut lab, "db", "0.0.0.0:3307", "app", "198.18.0.1:3307", 80);
    let all = wait_for("three incidents", TIMEOUT, || {
        let i = incidents(&lab, &fleet);
        (i.len() >= 3).then_some(i)
    });
    let ids: Vec<&str> = all.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], id1, "{ids:?}");
    assert_eq!(ids.iter().filter(|i| i.starts_with("db:3306@")).count(), 2, "{ids:?}");
    assert_eq!(ids.iter().filter(|i| i.starts_with("db:3307@")).count(), 1, "{ids:?}");

    // Filters: a window after incident 1, one server, and CSV = JSON.
    let later = history(&lab, &fleet, &["--since", &between, "--kind", "client_only"]);
    assert!(!later.is_empty() && later.iter().all(|r| r["incident"] != id1.as_str()));
    let only_3307 = history(&lab, &fleet, &["--server", "198.18.0.1:3307"]);
    assert!(!only_3307.is_empty());
    assert!(only_3307
        .iter()
        .all(|r| r["incident"].as_str().unwrap().starts_with("db:3307@")));
    let everything = history(&lab, &fleet, &[]);
    let csv = raw(&lab, &fleet, &["history", "--since", "1h", "--csv"]);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("kind,client,server,"), "{csv}");
    assert_eq!(csv_records(&csv), everything.len(), "CSV rows = JSON rows");
    let table = raw(&lab, &fleet, &["incidents", "--since", "1h"]);
    assert!(table.starts_with("3 incidents between "), "{table}");
    assert!(table.contains(&id1), "{table}");

    lab.teardown().unwrap();
    let _ = std::fs::remove_dir_all(&db_dir);
}

fn array_or_obj(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Records (not lines: a field may hold a newline) after the header.
fn csv_records(s: &str) -> usize {
    let mut in_quotes = false;
    let mut n = 0;
    for c in s.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\n' if !in_quotes => n += 1,
            _ => {}
        }
    }
    n - 1
}

/// Now, RFC 3339 (UTC), for --since.
fn chrono_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + d).to_string()
}

/// A directory for the database, readable by the reconciler in the lab.
fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("halfopen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
