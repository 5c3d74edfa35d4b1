//! Release of empty blocks (Calico's "release affinity of empty blocks"): a node gives back an
//! affine block that has stayed empty for longer than a grace period, so that a node which
//! once ran many pods does not hold their blocks for ever. I/O only through the Datastore
//! trait; pure with respect to time (the caller passes `now`).
//!
//! Rule: a block is released when (1) it holds no allocation, (2) it was marked empty at
//! least `grace` before `now`, with the block's sequence number unchanged since (any
//! allocation or release bumps it, which voids the mark), and (3) the node keeps, in the same
//! pool, at least one other affine block with a free address after this pass — so a node
//! with one empty block keeps it, and the next pod needs no new claim. Blocks in no pool (the
//! pool was deleted) are released without (3). The first pass that sees a block empty only
//! marks it (`IpamBlock::empty_since`, a CAS write).
//!
//! Release order (libcalico-go's releaseBlockAffinity): the affinity goes to pendingDeletion,
//! the block is deleted by compare-and-swap at the revision it was seen empty at, then the
//! affinity is deleted. An allocation racing the release either writes the block first (the
//! delete then fails on the revision: the block stays, the affinity is confirmed again) or
//! finds the block gone (its CAS update fails with NotFound, its retry finds no block and it
//! moves on to another one): never an address in a deleted block. A crash after the first
//! step leaves a pendingDeletion affinity, which the next pass finishes or undoes.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use ipnet::IpNet;
use manul_store::{
    AffinityState, BlockAffinity, DatastoreExt, EmptySince, IpamBlock, StoreError, Versioned,
};

use crate::{
    Ipam, IpamError, affinity, assign::check_block, block::host_affinity, pools,
    retry::is_retryable,
};

/// One affine block of the node as this pass saw it.
struct Seen {
    block: Versioned<IpamBlock>,
    affinity: Versioned<BlockAffinity>,
    pool: Option<String>,
}

fn is_empty(block: &IpamBlock) -> bool {
    block.allocations.iter().all(Option::is_none)
}

fn has_free_address(block: &IpamBlock) -> bool {
    !block.unallocated.is_empty()
}

/// True when the block is empty and its empty mark, still valid, is at least `grace` old.
fn expired(block: &IpamBlock, grace: Duration, now_seconds: u64) -> bool {
    match block.empty_since {
        Some(mark) if mark.sequence_number == block.sequence_number && is_empty(block) => {
            now_seconds >= mark.unix_seconds.saturating_add(grace.as_secs())
        }
        _ => false,
    }
}

impl Ipam {
    /// Releases the node's affine blocks that stayed empty for at least `grace` before `now`
    /// (see the module comment for the rule); marks newly empty ones. Returns the CIDRs of
    /// the blocks released, whose routes the caller withdraws. Safe to run concurrently with
    /// allocations and with itself.
    pub async fn release_empty_blocks(
        &self,
        node: &str,
        grace: Duration,
        now: SystemTime,
    ) -> Result<Vec<IpNet>, IpamError> {
        let now_seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0);
        let store = self.store.as_ref();
        let all_pools = self.pools().await?;
        let ours = host_affinity(node);
        let mut seen = Vec::new();
        let mut released = Vec::new();
        for affinity in affinity::node_affinities(store, node).await? {
            let cidr = affinity.value.cidr;
            let name = IpamBlock::name_for(&cidr);
            let block = store.get_resource::<IpamBlock>(&name).await?;
            let block = match (affinity.value.state, block) {
                (AffinityState::Pending, _) => continue,
                (AffinityState::PendingDeletion, None) => {
                    // An interrupted release: the block is gone, finish it.
                    affinity::forget(store, node, &cidr).await?;
                    continue;
                }
                (AffinityState::PendingDeletion, Some(block)) if !is_empty(&block.value) => {
                    affinity::confirm(store, node, &cidr).await?;
                    continue;
                }
                (_, None) => continue,
                (_, Some(block)) => block,
            };
            check_block(&block, &name)?;
            if block.value.affinity.as_deref() != Some(ours.as_str()) {
                continue;
            }
            let pool = pools::containing(&all_pools, cidr.network()).map(|pool| pool.name.clone());
            seen.push(Seen {
                block,
                affinity,
                pool,
            });
        }
        seen.sort_by_key(|entry| entry.block.value.cidr);

