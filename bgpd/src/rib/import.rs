//! Import, no I/O: a received UPDATE becomes Adj-RIB-In changes (loop checks, eBGP attribute
//! rules, next hop checks, import policy, add-path keys; a rejected announcement withdraws
//! the path it replaces), then each touched prefix is re-selected once. IPv4 routes may come
//! in MP_REACH, with an IPv6 next hop when RFC 8950 was negotiated. Also locally originated
//! routes. Logs (warn) the routes it ignores for a bad next hop or AS_PATH.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;
use tracing::warn;

use super::best::{self, BestView};
use super::checks;
use super::peers::PeerState;
use super::policy::Decision;
use super::table::{Interner, LOCAL, Path, Paths, PeerIndex, Table};
use super::{LocalConfig, PeerId, Position, Rib, RibOutput, graceful};
use crate::message::{AsPath, Family, MpReach, Nlri, Origin, PathAttributes, Update};
use crate::prefix_hash::PrefixHashBuilder;

/// Whether a route came in MP_REACH, and what import policy decided for it.
type PolicyKey = (bool, Decision);

/// One Adj-RIB-In change: `None` withdraws.
type Change = (IpNet, u32, Option<Arc<PathAttributes>>);

pub(crate) fn receive(rib: &mut Rib, peer: PeerId, update: Update) -> Vec<RibOutput> {
    let Some((index, state)) = rib.state.peers.by_id(peer) else {
        return Vec::new();
    };
    if state.session.is_none() {
        return Vec::new();
    }
    if let Some(family) = update.end_of_rib_family() {
        return graceful::remove_index(rib, index, Some(family), true);
    }
    rib.state.begin();
    let announced = update.nlri.len()
        + update
            .attributes
            .mp_reach
            .as_ref()
            .map_or(0, |r| r.nlri.len());
    let state = &mut rib.state;
    let Some(peer) = state.peers.get(index) else {
        return Vec::new();
    };
    let changes = changes(
        update,
        peer,
        &state.local,
        state.cluster_id,
        &mut state.interner,
    );
    if let Some(peer) = state.peers.get_mut(index) {
        peer.received += announced as u64;
    }
    apply(rib, index, changes)
}

/// Decodes an update into changes: withdrawals first, then announcements.
fn changes(
    update: Update,
    peer: &PeerState,
    local: &LocalConfig,
    cluster_id: Ipv4Addr,
    interner: &mut Interner,
) -> Vec<Change> {
    let Update {
        withdrawn,
        mut attributes,
        nlri,
    } = update;
    let known = |family: Family| family == Family::IPV4_UNICAST || family == Family::IPV6_UNICAST;
    let reach = attributes.mp_reach.take().filter(|r| known(r.family));
    let unreach = attributes.mp_unreach.take().filter(|u| known(u.family));
    let session = peer.session.as_ref();
    let add_path = session
        .map(|s| s.add_path_receive.clone())
        .unwrap_or_default();
    let extended_next_hop = session.is_some_and(|s| s.extended_next_hop);
    let key = |family: Family, nlri: &Nlri| {
        let path_id = if add_path.contains(&family) {
            nlri.path_id.unwrap_or(0)
        } else {
            0
        };
        (nlri.prefix.trunc(), path_id)
    };
    let in_family = |family: Family| move |n: &&Nlri| Family::of(&n.prefix) == family;
    let mut changes: Vec<Change> = Vec::new();
    for n in withdrawn.iter().filter(in_family(Family::IPV4_UNICAST)) {
        let (prefix, path_id) = key(Family::IPV4_UNICAST, n);
        changes.push((prefix, path_id, None));
    }
    if let Some(unreach) = &unreach {
        for n in unreach.withdrawn.iter().filter(in_family(unreach.family)) {
            let (prefix, path_id) = key(unreach.family, n);
            changes.push((prefix, path_id, None));
        }
    }
    let base = import_base(attributes, peer, local, cluster_id);
    let own = [
        Some(peer.config.local_address),
        peer.config.local_address_v6.map(IpAddr::V6),
        Some(IpAddr::V4(local.router_id)),
    ];
    let own: Vec<IpAddr> = own.into_iter().flatten().collect();
    let usable = |next_hop: Option<IpAddr>, nlri_count: usize| {
        let next_hop = next_hop?;
        match checks::next_hop_problem(next_hop, &own, peer.config.address.is_loopback()) {
            None => Some(()),
            Some(problem) => {
                warn!(
                    peer = %peer.config.address,
                    %next_hop,
                    prefixes = nlri_count,
                    "ignoring routes: {}",
                    problem.describe()
                );
                None
            }
        }
    };
    let v4_attrs = base.clone().filter(|attrs| {
        !nlri.is_empty() && usable(attrs.next_hop.map(IpAddr::V4), nlri.len()).is_some()
    });
    let reach_attrs = match (&base, &reach) {
        (Some(base), Some(reach))
            if usable(reach.next_hops.first().copied(), reach.nlri.len()).is_some() =>
        {
            reach_attributes(base, reach, extended_next_hop, peer)
        }
        _ => None,
    };
    // The stored attributes per (MP_REACH or not, policy decision): a handful of keys at
    // most, looked up per prefix, so a vector beats hashing.
    let mut accepted: Vec<(PolicyKey, Option<Arc<PathAttributes>>)> = Vec::new();
    let mut announce =
        |family: Family, from_reach: bool, nlri: &Nlri, attrs: Option<&PathAttributes>| {
            let (prefix, path_id) = key(family, nlri);
            let Some(attrs) = attrs else {
                return changes.push((prefix, path_id, None));
            };
            let policy = &peer.config.import;
            let decision = policy.decide(&prefix, attrs, false);
            let key = (from_reach, decision);
            let result = match accepted.iter().find(|(k, _)| *k == key) {
                Some((_, result)) => result.clone(),
                None => {
                    let result = (decision != Decision::Reject).then(|| {
                        let mut attrs = attrs.clone();
                        if let Some(rule) = policy.rule(decision) {
                            rule.apply(&mut attrs, true);
                        }
                        interner.intern(attrs)
                    });
                    accepted.push((key, result.clone()));
                    result
                }
            };
            changes.push((prefix, path_id, result));
        };
    for n in nlri.iter().filter(in_family(Family::IPV4_UNICAST)) {
        announce(Family::IPV4_UNICAST, false, n, v4_attrs.as_ref());
    }
    if let Some(reach) = &reach {
        for n in reach.nlri.iter().filter(in_family(reach.family)) {
            announce(reach.family, true, n, reach_attrs.as_ref());
        }
    }
    changes
}

