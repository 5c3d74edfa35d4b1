//! Unit and property tests of the pure block operations.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn cidr(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn no_attrs() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn ordinals_map_to_addresses_both_ways() {
    let v4 = cidr("10.0.0.64/26");
    assert_eq!(address_of(&v4, 0), Some("10.0.0.64".parse().unwrap()));
    assert_eq!(address_of(&v4, 63), Some("10.0.0.127".parse().unwrap()));
    assert_eq!(address_of(&v4, 64), None);
    assert_eq!(ordinal_of(&v4, "10.0.0.70".parse().unwrap()), Some(6));
    assert_eq!(ordinal_of(&v4, "10.0.0.128".parse().unwrap()), None);
    let v6 = cidr("fd00::40/122");
    assert_eq!(address_of(&v6, 1), Some("fd00::41".parse().unwrap()));
    assert_eq!(ordinal_of(&v6, "fd00::7f".parse().unwrap()), Some(63));
}

#[test]
fn allocation_starts_at_the_first_address() {
    let mut block = new_block(cidr("10.0.0.0/26"), None, false);
    assert_eq!(allocate(&mut block, 3, "h", &no_attrs()), vec![0, 1, 2]);
    assert!(problems(&block).is_empty());
}

#[test]
fn released_ordinal_goes_to_the_back() {
    let mut block = new_block(cidr("10.0.0.0/30"), None, false);
    assert_eq!(allocate(&mut block, 1, "a", &no_attrs()), vec![0]);
    assert_eq!(release_handle(&mut block, "a"), vec![0]);
    assert_eq!(block.unallocated, vec![1, 2, 3, 0]);
    assert_eq!(allocate(&mut block, 1, "b", &no_attrs()), vec![1]);
    assert!(problems(&block).is_empty());
}

#[test]
fn attributes_are_shared_and_compacted() {
    let mut block = new_block(cidr("10.0.0.0/28"), None, false);
    allocate(&mut block, 2, "a", &no_attrs());
    allocate(&mut block, 2, "b", &no_attrs());
    allocate(&mut block, 1, "a", &no_attrs());
    assert_eq!(block.attributes.len(), 2);
    release_handle(&mut block, "a");
    assert_eq!(block.attributes.len(), 1);
    assert_eq!(ordinals_of_handle(&block, "b"), vec![2, 3]);
    assert!(problems(&block).is_empty());
}

#[test]
fn specific_ordinal_in_use_is_refused() {
    let mut block = new_block(cidr("10.0.0.0/28"), None, false);
    allocate_ordinal(&mut block, 5, "a", &no_attrs()).unwrap();
    assert_eq!(
        allocate_ordinal(&mut block, 5, "b", &no_attrs()),
        Err(OrdinalRefused::InUse(Some("a".into())))
    );
    assert_eq!(
        allocate_ordinal(&mut block, 16, "b", &no_attrs()),
        Err(OrdinalRefused::OutOfRange)
    );
    assert!(!block.unallocated.contains(&5));
    assert!(problems(&block).is_empty());
}

#[test]
fn problems_find_corruption() {
    let mut block = new_block(cidr("10.0.0.0/30"), None, false);
    allocate(&mut block, 1, "a", &no_attrs());
    let mut twice = block.clone();
    twice.unallocated.push(0);
    assert!(!problems(&twice).is_empty());
    let mut dangling = block.clone();
    dangling.allocations[0] = Some(7);
    assert!(!problems(&dangling).is_empty());
    let mut short = block.clone();
    short.allocations.pop();
    assert!(!problems(&short).is_empty());
    let mut out_of_range = block;
    out_of_range.unallocated.push(99);
    assert!(!problems(&out_of_range).is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u32, u8),
    AllocateOrdinal(u32, u8),
    ReleaseHandle(u8),
    ReleaseOrdinal(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..10, 0u8..5).prop_map(|(n, h)| Op::Allocate(n, h)),
        (0u32..70, 0u8..5).prop_map(|(o, h)| Op::AllocateOrdinal(o, h)),
        (0u8..5).prop_map(Op::ReleaseHandle),
        (0u32..70).prop_map(Op::ReleaseOrdinal),
    ]
}

proptest! {
    /// Any sequence of operations keeps the block consistent, never gives an ordinal to two
    /// handles, and agrees with a simple model of who holds what.
    #[test]
    fn operations_keep_the_block_consistent(ops in proptest::collection::vec(op(), 0..80), v6 in any::<bool>()) {
        let net = if v6 { cidr("fd00::/122") } else { cidr("10.1.2.0/26") };
        let mut block = new_block(net, None, false);
        let mut model: BTreeMap<u32, String> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Allocate(n, h) => {
                    let handle = format!("h{h}");
                    let free_before = block.unallocated.clone();
                    let given = allocate(&mut block, n, &handle, &no_attrs());
                    prop_assert_eq!(given.len(), (n as usize).min(free_before.len()));
                    prop_assert_eq!(&given[..], &free_before[..given.len()]);
                    for ordinal in given {
                        prop_assert!(model.insert(ordinal, handle.clone()).is_none());
                    }
                }
                Op::AllocateOrdinal(o, h) => {
                    let handle = format!("h{h}");
                    match allocate_ordinal(&mut block, o, &handle, &no_attrs()) {
                        Ok(()) => prop_assert!(model.insert(o, handle).is_none()),
                        Err(OrdinalRefused::InUse(owner)) => prop_assert_eq!(owner.as_ref(), model.get(&o)),
                        Err(OrdinalRefused::OutOfRange) => prop_assert!(o >= 64),
                    }
                }
                Op::ReleaseHandle(h) => {
                    let handle = format!("h{h}");
                    let freed: BTreeSet<u32> = release_handle(&mut block, &handle).into_iter().collect();
                    let expected: BTreeSet<u32> = model.iter().filter(|(_, owner)| **owner == handle).map(|(o, _)| *o).collect();
                    prop_assert_eq!(&freed, &expected);
                    model.retain(|_, owner| *owner != handle);
                    let tail: BTreeSet<u32> = block.unallocated[block.unallocated.len() - freed.len()..].iter().copied().collect();
                    prop_assert_eq!(tail, freed);
                }
                Op::ReleaseOrdinal(o) => {
                    let freed = release_ordinals(&mut block, &[o], None);
                    prop_assert_eq!(freed.len(), usize::from(model.remove(&o).is_some()));
                }
            }
            prop_assert!(problems(&block).is_empty(), "{:?}", problems(&block));
            for (ordinal, handle) in &model {
                prop_assert_eq!(owner_of(&block, *ordinal), Some(handle.as_str()));
            }
            prop_assert_eq!(block.unallocated.len() + model.len(), 64);
        }
    }
}
