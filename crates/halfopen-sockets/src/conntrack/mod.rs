//! NAT'd TCP connections from the connection-tracking table of one network namespace (the
//! namespace of the thread that opens the socket), read through ctnetlink: a dump
//! ([`Conntrack::dump`]) and an event stream ([`ConntrackEvents::poll`]).
//!
//! Why: through NAT the two ends of a healthy connection hold different 4-tuples (the client
//! `client:p -> VIP:7000`, the server `backend:7000 <- client:p`, or `<- node:q` after SNAT), so
//! the join by mirrored tuple fails. The namespace that translated keeps a conntrack entry whose
//! original tuple is the client socket's tuple and whose reply tuple is the server socket's:
//! that is a [`NatEntry`].
//!
//! Parts: [`parse`] (pure decoding, fuzzable), `socket` ([`Conntrack`], [`ConntrackEvents`]),
//! `error` ([`ConntrackError`]). The codec is `netlink-packet-netfilter` (rust-netlink); the
//! socket is `netlink-sys`.
//!
//! Kernel facts this relies on (net/netfilter/nfnetlink.c, nf_conntrack_netlink.c,
//! nf_conntrack_ecache.c; checked on Linux 6.18 by tests/conntrack.rs where marked *tested*):
//! - **Capabilities.** `socket(AF_NETLINK, NETLINK_NETFILTER)` needs none. Every request (the
//!   dump) needs CAP_NET_ADMIN in the user namespace that owns the network namespace, held both
//!   by whoever opened the socket and by the sending thread (`nfnetlink_rcv` →
//!   `netlink_net_capable`), else the kernel answers EPERM (*tested*). Joining the
//!   NFNLGRP_CONNTRACK_* groups needs CAP_NET_ADMIN too (`netlink_bind`/`NETLINK_ADD_MEMBERSHIP`
//!   → `netlink_allowed`; nfnetlink does not set NL_CFG_F_NONROOT_RECV), else EPERM (*tested*).
//!   A larger event buffer than `net.core.rmem_max` needs CAP_NET_ADMIN in the initial user
//!   namespace (SO_RCVBUFFORCE); without it the buffer is capped silently.
//! - **Not available.** Without nfnetlink in the kernel, `socket()` fails with EPROTONOSUPPORT;
//!   without ctnetlink (module `nf_conntrack_netlink` not loaded and not loadable), the request
//!   is answered EINVAL (`nfnetlink_rcv_msg` finds no subsystem). Both are
//!   [`ConntrackError::NotAvailable`] (not testable here: this kernel has them built in).
//!   A namespace with no NAT or conntrack rule has no conntrack hooks registered: nothing is
//!   tracked there, and the dump succeeds with no entries (*tested*).
//! - **Dump.** One IPCTNL_MSG_CT_GET dump with family AF_UNSPEC returns the entries of every
//!   layer-3 family of this namespace (*tested* for IPv4 and IPv6). The kernel deletes the
//!   expired entries it meets during a dump, which emits their DESTROY events.
//! - **NEW events carry the translation.** An entry is confirmed (and its NEW event sent) when
//!   its first packet leaves the last hook (POSTROUTING or INPUT), after DNAT (PREROUTING,
//!   OUTPUT) and SNAT (POSTROUTING) have set the reply tuple, so NEW and DESTROY suffice;
//!   UPDATE events are not subscribed (*tested*: the NEW event's reply tuple is the backend
//!   socket's).
//! - **Events exist only for entries created while someone listened.** With
//!   `net.netfilter.nf_conntrack_events = 2` ("auto", the default on this 6.18 kernel), an entry
//!   gets the event extension only if a ctnetlink listener existed in its namespace when it was
//!   created; an entry created before the first subscription never sends a DESTROY event
//!   (*tested*). So: subscribe first, then dump; and entries learnt from a dump must be
//!   re-validated by a later dump (or the sysctl set to 1).
//! - **DESTROY is late.** A closed TCP connection's entry lives on in TIME_WAIT (120 s) or
//!   CLOSE (10 s after a RST) and is deleted by a lazy garbage collector (seen: no DESTROY 20 s
//!   after a 1 s CLOSE timeout ran out), or at once by a dump that meets it expired, or by
//!   `conntrack -D` (which the tests use). Recent kernels put the last TCP state in DESTROY
//!   events (*tested*: CLOSE after a RST).
//! - **Overrun.** Events are multicast datagrams; when the socket's receive buffer is full the
//!   kernel drops them and the next `recv` fails with ENOBUFS (`netlink_overrun`). That is
//!   reported as [`NatEvent::Lost`], meaning "re-dump" (*tested* with a tiny buffer).

