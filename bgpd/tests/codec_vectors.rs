//! Decodes the messages captured from BIRD 2 and GoBGP (bgpd/tests/vectors, see its README)
//! and checks their values; re-encoding gives the captured bytes back wherever the peer's
//! encoding is the canonical one (all but BIRD's IPv6 UPDATE, which puts MP_REACH first
//! with an extended length). No I/O beyond reading the vector files.

use std::net::{IpAddr, Ipv4Addr};

use manul_bgpd::codec::{CodecContext, Decoded, decode_message, encode_message};
use manul_bgpd::message::{
    AS_TRANS, AddPathMode, AsPath, AsSegment, Capability, Family, LargeCommunity, Message, MpReach,
    MpUnreach, Nlri, Notification, Origin, PathAttributes, SegmentKind, Update,
};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    hex::decode(text.split_whitespace().collect::<String>()).unwrap()
}

/// Decodes a vector (one whole message) and checks that encoding it again gives its bytes.
fn decode(name: &str, context: &CodecContext, canonical: bool) -> Message {
    let bytes = vector(name);
    let message = match decode_message(&bytes, context).unwrap() {
        Some((Decoded::Message(message), used)) if used == bytes.len() => message,
        other => panic!("{name}: {other:?}"),
    };
    if canonical {
        assert_eq!(
            encode_message(&message, context).unwrap(),
            bytes,
            "{name} re-encoded"
        );
    }
    message
}

fn gobgp_context() -> CodecContext {
    CodecContext {
        add_path_receive: vec![Family::IPV4_UNICAST],
        add_path_send: vec![Family::IPV4_UNICAST],
        ..CodecContext::four_octet()
    }
}

fn nlri(text: &str, path_id: Option<u32>) -> Nlri {
    Nlri {
        prefix: text.parse().unwrap(),
        path_id,
    }
}

fn path(asn: u32) -> Option<AsPath> {
    Some(AsPath {
        segments: vec![AsSegment {
            kind: SegmentKind::Sequence,
            asns: vec![asn],
        }],
    })
}

fn community(high: u16, low: u16) -> u32 {
    u32::from(high) << 16 | u32::from(low)
}

fn update(name: &str, context: &CodecContext, canonical: bool) -> Update {
    match decode(name, context, canonical) {
        Message::Update(update) => update,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn bird_open_keepalive_notification() {
    for (session, family) in [
        ("bird_4octet", Family::IPV4_UNICAST),
        ("bird_2octet", Family::IPV4_UNICAST),
        ("bird_ipv6", Family::IPV6_UNICAST),
    ] {
        let Message::Open(open) =
            decode(&format!("{session}_open"), &CodecContext::default(), true)
        else {
            panic!()
        };
        assert_eq!(
            (open.version, open.my_as, open.hold_time),
            (4, AS_TRANS, 90)
        );
        assert_eq!(open.bgp_identifier, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(open.asn(), 4_200_000_001);
        assert_eq!(
            open.capabilities,
            vec![
                Capability::Multiprotocol(family),
                Capability::RouteRefresh,
                Capability::GracefulRestart {
                    restart_state: false,
                    restart_time: 120,
                    families: vec![]
                },
                Capability::FourOctetAs(4_200_000_001),
                Capability::Unknown {
                    code: 70,
                    value: vec![]
                },
                Capability::Unknown {
                    code: 71,
                    value: vec![]
                },
            ]
        );
        assert_eq!(
            decode(
                &format!("{session}_keepalive"),
                &CodecContext::default(),
                true
            ),
            Message::Keepalive
        );
        let cease = Notification {
            code: 6,
            subcode: 2,
            data: vec![],
        };
        assert_eq!(
            decode(
                &format!("{session}_notification"),
                &CodecContext::default(),
                true
            ),
            Message::Notification(cease)
        );
    }
}

fn bird_ipv4_updates(session: &str, context: &CodecContext, next_hop: Ipv4Addr) {
    let first = update(&format!("{session}_update_1"), context, true);
    let expected = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: path(4_200_000_001),
        next_hop: Some(next_hop),
        med: Some(50),
        communities: vec![community(65001, 100), community(65001, 200)],
        large_communities: vec![LargeCommunity {
            global_admin: 4_200_000_001,
            local_data_1: 1,
            local_data_2: 2,
        }],
        ..PathAttributes::default()
    };
    assert_eq!(
        first,
        Update {
            attributes: expected,
            nlri: vec![nlri("10.1.0.0/16", None)],
            ..Update::default()
        }
    );
    let second = update(&format!("{session}_update_2"), context, true);
    assert_eq!(second.nlri, vec![nlri("10.2.3.0/24", None)]);
    assert_eq!(
        (second.attributes.as_path, second.attributes.med),
        (path(4_200_000_001), None)
    );
    let end_of_rib = update(&format!("{session}_update_3"), context, true);
    assert_eq!(end_of_rib.end_of_rib_family(), Some(Family::IPV4_UNICAST));
}

#[test]
fn bird_ipv4_updates_on_a_four_octet_session() {
    bird_ipv4_updates(
        "bird_4octet",
        &CodecContext::four_octet(),
        Ipv4Addr::new(127, 0, 0, 2),
    );
}

#[test]
fn bird_ipv4_updates_on_a_two_octet_session_carry_as4_path() {
    let bytes = hex::encode(vector("bird_2octet_update_1"));
    assert!(
        bytes.contains("40020402015ba0"),
        "AS_PATH [AS_TRANS] as one AS_SEQUENCE"
    );
    assert!(
        bytes.contains("c011060201fa56ea01"),
        "AS4_PATH [4200000001]"
    );
    bird_ipv4_updates(
        "bird_2octet",
        &CodecContext::default(),
        Ipv4Addr::new(127, 0, 0, 3),
    );
}

#[test]
fn bird_ipv6_update_and_end_of_rib() {
    let context = CodecContext::four_octet();
    let first = update("bird_ipv6_update_1", &context, false);
    let expected = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: path(4_200_000_001),
        communities: vec![community(65001, 300)],
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec![IpAddr::V6("2001:db8::1".parse().unwrap())],
            nlri: vec![nlri("2001:db8:1::/48", None)],
        }),
        ..PathAttributes::default()
    };
    assert_eq!(
        first,
        Update {
            attributes: expected,
            ..Update::default()
        }
    );
    let end_of_rib = update("bird_ipv6_update_2", &context, true);
    assert_eq!(
        end_of_rib.attributes.mp_unreach,
        Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![]
        })
    );
    assert_eq!(end_of_rib.end_of_rib_family(), Some(Family::IPV6_UNICAST));
}

