//! [`discover`]: every network namespace on the machine that a process is
//! in or that has a /run/netns name, deduplicated by nsfs inode, with a
//! bounded sample of member pids, and everything that could not be read
//! counted and described.
//!
//! Where namespaces are found:
//! - `/proc/PID/ns/net` for every process (the main thread's namespace; a
//!   thread that `setns`ed elsewhere is not seen, which is what keeps a
//!   collector's own worker threads from keeping their namespaces "alive"
//!   in the discovery);
//! - `/run/netns/NAME` (`ip netns add`, CNI plugins): bind mounts of nsfs
//!   files, which keep a namespace alive with no process in it.
//!
//! Not found: namespaces held only by an open fd, by a thread other than a
//! main thread, or by a bind mount elsewhere (e.g. `/run/docker/netns/*`,
//! whose containers have processes anyway, so they are found through /proc).
//!
//! Memory is bounded by the number of namespaces, not processes: at most
//! [`DiscoverOptions::pids_per_namespace`] pids are kept per namespace
//! (the lowest, usually the container's init), at most
//! [`DiscoverOptions::max_namespaces`] namespaces and
//! [`DiscoverOptions::max_problems`] problem descriptions; everything past a
//! bound is counted.
use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::enter::{enter_here, NetnsHandle};
use super::error::{is_gone, is_permission, NetnsError, NotNetns};
use super::id::{current_cookie, inode_at, NetnsCookie, NetnsId, NsInode};
use crate::sys::{for_each_dirent, open_dir_at, parse_u32, StackPath};

/// Where and how much [`discover`] looks.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The proc filesystem (`/proc`; a host's /proc mounted elsewhere in a
    /// container works too, as long as it belongs to the caller's pid
    /// namespace or an ancestor: its `thread-self` must resolve).
    pub proc_root: PathBuf,
    /// The directory of named namespaces (`/run/netns`, which `ip netns` and
    /// CNI use; `/var/run/netns` is the same directory on systemd machines).
    pub run_netns: PathBuf,
    /// Member pids kept per namespace (the lowest ones). Default 8.
    pub pids_per_namespace: usize,
    /// Namespaces kept; memberships in further namespaces are counted in
    /// [`DiscoveryStats::unrecorded_members`]. Default 65,536.
    pub max_namespaces: usize,
    /// Problem descriptions kept; further ones are counted in
    /// [`Discovery::problems_dropped`]. Default 32.
    pub max_problems: usize,
    /// Read every namespace's cookie by entering it from a short-lived
    /// thread (needs CAP_SYS_ADMIN; refusals are counted, the namespaces are
    /// still listed with `cookie: None`). The caller's own namespace's
    /// cookie is read without entering. Default true.
    pub probe_cookies: bool,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            proc_root: PathBuf::from("/proc"),
            run_netns: PathBuf::from("/run/netns"),
            pids_per_namespace: 8,
            max_namespaces: 65_536,
            max_problems: 32,
            probe_cookies: true,
        }
    }
}

/// One network namespace found by [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    /// Its nsfs inode (unique among live namespaces).
    pub inode: NsInode,
    /// Its cookie, when probed (see [`DiscoverOptions::probe_cookies`]).
    pub cookie: Option<NetnsCookie>,
    /// Its names under /run/netns, sorted (usually zero or one).
    pub names: Vec<String>,
    /// Member processes (pids in the proc filesystem's pid namespace),
    /// ascending, at most [`DiscoverOptions::pids_per_namespace`].
    pub pids: Vec<u32>,
    /// How many processes were seen in it (all, not only those in `pids`).
    pub members: u32,
    /// It is the namespace of the thread that called [`discover`].
    pub is_self: bool,
}

impl Netns {
    /// Its full identity, if the cookie is known.
    pub fn id(&self) -> Option<NetnsId> {
        self.cookie.map(|c| NetnsId {
            inode: self.inode,
            cookie: Some(c),
        })
    }

    /// Its first /run/netns name.
    pub fn name(&self) -> Option<&str> {
        self.names.first().map(String::as_str)
    }
}

