//! The prefix table of the RIB, no I/O: a map from prefix to `V`, one hash map per address
//! family (keyed by the compact `Ipv4Net`/`Ipv6Net`, hashed with the crate's seeded prefix
//! hasher), with ordered walks sorted on demand.
//!
//! Why a hash map and not a B-tree: a full table arrives as a million inserts of new prefixes
//! in the sender's order, and a B-tree spent about 60% of the RIB thread searching and shifting
//! nodes for them; a hash map insert is one probe. Ordered walks (a session coming up, a route
//! refresh, a watcher's snapshot, a session going down) are rare and walk the whole table
//! anyway: they collect the keys and sort them, which costs a temporary vector of 8 bytes
//! (IPv4) or 24 bytes (IPv6) per prefix for the walk. Point operations never pay for order.

use std::collections::HashMap;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::message::Family;
use crate::prefix_hash::PrefixHashBuilder;

/// A map from prefix to `V`; walks come in prefix order, IPv4 first.
#[derive(Debug)]
pub(crate) struct Table<V> {
    v4: HashMap<Ipv4Net, V, PrefixHashBuilder>,
    v6: HashMap<Ipv6Net, V, PrefixHashBuilder>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            v4: HashMap::default(),
            v6: HashMap::default(),
        }
    }
}

impl<V> Table<V> {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&V> {
        match prefix {
            IpNet::V4(net) => self.v4.get(net),
            IpNet::V6(net) => self.v6.get(net),
        }
    }

    pub fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut V> {
        match prefix {
            IpNet::V4(net) => self.v4.get_mut(net),
            IpNet::V6(net) => self.v6.get_mut(net),
        }
    }

    pub fn insert(&mut self, prefix: IpNet, value: V) -> Option<V> {
        match prefix {
            IpNet::V4(net) => self.v4.insert(net, value),
            IpNet::V6(net) => self.v6.insert(net, value),
        }
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<V> {
        let removed = match prefix {
            IpNet::V4(net) => self.v4.remove(net),
            IpNet::V6(net) => self.v6.remove(net),
        };
        self.shrink_if_sparse();
        removed
    }

    pub fn get_or_default(&mut self, prefix: IpNet) -> &mut V
    where
        V: Default,
    {
        match prefix {
            IpNet::V4(net) => self.v4.entry(net).or_default(),
            IpNet::V6(net) => self.v6.entry(net).or_default(),
        }
    }

    pub fn clear(&mut self) {
        self.v4 = HashMap::default();
        self.v6 = HashMap::default();
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.v4.retain(|_, value| keep(value));
        self.v6.retain(|_, value| keep(value));
        self.shrink_if_sparse();
    }

    /// Gives memory back once a family holds under a quarter of what its map has room for
    /// (a table that was full and was withdrawn must not keep its peak).
    fn shrink_if_sparse(&mut self) {
        const KEEP: usize = 1024;
        if self.v4.capacity() > KEEP && self.v4.len() < self.v4.capacity() / 4 {
            self.v4.shrink_to(self.v4.len() * 2);
        }
        if self.v6.capacity() > KEEP && self.v6.len() < self.v6.capacity() / 4 {
            self.v6.shrink_to(self.v6.len() * 2);
        }
    }

    /// All entries, IPv4 first, each family in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        self.iter_family(None)
    }

    /// The entries of one family (`None`: all), in prefix order.
    pub fn iter_family(&self, family: Option<Family>) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        let (v4, v6) = family_filter(family);
        let v4 = if v4 {
            sorted_keys(&self.v4)
        } else {
            Vec::new()
        };
        let v6 = if v6 {
            sorted_keys(&self.v6)
        } else {
            Vec::new()
        };
        let v4 = v4
            .into_iter()
            .filter_map(|net| Some((IpNet::V4(net), self.v4.get(&net)?)));
        v4.chain(
            v6.into_iter()
                .filter_map(|net| Some((IpNet::V6(net), self.v6.get(&net)?))),
        )
    }

    /// Mutable entries of one family (`None`: all), in prefix order.
    pub fn iter_family_mut(
        &mut self,
        family: Option<Family>,
    ) -> impl Iterator<Item = (IpNet, &mut V)> + '_ {
        let (v4, v6) = family_filter(family);
        let mut v4: Vec<(Ipv4Net, &mut V)> = if v4 {
            self.v4.iter_mut().map(|(net, v)| (*net, v)).collect()
        } else {
            Vec::new()
        };
        let mut v6: Vec<(Ipv6Net, &mut V)> = if v6 {
            self.v6.iter_mut().map(|(net, v)| (*net, v)).collect()
        } else {
            Vec::new()
        };
        v4.sort_unstable_by_key(|(net, _)| *net);
        v6.sort_unstable_by_key(|(net, _)| *net);
        let v4 = v4.into_iter().map(|(net, v)| (IpNet::V4(net), v));
        v4.chain(v6.into_iter().map(|(net, v)| (IpNet::V6(net), v)))
    }
}

fn sorted_keys<K: Copy + Ord, V>(map: &HashMap<K, V, PrefixHashBuilder>) -> Vec<K> {
    let mut keys: Vec<K> = map.keys().copied().collect();
    keys.sort_unstable();
    keys
}

