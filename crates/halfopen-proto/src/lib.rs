//! The halfopen wire protocol, package `halfopen.v1`: the code generated from
//! `proto/halfopen/v1/halfopen.proto` and nothing else. Conversions to domain
//! types live with their users (collector and reconciler `wire` modules).
#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("halfopen.v1");
}
