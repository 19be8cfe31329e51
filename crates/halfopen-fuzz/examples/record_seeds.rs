//! Writes the starting corpora under `fuzz/corpus/<target>/` (or the
//! directory given as the first argument): the built seeds of
//! `halfopen_fuzz::seeds`, and real inputs recorded from this machine:
//!
//! - in a throwaway network namespace (`unshare(CLONE_NEWNET)`; it dies
//!   with this process) with loopback sockets in several states (listeners
//!   with a queued connection, established pairs with data and keepalive,
//!   a dual-stack listener with an IPv4 peer, IPv6, TIME_WAIT): the raw
//!   sock_diag datagrams of per-family dumps, of one TCPDIAG_GETSOCK dump
//!   and of a listener dump, the kernel's error reply to a bad request, and
//!   that namespace's /proc/net/tcp, tcp6, netstat and snmp;
//! - this process's /proc/self/maps and /proc/self/cgroup;
//! - the ctnetlink datagrams that halfopen-sockets' `record_fixtures` test
//!   recorded from Linux 6.18 (read from its unit tests' hex constants).
//!
//! Needs root (for the namespace). Run it from the workspace:
//! `cargo run -p halfopen-fuzz --example record_seeds`.
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use halfopen_core::TcpState;
use halfopen_fuzz::seeds;
use halfopen_sockets::diag::{encode_all_families_request, encode_request, frames, Message, TCP_LISTEN};
use halfopen_sockets::Family;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    assert!(halfopen_fuzz::target(target).is_some(), "no target {target}");
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    println!("{target}/{name}: {} bytes", bytes.len());
    Ok(())
}

fn main() -> Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"));
    built(&root)?;
    conntrack_fixtures(&root)?;
    write(&root, "proc_maps", "self_maps", &std::fs::read("/proc/self/maps")?)?;
    write(&root, "cgroup", "self", &std::fs::read("/proc/self/cgroup")?)?;
    namespace(&root)?;
    Ok(())
}

/// The seeds built from domain values.
fn built(root: &Path) -> Result<()> {
    for (name, b) in seeds::sessions() {
        write(root, "collector_session", &name, &b)?;
    }
    for (name, b) in seeds::collector_messages() {
        write(root, "collector_message", &name, &b)?;
    }
    for (name, b) in seeds::reconciler_messages() {
        write(root, "reconciler_message", &name, &b)?;
    }
    for (name, b) in seeds::query_responses() {
        write(root, "query_response", &name, &b)?;
    }
    for (name, b) in seeds::page_tokens() {
        write(root, "page_token", &name, &b)?;
    }
    for (target, items) in seeds::texts() {
        for (name, text) in items {
            write(root, target, name, text.as_bytes())?;
        }
    }
    Ok(())
}

/// The recorded ctnetlink datagrams, from halfopen-sockets' unit tests.
fn conntrack_fixtures(root: &Path) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../halfopen-sockets/src/conntrack/parse/tests.rs");
    let text = std::fs::read_to_string(path)?;
    let mut n = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("const ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        let Some(hex) = value.strip_suffix("\";") else { continue };
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<std::result::Result<Vec<u8>, _>>()?;
        write(root, "conntrack", &name.to_lowercase(), &bytes)?;
        n += 1;
    }
    assert!(n >= 5, "found only {n} recorded datagrams");
    Ok(())
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sockets in a fresh namespace, then what the kernel says about them.
fn namespace(root: &Path) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    let up = Command::new("ip").args(["link", "set", "lo", "up"]).status()?;
    assert!(up.success(), "ip link set lo up");

    // A listener with backlog 4 and one connection it never accepts.
    let mysql = listener(sa("127.0.0.1:3306"), 4)?;
    let queued = TcpStream::connect(sa("127.0.0.1:3306"))?;
    // A dual-stack listener with an IPv4 client (mapped addresses) and an
    // IPv6 one, accepted, with data both ways and keepalive on one end.
    let pg = TcpListener::bind(sa("[::]:5432"))?;
    let mut c4 = TcpStream::connect(sa("127.0.0.1:5432"))?;
    let (mut s4, _) = pg.accept()?;
    nix::sys::socket::setsockopt(&c4, nix::sys::socket::sockopt::KeepAlive, &true)?;
    let mut c6 = TcpStream::connect(sa("[::1]:5432"))?;
    let (mut s6, _) = pg.accept()?;
    s4.write_all(b"R\0\0\0\x08\0\0\0\0")?;
    c4.read_exact(&mut [0u8; 9])?;
    c6.write_all(b"hello")?;
    s6.read_exact(&mut [0u8; 5])?;
    // TIME_WAIT on the client side: it closes first.
    let tw = TcpStream::connect(sa("[::1]:5432"))?;
    let (mut tws, _) = pg.accept()?;
    tw.shutdown(Shutdown::Both)?;
    drop(tw);
    let mut b = [0u8; 1];
    assert_eq!(tws.read(&mut b)?, 0);
    drop(tws);
    std::thread::sleep(Duration::from_millis(100));

    let mut sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_SOCK_DIAG)?;
    sock.bind_auto()?;
    sock.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let every = !(1 << TcpState::Close as u32);
    let mut req = Vec::new();
    encode_request(&mut req, 1, Family::V4, every, true);
    dump(&sock, &req, 1, root, "v4_info")?;
    encode_request(&mut req, 2, Family::V6, every, true);
    dump(&sock, &req, 2, root, "v6_info")?;
    encode_all_families_request(&mut req, 3, every, true, None);
    dump(&sock, &req, 3, root, "all_families_info")?;
    encode_request(&mut req, 4, Family::V4, 1 << TCP_LISTEN, false);
    dump(&sock, &req, 4, root, "v4_listeners")?;
    // A request for a family sock_diag does not know: the kernel's error.
    encode_request(&mut req, 5, Family::V4, every, false);
    req[16] = 99;
    dump(&sock, &req, 5, root, "error_reply")?;

    for (target, name, path) in [
        ("proc_net_tcp", "tcp", "/proc/thread-self/net/tcp"),
        ("proc_net_tcp", "tcp6", "/proc/thread-self/net/tcp6"),
        ("proc_net_counters", "netstat", "/proc/thread-self/net/netstat"),
        ("proc_net_counters", "snmp", "/proc/thread-self/net/snmp"),
    ] {
        write(root, target, name, &std::fs::read(path)?)?;
    }
    drop((mysql, queued, c4, s4, c6, s6));
    Ok(())
}

fn listener(addr: SocketAddr, backlog: i32) -> Result<TcpListener> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let SocketAddr::V4(v4) = addr else {
        unreachable!("IPv4 only")
    };
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4))?;
    listen(&fd, Backlog::new(backlog)?)?;
    Ok(TcpListener::from(fd))
}

/// Sends a dump request and writes every datagram of the answer, until
/// NLMSG_DONE or an error (at most 5 s, 16 datagrams).
fn dump(sock: &netlink_sys::Socket, req: &[u8], seq: u32, root: &Path, name: &str) -> Result<()> {
    sock.send(req, 0)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..16 {
        assert!(Instant::now() < deadline, "no end of the {name} dump");
        let n = sock.recv(&mut &mut buf[..], 0)?;
        let d = &buf[..n];
        write(root, "sock_diag", &format!("{name}_{i}"), d)?;
        let end = frames(d).any(|f| {
            f.is_ok_and(|f| f.header.seq == seq && matches!(f.message, Message::Done { .. } | Message::Error { .. }))
        });
        if end {
            return Ok(());
        }
    }
    Err(format!("{name}: more than 16 datagrams").into())
}
