//! Pure operations on one IPAMBlock: ordinal <-> address, allocate n, allocate one ordinal,
//! release by handle or by ordinal, and the block's internal consistency check. No I/O.
//!
//! Layout (libcalico-go's ipam_block.go): `allocations[ordinal]` is the index into `attributes`
//! of the owner, `unallocated` is the free list in reuse order: it starts .0, .1, ... and a
//! released ordinal goes to its back, so an address is not handed out again right away.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use manul_store::{AllocationAttribute, IpamBlock};

/// Largest block handled: 2^12 addresses (a /20 or a /116).
pub const MAX_HOST_BITS: u8 = 12;

/// Number of addresses in a block of `cidr`, or None when the block is larger than supported.
pub fn block_len(cidr: &IpNet) -> Option<u32> {
    let host_bits = cidr.max_prefix_len() - cidr.prefix_len();
    (host_bits <= MAX_HOST_BITS).then(|| 1u32 << host_bits)
}

/// The host prefix (/32 or /128) of an address.
pub fn host_net(address: IpAddr) -> IpNet {
    let len = if address.is_ipv4() { 32 } else { 128 };
    IpNet::new(address, len).expect("32 and 128 are valid host prefix lengths")
}

/// The ordinal of `address` in the block of `cidr`, None when outside.
pub fn ordinal_of(cidr: &IpNet, address: IpAddr) -> Option<u32> {
    if !cidr.contains(&address) {
        return None;
    }
    let offset = match (cidr.network(), address) {
        (IpAddr::V4(base), IpAddr::V4(address)) => u128::from(u32::from(address) - u32::from(base)),
        (IpAddr::V6(base), IpAddr::V6(address)) => u128::from(address) - u128::from(base),
        _ => return None,
    };
    let ordinal = u32::try_from(offset).ok()?;
    (ordinal < block_len(cidr)?).then_some(ordinal)
}

/// The address of `ordinal` in the block of `cidr`, None when out of range.
pub fn address_of(cidr: &IpNet, ordinal: u32) -> Option<IpAddr> {
    if ordinal >= block_len(cidr)? {
        return None;
    }
    Some(match cidr.network() {
        IpAddr::V4(base) => IpAddr::V4(Ipv4Addr::from(u32::from(base).checked_add(ordinal)?)),
        IpAddr::V6(base) => IpAddr::V6(Ipv6Addr::from(
            u128::from(base).checked_add(u128::from(ordinal))?,
        )),
    })
}

/// A new, empty block with the free list in address order.
pub fn new_block(cidr: IpNet, affinity: Option<String>, strict_affinity: bool) -> IpamBlock {
    let len = block_len(&cidr).unwrap_or(0);
    IpamBlock {
        cidr,
        affinity,
        allocations: vec![None; len as usize],
        unallocated: (0..len).collect(),
        attributes: Vec::new(),
        strict_affinity,
        deleted: false,
        sequence_number: 0,
        empty_since: None,
    }
}

/// "host:<node>", the affinity string of a block claimed by `node`.
pub fn host_affinity(node: &str) -> String {
    format!("host:{node}")
}

fn attribute_index(
    block: &mut IpamBlock,
    handle: &str,
    secondary: &BTreeMap<String, String>,
) -> u32 {
    let found = block.attributes.iter().position(|attribute| {
        attribute.handle_id.as_deref() == Some(handle) && attribute.secondary == *secondary
    });
    let index = found.unwrap_or_else(|| {
        block.attributes.push(AllocationAttribute {
            handle_id: Some(handle.to_string()),
            secondary: secondary.clone(),
        });
        block.attributes.len() - 1
    });
    index as u32
}

/// Takes up to `count` ordinals from the front of the free list for `handle`. The block must
/// have passed [`problems`] (an out-of-range free ordinal is skipped, never a panic).
pub fn allocate(
    block: &mut IpamBlock,
    count: u32,
    handle: &str,
    secondary: &BTreeMap<String, String>,
) -> Vec<u32> {
    let take = (count as usize).min(block.unallocated.len());
    if take == 0 {
        return Vec::new();
    }
    let index = attribute_index(block, handle, secondary);
    let taken: Vec<u32> = block.unallocated.drain(..take).collect();
    let mut given = Vec::with_capacity(take);
    for ordinal in taken {
        if let Some(slot) = block.allocations.get_mut(ordinal as usize) {
            *slot = Some(index);
            given.push(ordinal);
        }
    }
    block.sequence_number += 1;
    given
}

/// Why one specific ordinal cannot be allocated.
#[derive(Debug, PartialEq, Eq)]
pub enum OrdinalRefused {
    /// Held by this handle (None when the owner's attribute has no handle).
    InUse(Option<String>),
    OutOfRange,
}

/// Allocates exactly `ordinal` for `handle`.
pub fn allocate_ordinal(
    block: &mut IpamBlock,
    ordinal: u32,
    handle: &str,
    secondary: &BTreeMap<String, String>,
) -> Result<(), OrdinalRefused> {
    match block.allocations.get(ordinal as usize) {
        None => return Err(OrdinalRefused::OutOfRange),
        Some(Some(index)) => {
            let owner = block
                .attributes
                .get(*index as usize)
                .and_then(|attribute| attribute.handle_id.clone());
            return Err(OrdinalRefused::InUse(owner));
        }
        Some(None) => {}
    }
    let index = attribute_index(block, handle, secondary);
    block.unallocated.retain(|free| *free != ordinal);
    block.allocations[ordinal as usize] = Some(index);
    block.sequence_number += 1;
    Ok(())
}

