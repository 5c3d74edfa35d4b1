//! Best-path watchers with memory bounded by the table, not by churn: per watcher a queue of
//! dirty prefixes (first-dirtied first, each at most once) that are resolved against the RIB's
//! current best path only when the watcher asks for more. No I/O.
//!
//! This is the shape of BIRD's export and GoBGP's watch: a consumer that does not read while
//! the same prefixes change a million times holds one entry per prefix, and when it reads it
//! gets each prefix's latest state (an add then a withdraw pending for it leaves the withdraw;
//! two adds leave the latest). The snapshot is the same mechanism: every prefix with a best
//! path is dirty when the watch starts, and the chunk that resolves the last of them carries
//! `snapshot_done`. A snapshot prefix withdrawn before it went out is left out (the watcher
//! never saw it); after the snapshot a withdrawal is sent even if the add it cancels was not.
//!
//! "Is this prefix already queued" is a bit in the RIB's prefix table entry (`Bit`): the RIB
//! has just touched that entry, so the check costs no probe of a set of its own (a hash set
//! insert and remove per prefix was about a third of the RIB thread with a subscriber during a
//! full table transfer). A queued prefix whose entry goes away moves to the small `gone` set
//! (the table hands over its marks, `evicted`). Past the table's 8 mark bits a watcher keeps a
//! set of its own (`Set`). Either way each queued prefix is in the queue exactly once.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
};

use ipnet::IpNet;

use crate::message::PathAttributes;
use crate::prefix_hash::PrefixHashBuilder;
use crate::rib::{NextHops, Position};

/// A best path as the RIB reports it: ECMP next hops and the attributes.
pub type Best = (NextHops, Arc<PathAttributes>);

/// One best-path change: `None` is a withdrawal.
#[derive(Clone, Debug)]
pub struct BestEvent {
    pub prefix: IpNet,
    pub best: Option<Best>,
}

/// What a watcher gets per request: the latest state of up to a chunk of dirty prefixes.
#[derive(Clone, Debug, Default)]
pub struct WatchChunk {
    pub events: Vec<BestEvent>,
    /// This chunk ends the snapshot (it may be empty: an empty table).
    pub snapshot_done: bool,
}

/// What a watcher needs of the RIB: the mark bits of its prefix table and the best paths.
pub trait WatchedRib {
    /// Sets `bit` on `prefix`'s entry (at `hint`, if it is still there): whether it was set,
    /// and where the entry is; `None`: no entry.
    fn set_mark(&mut self, prefix: &IpNet, hint: Position, bit: u8) -> Option<(bool, Position)>;
    /// Clears `bit` on `prefix`'s entry: whether it was set, and `best(prefix)`. `hint` is
    /// the position `set_mark` gave (the entry may have moved since).
    fn clear_mark(&mut self, prefix: &IpNet, hint: Position, bit: u8) -> (bool, Option<Best>);
    /// The current best path of `prefix`.
    fn best(&self, prefix: &IpNet) -> Option<Best>;
}

type PrefixSet = HashSet<IpNet, PrefixHashBuilder>;

/// How a watcher knows which prefixes are queued.
#[derive(Debug)]
enum Membership {
    /// Entries with `bit` set, and `gone`: queued prefixes whose entry was removed.
    Bit { bit: u8, gone: PrefixSet },
    /// A set of its own.
    Set(PrefixSet),
}

/// The pending state of one watcher.
#[derive(Debug)]
pub struct Watcher {
    /// Each with where its table entry was when it was queued: a full table is queued in
    /// the order it was inserted, so resolving the queue reads the table in order instead of
    /// probing its index (that probe, a cache miss per prefix, was a fifth of the RIB
    /// thread during a full table transfer with a subscriber).
    dirty: VecDeque<(IpNet, Position)>,
    membership: Membership,
    /// How many entries at the front of `dirty` belong to the snapshot.
    snapshot_left: usize,
    snapshot_sent: bool,
}

