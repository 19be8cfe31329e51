//! halfopen-reconciler: the central service.
//!
//! - [`engine`]: the pure matching engine (tables, join, confirmation).
//! - [`service`]: the tonic service, one task per collector session, the
//!   ticker, and the CLI's query calls.
//! - [`store`]: the SQLite record of findings, for postmortems and restarts.
pub mod engine;
pub mod explain;
pub mod service;
pub mod store;

pub use engine::{Clock, Engine, EngineConfig, Finding, FindingKind, FindingView, HostView};
pub use service::{serve, ReconcilerService, ServeConfig, ServeError};
