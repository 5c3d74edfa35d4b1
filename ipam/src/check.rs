//! The consistency check of the whole IPAM state: blocks, handles, affinities and pools, read
//! through the Datastore trait (no writes). Problems are states that could hand an address out
//! twice or lose it; leftovers are the harmless states a crash between two writes leaves.

use std::collections::BTreeMap;

use ipnet::IpNet;
use manul_store::{AffinityState, BlockAffinity, IpPool, IpPoolIndex, IpamBlock, IpamHandle};

use crate::{CheckReport, Ipam, IpamError, block, pools::overlaps};

impl Ipam {
    /// Checks every block, handle and affinity against each other (see [`CheckReport`]).
    /// Stored objects that cannot be decoded are reported as problems, not errors.
    pub async fn check(&self) -> Result<CheckReport, IpamError> {
        let mut report = CheckReport::default();
        let blocks = decode_all::<IpamBlock>(self, &mut report).await?;
        let handles = decode_all::<IpamHandle>(self, &mut report).await?;
        let affinities = decode_all::<BlockAffinity>(self, &mut report).await?;
        let pools: Vec<IpPool> = decode_all::<IpPool>(self, &mut report)
            .await?
            .into_values()
            .collect();
        for index in decode_all::<IpPoolIndex>(self, &mut report).await?.values() {
            for (name, cidr) in &index.pools {
                if !pools.iter().any(|pool| pool.name == *name) {
                    report.leftovers.push(format!(
                        "pool index entry {name:?} ({cidr}) has no pool (create interrupted?); \
                         repeat the create or delete_pool it"
                    ));
                }
            }
        }
        report.blocks = blocks.len();
        report.handles = handles.len();

        // Blocks on their own, and (handle, block) -> allocations.
        let mut held: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut cidrs: Vec<(IpNet, &str)> = Vec::new();
        for (name, block) in &blocks {
            let problems = block::problems(block);
            let sound = problems.is_empty();
            report.problems.extend(problems);
            if IpamBlock::name_for(&block.cidr) != *name {
                report.problems.push(format!(
                    "block object {name} holds the block {}",
                    block.cidr
                ));
            }
            if !pools.iter().any(|pool| pool.cidr.contains(&block.cidr)) {
                report.leftovers.push(format!(
                    "block {} is in no IP pool (pool deleted?)",
                    block.cidr
                ));
            }
            cidrs.push((block.cidr, name));
            if !sound {
                continue;
            }
            for (handle, count) in block::allocations_by_handle(block) {
                report.allocated += count as usize;
                held.insert((handle, name.clone()), count);
            }
            if let Some(node) = block
                .affinity
                .as_deref()
                .and_then(|a| a.strip_prefix("host:"))
            {
                let affinity = affinities.get(&BlockAffinity::name_for(node, &block.cidr));
                match affinity {
                    Some(affinity) if affinity.node == node && affinity.cidr == block.cidr => {}
                    _ => report.problems.push(format!(
                        "block {} has affinity to {node:?} but that node has no BlockAffinity for it",
                        block.cidr
                    )),
                }
            }
        }
        cidrs.sort();
        for pair in cidrs.windows(2) {
            if overlaps(&pair[0].0, &pair[1].0) {
                report
                    .problems
                    .push(format!("blocks {} and {} overlap", pair[0].1, pair[1].1));
            }
        }

        // Allocations against handles.
        for ((handle_id, block_name), count) in &held {
            let listed = handles
                .get(handle_id)
                .and_then(|handle| handle.block.get(block_name).copied());
            match listed {
                None if !handles.contains_key(handle_id) => report.problems.push(format!(
                    "{count} address(es) in block {block_name} belong to handle {handle_id:?}, which does not exist"
                )),
                None => report.problems.push(format!(
                    "handle {handle_id:?} does not list block {block_name}, which holds {count} of its addresses"
                )),
                Some(listed) if listed < *count => report.problems.push(format!(
                    "handle {handle_id:?} counts {listed} address(es) in block {block_name}, which holds {count}"
                )),
                Some(listed) if listed > *count => report.leftovers.push(format!(
                    "handle {handle_id:?} counts {listed} address(es) in block {block_name}, which holds {count}"
                )),
                Some(_) => {}
            }
        }
        for (handle_id, handle) in &handles {
            if handle.handle_id != *handle_id {
                report.problems.push(format!(
                    "handle object {handle_id:?} names itself {:?}",
                    handle.handle_id
                ));
            }
            for (block_name, listed) in &handle.block {
                let key = (handle_id.clone(), block_name.clone());
                if !held.contains_key(&key) {
                    report.leftovers.push(format!(
                        "handle {handle_id:?} counts {listed} address(es) in block {block_name}, which holds none"
                    ));
                }
            }
            if handle.block.is_empty() {
                report
                    .leftovers
                    .push(format!("handle {handle_id:?} lists no block"));
            }
        }

        // Affinities against blocks.
        for (name, affinity) in &affinities {
            if BlockAffinity::name_for(&affinity.node, &affinity.cidr) != *name {
                report.problems.push(format!(
                    "block affinity object {name} is for {} on {:?}",
                    affinity.cidr, affinity.node
                ));
                continue;
            }
            let block = blocks.get(&IpamBlock::name_for(&affinity.cidr));
            let owner = block.and_then(|block| block.affinity.as_deref());
            let matches = owner == Some(format!("host:{}", affinity.node).as_str());
            match (affinity.state, block, matches) {
                (_, Some(_), true) if affinity.state == AffinityState::Confirmed => {}
                (AffinityState::Pending, None, _) => report.leftovers.push(format!(
                    "pending affinity of {:?} to {} without block (claim interrupted)",
                    affinity.node, affinity.cidr
                )),
                (AffinityState::Pending, Some(_), true) => report.leftovers.push(format!(
                    "affinity of {:?} to {} is still pending (claim interrupted)",
                    affinity.node, affinity.cidr
                )),
                (AffinityState::Pending | AffinityState::PendingDeletion, Some(_), false) => {
                    report.leftovers.push(format!(
                        "unconfirmed affinity of {:?} to {}, a block held by {}",
                        affinity.node,
                        affinity.cidr,
                        owner.unwrap_or("no node")
                    ))
                }
                (AffinityState::PendingDeletion, _, _) => report.leftovers.push(format!(
                    "affinity of {:?} to {} is pending deletion",
                    affinity.node, affinity.cidr
                )),
                (_, None, _) => report.problems.push(format!(
                    "confirmed affinity of {:?} to {} but the block does not exist",
                    affinity.node, affinity.cidr
                )),
                (_, Some(_), _) => report.problems.push(format!(
                    "confirmed affinity of {:?} to {} but the block's affinity is {}",
                    affinity.node,
                    affinity.cidr,
                    owner.unwrap_or("none")
                )),
            }
        }
        Ok(report)
    }
}

/// Every object of a kind by name; undecodable ones become problems.
async fn decode_all<T: manul_store::Resource>(
    ipam: &Ipam,
    report: &mut CheckReport,
) -> Result<BTreeMap<String, T>, IpamError> {
    let listing = ipam.store.list(T::KIND, "").await?;
    let mut decoded = BTreeMap::new();
    for item in listing.items {
        let name = item.name.clone();
        match manul_store::typed::decode::<T>(item) {
            Ok(versioned) => {
                decoded.insert(name, versioned.value);
            }
            Err(error) => report.problems.push(error.to_string()),
        }
    }
    Ok(decoded)
}
