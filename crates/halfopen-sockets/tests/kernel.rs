//! Tests against the real kernel: sockets on loopback in this process, read
//! back through netlink sock_diag, /proc/net/tcp{,6} and /proc/<pid>/fd.
//! Every test makes its own sockets on ephemeral ports and looks only at
//! those, so tests run in parallel; every wait is bounded.
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use halfopen_core::SourceKind;
use halfopen_core::{Listener, Side, SocketRecord, TcpState, Tuple};
use halfopen_sockets::diag::{self, DiagSocket, DumpEvent, Message};
use halfopen_sockets::procnet;
use halfopen_sockets::{Family, Owners, Scanner};
use nix::sys::socket::{bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType};
use nix::sys::socket::{SockaddrIn, SockaddrIn6};

const MASK: u32 = TcpState::MATCH_MASK;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// socket + bind + listen with an exact backlog (std uses 128).
fn listen_on(addr: SocketAddr, backlog: i32, v6only: Option<bool>) -> TcpListener {
    let fam = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    if let Some(v) = v6only {
        setsockopt(&fd, sockopt::Ipv6V6Only, &v).unwrap();
    }
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    }
    .unwrap();
    listen(&fd, Backlog::new(backlog).unwrap()).unwrap();
    TcpListener::from(fd)
}

/// A connected, accepted pair: (client, server).
fn pair(listener: &TcpListener, connect_to: SocketAddr) -> (TcpStream, TcpStream) {
    let c = TcpStream::connect(connect_to).unwrap();
    let (s, _) = listener.accept().unwrap();
    (c, s)
}

fn inode_of(fd: impl AsFd) -> u64 {
    nix::sys::stat::fstat(fd).unwrap().st_ino
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The tuple of a std stream as this host sees it.
fn tuple_of(s: &TcpStream) -> Tuple {
    Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap())
}

fn scan(sc: &mut Scanner, mask: u32, with_info: bool) -> Vec<SocketRecord> {
    let mut out = Vec::new();
    let st = sc.scan(mask, with_info, &mut out).unwrap();
    assert_eq!(st.sockets as usize, out.len());
    assert_eq!(st.info_parse_failures, 0, "kernel 6.x has the full tcp_info");
    assert_eq!(st.skipped, 0);
    out
}

fn listeners(sc: &mut Scanner) -> Vec<Listener> {
    let mut out = Vec::new();
    sc.listeners(&mut out).unwrap();
    out
}

/// Polls `f` every 10 ms for at most 5 s.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn find(recs: &[SocketRecord], t: Tuple) -> Option<SocketRecord> {
    recs.iter().copied().find(|r| r.tuple == t)
}

#[test]
fn open_uses_netlink_here() {
    let sc = Scanner::open().unwrap();
    assert_eq!(sc.source(), SourceKind::Netlink);
    assert_eq!(Scanner::procnet().source(), SourceKind::ProcNet);
}

#[test]
fn accept_queue_listener_and_inodes() {
    let l = listen_on(sa("127.0.0.1:0"), 5, None);
    let addr = l.local_addr().unwrap();
    let c1 = TcpStream::connect(addr).unwrap();
    let c2 = TcpStream::connect(addr).unwrap();
    let mut sc = Scanner::netlink().unwrap();

    let lst = wait_for("the accept queue to hold 2", || {
        listeners(&mut sc).into_iter().find(|x| x.addr == addr && x.queue == 2)
    });
    assert_eq!(lst.backlog, 5);
    assert_eq!(lst.inode, inode_of(&l));
    assert_eq!(lst.uid, euid());
    assert_eq!(lst.process, None);

    let recs = scan(&mut sc, MASK, false);
    let server: Vec<_> = recs.iter().filter(|r| r.tuple.local() == addr).collect();
    assert_eq!(server.len(), 2, "{server:?}");
    for s in &server {
        assert_eq!(s.state, TcpState::Established);
        assert_eq!(s.inode, 0, "still in the accept queue: no inode yet");
        assert_eq!(s.side, Side::Client, "the scanner never classifies");
    }
    let mut cookies = BTreeSet::new();
    for c in [&c1, &c2] {
        let t = tuple_of(c);
        let r = find(&recs, t).expect("client socket dumped");
        assert_eq!(r.state, TcpState::Established);
        assert_eq!(r.inode, inode_of(c));
        assert_ne!(r.cookie, 0);
        assert_eq!(r.uid, euid());
        assert!(!r.keepalive);
        assert_eq!(r.info, None, "not asked for");
        assert!(server.iter().any(|s| s.tuple == t.mirror()));
        cookies.insert(r.cookie);
    }
    for s in &server {
        cookies.insert(s.cookie);
    }
    assert_eq!(cookies.len(), 4, "every socket has its own cookie");
    // LISTEN is not in the match mask
    assert!(!recs.iter().any(|r| r.state == TcpState::Listen));
}

