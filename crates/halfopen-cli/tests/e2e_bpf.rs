//! End-to-end tests of the eBPF source (`halfopen collector --source bpf`)
//! and of the server's kernel as a witness, in labs of network namespaces
//! with the real binary:
//!
//! - the seed incident found by the eBPF source exactly as by the netlink
//!   source, side by side (two fleets on the same hosts), with the client
//!   processes named from connect();
//! - the witness names exactly the dropped connections: every client-only
//!   connection (`ss` on both ends) carries a witness with its path, and
//!   the collector witnessed nothing else; IPv4 and a dual-stack listener
//!   on the SYN-cookie path (`tcp_syncookies=1`), IPv4 on the normal path
//!   (`tcp_syncookies=0`);
//! - `dropped_handshake` with a collector on the server host only, gone
//!   after `--dropped-handshake-ttl` (recorded as `expired`);
//! - `--source auto` falls back to netlink when the collector lacks
//!   CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN, and `--source bpf` then refuses;
//! - a transitions ring too small for the churn loses events, each loss
//!   forces a dump, and the reconciler's table of the host stays exact.
//!
//! The server's egress is slowed (TBF at 100 kbit/s, MTU 180): on veth
//! a connect() often completes its handshake inside the system call, so a
//! burst becomes a sequence that never overflows; with a round trip, as on
//! any network, all SYNs arrive before the handshakes complete and the seed
//! incident reproduces every time (halfopen-bpf's README).
mod common;

use common::*;
use halfopen_lab::fleet::{finding_pairs, ss_client_only, Fleet};
use halfopen_lab::Lab;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

/// `halfopen collector --source SOURCE` on `host` (named after it), reporting
/// every second to `fleet`; the eBPF source's debug lines (each witnessed
/// drop) go to its stderr.
fn collector(lab: &mut Lab, fleet: &mut Fleet, host: &str, source: &str, extra: &[&str]) {
    let url = fleet.url.clone();
    let mut args = vec![
        "--log",
        "info,halfopen_collector::bpf=debug",
        "collector",
        "--reconciler",
        &url,
        "--interval",
        "1s",
        "--host-id",
        host,
        "--source",
        source,
    ];
    args.extend_from_slice(extra);
    let child = lab.spawn(host, &exe(), &args).unwrap();
    fleet.collectors.push((host.to_string(), child));
}

/// The server's SYN-ACKs leave at 100 kbit/s (see the module documentation).
/// The bucket holds one 200-byte packet (two SYN-ACKs): TBF drops a packet
/// bigger than its bucket, so the link's MTU goes down to 180 bytes (194 with
/// the Ethernet header) and
/// the collector's own traffic (gRPC to the reconciler) passes, slowly.
fn slow_egress(lab: &Lab, host: &str) {
    lab.run_ok(
        host,
        "ip",
        &["link", "set", "dev", "eth0", "mtu", "180"],
        Duration::from_secs(10),
    )
    .unwrap();
    lab.run_ok(
        host,
        "tc",
        &[
            "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "100kbit", "burst", "200", "limit", "1000000",
        ],
        Duration::from_secs(10),
    )
    .unwrap();
}

fn source_of(lab: &Lab, fleet: &Fleet, host: &str) -> String {
    fleet
        .hosts(lab)
        .unwrap()
        .into_iter()
        .find(|h| h["host_id"] == host)
        .and_then(|h| h["source"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// (client, server) of every drop a collector's log says it witnessed.
fn witnessed_in_log(log: &str) -> BTreeSet<(SocketAddr, SocketAddr)> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("witnessed: ")? + "witnessed: ".len()..];
            let mut words = rest.split_whitespace();
            let client = words.next()?.parse().ok()?;
            let _arrow = words.next()?;
            let server = words.next()?.parse().ok()?;
            Some((client, server))
        })
        .collect()
}

