//! Transitions on the real kernel: real connections in lab namespaces give exactly the expected
//! transitions per socket (nothing missing, nothing extra) with the connecting thread as
//! owner; and under churn, a table built from one dump plus the transitions equals a fresh
//! sock_diag dump. Needs root (`cargo test -p halfopen-bpf --features bpf`).

#![cfg(feature = "bpf")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{dump, in_netns, netns_cookie, serial, socket_cookie, spawn_lab_process};
use halfopen_bpf::{Applied, Bpf, LoadOptions, SockEvent, SocketTable, WitnessMode};
use halfopen_core::{TcpState, Tuple};
use halfopen_lab::{require_root_or_skip, Lab, Signal};

#[test]
#[ignore = "entry point of the lab processes the kernel tests start; not a test"]
fn lab_process() {
    common::run_lab_process();
}

const CONNECTIONS: usize = 40;
const CLIENT_THREAD: &str = "ho-bpf-client";

/// Polls until `done` says so (bounded), then 300 ms more so that extras would show.
fn collect(bpf: &mut Bpf, events: &mut Vec<SockEvent>, timeout: Duration, mut done: impl FnMut(&[SockEvent]) -> bool) {
    let deadline = Instant::now() + timeout;
    let mut drops = Vec::new();
    while !done(events) && Instant::now() < deadline {
        bpf.poll(Duration::from_millis(10), events, &mut drops).unwrap();
    }
    let tail = Instant::now() + Duration::from_millis(300);
    while Instant::now() < tail {
        bpf.poll(Duration::from_millis(10), events, &mut drops).unwrap();
    }
    assert!(drops.is_empty(), "no witness was loaded: {drops:?}");
}