/// `ss -tlmn` for `addr`: the d<N> of its skmem (the listener's sk_drops).
fn ss_drops(addr: SocketAddr) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-Htlmn", "sport", "=", &format!(":{}", addr.port())])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let skmem = text.split("skmem:(").nth(1)?;
    let d = skmem
        .split(',')
        .find_map(|f| f.trim().trim_end_matches(')').strip_prefix('d'))?;
    d.trim().parse().ok()
}

/// A listener that accepts nothing and is flooded: the kernel counts the
/// drops on the listening socket (tcp_listendrop), and the dump reads them
/// as `ss -tlm` does.
#[test]
fn listener_drops_are_read_like_ss() {
    let l = listen_on(sa("127.0.0.1:0"), 1, None);
    let addr = l.local_addr().unwrap();
    let mut sc = Scanner::netlink().unwrap();
    let before = listeners(&mut sc).into_iter().find(|x| x.addr == addr).unwrap();
    assert_eq!(before.drops, Some(0), "a new listener has dropped nothing");
    // Connects that cannot complete: the queue holds 2 (backlog + 1), the rest's SYNs or ACKs are dropped.
    let mut socks = Vec::new();
    for _ in 0..20 {
        let s = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).unwrap();
        let _ = nix::sys::socket::connect(
            s.as_raw_fd(),
            &SockaddrIn::from(match addr {
                SocketAddr::V4(a) => a,
                _ => unreachable!(),
            }),
        );
        socks.push(s);
    }
    let lst = wait_for("the listener to count drops", || {
        listeners(&mut sc)
            .into_iter()
            .find(|x| x.addr == addr && x.drops.is_some_and(|d| d > 0))
    });
    // ss reads the same counter; retransmitted SYNs may add drops between the two reads.
    let ss = ss_drops(addr).expect("ss shows skmem d<N>");
    let after = listeners(&mut sc)
        .into_iter()
        .find(|x| x.addr == addr)
        .unwrap()
        .drops
        .unwrap();
    assert!(
        lst.drops.unwrap() <= ss && ss <= after,
        "ours {lst:?} <= ss {ss} <= ours again {after}"
    );
    // /proc/net/tcp has no such counter.
    let mut pn = Scanner::procnet();
    let mut v = Vec::new();
    pn.listeners(&mut v).unwrap();
    assert_eq!(v.iter().find(|x| x.addr == addr).unwrap().drops, None);
    drop(socks);
}

#[test]
fn tcp_info_counts_received_bytes() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (mut c, mut s) = pair(&l, l.local_addr().unwrap());
    s.write_all(&[7u8; 100]).unwrap();
    let mut got = [0u8; 100];
    c.read_exact(&mut got).unwrap();

    let mut sc = Scanner::netlink().unwrap();
    let recs = scan(&mut sc, MASK, true);
    let rc = find(&recs, tuple_of(&c)).unwrap();
    let info = rc.info.expect("tcp_info asked for");
    assert!(info.bytes_received >= 100, "{info:?}");
    let rs = find(&recs, tuple_of(&s)).unwrap();
    let sinfo = wait_for("the server's 100 bytes to be acked", || {
        let recs = scan(&mut sc, MASK, true);
        find(&recs, tuple_of(&s))?.info.filter(|i| i.bytes_acked >= 100)
    });
    assert!(sinfo.bytes_acked >= 100);
    assert_eq!(rs.inode, inode_of(&s), "accepted: has its inode now");
    // without info: none
    let recs = scan(&mut sc, MASK, false);
    assert_eq!(find(&recs, tuple_of(&c)).unwrap().info, None);
}

#[test]
fn dual_stack_listener_folds_mapped_addresses() {
    let l = listen_on(sa("[::]:0"), 16, Some(false));
    let port = l.local_addr().unwrap().port();
    let (c, s) = pair(&l, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    // std shows the server end as [::ffff:127.0.0.1]:port
    assert!(s.local_addr().unwrap().is_ipv6());

    let mut sc = Scanner::netlink().unwrap();
    let recs = scan(&mut sc, MASK, false);
    let rc = find(&recs, tuple_of(&c)).unwrap();
    let rs = find(&recs, rc.tuple.mirror()).expect("server end found by the mirrored tuple");
    assert_eq!(rs.tuple.local(), SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    assert_eq!(rs.tuple, tuple_of(&s), "mapped and plain IPv4 give the same key");
    assert_eq!(rs.tuple.mirror(), rc.tuple);
    assert_eq!(rs.inode, inode_of(&s));

    let lst = listeners(&mut sc);
    let me = lst.iter().find(|x| x.addr.port() == port).unwrap();
    assert_eq!(
        me.addr,
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        "[::] stays [::]"
    );
    assert_eq!(me.backlog, 16);
}

#[test]
fn keepalive_is_the_keepalive_timer() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, s) = pair(&l, l.local_addr().unwrap());
    setsockopt(&c, sockopt::KeepAlive, &true).unwrap();
    setsockopt(&c, sockopt::TcpKeepIdle, &3600).unwrap();

    let mut sc = Scanner::netlink().unwrap();
    let recs = scan(&mut sc, MASK, false);
    assert!(find(&recs, tuple_of(&c)).unwrap().keepalive);
    assert!(!find(&recs, tuple_of(&s)).unwrap().keepalive);

    // what the kernel reports: timer 2, expires ~ TCP_KEEPIDLE in ms
    let mut d = DiagSocket::open().unwrap();
    let (mut timer, mut expires) = (None, 0);
    let want = tuple_of(&c);
    d.dump(Family::V4, MASK, false, |ev| {
        if let DumpEvent::Socket(m) = ev {
            if m.tuple() == Some(want) {
                timer = Some(m.timer);
                expires = m.expires;
            }
        }
    })
    .unwrap();
    assert_eq!(timer, Some(diag::TIMER_KEEPALIVE));
    assert!((3_590_000..=3_600_000).contains(&expires), "expires {expires} ms");
    eprintln!("keepalive: idiag_timer {timer:?}, idiag_expires {expires} ms");

    // the /proc fallback sees it too (tr = 2)
    let recs = scan(&mut Scanner::procnet(), MASK, false);
    assert!(find(&recs, tuple_of(&c)).unwrap().keepalive);

    setsockopt(&c, sockopt::KeepAlive, &false).unwrap();
    let recs = scan(&mut sc, MASK, false);
    assert!(!find(&recs, tuple_of(&c)).unwrap().keepalive);
}

