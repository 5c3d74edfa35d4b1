//! manul-proto: the generated gRPC types and services (agent.proto). No I/O of its own.

#![allow(clippy::all, missing_docs)]

pub mod agent {
    tonic::include_proto!("manul.agent.v1");
}
