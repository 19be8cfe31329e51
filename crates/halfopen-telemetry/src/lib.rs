//! halfopen-telemetry: Prometheus metrics for halfopen's services.
//!
//! - [`registry`]: a [`Registry`] with the `halfopen_` prefix and the build
//!   info, and the encoding of a whole registry in either exposition format
//!   ([`Format`], chosen from the scraper's `Accept` header).
//! - [`snapshot`]: metric families whose series are read from a snapshot at
//!   scrape time ([`snapshot::Families`]), for a custom
//!   [`prometheus_client::collector::Collector`]: a series absent from the
//!   snapshot is absent from the scrape, so nothing stays stale.
//! - [`server`]: the `/metrics` HTTP endpoint on its own tokio task
//!   ([`server::serve`]).
//!
//! The library is the official Rust client, `prometheus-client`
//! (re-exported, so every halfopen crate uses the same version). Names
//! follow the Prometheus conventions: `halfopen_` prefix, base units in the
//! name (`_seconds`), `_total` on counters (added by the encoder), and labels
//! bounded by hosts, listeners, kinds and reasons — never a tuple, a client
//! port or a pid.
pub mod registry;
pub mod server;
pub mod snapshot;

pub use prometheus_client;
pub use registry::{encode, new_registry, Format};
pub use server::{serve, MetricsServer, TelemetryError};

/// Suggested `--metrics-listen` port of the reconciler (documented, never a default: metrics are off
/// unless asked for).
pub const RECONCILER_METRICS_PORT: u16 = 9477;
/// Suggested `--metrics-listen` port of the collector.
pub const COLLECTOR_METRICS_PORT: u16 = 9478;