#[test]
fn time_wait_has_no_inode() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, mut s) = pair(&l, l.local_addr().unwrap());
    let t = tuple_of(&c);
    drop(c); // active close: the client end goes to TIME_WAIT
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "EOF");
    drop(s);

    let mut sc = Scanner::netlink().unwrap();
    let tw = wait_for("TIME_WAIT", || {
        find(&scan(&mut sc, MASK, true), t).filter(|r| r.state == TcpState::TimeWait)
    });
    assert_eq!(tw.inode, 0);
    assert_eq!(tw.info, None, "TIME_WAIT carries no tcp_info");
    assert!(!tw.keepalive);
    assert_ne!(tw.cookie, 0, "TIME_WAIT sockets keep a cookie");
    let without = MASK & !TcpState::TimeWait.mask_bit();
    assert_eq!(find(&scan(&mut sc, without, false), t), None);
    // /proc shows it too
    let p = find(&scan(&mut Scanner::procnet(), MASK, false), t).unwrap();
    assert_eq!((p.state, p.inode), (TcpState::TimeWait, 0));
}

#[test]
fn orphaned_fin_wait2_is_dumped_as_fin_wait2_with_inode_0() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, s) = pair(&l, l.local_addr().unwrap());
    let t = tuple_of(&c);
    drop(c); // the server never closes: the client end waits in FIN_WAIT2, orphaned
    let mut sc = Scanner::netlink().unwrap();
    let fw2 = TcpState::FinWait2.mask_bit();
    let r = wait_for("FIN_WAIT2", || {
        find(&scan(&mut sc, fw2, false), t).filter(|r| r.state == TcpState::FinWait2)
    });
    // with tcp_fin_timeout <= 60 s the kernel keeps it as a timewait
    // minisocket (substate FIN_WAIT2): no inode, no keepalive
    assert_eq!(r.inode, 0);
    assert!(!r.keepalive);
    // the state filter applies to the substate, not to TIME_WAIT
    assert_eq!(find(&scan(&mut sc, TcpState::TimeWait.mask_bit(), false), t), None);
    let peer = find(&scan(&mut sc, MASK, false), t.mirror()).unwrap();
    assert_eq!(peer.state, TcpState::CloseWait);
    assert_eq!(peer.inode, inode_of(&s));
}

#[test]
fn owners_resolve_revalidate_and_forget() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, s) = pair(&l, l.local_addr().unwrap());
    let ino = inode_of(&c);
    let mut owners = Owners::new();

    let (got, st) = owners.resolve(&[ino, ino, 0]);
    let p = got.get(&ino).expect("our own socket resolves");
    assert_eq!(p.pid, std::process::id());
    assert_eq!(p.uid, nix::unistd::getuid().as_raw());
    let exe = std::env::current_exe().unwrap();
    let exe = exe.file_name().unwrap().to_string_lossy();
    assert!(
        exe.starts_with(&p.comm) && !p.comm.is_empty(),
        "comm {:?} vs {exe}",
        p.comm
    );
    assert!(p.cmdline.contains(&*exe), "cmdline {:?}", p.cmdline);
    assert!(st.pids_walked > 0 && st.fds_walked > 0, "{st:?}");
    assert_eq!(st.revalidated, 0);
    assert_eq!(got.len(), 1, "inode 0 never resolves");

    let (got, st) = owners.resolve(&[ino]);
    assert_eq!(got.get(&ino).map(|p| p.pid), Some(std::process::id()));
    assert_eq!(st.revalidated, 1, "{st:?}");
    assert_eq!(st.pids_walked, 0, "{st:?}");
    assert_eq!(st.fds_walked, 0, "{st:?}");

    drop(c);
    let (got, st) = owners.resolve(&[ino]);
    assert!(!got.contains_key(&ino), "stale owner returned: {got:?}");
    assert_eq!(st.stale, 1, "{st:?}");
    assert!(st.pids_walked > 0, "looked for it in a walk: {st:?}");

    let (got, st) = owners.resolve(&[0]);
    assert!(got.is_empty());
    assert_eq!(st.pids_walked, 0);
    drop(s);
}

