//! Export, no I/O: what each peer is sent when a Loc-RIB best path changes (split horizon,
//! route reflection, eBGP/iBGP attribute rules, export policy), the Adj-RIB-Out diff that
//! suppresses unchanged re-advertisements and never withdraws what was not advertised, and
//! the grouping of prefixes with the same attributes into one `Update`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::best::{self, BestView};
use super::checks;
use super::graceful;
use super::peers::PeerState;
use super::policy::Decision;
use super::table::{LOCAL, PeerIndex};
use super::{PeerId, PolicyRule, Position, Rib, RibOutput, SessionInfo, State};
use crate::message::{ExtendedCommunity, Family, MpReach, MpUnreach, Nlri, PathAttributes, Update};

/// Export results are cached per operation under the attributes' address (interned, alive
/// until the next sweep, which only runs between operations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    attrs: usize,
    source: PeerIndex,
    target: PeerIndex,
    family: Family,
    decision: Decision,
}

/// Where the best path came from, copied out of the peer table.
#[derive(Clone, Copy, Debug)]
struct Source {
    index: PeerIndex,
    ibgp: bool,
    rr_client: bool,
    router_id: Ipv4Addr,
}

impl State {
    /// Starts an operation: forgets cached export results, sweeps the interner if due.
    pub(crate) fn begin(&mut self) {
        self.export_cache.clear();
        self.interner.sweep_if_due();
    }

    /// Reports a prefix whose paths changed from `old` to `new` best: to the agent (with
    /// `position`, where its table entry is as far as the caller knows), and to every
    /// established peer whose Adj-RIB-Out changes (queued in `pending`).
    pub(crate) fn finish(
        &mut self,
        prefix: IpNet,
        position: Position,
        old: Option<&BestView>,
        new: Option<&BestView>,
        out: &mut Vec<RibOutput>,
    ) {
        match (old.filter(|b| !b.is_local()), new.filter(|b| !b.is_local())) {
            (Some(old), Some(new)) if old.same_for_agent(new) => {}
            (_, Some(_)) => out.push(RibOutput::BestChanged { prefix, position }),
            (Some(_), None) => out.push(RibOutput::BestWithdrawn { prefix }),
            (None, None) => {}
        }
        match (old, new) {
            (None, None) => {}
            (Some(old), Some(new)) if old.same_export(new) => {}
            _ => self.export(prefix, new, None),
        }
    }

    /// Updates the Adj-RIB-Out of every established peer (or only of `only`) for `prefix`.
    fn export(&mut self, prefix: IpNet, best: Option<&BestView>, only: Option<PeerIndex>) {
        let family = Family::of(&prefix);
        let source = best.map(|best| {
            let peer = self.peers.get(best.peer);
            Source {
                index: best.peer,
                ibgp: peer.is_some_and(|peer| peer.ibgp),
                rr_client: peer.is_some_and(|peer| peer.config.route_reflector_client),
                router_id: peer.map_or(Ipv4Addr::UNSPECIFIED, |peer| peer.router_id),
            }
        });
        let State {
            local,
            cluster_id,
            peers,
            interner,
            export_cache,
        } = self;
        for (index, target) in peers.iter_mut() {
            if only.is_some_and(|only| only != index)
                || !target.sends(family)
                || target.exports_nothing()
            {
                continue;
            }
            let new = match (best, source) {
                (Some(best), Some(source)) if may_send(&source, index, target) => {
                    let decision =
                        target
                            .config
                            .export
                            .decide(&prefix, &best.attrs, source.index == LOCAL);
                    let key = CacheKey {
                        attrs: Arc::as_ptr(&best.attrs) as usize,
                        source: source.index,
                        target: index,
                        family,
                        decision,
                    };
                    export_cache
                        .entry(key)
                        .or_insert_with(|| {
                            let rule = target.config.export.rule(decision);
                            let attrs = (decision != Decision::Reject).then(|| {
                                transform(
                                    &best.attrs,
                                    family,
                                    &source,
                                    target,
                                    rule,
                                    local.asn,
                                    *cluster_id,
                                )
                            });
                            attrs.flatten().map(|attrs| interner.intern(attrs))
                        })
                        .clone()
                }
                _ => None,
            };
            if new.is_none() && target.adj_out.is_empty() {
                // Nothing to send and nothing sent (the source peer during a full table).
                continue;
            }
            let unchanged = match (target.adj_out.get(&prefix), &new) {
                (Some(old), Some(new)) => Arc::ptr_eq(old, new),
                (old, new) => old.is_none() && new.is_none(),
            };
            if unchanged {
                continue;
            }
            match &new {
                Some(attrs) => target.adj_out.insert(prefix, Arc::clone(attrs)),
                None => target.adj_out.remove(&prefix),
            };
            target.pending.push((prefix, new));
        }
    }

