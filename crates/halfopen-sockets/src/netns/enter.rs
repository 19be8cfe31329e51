//! [`NetnsHandle`] (an open namespace file: the namespace cannot die or have
//! its inode reused while it is held) and the dedicated threads that enter
//! one: [`spawn_in`], [`spawn_in_with`], [`run_in`].
//!
//! Why a thread: netlink sock_diag dumps the namespace of the socket, which
//! is the namespace of the thread that created it, and `setns(2)` changes
//! only the calling thread. A thread that entered another namespace must
//! never go back to a pool, so each worker is a fresh OS thread that enters
//! once, checks where it is, runs its closure there for its whole life and
//! ends.
use std::any::Any;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::{self, JoinHandle, Thread};

use nix::sched::CloneFlags;

use super::caps::{effective_capabilities, Capability};
use super::discover::{DiscoverOptions, Netns};
use super::error::{is_gone, is_permission, NetnsError, NotNetns};
use super::id::{current_cookie, inode_at, inode_of_fd, NetnsCookie, NetnsId, NsInode};

/// An open file of a network namespace (`/run/netns/NAME`,
/// `/proc/PID/ns/net`, or the caller's own), checked to be a network
/// namespace, with its inode and (once known) its cookie. Cheap to clone:
/// clones share one file descriptor, closed when the last one is dropped.
///
/// Holding it **pins the namespace**: while the fd is open the kernel keeps
/// the namespace with its interfaces and sockets, even after
/// `ip netns delete` and after its last process exited, and its inode number
/// cannot be given to a new namespace. So `(dev, ino)` comparisons against a
/// held handle are safe. The other side: a collector must drop the handle
/// (and end its worker threads, which pin it too) once the namespace is
/// gone from [`super::discover`] (no member process and no /run/netns name),
/// or it keeps a dead namespace alive for ever.
#[derive(Debug, Clone)]
pub struct NetnsHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    fd: OwnedFd,
    inode: NsInode,
    path: PathBuf,
    /// Set once known: from the discovery, from `current()`, or by the first
    /// thread that entered. `Some(None)`: kernel before 5.14.
    cookie: OnceLock<Option<NetnsCookie>>,
}

/// Whether a path is a /proc/PID/ns/net link (ptrace-checked) or a plain file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Proc,
    File,
}

/// `NS_GET_NSTYPE` (include/uapi/linux/nsfs.h, kernel ≥ 4.11): the
/// CLONE_NEW* type of the namespace behind an nsfs fd.
const NS_GET_NSTYPE: libc::Ioctl = libc::NS_GET_NSTYPE;

impl NetnsHandle {
    /// Opens a namespace file: `/run/netns/NAME`, `/proc/PID/ns/net`, or any
    /// bind mount of one. Checks that it is on nsfs (`fstatfs` type
    /// NSFS_MAGIC, include/uapi/linux/magic.h) and a network namespace
    /// (`ioctl(NS_GET_NSTYPE)` = CLONE_NEWNET). Errors: EACCES/EPERM →
    /// [`NetnsError::OpenDenied`] (naming CAP_SYS_PTRACE when the path has a
    /// `/ns/` component, i.e. is a /proc link); not nsfs or not a network
    /// namespace → [`NetnsError::NotNetns`]; anything else →
    /// [`NetnsError::Io`].
    pub fn open_path(path: impl Into<PathBuf>) -> Result<NetnsHandle, NetnsError> {
        let path = path.into();
        let kind = if path.components().any(|c| c.as_os_str() == "ns") {
            PathKind::Proc
        } else {
            PathKind::File
        };
        open_checked(path, kind)
    }

    /// Opens `<proc_root>/PID/ns/net`: the namespace of process `pid`'s main
    /// thread. Needs ptrace read access to it (see [`super::caps`]).
    pub fn open_pid(proc_root: &Path, pid: u32) -> Result<NetnsHandle, NetnsError> {
        open_checked(proc_root.join(pid.to_string()).join("ns/net"), PathKind::Proc)
    }

    /// Opens `<run_netns>/NAME` (`ip netns add NAME` makes `/run/netns/NAME`).
    pub fn open_named(run_netns: &Path, name: &str) -> Result<NetnsHandle, NetnsError> {
        open_checked(run_netns.join(name), PathKind::File)
    }

