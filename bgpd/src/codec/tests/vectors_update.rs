//! Byte-exact UPDATE vectors, both directions: every attribute, 2- vs 4-octet sessions
//! (AS_TRANS, AS4_PATH, AS4_AGGREGATOR), add-path, IPv6 MP_REACH with a link-local next hop,
//! extended next hop, extended length, unknown attribute pass-through. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{both_ways, decode, framed, hex, hex_string};
use crate::codec::{CodecContext, Decoded, EncodeError, encode_message};
use crate::message::{
    Aggregator, AsPath, AsSegment, Family, LargeCommunity, Message, MpReach, MpUnreach, Nlri,
    Origin, PathAttributes, RawAttribute, SegmentKind, Update,
};

pub(crate) fn nlri(text: &str) -> Nlri {
    Nlri {
        prefix: text.parse().unwrap(),
        path_id: None,
    }
}

pub(crate) fn sequence(asns: &[u32]) -> AsSegment {
    AsSegment {
        kind: SegmentKind::Sequence,
        asns: asns.to_vec(),
    }
}

fn four() -> CodecContext {
    CodecContext::four_octet()
}

fn base(as_path: AsPath) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(as_path),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..PathAttributes::default()
    }
}

#[test]
fn every_attribute_four_octet() {
    let update = Update {
        withdrawn: vec![nlri("10.9.0.0/16")],
        attributes: PathAttributes {
            med: Some(50),
            local_pref: Some(100),
            atomic_aggregate: true,
            aggregator: Some(Aggregator {
                asn: 65001,
                address: Ipv4Addr::new(192, 0, 2, 9),
            }),
            communities: vec![0xfde9_0064],
            originator_id: Some(Ipv4Addr::new(192, 0, 2, 7)),
            cluster_list: vec![Ipv4Addr::new(192, 0, 2, 8)],
            large_communities: vec![LargeCommunity {
                global_admin: 4_200_000_001,
                local_data_1: 1,
                local_data_2: 2,
            }],
            unknown: vec![RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: vec![1, 2, 3],
            }],
            ..base(AsPath {
                segments: vec![sequence(&[65001, 4_200_000_001])],
            })
        },
        nlri: vec![nlri("10.1.0.0/16"), nlri("10.2.3.0/24")],
    };
    let bytes = framed(
        2,
        "0003 100a09 | 005e
         40 01 01 00 | 40 02 0a 02 02 0000fde9 fa56ea01 | 40 03 04 c0000201 | 80 04 04 00000032
         40 05 04 00000064 | 40 06 00 | c0 07 08 0000fde9 c0000209 | c0 08 04 fde90064
         80 09 04 c0000207 | 80 0a 04 c0000208 | c0 20 0c fa56ea01 00000001 00000002 | e0 63 03 010203
         | 100a01 180a0203",
    );
    both_ways(&Message::Update(update), &four(), &bytes);
}

#[test]
fn two_octet_session_writes_as_trans_and_as4_attributes() {
    let update = Update {
        attributes: PathAttributes {
            aggregator: Some(Aggregator {
                asn: 4_200_000_001,
                address: Ipv4Addr::new(192, 0, 2, 9),
            }),
            ..base(AsPath {
                segments: vec![sequence(&[65001, 4_200_000_001])],
            })
        },
        nlri: vec![nlri("10.1.0.0/16")],
        ..Update::default()
    };
    let bytes = framed(
        2,
        "0000 | 0035 | 40 01 01 00 | 40 02 06 02 02 fde9 5ba0 | 40 03 04 c0000201 | c0 07 06 5ba0 c0000209
         c0 11 0a 02 02 0000fde9 fa56ea01 | c0 12 08 fa56ea01 c0000209 | 100a01",
    );
    both_ways(&Message::Update(update), &CodecContext::default(), &bytes);
}

#[test]
fn two_octet_decode_merges_as4_path_from_an_old_speaker() {
    // An OLD speaker 65002 prepended itself: AS_PATH [65002 AS_TRANS AS_TRANS], AS4_PATH [2 ASNs].
    let bytes = framed(
        2,
        "0000 | 0029 | 40 01 01 00 | 40 02 08 02 03 fdea 5ba0 5ba0 | 40 03 04 c0000201
         c0 11 10 02 02 fa56ea01 fa56ea02 | 01 01 0000fdeb | 100a01",
    );
    let Decoded::Message(Message::Update(update)) = decode(&bytes, &CodecContext::default()) else {
        panic!()
    };
    // AS4_PATH counts 3 (sequence of 2 + a set), AS_PATH 3: nothing is taken from AS_PATH.
    let expected = AsPath {
        segments: vec![
            sequence(&[4_200_000_001, 4_200_000_002]),
            AsSegment {
                kind: SegmentKind::Set,
                asns: vec![65003],
            },
        ],
    };
    assert_eq!(update.attributes.as_path, Some(expected));
    // Prepended by an OLD speaker after AS4_PATH was written: AS_PATH longer by one.
    let bytes = framed(
        2,
        "0000 | 001f | 40 01 01 00 | 40 02 08 02 03 fdea 5ba0 fde9 | 40 03 04 c0000201
         c0 11 06 02 01 fa56ea01 | 100a01",
    );
    let Decoded::Message(Message::Update(update)) = decode(&bytes, &CodecContext::default()) else {
        panic!()
    };
    let expected = AsPath {
        segments: vec![sequence(&[65002, 23456, 4_200_000_001])],
    };
    assert_eq!(update.attributes.as_path, Some(expected));
    assert!(
        update.attributes.unknown.is_empty(),
        "AS4_PATH is not kept as an attribute"
    );
}