#[test]
fn an_inode_nobody_holds_is_not_walked_for_every_call() {
    // what a listener whose owner is in another pid namespace looks like
    let nobody = u64::MAX - 7;
    let mut owners = Owners::new();
    let (got, st) = owners.resolve(&[nobody]);
    assert!(got.is_empty());
    assert!(st.pids_walked > 0, "looked for once: {st:?}");
    for _ in 1..halfopen_sockets::owners::ABSENT_RETRY_CALLS {
        let (got, st) = owners.resolve(&[nobody]);
        assert!(got.is_empty());
        assert_eq!(
            (st.pids_walked, st.absent_skipped),
            (0, 1),
            "not walked for again: {st:?}"
        );
    }
    let (_, st) = owners.resolve(&[nobody]);
    assert!(st.pids_walked > 0, "looked for again after the retry period: {st:?}");
    // a socket that exists is still found while another inode is absent
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (got, _) = owners.resolve(&[nobody, inode_of(&l)]);
    assert_eq!(got.get(&inode_of(&l)).map(|p| p.pid), Some(std::process::id()));
}

/// A cache shared by the workers of n namespaces counts their calls as
/// one interval: a listener resolved once per round of 40 callers keeps its
/// cache entry (no walk), and an inode nobody holds is looked for again
/// only after 32 rounds, not 32 calls.
#[test]
fn a_cache_shared_by_many_callers_keeps_its_entries_between_their_rounds() {
    let callers = 40usize;
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let ino = inode_of(&l);
    let nobody = u64::MAX - 9;
    let mut owners = Owners::new();
    owners.set_sharers(callers);
    let (got, _) = owners.resolve(&[ino]);
    assert_eq!(got.get(&ino).map(|p| p.pid), Some(std::process::id()));
    let (_, st) = owners.resolve(&[nobody]);
    assert!(st.pids_walked > 0, "looked for once: {st:?}");
    // 40 rounds: our listener once per round, the other callers' inodes
    // (here: inode 0, never walked for) the rest of the round.
    for round in 0..40u64 {
        let (got, st) = owners.resolve(&[ino]);
        assert_eq!(got.get(&ino).map(|p| p.pid), Some(std::process::id()), "round {round}");
        assert_eq!((st.revalidated, st.pids_walked), (1, 0), "round {round}: {st:?}");
        if round < 30 {
            let (_, st) = owners.resolve(&[nobody]);
            assert_eq!((st.pids_walked, st.absent_skipped), (0, 1), "round {round}: {st:?}");
        }
        for _ in 0..callers - 2 {
            owners.resolve(&[0]);
        }
    }
    // Unshared, the same pattern drops the entry: a walk to find it again.
    let mut alone = Owners::new();
    alone.resolve(&[ino]);
    for _ in 0..2 * callers {
        alone.resolve(&[0]);
    }
    let (_, st) = alone.resolve(&[ino]);
    assert!(st.pids_walked > 0, "evicted after 32 calls when not shared: {st:?}");
}

#[test]
fn owners_resolve_all_sees_our_sockets_and_fills_the_cache() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, s) = pair(&l, l.local_addr().unwrap());
    let mut owners = Owners::new();
    let (all, st) = owners.resolve_all();
    for ino in [inode_of(&l), inode_of(&c), inode_of(&s)] {
        assert_eq!(all.get(&ino).map(|p| p.pid), Some(std::process::id()), "{ino}");
    }
    assert!(owners.cached() >= all.len());
    assert!(st.fds_walked >= 3);
    let (_, st) = owners.resolve(&[inode_of(&c), inode_of(&s)]);
    assert_eq!((st.revalidated, st.pids_walked), (2, 0), "{st:?}");
    // the shared form: the same owners, one process value for all our sockets
    let (shared, _) = owners.resolve_all_shared();
    let ours: Vec<_> = [inode_of(&l), inode_of(&c), inode_of(&s)]
        .iter()
        .map(|i| shared.get(i).cloned().expect("found"))
        .collect();
    assert_eq!(*ours[0], all[&inode_of(&l)]);
    assert!(ours.iter().all(|p| std::sync::Arc::ptr_eq(p, &ours[0])));
}

/// The fields both sources have, for comparing them.
fn comparable(r: &SocketRecord) -> (Tuple, u8, u64, u32, bool) {
    (r.tuple, r.state as u8, r.inode, r.uid, r.keepalive)
}

