//! Tests of RFC 8950 in the RIB (no I/O): IPv4 NLRI with IPv6 next hops in MP_REACH, on
//! receive and on export, only where the capability was negotiated.

use super::*;
use crate::message::MpUnreach;

const P: &str = "10.10.0.0/16";

fn with_extended_next_hop(extended_next_hop: bool) -> SessionInfo {
    SessionInfo {
        extended_next_hop,
        ..session("10.255.0.1")
    }
}

/// Peer `id` on an IPv6-only session (no IPv4 address of ours on it).
fn ipv6_peer(rib: &mut Rib, id: u32, address: &str, asn: u32, extended_next_hop: bool) {
    let config = PeerConfig {
        local_address: ip("2001:db8::100"),
        local_address_v6: None,
        ..config(address, asn)
    };
    rib.add_peer(PeerId(id), config);
    let info = SessionInfo {
        peer_router_id: Ipv4Addr::new(10, 255, 0, id as u8),
        ..with_extended_next_hop(extended_next_hop)
    };
    rib.peer_up(PeerId(id), info);
}

fn ipv4_over_ipv6(prefixes: &[&str], hop: &str) -> Update {
    let mut update = announce_v6(prefixes, attrs(&[65001], "0.0.0.0"), hop);
    if let Some(reach) = &mut update.attributes.mp_reach {
        reach.family = Family::IPV4_UNICAST;
    }
    update
}

#[test]
fn ipv4_routes_with_an_ipv6_next_hop_are_accepted_when_negotiated() {
    let mut rib = new_rib();
    ipv6_peer(&mut rib, 1, "2001:db8::1", 65001, true);
    let out = rib.receive(PeerId(1), ipv4_over_ipv6(&[P], "2001:db8::1"));
    let (hops, _) = agent(&rib, &out, P)
        .expect("reported")
        .expect("a best path");
    assert_eq!(hops, vec![ip("2001:db8::1")]);
    assert_eq!(best_hops(&rib, P), Some(vec![ip("2001:db8::1")]));
    let mut withdrawal = Update::default();
    withdrawal.attributes.mp_unreach = Some(MpUnreach {
        family: Family::IPV4_UNICAST,
        withdrawn: announce(&[P], PathAttributes::default()).nlri,
    });
    let out = rib.receive(PeerId(1), withdrawal);
    assert_eq!(
        agent(&rib, &out, P),
        Some(None),
        "MP_UNREACH for IPv4 withdraws"
    );
}

#[test]
fn ipv4_routes_with_an_ipv6_next_hop_are_refused_without_the_capability() {
    let mut rib = new_rib();
    ipv6_peer(&mut rib, 1, "2001:db8::1", 65001, false);
    let out = rib.receive(PeerId(1), ipv4_over_ipv6(&[P], "2001:db8::1"));
    assert_eq!(agent(&rib, &out, P), None, "{out:?}");
    assert!(rib.is_empty());
}

#[test]
fn ipv4_routes_in_mp_reach_with_an_ipv4_next_hop_are_accepted() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    let update = ipv4_over_ipv6(&[P], "10.1.0.1");
    let out = rib.receive(PeerId(1), update);
    let (hops, attributes) = agent(&rib, &out, P)
        .expect("reported")
        .expect("a best path");
    assert_eq!(hops, vec![ip("10.1.0.1")]);
    assert_eq!(attributes.next_hop, Some(ip4("10.1.0.1")));
    assert_eq!(attributes.mp_reach, None, "stored as a classic NEXT_HOP");
}

#[test]
fn ipv4_routes_go_to_an_ipv6_only_peer_with_our_ipv6_next_hop_when_negotiated() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    ipv6_peer(&mut rib, 2, "2001:db8::2", 65002, true);
    ipv6_peer(&mut rib, 3, "2001:db8::3", 65003, false);
    let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    let updates = sent(&out, 2);
    assert_eq!(updates.len(), 1, "{out:?}");
    assert!(updates[0].nlri.is_empty(), "not in the classic NLRI field");
    let reach = updates[0].attributes.mp_reach.as_ref().expect("MP_REACH");
    assert_eq!(reach.family, Family::IPV4_UNICAST);
    assert_eq!(reach.next_hops, vec![ip("2001:db8::100")]);
    assert_eq!(reach.nlri, announce(&[P], PathAttributes::default()).nlri);
    assert_eq!(updates[0].attributes.next_hop, None);
    assert!(sent(&out, 3).is_empty(), "no IPv4 next hop, no capability");
    let out = rib.receive(PeerId(1), withdraw(&[P]));
    assert_eq!(withdrawn(&out, 2), vec![net(P)]);
}

#[test]
fn an_ipv6_next_hop_is_kept_only_towards_peers_that_negotiated_it() {
    let mut rib = new_rib();
    ipv6_peer(&mut rib, 1, "2001:db8::1", 65001, true);
    let ibgp = |address| config(address, LOCAL_ASN);
    rib.add_peer(PeerId(2), ibgp("10.2.0.1"));
    rib.peer_up(PeerId(2), with_extended_next_hop(true));
    rib.add_peer(PeerId(3), ibgp("10.3.0.1"));
    rib.peer_up(PeerId(3), with_extended_next_hop(false));
    let next_hop_self = PeerConfig {
        next_hop_self: true,
        ..ibgp("10.4.0.1")
    };
    rib.add_peer(PeerId(4), next_hop_self);
    rib.peer_up(PeerId(4), with_extended_next_hop(false));
    let out = rib.receive(PeerId(1), ipv4_over_ipv6(&[P], "2001:db8::1"));
    // iBGP keeps the eBGP next hop: in MP_REACH where negotiated, nowhere else.
    let to_2 = announced(&out, 2);
    assert_eq!(to_2.len(), 1, "{out:?}");
    let reach = to_2[0].1.mp_reach.as_ref().expect("MP_REACH");
    assert_eq!(
        (reach.family, reach.next_hops.clone()),
        (Family::IPV4_UNICAST, vec![ip("2001:db8::1")])
    );
    assert!(announced(&out, 3).is_empty(), "{out:?}");
    // next-hop-self replaces it with our IPv4 session address.
    let to_4 = announced(&out, 4);
    assert_eq!(to_4.len(), 1, "{out:?}");
    assert_eq!(to_4[0].1.next_hop, Some(ip4("192.0.2.100")));
    assert_eq!(to_4[0].1.mp_reach, None);
}
