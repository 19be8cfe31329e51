//! halfopen-collector: the per-host agent.
//!
//! - [`source`]: [`source::TableSource`], where a socket table comes from
//!   (the polling netlink or /proc/net source), and `--source`'s choice.
//! - [`bpf`]: the eBPF source: transitions between dumps, owners at
//!   connect(), witnessed drops; [`choose`]: `--source auto` and its fallback;
//!   [`estab`]: the eBPF table held to the kernel's CurrEstab count, pure.
//! - [`differ`]: the delta between consecutive scans, pure.
//! - [`worker`]: the thread that owns the source, the owner cache and the
//!   differ, and turns scans into reports and lookup answers.
//! - [`hostinfo`]: TCP counters, sysctls and libwrap detection (thin I/O).
//! - [`instance`]: who this collector is beyond its host id, and what it
//!   cannot see (missing capabilities).
//! - [`nat`]: the NAT'd connections of the conntrack table, kept current.
//! - [`metrics`]: the collector's Prometheus metrics.
//! - [`namespaces`]: which network namespaces are covered (`--netns`), one
//!   host, worker and session per namespace, rescanned as they come and go.
//! - [`session`]: the gRPC stream to the reconciler, with reconnects.
//! - [`snapshot`]: this host's table with owners, for `halfopen snapshot`.
//! - [`witnesses`]: witnessed drops sent lately, carried again by full
//!   reports (a report lost with its session loses no witness), pure.
pub mod bpf;
pub mod choose;
pub mod differ;
pub mod estab;
pub mod hostinfo;
pub mod instance;
pub mod metrics;
pub mod namespaces;
pub mod nat;
pub mod session;
pub mod snapshot;
pub mod source;
pub mod witnesses;
pub mod worker;

pub use session::{run, CollectorConfig, CollectorError, HostSpec};
