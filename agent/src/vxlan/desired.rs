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
//! An address a node borrowed from a block affine to another node (or to none) gets a /32 the
//! same way, toward the node that holds it (longest match beats the block's route).
//!
//! These routes go to the route applier as source `Vxlan`, which wins a key that BGP also
//! wants: a block in an encapsulating pool goes where the mode says, whatever BGP learned.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use ipnet::{IpNet, Ipv4Net};
use manul_store::{EncapsulationMode, IpPool, IpamBlock, Node};

use crate::netlink::{NextHop, Route, RouteTarget};

pub use crate::netlink::{
    VXLAN_DEVICE_V4 as VXLAN_DEVICE, VXLAN_OVERHEAD_V4 as VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI,
};

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

/// A prefix (block or /32) and the node that holds it.
pub type PrefixOwner = (IpNet, String);

/// The inputs: this node, every Node, the pools, and which node each block is affine to.
pub struct VxlanInputs<'a> {
    pub node: &'a str,
    pub nodes: &'a [Node],
    pub pools: &'a [IpPool],
    /// (block, node) for every block with an affinity.
    pub blocks: &'a [PrefixOwner],
    /// (address/32, node) for every address a node borrowed from a block affine to another
    /// (or to none): routed to the node that holds it, which beats the block's route.
    pub borrowed: &'a [PrefixOwner],
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
    for (prefix, owner) in inputs.blocks.iter().chain(inputs.borrowed) {
        if owner == inputs.node || !matches!(prefix, IpNet::V4(_)) {
            continue;
        }
        let Some(pool) = pool_of(inputs.pools, prefix) else {
            continue;
        };
        let owner_address = addresses.get(owner.as_str());
        let same_subnet =
            owner_address.is_some_and(|address| subnet.is_some_and(|net| net.contains(address)));
        let encapsulate = match pool.vxlan_mode {
            EncapsulationMode::Never => continue,
            EncapsulationMode::Always => true,
            EncapsulationMode::CrossSubnet => !same_subnet,
        };
        let hop = if encapsulate {
            let Some(vtep) = vteps.get(owner.as_str()) else {
                state.problems.push(format!(
                    "{prefix} of node {owner:?} needs VXLAN ({:?} pool {:?}) but the node has no tunnel address, MAC or IPv4 address yet",
                    pool.vxlan_mode, pool.name
                ));
                continue;
            };
            NextHop {
                gateway: IpAddr::V4(vtep.tunnel_address),
                device: VXLAN_DEVICE.to_string(),
                onlink: true,
            }
        } else if let (false, Some(address), Some(uplink)) =
            (inputs.bgp, owner_address, inputs.uplink)
        {
            // CrossSubnet without BGP: the owner is on our subnet, route straight to it.
            NextHop {
                gateway: IpAddr::V4(*address),
                device: uplink.to_string(),
                onlink: false,
            }
        } else {
            continue;
        };
        state
            .routes
            .push(Route::main(*prefix, RouteTarget::via(vec![hop])));
    }
    state.vteps = vteps.into_values().collect();
    state
}

/// The `blocks` and `borrowed` inputs from the IPAM blocks: each block with the node it is
/// affine to ("host:<node>"), and each allocated address whose allocation names a node other
/// than the block's (the "node" attribute the CNI ADD writes).
pub fn block_owners(blocks: &[IpamBlock]) -> (Vec<PrefixOwner>, Vec<PrefixOwner>) {
    let mut affine = Vec::new();
    let mut borrowed = Vec::new();
    for block in blocks.iter().filter(|block| !block.deleted) {
        let owner = block
            .affinity
            .as_deref()
            .and_then(|affinity| affinity.strip_prefix("host:"));
        if let Some(owner) = owner {
            affine.push((block.cidr, owner.to_string()));
        }
        for (ordinal, attribute) in block.allocations.iter().enumerate() {
            let Some(node) = attribute
                .and_then(|index| block.attributes.get(index as usize))
                .and_then(|attribute| attribute.secondary.get("node"))
            else {
                continue;
            };
            if Some(node.as_str()) == owner {
                continue;
            }
            let address = u32::try_from(ordinal)
                .ok()
                .and_then(|ordinal| manul_ipam::block::address_of(&block.cidr, ordinal));
            if let Some(address) = address {
                borrowed.push((IpNet::from(address), node.clone()));
            }
        }
    }
    (affine, borrowed)
}

/// The MTU of vxlan.calico and of pods when VXLAN is in use: the uplink's less the overhead.
pub fn vxlan_mtu(uplink_mtu: u32) -> u32 {
    uplink_mtu.saturating_sub(VXLAN_OVERHEAD)
}