#[test]
fn procnet_agrees_with_netlink() {
    let l4 = listen_on(sa("127.0.0.1:0"), 7, None);
    let l6 = listen_on(sa("[::1]:0"), 9, None);
    let (c4, s4) = pair(&l4, l4.local_addr().unwrap());
    let (c6, s6) = pair(&l6, l6.local_addr().unwrap());
    let queued = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
    let mine: BTreeSet<Tuple> = [&c4, &s4, &c6, &s6, &queued]
        .into_iter()
        .map(tuple_of)
        .chain([tuple_of(&queued).mirror()])
        .collect();

    let mut nl = Scanner::netlink().unwrap();
    let mut pn = Scanner::procnet();
    let pick = |recs: Vec<SocketRecord>| -> BTreeSet<_> {
        recs.iter()
            .filter(|r| mine.contains(&r.tuple))
            .map(comparable)
            .collect()
    };
    let a = wait_for("both sources to agree", || {
        let a = pick(scan(&mut nl, MASK, false));
        let b = pick(scan(&mut pn, MASK, false));
        (a == b && a.len() == mine.len()).then_some(a)
    });
    assert!(a.iter().all(|x| x.1 == TcpState::Established as u8));
    assert!(scan(&mut pn, MASK, false)
        .iter()
        .all(|r| r.cookie == 0 && r.info.is_none()));

    let ports = [l4.local_addr().unwrap(), l6.local_addr().unwrap()];
    let pick_l = |v: Vec<Listener>| -> Vec<(SocketAddr, u32, u64)> {
        let mut v: Vec<_> = v
            .into_iter()
            .filter(|x| ports.contains(&x.addr))
            .map(|x| (x.addr, x.queue, x.inode))
            .collect();
        v.sort();
        v
    };
    assert_eq!(pick_l(listeners(&mut nl)), pick_l(listeners(&mut pn)));
    let from_proc = listeners(&mut pn);
    let p4 = from_proc.iter().find(|x| x.addr == ports[0]).unwrap();
    assert_eq!((p4.queue, p4.backlog), (1, 0), "one queued; /proc has no backlog");
}

#[test]
fn procnet_parser_agrees_with_procfs_crate() {
    use procfs::FromBufReadSI;
    let l = listen_on(sa("[::]:0"), 16, Some(false));
    let port = l.local_addr().unwrap().port();
    let _a = pair(&l, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    let _b = pair(&l, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
    for (path, family) in [("/proc/net/tcp", Family::V4), ("/proc/net/tcp6", Family::V6)] {
        let text = std::fs::read_to_string(path).unwrap();
        let theirs = procfs::net::TcpNetEntries::from_buf_read(text.as_bytes(), procfs::current_system_info())
            .unwrap()
            .0;
        let ours: Vec<_> = text
            .lines()
            .filter_map(|line| procnet::parse_line(line, family).unwrap())
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{path}");
        assert!(!ours.is_empty() || family == Family::V4);
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(o.tuple, Tuple::new(t.local_address, t.remote_address), "{path}");
            assert_eq!(o.state, t.state.to_u8());
            assert_eq!((o.tx_queue, o.rx_queue), (t.tx_queue, t.rx_queue));
            assert_eq!((o.uid, o.inode), (t.uid, t.inode));
        }
    }
}

/// The fields both parsers give, for comparing them.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    family: u8,
    state: u8,
    timer: u8,
    expires: Option<u32>,
    sport: u16,
    dport: u16,
    src: IpAddr,
    dst: IpAddr,
    cookie: u64,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
    info: Option<(u64, u64, u32, u32)>,
}

fn ip(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(b).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(b).unwrap()),
    }
}

