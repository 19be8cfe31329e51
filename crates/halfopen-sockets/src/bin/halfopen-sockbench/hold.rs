//! `hold`: N ESTABLISHED loopback connections, both ends held, for
//! measuring scans at a given table size.
//!
//! One listener on 127.0.0.1:PORT (backlog 65535, capped by
//! net.core.somaxconn). A process may hold about 20,000 fds here, so the
//! ends are spread over forked helpers holding at most `--per-proc` fds each:
//! "server" helpers share the listener and each accept their quota, "client"
//! helpers each connect their quota from their own source address
//! 127.1.x.y (IP_BIND_ADDRESS_NO_PORT, so each address has the whole
//! ephemeral port range). Helpers report on a pipe, then sleep holding their
//! fds; they die with the parent (PR_SET_PDEATHSIG) and the parent kills
//! them on SIGTERM/SIGINT/SIGHUP. Every wait is bounded: accept and connect
//! time out, and the whole setup has a deadline. It refuses to run in a
//! namespace that has any interface but `lo` (the host's, say).
use std::io::Write;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::Args;

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn set_int_opt(fd: RawFd, level: i32, name: i32, v: i32) -> Result<(), String> {
    // SAFETY: valid fd, pointer and length of an int.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&v as *const i32).cast(), size_of::<i32>() as u32) };
    if rc != 0 {
        return Err(os_err("setsockopt"));
    }
    Ok(())
}

fn set_timeout(fd: RawFd, name: i32, d: Duration) -> Result<(), String> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: valid fd, pointer and length of a timeval.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(os_err("setsockopt(timeout)"));
    }
    Ok(())
}

fn tcp_socket() -> Result<OwnedFd, String> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err("socket"));
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn listen_on(port: u16) -> Result<OwnedFd, String> {
    let fd = tcp_socket()?;
    set_int_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    let sa = sockaddr(Ipv4Addr::LOCALHOST, port);
    // SAFETY: valid fd and sockaddr_in.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc != 0 {
        return Err(os_err(&format!("bind 127.0.0.1:{port}")));
    }
    // SAFETY: valid fd.
    if unsafe { libc::listen(fd.as_raw_fd(), 65535) } != 0 {
        return Err(os_err("listen"));
    }
    // accept() waits at most this long for the next connection
    set_timeout(fd.as_raw_fd(), libc::SO_RCVTIMEO, Duration::from_secs(60))?;
    Ok(fd)
}

