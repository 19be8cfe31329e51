//! [`HostView`]: one collector's host as the reconciler knows it, for
//! `halfopen hosts`.
use crate::report::{Instance, SourceKind};
use std::net::IpAddr;

/// Read-only summary of a host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostView {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// Reconciler wall clock of the last report, ms since the epoch.
    pub last_report_ms: Option<i64>,
    pub sockets: u64,
    pub client_sockets: u64,
    pub server_sockets: u64,
    pub listeners: u32,
    /// No report for `stale_intervals` of its intervals, disconnected, or
    /// between a sequence gap and its resync: nothing is judged against it.
    pub stale: bool,
    pub connected: bool,
    pub source: SourceKind,
    pub interval_ms: u32,
    /// The collector's address as the reconciler sees it ("" when unknown).
    pub peer: String,
    /// Where its collector runs.
    pub instance: Instance,
    /// Disconnected for longer than `gone_after`.
    pub gone: bool,
    /// When its last session ended, reconciler wall clock ms (None while connected).
    pub disconnected_since_ms: Option<i64>,
    /// Another live collector tried to claim this host id: who, refused.
    pub conflict: Option<String>,
    /// Its addresses that another live host claims too (never judged).
    pub shared_addresses: Vec<IpAddr>,
    /// What its collector cannot see.
    pub blind_spots: Vec<String>,
    /// "visible", "absent" (no conntrack there) or "unknown: why".
    pub nat: String,
    /// The machine's host id when this host is one of its network
    /// namespaces (`HOSTID` of `HOSTID/NAME`); None for a machine's own.
    pub parent: Option<String>,
    /// That namespace's readable name (/run/netns name, container, pod or
    /// `netns-INODE`), when `parent` is set.
    pub netns_name: Option<String>,
    /// The container whose namespace this host is, when known.
    pub container: Option<String>,
    /// The Kubernetes pod (`namespace/name`) whose namespace this host is, when known.
    pub pod: Option<String>,
}
