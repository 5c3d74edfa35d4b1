//! An ordered map kept in sorted chunks of up to `CHUNK` entries, for the agent's maps of a
//! million small keys (learned best paths, tracked routes). Pure, no I/O.
//!
//! Why not `BTreeMap`: its nodes hold 11 entries and end up about half full when keys arrive
//! in ascending order (as a BGP table often does), so a 5-byte key with a 12-byte value took
//! 37 bytes; here keys and values sit in two arrays per chunk, filled up to the chunk size,
//! about 18. A lookup is a binary search over the chunks' first keys (a small array that stays
//! in cache) and one within a chunk, where a B-tree walks eight levels of nodes.
//!
//! Layout and upkeep:
//! - `firsts[i]` is the first key of `chunks[i]`; every chunk holds at least one entry, in
//!   key order, and all its keys lie before the next chunk's.
//! - A full chunk takes a key past its end into the next chunk when that has room, else into a
//!   new chunk; a key before every key starts a new first chunk: ascending and descending
//!   loads leave full chunks. Anywhere else a full chunk splits in halves.
//! - A chunk emptied by removals goes; one that falls under a quarter merges with a neighbour
//!   when both fit in half a chunk.

/// Entries per chunk.
const CHUNK: usize = 256;

/// A key the map searches by a plain integer that orders as the key does. `Ipv4Net`'s own
/// `Ord` compares the address byte by byte (`[u8; 4]`), which was most of a lookup's cost in
/// the learned-routes profile; one `u64` comparison does the same.
pub trait ChunkKey: Ord + Copy {
    type Order: Ord + Copy;
    /// Orders as `Ord` orders the keys.
    fn order(&self) -> Self::Order;
}

impl ChunkKey for ipnet::Ipv4Net {
    type Order = u64;
    fn order(&self) -> u64 {
        (u64::from(u32::from(self.addr())) << 8) | u64::from(self.prefix_len())
    }
}

impl ChunkKey for ipnet::Ipv6Net {
    type Order = (u128, u8);
    fn order(&self) -> (u128, u8) {
        (u128::from(self.addr()), self.prefix_len())
    }
}

impl ChunkKey for u16 {
    type Order = u16;
    fn order(&self) -> u16 {
        *self
    }
}

impl ChunkKey for u32 {
    type Order = u32;
    fn order(&self) -> u32 {
        *self
    }
}