/// Polls until `f` gives a non-empty set equal to `ss`'s client-only set
/// (read before and after, unchanged), or panics after `timeout`.
fn agree(
    lab: &Lab,
    what: &str,
    client_host: &str,
    server_host: &str,
    server: SocketAddr,
    timeout: Duration,
    mut f: impl FnMut() -> Vec<Value>,
) -> (BTreeSet<(SocketAddr, SocketAddr)>, Vec<Value>) {
    let start = Instant::now();
    loop {
        let truth = ss_client_only(lab, client_host, server_host, server).unwrap();
        let found: Vec<Value> = f().into_iter().filter(|x| x["server"] == server.to_string()).collect();
        if !truth.is_empty()
            && finding_pairs(&found) == truth
            && ss_client_only(lab, client_host, server_host, server).unwrap() == truth
        {
            return (truth, found);
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: no agreement after {timeout:?}: ss client-only {} {:?}\nhalfopen {} {:?}\nlogs in {}",
            truth.len(),
            truth.iter().take(3).collect::<Vec<_>>(),
            found.len(),
            finding_pairs(&found).iter().take(3).collect::<Vec<_>>(),
            lab.log_dir().display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_bpf_source_finds_the_seed_incident_exactly_as_the_netlink_source() {
    let Some(mut lab) = lab("e2e-bpf-same") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.add_host("recon2", "198.18.0.4".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    // Two fleets on the same hosts: one per source.
    let mut bpf = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let mut netlink = Fleet::start(&mut lab, &exe(), "recon2", &["--no-db"]).unwrap();
    for host in ["db", "app"] {
        collector(&mut lab, &mut bpf, host, "bpf", &[]);
        collector(&mut lab, &mut netlink, host, "netlink", &[]);
    }
    bpf.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    netlink.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    assert_eq!(source_of(&lab, &bpf, "db"), "bpf");
    assert_eq!(source_of(&lab, &bpf, "app"), "bpf");
    assert_eq!(source_of(&lab, &netlink, "db"), "netlink");
    slow_egress(&lab, "db");

    let _incident = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, by_bpf) = agree(&lab, "bpf", "app", "db", server, TIMEOUT, || bpf.orphans(&lab).unwrap());
    let (_, by_netlink) = agree(&lab, "netlink", "app", "db", server, TIMEOUT, || {
        netlink.orphans(&lab).unwrap()
    });
    assert_eq!(finding_pairs(&by_bpf), finding_pairs(&by_netlink), "the same findings");
    assert_eq!(finding_pairs(&by_bpf), truth);
    println!("{} client-only connections, found by both sources", truth.len());
    // Client processes: from connect() with the eBPF source, from /proc with netlink; the same.
    assert_processes_match_ss(&lab, "app", &by_bpf);
    assert_processes_match_ss(&lab, "app", &by_netlink);
    // Only the eBPF source on the server witnesses the drops.
    for f in &by_bpf {
        let w = &f["witness"];
        assert_eq!(w["path"], "cookie", "{f}");
        assert_eq!(w["backlog"], 4, "{f}");
        assert!(w["queue"].as_u64().unwrap() >= 4, "the queue was full: {f}");
        assert!(f["explanation"]
            .as_str()
            .unwrap()
            .contains("The server's kernel witnessed the drop"));
    }
    assert!(by_netlink.iter().all(|f| f["witness"].is_null()));
    lab.teardown().unwrap();
}

/// One witness scenario: the db host's collector uses the eBPF source, the
/// app host's netlink (so that only the server is watched by eBPF); the
/// greeting server on `listen` never accepts during the test.
fn witness_case(tag: &str, listen: &str, syncookies: &str, path: &str) {
    let Some(mut lab) = lab(tag) else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", syncookies).unwrap();
    // Without cookies the server keeps a request socket for each dropped ACK and retries
    // its SYN-ACK; one retry (1 s + 2 s) makes them expire within the test.
    lab.sysctl("db", "net.ipv4.tcp_synack_retries", "1").unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    collector(&mut lab, &mut fleet, "db", "bpf", &[]);
    collector(&mut lab, &mut fleet, "app", "netlink", &[]);
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    slow_egress(&lab, "db");
    let _server = greet_server(&mut lab, "db", listen, &["--backlog", "4", "--accept-delay", "600s"]);
    let _burst = burst(&mut lab, "app", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = agree(&lab, tag, "app", "db", server, TIMEOUT, || fleet.orphans(&lab).unwrap());
    // Every client-only connection carries its witness, with the path.
    for f in &found {
        assert_eq!(f["witness"]["path"], path, "{f}");
        assert_eq!(f["witness"]["backlog"], 4, "{f}");
    }
    // ... and the server's kernel witnessed nothing else.
    let log = fleet.collector("db").unwrap().read_stderr().unwrap();
    let witnessed = witnessed_in_log(&log);
    assert_eq!(
        witnessed,
        truth,
        "witnessed {} vs client-only {}: only witnessed {:?}, only client-only {:?}",
        witnessed.len(),
        truth.len(),
        witnessed.difference(&truth).take(3).collect::<Vec<_>>(),
        truth.difference(&witnessed).take(3).collect::<Vec<_>>()
    );
    println!(
        "{tag}: {} client-only connections, each witnessed ({path} path)",
        truth.len()
    );
    lab.teardown().unwrap();
}

#[test]
fn the_witness_names_exactly_the_dropped_connections_ipv4_cookie_path() {
    witness_case("e2e-bpf-w4", "0.0.0.0:3306", "1", "cookie");
}

#[test]
fn the_witness_names_exactly_the_dropped_connections_dual_stack_cookie_path() {
    witness_case("e2e-bpf-w6", "[::]:3306", "1", "cookie");
}

#[test]
fn the_witness_names_exactly_the_dropped_connections_normal_path() {
    witness_case("e2e-bpf-wn", "0.0.0.0:3306", "0", "normal");
}

#[test]
fn dropped_handshake_with_a_collector_on_the_server_host_only() {
    let Some(mut lab) = lab("e2e-bpf-dh") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("ext", "198.18.0.5".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    let db_file = lab.log_dir().join("halfopen.db");
    let db_file = db_file.to_string_lossy().into_owned();
    let mut fleet = Fleet::start(
        &mut lab,
        &exe(),
        "recon",
        &["--db", &db_file, "--dropped-handshake-ttl", "20s"],
    )
    .unwrap();
    // Only the DB host runs a collector; ext is a client nobody watches.
    collector(&mut lab, &mut fleet, "db", "bpf", &[]);
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    slow_egress(&lab, "db");
    let _server = greet_server(
        &mut lab,
        "db",
        "0.0.0.0:3306",
        &["--backlog", "4", "--accept-delay", "600s"],
    );
    let _burst = burst(&mut lab, "ext", "198.18.0.1:3306", 200);
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, found) = agree(&lab, "dropped_handshake", "ext", "db", server, TIMEOUT, || {
        fleet.findings(&lab, "dropped_handshake").unwrap()
    });
    for f in &found {
        assert_eq!(f["kind"], "dropped_handshake");
        assert_eq!(f["client_host"], "", "the client is not monitored: {f}");
        assert_eq!(f["server_host"], "db");
        assert_eq!(f["listener"], "0.0.0.0:3306");
        assert_eq!(f["server_process"], "halfopen", "the greeting server: {f}");
        assert_eq!(f["witness"]["path"], "cookie");
        assert_eq!(f["confirmed_by_client"], false);
        assert!(f["explanation"]
            .as_str()
            .unwrap()
            .contains("The client host is not monitored"));
    }
    assert!(
        fleet.orphans(&lab).unwrap().is_empty(),
        "no client_only without a client host"
    );
    println!(
        "{} dropped handshakes, exactly the client-only connections",
        truth.len()
    );
    // Gone after the TTL (the clients still hold them: only the TTL ends them), and recorded so.
    wait_for("the dropped handshakes to expire", Duration::from_secs(60), || {
        fleet
            .findings(&lab, "dropped_handshake")
            .unwrap()
            .is_empty()
            .then_some(())
    });
    let history = fleet
        .query(&lab, &["history", "--since", "1h", "--kind", "dropped_handshake"])
        .unwrap();
    let rows = history.as_array().unwrap();
    assert_eq!(finding_pairs(rows), truth);
    assert!(rows.iter().all(|r| r["gone_reason"] == "expired"), "{rows:?}");
    assert!(rows.iter().all(|r| r["witness"]["path"] == "cookie"));
    lab.teardown().unwrap();
}

#[test]
fn auto_falls_back_to_netlink_without_the_bpf_capabilities() {
    let Some(mut lab) = lab("e2e-bpf-caps") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let exe = exe().to_string_lossy().into_owned();
    let url = fleet.url.clone();
    let drop_caps = ["--bounding-set", "-bpf,-perfmon,-sys_admin", "--inh-caps=-all"];
    let mut args: Vec<&str> = drop_caps.to_vec();
    args.extend_from_slice(&[
        &exe,
        "collector",
        "--reconciler",
        &url,
        "--interval",
        "1s",
        "--host-id",
        "db",
    ]);
    let child = lab.spawn("db", std::path::Path::new("setpriv"), &args).unwrap();
    fleet.collectors.push(("db".into(), child));
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    assert_eq!(source_of(&lab, &fleet, "db"), "netlink");
    let log = fleet.collector("db").unwrap().read_stderr().unwrap();
    assert!(
        log.contains(
            "source netlink (--source auto): the eBPF source is not available: the collector lacks CAP_BPF, \
             CAP_PERFMON, CAP_SYS_ADMIN"
        ),
        "{log}"
    );
    // Asked for eBPF explicitly, it refuses and says why.
    let mut args: Vec<&str> = drop_caps.to_vec();
    args.extend_from_slice(&[&exe, "collector", "--reconciler", &url, "--source", "bpf"]);
    let out = lab.run("db", "setpriv", &args, Duration::from_secs(30)).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--source bpf: the collector lacks CAP_BPF"), "{err}");
    lab.teardown().unwrap();
}

/// Sockets the eBPF source's table follows on `host`, by `ss`: every state
/// but LISTEN, TIME_WAIT and SYN_RECV.
fn followed_by_ss(lab: &Lab, host: &str) -> usize {
    let out = lab
        .run_ok(
            host,
            "ss",
            &[
                "-Htan",
                "exclude",
                "listening",
                "exclude",
                "time-wait",
                "exclude",
                "syn-recv",
            ],
            Duration::from_secs(10),
        )
        .unwrap();
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn ring_buffer_loss_forces_a_dump() {
    let Some(mut lab) = lab("e2e-bpf-loss") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    // A 4 KiB transitions ring: about 36 records between two drains.
    for host in ["db", "app"] {
        collector(&mut lab, &mut fleet, host, "bpf", &["--bpf-ring-size", "4KiB"]);
    }
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let (_server, churn) = healthy_churn(&mut lab, 3310, "20s");
    churn_summary(&churn);
    // Lost events forced dumps, and said why.
    for host in ["db", "app"] {
        let log = fleet.collector(host).unwrap().read_stderr().unwrap();
        assert!(log.contains("the eBPF source took a dump"), "{host}: {log}");
        assert!(log.contains("ring full"), "{host}: {log}");
    }
    // Nothing healthy was reported, and once quiet the reconciler holds each table exactly.
    assert!(fleet.findings(&lab, "client_only").unwrap().is_empty());
    assert!(fleet.findings(&lab, "server_only").unwrap().is_empty());
    for host in ["db", "app"] {
        wait_for(&format!("{host}'s table to match ss"), Duration::from_secs(30), || {
            let want = followed_by_ss(&lab, host);
            let held = fleet.hosts(&lab).unwrap().into_iter().find(|h| h["host_id"] == host)?["sockets"].as_u64()?;
            (held as usize == want).then_some(())
        });
    }
    lab.teardown().unwrap();
}
