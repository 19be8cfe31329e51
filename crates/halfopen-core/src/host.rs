//! [`HostView`]: one collector's host as the reconciler knows it, for
//! `halfopen hosts`.
use crate::report::SourceKind;
use std::net::IpAddr;

/// Read-only summary of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}
