//! What a collector tells the reconciler, in domain types: the [`Hello`]
//! that opens a session, table [`Report`]s (a full table, then deltas), and
//! [`LookupAnswer`]s to the reconciler's lookups. halfopen-proto maps them to
//! and from the wire; the collector builds them and the engine applies them.
use crate::finding::{DropPath, Witness};
use crate::model::{Listener, Process, SocketRecord, TcpState};
use crate::tuple::Tuple;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Where a collector's table comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SourceKind {
    /// netlink sock_diag (inet_diag) dumps.
    #[default]
    Netlink,
    /// /proc/net/tcp{,6} (the fallback when the kernel refuses sock_diag).
    ProcNet,
    /// eBPF: TCP state transitions as they happen (tracepoint
    /// `sock:inet_sock_set_state`) between sock_diag dumps; lookups are still
    /// fresh sock_diag reads.
    Bpf,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [SourceKind::Netlink, SourceKind::ProcNet, SourceKind::Bpf];

    /// The name on the wire, in `halfopen hosts` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Netlink => "netlink",
            SourceKind::ProcNet => "proc",
            SourceKind::Bpf => "bpf",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?} (sources: netlink, proc, bpf)"))
    }
}

/// Where a collector runs, beyond the host id it claims: two collectors with
/// the same host id (cloned images, network namespaces of one machine, which
/// share its hostname) differ here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Instance {
    /// /etc/machine-id (machine-id(5)); empty when unreadable.
    pub machine_id: String,
    /// /proc/sys/kernel/random/boot_id (random(4)): new at every boot.
    pub boot_id: String,
    /// The collector's network namespace: its netns cookie (SO_NETNS_COOKIE),
    /// or its nsfs inode on kernels without cookies; 0 when unknown.
    pub netns: u64,
    /// The collector's process id (informational).
    pub pid: u32,
}

impl Instance {
    /// Whether `other` runs in the same place (machine, boot, network
    /// namespace): a collector restarted there replaces its own old session
    /// at once. An unknown instance (an older collector) matches anything.
    pub fn same_place(&self, other: &Instance) -> bool {
        self.is_unknown()
            || other.is_unknown()
            || (self.machine_id == other.machine_id && self.boot_id == other.boot_id && self.netns == other.netns)
    }

    pub fn is_unknown(&self) -> bool {
        self.machine_id.is_empty() && self.boot_id.is_empty() && self.netns == 0
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |s: &str| s.chars().take(8).collect::<String>();
        write!(
            f,
            "machine {}, boot {}, netns {}, pid {}",
            short(&self.machine_id),
            short(&self.boot_id),
            self.netns,
            self.pid
        )
    }
}

/// The first message of a collector's session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub host_id: String,
    /// Every address on the host's interfaces (loopback included; the
    /// reconciler ignores loopback and link-local for matching).
    pub addresses: Vec<IpAddr>,
    /// How often the collector reports, ms.
    pub interval_ms: u32,
    pub source: SourceKind,
    /// The collector's version (CARGO_PKG_VERSION).
    pub version: String,
    pub instance: Instance,
    /// What this collector cannot see, in words, found at start (a missing
    /// capability, a kernel feature): "owners of other users' sockets: the
    /// collector lacks CAP_SYS_PTRACE".
    pub blind_spots: Vec<String>,
    /// The machine's own host id when this host is one network namespace of
    /// a machine whose collector covers several (`HOSTID` of `HOSTID/NAME`);
    /// None for the machine's own namespace and for older collectors.
    pub parent: Option<String>,
    /// The namespace's readable name when `parent` is set: its /run/netns
    /// name, its container or pod, or `netns-INODE`.
    pub netns_name: Option<String>,
    /// The container whose network namespace this host is (a Docker name,
    /// else `<runtime>-<short id>`), when it could be found.
    pub container: Option<String>,
    /// The Kubernetes pod (`namespace/name`) whose network namespace this
    /// host is, when it could be found.
    pub pod: Option<String>,
}

/// A client socket on a greeting port that has received nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SilentSocket {
    pub tuple: Tuple,
    /// Time since the last byte was received (tcp_info `tcpi_last_data_recv`), ms.
    pub silent_ms: u32,
    /// The socket's owner, when resolved.
    pub process: Option<Process>,
}

/// A connection that a connection-tracking table translated (DNAT, SNAT,
/// masquerade), from the kernel's conntrack entry
/// (include/uapi/linux/netfilter/nfnetlink_conntrack.h, CTA_TUPLE_ORIG and
/// CTA_TUPLE_REPLY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatEntry {
    /// Exactly the tuple the originating (client) socket holds: local = the
    /// client end, remote = the address it dialed (a Service VIP, a published port).
    pub original: Tuple,
    /// Exactly the tuple the replying (server) socket holds: local = the real
    /// server end, remote = the peer as the server sees it (the client, or
    /// the address it was masqueraded to).
    pub reply: Tuple,
}

impl NatEntry {
    /// Whether the kernel changed anything: a plain connection's reply is its
    /// original seen from the other end.
    pub fn is_translated(&self) -> bool {
        self.reply != self.original.mirror()
    }
}

/// Whether a report's NAT entries are complete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NatState {
    /// The conntrack table was read: the entries are complete.
    Visible,
    /// No connection tracking in this network namespace: nothing is translated here.
    #[default]
    Absent,
    /// It could not be read (why): translations on this host are unknown.
    Unknown(String),
}

