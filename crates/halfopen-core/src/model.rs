//! Socket records, TCP states, sides, processes and listeners: what a
//! collector reads from its kernel, in a form independent of where it was
//! read (netlink or /proc) and of the wire.
use crate::tuple::Tuple;
use serde::Serialize;
use std::net::SocketAddr;

/// Kernel TCP states (include/net/tcp_states.h), numbered as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
}

impl TcpState {
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        use TcpState::*;
        Some(match n {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            12 => NewSynRecv,
            _ => return None,
        })
    }

    /// The name `ss` prints.
    pub fn name(self) -> &'static str {
        use TcpState::*;
        match self {
            Established => "ESTAB",
            SynSent => "SYN-SENT",
            SynRecv | NewSynRecv => "SYN-RECV",
            FinWait1 => "FIN-WAIT-1",
            FinWait2 => "FIN-WAIT-2",
            TimeWait => "TIME-WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE-WAIT",
            LastAck => "LAST-ACK",
            Listen => "LISTEN",
            Closing => "CLOSING",
        }
    }

    /// Bit for this state in a sock_diag `idiag_states` mask.
    pub fn mask_bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Every state that matters for matching: all but LISTEN and CLOSE.
    pub const MATCH_MASK: u32 =
        (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 11) | (1 << 12);
}

/// Which end of the connection this host holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The local port is not one of this host's listening ports.
    Client,
    /// The local port belongs to one of this host's listeners.
    Server,
}

/// The part of `struct tcp_info` halfopen uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpInfoLite {
    pub bytes_received: u64,
    pub bytes_acked: u64,
    pub last_data_recv_ms: u32,
    pub rtt_us: u32,
}

/// [`SocketRecord::inode`] of a socket that has an inode the source did not
/// read: the eBPF source follows sockets born since its last dump by their
/// transitions, which do not carry it (a connecting socket, or a connection
/// it saw leave the accept queue). Never 0, so never "in the accept queue".
pub const INODE_UNREAD: u64 = u64::MAX;

/// One TCP socket (not a listener) on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketRecord {
    /// Canonical; local = this host's end.
    pub tuple: Tuple,
    pub state: TcpState,
    pub side: Side,
    /// sock_diag cookie (0 when unknown): identifies the socket, unlike the
    /// 4-tuple, which a new connection may reuse a moment after the old closed.
    pub cookie: u64,
    /// 0 while the socket waits in an accept queue and for TIME_WAIT;
    /// [`INODE_UNREAD`] when the socket has one that the source did not read.
    pub inode: u64,
    pub uid: u32,
    /// A keepalive timer is armed on the socket.
    pub keepalive: bool,
    pub info: Option<TcpInfoLite>,
}

/// The process that owns a socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    pub cmdline: String,
    pub uid: u32,
}

/// A listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Canonical (a dual-stack `[::]` stays `[::]`).
    pub addr: SocketAddr,
    /// Accept queue length now (`ss -tln` Recv-Q).
    pub queue: u32,
    /// Accept queue limit (`ss -tln` Send-Q): min(listen backlog, somaxconn).
    pub backlog: u32,
    pub inode: u64,
    pub uid: u32,
    pub process: Option<Process>,
    /// The owning process has TCP wrappers (libwrap) mapped.
    pub libwrap: bool,
    /// Packets the kernel dropped on this listening socket (its sk_drops,
    /// sock_diag INET_DIAG_SKMEMINFO SK_MEMINFO_DROPS; `ss -tlm` d<N>),
    /// absolute; None when the source cannot read it (/proc/net/tcp).
    pub drops: Option<u64>,
}

/// Whether a listener bound to `listen` takes connections to `local` (both
/// canonical): the same address and port, or a wildcard of a family that can
/// accept it (`[::]` takes IPv4 too, `0.0.0.0` only IPv4). The one rule for
/// "this end is the server" and "this is its listener".
pub fn listener_accepts(listen: SocketAddr, local: SocketAddr) -> bool {
    let (lip, ip) = (listen.ip(), local.ip());
    listen.port() == local.port() && (lip == ip || lip.is_unspecified() && (lip.is_ipv6() || ip.is_ipv4()))
}

/// Ports this host listens on, for deciding sides. A socket whose local port
/// has a listener on the same address (or on a wildcard of a family that can
/// accept it) is the server side.
#[derive(Clone, Debug, Default)]
pub struct ListenerPorts {
    /// Sorted, deduplicated (address, port) pairs; wildcard addresses kept.
    entries: Vec<(std::net::IpAddr, u16)>,
}

impl ListenerPorts {
    pub fn new(listeners: impl IntoIterator<Item = SocketAddr>) -> Self {
        let mut entries: Vec<_> = listeners
            .into_iter()
            .map(|a| (crate::canonical_ip(a.ip()), a.port()))
            .collect();
        entries.sort();
        entries.dedup();
        ListenerPorts { entries }
    }

    /// Side of a socket with this local endpoint.
    pub fn side_of(&self, local: SocketAddr) -> Side {
        let local = SocketAddr::new(crate::canonical_ip(local.ip()), local.port());
        let hit = self
            .entries
            .iter()
            .any(|&(lip, lport)| listener_accepts(SocketAddr::new(lip, lport), local));
        if hit {
            Side::Server
        } else {
            Side::Client
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for n in 1..=12u8 {
            let s = TcpState::from_kernel(n).unwrap();
            assert_eq!(s as u8, n);
        }
        assert!(TcpState::from_kernel(0).is_none());
        assert!(TcpState::from_kernel(13).is_none());
        assert_eq!(TcpState::MATCH_MASK & TcpState::Listen.mask_bit(), 0);
        assert_ne!(TcpState::MATCH_MASK & TcpState::TimeWait.mask_bit(), 0);
    }

    #[test]
    fn sides() {
        let p = ListenerPorts::new([
            "0.0.0.0:25".parse().unwrap(),
            "[::]:3306".parse().unwrap(),
            "198.18.0.1:80".parse().unwrap(),
        ]);
        assert_eq!(p.side_of("198.18.0.1:25".parse().unwrap()), Side::Server);
        // dual-stack wildcard accepts IPv4 (seen as mapped, folded to v4)
        assert_eq!(p.side_of("[::ffff:198.18.0.1]:3306".parse().unwrap()), Side::Server);
        assert_eq!(p.side_of("198.18.0.1:80".parse().unwrap()), Side::Server);
        // port 80 is only bound on another address
        assert_eq!(p.side_of("198.18.0.7:80".parse().unwrap()), Side::Client);
        // an IPv4 wildcard does not accept IPv6
        assert_eq!(p.side_of("[2001:db8::1]:25".parse().unwrap()), Side::Client);
        assert_eq!(p.side_of("198.18.0.1:40000".parse().unwrap()), Side::Client);
    }
}
