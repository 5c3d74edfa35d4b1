//! The errors of manul-ipam, each message saying what to do next. Pure definitions, no I/O.

use std::net::IpAddr;

use ipnet::IpNet;
use manul_store::StoreError;

/// "IPv4" or "IPv6", for messages.
pub(crate) fn version_name(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(
        "no free {version} address for node {node:?}: {assigned} of {requested} assigned ({reason}); \
         add an IP pool, enlarge one, raise maxBlocksPerHost or release unused handles"
    )]
    NoAddressesAvailable {
        version: &'static str,
        node: String,
        requested: u32,
        assigned: u32,
        reason: String,
    },
    #[error("no usable {version} pool for node {node:?}: {reason}")]
    NoMatchingPool {
        version: &'static str,
        node: String,
        reason: String,
    },
    #[error(
        "{address} is already in use by handle {handle:?}; pick another address or release that handle first"
    )]
    AddressInUse { address: IpAddr, handle: String },
    #[error(
        "{address} is not inside any IP pool; create a pool that contains it or pick an address from an existing pool"
    )]
    AddressNotInPool { address: IpAddr },
    #[error(
        "IP pool {pool:?} ({cidr}) is disabled; enable it (disabled: false) or use another pool"
    )]
    PoolDisabled { pool: String, cidr: IpNet },
    #[error(
        "IP pool {pool:?} ({cidr}) does not select node {node:?}: its nodeSelector is {selector:?}; \
         label the node to match it, change the selector or request another pool"
    )]
    PoolNotForNode {
        pool: String,
        cidr: IpNet,
        selector: String,
        node: String,
    },
    #[error("invalid IP pool: field {field}: {reason}")]
    InvalidPool { field: &'static str, reason: String },
    #[error("invalid IPAM request: {0}")]
    InvalidRequest(String),
    #[error(
        "gave up on {what} after too many revision conflicts; the datastore is heavily contended, retry later"
    )]
    RetriesExhausted { what: String },
    #[error("stored {kind} {name:?} is inconsistent: {reason}; run the IPAM check and repair it")]
    Corrupt {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
