//! halfopen-reconciler: the central service around the pure engine.
//!
//! - [`actor`]: the engine thread, which owns the engine, the collectors'
//!   outboxes and the store writer, fed by a bounded queue of typed inputs.
//! - `ingest`: the `Ingest` gRPC service, one task per collector session.
//! - `query`: the `Query` gRPC service the CLI calls.
//! - [`metrics`]: the Prometheus metrics, published by the engine thread.
//! - `serve`: opening the store, restoring, the ticker, serving.
//! - [`auth`]: who may call what (mutual TLS roles, or plaintext), decided
//!   at the edge, once per call.
pub mod actor;
pub mod auth;
mod ingest;
pub mod metrics;
mod query;
mod serve;

pub use halfopen_engine::{
    EngineConfig, DEFAULT_FORGET_AFTER_MS, DEFAULT_GREETING_PORTS, DEFAULT_MAX_HOSTS, DEFAULT_MAX_SOCKETS_PER_HOST,
};
pub use ingest::{IngestStats, SessionLimits, DEFAULT_MAX_SESSIONS_PER_PEER};
pub use serve::{accept_loop, serve, AcceptStats, ServeConfig, ServeError};
