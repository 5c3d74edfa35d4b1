//! This node's VXLAN tunnel endpoints in the datastore, as calico/node's `allocateip` keeps
//! them, one per address family: while an enabled pool of the family with a vxlanMode other
//! than Never selects the node, the node holds one tunnel address from such a pool (IPAM handle
//! `vxlan-tunnel-addr-<node>`, IPv6 `vxlan-v6-tunnel-addr-<node>`, in one of the node's own
//! blocks) and a VTEP MAC, both on its Node (`ipv4VXLANTunnelAddr` and `vxlanTunnelMACAddr`,
//! IPv6 `ipv6VXLANTunnelAddr` and `vxlanTunnelMACAddrV6`); when no pool of the family needs
//! VXLAN any more both are released and cleared.
//! `vtep_mac` and `decide` are pure; `reconcile_tunnel` does I/O through the Datastore trait
//! (IPAM, and the Node by compare-and-swap through manul-ipam's `CasRetry`).

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use manul_ipam::{
    AutoAssignRequest, Ipam, IpamError, pools::Selector, retry::CasRetry, vxlan_tunnel_handle_id,
    vxlan_v6_tunnel_handle_id,
};
use manul_store::{Datastore, DatastoreExt, EncapsulationMode, IpPool, Node, StoreError};
use sha1::{Digest, Sha1};
use tracing::info;

use super::Family;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("IPAM: {0}")]
    Ipam(#[from] IpamError),
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error("the Node {0:?} does not exist (yet): the tunnel address is written on it")]
    NoNode(String),
}

/// The VTEP MAC of `node` for `family`: locally administered, unicast (first byte 0x66, as
/// Calico's generated MACs often are), the other five bytes from sha1 of the node name (with
/// "/v6" appended for IPv6, so that the two devices differ). Stable across restarts and hosts,
/// distinct per node name.
pub fn vtep_mac(node: &str, family: Family) -> String {
    let seed = match family {
        Family::V4 => node.to_string(),
        Family::V6 => format!("{node}/v6"),
    };
    let digest = Sha1::digest(seed.as_bytes());
    let mut mac = [0u8; 6];
    mac[0] = 0x66;
    mac[1..].copy_from_slice(&digest[..5]);
    crate::netlink::format_mac(&mac)
}

/// Whether `pool` is an enabled pool of `family` with VXLAN on (for any node).
pub fn encapsulates(pool: &IpPool, family: Family) -> bool {
    family.holds(&pool.cidr.addr()) && !pool.disabled && pool.vxlan_mode != EncapsulationMode::Never
}

/// The enabled pools of `family` with VXLAN on that select a node with `labels`.
pub fn vxlan_pools<'a>(
    pools: &'a [IpPool],
    labels: &BTreeMap<String, String>,
    family: Family,
) -> Vec<&'a IpPool> {
    pools
        .iter()
        .filter(|pool| {
            encapsulates(pool, family)
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
    Keep(IpAddr),
    /// Allocate one from these pools (releasing whatever the handle still holds first).
    Allocate(Vec<ipnet::IpNet>),
    /// No pool needs VXLAN: release the handle and clear the Node's fields.
    Release,
}

/// Decides from the Node's stored address, what the handle holds, and the VXLAN pools.
pub fn decide(stored: Option<IpAddr>, held: &[IpAddr], pools: &[&IpPool]) -> TunnelDecision {
    if pools.is_empty() {
        return TunnelDecision::Release;
    }
    if let Some(address) = stored
        && held.contains(&address)
        && pools.iter().any(|pool| pool.cidr.contains(&address))
    {
        return TunnelDecision::Keep(address);
    }
    TunnelDecision::Allocate(pools.iter().map(|pool| pool.cidr).collect())
}

/// The tunnel endpoint this node ends up with (None: no pool needs VXLAN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelEndpoint {
    pub address: IpAddr,
    pub mac: String,
}

/// The IPAM handle of `node`'s tunnel address of `family`.
fn handle_of(node: &str, family: Family) -> String {
    match family {
        Family::V4 => vxlan_tunnel_handle_id(node),
        Family::V6 => vxlan_v6_tunnel_handle_id(node),
    }
}

