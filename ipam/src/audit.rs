//! Cross-checks of IPAM against the rest of the cluster, pure over a snapshot of the store:
//! allocations without a live endpoint (leaked addresses), WorkloadEndpoints without an
//! allocation, blocks whose affinity names a Node that does not exist, handles whose counts
//! disagree with the blocks, and the borrowed addresses (allocated from a block affine to
//! another node). No I/O: `Ipam::snapshot` reads the store, everything here is a function
//! of what it read.
//!
//! An allocation is live when a WorkloadEndpoint names its handle and lists its address, or,
//! for a VXLAN tunnel address (handle `vxlan-tunnel-addr-<node>`), when that Node exists and
//! records the address as its tunnel address. Anything else allocated is leaked: a pod whose
//! DEL never came, an operator's `assign` nobody released. An ADD in flight allocates before
//! it records its endpoint, so a snapshot taken at that moment lists the address as leaked:
//! release re-checks every address against a fresh snapshot (`Audit::still_leaked`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use manul_store::{IpamBlock, IpamHandle, Node, WorkloadEndpoint};

use crate::{block, vxlan_tunnel_handle_id, vxlan_v6_tunnel_handle_id};

/// What the audit reads: every block, handle, Node and WorkloadEndpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IpamSnapshot {
    pub blocks: Vec<IpamBlock>,
    pub handles: Vec<IpamHandle>,
    pub nodes: Vec<Node>,
    pub endpoints: Vec<WorkloadEndpoint>,
}

/// An allocated address that nothing live holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeakedAddress {
    pub address: IpAddr,
    pub handle: String,
    pub block: IpNet,
    /// The node the allocation was made for (its "node" attribute), if recorded.
    pub node: Option<String>,
    pub reason: String,
}

/// An address a WorkloadEndpoint lists that no block attributes to its handle.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointWithoutAllocation {
    pub endpoint: String,
    pub node: String,
    pub address: IpAddr,
    pub handle: String,
}

/// A block whose affinity names a Node that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockOfMissingNode {
    pub block: IpNet,
    pub node: String,
    /// Addresses still allocated in it.
    pub allocated: u32,
}

/// A handle whose count for a block differs from what the block attributes to it (a handle
/// missing altogether counts 0).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HandleMismatch {
    pub handle: String,
    pub block: String,
    /// What the handle records for the block.
    pub counted: u32,
    /// What the block attributes to the handle.
    pub held: u32,
}

/// An address allocated from a block affine to another node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BorrowedAddress {
    pub address: IpAddr,
    pub borrowing_node: String,
    pub block: IpNet,
    pub block_owner: String,
    pub handle: String,
    /// "namespace/pod", when the allocation records them.
    pub workload: Option<String>,
}

/// The findings of [`audit`], each list in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    pub leaked: Vec<LeakedAddress>,
    pub endpoints_without_allocation: Vec<EndpointWithoutAllocation>,
    pub blocks_of_missing_nodes: Vec<BlockOfMissingNode>,
    pub handle_mismatches: Vec<HandleMismatch>,
}

impl Audit {
    pub fn is_clean(&self) -> bool {
        self.leaked.is_empty()
            && self.endpoints_without_allocation.is_empty()
            && self.blocks_of_missing_nodes.is_empty()
            && self.handle_mismatches.is_empty()
    }

    /// The finding of a fresh audit for `address` held by `handle`, when it is still leaked.
    pub fn still_leaked(&self, address: IpAddr, handle: &str) -> Option<&LeakedAddress> {
        self.leaked
            .iter()
            .find(|leak| leak.address == address && leak.handle == handle)
    }
}

/// One allocation of a block: address, handle and the allocation's attributes.
struct Allocation<'a> {
    address: IpAddr,
    handle: &'a str,
    secondary: &'a BTreeMap<String, String>,
}

fn allocations(block: &IpamBlock) -> impl Iterator<Item = Allocation<'_>> {
    (0..block.allocations.len() as u32).filter_map(|ordinal| {
        let index = (*block.allocations.get(ordinal as usize)?)?;
        let attribute = block.attributes.get(index as usize)?;
        Some(Allocation {
            address: block::address_of(&block.cidr, ordinal)?,
            handle: attribute.handle_id.as_deref().unwrap_or(""),
            secondary: &attribute.secondary,
        })
    })
}

fn affine_node(block: &IpamBlock) -> Option<&str> {
    block.affinity.as_deref()?.strip_prefix("host:")
}

