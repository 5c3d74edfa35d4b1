//! `encode_update_split`: big updates become several messages of at most 4096 bytes that
//! decode back to the same prefixes, with the attributes repeated. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::decode;
use crate::codec::{CodecContext, Decoded, MAX_MESSAGE_LEN, encode_message, encode_update_split};
use crate::message::{
    AsPath, Family, Message, MpReach, MpUnreach, Nlri, Origin, PathAttributes, Update,
};

fn ipv4_prefixes(count: u32, path_id: Option<u32>) -> Vec<Nlri> {
    (0..count)
        .map(|i| Nlri {
            prefix: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()),
            path_id,
        })
        .collect()
}

fn ipv6_prefixes(count: u32) -> Vec<Nlri> {
    (0..count)
        .map(|i| Nlri {
            prefix: IpNet::V6(
                Ipv6Net::new(
                    Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(i) << 64),
                    64,
                )
                .unwrap(),
            ),
            path_id: None,
        })
        .collect()
}

fn attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        communities: vec![1, 2, 3],
        ..PathAttributes::default()
    }
}

#[test]
fn small_update_is_one_message_equal_to_encode_message() {
    let update = Update {
        attributes: attributes(),
        nlri: ipv4_prefixes(3, None),
        ..Update::default()
    };
    let messages = encode_update_split(&update, &CodecContext::four_octet()).unwrap();
    let single = encode_message(&Message::Update(update), &CodecContext::four_octet()).unwrap();
    assert_eq!(messages, vec![single]);
}

#[test]
fn large_update_splits_and_decodes_back() {
    let context = CodecContext {
        add_path_receive: vec![Family::IPV4_UNICAST],
        add_path_send: vec![Family::IPV4_UNICAST],
        ..CodecContext::four_octet()
    };
    let update = Update {
        withdrawn: ipv4_prefixes(5000, Some(1)),
        attributes: PathAttributes {
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hops: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
                nlri: ipv6_prefixes(3000),
            }),
            mp_unreach: Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: ipv6_prefixes(2000),
            }),
            ..attributes()
        },
        nlri: ipv4_prefixes(20000, Some(2)),
    };
    assert!(encode_message(&Message::Update(update.clone()), &context).is_err());
    let messages = encode_update_split(&update, &context).unwrap();
    let (mut withdrawn, mut nlri, mut reach, mut unreach) = (vec![], vec![], vec![], vec![]);
    for message in &messages {
        assert!(message.len() <= MAX_MESSAGE_LEN);
        let Decoded::Message(Message::Update(part)) = decode(message, &context) else {
            panic!()
        };
        if !part.nlri.is_empty() || part.attributes.mp_reach.is_some() {
            assert_eq!(
                part.attributes.communities,
                vec![1, 2, 3],
                "attributes repeated"
            );
        }
        withdrawn.extend(part.withdrawn);
        nlri.extend(part.nlri);
        reach.extend(part.attributes.mp_reach.map(|r| r.nlri).unwrap_or_default());
        unreach.extend(
            part.attributes
                .mp_unreach
                .map(|u| u.withdrawn)
                .unwrap_or_default(),
        );
    }
    assert_eq!(withdrawn, update.withdrawn);
    assert_eq!(nlri, update.nlri);
    assert_eq!(reach, update.attributes.mp_reach.unwrap().nlri);
    assert_eq!(unreach, update.attributes.mp_unreach.unwrap().withdrawn);
    // Messages are packed: 20000 IPv4 /24 with path ids take 8 bytes each.
    assert!(
        messages.len() < 5000 * 8 / 4000 + 20000 * 8 / 3900 + 3000 * 9 / 3900 + 2000 * 9 / 4000 + 8
    );
}

#[test]
fn encode_refuses_what_the_wire_cannot_carry() {
    use crate::codec::EncodeError;
    use crate::message::{Capability, Open, RawAttribute};
    let context = CodecContext::four_octet();
    let restart = Capability::GracefulRestart {
        restart_state: false,
        restart_time: 4096,
        families: vec![],
    };
    let open = Open {
        version: 4,
        my_as: 1,
        hold_time: 90,
        bgp_identifier: Ipv4Addr::LOCALHOST,
        capabilities: vec![restart],
    };
    assert!(matches!(
        encode_message(&Message::Open(open), &context),
        Err(EncodeError::Invalid(_))
    ));
    let known_code = PathAttributes {
        unknown: vec![RawAttribute {
            flags: 0xc0,
            type_code: 8,
            value: vec![0; 4],
        }],
        ..attributes()
    };
    let update = Update {
        attributes: known_code,
        ..Update::default()
    };
    assert!(matches!(
        encode_message(&Message::Update(update), &context),
        Err(EncodeError::Invalid(_))
    ));
    let wrong_family = Update {
        nlri: ipv6_prefixes(1),
        attributes: attributes(),
        ..Update::default()
    };
    assert!(encode_message(&Message::Update(wrong_family), &context).is_err());
}

#[test]
fn long_as_sequence_is_split_into_segments_of_255() {
    use crate::message::{AsSegment, SegmentKind};
    let asns: Vec<u32> = (1..=300).collect();
    let path = AsPath {
        segments: vec![AsSegment {
            kind: SegmentKind::Sequence,
            asns: asns.clone(),
        }],
    };
    let update = Update {
        attributes: PathAttributes {
            as_path: Some(path),
            ..attributes()
        },
        nlri: ipv4_prefixes(1, None),
        ..Update::default()
    };
    let bytes = encode_message(&Message::Update(update), &CodecContext::four_octet()).unwrap();
    let Decoded::Message(Message::Update(decoded)) = decode(&bytes, &CodecContext::four_octet())
    else {
        panic!()
    };
    let segments = decoded.attributes.as_path.unwrap().segments;
    assert_eq!(
        segments.iter().map(|s| s.asns.len()).collect::<Vec<_>>(),
        vec![255, 45]
    );
    assert!(segments.iter().all(|s| s.kind == SegmentKind::Sequence));
    let flat: Vec<u32> = segments
        .iter()
        .flat_map(|s| s.asns.iter().copied())
        .collect();
    assert_eq!(flat, asns);
}