impl Watcher {
    /// A watcher using mark `bit` of the RIB's table (`None`: a set of its own) whose snapshot
    /// is `prefixes` (every prefix with a learned best path).
    pub fn with_snapshot(
        bit: Option<u8>,
        prefixes: impl IntoIterator<Item = IpNet>,
        rib: &mut impl WatchedRib,
    ) -> Watcher {
        let membership = match bit {
            Some(bit) => Membership::Bit {
                bit,
                gone: PrefixSet::default(),
            },
            None => Membership::Set(PrefixSet::default()),
        };
        let mut watcher = Watcher {
            dirty: VecDeque::new(),
            membership,
            snapshot_left: 0,
            snapshot_sent: false,
        };
        for prefix in prefixes {
            watcher.mark(prefix, Position::default(), rib);
        }
        watcher.snapshot_left = watcher.dirty.len();
        watcher
    }

    /// The mark bit this watcher holds in the RIB's table, if any.
    pub fn bit(&self) -> Option<u8> {
        match &self.membership {
            Membership::Bit { bit, .. } => Some(*bit),
            Membership::Set(_) => None,
        }
    }

    /// The best path of `prefix` changed (or went away); `hint`: where its table entry is, as
    /// far as the caller knows (`Position::default()` when it does not).
    pub fn mark(&mut self, prefix: IpNet, hint: Position, rib: &mut impl WatchedRib) {
        let (newly, position) = match &mut self.membership {
            Membership::Set(set) => (set.insert(prefix), Position::default()),
            Membership::Bit { bit, gone } => {
                if !gone.is_empty() && gone.contains(&prefix) {
                    return;
                }
                match rib.set_mark(&prefix, hint, *bit) {
                    Some((was_set, position)) => (!was_set, position),
                    None => (gone.insert(prefix), Position::default()),
                }
            }
        };
        if newly {
            self.dirty.push_back((prefix, position));
        }
    }

    /// The table removed `prefix`'s entry, which had `marks` set: still queued if this
    /// watcher's bit is among them.
    pub fn evicted(&mut self, prefix: IpNet, marks: u8) {
        if let Membership::Bit { bit, gone } = &mut self.membership
            && marks & *bit != 0
        {
            gone.insert(prefix);
        }
    }

    /// Prefixes waiting to be resolved.
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    /// Whether `take` has something to hand out.
    pub fn is_ready(&self) -> bool {
        !self.snapshot_sent || !self.dirty.is_empty()
    }

    /// Takes `prefix` out of the queued ones: whether it was queued, and its best path.
    fn unqueue(
        &mut self,
        prefix: &IpNet,
        hint: Position,
        rib: &mut impl WatchedRib,
    ) -> (bool, Option<Best>) {
        match &mut self.membership {
            Membership::Set(set) => (set.remove(prefix), rib.best(prefix)),
            Membership::Bit { bit, gone } => {
                let was_gone = !gone.is_empty() && gone.remove(prefix);
                let (was_marked, best) = rib.clear_mark(prefix, hint, *bit);
                (was_marked || was_gone, best)
            }
        }
    }

    /// Resolves up to `limit` dirty prefixes against `rib`'s current best paths, oldest
    /// first; `None` when there is nothing to hand out.
    pub fn take(&mut self, limit: usize, rib: &mut impl WatchedRib) -> Option<WatchChunk> {
        if !self.is_ready() {
            return None;
        }
        let mut chunk = WatchChunk::default();
        while chunk.events.len() < limit {
            let Some((prefix, hint)) = self.dirty.pop_front() else {
                break;
            };
            let in_snapshot = self.snapshot_left > 0;
            self.snapshot_left = self.snapshot_left.saturating_sub(1);
            let (queued, best) = self.unqueue(&prefix, hint, rib);
            if !queued {
                // Never happens: each queued prefix is in the queue once.
                continue;
            }
            if in_snapshot && best.is_none() {
                continue;
            }
            chunk.events.push(BestEvent { prefix, best });
            if in_snapshot && self.snapshot_left == 0 {
                break;
            }
        }
        if !self.snapshot_sent && self.snapshot_left == 0 {
            self.snapshot_sent = true;
            chunk.snapshot_done = true;
        }
        if self.dirty.is_empty() {
            self.shrink();
        }
        Some(chunk)
    }