    /// The calling thread's own namespace (`/proc/thread-self/ns/net`), with
    /// its cookie (read from a socket made here). Needs no privilege.
    pub fn current() -> Result<NetnsHandle, NetnsError> {
        let h = open_checked(PathBuf::from("/proc/thread-self/ns/net"), PathKind::Proc)?;
        let cookie = current_cookie().map_err(|source| NetnsError::Cookie {
            inode: h.inode(),
            source,
        })?;
        let _ = h.inner.cookie.set(cookie);
        Ok(h)
    }

    /// Opens a namespace that [`super::discover`] listed, through whichever
    /// of its paths still leads to it: its /run/netns names first, then its
    /// sampled member pids. Each file opened is checked to be the same inode
    /// as discovered (a pid reused by a process elsewhere, or a name deleted
    /// and re-created, leads to another namespace and is skipped). If the
    /// discovery knew the cookie, the handle carries it and every thread
    /// that enters checks it. Errors: [`NetnsError::Gone`] when no path
    /// leads to it any more; if some path was refused and none worked, that
    /// refusal ([`NetnsError::OpenDenied`]) instead.
    pub fn open_discovered(ns: &Netns, opts: &DiscoverOptions) -> Result<NetnsHandle, NetnsError> {
        let candidates = ns.names.iter().map(|n| (opts.run_netns.join(n), PathKind::File)).chain(
            ns.pids
                .iter()
                .map(|p| (opts.proc_root.join(p.to_string()).join("ns/net"), PathKind::Proc)),
        );
        let mut tried = Vec::new();
        let mut refused = None;
        let mut failed = None;
        for (path, kind) in candidates {
            tried.push(path.clone());
            match open_checked(path, kind) {
                Ok(h) if h.inode() == ns.inode => {
                    if let Some(c) = ns.cookie {
                        let _ = h.inner.cookie.set(Some(c));
                    }
                    return Ok(h);
                }
                Ok(_) => {} // leads to another namespace now
                Err(NetnsError::Io { ref source, .. }) if is_gone(source) => {}
                Err(NetnsError::NotNetns { .. }) => {} // a stale /run/netns placeholder
                Err(e) if e.is_denied() => {
                    refused.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        Err(refused
            .or(failed)
            .unwrap_or(NetnsError::Gone { inode: ns.inode, tried }))
    }

    /// The namespace's nsfs inode.
    pub fn inode(&self) -> NsInode {
        self.inner.inode
    }

    /// Its cookie, if known yet (from the discovery, [`NetnsHandle::current`]
    /// or a thread that entered); `Some(None)` on kernels before 5.14.
    pub fn cookie(&self) -> Option<Option<NetnsCookie>> {
        self.inner.cookie.get().copied()
    }

    /// Its full identity: known without entering when the cookie is;
    /// otherwise a short-lived thread enters to read the cookie (needs
    /// CAP_SYS_ADMIN, like every entry).
    pub fn identify(&self) -> Result<NetnsId, NetnsError> {
        if let Some(cookie) = self.cookie() {
            return Ok(NetnsId {
                inode: self.inode(),
                cookie,
            });
        }
        let t = spawn_in(self, "netns-identify", || ())?;
        let id = t.id();
        // The closure is empty: a join error cannot come from it.
        let _ = t.join();
        Ok(id)
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether `other` is a handle of the same namespace (same inode: safe,
    /// as both pin it).
    pub fn same_namespace(&self, other: &NetnsHandle) -> bool {
        self.inode() == other.inode()
    }
}

impl AsFd for NetnsHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

fn open_checked(path: PathBuf, kind: PathKind) -> Result<NetnsHandle, NetnsError> {
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(source) if is_permission(&source) => {
            return Err(NetnsError::OpenDenied {
                path,
                missing: (kind == PathKind::Proc).then_some(Capability::SysPtrace),
                source,
            })
        }
        Err(source) => {
            return Err(NetnsError::Io {
                op: "open",
                path,
                source,
            })
        }
    };
    let fd = OwnedFd::from(file);
    let fs = match nix::sys::statfs::fstatfs(&fd) {
        Ok(fs) => fs,
        Err(e) => {
            return Err(NetnsError::Io {
                op: "fstatfs",
                path,
                source: e.into(),
            })
        }
    };
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(NetnsError::NotNetns {
            path,
            why: NotNetns::NotNsfs {
                fs_type: fs.filesystem_type().0 as i64,
            },
        });
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and returns an int.
    let ty = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), NS_GET_NSTYPE) };
    if ty < 0 {
        let e = std::io::Error::last_os_error();
        // ENOTTY: a kernel before 4.11; a /proc/PID/ns/net link is a network
        // namespace by construction, anything else cannot be checked.
        if !(e.raw_os_error() == Some(libc::ENOTTY) && kind == PathKind::Proc) {
            return Err(NetnsError::Io {
                op: "ioctl(NS_GET_NSTYPE)",
                path,
                source: e,
            });
        }
    } else if ty != libc::CLONE_NEWNET {
        return Err(NetnsError::NotNetns {
            path,
            why: NotNetns::OtherType { nstype: ty },
        });
    }
    let inode = inode_of_fd(fd.as_fd()).map_err(|source| NetnsError::Io {
        op: "fstat",
        path: path.clone(),
        source,
    })?;
    Ok(NetnsHandle {
        inner: Arc::new(Inner {
            fd,
            inode,
            path,
            cookie: OnceLock::new(),
        }),
    })
}

/// Moves the calling thread into the handle's namespace and checks where it
/// landed. Only ever called on threads this module spawned.
fn enter(inner: &Inner) -> Result<NetnsId, NetnsError> {
    if let Err(e) = nix::sched::setns(&inner.fd, CloneFlags::CLONE_NEWNET) {
        if e == nix::errno::Errno::EPERM {
            return Err(NetnsError::SetnsDenied {
                target: inner.inode,
                path: inner.path.clone(),
                missing: Capability::SysAdmin,
                has_cap_sys_admin: effective_capabilities()
                    .ok()
                    .map(|set| Capability::SysAdmin.in_set(set)),
            });
        }
        return Err(NetnsError::Io {
            op: "setns",
            path: inner.path.clone(),
            source: e.into(),
        });
    }
    let own = "/proc/thread-self/ns/net";
    let inode = inode_at(None, c"/proc/thread-self/ns/net").map_err(|source| NetnsError::Io {
        op: "stat",
        path: own.into(),
        source,
    })?;
    let cookie = current_cookie().map_err(|source| NetnsError::Cookie { inode, source })?;
    let found = NetnsId { inode, cookie };
    let expected = NetnsId {
        inode: inner.inode,
        cookie: inner.cookie.get().copied().unwrap_or(cookie),
    };
    if found != expected {
        return Err(NetnsError::WrongNamespace { expected, found });
    }
    Ok(found)
}

/// Enters `ns` on the calling thread, for a thread of this crate that ends
/// right after (the discovery's cookie prober); records the cookie.
pub(crate) fn enter_here(ns: &NetnsHandle) -> Result<NetnsId, NetnsError> {
    let id = enter(&ns.inner)?;
    let _ = ns.inner.cookie.set(id.cookie);
    Ok(id)
}

/// A thread running inside a network namespace, made by [`spawn_in`]. It
/// entered and checked its namespace before running the closure; it pins the
/// namespace until the closure returns.
#[derive(Debug)]
pub struct NetnsThread<T> {
    handle: JoinHandle<Option<T>>,
    id: NetnsId,
}

impl<T> NetnsThread<T> {
    /// The namespace the thread confirmed it is in (inode of its own
    /// `/proc/thread-self/ns/net`, cookie of a socket it made).
    pub fn id(&self) -> NetnsId {
        self.id
    }

