//! Helpers of the kernel tests: running code inside a lab namespace (a thread that entered it
//! with setns), a namespace's cookie, sock_diag dumps there, socket cookies, and the lab
//! processes (greet-server, burst, churn) run by re-executing this test binary.

#![allow(dead_code)] // each test file uses its own subset

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use halfopen_core::SocketRecord;
use halfopen_lab::{Lab, LabChild, LabCommand};
use halfopen_sockets::Scanner;

/// Kernel tests run one at a time: they measure timing-sensitive kernel behaviour on a
/// 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on a thread that entered the network namespace `ns` (/run/netns/NS). setns
/// changes only the calling thread, so the test's other threads stay where they are.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(format!("in-{}", &ns[ns.len().saturating_sub(10)..]))
            .spawn_scoped(s, move || {
                enter(&path);
                f()
            })
            .expect("spawning a thread")
            .join()
            .expect("the thread inside the namespace panicked")
    })
}

/// Moves the calling thread into the namespace at `path`.
pub fn enter(path: &std::path::Path) {
    let f = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
}

fn getsockopt_u64(fd: i32, opt: i32) -> u64 {
    let mut v: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: valid out-pointers for the call.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) };
    assert_eq!(r, 0, "getsockopt({opt}): {}", std::io::Error::last_os_error());
    v
}

/// `SO_NETNS_COOKIE` (71, include/uapi/asm-generic/socket.h): the namespace's cookie.
pub const SO_NETNS_COOKIE: i32 = 71;
/// `SO_COOKIE` (57): the socket's cookie, as sock_diag and bpf_get_socket_cookie give it.
pub const SO_COOKIE: i32 = 57;

/// The socket cookie of an open socket.
pub fn socket_cookie(fd: &impl AsRawFd) -> u64 {
    getsockopt_u64(fd.as_raw_fd(), SO_COOKIE)
}

/// The netns cookie of a lab host's namespace.
pub fn netns_cookie(ns: &str) -> u64 {
    in_netns(ns, || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket in the namespace");
        getsockopt_u64(s.as_raw_fd(), SO_NETNS_COOKIE)
    })
}

/// Every socket of the namespace whose state bit is in `mask`, by sock_diag (netlink).
pub fn dump(ns: &str, mask: u32) -> Vec<SocketRecord> {
    in_netns(ns, || {
        let mut scanner = Scanner::netlink().expect("sock_diag in the namespace");
        let mut out = Vec::new();
        scanner.scan(mask, false, &mut out).expect("sock_diag dump");
        out
    })
}

/// Starts a lab process (`greet-server`, `burst`, `churn` with their flags) on `host`: this
/// test binary again, running only its ignored `lab_process` test, which parses the arguments
/// after `--` as a [`LabCommand`].
pub fn spawn_lab_process(lab: &mut Lab, host: &str, args: &[&str]) -> LabChild {
    let exe = std::env::current_exe().expect("the test binary");
    let mut all = vec![
        "lab_process",
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--quiet",
        "--",
    ];
    all.extend_from_slice(args);
    lab.spawn(host, &exe, &all).expect("spawning a lab process")
}

#[derive(clap::Parser)]
struct LabProcessCli {
    #[command(subcommand)]
    cmd: LabCommand,
}

/// The body of the `lab_process` entry test: runs the lab process named after `--`.
pub fn run_lab_process() {
    use clap::Parser;
    let args: Vec<String> = std::env::args().collect();
    let Some(pos) = args.iter().position(|a| a == "--") else {
        panic!("lab_process is started by the kernel tests with the lab command after `--`");
    };
    let cli = LabProcessCli::try_parse_from(std::iter::once("lab".to_string()).chain(args[pos + 1..].iter().cloned()))
        .unwrap_or_else(|e| panic!("lab process arguments: {e}"));
    if let Err(e) = halfopen_lab::run(cli.cmd) {
        panic!("lab process failed: {e}");
    }
}

/// The thread id of the caller (gettid).
pub fn gettid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() as u32 }
}
