//! The join: where the other end of a socket must be. This is the one place
//! that knows how a tuple held by one host maps to another host's view of
//! the same connection. An address that no monitored host owns, or that two
//! hosts claim (loopback, link-local, a `docker0` 172.17.0.1 on every host),
//! has no other end: such sockets are never judged.
//!
//! Through NAT: a connection that some host's conntrack translated (a
//! Kubernetes Service VIP DNAT'd on the client's node, a Docker published
//! port DNAT'd on the server's host, a pod masqueraded behind its node) is
//! held by the client as the entry's *original* tuple and by the server as
//! its *reply* tuple, exactly; the other end of one is the other. A host
//! whose translations are unknown (its conntrack could not be read) makes
//! every connection it holds or serves unjudgeable: a confident wrong
//! answer is worse than none.
use crate::hosts::HostIdx;
use crate::Engine;
use halfopen_core::{NatState, Tuple};

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
    pub(crate) fn other_end(&self, h: HostIdx, t: Tuple) -> Option<SocketKey> {
        // A client socket whose connection was translated: the server holds the reply.
        if let Some(reply) = self.hosts.nat_reply_of(&t) {
            let r = reply?; // hosts disagree on the translation: never judged
            return Some(SocketKey {
                host: self.hosts.owner_of(r.local_ip())?,
                tuple: r,
            });
        }
        // A server socket of a translated connection: the client holds the original.
        if let Some(original) = self.hosts.nat_original_of(&t) {
            let o = original?;
            return Some(SocketKey {
                host: self.hosts.owner_of(o.local_ip())?,
                tuple: o,
            });
        }
        let o = self.hosts.owner_of(t.remote_ip())?;
        let unknown = |x: HostIdx| matches!(self.hosts[x].nat_state, NatState::Unknown(_));
        if unknown(h) || unknown(o) {
            return None;
        }
        Some(SocketKey {
            host: o,
            tuple: t.mirror(),
        })
    }
}