/// Runs every cross-check over `snapshot`.
pub fn audit(snapshot: &IpamSnapshot) -> Audit {
    let nodes: BTreeMap<&str, &Node> = snapshot
        .nodes
        .iter()
        .map(|node| (node.name.as_str(), node))
        .collect();
    // handle -> addresses its endpoints list.
    let mut endpoint_addresses: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    for endpoint in &snapshot.endpoints {
        endpoint_addresses
            .entry(endpoint.ipam_handle.as_str())
            .or_default()
            .extend(endpoint.ip_networks.iter().map(IpNet::addr));
    }
    let mut audit = Audit::default();
    // (handle, block name) -> addresses the block attributes to the handle.
    let mut held: BTreeMap<(String, String), u32> = BTreeMap::new();
    // handle -> addresses the blocks attribute to it.
    let mut allocated: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    for block in &snapshot.blocks {
        let name = IpamBlock::name_for(&block.cidr);
        let mut count = 0;
        for allocation in allocations(block) {
            count += 1;
            *held
                .entry((allocation.handle.to_string(), name.clone()))
                .or_default() += 1;
            allocated
                .entry(allocation.handle)
                .or_default()
                .insert(allocation.address);
            if let Some(reason) = leak_reason(&allocation, &nodes, &endpoint_addresses) {
                audit.leaked.push(LeakedAddress {
                    address: allocation.address,
                    handle: allocation.handle.to_string(),
                    block: block.cidr,
                    node: allocation.secondary.get("node").cloned(),
                    reason,
                });
            }
        }
        if let Some(node) = affine_node(block)
            && !nodes.contains_key(node)
        {
            audit.blocks_of_missing_nodes.push(BlockOfMissingNode {
                block: block.cidr,
                node: node.to_string(),
                allocated: count,
            });
        }
    }
    for endpoint in &snapshot.endpoints {
        for address in endpoint.ip_networks.iter().map(IpNet::addr) {
            let found = allocated
                .get(endpoint.ipam_handle.as_str())
                .is_some_and(|addresses| addresses.contains(&address));
            if !found {
                audit
                    .endpoints_without_allocation
                    .push(EndpointWithoutAllocation {
                        endpoint: endpoint.name.clone(),
                        node: endpoint.node.clone(),
                        address,
                        handle: endpoint.ipam_handle.clone(),
                    });
            }
        }
    }
    let mut counted: BTreeMap<(String, String), u32> = BTreeMap::new();
    for handle in &snapshot.handles {
        for (block, count) in &handle.block {
            counted.insert((handle.handle_id.clone(), block.clone()), *count);
        }
    }
    let keys: BTreeSet<&(String, String)> = held.keys().chain(counted.keys()).collect();
    for key in keys {
        let (counted, held) = (
            counted.get(key).copied().unwrap_or(0),
            held.get(key).copied().unwrap_or(0),
        );
        if counted != held {
            audit.handle_mismatches.push(HandleMismatch {
                handle: key.0.clone(),
                block: key.1.clone(),
                counted,
                held,
            });
        }
    }
    audit.leaked.sort();
    audit.endpoints_without_allocation.sort();
    audit.blocks_of_missing_nodes.sort();
    audit
}

/// Why an allocation is leaked, or None when something live holds it.
fn leak_reason(
    allocation: &Allocation<'_>,
    nodes: &BTreeMap<&str, &Node>,
    endpoint_addresses: &BTreeMap<&str, BTreeSet<IpAddr>>,
) -> Option<String> {
    let handle = allocation.handle;
    if let Some(node_name) = tunnel_node(handle, allocation.secondary) {
        let Some(node) = nodes.get(node_name) else {
            return Some(format!(
                "VXLAN tunnel address of node {node_name:?}, which does not exist"
            ));
        };
        let recorded = match allocation.address {
            IpAddr::V4(address) => node.ipv4_vxlan_tunnel_addr == Some(address),
            IpAddr::V6(address) => node.ipv6_vxlan_tunnel_addr == Some(address),
        };
        return (!recorded)
            .then(|| format!("node {node_name:?} does not record it as its VXLAN tunnel address"));
    }
    match endpoint_addresses.get(handle) {
        Some(addresses) if addresses.contains(&allocation.address) => None,
        Some(_) => Some(format!(
            "the WorkloadEndpoint of handle {handle:?} does not list it"
        )),
        None => Some(format!("no WorkloadEndpoint holds handle {handle:?}")),
    }
}

/// The node of a VXLAN tunnel address's handle.
fn tunnel_node<'a>(handle: &'a str, secondary: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let node = secondary.get("node").map(String::as_str)?;
    (handle == vxlan_tunnel_handle_id(node) || handle == vxlan_v6_tunnel_handle_id(node))
        .then_some(node)
}

/// Every address allocated for a node (its "node" attribute) from a block affine to another.
pub fn borrowed(blocks: &[IpamBlock]) -> Vec<BorrowedAddress> {
    let mut found = Vec::new();
    for block in blocks {
        let Some(owner) = affine_node(block) else {
            continue;
        };
        for allocation in allocations(block) {
            let Some(node) = allocation.secondary.get("node") else {
                continue;
            };
            if node == owner {
                continue;
            }
            let workload = match (
                allocation.secondary.get("namespace"),
                allocation.secondary.get("pod"),
            ) {
                (Some(namespace), Some(pod)) => Some(format!("{namespace}/{pod}")),
                _ => None,
            };
            found.push(BorrowedAddress {
                address: allocation.address,
                borrowing_node: node.clone(),
                block: block.cidr,
                block_owner: owner.to_string(),
                handle: allocation.handle.to_string(),
                workload,
            });
        }
    }
    found.sort();
    found
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
