//! Endpoints: the CNI operations of the agent (ADD, DEL, CHECK, GC) over IPAM, the datastore,
//! and the kernel traits. The flow follows netavark: validate every input, then mutate, and on
//! a failure at step k undo steps k-1..1 and give the address back. I/O only through the
//! `Netlink`, `Sysctl`, `Datastore` and IPAM handles it is given.

mod add;
pub mod check;
mod delete;

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use ipnet::IpNet;
use manul_ipam::{Ipam, IpamError};
use manul_store::{Datastore, DatastoreExt, StoreError, Versioned, WorkloadEndpoint};
use tokio::sync::RwLock;

use crate::{
    dataplane::Dataplane,
    locks::ContainerLocks,
    netlink::{LinkInfo, Netlink, NetlinkError},
    sysctl::{Sysctl, SysctlError},
};

pub use add::AddedEndpoint;

/// MTU used when neither the request nor the host's default route gives one.
const FALLBACK_MTU: u32 = 1500;

/// An ADD, CHECK or DEL as the agent receives it, already parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointRequest {
    pub container_id: String,
    /// Empty on a DEL whose sandbox is gone.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub network_name: String,
    /// None: the MTU of the host's default-route interface.
    pub mtu: Option<u32>,
    pub assign_ipv4: bool,
    pub assign_ipv6: bool,
    /// Pools by CIDR or by name; empty for every enabled pool.
    pub ipv4_pools: Vec<String>,
    pub ipv6_pools: Vec<String>,
    pub requested_ips: Vec<IpAddr>,
    pub prev_result_ips: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("no endpoint for container {container_id} interface {ifname} on this node")]
    UnknownContainer {
        container_id: String,
        ifname: String,
    },
    #[error("check failed: {0}")]
    CheckFailed(String),
    #[error("pool annotation: {0}")]
    PoolAnnotation(#[from] crate::pods::pools::PoolAnnotationError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error("kernel: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("sysctl: {0}")]
    Sysctl(#[from] SysctlError),
    /// A DEL or GC that kept going past failures reports all of them.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<EndpointError>),
}

/// The CNI side of the agent for one node.
pub struct Endpoints {
    pub(crate) node: String,
    pub(crate) store: Arc<dyn Datastore>,
    pub(crate) ipam: Ipam,
    pub(crate) netlink: Arc<dyn Netlink>,
    /// For reads (CHECK); writes go through `dataplane`.
    pub(crate) sysctl: Arc<dyn Sysctl>,
    /// The one writer of routes and sysctls.
    pub(crate) dataplane: Dataplane,
    pub(crate) locks: ContainerLocks,
    /// CNI operations hold it shared; the reconciler holds it exclusively, so it never sees
    /// an endpoint half made.
    pub(crate) kernel_epoch: Arc<RwLock<()>>,
    /// MTU of the default-route interface, learned on first use and refreshed by every
    /// reconcile: an ADD must not dump the routing table (it may hold a million BGP routes).
    pub(crate) default_mtu: std::sync::Mutex<Option<u32>>,
    /// Bytes the pools' encapsulation takes from the pods' MTU (50 while a pool uses VXLAN),
    /// kept current by the pool dataplane task.
    pub(crate) encapsulation_overhead: std::sync::atomic::AtomicU32,
    /// IPAM writes of this agent take turns: concurrent requests of one node would otherwise
    /// race for the same block and lose most compare-and-swaps (each loss is a re-read and a
    /// retry). Writers elsewhere are still handled by the CAS itself.
    pub(crate) ipam_writes: tokio::sync::Mutex<()>,
    /// Deletions the reconciler refused because nothing it knows justified them (a wrong
    /// node name, an empty store, a mass deletion); exported as a counter.
    pub(crate) refused_deletions: std::sync::atomic::AtomicU64,
    /// Routes written again after the kernel dropped them with a device's carrier
    /// (`rewrite_lost_routes`); exported as a counter.
    pub(crate) lost_routes_rewritten: std::sync::atomic::AtomicU64,
    /// Blocks of this node that stay empty this long are given back (None: never).
    pub(crate) empty_block_grace: Option<std::time::Duration>,
    /// Kubernetes mode: pods and namespaces, for pool selection by annotation.
    pub(crate) pods: Option<Arc<dyn crate::pods::PodDirectory>>,
    /// Indexes of the host ends whose GRO this agent turned on (`enable_gro`); the reconciler
    /// turns it on for the others (host ends made by an older agent) and forgets gone links.
    pub(crate) gro_links: std::sync::Mutex<std::collections::BTreeSet<u32>>,
}

impl Endpoints {
    pub fn new(
        node: String,
        store: Arc<dyn Datastore>,
        netlink: Arc<dyn Netlink>,
        sysctl: Arc<dyn Sysctl>,
    ) -> Endpoints {
        Endpoints {
            node,
            ipam: Ipam::new(store.clone()),
            store,
            dataplane: Dataplane::new(netlink.clone(), sysctl.clone()),
            sysctl,
            netlink,
            locks: ContainerLocks::default(),
            kernel_epoch: Arc::new(RwLock::new(())),
            default_mtu: std::sync::Mutex::new(None),
            encapsulation_overhead: std::sync::atomic::AtomicU32::new(0),
            ipam_writes: tokio::sync::Mutex::new(()),
            gro_links: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            refused_deletions: std::sync::atomic::AtomicU64::new(0),
            lost_routes_rewritten: std::sync::atomic::AtomicU64::new(0),
            empty_block_grace: None,
            pods: None,
        }
    }

    /// Chooses pools by the pod's and its namespace's `cni.projectcalico.org/ipv4pools` /
    /// `ipv6pools` annotations, read from `pods` (Kubernetes mode).
    pub fn with_pod_directory(mut self, pods: Arc<dyn crate::pods::PodDirectory>) -> Endpoints {
        self.pods = Some(pods);
        self
    }

    /// Lets the reconciler release this node's blocks that stayed empty for `grace` (when the
    /// node keeps another block with room in the pool; see `Ipam::release_empty_blocks`).
    pub fn with_empty_block_grace(mut self, grace: Option<std::time::Duration>) -> Endpoints {
        self.empty_block_grace = grace;
        self
    }

    /// The route and sysctl appliers.
    pub fn dataplane(&self) -> &Dataplane {
        &self.dataplane
    }

    /// Turns GRO on at a host end (`Netlink::enable_gro`) and remembers it. Ok(false): the
    /// kernel cannot.
    pub(crate) async fn enable_gro(&self, link: &LinkInfo) -> Result<bool, NetlinkError> {
        let enabled = self.netlink.enable_gro(link).await?;
        if enabled {
            self.gro_links
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(link.index);
        }
        Ok(enabled)
    }

    /// Of `links` (host ends that stay), those whose GRO this agent has not turned on; forgets
    /// the indexes of links that are gone.
    pub(crate) fn links_without_gro<'a>(&self, links: &[&'a LinkInfo]) -> Vec<&'a LinkInfo> {
        let mut known = self
            .gro_links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let present: std::collections::BTreeSet<u32> =
            links.iter().map(|link| link.index).collect();
        known.retain(|index| present.contains(index));
        links
            .iter()
            .filter(|link| !known.contains(&link.index))
            .copied()
            .collect()
    }

    /// How many routes the agent wrote again since it started because the kernel dropped
    /// them with a device's carrier.
    pub fn lost_routes_rewritten(&self) -> u64 {
        self.lost_routes_rewritten
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many deletions the reconciler has refused since the agent started.
    pub fn refused_deletions(&self) -> u64 {
        self.refused_deletions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn store(&self) -> Arc<dyn Datastore> {
        self.store.clone()
    }

    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The lock the reconciler takes exclusively.
    pub fn kernel_epoch(&self) -> Arc<RwLock<()>> {
        self.kernel_epoch.clone()
    }

    /// Whether an enabled IPv6 pool exists (the node then forwards IPv6).
    pub async fn ipv6_in_use(&self) -> Result<bool, IpamError> {
        Ok(self
            .ipam
            .pools()
            .await?
            .iter()
            .any(|pool| pool.cidr.addr().is_ipv6() && !pool.disabled))
    }

    /// The MTU pods get when the request names none: the default-route interface's (cached),
    /// less the encapsulation overhead while a pool uses VXLAN.
    pub(crate) async fn pod_mtu(&self) -> Result<u32, EndpointError> {
        let cached = *self
            .default_mtu
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let uplink = match cached {
            Some(mtu) => mtu,
            None => self.refresh_default_mtu().await?,
        };
        let overhead = self
            .encapsulation_overhead
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(uplink.saturating_sub(overhead))
    }

    /// Sets the bytes encapsulation takes from the pods' MTU (0 without VXLAN).
    pub fn set_encapsulation_overhead(&self, bytes: u32) {
        self.encapsulation_overhead
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// What `set_encapsulation_overhead` last set.
    pub fn encapsulation_overhead(&self) -> u32 {
        self.encapsulation_overhead
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the default-route interface's MTU again (1500 when there is no default route).
    pub(crate) async fn refresh_default_mtu(&self) -> Result<u32, EndpointError> {
        let mtu = self
            .netlink
            .default_route_mtu()
            .await?
            .unwrap_or(FALLBACK_MTU);
        *self
            .default_mtu
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(mtu);
        Ok(mtu)
    }

    /// Releases a handle's addresses, taking this agent's turn for IPAM writes.
    pub(crate) async fn release(&self, handle: &str) -> Result<Vec<std::net::IpAddr>, IpamError> {
        let _turn = self.ipam_writes.lock().await;
        self.ipam.release_by_handle(handle).await
    }

    /// This node's endpoints, as recorded in the datastore.
    pub async fn list(&self) -> Result<Vec<Versioned<WorkloadEndpoint>>, EndpointError> {
        let prefix = WorkloadEndpoint::node_prefix(&self.node);
        Ok(self
            .store
            .list_resources::<WorkloadEndpoint>(&prefix)
            .await?)
    }

    pub(crate) async fn find(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<Versioned<WorkloadEndpoint>>, EndpointError> {
        let name = WorkloadEndpoint::name_for(&self.node, container_id, ifname);
        Ok(self.store.get_resource::<WorkloadEndpoint>(&name).await?)
    }
}

/// Checks the fields every operation needs.
pub(crate) fn validate_common(request: &EndpointRequest) -> Result<(), EndpointError> {
    if request.container_id.is_empty() {
        return Err(EndpointError::InvalidRequest(
            "container_id is empty".into(),
        ));
    }
    if request.container_id.len() > 256
        || request
            .container_id
            .chars()
            .any(|c| c.is_control() || c == '/')
    {
        return Err(EndpointError::InvalidRequest(format!(
            "container_id {:?} must be at most 256 printable characters without '/'",
            request.container_id
        )));
    }
    if request.ifname.is_empty()
        || request.ifname.len() > 15
        || request.ifname.contains(['/', ' ', ':'])
    {
        return Err(EndpointError::InvalidRequest(format!(
            "ifname {:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)",
            request.ifname
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cas;
#[cfg(test)]
mod tests_races;