#[test]
fn every_transition_of_real_connections_exactly_once() {
    if !require_root_or_skip("every_transition_of_real_connections_exactly_once") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpftr").unwrap();
    let server_ip = Ipv4Addr::new(198, 18, 31, 1);
    let client_ip = Ipv4Addr::new(198, 18, 31, 2);
    let server = lab.add_host("server", server_ip).unwrap();
    let client = lab.add_host("client", client_ip).unwrap();
    let (s_ns, c_ns) = (netns_cookie(&server.netns), netns_cookie(&client.netns));
    assert_ne!(s_ns, c_ns);
    let mut bpf = Bpf::load(&LoadOptions {
        witness: WitnessMode::Off,
        only_netns: Some(vec![s_ns, c_ns]),
        ..Default::default()
    })
    .unwrap();
    let at_start = bpf.lost().unwrap();

    let addr = SocketAddr::from((server_ip, 4000));
    // The server: accepts CONNECTIONS connections, reads each to EOF (the client closes
    // first), then closes it; closes the listener at the end.
    let (tx_ready, rx_ready) = std::sync::mpsc::channel();
    let server_ns = server.netns.clone();
    let server_thread = std::thread::spawn(move || {
        in_netns(&server_ns, move || {
            let listener = TcpListener::bind(addr).unwrap();
            tx_ready.send(socket_cookie(&listener)).unwrap();
            let mut accepted = Vec::new();
            for _ in 0..CONNECTIONS {
                let (mut s, peer) = listener.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let cookie = socket_cookie(&s);
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).unwrap();
                assert_eq!(buf, b"x");
                drop(s);
                accepted.push((cookie, Tuple::new(addr, peer)));
            }
            (socket_cookie(&listener), accepted)
        })
    });
    let listener_cookie = rx_ready.recv_timeout(Duration::from_secs(10)).unwrap();

    // The client: one thread with a known name, connecting and closing one at a time.
    let client_ns = client.netns.clone();
    let (clients, client_tid) = std::thread::Builder::new()
        .name(CLIENT_THREAD.into())
        .spawn(move || {
            common::enter(&std::path::Path::new("/run/netns").join(&client_ns));
            let mut out = Vec::new();
            for _ in 0..CONNECTIONS {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
                let cookie = socket_cookie(&s);
                let tuple = Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap());
                s.write_all(b"x").unwrap();
                drop(s);
                out.push((cookie, tuple));
            }
            (out, common::gettid())
        })
        .unwrap()
        .join()
        .unwrap();
    let (listener_cookie_again, accepted) = server_thread.join().unwrap();
    assert_eq!(listener_cookie, listener_cookie_again);

    use TcpState::*;
    let client_path = [
        (Close, SynSent),
        (SynSent, Established),
        (Established, FinWait1),
        (FinWait1, FinWait2),
        (FinWait2, Close),
    ];
    let server_path = [
        (Listen, SynRecv),
        (SynRecv, Established),
        (Established, CloseWait),
        (CloseWait, LastAck),
        (LastAck, Close),
    ];
    let expected_total = CONNECTIONS * (client_path.len() + server_path.len()) + 2;
    let mut events = Vec::new();
    collect(&mut bpf, &mut events, Duration::from_secs(15), |e| {
        e.len() >= expected_total
    });
    // A SYN retransmitted on a busy machine reports the port again: not a transition.
    events.retain(|e| !e.port_only);

    let mut per_socket: HashMap<(u64, u64), Vec<&SockEvent>> = HashMap::new();
    for e in &events {
        per_socket.entry((e.netns_cookie, e.cookie)).or_default().push(e);
    }
    let transitions = |v: &[&SockEvent]| v.iter().map(|e| (e.old, e.new)).collect::<Vec<_>>();
    let me = std::process::id();
    for (cookie, tuple) in &clients {
        let evs = per_socket
            .remove(&(c_ns, *cookie))
            .unwrap_or_else(|| panic!("no events for client socket {cookie}"));
        assert_eq!(transitions(&evs), client_path, "client socket {cookie} {tuple:?}");
        let owner = evs[0].owner.as_ref().expect("connect() names its owner");
        assert_eq!(owner.pid, me);
        assert_eq!(owner.tid, client_tid);
        assert_eq!(owner.comm, CLIENT_THREAD);
        assert_eq!(owner.uid, 0);
        assert!(evs[1..].iter().all(|e| e.owner.is_none()));
        assert_eq!(evs[0].tuple.remote(), addr, "the remote end is known at connect()");
        assert_eq!(evs[1].tuple, *tuple, "the established client tuple");
        // Timestamps are ordered within a socket and near now.
        assert!(evs.windows(2).all(|w| w[0].boot_ns <= w[1].boot_ns));
        let age = std::time::SystemTime::now().duration_since(evs[0].at).unwrap();
        assert!(age < Duration::from_secs(60), "{age:?}");
    }
    for (cookie, tuple) in &accepted {
        let evs = per_socket
            .remove(&(s_ns, *cookie))
            .unwrap_or_else(|| panic!("no events for accepted socket {cookie}"));
        assert_eq!(transitions(&evs), server_path, "accepted socket {cookie} {tuple:?}");
        assert_eq!(evs[1].tuple, *tuple, "the accepted socket's tuple");
        assert!(evs.iter().all(|e| e.owner.is_none()));
    }
    // The server's tuples mirror the clients'.
    let client_tuples: Vec<Tuple> = clients.iter().map(|(_, t)| t.mirror()).collect();
    let server_tuples: Vec<Tuple> = accepted.iter().map(|(_, t)| *t).collect();
    assert_eq!(client_tuples, server_tuples);
    // The listener: born inside listen() (with its owner), closed at the end.
    let evs = per_socket
        .remove(&(s_ns, listener_cookie))
        .expect("the listener's events");
    assert_eq!(transitions(&evs), [(Close, Listen), (Listen, Close)]);
    assert_eq!(evs[0].owner.as_ref().map(|o| o.pid), Some(me));
    assert_eq!(evs[0].tuple.local(), addr);
    assert!(per_socket.is_empty(), "extra events: {per_socket:?}");
    assert_eq!(events.len(), expected_total);

    let lost = bpf.lost().unwrap().since(&at_start);
    eprintln!("transitions: {} events, {lost:?}", events.len());
    assert_eq!(lost.transitions_lost(), 0, "{lost:?}");
    lab.teardown().unwrap();
}

