//! The delta tracker (felix's pattern): per concern, what the kernel should hold (desired) and
//! what manul last saw or wrote there (applied); the difference is the work to do. Pure: no
//! I/O, the appliers around it do the writing and report back.
//!
//! A resync replaces `applied` with a fresh read of the kernel. The read is taken without the
//! appliers' lock (a dump of a large table takes a while), so writes may land between the read
//! and `finish_resync`: keys written since `begin_resync` keep what the write recorded.
//!
//! Each slot may carry an `extra` value of the owner's (the route applier keeps there what the
//! BGP source wants at the key, so that a million learned routes need no map of their own).

use std::{
    collections::{BTreeMap, BTreeSet},
    marker::PhantomData,
};

/// The ordered map a tracker keeps its slots in: a `BTreeMap`, or a map of a more compact
/// layout for one kind of key (`super::route_keys::RouteKeyMap`). Iteration yields keys by value
/// (a compact map does not hold them as `K`).
pub trait SlotMap<K, S>: Default {
    fn get(&self, key: &K) -> Option<&S>;
    fn get_mut(&mut self, key: &K) -> Option<&mut S>;
    fn insert(&mut self, key: K, slot: S);
    fn remove(&mut self, key: &K) -> Option<S>;
    fn iter<'a>(&'a self) -> impl Iterator<Item = (K, &'a S)>
    where
        S: 'a;
    fn retain(&mut self, keep: impl FnMut(&K, &mut S) -> bool);
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Ord + Clone, S> SlotMap<K, S> for BTreeMap<K, S> {
    fn get(&self, key: &K) -> Option<&S> {
        BTreeMap::get(self, key)
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut S> {
        BTreeMap::get_mut(self, key)
    }

    fn insert(&mut self, key: K, slot: S) {
        BTreeMap::insert(self, key, slot);
    }

    fn remove(&mut self, key: &K) -> Option<S> {
        BTreeMap::remove(self, key)
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = (K, &'a S)>
    where
        S: 'a,
    {
        BTreeMap::iter(self).map(|(key, slot)| (key.clone(), slot))
    }

    fn retain(&mut self, keep: impl FnMut(&K, &mut S) -> bool) {
        BTreeMap::retain(self, keep);
    }

    fn len(&self) -> usize {
        BTreeMap::len(self)
    }
}

/// Pending work: updates (key, value, whether an applied value of ours is there) and deletes.
pub type Pending<K, V> = (Vec<(K, V, bool)>, Vec<(K, V)>);

/// What one key should hold and what it holds. A key with neither (and a default extra) is
/// not kept.
#[derive(Clone, Debug)]
pub struct Slot<V, X> {
    desired: Option<V>,
    applied: Option<V>,
    extra: X,
}

impl<V: Eq, X: Default + PartialEq> Slot<V, X> {
    fn is_empty(&self) -> bool {
        self.desired.is_none() && self.applied.is_none() && self.extra == X::default()
    }

    fn in_sync(&self) -> bool {
        self.desired == self.applied
    }
}

/// Desired and applied of every key, in one map: a node may track a million routes, and one
/// map (one search per change) costs half of two.
#[derive(Clone, Debug)]
pub struct DeltaTracker<K, V, X = (), M = BTreeMap<K, Slot<V, X>>> {
    slots: M,
    /// Keys recorded since `begin_resync`; None when no resync is in progress.
    written_during_resync: Option<BTreeSet<K>>,
    values: PhantomData<fn() -> (V, X)>,
}

impl<K: Ord + Clone, V: Eq + Clone, X: Default + PartialEq, M: SlotMap<K, Slot<V, X>>> Default
    for DeltaTracker<K, V, X, M>
{
    fn default() -> Self {
        DeltaTracker {
            slots: M::default(),
            written_during_resync: None,
            values: PhantomData,
        }
    }
}

impl<K: Ord + Clone, V: Eq + Clone, X: Default + PartialEq, M: SlotMap<K, Slot<V, X>>>
    DeltaTracker<K, V, X, M>
{
    pub fn set_desired(&mut self, key: K, value: V) {
        match self.slots.get_mut(&key) {
            Some(slot) => slot.desired = Some(value),
            None => {
                self.slots.insert(
                    key,
                    Slot {
                        desired: Some(value),
                        applied: None,
                        extra: X::default(),
                    },
                );
            }
        }
    }

    /// The owner's extra value at `key` (None: the key is not kept).
    pub fn extra(&self, key: &K) -> Option<&X> {
        Some(&self.slots.get(key)?.extra)
    }

    /// Every extra value other than the default, in the map's order.
    pub fn extras(&self) -> impl Iterator<Item = (K, &X)> {
        let default = X::default();
        self.slots
            .iter()
            .filter(move |(_, slot)| slot.extra != default)
            .map(|(key, slot)| (key, &slot.extra))
    }

    /// Sets the extra value and the desired one of `key` in one search; the slot goes when
    /// nothing is left in it. `decide` gives the desired value from the new extra. Returns the
    /// extra value the key had.
    pub fn set_extra(&mut self, key: K, extra: X, decide: impl FnOnce(&X) -> Option<V>) -> X {
        match self.slots.get_mut(&key) {
            Some(slot) => {
                let old = std::mem::replace(&mut slot.extra, extra);
                slot.desired = decide(&slot.extra);
                if slot.is_empty() {
                    self.slots.remove(&key);
                }
                old
            }
            None => {
                let desired = decide(&extra);
                let slot = Slot {
                    desired,
                    applied: None,
                    extra,
                };
                if !slot.is_empty() {
                    self.slots.insert(key, slot);
                }
                X::default()
            }
        }
    }

    pub fn remove_desired(&mut self, key: &K) {
        self.change_slot(key, |slot| slot.desired = None);
    }

    /// What `key` should hold.
    pub fn desired_at(&self, key: &K) -> Option<&V> {
        self.slots.get(key)?.desired.as_ref()
    }

    /// Every desired entry, in the map's order.
    pub fn desired(&self) -> impl Iterator<Item = (K, &V)> {
        self.slots
            .iter()
            .filter_map(|(key, slot)| Some((key, slot.desired.as_ref()?)))
    }

    /// Every applied entry, in the map's order.
    pub fn applied(&self) -> impl Iterator<Item = (K, &V)> {
        self.slots
            .iter()
            .filter_map(|(key, slot)| Some((key, slot.applied.as_ref()?)))
    }

    /// Desired entries the kernel does not hold as desired: (key, value, whether the key holds
    /// an applied value of ours now, which the write then replaces).
    pub fn pending_updates(&self) -> Vec<(K, V, bool)> {
        self.slots
            .iter()
            .filter(|(_, slot)| !slot.in_sync())
            .filter_map(|(key, slot)| {
                let desired = slot.desired.as_ref()?;
                Some((key, desired.clone(), slot.applied.is_some()))
            })
            .collect()
    }

    /// Applied entries nothing wants any more.
    pub fn pending_deletes(&self) -> Vec<(K, V)> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.desired.is_none())
            .filter_map(|(key, slot)| Some((key, slot.applied.clone()?)))
            .collect()
    }

    /// The pending work for some keys only (an ADD applies its own routes at once), each key
    /// once however often it is named (a key written twice in one batch would collide with
    /// itself in the kernel).
    pub fn pending_for(&self, keys: &[K]) -> Pending<K, V> {
        let mut updates = Vec::new();
        let mut deletes = Vec::new();
        let mut keys: Vec<&K> = keys.iter().collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            match (&slot.desired, &slot.applied) {
                (Some(desired), applied) if applied.as_ref() != Some(desired) => {
                    updates.push((key.clone(), desired.clone(), applied.is_some()));
                }
                (None, Some(applied)) => deletes.push((key.clone(), applied.clone())),
                _ => {}
            }
        }
        (updates, deletes)
    }

    pub fn in_sync(&self) -> bool {
        self.slots.iter().all(|(_, slot)| slot.in_sync())
    }

    /// The kernel now holds `value` at `key`.
    pub fn record_applied(&mut self, key: K, value: V) {
        self.note_write(&key);
        match self.slots.get_mut(&key) {
            Some(slot) => slot.applied = Some(value),
            None => {
                self.slots.insert(
                    key,
                    Slot {
                        desired: None,
                        applied: Some(value),
                        extra: X::default(),
                    },
                );
            }
        }
    }

    /// The kernel no longer holds anything of ours at `key`.
    pub fn record_deleted(&mut self, key: &K) {
        self.note_write(key);
        self.change_slot(key, |slot| slot.applied = None);
    }

    /// Forgets what was applied: the next pass checks every desired entry again.
    pub fn forget_applied(&mut self) {
        self.slots.retain(|_, slot| {
            slot.applied = None;
            !slot.is_empty()
        });
    }

    fn change_slot(&mut self, key: &K, change: impl FnOnce(&mut Slot<V, X>)) {
        if let Some(slot) = self.slots.get_mut(key) {
            change(slot);
            if slot.is_empty() {
                self.slots.remove(key);
            }
        }
    }

    fn note_write(&mut self, key: &K) {
        if let Some(written) = &mut self.written_during_resync {
            written.insert(key.clone());
        }
    }

    /// Call before reading the kernel for `finish_resync`.
    pub fn begin_resync(&mut self) {
        self.written_during_resync = Some(BTreeSet::new());
    }

    /// `applied` becomes what the kernel held when it was read (`kernel`, its values turned
    /// into `V` by `value_of`; None leaves a key out), except for keys written since `begin_resync`, which keep what
    /// the write recorded. A kernel value equal to the desired one is kept as a clone of the
    /// desired value, so that values sharing memory (the routes' next-hop lists) stay shared
    /// after a resync instead of being held twice. `kernel` shrinks as it is read.
    pub fn finish_resync<U, KM: SlotMap<K, U>>(
        &mut self,
        mut kernel: KM,
        value_of: impl Fn(&U) -> Option<V>,
    ) {
        let written = self.written_during_resync.take().unwrap_or_default();
        for key in &written {
            kernel.remove(key);
        }
        self.slots.retain(|key, slot| {
            if !written.contains(key) {
                slot.applied = match kernel.remove(key).and_then(|held| value_of(&held)) {
                    Some(held) if slot.desired.as_ref() == Some(&held) => slot.desired.clone(),
                    held => held,
                };
            }
            !slot.is_empty()
        });
        for (key, held) in kernel.iter() {
            if let Some(held) = value_of(held) {
                let slot = Slot {
                    desired: None,
                    applied: Some(held),
                    extra: X::default(),
                };
                self.slots.insert(key, slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn pending_work_is_the_difference() {
        let mut tracker: DeltaTracker<_, _> = DeltaTracker::default();
        tracker.set_desired(1, "a");
        tracker.set_desired(2, "b");
        tracker.finish_resync(BTreeMap::from([(2, "old"), (3, "stray")]), |held| {
            Some(*held)
        });
        assert_eq!(
            tracker.pending_updates(),
            vec![(1, "a", false), (2, "b", true)]
        );
        assert_eq!(tracker.pending_deletes(), vec![(3, "stray")]);
        tracker.record_applied(1, "a");
        tracker.record_applied(2, "b");
        tracker.record_deleted(&3);
        assert!(tracker.in_sync());
    }

    #[test]
    fn writes_during_a_resync_win_over_the_older_read() {
        let mut tracker: DeltaTracker<_, _> = DeltaTracker::default();
        tracker.set_desired(1, "new");
        tracker.begin_resync();
        // Written after the kernel was read: the read does not have it.
        tracker.record_applied(1, "new");
        tracker.record_deleted(&2);
        tracker.finish_resync(BTreeMap::from([(2, "gone since"), (3, "stray")]), |held| {
            Some(*held)
        });
        let applied: BTreeMap<_, _> = tracker.applied().collect();
        assert_eq!(applied.get(&1), Some(&&"new"));
        assert_eq!(applied.get(&2), None);
        assert_eq!(tracker.pending_deletes(), vec![(3, "stray")]);
        assert!(tracker.pending_updates().is_empty());
    }

    #[test]
    fn pending_for_limits_the_work_to_some_keys() {
        let mut tracker: DeltaTracker<_, _> = DeltaTracker::default();
        tracker.set_desired(1, "a");
        tracker.set_desired(2, "b");
        tracker.finish_resync(BTreeMap::from([(3, "c")]), |held| Some(*held));
        assert_eq!(
            tracker.pending_for(&[1, 3]),
            (vec![(1, "a", false)], vec![(3, "c")])
        );
    }

    #[test]
    fn pending_for_names_a_key_named_twice_once() {
        let mut tracker: DeltaTracker<_, _> = DeltaTracker::default();
        tracker.set_desired(1, "a");
        tracker.finish_resync(BTreeMap::from([(3, "c")]), |held| Some(*held));
        assert_eq!(
            tracker.pending_for(&[1, 3, 1, 3]),
            (vec![(1, "a", false)], vec![(3, "c")])
        );
    }

    proptest! {
        /// Applying every pending update and delete converges, whatever the start.
        #[test]
        fn applying_the_pending_work_converges(
            desired in proptest::collection::btree_map(0u8..20, 0u8..3, 0..20),
            kernel in proptest::collection::btree_map(0u8..20, 0u8..3, 0..20),
        ) {
            let mut tracker: DeltaTracker<_, _> = DeltaTracker::default();
            for (key, value) in &desired {
                tracker.set_desired(*key, *value);
            }
            tracker.finish_resync(kernel, |held| Some(*held));
            for (key, value, _) in tracker.pending_updates() {
                tracker.record_applied(key, value);
            }
            for (key, _) in tracker.pending_deletes() {
                tracker.record_deleted(&key);
            }
            prop_assert!(tracker.in_sync());
            let applied: BTreeMap<u8, u8> =
                tracker.applied().map(|(key, value)| (key, *value)).collect();
            prop_assert_eq!(&applied, &desired);
            prop_assert_eq!(tracker.slots.len(), desired.len());
        }
    }
}
