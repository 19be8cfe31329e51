//! halfopen-core: the domain types every other crate speaks.
//!
//! - [`tuple`]: canonical addresses and the fixed-size 4-tuple key (IPv4-mapped
//!   IPv6 folded to IPv4), the join key of the whole system.
//! - [`counters`]: /proc/net/netstat and /proc/net/snmp parsing, counter
//!   deltas across resets and wraps, the counters and sysctls halfopen keeps.
//! - [`model`]: socket records, TCP states, sides, processes, listeners.
//! - [`report`]: what a collector sends (Hello, Report, LookupAnswer) and
//!   what the reconciler asks of it (Wants).
//! - [`finding`]: findings, their kinds, subjects, evidence and end reasons.
//! - [`history`]: stored findings, samples and incidents (postmortems).
//! - [`host`]: a host as the reconciler shows it.
//! - [`keepalive`]: keepalive sysctls and when they reap an idle socket.
//! - [`coverage`]: what an answer covers and what it does not.
//! - [`store_health`]: whether the reconciler's database is being written.
//! - [`diagnosis`]: `halfopen explain`'s facts, causes and changes.
//! - [`target`]: what `halfopen explain` may be asked about.
//! - [`redact`]: secrets in command lines, hidden before they leave the host.
//!
//! Pure data, no I/O: everything here is testable without sockets.
pub mod counters;
pub mod coverage;
pub mod diagnosis;
pub mod finding;
pub mod history;
pub mod host;
pub mod keepalive;
pub mod model;
pub mod redact;
pub mod report;
pub mod store_health;
pub mod target;
pub mod tuple;

pub use coverage::{BlindSpot, Coverage, SharedAddress, Unmonitored};
pub use diagnosis::{Change, Diagnosis};
pub use finding::{
    CounterWindow, Evidence, Finding, FindingKind, FindingView, GoneReason, ListenerSample, NatPath, Restart, Subject,
    UnknownKind,
};
pub use history::{ClientProcessCount, Incident, IncidentEnd, ListenerPoint, Postmortem, Sample, StoredFinding};
pub use host::HostView;
pub use keepalive::KeepaliveSysctls;
pub use model::{listener_accepts, Listener, ListenerPorts, Process, Side, SocketRecord, TcpInfoLite, TcpState};
pub use redact::Redaction;
pub use report::{
    FoundSocket, Hello, Instance, LookupAnswer, NatEntry, NatState, Report, ReportStats, SilentSocket, SourceKind,
    Wants,
};
pub use store_health::StoreHealth;
pub use target::ExplainTarget;
pub use tuple::{canonical_ip, fmt_endpoint, ip_from_wire, is_matchable_ip, parse_endpoint, wire_bytes, Tuple};
