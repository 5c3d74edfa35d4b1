//! The best paths the agent keeps (prefix -> next hops bgpd chose), in a compact layout: a node
//! may learn a million prefixes, so IPv4 prefixes are keyed by a 5-byte `Ipv4Net` (IPv6 by
//! `Ipv6Net`) rather than an 18-byte `IpNet`, and the next hops are a thin pointer (8 bytes) to
//! a list shared by every path through the same next hops (`SharedPathHops`). Pure, no I/O.
//!
//! Order: IPv4 prefixes, then IPv6, each in prefix order (as `IpNet`'s order).

use std::{collections::BTreeMap, collections::HashSet, net::IpAddr, sync::Arc};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The next hops of a best path, shared (see `SharedPathHops`).
pub type PathHops = Arc<Vec<IpAddr>>;

/// Prefix -> next hops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BestPaths {
    v4: BTreeMap<Ipv4Net, PathHops>,
    v6: BTreeMap<Ipv6Net, PathHops>,
}

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
    }

    pub fn insert(&mut self, prefix: IpNet, hops: PathHops) {
        match prefix {
            IpNet::V4(net) => self.v4.insert(net, hops),
            IpNet::V6(net) => self.v6.insert(net, hops),
        };
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<PathHops> {
        match prefix {
            IpNet::V4(net) => self.v4.remove(net),
            IpNet::V6(net) => self.v6.remove(net),
        }
    }

    pub fn get(&self, prefix: &IpNet) -> Option<&PathHops> {
        match prefix {
            IpNet::V4(net) => self.v4.get(net),
            IpNet::V6(net) => self.v6.get(net),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &PathHops)> {
        let v4 = self.v4.iter().map(|(net, hops)| (IpNet::V4(*net), hops));
        let v6 = self.v6.iter().map(|(net, hops)| (IpNet::V6(*net), hops));
        v4.chain(v6)
    }

    pub fn values(&self) -> impl Iterator<Item = &PathHops> {
        self.v4.values().chain(self.v6.values())
    }

    /// Moves every path of `other` in (over this one's at the same prefix).
    pub fn extend(&mut self, other: BestPaths) {
        self.v4.extend(other.v4);
        self.v6.extend(other.v6);
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

/// Hands out one shared copy of each distinct next-hop list.
#[derive(Debug, Default)]
pub struct SharedPathHops {
    lists: HashSet<PathHops>,
}

impl SharedPathHops {
    /// The shared copy of `list`, made on first use.
    pub fn share(&mut self, list: Vec<IpAddr>) -> PathHops {
        if let Some(shared) = self.lists.get(&list) {
            return shared.clone();
        }
        let shared = Arc::new(list);
        self.lists.insert(shared.clone());
        shared
    }

    /// Drops the lists nothing else holds any more.
    pub fn drop_unused(&mut self) {
        self.lists.retain(|list| Arc::strong_count(list) > 1);
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

#[cfg(test)]
mod tests {
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
                        let hops = shared.share(vec![IpAddr::from([192, 0, 2, hop])]);
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
        }
    }
}
