//! What VXLAN needs on this node, computed from the datastore's Nodes, pools and block
//! affinities with no I/O (Calico's VXLAN route manager): the VTEP of every other node (its
//! tunnel address, MAC and node address: one permanent neighbour and one FDB entry each) and
//! the route of every remote block whose pool encapsulates:
//!
//! | pool vxlanMode | owner on this node's subnet          | owner on another subnet |
//! |----------------|--------------------------------------|-------------------------|
//! | Always         | via its tunnel address, onlink       | the same                |
//! | CrossSubnet    | via its node address on the uplink   | via its tunnel address  |
//! |                | (only with BGP off: else BGP's route)| onlink                  |
//! | Never          | nothing (BGP's route)                | nothing                 |
//!
//! These routes go to the route applier as source `Vxlan`, which wins a key that BGP also
//! wants: a block in an encapsulating pool goes where the mode says, whatever BGP learned.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use ipnet::{IpNet, Ipv4Net};
use manul_store::{EncapsulationMode, IpPool, Node};

use crate::netlink::{NextHop, Route, RouteTarget};

/// Calico's IPv4 VXLAN device and its parameters.
pub const VXLAN_DEVICE: &str = "vxlan.calico";
pub const VXLAN_VNI: u32 = 4096;
pub const VXLAN_PORT: u16 = 4789;
/// The bytes VXLAN adds over IPv4 (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// Another node's tunnel endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vtep {
    pub node: String,
    /// Where its VXLAN packets go (the FDB entry's destination).
    pub node_address: Ipv4Addr,
    /// Its address on vxlan.calico (the neighbour entry and the routes' gateway).
    pub tunnel_address: Ipv4Addr,
    pub mac: String,
}

/// The inputs: this node, every Node, the pools, and which node each block is affine to.
pub struct VxlanInputs<'a> {
    pub node: &'a str,
    pub nodes: &'a [Node],
    pub pools: &'a [IpPool],
    /// (block, node) for every confirmed block affinity.
    pub blocks: &'a [(IpNet, String)],
    /// The device this node's address is on (routes to same-subnet nodes without BGP).
    pub uplink: Option<&'a str>,
    /// Whether BGP runs (then it carries the routes VXLAN does not).
    pub bgp: bool,
}

/// What VXLAN needs; `device` is None when this node has no tunnel endpoint (no pool needs
/// VXLAN, or its address is not allocated yet): then there are no VTEPs or routes either.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanState {
    /// This node's (node address, tunnel address, MAC) when the device should exist.
    pub device: Option<(Ipv4Addr, Ipv4Addr, String)>,
    pub vteps: Vec<Vtep>,
    pub routes: Vec<Route>,
    /// Blocks that should go through VXLAN but cannot yet (owner without a VTEP), with why.
    pub problems: Vec<String>,
}

/// The pool of `block` (the one whose CIDR contains it).
fn pool_of<'a>(pools: &'a [IpPool], block: &IpNet) -> Option<&'a IpPool> {
    pools.iter().find(|pool| pool.cidr.contains(block))
}

fn vtep_of(node: &Node) -> Option<Vtep> {
    Some(Vtep {
        node: node.name.clone(),
        node_address: node.ipv4()?,
        tunnel_address: node.ipv4_vxlan_tunnel_addr?,
        mac: node.vxlan_tunnel_mac_addr.clone()?,
    })
}

/// This node's subnet (its address with the prefix length the Node records).
fn subnet_of(node: &Node) -> Option<Ipv4Net> {
    match node.bgp.as_ref()?.ipv4_address? {
        IpNet::V4(net) => Some(net.trunc()),
        IpNet::V6(_) => None,
    }
}

pub fn vxlan_state(inputs: &VxlanInputs<'_>) -> VxlanState {
    let mut state = VxlanState::default();
    let Some(this) = inputs.nodes.iter().find(|node| node.name == inputs.node) else {
        return state;
    };
    let Some(own) = vtep_of(this) else {
        return state;
    };
    state.device = Some((own.node_address, own.tunnel_address, own.mac));
    let vteps: BTreeMap<&str, Vtep> = inputs
        .nodes
        .iter()
        .filter(|node| node.name != inputs.node)
        .filter_map(|node| Some((node.name.as_str(), vtep_of(node)?)))
        .collect();
    let addresses: BTreeMap<&str, Ipv4Addr> = inputs
        .nodes
        .iter()
        .filter_map(|node| Some((node.name.as_str(), node.ipv4()?)))
        .collect();
    let subnet = subnet_of(this);
    for (block, owner) in inputs.blocks {
        if owner == inputs.node || !matches!(block, IpNet::V4(_)) {
            continue;
        }
        let Some(pool) = pool_of(inputs.pools, block) else {
            continue;
        };
        let same_subnet = addresses
            .get(owner.as_str())
            .is_some_and(|address| subnet.is_some_and(|subnet| subnet.contains(address)));
        let encapsulate = match pool.vxlan_mode {
            EncapsulationMode::Never => continue,
            EncapsulationMode::Always => true,
            EncapsulationMode::CrossSubnet => !same_subnet,
        };
        if encapsulate {
            match vteps.get(owner.as_str()) {
                Some(vtep) => state.routes.push(Route::main(
                    *block,
                    RouteTarget::via(vec![NextHop {
                        gateway: IpAddr::V4(vtep.tunnel_address),
                        device: VXLAN_DEVICE.to_string(),
                        onlink: true,
                    }]),
                )),
                None => state.problems.push(format!(
                    "block {block} of node {owner:?} needs VXLAN ({:?} pool {:?}) but the node has no tunnel address, MAC or IPv4 address yet",
                    pool.vxlan_mode, pool.name
                )),
            }
        } else if !inputs.bgp
            && let (Some(address), Some(uplink)) = (addresses.get(owner.as_str()), inputs.uplink)
        {
            // CrossSubnet without BGP: the owner is on our subnet, route straight to it.
            state.routes.push(Route::main(
                *block,
                RouteTarget::via(vec![NextHop {
                    gateway: IpAddr::V4(*address),
                    device: uplink.to_string(),
                    onlink: false,
                }]),
            ));
        }
    }
    state.vteps = vteps.into_values().collect();
    state
}

/// The MTU of vxlan.calico and of pods when VXLAN is in use: the uplink's less the overhead.
pub fn vxlan_mtu(uplink_mtu: u32) -> u32 {
    uplink_mtu.saturating_sub(VXLAN_OVERHEAD)
}
