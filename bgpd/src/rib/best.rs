//! Best-path selection, no I/O (RFC 4271 §9.1.2 with the usual tie-breaks). Locally
//! originated paths win. Otherwise, by elimination as §9.1.2.2 does (MED is only compared
//! within a neighbour AS, which is not a total order): highest LOCAL_PREF (100 when absent),
//! shortest AS_PATH, lowest ORIGIN, lowest MED among paths from the same neighbour AS (0
//! when absent), eBGP over iBGP. What survives is the ECMP set; the best of it has the lowest
//! ORIGINATOR_ID or router id, then shortest CLUSTER_LIST, lowest peer address, path id.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::peers::Peers;
use super::table::{LOCAL, Path, PeerIndex};
use crate::message::{Origin, PathAttributes};

/// The Loc-RIB entry of a prefix: its best path and the next hops of its ECMP set.
#[derive(Clone, Debug)]
pub(crate) struct BestView {
    pub peer: PeerIndex,
    pub attrs: Arc<PathAttributes>,
    /// Empty for a locally originated route.
    pub next_hops: NextHops,
}

/// The next hops of an ECMP set: none or one inline (a prefix with one path, nearly every
/// prefix of a full table: selecting it twice per change allocated twice), more on the heap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHops {
    One(Option<IpAddr>),
    Many(Vec<IpAddr>),
}

impl NextHops {
    pub fn from_vec(mut hops: Vec<IpAddr>) -> NextHops {
        match hops.len() {
            0 | 1 => NextHops::One(hops.pop()),
            _ => NextHops::Many(hops),
        }
    }

    pub fn as_slice(&self) -> &[IpAddr] {
        match self {
            NextHops::One(hop) => hop.as_slice(),
            NextHops::Many(hops) => hops,
        }
    }

    pub fn into_vec(self) -> Vec<IpAddr> {
        match self {
            NextHops::One(hop) => hop.into_iter().collect(),
            NextHops::Many(hops) => hops,
        }
    }
}

impl BestView {
    pub fn is_local(&self) -> bool {
        self.peer == LOCAL
    }

    /// Same path for export purposes (what peers are sent depends on nothing else).
    pub fn same_export(&self, other: &BestView) -> bool {
        self.peer == other.peer && Arc::ptr_eq(&self.attrs, &other.attrs)
    }

    /// Same for the agent: attributes and ECMP next hops.
    pub fn same_for_agent(&self, other: &BestView) -> bool {
        Arc::ptr_eq(&self.attrs, &other.attrs)
            && self.next_hops.as_slice() == other.next_hops.as_slice()
    }
}

/// The next hop of a stored path: NEXT_HOP for IPv4, the first MP_REACH next hop otherwise.
pub(crate) fn next_hop(attrs: &PathAttributes) -> Option<IpAddr> {
    match &attrs.mp_reach {
        Some(reach) => reach.next_hops.first().copied(),
        None => attrs.next_hop.map(IpAddr::V4),
    }
}

pub(crate) fn local_pref(attrs: &PathAttributes) -> u32 {
    attrs.local_pref.unwrap_or(100)
}

pub(crate) fn select(paths: &[Path], peers: &Peers) -> Option<BestView> {
    match paths {
        [] => None,
        [only] => Some(view(only, NextHops::One(next_hop(&only.attrs)))),
        _ => match paths.iter().find(|path| path.peer == LOCAL) {
            Some(local) => Some(view(local, NextHops::One(None))),
            None => select_learned(paths, peers),
        },
    }
}

fn view(path: &Path, next_hops: NextHops) -> BestView {
    let next_hops = if path.peer == LOCAL {
        NextHops::One(None)
    } else {
        next_hops
    };
    BestView {
        peer: path.peer,
        attrs: Arc::clone(&path.attrs),
        next_hops,
    }
}

fn select_learned(paths: &[Path], peers: &Peers) -> Option<BestView> {
    let ebgp = |path: &Path| peers.get(path.peer).is_some_and(|peer| !peer.ibgp);
    let mut set: Vec<&Path> = paths.iter().collect();
    keep_best(&mut set, |path| std::cmp::Reverse(local_pref(&path.attrs)));
    keep_best(&mut set, |path| {
        path.attrs.as_path.as_ref().map_or(0, |p| p.length())
    });
    keep_best(&mut set, |path| {
        path.attrs.origin.unwrap_or(Origin::Incomplete)
    });
    let meds: Vec<(Option<u32>, u32)> = set.iter().map(|path| neighbour_and_med(path)).collect();
    let mut position = 0;
    set.retain(|_| {
        let (asn, med) = meds[position];
        position += 1;
        !meds
            .iter()
            .any(|(other_asn, other_med)| *other_asn == asn && *other_med < med)
    });
    if set.iter().any(|path| ebgp(path)) {
        set.retain(|path| ebgp(path));
    }
    let best = set.iter().min_by_key(|path| tie_break(path, peers))?;
    let mut next_hops: Vec<IpAddr> = set
        .iter()
        .filter_map(|path| next_hop(&path.attrs))
        .collect();
    next_hops.sort_unstable();
    next_hops.dedup();
    Some(view(best, NextHops::from_vec(next_hops)))
}

/// Keeps the paths with the lowest `key`.
fn keep_best<K: Ord>(set: &mut Vec<&Path>, key: impl Fn(&Path) -> K) {
    if let Some(min) = set.iter().map(|path| key(path)).min() {
        set.retain(|path| key(path) == min);
    }
}

fn neighbour_and_med(path: &Path) -> (Option<u32>, u32) {
    let asn = path.attrs.as_path.as_ref().and_then(|p| p.first_asn());
    (asn, path.attrs.med.unwrap_or(0))
}

fn tie_break(path: &Path, peers: &Peers) -> (Ipv4Addr, usize, Option<IpAddr>, u32, PeerIndex) {
    let peer = peers.get(path.peer);
    let router_id = peer.map_or(Ipv4Addr::BROADCAST, |peer| peer.router_id);
    (
        path.attrs.originator_id.unwrap_or(router_id),
        path.attrs.cluster_list.len(),
        peer.map(|peer| peer.config.address),
        path.path_id,
        path.peer,
    )
}