    /// Gives back the memory of a backlog once it is gone.
    fn shrink(&mut self) {
        const KEEP: usize = 1024;
        if self.dirty.capacity() > KEEP {
            self.dirty = VecDeque::new();
        }
        let set = match &mut self.membership {
            Membership::Set(set) => set,
            Membership::Bit { gone, .. } => gone,
        };
        if set.capacity() > KEEP {
            *set = PrefixSet::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::net::IpAddr;

    use super::*;

    fn prefix(index: u32) -> IpNet {
        IpNet::new(IpAddr::from([10, (index >> 8) as u8, index as u8, 0]), 24).unwrap()
    }

    /// A RIB of prefix -> (MED, marks), removing entries as the real table does.
    #[derive(Default)]
    struct FakeRib {
        entries: HashMap<IpNet, (u32, u8)>,
    }

    impl FakeRib {
        fn with(prefixes: impl IntoIterator<Item = u32>, med: u32) -> FakeRib {
            let entries = prefixes
                .into_iter()
                .map(|i| (prefix(i), (med, 0)))
                .collect();
            FakeRib { entries }
        }

        fn set(&mut self, watcher: &mut Watcher, index: u32, med: u32) {
            self.entries.entry(prefix(index)).or_insert((med, 0)).0 = med;
            watcher.mark(prefix(index), Position::default(), self);
        }

        fn remove(&mut self, watcher: &mut Watcher, index: u32) {
            if let Some((_, marks)) = self.entries.remove(&prefix(index))
                && marks != 0
            {
                watcher.evicted(prefix(index), marks);
            }
            watcher.mark(prefix(index), Position::default(), self);
        }
    }

    impl WatchedRib for FakeRib {
        fn set_mark(
            &mut self,
            prefix: &IpNet,
            _hint: Position,
            bit: u8,
        ) -> Option<(bool, Position)> {
            let (_, marks) = self.entries.get_mut(prefix)?;
            let was = *marks & bit != 0;
            *marks |= bit;
            Some((was, Position::default()))
        }

        fn clear_mark(&mut self, prefix: &IpNet, _hint: Position, bit: u8) -> (bool, Option<Best>) {
            let was = self.entries.get_mut(prefix).is_some_and(|(_, marks)| {
                let was = *marks & bit != 0;
                *marks &= !bit;
                was
            });
            (was, self.best(prefix))
        }

        fn best(&self, prefix: &IpNet) -> Option<Best> {
            let (med, _) = self.entries.get(prefix)?;
            let attributes = PathAttributes {
                med: Some(*med),
                ..PathAttributes::default()
            };
            let hops = NextHops::One(Some(IpAddr::from([192, 0, 2, 2])));
            Some((hops, Arc::new(attributes)))
        }
    }

    /// Both ways of knowing what is queued: a mark bit of the table, a set of its own.
    const MODES: [Option<u8>; 2] = [Some(4), None];

    fn med(event: &BestEvent) -> Option<u32> {
        event
            .best
            .as_ref()
            .and_then(|(_, attributes)| attributes.med)
    }

    /// Takes everything; returns the chunks' snapshot flags and the events.
    fn drain(
        watcher: &mut Watcher,
        rib: &mut FakeRib,
        limit: usize,
    ) -> (Vec<bool>, Vec<BestEvent>) {
        let mut flags = Vec::new();
        let mut events = Vec::new();
        while let Some(chunk) = watcher.take(limit, rib) {
            flags.push(chunk.snapshot_done);
            events.extend(chunk.events);
        }
        (flags, events)
    }

    #[test]
    fn churn_while_not_reading_leaves_one_entry_per_prefix_with_the_final_state() {
        for mode in MODES {
            let mut rib = FakeRib::default();
            let mut watcher = Watcher::with_snapshot(mode, [], &mut rib);
            assert_eq!(drain(&mut watcher, &mut rib, 8).0, vec![true]);
            for round in 0..1000 {
                for index in 0..100 {
                    rib.set(&mut watcher, index, round);
                    if index % 2 == 0 {
                        rib.remove(&mut watcher, index);
                    }
                }
            }
            assert_eq!(watcher.pending(), 100, "{mode:?}");
            let (flags, events) = drain(&mut watcher, &mut rib, 8);
            assert!(flags.iter().all(|done| !done));
            assert_eq!(events.len(), 100);
            for (index, event) in events.iter().enumerate() {
                assert_eq!(event.prefix, prefix(index as u32));
                let expected = (index % 2 == 1).then_some(999);
                assert_eq!(med(event), expected, "{} {mode:?}", event.prefix);
            }
            assert!(!watcher.is_ready());
            assert!(rib.entries.values().all(|(_, marks)| *marks == 0));
        }
    }

    #[test]
    fn a_prefix_removed_and_added_again_while_queued_is_handed_out_once_with_its_state() {
        for mode in MODES {
            let mut rib = FakeRib::default();
            let mut watcher = Watcher::with_snapshot(mode, [], &mut rib);
            drain(&mut watcher, &mut rib, 8);
            rib.set(&mut watcher, 1, 1);
            rib.remove(&mut watcher, 1);
            rib.set(&mut watcher, 1, 2);
            rib.remove(&mut watcher, 1);
            rib.set(&mut watcher, 1, 3);
            assert_eq!(watcher.pending(), 1, "{mode:?}");
            let (_, events) = drain(&mut watcher, &mut rib, 8);
            assert_eq!(events.len(), 1);
            assert_eq!(med(&events[0]), Some(3));
            // Read, then removed: the withdrawal comes once.
            rib.remove(&mut watcher, 1);
            rib.set(&mut watcher, 1, 4);
            rib.remove(&mut watcher, 1);
            let (_, events) = drain(&mut watcher, &mut rib, 8);
            assert_eq!(events.len(), 1, "{mode:?}");
            assert!(events[0].best.is_none());
        }
    }

    #[test]
    fn snapshot_comes_first_coalesced_and_ends_with_snapshot_done() {
        for mode in MODES {
            let mut rib = FakeRib::with(0..10, 1);
            let mut watcher = Watcher::with_snapshot(mode, (0..10).map(prefix), &mut rib);
            // Before the snapshot is read: 3 changes, 4 goes away, 20 is new.
            rib.set(&mut watcher, 3, 2);
            rib.remove(&mut watcher, 4);
            rib.set(&mut watcher, 20, 5);
            let (flags, events) = drain(&mut watcher, &mut rib, 4);
            // Snapshot: 9 prefixes in 3 chunks (the last one cut at the snapshot's end), then 20.
            assert_eq!(flags, vec![false, false, true, false]);
            let snapshot: Vec<_> = events[..9].iter().map(|e| (e.prefix, med(e))).collect();
            let expected: Vec<_> = (0..10)
                .filter(|i| *i != 4)
                .map(|i| (prefix(i), Some(if i == 3 { 2 } else { 1 })))
                .collect();
            assert_eq!(snapshot, expected);
            assert_eq!((events[9].prefix, med(&events[9])), (prefix(20), Some(5)));
            // After the snapshot, a withdrawal goes out.
            rib.remove(&mut watcher, 0);
            let (_, events) = drain(&mut watcher, &mut rib, 4);
            assert_eq!(events.len(), 1);
            assert!(events[0].best.is_none());
        }
    }

    #[test]
    fn an_empty_snapshot_is_one_empty_chunk_with_snapshot_done() {
        for mode in MODES {
            let mut rib = FakeRib::default();
            let mut watcher = Watcher::with_snapshot(mode, [], &mut rib);
            let chunk = watcher.take(8, &mut rib).unwrap();
            assert!(chunk.snapshot_done && chunk.events.is_empty());
            assert!(watcher.take(8, &mut rib).is_none());
        }
    }
}