/// What kind of trouble a [`DiscoveryProblem`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// `/proc/PID/ns/net` refused (EACCES/EPERM: no ptrace read access).
    ProcDenied { pid: u32 },
    /// `/proc/PID/ns/net` failed otherwise.
    ProcError { pid: u32 },
    /// `/run/netns/NAME` is not an nsfs mount (its namespace was unmounted
    /// but the placeholder file is left: `ip netns delete` interrupted).
    NameStale { name: String },
    /// `/run/netns/NAME` is a namespace of another type.
    NameNotNet { name: String },
    /// `/run/netns/NAME` could not be opened or checked.
    NameError { name: String },
    /// The /run/netns directory exists but could not be listed.
    RunNetnsUnreadable,
    /// Entering the namespace to read its cookie was refused.
    CookieDenied { inode: NsInode },
    /// Reading the cookie failed otherwise.
    CookieError { inode: NsInode },
}

impl ProblemKind {
    /// What this problem keeps the discovery from knowing.
    pub fn prevents(&self) -> &'static str {
        match self {
            ProblemKind::ProcDenied { .. } => {
                "this process's namespace is not seen: a namespace whose only members are such processes is missed \
                 (needs CAP_SYS_PTRACE, or the same uid and every capability of the process)"
            }
            ProblemKind::ProcError { .. } => "this process's namespace is not seen",
            ProblemKind::NameStale { .. } => "nothing: the name leads to no namespace (remove the file)",
            ProblemKind::NameNotNet { .. } => "nothing: the name is not a network namespace",
            ProblemKind::NameError { .. } | ProblemKind::RunNetnsUnreadable => {
                "a named namespace without processes is missed"
            }
            ProblemKind::CookieDenied { .. } => {
                "the namespace is listed without its cookie, and cannot be entered (setns needs CAP_SYS_ADMIN)"
            }
            ProblemKind::CookieError { .. } => "the namespace is listed without its cookie",
        }
    }
}

/// One thing [`discover`] could not read, and what that hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryProblem {
    pub kind: ProblemKind,
    pub path: PathBuf,
    /// The OS error number, when the problem is one.
    pub errno: Option<i32>,
    /// The error as text.
    pub error: String,
}

impl fmt::Display for DiscoveryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; {}", self.path.display(), self.error, self.kind.prevents())
    }
}

/// Counts of one [`discover`] run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Processes whose namespace was read.
    pub processes: u64,
    /// Processes that exited (or were zombies: no namespace left) between
    /// the listing of /proc and the read of their namespace. Normal.
    pub vanished: u64,
    /// Processes whose namespace was refused (EACCES/EPERM).
    pub denied: u64,
    /// Processes whose namespace failed to read for another reason.
    pub proc_errors: u64,
    /// Member pids not kept because of [`DiscoverOptions::pids_per_namespace`].
    pub pids_not_kept: u64,
    /// Memberships (process or name) in namespaces past
    /// [`DiscoverOptions::max_namespaces`], not recorded.
    pub unrecorded_members: u64,
    /// /run/netns entries that are network namespaces.
    pub names: u64,
    /// /run/netns entries that are stale placeholders or other namespace types.
    pub stale_names: u64,
    /// /run/netns entries (or the directory) that could not be read.
    pub name_errors: u64,
    /// Cookies read.
    pub cookies: u64,
    /// Cookie probes refused (no CAP_SYS_ADMIN for setns).
    pub cookies_denied: u64,
    /// Namespaces that died between the scan and the cookie probe.
    pub cookies_gone: u64,
    /// Cookie probes that failed otherwise.
    pub cookie_errors: u64,
    /// Wall time of the whole discovery.
    pub elapsed: Duration,
}

/// The result of [`discover`].
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Every namespace found, by inode.
    pub namespaces: Vec<Netns>,
    pub stats: DiscoveryStats,
    /// What could not be read, at most [`DiscoverOptions::max_problems`].
    pub problems: Vec<DiscoveryProblem>,
    /// Problems past that bound (counted in `stats` too).
    pub problems_dropped: u64,
}

impl Discovery {
    /// The caller's own namespace (always present in a successful discovery).
    pub fn own(&self) -> Option<&Netns> {
        self.namespaces.iter().find(|n| n.is_self)
    }

    /// The namespace with this inode.
    pub fn get(&self, inode: NsInode) -> Option<&Netns> {
        self.namespaces
            .binary_search_by_key(&inode, |n| n.inode)
            .ok()
            .map(|i| &self.namespaces[i])
    }