    pub fn thread(&self) -> &Thread {
        self.handle.thread()
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the closure's result. `Err` carries its panic payload, as
    /// [`JoinHandle::join`] does.
    pub fn join(self) -> thread::Result<T> {
        // None only comes back from a thread that failed to enter, and such a
        // thread is joined inside spawn_in, never wrapped in a NetnsThread.
        self.handle
            .join()
            .and_then(|v| v.ok_or_else(|| Box::new("netns thread ran no work") as Box<dyn Any + Send>))
    }
}

/// Spawns a thread named `thread_name` (at most 15 bytes show in
/// /proc/PID/task/TID/comm) that enters `ns` and then runs `f` there for its
/// whole life. Returns once the thread has entered and confirmed that its
/// own namespace (inode, and cookie when the handle knows it) is the
/// target's, so `f` never runs in the wrong namespace. On failure the thread
/// has already ended (joined here) and nothing leaks: EPERM from setns is
/// [`NetnsError::SetnsDenied`] naming CAP_SYS_ADMIN. The thread does not
/// keep the handle's fd; the namespace stays alive while it runs because
/// the thread is in it.
pub fn spawn_in<F, T>(ns: &NetnsHandle, thread_name: &str, f: F) -> Result<NetnsThread<T>, NetnsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_inner(ns, thread::Builder::new().name(thread_name.to_string()), thread_name, f)
}

/// [`spawn_in`] with a caller's `thread::Builder` (name, stack size).
pub fn spawn_in_with<F, T>(ns: &NetnsHandle, builder: thread::Builder, f: F) -> Result<NetnsThread<T>, NetnsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_inner(ns, builder, "(caller's builder)", f)
}

