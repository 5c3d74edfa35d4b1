//! Header errors and the RFC 7606 outcomes of malformed UPDATEs: session reset (with the
//! NOTIFICATION), treat-as-withdraw, attribute discard. No I/O.

use std::net::Ipv4Addr;

use super::{decode, framed, hex};
use crate::codec::{CodecContext, DecodeError, Decoded, decode_message};
use crate::message::{Family, Message, MpUnreach, Notification, PathAttributes, Update};

use super::vectors_update::nlri;

fn four() -> CodecContext {
    CodecContext::four_octet()
}

fn error(bytes: &[u8]) -> Notification {
    let result: Result<_, DecodeError> = decode_message(bytes, &four());
    result.expect_err("a session reset").notification
}

fn notification(code: u8, subcode: u8, data: &str) -> Notification {
    Notification {
        code,
        subcode,
        data: hex(data),
    }
}

/// ORIGIN, AS_PATH (4-octet, empty), NEXT_HOP 192.0.2.1.
const MANDATORY: &str = "40 01 01 00 | 40 02 00 | 40 03 04 c0000201";

fn update_bytes(attributes: &str, nlri: &str) -> Vec<u8> {
    let attributes = hex(attributes);
    framed(
        2,
        &format!(
            "0000 {:04x} {} {nlri}",
            attributes.len(),
            super::hex_string(&attributes)
        ),
    )
}

