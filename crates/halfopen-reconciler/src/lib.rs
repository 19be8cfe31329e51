//! halfopen-reconciler: the central service around the pure engine.
//!
//! - [`actor`]: the engine thread, which owns the engine, the collectors'
//!   outboxes and the store writer, fed by a bounded queue of typed inputs.
//! - `ingest`: the `Ingest` gRPC service, one task per collector session.
//! - `query`: the `Query` gRPC service the CLI calls.
//! - `serve`: opening the store, restoring, the ticker, serving.
//! - [`auth`]: who may call what (mutual TLS roles, or plaintext), decided
//!   at the edge, once per call.
pub mod actor;
pub mod auth;
mod ingest;
mod query;
mod serve;

pub use halfopen_engine::{EngineConfig, DEFAULT_GREETING_PORTS};
pub use serve::{serve, ServeConfig, ServeError};
