//! [`ConntrackError`]: why reading the conntrack table or its events failed, sorted into what a
//! caller does about it: "not available here" (say so once, go on without NAT),
//! "permission" (say what capability is missing), and everything else.
use std::io;

use super::parse::ParseError;

/// Why a conntrack dump or event read failed.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// Connection tracking cannot be read in this kernel or namespace: `socket()` failed with
    /// EPROTONOSUPPORT/EAFNOSUPPORT (no nfnetlink), or the kernel answered the request with
    /// EINVAL/EOPNOTSUPP/ENOENT (no ctnetlink subsystem: `nf_conntrack_netlink` not loaded;
    /// net/netfilter/nfnetlink.c `nfnetlink_rcv_msg`). `op` is the failed step.
    #[error(
        "connection tracking is not available in this network namespace ({op}: {source}); \
         NAT'd connections cannot be matched here"
    )]
    NotAvailable {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// EPERM/EACCES: reading conntrack (the dump request, or joining the event groups) needs
    /// CAP_NET_ADMIN in the user namespace owning this network namespace.
    #[error(
        "reading the conntrack table needs CAP_NET_ADMIN ({op}: {source}); \
         without it NAT'd connections cannot be matched and may be reported as half-open"
    )]
    PermissionDenied {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// Any other failed system call on the NETLINK_NETFILTER socket, or an error the kernel
    /// answered (`op` is "socket", "bind", "connect", "setsockopt", "send", "recv", "poll",
    /// "dump").
    #[error("netlink conntrack {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// A datagram could not be framed (its netlink headers are inconsistent).
    #[error("malformed ctnetlink datagram: {0}")]
    Parse(#[from] ParseError),

    /// The dump was marked NLM_F_DUMP_INTR twice in a row.
    #[error("conntrack dump was interrupted (NLM_F_DUMP_INTR) twice in a row")]
    DumpInterrupted,

    /// A dump datagram did not fit the receive buffer even after it grew.
    #[error("ctnetlink datagram of {size} bytes did not fit a {capacity}-byte buffer twice in a row")]
    Truncated { size: usize, capacity: usize },
}

impl ConntrackError {
    /// Sorts an OS error of step `op` into the three kinds (module doc).
    pub(crate) fn from_os(op: &'static str, source: io::Error) -> ConntrackError {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => ConntrackError::PermissionDenied { op, source },
            Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT) => ConntrackError::NotAvailable { op, source },
            _ => ConntrackError::Io { op, source },
        }
    }

    /// Sorts an errno the kernel answered to a request: as [`ConntrackError::from_os`], and
    /// EINVAL/EOPNOTSUPP/ENOENT mean that no ctnetlink subsystem took the request (our requests
    /// carry no attribute that could be invalid).
    pub(crate) fn from_kernel(op: &'static str, errno: i32) -> ConntrackError {
        let source = io::Error::from_raw_os_error(errno);
        match errno {
            libc::EINVAL | libc::EOPNOTSUPP | libc::ENOENT => ConntrackError::NotAvailable { op, source },
            _ => ConntrackError::from_os(op, source),
        }
    }

    /// Whether this says that conntrack cannot be read here at all (not loaded, not built).
    pub fn is_not_available(&self) -> bool {
        matches!(self, ConntrackError::NotAvailable { .. })
    }

    /// Whether this is a missing CAP_NET_ADMIN.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, ConntrackError::PermissionDenied { .. })
    }

    /// The OS error number behind this error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            ConntrackError::NotAvailable { source, .. }
            | ConntrackError::PermissionDenied { source, .. }
            | ConntrackError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_sort_into_the_three_kinds() {
        let os = |e| ConntrackError::from_os("socket", io::Error::from_raw_os_error(e));
        assert!(os(libc::EPERM).is_permission_denied());
        assert!(os(libc::EACCES).is_permission_denied());
        assert!(os(libc::EPROTONOSUPPORT).is_not_available());
        assert!(os(libc::EAFNOSUPPORT).is_not_available());
        assert!(matches!(os(libc::EMFILE), ConntrackError::Io { .. }));
        assert!(matches!(os(libc::EINVAL), ConntrackError::Io { .. }));

        let k = |e| ConntrackError::from_kernel("dump", e);
        assert!(k(libc::EINVAL).is_not_available());
        assert!(k(libc::EOPNOTSUPP).is_not_available());
        assert!(k(libc::ENOENT).is_not_available());
        assert!(k(libc::EPERM).is_permission_denied());
        assert!(matches!(k(libc::ENOMEM), ConntrackError::Io { .. }));
        assert_eq!(k(libc::ENOMEM).raw_os_error(), Some(libc::ENOMEM));
    }

    #[test]
    fn the_permission_error_names_the_capability_and_the_consequence() {
        let e = ConntrackError::from_kernel("dump", libc::EPERM);
        let text = e.to_string();
        assert!(text.contains("CAP_NET_ADMIN"), "{text}");
        assert!(text.contains("NAT"), "{text}");
        let e = ConntrackError::from_kernel("dump", libc::EINVAL);
        assert!(e.to_string().contains("not available"), "{e}");
    }
}
