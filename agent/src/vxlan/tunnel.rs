//! This node's VXLAN tunnel endpoint in the datastore, as calico/node's `allocateip` keeps it:
//! while an enabled IPv4 pool with a vxlanMode other than Never selects the node, the node holds
//! one tunnel address from such a pool (IPAM handle `vxlan-tunnel-addr-<node>`, in one of the
//! node's own blocks) and a VTEP MAC, both on its Node (`ipv4VXLANTunnelAddr`,
//! `vxlanTunnelMACAddr`); when no pool needs VXLAN any more both are released and cleared.
//! `vtep_mac` and `decide` are pure; `reconcile_tunnel` does I/O through the Datastore trait
//! (IPAM, and the Node by compare-and-swap through manul-ipam's `CasRetry`).

use std::{collections::BTreeMap, net::Ipv4Addr, sync::Arc};

use ipnet::IpNet;
use manul_ipam::{
    AutoAssignRequest, Ipam, IpamError, pools::Selector, retry::CasRetry, vxlan_tunnel_handle_id,
};
use manul_store::{Datastore, DatastoreExt, EncapsulationMode, IpPool, Node, StoreError};
use sha1::{Digest, Sha1};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("IPAM: {0}")]
    Ipam(#[from] IpamError),
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error("the Node {0:?} does not exist (yet): the tunnel address is written on it")]
    NoNode(String),
}

/// The VTEP MAC of `node`: locally administered, unicast (first byte 0x66, as Calico's
/// generated MACs often are), the other five bytes from sha1(node name). Stable across
/// restarts and hosts, distinct per node name.
pub fn vtep_mac(node: &str) -> String {
    let digest = Sha1::digest(node.as_bytes());
    let mut mac = [0u8; 6];
    mac[0] = 0x66;
    mac[1..].copy_from_slice(&digest[..5]);
    crate::netlink::format_mac(&mac)
}

/// The enabled IPv4 pools with VXLAN on that select a node with `labels`.
pub fn vxlan_pools<'a>(pools: &'a [IpPool], labels: &BTreeMap<String, String>) -> Vec<&'a IpPool> {
    pools
        .iter()
        .filter(|pool| {
            matches!(pool.cidr, IpNet::V4(_))
                && !pool.disabled
                && pool.vxlan_mode != EncapsulationMode::Never
                && Selector::parse(&pool.node_selector)
                    .is_ok_and(|selector| selector.matches(labels))
        })
        .collect()
}

/// What the tunnel address needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelDecision {
    /// The stored address is allocated to our handle, inside a VXLAN pool: keep it (set the
    /// MAC if it is missing).
    Keep(Ipv4Addr),
    /// Allocate one from these pools (releasing whatever the handle still holds first).
    Allocate(Vec<IpNet>),
    /// No pool needs VXLAN: release the handle and clear the Node's fields.
    Release,
}

/// Decides from the Node's stored address, what the handle holds, and the VXLAN pools.
pub fn decide(
    stored: Option<Ipv4Addr>,
    held: &[std::net::IpAddr],
    pools: &[&IpPool],
) -> TunnelDecision {
    if pools.is_empty() {
        return TunnelDecision::Release;
    }
    if let Some(address) = stored
        && held.contains(&address.into())
        && pools
            .iter()
            .any(|pool| pool.cidr.contains(&std::net::IpAddr::from(address)))
    {
        return TunnelDecision::Keep(address);
    }
    TunnelDecision::Allocate(pools.iter().map(|pool| pool.cidr).collect())
}

/// The tunnel endpoint this node ends up with (None: no pool needs VXLAN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelEndpoint {
    pub address: Ipv4Addr,
    pub mac: String,
}

/// Brings the tunnel address and MAC of `node` in line with `pools` (every stored pool; the
/// caller has read them) (idempotent: a second call with nothing changed writes nothing).
pub async fn reconcile_tunnel(
    store: &Arc<dyn Datastore>,
    node: &str,
    pools: &[IpPool],
) -> Result<Option<TunnelEndpoint>, TunnelError> {
    let ipam = Ipam::new(store.clone());
    let handle = vxlan_tunnel_handle_id(node);
    let stored = store
        .get_resource::<Node>(node)
        .await?
        .ok_or_else(|| TunnelError::NoNode(node.to_string()))?
        .value;
    let candidates = vxlan_pools(pools, &stored.labels);
    let held = ipam.addresses_by_handle(&handle).await?;
    let address = match decide(stored.ipv4_vxlan_tunnel_addr, &held, &candidates) {
        TunnelDecision::Keep(address) => address,
        TunnelDecision::Release => {
            write_node(store, node, None).await?;
            let released = ipam.release_by_handle(&handle).await?;
            if !released.is_empty() {
                info!(
                    ?released,
                    "no pool needs VXLAN: released the tunnel address"
                );
            }
            return Ok(None);
        }
        TunnelDecision::Allocate(pools) => {
            ipam.release_by_handle(&handle).await?;
            let assignment = ipam
                .auto_assign(&AutoAssignRequest {
                    handle_id: handle.clone(),
                    node: node.to_string(),
                    num_ipv4: 1,
                    ipv4_pools: pools,
                    attributes: BTreeMap::from([
                        ("node".to_string(), node.to_string()),
                        ("type".to_string(), "vxlanTunnelAddress".to_string()),
                    ]),
                    ..Default::default()
                })
                .await?;
            let Some(IpNet::V4(address)) = assignment.ipv4.first() else {
                return Err(IpamError::InvalidRequest(
                    "the tunnel address assignment returned no IPv4 address".into(),
                )
                .into());
            };
            info!(address = %address.addr(), "allocated this node's VXLAN tunnel address");
            address.addr()
        }
    };
    let mac = stored
        .vxlan_tunnel_mac_addr
        .clone()
        .unwrap_or_else(|| vtep_mac(node));
    let endpoint = TunnelEndpoint { address, mac };
    if let Err(error) = write_node(store, node, Some(&endpoint)).await {
        if stored.ipv4_vxlan_tunnel_addr != Some(address) {
            // Not recorded on the Node: give the fresh address back.
            let _ = ipam.release_by_handle(&handle).await;
        }
        return Err(error);
    }
    Ok(Some(endpoint))
}

/// Sets (or clears) the tunnel fields of the Node by compare-and-swap; other fields stay.
async fn write_node(
    store: &Arc<dyn Datastore>,
    node: &str,
    endpoint: Option<&TunnelEndpoint>,
) -> Result<(), TunnelError> {
    let mut retry = CasRetry::new(|| format!("writing the tunnel address of node {node:?}"));
    loop {
        let current = store
            .get_resource::<Node>(node)
            .await?
            .ok_or_else(|| TunnelError::NoNode(node.to_string()))?;
        let mut wanted = current.value.clone();
        wanted.ipv4_vxlan_tunnel_addr = endpoint.map(|endpoint| endpoint.address);
        wanted.vxlan_tunnel_mac_addr = endpoint.map(|endpoint| endpoint.mac.clone());
        if wanted == current.value {
            return Ok(());
        }
        match store.update_resource(&wanted, &current.revision).await {
            Ok(_) => return Ok(()),
            Err(error) => retry.lost(error).await?,
        }
    }
}
