//! The prefix table of the RIB, no I/O: a map from prefix to `V`, per address family a slab
//! of `(prefix, value)` entries and a hash table of 4-byte slab indices (hashed with the
//! crate's seeded prefix hasher), with ordered walks sorted on demand.
//!
//! Why not a B-tree: a full table arrives as a million inserts of new prefixes in the
//! sender's order, and a B-tree spent about 60% of the RIB thread searching and shifting nodes
//! for them; here an insert is one probe and a push. Why indices and not a plain hash map: an
//! IPv4 entry is 24 bytes (5-byte key, padding, 16-byte `Paths`); a `HashMap` keeps those in
//! its buckets, at most 7/8 full and half full right after it grows, and holds the old and the
//! new bucket array at once while it grows. The slab is a vector (no empty buckets, grown by
//! `realloc`) and the hash table only holds 5 bytes per bucket: about 36 bytes per IPv4
//! prefix at 1M where the B-tree needed about 46. A removal moves the last slab entry into the
//! hole and fixes its index. A family holds at most `u32::MAX` prefixes (memory runs out long
//! before).
//!
//! Ordered walks (a session coming up, a route refresh, a watcher's snapshot, a session going
//! down) are rare and walk the whole table anyway: they sort the keys first, a temporary
//! vector of 8 bytes (IPv4) or 24 bytes (IPv6) per prefix. Point operations never pay for
//! order.
//!
//! At a million prefixes every probe of the index is a cache miss or two, so callers that come
//! back to an entry they just touched keep its slot (`Position`) and look there first; only
//! a removal moves an entry (the last one into the hole), and then the probe is made after
//! all. The index also grows by being rebuilt from the slab in order (`grow_index`), not by
//! hashbrown's rehash, which reads the entries in bucket order.

use hashbrown::{HashTable, hash_table::Entry};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::hash::{BuildHasher, Hash};

use crate::message::Family;
use crate::prefix_hash::PrefixHashBuilder;

/// A map from prefix to `V`; walks come in prefix order, IPv4 first.
///
/// Every entry also has a byte of marks, one bit per best-path watcher: "this prefix is in
/// that watcher's queue" (see `daemon::watch`). The byte lives in the entry's padding (an IPv4
/// entry stays 24 bytes), so marking a prefix the RIB just touched costs no probe of a set of
/// its own. An entry removed with marks set is remembered in `evicted` until taken, so that
/// its watchers keep knowing it is queued.
#[derive(Debug)]
pub(crate) struct Table<V> {
    v4: Slab<Ipv4Net, V>,
    v6: Slab<Ipv6Net, V>,
    evicted: Vec<(IpNet, u8)>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            v4: Slab::default(),
            v6: Slab::default(),
            evicted: Vec::new(),
        }
    }
}

