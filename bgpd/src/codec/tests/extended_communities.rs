//! EXTENDED_COMMUNITIES (RFC 4360, type code 16): byte-exact vectors both ways and the RFC
//! 7606 §7.14 outcome of a malformed one. No I/O.

use std::net::Ipv4Addr;

use super::vectors_update::{nlri, sequence};
use super::{both_ways, decode, framed};
use crate::codec::{CodecContext, Decoded};
use crate::message::{
    AsPath, ExtendedCommunity, Message, Origin, PathAttributes, ROUTE_ORIGIN, ROUTE_TARGET, Update,
};

fn update(extended_communities: Vec<ExtendedCommunity>) -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath {
                segments: vec![sequence(&[65001])],
            }),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            communities: vec![0xfde9_0064],
            extended_communities,
            ..PathAttributes::default()
        },
        nlri: vec![nlri("10.1.0.0/16")],
        ..Update::default()
    }
}

#[test]
fn extended_communities_both_ways() {
    let communities = vec![
        ExtendedCommunity::TwoOctetAs {
            transitive: true,
            subtype: ROUTE_TARGET,
            asn: 65000,
            local: 100,
        },
        ExtendedCommunity::Ipv4Address {
            transitive: true,
            subtype: ROUTE_ORIGIN,
            address: Ipv4Addr::new(192, 0, 2, 1),
            local: 7,
        },
        ExtendedCommunity::FourOctetAs {
            transitive: true,
            subtype: ROUTE_TARGET,
            asn: 4_200_000_000,
            local: 1,
        },
        ExtendedCommunity::TwoOctetAs {
            transitive: false,
            subtype: 0x04,
            asn: 65000,
            local: 9,
        },
        ExtendedCommunity::Raw([0x03, 0x0c, 0, 0, 0, 0, 0, 8]),
    ];
    // After COMMUNITIES (8), in type-code order: c0 10 28 and five 8-octet entries.
    let body = "0000 | 0046 | 40 01 01 00 | 40 02 06 02 01 0000fde9 | 40 03 04 c0000201 \
                | c0 08 04 fde90064 \
                | c0 10 28 0002fde800000064 0103c00002010007 0202fa56ea000001 \
                  4004fde800000009 030c000000000008 \
                | 100a01";
    both_ways(
        &Message::Update(update(communities)),
        &CodecContext::four_octet(),
        &framed(2, body),
    );
}

#[test]
fn extended_communities_of_bad_length_are_treat_as_withdraw() {
    for (flags_and_length, value) in [("c0 10 07", "00020000000000"), ("c0 10 00", "")] {
        let body = format!(
            "0000 | {:04x} | 40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | {flags_and_length} {value} | 100a01",
            14 + 3 + value.len() / 2
        );
        let decoded = decode(&framed(2, &body), &CodecContext::four_octet());
        let Decoded::TreatAsWithdraw { update, reason } = decoded else {
            panic!("{flags_and_length}: expected treat-as-withdraw, got {decoded:?}");
        };
        assert_eq!(update.withdrawn, vec![nlri("10.1.0.0/16")]);
        assert!(reason.contains("attribute 16"), "{reason}");
    }
}

#[test]
fn extended_communities_with_wrong_flags_are_treat_as_withdraw() {
    // Well-known (no Optional bit) would be a session reset for an unknown attribute; with
    // the type known it is a flags error: treat-as-withdraw (RFC 7606 §7.14, §3 c).
    let body = "0000 | 0019 | 40 01 01 00 | 40 02 00 | 40 03 04 c0000201 \
                | 80 10 08 0002fde800000064 | 100a01";
    let decoded = decode(&framed(2, body), &CodecContext::four_octet());
    assert!(
        matches!(decoded, Decoded::TreatAsWithdraw { .. }),
        "{decoded:?}"
    );
}
