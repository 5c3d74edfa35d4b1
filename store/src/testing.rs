//! Test support shared by manul's crates (feature `test-support`): real etcd members on
//! loopback, the backend-independent conformance suite of the `Datastore` trait, and a store
//! that interposes on writes (rival writers, lost races). Starts processes; not for production
//! builds.

pub mod conformance;
pub mod etcd;
pub mod interposed;
