//! RIB storage, no I/O: prefix tables (one B-tree per address family, keyed by the compact
//! `Ipv4Net`/`Ipv6Net` rather than the 18-byte `IpNet`), the per-prefix path list (one path
//! inline, several on the heap) and the interner that makes every distinct set of path
//! attributes one shared `Arc`. A path is 16 bytes and a prefix with one path costs its key, the
//! 16-byte `Paths` and the B-tree's slack: about 40-60 bytes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::message::{Family, PathAttributes};

/// Dense internal index of a peer; `LOCAL` (0) stands for routes we originate.
pub(crate) type PeerIndex = u16;
pub(crate) const LOCAL: PeerIndex = 0;

/// One path of a prefix in the Adj-RIBs-In (post import policy).
#[derive(Clone, Debug)]
pub(crate) struct Path {
    pub attrs: Arc<PathAttributes>,
    /// The add-path identifier, 0 without add-path.
    pub path_id: u32,
    pub peer: PeerIndex,
    /// Kept from a session that went down (graceful restart helper).
    pub stale: bool,
}

/// The paths of one prefix: none, one inline, or several on the heap.
#[derive(Debug, Default)]
pub(crate) enum Paths {
    #[default]
    Empty,
    One(Path),
    /// Boxed so that `Paths` stays 16 bytes (the size of one path).
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Path>>),
}

impl Paths {
    pub fn as_slice(&self) -> &[Path] {
        match self {
            Paths::Empty => &[],
            Paths::One(path) => std::slice::from_ref(path),
            Paths::Many(paths) => paths,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Path] {
        match self {
            Paths::Empty => &mut [],
            Paths::One(path) => std::slice::from_mut(path),
            Paths::Many(paths) => paths,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Inserts `path`, replacing the one with the same peer and path id; returns the replaced one.
    pub fn upsert(&mut self, path: Path) -> Option<Path> {
        let existing = self
            .as_mut_slice()
            .iter_mut()
            .find(|p| p.peer == path.peer && p.path_id == path.path_id);
        if let Some(existing) = existing {
            return Some(std::mem::replace(existing, path));
        }
        *self = match std::mem::take(self) {
            Paths::Empty => Paths::One(path),
            Paths::One(first) => Paths::Many(Box::new(vec![first, path])),
            Paths::Many(mut paths) => {
                paths.push(path);
                Paths::Many(paths)
            }
        };
        None
    }

    /// Removes the paths `keep` rejects; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) -> usize {
        match std::mem::take(self) {
            Paths::Empty => 0,
            Paths::One(path) if keep(&path) => {
                *self = Paths::One(path);
                0
            }
            Paths::One(_) => 1,
            Paths::Many(mut paths) => {
                let before = paths.len();
                paths.retain(|p| keep(p));
                let removed = before - paths.len();
                *self = match paths.len() {
                    0 => Paths::Empty,
                    1 => paths.pop().map_or(Paths::Empty, Paths::One),
                    _ => Paths::Many(paths),
                };
                removed
            }
        }
    }
}

/// A map from prefix to `V`, one ordered tree per address family.
#[derive(Debug)]
pub(crate) struct Table<V> {
    v4: BTreeMap<Ipv4Net, V>,
    v6: BTreeMap<Ipv6Net, V>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            v4: BTreeMap::new(),
            v6: BTreeMap::new(),
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
        match prefix {
            IpNet::V4(net) => self.v4.remove(net),
            IpNet::V6(net) => self.v6.remove(net),
        }
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
        self.v4.clear();
        self.v6.clear();
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.v4.retain(|_, value| keep(value));
        self.v6.retain(|_, value| keep(value));
    }

    /// All entries, IPv4 first, each family in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        let v4 = self.v4.iter().map(|(net, value)| (IpNet::V4(*net), value));
        v4.chain(self.v6.iter().map(|(net, value)| (IpNet::V6(*net), value)))
    }

    /// The entries of one family (`None`: all), in prefix order.
    pub fn iter_family(&self, family: Option<Family>) -> impl Iterator<Item = (IpNet, &V)> + '_ {
        let (v4, v6) = family_filter(family);
        let v4 = self
            .v4
            .iter()
            .take_while(move |_| v4)
            .map(|(net, v)| (IpNet::V4(*net), v));
        v4.chain(
            self.v6
                .iter()
                .take_while(move |_| v6)
                .map(|(net, v)| (IpNet::V6(*net), v)),
        )
    }

    /// Mutable entries of one family (`None`: all), in prefix order.
    pub fn iter_family_mut(
        &mut self,
        family: Option<Family>,
    ) -> impl Iterator<Item = (IpNet, &mut V)> + '_ {
        let (v4, v6) = family_filter(family);
        let v4 = self
            .v4
            .iter_mut()
            .take_while(move |_| v4)
            .map(|(net, v)| (IpNet::V4(*net), v));
        v4.chain(
            self.v6
                .iter_mut()
                .take_while(move |_| v6)
                .map(|(net, v)| (IpNet::V6(*net), v)),
        )
    }
}

/// Which of the two trees a family selects.
fn family_filter(family: Option<Family>) -> (bool, bool) {
    match family {
        None => (true, true),
        Some(family) => (
            family == Family::IPV4_UNICAST,
            family == Family::IPV6_UNICAST,
        ),
    }
}

/// Interns path attributes: equal attributes share one `Arc`, so the 1M prefixes of a full
/// table with ~100 distinct attribute sets hold ~100 allocations, and equality is `Arc::ptr_eq`.
/// Unused entries are swept when the set has doubled since the last sweep.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    set: HashSet<Arc<PathAttributes>>,
    swept_len: usize,
}

impl Interner {
    pub fn intern(&mut self, attrs: PathAttributes) -> Arc<PathAttributes> {
        if let Some(found) = self.set.get(&attrs) {
            return Arc::clone(found);
        }
        let attrs = Arc::new(attrs);
        self.set.insert(Arc::clone(&attrs));
        attrs
    }

    /// Drops the attributes only the interner still holds, if the set has grown enough since
    /// the last sweep for the scan to pay off.
    pub fn sweep_if_due(&mut self) {
        if self.set.len() > 2 * self.swept_len + 64 {
            self.sweep();
        }
    }

    pub fn sweep(&mut self) {
        self.set.retain(|attrs| Arc::strong_count(attrs) > 1);
        self.swept_len = self.set.len();
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }
}
