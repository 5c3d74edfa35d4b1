//! Tests of best-path selection and ECMP (no I/O). Peer 1 always has the lower router id and
//! address, so each test's winner is peer 2 unless the rule under test says otherwise.

use super::*;
use crate::message::Origin;
use crate::rib::RouteFilter;

const P: &str = "203.0.113.0/24";

/// Peer 1 (10.1.0.1) and peer 2 (10.1.0.2) with the given ASNs announce `P`.
fn two(asn1: u32, attrs1: PathAttributes, asn2: u32, attrs2: PathAttributes) -> Rib {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", asn1));
    up(&mut rib, 2, config("10.1.0.2", asn2));
    rib.receive(PeerId(1), announce(&[P], attrs1));
    rib.receive(PeerId(2), announce(&[P], attrs2));
    rib
}

fn hops(rib: &Rib) -> Vec<IpAddr> {
    best_hops(rib, P).unwrap()
}

fn winner(rib: &Rib) -> Ipv4Addr {
    best_attrs(rib, P).unwrap().next_hop.unwrap()
}

#[test]
fn highest_local_pref_wins() {
    let a = attrs(&[], "10.1.0.1");
    let b = PathAttributes {
        local_pref: Some(200),
        ..attrs(&[], "10.1.0.2")
    };
    assert_eq!(winner(&two(LOCAL_ASN, a, LOCAL_ASN, b)), ip4("10.1.0.2"));
}

#[test]
fn missing_local_pref_counts_as_100() {
    let a = PathAttributes {
        local_pref: Some(90),
        ..attrs(&[], "10.1.0.1")
    };
    let b = attrs(&[], "10.1.0.2");
    assert_eq!(winner(&two(LOCAL_ASN, a, LOCAL_ASN, b)), ip4("10.1.0.2"));
}

#[test]
fn ebgp_paths_get_local_pref_100() {
    // The eBGP peer's LOCAL_PREF 500 is ignored: the iBGP path with 150 wins.
    let a = PathAttributes {
        local_pref: Some(500),
        ..attrs(&[65001], "10.1.0.1")
    };
    let b = PathAttributes {
        local_pref: Some(150),
        ..attrs(&[65001], "10.1.0.2")
    };
    assert_eq!(winner(&two(65001, a, LOCAL_ASN, b)), ip4("10.1.0.2"));
}

#[test]
fn shortest_as_path_wins() {
    let a = attrs(&[65001, 65003], "10.1.0.1");
    let b = attrs(&[65002], "10.1.0.2");
    assert_eq!(winner(&two(65001, a, 65002, b)), ip4("10.1.0.2"));
}

#[test]
fn lowest_origin_wins() {
    let a = PathAttributes {
        origin: Some(Origin::Incomplete),
        ..attrs(&[65001], "10.1.0.1")
    };
    let b = PathAttributes {
        origin: Some(Origin::Egp),
        ..attrs(&[65002], "10.1.0.2")
    };
    assert_eq!(winner(&two(65001, a, 65002, b)), ip4("10.1.0.2"));
}

#[test]
fn lowest_med_wins_within_a_neighbour_as() {
    let a = PathAttributes {
        med: Some(20),
        ..attrs(&[65001], "10.1.0.1")
    };
    let b = PathAttributes {
        med: Some(10),
        ..attrs(&[65001], "10.1.0.2")
    };
    let rib = two(65001, a, 65001, b);
    assert_eq!(winner(&rib), ip4("10.1.0.2"));
    assert_eq!(hops(&rib), vec![ip("10.1.0.2")]);
}

#[test]
fn med_is_not_compared_across_neighbour_ases() {
    // 3 (AS 65002, MED 5) must not eliminate 2 (AS 65001, MED 10); 2 eliminates 1.
    let mut rib = two(
        65001,
        PathAttributes {
            med: Some(20),
            ..attrs(&[65001], "10.1.0.1")
        },
        65001,
        PathAttributes {
            med: Some(10),
            ..attrs(&[65001], "10.1.0.2")
        },
    );
    up(&mut rib, 3, config("10.1.0.3", 65002));
    let c = PathAttributes {
        med: Some(5),
        ..attrs(&[65002], "10.1.0.3")
    };
    rib.receive(PeerId(3), announce(&[P], c));
    assert_eq!(hops(&rib), vec![ip("10.1.0.2"), ip("10.1.0.3")]);
    assert_eq!(winner(&rib), ip4("10.1.0.2"));
}

#[test]
fn ebgp_wins_over_ibgp() {
    let a = attrs(&[], "10.1.0.1");
    let b = attrs(&[65002], "10.1.0.2");
    let a = PathAttributes {
        as_path: Some(path(&[65009])),
        ..a
    };
    let rib = two(LOCAL_ASN, a, 65002, b);
    assert_eq!(winner(&rib), ip4("10.1.0.2"));
    assert_eq!(
        hops(&rib),
        vec![ip("10.1.0.2")],
        "the iBGP path is not in the ECMP set"
    );
}

