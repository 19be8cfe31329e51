//! The halfopen wire protocol, package `halfopen.v1`: the code generated from
//! `proto/halfopen/v1/{types,ingest,query}.proto` (two services: `Ingest`
//! for collectors, `Query` for readers), and
//! - [`convert`]: the one mapping between those messages and the domain
//!   types of halfopen-core;
//! - [`transport`]: message limits, keepalives, timeouts, endpoints, written once;
//! - [`client`]: what readers share (the paged listing).

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("halfopen.v1");
}

pub mod client;
pub mod convert;
pub mod transport;
