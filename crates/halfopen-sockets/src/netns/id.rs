//! Identity of a network namespace: [`NsInode`] (what its nsfs file shows),
//! [`NetnsCookie`] (what a socket made inside it shows) and [`NetnsId`]
//! (both), and the two kernel reads behind them.
//!
//! Why the inode alone is not enough: every namespace is an inode of the
//! kernel's one internal nsfs filesystem, numbered from the kernel's inode
//! number allocator (`ns_alloc_inum` → `proc_alloc_inum`, an IDA in
//! fs/proc/generic.c). When a namespace dies its number goes back to the
//! allocator and the next namespace created may get exactly the same
//! number (the IDA hands out the lowest free one). On this kernel (6.18)
//! `unshare -n stat -L -c %i /proc/self/ns/net` run five times, 0.5 s apart
//! (a dead namespace is freed asynchronously by the `cleanup_net` work),
//! printed the same inode five times. So `(st_dev, st_ino)` names a
//! namespace only while something keeps it alive; a collector that remembers
//! an inode across a namespace's death would mistake the successor for it.
//! The netns cookie (`SO_NETNS_COOKIE`, kernel ≥ 5.14, the same number as
//! BPF's `bpf_get_netns_cookie`) is drawn from a 64-bit counter that only
//! grows (`net->net_cookie`, net/core/net_namespace.c) and is never reused
//! while the machine runs.
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `SO_NETNS_COOKIE` from include/uapi/asm-generic/socket.h (71 on every
/// architecture but mips, parisc, alpha and sparc; this crate builds for
/// Linux on x86_64 and aarch64, where it is 71).
pub const SO_NETNS_COOKIE: libc::c_int = 71;

/// The `(st_dev, st_ino)` of a network namespace's nsfs file, as `stat -L
/// /proc/PID/ns/net` or `stat /run/netns/NAME` shows it. It names the
/// namespace only while the namespace lives: numbers of dead namespaces are
/// reused (see the module documentation). `st_dev` is the nsfs superblock's
/// device, the same for every namespace of a boot; it is kept so that an
/// inode from any other filesystem can never compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsInode {
    pub dev: u64,
    pub ino: u64,
}

impl fmt::Display for NsInode {
    /// `net:[INO]`, the way `readlink /proc/PID/ns/net` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}]", self.ino)
    }
}

impl NsInode {
    /// From a `stat` result.
    pub fn from_stat(st: &libc::stat) -> NsInode {
        NsInode {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// A network namespace's cookie: `getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE)`
/// on any socket created inside it (a u64, kernel ≥ 5.14;
/// `sock_getsockopt` in net/core/sock.c returns `sock_net(sk)->net_cookie`).
/// Unique for the life of the machine: the counter behind it only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsCookie(pub u64);

impl fmt::Display for NetnsCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cookie {}", self.0)
    }
}

/// The identity of a network namespace that survives the reuse of inode
/// numbers: its nsfs inode and its cookie. `cookie` is `None` only on kernels
/// older than 5.14 (no `SO_NETNS_COOKIE`: getsockopt answers ENOPROTOOPT);
/// there the identity is as weak as the inode (valid while the namespace is
/// held open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsId {
    pub inode: NsInode,
    pub cookie: Option<NetnsCookie>,
}

impl fmt::Display for NetnsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cookie {
            Some(c) => write!(f, "{} ({c})", self.inode),
            None => write!(f, "{} (no cookie: kernel before 5.14)", self.inode),
        }
    }
}

/// fstat(2) of a namespace file descriptor.
pub(crate) fn inode_of_fd(fd: BorrowedFd<'_>) -> io::Result<NsInode> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fd is open; st is valid for writes of one struct stat.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled st.
    Ok(NsInode::from_stat(unsafe { &st.assume_init() }))
}

/// stat(2) (following links, as the /proc/PID/ns/* "magic links" must be) of
/// `path` relative to `dirfd`.
pub(crate) fn inode_at(dirfd: Option<BorrowedFd<'_>>, path: &std::ffi::CStr) -> io::Result<NsInode> {
    let dfd = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: path is NUL-terminated; st is valid for one struct stat.
    let rc = unsafe { libc::fstatat(dfd, path.as_ptr(), st.as_mut_ptr(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat succeeded and filled st.
    Ok(NsInode::from_stat(unsafe { &st.assume_init() }))
}

/// The cookie of the calling thread's network namespace: creates an AF_UNIX
/// datagram socket (sockets are made in the creating thread's namespace,
/// `current->nsproxy->net_ns`) and asks for `SO_NETNS_COOKIE`. `Ok(None)` on
/// kernels before 5.14 (ENOPROTOOPT). Errors: socket(2) or getsockopt(2).
pub fn current_cookie() -> io::Result<Option<NetnsCookie>> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie is valid for len bytes; fd is an open socket.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
            return Ok(None);
        }
        return Err(e);
    }
    if len as usize != std::mem::size_of::<u64>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("SO_NETNS_COOKIE returned {len} bytes, not 8"),
        ));
    }
    Ok(Some(NetnsCookie(cookie)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays() {
        let i = NsInode {
            dev: 4,
            ino: 4026531840,
        };
        assert_eq!(i.to_string(), "net:[4026531840]");
        let id = NetnsId {
            inode: i,
            cookie: Some(NetnsCookie(1)),
        };
        assert_eq!(id.to_string(), "net:[4026531840] (cookie 1)");
    }

    #[test]
    fn own_cookie_is_stable_and_inode_matches_proc() {
        // kernel >= 5.14 here (6.x); both reads are of this thread's namespace
        let a = current_cookie().unwrap().expect("kernel has SO_NETNS_COOKIE");
        let b = current_cookie().unwrap().unwrap();
        assert_eq!(a, b);
        let i = inode_at(None, c"/proc/thread-self/ns/net").unwrap();
        let link = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_eq!(link.to_string_lossy(), i.to_string());
    }
}
