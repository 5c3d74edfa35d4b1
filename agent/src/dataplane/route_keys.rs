//! A compact ordered map keyed by `RouteKey`, for the route applier's delta tracker: keys are
//! grouped by (table, metric), of which a node has a handful, and each group keeps its IPv4
//! and IPv6 destinations in maps of their own, keyed by `Ipv4Net` (5 bytes) and `Ipv6Net` (17
//! bytes) instead of a 28-byte `RouteKey`, in sorted chunks (`crate::chunked_map`): a million
//! learned IPv4 routes cost about 18 bytes each. Pure, no I/O.
//!
//! Order: by table and metric, then IPv4 before IPv6, then destination; not `RouteKey`'s order
//! (the applier sorts where an order is shown).

use std::collections::BTreeMap;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::delta::SlotMap;
use crate::{chunked_map::ChunkedMap, netlink::RouteKey};

#[derive(Clone, Debug)]
struct Group<S> {
    v4: ChunkedMap<Ipv4Net, S>,
    v6: ChunkedMap<Ipv6Net, S>,
}

impl<S> Default for Group<S> {
    fn default() -> Self {
        Group {
            v4: ChunkedMap::new(),
            v6: ChunkedMap::new(),
        }
    }
}

impl<S> Group<S> {
    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// See the module comment.
#[derive(Clone, Debug)]
pub struct RouteKeyMap<S> {
    /// By (table, metric).
    groups: BTreeMap<(u32, u32), Group<S>>,
    len: usize,
}

impl<S> Default for RouteKeyMap<S> {
    fn default() -> Self {
        RouteKeyMap {
            groups: BTreeMap::new(),
            len: 0,
        }
    }
}

fn key_of(table: u32, metric: u32, destination: IpNet) -> RouteKey {
    RouteKey {
        table,
        destination,
        metric,
    }
}

impl<S> SlotMap<RouteKey, S> for RouteKeyMap<S> {
    fn get(&self, key: &RouteKey) -> Option<&S> {
        let group = self.groups.get(&(key.table, key.metric))?;
        match key.destination {
            IpNet::V4(net) => group.v4.get(&net),
            IpNet::V6(net) => group.v6.get(&net),
        }
    }

    fn get_mut(&mut self, key: &RouteKey) -> Option<&mut S> {
        let group = self.groups.get_mut(&(key.table, key.metric))?;
        match key.destination {
            IpNet::V4(net) => group.v4.get_mut(&net),
            IpNet::V6(net) => group.v6.get_mut(&net),
        }
    }

    fn insert(&mut self, key: RouteKey, slot: S) {
        let group = self.groups.entry((key.table, key.metric)).or_default();
        let old = match key.destination {
            IpNet::V4(net) => group.v4.insert(net, slot),
            IpNet::V6(net) => group.v6.insert(net, slot),
        };
        if old.is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, key: &RouteKey) -> Option<S> {
        let group_key = (key.table, key.metric);
        let group = self.groups.get_mut(&group_key)?;
        let old = match key.destination {
            IpNet::V4(net) => group.v4.remove(&net),
            IpNet::V6(net) => group.v6.remove(&net),
        };
        if old.is_some() {
            self.len -= 1;
        }
        if group.is_empty() {
            self.groups.remove(&group_key);
        }
        old
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = (RouteKey, &'a S)>
    where
        S: 'a,
    {
        self.groups.iter().flat_map(|(&(table, metric), group)| {
            let v4 = group
                .v4
                .iter()
                .map(move |(net, slot)| (key_of(table, metric, IpNet::V4(*net)), slot));
            let v6 = group
                .v6
                .iter()
                .map(move |(net, slot)| (key_of(table, metric, IpNet::V6(*net)), slot));
            v4.chain(v6)
        })
    }

    fn retain(&mut self, mut keep: impl FnMut(&RouteKey, &mut S) -> bool) {
        let mut len = 0;
        self.groups.retain(|&(table, metric), group| {
            group
                .v4
                .retain(|net, slot| keep(&key_of(table, metric, IpNet::V4(*net)), slot));
            group
                .v6
                .retain(|net, slot| keep(&key_of(table, metric, IpNet::V6(*net)), slot));
            len += group.v4.len() + group.v6.len();
            !group.is_empty()
        });
        self.len = len;
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(index: u8, v6: bool, table: u32, metric: u32) -> RouteKey {
        let destination = if v6 {
            format!("fd00::{index:x}/128").parse().unwrap()
        } else {
            format!("10.0.{}.0/{}", index / 4, 24 + index % 4)
                .parse()
                .unwrap()
        };
        key_of(table, metric, destination)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(RouteKey, u8),
        Remove(RouteKey),
        Change(RouteKey, u8),
        Retain(u8),
    }

    fn route_key() -> impl Strategy<Value = RouteKey> {
        (
            any::<u8>(),
            any::<bool>(),
            253u32..256,
            prop_oneof![Just(0u32), Just(32u32)],
        )
            .prop_map(|(index, v6, table, metric)| key(index, v6, table, metric))
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (route_key(), any::<u8>()).prop_map(|(key, value)| Op::Insert(key, value)),
            route_key().prop_map(Op::Remove),
            (route_key(), any::<u8>()).prop_map(|(key, value)| Op::Change(key, value)),
            any::<u8>().prop_map(Op::Retain),
        ]
    }

    proptest! {
        /// Same contents as a `BTreeMap<RouteKey, _>` after any sequence of changes.
        #[test]
        fn holds_what_a_btree_map_holds(ops in proptest::collection::vec(op(), 0..60)) {
            let mut compact = RouteKeyMap::default();
            let mut plain: BTreeMap<RouteKey, u8> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(key, value) => {
                        SlotMap::insert(&mut compact, key, value);
                        SlotMap::insert(&mut plain, key, value);
                    }
                    Op::Remove(key) => {
                        SlotMap::remove(&mut compact, &key);
                        SlotMap::remove(&mut plain, &key);
                    }
                    Op::Change(key, value) => {
                        if let Some(slot) = SlotMap::get_mut(&mut compact, &key) {
                            *slot = value;
                        }
                        if let Some(slot) = SlotMap::get_mut(&mut plain, &key) {
                            *slot = value;
                        }
                    }
                    Op::Retain(modulus) => {
                        let modulus = modulus.max(1);
                        SlotMap::retain(&mut compact, |_, slot| *slot % modulus != 0);
                        SlotMap::retain(&mut plain, |_, slot| *slot % modulus != 0);
                    }
                }
                let mut seen: Vec<(RouteKey, u8)> =
                    SlotMap::iter(&compact).map(|(key, slot)| (key, *slot)).collect();
                seen.sort();
                let expected: Vec<(RouteKey, u8)> =
                    plain.iter().map(|(key, slot)| (*key, *slot)).collect();
                prop_assert_eq!(seen, expected);
                prop_assert_eq!(SlotMap::len(&compact), plain.len());
                for key in plain.keys() {
                    prop_assert_eq!(SlotMap::get(&compact, key), plain.get(key));
                }
            }
            prop_assert_eq!(compact.groups.values().filter(|group| group.is_empty()).count(), 0);
        }
    }
}
