//! manul-ipam: Calico's block IPAM (pools, affine blocks, handles, borrowing) over manul-store's
//! `Datastore` trait. It does no I/O of its own: every read and write goes through the trait,
//! and every write is a compare-and-swap on a revision, retried from a fresh read on conflict.
//!
//! Modules: `block` (pure operations on one block), `pools` (validation, selectors),
//! `selector` (Calico's selector language, the one parser of manul),
//! `pool_index` (pool creation and deletion under one CAS-written index of all pools),
//! `affinity` (claiming blocks), `handles` (per-handle counts), `assign` (allocation),
//! `release` (release by handle or address), `release_node` (a deleted node's blocks and
//! affinities), `empty_blocks` (giving back blocks that stayed
//! empty), `check` (whole-store consistency), `audit` (pure cross-checks of allocations
//! against endpoints, nodes and handles over a snapshot; borrowed addresses), `retry` (the
//! one compare-and-swap retry policy, public so that other crates' CAS loops share it).
//!
//! Deliberate limits: two requests of one node racing past a full block may both claim a
//! block, so maxBlocksPerHost can be exceeded by the number of concurrent requests (as in
//! Calico); `assign_ip` does not check the pool's nodeSelector (as in Calico: the operator
//! named the address) and claims the address's block even when autoAllocateBlocks is false.

mod affinity;
mod assign;
pub mod audit;
pub mod block;
mod check;
mod empty_blocks;
mod error;
mod handles;
mod pool_index;
pub mod pools;
mod release;
mod release_node;
pub mod retry;
mod selector;

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

pub use error::IpamError;
pub use ipnet::IpNet;
use manul_store::{Datastore, DatastoreExt, IpPool, IpamConfiguration, Node};
pub use release_node::NodeRelease;

/// Calico's handle id of a node's IPv4 VXLAN tunnel address: "vxlan-tunnel-addr-<node>".
pub fn vxlan_tunnel_handle_id(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// Calico's handle id of a node's IPv6 VXLAN tunnel address: "vxlan-v6-tunnel-addr-<node>".
pub fn vxlan_v6_tunnel_handle_id(node: &str) -> String {
    format!("vxlan-v6-tunnel-addr-{node}")
}

/// Calico's handle id for a pod network attachment: "k8s-pod-network.<container-id>".
pub fn pod_handle_id(container_id: &str) -> String {
    format!("k8s-pod-network.{container_id}")
}

/// Block IPAM over a datastore. Cheap to clone.
#[derive(Clone)]
pub struct Ipam {
    store: Arc<dyn Datastore>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoAssignRequest {
    pub handle_id: String,
    pub node: String,
    pub num_ipv4: u32,
    pub num_ipv6: u32,
    /// CIDRs of the pools to use; empty means every enabled pool that selects the node.
    pub ipv4_pools: Vec<IpNet>,
    pub ipv6_pools: Vec<IpNet>,
    /// Stored with each address ("namespace", "pod", "node", ...).
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignIpRequest {
    pub address: IpAddr,
    pub handle_id: String,
    pub node: String,
    pub attributes: BTreeMap<String, String>,
}

/// Assigned addresses as host prefixes (/32 and /128).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    pub ipv4: Vec<IpNet>,
    pub ipv6: Vec<IpNet>,
}

/// The outcome of [`Ipam::check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Real inconsistencies: an address could be handed out twice or never released.
    pub problems: Vec<String>,
    /// Harmless states a crash can leave behind (over-counted handles, pending affinities).
    pub leftovers: Vec<String>,
    /// Allocated addresses, blocks and handles seen.
    pub allocated: usize,
    pub blocks: usize,
    pub handles: usize,
}

impl Ipam {
    pub fn new(store: Arc<dyn Datastore>) -> Ipam {
        Ipam { store }
    }

    pub fn store(&self) -> &Arc<dyn Datastore> {
        &self.store
    }

    pub async fn pools(&self) -> Result<Vec<IpPool>, IpamError> {
        Ok(self
            .store
            .list_resources::<IpPool>("")
            .await?
            .into_iter()
            .map(|pool| pool.value)
            .collect())
    }

    /// Turns pool names or CIDRs (as a CNI configuration lists them) into the CIDR filters of
    /// an [`AutoAssignRequest`]: (IPv4 pools, IPv6 pools).
    pub async fn resolve_pools(
        &self,
        names_or_cidrs: &[String],
    ) -> Result<(Vec<IpNet>, Vec<IpNet>), IpamError> {
        let pools = self.pools().await?;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for entry in names_or_cidrs {
            let cidr =
                match entry.parse::<IpNet>() {
                    Ok(cidr) => cidr,
                    Err(_) => pools
                        .iter()
                        .find(|pool| pool.name == *entry)
                        .ok_or_else(|| {
                            IpamError::InvalidRequest(format!(
                                "no IP pool is named {entry:?}; list pools and use a name or CIDR"
                            ))
                        })?
                        .cidr,
                };
            match cidr {
                IpNet::V4(_) => v4.push(cidr),
                IpNet::V6(_) => v6.push(cidr),
            }
        }
        Ok((v4, v6))
    }

    /// Every block, handle, Node and WorkloadEndpoint, for [`audit::audit`]. Each kind is one
    /// listing; writes between the listings can make an in-flight change look inconsistent,
    /// so act on a finding only after checking it again.
    pub async fn snapshot(&self) -> Result<audit::IpamSnapshot, IpamError> {
        Ok(audit::IpamSnapshot {
            blocks: values(self.store.list_resources("").await?),
            handles: values(self.store.list_resources("").await?),
            nodes: values(self.store.list_resources("").await?),
            endpoints: values(self.store.list_resources("").await?),
        })
    }

    /// The IPAM configuration ("default"), or Calico's defaults when absent.
    pub async fn config(&self) -> Result<IpamConfiguration, IpamError> {
        Ok(self
            .store
            .get_resource::<IpamConfiguration>(IpamConfiguration::NAME)
            .await?
            .map(|config| config.value)
            .unwrap_or_default())
    }

    /// Creates or replaces the IPAM configuration.
    pub async fn set_config(&self, config: &IpamConfiguration) -> Result<(), IpamError> {
        let mut retry = retry::CasRetry::new(|| "writing the IPAM configuration".to_string());
        loop {
            let current = self
                .store
                .get_resource::<IpamConfiguration>(IpamConfiguration::NAME)
                .await?;
            let result = match current {
                Some(current) => self.store.update_resource(config, &current.revision).await,
                None => self.store.create_resource(config).await,
            };
            match result {
                Ok(_) => return Ok(()),
                Err(error) => retry.lost(error).await?,
            }
        }
    }

    /// CIDRs of the blocks `node` has confirmed affinity to, in order.
    pub async fn affine_blocks(&self, node: &str) -> Result<Vec<IpNet>, IpamError> {
        let mut blocks: Vec<IpNet> = affinity::node_affinities(self.store.as_ref(), node)
            .await?
            .into_iter()
            .filter(|affinity| affinity.value.state == manul_store::AffinityState::Confirmed)
            .map(|affinity| affinity.value.cidr)
            .collect();
        blocks.sort();
        Ok(blocks)
    }

    async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>, IpamError> {
        Ok(self
            .store
            .get_resource::<Node>(node)
            .await?
            .map(|node| node.value.metadata.labels)
            .unwrap_or_default())
    }
}

fn values<T>(items: Vec<manul_store::Versioned<T>>) -> Vec<T> {
    items.into_iter().map(|item| item.value).collect()
}