#[test]
fn lowest_router_id_wins_and_ties_are_ecmp() {
    let rib = two(
        65001,
        attrs(&[65001], "10.1.0.1"),
        65002,
        attrs(&[65002], "10.1.0.2"),
    );
    assert_eq!(winner(&rib), ip4("10.1.0.1"));
    assert_eq!(hops(&rib), vec![ip("10.1.0.1"), ip("10.1.0.2")]);
}

#[test]
fn originator_id_replaces_router_id() {
    let a = PathAttributes {
        originator_id: Some(ip4("10.9.9.9")),
        ..attrs(&[], "10.1.0.1")
    };
    let b = attrs(&[], "10.1.0.2");
    assert_eq!(winner(&two(LOCAL_ASN, a, LOCAL_ASN, b)), ip4("10.1.0.2"));
}

#[test]
fn shortest_cluster_list_wins() {
    let id = ip4("10.5.5.5");
    let a = PathAttributes {
        originator_id: Some(id),
        cluster_list: vec![ip4("10.7.0.1"), ip4("10.7.0.2")],
        ..attrs(&[], "10.1.0.1")
    };
    let b = PathAttributes {
        originator_id: Some(id),
        cluster_list: vec![ip4("10.7.0.3")],
        ..attrs(&[], "10.1.0.2")
    };
    assert_eq!(winner(&two(LOCAL_ASN, a, LOCAL_ASN, b)), ip4("10.1.0.2"));
}

#[test]
fn lowest_peer_address_wins() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.9", LOCAL_ASN));
    up(&mut rib, 2, config("10.1.0.2", LOCAL_ASN));
    let same = |hop| SessionInfo {
        peer_router_id: ip4("10.8.8.8"),
        ..session(hop)
    };
    rib.peer_up(PeerId(1), same("0.0.0.0"));
    rib.peer_up(PeerId(2), same("0.0.0.0"));
    rib.receive(PeerId(1), announce(&[P], attrs(&[], "10.1.0.1")));
    rib.receive(PeerId(2), announce(&[P], attrs(&[], "10.1.0.2")));
    assert_eq!(winner(&rib), ip4("10.1.0.2"));
}

#[test]
fn ecmp_next_hops_are_deduplicated_and_sorted() {
    let mut rib = two(
        65001,
        attrs(&[65001], "10.1.0.9"),
        65002,
        attrs(&[65002], "10.1.0.2"),
    );
    up(&mut rib, 3, config("10.1.0.3", 65003));
    let out = rib.receive(PeerId(3), announce(&[P], attrs(&[65003], "10.1.0.9")));
    assert!(out.is_empty(), "same best, same next hops: {out:?}");
    assert_eq!(hops(&rib), vec![ip("10.1.0.2"), ip("10.1.0.9")]);
}

#[test]
fn originated_route_wins_and_is_hidden_from_the_agent() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    assert!(agent(&rib, &out, P).unwrap().is_some());
    let out = rib.originate(net(P), vec![], vec![]);
    assert_eq!(
        agent(&rib, &out, P),
        Some(None),
        "the learned best is withdrawn from the agent"
    );
    assert_eq!(best_hops(&rib, P), None);
    assert_eq!(rib.len(), 1);
    let out = rib.withdraw_originated(net(P));
    assert_eq!(
        agent(&rib, &out, P).unwrap().unwrap().0,
        vec![ip("10.1.0.1")]
    );
}

#[test]
fn unchanged_best_is_not_reported_again() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn listings_name_the_peer_of_each_best_path_and_filter_by_prefix() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    let learned = ["10.2.0.0/16", "10.2.0.0/24", "10.2.0.128/25", "10.3.0.0/24"];
    rib.receive(PeerId(1), announce(&learned, attrs(&[65001], "10.1.0.1")));
    rib.originate(net("10.50.0.0/24"), vec![], vec![]);
    let listed = |filter: RouteFilter| {
        let mut prefixes = rib.route_prefixes(&filter);
        prefixes.sort();
        prefixes.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(listed(RouteFilter::All).len(), 5);
    assert_eq!(
        listed(RouteFilter::Covering(net("10.2.0.200/32"))),
        ["10.2.0.0/16", "10.2.0.0/24", "10.2.0.128/25"]
    );
    assert_eq!(
        listed(RouteFilter::CoveredBy(net("10.2.0.0/24"))),
        ["10.2.0.0/24", "10.2.0.128/25"]
    );
    assert_eq!(
        listed(RouteFilter::Exact(net("10.2.0.0/24"))),
        ["10.2.0.0/24"]
    );
    assert!(listed(RouteFilter::Exact(net("10.2.1.0/24"))).is_empty());

    let routes = rib.routes(&[net("10.3.0.0/24"), net("10.50.0.0/24"), net("10.9.0.0/24")]);
    assert_eq!(routes.len(), 2, "a prefix without a route is left out");
    assert_eq!(routes[0].peer, Some((ip("10.1.0.1"), 65001)));
    assert_eq!(routes[0].next_hops, vec![ip("10.1.0.1")]);
    assert_eq!(routes[1].peer, None, "originated here");
    assert!(routes[1].next_hops.is_empty());
}