    /// Turns the queued Adj-RIB-Out changes of every peer into `Send` outputs.
    pub(crate) fn flush(&mut self, out: &mut Vec<RibOutput>) {
        for (_, peer) in self.peers.iter_mut() {
            if !peer.pending.is_empty() {
                let updates = build_updates(std::mem::take(&mut peer.pending));
                out.push(RibOutput::Send {
                    peer: peer.id,
                    updates,
                });
            }
        }
    }
}

/// Split horizon and route reflection (RFC 4456): not back to the source; iBGP-learned routes
/// reach other iBGP peers only when reflected (from a client to all, from a non-client to
/// clients).
fn may_send(source: &Source, target_index: PeerIndex, target: &PeerState) -> bool {
    if source.index == target_index {
        return false;
    }
    if source.index == LOCAL || !source.ibgp || !target.ibgp {
        return true;
    }
    source.rr_client || target.config.route_reflector_client
}

/// The attributes `target` is sent for a best path with `attrs`, or `None` when it cannot be
/// (no next hop of the family) or must not be (RFC 1997 well-known communities).
fn transform(
    attrs: &PathAttributes,
    family: Family,
    source: &Source,
    target: &PeerState,
    rule: Option<&PolicyRule>,
    local_asn: u32,
    cluster_id: Ipv4Addr,
) -> Option<PathAttributes> {
    if !checks::communities_allow(attrs, target.ibgp) {
        return None;
    }
    let mut out = attrs.clone();
    out.mp_unreach = None;
    let next_hop_self = if target.ibgp {
        if source.index != LOCAL && source.ibgp {
            out.originator_id = Some(attrs.originator_id.unwrap_or(source.router_id));
            out.cluster_list.insert(0, cluster_id);
        }
        out.local_pref = Some(best::local_pref(attrs));
        target.config.next_hop_self || source.index == LOCAL
    } else {
        let as_path = attrs
            .as_path
            .as_ref()
            .map(checks::strip_confederation_segments);
        out.as_path = Some(as_path.unwrap_or_default().prepend(local_asn));
        out.local_pref = None;
        out.med = None;
        out.originator_id = None;
        out.cluster_list.clear();
        true
    };
    if next_hop_self {
        set_next_hop(&mut out, family, target)?;
    } else if family == Family::IPV4_UNICAST && out.mp_reach.is_some() && !extended_next_hop(target)
    {
        // An IPv6 next hop for an IPv4 route needs RFC 8950 on this session.
        return None;
    }
    if let Some(rule) = rule {
        rule.apply(&mut out, target.ibgp);
    }
    if !target.ibgp {
        // RFC 4360 §2: non-transitive extended communities stay inside the AS.
        out.extended_communities
            .retain(ExtendedCommunity::is_transitive);
    }
    Some(out)
}

/// Sets our address on the session as next hop: NEXT_HOP for IPv4 (or, on a session without
/// an IPv4 address that negotiated RFC 8950, our IPv6 address in MP_REACH), MP_REACH for IPv6.
fn set_next_hop(out: &mut PathAttributes, family: Family, target: &PeerState) -> Option<()> {
    let config = &target.config;
    let ipv6 = match (config.local_address_v6, config.local_address) {
        (Some(address), _) | (None, IpAddr::V6(address)) => Some(address),
        (None, IpAddr::V4(_)) => None,
    };
    if family == Family::IPV4_UNICAST {
        if let IpAddr::V4(address) = config.local_address {
            out.next_hop = Some(address);
            out.mp_reach = None;
            return Some(());
        }
        if !extended_next_hop(target) {
            return None;
        }
    }
    out.next_hop = None;
    out.mp_reach = Some(MpReach {
        family,
        next_hops: vec![IpAddr::V6(ipv6?)],
        nlri: Vec::new(),
    });
    Some(())
}

/// Whether the peer's session negotiated RFC 8950 extended next hops.
fn extended_next_hop(target: &PeerState) -> bool {
    target
        .session
        .as_ref()
        .is_some_and(|session| session.extended_next_hop)
}