    /// The namespace with this /run/netns name.
    pub fn named(&self, name: &str) -> Option<&Netns> {
        self.namespaces.iter().find(|n| n.names.iter().any(|m| m == name))
    }

    /// The namespace a sampled member pid is in.
    pub fn with_pid(&self, pid: u32) -> Option<&Netns> {
        self.namespaces.iter().find(|n| n.pids.contains(&pid))
    }

    /// Whether a held handle's namespace is still in use: listed here
    /// (it has a member process or a /run/netns name). When false, drop the
    /// handle and stop its workers: only they keep the namespace alive.
    pub fn still_used(&self, handle: &NetnsHandle) -> bool {
        self.get(handle.inode()).is_some()
    }
}

struct Collect<'o> {
    opts: &'o DiscoverOptions,
    index: HashMap<NsInode, usize>,
    list: Vec<Netns>,
    stats: DiscoveryStats,
    problems: Vec<DiscoveryProblem>,
    problems_dropped: u64,
}

impl Collect<'_> {
    fn slot(&mut self, inode: NsInode) -> Option<&mut Netns> {
        let i = match self.index.get(&inode) {
            Some(&i) => i,
            None => {
                if self.list.len() >= self.opts.max_namespaces {
                    self.stats.unrecorded_members += 1;
                    return None;
                }
                self.list.push(Netns {
                    inode,
                    cookie: None,
                    names: Vec::new(),
                    pids: Vec::new(),
                    members: 0,
                    is_self: false,
                });
                self.index.insert(inode, self.list.len() - 1);
                self.list.len() - 1
            }
        };
        Some(&mut self.list[i])
    }

    fn member(&mut self, inode: NsInode, pid: u32) {
        let keep = self.opts.pids_per_namespace;
        let Some(ns) = self.slot(inode) else { return };
        ns.members = ns.members.saturating_add(1);
        let kept = ns.pids.len() < keep;
        if kept {
            ns.pids.push(pid);
        }
        if !kept {
            self.stats.pids_not_kept += 1;
        }
    }

    fn problem(&mut self, kind: ProblemKind, path: PathBuf, e: &dyn fmt::Display, errno: Option<i32>) {
        if self.problems.len() < self.opts.max_problems {
            self.problems.push(DiscoveryProblem {
                kind,
                path,
                errno,
                error: e.to_string(),
            });
        } else {
            self.problems_dropped += 1;
        }
    }

    fn io_problem(&mut self, kind: ProblemKind, path: PathBuf, e: &io::Error) {
        self.problem(kind, path, e, e.raw_os_error());
    }
}

fn cpath(p: &Path) -> Result<CString, NetnsError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| NetnsError::Io {
        op: "open",
        path: p.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
    })
}

/// Lists every network namespace that a process is in or that has a
/// /run/netns name (see the module documentation), sorted by inode, the
/// caller's own (that of the calling *thread*) marked `is_self`.
///
/// Errors (the discovery as a whole failed, nothing can be said):
/// `<proc_root>` cannot be opened or listed, or the calling thread's own
/// `<proc_root>/thread-self/ns/net` cannot be read ([`NetnsError::Io`]);
/// the cookie-probing thread cannot be spawned ([`NetnsError::Spawn`]).
/// Everything else (a process that exits mid-scan, a namespace refused, a
/// stale name, a refused cookie probe) is counted in
/// [`Discovery::stats`] and described in [`Discovery::problems`].
pub fn discover(opts: &DiscoverOptions) -> Result<Discovery, NetnsError> {
    let start = Instant::now();
    let mut c = Collect {
        opts,
        index: HashMap::new(),
        list: Vec::new(),
        stats: DiscoveryStats::default(),
        problems: Vec::new(),
        problems_dropped: 0,
    };

    let own_path = opts.proc_root.join("thread-self/ns/net");
    let own = inode_at(None, &cpath(&own_path)?).map_err(|source| NetnsError::Io {
        op: "stat",
        path: own_path.clone(),
        source,
    })?;
    // Always kept, even past max_namespaces.
    c.list.push(Netns {
        inode: own,
        cookie: None,
        names: Vec::new(),
        pids: Vec::new(),
        members: 0,
        is_self: true,
    });
    c.index.insert(own, 0);

    // Names first: their few problems (stale names) then come before the
    // possibly many /proc refusals of an unprivileged caller in the
    // bounded problem list.
    scan_run_netns(&mut c);
    scan_proc(&mut c)?;

    for ns in &mut c.list {
        ns.names.sort();
        ns.pids.sort_unstable();
    }
    c.list.sort_by_key(|n| n.inode);

    if opts.probe_cookies {
        probe_cookies(&mut c)?;
    }
    c.stats.elapsed = start.elapsed();
    Ok(Discovery {
        namespaces: c.list,
        stats: c.stats,
        problems: c.problems,
        problems_dropped: c.problems_dropped,
    })
}

