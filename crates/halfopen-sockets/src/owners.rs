//! Process attribution: which process holds a socket inode, found through
//! `/proc/<pid>/fd`.
//!
//! [`Owners`] keeps a cache inode -> (pid, fd). A cached pair is re-validated
//! with one readlink of `/proc/<pid>/fd/<fd>` (it must still read
//! `socket:[<inode>]`); the inodes that miss are found in ONE walk of
//! `/proc/*/fd` that stops as soon as all of them are found. Nothing is
//! scanned per socket, and the walk allocates nothing per fd (getdents64 into
//! a reused buffer, readlinkat into a stack buffer, see `sys`). The full walk
//! ([`Owners::resolve_all`]) spreads the processes over a few threads.
//!
//! Inodes a walk did not find (a socket whose owner is in another pid
//! namespace, or unreadable) are remembered and not walked for again for
//! [`ABSENT_RETRY_CALLS`] calls: otherwise one such listener would cost a
//! full walk every collector interval.
//!
//! A process or fd that disappears during the walk is normal and counted in
//! [`ResolveStats::vanished`]; EACCES/EPERM are counted; any other error is
//! counted in [`ResolveStats::other_errors`] with the first example in
//! [`ResolveStats::first_error`]. Nothing is logged here: the caller knows
//! whether a problem is new (the collector logs it once, `snapshot` prints it).
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use halfopen_core::{Process, Redaction};

/// How this process redacts the command lines it reads (set once at start).
static REDACTION: std::sync::OnceLock<Redaction> = std::sync::OnceLock::new();

/// Sets how command lines are redacted, for the life of the process (the
/// collector's `--show-secrets`, `--redact-flag`). Returns false if it was
/// already set (or used: the default, redacting, then stays).
pub fn set_redaction(r: Redaction) -> bool {
    REDACTION.set(r).is_ok()
}

fn redaction() -> &'static Redaction {
    REDACTION.get_or_init(Redaction::default)
}

use crate::sys::{for_each_dirent, open_dir_at, parse_socket_link, parse_u32, read_file_at, readlink_at, StackPath};

/// What one [`Owners::resolve`] or [`Owners::resolve_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveStats {
    /// `/proc/<pid>/fd` directories walked.
    pub pids_walked: u64,
    /// fd entries read with readlink during the walk.
    pub fds_walked: u64,
    /// Cached (pid, fd) pairs confirmed with one readlink.
    pub revalidated: u64,
    /// Cached pairs that no longer pointed at their inode (dropped, then
    /// looked for in the walk).
    pub stale: u64,
    /// Processes or fds that disappeared under us (ENOENT, ESRCH).
    pub vanished: u64,
    /// EACCES / EPERM.
    pub permission_errors: u64,
    /// Any other error.
    pub other_errors: u64,
    /// The first of those other errors, for the caller to report.
    pub first_error: Option<String>,
    /// Inodes not walked for because a recent walk did not find them.
    pub absent_skipped: u64,
    pub elapsed: Duration,
}

/// Cache entries unused for this many calls are dropped.
const CACHE_IDLE_CALLS: u64 = 32;
/// An inode a walk did not find is looked for again after this many calls
/// (about 2.5 minutes of 5 s collector intervals).
pub const ABSENT_RETRY_CALLS: u64 = 32;

#[derive(Debug, Clone, Copy)]
struct Cached {
    pid: u32,
    fd: u32,
    last_used: u64,
}

/// Finds the owners of socket inodes; see the module doc.
#[derive(Debug)]
pub struct Owners {
    cache: HashMap<u64, Cached>,
    /// inode -> the call whose walk did not find it
    absent: HashMap<u64, u64>,
    calls: u64,
    /// How many callers share this cache, each calling about once per
    /// interval ([`Owners::set_sharers`]): the idle and retry limits count
    /// in calls of all of them.
    sharers: u64,
    proc_buf: Vec<u8>,
    fd_buf: Vec<u8>,
    file_buf: Vec<u8>,
}

impl Default for Owners {
    fn default() -> Self {
        Self::new()
    }
}

enum Kind {
    Vanished,
    Permission,
    Other,
}

fn kind(e: &io::Error) -> Kind {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => Kind::Vanished,
        Some(libc::EACCES) | Some(libc::EPERM) => Kind::Permission,
        _ => Kind::Other,
    }
}

/// Counts errors into the stats; remembers the first unexpected one.
struct Errors<'s> {
    stats: &'s mut ResolveStats,
}

