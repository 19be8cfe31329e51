//! The crate's error type: [`ScanError`], for everything that reads the
//! kernel (netlink sock_diag, /proc/net/tcp, getifaddrs).
//!
//! Process attribution ([`crate::owners`]) does not fail as a whole: a walk of
//! /proc meets processes that exit and fds it may not read, and counts them in
//! its [`crate::owners::ResolveStats`] instead.
use std::io;
use std::path::PathBuf;

/// Why reading the kernel's socket tables failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A system call on the NETLINK_SOCK_DIAG socket failed
    /// (`op` is "socket", "bind", "connect", "send", "recv", "setsockopt").
    #[error("netlink sock_diag {op}: {source}")]
    Netlink {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// The kernel answered a dump request with NLMSG_ERROR, or ended it with
    /// NLMSG_DONE carrying a negative code.
    #[error("kernel refused the sock_diag dump of {family}: {source}")]
    Kernel {
        family: &'static str,
        #[source]
        source: io::Error,
    },

    /// The kernel's answer could not be parsed.
    #[error("malformed sock_diag response: {0}")]
    Parse(#[from] crate::diag::ParseError),

    /// The dump was marked NLM_F_DUMP_INTR (the table changed under it) twice
    /// in a row.
    #[error("sock_diag dump of {family} was interrupted (NLM_F_DUMP_INTR) twice in a row")]
    DumpInterrupted { family: &'static str },

    /// A datagram did not fit in the receive buffer even after it grew.
    #[error("sock_diag datagram of {size} bytes did not fit a {capacity}-byte buffer twice in a row")]
    Truncated { size: usize, capacity: usize },

    /// Opening or reading a /proc file failed.
    #[error("reading {path}: {source}")]
    Proc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A line of /proc/net/tcp{,6} did not parse.
    #[error("{path} line {line}: {source}")]
    ProcParse {
        path: PathBuf,
        line: usize,
        #[source]
        source: crate::procnet::ParseError,
    },

    /// getifaddrs(3) failed.
    #[error("getifaddrs: {0}")]
    Ifaddrs(#[source] io::Error),
}

impl ScanError {
    /// The OS error number behind this error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            ScanError::Netlink { source, .. }
            | ScanError::Kernel { source, .. }
            | ScanError::Proc { source, .. }
            | ScanError::Ifaddrs(source) => source.raw_os_error(),
            _ => None,
        }
    }
}
