//! The best paths the agent keeps (prefix -> next hops bgpd chose), in a compact layout: a node
//! may learn a million prefixes, so IPv4 prefixes are keyed by a 5-byte `Ipv4Net` (IPv6 by
//! `Ipv6Net`) rather than an 18-byte `IpNet`, in sorted chunks (`crate::chunked_map`) rather
//! than a B-tree, and each path holds the 4-byte id of its next-hop list in the map's own table
//! of lists (`HopLists`, counted references), not an 8-byte pointer. Pure, no I/O.
//!
//! Order: IPv4 prefixes, then IPv6, each in prefix order (as `IpNet`'s order).

use std::{collections::HashMap, net::IpAddr, num::NonZeroU32, sync::Arc};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::remote_routes::SharedSlices;
use crate::chunked_map::ChunkedMap;

/// The next hops of a best path, shared (see `SharedPathHops`).
pub type PathHops = Arc<[IpAddr]>;

/// The id of a list in a `HopLists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HopsId(NonZeroU32);

impl HopsId {
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// The distinct next-hop lists of one `BestPaths`, each with the number of paths through it;
/// a list goes when its last path does.
#[derive(Clone, Debug, Default)]
struct HopLists {
    /// By index (id - 1): the list and how many paths hold it; None: a free slot.
    lists: Vec<Option<(PathHops, usize)>>,
    ids: HashMap<PathHops, HopsId>,
    free: Vec<HopsId>,
    /// The id the last `acquire` gave: most paths share one list, and a pointer comparison
    /// with the slot saves hashing it (a hint only: the slot is checked).
    last: Option<HopsId>,
}

impl HopLists {
    /// The id of `hops`, counting one more path through it.
    fn acquire(&mut self, hops: &PathHops) -> HopsId {
        if let Some(id) = self.last
            && let Some(Some((held, paths))) = self.lists.get_mut(id.index())
            && Arc::ptr_eq(held, hops)
        {
            *paths += 1;
            return id;
        }
        if let Some(id) = self.ids.get(hops) {
            self.last = Some(*id);
            if let Some(Some((_, paths))) = self.lists.get_mut(id.index()) {
                *paths += 1;
            }
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.lists.push(None);
                let count = u32::try_from(self.lists.len()).unwrap_or(u32::MAX);
                HopsId(NonZeroU32::new(count).unwrap_or(NonZeroU32::MAX))
            }
        };
        if let Some(slot) = self.lists.get_mut(id.index()) {
            *slot = Some((hops.clone(), 1));
        }
        self.ids.insert(hops.clone(), id);
        self.last = Some(id);
        id
    }

    /// One path less through `id`.
    fn release(&mut self, id: HopsId) {
        let Some(slot) = self.lists.get_mut(id.index()) else {
            return;
        };
        if let Some((hops, paths)) = slot {
            *paths -= 1;
            if *paths == 0 {
                self.ids.remove(hops);
                *slot = None;
                self.free.push(id);
            }
        }
    }

