//! Shared pieces of the end-to-end tests: labs of network namespaces running
//! the real `halfopen` binary (see halfopen_lab::fleet), the incident, and
//! waiting (bounded) for halfopen to agree with `ss`.
#![allow(dead_code)]
use halfopen_lab::fleet::{finding_pairs, poll_agreement, Fleet};
use halfopen_lab::{Lab, LabChild};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub type Pairs = BTreeSet<(SocketAddr, SocketAddr)>;

/// Polls `f` every 500 ms until it returns Some; fails the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_halfopen"))
}

/// A lab for this test, or None (with the reason printed) when not root
/// outside CI. Under CI=true a missing privilege fails the test.
pub fn lab(tag: &str) -> Option<Lab> {
    if !halfopen_lab::require_root_or_skip(tag) {
        return None;
    }
    Some(Lab::new(tag).expect("building the lab"))
}

/// db 198.18.0.1 (syncookies on), app 198.18.0.2, recon 198.18.0.3; the
/// reconciler on recon (no database), collectors on db and app.
pub fn standard(lab: &mut Lab, interval: &str) -> Fleet {
    standard_with(lab, interval, &["--no-db"])
}

/// [`standard`] with these reconciler flags (give `--no-db` or `--db PATH`).
pub fn standard_with(lab: &mut Lab, interval: &str, reconciler_args: &[&str]) -> Fleet {
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    let mut fleet = Fleet::start(lab, &exe(), "recon", reconciler_args).unwrap();
    fleet.add_collector(lab, "db", interval).unwrap();
    fleet.add_collector(lab, "app", interval).unwrap();
    fleet.wait_for_collectors(lab, Duration::from_secs(30)).unwrap();
    fleet
}

/// `halfopen lab greet-server --listen LISTEN FLAGS...` on `host`, once it
/// is listening.
pub fn greet_server(lab: &mut Lab, host: &str, listen: &str, flags: &[&str]) -> LabChild {
    let mut args = vec!["lab", "greet-server", "--listen", listen];
    args.extend_from_slice(flags);
    let server = lab.spawn(host, &exe(), &args).unwrap();
    server.wait_for_prefix("listening", Duration::from_secs(10)).unwrap();
    server
}

/// `halfopen lab burst`: `count` connects from `host` to `target`, started.
pub fn burst(lab: &mut Lab, host: &str, target: &str, count: u32) -> LabChild {
    let n = count.to_string();
    lab.spawn(host, &exe(), &["lab", "burst", "--target", target, "--count", &n])
        .unwrap()
}

/// Healthy traffic: a greeting server on db `0.0.0.0:PORT` with a real
/// backlog (4096), churned from app by 300 connects/s whose lifetimes (up to
/// 6 s) straddle the collectors' interval, for `duration`. Returns the
/// server and the churn; see [`churn_summary`].
pub fn healthy_churn(lab: &mut Lab, port: u16, duration: &str) -> (LabChild, LabChild) {
    let server = greet_server(lab, "db", &format!("0.0.0.0:{port}"), &["--backlog", "4096"]);
    let target = format!("198.18.0.1:{port}");
    let churn = lab
        .spawn(
            "app",
            &exe(),
            &[
                "lab",
                "churn",
                "--target",
                &target,
                "--rate",
                "300/s",
                "--max-life",
                "6s",
                "--duration",
                duration,
            ],
        )
        .unwrap();
    (server, churn)
}

/// The churn's closing summary, checked to have opened enough connections
/// (>= 3,000) to prove anything.
pub fn churn_summary(churn: &LabChild) -> serde_json::Value {
    let summary = churn
        .wait_for_line(|l| l.contains("\"opened\""), Duration::from_secs(30))
        .unwrap();
    println!("churn: {summary}");
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(
        v["opened"].as_u64().unwrap() >= 3000,
        "churn too slow to prove anything: {summary}"
    );
    v
}

pub struct Incident {
    pub server: LabChild,
    pub burst: LabChild,
}

/// A greeting server on `server_host` (backlog 4, first accept after 3 s),
/// and a burst of `count` connects from `client_host`; returns once the burst
/// has settled and the server has drained its queue.
pub fn incident(
    lab: &mut Lab,
    server_host: &str,
    listen: &str,
    client_host: &str,
    target: &str,
    count: u32,
) -> Incident {
    let server = greet_server(lab, server_host, listen, &["--backlog", "4", "--accept-delay", "3s"]);
    let burst = burst(lab, client_host, target, count);
    burst
        .wait_for_line(|l| l.contains("\"established\""), Duration::from_secs(30))
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    Incident { server, burst }
}

/// Polls until halfopen's orphans for `server` equal the client-only set by
/// `ss` (non-empty), or panics after `timeout` with both sets.
pub fn wait_for_agreement(
    lab: &Lab,
    fleet: &Fleet,
    client_host: &str,
    server_host: &str,
    server: SocketAddr,
    timeout: Duration,
) -> (Pairs, Vec<serde_json::Value>) {
    let a = poll_agreement(lab, fleet, client_host, server_host, server, timeout, || {
        Ok::<(), halfopen_lab::LabError>(())
    })
    .unwrap();
    if !a.agreed {
        let pairs = finding_pairs(&a.found);
        panic!(
            "no agreement after {timeout:?}: ss client-only {} {:?}\nhalfopen {} {:?}\nlogs in {}",
            a.truth.len(),
            a.truth.iter().take(5).collect::<Vec<_>>(),
            pairs.len(),
            pairs.iter().take(5).collect::<Vec<_>>(),
            lab.log_dir().display()
        );
    }
    (a.truth, a.found)
}

/// Every finding names the client process: the pid that `ss -p` shows for
/// that socket on the client host, and its comm.
pub fn assert_processes_match_ss(lab: &Lab, client_host: &str, found: &[serde_json::Value]) {
    let ss = lab.ss_established(client_host).unwrap();
    for f in found {
        let client: SocketAddr = f["client"].as_str().unwrap().parse().unwrap();
        let conn = ss.iter().find(|c| c.local == client).expect("finding not in ss");
        let (pid, comm) = conn.process.clone().expect("ss names no process");
        assert_eq!(f["pid"].as_u64(), Some(pid as u64), "pid of {f}");
        assert_eq!(f["process"].as_str(), Some(comm.as_str()), "process of {f}");
        assert!(f["cmdline"].as_str().unwrap().contains("burst"), "cmdline of {f}");
    }
}