        // Mark newly empty blocks; a lost race only postpones the mark to the next pass.
        for entry in &mut seen {
            let block = &entry.block.value;
            let marked = block
                .empty_since
                .is_some_and(|mark| mark.sequence_number == block.sequence_number);
            if is_empty(block) && !marked {
                let mut updated = block.clone();
                updated.empty_since = Some(EmptySince {
                    unix_seconds: now_seconds,
                    sequence_number: block.sequence_number,
                });
                match store.update_resource(&updated, &entry.block.revision).await {
                    Ok(revision) => {
                        entry.block = Versioned {
                            value: updated,
                            revision,
                        }
                    }
                    Err(error) if is_retryable(&error) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }

        // Per pool, the blocks that still have a free address and stay after this pass.
        let mut with_space: BTreeMap<Option<String>, usize> = BTreeMap::new();
        for entry in &seen {
            if has_free_address(&entry.block.value) {
                *with_space.entry(entry.pool.clone()).or_default() += 1;
            }
        }
        for entry in &seen {
            let resumed = entry.affinity.value.state == AffinityState::PendingDeletion;
            if !resumed && !expired(&entry.block.value, grace, now_seconds) {
                continue;
            }
            let spare = with_space.get(&entry.pool).copied().unwrap_or(0);
            if entry.pool.is_some() && spare < 2 && !resumed {
                continue;
            }
            if self.release_block(node, entry).await? {
                released.push(entry.block.value.cidr);
                if let Some(count) = with_space.get_mut(&entry.pool) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        Ok(released)
    }

    /// Releases one empty block: affinity pendingDeletion, block deleted at the revision it was
    /// seen empty at, affinity deleted. Ok(false) when an allocation got there first.
    async fn release_block(&self, node: &str, entry: &Seen) -> Result<bool, IpamError> {
        let store = self.store.as_ref();
        let cidr = entry.block.value.cidr;
        if entry.affinity.value.state != AffinityState::PendingDeletion {
            let mut pending = entry.affinity.value.clone();
            pending.state = AffinityState::PendingDeletion;
            match store
                .update_resource(&pending, &entry.affinity.revision)
                .await
            {
                Ok(_) => {}
                Err(error) if is_retryable(&error) => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
        let name = IpamBlock::name_for(&cidr);
        match store
            .delete_resource::<IpamBlock>(&name, &entry.block.revision)
            .await
        {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(error) if is_retryable(&error) => {
                // The block changed since it was seen empty: keep it, affine as before.
                affinity::confirm(store, node, &cidr).await?;
                return Ok(false);
            }
            Err(error) => return Err(error.into()),
        }
        affinity::forget(store, node, &cidr).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{allocate, new_block};

    #[test]
    fn a_mark_is_void_once_the_block_was_used_again() {
        let mut block = new_block("10.0.0.0/30".parse().unwrap(), None, false);
        block.empty_since = Some(EmptySince {
            unix_seconds: 100,
            sequence_number: block.sequence_number,
        });
        let grace = Duration::from_secs(60);
        assert!(!expired(&block, grace, 159));
        assert!(expired(&block, grace, 160));
        let ordinals = allocate(&mut block, 1, "h", &Default::default());
        assert!(!expired(&block, grace, 1000), "allocated");
        crate::block::release_ordinals(&mut block, &ordinals, Some("h"));
        assert!(!expired(&block, grace, 1000), "used and emptied again");
    }
}