impl<V> Table<V> {
    pub fn len(&self) -> usize {
        self.v4.entries.len() + self.v6.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of entries in the IPv4 and the IPv6 slab. Entries are appended, so while
    /// nothing is removed an entry at or past an earlier length was inserted since.
    pub fn slab_lengths(&self) -> (u32, u32) {
        (self.v4.entries.len() as u32, self.v6.entries.len() as u32)
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

    /// `get`, looking at `hint` first (see `Position`).
    pub fn get_at(&self, prefix: &IpNet, hint: Position) -> Option<&V> {
        match prefix {
            IpNet::V4(net) => self.v4.locate(net, hint).map(|i| &self.v4.entries[i].1),
            IpNet::V6(net) => self.v6.locate(net, hint).map(|i| &self.v6.entries[i].1),
        }
    }

    /// `get_mut`, and where the entry is.
    pub fn get_mut_positioned(&mut self, prefix: &IpNet) -> Option<(&mut V, Position)> {
        let (value, position) = match prefix {
            IpNet::V4(net) => {
                let i = self.v4.find(net)?;
                (&mut self.v4.entries[i].1, i)
            }
            IpNet::V6(net) => {
                let i = self.v6.find(net)?;
                (&mut self.v6.entries[i].1, i)
            }
        };
        Some((value, Position(position as u32)))
    }

    pub fn insert(&mut self, prefix: IpNet, value: V) -> Option<V> {
        match prefix {
            IpNet::V4(net) => self.v4.insert(net, value),
            IpNet::V6(net) => self.v6.insert(net, value),
        }
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<V> {
        let (value, marks) = match prefix {
            IpNet::V4(net) => self.v4.remove(net)?,
            IpNet::V6(net) => self.v6.remove(net)?,
        };
        if marks != 0 {
            self.evicted.push((*prefix, marks));
        }
        Some(value)
    }

    /// Sets `bit` of the marks of `prefix` (looking at `hint` first): whether it was set and
    /// where the entry is (a `Position` for `clear_mark`), `None` without an entry.
    pub fn set_mark(
        &mut self,
        prefix: &IpNet,
        hint: Position,
        bit: u8,
    ) -> Option<(bool, Position)> {
        let (marks, position) = match prefix {
            IpNet::V4(net) => self.v4.marks_mut(net, hint)?,
            IpNet::V6(net) => self.v6.marks_mut(net, hint)?,
        };
        let was = *marks & bit != 0;
        *marks |= bit;
        Some((was, position))
    }

    /// Clears `bit` of the marks of `prefix`: whether it was set (false without an entry),
    /// and the value. `hint` is where `set_mark` found the entry: when it is still there (no
    /// removal moved it), the index is not probed.
    pub fn clear_mark(&mut self, prefix: &IpNet, hint: Position, bit: u8) -> (bool, Option<&V>) {
        let found = match prefix {
            IpNet::V4(net) => self.v4.marks_and_value(net, hint),
            IpNet::V6(net) => self.v6.marks_and_value(net, hint),
        };
        match found {
            Some((marks, value)) => {
                let was = *marks & bit != 0;
                *marks &= !bit;
                (was, Some(value))
            }
            None => (false, None),
        }
    }

    /// Clears `bit` everywhere (a watcher went away), remembered evictions included.
    pub fn clear_mark_everywhere(&mut self, bit: u8) {
        self.v4.entries.iter_mut().for_each(|entry| entry.2 &= !bit);
        self.v6.entries.iter_mut().for_each(|entry| entry.2 &= !bit);
        self.evicted.retain_mut(|(_, marks)| {
            *marks &= !bit;
            *marks != 0
        });
    }

    /// The prefixes removed with marks set since the last call, and their marks.
    pub fn take_evicted(&mut self) -> Vec<(IpNet, u8)> {
        std::mem::take(&mut self.evicted)
    }

    /// The value of `prefix`, inserted as `V::default()` if absent, and where the entry is.
    pub fn get_or_default(&mut self, prefix: IpNet) -> (&mut V, Position)
    where
        V: Default,
    {
        let (value, position, _) = self.entry_or_default(prefix);
        (value, position)
    }

    /// `get_or_default`, and whether the entry was inserted by this call.
    pub fn entry_or_default(&mut self, prefix: IpNet) -> (&mut V, Position, bool)
    where
        V: Default,
    {
        let (value, position, inserted) = match prefix {
            IpNet::V4(net) => self.v4.get_or_insert_with(net, V::default),
            IpNet::V6(net) => self.v6.get_or_insert_with(net, V::default),
        };
        (value, Position(position as u32), inserted)
    }

    pub fn clear(&mut self) {
        self.retain(|_| false);
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let evicted = &mut self.evicted;
        self.v4.retain(&mut keep, |net, marks| {
            evicted.push((IpNet::V4(net), marks))
        });
        self.v6.retain(&mut keep, |net, marks| {
            evicted.push((IpNet::V6(net), marks))
        });
    }

    /// All entries, IPv4 first, each family in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        self.iter_family(None)
    }

    /// The entries of one family (`None`: all), in prefix order.
    pub fn iter_family(&self, family: Option<Family>) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        let (v4, v6) = family_filter(family);
        let v4 = self.v4.sorted(v4).map(|(net, v)| (IpNet::V4(net), v));
        v4.chain(self.v6.sorted(v6).map(|(net, v)| (IpNet::V6(net), v)))
    }

    /// Mutable entries of one family (`None`: all), in prefix order.
    pub fn iter_family_mut(
        &mut self,
        family: Option<Family>,
    ) -> impl Iterator<Item = (IpNet, &mut V)> + '_ {
        let (v4, v6) = family_filter(family);
        let v4 = self.v4.sorted_mut(v4).map(|(net, v)| (IpNet::V4(net), v));
        v4.chain(self.v6.sorted_mut(v6).map(|(net, v)| (IpNet::V6(net), v)))
    }
}

/// Where an entry was in its family's slab: a hint that saves probing the index while no
/// removal has moved the entry (a full table transfer removes nothing). Any value is safe:
/// a stale or made-up hint only costs the probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position(pub u32);

/// The entries of one family and the hash table of their indices.
#[derive(Debug)]
struct Slab<K, V> {
    /// Key, value, marks.
    entries: Vec<(K, V, u8)>,
    index: HashTable<u32>,
    hasher: PrefixHashBuilder,
}

impl<K, V> Default for Slab<K, V> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: PrefixHashBuilder::default(),
        }
    }
}

impl<K: Copy + Ord + Hash, V> Slab<K, V> {
    fn find(&self, key: &K) -> Option<usize> {
        let entries = &self.entries;
        let hash = self.hasher.hash_one(key);
        let found = self.index.find(hash, |&i| entries[i as usize].0 == *key)?;
        Some(*found as usize)
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.find(key).map(|i| &self.entries[i].1)
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.find(key).map(|i| &mut self.entries[i].1)
    }

