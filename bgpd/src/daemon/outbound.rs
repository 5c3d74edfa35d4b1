//! The Adj-RIB-Out changes waiting for one session's writer, coalesced per prefix: memory is
//! bounded by the prefixes sent to the peer, not by how often they change while its TCP does
//! not drain. No I/O (a mutex shared by the RIB thread and the writer task, and a `Notify`).
//!
//! The RIB actor pushes its grouped `Update`s. When nothing else is pending (the writer keeps
//! up) they wait as they are; as soon as a second push finds them still there, everything is
//! split into one pending change per NLRI (latest wins: an announcement then a withdrawal
//! leaves the withdrawal, two announcements leave the latest) plus End-of-RIB markers. So at
//! most one push is held unsplit, and a full table sent to a peer that keeps up costs no
//! per-prefix map. The writer takes everything
//! pending when it is ready to write and regroups it into `Update`s a chunk at a time:
//! withdrawals first, then one `Update` per attribute set. Changes pushed while the writer
//! sends a taken batch go out after it, so the peer ends with the latest state of each prefix,
//! and an End-of-RIB goes out after every change pushed before it. One queue per session: a
//! new session gets a new queue, so nothing of an old session reaches a new one.

use std::{
    collections::{HashMap, hash_map},
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::Notify;

use crate::message::{Family, MpUnreach, Nlri, PathAttributes, Update};
use crate::prefix_hash::PrefixHashBuilder;

/// The pending state of one NLRI.
#[derive(Clone, Debug)]
enum Change {
    /// Announce with these attributes (MP_REACH, if any, without NLRI).
    Announce(Arc<PathAttributes>),
    Withdraw,
}

#[derive(Debug, Default)]
struct Pending {
    /// One push, kept as the RIB grouped it, while nothing else is pending.
    batch: Vec<Update>,
    changes: HashMap<Nlri, Change, PrefixHashBuilder>,
    end_of_rib: Vec<Update>,
}

/// Shared by the RIB actor (which pushes) and the session's writer (which takes).
#[derive(Debug, Default)]
pub struct OutboundQueue {
    pending: Mutex<Pending>,
    ready: Notify,
}

impl OutboundQueue {
    pub fn new() -> Arc<OutboundQueue> {
        Arc::new(OutboundQueue::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the RIB's updates (in order) and wakes the writer.
    pub fn push(&self, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        {
            let mut pending = self.lock();
            if pending.is_empty() {
                pending.batch = updates;
            } else {
                for update in std::mem::take(&mut pending.batch)
                    .into_iter()
                    .chain(updates)
                {
                    pending.add(update);
                }
            }
        }
        self.ready.notify_one();
    }

    /// NLRIs and End-of-RIB markers waiting.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        let pending = self.lock();
        let batch: usize = pending.batch.iter().map(nlri_count).sum();
        batch + pending.changes.len() + pending.end_of_rib.len()
    }

    /// Everything pending, or `None` when nothing is.
    pub fn take(&self) -> Option<Outbound> {
        let mut pending = self.lock();
        if pending.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut *pending);
        Some(Outbound {
            batch: taken.batch.into_iter(),
            changes: taken.changes.into_iter(),
            end_of_rib: taken.end_of_rib,
        })
    }

    /// Completes when something was pushed since the last wake-up (possibly already taken).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}

/// NLRIs of an update (an End-of-RIB counts one).
fn nlri_count(update: &Update) -> usize {
    let attributes = &update.attributes;
    let reach = attributes
        .mp_reach
        .as_ref()
        .map_or(0, |reach| reach.nlri.len());
    let unreach = attributes
        .mp_unreach
        .as_ref()
        .map_or(0, |u| u.withdrawn.len());
    (update.nlri.len() + update.withdrawn.len() + reach + unreach).max(1)
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.changes.is_empty() && self.end_of_rib.is_empty()
    }

    fn add(&mut self, update: Update) {
        if update.end_of_rib_family().is_some() {
            self.end_of_rib.push(update);
            return;
        }
        let Update {
            withdrawn,
            mut attributes,
            nlri,
        } = update;
        // Withdrawals of an UPDATE come before its announcements (RFC 4271 §3.1).
        let unreach = attributes.mp_unreach.take();
        let mp_withdrawn = unreach.map(|unreach| unreach.withdrawn).unwrap_or_default();
        for nlri in withdrawn.into_iter().chain(mp_withdrawn) {
            self.changes.insert(nlri, Change::Withdraw);
        }
        let mp_nlri = attributes
            .mp_reach
            .as_mut()
            .map(|reach| std::mem::take(&mut reach.nlri))
            .unwrap_or_default();
        if nlri.is_empty() && mp_nlri.is_empty() {
            return;
        }
        let template = Arc::new(attributes);
        for nlri in nlri.into_iter().chain(mp_nlri) {
            self.changes
                .insert(nlri, Change::Announce(Arc::clone(&template)));
        }
    }
}

/// A batch taken from the queue, handed out as `Update`s a chunk at a time.
#[derive(Debug)]
pub struct Outbound {
    batch: std::vec::IntoIter<Update>,
    changes: hash_map::IntoIter<Nlri, Change>,
    end_of_rib: Vec<Update>,
}

impl Outbound {
    /// An unsplit push first (whole updates, about `limit` NLRIs at a time), then up to
    /// `limit` NLRIs grouped into updates; once those are out, the End-of-RIB markers; then
    /// nothing (an empty vector).
    pub fn next_updates(&mut self, limit: usize) -> Vec<Update> {
        let mut batch = Vec::new();
        let mut count = 0;
        while count < limit
            && let Some(update) = self.batch.next()
        {
            count += nlri_count(&update);
            batch.push(update);
        }
        if !batch.is_empty() {
            return batch;
        }
        let mut withdrawn_v4 = Vec::new();
        let mut withdrawn_mp: Vec<(Family, Vec<Nlri>)> = Vec::new();
        let mut groups: Vec<(Arc<PathAttributes>, Vec<Nlri>)> = Vec::new();
        let mut group_of: HashMap<usize, usize, PrefixHashBuilder> = HashMap::default();
        for (nlri, change) in self.changes.by_ref().take(limit) {
            match change {
                Change::Withdraw => match Family::of(&nlri.prefix) {
                    Family::IPV4_UNICAST => withdrawn_v4.push(nlri),
                    family => match withdrawn_mp.iter_mut().find(|(f, _)| *f == family) {
                        Some((_, list)) => list.push(nlri),
                        None => withdrawn_mp.push((family, vec![nlri])),
                    },
                },
                Change::Announce(attributes) => {
                    let key = Arc::as_ptr(&attributes) as usize;
                    let group = *group_of.entry(key).or_insert_with(|| {
                        groups.push((attributes, Vec::new()));
                        groups.len() - 1
                    });
                    groups[group].1.push(nlri);
                }
            }
        }
        let mut updates = Vec::new();
        if !withdrawn_v4.is_empty() {
            updates.push(Update {
                withdrawn: withdrawn_v4,
                ..Update::default()
            });
        }
        for (family, withdrawn) in withdrawn_mp {
            updates.push(Update {
                attributes: PathAttributes {
                    mp_unreach: Some(MpUnreach { family, withdrawn }),
                    ..PathAttributes::default()
                },
                ..Update::default()
            });
        }
        for (attributes, nlri) in groups {
            let mut attributes = PathAttributes::clone(&attributes);
            let update = match &mut attributes.mp_reach {
                Some(reach) => {
                    reach.nlri = nlri;
                    Update {
                        attributes,
                        ..Update::default()
                    }
                }
                None => Update {
                    attributes,
                    nlri,
                    ..Update::default()
                },
            };
            updates.push(update);
        }
        if updates.is_empty() {
            updates = std::mem::take(&mut self.end_of_rib);
        }
        updates
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, net::IpAddr};

    use ipnet::IpNet;

    use super::*;
    use crate::message::MpReach;

    fn nlri(prefix: IpNet) -> Nlri {
        Nlri {
            prefix,
            path_id: None,
        }
    }

    fn v4(index: u32) -> IpNet {
        IpNet::new(IpAddr::from([10, (index >> 8) as u8, index as u8, 0]), 24).unwrap()
    }

    fn v6(index: u32) -> IpNet {
        format!("2001:db8:{index:x}::/48").parse().unwrap()
    }

    fn announce(prefixes: &[IpNet], med: u32) -> Vec<Update> {
        let (four, six): (Vec<IpNet>, Vec<IpNet>) =
            prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
        let mut updates = vec![Update {
            attributes: PathAttributes {
                next_hop: Some([192, 0, 2, 1].into()),
                med: Some(med),
                ..PathAttributes::default()
            },
            nlri: four.into_iter().map(nlri).collect(),
            ..Update::default()
        }];
        updates.push(Update {
            attributes: PathAttributes {
                med: Some(med),
                mp_reach: Some(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hops: vec!["2001:db8::1".parse().unwrap()],
                    nlri: six.into_iter().map(nlri).collect(),
                }),
                ..PathAttributes::default()
            },
            ..Update::default()
        });
        updates
    }

    fn withdraw(prefixes: &[IpNet]) -> Vec<Update> {
        let (four, six): (Vec<IpNet>, Vec<IpNet>) =
            prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)));
        let mut updates = vec![Update {
            withdrawn: four.into_iter().map(nlri).collect(),
            ..Update::default()
        }];
        if !six.is_empty() {
            updates.push(Update {
                attributes: PathAttributes {
                    mp_unreach: Some(MpUnreach {
                        family: Family::IPV6_UNICAST,
                        withdrawn: six.into_iter().map(nlri).collect(),
                    }),
                    ..PathAttributes::default()
                },
                ..Update::default()
            });
        }
        updates
    }

    /// Applies updates as a peer would: prefix -> MED of its route, or absent.
    fn apply(state: &mut BTreeMap<IpNet, u32>, updates: &[Update]) {
        for update in updates {
            let attributes = &update.attributes;
            let unreach = attributes.mp_unreach.iter().flat_map(|u| &u.withdrawn);
            for nlri in update.withdrawn.iter().chain(unreach) {
                state.remove(&nlri.prefix);
            }
            let reach = attributes.mp_reach.iter().flat_map(|r| &r.nlri);
            for nlri in update.nlri.iter().chain(reach) {
                state.insert(nlri.prefix, attributes.med.unwrap());
            }
        }
    }

    #[test]
    fn churn_while_not_draining_leaves_one_change_per_prefix_with_the_final_state() {
        let queue = OutboundQueue::new();
        let prefixes: Vec<IpNet> = (0..200).map(v4).chain((0..200).map(v6)).collect();
        let even: Vec<IpNet> = prefixes.iter().copied().step_by(2).collect();
        for round in 0..1000 {
            queue.push(announce(&prefixes, round));
            queue.push(withdraw(&even));
        }
        queue.push(vec![
            Update::end_of_rib(Family::IPV4_UNICAST),
            Update::end_of_rib(Family::IPV6_UNICAST),
        ]);
        assert_eq!(queue.pending(), prefixes.len() + 2);

        let mut peer = BTreeMap::new();
        let mut taken = queue.take().unwrap();
        let mut sent = Vec::new();
        loop {
            let updates = taken.next_updates(64);
            if updates.is_empty() {
                break;
            }
            sent.extend(updates);
        }
        assert!(queue.take().is_none());
        // The End-of-RIB markers come last.
        let markers: Vec<_> = sent.iter().map(|u| u.end_of_rib_family()).collect();
        let first_marker = markers.iter().position(Option::is_some).unwrap();
        assert_eq!(first_marker, sent.len() - 2);
        apply(&mut peer, &sent);
        let expected: BTreeMap<IpNet, u32> = prefixes
            .iter()
            .skip(1)
            .step_by(2)
            .map(|prefix| (*prefix, 999))
            .collect();
        assert_eq!(peer, expected);
    }

    #[test]
    fn a_push_that_finds_nothing_pending_goes_out_unchanged() {
        let queue = OutboundQueue::new();
        let mut pushed = announce(&[v4(1), v4(2), v6(1)], 7);
        pushed.push(Update::end_of_rib(Family::IPV4_UNICAST));
        queue.push(pushed.clone());
        let mut taken = queue.take().unwrap();
        let mut sent = Vec::new();
        loop {
            let updates = taken.next_updates(1);
            if updates.is_empty() {
                break;
            }
            sent.extend(updates);
        }
        assert_eq!(sent, pushed);
    }

    #[test]
    fn changes_pushed_during_a_send_go_out_after_it() {
        let queue = OutboundQueue::new();
        queue.push(announce(&[v4(1)], 1));
        let mut first = queue.take().unwrap();
        queue.push(withdraw(&[v4(1)]));
        let mut peer = BTreeMap::new();
        apply(&mut peer, &first.next_updates(10));
        assert_eq!(peer.get(&v4(1)), Some(&1));
        apply(&mut peer, &queue.take().unwrap().next_updates(10));
        assert!(peer.is_empty());
    }
}