#[test]
fn parser_agrees_with_netlink_packet_sock_diag_on_a_real_dump() {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_sock_diag::inet::{nlas::Nla, Timer};
    use netlink_packet_sock_diag::SockDiagMessage;

    // something with data, something queued, a listener, a TIME_WAIT
    let l = listen_on(sa("[::]:0"), 16, Some(false));
    let port = l.local_addr().unwrap().port();
    let (mut c, mut s) = pair(&l, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    s.write_all(b"hello").unwrap();
    c.read_exact(&mut [0u8; 5]).unwrap();
    let (c2, mut s2) = pair(&l, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    let tw = tuple_of(&c2);
    drop(c2);
    assert_eq!(s2.read(&mut [0u8; 4]).unwrap(), 0);
    drop(s2);
    let mut sc = Scanner::netlink().unwrap();
    wait_for("TIME_WAIT", || {
        find(&scan(&mut sc, MASK, false), tw).filter(|r| r.state == TcpState::TimeWait)
    });
    // queued last, so that the accept above does not take it
    let _queued = TcpStream::connect(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)).unwrap();

    let mut sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_SOCK_DIAG).unwrap();
    sock.bind_auto().unwrap();
    sock.connect(&netlink_sys::SocketAddr::new(0, 0)).unwrap();
    let mut total = 0;
    let mut mine = Vec::new();
    for (seq, family) in [(1u32, Family::V4), (2, Family::V6)] {
        let mut req = Vec::new();
        diag::encode_request(&mut req, seq, family, u32::MAX, true);
        sock.send(&req, 0).unwrap();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 64 * 1024];
        let mut done = false;
        for _ in 0..100_000 {
            if done {
                break;
            }
            let n = sock.recv(&mut &mut buf[..], 0).unwrap();
            let dgram = &buf[..n];
            for f in diag::frames(dgram) {
                match f.unwrap().message {
                    Message::Socket(m) => ours.push(Seen {
                        family: m.family,
                        state: m.state,
                        timer: m.timer,
                        expires: [1, 2, 4].contains(&m.timer).then_some(m.expires),
                        sport: m.sport,
                        dport: m.dport,
                        src: ip(m.src_ip().unwrap()),
                        dst: ip(m.dst_ip().unwrap()),
                        cookie: m.cookie,
                        rqueue: m.rqueue,
                        wqueue: m.wqueue,
                        uid: m.uid,
                        inode: m.inode,
                        info: match m.tcp_info().unwrap() {
                            diag::InfoAttr::Present(i) => {
                                Some((i.bytes_received, i.bytes_acked, i.last_data_recv_ms, i.rtt_us))
                            }
                            diag::InfoAttr::Absent => None,
                            diag::InfoAttr::Short { len } => panic!("short tcp_info {len}"),
                        },
                    }),
                    Message::Done { code } => {
                        assert_eq!(code, 0);
                        done = true;
                    }
                    other => panic!("{other:?}"),
                }
            }
            // the crate's parser over the same bytes
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&dgram[off..]).unwrap();
                off += (msg.header.length as usize + 3) & !3;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let h = &r.header;
                        let timer = match h.timer {
                            None => 0,
                            Some(Timer::Retransmit(..)) => 1,
                            Some(Timer::KeepAlive(_)) => 2,
                            Some(Timer::TimeWait) => 3,
                            Some(Timer::Probe(_)) => 4,
                        };
                        let expires = match h.timer {
                            Some(Timer::Retransmit(d, _)) | Some(Timer::KeepAlive(d)) | Some(Timer::Probe(d)) => {
                                Some(d.as_millis() as u32)
                            }
                            _ => None,
                        };
                        let ck = h.socket_id.cookie;
                        let info = r.nlas.iter().find_map(|n| match n {
                            Nla::TcpInfo(i) => Some((i.bytes_received, i.bytes_acked, i.last_data_recv, i.rtt)),
                            _ => None,
                        });
                        theirs.push(Seen {
                            family: h.family,
                            state: h.state,
                            timer,
                            expires,
                            sport: h.socket_id.source_port,
                            dport: h.socket_id.destination_port,
                            src: h.socket_id.source_address,
                            dst: h.socket_id.destination_address,
                            cookie: u64::from(u32::from_ne_bytes([ck[0], ck[1], ck[2], ck[3]]))
                                | u64::from(u32::from_ne_bytes([ck[4], ck[5], ck[6], ck[7]])) << 32,
                            rqueue: h.recv_queue,
                            wqueue: h.send_queue,
                            uid: h.uid,
                            inode: h.inode,
                            info,
                        });
                    }
                    NetlinkPayload::Done(_) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        assert!(done, "dump ended");
        assert_eq!(ours, theirs, "{family:?}");
        total += ours.len();
        mine.extend(ours.into_iter().filter(|x| x.sport == port || x.dport == port));
    }
    // ours are there: the listener (with tcp_info, all zero), the established
    // pair with its bytes, the queued pair, the TIME_WAIT (no tcp_info)
    assert!(mine.len() >= 6, "{mine:?}");
    assert!(mine.iter().any(|x| x.state == 10));
    assert!(mine.iter().any(|x| x.state == 1 && x.info.is_some_and(|i| i.0 >= 5)));
    assert!(mine.iter().any(|x| x.state == 1 && x.inode == 0));
    assert!(mine.iter().any(|x| x.state == 6 && x.inode == 0 && x.info.is_none()));
    assert!(total >= 5);
}

#[test]
fn small_buffer_grows_on_truncation() {
    // enough sockets that the first datagram (about one page) exceeds 512 bytes
    let l = listen_on(sa("127.0.0.1:0"), 64, None);
    let addr = l.local_addr().unwrap();
    let conns: Vec<_> = (0..20).map(|_| pair(&l, addr)).collect();
    let mut d = DiagSocket::with_buffer_len(512).unwrap();
    let mut seen = Vec::new();
    let mut restarts = 0;
    d.dump(Family::V4, MASK, true, |ev| match ev {
        DumpEvent::Socket(m) => seen.push(m.tuple().unwrap()),
        DumpEvent::Restart => {
            restarts += 1;
            seen.clear();
        }
    })
    .unwrap();
    assert_eq!(restarts, 1);
    assert!(d.buffer_len() >= 32 * 1024, "grew to {}", d.buffer_len());
    for (c, s) in &conns {
        assert!(seen.contains(&tuple_of(c)) && seen.contains(&tuple_of(s)));
    }
    // and the socket is usable afterwards
    let mut n = 0;
    d.dump(Family::V4, MASK, false, |_| n += 1).unwrap();
    assert!(n >= 40);
}

