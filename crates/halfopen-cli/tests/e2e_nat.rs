//! End-to-end through NAT (issue "Field trials", item 1: healthy connections
//! through NAT must never be reported one-sided): a Docker published port
//! (DNAT on the server's host to a container behind it), a kube-proxy
//! Service VIP (DNAT in the client's own output path), and a host whose
//! conntrack table cannot be read (NAT unknown: nothing judged through it).
//! Real namespaces, real nftables, the real `halfopen` binary. Needs root
//! (fails under CI=true without it, skips with a reason elsewhere).
mod common;

use common::*;
use halfopen_lab::fleet::{ss_client_only_through_dnat, Fleet};
use halfopen_lab::{BurstReport, Lab, LabChild};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Docker's published port: what arrives on db's eth0 for tcp/7000 goes to
/// the container behind it (no masquerade: the container sees the client).
const DOCKER_DNAT: &str = "table ip nat {
  chain prerouting {
    type nat hook prerouting priority -100;
    iifname \"eth0\" tcp dport 7000 dnat to 198.19.0.2:7000
  }
}";

/// kube-proxy for host-network clients: the Service VIP 198.18.100.1:80 is
/// translated in the client's own output path to the backend db:8080.
const VIP_DNAT: &str = "table ip nat {
  chain output {
    type nat hook output priority -100;
    ip daddr 198.18.100.1 tcp dport 80 dnat to 198.18.0.1:8080
  }
}";

/// db 198.18.0.1 (syncookies on) with the container `ctr` 198.19.0.2 behind
/// it (db's side 198.19.0.1) and the published port 7000, app 198.18.0.2,
/// recon 198.18.0.3 running the reconciler. No collector yet.
fn docker_shape(lab: &mut Lab) -> Fleet {
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.add_behind(
        "db",
        "ctr",
        "198.19.0.1".parse().unwrap(),
        "198.19.0.2".parse().unwrap(),
    )
    .unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    lab.nft("db", DOCKER_DNAT).unwrap();
    Fleet::start(lab, &exe(), "recon", &["--no-db"]).unwrap()
}

/// `count` healthy connections from `host` to `target`, held open for 60 s;
/// returns once every one of them has been greeted.
fn held_healthy(lab: &mut Lab, host: &str, target: &str, count: u64) -> LabChild {
    let n = count.to_string();
    let b = lab
        .spawn(
            host,
            &exe(),
            &["lab", "burst", "--target", target, "--count", &n, "--hold", "60s"],
        )
        .unwrap();
    let r: BurstReport = b
        .wait_for_json(|r: &BurstReport| r.greeted == count, Duration::from_secs(20))
        .unwrap();
    assert_eq!((r.established, r.failed), (count, 0), "{r:?}");
    b
}

/// `halfopen findings --json`: every finding of every kind.
fn all_findings(lab: &Lab, fleet: &Fleet) -> Vec<Value> {
    fleet.query(lab, &["findings"]).unwrap().as_array().unwrap().clone()
}

fn host_named(lab: &Lab, fleet: &Fleet, name: &str) -> Value {
    fleet
        .hosts(lab)
        .unwrap()
        .into_iter()
        .find(|h| h["host_id"] == name)
        .unwrap_or_else(|| panic!("no host {name} in `halfopen hosts`"))
}

