//! What VXLAN needs on this node for one address family, computed from the datastore's Nodes,
//! pools and IPAM blocks with no I/O (Calico's VXLAN route manager): the VTEP of every other
//! node (its tunnel address, MAC and node address of the family: one permanent neighbour and
//! one FDB entry each) and the route of every remote block whose pool encapsulates:
//!
//! | pool vxlanMode | owner on this node's subnet          | owner on another subnet |
//! |----------------|--------------------------------------|-------------------------|
//! | Always         | via its tunnel address, onlink       | the same                |
//! | CrossSubnet    | via its node address on the uplink   | via its tunnel address  |
//! |                | (only with BGP off: else BGP's route)| onlink                  |
//! | Never          | nothing (BGP's route)                | nothing                 |
//!
//! An address a node borrowed from a block affine to another node (or to none) gets a host
//! route the same way, toward the node that holds it (longest match beats the block's route).
//! IPv4 uses vxlan.calico (overhead 50), IPv6 vxlan-v6.calico (overhead 70).
//!
//! These routes go to the route applier as source `Vxlan`, which wins a key that BGP also
//! wants: a block in an encapsulating pool goes where the mode says, whatever BGP learned.

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use manul_store::{EncapsulationMode, IpPool, IpamBlock, Node};

use super::tunnel::stored_endpoint;
use crate::netlink::{
    NextHop, Route, RouteTarget, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6, VXLAN_OVERHEAD_V4,
    VXLAN_OVERHEAD_V6,
};

pub use crate::netlink::{
    VXLAN_DEVICE_V4 as VXLAN_DEVICE, VXLAN_OVERHEAD_V4 as VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI,
};

/// The address family of one VXLAN device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// vxlan.calico or vxlan-v6.calico.
    pub fn device(self) -> &'static str {
        match self {
            Family::V4 => VXLAN_DEVICE_V4,
            Family::V6 => VXLAN_DEVICE_V6,
        }
    }

    /// Bytes the encapsulation adds over this family's underlay.
    pub fn overhead(self) -> u32 {
        match self {
            Family::V4 => VXLAN_OVERHEAD_V4,
            Family::V6 => VXLAN_OVERHEAD_V6,
        }
    }

    pub fn holds(self, address: &IpAddr) -> bool {
        matches!(
            (self, address),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }

    /// The node's address of this family for BGP, with its prefix length.
    fn node_address(self, node: &Node) -> Option<IpNet> {
        let bgp = node.bgp.as_ref()?;
        let address = match self {
            Family::V4 => bgp.ipv4_address?,
            Family::V6 => bgp.ipv6_address?,
        };
        self.holds(&address.addr()).then_some(address)
    }
}

/// Another node's tunnel endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vtep {
    pub node: String,
    /// Where its VXLAN packets go (the FDB entry's destination).
    pub node_address: IpAddr,
    /// Its address on the VXLAN device (the neighbour entry and the routes' gateway).
    pub tunnel_address: IpAddr,
    pub mac: String,
}

/// A prefix (block or host address) and the node that holds it.
pub type PrefixOwner = (IpNet, String);

/// The inputs: this node, every Node, the pools, and which node each block is affine to.
pub struct VxlanInputs<'a> {
    pub family: Family,
    pub node: &'a str,
    pub nodes: &'a [Node],
    pub pools: &'a [IpPool],
    /// (block, node) for every block with an affinity.
    pub blocks: &'a [PrefixOwner],
    /// (address, node) for every address a node borrowed from a block affine to another
    /// (or to none): routed to the node that holds it, which beats the block's route.
    pub borrowed: &'a [PrefixOwner],
    /// The device this node's address is on (routes to same-subnet nodes without BGP).
    pub uplink: Option<&'a str>,
    /// Whether BGP runs (then it carries the routes VXLAN does not).
    pub bgp: bool,
}

/// This node's end of the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnEndpoint {
    pub node_address: IpAddr,
    pub tunnel_address: IpAddr,
    pub mac: String,
}

