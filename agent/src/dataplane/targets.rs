//! Interned route targets: the route applier keeps a million keys, but only a handful of
//! distinct targets (the gateways BGP routes go through, one device per pod, blackhole), so its
//! maps hold a 4-byte `TargetId` per key instead of a 24-byte `RouteTarget` (per source and
//! twice in the delta tracker). Pure, no I/O.
//!
//! Targets nothing refers to any more are dropped by `sweep`, which the owner calls with every
//! id it still holds once the table has grown well past its size at the last sweep (so the
//! cost of a sweep is spread over as many interns as there are live keys).

use std::{collections::HashMap, num::NonZeroU32, sync::Arc};

use crate::netlink::RouteTarget;

/// A target held by a `TargetTable`; `Option<TargetId>` is 4 bytes too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(NonZeroU32);

impl TargetId {
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// Each distinct target once, by id.
#[derive(Debug, Default)]
pub struct TargetTable {
    /// By index (id - 1); None: a free slot.
    targets: Vec<Option<RouteTarget>>,
    ids: HashMap<RouteTarget, TargetId>,
    free: Vec<TargetId>,
    /// Live targets after the last sweep.
    live_at_sweep: usize,
    /// The id the last gateway target got: most routes share one next-hop list, and a pointer
    /// comparison with the slot saves hashing it (a hint only: the slot is checked).
    last_via: Option<TargetId>,
}

impl TargetTable {
    /// The id of `target`, made on first use.
    pub fn intern(&mut self, target: RouteTarget) -> TargetId {
        if let (Some(id), RouteTarget::Via(hops)) = (self.last_via, &target)
            && let Some(Some(RouteTarget::Via(held))) = self.targets.get(id.index())
            && Arc::ptr_eq(held, hops)
        {
            return id;
        }
        let is_via = matches!(target, RouteTarget::Via(_));
        let id = self.intern_slowly(target);
        if is_via {
            self.last_via = Some(id);
        }
        id
    }

    fn intern_slowly(&mut self, target: RouteTarget) -> TargetId {
        if let Some(id) = self.ids.get(&target) {
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.targets.push(None);
                let index = u32::try_from(self.targets.len()).unwrap_or(u32::MAX);
                TargetId(NonZeroU32::new(index).unwrap_or(NonZeroU32::MAX))
            }
        };
        self.targets[id.index()] = Some(target.clone());
        self.ids.insert(target, id);
        id
    }

    /// The id `target` has, if it is held.
    pub fn id_of(&self, target: &RouteTarget) -> Option<TargetId> {
        self.ids.get(target).copied()
    }

    /// The target of `id`. Ids come only from `intern` and stay valid until a sweep that was
    /// not told about them; an id that is not held (a bug) reads as blackhole, never a panic.
    pub fn get(&self, id: TargetId) -> &RouteTarget {
        const NONE: &RouteTarget = &RouteTarget::Blackhole;
        self.targets
            .get(id.index())
            .and_then(Option::as_ref)
            .unwrap_or(NONE)
    }

    /// How many targets are held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether enough targets were interned since the last sweep to make one worth its cost.
    pub fn sweep_due(&self) -> bool {
        self.ids.len() > 2 * self.live_at_sweep + 64
    }

    /// Drops every target whose id is not among `live`.
    pub fn sweep(&mut self, live: impl IntoIterator<Item = TargetId>) {
        let mut marked = vec![false; self.targets.len()];
        for id in live {
            if let Some(mark) = marked.get_mut(id.index()) {
                *mark = true;
            }
        }
        for (index, mark) in marked.into_iter().enumerate() {
            if mark {
                continue;
            }
            if let Some(target) = self.targets[index].take()
                && let Some(id) = self.ids.remove(&target)
            {
                self.free.push(id);
            }
        }
        self.live_at_sweep = self.ids.len();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn device(name: &str) -> RouteTarget {
        RouteTarget::Device(name.to_string())
    }

    #[test]
    fn equal_targets_share_an_id_until_swept() {
        let mut table = TargetTable::default();
        let first = table.intern(device("cali1"));
        let again = table.intern(device("cali1"));
        let other = table.intern(RouteTarget::Blackhole);
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_eq!(table.get(first), &device("cali1"));
        table.sweep([other]);
        assert_eq!(table.len(), 1);
        assert_eq!(table.id_of(&device("cali1")), None);
        // The freed slot is reused for the next new target.
        let reused = table.intern(device("cali2"));
        assert_eq!(reused, first);
        assert_eq!(table.get(reused), &device("cali2"));
        assert_eq!(table.get(other), &RouteTarget::Blackhole);
    }

    proptest! {
        /// Interning then sweeping with the ids kept keeps exactly their targets, whatever the
        /// order of interns and sweeps.
        #[test]
        fn kept_ids_read_back_their_targets(
            rounds in proptest::collection::vec(
                (proptest::collection::vec(0u8..12, 0..20), proptest::collection::vec(any::<bool>(), 20)),
                1..6,
            ),
        ) {
            let mut table = TargetTable::default();
            let mut kept: Vec<(TargetId, RouteTarget)> = Vec::new();
            for (names, keep) in rounds {
                for (name, keep) in names.iter().zip(keep) {
                    let target = device(&format!("cali{name}"));
                    let id = table.intern(target.clone());
                    if keep {
                        kept.push((id, target));
                    }
                }
                table.sweep(kept.iter().map(|(id, _)| *id));
                for (id, target) in &kept {
                    prop_assert_eq!(table.get(*id), target);
                    prop_assert_eq!(table.id_of(target), Some(*id));
                }
                let distinct: std::collections::HashSet<&RouteTarget> =
                    kept.iter().map(|(_, target)| target).collect();
                prop_assert_eq!(table.len(), distinct.len());
            }
        }
    }
}
