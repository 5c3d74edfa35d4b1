//! IPAM handles: the per-block address counts of one owner, kept so that release by handle
//! touches only that handle's blocks. Writes go through the Datastore trait only, each one a
//! compare-and-swap retried from a fresh read.
//!
//! Crash safety rests on one order: a handle's count for a block is raised BEFORE the block
//! records the allocation, and lowered AFTER the block dropped it. A crash between the two
//! steps leaves a handle that over-counts (harmless, the check reports it as a leftover),
//! never an allocation whose handle does not know its block.

use std::collections::BTreeMap;

use manul_store::{Datastore, DatastoreExt, IpamHandle};

use crate::{IpamError, retry::CasRetry};

/// Adds `delta` (may be negative) to the count of `handle_id` for `block`, creating the handle
/// when needed and deleting it when no block is left. Lowering below zero stops at zero.
pub(crate) async fn adjust(
    store: &dyn Datastore,
    handle_id: &str,
    block: &str,
    delta: i64,
) -> Result<(), IpamError> {
    if delta == 0 {
        return Ok(());
    }
    let mut retry = CasRetry::new(|| format!("updating IPAM handle {handle_id:?}"));
    loop {
        let current = store.get_resource::<IpamHandle>(handle_id).await?;
        let result = match current {
            None if delta < 0 => return Ok(()),
            None => {
                let handle = IpamHandle {
                    handle_id: handle_id.to_string(),
                    block: BTreeMap::from([(block.to_string(), delta as u32)]),
                    deleted: false,
                };
                store.create_resource(&handle).await.map(|_| ())
            }
            Some(versioned) => {
                let mut handle = versioned.value;
                let count = handle.block.get(block).copied().unwrap_or(0);
                let new = (i64::from(count) + delta).clamp(0, i64::from(u32::MAX)) as u32;
                if new == 0 {
                    handle.block.remove(block);
                } else {
                    handle.block.insert(block.to_string(), new);
                }
                if handle.block.is_empty() {
                    store
                        .delete_resource::<IpamHandle>(handle_id, &versioned.revision)
                        .await
                } else {
                    store
                        .update_resource(&handle, &versioned.revision)
                        .await
                        .map(|_| ())
                }
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(error) => retry.lost(error).await?,
        }
    }
}

/// Tracks, during one request, how much this request raised a handle's counts and how much of
/// that the blocks actually hold, so that the surplus is given back at the end.
pub(crate) struct HandleCounter<'a> {
    store: &'a dyn Datastore,
    handle_id: String,
    counted: BTreeMap<String, u32>,
    used: BTreeMap<String, u32>,
}

impl<'a> HandleCounter<'a> {
    pub(crate) fn new(store: &'a dyn Datastore, handle_id: &str) -> HandleCounter<'a> {
        HandleCounter {
            store,
            handle_id: handle_id.to_string(),
            counted: BTreeMap::new(),
            used: BTreeMap::new(),
        }
    }

    /// Makes sure the handle counts `more` addresses in `block` beyond those already used.
    pub(crate) async fn reserve(&mut self, block: &str, more: u32) -> Result<(), IpamError> {
        let needed = self.used.get(block).copied().unwrap_or(0) + more;
        let counted = self.counted.get(block).copied().unwrap_or(0);
        if counted < needed {
            adjust(
                self.store,
                &self.handle_id,
                block,
                i64::from(needed - counted),
            )
            .await?;
            self.counted.insert(block.to_string(), needed);
        }
        Ok(())
    }

    /// The block now holds `count` more addresses of the handle.
    pub(crate) fn used(&mut self, block: &str, count: u32) {
        *self.used.entry(block.to_string()).or_insert(0) += count;
    }

    /// The block gave back `count` addresses this request had taken.
    pub(crate) fn unused(&mut self, block: &str, count: u32) {
        if let Some(used) = self.used.get_mut(block) {
            *used = used.saturating_sub(count);
        }
    }

    /// Lowers the handle by what was counted but not used.
    pub(crate) async fn finish(&mut self) -> Result<(), IpamError> {
        let surplus: Vec<(String, u32)> = self
            .counted
            .iter()
            .map(|(block, counted)| {
                let used = self.used.get(block).copied().unwrap_or(0);
                (block.clone(), counted.saturating_sub(used))
            })
            .filter(|(_, surplus)| *surplus > 0)
            .collect();
        for (block, surplus) in surplus {
            adjust(self.store, &self.handle_id, &block, -i64::from(surplus)).await?;
            if let Some(counted) = self.counted.get_mut(&block) {
                *counted -= surplus;
            }
        }
        Ok(())
    }
}
