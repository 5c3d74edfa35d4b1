//! Tests of export (no I/O): eBGP/iBGP attribute rules, split horizon, route reflection,
//! Adj-RIB-Out diffs, grouping, IPv6, peer up, route refresh, RFC 8212.

use super::*;
use crate::rib::{PolicyRule, PrefixMatch};

const P: &str = "10.10.0.0/16";

/// Peer 1 eBGP (AS 65001, source), 2 eBGP (AS 65002), 3 iBGP, 4 iBGP.
fn rib4() -> Rib {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    up(&mut rib, 2, config("10.2.0.1", 65002));
    up(&mut rib, 3, config("10.3.0.1", LOCAL_ASN));
    up(&mut rib, 4, config("10.4.0.1", LOCAL_ASN));
    rib
}

fn only(out: &[RibOutput], peer: u32) -> PathAttributes {
    let routes = announced(out, peer);
    assert_eq!(routes.len(), 1, "{out:?}");
    routes[0].1.clone()
}

#[test]
fn ebgp_export_prepends_sets_next_hop_and_strips() {
    let mut rib = rib4();
    let learned = PathAttributes {
        med: Some(50),
        ..attrs(&[65001], "10.1.0.1")
    };
    let out = rib.receive(PeerId(1), announce(&[P], learned));
    let sent = only(&out, 2);
    assert_eq!(sent.as_path, Some(path(&[LOCAL_ASN, 65001])));
    assert_eq!(sent.next_hop, Some(ip4("192.0.2.100")));
    assert_eq!((sent.med, sent.local_pref), (None, None));
    assert!(announced(&out, 1).is_empty(), "not sent back to its source");
}

#[test]
fn ebgp_export_keeps_med_set_by_export_policy_and_strips_reflection() {
    let mut rib = new_rib();
    let rule = PolicyRule {
        set_med: Some(7),
        ..PolicyRule::default()
    };
    let export = Policy {
        default_accept: false,
        rules: vec![rule],
    };
    up(
        &mut rib,
        2,
        PeerConfig {
            export,
            ..config("10.2.0.1", 65002)
        },
    );
    up(&mut rib, 3, config("10.3.0.1", LOCAL_ASN));
    let learned = PathAttributes {
        med: Some(50),
        local_pref: Some(300),
        originator_id: Some(ip4("10.9.9.9")),
        cluster_list: vec![ip4("10.8.8.8")],
        ..attrs(&[65001], "10.3.0.9")
    };
    let sent = only(&rib.receive(PeerId(3), announce(&[P], learned)), 2);
    assert_eq!((sent.med, sent.local_pref), (Some(7), None));
    assert_eq!((sent.originator_id, sent.cluster_list.len()), (None, 0));
}

#[test]
fn ibgp_export_keeps_next_hop_and_sets_local_pref() {
    let mut rib = rib4();
    rib.add_peer(
        PeerId(4),
        PeerConfig {
            next_hop_self: true,
            ..config("10.4.0.1", LOCAL_ASN)
        },
    );
    let learned = PathAttributes {
        med: Some(50),
        ..attrs(&[65001], "10.1.0.1")
    };
    let out = rib.receive(PeerId(1), announce(&[P], learned));
    let sent = only(&out, 3);
    assert_eq!(sent.next_hop, Some(ip4("10.1.0.1")));
    assert_eq!((sent.local_pref, sent.med), (Some(100), Some(50)));
    assert_eq!(sent.as_path, Some(path(&[65001])));
    assert_eq!(
        only(&out, 4).next_hop,
        Some(ip4("192.0.2.100")),
        "next-hop-self"
    );
}

#[test]
fn ibgp_routes_are_not_sent_to_ibgp_peers_without_reflection() {
    let mut rib = rib4();
    let out = rib.receive(PeerId(3), announce(&[P], attrs(&[], "10.3.0.1")));
    assert!(sent(&out, 4).is_empty());
    assert_eq!(only(&out, 2).as_path, Some(path(&[LOCAL_ASN])));
    assert!(sent(&out, 3).is_empty());
}