/// A connect whose SYN the server drops stays in SYN_SENT: CLOSE->SYN_SENT came without the
/// local port (connect() picks it after the state change); the retransmission of the SYN
/// (after the initial RTO of 1 s) brings it, as SYN_SENT->SYN_SENT flagged `port_only`, and a
/// table built from the events then holds the socket's full tuple.
#[test]
fn a_connect_whose_syn_is_dropped_learns_its_port_from_the_retransmission() {
    if !require_root_or_skip("a_connect_whose_syn_is_dropped_learns_its_port_from_the_retransmission") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpfsyn").unwrap();
    let server_ip = Ipv4Addr::new(198, 18, 34, 1);
    let client = lab.add_host("client", Ipv4Addr::new(198, 18, 34, 2)).unwrap();
    lab.add_host("server", server_ip).unwrap();
    lab.nft(
        "server",
        "table inet t {\n chain in {\n  type filter hook input priority 0;\n  tcp dport 4100 drop\n }\n}\n",
    )
    .unwrap();
    let c_ns = netns_cookie(&client.netns);
    let mut bpf = Bpf::load(&LoadOptions {
        witness: WitnessMode::Off,
        only_netns: Some(vec![c_ns]),
        ..Default::default()
    })
    .unwrap();
    let addr = SocketAddr::from((server_ip, 4100));
    // A non-blocking connect that stays in SYN_SENT.
    let (cookie, local, sock) = in_netns(&client.netns, move || nonblocking_connect(server_ip, 4100));
    assert_ne!(local.port(), 0);
    let mut events = Vec::new();
    collect(&mut bpf, &mut events, Duration::from_secs(5), |e| {
        e.iter().any(|e| e.cookie == cookie && e.port_only)
    });
    let mine: Vec<&SockEvent> = events.iter().filter(|e| e.cookie == cookie).collect();
    assert_eq!((mine[0].old, mine[0].new), (TcpState::Close, TcpState::SynSent));
    assert_eq!(
        mine[0].tuple.local_port(),
        0,
        "connect() picks the port after the state change"
    );
    let port = mine
        .iter()
        .find(|e| e.port_only)
        .expect("the retransmission names the port");
    assert_eq!((port.old, port.new), (TcpState::SynSent, TcpState::SynSent));
    assert_eq!(port.tuple, Tuple::new(local, addr));
    let mut t = SocketTable::new();
    for e in &mine {
        t.apply(e);
    }
    let entry = t.get(c_ns, cookie).unwrap();
    assert_eq!((entry.state, entry.tuple), (TcpState::SynSent, Tuple::new(local, addr)));
    drop(sock);
    lab.teardown().unwrap();
}

/// socket + a non-blocking connect(2) to `ip:port` (it stays in progress): the socket's
/// cookie, local address and the socket.
fn nonblocking_connect(ip: Ipv4Addr, port: u16) -> (u64, SocketAddr, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain syscalls on a socket this function owns; every pointer is to a live local.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let sock = std::os::fd::OwnedFd::from_raw_fd(fd);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        let err = std::io::Error::last_os_error();
        assert!(
            r == 0 || err.raw_os_error() == Some(libc::EINPROGRESS),
            "connect: {err}"
        );
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::getsockname(fd, (&raw mut local).cast(), &mut len), 0);
        let local = SocketAddr::from((
            Ipv4Addr::from(u32::from_be(local.sin_addr.s_addr)),
            u16::from_be(local.sin_port),
        ));
        (socket_cookie(&sock), local, sock)
    }
}

/// Dump states the comparison covers: all but TIME_WAIT, SYN_RECV, NEW_SYN_RECV, CLOSE (see
/// `SocketTable::follows`).
/// utime + stime of this process, in clock ticks (USER_HZ, 100 per second), from /proc/self/stat.
fn self_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap();
    let f: Vec<u64> = after.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    f[11] + f[12]
}

