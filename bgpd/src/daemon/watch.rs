//! Best-path watchers with memory bounded by the table, not by churn: per watcher a set of
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

use std::{
    collections::{HashSet, VecDeque},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;

use crate::message::PathAttributes;
use crate::prefix_hash::PrefixHashBuilder;

/// A best path as the RIB reports it: ECMP next hops and the attributes.
pub type Best = (Vec<IpAddr>, Arc<PathAttributes>);

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

/// The pending state of one watcher.
#[derive(Debug, Default)]
pub struct Watcher {
    dirty: VecDeque<IpNet>,
    queued: HashSet<IpNet, PrefixHashBuilder>,
    /// How many entries at the front of `dirty` belong to the snapshot.
    snapshot_left: usize,
    snapshot_sent: bool,
}

impl Watcher {
    /// A watcher whose snapshot is `prefixes` (every prefix with a learned best path).
    pub fn with_snapshot(prefixes: impl IntoIterator<Item = IpNet>) -> Watcher {
        let mut watcher = Watcher::default();
        for prefix in prefixes {
            watcher.mark(prefix);
        }
        watcher.snapshot_left = watcher.dirty.len();
        watcher
    }

    /// The best path of `prefix` changed (or went away).
    pub fn mark(&mut self, prefix: IpNet) {
        if self.queued.insert(prefix) {
            self.dirty.push_back(prefix);
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

    /// Resolves up to `limit` dirty prefixes with `resolve` (the RIB's current best path),
    /// oldest first; `None` when there is nothing to hand out.
    pub fn take(
        &mut self,
        limit: usize,
        mut resolve: impl FnMut(&IpNet) -> Option<Best>,
    ) -> Option<WatchChunk> {
        if !self.is_ready() {
            return None;
        }
        let mut chunk = WatchChunk::default();
        while chunk.events.len() < limit {
            let Some(prefix) = self.dirty.pop_front() else {
                break;
            };
            self.queued.remove(&prefix);
            let best = resolve(&prefix);
            let in_snapshot = self.snapshot_left > 0;
            self.snapshot_left = self.snapshot_left.saturating_sub(1);
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
        if self.queued.capacity() > KEEP {
            self.queued = HashSet::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn prefix(index: u32) -> IpNet {
        IpNet::new(IpAddr::from([10, (index >> 8) as u8, index as u8, 0]), 24).unwrap()
    }

    fn best(med: u32) -> Best {
        let attributes = PathAttributes {
            med: Some(med),
            ..PathAttributes::default()
        };
        (vec![IpAddr::from([192, 0, 2, 2])], Arc::new(attributes))
    }

    fn med(event: &BestEvent) -> Option<u32> {
        event
            .best
            .as_ref()
            .and_then(|(_, attributes)| attributes.med)
    }

    /// Takes everything; returns the chunks' snapshot flags and the events.
    fn drain(
        watcher: &mut Watcher,
        rib: &HashMap<IpNet, u32>,
        limit: usize,
    ) -> (Vec<bool>, Vec<BestEvent>) {
        let mut flags = Vec::new();
        let mut events = Vec::new();
        while let Some(chunk) = watcher.take(limit, |p| rib.get(p).map(|m| best(*m))) {
            flags.push(chunk.snapshot_done);
            events.extend(chunk.events);
        }
        (flags, events)
    }

    #[test]
    fn churn_while_not_reading_leaves_one_entry_per_prefix_with_the_final_state() {
        let mut rib: HashMap<IpNet, u32> = HashMap::new();
        let mut watcher = Watcher::with_snapshot([]);
        assert_eq!(drain(&mut watcher, &rib, 8).0, vec![true]);
        for round in 0..1000 {
            for index in 0..100 {
                rib.insert(prefix(index), round);
                watcher.mark(prefix(index));
                if index % 2 == 0 {
                    rib.remove(&prefix(index));
                    watcher.mark(prefix(index));
                }
            }
        }
        assert_eq!(watcher.pending(), 100);
        let (flags, events) = drain(&mut watcher, &rib, 8);
        assert!(flags.iter().all(|done| !done));
        assert_eq!(events.len(), 100);
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event.prefix, prefix(index as u32));
            let expected = (index % 2 == 1).then_some(999);
            assert_eq!(med(event), expected, "{}", event.prefix);
        }
        assert!(!watcher.is_ready());
    }

    #[test]
    fn snapshot_comes_first_coalesced_and_ends_with_snapshot_done() {
        let mut rib: HashMap<IpNet, u32> = (0..10).map(|i| (prefix(i), 1)).collect();
        let mut watcher = Watcher::with_snapshot((0..10).map(prefix));
        // Before the snapshot is read: 3 changes, 4 goes away, 20 is new.
        rib.insert(prefix(3), 2);
        watcher.mark(prefix(3));
        rib.remove(&prefix(4));
        watcher.mark(prefix(4));
        rib.insert(prefix(20), 5);
        watcher.mark(prefix(20));
        let (flags, events) = drain(&mut watcher, &rib, 4);
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
        watcher.mark(prefix(0));
        rib.remove(&prefix(0));
        let (_, events) = drain(&mut watcher, &rib, 4);
        assert_eq!(events.len(), 1);
        assert!(events[0].best.is_none());
    }

    #[test]
    fn an_empty_snapshot_is_one_empty_chunk_with_snapshot_done() {
        let mut watcher = Watcher::with_snapshot([]);
        let chunk = watcher.take(8, |_| None).unwrap();
        assert!(chunk.snapshot_done && chunk.events.is_empty());
        assert!(watcher.take(8, |_| None).is_none());
    }
}