/// A completed handshake that this host's kernel dropped because the
/// listener's accept queue was full, as the eBPF source witnessed it
/// (`tcp_v4_syn_recv_sock`/`tcp_v6_syn_recv_sock` returning NULL while
/// `sk_ack_backlog > sk_max_ack_backlog`, include/net/sock.h
/// `sk_acceptq_is_full`; or the final ACK freed with drop reason
/// `NO_SOCKET`/`TCP_LISTEN_OVERFLOW`). The client completed its handshake
/// and holds the connection ESTABLISHED; this host never had it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DropWitness {
    /// In this (the server's) view: local = the listener's address as the
    /// client reached it, remote = the client.
    pub tuple: Tuple,
    /// This host's wall clock at the drop, ms since the epoch (informational:
    /// matching never compares two hosts' clocks).
    pub at_ms: i64,
    pub path: DropPath,
    /// The listener's accept queue (`sk_ack_backlog`) and its limit
    /// (`sk_max_ack_backlog`) at that moment.
    pub queue: u32,
    pub backlog: u32,
}

impl DropWitness {
    /// As evidence on a finding.
    pub fn evidence(&self) -> Witness {
        Witness {
            at_ms: self.at_ms,
            path: self.path,
            queue: self.queue,
            backlog: self.backlog,
        }
    }
}

/// What the collector's scan cost and met with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportStats {
    /// Sockets in the scan.
    pub sockets: u64,
    /// Time the scan took, µs.
    pub scan_us: u64,
    /// Processes that vanished while their owners were resolved (normal).
    pub owners_vanished: u64,
    /// Listening sockets whose owner stayed unknown because /proc entries
    /// could not be read (EACCES/EPERM); 0 when every owner was found.
    pub permission_errors: u64,
}

/// One table report. A full report replaces the host's table (on the wire it
/// may span several chunks with one `seq`; the last has `last_chunk`); a
/// delta has `seq` = the previous + 1. The host-level fields are complete on
/// every last chunk and empty otherwise.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub seq: u64,
    pub full: bool,
    pub last_chunk: bool,
    /// Sockets new or changed since the previous report (all of them when full).
    pub upserted: Vec<SocketRecord>,
    /// Sockets gone since the previous report (empty when full).
    pub removed: Vec<Tuple>,
    /// Every listener, with owners and libwrap.
    pub listeners: Vec<Listener>,
    /// The host's addresses when they changed (empty: unchanged).
    pub addresses: Vec<IpAddr>,
    /// Tracked TCP counters, absolute ("TcpExt.ListenOverflows" -> value).
    pub counters: BTreeMap<String, u64>,
    /// Accept-queue and SYN-cookie sysctls ("net.core.somaxconn" -> "4096").
    pub sysctls: BTreeMap<String, String>,
    /// Every ESTABLISHED client socket on a greeting port silent for at least
    /// the reconciler's `stall_after`.
    pub silent: Vec<SilentSocket>,
    /// NAT'd connections new or changed since the previous report (all of
    /// them when full).
    pub nat: Vec<NatEntry>,
    /// Originals of NAT'd connections gone since the previous report (deltas only).
    pub nat_removed: Vec<Tuple>,
    /// Whether `nat` is complete (last chunk).
    pub nat_state: NatState,
    /// Handshakes this host's kernel dropped on a full accept queue since
    /// the previous report (eBPF source only; last chunk), one per tuple.
    pub witnessed: Vec<DropWitness>,
    pub stats: ReportStats,
    /// The collector's wall clock when the scan was taken, ms since the epoch
    /// (informational: matching never compares two hosts' clocks).
    pub taken_at_ms: i64,
    /// What the collector cannot see now, when it changed since the Hello or
    /// the previous report that carried it (a network namespace it found
    /// but could not enter): replaces the Hello's list. None: unchanged.
    pub blind_spots: Option<Vec<String>>,
}

/// The socket a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundSocket {
    pub state: TcpState,
    /// sock_diag cookie (0 when the source has none).
    pub cookie: u64,
    pub keepalive: bool,
}

/// One tuple of a lookup, answered from a scan taken after the lookup arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupAnswer {
    /// As asked (the answering host's view).
    pub tuple: Tuple,
    /// None: the host holds the tuple in no state.
    pub socket: Option<FoundSocket>,
    /// The owner, when attribution was asked for and it could be resolved.
    pub process: Option<Process>,
    /// Absent here, but this host's conntrack table translated this
    /// connection (read afresh too): its other end is elsewhere.
    pub translated: Option<NatEntry>,
}

impl LookupAnswer {
    pub fn from_record(tuple: Tuple, r: Option<&SocketRecord>, process: Option<Process>) -> LookupAnswer {
        LookupAnswer {
            tuple,
            socket: r.map(|r| FoundSocket {
                state: r.state,
                cookie: r.cookie,
                keepalive: r.keepalive,
            }),
            process,
            translated: None,
        }
    }
}

/// What the reconciler asks of a collector beyond the table (its Config).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wants {
    /// Ports where the server speaks first.
    pub greeting_ports: Vec<u16>,
    /// A greeting-port client silent this long is reported, ms.
    pub stall_after_ms: u32,
}
