//! halfopen-core: the domain types every other crate speaks.
//!
//! - [`tuple`]: canonical addresses and the fixed-size 4-tuple key (IPv4-mapped
//!   IPv6 folded to IPv4), the join key of the whole system.
//! - [`counters`]: /proc/net/netstat and /proc/net/snmp parsing, counter
//!   deltas across resets and wraps, the counters and sysctls halfopen keeps.
//! - [`model`]: socket records, TCP states, sides, processes, listeners.
//!
//! Pure data, no I/O: everything here is testable without sockets.
pub mod counters;
pub mod model;
pub mod tuple;

pub use model::{
    listener_accepts, Change, Diagnosis, Listener, ListenerPorts, Process, Side, SocketRecord, TcpInfoLite, TcpState,
};
pub use tuple::{canonical_ip, fmt_endpoint, ip_from_wire, is_matchable_ip, parse_endpoint, wire_bytes, Tuple};
