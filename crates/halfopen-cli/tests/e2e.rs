//! End-to-end: real namespaces, real kernels, the real `halfopen` binary as
//! reconciler and collectors. Needs root (fails under CI=true without it,
//! skips with a reason elsewhere). Each test has its own lab.
mod common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn incident_over_ipv4_is_found_exactly_with_the_client_process() {
    let Some(mut lab) = lab("e2e-v4") else { return };
    let fleet = standard(&mut lab, "1s");
    let inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    println!("ss and halfopen agree on {} client-only connections", truth.len());
    assert!(
        truth.len() >= 50,
        "the incident did not reproduce well: {}",
        truth.len()
    );
    assert_processes_match_ss(&lab, "app", &found);
    for f in &found {
        assert_eq!(f["pid"].as_u64(), Some(inc.burst.pid() as u64));
        assert_eq!(f["side"], "client_only");
        assert_eq!(f["client_host"], "app");
        assert_eq!(f["server_host"], "db");
        assert!(f["first_seen"].as_str().unwrap().ends_with('Z'));
        assert!(f["confirmed_at"].as_str().unwrap() >= f["first_seen"].as_str().unwrap());
    }
    // The client closes them: they are no longer listed.
    inc.burst.kill().unwrap();
    wait_for("the orphans to go once the client exited", TIMEOUT, || {
        fleet.orphans(&lab).unwrap().is_empty().then_some(())
    });
    lab.teardown().unwrap();
}

#[test]
fn incident_against_a_dual_stack_listener_is_folded_to_ipv4() {
    let Some(mut lab) = lab("e2e-ds") else { return };
    let fleet = standard(&mut lab, "1s");
    let _inc = incident(&mut lab, "db", "[::]:3306", "app", "198.18.0.1:3306", 200);
    // The server's own view is IPv4-mapped IPv6.
    let raw = lab
        .run_ok("db", "ss", &["-Htn", "state", "established"], Duration::from_secs(10))
        .unwrap();
    assert!(raw.contains("[::ffff:198.18.0.2]"), "{raw}");
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    assert!(truth.len() >= 50, "{}", truth.len());
    assert_processes_match_ss(&lab, "app", &found);
    for f in &found {
        assert!(!f["server"].as_str().unwrap().contains("ffff"), "{f}");
    }
    lab.teardown().unwrap();
}