/// The stored attributes of routes announced in MP_REACH: IPv6 routes keep their next hops in
/// `mp_reach`; IPv4 routes with an IPv4 next hop get a classic NEXT_HOP, with an IPv6 one
/// (RFC 8950, only when negotiated; else treat-as-withdraw, RFC 8950 §4) they keep `mp_reach`.
fn reach_attributes(
    base: &PathAttributes,
    reach: &MpReach,
    extended_next_hop: bool,
    peer: &PeerState,
) -> Option<PathAttributes> {
    let first = reach.next_hops.first().copied()?;
    let mp_reach = || MpReach {
        family: reach.family,
        next_hops: reach.next_hops.clone(),
        nlri: Vec::new(),
    };
    let (next_hop, mp_reach) = match (reach.family == Family::IPV4_UNICAST, first) {
        (true, IpAddr::V4(address)) => (Some(address), None),
        (true, IpAddr::V6(_)) if !extended_next_hop => {
            warn!(
                peer = %peer.config.address,
                next_hop = %first,
                "ignoring IPv4 routes with an IPv6 next hop: extended next hop not negotiated"
            );
            return None;
        }
        _ => (None, Some(mp_reach())),
    };
    Some(PathAttributes {
        next_hop,
        mp_reach,
        ..base.clone()
    })
}

/// The received attributes as stored, or `None` when the route must be dropped: our router id
/// as ORIGINATOR_ID or our cluster id in CLUSTER_LIST (reflection loop), our ASN more than
/// `allow_own_as` times in the AS_PATH of an eBGP route, confederation segments in the AS_PATH
/// of an eBGP route (RFC 7606 §7.2 and RFC 5065 §5.3: treat-as-withdraw; AS4_PATH with them is
/// discarded by the codec, RFC 6793 §6). eBGP routes lose LOCAL_PREF and the reflection
/// attributes (they get LOCAL_PREF 100 in selection).
fn import_base(
    mut attrs: PathAttributes,
    peer: &PeerState,
    local: &LocalConfig,
    cluster_id: Ipv4Addr,
) -> Option<PathAttributes> {
    if attrs.originator_id == Some(local.router_id) || attrs.cluster_list.contains(&cluster_id) {
        return None;
    }
    if !peer.ibgp {
        let own = attrs
            .as_path
            .as_ref()
            .map_or(0, |path| path.count(local.asn));
        if own > usize::from(peer.config.allow_own_as) {
            return None;
        }
        if attrs
            .as_path
            .as_ref()
            .is_some_and(checks::has_confederation_segment)
        {
            warn!(
                peer = %peer.config.address,
                "treat-as-withdraw: AS_PATH from an eBGP peer has confederation segments (RFC 7606 §7.2)"
            );
            return None;
        }
        attrs.local_pref = None;
        attrs.originator_id = None;
        attrs.cluster_list.clear();
    }
    Some(attrs)
}