    /// The slot of `key`: `hint` if the entry is there, else found through the index.
    fn locate(&self, key: &K, hint: Position) -> Option<usize> {
        let hinted = hint.0 as usize;
        match self.entries.get(hinted) {
            Some((found, _, _)) if found == key => Some(hinted),
            _ => self.find(key),
        }
    }

    fn marks_mut(&mut self, key: &K, hint: Position) -> Option<(&mut u8, Position)> {
        let position = self.locate(key, hint)?;
        Some((&mut self.entries[position].2, Position(position as u32)))
    }

    fn marks_and_value(&mut self, key: &K, hint: Position) -> Option<(&mut u8, &V)> {
        let position = self.locate(key, hint)?;
        let (_, value, marks) = &mut self.entries[position];
        Some((marks, value))
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut value = Some(value);
        let (slot, _, _) = self.get_or_insert_with(key, || value.take().expect("taken once"));
        value.map(|value| std::mem::replace(slot, value))
    }

    /// The value of `key`, inserted with `make` if absent, its slot, and whether it was
    /// inserted.
    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> (&mut V, usize, bool) {
        if self.index.len() == self.index.capacity() {
            self.grow_index();
        }
        let Slab {
            entries,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(key);
        let (position, inserted) = match index.entry(
            hash,
            |&i| entries[i as usize].0 == key,
            |&i| hasher.hash_one(entries[i as usize].0),
        ) {
            Entry::Occupied(occupied) => (*occupied.get() as usize, false),
            Entry::Vacant(vacant) => {
                let position = entries.len();
                vacant.insert(position as u32);
                entries.push((key, make(), 0));
                (position, true)
            }
        };
        (&mut entries[position].1, position, inserted)
    }

    /// The value and its marks.
    fn remove(&mut self, key: &K) -> Option<(V, u8)> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(hash, |&i| entries[i as usize].0 == *key)
            .ok()?;
        let (position, _) = found.remove();
        let position = position as usize;
        let last = self.entries.len() - 1;
        let (_, value, marks) = self.entries.swap_remove(position);
        if position != last {
            // The last entry moved into the hole: point its index there.
            let moved = self.hasher.hash_one(self.entries[position].0);
            if let Some(slot) = self.index.find_mut(moved, |&i| i as usize == last) {
                *slot = position as u32;
            }
        }
        self.shrink_if_sparse();
        Some((value, marks))
    }

    /// Keeps the values `keep` accepts; `evicted` gets the keys of removed marked entries.
    fn retain(&mut self, keep: &mut impl FnMut(&V) -> bool, mut evicted: impl FnMut(K, u8)) {
        let before = self.entries.len();
        self.entries.retain(|(key, value, marks)| {
            let kept = keep(value);
            if !kept && *marks != 0 {
                evicted(*key, *marks);
            }
            kept
        });
        if self.entries.len() != before {
            self.reindex();
            self.shrink_if_sparse();
        }
    }

    /// Makes room in the index before an insert would make it grow: a new index of twice the
    /// entries, filled in slab order. hashbrown's own growth walks the old buckets and reads
    /// each bucket's entry to hash it again, a cache miss per prefix in a slab larger than
    /// the cache (8% of the RIB thread during a full table transfer); the slab read in order
    /// is prefetched.
    fn grow_index(&mut self) {
        let Slab {
            entries,
            index,
            hasher,
        } = self;
        let mut grown = HashTable::with_capacity((entries.len() * 2).max(16));
        for (position, (key, _, _)) in entries.iter().enumerate() {
            grown.insert_unique(hasher.hash_one(key), position as u32, |&i| {
                hasher.hash_one(entries[i as usize].0)
            });
        }
        *index = grown;
    }

    fn reindex(&mut self) {
        let Slab {
            entries,
            index,
            hasher,
        } = self;
        index.clear();
        for (position, (key, _, _)) in entries.iter().enumerate() {
            index.insert_unique(hasher.hash_one(key), position as u32, |&i| {
                hasher.hash_one(entries[i as usize].0)
            });
        }
    }

    /// Gives memory back once the family holds under a quarter of what it has room for (a
    /// table that was full and was withdrawn must not keep its peak).
    fn shrink_if_sparse(&mut self) {
        const KEEP: usize = 1024;
        let len = self.entries.len();
        if self.entries.capacity() > KEEP && len < self.entries.capacity() / 4 {
            self.entries.shrink_to(len * 2);
        }
        if self.index.capacity() > KEEP && len < self.index.capacity() / 4 {
            let Slab {
                entries,
                index,
                hasher,
            } = self;
            index.shrink_to(len * 2, |&i| hasher.hash_one(entries[i as usize].0));
        }
    }