fn followed_mask() -> u32 {
    (1..=12u8)
        .filter_map(TcpState::from_kernel)
        .filter(|s| SocketTable::follows(*s))
        .fold(0, |m, s| m | s.mask_bit())
}

/// What a comparison looks at: cookie -> (state, tuple), leaving out FIN_WAIT2 timewait
/// minisockets (inode 0), which transitions never follow.
fn from_dump(ns: &str) -> BTreeMap<u64, (TcpState, Tuple)> {
    dump(ns, followed_mask())
        .into_iter()
        .filter(|r| !(r.state == TcpState::FinWait2 && r.inode == 0))
        .map(|r| (r.cookie, (r.state, r.tuple)))
        .collect()
}

#[test]
fn table_from_events_equals_the_kernel_under_churn() {
    if !require_root_or_skip("table_from_events_equals_the_kernel_under_churn") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpfchurn").unwrap();
    let server_ip = Ipv4Addr::new(198, 18, 32, 1);
    let server = lab.add_host("server", server_ip).unwrap();
    let client = lab.add_host("client", Ipv4Addr::new(198, 18, 32, 2)).unwrap();
    // 3000/s keeps ~90,000 TIME_WAIT entries on the client: let connect() reuse them.
    lab.sysctl("client", "net.ipv4.tcp_tw_reuse", "1").unwrap();
    lab.sysctl("client", "net.ipv4.ip_local_port_range", "10000 65000")
        .unwrap();
    let (s_ns, c_ns) = (netns_cookie(&server.netns), netns_cookie(&client.netns));
    let mut bpf = Bpf::load(&LoadOptions {
        witness: WitnessMode::Off,
        only_netns: Some(vec![s_ns, c_ns]),
        ..Default::default()
    })
    .unwrap();
    let at_start = bpf.lost().unwrap();

    let gs = spawn_lab_process(
        &mut lab,
        "server",
        &["greet-server", "--listen", "198.18.32.1:3306", "--backlog", "4096"],
    );
    gs.wait_for_prefix("listening", Duration::from_secs(10)).unwrap();
    // BPF first, then the one initial dump: every later change is in the events.
    let mut table = SocketTable::new();
    let mut seeded = 0;
    for (ns, cookie) in [(&server.netns, s_ns), (&client.netns, c_ns)] {
        for r in dump(ns, followed_mask()) {
            seeded += usize::from(table.seed(cookie, &r));
        }
    }
    assert_eq!(seeded, 1, "only the listener exists before the churn");
    // Transitions stamped before this moment may already be in the seed (the listener's
    // CLOSE->LISTEN is): a mismatch is expected from them, from nothing later.
    let seeded_at = halfopen_bpf::ClockAnchor::now().boot_ns;

    // The benchmark (bench/bpf.sh) runs this test at 10,000/s for 60 s.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<u64>().unwrap_or_else(|e| panic!("{name}={v}: {e}")))
            .unwrap_or(default)
    };
    let rate_asked = env("HALFOPEN_BPF_CHURN_RATE", 3000);
    let secs = env("HALFOPEN_BPF_CHURN_SECS", 20);
    let target = SocketAddr::from((server_ip, 3306)).to_string();
    let rate_arg = format!("{rate_asked}/s");
    let duration_arg = format!("{}s", secs + 40);
    let churn = spawn_lab_process(
        &mut lab,
        "client",
        &[
            "churn",
            "--target",
            &target,
            "--rate",
            &rate_arg,
            "--max-life",
            "1s",
            "--duration",
            &duration_arg,
        ],
    );
    let start = Instant::now();
    let cpu0 = self_cpu_ticks();
    let (mut socks, mut drops) = (Vec::new(), Vec::new());
    let mut applied = 0u64;
    let mut polls = 0u64;
    let mut mismatched = Vec::new();
    let mut connected = 0u64; // client sockets SYN_SENT -> ESTABLISHED
    let mut apply = |table: &mut SocketTable, socks: &mut Vec<SockEvent>, applied: &mut u64| {
        for e in socks.drain(..) {
            connected += u64::from(e.old == TcpState::SynSent && e.new == TcpState::Established);
            if let Applied::Mismatched { had } = table.apply(&e) {
                if !(e.boot_ns < seeded_at && had == e.new) {
                    mismatched.push((had, e));
                }
            }
            *applied += 1;
        }
    };
    while start.elapsed() < Duration::from_secs(secs) {
        bpf.poll(Duration::from_millis(10), &mut socks, &mut drops).unwrap();
        polls += 1;
        apply(&mut table, &mut socks, &mut applied);
    }
    // This process's CPU (polling the rings and applying every transition to the table), as %
    // of one core over the churn window.
    let cpu_pct = (self_cpu_ticks() - cpu0) as f64 / 100.0 / start.elapsed().as_secs_f64() * 100.0;

    // Freeze both applications; the kernel finishes what is in flight (handshakes, FINs).
    churn.signal(Signal::SIGSTOP).unwrap();
    gs.signal(Signal::SIGSTOP).unwrap();
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(1500) {
        bpf.poll(Duration::from_millis(10), &mut socks, &mut drops).unwrap();
        apply(&mut table, &mut socks, &mut applied);
    }
    let lost = bpf.lost().unwrap().since(&at_start);
    let activity = bpf.activity().unwrap();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (ns, cookie) in [(&server.netns, s_ns), (&client.netns, c_ns)] {
        let kernel = from_dump(ns);
        let events: BTreeMap<u64, (TcpState, Tuple)> = table
            .iter()
            .filter(|e| e.netns_cookie == cookie)
            .map(|e| (e.cookie, (e.state, e.tuple)))
            .collect();
        compared += kernel.len();
        for (c, k) in &kernel {
            match events.get(c) {
                Some(e) if e == k => {}
                other => mismatches.push(format!("ns {cookie} socket {c}: kernel {k:?}, events {other:?}")),
            }
        }
        for (c, e) in &events {
            if !kernel.contains_key(c) {
                mismatches.push(format!("ns {cookie} socket {c}: events {e:?}, not in the kernel"));
            }
        }
    }
    let rate = applied as f64 / secs as f64;
    let achieved = connected as f64 / (secs as f64 + 1.5);
    eprintln!(
        "churn: {applied} transitions applied ({rate:.0}/s) in {polls} polls over {secs} s, {achieved:.0} new \
         connections/s (asked {rate_asked}/s), loader+table cpu {cpu_pct:.2}% of one core, {compared} sockets \
         compared, {} mismatches, {lost:?}, {activity:?}",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
    assert_eq!(activity.transitions_emitted, applied, "every emitted record was read");
    // Every transition of every socket should start from the state the one before left: a
    // lost or repeated transition shows here even when the socket is gone by the end. Seen on
    // this 2-core machine under a load average of 4-6: 0 to 96 FIN_WAIT1->FIN_WAIT2 of
    // orphaned client sockets lost in ~400,000-600,000 transitions with recursion misses and
    // rescues balanced, i.e. a loss the counters did not see (unexplained; see the crate
    // README). Reported, and bounded at 1 in 1,000 so that anything systematic (a kind of
    // transition lost every time is ~10% of them) fails the test.
    if !mismatched.is_empty() {
        eprintln!(
            "churn: {} transitions did not follow the previous one, first: {:?}",
            mismatched.len(),
            &mismatched[..mismatched.len().min(5)]
        );
    }
    assert!(
        mismatched.len() as u64 * 1_000 <= applied,
        "{} of {applied} transitions did not follow the previous one",
        mismatched.len()
    );
    assert_eq!(lost.transitions_lost(), 0, "{lost:?}");
    // Enough happened for the comparison to mean something: thousands of connections a
    // second, each with ~10 transitions, and hundreds open at the end.
    assert!(rate > 10_000.0, "{rate}/s");
    assert!(compared > 200, "{compared}");
    lab.teardown().unwrap();
}

