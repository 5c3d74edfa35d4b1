//! Block affinity: finding a free block in a pool, claiming it for a node (pending affinity,
//! create-if-absent block, confirmed affinity) and listing a node's affine blocks. I/O only
//! through the Datastore trait; every write is a compare-and-swap.
//!
//! Claim order (libcalico-go's claimAffineBlock): 1. create the BlockAffinity, state pending;
//! 2. create the IPAMBlock with affinity "host:<node>" — if the name is taken by another node
//! the race is lost, the pending affinity is deleted and the caller picks another block;
//! 3. confirm the affinity. A crash after 1 leaves a pending affinity without block, after 2 a
//! pending affinity with its block; both are leftovers the next claim or check settles.

use std::collections::BTreeSet;

use ipnet::IpNet;
use manul_store::{
    AffinityState, BlockAffinity, Datastore, DatastoreExt, IpPool, IpamBlock, Versioned,
};

use crate::{
    IpamError,
    block::{host_affinity, new_block},
    retry::CasRetry,
};

/// The affinities of `node` (the name prefix also matches longer node names; filtered here).
pub(crate) async fn node_affinities(
    store: &dyn Datastore,
    node: &str,
) -> Result<Vec<Versioned<BlockAffinity>>, IpamError> {
    let listed = store
        .list_resources::<BlockAffinity>(&format!("{node}-"))
        .await?;
    Ok(listed
        .into_iter()
        .filter(|affinity| affinity.value.node == node && !affinity.value.deleted)
        .collect())
}

/// Confirmed affine blocks of `node`, after settling pending affinities: one whose block
/// carries this node's affinity is confirmed, one whose block belongs to another node is
/// deleted, one without block is left alone.
pub(crate) async fn settled_affine_blocks(
    store: &dyn Datastore,
    node: &str,
) -> Result<Vec<IpNet>, IpamError> {
    let mut confirmed = Vec::new();
    for affinity in node_affinities(store, node).await? {
        match affinity.value.state {
            AffinityState::Confirmed => confirmed.push(affinity.value.cidr),
            AffinityState::Pending => {
                let block = store
                    .get_resource::<IpamBlock>(&IpamBlock::name_for(&affinity.value.cidr))
                    .await?;
                match block {
                    Some(block)
                        if block.value.affinity.as_deref() == Some(&host_affinity(node)) =>
                    {
                        confirm(store, node, &affinity.value.cidr).await?;
                        confirmed.push(affinity.value.cidr);
                    }
                    Some(_) => forget(store, node, &affinity.value.cidr).await?,
                    None => {}
                }
            }
            AffinityState::PendingDeletion => {}
        }
    }
    confirmed.sort();
    Ok(confirmed)
}

/// Sets the affinity of `node` to `cidr` to confirmed (creating it when it vanished).
pub(crate) async fn confirm(
    store: &dyn Datastore,
    node: &str,
    cidr: &IpNet,
) -> Result<(), IpamError> {
    let name = BlockAffinity::name_for(node, cidr);
    let mut retry = CasRetry::new(|| format!("confirming block affinity {name:?}"));
    loop {
        let wanted = BlockAffinity {
            node: node.to_string(),
            cidr: *cidr,
            state: AffinityState::Confirmed,
            deleted: false,
        };
        let result = match store.get_resource::<BlockAffinity>(&name).await? {
            Some(current) if current.value == wanted => return Ok(()),
            Some(current) => store.update_resource(&wanted, &current.revision).await,
            None => store.create_resource(&wanted).await,
        };
        match result {
            Ok(_) => return Ok(()),
            Err(error) => retry.lost(error).await?,
        }
    }
}

/// Deletes the affinity of `node` to `cidr` when it is not confirmed.
pub(crate) async fn forget(
    store: &dyn Datastore,
    node: &str,
    cidr: &IpNet,
) -> Result<(), IpamError> {
    remove(store, node, cidr, true).await
}