/// Which of the two maps a family selects.
fn family_filter(family: Option<Family>) -> (bool, bool) {
    match family {
        None => (true, true),
        Some(family) => (
            family == Family::IPV4_UNICAST,
            family == Family::IPV6_UNICAST,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Operations on a small key space, so that inserts, removes and lookups collide.
    #[derive(Clone, Debug)]
    enum Operation {
        Insert(IpNet, u32),
        GetOrDefault(IpNet, u32),
        Remove(IpNet),
        Get(IpNet),
        RetainEven,
        Iterate(Option<Family>),
        IncrementAll(Option<Family>),
        Clear,
    }

    fn prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (0u32..64, 22u8..=26).prop_map(|(slot, len)| {
                IpNet::V4(
                    Ipv4Net::new((0x0a00_0000 | (slot << 8)).into(), len)
                        .unwrap()
                        .trunc(),
                )
            }),
            (0u128..64, 46u8..=50).prop_map(|(slot, len)| {
                let address = (0x2001_0db8_u128 << 96) | (slot << 80);
                IpNet::V6(Ipv6Net::new(address.into(), len).unwrap().trunc())
            }),
        ]
    }

    fn family() -> impl Strategy<Value = Option<Family>> {
        prop_oneof![
            Just(None),
            Just(Some(Family::IPV4_UNICAST)),
            Just(Some(Family::IPV6_UNICAST)),
        ]
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            8 => (prefix(), any::<u32>()).prop_map(|(p, v)| Operation::Insert(p, v)),
            4 => (prefix(), any::<u32>()).prop_map(|(p, v)| Operation::GetOrDefault(p, v)),
            6 => prefix().prop_map(Operation::Remove),
            4 => prefix().prop_map(Operation::Get),
            1 => Just(Operation::RetainEven),
            2 => family().prop_map(Operation::Iterate),
            1 => family().prop_map(Operation::IncrementAll),
            1 => Just(Operation::Clear),
        ]
    }

    /// The model: the B-tree this table replaced, ordered IPv4 before IPv6 as `IpNet` is.
    fn model_walk(model: &BTreeMap<IpNet, u32>, family: Option<Family>) -> Vec<(IpNet, u32)> {
        let (v4, v6) = family_filter(family);
        model
            .iter()
            .filter(|(p, _)| if matches!(p, IpNet::V4(_)) { v4 } else { v6 })
            .map(|(p, v)| (*p, *v))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn behaves_like_an_ordered_map(operations in prop::collection::vec(operation(), 1..400)) {
            let mut table: Table<u32> = Table::default();
            let mut model: BTreeMap<IpNet, u32> = BTreeMap::new();
            for operation in operations {
                match operation {
                    Operation::Insert(p, v) => {
                        prop_assert_eq!(table.insert(p, v), model.insert(p, v));
                    }
                    Operation::GetOrDefault(p, v) => {
                        *table.get_or_default(p) ^= v;
                        *model.entry(p).or_default() ^= v;
                    }
                    Operation::Remove(p) => prop_assert_eq!(table.remove(&p), model.remove(&p)),
                    Operation::Get(p) => {
                        prop_assert_eq!(table.get(&p), model.get(&p));
                        if let (Some(value), Some(expected)) = (table.get_mut(&p), model.get_mut(&p)) {
                            *value += 1;
                            *expected += 1;
                        }
                    }
                    Operation::RetainEven => {
                        table.retain(|v| v % 2 == 0);
                        model.retain(|_, v| *v % 2 == 0);
                    }
                    Operation::Iterate(family) => {
                        let walked: Vec<_> =
                            table.iter_family(family).map(|(p, v)| (p, *v)).collect();
                        prop_assert_eq!(walked, model_walk(&model, family));
                    }
                    Operation::IncrementAll(family) => {
                        let mut walked = Vec::new();
                        for (p, v) in table.iter_family_mut(family) {
                            *v = v.wrapping_add(1);
                            walked.push((p, *v));
                        }
                        for (p, v) in model.iter_mut() {
                            let (v4, v6) = family_filter(family);
                            if if matches!(p, IpNet::V4(_)) { v4 } else { v6 } {
                                *v = v.wrapping_add(1);
                            }
                        }
                        prop_assert_eq!(walked, model_walk(&model, family));
                    }
                    Operation::Clear => {
                        table.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            let all: Vec<_> = table.iter().map(|(p, v)| (p, *v)).collect();
            prop_assert_eq!(all, model_walk(&model, None));
        }
    }

    #[test]
    fn a_withdrawn_full_table_gives_its_memory_back() {
        let mut table: Table<u64> = Table::default();
        let prefixes: Vec<IpNet> = (0u32..100_000)
            .map(|i| IpNet::V4(Ipv4Net::new((0x0a00_0000 | (i << 8)).into(), 24).unwrap()))
            .collect();
        for (index, prefix) in prefixes.iter().enumerate() {
            table.insert(*prefix, index as u64);
        }
        let full = table.v4.capacity();
        for prefix in &prefixes[10..] {
            table.remove(prefix);
        }
        assert_eq!(table.len(), 10);
        assert!(
            table.v4.capacity() < full / 16,
            "{} of {full}",
            table.v4.capacity()
        );
    }
}
