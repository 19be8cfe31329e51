//! The drop witness on the real kernel, with the seed lab's recipe: a greeting server with
//! backlog 4 that does not accept for 5 s, 200 simultaneous connects from another namespace.
//! The connections the client holds ESTABLISHED and the server does not (`ss` on both sides)
//! are exactly the witnessed drops, each with the listener's queue and backlog and the path
//! (SYN cookie with tcp_syncookies=1, normal with 0); also against a dual-stack `[::]`
//! listener. And a tiny ring buffer under the same burst reports what it lost.
//! Needs root (`cargo test -p halfopen-bpf --features bpf`).

#![cfg(feature = "bpf")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use common::{dump, netns_cookie, serial, spawn_lab_process};
use halfopen_bpf::{Bpf, DropPath, Family, LoadOptions, WitnessMode, WitnessedDrop};
use halfopen_core::TcpState;
use halfopen_lab::{require_root_or_skip, Lab};

#[test]
#[ignore = "entry point of the lab processes the kernel tests start; not a test"]
fn lab_process() {
    common::run_lab_process();
}

/// Gives the lab a network round trip: the server's SYN-ACKs leave at 100 kbit/s (one
/// 74-byte SYN-ACK every ~6 ms, a 200-byte bucket) through a TBF qdisc on its eth0.
///
/// On veth pairs a connect() usually completes the whole handshake synchronously inside the
/// system call (the packets are processed in the softirq run when the sender re-enables bottom
/// halves), so a burst of connects becomes a sequence: the accept queue fills after 5 and
/// every later SYN is dropped, before any SYN cookie is sent. Whether the seed recipe
/// reproduces then depends on softirq scheduling (it does when processing is deferred to
/// ksoftirqd, e.g. on a busy machine). With a round trip, as on any real network, all 200
/// SYNs arrive before the first handshakes complete: the SYN queue fills, the rest are
/// answered with cookies, and the cookie ACKs then meet a full accept queue, every time.
fn slow_server_egress(lab: &Lab) {
    lab.run_ok(
        "server",
        "tc",
        &[
            "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "100kbit", "burst", "200", "limit", "1000000",
        ],
        Duration::from_secs(10),
    )
    .unwrap();
}

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 33, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 33, 2);

struct Outcome {
    drops: Vec<WitnessedDrop>,
    /// (client end, server end) of the connections ESTABLISHED on the client only.
    client_only: BTreeSet<(SocketAddr, SocketAddr)>,
    client_established: usize,
    listener_cookie: u64,
    overflows: u64,
}