impl Errors<'_> {
    /// Counts `e`; returns true if it means "the thing vanished".
    fn note(&mut self, what: &str, path: &CStr, e: &io::Error) -> bool {
        match kind(e) {
            Kind::Vanished => {
                self.stats.vanished += 1;
                true
            }
            Kind::Permission => {
                self.stats.permission_errors += 1;
                false
            }
            Kind::Other => {
                self.stats.other_errors += 1;
                if self.stats.first_error.is_none() {
                    self.stats.first_error = Some(format!("{what} /proc/{}: {e}", path.to_string_lossy()));
                }
                false
            }
        }
    }

    /// Adds another walker's counts (its first unexpected error if this one
    /// has none yet).
    fn absorb(&mut self, o: ResolveStats) {
        let st = &mut *self.stats;
        st.pids_walked += o.pids_walked;
        st.fds_walked += o.fds_walked;
        st.vanished += o.vanished;
        st.permission_errors += o.permission_errors;
        st.other_errors += o.other_errors;
        if st.first_error.is_none() {
            st.first_error = o.first_error;
        }
    }
}

/// Walks `/proc/*/fd`, calling `on_socket(inode, pid, fd)` for every socket fd
/// until it breaks.
fn walk(
    proc_fd: BorrowedFd<'_>,
    proc_buf: &mut [u8],
    fd_buf: &mut [u8],
    errs: &mut Errors<'_>,
    mut on_socket: impl FnMut(u64, u32, u32) -> ControlFlow<()>,
) {
    for pid in list_pids(proc_fd, proc_buf, errs) {
        if walk_pid(proc_fd, pid, fd_buf, errs, &mut on_socket).is_break() {
            return;
        }
    }
}

/// The pids in /proc, in directory order.
fn list_pids(proc_fd: BorrowedFd<'_>, proc_buf: &mut [u8], errs: &mut Errors<'_>) -> Vec<u32> {
    let mut pids = Vec::with_capacity(1024);
    if let Err(e) = for_each_dirent(proc_fd, proc_buf, |name| {
        if let Some(pid) = parse_u32(name.to_bytes()) {
            pids.push(pid);
        }
        ControlFlow::Continue(())
    }) {
        errs.note("listing", c"", &e);
        pids.clear();
    }
    pids
}

/// Walks `/proc/<pid>/fd`, calling `on_socket(inode, pid, fd)` for every
/// socket fd until it breaks.
fn walk_pid(
    proc_fd: BorrowedFd<'_>,
    pid: u32,
    fd_buf: &mut [u8],
    errs: &mut Errors<'_>,
    on_socket: &mut impl FnMut(u64, u32, u32) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let Some(path) = StackPath::new(format_args!("{pid}/fd")) else {
        return ControlFlow::Continue(());
    };
    errs.stats.pids_walked += 1;
    let dir = match open_dir_at(Some(proc_fd), path.as_cstr()) {
        Ok(d) => d,
        Err(e) => {
            errs.note("opening", path.as_cstr(), &e);
            return ControlFlow::Continue(());
        }
    };
    let flow = for_each_dirent(dir.as_fd(), fd_buf, |name| {
        let Some(fd) = parse_u32(name.to_bytes()) else {
            return ControlFlow::Continue(()); // "." and ".."
        };
        errs.stats.fds_walked += 1;
        let mut link = [0u8; 64];
        match readlink_at(dir.as_fd(), name, &mut link) {
            Ok(target) => {
                if let Some(inode) = parse_socket_link(target) {
                    return on_socket(inode, pid, fd);
                }
            }
            Err(e) => {
                errs.note("readlink in", path.as_cstr(), &e);
            }
        }
        ControlFlow::Continue(())
    });
    match flow {
        Ok(f) => f,
        Err(e) => {
            errs.note("listing", path.as_cstr(), &e);
            ControlFlow::Continue(())
        }
    }
}

/// Threads that walk /proc for [`Owners::resolve_all_shared`]: readlink in
/// /proc is kernel time that scales with cores when the processes differ
/// (one process's fds are walked by one thread: its fd table and task lock
/// make more contend).
const WALK_THREADS_MAX: usize = 4;

/// One socket fd: (inode, pid, fd).
type SocketFd = (u64, u32, u32);
/// The socket fds of one pid, by the pid's index in the /proc listing.
type PidSockets = (usize, Vec<SocketFd>);