pub mod parse;

mod error;
mod socket;

pub use error::ConntrackError;
pub use parse::{CtEntry, CtKind, ParseError};
pub use socket::{
    Conntrack, ConntrackEvents, DumpStats, EventStats, DEFAULT_EVENT_BUFFER, MAX_DATAGRAMS_PER_POLL, RECV_BUF_LEN,
    RECV_TIMEOUT,
};

use halfopen_core::Tuple;

/// One NAT'd TCP connection as the translating namespace's conntrack table holds it.
///
/// `original` is exactly the tuple the originating (client) socket holds: local = the client
/// end, remote = the address it dialed (e.g. the VIP). `reply` is exactly the tuple the real
/// server socket holds: local = the real server end, remote = the peer as the server sees it
/// (the client, or the node's address after SNAT). NAT'd means `reply != original.mirror()`.
///
/// Kernel source: `struct nf_conn` tuplehash[IP_CT_DIR_ORIGINAL / IP_CT_DIR_REPLY], sent as
/// CTA_TUPLE_ORIG / CTA_TUPLE_REPLY (include/uapi/linux/netfilter/nfnetlink_conntrack.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatEntry {
    /// `Tuple::new(orig_src, orig_dst)`: the client socket's (local, remote).
    pub original: Tuple,
    /// `Tuple::new(reply_src, reply_dst)`: the server socket's (local, remote).
    pub reply: Tuple,
    /// CTA_ID: the entry's id (u32, a keyed hash of the entry's address, so unique among live
    /// entries of the kernel but reusable after deletion). `None` if the kernel did not send it.
    pub id: Option<u32>,
    /// CTA_ZONE: conntrack zone (u16); 0, the default zone, when absent. The same tuples may
    /// exist once per zone.
    pub zone: u16,
    /// CTA_STATUS: IPS_* bits (include/uapi/linux/netfilter/nf_conntrack_common.h), e.g.
    /// [`parse::IPS_SRC_NAT`], [`parse::IPS_DST_NAT`].
    pub status: u32,
    /// CTA_PROTOINFO_TCP_STATE: conntrack's view of the TCP state, which changes over the
    /// entry's life; `None` in DESTROY events of kernels older than about 6.0, which carry no
    /// protocol info. Key a table of entries by `(zone, original)` or `id`, not by the whole
    /// value.
    pub tcp_state: Option<CtTcpState>,
}

impl NatEntry {
    /// Whether the destination was translated (IPS_DST_NAT: DNAT, a published port, a
    /// ClusterIP).
    pub fn is_dnat(&self) -> bool {
        self.status & parse::IPS_DST_NAT != 0
    }

    /// Whether the source was translated (IPS_SRC_NAT: SNAT, masquerade).
    pub fn is_snat(&self) -> bool {
        self.status & parse::IPS_SRC_NAT != 0
    }
}

/// A change of the set of NAT'd TCP entries, from the conntrack event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatEvent {
    /// A NAT'd TCP entry was confirmed (NFNLGRP_CONNTRACK_NEW).
    New(NatEntry),
    /// A NAT'd TCP entry was deleted (NFNLGRP_CONNTRACK_DESTROY), with its last TCP state on
    /// recent kernels.
    Destroy(NatEntry),
    /// The kernel dropped events because the socket's receive buffer was full (recv failed
    /// with ENOBUFS). Events before and after this one are real, but some in between are
    /// missing: re-dump the table ([`Conntrack::dump`]) and rebuild from it.
    Lost,
}

/// Conntrack's TCP state (`enum tcp_conntrack`, include/uapi/linux/netfilter/nf_conntrack_tcp.h).
/// This is the tracker's view of the connection, not either socket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtTcpState {
    None,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    /// TCP_CONNTRACK_SYN_SENT2 (= the obsolete TCP_CONNTRACK_LISTEN, 9): simultaneous open.
    SynSent2,
    /// A value this code does not know.
    Other(u8),
}

impl CtTcpState {
    /// From the kernel's number.
    pub fn from_raw(v: u8) -> CtTcpState {
        match v {
            0 => CtTcpState::None,
            1 => CtTcpState::SynSent,
            2 => CtTcpState::SynRecv,
            3 => CtTcpState::Established,
            4 => CtTcpState::FinWait,
            5 => CtTcpState::CloseWait,
            6 => CtTcpState::LastAck,
            7 => CtTcpState::TimeWait,
            8 => CtTcpState::Close,
            9 => CtTcpState::SynSent2,
            v => CtTcpState::Other(v),
        }
    }
}
