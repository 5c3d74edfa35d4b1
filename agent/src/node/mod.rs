//! This node in the datastore: choosing its addresses (`autodetect`), writing its `Node`
//! resource (`registration`), and watching Node deletions (`watch`: another node's releases
//! its IPAM state, our own ends the agent). `NodeFlags` are the command-line flags and
//! environment variables, calico/node's names where it has them. No I/O in this file.

pub mod autodetect;
pub mod registration;
pub mod watch;

use std::net::Ipv4Addr;

use manul_ipam::IpamError;
use manul_store::{Datastore, StoreError};
use tracing::info;

pub use autodetect::{AddressSetting, AutodetectError, Family, Method};
pub use registration::{NodeRegistration, merge, register};
pub use watch::NodeWatcher;

use crate::netlink::Netlink;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Autodetect(#[from] AutodetectError),
    #[error("{flag} {value:?}: {reason}")]
    BadFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error("writing the Node: {0}")]
    Write(#[from] IpamError),
    #[error(
        "the Node {node:?} of this agent was deleted from the datastore; the agent stops (start it again to register the node anew)"
    )]
    OwnNodeDeleted { node: String },
    #[error("the datastore's Node watch ended")]
    WatchEnded,
}

/// The flags of node registration (flattened into manul-agent's).
#[derive(clap::Args, Clone, Debug)]
pub struct NodeFlags {
    /// This node's IPv4 address: autodetect, none, or an address/CIDR ("10.0.1.5/24").
    #[arg(long, env = "IP", default_value = "autodetect")]
    pub node_ip: String,
    /// How to autodetect it: first-found, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX],
    /// can-reach=IP, cidr=CIDR[,CIDR].
    #[arg(long, env = "IP_AUTODETECTION_METHOD", default_value = "first-found")]
    pub node_ip_autodetection: String,
    /// This node's IPv6 address: autodetect, none, or an address/CIDR.
    #[arg(long, env = "IP6", default_value = "none")]
    pub node_ip6: String,
    /// How to autodetect the IPv6 address (methods as for IPv4).
    #[arg(long, env = "IP6_AUTODETECTION_METHOD", default_value = "first-found")]
    pub node_ip6_autodetection: String,
    /// This node's AS number (default: keep the stored one, else the cluster default).
    #[arg(long, env = "AS")]
    pub as_number: Option<u32>,
    /// Makes this node a route reflector with this cluster ID.
    #[arg(long, env = "MANUL_ROUTE_REFLECTOR_CLUSTER_ID")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// Labels set on this node's Node: k=v,k2=v2 (others stay).
    #[arg(long, env = "MANUL_NODE_LABELS", default_value = "")]
    pub node_labels: String,
}

/// The node settings after parsing, before autodetection.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub ipv4: AddressSetting,
    pub ipv6: AddressSetting,
    pub as_number: Option<u32>,
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NodeFlags {
    pub fn parse(&self) -> Result<NodeSettings, NodeError> {
        Ok(NodeSettings {
            ipv4: AddressSetting::parse(
                "--node-ip",
                &self.node_ip,
                "--node-ip-autodetection",
                &self.node_ip_autodetection,
                Family::V4,
            )?,
            ipv6: AddressSetting::parse(
                "--node-ip6",
                &self.node_ip6,
                "--node-ip6-autodetection",
                &self.node_ip6_autodetection,
                Family::V6,
            )?,
            as_number: self.as_number,
            route_reflector_cluster_id: self.route_reflector_cluster_id,
            labels: registration::parse_labels(&self.node_labels)?,
        })
    }
}

/// Detects this node's addresses and writes its Node. A method that finds nothing fails the
/// start with an error naming the method and the interfaces it looked at.
pub async fn register_node(
    store: &std::sync::Arc<dyn Datastore>,
    netlink: &dyn Netlink,
    name: &str,
    settings: &NodeSettings,
) -> Result<manul_store::Node, NodeError> {
    let ipv4 = autodetect::detect(netlink, &settings.ipv4, Family::V4).await?;
    let ipv6 = autodetect::detect(netlink, &settings.ipv6, Family::V6).await?;
    let registration = NodeRegistration {
        name: name.to_string(),
        ipv4,
        ipv6,
        as_number: settings.as_number,
        route_reflector_cluster_id: settings.route_reflector_cluster_id,
        labels: settings.labels.clone(),
    };
    let node = register(store, &registration).await?;
    info!(node = %name, ipv4 = ?ipv4, ipv6 = ?ipv6, "registered this node");
    Ok(node)
}
