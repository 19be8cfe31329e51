//! End-to-end for the explanations and the other findings: the incident
//! explained with the real backlog and counters, a stalled greeting, a
//! server-only connection whose client reset never arrived, and a healthy
//! busy server with no finding at all. Real namespaces, the real binary.
mod common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn the_incident_is_explained_with_the_real_backlog_and_counters() {
    let Some(mut lab) = lab("e2e-explain") else { return };
    let fleet = standard(&mut lab, "1s");
    let before = lab.net_counters("db").unwrap();
    let _inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    let after = lab.net_counters("db").unwrap();
    let rose = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let cookies = rose("TcpExt.SyncookiesSent");
    assert!(cookies > 0, "the incident must send SYN cookies");
    // Every orphan says which listener and what the counters did.
    for f in &found {
        let e = f["explanation"].as_str().unwrap();
        assert!(e.contains("0.0.0.0:3306"), "{e}");
        assert!(e.contains("/4 (backlog"), "the real backlog 4: {e}");
        assert!(e.contains("SyncookiesSent +"), "{e}");
        assert!(e.contains("no keepalive"), "{e}");
        assert_eq!(f["server_process"], "halfopen", "{f}");
    }
    // explain db:3306 gives the concrete changes with current values.
    let v = fleet.query(&lab, &["explain", "db:3306"]).unwrap();
    let d = &v[0];
    let changes = d["changes"].as_array().unwrap();
    let backlog = changes
        .iter()
        .find(|c| c["setting"].as_str().unwrap().contains("listen() backlog"))
        .unwrap();
    assert_eq!(backlog["current"], "4", "{backlog}");
    assert!(backlog["suggested"].as_str().unwrap().parse::<u32>().unwrap() >= 512);
    let somaxconn = lab.sysctl_get("db", "net.core.somaxconn").unwrap();
    let facts = d["facts"].to_string();
    assert!(facts.contains(&format!("net.core.somaxconn={somaxconn}")), "{facts}");
    assert!(
        facts.contains(&format!("{} current client_only findings", truth.len())),
        "{facts}"
    );
    assert!(changes
        .iter()
        .any(|c| c["setting"].as_str().unwrap().contains("timeout")));
    // And the listener is flagged.
    let risk = fleet.findings(&lab, "listener_at_risk").unwrap();
    assert!(
        risk.iter()
            .any(|r| r["listener"] == "0.0.0.0:3306" && r["server_host"] == "db"),
        "{risk:?}"
    );
    // The human form reads.
    let mut args = vec!["explain".to_string(), "db:3306".to_string()];
    args.extend(fleet.reader_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = lab.run_ok("recon", exe().to_str().unwrap(), &args, TIMEOUT).unwrap();
    assert!(
        text.contains("What to change:") && text.contains("listen() backlog"),
        "{text}"
    );
    lab.teardown().unwrap();
}

#[test]
fn a_stalled_greeting_is_found_with_the_server_process_and_clears_when_it_greets() {
    let Some(mut lab) = lab("e2e-stall") else { return };
    let fleet = standard_with(&mut lab, "1s", &["--no-db", "--stall-after", "3s"]);
    let server = greet_server(
        &mut lab,
        "db",
        "0.0.0.0:3306",
        &["--backlog", "128", "--greet-delay", "14s"],
    );
    let burst = burst(&mut lab, "app", "198.18.0.1:3306", 3);
    let stalled = wait_for("3 stalled greetings", Duration::from_secs(12), || {
        let s = fleet.findings(&lab, "stalled_greeting").unwrap();
        (s.len() == 3).then_some(s)
    });
    for f in &stalled {
        assert_eq!(f["server_pid"].as_u64(), Some(server.pid() as u64), "{f}");
        assert_eq!(f["server_process"], "halfopen");
        assert_eq!(f["in_accept_queue"], false, "accepted, then silent: {f}");
        assert!(f["silent_ms"].as_u64().unwrap() >= 3000);
        assert_eq!(f["client_host"], "app");
        assert!(
            f["explanation"].as_str().unwrap().contains("has not sent its greeting"),
            "{f}"
        );
    }
    assert!(fleet.findings(&lab, "client_only").unwrap().is_empty());
    // The greeting arrives at 14 s: no longer reported.
    burst
        .wait_for_line(|l| l.contains("\"greeted\":3"), Duration::from_secs(30))
        .unwrap();
    wait_for("stalled greetings to clear", Duration::from_secs(15), || {
        fleet
            .findings(&lab, "stalled_greeting")
            .unwrap()
            .is_empty()
            .then_some(())
    });
    lab.teardown().unwrap();
}

#[test]
fn a_client_whose_reset_never_arrives_leaves_a_server_only_connection() {
    let Some(mut lab) = lab("e2e-srvonly") else { return };
    let fleet = standard(&mut lab, "1s");
    let server = greet_server(&mut lab, "db", "0.0.0.0:3307", &["--backlog", "128"]);
    let clients = burst(&mut lab, "app", "198.18.0.1:3307", 5);
    clients
        .wait_for_line(|l| l.contains("\"greeted\":5"), Duration::from_secs(20))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        fleet.findings(&lab, "server_only").unwrap().is_empty(),
        "healthy connections reported"
    );
    // Drop every RST the client sends, then abort its sockets (SOCK_DESTROY
    // sends a RST): the client forgets them, the server never hears.
    for args in [
        vec!["add", "table", "inet", "ho"],
        vec![
            "add",
            "chain",
            "inet",
            "ho",
            "out",
            "{ type filter hook output priority 0; }",
        ],
        vec!["add", "rule", "inet", "ho", "out", "tcp", "flags", "rst", "drop"],
    ] {
        lab.run_ok("app", "nft", &args, Duration::from_secs(10)).unwrap();
    }
    lab.run_ok(
        "app",
        "ss",
        &["-K", "dst", "198.18.0.1", "dport", "=", ":3307"],
        Duration::from_secs(10),
    )
    .unwrap();
    let app: Vec<_> = lab
        .ss_established("app")
        .unwrap()
        .into_iter()
        .filter(|c| c.remote.port() == 3307)
        .collect();
    assert!(app.is_empty(), "client still holds {app:?}");
    let held: Vec<(SocketAddr, SocketAddr)> = lab
        .ss_established("db")
        .unwrap()
        .into_iter()
        .filter(|c| c.local.port() == 3307)
        .map(|c| c.mirrored())
        .collect();
    assert_eq!(held.len(), 5, "the server must still hold them: {held:?}");
    let found = wait_for("5 server_only findings", TIMEOUT, || {
        let f = fleet.findings(&lab, "server_only").unwrap();
        (f.len() == 5).then_some(f)
    });
    let pairs = halfopen_lab::fleet::finding_pairs(&found);
    assert_eq!(pairs, held.into_iter().collect());
    for f in &found {
        assert_eq!(f["server_pid"].as_u64(), Some(server.pid() as u64), "{f}");
        assert_eq!(f["server_host"], "db");
        assert_eq!(f["client_host"], "app");
        assert!(f["pid"].is_null(), "no client process: {f}");
    }
    lab.teardown().unwrap();
}

#[test]
fn a_healthy_busy_server_has_no_finding_at_all() {
    let Some(mut lab) = lab("e2e-healthy") else { return };
    // A 3 s interval against the 1 s grace: connections are seen on one side
    // before the other, so the confirmation really has work to do.
    let fleet = standard_with(&mut lab, "3s", &["--no-db", "--stall-after", "2s"]);
    let (_server, churn) = healthy_churn(&mut lab, 3306, "20s");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(22) {
        let all = fleet.query(&lab, &["findings"]).unwrap();
        assert_eq!(all, serde_json::json!([]), "a healthy server produced findings");
        // ...while both collectors are fresh, so the silence is a judgement
        for h in fleet.hosts(&lab).unwrap() {
            assert_eq!(h["stale"], false, "{h}");
            assert!(h["sockets"].as_u64().unwrap() > 0, "{h}");
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    let v = churn_summary(&churn);
    assert_eq!(v["errors"].as_u64(), Some(0), "{v}");
    let text = fleet.query(&lab, &["explain"]).unwrap();
    assert_eq!(text, serde_json::json!([]), "nothing needs attention");
    lab.teardown().unwrap();
}