/// What VXLAN needs for one family; `device` is None when this node has no tunnel endpoint of
/// the family (no pool needs VXLAN, or its address is not allocated yet): then there are no
/// VTEPs or routes either, and the device goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanState {
    pub family: Family,
    /// This node's endpoint when the device should exist.
    pub device: Option<OwnEndpoint>,
    pub vteps: Vec<Vtep>,
    pub routes: Vec<Route>,
    /// Blocks that should go through VXLAN but cannot yet (owner without a VTEP), with why.
    pub problems: Vec<String>,
}

/// The pool of `block` (the one whose CIDR contains it).
fn pool_of<'a>(pools: &'a [IpPool], block: &IpNet) -> Option<&'a IpPool> {
    pools.iter().find(|pool| pool.cidr.contains(block))
}

fn vtep_of(node: &Node, family: Family) -> Option<Vtep> {
    let (tunnel_address, mac) = stored_endpoint(node, family);
    Some(Vtep {
        node: node.name.clone(),
        node_address: family.node_address(node)?.addr(),
        tunnel_address: tunnel_address?,
        mac: mac?.clone(),
    })
}

pub fn vxlan_state(inputs: &VxlanInputs<'_>) -> VxlanState {
    let family = inputs.family;
    let mut state = VxlanState {
        family,
        ..VxlanState::default()
    };
    let Some(this) = inputs.nodes.iter().find(|node| node.name == inputs.node) else {
        return state;
    };
    let Some(own) = vtep_of(this, family) else {
        return state;
    };
    state.device = Some(OwnEndpoint {
        node_address: own.node_address,
        tunnel_address: own.tunnel_address,
        mac: own.mac,
    });
    let vteps: BTreeMap<&str, Vtep> = inputs
        .nodes
        .iter()
        .filter(|node| node.name != inputs.node)
        .filter_map(|node| Some((node.name.as_str(), vtep_of(node, family)?)))
        .collect();
    let addresses: BTreeMap<&str, IpAddr> = inputs
        .nodes
        .iter()
        .filter_map(|node| Some((node.name.as_str(), family.node_address(node)?.addr())))
        .collect();
    let subnet = family.node_address(this).map(|address| address.trunc());
    for (prefix, owner) in inputs.blocks.iter().chain(inputs.borrowed) {
        if owner == inputs.node || !family.holds(&prefix.addr()) {
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
                    "{prefix} of node {owner:?} needs VXLAN ({:?} pool {:?}) but the node has no {family:?} tunnel address, MAC or node address yet",
                    pool.vxlan_mode, pool.name
                ));
                continue;
            };
            NextHop {
                gateway: vtep.tunnel_address,
                device: family.device().to_string(),
                onlink: true,
            }
        } else if let (false, Some(address), Some(uplink)) =
            (inputs.bgp, owner_address, inputs.uplink)
        {
            // CrossSubnet without BGP: the owner is on our subnet, route straight to it.
            NextHop {
                gateway: *address,
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

/// What VXLAN needs of the IPAM blocks: who owns each block and each borrowed address. Most
/// block changes (an address taken or freed by the block's own node) leave it as it was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockOwners {
    /// Each block with the node it is affine to ("host:<node>").
    pub affine: Vec<PrefixOwner>,
    /// Each allocated address whose allocation names a node other than the block's (the
    /// "node" attribute the CNI ADD writes), as a /32 (/128).
    pub borrowed: Vec<PrefixOwner>,
}

/// The `blocks` and `borrowed` inputs of [`VxlanInputs`] from the IPAM blocks.
pub fn block_owners<'a>(blocks: impl IntoIterator<Item = &'a IpamBlock>) -> BlockOwners {
    let mut affine = Vec::new();
    let mut borrowed = Vec::new();
    for block in blocks.into_iter().filter(|block| !block.deleted) {
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
    BlockOwners { affine, borrowed }
}

/// The MTU of the VXLAN device of `family`: the uplink's less the overhead.
pub fn vxlan_mtu(uplink_mtu: u32, family: Family) -> u32 {
    uplink_mtu.saturating_sub(family.overhead())
}
