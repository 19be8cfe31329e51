//! halfopen-collector: the per-host agent.
//!
//! - [`kernel`]: the worker thread that owns the scanner and the owner cache,
//!   and turns scans into full or delta reports and lookup answers.
//! - [`hostinfo`]: TCP counters, sysctls and libwrap detection (thin I/O).
//! - [`session`]: the gRPC stream to the reconciler, with reconnects.
//! - [`snapshot`]: this host's table with owners, for `halfopen snapshot`.
pub mod hostinfo;
pub mod kernel;
pub mod session;
pub mod snapshot;

pub use session::{run, CollectorConfig, CollectorError};
