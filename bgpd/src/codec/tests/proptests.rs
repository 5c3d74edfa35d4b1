//! Property tests: any message in the encodable domain encodes and decodes back to itself on
//! 2- and 4-octet sessions, with and without add-path; random bytes never panic. No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

use crate::codec::{CodecContext, Decoded, decode_message, encode_message};
use crate::message::{
    AddPathMode, Aggregator, AsPath, AsSegment, Capability, ExtendedCommunity, Family,
    GracefulRestartFamily, LargeCommunity, Message, MpReach, MpUnreach, Nlri, Notification, Open,
    Origin, PathAttributes, RawAttribute, RouteRefresh, SegmentKind, Update,
};

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi })
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    let mode = prop_oneof![
        Just(AddPathMode::Receive),
        Just(AddPathMode::Send),
        Just(AddPathMode::Both)
    ];
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        prop::collection::vec((family(), any::<u16>()), 0..4).prop_map(Capability::ExtendedNextHop),
        (
            any::<bool>(),
            0u16..4096,
            prop::collection::vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(r, t, f)| {
                let families =
                    f.into_iter()
                        .map(|(family, forwarding_preserved)| GracefulRestartFamily {
                            family,
                            forwarding_preserved,
                        });
                Capability::GracefulRestart {
                    restart_state: r,
                    restart_time: t,
                    families: families.collect(),
                }
            }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        prop::collection::vec((family(), mode), 0..4).prop_map(Capability::AddPath),
        (70u8..=255, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Message> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        prop::collection::vec(capability(), 0..12),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| {
            Message::Open(Open {
                version: 4,
                my_as,
                hold_time,
                bgp_identifier: Ipv4Addr::from(id),
                capabilities,
            })
        })
}

fn nlri(v6: bool, add_path: bool) -> impl Strategy<Value = Nlri> {
    let path_id = if add_path {
        any::<u32>().prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    };
    let prefix = if v6 {
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
            .boxed()
    } else {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc()))
            .boxed()
    };
    (prefix, path_id).prop_map(|(prefix, path_id)| Nlri { prefix, path_id })
}

/// ASNs: small only on a 2-octet session that must keep confederation segments exact.
fn as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
    let asn = prop_oneof![1u32..65536, any::<u32>()];
    let kind = prop_oneof![Just(SegmentKind::Set), Just(SegmentKind::Sequence)];
    let segment =
        (kind, prop::collection::vec(asn, 1..6)).prop_map(|(kind, asns)| AsSegment { kind, asns });
    let confed_kind = prop_oneof![
        Just(SegmentKind::ConfedSequence),
        Just(SegmentKind::ConfedSet)
    ];
    let confed_asn = if four_octet {
        any::<u32>().boxed()
    } else {
        (0u32..65536).boxed()
    };
    let confed = (confed_kind, prop::collection::vec(confed_asn, 1..4))
        .prop_map(|(kind, asns)| AsSegment { kind, asns });
    (
        prop::collection::vec(confed, 0..2),
        prop::collection::vec(segment, 0..4),
    )
        .prop_map(|(mut segments, rest)| {
            segments.extend(rest);
            AsPath { segments }
        })
}