fn connect_from(src: Ipv4Addr, port: u16) -> Result<OwnedFd, std::io::Error> {
    let fd = tcp_socket().map_err(std::io::Error::other)?;
    let raw = fd.as_raw_fd();
    set_int_opt(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1).map_err(std::io::Error::other)?;
    set_timeout(raw, libc::SO_SNDTIMEO, Duration::from_secs(10)).map_err(std::io::Error::other)?;
    let from = sockaddr(src, 0);
    let to = sockaddr(Ipv4Addr::LOCALHOST, port);
    let len = size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: valid fd and sockaddr_in.
    if unsafe { libc::bind(raw, (&from as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    loop {
        // SAFETY: valid fd and sockaddr_in.
        if unsafe { libc::connect(raw, (&to as *const libc::sockaddr_in).cast(), len) } == 0 {
            return Ok(fd);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Accepts `quota` connections on the shared listener.
fn serve(listener: RawFd, quota: usize) -> Result<Vec<OwnedFd>, String> {
    let mut held = Vec::with_capacity(quota);
    while held.len() < quota {
        // SAFETY: valid listening fd; no peer address wanted.
        let fd = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: a new fd that nothing else owns.
            held.push(unsafe { OwnedFd::from_raw_fd(fd) });
            continue;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::ECONNABORTED) => {}
            Some(libc::EAGAIN) => return Err(format!("accept: nothing for 60 s after {} connections", held.len())),
            _ => return Err(format!("accept after {}: {e}", held.len())),
        }
    }
    Ok(held)
}

/// Connects `quota` times from `src`; a failed connect is retried 5 times.
fn connect_many(src: Ipv4Addr, port: u16, quota: usize) -> Result<Vec<OwnedFd>, String> {
    let mut held = Vec::with_capacity(quota);
    while held.len() < quota {
        let mut tries = 0;
        loop {
            match connect_from(src, port) {
                Ok(fd) => {
                    held.push(fd);
                    break;
                }
                Err(e) if tries < 5 => {
                    tries += 1;
                    if tries == 1 {
                        eprintln!("hold: connect from {src} after {}: {e}; retrying", held.len());
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(format!("connect from {src} after {}: {e}", held.len())),
            }
        }
    }
    Ok(held)
}

fn nofile_hard() -> Result<u64, String> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(os_err("getrlimit"));
    }
    Ok(rl.rlim_max)
}

fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn write_all(fd: RawFd, b: &[u8]) {
    // One line of at most PIPE_BUF bytes: a single atomic write.
    // SAFETY: valid fd and buffer.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len().min(512)) };
}

/// The body of a forked helper: never returns.
fn helper(parent: libc::pid_t, report: RawFd, what: &str, work: impl FnOnce() -> Result<Vec<OwnedFd>, String>) -> ! {
    // SAFETY: prctl/getppid/_exit/pause are async-signal-safe; this process
    // is a fork of a single-threaded one.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    raise_nofile();
    let held = match work() {
        Ok(h) => h,
        Err(e) => {
            write_all(report, format!("err {what}: {e}\n").as_bytes());
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
    };
    write_all(report, format!("ok {what} {}\n", held.len()).as_bytes());
    loop {
        // SAFETY: pause(2); SIGTERM or SIGKILL ends the process.
        unsafe { libc::pause() };
    }
}

/// Network interfaces of this namespace other than `lo` (from /proc/net/dev,
/// which is per namespace). A namespace made by `ip netns add` has none; the
/// host's has its NICs. (/proc/1/ns/net, the obvious check, may be
/// unreadable even to root in a container.)
fn foreign_interfaces() -> Result<Vec<String>, String> {
    let dev = std::fs::read_to_string("/proc/net/dev").map_err(|e| format!("/proc/net/dev: {e}"))?;
    Ok(dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .filter(|n| n != "lo")
        .collect())
}

fn kill_all(kids: &[libc::pid_t]) {
    for &k in kids {
        // SAFETY: kill(2) of our own children.
        unsafe { libc::kill(k, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = kids.len();
    while left > 0 && Instant::now() < deadline {
        // SAFETY: reaping our children.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r > 0 {
            left -= 1;
        } else if r < 0 {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

pub(crate) fn run(args: &Args) -> Result<(), String> {
    let conns: usize = args.get("conns", 0)?;
    let port: u16 = args.get("port", 5432)?;
    let per_proc: usize = args.get("per-proc", 15_000)?;
    let timeout = Duration::from_secs(args.get("timeout-secs", 600)?);
    if conns == 0 || per_proc == 0 {
        return Err("--conns and --per-proc must be positive".into());
    }
    // If whatever started us dies, release everything (SIGTERM is handled
    // below once ready; before that it ends us and the helpers follow).
    // SAFETY: prctl(2) on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    let foreign = foreign_interfaces()?;
    if !foreign.is_empty() {
        return Err(format!(
            "this network namespace has interfaces besides lo ({}): refusing to fill it; \
             run under `ip netns exec NAME` in a namespace of its own",
            foreign.join(", ")
        ));
    }
    let hard = nofile_hard()?;
    if (per_proc as u64) + 64 > hard {
        return Err(format!("--per-proc {per_proc} does not fit the fd hard limit {hard}"));
    }
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn < 4096 {
        eprintln!("hold: net.core.somaxconn is {somaxconn}; raise it in this namespace or connects will stall");
    }
    let t0 = Instant::now();
    let listener = listen_on(port)?;
    let mut fds = [0; 2];
    // SAFETY: valid pointer to two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err("pipe2"));
    }
    // SAFETY: new fds that nothing else owns.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(rd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };

    let procs = conns.div_ceil(per_proc);
    let quota = |i: usize| per_proc.min(conns - i * per_proc);
    // SAFETY: getpid(2).
    let me = unsafe { libc::getpid() };
    let mut kids: Vec<libc::pid_t> = Vec::with_capacity(2 * procs);
    let spawn = |kids: &mut Vec<libc::pid_t>, what: String, work: &dyn Fn() -> Result<Vec<OwnedFd>, String>| {
        // SAFETY: this process has one thread, so the child may run
        // arbitrary code; it never returns into the parent's code.
        match unsafe { libc::fork() } {
            -1 => Err(os_err("fork")),
            0 => helper(me, wr.as_raw_fd(), &what, work),
            pid => {
                kids.push(pid);
                Ok(())
            }
        }
    };
    let mut started = Ok(());
    for i in 0..procs {
        let q = quota(i);
        let l = listener.as_raw_fd();
        started = spawn(&mut kids, format!("server{i}"), &move || serve(l, q));
        if started.is_err() {
            break;
        }
    }
    if started.is_ok() {
        for i in 0..procs {
            let q = quota(i);
            let src = Ipv4Addr::new(127, 1, (i >> 8) as u8, (i & 0xff) as u8 + 1);
            started = spawn(&mut kids, format!("client{i}"), &move || connect_many(src, port, q));
            if started.is_err() {
                break;
            }
        }
    }
    drop(wr);
    if let Err(e) = started {
        kill_all(&kids);
        return Err(e);
    }

    // Wait for every helper's line, a helper's death, or the deadline.
    let deadline = t0 + timeout;
    let mut buf = Vec::new();
    let mut ok = 0usize;
    let mut held = 0usize;
    let mut err_line = None;
    let failure = loop {
        read_lines(rd.as_raw_fd(), &mut buf, |line| match line.strip_prefix("ok ") {
            Some(rest) => {
                ok += 1;
                held += rest
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
            }
            None => {
                err_line.get_or_insert_with(|| line.to_string());
            }
        });
        if let Some(e) = err_line.take() {
            break Some(e);
        }
        if ok == kids.len() {
            break None;
        }
        let mut status = 0;
        // SAFETY: reaping our children without blocking.
        let dead = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if dead > 0 {
            std::thread::sleep(Duration::from_millis(50)); // let its error line arrive
            let mut why = String::new();
            read_lines(rd.as_raw_fd(), &mut buf, |l| {
                if !l.starts_with("ok ") {
                    why = l.to_string();
                }
            });
            break Some(format!("helper {dead} exited (status {status}) {why}"));
        }
        if Instant::now() > deadline {
            break Some(format!(
                "not ready after {timeout:?}: {ok} of {} helpers done",
                kids.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(e) = failure {
        kill_all(&kids);
        return Err(e);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT hold conns={conns} sockets={} held_fds={held} helpers={} port={port} secs={secs:.1}",
        2 * conns,
        kids.len()
    );
    std::io::stdout().flush().map_err(|e| e.to_string())?;

    // Hold until told to stop.
    // SAFETY: sigset manipulation on a local set; sigwait blocks this thread.
    let sig = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    };
    eprintln!("hold: signal {sig}, releasing {held} fds");
    kill_all(&kids);
    drop(listener);
    Ok(())
}

/// Reads what the helpers wrote so far and hands over each complete line.
fn read_lines(rd: RawFd, buf: &mut Vec<u8>, mut on: impl FnMut(&str)) {
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::read(rd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n as usize]);
    }
    while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        on(String::from_utf8_lossy(&line).trim());
    }
}