/// Applies changes of one peer to the Adj-RIB-In, then re-selects each touched prefix once.
fn apply(rib: &mut Rib, index: PeerIndex, changes: Vec<Change>) -> Vec<RibOutput> {
    let Rib { table, state } = rib;
    // Each touched prefix with where its entry was: the re-selection below reads the entries
    // there instead of probing the index again (a removal may move one; then it probes).
    let mut touched: Vec<(IpNet, Position, Option<BestView>)> = Vec::new();
    let mut first_touch = FirstTouch::new(table);
    let (mut added, mut removed) = (0u64, 0u64);
    for (prefix, path_id, attrs) in changes {
        match attrs {
            Some(attrs) => {
                let (paths, position, inserted) = table.entry_or_default(prefix);
                if first_touch.announced(prefix, position, inserted) {
                    // A new entry has no paths, hence no best path.
                    let old = if inserted {
                        None
                    } else {
                        best::select(paths.as_slice(), &state.peers)
                    };
                    touched.push((prefix, position, old));
                }
                let path = Path {
                    attrs,
                    path_id,
                    peer: index,
                    stale: false,
                };
                if paths.upsert(path).is_none() {
                    added += 1;
                }
            }
            None => {
                let first = first_touch.withdrawn(prefix, &touched);
                let Some((paths, position)) = table.get_mut_positioned(&prefix) else {
                    if first {
                        touched.push((prefix, Position::default(), None));
                    }
                    continue;
                };
                if first {
                    let old = best::select(paths.as_slice(), &state.peers);
                    touched.push((prefix, position, old));
                }
                removed += paths.retain(|p| p.peer != index || p.path_id != path_id) as u64;
                if paths.is_empty() {
                    table.remove(&prefix);
                }
            }
        }
    }
    if let Some(peer) = state.peers.get_mut(index) {
        peer.accepted = (peer.accepted + added).saturating_sub(removed);
    }
    let mut out = Vec::new();
    for (prefix, position, old) in touched {
        let new = table
            .get_at(&prefix, position)
            .and_then(|p| best::select(p.as_slice(), &state.peers));
        state.finish(prefix, position, old.as_ref(), new.as_ref(), &mut out);
    }
    state.flush(&mut out);
    out
}

/// Tells whether a change of one update is the first for its prefix (the one that records
/// the old best path), without hashing every prefix of a full table.
///
/// While the update removes nothing, the slab only grows: an entry at or past the slab length
/// the update began with was inserted by this update, and its first change is the one that
/// inserted it; only entries that existed before go through the set. The first withdrawal
/// (which may remove an entry and move another) switches to the set for every prefix, seeded
/// with those touched so far.
pub(super) struct FirstTouch {
    /// The slab lengths (IPv4, IPv6) when the update began.
    before: (u32, u32),
    /// Every prefix goes through `seen` (after a withdrawal).
    exact: bool,
    seen: HashSet<IpNet, PrefixHashBuilder>,
}

impl FirstTouch {
    pub(super) fn new(table: &Table<Paths>) -> Self {
        FirstTouch {
            before: table.slab_lengths(),
            exact: false,
            seen: HashSet::default(),
        }
    }

    /// An announcement of `prefix`, whose entry is at `position` (`inserted` by it).
    pub(super) fn announced(&mut self, prefix: IpNet, position: Position, inserted: bool) -> bool {
        if self.exact {
            return self.seen.insert(prefix);
        }
        let before = match prefix {
            IpNet::V4(_) => self.before.0,
            IpNet::V6(_) => self.before.1,
        };
        if inserted {
            true
        } else if position.0 >= before {
            false
        } else {
            self.seen.insert(prefix)
        }
    }

    /// A withdrawal of `prefix`; `touched` holds every prefix touched so far, once each.
    pub(super) fn withdrawn(
        &mut self,
        prefix: IpNet,
        touched: &[(IpNet, Position, Option<BestView>)],
    ) -> bool {
        if !self.exact {
            self.exact = true;
            self.seen
                .extend(touched.iter().map(|(prefix, _, _)| *prefix));
        }
        self.seen.insert(prefix)
    }
}

/// Originates `prefix` with the given communities, or withdraws it (`None`).
pub(crate) fn originate(
    rib: &mut Rib,
    prefix: IpNet,
    communities: Option<(Vec<u32>, Vec<crate::message::LargeCommunity>)>,
) -> Vec<RibOutput> {
    rib.state.begin();
    let Rib { table, state } = rib;
    let old = table
        .get(&prefix)
        .and_then(|p| best::select(p.as_slice(), &state.peers));
    let position = match communities {
        Some((communities, large_communities)) => {
            let attrs = PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                communities,
                large_communities,
                ..PathAttributes::default()
            };
            let attrs = state.interner.intern(attrs);
            let path = Path {
                attrs,
                path_id: 0,
                peer: LOCAL,
                stale: false,
            };
            let (paths, position) = table.get_or_default(prefix);
            paths.upsert(path);
            position
        }
        None => {
            if let Some(paths) = table.get_mut(&prefix) {
                paths.retain(|path| path.peer != LOCAL);
                if paths.is_empty() {
                    table.remove(&prefix);
                }
            }
            Position::default()
        }
    };
    let new = table
        .get_at(&prefix, position)
        .and_then(|p| best::select(p.as_slice(), &state.peers));
    let mut out = Vec::new();
    state.finish(prefix, position, old.as_ref(), new.as_ref(), &mut out);
    state.flush(&mut out);
    out
}