fn attributes(
    four_octet: bool,
    v6_path_id: bool,
    classic: bool,
) -> impl Strategy<Value = PathAttributes> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let mp_reach = (
        prop::collection::vec(nlri(true, v6_path_id), 1..20),
        any::<u128>(),
        prop::option::of(any::<u128>()),
    )
        .prop_map(|(nlri, global, link_local)| MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: std::iter::once(global)
                .chain(link_local)
                .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                .collect(),
            nlri,
        });
    let mp_unreach =
        prop::collection::vec(nlri(true, v6_path_id), 0..20).prop_map(|withdrawn| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn,
        });
    let unknown = (
        prop_oneof![Just(0xe0u8), Just(0xf0)],
        prop_oneof![11u8..=13, 19u8..=31, 33u8..=255],
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(flags, type_code, value)| RawAttribute {
            flags: flags & !0x10,
            type_code,
            value,
        });
    (
        (
            origin,
            as_path(four_octet),
            any::<u32>().prop_map(Ipv4Addr::from),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            prop::option::of((any::<u32>(), any::<u32>())),
            prop::collection::vec(any::<u32>(), 0..80),
            prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..4),
            prop::option::of(any::<u32>()),
            prop::collection::vec(any::<u32>(), 0..4),
        ),
        (
            prop::option::of(mp_reach),
            prop::option::of(mp_unreach),
            prop::collection::btree_map(any::<u8>(), unknown, 0..3),
            prop::collection::vec(any::<u64>(), 0..6),
        ),
    )
        .prop_map(
            move |(
                (origin, as_path, next_hop, med, local_pref, atomic_aggregate),
                (aggregator, communities, large, originator, clusters),
                (mp_reach, mp_unreach, unknown, extended),
            )| PathAttributes {
                origin: Some(origin),
                as_path: Some(as_path),
                next_hop: classic.then_some(next_hop),
                med,
                local_pref,
                atomic_aggregate,
                aggregator: aggregator.map(|(asn, address)| Aggregator {
                    asn,
                    address: Ipv4Addr::from(address),
                }),
                communities,
                extended_communities: extended
                    .into_iter()
                    .map(|value| ExtendedCommunity::from_bytes(value.to_be_bytes()))
                    .collect(),
                large_communities: large
                    .into_iter()
                    .map(
                        |(global_admin, local_data_1, local_data_2)| LargeCommunity {
                            global_admin,
                            local_data_1,
                            local_data_2,
                        },
                    )
                    .collect(),
                originator_id: originator.map(Ipv4Addr::from),
                cluster_list: clusters.into_iter().map(Ipv4Addr::from).collect(),
                mp_reach,
                mp_unreach,
                // One attribute per type code, sorted as the encoder writes them.
                unknown: {
                    let mut unknown: Vec<RawAttribute> = unknown.into_values().collect();
                    unknown.sort_by_key(|raw| raw.type_code);
                    unknown.dedup_by_key(|raw| raw.type_code);
                    unknown
                },
            },
        )
}

fn update(context: CodecContext) -> impl Strategy<Value = Message> {
    let v4_path_id = context.add_path_send.contains(&Family::IPV4_UNICAST);
    (
        prop::collection::vec(nlri(false, v4_path_id), 0..20),
        prop::collection::vec(nlri(false, v4_path_id), 1..20),
        any::<bool>(),
    )
        .prop_flat_map(move |(withdrawn, nlri, classic)| {
            let nlri = if classic { nlri } else { Vec::new() };
            let v6_path_id = context.add_path_send.contains(&Family::IPV6_UNICAST);
            attributes(context.four_octet_as, v6_path_id, classic).prop_map(move |attributes| {
                Message::Update(Update {
                    withdrawn: withdrawn.clone(),
                    attributes,
                    nlri: nlri.clone(),
                })
            })
        })
}

fn message(context: CodecContext) -> impl Strategy<Value = Message> {
    prop_oneof![
        open(),
        update(context),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(code, subcode, data)| Message::Notification(Notification {
                code,
                subcode,
                data
            })),
        Just(Message::Keepalive),
        (family(), any::<u8>())
            .prop_map(|(family, subtype)| Message::RouteRefresh(RouteRefresh { family, subtype })),
    ]
}

fn contexts() -> impl Strategy<Value = CodecContext> {
    (any::<bool>(), any::<bool>()).prop_map(|(four_octet_as, add_path)| {
        let families = if add_path {
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        } else {
            Vec::new()
        };
        CodecContext {
            four_octet_as,
            add_path_receive: families.clone(),
            add_path_send: families,
            extended_next_hop: false,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity((context, message) in contexts().prop_flat_map(|c| (Just(c.clone()), message(c)))) {
        let bytes = encode_message(&message, &context).unwrap();
        let (decoded, used) = decode_message(&bytes, &context).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(decoded, Decoded::Message(message));
    }

    #[test]
    fn random_bytes_never_panic(selector in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let context = CodecContext { four_octet_as: selector & 1 != 0, ..CodecContext::default() };
        let _ = decode_message(&bytes, &context);
        let mut framed = crate::codec::MARKER.to_vec();
        framed.extend_from_slice(&u16::try_from(19 + bytes.len().min(4000)).unwrap().to_be_bytes());
        framed.push(1 + selector % 5);
        framed.extend_from_slice(&bytes);
        if let Ok(Some((Decoded::Message(message), _))) = decode_message(&framed, &context) {
            let _ = encode_message(&message, &context);
        }
    }
}