fn withdrawn_only(update: Decoded) -> (Update, String) {
    match update {
        Decoded::TreatAsWithdraw { update, reason } => (update, reason),
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

#[test]
fn header_errors() {
    let keepalive = framed(4, "");
    assert_eq!(decode_message(&keepalive[..18], &four()).unwrap(), None);
    let mut bad_marker = keepalive.clone();
    bad_marker[3] = 0;
    assert_eq!(error(&bad_marker), notification(1, 1, ""));
    assert_eq!(
        error(&hex("ffffffffffffffffffffffffffffffff 0012 04")),
        notification(1, 2, "0012")
    );
    assert_eq!(
        error(&hex("ffffffffffffffffffffffffffffffff 1001 02")),
        notification(1, 2, "1001")
    );
    assert_eq!(
        error(&hex("ffffffffffffffffffffffffffffffff 0014 04 00")),
        notification(1, 2, "0014")
    );
    assert_eq!(
        error(&hex("ffffffffffffffffffffffffffffffff 0013 06")),
        notification(1, 3, "06")
    );
    assert_eq!(
        error(&hex("ffffffffffffffffffffffffffffffff 001c 01")),
        notification(1, 2, "001c")
    );
    // A complete header of a longer message: wait for the rest.
    assert_eq!(
        decode_message(&framed(3, "0602")[..20], &four()).unwrap(),
        None
    );
    let refresh = framed(5, "0001 01 01 00");
    assert_eq!(
        error(&refresh),
        Notification {
            code: 7,
            subcode: 1,
            data: refresh.clone()
        }
    );
    assert_eq!(
        error(&framed(1, "05 fde9 005a 0a000001 00")),
        notification(2, 1, "0004")
    );
    assert_eq!(
        error(&framed(1, "04 fde9 005a 0a000001 03 01 01 00")).subcode,
        4
    );
}

#[test]
fn two_messages_in_one_buffer() {
    let mut buffer = framed(4, "");
    buffer.extend(framed(3, "0602"));
    let (first, used) = decode_message(&buffer, &four()).unwrap().unwrap();
    assert_eq!((first, used), (Decoded::Message(Message::Keepalive), 19));
    let (second, _) = decode_message(&buffer[used..], &four()).unwrap().unwrap();
    assert!(matches!(second, Decoded::Message(Message::Notification(_))));
}

#[test]
fn malformed_well_known_attributes_are_treat_as_withdraw() {
    for (attributes, what) in [
        (
            "40 01 01 03 | 40 02 00 | 40 03 04 c0000201",
            "ORIGIN value 3",
        ),
        ("c0 01 01 00 | 40 02 00 | 40 03 04 c0000201", "ORIGIN flags"),
        (
            "40 01 01 00 | 40 02 02 02 00 | 40 03 04 c0000201",
            "AS_PATH empty segment",
        ),
        (
            "40 01 01 00 | 40 02 06 05 01 00000001 | 40 03 04 c0000201",
            "AS_PATH segment type 5",
        ),
        (
            "40 01 01 00 | 40 02 06 02 02 00000001 | 40 03 04 c0000201",
            "AS_PATH overrun",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 03 c00002",
            "NEXT_HOP length",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | 80 04 03 000001",
            "MED length",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | 40 05 02 0001",
            "LOCAL_PREF length",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | c0 08 03 000001",
            "COMMUNITIES length",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | c0 20 0b 0000000000000000000000",
            "LARGE",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | 80 0a 00",
            "CLUSTER_LIST empty",
        ),
        ("40 02 00 | 40 03 04 c0000201", "missing ORIGIN"),
        ("40 01 01 00 | 40 03 04 c0000201", "missing AS_PATH"),
        ("40 01 01 00 | 40 02 00", "missing NEXT_HOP"),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | c0 08 08 00000001",
            "attribute overrun",
        ),
        (
            "40 01 01 00 | 40 02 00 | 40 03 04 c0000201 | c0",
            "truncated header",
        ),
    ] {
        let (update, reason) = withdrawn_only(decode(&update_bytes(attributes, "100a01"), &four()));
        assert_eq!(
            update.withdrawn,
            vec![nlri("10.1.0.0/16")],
            "{what}: {reason}"
        );
        assert!(
            update.nlri.is_empty() && update.attributes == PathAttributes::default(),
            "{what}"
        );
    }
}

#[test]
fn attribute_discard_and_duplicates() {
    let attributes = format!(
        "{MANDATORY} | 40 06 01 00 | c0 07 05 0000000001 | 80 04 04 00000001 | 80 04 04 00000002"
    );
    let Decoded::Message(Message::Update(update)) =
        decode(&update_bytes(&attributes, "100a01"), &four())
    else {
        panic!("attribute discard keeps the update");
    };
    assert!(!update.attributes.atomic_aggregate);
    assert_eq!(update.attributes.aggregator, None);
    assert_eq!(
        update.attributes.med,
        Some(1),
        "the first of two MEDs is kept"
    );
    assert_eq!(
        update.attributes.next_hop,
        Some(Ipv4Addr::new(192, 0, 2, 1))
    );
}

#[test]
fn session_resets() {
    let mp = "80 0e 0b 0002 01 05 0102030405 00 00";
    assert_eq!(
        error(&update_bytes(&format!("{MANDATORY} | {mp}"), "")).subcode,
        9,
        "bad MP next hop length"
    );
    let unreach = "80 0f 03 0002 01";
    assert_eq!(
        error(&update_bytes(&format!("{unreach} | {unreach}"), "")),
        notification(3, 1, "")
    );
    assert_eq!(
        error(&update_bytes(MANDATORY, "210a010101")).subcode,
        10,
        "prefix length 33"
    );
    assert_eq!(
        error(&update_bytes(MANDATORY, "180a01")).subcode,
        10,
        "prefix overruns the NLRI"
    );
    let overrun = framed(2, "0005 100a01");
    assert_eq!(error(&overrun), notification(3, 1, ""));
    let attributes_overrun = framed(2, "0000 0010 40010100");
    assert_eq!(error(&attributes_overrun), notification(3, 1, ""));
    let well_known = "40 65 01 00";
    assert_eq!(
        error(&update_bytes(&format!("{MANDATORY} | {well_known}"), "")),
        notification(3, 2, "40 65 01 00")
    );
    let mp_overrun = format!("{MANDATORY} | 80 0e 20 0002");
    assert_eq!(error(&update_bytes(&mp_overrun, "")).subcode, 9);
}

#[test]
fn withdrawals_need_no_attributes_and_mp_reach_is_withdrawn_too() {
    let Decoded::Message(Message::Update(update)) = decode(&framed(2, "0003 100a09 0000"), &four())
    else {
        panic!()
    };
    assert_eq!(update.withdrawn, vec![nlri("10.9.0.0/16")]);
    let mp = "80 0e 1c 0002 01 10 20010db8000000000000000000000001 00 30 20010db80001";
    let (update, _) = withdrawn_only(decode(
        &update_bytes(&format!("40 01 01 05 | 40 02 00 | {mp}"), ""),
        &four(),
    ));
    let expected = MpUnreach {
        family: Family::IPV6_UNICAST,
        withdrawn: vec![nlri("2001:db8:1::/48")],
    };
    assert_eq!(update.attributes.mp_unreach, Some(expected));
}
