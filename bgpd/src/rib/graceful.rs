//! Removing a peer's routes, no I/O: on session loss (or, as graceful restart helper
//! (RFC 4724), marking them stale and keeping them selectable), on the peer's End-of-RIB
//! (its routes of that family still stale are withdrawn), when it comes back without the
//! forwarding state of a family, and when its restart time expires.

use super::best;
use super::table::{Path, PeerIndex};
use super::{PeerId, Position, Rib, RibOutput, SessionInfo};
use crate::message::Family;

/// RFC 4724 §4.2: routes of the families the peer's last graceful restart capability listed
/// are kept, marked stale; those of other families are removed at once.
pub(crate) fn peer_down(rib: &mut Rib, peer: PeerId, keep_stale: bool) -> Vec<RibOutput> {
    let Some((index, state)) = rib.state.peers.by_id_mut(peer) else {
        return Vec::new();
    };
    let previous = state.session.take();
    state.adj_out.clear();
    state.pending.clear();
    if !keep_stale {
        return remove_index(rib, index, None, false);
    }
    let restart_families: Vec<Family> = match &previous {
        Some(session) => session
            .graceful_restart
            .iter()
            .flatten()
            .map(|(family, _)| *family)
            .collect(),
        // Down again before coming up: what is stale stays so.
        None => state.stale_families.clone(),
    };
    let mut families = Vec::new();
    let mut flush = Vec::new();
    for (prefix, paths) in rib.table.iter_family_mut(None) {
        let family = Family::of(&prefix);
        let kept = restart_families.contains(&family);
        for path in paths
            .as_mut_slice()
            .iter_mut()
            .filter(|path| path.peer == index)
        {
            let list = if kept { &mut families } else { &mut flush };
            if !list.contains(&family) {
                list.push(family);
            }
            path.stale = kept;
        }
    }
    if let Some(state) = rib.state.peers.get_mut(index) {
        state.stale_families = families;
    }
    let mut out = Vec::new();
    for family in flush {
        out.extend(remove_index(rib, index, Some(family), false));
    }
    out
}

/// RFC 4724 §4.2, on re-establishment: stale routes of a family the new capability does not
/// list, or lists without the Forwarding State bit, are removed at once (all of them when the
/// capability is absent).
pub(crate) fn peer_reestablished(
    rib: &mut Rib,
    index: PeerIndex,
    session: &SessionInfo,
) -> Vec<RibOutput> {
    let Some(state) = rib.state.peers.get(index) else {
        return Vec::new();
    };
    let forwarding = |family: &Family| {
        session
            .graceful_restart
            .iter()
            .flatten()
            .any(|(listed, preserved)| listed == family && *preserved)
    };
    let flush: Vec<Family> = state
        .stale_families
        .iter()
        .filter(|family| !forwarding(family))
        .copied()
        .collect();
    let mut out = Vec::new();
    for family in flush {
        out.extend(remove_index(rib, index, Some(family), true));
    }
    out
}

/// Removes the routes of `peer` (of one family, or all; only stale ones, or all).
pub(crate) fn remove_routes(
    rib: &mut Rib,
    peer: PeerId,
    family: Option<Family>,
    only_stale: bool,
) -> Vec<RibOutput> {
    match rib.state.peers.by_id(peer) {
        Some((index, _)) => remove_index(rib, index, family, only_stale),
        None => Vec::new(),
    }
}

pub(crate) fn remove_index(
    rib: &mut Rib,
    index: PeerIndex,
    family: Option<Family>,
    only_stale: bool,
) -> Vec<RibOutput> {
    let Some(peer) = rib.state.peers.get_mut(index) else {
        return Vec::new();
    };
    let stale_in = |family: &Family| peer.stale_families.contains(family);
    if only_stale && !family.map_or(!peer.stale_families.is_empty(), |f| stale_in(&f)) {
        return Vec::new();
    }
    match family {
        Some(family) => peer.stale_families.retain(|f| *f != family),
        None => peer.stale_families.clear(),
    }
    rib.state.begin();
    let Rib { table, state } = rib;
    let doomed = |path: &Path| path.peer == index && (!only_stale || path.stale);
    let mut out = Vec::new();
    let (mut removed, mut emptied) = (0, false);
    for (prefix, paths) in table.iter_family_mut(family) {
        if !paths.as_slice().iter().any(doomed) {
            continue;
        }
        let old = best::select(paths.as_slice(), &state.peers);
        removed += paths.retain(|path| !doomed(path));
        let new = best::select(paths.as_slice(), &state.peers);
        emptied |= paths.is_empty();
        state.finish(
            prefix,
            Position::default(),
            old.as_ref(),
            new.as_ref(),
            &mut out,
        );
    }
    if emptied {
        table.retain(|paths| !paths.is_empty());
    }
    if let Some(peer) = state.peers.get_mut(index) {
        peer.accepted = peer.accepted.saturating_sub(removed as u64);
    }
    state.flush(&mut out);
    out
}