#[test]
fn route_reflection_follows_rfc4456() {
    let mut rib = new_rib();
    let client = |address| PeerConfig {
        route_reflector_client: true,
        ..config(address, LOCAL_ASN)
    };
    up(&mut rib, 1, client("10.1.0.1"));
    up(&mut rib, 2, client("10.2.0.1"));
    up(&mut rib, 3, config("10.3.0.1", LOCAL_ASN));
    up(&mut rib, 4, config("10.4.0.1", LOCAL_ASN));
    let out = rib.receive(
        PeerId(1),
        announce(&["10.10.0.0/16"], attrs(&[], "10.1.0.1")),
    );
    for peer in [2, 3, 4] {
        let reflected = only(&out, peer);
        assert_eq!(reflected.originator_id, Some(ip4("10.1.0.1")));
        assert_eq!(reflected.cluster_list, vec![ip4("10.0.0.1")]);
        assert_eq!(reflected.next_hop, Some(ip4("10.1.0.1")));
    }
    let out = rib.receive(
        PeerId(3),
        announce(&["10.20.0.0/16"], attrs(&[], "10.3.0.1")),
    );
    assert_eq!(
        announced(&out, 1).len() + announced(&out, 2).len(),
        2,
        "to clients"
    );
    assert!(sent(&out, 4).is_empty(), "not to another non-client");
}

#[test]
fn unchanged_advertisements_are_suppressed() {
    let mut rib = rib4();
    rib.receive(
        PeerId(1),
        announce(
            &[P],
            PathAttributes {
                med: Some(1),
                ..attrs(&[65001], "10.1.0.1")
            },
        ),
    );
    let out = rib.receive(
        PeerId(1),
        announce(
            &[P],
            PathAttributes {
                med: Some(2),
                ..attrs(&[65001], "10.1.0.1")
            },
        ),
    );
    assert!(
        sent(&out, 2).is_empty(),
        "eBGP peer 2 sees no MED: nothing changed for it"
    );
    assert_eq!(only(&out, 3).med, Some(2));
}

#[test]
fn only_advertised_prefixes_are_withdrawn() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    let rule = PolicyRule {
        prefixes: vec![PrefixMatch::exact(net("10.20.0.0/16"))],
        ..PolicyRule::default()
    };
    let export = Policy {
        default_accept: false,
        rules: vec![rule],
    };
    up(
        &mut rib,
        2,
        PeerConfig {
            export,
            ..config("10.2.0.1", 65002)
        },
    );
    let out = rib.receive(
        PeerId(1),
        announce(&[P, "10.20.0.0/16"], attrs(&[65001], "10.1.0.1")),
    );
    assert_eq!(announced(&out, 2).len(), 1);
    assert_eq!(rib.counters(PeerId(2)).advertised, 1);
    let out = rib.receive(PeerId(1), withdraw(&[P, "10.20.0.0/16"]));
    assert_eq!(withdrawn(&out, 2), vec![net("10.20.0.0/16")]);
    assert_eq!(rib.counters(PeerId(2)).advertised, 0);
}

#[test]
fn prefixes_with_the_same_attributes_share_an_update() {
    let mut rib = rib4();
    let prefixes = ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"];
    let out = rib.receive(PeerId(1), announce(&prefixes, attrs(&[65001], "10.1.0.1")));
    let updates = sent(&out, 2);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].nlri.len(), 3);
    rib.originate(net("10.9.0.0/16"), vec![], vec![]);
    rib.add_peer(PeerId(5), config("10.5.0.1", 65005));
    let info = SessionInfo {
        families: vec![Family::IPV4_UNICAST],
        ..session("10.5.0.1")
    };
    let updates = sent(&rib.peer_up(PeerId(5), info), 5);
    assert_eq!(
        updates.len(),
        3,
        "two attribute sets and the End-of-RIB: {updates:?}"
    );
}