fn spawn_inner<F, T>(ns: &NetnsHandle, builder: thread::Builder, name: &str, f: F) -> Result<NetnsThread<T>, NetnsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let inner = Arc::clone(&ns.inner);
    let (tx, rx) = mpsc::sync_channel::<Result<NetnsId, NetnsError>>(1);
    let handle = builder
        .spawn(move || {
            let entered = enter(&inner);
            // The fd is the caller's to close; the thread now pins the
            // namespace by being in it.
            drop(inner);
            let ok = entered.is_ok();
            let _ = tx.send(entered);
            ok.then(f)
        })
        .map_err(|source| NetnsError::Spawn {
            name: name.to_string(),
            source,
        })?;
    match rx.recv() {
        Ok(Ok(id)) => {
            let _ = ns.inner.cookie.set(id.cookie);
            Ok(NetnsThread { handle, id })
        }
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(mpsc::RecvError) => {
            let _ = handle.join();
            Err(NetnsError::ThreadDied {
                thread: format!("{name} (entering {})", ns.inode()),
            })
        }
    }
}

/// Runs `f` on a fresh thread inside `ns` and waits for it: for short work
/// (a one-off dump, reading a sysctl). A panic in `f` comes back as
/// [`NetnsError::WorkPanicked`].
pub fn run_in<F, T>(ns: &NetnsHandle, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let t = spawn_in(ns, "netns-run", f)?;
    let id = t.id();
    t.join().map_err(|payload| NetnsError::WorkPanicked {
        id,
        message: panic_message(payload.as_ref()),
    })
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_handle_is_own_namespace() {
        let h = NetnsHandle::current().unwrap();
        let own = inode_at(None, c"/proc/thread-self/ns/net").unwrap();
        assert_eq!(h.inode(), own);
        assert_eq!(h.cookie(), Some(current_cookie().unwrap()));
        // identify() needs no entering when the cookie is known
        assert_eq!(h.identify().unwrap().inode, own);
    }

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        match NetnsHandle::open_path("/proc/self/status") {
            Err(NetnsError::NotNetns {
                why: NotNetns::NotNsfs { fs_type },
                ..
            }) => assert_eq!(fs_type, 0x9fa0, "procfs"),
            other => panic!("expected NotNetns, got {other:?}"),
        }
        // another namespace type on nsfs
        match NetnsHandle::open_path("/proc/self/ns/uts") {
            Err(NetnsError::NotNetns {
                why: NotNetns::OtherType { nstype },
                ..
            }) => assert_eq!(nstype, libc::CLONE_NEWUTS),
            other => panic!("expected NotNetns, got {other:?}"),
        }
        match NetnsHandle::open_path("/nonexistent/netns") {
            Err(NetnsError::Io { op: "open", source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT))
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn panics_in_run_in_are_errors() {
        if !halfopen_lab::require_root_or_skip("panics_in_run_in_are_errors") {
            return;
        }
        let h = NetnsHandle::current().unwrap();
        assert_eq!(run_in(&h, || 7).unwrap(), 7);
        match run_in(&h, || -> u32 { panic!("boom") }) {
            Err(NetnsError::WorkPanicked { message, id }) => {
                assert_eq!(message, "boom");
                assert_eq!(id.inode, h.inode());
            }
            other => panic!("expected WorkPanicked, got {other:?}"),
        }
    }
}