/// One run of the recipe on `port`; the lab's server has `syncookies` set.
fn reproduce(lab: &mut Lab, bpf: &mut Bpf, syncookies: &str, listen: &str, port: u16) -> Outcome {
    lab.sysctl("server", "net.ipv4.tcp_syncookies", syncookies).unwrap();
    let gs = spawn_lab_process(
        lab,
        "server",
        &[
            "greet-server",
            "--listen",
            listen,
            "--backlog",
            "4",
            "--accept-delay",
            "5s",
        ],
    );
    gs.wait_for_prefix("listening", Duration::from_secs(10)).unwrap();
    let server_ns = lab.host("server").netns.clone();
    let listener_cookie = dump(&server_ns, TcpState::Listen.mask_bit())
        .iter()
        .find(|r| r.tuple.local_port() == port)
        .map(|r| r.cookie)
        .expect("the listener in a dump");
    let (mut socks, mut drops) = (Vec::new(), Vec::new());
    bpf.poll(Duration::from_millis(1), &mut socks, &mut drops).unwrap();
    drops.clear();
    let before = lab.net_counters("server").unwrap();

    let started = SystemTime::now();
    let t0 = Instant::now();
    let target = SocketAddr::from((SERVER_IP, port)).to_string();
    let burst = spawn_lab_process(lab, "client", &["burst", "--target", &target, "--count", "200"]);
    // The last SYN-ACK leaves after ~1.2 s and its ACK is dropped at once; retransmitted SYNs
    // (1 s, 3 s) meet a full queue again. The server starts accepting at 5 s: look before.
    // (Killing the burst later makes every client send a FIN, which carries the cookie again
    // and is dropped again: that happens after the last poll.)
    while t0.elapsed() < Duration::from_millis(2500) {
        bpf.poll(Duration::from_millis(10), &mut socks, &mut drops).unwrap();
    }
    let client = lab.ss_established("client").unwrap();
    let server = lab.ss_established("server").unwrap();
    let server_side: BTreeSet<(SocketAddr, SocketAddr)> = server
        .iter()
        .filter(|c| c.local.port() == port)
        .map(|c| c.mirrored())
        .collect();
    let client_conns: Vec<_> = client.iter().filter(|c| c.remote.port() == port).collect();
    let client_only: BTreeSet<(SocketAddr, SocketAddr)> = client_conns
        .iter()
        .map(|c| c.tuple())
        .filter(|t| !server_side.contains(t))
        .collect();
    // A client is ESTABLISHED as soon as it sent its ACK; the server drops that ACK when it
    // processes it, which on a busy machine (softirqs deferred to ksoftirqd) can be later.
    // Wait, bounded and before the server starts accepting, until each was witnessed.
    let witnessed = |drops: &[WitnessedDrop]| -> BTreeSet<(SocketAddr, SocketAddr)> {
        drops.iter().map(|d| (d.tuple.remote(), d.tuple.local())).collect()
    };
    while t0.elapsed() < Duration::from_millis(4200) && !client_only.is_subset(&witnessed(&drops)) {
        bpf.poll(Duration::from_millis(10), &mut socks, &mut drops).unwrap();
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(100) {
        bpf.poll(Duration::from_millis(10), &mut socks, &mut drops).unwrap();
    }
    assert!(
        t0.elapsed() < Duration::from_millis(4500),
        "the server must not have started accepting"
    );
    let after = lab.net_counters("server").unwrap();
    let overflows = after["TcpExt.ListenOverflows"] - before["TcpExt.ListenOverflows"];
    for d in &drops {
        assert!(
            d.at >= started - Duration::from_millis(5) && d.at <= SystemTime::now(),
            "{d:?}"
        );
    }
    burst.kill().unwrap();
    gs.kill().unwrap();
    Outcome {
        drops,
        client_only,
        client_established: client_conns.len(),
        listener_cookie,
        overflows,
    }
}

/// Checks what holds in every scenario and returns the drops per path.
fn check(o: &Outcome, family: Family, port: u16, bpf: &Bpf) -> BTreeMap<DropPath, usize> {
    let witnessed: BTreeSet<(SocketAddr, SocketAddr)> =
        o.drops.iter().map(|d| (d.tuple.remote(), d.tuple.local())).collect();
    assert!(
        !o.client_only.is_empty(),
        "the recipe left no client-only connection ({} established, {} drops, {} overflows)",
        o.client_established,
        o.drops.len(),
        o.overflows
    );
    // No false witness: every witnessed drop is a connection the client holds and the server
    // does not.
    let not_client_only: Vec<_> = witnessed.difference(&o.client_only).collect();
    assert!(
        not_client_only.is_empty(),
        "witnessed but not client-only: {not_client_only:?}"
    );
    // Every client-only connection is witnessed, except rarely a few (at most 5%): on this
    // project's VM no tp_btf program runs for what a softirq processes on top of one thread of
    // the VM's init agent, and no loss counter rises; ftrace's own tracepoint shows those
    // connections (the client's SYN_SENT->ESTABLISHED was missed too, 10 of 10 in 8 runs). See
    // the crate README, open issue 1.
    let unwitnessed: Vec<_> = o.client_only.difference(&witnessed).collect();
    if !unwitnessed.is_empty() {
        eprintln!("client-only without a witness: {unwitnessed:?}");
    }
    assert!(
        unwitnessed.len() * 20 <= o.client_only.len(),
        "client-only but not witnessed: {unwitnessed:?} ({} client-only, {} established on the client, {} drops; \
         {:?}; {:?})",
        o.client_only.len(),
        o.client_established,
        o.drops.len(),
        bpf.lost(),
        bpf.activity()
    );
    let mut paths = BTreeMap::new();
    for d in &o.drops {
        assert_eq!(d.tuple.local(), SocketAddr::from((SERVER_IP, port)), "{d:?}");
        assert_eq!(d.tuple.remote_ip(), CLIENT_IP, "folded to IPv4: {d:?}");
        assert_eq!(d.backlog, 4, "{d:?}");
        // sk_acceptq_is_full: more than the backlog queued, i.e. 5 of 4.
        assert_eq!(d.queue, 5, "{d:?}");
        assert_eq!(d.listener_family, family, "{d:?}");
        assert_eq!(d.listener_cookie, Some(o.listener_cookie), "{d:?}");
        if let Some(req) = d.req_syncookie {
            assert_eq!(req, d.path == DropPath::SynCookie, "{d:?}");
        }
        *paths.entry(d.path).or_insert(0) += 1;
    }
    // Every witnessed drop is one the kernel counted (it also counts dropped SYNs).
    assert!(o.overflows >= o.drops.len() as u64, "{} overflows", o.overflows);
    paths
}

#[test]
fn witnessed_drops_are_exactly_the_client_only_connections() {
    if !require_root_or_skip("witnessed_drops_are_exactly_the_client_only_connections") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpfwit").unwrap();
    let server = lab.add_host("server", SERVER_IP).unwrap();
    lab.add_host("client", CLIENT_IP).unwrap();
    slow_server_egress(&lab);
    let mut bpf = Bpf::load(&LoadOptions {
        transitions: false,
        witness: WitnessMode::Auto,
        only_netns: Some(vec![netns_cookie(&server.netns)]),
        ..Default::default()
    })
    .unwrap();
    let hook = bpf.witness_hook().expect("a witness hook");
    eprintln!("witness hook on this kernel: {hook:?}");

    // SYN cookies on, IPv4 listener: the client-only connections are SYN-cookie drops.
    let o = reproduce(&mut lab, &mut bpf, "1", "0.0.0.0:3306", 3306);
    let paths = check(&o, Family::V4, 3306, &bpf);
    eprintln!(
        "syncookies=1 v4: {} established on the client, {} client-only, paths {paths:?}, {} overflows",
        o.client_established,
        o.client_only.len(),
        o.overflows
    );
    assert!(o.client_only.len() >= 100, "{}", o.client_only.len());
    let cookie = paths.get(&DropPath::SynCookie).copied().unwrap_or(0);
    assert!(cookie * 10 >= o.drops.len() * 9, "mostly SYN-cookie drops: {paths:?}");

    // SYN cookies off: only requests admitted before the queue filled can complete, and those
    // dropped are normal-path drops (the request stays in SYN_RECV on the server).
    let o = reproduce(&mut lab, &mut bpf, "0", "0.0.0.0:3307", 3307);
    let paths = check(&o, Family::V4, 3307, &bpf);
    eprintln!(
        "syncookies=0 v4: {} established on the client, {} client-only, paths {paths:?}, {} overflows",
        o.client_established,
        o.client_only.len(),
        o.overflows
    );
    assert_eq!(paths.get(&DropPath::SynCookie), None, "{paths:?}");

    // Dual-stack listener: the server sees ::ffff:198.18.33.2; the tuple comes folded.
    let o = reproduce(&mut lab, &mut bpf, "1", "[::]:3308", 3308);
    let paths = check(&o, Family::V6, 3308, &bpf);
    eprintln!(
        "syncookies=1 [::]: {} established on the client, {} client-only, paths {paths:?}",
        o.client_established,
        o.client_only.len()
    );
    assert!(o.client_only.len() >= 100, "{}", o.client_only.len());

    let lost = bpf.lost().unwrap();
    assert_eq!(lost.witnesses_lost(), 0, "{lost:?}");
    lab.teardown().unwrap();
}

#[test]
fn a_tiny_ring_reports_what_it_lost() {
    if !require_root_or_skip("a_tiny_ring_reports_what_it_lost") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpfring").unwrap();
    let server = lab.add_host("server", SERVER_IP).unwrap();
    let client = lab.add_host("client", CLIENT_IP).unwrap();
    let mut bpf = Bpf::load(&LoadOptions {
        events_ring_bytes: 4096,
        drops_ring_bytes: 4096,
        only_netns: Some(vec![netns_cookie(&server.netns), netns_cookie(&client.netns)]),
        ..Default::default()
    })
    .unwrap();
    lab.sysctl("server", "net.ipv4.tcp_syncookies", "1").unwrap();
    slow_server_egress(&lab);
    let gs = spawn_lab_process(
        &mut lab,
        "server",
        &[
            "greet-server",
            "--listen",
            "0.0.0.0:3306",
            "--backlog",
            "4",
            "--accept-delay",
            "5s",
        ],
    );
    gs.wait_for_prefix("listening", Duration::from_secs(10)).unwrap();
    let target = SocketAddr::from((SERVER_IP, 3306)).to_string();
    let burst = spawn_lab_process(&mut lab, "client", &["burst", "--target", &target, "--count", "200"]);
    burst
        .wait_for_json(
            |r: &halfopen_lab::BurstReport| r.phase == "settled",
            Duration::from_secs(20),
        )
        .unwrap();
    // Nobody read while 200 connections were made: the 4 KiB rings overflowed.
    let (mut socks, mut drops) = (Vec::new(), Vec::new());
    bpf.poll(Duration::from_millis(10), &mut socks, &mut drops).unwrap();
    let lost = bpf.lost().unwrap();
    let activity = bpf.activity().unwrap();
    eprintln!(
        "tiny rings: read {} transitions and {} drops; {lost:?}; {activity:?}",
        socks.len(),
        drops.len()
    );
    assert!(lost.transitions_ring_full > 0, "{lost:?}");
    assert!(lost.drops_ring_full > 0, "{lost:?}");
    assert!(lost.any_lost() && lost.transitions_lost() > 0 && lost.witnesses_lost() > 0);
    // What fit was read, all of it.
    assert_eq!(socks.len() as u64, activity.transitions_emitted);
    assert_eq!(drops.len() as u64, activity.drops_emitted);
    assert!(!socks.is_empty() && !drops.is_empty());
    lab.teardown().unwrap();
}
