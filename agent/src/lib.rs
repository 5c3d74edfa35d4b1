//! manul-agent: the per-node daemon (CNI requests, IPAM, kernel reconciliation) and the pieces
//! of the `manul` CNI plugin binary. See docs/architecture.md for the data flow.

pub mod bgp;
pub mod chunked_map;
pub mod cleanup;
pub mod client;
pub mod cni;
pub mod commands;
pub mod daemon;
pub mod dataplane;
pub mod endpoint;
pub mod health;
pub mod install;
pub mod locks;
pub mod naming;
pub mod netlink;
pub mod nft;
pub mod node;
pub mod pods;
pub mod pool_dataplane;
pub mod raw_store;
pub mod reconcile;
pub mod server;
pub mod sysctl;
pub mod vxlan;
pub mod watch;
