//! Tests of the RFC checks on import and export (no I/O): well-known communities (RFC 1997),
//! confederation segments from and to eBGP peers (RFC 7606 §7.2, RFC 5065 §5.3), martian and
//! own next hops (RFC 4271 §6.3, RFC 7606 §7.3).

use super::*;

const P: &str = "10.10.0.0/16";
const P6: &str = "2001:db8:10::/48";
const NO_EXPORT: u32 = 0xFFFF_FF01;
const NO_ADVERTISE: u32 = 0xFFFF_FF02;
const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;

/// Peer 1 eBGP (AS 65001, source), 2 eBGP (AS 65002), 3 iBGP route-reflector client.
fn rib3() -> Rib {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    up(&mut rib, 2, config("10.2.0.1", 65002));
    let client = PeerConfig {
        route_reflector_client: true,
        ..config("10.3.0.1", LOCAL_ASN)
    };
    up(&mut rib, 3, client);
    rib
}

fn with_community(community: u32) -> PathAttributes {
    PathAttributes {
        communities: vec![65001 << 16 | 7, community],
        ..attrs(&[65001], "10.1.0.1")
    }
}

fn prefixes(out: &[RibOutput], peer: u32) -> Vec<IpNet> {
    announced(out, peer).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn no_export_is_sent_to_ibgp_but_not_to_ebgp() {
    for community in [NO_EXPORT, NO_EXPORT_SUBCONFED] {
        let mut rib = rib3();
        let out = rib.receive(PeerId(1), announce(&[P], with_community(community)));
        assert!(
            prefixes(&out, 2).is_empty(),
            "{community:#x} to eBGP: {out:?}"
        );
        assert_eq!(prefixes(&out, 3), vec![net(P)], "{community:#x} to iBGP");
        assert!(
            agent(&rib, &out, P).is_some(),
            "still a best path for the agent"
        );
    }
}

#[test]
fn no_advertise_is_sent_to_no_peer() {
    let mut rib = rib3();
    let out = rib.receive(PeerId(1), announce(&[P], with_community(NO_ADVERTISE)));
    assert!(prefixes(&out, 2).is_empty(), "{out:?}");
    assert!(prefixes(&out, 3).is_empty(), "{out:?}");
    assert!(agent(&rib, &out, P).is_some());
}

#[test]
fn originated_prefixes_honour_well_known_communities() {
    let mut rib = rib3();
    let out = rib.originate(net(P), vec![NO_EXPORT], Vec::new());
    assert!(prefixes(&out, 2).is_empty(), "{out:?}");
    assert_eq!(prefixes(&out, 3), vec![net(P)]);
    let out = rib.originate(net("10.11.0.0/16"), vec![NO_ADVERTISE], Vec::new());
    assert!(
        sent(&out, 2).is_empty() && sent(&out, 3).is_empty(),
        "{out:?}"
    );
}

#[test]
fn a_route_gaining_no_export_is_withdrawn_from_ebgp_peers() {
    let mut rib = rib3();
    let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    assert_eq!(prefixes(&out, 2), vec![net(P)]);
    let out = rib.receive(PeerId(1), announce(&[P], with_community(NO_EXPORT)));
    assert_eq!(withdrawn(&out, 2), vec![net(P)]);
}

fn confed_path() -> AsPath {
    AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![64512, 64513],
            },
            AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![65001],
            },
            AsSegment {
                kind: SegmentKind::ConfedSet,
                asns: vec![64514],
            },
        ],
    }
}

#[test]
fn confederation_segments_from_an_ebgp_peer_are_treat_as_withdraw() {
    let mut rib = rib3();
    let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
    assert!(agent(&rib, &out, P).is_some());
    let confed = PathAttributes {
        as_path: Some(confed_path()),
        ..attrs(&[], "10.1.0.1")
    };
    let out = rib.receive(PeerId(1), announce(&[P], confed));
    assert_eq!(
        agent(&rib, &out, P),
        Some(None),
        "the earlier path is withdrawn"
    );
    assert_eq!(withdrawn(&out, 2), vec![net(P)]);
    assert!(rib.is_empty());
}