/// A listener opened and closed in the calling thread's namespace (CLOSE->LISTEN,
/// LISTEN->CLOSE): its socket cookie.
fn listener_cookie() -> u64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    socket_cookie(&l)
}

/// Which of `cookies` the programs reported (polled for 500 ms: events arrive within one
/// poll; a filtered one never does).
fn reported(bpf: &mut Bpf, cookies: &[u64]) -> Vec<bool> {
    let (mut socks, mut drops) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(500) {
        bpf.poll(Duration::from_millis(20), &mut socks, &mut drops).unwrap();
    }
    cookies.iter().map(|c| socks.iter().any(|e| e.cookie == *c)).collect()
}

/// The namespace filter follows `allow_netns` / `disallow_netns` at run time (the collector
/// subscribes a namespace when it starts covering it and unsubscribes it when it stops): a
/// namespace added after load is reported, and once removed it is not, while the one named at
/// load still is; removing it twice is not an error.
#[test]
fn namespaces_join_and_leave_the_filter_at_run_time() {
    if !require_root_or_skip("namespaces_join_and_leave_the_filter_at_run_time") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpfflt").unwrap();
    let a = lab.add_host("a", Ipv4Addr::new(198, 18, 34, 1)).unwrap();
    let b = lab.add_host("b", Ipv4Addr::new(198, 18, 34, 2)).unwrap();
    let b_cookie = netns_cookie(&b.netns);
    let mut bpf = Bpf::load(&LoadOptions {
        witness: WitnessMode::Off,
        only_netns: Some(vec![netns_cookie(&a.netns)]),
        ..Default::default()
    })
    .unwrap();
    let listener_in = |ns: &str| in_netns(ns, listener_cookie);
    let both = [listener_in(&a.netns), listener_in(&b.netns)];
    assert_eq!(reported(&mut bpf, &both), [true, false], "only a's namespace at load");
    bpf.allow_netns(b_cookie).unwrap();
    let both = [listener_in(&a.netns), listener_in(&b.netns)];
    assert_eq!(reported(&mut bpf, &both), [true, true], "b's namespace added");
    bpf.disallow_netns(b_cookie).unwrap();
    let both = [listener_in(&a.netns), listener_in(&b.netns)];
    assert_eq!(reported(&mut bpf, &both), [true, false], "b's namespace removed");
    bpf.disallow_netns(b_cookie)
        .expect("removing a namespace not in the filter is not an error");
    lab.teardown().unwrap();
}