/// The handle owning `ordinal`, if allocated.
pub fn owner_of(block: &IpamBlock, ordinal: u32) -> Option<&str> {
    let index = (*block.allocations.get(ordinal as usize)?)?;
    block.attributes.get(index as usize)?.handle_id.as_deref()
}

/// Ordinals held by `handle`, in ordinal order.
pub fn ordinals_of_handle(block: &IpamBlock, handle: &str) -> Vec<u32> {
    (0..block.allocations.len() as u32)
        .filter(|ordinal| owner_of(block, *ordinal) == Some(handle))
        .collect()
}

/// Frees the given ordinals when they are held by `handle` (all holders when None); freed
/// ordinals go to the back of the free list. Returns what was freed, in the order given.
pub fn release_ordinals(block: &mut IpamBlock, ordinals: &[u32], handle: Option<&str>) -> Vec<u32> {
    let mut freed = Vec::new();
    for &ordinal in ordinals {
        let Some(owner) = block.allocations.get(ordinal as usize).copied().flatten() else {
            continue;
        };
        let owner_handle = block
            .attributes
            .get(owner as usize)
            .and_then(|attribute| attribute.handle_id.as_deref());
        if handle.is_some() && owner_handle != handle {
            continue;
        }
        block.allocations[ordinal as usize] = None;
        block.unallocated.push(ordinal);
        freed.push(ordinal);
    }
    if !freed.is_empty() {
        compact_attributes(block);
        block.sequence_number += 1;
    }
    freed
}

/// Frees every ordinal of `handle`.
pub fn release_handle(block: &mut IpamBlock, handle: &str) -> Vec<u32> {
    let ordinals = ordinals_of_handle(block, handle);
    release_ordinals(block, &ordinals, Some(handle))
}

/// Drops attributes no allocation refers to and renumbers the references.
fn compact_attributes(block: &mut IpamBlock) {
    let mut used = vec![false; block.attributes.len()];
    for index in block.allocations.iter().flatten() {
        if let Some(flag) = used.get_mut(*index as usize) {
            *flag = true;
        }
    }
    let mut renumber = vec![0u32; block.attributes.len()];
    let mut kept = Vec::new();
    for (old, attribute) in block.attributes.drain(..).enumerate() {
        if used[old] {
            renumber[old] = kept.len() as u32;
            kept.push(attribute);
        }
    }
    block.attributes = kept;
    for index in block.allocations.iter_mut().flatten() {
        if let Some(new) = renumber.get(*index as usize) {
            *index = *new;
        }
    }
}

/// Number of allocated addresses per handle (attributes without a handle count as "").
pub fn allocations_by_handle(block: &IpamBlock) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for ordinal in 0..block.allocations.len() as u32 {
        if block.allocations[ordinal as usize].is_some() {
            let owner = owner_of(block, ordinal).unwrap_or("").to_string();
            *counts.entry(owner).or_insert(0) += 1;
        }
    }
    counts
}

/// Internal inconsistencies of a block; empty when it is sound.
pub fn problems(block: &IpamBlock) -> Vec<String> {
    let mut found = Vec::new();
    let Some(len) = block_len(&block.cidr) else {
        return vec![format!(
            "block {} is larger than 2^{MAX_HOST_BITS} addresses",
            block.cidr
        )];
    };
    if block.cidr.trunc() != block.cidr {
        found.push(format!(
            "block cidr {} is not a network address",
            block.cidr
        ));
    }
    if block.allocations.len() != len as usize {
        found.push(format!(
            "block {} has {} allocation slots, expected {len}",
            block.cidr,
            block.allocations.len()
        ));
    }
    let mut seen = vec![0u32; len as usize];
    let mut referenced = vec![false; block.attributes.len()];
    for (ordinal, slot) in block.allocations.iter().enumerate() {
        if let Some(index) = slot {
            if let Some(count) = seen.get_mut(ordinal) {
                *count += 1;
            }
            match referenced.get_mut(*index as usize) {
                Some(flag) => *flag = true,
                None => found.push(format!(
                    "block {} ordinal {ordinal} points at attribute {index}, which does not exist",
                    block.cidr
                )),
            }
        }
    }
    for free in &block.unallocated {
        match seen.get_mut(*free as usize) {
            Some(count) => *count += 1,
            None => found.push(format!(
                "block {} free list holds ordinal {free}, out of range",
                block.cidr
            )),
        }
    }
    for (ordinal, count) in seen.iter().enumerate() {
        if *count != 1 {
            found.push(format!(
                "block {} ordinal {ordinal} appears {count} times among allocations and free list",
                block.cidr
            ));
        }
    }
    for (index, attribute) in block.attributes.iter().enumerate() {
        if attribute.handle_id.is_none() {
            found.push(format!(
                "block {} attribute {index} has no handle",
                block.cidr
            ));
        }
        if !referenced[index] {
            found.push(format!(
                "block {} attribute {index} is not referenced",
                block.cidr
            ));
        }
    }
    found
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
