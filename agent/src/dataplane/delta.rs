//! The delta tracker (felix's pattern): per concern, what the kernel should hold (desired) and
//! what manul last saw or wrote there (applied); the difference is the work to do. Pure: no
//! I/O, the appliers around it do the writing and report back.
//!
//! A resync replaces `applied` with a fresh read of the kernel. The read is taken without the
//! appliers' lock (a dump of a large table takes a while), so writes may land between the read
//! and `finish_resync`: keys written since `begin_resync` keep what the write recorded.

use std::collections::{BTreeMap, BTreeSet};

/// Pending work: updates (key, value, whether an applied value of ours is there) and deletes.
pub type Pending<K, V> = (Vec<(K, V, bool)>, Vec<(K, V)>);

#[derive(Clone, Debug)]
pub struct DeltaTracker<K, V> {
    desired: BTreeMap<K, V>,
    applied: BTreeMap<K, V>,
    /// Keys recorded since `begin_resync`; None when no resync is in progress.
    written_during_resync: Option<BTreeSet<K>>,
}

impl<K: Ord + Clone, V: Eq + Clone> Default for DeltaTracker<K, V> {
    fn default() -> Self {
        DeltaTracker {
            desired: BTreeMap::new(),
            applied: BTreeMap::new(),
            written_during_resync: None,
        }
    }
}

impl<K: Ord + Clone, V: Eq + Clone> DeltaTracker<K, V> {
    pub fn set_desired(&mut self, key: K, value: V) {
        self.desired.insert(key, value);
    }

    pub fn remove_desired(&mut self, key: &K) {
        self.desired.remove(key);
    }

    pub fn desired(&self) -> &BTreeMap<K, V> {
        &self.desired
    }

    pub fn applied(&self) -> &BTreeMap<K, V> {
        &self.applied
    }

    /// Desired entries the kernel does not hold as desired: (key, value, whether the key holds
    /// an applied value of ours now, which the write then replaces).
    pub fn pending_updates(&self) -> Vec<(K, V, bool)> {
        self.desired
            .iter()
            .filter(|(key, value)| self.applied.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), value.clone(), self.applied.contains_key(key)))
            .collect()
    }

    /// Applied entries nothing wants any more.
    pub fn pending_deletes(&self) -> Vec<(K, V)> {
        self.applied
            .iter()
            .filter(|(key, _)| !self.desired.contains_key(*key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// The pending work for some keys only (an ADD applies its own routes at once), each key
    /// once however often it is named (a key written twice in one batch would collide with
    /// itself in the kernel).
    pub fn pending_for(&self, keys: &[K]) -> Pending<K, V> {
        let mut updates = Vec::new();
        let mut deletes = Vec::new();
        let keys: BTreeSet<&K> = keys.iter().collect();
        for key in keys {
            match (self.desired.get(key), self.applied.get(key)) {
                (Some(desired), applied) if applied != Some(desired) => {
                    updates.push((key.clone(), desired.clone(), applied.is_some()));
                }
                (None, Some(applied)) => deletes.push((key.clone(), applied.clone())),
                _ => {}
            }
        }
        (updates, deletes)
    }

    pub fn in_sync(&self) -> bool {
        self.pending_updates().is_empty() && self.pending_deletes().is_empty()
    }

    /// The kernel now holds `value` at `key`.
    pub fn record_applied(&mut self, key: K, value: V) {
        self.note_write(&key);
        self.applied.insert(key, value);
    }

    /// The kernel no longer holds anything of ours at `key`.
    pub fn record_deleted(&mut self, key: &K) {
        self.note_write(key);
        self.applied.remove(key);
    }

    /// Forgets what was applied: the next pass checks every desired entry again.
    pub fn forget_applied(&mut self) {
        self.applied.clear();
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

    /// `applied` becomes what the kernel held when it was read, except for keys written since
    /// `begin_resync`, which keep what the write recorded. A kernel value equal to the desired
    /// one is kept as a clone of the desired value, so that values sharing memory (the routes'
    /// next-hop lists) stay shared after a resync instead of being held twice.
    pub fn finish_resync(&mut self, kernel: BTreeMap<K, V>) {
        let written = self.written_during_resync.take().unwrap_or_default();
        let mut applied = kernel;
        applied.retain(|key, _| !written.contains(key));
        for (key, value) in applied.iter_mut() {
            if let Some(desired) = self.desired.get(key)
                && desired == value
            {
                *value = desired.clone();
            }
        }
        for key in written {
            if let Some(value) = self.applied.get(&key) {
                applied.insert(key, value.clone());
            }
        }
        self.applied = applied;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn pending_work_is_the_difference() {
        let mut tracker = DeltaTracker::default();
        tracker.set_desired(1, "a");
        tracker.set_desired(2, "b");
        tracker.finish_resync(BTreeMap::from([(2, "old"), (3, "stray")]));
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
        let mut tracker = DeltaTracker::default();
        tracker.set_desired(1, "new");
        tracker.begin_resync();
        // Written after the kernel was read: the read does not have it.
        tracker.record_applied(1, "new");
        tracker.record_deleted(&2);
        tracker.finish_resync(BTreeMap::from([(2, "gone since"), (3, "stray")]));
        assert_eq!(tracker.applied().get(&1), Some(&"new"));
        assert_eq!(tracker.applied().get(&2), None);
        assert_eq!(tracker.pending_deletes(), vec![(3, "stray")]);
        assert!(tracker.pending_updates().is_empty());
    }

    #[test]
    fn pending_for_limits_the_work_to_some_keys() {
        let mut tracker = DeltaTracker::default();
        tracker.set_desired(1, "a");
        tracker.set_desired(2, "b");
        tracker.finish_resync(BTreeMap::from([(3, "c")]));
        assert_eq!(
            tracker.pending_for(&[1, 3]),
            (vec![(1, "a", false)], vec![(3, "c")])
        );
    }

    #[test]
    fn pending_for_names_a_key_named_twice_once() {
        let mut tracker = DeltaTracker::default();
        tracker.set_desired(1, "a");
        tracker.finish_resync(BTreeMap::from([(3, "c")]));
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
            let mut tracker = DeltaTracker::default();
            for (key, value) in &desired {
                tracker.set_desired(*key, *value);
            }
            tracker.finish_resync(kernel);
            for (key, value, _) in tracker.pending_updates() {
                tracker.record_applied(key, value);
            }
            for (key, _) in tracker.pending_deletes() {
                tracker.record_deleted(&key);
            }
            prop_assert!(tracker.in_sync());
            prop_assert_eq!(tracker.applied(), &desired);
        }
    }
}