/// (family, tuple, cookie) of every socket one dump returns.
fn dumped(
    d: &mut DiagSocket,
    target: Option<Family>,
    info: bool,
    bytecode: Option<&[u8]>,
) -> BTreeSet<(u8, Tuple, u64, bool)> {
    let mut seen = BTreeSet::new();
    let mut on = |ev: DumpEvent<'_, '_>| match ev {
        DumpEvent::Socket(m) => {
            let has_info = matches!(m.tcp_info(), Ok(diag::InfoAttr::Present(_)));
            seen.insert((m.family, m.tuple().unwrap(), m.cookie, has_info));
        }
        DumpEvent::Restart => seen.clear(),
    };
    match target {
        None => d.dump_all_families(MASK, info, bytecode, &mut on).unwrap(),
        Some(f) => d.dump_filtered(f, MASK, info, bytecode, &mut on).unwrap(),
    }
    seen
}

#[test]
fn one_dump_of_both_families_equals_one_per_family() {
    let l4 = listen_on(sa("127.0.0.1:0"), 16, None);
    let l6 = listen_on(sa("[::1]:0"), 16, None);
    let ld = listen_on(sa("[::]:0"), 16, Some(false));
    let conns = [
        pair(&l4, l4.local_addr().unwrap()),
        pair(&l6, l6.local_addr().unwrap()),
        pair(
            &ld,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ld.local_addr().unwrap().port()),
        ),
    ];
    let ours: BTreeSet<Tuple> = conns.iter().flat_map(|(c, s)| [tuple_of(c), tuple_of(s)]).collect();
    let ports: Vec<u16> = [&l4, &l6, &ld].iter().map(|l| l.local_addr().unwrap().port()).collect();
    let mut bc = Vec::new();
    assert!(halfopen_sockets::filter::encode_port_filter(&ports, &mut bc));
    let mut d = DiagSocket::open().unwrap();
    for (info, filter) in [(false, None), (true, None), (true, Some(&bc[..]))] {
        let keep = |s: BTreeSet<(u8, Tuple, u64, bool)>| -> BTreeSet<_> {
            s.into_iter().filter(|(_, t, _, _)| ours.contains(t)).collect()
        };
        let all = keep(dumped(&mut d, None, info, filter));
        let mut per = keep(dumped(&mut d, Some(Family::V4), info, filter));
        per.extend(keep(dumped(&mut d, Some(Family::V6), info, filter)));
        assert_eq!(all.len(), 6, "3 connections, both ends: {all:?}");
        assert_eq!(all, per, "info {info}, filter {}", filter.is_some());
        let fams: BTreeSet<u8> = all.iter().map(|x| x.0).collect();
        assert_eq!(fams.len(), 2, "both families in one dump");
        assert!(all.iter().all(|x| x.3 == info));
    }
}

#[test]
fn scan_appends_to_out() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, _s) = pair(&l, l.local_addr().unwrap());
    let mut sc = Scanner::netlink().unwrap();
    let mut out = Vec::new();
    sc.scan(MASK, false, &mut out).unwrap();
    let first = out.len();
    let st = sc.scan(MASK, false, &mut out).unwrap();
    assert!(out.len() >= first + 2);
    assert_eq!(out.len() - first, st.sockets as usize);
    assert!(find(&out[first..], tuple_of(&c)).is_some());
}

#[test]
fn scanners_stay_in_the_namespace_of_the_thread_that_opened_them() {
    let l = listen_on(sa("127.0.0.1:0"), 16, None);
    let (c, _s) = pair(&l, l.local_addr().unwrap());
    let t = tuple_of(&c);
    // Open both kinds of scanner on a thread that moved to a new, empty
    // network namespace, then use them from this thread.
    let opened = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok::<_, nix::Error>((Scanner::netlink().unwrap(), Scanner::procnet()))
    })
    .join()
    .unwrap();
    let (mut nl, mut pn) = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: unshare(CLONE_NEWNET) failed ({e}); needs CAP_SYS_ADMIN");
            return;
        }
    };
    for sc in [&mut nl, &mut pn] {
        let mut out = Vec::new();
        sc.scan(u32::MAX, false, &mut out).unwrap();
        assert!(out.is_empty(), "{}: {out:?}", sc.source());
        assert!(listeners(sc).is_empty(), "{}", sc.source());
    }
    // while a scanner opened here sees this namespace
    assert!(find(&scan(&mut Scanner::netlink().unwrap(), MASK, false), t).is_some());
    assert!(find(&scan(&mut Scanner::procnet(), MASK, false), t).is_some());
}

#[test]
fn scanner_and_owners_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Scanner>();
    send::<Owners>();
}

