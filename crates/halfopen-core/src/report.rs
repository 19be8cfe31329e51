//! What a collector tells the reconciler, in domain types: the [`Hello`]
//! that opens a session, table [`Report`]s (a full table, then deltas), and
//! [`LookupAnswer`]s to the reconciler's lookups. halfopen-proto maps them to
//! and from the wire; the collector builds them and the engine applies them.
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
}

impl SourceKind {
    pub const ALL: [SourceKind; 2] = [SourceKind::Netlink, SourceKind::ProcNet];

    /// The name on the wire, in `halfopen hosts` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Netlink => "netlink",
            SourceKind::ProcNet => "proc",
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
            .ok_or_else(|| format!("unknown source {s:?} (sources: netlink, proc)"))
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
}

/// A client socket on a greeting port that has received nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilentSocket {
    pub tuple: Tuple,
    /// Time since the last byte was received (tcp_info `tcpi_last_data_recv`), ms.
    pub silent_ms: u32,
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
    /// /proc entries that could not be read (owners unknown).
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
    pub stats: ReportStats,
    /// The collector's wall clock when the scan was taken, ms since the epoch
    /// (informational: matching never compares two hosts' clocks).
    pub taken_at_ms: i64,
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
