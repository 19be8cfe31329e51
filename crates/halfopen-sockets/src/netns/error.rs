//! [`NetnsError`]: why a network namespace could not be found, opened,
//! entered or identified. Permission refusals are their own variants and
//! name the capability that is missing ([`NetnsError::missing_capability`]).
use std::io;
use std::path::PathBuf;

use super::caps::Capability;
use super::id::{NetnsId, NsInode};

/// Why namespace discovery or entering failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `setns(fd, CLONE_NEWNET)` answered EPERM. The kernel wants
    /// CAP_SYS_ADMIN in the caller's user namespace *and* in the user
    /// namespace owning the target (`netns_install`,
    /// net/core/net_namespace.c). `has_cap_sys_admin` is whether the
    /// entering thread's effective set held CAP_SYS_ADMIN (None: the set
    /// could not be read); true means the target is owned by a user
    /// namespace in which the caller is not privileged.
    #[error(
        "entering network namespace {target} ({path}) was refused: setns(CLONE_NEWNET) needs {missing} in this \
         process's user namespace and in the user namespace that owns the target; {}",
        match has_cap_sys_admin {
            Some(false) => "this thread's effective capability set lacks it",
            Some(true) => "this thread has it in its own user namespace, so the target belongs to a user namespace where it does not (a rootless container?)",
            None => "this thread's capabilities could not be read",
        }
    )]
    SetnsDenied {
        target: NsInode,
        path: PathBuf,
        missing: Capability,
        has_cap_sys_admin: Option<bool>,
    },

    /// Opening a namespace file answered EACCES or EPERM. For
    /// `/proc/PID/ns/net` that is the ptrace read check
    /// (`PTRACE_MODE_READ_FSCREDS` in `proc_ns_get_link`): same uid and a
    /// dumpable target and no capability the caller lacks, or
    /// CAP_SYS_PTRACE; `missing` is then `Some(SysPtrace)`. For any other
    /// path (`/run/netns/NAME`) it is file permission, and `missing` is None.
    #[error("opening {path} was refused ({source}): {}", match missing {
        Some(c) => format!("reading another process's namespace needs ptrace read access: the same uid as that process and every capability it has, or {c}"),
        None => "no read permission on the file".to_string(),
    })]
    OpenDenied {
        path: PathBuf,
        missing: Option<Capability>,
        #[source]
        source: io::Error,
    },

    /// None of the paths that led to this namespace does any more: its
    /// processes exited and its /run/netns names were removed (or now lead
    /// to another namespace). The namespace is dead unless something else
    /// holds it; drop every handle and worker of it.
    #[error("network namespace {inode} is gone: none of {tried:?} leads to it any more")]
    Gone { inode: NsInode, tried: Vec<PathBuf> },

    /// The path is not a network namespace: not on nsfs (a /run/netns
    /// placeholder whose bind mount is gone), or a namespace of another type.
    #[error("{path} is not a network namespace: {why}")]
    NotNetns { path: PathBuf, why: NotNetns },

    /// Any other system call failure (`op`: "open", "fstat", "fstatfs",
    /// "ioctl(NS_GET_NSTYPE)", "stat", "setns", "read dir").
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// After setns the thread's own namespace was not the one asked for
    /// (`/proc/thread-self/ns/net` or the cookie of a socket made there
    /// differed). Cannot happen while the handle's fd pins the namespace;
    /// reported rather than trusted.
    #[error("the thread entered {found} while {expected} was asked for")]
    WrongNamespace { expected: NetnsId, found: NetnsId },

    /// Reading SO_NETNS_COOKIE failed (other than ENOPROTOOPT, which means
    /// "kernel before 5.14" and gives no cookie).
    #[error("reading the namespace cookie (SO_NETNS_COOKIE) inside {inode}: {source}")]
    Cookie {
        inode: NsInode,
        #[source]
        source: io::Error,
    },

    /// std::thread::Builder::spawn failed.
    #[error("spawning thread {name:?}: {source}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },

    /// A thread of this module died before it reported (a panic inside
    /// this module: a bug).
    #[error("thread {thread} died before reporting")]
    ThreadDied { thread: String },

    /// [`super::run_in`]: the closure panicked inside the namespace.
    #[error("the work run inside {id} panicked: {message}")]
    WorkPanicked { id: NetnsId, message: String },
}

/// Why a file is not a network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNetns {
    /// Not on nsfs (`fstatfs` f_type, NSFS_MAGIC is 0x6e736673): usually a
    /// /run/netns placeholder whose bind mount is gone.
    NotNsfs { fs_type: i64 },
    /// A namespace of another type (`NS_GET_NSTYPE` answer, a CLONE_NEW* flag).
    OtherType { nstype: i32 },
}

impl std::fmt::Display for NotNetns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotNetns::NotNsfs { fs_type } => write!(
                f,
                "not on nsfs (filesystem type {fs_type:#x}): a /run/netns name whose namespace mount is gone?"
            ),
            NotNetns::OtherType { nstype } => write!(f, "a namespace of type {nstype:#x}, not CLONE_NEWNET"),
        }
    }
}

impl NetnsError {
    /// The capability whose absence caused this error, if it is a refusal
    /// that a capability would have avoided.
    pub fn missing_capability(&self) -> Option<Capability> {
        match self {
            NetnsError::SetnsDenied { missing, .. } => Some(*missing),
            NetnsError::OpenDenied { missing, .. } => *missing,
            _ => None,
        }
    }

    /// Whether this is a permission refusal (as opposed to a namespace that
    /// is gone or a failure of the system).
    pub fn is_denied(&self) -> bool {
        matches!(self, NetnsError::SetnsDenied { .. } | NetnsError::OpenDenied { .. })
    }
}

/// EACCES or EPERM.
pub(crate) fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// ENOENT or ESRCH: the process (or the name) went away.
pub(crate) fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH))
}