#[derive(Clone, Debug)]
struct Chunk<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K, V> Chunk<K, V> {
    fn new() -> Self {
        Chunk {
            keys: Vec::with_capacity(CHUNK),
            values: Vec::with_capacity(CHUNK),
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// See the module comment.
#[derive(Clone, Debug)]
pub struct ChunkedMap<K, V> {
    firsts: Vec<K>,
    chunks: Vec<Chunk<K, V>>,
    len: usize,
}

impl<K, V> Default for ChunkedMap<K, V> {
    fn default() -> Self {
        ChunkedMap {
            firsts: Vec::new(),
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<K: ChunkKey, V> ChunkedMap<K, V> {
    pub fn new() -> Self {
        ChunkedMap::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = ChunkedMap::default();
    }

    /// The chunk whose range holds `key`: the last one starting at or before it (the first
    /// chunk for a key before every chunk). None when the map is empty.
    fn chunk_of(&self, key: &K) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        let order = key.order();
        Some(
            self.firsts
                .partition_point(|first| first.order() <= order)
                .max(1)
                - 1,
        )
    }

    /// Where `key` is in chunk `index`, or where it would go.
    fn search(&self, index: usize, key: &K) -> Result<usize, usize> {
        let order = key.order();
        self.chunks[index]
            .keys
            .binary_search_by(|probe| probe.order().cmp(&order))
    }

    /// (chunk, position in it) of `key`, if it is held.
    fn find(&self, key: &K) -> Option<(usize, usize)> {
        let chunk = self.chunk_of(key)?;
        let position = self.search(chunk, key).ok()?;
        Some((chunk, position))
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_some()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let (chunk, position) = self.find(key)?;
        self.chunks[chunk].values.get(position)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let (chunk, position) = self.find(key)?;
        self.chunks[chunk].values.get_mut(position)
    }

    /// Inserts `value` at `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some(index) = self.chunk_of(&key) else {
            self.new_chunk_at(0, key, value);
            self.len = 1;
            return None;
        };
        let position = match self.search(index, &key) {
            Ok(position) => {
                let old = std::mem::replace(&mut self.chunks[index].values[position], value);
                return Some(old);
            }
            Err(position) => position,
        };
        self.len += 1;
        if self.chunks[index].len() < CHUNK {
            self.insert_at(index, position, key, value);
            return None;
        }
        if position == CHUNK {
            // Past the end of a full chunk: the front of the next one, or a chunk of its own.
            if index + 1 < self.chunks.len() && self.chunks[index + 1].len() < CHUNK {
                self.insert_at(index + 1, 0, key, value);
            } else {
                self.new_chunk_at(index + 1, key, value);
            }
            return None;
        }
        if position == 0 {
            // Before every key (only the first chunk is ever asked for a key before its
            // first): a chunk of its own in front.
            self.new_chunk_at(index, key, value);
            return None;
        }
        // Split in halves and insert into the half the key belongs to.
        let half = CHUNK / 2;
        let mut right = Chunk::new();
        right.keys.extend(self.chunks[index].keys.drain(half..));
        right.values.extend(self.chunks[index].values.drain(half..));
        self.firsts.insert(index + 1, right.keys[0]);
        self.chunks.insert(index + 1, right);
        if position <= half {
            self.insert_at(index, position, key, value);
        } else {
            self.insert_at(index + 1, position - half, key, value);
        }
        None
    }

    fn new_chunk_at(&mut self, index: usize, key: K, value: V) {
        let mut chunk = Chunk::new();
        chunk.keys.push(key);
        chunk.values.push(value);
        self.firsts.insert(index, key);
        self.chunks.insert(index, chunk);
    }

    fn insert_at(&mut self, index: usize, position: usize, key: K, value: V) {
        let chunk = &mut self.chunks[index];
        chunk.keys.insert(position, key);
        chunk.values.insert(position, value);
        if position == 0 {
            self.firsts[index] = key;
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (index, position) = self.find(key)?;
        let chunk = &mut self.chunks[index];
        chunk.keys.remove(position);
        let value = chunk.values.remove(position);
        self.len -= 1;
        self.tidy(index);
        Some(value)
    }

    /// After removals from chunk `index`: drops it when empty, merges it with a neighbour when
    /// it is under a quarter and both fit in half a chunk, and keeps `firsts` right.
    fn tidy(&mut self, index: usize) {
        let len = self.chunks[index].len();
        if len == 0 {
            self.chunks.remove(index);
            self.firsts.remove(index);
            return;
        }
        self.firsts[index] = self.chunks[index].keys[0];
        if len >= CHUNK / 4 {
            return;
        }
        let fits = |other: &Chunk<K, V>| len + other.len() <= CHUNK / 2;
        let into = if index > 0 && fits(&self.chunks[index - 1]) {
            index - 1
        } else if index + 1 < self.chunks.len() && fits(&self.chunks[index + 1]) {
            index
        } else {
            return;
        };
        let next = self.chunks.remove(into + 1);
        self.firsts.remove(into + 1);
        let chunk = &mut self.chunks[into];
        chunk.keys.extend(next.keys);
        chunk.values.extend(next.values);
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.keys.iter().zip(chunk.values.iter()))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.chunks.iter().flat_map(|chunk| chunk.values.iter())
    }

    /// Keeps the entries `keep` says yes to, visiting them in key order.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let chunks = std::mem::take(&mut self.chunks);
        self.firsts.clear();
        self.len = 0;
        for chunk in chunks {
            let mut kept = Chunk::new();
            for (key, mut value) in chunk.keys.into_iter().zip(chunk.values) {
                if keep(&key, &mut value) {
                    kept.keys.push(key);
                    kept.values.push(value);
                }
            }
            if kept.len() == 0 {
                continue;
            }
            self.len += kept.len();
            match self.chunks.last_mut() {
                // Thinned out: joins the chunk before it when both fit in half a chunk.
                Some(previous) if previous.len() + kept.len() <= CHUNK / 2 => {
                    previous.keys.extend(kept.keys);
                    previous.values.extend(kept.values);
                }
                _ => {
                    self.firsts.push(kept.keys[0]);
                    self.chunks.push(kept);
                }
            }
        }
    }
}

impl<K: ChunkKey, V: PartialEq> PartialEq for ChunkedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: ChunkKey, V: Eq> Eq for ChunkedMap<K, V> {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u8),
        Remove(u16),
        Retain(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..1000, any::<u8>()).prop_map(|(key, value)| Op::Insert(key, value)),
            3 => (0u16..1000).prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::Retain),
        ]
    }

    /// The invariants of the module comment.
    fn check<K: ChunkKey + std::fmt::Debug, V>(map: &ChunkedMap<K, V>) {
        assert_eq!(map.firsts.len(), map.chunks.len());
        let mut previous: Option<K> = None;
        let mut len = 0;
        for (first, chunk) in map.firsts.iter().zip(&map.chunks) {
            assert!(!chunk.keys.is_empty() && chunk.len() <= CHUNK);
            assert_eq!(chunk.keys.len(), chunk.values.len());
            assert_eq!(*first, chunk.keys[0]);
            for key in &chunk.keys {
                assert!(
                    previous.is_none_or(|previous| previous < *key),
                    "{key:?} out of order"
                );
                previous = Some(*key);
            }
            len += chunk.len();
        }
        assert_eq!(len, map.len());
    }

    proptest! {
        /// The search order of prefixes is their `Ord`.
        #[test]
        fn prefix_orders_are_their_ord(
            a in (any::<u32>(), 0u8..=32), b in (any::<u32>(), 0u8..=32),
            c in (any::<u128>(), 0u8..=128), d in (any::<u128>(), 0u8..=128),
        ) {
            let v4 = |(addr, len): (u32, u8)| ipnet::Ipv4Net::new(addr.into(), len).unwrap();
            let v6 = |(addr, len): (u128, u8)| ipnet::Ipv6Net::new(addr.into(), len).unwrap();
            let (a, b, c, d) = (v4(a), v4(b), v6(c), v6(d));
            prop_assert_eq!(a.order().cmp(&b.order()), a.cmp(&b));
            prop_assert_eq!(a.order().cmp(&a.order()), a.cmp(&a));
            prop_assert_eq!(c.order().cmp(&d.order()), c.cmp(&d));
        }

        /// Same contents, order and answers as a `BTreeMap` after any sequence of changes.
        #[test]
        fn holds_what_a_btree_map_holds(ops in proptest::collection::vec(op(), 0..3000)) {
            let mut chunked = ChunkedMap::new();
            let mut plain = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(key, value) => {
                        prop_assert_eq!(chunked.insert(key, value), plain.insert(key, value));
                    }
                    Op::Remove(key) => prop_assert_eq!(chunked.remove(&key), plain.remove(&key)),
                    Op::Retain(modulus) => {
                        let modulus = u16::from(modulus.max(2));
                        chunked.retain(|key, value| {
                            *value = value.wrapping_add(1);
                            key % modulus != 0
                        });
                        plain.retain(|key, value| {
                            *value = value.wrapping_add(1);
                            key % modulus != 0
                        });
                    }
                }
                check(&chunked);
            }
            let seen: Vec<(u16, u8)> = chunked.iter().map(|(key, value)| (*key, *value)).collect();
            let expected: Vec<(u16, u8)> = plain.iter().map(|(key, value)| (*key, *value)).collect();
            prop_assert_eq!(seen, expected);
            for key in 0..1000 {
                prop_assert_eq!(chunked.get(&key), plain.get(&key));
            }
        }
    }

    #[test]
    fn ascending_and_descending_loads_fill_their_chunks() {
        let mut ascending = ChunkedMap::new();
        let mut descending = ChunkedMap::new();
        for key in 0..10 * CHUNK as u32 {
            ascending.insert(key, ());
            descending.insert(u32::MAX - key, ());
        }
        check(&ascending);
        check(&descending);
        assert_eq!(ascending.chunks.len(), 10);
        assert_eq!(descending.chunks.len(), 10);
    }

    #[test]
    fn removals_drop_and_merge_chunks() {
        let mut map = ChunkedMap::new();
        for key in 0..4 * CHUNK as u32 {
            map.insert(key, key);
        }
        for key in 0..4 * CHUNK as u32 {
            if key % 16 != 0 {
                map.remove(&key);
            }
        }
        check(&map);
        assert_eq!(map.len(), 4 * CHUNK / 16);
        assert!(map.chunks.len() < 4, "{} chunks", map.chunks.len());
        for key in 0..4 * CHUNK as u32 {
            map.remove(&key);
        }
        assert!(map.is_empty() && map.chunks.is_empty());
    }
}