#[test]
fn confederation_segments_are_stripped_towards_ebgp_peers() {
    let mut rib = rib3();
    let confed = PathAttributes {
        as_path: Some(confed_path()),
        ..attrs(&[], "10.3.0.1")
    };
    let out = rib.receive(PeerId(3), announce(&[P], confed));
    assert!(agent(&rib, &out, P).is_some(), "accepted from iBGP");
    let to_ebgp = announced(&out, 2);
    assert_eq!(to_ebgp.len(), 1, "{out:?}");
    assert_eq!(to_ebgp[0].1.as_path, Some(path(&[LOCAL_ASN, 65001])));
}

#[test]
fn martian_next_hops_are_treat_as_withdraw() {
    let martians = [
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.5",
        "239.1.2.3",
        "240.0.0.1",
        "255.255.255.255",
    ];
    for martian in martians {
        let mut rib = rib3();
        rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "10.1.0.1")));
        let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], martian)));
        assert_eq!(agent(&rib, &out, P), Some(None), "{martian}: {out:?}");
        assert_eq!(withdrawn(&out, 2), vec![net(P)], "{martian}");
        assert!(best_hops(&rib, P).is_none(), "{martian}");
        assert_eq!(rib.counters(PeerId(1)).accepted, 0, "{martian}");
    }
}

#[test]
fn martian_ipv6_next_hops_are_treat_as_withdraw() {
    for martian in ["::", "::1", "ff02::1", "ff0e::5"] {
        let mut rib = rib3();
        rib.receive(
            PeerId(1),
            announce_v6(&[P6], attrs(&[65001], "0.0.0.0"), "2001:db8::1"),
        );
        let bad = announce_v6(&[P6], attrs(&[65001], "0.0.0.0"), martian);
        let out = rib.receive(PeerId(1), bad);
        assert_eq!(agent(&rib, &out, P6), Some(None), "{martian}: {out:?}");
        assert!(best_hops(&rib, P6).is_none(), "{martian}");
    }
}

#[test]
fn a_loopback_next_hop_is_allowed_only_on_a_loopback_session() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("127.0.0.2", 65001));
    rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "127.0.0.2")));
    assert_eq!(best_hops(&rib, P), Some(vec![ip("127.0.0.2")]));
    let v6 = announce_v6(&[P6], attrs(&[65001], "0.0.0.0"), "::1");
    rib.receive(PeerId(1), v6);
    assert_eq!(best_hops(&rib, P6), Some(vec![ip("::1")]));
}

#[test]
fn our_own_address_as_next_hop_makes_the_route_unusable() {
    // The session's local address (192.0.2.100), its IPv6 one, and our router id.
    for own in ["192.0.2.100", "10.0.0.1"] {
        let mut rib = rib3();
        let out = rib.receive(PeerId(1), announce(&[P], attrs(&[65001], own)));
        assert_eq!(agent(&rib, &out, P), None, "{own}: not reported: {out:?}");
        assert!(
            sent(&out, 2).is_empty() && sent(&out, 3).is_empty(),
            "{own}"
        );
        assert!(best_hops(&rib, P).is_none(), "{own}");
    }
    let mut rib = rib3();
    let own = announce_v6(&[P6], attrs(&[65001], "0.0.0.0"), "2001:db8::100");
    let out = rib.receive(PeerId(1), own);
    assert_eq!(agent(&rib, &out, P6), None, "{out:?}");
    assert!(best_hops(&rib, P6).is_none());
}

#[test]
fn an_unusable_path_does_not_hide_a_usable_one() {
    let mut rib = rib3();
    up(&mut rib, 4, config("10.4.0.1", 65004));
    rib.receive(
        PeerId(4),
        announce(&[P], attrs(&[65004, 65009], "10.4.0.1")),
    );
    rib.receive(PeerId(1), announce(&[P], attrs(&[65001], "192.0.2.100")));
    assert_eq!(best_hops(&rib, P), Some(vec![ip("10.4.0.1")]));
}