/// Asserts, every 500 ms for `period`, that halfopen has no finding at all
/// while both hosts are fresh (so the silence is a judgement).
fn assert_no_finding_for(lab: &Lab, fleet: &Fleet, period: Duration, hosts: &[&str]) {
    let start = Instant::now();
    while start.elapsed() < period {
        let all = all_findings(lab, fleet);
        assert!(
            all.is_empty(),
            "healthy connections through NAT reported ({} findings): {}\nlogs in {}",
            all.len(),
            serde_json::to_string_pretty(&all[..all.len().min(3)]).unwrap(),
            lab.log_dir().display()
        );
        for h in hosts {
            assert_eq!(host_named(lab, fleet, h)["stale"], false, "{h} went stale");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A collector on `host` named `host`, its capabilities bounded by
/// `setpriv ARGS` (e.g. without CAP_NET_ADMIN); listed in the fleet.
fn collector_under_setpriv(lab: &mut Lab, fleet: &mut Fleet, host: &str, setpriv: &[&str]) -> LabChild {
    let exe = exe();
    let tls = fleet.collector_args(host).unwrap();
    let mut args: Vec<&str> = setpriv.to_vec();
    args.extend_from_slice(&[exe.to_str().unwrap(), "collector"]);
    args.extend(tls.iter().map(String::as_str));
    args.extend_from_slice(&["--interval", "1s", "--host-id", host, "--netns", "self"]);
    let c = lab.spawn(host, Path::new("setpriv"), &args).unwrap();
    fleet.collectors.push((host.to_string(), c.clone()));
    c
}

/// (1) A Docker published port: app connects to db:7000, which db DNATs to
/// the container behind it (which runs no collector). db's conntrack holds
/// the translation, so halfopen knows the server end is the container's and
/// never calls these connections one-sided. Control: the seed incident on
/// db itself in the same lab is found exactly.
#[test]
fn docker_published_port_healthy_connections_are_never_one_sided() {
    let Some(mut lab) = lab("nat-docker") else { return };
    let mut fleet = docker_shape(&mut lab);
    fleet.add_collector(&mut lab, "db", "1s").unwrap();
    fleet.add_collector(&mut lab, "app", "1s").unwrap();
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let _server = greet_server(&mut lab, "ctr", "0.0.0.0:7000", &["--backlog", "128"]);
    let _clients = held_healthy(&mut lab, "app", "198.18.0.1:7000", 5);

    // The lab is what it claims: app holds 5 connections to db:7000, db
    // holds none (it only forwards), the container holds the 5 with the
    // client's own address (DNAT, no masquerade).
    let published: SocketAddr = "198.18.0.1:7000".parse().unwrap();
    let app_ends: BTreeSet<SocketAddr> = lab
        .ss_established("app")
        .unwrap()
        .into_iter()
        .filter(|c| c.remote == published)
        .map(|c| c.local)
        .collect();
    assert_eq!(app_ends.len(), 5, "{app_ends:?}");
    assert!(
        !lab.ss_established("db").unwrap().iter().any(|c| c.local.port() == 7000),
        "db must not hold the published port's connections itself"
    );
    let ctr_ends: BTreeSet<SocketAddr> = lab
        .ss_established("ctr")
        .unwrap()
        .into_iter()
        .filter(|c| c.local == "198.19.0.2:7000".parse().unwrap())
        .map(|c| c.remote)
        .collect();
    assert_eq!(ctr_ends, app_ends, "the container sees the clients untranslated");

    // Several confirmation rounds (1 s interval, 1 s grace): not one finding.
    assert_no_finding_for(&lab, &fleet, Duration::from_secs(15), &["db", "app"]);
    let db = host_named(&lab, &fleet, "db");
    assert_eq!(db["nat"], "visible", "{db}");
    let app = host_named(&lab, &fleet, "app");
    assert!(
        app["client_sockets"].as_u64().unwrap() >= 5,
        "app's sockets were seen: {app}"
    );

    // Control: judging works in this very lab (the seed incident on db).
    let inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    assert!(
        truth.len() >= 50,
        "the incident did not reproduce well: {}",
        truth.len()
    );
    assert_processes_match_ss(&lab, "app", &found);
    for f in &found {
        assert_eq!(f["pid"].as_u64(), Some(inc.burst.pid() as u64), "{f}");
    }
    // ...and still nothing about the published port.
    for f in all_findings(&lab, &fleet) {
        let s = f.to_string();
        assert!(!s.contains(":7000\""), "a finding about the published port: {f}");
    }
    lab.teardown().unwrap();
}

/// (2) A kube-proxy Service VIP for host-network clients: app translates
/// 198.18.100.1:80 to db:8080 in its own output path. Healthy connections
/// through the VIP are never one-sided (in particular db's ends are not
/// server_only); the seed incident through the VIP is found exactly, each
/// orphan naming the VIP it dialed, the real server, the burst's pid and the
/// host that translated it.
#[test]
fn kube_proxy_vip_is_joined_through_the_clients_conntrack() {
    let Some(mut lab) = lab("nat-vip") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    lab.nft("app", VIP_DNAT).unwrap();
    // connect() needs a route to the VIP before the output hook rewrites it.
    lab.route("app", "198.18.100.0/24", "198.18.0.1".parse().unwrap())
        .unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    fleet.add_collector(&mut lab, "db", "1s").unwrap();
    fleet.add_collector(&mut lab, "app", "1s").unwrap();
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let vip: SocketAddr = "198.18.100.1:80".parse().unwrap();
    let backend: SocketAddr = "198.18.0.1:8080".parse().unwrap();

    let healthy = greet_server(&mut lab, "db", "0.0.0.0:8080", &["--backlog", "128"]);
    let clients = held_healthy(&mut lab, "app", "198.18.100.1:80", 5);
    assert!(
        ss_client_only_through_dnat(&lab, "app", vip, "db", backend)
            .unwrap()
            .is_empty(),
        "the healthy connections must be held by both ends"
    );
    assert_eq!(
        lab.ss_established("db")
            .unwrap()
            .iter()
            .filter(|c| c.local == backend)
            .count(),
        5
    );
    assert_no_finding_for(&lab, &fleet, Duration::from_secs(10), &["db", "app"]);
    let app = host_named(&lab, &fleet, "app");
    assert_eq!(app["nat"], "visible", "{app}");

    // The seed incident through the VIP (on the same backend port).
    clients.kill().unwrap();
    healthy.kill().unwrap();
    let inc = incident(&mut lab, "db", "0.0.0.0:8080", "app", "198.18.100.1:80", 200);
    let start = Instant::now();
    let (truth, found) = loop {
        let truth = ss_client_only_through_dnat(&lab, "app", vip, "db", backend).unwrap();
        let found: Vec<Value> = fleet
            .orphans(&lab)
            .unwrap()
            .into_iter()
            .filter(|f| f["client_host"] == "app")
            .collect();
        let ends: BTreeSet<SocketAddr> = found
            .iter()
            .map(|f| f["client"].as_str().unwrap().parse().unwrap())
            .collect();
        if !truth.is_empty()
            && ends == truth
            && ss_client_only_through_dnat(&lab, "app", vip, "db", backend).unwrap() == truth
        {
            break (truth, found);
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "no agreement through the VIP after {TIMEOUT:?}: ss client-only {} {:?}\nhalfopen {} {}\nlogs in {}",
            truth.len(),
            truth.iter().take(5).collect::<Vec<_>>(),
            found.len(),
            serde_json::to_string_pretty(&found[..found.len().min(2)]).unwrap(),
            lab.log_dir().display()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("ss and halfopen agree on {} orphans through the VIP", truth.len());
    assert!(
        truth.len() >= 50,
        "the incident did not reproduce well: {}",
        truth.len()
    );
    assert_processes_match_ss(&lab, "app", &found);
    for f in &found {
        assert_eq!(f["kind"], "client_only", "{f}");
        assert_eq!(f["dialed"], "198.18.100.1:80", "{f}");
        assert_eq!(f["server"], "198.18.0.1:8080", "{f}");
        assert_eq!(f["server_host"], "db", "{f}");
        assert_eq!(f["pid"].as_u64(), Some(inc.burst.pid() as u64), "{f}");
        let nat = &f["evidence"]["nat"];
        assert_eq!(nat["translated_on"], "app", "{f}");
        assert_eq!(nat["server"], "198.18.0.1:8080", "{f}");
        assert_eq!(nat["seen_as"], f["client"], "no masquerade: {f}");
    }
    lab.teardown().unwrap();
}

/// (3) NAT unknown: db's collector runs without CAP_NET_ADMIN, so it cannot
/// read db's conntrack table, and the healthy connections to db's published
/// port look one-sided to anyone who judges without it. halfopen must not
/// judge them: no finding, db's NAT "unknown", a blind spot on db about NAT.
#[test]
fn a_collector_that_cannot_read_conntrack_does_not_judge_through_it() {
    let Some(mut lab) = lab("nat-unknown") else { return };
    let mut fleet = docker_shape(&mut lab);
    let db_collector = collector_under_setpriv(
        &mut lab,
        &mut fleet,
        "db",
        &[
            "--inh-caps=-net_admin",
            "--ambient-caps=-net_admin",
            "--bounding-set=-net_admin",
        ],
    );
    fleet.add_collector(&mut lab, "app", "1s").unwrap();
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    // The collector really runs without CAP_NET_ADMIN (bit 12).
    let status = std::fs::read_to_string(format!("/proc/{}/status", db_collector.pid())).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(eff & (1 << 12), 0, "CAP_NET_ADMIN still effective: {eff:x}");

    let _server = greet_server(&mut lab, "ctr", "0.0.0.0:7000", &["--backlog", "128"]);
    let _clients = held_healthy(&mut lab, "app", "198.18.0.1:7000", 5);
    assert_no_finding_for(&lab, &fleet, Duration::from_secs(12), &["db", "app"]);

    let db = host_named(&lab, &fleet, "db");
    assert!(db["nat"].as_str().unwrap().starts_with("unknown"), "{db}");
    assert!(
        db["blind_spots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b.as_str().unwrap().contains("NAT")),
        "{db}"
    );
    let app = host_named(&lab, &fleet, "app");
    assert!(
        app["client_sockets"].as_u64().unwrap() >= 5,
        "app's sockets were seen: {app}"
    );
    let cov = fleet.query(&lab, &["coverage"]).unwrap();
    assert_eq!(cov["complete"], false, "{cov}");
    assert!(
        cov["blind_spots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["host"] == "db" && b["what"].as_str().unwrap().contains("NAT")),
        "{cov}"
    );
    lab.teardown().unwrap();
}