/// Groups Adj-RIB-Out changes into updates: withdrawals first (IPv4 classic, then IPv6
/// MP_UNREACH), then one update per distinct attribute set in order of first appearance
/// (IPv4 prefixes in the classic NLRI field, or in MP_REACH with an RFC 8950 next hop).
pub(crate) fn build_updates(
    changes: impl IntoIterator<Item = (IpNet, Option<Arc<PathAttributes>>)>,
) -> Vec<Update> {
    let mut withdrawn_v4 = Vec::new();
    let mut withdrawn_v6 = Vec::new();
    let mut groups: Vec<(Arc<PathAttributes>, bool, Vec<Nlri>)> = Vec::new();
    let mut group_of: HashMap<(usize, bool), usize> = HashMap::new();
    for (prefix, attrs) in changes {
        let nlri = Nlri {
            prefix,
            path_id: None,
        };
        let v4 = matches!(prefix, IpNet::V4(_));
        match attrs {
            None if v4 => withdrawn_v4.push(nlri),
            None => withdrawn_v6.push(nlri),
            Some(attrs) => {
                let group = *group_of
                    .entry((Arc::as_ptr(&attrs) as usize, v4))
                    .or_insert_with(|| {
                        groups.push((Arc::clone(&attrs), v4, Vec::new()));
                        groups.len() - 1
                    });
                groups[group].2.push(nlri);
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
    if !withdrawn_v6.is_empty() {
        let unreach = MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: withdrawn_v6,
        };
        let attributes = PathAttributes {
            mp_unreach: Some(unreach),
            ..PathAttributes::default()
        };
        updates.push(Update {
            attributes,
            ..Update::default()
        });
    }
    for (attrs, v4, nlri) in groups {
        let mut attributes = PathAttributes::clone(&attrs);
        if v4 && attributes.mp_reach.is_none() {
            updates.push(Update {
                attributes,
                nlri,
                ..Update::default()
            });
        } else if let Some(reach) = &mut attributes.mp_reach {
            reach.nlri = nlri;
            updates.push(Update {
                attributes,
                ..Update::default()
            });
        }
    }
    updates
}

/// The session came up: drops stale routes the peer no longer preserves (RFC 4724 §4.2),
/// computes the peer's whole Adj-RIB-Out, then End-of-RIB per family.
pub(crate) fn peer_up(rib: &mut Rib, peer: PeerId, session: SessionInfo) -> Vec<RibOutput> {
    let Some((index, _)) = rib.state.peers.by_id(peer) else {
        return Vec::new();
    };
    let mut out = graceful::peer_reestablished(rib, index, &session);
    let Some(state) = rib.state.peers.get_mut(index) else {
        return out;
    };
    let mut families: Vec<Family> = session.families.clone();
    families.retain(|f| *f == Family::IPV4_UNICAST || *f == Family::IPV6_UNICAST);
    families.sort_unstable();
    families.dedup();
    state.router_id = session.peer_router_id;
    state.received = 0;
    state.adj_out.clear();
    state.pending.clear();
    state.session = Some(session);
    rib.state.begin();
    for family in &families {
        for (prefix, paths) in rib.table.iter_family(Some(*family)) {
            if let Some(best) = best::select(paths.as_slice(), &rib.state.peers) {
                rib.state.export(prefix, Some(&best), Some(index));
            }
        }
    }
    let Some(state) = rib.state.peers.get_mut(index) else {
        return out;
    };
    let mut updates = build_updates(std::mem::take(&mut state.pending));
    updates.extend(families.iter().map(|family| Update::end_of_rib(*family)));
    out.push(RibOutput::Send { peer, updates });
    out
}

/// Resends what the peer's Adj-RIB-Out holds for `family`.
pub(crate) fn route_refresh(rib: &mut Rib, peer: PeerId, family: Family) -> Vec<RibOutput> {
    let Some((_, state)) = rib.state.peers.by_id(peer) else {
        return Vec::new();
    };
    if !state.sends(family) {
        return Vec::new();
    }
    let routes = state.adj_out.iter_family(Some(family));
    let updates = build_updates(routes.map(|(prefix, attrs)| (prefix, Some(Arc::clone(attrs)))));
    if updates.is_empty() {
        return Vec::new();
    }
    vec![RibOutput::Send { peer, updates }]
}