#[test]
fn ipv6_routes_are_exported_in_mp_reach_with_our_v6_next_hop() {
    let mut rib = rib4();
    let update = announce_v6(
        &["2001:db8:1::/48"],
        attrs(&[65001], "0.0.0.0"),
        "2001:db8::1",
    );
    let out = rib.receive(PeerId(1), update);
    let reach = only(&out, 2).mp_reach.unwrap();
    assert_eq!(reach.next_hops, vec![ip("2001:db8::100")]);
    assert_eq!(
        only(&out, 3).mp_reach.unwrap().next_hops,
        vec![ip("2001:db8::1")]
    );
    let mut unreach = withdraw(&[]);
    unreach.attributes.mp_unreach = Some(crate::message::MpUnreach {
        family: Family::IPV6_UNICAST,
        withdrawn: vec![Nlri {
            prefix: net("2001:db8:1::/48"),
            path_id: None,
        }],
    });
    let out = rib.receive(PeerId(1), unreach);
    assert_eq!(withdrawn(&out, 2), vec![net("2001:db8:1::/48")]);
    assert!(sent(&out, 2)[0].attributes.mp_unreach.is_some());
}

#[test]
fn no_v6_next_hop_means_no_v6_export_to_ebgp() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    up(
        &mut rib,
        2,
        PeerConfig {
            local_address_v6: None,
            ..config("10.2.0.1", 65002)
        },
    );
    let update = announce_v6(
        &["2001:db8:1::/48"],
        attrs(&[65001], "0.0.0.0"),
        "2001:db8::1",
    );
    assert!(sent(&rib.receive(PeerId(1), update), 2).is_empty());
}

#[test]
fn peer_up_sends_the_table_then_end_of_rib_per_family() {
    let mut rib = rib4();
    rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    let out = up(&mut rib, 5, config("10.5.0.1", 65005));
    let updates = sent(&out, 5);
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].nlri[0].prefix, net(P));
    assert_eq!(updates[1], Update::end_of_rib(Family::IPV4_UNICAST));
    assert_eq!(updates[2], Update::end_of_rib(Family::IPV6_UNICAST));
}

#[test]
fn rfc8212_ebgp_peer_with_default_export_gets_nothing() {
    let mut rib = rib4();
    rib.originate(net("10.9.0.0/16"), vec![], vec![]);
    rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    let out = up(
        &mut rib,
        5,
        PeerConfig {
            export: Policy::default(),
            ..config("10.5.0.1", 65005)
        },
    );
    assert!(announced(&out, 5).is_empty());
    assert_eq!(sent(&out, 5).len(), 2, "only the End-of-RIB markers");
}

#[test]
fn route_refresh_resends_the_adj_rib_out() {
    let mut rib = rib4();
    rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    let out = rib.route_refresh(PeerId(2), Family::IPV4_UNICAST);
    assert_eq!(announced(&out, 2).len(), 1);
    assert!(
        rib.route_refresh(PeerId(2), Family::IPV6_UNICAST)
            .is_empty()
    );
}

#[test]
fn originated_routes_are_exported_with_our_next_hop() {
    let mut rib = rib4();
    let out = rib.originate(net("10.9.0.0/16"), vec![42], vec![]);
    let ebgp = only(&out, 2);
    assert_eq!(
        (ebgp.as_path, ebgp.next_hop),
        (Some(path(&[LOCAL_ASN])), Some(ip4("192.0.2.100")))
    );
    let ibgp = only(&out, 3);
    assert_eq!(ibgp.next_hop, Some(ip4("192.0.2.100")));
    assert_eq!((ibgp.local_pref, ibgp.communities), (Some(100), vec![42]));
    let out = rib.withdraw_originated(net("10.9.0.0/16"));
    assert_eq!(withdrawn(&out, 1), vec![net("10.9.0.0/16")]);
}

#[test]
fn an_originated_rule_exports_the_speakers_own_routes_and_nothing_learned() {
    let mut rib = new_rib();
    let export = Policy {
        default_accept: false,
        rules: vec![PolicyRule {
            originated: true,
            ..PolicyRule::default()
        }],
    };
    up(
        &mut rib,
        2,
        PeerConfig {
            export,
            ..config("10.2.0.1", 65002)
        },
    );
    up(&mut rib, 3, config("10.3.0.1", LOCAL_ASN));
    let learned = rib.receive(PeerId(3), announce(&[P], attrs(&[], "10.3.0.1")));
    assert!(
        announced(&learned, 2).is_empty(),
        "a route learned over iBGP is not the speaker's own: {learned:?}"
    );
    let out = rib.originate(net("10.9.0.0/16"), vec![], vec![]);
    assert_eq!(announced(&out, 2).len(), 1, "{out:?}");
}
