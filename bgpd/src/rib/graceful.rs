//! Removing a peer's routes, no I/O: on session loss (or, as graceful restart helper
//! (RFC 4724), marking them stale and keeping them selectable), on the peer's End-of-RIB
//! (its routes of that family still stale are withdrawn) and when its restart time expires.

use super::best;
use super::table::{Path, PeerIndex};
use super::{PeerId, Rib, RibOutput};
use crate::message::Family;

pub(crate) fn peer_down(rib: &mut Rib, peer: PeerId, keep_stale: bool) -> Vec<RibOutput> {
    let Some((index, state)) = rib.state.peers.by_id_mut(peer) else {
        return Vec::new();
    };
    state.session = None;
    state.adj_out.clear();
    state.pending.clear();
    if !keep_stale {
        return remove_index(rib, index, None, false);
    }
    let mut families = Vec::new();
    for (prefix, paths) in rib.table.iter_family_mut(None) {
        for path in paths
            .as_mut_slice()
            .iter_mut()
            .filter(|path| path.peer == index)
        {
            path.stale = true;
            let family = Family::of(&prefix);
            if !families.contains(&family) {
                families.push(family);
            }
        }
    }
    if let Some(state) = rib.state.peers.get_mut(index) {
        state.stale_families = families;
    }
    Vec::new()
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
        state.finish(prefix, old.as_ref(), new.as_ref(), &mut out);
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