fn scan_proc(c: &mut Collect<'_>) -> Result<(), NetnsError> {
    let root = c.opts.proc_root.clone();
    let dir = open_dir_at(None, &cpath(&root)?).map_err(|source| NetnsError::Io {
        op: "open",
        path: root.clone(),
        source,
    })?;
    let mut buf = vec![0u8; 32 * 1024];
    let listed = for_each_dirent(dir.as_fd(), &mut buf, |name| {
        let Some(pid) = parse_u32(name.to_bytes()) else {
            return ControlFlow::Continue(());
        };
        let Some(path) = StackPath::new(format_args!("{pid}/ns/net")) else {
            return ControlFlow::Continue(());
        };
        match inode_at(Some(dir.as_fd()), path.as_cstr()) {
            Ok(inode) => {
                c.stats.processes += 1;
                c.member(inode, pid);
            }
            Err(e) if is_gone(&e) => c.stats.vanished += 1,
            Err(e) if is_permission(&e) => {
                c.stats.denied += 1;
                c.io_problem(ProblemKind::ProcDenied { pid }, root.join(format!("{pid}/ns/net")), &e);
            }
            Err(e) => {
                c.stats.proc_errors += 1;
                c.io_problem(ProblemKind::ProcError { pid }, root.join(format!("{pid}/ns/net")), &e);
            }
        }
        ControlFlow::Continue(())
    });
    listed.map(|_| ()).map_err(|source| NetnsError::Io {
        op: "read dir",
        path: root,
        source,
    })
}

fn scan_run_netns(c: &mut Collect<'_>) {
    let dir = c.opts.run_netns.clone();
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        // No named namespace was ever made on this machine.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            c.stats.name_errors += 1;
            c.io_problem(ProblemKind::RunNetnsUnreadable, dir, &e);
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                c.stats.name_errors += 1;
                c.io_problem(ProblemKind::RunNetnsUnreadable, dir.clone(), &e);
                return;
            }
        };
        let path = entry.path();
        // Non-UTF-8 names are kept lossily (U+FFFD); opening by such a name
        // fails, the namespace is still listed and reachable by pid.
        let name = entry.file_name().to_string_lossy().into_owned();
        match NetnsHandle::open_named(&dir, &name) {
            Ok(h) => {
                c.stats.names += 1;
                if let Some(ns) = c.slot(h.inode()) {
                    ns.names.push(name);
                }
            }
            Err(NetnsError::NotNetns { why, .. }) => {
                c.stats.stale_names += 1;
                let kind = match why {
                    NotNetns::NotNsfs { .. } => ProblemKind::NameStale { name },
                    NotNetns::OtherType { .. } => ProblemKind::NameNotNet { name },
                };
                c.problem(kind, path, &why, None);
            }
            // Deleted between the listing and the open: normal.
            Err(NetnsError::Io { ref source, .. }) if is_gone(source) => {}
            Err(e) => {
                c.stats.name_errors += 1;
                let errno = match &e {
                    NetnsError::Io { source, .. } | NetnsError::OpenDenied { source, .. } => source.raw_os_error(),
                    _ => None,
                };
                c.problem(ProblemKind::NameError { name }, path, &e, errno);
            }
        }
    }
}

