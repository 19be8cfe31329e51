//! Raw socket set-up the lab processes need and std/tokio do not offer: a listener with an exact
//! backlog (dual-stack on `::`), connects started without waiting, and the fd limit.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockProtocol, SockType,
    SockaddrStorage,
};

use crate::LabError;

fn family(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A non-blocking, close-on-exec TCP socket of `addr`'s family.
pub(crate) fn tcp_socket(addr: &SocketAddr) -> Result<OwnedFd, LabError> {
    socket(
        family(addr),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )
    .map_err(|e| LabError::sys("socket", e))
}

/// A non-blocking listening socket on `addr` with exactly `backlog` passed to listen(2).
/// An IPv6 address gets IPV6_V6ONLY off, so `[::]:port` also accepts IPv4 (seen as
/// `::ffff:a.b.c.d`).
pub(crate) fn listener(addr: SocketAddr, backlog: i32) -> Result<std::net::TcpListener, LabError> {
    let backlog = Backlog::new(backlog).map_err(|e| LabError::sys(format!("backlog {backlog}"), e))?;
    let fd = tcp_socket(&addr)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| LabError::sys("SO_REUSEADDR", e))?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &false).map_err(|e| LabError::sys("IPV6_V6ONLY", e))?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(|e| LabError::sys(format!("bind {addr}"), e))?;
    listen(&fd, backlog).map_err(|e| LabError::sys(format!("listen {addr}"), e))?;
    Ok(std::net::TcpListener::from(fd))
}

/// Starts a non-blocking connect on `fd` (from [`tcp_socket`]) to `target`. The fd back when
/// the connect is under way (or done), the errno when connect(2) refused at once.
pub(crate) fn start_connect_on(fd: OwnedFd, target: SocketAddr) -> Result<OwnedFd, Errno> {
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(target)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e),
    }
}

/// Raises the soft limit on open files towards `want` (never above the hard limit). Returns the
/// soft limit in force afterwards.
pub(crate) fn raise_nofile(want: u64) -> Result<u64, LabError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(LabError::sys("getrlimit(NOFILE)", Errno::last()));
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(LabError::sys("setrlimit(NOFILE)", Errno::last()));
    }
    Ok(lim.rlim_cur)
}
