//! The join: where the other end of a socket must be. This is the one place
//! that knows how a tuple held by one host maps to another host's view of
//! the same connection; NAT and network namespaces plug in here, and only
//! here. An address that no monitored host owns, or that two hosts claim
//! (loopback, link-local, a `docker0` 172.17.0.1 on every host), has no
//! other end: such sockets are never judged.
use crate::hosts::HostIdx;
use crate::Engine;
use halfopen_core::Tuple;

/// A socket on a host: the host and the tuple in that host's own view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKey {
    pub host: HostIdx,
    pub tuple: Tuple,
}

impl Engine {
    /// Where the other end of `t`, held by host `h`, must be, in that host's
    /// own view; None when it cannot be known (unmonitored or ambiguous
    /// address).
    pub(crate) fn other_end(&self, _h: HostIdx, t: Tuple) -> Option<SocketKey> {
        Some(SocketKey {
            host: self.hosts.owner_of(t.remote_ip())?,
            tuple: t.mirror(),
        })
    }
}
