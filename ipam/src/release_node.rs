//! Release of a deleted node's IPAM state (Calico's ReleaseHostAffinities on node deletion):
//! its VXLAN tunnel addresses are released (handles `vxlan-tunnel-addr-<node>` and
//! `vxlan-v6-tunnel-addr-<node>`); every block
//! affinity of the node is deleted; its blocks without allocations are deleted;
//! blocks still holding allocations stay, without affinity, so the addresses of pods that
//! still run (or whose release is still to come) are never freed by this. I/O only through
//! the Datastore trait; every write is a compare-and-swap through `retry::CasRetry`.
//!
//! Order per block, as libcalico-go's releaseBlockAffinity: the affinity goes to
//! pendingDeletion (the node's own allocator only uses confirmed affinities, so an agent of
//! the node still running stops choosing the block), the block is deleted at the revision it
//! was read empty at, or loses its affinity when it is not empty, then the affinity is deleted.
//! An allocation racing the deletion either writes the block first (the delete then fails on
//! the revision, the block is read again and kept) or finds the block gone. Idempotent, and
//! safe when several agents run it for the same node at once: a lost race is a fresh read.

use ipnet::IpNet;
use manul_store::{AffinityState, BlockAffinity, DatastoreExt, IpamBlock, StoreError};

use crate::{Ipam, IpamError, affinity, block::host_affinity, retry::CasRetry};

/// What [`Ipam::release_node`] did. With several callers racing, each reports what its own
/// writes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRelease {
    /// Blocks deleted because they held no allocation.
    pub deleted_blocks: Vec<IpNet>,
    /// Blocks kept because they hold allocations; they no longer have an affinity.
    pub orphaned_blocks: Vec<IpNet>,
    /// The node's VXLAN tunnel addresses, released.
    pub tunnel_addresses: Vec<std::net::IpAddr>,
}

/// What happened to one block.
enum BlockOutcome {
    Deleted,
    Orphaned,
    Untouched,
}

impl Ipam {
    /// Deletes the block affinities of `node` and releases its blocks (see the module comment).
    /// Also finds blocks that name the node in their affinity without an affinity object (a
    /// claim interrupted by a crash).
    pub async fn release_node(&self, node: &str) -> Result<NodeRelease, IpamError> {
        let store = self.store.as_ref();
        let ours = host_affinity(node);
        let mut cidrs: Vec<IpNet> = affinity::node_affinities(store, node)
            .await?
            .into_iter()
            .map(|affinity| affinity.value.cidr)
            .collect();
        cidrs.extend(
            store
                .list_resources::<IpamBlock>("")
                .await?
                .into_iter()
                .filter(|block| block.value.affinity.as_deref() == Some(ours.as_str()))
                .map(|block| block.value.cidr),
        );
        cidrs.sort();
        cidrs.dedup();

        // The tunnel addresses first, so that the blocks they were in can be released as empty.
        let mut release = NodeRelease::default();
        for handle in [
            crate::vxlan_tunnel_handle_id(node),
            crate::vxlan_v6_tunnel_handle_id(node),
        ] {
            release
                .tunnel_addresses
                .extend(self.release_by_handle(&handle).await?);
        }
        for cidr in cidrs {
            self.mark_pending_deletion(node, &cidr).await?;
            match self.release_node_block(&ours, &cidr).await? {
                BlockOutcome::Deleted => release.deleted_blocks.push(cidr),
                BlockOutcome::Orphaned => release.orphaned_blocks.push(cidr),
                BlockOutcome::Untouched => {}
            }
            affinity::remove(store, node, &cidr, false).await?;
        }
        Ok(release)
    }

    /// Sets the affinity of `node` to `cidr` to pendingDeletion, if it still exists.
    async fn mark_pending_deletion(&self, node: &str, cidr: &IpNet) -> Result<(), IpamError> {
        let store = self.store.as_ref();
        let name = BlockAffinity::name_for(node, cidr);
        let mut retry = CasRetry::new(|| format!("marking block affinity {name:?} for deletion"));
        loop {
            let Some(current) = store.get_resource::<BlockAffinity>(&name).await? else {
                return Ok(());
            };
            if current.value.state == AffinityState::PendingDeletion {
                return Ok(());
            }
            let mut pending = current.value.clone();
            pending.state = AffinityState::PendingDeletion;
            match store.update_resource(&pending, &current.revision).await {
                Ok(_) => return Ok(()),
                Err(error) => retry.lost(error).await?,
            }
        }
    }

    /// Deletes the block when it is empty, else clears its affinity; leaves a block that is
    /// gone or that another node holds.
    async fn release_node_block(
        &self,
        ours: &str,
        cidr: &IpNet,
    ) -> Result<BlockOutcome, IpamError> {
        let store = self.store.as_ref();
        let name = IpamBlock::name_for(cidr);
        let mut retry = CasRetry::new(|| format!("releasing block {name} of a deleted node"));
        loop {
            let Some(current) = store.get_resource::<IpamBlock>(&name).await? else {
                return Ok(BlockOutcome::Untouched);
            };
            if current.value.affinity.as_deref() != Some(ours) {
                return Ok(BlockOutcome::Untouched);
            }
            let empty = current.value.allocations.iter().all(Option::is_none);
            let written = if empty {
                store
                    .delete_resource::<IpamBlock>(&name, &current.revision)
                    .await
                    .map(|()| BlockOutcome::Deleted)
            } else {
                let mut orphaned = current.value.clone();
                orphaned.affinity = None;
                store
                    .update_resource(&orphaned, &current.revision)
                    .await
                    .map(|_| BlockOutcome::Orphaned)
            };
            match written {
                Ok(outcome) => return Ok(outcome),
                // Deleted meanwhile by another agent releasing the same node.
                Err(StoreError::NotFound { .. }) => return Ok(BlockOutcome::Untouched),
                Err(error) => retry.lost(error).await?,
            }
        }
    }
}