    /// The entries in key order (none if `!wanted`).
    fn sorted(&self, wanted: bool) -> impl Iterator<Item = (K, &V)> + '_ {
        let mut order: Vec<(K, u32)> = Vec::new();
        if wanted {
            order = (self.entries.iter().enumerate())
                .map(|(position, (key, _, _))| (*key, position as u32))
                .collect();
            order.sort_unstable_by_key(|(key, _)| *key);
        }
        order
            .into_iter()
            .map(|(key, position)| (key, &self.entries[position as usize].1))
    }

    /// The entries in key order, mutable (none if `!wanted`).
    fn sorted_mut(&mut self, wanted: bool) -> impl Iterator<Item = (K, &mut V)> + '_ {
        let mut order: Vec<(K, &mut V)> = Vec::new();
        if wanted {
            order = self
                .entries
                .iter_mut()
                .map(|(key, v, _)| (*key, v))
                .collect();
            order.sort_unstable_by_key(|(key, _)| *key);
        }
        order.into_iter()
    }
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
                        *table.get_or_default(p).0 ^= v;
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
    fn marks_follow_their_entry_and_removed_marked_entries_are_reported() {
        let prefixes: Vec<IpNet> = (0u32..6)
            .map(|i| IpNet::V4(Ipv4Net::new((0x0a00_0000 | (i << 8)).into(), 24).unwrap()))
            .collect();
        let mut table: Table<u32> = Table::default();
        for (index, prefix) in prefixes.iter().enumerate() {
            table.insert(*prefix, index as u32);
        }
        let set = |table: &mut Table<u32>, prefix: &IpNet, bit| {
            table
                .set_mark(prefix, Position::default(), bit)
                .map(|(was, _)| was)
        };
        assert_eq!(
            table.set_mark(&prefixes[5], Position(5), 2),
            Some((false, Position(5)))
        );
        assert_eq!(set(&mut table, &prefixes[5], 2), Some(true));
        assert_eq!(set(&mut table, &prefixes[1], 1), Some(false));
        assert_eq!(set(&mut table, &prefixes[2], 4), Some(false));
        let v6: IpNet = "2001:db8::/48".parse().unwrap();
        assert_eq!(table.set_mark(&v6, Position::default(), 1), None);
        // Removing 0 moves the last entry (5) into its slot: its mark goes with it, and the
        // old position, now out of the slab, is a stale hint that costs only a probe.
        table.remove(&prefixes[0]);
        assert!(table.take_evicted().is_empty());
        let clear = |table: &mut Table<u32>, index: usize, hint: u32, bit| {
            let (was, value) = table.clear_mark(&prefixes[index], Position(hint), bit);
            (was, value.copied())
        };
        assert_eq!(clear(&mut table, 5, 5, 2), (true, Some(5)));
        assert_eq!(clear(&mut table, 5, 0, 2), (false, Some(5)));
        // A hint pointing at another entry does not clear that entry's mark.
        assert_eq!(clear(&mut table, 1, 2, 1), (true, Some(1)));
        assert_eq!(clear(&mut table, 2, 2, 4), (true, Some(2)));
        assert_eq!(set(&mut table, &prefixes[1], 1), Some(false));
        assert_eq!(set(&mut table, &prefixes[2], 4), Some(false));
        assert_eq!(table.clear_mark(&v6, Position(0), 2), (false, None));
        table.remove(&prefixes[1]);
        table.retain(|value| *value != 2);
        assert_eq!(
            table.take_evicted(),
            vec![(prefixes[1], 1), (prefixes[2], 4)]
        );
        table.set_mark(&prefixes[3], Position(3), 1 | 4);
        table.clear_mark_everywhere(1);
        assert_eq!(set(&mut table, &prefixes[3], 1), Some(false));
        assert_eq!(set(&mut table, &prefixes[3], 4), Some(true));
        // The marks byte fits in the padding of an IPv4 entry of the RIB.
        assert_eq!(
            std::mem::size_of::<(Ipv4Net, super::super::table::Paths, u8)>(),
            24
        );
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
        let full = (table.v4.entries.capacity(), table.v4.index.capacity());
        for prefix in &prefixes[10..] {
            table.remove(prefix);
        }
        assert_eq!(table.len(), 10);
        let now = (table.v4.entries.capacity(), table.v4.index.capacity());
        assert!(
            now.0 < full.0 / 16 && now.1 < full.1 / 16,
            "{now:?} of {full:?}"
        );
        for (index, prefix) in prefixes[..10].iter().enumerate() {
            assert_eq!(table.get(prefix), Some(&(index as u64)));
        }
    }
}