/// An empty namespace filter (`only_netns: Some(vec![])`: a collector that covers other
/// namespaces but not its own): nothing is reported, not even the loader's own namespace,
/// until `allow_netns` adds one.
#[test]
fn an_empty_namespace_filter_reports_nothing_until_a_namespace_joins() {
    if !require_root_or_skip("an_empty_namespace_filter_reports_nothing_until_a_namespace_joins") {
        return;
    }
    let _serial = serial();
    let mut lab = Lab::new("bpfemp").unwrap();
    let a = lab.add_host("a", Ipv4Addr::new(198, 18, 35, 1)).unwrap();
    let mut bpf = Bpf::load(&LoadOptions {
        witness: WitnessMode::Off,
        only_netns: Some(Vec::new()),
        ..Default::default()
    })
    .unwrap();
    let pair = [listener_cookie(), in_netns(&a.netns, listener_cookie)];
    assert_eq!(
        reported(&mut bpf, &pair),
        [false, false],
        "nothing before a namespace joins"
    );
    bpf.allow_netns(netns_cookie(&a.netns)).unwrap();
    let pair = [listener_cookie(), in_netns(&a.netns, listener_cookie)];
    assert_eq!(
        reported(&mut bpf, &pair),
        [false, true],
        "a's namespace added, not the loader's"
    );
    lab.teardown().unwrap();
}