/// Reads each namespace's cookie: the caller's own from a socket made here,
/// the others from one short-lived thread that enters them in turn (it
/// opens each through [`NetnsHandle::open_discovered`] and checks the
/// inode, so a namespace that died in between is counted, never
/// misattributed). The thread ends when done: it never runs anything else.
fn probe_cookies(c: &mut Collect<'_>) -> Result<(), NetnsError> {
    if let Some(i) = c.list.iter().position(|n| n.is_self) {
        match current_cookie() {
            Ok(Some(k)) => {
                c.list[i].cookie = Some(k);
                c.stats.cookies += 1;
            }
            Ok(None) => {} // kernel before 5.14
            Err(e) => {
                c.stats.cookie_errors += 1;
                let inode = c.list[i].inode;
                c.io_problem(ProblemKind::CookieError { inode }, PathBuf::from("SO_NETNS_COOKIE"), &e);
            }
        }
    }
    let todo: Vec<(usize, Netns)> = c
        .list
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.is_self)
        .map(|(i, n)| (i, n.clone()))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let opts = c.opts.clone();
    let prober = std::thread::Builder::new()
        .name("netns-probe".into())
        .spawn(move || {
            todo.into_iter()
                .map(|(i, ns)| {
                    let r = NetnsHandle::open_discovered(&ns, &opts).and_then(|h| enter_here(&h));
                    (i, r)
                })
                .collect::<Vec<_>>()
        })
        .map_err(|source| NetnsError::Spawn {
            name: "netns-probe".into(),
            source,
        })?;
    let results = prober.join().map_err(|_| NetnsError::ThreadDied {
        thread: "netns-probe".into(),
    })?;
    for (i, r) in results {
        let inode = c.list[i].inode;
        match r {
            Ok(NetnsId { cookie: Some(k), .. }) => {
                c.list[i].cookie = Some(k);
                c.stats.cookies += 1;
            }
            Ok(NetnsId { cookie: None, .. }) => {} // kernel before 5.14
            Err(NetnsError::Gone { .. }) => c.stats.cookies_gone += 1,
            Err(e) => {
                let denied = e.is_denied();
                let (kind, path) = match &e {
                    NetnsError::SetnsDenied { path, .. } => (ProblemKind::CookieDenied { inode }, path.clone()),
                    NetnsError::OpenDenied { path, .. } => (ProblemKind::CookieDenied { inode }, path.clone()),
                    _ => (ProblemKind::CookieError { inode }, PathBuf::from(inode.to_string())),
                };
                if denied {
                    c.stats.cookies_denied += 1;
                } else {
                    c.stats.cookie_errors += 1;
                }
                c.problem(kind, path, &e, None);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_found_and_marked() {
        let opts = DiscoverOptions {
            probe_cookies: false,
            ..Default::default()
        };
        let d = discover(&opts).unwrap();
        let own = d.own().expect("own namespace listed");
        let me = inode_at(None, c"/proc/thread-self/ns/net").unwrap();
        assert_eq!(own.inode, me);
        assert!(own.members >= 1, "this process is a member");
        assert!(d.stats.processes >= 1);
        assert_eq!(d.namespaces.iter().filter(|n| n.is_self).count(), 1);
        assert!(d.namespaces.windows(2).all(|w| w[0].inode < w[1].inode));
        assert_eq!(d.get(me).map(|n| n.inode), Some(me));
    }

    #[test]
    fn bounds_hold() {
        let opts = DiscoverOptions {
            probe_cookies: false,
            pids_per_namespace: 1,
            max_namespaces: 1,
            ..Default::default()
        };
        let d = discover(&opts).unwrap();
        assert!(d.namespaces.iter().all(|n| n.pids.len() <= 1));
        let own = d.own().unwrap();
        assert_eq!(u64::from(own.members) - own.pids.len() as u64, d.stats.pids_not_kept);
        assert_eq!(d.namespaces.len(), 1, "only the own namespace fits");
    }

    #[test]
    fn a_missing_proc_is_an_error() {
        let opts = DiscoverOptions {
            proc_root: PathBuf::from("/nonexistent-proc"),
            ..Default::default()
        };
        match discover(&opts) {
            Err(NetnsError::Io { op: "stat", .. }) => {}
            other => panic!("expected an Io error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_run_netns_is_no_problem() {
        let opts = DiscoverOptions {
            run_netns: PathBuf::from("/nonexistent-run-netns"),
            probe_cookies: false,
            ..Default::default()
        };
        let d = discover(&opts).unwrap();
        assert_eq!(d.stats.name_errors, 0);
        assert!(d.namespaces.iter().all(|n| n.names.is_empty()));
    }
}
