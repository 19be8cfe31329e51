//! The halfopen wire protocol, package `halfopen.v1`: the code generated from
//! `proto/halfopen/v1/halfopen.proto`, and ([`convert`]) the one mapping
//! between those messages and the domain types of halfopen-core; [`paging`]
//! reads a whole ListOrphans listing page by page.

#[allow(clippy::all)]
pub mod v1 {
    tonic::include_proto!("halfopen.v1");
}

pub mod convert;
pub mod paging;