    /// The list of `id`; ids come only from `acquire` and stay valid while a path holds them.
    fn get(&self, id: HopsId) -> &PathHops {
        static NONE: std::sync::OnceLock<PathHops> = std::sync::OnceLock::new();
        match self.lists.get(id.index()) {
            Some(Some((hops, _))) => hops,
            // Not reached: a path's id is held until the path goes.
            _ => NONE.get_or_init(PathHops::default),
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Prefix -> next hops.
#[derive(Clone, Debug, Default)]
pub struct BestPaths {
    v4: ChunkedMap<Ipv4Net, HopsId>,
    v6: ChunkedMap<Ipv6Net, HopsId>,
    lists: HopLists,
}

impl PartialEq for BestPaths {
    fn eq(&self, other: &BestPaths) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for BestPaths {}

impl BestPaths {
    pub fn new() -> BestPaths {
        BestPaths::default()
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
        self.lists = HopLists::default();
    }

    /// Sets the path of `prefix`; true when it replaced one.
    pub fn insert(&mut self, prefix: IpNet, hops: PathHops) -> bool {
        let id = self.lists.acquire(&hops);
        let old = match prefix {
            IpNet::V4(net) => self.v4.insert(net, id),
            IpNet::V6(net) => self.v6.insert(net, id),
        };
        if let Some(old) = old {
            self.lists.release(old);
        }
        old.is_some()
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<PathHops> {
        let id = match prefix {
            IpNet::V4(net) => self.v4.remove(net),
            IpNet::V6(net) => self.v6.remove(net),
        }?;
        let hops = self.lists.get(id).clone();
        self.lists.release(id);
        Some(hops)
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&PathHops> {
        let id = match prefix {
            IpNet::V4(net) => self.v4.get(net),
            IpNet::V6(net) => self.v6.get(net),
        }?;
        Some(self.lists.get(*id))
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &PathHops)> {
        let v4 = self
            .v4
            .iter()
            .map(|(net, id)| (IpNet::V4(*net), self.lists.get(*id)));
        let v6 = self
            .v6
            .iter()
            .map(|(net, id)| (IpNet::V6(*net), self.lists.get(*id)));
        v4.chain(v6)
    }

    pub fn values(&self) -> impl Iterator<Item = &PathHops> {
        self.v4
            .values()
            .chain(self.v6.values())
            .map(|id| self.lists.get(*id))
    }

    /// The distinct next-hop lists the paths go through.
    pub fn hop_lists(&self) -> usize {
        self.lists.len()
    }

    /// Moves every path of `other` in (over this one's at the same prefix).
    pub fn extend(&mut self, other: BestPaths) {
        for (prefix, hops) in other.iter() {
            self.insert(prefix, hops.clone());
        }
    }
}

impl FromIterator<(IpNet, PathHops)> for BestPaths {
    fn from_iter<I: IntoIterator<Item = (IpNet, PathHops)>>(paths: I) -> Self {
        let mut best = BestPaths::new();
        for (prefix, hops) in paths {
            best.insert(prefix, hops);
        }
        best
    }
}

/// Hands out one shared copy of each distinct next-hop list of the best paths.
pub type SharedPathHops = SharedSlices<IpAddr>;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    fn prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u8>(), 0u8..=32).prop_map(|(byte, len)| {
                IpNet::V4(Ipv4Net::new([10, byte, 0, 0].into(), len).unwrap()).trunc()
            }),
            (any::<u16>(), 0u8..=128).prop_map(|(word, len)| {
                IpNet::V6(
                    Ipv6Net::new([0xfd00, word, 0, 0, 0, 0, 0, 0].into(), len)
                        .unwrap()
                        .trunc(),
                )
            }),
        ]
    }

    proptest! {
        /// Same contents, order and answers as the `BTreeMap<IpNet, _>` it replaced.
        #[test]
        fn holds_what_a_btree_map_holds(
            ops in proptest::collection::vec((prefix(), proptest::option::of(0u8..4)), 0..60),
        ) {
            let mut shared = SharedPathHops::default();
            let mut compact = BestPaths::new();
            let mut plain: BTreeMap<IpNet, PathHops> = BTreeMap::new();
            for (prefix, hop) in ops {
                match hop {
                    Some(hop) => {
                        let hops = shared.share(&[IpAddr::from([192, 0, 2, hop])]);
                        compact.insert(prefix, hops.clone());
                        plain.insert(prefix, hops);
                    }
                    None => {
                        prop_assert_eq!(compact.remove(&prefix), plain.remove(&prefix));
                    }
                }
                let seen: Vec<(IpNet, &PathHops)> = compact.iter().collect();
                let expected: Vec<(IpNet, &PathHops)> =
                    plain.iter().map(|(prefix, hops)| (*prefix, hops)).collect();
                prop_assert_eq!(seen, expected);
                prop_assert_eq!(compact.len(), plain.len());
                prop_assert_eq!(compact.get(&prefix), plain.get(&prefix));
            }
            prop_assert!(shared.len() <= 4);
            // A list is held while a path goes through it, and only then.
            let used: HashSet<&PathHops> = plain.values().collect();
            prop_assert_eq!(compact.hop_lists(), used.len());
        }
    }
}
