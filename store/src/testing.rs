//! Test support shared by manul's crates (feature `test-support`): real etcd members on
//! loopback and the backend-independent conformance suite of the `Datastore` trait. Starts
//! processes; not for production builds.

pub mod conformance;
pub mod etcd;