/// Every socket fd of every process: (inode, pid, fd), in the order a single
/// thread would find them, walked by up to [`WALK_THREADS_MAX`] threads that
/// take one pid at a time.
fn walk_all(proc_fd: BorrowedFd<'_>, proc_buf: &mut [u8], fd_buf: &mut [u8], errs: &mut Errors<'_>) -> Vec<SocketFd> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pids = list_pids(proc_fd, proc_buf, errs);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, WALK_THREADS_MAX)
        .min(pids.len().max(1));
    let next = AtomicUsize::new(0);
    let buf_len = fd_buf.len();
    // One worker: (index of the pid in `pids`, its sockets) for each pid it
    // took, and its error counts.
    let work = |fd_buf: &mut [u8], errs: &mut Errors<'_>| {
        let mut got: Vec<PidSockets> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = pids.get(i) else { break };
            let mut socks = Vec::new();
            let _ = walk_pid(proc_fd, pid, fd_buf, errs, &mut |inode, pid, fd| {
                socks.push((inode, pid, fd));
                ControlFlow::Continue(())
            });
            if !socks.is_empty() {
                got.push((i, socks));
            }
        }
        got
    };
    let mut all: Vec<PidSockets> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut stats = ResolveStats::default();
                    let got = work(&mut vec![0u8; buf_len], &mut Errors { stats: &mut stats });
                    (got, stats)
                })
            })
            .collect();
        let mut all = work(fd_buf, errs);
        for h in helpers {
            // a panic in a helper is a bug: pass it on
            let (got, stats) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            all.extend(got);
            errs.absorb(stats);
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().flat_map(|(_, v)| v).collect()
}

/// comm, cmdline and real uid of `pid`; None if the process is gone.
fn read_process(proc_fd: BorrowedFd<'_>, pid: u32, buf: &mut Vec<u8>, errs: &mut Errors<'_>) -> Option<Process> {
    let mut p = Process {
        pid,
        ..Process::default()
    };
    let read = |name: &str, buf: &mut Vec<u8>, errs: &mut Errors<'_>| -> Result<bool, ()> {
        let path = StackPath::new(format_args!("{pid}/{name}")).ok_or(())?;
        match read_file_at(proc_fd, path.as_cstr(), buf) {
            Ok(()) => Ok(true),
            Err(e) => {
                if errs.note("reading", path.as_cstr(), &e) {
                    Err(())
                } else {
                    Ok(false)
                }
            }
        }
    };
    if read("comm", buf, errs).ok()? {
        p.comm = String::from_utf8_lossy(buf).trim().to_owned();
    }
    if read("cmdline", buf, errs).ok()? {
        let text = String::from_utf8_lossy(buf);
        let args: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
        p.cmdline = redaction().apply(&p.comm, &args).trim().to_owned();
    }
    if read("status", buf, errs).ok()? {
        p.uid = status_real_uid(buf).unwrap_or(0);
    }
    Some(p)
}

/// comm, cmdline (redacted as [`set_redaction`] says) and real uid of
/// process `pid`, read from /proc/PID alone (no walk): for an owner learnt
/// another way (the eBPF source records the process that called
/// connect()). None when the process is gone or unreadable; what went wrong
/// is counted in the stats.
pub fn process_of(pid: u32) -> (Option<Process>, ResolveStats) {
    let mut stats = ResolveStats::default();
    let mut errs = Errors { stats: &mut stats };
    let p = match open_dir_at(None, c"/proc") {
        Ok(fd) => read_process(fd.as_fd(), pid, &mut Vec::new(), &mut errs),
        Err(e) => {
            errs.note("opening", c"/proc", &e);
            None
        }
    };
    (p, stats)
}

/// The real uid from a /proc/<pid>/status: the first number of the "Uid:" line.
fn status_real_uid(status: &[u8]) -> Option<u32> {
    let line = status.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"Uid:"))?;
    let first = line.split(|b| b.is_ascii_whitespace()).find(|w| !w.is_empty())?;
    parse_u32(first)
}

impl Owners {
    pub fn new() -> Owners {
        Owners {
            cache: HashMap::new(),
            absent: HashMap::new(),
            calls: 0,
            sharers: 1,
            proc_buf: vec![0; 32 * 1024],
            fd_buf: vec![0; 32 * 1024],
            file_buf: Vec::with_capacity(4096),
        }
    }

    /// Declares that `n` callers (the workers of `n` network namespaces,
    /// each resolving once per interval) share this cache, so that "unused
    /// for 32 calls" and "not looked for again for 32 calls" still mean 32
    /// intervals, not 32/n: without it, the entry of a listener resolved
    /// once per interval by each of 51 workers would be dropped between two
    /// of its uses, and found again by a walk of /proc every interval.
    pub fn set_sharers(&mut self, n: usize) {
        self.sharers = (n as u64).max(1);
    }

