//! RIB storage, no I/O: the per-prefix path list (one path inline, several on the heap) and
//! the interner that makes every distinct set of path attributes one shared `Arc`; the prefix
//! table itself is `prefix_table`. A path is 16 bytes, and an IPv4 prefix with one path is a
//! 24-byte hash map slot (key, padding, `Paths`) plus a control byte, at a load of 44-88%.

use std::collections::HashSet;
use std::sync::Arc;

pub(crate) use super::prefix_table::Table;
use crate::message::PathAttributes;

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