#[test]
fn healthy_churn_beside_an_incident_is_never_reported() {
    let Some(mut lab) = lab("e2e-churn") else { return };
    // A 3 s interval against the reconciler's 1 s grace: a new connection
    // reaches the reconciler in the client's report up to 3 s before the
    // server's report shows its other end, so only the confirmation lookups
    // keep it from being reported.
    let fleet = standard(&mut lab, "3s");
    // A healthy server on 3307 with a real backlog, churned by short-lived
    // connections whose lifetimes straddle the interval.
    let (_healthy, churn) = healthy_churn(&mut lab, 3307, "25s");
    std::thread::sleep(Duration::from_secs(3));
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 150);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let start = Instant::now();
    let mut agreed = None;
    // Watch the whole churn: not one finding on the healthy port, ever.
    while start.elapsed() < Duration::from_secs(20) {
        let all = fleet.orphans(&lab).unwrap();
        let bad: Vec<_> = all.iter().filter(|f| f["server"] == "198.18.0.1:3307").collect();
        assert!(bad.is_empty(), "healthy connections reported: {bad:?}");
        if agreed.is_none() {
            let truth = halfopen_lab::fleet::ss_client_only(&lab, "app", "db", server).unwrap();
            let pairs = halfopen_lab::fleet::finding_pairs(&all);
            if !truth.is_empty() && pairs == truth {
                agreed = Some(truth.len());
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    churn_summary(&churn);
    let n = agreed.unwrap_or_else(|| {
        let (t, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
        t.len()
    });
    assert!(n >= 30, "incident too small: {n}");
    lab.teardown().unwrap();
}

#[test]
fn unmonitored_server_is_never_judged() {
    let Some(mut lab) = lab("e2e-unmon") else { return };
    let fleet = standard(&mut lab, "1s");
    // A server host with no collector.
    lab.add_host("other", "198.18.0.9".parse().unwrap()).unwrap();
    lab.sysctl("other", "net.ipv4.tcp_syncookies", "1").unwrap();
    let _inc = incident(&mut lab, "other", "0.0.0.0:3306", "app", "198.18.0.9:3306", 200);
    let truth = halfopen_lab::fleet::ss_client_only(&lab, "app", "other", "198.18.0.9:3306".parse().unwrap()).unwrap();
    assert!(
        truth.len() >= 50,
        "the incident must exist for this test to mean anything: {}",
        truth.len()
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let all = fleet.orphans(&lab).unwrap();
        assert!(all.is_empty(), "judged against an unmonitored host: {all:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Control: once the host is monitored, the same orphans are found (so
    // the silence above was the rule, not a fleet that finds nothing).
    let mut fleet = fleet;
    fleet.add_collector(&mut lab, "other", "1s").unwrap();
    let server: SocketAddr = "198.18.0.9:3306".parse().unwrap();
    let (t, _) = wait_for_agreement(&lab, &fleet, "app", "other", server, TIMEOUT);
    assert_eq!(t, truth);
    lab.teardown().unwrap();
}

#[test]
fn nothing_is_judged_against_a_killed_collector() {
    let Some(mut lab) = lab("e2e-kill") else { return };
    let mut fleet = standard(&mut lab, "1s");
    fleet.collector("db").unwrap().kill().unwrap();
    // The host is shown stale.
    wait_for("db to be shown stale", TIMEOUT, || {
        let hosts = fleet.hosts(&lab).unwrap();
        (hosts.iter().find(|h| h["host_id"] == "db").unwrap()["stale"] == true).then_some(())
    });
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let truth = halfopen_lab::fleet::ss_client_only(&lab, "app", "db", server).unwrap();
    assert!(truth.len() >= 50, "{}", truth.len());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let all = fleet.orphans(&lab).unwrap();
        assert!(all.is_empty(), "judged against a dead collector's host: {all:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Once its collector is back, the same orphans are found.
    fleet.add_collector(&mut lab, "db", "1s").unwrap();
    let (t, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    assert_eq!(t.len(), truth.len());
    lab.teardown().unwrap();
}

#[test]
fn findings_survive_a_reconciler_restart_and_are_recorded() {
    let Some(mut lab) = lab("e2e-db") else { return };
    let db = lab.log_dir().join("state/halfopen.db");
    let db_s = db.to_string_lossy().into_owned();
    let fleet = standard_with(&mut lab, "1s", &["--db", &db_s]);
    let inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, before) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);

    // Restart the reconciler on the same database.
    fleet.reconciler.kill().unwrap();
    let restarted = halfopen_lab::fleet::Fleet::start(&mut lab, &exe(), "recon", &["--db", &db_s]).unwrap();
    let right_after = restarted.orphans(&lab).unwrap();
    assert_eq!(
        halfopen_lab::fleet::finding_pairs(&right_after),
        truth,
        "findings not restored from the database"
    );
    // Once the collectors are back (they reconnect by themselves), the same
    // findings stand, with their original first_seen.
    restarted
        .wait_for_collectors_named(&lab, &["db", "app"], TIMEOUT)
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = restarted.orphans(&lab).unwrap();
    assert_eq!(halfopen_lab::fleet::finding_pairs(&after), truth);
    let first_seen = |v: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        v.iter()
            .map(|f| format!("{} {}", f["client"], f["first_seen"]))
            .collect()
    };
    assert_eq!(first_seen(&after), first_seen(&before));
    assert!(after.iter().all(|f| f["client_host_stale"] == false));

    // When the client closes them, the database records when and why.
    inc.burst.kill().unwrap();
    wait_for("the orphans to go once the client exited", TIMEOUT, || {
        restarted.orphans(&lab).unwrap().is_empty().then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("select count(*), count(gone_at_ms), min(gone_reason) from findings where kind = 'client_only'")
        .output()
        .expect("sqlite3");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(line, format!("{0}|{0}|closed", truth.len()), "{line}");
    drop(fleet);
    lab.teardown().unwrap();
}
