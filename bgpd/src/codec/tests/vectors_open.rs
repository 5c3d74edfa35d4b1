//! Byte-exact vectors for OPEN (capabilities, RFC 9072), KEEPALIVE, NOTIFICATION and
//! ROUTE-REFRESH, both directions. No I/O.

use std::net::Ipv4Addr;

use super::{both_ways, decode, framed, hex};
use crate::codec::{CodecContext, Decoded, encode_message, message_type};
use crate::message::{
    AddPathMode, Capability, Family, GracefulRestartFamily, Message, Notification, Open,
    RouteRefresh,
};

fn open(my_as: u16, capabilities: Vec<Capability>) -> Message {
    Message::Open(Open {
        version: 4,
        my_as,
        hold_time: 90,
        bgp_identifier: Ipv4Addr::new(10, 0, 0, 1),
        capabilities,
    })
}

#[test]
fn keepalive() {
    let bytes = hex("ffffffff ffffffff ffffffff ffffffff | 0013 | 04");
    both_ways(&Message::Keepalive, &CodecContext::default(), &bytes);
}

#[test]
fn open_with_every_capability() {
    let message = open(
        65001,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::GracefulRestart {
                restart_state: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            },
            Capability::AddPath(vec![(Family::IPV4_UNICAST, AddPathMode::Both)]),
            Capability::ExtendedNextHop(vec![(Family::IPV4_UNICAST, 2)]),
            Capability::Unknown {
                code: 70,
                value: vec![],
            },
        ],
    );
    let bytes = framed(
        message_type::OPEN,
        "04 | fde9 | 005a | 0a000001 | 2e | 02 2c
         01 04 0001 00 01 | 01 04 0002 00 01 | 02 00 | 41 04 0000fde9
         40 06 8078 0001 01 80 | 45 04 0001 01 03 | 05 06 0001 0001 0002 | 46 00",
    );
    both_ways(&message, &CodecContext::default(), &bytes);
}

#[test]
fn open_four_octet_asn_uses_as_trans() {
    let message = open(23456, vec![Capability::FourOctetAs(4_200_000_001)]);
    let bytes = framed(
        message_type::OPEN,
        "04 5ba0 005a 0a000001 08 02 06 41 04 fa56ea01",
    );
    both_ways(&message, &CodecContext::default(), &bytes);
    let Message::Open(open) = message else {
        unreachable!()
    };
    assert_eq!(open.asn(), 4_200_000_001);
}

#[test]
fn open_without_capabilities_and_graceful_restart_flags() {
    both_ways(
        &open(65001, vec![]),
        &CodecContext::default(),
        &framed(1, "04 fde9 005a 0a000001 00"),
    );
    // R bit clear, time 4095 (12 bits), F bit clear; the N bit (0x4000) is not modelled.
    let message = open(
        65001,
        vec![Capability::GracefulRestart {
            restart_state: false,
            restart_time: 4095,
            families: vec![GracefulRestartFamily {
                family: Family::IPV6_UNICAST,
                forwarding_preserved: false,
            }],
        }],
    );
    both_ways(
        &message,
        &CodecContext::default(),
        &framed(1, "04 fde9 005a 0a000001 0a 02 08 40 06 0fff 0002 01 00"),
    );
    let with_n_bit = framed(1, "04 fde9 005a 0a000001 0a 02 08 40 06 4fff 0002 01 00");
    assert_eq!(
        decode(&with_n_bit, &CodecContext::default()),
        Decoded::Message(message)
    );
}

#[test]
fn open_rfc9072_extended_parameters_decode() {
    let bytes = framed(
        1,
        "04 fde9 005a 0a000001 ff ff 000b 02 0008 0200 0104 0001 0001",
    );
    let expected = open(
        65001,
        vec![
            Capability::RouteRefresh,
            Capability::Multiprotocol(Family::IPV4_UNICAST),
        ],
    );
    assert_eq!(
        decode(&bytes, &CodecContext::default()),
        Decoded::Message(expected)
    );
}

#[test]
fn open_with_long_capabilities_encodes_rfc9072() {
    let message = open(
        65001,
        vec![
            Capability::Unknown {
                code: 200,
                value: vec![7; 250]
            };
            2
        ],
    );
    let bytes = encode_message(&message, &CodecContext::default()).unwrap();
    // version..identifier (9 bytes), then 255 255 and the 2-byte length.
    assert_eq!(&bytes[28..33], &hex("ff ff 01fb 02")[..]);
    assert_eq!(
        decode(&bytes, &CodecContext::default()),
        Decoded::Message(message)
    );
}

#[test]
fn malformed_capabilities_are_kept_unknown() {
    // 4-octet AS with 3 bytes; add-path with mode 0.
    let bytes = framed(
        1,
        "04 fde9 005a 0a000001 0d 02 0b 41 03 000001 45 04 0001 01 00",
    );
    let expected = open(
        65001,
        vec![
            Capability::Unknown {
                code: 65,
                value: hex("000001"),
            },
            Capability::Unknown {
                code: 69,
                value: hex("00010100"),
            },
        ],
    );
    assert_eq!(
        decode(&bytes, &CodecContext::default()),
        Decoded::Message(expected)
    );
}

#[test]
fn notification() {
    let message = Message::Notification(Notification {
        code: 6,
        subcode: 2,
        data: b"bye".to_vec(),
    });
    both_ways(
        &message,
        &CodecContext::default(),
        &framed(3, "06 02 627965"),
    );
    let empty = Message::Notification(Notification {
        code: 4,
        subcode: 0,
        data: vec![],
    });
    both_ways(&empty, &CodecContext::default(), &framed(3, "04 00"));
}

#[test]
fn route_refresh_with_subtypes() {
    let normal = Message::RouteRefresh(RouteRefresh {
        family: Family::IPV6_UNICAST,
        subtype: 0,
    });
    both_ways(&normal, &CodecContext::default(), &framed(5, "0002 00 01"));
    let begin = Message::RouteRefresh(RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: 1,
    });
    both_ways(&begin, &CodecContext::default(), &framed(5, "0001 01 01"));
    let end = Message::RouteRefresh(RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: 2,
    });
    both_ways(&end, &CodecContext::default(), &framed(5, "0001 02 01"));
}