#[test]
fn as_set_and_sequence_keep_their_type_codes() {
    let path = AsPath {
        segments: vec![
            sequence(&[1, 2]),
            AsSegment {
                kind: SegmentKind::Set,
                asns: vec![3, 4],
            },
        ],
    };
    let update = Update {
        attributes: base(path),
        nlri: vec![nlri("10.1.0.0/16")],
        ..Update::default()
    };
    let bytes = framed(
        2,
        "0000 | 0022 | 40 01 01 00 | 40 02 14 02 02 00000001 00000002 01 02 00000003 00000004
         | 40 03 04 c0000201 | 100a01",
    );
    both_ways(&Message::Update(update.clone()), &four(), &bytes);
    let two = framed(
        2,
        "0000 | 001a | 40 01 01 00 | 40 02 0c 02 02 0001 0002 01 02 0003 0004 | 40 03 04 c0000201 | 100a01",
    );
    both_ways(&Message::Update(update), &CodecContext::default(), &two);
}

#[test]
fn add_path_identifiers() {
    let context = CodecContext {
        add_path_receive: vec![Family::IPV4_UNICAST],
        add_path_send: vec![Family::IPV4_UNICAST],
        ..four()
    };
    let update = Update {
        withdrawn: vec![Nlri {
            path_id: Some(3),
            ..nlri("10.9.0.0/16")
        }],
        attributes: base(AsPath::default()),
        nlri: vec![Nlri {
            path_id: Some(7),
            ..nlri("10.1.0.0/16")
        }],
    };
    let bytes = framed(
        2,
        "0007 00000003 100a09 | 000e | 40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | 00000007 100a01",
    );
    both_ways(&Message::Update(update), &context, &bytes);
}

#[test]
fn ipv6_mp_reach_with_link_local_next_hop_and_end_of_rib() {
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![sequence(&[65001])],
            }),
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hops: vec![
                    IpAddr::V6("2001:db8::1".parse().unwrap()),
                    IpAddr::V6("fe80::1".parse().unwrap()),
                ],
                nlri: vec![nlri("2001:db8:1::/48"), nlri("2001:db8:2::/64")],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    let bytes = framed(
        2,
        "0000 | 0045 | 40 01 01 00 | 40 02 06 02 01 0000fde9
         80 0e 35 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00
         30 20010db80001 40 20010db800020000",
    );
    both_ways(&Message::Update(update), &four(), &bytes);
    let end_of_rib = Update::end_of_rib(Family::IPV6_UNICAST);
    both_ways(
        &Message::Update(end_of_rib),
        &four(),
        &framed(2, "0000 0006 80 0f 03 0002 01"),
    );
    both_ways(
        &Message::Update(Update::end_of_rib(Family::IPV4_UNICAST)),
        &four(),
        &framed(2, "0000 0000"),
    );
    let unreach = Update {
        attributes: PathAttributes {
            mp_unreach: Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![nlri("2001:db8:1::/48")],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    both_ways(
        &Message::Update(unreach),
        &four(),
        &framed(2, "0000 000d 80 0f 0a 0002 01 30 20010db80001"),
    );
}

#[test]
fn extended_next_hop_for_ipv4_nlri() {
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            mp_reach: Some(MpReach {
                family: Family::IPV4_UNICAST,
                next_hops: vec![IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))],
                nlri: vec![nlri("10.1.0.0/16")],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    let context = CodecContext {
        extended_next_hop: true,
        ..four()
    };
    let bytes = framed(
        2,
        "0000 | 0022 | 40 01 01 00 | 40 02 00 | 80 0e 18 0001 01 10 20010db8000000000000000000000001 00 10 0a01",
    );
    both_ways(&Message::Update(update.clone()), &context, &bytes);
    let refused = encode_message(&Message::Update(update), &four());
    assert!(
        matches!(refused, Err(EncodeError::Invalid(_))),
        "{refused:?}"
    );
}

#[test]
fn extended_length_attribute() {
    let communities: Vec<u32> = (0..70).map(|i| 0xfde9_0000 + i).collect();
    let update = Update {
        attributes: PathAttributes {
            communities: communities.clone(),
            ..base(AsPath::default())
        },
        nlri: vec![nlri("10.1.0.0/16")],
        ..Update::default()
    };
    let mut body =
        String::from("0000 | 012a | 40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | d0 08 0118");
    communities
        .iter()
        .for_each(|c| body.push_str(&format!(" {c:08x}")));
    body.push_str(" | 100a01");
    both_ways(&Message::Update(update), &four(), &framed(2, &body));
}

#[test]
fn unknown_attributes_pass_through_with_partial_bit() {
    // Optional transitive 99 (kept), optional non-transitive 100 (dropped).
    let bytes = framed(
        2,
        "0000 | 0016 | 40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | c0 63 01 2a | 80 64 01 2b | 100a01",
    );
    let Decoded::Message(Message::Update(update)) = decode(&bytes, &four()) else {
        panic!()
    };
    assert_eq!(
        update.attributes.unknown,
        vec![RawAttribute {
            flags: 0xc0,
            type_code: 99,
            value: vec![42]
        }]
    );
    let encoded = encode_message(&Message::Update(update), &four()).unwrap();
    let expected = framed(
        2,
        "0000 | 0012 | 40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | e0 63 01 2a | 100a01",
    );
    assert_eq!(hex_string(&encoded), hex_string(&expected));
    // An unknown attribute type below MP_REACH's code is written in type order too.
    let low = Update {
        attributes: PathAttributes {
            unknown: vec![RawAttribute {
                flags: 0xc0,
                type_code: 11,
                value: vec![],
            }],
            ..base(AsPath::default())
        },
        ..Update::default()
    };
    let encoded = encode_message(&Message::Update(low), &four()).unwrap();
    assert!(hex_string(&encoded).ends_with(&hex_string(&hex("40 03 04 c0000201 e0 0b 00"))));
}
