//! The halfopen wire protocol, package `halfopen.v1`: the code generated from
//! `proto/halfopen/v1/halfopen.proto`, and ([`convert`]) the one mapping
//! between those messages and the domain types of halfopen-core; [`client`]
//! holds what the service's clients share (URL form, paged listing).

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("halfopen.v1");
}

pub mod client;
pub mod convert;