/// The tunnel address and MAC of `family` recorded on `node`.
pub fn stored_endpoint(node: &Node, family: Family) -> (Option<IpAddr>, Option<&String>) {
    match family {
        Family::V4 => (
            node.ipv4_vxlan_tunnel_addr.map(IpAddr::V4),
            node.vxlan_tunnel_mac_addr.as_ref(),
        ),
        Family::V6 => (
            node.ipv6_vxlan_tunnel_addr.map(IpAddr::V6),
            node.vxlan_tunnel_mac_addr_v6.as_ref(),
        ),
    }
}

/// Records (or clears) the tunnel endpoint of `family` on `node`.
fn record_endpoint(node: &mut Node, family: Family, endpoint: Option<&TunnelEndpoint>) {
    let mac = endpoint.map(|endpoint| endpoint.mac.clone());
    let address = endpoint.map(|endpoint| endpoint.address);
    match family {
        Family::V4 => {
            node.ipv4_vxlan_tunnel_addr = address.and_then(|address| match address {
                IpAddr::V4(address) => Some(address),
                IpAddr::V6(_) => None,
            });
            node.vxlan_tunnel_mac_addr = mac;
        }
        Family::V6 => {
            node.ipv6_vxlan_tunnel_addr = address.and_then(|address| match address {
                IpAddr::V6(address) => Some(address),
                IpAddr::V4(_) => None,
            });
            node.vxlan_tunnel_mac_addr_v6 = mac;
        }
    }
}

/// Brings the tunnel address and MAC of `family` of `node` in line with `pools` (every stored
/// pool; the caller has read them) (idempotent: a second call with nothing changed writes
/// nothing).
pub async fn reconcile_tunnel(
    store: &Arc<dyn Datastore>,
    node: &str,
    pools: &[IpPool],
    family: Family,
) -> Result<Option<TunnelEndpoint>, TunnelError> {
    let ipam = Ipam::new(store.clone());
    let handle = handle_of(node, family);
    let stored = store
        .get_resource::<Node>(node)
        .await?
        .ok_or_else(|| TunnelError::NoNode(node.to_string()))?
        .value;
    let candidates = vxlan_pools(pools, &stored.metadata.labels, family);
    let held = ipam.addresses_by_handle(&handle).await?;
    let (stored_address, stored_mac) = stored_endpoint(&stored, family);
    let address = match decide(stored_address, &held, &candidates) {
        TunnelDecision::Keep(address) => address,
        TunnelDecision::Release => {
            write_node(store, node, family, None).await?;
            let released = ipam.release_by_handle(&handle).await?;
            if !released.is_empty() {
                info!(
                    ?released,
                    ?family,
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
                    num_ipv4: u32::from(family == Family::V4),
                    num_ipv6: u32::from(family == Family::V6),
                    ipv4_pools: if family == Family::V4 {
                        pools.clone()
                    } else {
                        Vec::new()
                    },
                    ipv6_pools: if family == Family::V6 {
                        pools
                    } else {
                        Vec::new()
                    },
                    attributes: BTreeMap::from([
                        ("node".to_string(), node.to_string()),
                        ("type".to_string(), "vxlanTunnelAddress".to_string()),
                    ]),
                })
                .await?;
            let assigned = match family {
                Family::V4 => assignment.ipv4.first(),
                Family::V6 => assignment.ipv6.first(),
            };
            let Some(address) = assigned.map(ipnet::IpNet::addr) else {
                return Err(IpamError::InvalidRequest(format!(
                    "the tunnel address assignment returned no {family:?} address"
                ))
                .into());
            };
            info!(%address, "allocated this node's VXLAN tunnel address");
            address
        }
    };
    let mac = stored_mac
        .cloned()
        .unwrap_or_else(|| vtep_mac(node, family));
    let endpoint = TunnelEndpoint { address, mac };
    if let Err(error) = write_node(store, node, family, Some(&endpoint)).await {
        if stored_address != Some(address) {
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
    family: Family,
    endpoint: Option<&TunnelEndpoint>,
) -> Result<(), TunnelError> {
    let mut retry = CasRetry::new(|| format!("writing the tunnel address of node {node:?}"));
    loop {
        let current = store
            .get_resource::<Node>(node)
            .await?
            .ok_or_else(|| TunnelError::NoNode(node.to_string()))?;
        let mut wanted = current.value.clone();
        record_endpoint(&mut wanted, family, endpoint);
        if wanted == current.value {
            return Ok(());
        }
        match store.update_resource(&wanted, &current.revision).await {
            Ok(_) => return Ok(()),
            Err(error) => retry.lost(error).await?,
        }
    }
}
