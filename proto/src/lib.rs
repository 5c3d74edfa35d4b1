//! manul-proto: the generated gRPC types and services (agent.proto, bgpd.proto). No I/O of its own.

#![allow(clippy::all, missing_docs)]

pub mod agent {
    tonic::include_proto!("manul.agent.v1");
}

pub mod bgpd {
    tonic::include_proto!("manul.bgpd.v1");

    pub use crate::best_path_batch::{BestPathBatch, encode_path_field};
}

mod best_path_batch;