#[test]
fn gobgp_open_keepalive_notification() {
    let Message::Open(open) = decode("gobgp_open", &CodecContext::default(), true) else {
        panic!()
    };
    assert_eq!(
        (open.my_as, open.hold_time, open.bgp_identifier),
        (AS_TRANS, 90, Ipv4Addr::new(192, 0, 2, 2))
    );
    assert_eq!(open.asn(), 4_200_000_002);
    assert_eq!(
        open.capabilities,
        vec![
            Capability::RouteRefresh,
            // FQDN (RFC draft, code 73): hostname "vm", empty domain.
            Capability::Unknown {
                code: 73,
                value: vec![2, b'v', b'm', 0]
            },
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::FourOctetAs(4_200_000_002),
            Capability::ExtendedNextHop(vec![(Family::IPV4_UNICAST, 2)]),
            Capability::AddPath(vec![(Family::IPV4_UNICAST, AddPathMode::Both)]),
        ]
    );
    assert_eq!(
        decode("gobgp_keepalive", &CodecContext::default(), true),
        Message::Keepalive
    );
    let cease = Notification {
        code: 6,
        subcode: 2,
        data: vec![],
    };
    assert_eq!(
        decode("gobgp_notification", &CodecContext::default(), true),
        Message::Notification(cease)
    );
}

#[test]
fn gobgp_updates_with_add_path() {
    let context = gobgp_context();
    let first = update("gobgp_update_1", &context, true);
    let expected = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: path(4_200_000_002),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 2)),
        med: Some(70),
        communities: vec![community(65001, 300)],
        large_communities: vec![LargeCommunity {
            global_admin: 4_200_000_002,
            local_data_1: 3,
            local_data_2: 4,
        }],
        ..PathAttributes::default()
    };
    assert_eq!(
        first,
        Update {
            attributes: expected,
            nlri: vec![nlri("10.5.0.0/16", Some(1))],
            ..Update::default()
        }
    );
    let second = update("gobgp_update_2", &context, true);
    assert_eq!(second.nlri, vec![nlri("10.6.0.0/24", Some(1))]);
    assert_eq!(second.attributes.origin, Some(Origin::Incomplete));
    let third = update("gobgp_update_3", &context, true);
    let reach = MpReach {
        family: Family::IPV6_UNICAST,
        next_hops: vec![IpAddr::V6("2001:db8::2".parse().unwrap())],
        nlri: vec![nlri("2001:db8:5::/48", None)],
    };
    assert_eq!(third.attributes.mp_reach, Some(reach));
    assert_eq!(third.attributes.as_path, path(4_200_000_002));
}

/// BIRD's route 10.3.0.0/24 with (rt, 65001, 100), (ro, 192.0.2.1, 7) and (rt, 4200000001, 5);
/// BIRD itself left out the non-transitive (generic, 0x40040000, 1) on this eBGP session.
#[test]
fn bird_update_with_extended_communities() {
    let context = CodecContext::four_octet();
    let update = update("bird_4octet_update_extended_communities", &context, true);
    let texts: Vec<String> = update
        .attributes
        .extended_communities
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(texts, ["rt:65001:100", "ro:192.0.2.1:7", "rt:4200000001:5"]);
    assert!(
        update
            .attributes
            .extended_communities
            .iter()
            .all(|community| community.is_transitive())
    );
    assert_eq!(update.nlri, vec![nlri("10.3.0.0/24", None)]);
    assert!(update.attributes.unknown.is_empty());
}
