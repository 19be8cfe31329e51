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
//!   forces a dump, and the reconciler's table of the host stays exact;
//! - one set of programs for every namespace: a collector that also covers
//!   another namespace (`--netns self,NAME`) follows it with the eBPF source
//!   too, finds the seed incident there and carries that kernel's witnesses.
//!
//! What the server's :3306 sends is slowed (100 kbit/s): on veth a
//! connect() often completes its handshake inside the system call, so a
//! burst becomes a sequence that never overflows; with a round trip, as on
//! any network, all SYNs arrive before the handshakes complete and the seed
//! incident reproduces every time (halfopen-bpf's README). The collector's
//! own stream to the reconciler is not slowed.
mod common;

use common::*;
use halfopen_lab::fleet::{finding_pairs, ss_client_only, Fleet};
use halfopen_lab::{Lab, LabChild, Signal};

use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

/// `halfopen collector --source SOURCE` on `host` (named after it), reporting
/// every second to `fleet`; the eBPF source's debug lines (each witnessed
/// drop) go to its stderr.
fn collector(lab: &mut Lab, fleet: &mut Fleet, host: &str, source: &str, extra: &[&str]) {
    let mut args: Vec<String> = ["--log", "info,halfopen_collector::bpf=debug", "collector"]
        .map(String::from)
        .to_vec();
    args.extend(fleet.collector_args(host).unwrap()); // --reconciler URL and its TLS files
                                                      // `--netns self`: the default (all) would cover every test's namespaces.
    args.extend(["--interval", "1s", "--host-id", host, "--source", source].map(String::from));
    if !extra.contains(&"--netns") {
        args.extend(["--netns", "self"].map(String::from));
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = lab.spawn(host, &exe(), &args).unwrap();
    fleet.collectors.push((host.to_string(), child));
}

/// What the listener on :3306 sends (SYN-ACKs, greetings) leaves `host` at
/// 100 kbit/s, through a token bucket of one 200-byte packet (two SYN-ACKs);
/// everything else (the collector's mutual-TLS stream to the reconciler)
/// leaves at full speed: an HTB class for source port 3306 (IPv4 and IPv6,
/// u32 filters) with that token bucket under it, the default class unlimited.
fn slow_egress(lab: &Lab, host: &str) {
    let tc = |args: &str| {
        let args: Vec<&str> = args.split_whitespace().collect();
        lab.run_ok(host, "tc", &args, Duration::from_secs(10)).unwrap();
    };
    tc("qdisc replace dev eth0 root handle 1: htb default 10 r2q 100000");
    tc("class add dev eth0 parent 1: classid 1:10 htb rate 10gbit");
    tc("class add dev eth0 parent 1: classid 1:20 htb rate 100kbit ceil 100kbit burst 200 cburst 200");
    tc("qdisc add dev eth0 parent 1:20 handle 20: tbf rate 100kbit burst 200 limit 1000000");
    tc("filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip sport 3306 0xffff flowid 1:20");
    tc("filter add dev eth0 parent 1: protocol ipv6 prio 2 u32 match ip6 sport 3306 0xffff flowid 1:20");
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
    f: impl FnMut() -> Vec<Value>,
) -> (BTreeSet<(SocketAddr, SocketAddr)>, Vec<Value>) {
    agree_on(lab, what, client_host, server_host, server, timeout, f, |t| t.clone())
}

type Pairs = BTreeSet<(SocketAddr, SocketAddr)>;

/// [`agree`], where the findings must equal `want(ss's client-only set)`.
#[allow(clippy::too_many_arguments)]
fn agree_on(
    lab: &Lab,
    what: &str,
    client_host: &str,
    server_host: &str,
    server: SocketAddr,
    timeout: Duration,
    mut f: impl FnMut() -> Vec<Value>,
    want: impl Fn(&Pairs) -> Pairs,
) -> (Pairs, Vec<Value>) {
    let start = Instant::now();
    loop {
        let truth = ss_client_only(lab, client_host, server_host, server).unwrap();
        let found: Vec<Value> = f().into_iter().filter(|x| x["server"] == server.to_string()).collect();
        if !truth.is_empty()
            && finding_pairs(&found) == want(&truth)
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
    // The few request sockets whose ACKs were dropped expire after one SYN-ACK retry (3 s).
    lab.sysctl("db", "net.ipv4.tcp_synack_retries", "1").unwrap();
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
    assert_witnesses(&by_bpf, true);
    for f in by_bpf.iter().filter(|f| f.get("witness").is_some()) {
        assert!(
            f["explanation"]
                .as_str()
                .unwrap()
                .contains("The server's kernel witnessed the drop"),
            "{f}"
        );
    }
    assert!(
        by_netlink.iter().all(|f| f.get("witness").is_none()),
        "no witness without eBPF"
    );
    lab.teardown().unwrap();
}

/// Client-only connections that the server's kernel is allowed not to have
/// witnessed, in percent. Everything witnessed must be client-only,
/// exactly. Measured on this project's VM (Linux 6.18): 0 to 4 of ~195 per
/// run have no witness, and ftrace's own `sock:inet_sock_set_state` shows
/// why: each was handled by a softirq that ran on top of one thread of the
/// VM's init agent, where no tp_btf program of ours ran (the client's
/// SYN_SENT->ESTABLISHED was missed by the same programs, 10 of 10 in 8
/// runs) and no loss counter rose (halfopen-bpf's README, open issue 1).
const UNWITNESSED_MAX_PERCENT: usize = 5;

/// The `witness` object of every finding (the JSON contract: exactly `at`,
/// `path`, `queue`, `backlog`): the queue over the backlog of 4 (the kernel's
/// `sk_acceptq_is_full`), and the path. Without cookies every drop is on the
/// normal path. With cookies, a listener's first SYNs still get request
/// sockets (cookies start when the SYN queue holds `backlog` of them), and
/// their dropped ACKs stay queued there until they expire: at most a few
/// normal-path drops, the rest on the cookie path.
fn assert_witnesses(found: &[Value], syncookies: bool) {
    let mut paths = std::collections::BTreeMap::<String, usize>::new();
    let unwitnessed: Vec<&Value> = found.iter().filter(|f| f.get("witness").is_none()).collect();
    assert!(
        unwitnessed.len() * 100 <= found.len() * UNWITNESSED_MAX_PERCENT,
        "{} of {} without a witness, first: {:?}",
        unwitnessed.len(),
        found.len(),
        unwitnessed.first()
    );
    if !unwitnessed.is_empty() {
        println!(
            "unwitnessed ({} of {}): {:?}",
            unwitnessed.len(),
            found.len(),
            unwitnessed.iter().map(|f| f["client"].clone()).collect::<Vec<_>>()
        );
    }
    let found: Vec<&Value> = found.iter().filter(|f| f.get("witness").is_some()).collect();
    for f in &found {
        let w = f["witness"].as_object().unwrap();
        let mut keys: Vec<&str> = w.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["at", "backlog", "path", "queue"], "{f}");
        let at = w["at"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(at).is_ok(), "at is RFC 3339: {at}");
        assert_eq!(w["backlog"], 4, "{f}");
        assert!(w["queue"].as_u64().unwrap() > 4, "the queue was over its backlog: {f}");
        *paths.entry(w["path"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let normal = paths.get("normal").copied().unwrap_or(0);
    let cookie = paths.get("cookie").copied().unwrap_or(0);
    assert_eq!(normal + cookie, found.len(), "paths are cookie or normal: {paths:?}");
    if syncookies {
        assert!(normal <= 8 && cookie + 8 >= found.len(), "{paths:?}");
    } else {
        assert_eq!(cookie, 0, "{paths:?}");
    }
    println!("witness paths: {paths:?}");
}

/// A seed-incident lab: the server host `db` (198.18.0.1) with
/// `tcp_syncookies` = `syncookies` and one SYN-ACK retry (request sockets
/// whose ACK was dropped expire within the test: 1 s + 2 s), the client host
/// `client` (198.18.0.2 for `app`, 198.18.0.5 otherwise) and `recon`
/// (198.18.0.3) for the reconciler. None: skipped (see `lab`).
fn seed_lab(tag: &str, client: &str, syncookies: &str) -> Option<Lab> {
    let mut lab = lab(tag)?;
    let client_ip = if client == "app" { "198.18.0.2" } else { "198.18.0.5" };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host(client, client_ip.parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", syncookies).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_synack_retries", "1").unwrap();
    Some(lab)
}

/// The seed incident in a [`seed_lab`]: db's :3306 slowed (`slow_egress`), a
/// greeting server on `listen` with backlog 4 that does not accept during
/// the test, 200 simultaneous connects from `client`. Returns the server
/// address and the two processes (kept alive by the caller).
fn seed_incident(lab: &mut Lab, listen: &str, client: &str) -> (SocketAddr, [LabChild; 2]) {
    slow_egress(lab, "db");
    let server = greet_server(lab, "db", listen, &["--backlog", "4", "--accept-delay", "600s"]);
    let burst = burst(lab, client, "198.18.0.1:3306", 200);
    ("198.18.0.1:3306".parse().unwrap(), [server, burst])
}

/// One witness scenario: the db host's collector uses the eBPF source, the
/// app host's netlink (so that only the server is watched by eBPF); the
/// greeting server on `listen` never accepts during the test.
fn witness_case(tag: &str, listen: &str, syncookies: &str) {
    let Some(mut lab) = seed_lab(tag, "app", syncookies) else {
        return;
    };
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    collector(&mut lab, &mut fleet, "db", "bpf", &[]);
    collector(&mut lab, &mut fleet, "app", "netlink", &[]);
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let (server, _incident) = seed_incident(&mut lab, listen, "app");
    let (truth, found) = agree(&lab, tag, "app", "db", server, TIMEOUT, || fleet.orphans(&lab).unwrap());
    // Every client-only connection carries its witness, with the path.
    assert_witnesses(&found, syncookies == "1");
    // ... and the server's kernel witnessed nothing else.
    let log = fleet.collector("db").unwrap().read_stderr().unwrap();
    let witnessed = witnessed_in_log(&log);
    let unwitnessed: Vec<_> = truth.difference(&witnessed).collect();
    assert!(
        witnessed.is_subset(&truth) && unwitnessed.len() * 100 <= truth.len() * UNWITNESSED_MAX_PERCENT,
        "witnessed {} vs client-only {}: only witnessed {:?}, only client-only {:?}",
        witnessed.len(),
        truth.len(),
        witnessed.difference(&truth).take(3).collect::<Vec<_>>(),
        unwitnessed.iter().take(3).collect::<Vec<_>>()
    );
    println!("{tag}: unwitnessed client-only connections: {unwitnessed:?}");
    println!("{tag}: {} client-only connections, each witnessed", truth.len());
    lab.teardown().unwrap();
}

#[test]
fn the_witness_names_exactly_the_dropped_connections_ipv4_cookie_path() {
    witness_case("e2e-bpf-w4", "0.0.0.0:3306", "1");
}

#[test]
fn the_witness_names_exactly_the_dropped_connections_dual_stack_cookie_path() {
    witness_case("e2e-bpf-w6", "[::]:3306", "1");
}

#[test]
fn the_witness_names_exactly_the_dropped_connections_normal_path() {
    witness_case("e2e-bpf-wn", "0.0.0.0:3306", "0");
}

#[test]
fn dropped_handshake_with_a_collector_on_the_server_host_only() {
    let Some(mut lab) = seed_lab("e2e-bpf-dh", "ext", "1") else {
        return;
    };
    let db_file = lab.log_dir().join("halfopen.db");
    let db_file = db_file.to_string_lossy().into_owned();
    let mut fleet = Fleet::start(
        &mut lab,
        &exe(),
        "recon",
        &["--db", &db_file, "--dropped-handshake-ttl", "60s"],
    )
    .unwrap();
    // Only the DB host runs a collector; ext is a client nobody watches.
    collector(&mut lab, &mut fleet, "db", "bpf", &[]);
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let (server, _incident) = seed_incident(&mut lab, "0.0.0.0:3306", "ext");
    // Exactly the client-only connections that the server's kernel witnessed being dropped
    // (see UNWITNESSED_MAX_PERCENT for the others).
    let witnessed = || witnessed_in_log(&fleet.collector("db").unwrap().read_stderr().unwrap());
    let (truth, found) = agree_on(
        &lab,
        "dropped_handshake",
        "ext",
        "db",
        server,
        TIMEOUT,
        || fleet.findings(&lab, "dropped_handshake").unwrap(),
        |t| t.intersection(&witnessed()).copied().collect(),
    );
    let witnessed = witnessed();
    let unwitnessed: Vec<_> = truth.difference(&witnessed).copied().collect();
    assert!(
        witnessed.is_subset(&truth),
        "witnessed only what ss shows only on the client"
    );
    assert!(
        unwitnessed.len() * 100 <= truth.len() * UNWITNESSED_MAX_PERCENT,
        "{unwitnessed:?}"
    );
    let truth: Pairs = witnessed;
    for f in &found {
        assert_eq!(f["kind"], "dropped_handshake");
        assert_eq!(f["client_host"], "", "the client is not monitored: {f}");
        assert_eq!(f["server_host"], "db");
        assert_eq!(f["listener"], "0.0.0.0:3306");
        assert_eq!(f["server_process"], "halfopen", "the greeting server: {f}");
        assert_eq!(f["confirmed_by_client"], false);
        assert!(f["explanation"]
            .as_str()
            .unwrap()
            .contains("The client host is not monitored"));
    }
    assert_witnesses(&found, true);
    assert!(
        fleet.orphans(&lab).unwrap().is_empty(),
        "no client_only without a client host"
    );
    println!(
        "{} dropped handshakes, exactly the client-only connections witnessed ({} unwitnessed)",
        truth.len(),
        unwitnessed.len()
    );
    // Gone after the TTL (the clients still hold them: only the TTL ends them), and recorded so.
    wait_for("the dropped handshakes to expire", Duration::from_secs(120), || {
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
    assert_witnesses(rows, true);
    lab.teardown().unwrap();
}

#[test]
fn auto_falls_back_to_netlink_without_the_bpf_capabilities() {
    let Some(mut lab) = lab("e2e-bpf-caps") else { return };
    lab.add_host("db", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let exe = exe().to_string_lossy().into_owned();
    let remote = fleet.collector_args("db").unwrap(); // --reconciler URL and its TLS files
    let remote: Vec<&str> = remote.iter().map(String::as_str).collect();
    let drop_caps = ["--bounding-set", "-bpf,-perfmon,-sys_admin", "--inh-caps=-all"];
    let mut args: Vec<&str> = drop_caps.to_vec();
    args.extend_from_slice(&[&exe, "collector"]);
    args.extend_from_slice(&remote);
    args.extend_from_slice(&["--interval", "1s", "--host-id", "db", "--netns", "self"]);
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
    args.extend_from_slice(&[&exe, "collector"]);
    args.extend_from_slice(&remote);
    args.extend_from_slice(&["--host-id", "db", "--source", "bpf", "--netns", "self"]);
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
    // A 4 KiB transitions ring (about 36 records), and no periodic dump during the test: only
    // the dump at start and the ones that losses force can make the tables right.
    for host in ["db", "app"] {
        collector(
            &mut lab,
            &mut fleet,
            host,
            "bpf",
            &["--bpf-ring-size", "4KiB", "--bpf-dump-every", "1h"],
        );
    }
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let (_server, churn) = healthy_churn(&mut lab, 3310, "20s");
    // A collector starved of CPU (stopped for 3 s, as under a load spike) while connections
    // come and go: nothing drains its ring, which fills and drops transitions.
    std::thread::sleep(Duration::from_secs(4));
    for host in ["db", "app"] {
        fleet.collector(host).unwrap().signal(Signal::SIGSTOP).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    for host in ["db", "app"] {
        fleet.collector(host).unwrap().signal(Signal::SIGCONT).unwrap();
    }
    churn_summary(&churn);
    // Lost events forced dumps, and said why.
    for host in ["db", "app"] {
        let log = fleet.collector(host).unwrap().read_stderr().unwrap();
        let took: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("the eBPF source took a dump"))
            .collect();
        assert!(
            took.iter().any(|l| l.contains("transitions lost (ring full ")),
            "{host}: no dump forced by a full ring: {took:?}"
        );
    }
    // Nothing healthy was reported, and once quiet the reconciler holds each table exactly
    // (the sockets the eBPF source follows, as `ss` counts them).
    assert!(fleet.findings(&lab, "client_only").unwrap().is_empty());
    assert!(fleet.findings(&lab, "server_only").unwrap().is_empty());
    for host in ["db", "app"] {
        let start = Instant::now();
        loop {
            let want = followed_by_ss(&lab, host);
            let held = fleet
                .hosts(&lab)
                .unwrap()
                .into_iter()
                .find(|h| h["host_id"] == host)
                .and_then(|h| h["sockets"].as_u64())
                .unwrap_or(u64::MAX);
            if held as usize == want {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{host}: the reconciler holds {held} sockets, ss shows {want}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    lab.teardown().unwrap();
}

/// One set of eBPF programs for every namespace (issue 14): a collector in
/// `app`'s namespace that also covers `db`'s (`--netns self,DBNS`) follows
/// both with the eBPF source, routed by netns cookie: the programs are
/// loaded once, `db`'s namespace is host `app/DBNS` with source `bpf`, the
/// seed incident is found with the server end there, and the drops `db`'s
/// kernel witnessed are on the findings.
#[test]
fn one_set_of_programs_follows_every_covered_namespace() {
    programs_for_namespaces_case("e2e-bpf-ns", true);
}

/// The same without the collector's own namespace (`--netns DBNS,APPNS`,
/// the collector in `recon`'s namespace): the programs start following no
/// namespace and both covered ones join them; nothing is polled.
#[test]
fn one_set_of_programs_follows_the_covered_namespaces_without_its_own() {
    programs_for_namespaces_case("e2e-bpf-nso", false);
}

fn programs_for_namespaces_case(tag: &str, with_own: bool) {
    let Some(mut lab) = seed_lab(tag, "app", "1") else {
        return;
    };
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let db_ns = lab.host("db").netns.clone();
    let app_ns = lab.host("app").netns.clone();
    // Where the collector runs, the covered namespaces, and the host ids the
    // client and the server ends get.
    let (runs_in, list, client_host, server_host) = if with_own {
        (
            "app",
            format!("self,{db_ns}"),
            "app".to_string(),
            format!("app/{db_ns}"),
        )
    } else {
        (
            "recon",
            format!("{db_ns},{app_ns}"),
            format!("recon/{app_ns}"),
            format!("recon/{db_ns}"),
        )
    };
    collector(
        &mut lab,
        &mut fleet,
        runs_in,
        "bpf",
        &["--netns", &list, "--netns-rescan", "1s"],
    );
    for host in [&client_host, &server_host] {
        wait_for(
            &format!("{host} covered by the eBPF source"),
            Duration::from_secs(30),
            || (source_of(&lab, &fleet, host) == "bpf").then_some(()),
        );
    }
    let (server, _incident) = seed_incident(&mut lab, "0.0.0.0:3306", "app");
    let (truth, found) = agree(&lab, "every namespace", "app", "db", server, TIMEOUT, || {
        fleet.orphans(&lab).unwrap()
    });
    for f in &found {
        assert_eq!(f["client_host"], client_host.as_str(), "{f}");
        assert_eq!(f["server_host"], server_host.as_str(), "{f}");
    }
    assert_witnesses(&found, true);
    let hosts: BTreeSet<String> = fleet
        .hosts(&lab)
        .unwrap()
        .iter()
        .filter_map(|h| h["host_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        hosts.contains(runs_in),
        with_own,
        "the collector's own namespace is a host only when covered: {hosts:?}"
    );
    let log = fleet.collector(runs_in).unwrap().read_stderr().unwrap();
    assert_eq!(
        log.matches("source bpf: TCP transitions").count(),
        1,
        "the programs are loaded once, for every namespace:\n{log}"
    );
    for host in [&client_host, &server_host].into_iter().filter(|h| h.contains('/')) {
        assert!(
            log.lines().any(|l| l.contains("covering network namespace")
                && l.contains("source=Bpf")
                && l.contains(host.as_str())),
            "{host} is followed by the eBPF source:\n{log}"
        );
    }
    assert!(!log.contains("polling"), "no namespace is polled:\n{log}");
    println!(
        "{} client-only connections, {client_host} -> {server_host}, found through the one set of programs",
        truth.len()
    );
    lab.teardown().unwrap();
}

/// Witnesses survive a reconciler that lost them: the db host's collector
/// carries every witness it sent within the last ten minutes again in each
/// full report, so after the reconciler is killed (SIGKILL, no database)
/// and restarted, the seed incident's client_only findings carry their
/// witnesses again, although the kernel witnessed each drop only once.
#[test]
fn witnesses_are_sent_again_to_a_restarted_reconciler() {
    let Some(mut lab) = seed_lab("e2e-bpf-rs", "app", "1") else {
        return;
    };
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    collector(&mut lab, &mut fleet, "db", "bpf", &[]);
    collector(&mut lab, &mut fleet, "app", "netlink", &[]);
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let (server, _incident) = seed_incident(&mut lab, "0.0.0.0:3306", "app");
    let (_, before) = agree(&lab, "before the restart", "app", "db", server, TIMEOUT, || {
        fleet.orphans(&lab).unwrap()
    });
    assert_witnesses(&before, true);

    fleet.restart_reconciler(&mut lab, &["--no-db"]).unwrap();
    let (truth, after) = agree(&lab, "after the restart", "app", "db", server, TIMEOUT, || {
        fleet.orphans(&lab).unwrap()
    });
    assert_witnesses(&after, true);
    let witnessed = |fs: &[Value]| -> usize { fs.iter().filter(|f| f.get("witness").is_some()).count() };
    assert!(
        witnessed(&after) >= witnessed(&before),
        "the witnesses sent before, sent again (the kernel dropped each ACK once): {} after, {} before",
        witnessed(&after),
        witnessed(&before)
    );
    println!(
        "{} client-only connections, {} witnessed before and after the restart",
        truth.len(),
        witnessed(&after)
    );
    lab.teardown().unwrap();
}