    /// Number of cached inode -> (pid, fd) pairs.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Owners of these socket inodes. Cached (pid, fd) pairs are re-validated
    /// with one readlink of `/proc/<pid>/fd/<fd>`; the misses are found in ONE
    /// walk of `/proc/*/fd` that stops as soon as every wanted inode is found.
    /// Inode 0 never resolves. Inodes nobody holds are simply absent.
    pub fn resolve(&mut self, inodes: &[u64]) -> (HashMap<u64, Process>, ResolveStats) {
        let t0 = Instant::now();
        self.calls += 1;
        let now = self.calls;
        let mut stats = ResolveStats::default();
        let mut errs = Errors { stats: &mut stats };
        let mut owners = HashMap::new();
        let proc_fd = match open_dir_at(None, c"/proc") {
            Ok(fd) => fd,
            Err(e) => {
                errs.note("opening", c"", &e);
                stats.elapsed = t0.elapsed();
                return (owners, stats);
            }
        };
        let proc_fd = proc_fd.as_fd();

        let mut found: HashMap<u64, u32> = HashMap::with_capacity(inodes.len());
        let mut misses: HashSet<u64> = HashSet::new();
        for &inode in inodes {
            if inode == 0 || found.contains_key(&inode) || misses.contains(&inode) {
                continue;
            }
            let Some(c) = self.cache.get_mut(&inode) else {
                if self
                    .absent
                    .get(&inode)
                    .is_some_and(|&at| at + ABSENT_RETRY_CALLS * self.sharers > now)
                {
                    errs.stats.absent_skipped += 1;
                } else {
                    misses.insert(inode);
                }
                continue;
            };
            let valid = match StackPath::new(format_args!("{}/fd/{}", c.pid, c.fd)) {
                Some(path) => {
                    let mut link = [0u8; 64];
                    match readlink_at(proc_fd, path.as_cstr(), &mut link) {
                        Ok(target) => parse_socket_link(target) == Some(inode),
                        Err(e) => {
                            errs.note("readlink", path.as_cstr(), &e);
                            false
                        }
                    }
                }
                None => false,
            };
            if valid {
                c.last_used = now;
                errs.stats.revalidated += 1;
                found.insert(inode, c.pid);
            } else {
                errs.stats.stale += 1;
                self.cache.remove(&inode);
                misses.insert(inode);
            }
        }

        if !misses.is_empty() {
            let cache = &mut self.cache;
            let absent = &mut self.absent;
            walk(
                proc_fd,
                &mut self.proc_buf,
                &mut self.fd_buf,
                &mut errs,
                |inode, pid, fd| {
                    if misses.remove(&inode) {
                        absent.remove(&inode);
                        found.insert(inode, pid);
                        cache.insert(
                            inode,
                            Cached {
                                pid,
                                fd,
                                last_used: now,
                            },
                        );
                        if misses.is_empty() {
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                },
            );
        }

        // what the walk did not find is not walked for again for a while
        self.absent.extend(misses.into_iter().map(|i| (i, now)));
        let mut shared = HashMap::new();
        self.attach_processes(proc_fd, found, &mut shared, &mut errs);
        owners.extend(shared.into_iter().map(|(i, p)| (i, Arc::unwrap_or_clone(p))));
        if now.is_multiple_of(CACHE_IDLE_CALLS) {
            let (idle, retry) = (CACHE_IDLE_CALLS * self.sharers, ABSENT_RETRY_CALLS * self.sharers);
            self.cache.retain(|_, c| c.last_used + idle > now);
            self.absent.retain(|_, &mut at| at + retry > now);
        }
        stats.elapsed = t0.elapsed();
        (owners, stats)
    }

    /// One full walk: every socket inode on the host -> its owner (the first
    /// process found when several share it). Replaces the cache with what the
    /// walk saw. See [`Owners::resolve_all_shared`] to avoid one copy of the
    /// process per socket.
    pub fn resolve_all(&mut self) -> (HashMap<u64, Process>, ResolveStats) {
        let (shared, stats) = self.resolve_all_shared();
        let owned = shared.into_iter().map(|(i, p)| (i, Arc::unwrap_or_clone(p))).collect();
        (owned, stats)
    }

    /// Like [`Owners::resolve_all`], with each process read once and shared
    /// by all its sockets (a process holding 100,000 sockets is one
    /// allocation, not 100,000 copies of its command line).
    pub fn resolve_all_shared(&mut self) -> (HashMap<u64, Arc<Process>>, ResolveStats) {
        let t0 = Instant::now();
        self.calls += 1;
        let now = self.calls;
        let mut stats = ResolveStats::default();
        let mut errs = Errors { stats: &mut stats };
        let mut owners = HashMap::new();
        let proc_fd = match open_dir_at(None, c"/proc") {
            Ok(fd) => fd,
            Err(e) => {
                errs.note("opening", c"", &e);
                stats.elapsed = t0.elapsed();
                return (owners, stats);
            }
        };
        let proc_fd = proc_fd.as_fd();
        let found = walk_all(proc_fd, &mut self.proc_buf, &mut self.fd_buf, &mut errs);
        let mut cache: HashMap<u64, Cached> = HashMap::with_capacity(found.len().max(1024));
        for (inode, pid, fd) in found {
            cache.entry(inode).or_insert(Cached {
                pid,
                fd,
                last_used: now,
            });
        }
        let found = cache.iter().map(|(&inode, c)| (inode, c.pid)).collect();
        self.cache = cache;
        self.absent.clear();
        self.attach_processes(proc_fd, found, &mut owners, &mut errs);
        stats.elapsed = t0.elapsed();
        (owners, stats)
    }

    /// Reads each distinct pid once and fills `owners`; inodes whose process
    /// has gone are dropped from the result and the cache.
    fn attach_processes(
        &mut self,
        proc_fd: BorrowedFd<'_>,
        found: HashMap<u64, u32>,
        owners: &mut HashMap<u64, Arc<Process>>,
        errs: &mut Errors<'_>,
    ) {
        let mut procs: HashMap<u32, Option<Arc<Process>>> = HashMap::new();
        owners.reserve(found.len());
        for (inode, pid) in found {
            let p = procs
                .entry(pid)
                .or_insert_with(|| read_process(proc_fd, pid, &mut self.file_buf, errs).map(Arc::new));
            match p {
                Some(p) => {
                    owners.insert(inode, Arc::clone(p));
                }
                None => {
                    self.cache.remove(&inode);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_read_by_pid_alone() {
        let (p, stats) = process_of(std::process::id());
        let p = p.expect("this process");
        assert_eq!(p.pid, std::process::id());
        assert!(!p.comm.is_empty() && !p.cmdline.is_empty(), "{p:?}");
        assert_eq!(stats.other_errors, 0, "{stats:?}");
        // A pid that cannot exist (above pid_max's ceiling of 2^22): gone, counted as vanished.
        let (gone, stats) = process_of(u32::MAX);
        assert_eq!(gone, None);
        assert_eq!(stats.vanished, 1, "{stats:?}");
    }

    #[test]
    fn real_uid_from_status() {
        let s =
            b"Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t1000\t1000\nGid:\t100\t100\t100\t100\n";
        assert_eq!(status_real_uid(s), Some(1000));
        assert_eq!(status_real_uid(b"Name:\tx\n"), None);
        assert_eq!(status_real_uid(b"Uid:\n"), None);
    }

    #[test]
    fn own_process_reads_back() {
        let proc_fd = open_dir_at(None, c"/proc").unwrap();
        let mut st = ResolveStats::default();
        let mut errs = Errors { stats: &mut st };
        let mut buf = Vec::new();
        let p = read_process(proc_fd.as_fd(), std::process::id(), &mut buf, &mut errs).unwrap();
        assert_eq!(p.pid, std::process::id());
        assert!(!p.comm.is_empty() && !p.comm.ends_with('\n'));
        assert!(!p.cmdline.contains('\0'));
        // SAFETY: getuid cannot fail.
        assert_eq!(p.uid, unsafe { libc::getuid() });
        // a pid that does not exist: vanished, no process
        assert!(read_process(proc_fd.as_fd(), u32::MAX - 1, &mut buf, &mut errs).is_none());
        assert_eq!(st.vanished, 1);
    }

    #[test]
    fn a_zombie_has_a_comm_and_an_empty_cmdline() {
        // an exited, not yet reaped child: its cmdline reads empty, like a kernel thread's
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
            assert!(std::time::Instant::now() < deadline, "child {pid} did not exit in 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        let proc_fd = open_dir_at(None, c"/proc").unwrap();
        let mut st = ResolveStats::default();
        let mut buf = Vec::new();
        let p =
            read_process(proc_fd.as_fd(), pid, &mut buf, &mut Errors { stats: &mut st }).expect("a zombie is listed");
        child.wait().unwrap();
        assert_eq!(p.comm, "true");
        assert_eq!(p.cmdline, "");
        assert_eq!(st, ResolveStats::default(), "no error counted");
    }
}