#[test]
fn local_addresses_include_loopback() {
    let a = halfopen_sockets::local_addresses().unwrap();
    assert!(a.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{a:?}");
}

/// Timings with a few thousand sockets held by this process. Run with
/// `cargo test -p halfopen-sockets --release --test kernel -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_with_thousands_of_sockets() {
    const CONNS: usize = 2500;
    let l = listen_on(sa("127.0.0.1:0"), 4096, None);
    let addr = l.local_addr().unwrap();
    let conns: Vec<_> = (0..CONNS).map(|_| pair(&l, addr)).collect();
    let time = |what: &str, f: &mut dyn FnMut() -> String| {
        let mut best = Duration::MAX;
        let mut note = String::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            note = f();
            best = best.min(t0.elapsed());
        }
        eprintln!("{what:<48} best of 5: {best:>10.2?}  {note}");
    };
    let mut sc = Scanner::netlink().unwrap();
    let mut out = Vec::with_capacity(3 * CONNS);
    time("netlink scan (MATCH_MASK)", &mut || {
        out.clear();
        let st = sc.scan(MASK, false, &mut out).unwrap();
        format!("{} sockets", st.sockets)
    });
    let mut d = DiagSocket::open().unwrap();
    time("DiagSocket::dump, both families, no-op callback", &mut || {
        let mut n = 0;
        for f in Family::ALL {
            d.dump(f, MASK, false, |_| n += 1).unwrap();
        }
        format!("{n} sockets")
    });
    time("netlink scan with tcp_info", &mut || {
        out.clear();
        let st = sc.scan(MASK, true, &mut out).unwrap();
        format!("{} sockets", st.sockets)
    });
    // a peer to compare with (includes starting the process)
    if std::process::Command::new("ss").arg("-V").output().is_ok() {
        time("`ss -tanH` (peer, incl. process start)", &mut || {
            let o = std::process::Command::new("ss").arg("-tanH").output().unwrap();
            format!("{} lines", o.stdout.split(|&b| b == b'\n').count() - 1)
        });
    }
    // scan_ports: 10 small listeners with one connection each, beside the
    // 2,500 connections of the big one
    let small: Vec<_> = (0..10)
        .map(|_| {
            let l = listen_on(sa("127.0.0.1:0"), 16, None);
            let p = pair(&l, l.local_addr().unwrap());
            (l, p)
        })
        .collect();
    let ten: Vec<u16> = small.iter().map(|(l, _)| l.local_addr().unwrap().port()).collect();
    time("scan_ports(10 ports, 20 sockets match)", &mut || {
        out.clear();
        let st = sc.scan_ports(MASK, false, &ten, &mut out).unwrap();
        format!("{} sockets", st.sockets)
    });
    time("scan_ports(10 ports, 20 match) with tcp_info", &mut || {
        out.clear();
        let st = sc.scan_ports(MASK, true, &ten, &mut out).unwrap();
        format!("{} sockets", st.sockets)
    });
    let mut ten_big = ten.clone();
    ten_big[9] = addr.port();
    time("scan_ports(10 ports incl. the big listener's)", &mut || {
        out.clear();
        let st = sc.scan_ports(MASK, false, &ten_big, &mut out).unwrap();
        format!("{} sockets", st.sockets)
    });
    let mut pn = Scanner::procnet();
    time("/proc/net/tcp{,6} scan", &mut || {
        out.clear();
        let st = pn.scan(MASK, false, &mut out).unwrap();
        format!("{} sockets", st.sockets)
    });
    time("Owners::resolve_all (fresh cache)", &mut || {
        let (m, st) = Owners::new().resolve_all();
        format!("{} inodes, {} pids, {} fds", m.len(), st.pids_walked, st.fds_walked)
    });
    let inodes: Vec<u64> = conns.iter().map(|(c, _)| inode_of(c)).collect();
    time("Owners::resolve(2500 client inodes) cold", &mut || {
        let (m, st) = Owners::new().resolve(&inodes);
        format!("{} found, {} pids, {} fds", m.len(), st.pids_walked, st.fds_walked)
    });
    let mut warm = Owners::new();
    warm.resolve(&inodes);
    time("Owners::resolve(2500 client inodes) cached", &mut || {
        let (m, st) = warm.resolve(&inodes);
        format!("{} found, {} revalidated", m.len(), st.revalidated)
    });
    time("Owners::resolve(1 inode) cold", &mut || {
        let (m, st) = Owners::new().resolve(&inodes[CONNS / 2..CONNS / 2 + 1]);
        format!("{} found, {} pids, {} fds", m.len(), st.pids_walked, st.fds_walked)
    });
}

/// A process whose command line carries secrets is named without them
/// (redaction is on by default): `--password=V`, `--token V`, URL
/// credentials.
#[test]
fn owners_cmdlines_are_redacted() {
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print('up', flush=True); time.sleep(30)",
            "--password=S3cretPw",
            "--token",
            "T0kenValue",
            "mysql://app:UrlPw@db/x",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "up");
    let (all, _) = Owners::new().resolve_all();
    let _ = child.kill();
    let _ = child.wait();
    let p = all
        .values()
        .find(|p| p.pid == child.id())
        .expect("the child's socket resolves");
    for secret in ["S3cretPw", "T0kenValue", "UrlPw"] {
        assert!(!p.cmdline.contains(secret), "{secret} in {:?}", p.cmdline);
    }
    assert!(
        p.cmdline.ends_with("--password=*** --token *** mysql://app:***@db/x"),
        "{:?}",
        p.cmdline
    );
}
