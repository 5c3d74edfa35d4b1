//! Unit tests of the RIB (no I/O): helpers to build peers and updates and to read outputs.

mod best;
mod export;
mod extended_communities;
mod extended_next_hop;
mod graceful;
mod import;
mod rfc_checks;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::{LocalConfig, PeerConfig, PeerId, Policy, Rib, RibOutput, SessionInfo};
use crate::message::{
    AsPath, AsSegment, Family, MpReach, Nlri, Origin, PathAttributes, SegmentKind, Update,
};

pub(super) const LOCAL_ASN: u32 = 65000;

pub(super) fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

pub(super) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub(super) fn ip4(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

pub(super) fn new_rib() -> Rib {
    Rib::new(LocalConfig {
        asn: LOCAL_ASN,
        router_id: ip4("10.0.0.1"),
        cluster_id: None,
    })
}

/// A peer with accept-all policies; our address on the session is 192.0.2.100 / 2001:db8::100.
pub(super) fn config(address: &str, asn: u32) -> PeerConfig {
    PeerConfig {
        address: ip(address),
        asn,
        route_reflector_client: false,
        next_hop_self: false,
        allow_own_as: 0,
        local_address: ip("192.0.2.100"),
        local_address_v6: Some("2001:db8::100".parse().unwrap()),
        import: Policy::accept_all(),
        export: Policy::accept_all(),
    }
}

pub(super) fn session(router_id: &str) -> SessionInfo {
    SessionInfo {
        peer_router_id: ip4(router_id),
        four_octet_as: true,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        add_path_receive: Vec::new(),
        graceful_restart: Some(vec![
            (Family::IPV4_UNICAST, true),
            (Family::IPV6_UNICAST, true),
        ]),
        extended_next_hop: false,
    }
}

/// Adds peer `id` with `config` and brings it up with router id = its address.
pub(super) fn up(rib: &mut Rib, id: u32, config: PeerConfig) -> Vec<RibOutput> {
    let router_id = match config.address {
        IpAddr::V4(address) => address,
        IpAddr::V6(_) => Ipv4Addr::new(10, 255, 0, id as u8),
    };
    rib.add_peer(PeerId(id), config);
    let info = SessionInfo {
        peer_router_id: router_id,
        ..session("0.0.0.0")
    };
    rib.peer_up(PeerId(id), info)
}

pub(super) fn path(asns: &[u32]) -> AsPath {
    AsPath {
        segments: vec![AsSegment {
            kind: SegmentKind::Sequence,
            asns: asns.to_vec(),
        }],
    }
}

pub(super) fn attrs(asns: &[u32], next_hop: &str) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(path(asns)),
        next_hop: Some(ip4(next_hop)),
        ..PathAttributes::default()
    }
}

pub(super) fn nlri(prefixes: &[&str]) -> Vec<Nlri> {
    prefixes
        .iter()
        .map(|p| Nlri {
            prefix: net(p),
            path_id: None,
        })
        .collect()
}

pub(super) fn announce(prefixes: &[&str], attributes: PathAttributes) -> Update {
    Update {
        withdrawn: Vec::new(),
        attributes,
        nlri: nlri(prefixes),
    }
}

pub(super) fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: nlri(prefixes),
        ..Update::default()
    }
}

pub(super) fn announce_v6(prefixes: &[&str], attributes: PathAttributes, hop: &str) -> Update {
    let reach = MpReach {
        family: Family::IPV6_UNICAST,
        next_hops: vec![ip(hop)],
        nlri: nlri(prefixes),
    };
    let attributes = PathAttributes {
        next_hop: None,
        mp_reach: Some(reach),
        ..attributes
    };
    Update {
        attributes,
        ..Update::default()
    }
}

/// The updates sent to `peer` in `out`.
pub(super) fn sent(out: &[RibOutput], peer: u32) -> Vec<Update> {
    out.iter()
        .filter_map(|o| match o {
            RibOutput::Send { peer: p, updates } if *p == PeerId(peer) => Some(updates.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Prefixes announced to `peer` with their attributes (IPv4 and MP_REACH).
pub(super) fn announced(out: &[RibOutput], peer: u32) -> Vec<(IpNet, PathAttributes)> {
    let mut result = Vec::new();
    for update in sent(out, peer) {
        for n in &update.nlri {
            result.push((n.prefix, update.attributes.clone()));
        }
        for n in update.attributes.mp_reach.iter().flat_map(|r| &r.nlri) {
            result.push((n.prefix, update.attributes.clone()));
        }
    }
    result
}

/// Prefixes withdrawn from `peer` (IPv4 and MP_UNREACH, End-of-RIB excluded).
pub(super) fn withdrawn(out: &[RibOutput], peer: u32) -> Vec<IpNet> {
    let updates = sent(out, peer);
    let v4 = updates.iter().flat_map(|u| &u.withdrawn);
    let v6 = updates
        .iter()
        .flat_map(|u| u.attributes.mp_unreach.iter().flat_map(|m| &m.withdrawn));
    v4.chain(v6).map(|n| n.prefix).collect()
}

/// The agent's view of `prefix` in `out`: `Some(Some(..))` changed (to `rib`'s best path
/// now), `Some(None)` withdrawn.
pub(super) fn agent(
    rib: &Rib,
    out: &[RibOutput],
    prefix: &str,
) -> Option<Option<(Vec<IpAddr>, Arc<PathAttributes>)>> {
    out.iter().rev().find_map(|o| match o {
        RibOutput::BestChanged { prefix: p, .. } if *p == net(prefix) => {
            let best = rib
                .best_path(p)
                .map(|(hops, attrs)| (hops.into_vec(), attrs));
            assert!(
                best.is_some(),
                "{prefix} reported changed without a best path"
            );
            Some(best)
        }
        RibOutput::BestWithdrawn { prefix: p } if *p == net(prefix) => Some(None),
        _ => None,
    })
}

/// The next hops of the current best path of `prefix`.
pub(super) fn best_hops(rib: &Rib, prefix: &str) -> Option<Vec<IpAddr>> {
    rib.best_paths()
        .find(|(p, _, _)| *p == net(prefix))
        .map(|(_, hops, _)| hops)
}

pub(super) fn best_attrs(rib: &Rib, prefix: &str) -> Option<Arc<PathAttributes>> {
    rib.best_paths()
        .find(|(p, _, _)| *p == net(prefix))
        .map(|(_, _, attrs)| attrs)
}

#[test]
fn a_prefix_with_one_path_is_compact() {
    assert_eq!(std::mem::size_of::<super::table::Path>(), 16);
    assert_eq!(std::mem::size_of::<super::table::Paths>(), 16);
}