/// Deletes the affinity of `node` to `cidr` (kept when `keep_confirmed` and it is confirmed).
pub(crate) async fn remove(
    store: &dyn Datastore,
    node: &str,
    cidr: &IpNet,
    keep_confirmed: bool,
) -> Result<(), IpamError> {
    let name = BlockAffinity::name_for(node, cidr);
    let mut retry = CasRetry::new(|| format!("deleting block affinity {name:?}"));
    loop {
        let Some(current) = store.get_resource::<BlockAffinity>(&name).await? else {
            return Ok(());
        };
        if keep_confirmed && current.value.state == AffinityState::Confirmed {
            return Ok(());
        }
        match store
            .delete_resource::<BlockAffinity>(&name, &current.revision)
            .await
        {
            Ok(()) => return Ok(()),
            Err(error) => retry.lost(error).await?,
        }
    }
}

/// Claims the block `cidr` for `node`. Ok(false) when another node holds it.
pub(crate) async fn claim(
    store: &dyn Datastore,
    node: &str,
    cidr: &IpNet,
    strict_affinity: bool,
) -> Result<bool, IpamError> {
    let pending = BlockAffinity {
        node: node.to_string(),
        cidr: *cidr,
        state: AffinityState::Pending,
        deleted: false,
    };
    match store.create_resource(&pending).await {
        Ok(_) => {}
        Err(error) if error.is_conflict() => {}
        Err(error) => return Err(error.into()),
    }
    let block = new_block(*cidr, Some(host_affinity(node)), strict_affinity);
    match store.create_resource(&block).await {
        Ok(_) => {}
        Err(error) if error.is_conflict() => {
            let existing = store
                .get_resource::<IpamBlock>(&IpamBlock::name_for(cidr))
                .await?;
            let ours = existing
                .is_some_and(|block| block.value.affinity.as_deref() == Some(&host_affinity(node)));
            if !ours {
                forget(store, node, cidr).await?;
                return Ok(false);
            }
        }
        Err(error) => return Err(error.into()),
    }
    confirm(store, node, cidr).await?;
    Ok(true)
}

/// FNV-1a, to spread the nodes' first blocks over the pool (Calico seeds its block order with
/// the host name in the same spirit).
fn spread(node: &str) -> u128 {
    node.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    }) as u128
}

/// A block of `pool` that is not in `taken`, starting at a place derived from the node name.
pub(crate) fn free_block(pool: &IpPool, taken: &BTreeSet<IpNet>, node: &str) -> Option<IpNet> {
    let max = pool.cidr.max_prefix_len();
    let index_bits = u32::from(pool.block_size.checked_sub(pool.cidr.prefix_len())?);
    let host_bits = u32::from(max - pool.block_size);
    let mask = if index_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << index_bits) - 1
    };
    let base = match pool.cidr.network() {
        std::net::IpAddr::V4(address) => u128::from(u32::from(address)),
        std::net::IpAddr::V6(address) => u128::from(address),
    };
    let start = spread(node) & mask;
    let in_pool = taken
        .iter()
        .filter(|cidr| pool.cidr.contains(*cidr))
        .count() as u128;
    for step in 0..=in_pool.min(mask) {
        let index = start.wrapping_add(step) & mask;
        let offset = index.checked_shl(host_bits).unwrap_or(0);
        let network = base | offset;
        let address = if max == 32 {
            std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(network).ok()?))
        } else {
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(network))
        };
        let candidate = IpNet::new(address, pool.block_size).ok()?;
        if !taken.contains(&candidate) {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str, block_size: u8) -> IpPool {
        IpPool {
            metadata: Default::default(),
            name: "p".into(),
            cidr: cidr.parse().unwrap(),
            block_size,
            disabled: false,
            node_selector: String::new(),
            nat_outgoing: false,
            vxlan_mode: Default::default(),
            ipip_mode: Default::default(),
            disable_bgp_export: false,
        }
    }

    #[test]
    fn free_block_skips_taken_and_wraps() {
        let pool = pool("10.0.0.0/24", 26);
        let mut taken = BTreeSet::new();
        for _ in 0..4 {
            let block = free_block(&pool, &taken, "node-a").unwrap();
            assert!(pool.cidr.contains(&block));
            assert_eq!(block.prefix_len(), 26);
            assert!(taken.insert(block));
        }
        assert_eq!(free_block(&pool, &taken, "node-a"), None);
    }

    #[test]
    fn free_block_in_a_huge_v6_pool() {
        let pool = pool("fd00::/48", 122);
        let block = free_block(&pool, &BTreeSet::new(), "n").unwrap();
        assert!(pool.cidr.contains(&block));
        assert_eq!(block.trunc(), block);
    }
}
