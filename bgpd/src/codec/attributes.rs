//! Path attribute decoding with RFC 7606 error handling. No I/O.
//!
//! Each malformed attribute gets its RFC 7606 approach:
//! - treat-as-withdraw: ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, ORIGINATOR_ID,
//!   CLUSTER_LIST, EXTENDED_COMMUNITIES (§7.14: length not a nonzero multiple of 8),
//!   LARGE_COMMUNITIES (bad length, bad value, bad Optional/Transitive flags);
//!   an attribute that overruns the attribute field, or fewer bytes left than a header (§4:
//!   the Total Path Attribute Length still locates the NLRI).
//! - attribute discard: ATOMIC_AGGREGATE, AGGREGATOR, AS4_PATH, AS4_AGGREGATOR (RFC 6793 §6).
//! - session reset: a malformed or duplicate MP_REACH_NLRI/MP_UNREACH_NLRI (3/9, 3/1: its NLRI
//!   cannot be located) and an unrecognized well-known attribute (3/2).
//!
//! Other duplicates are discarded (the first is kept). Unknown optional transitive attributes
//! are kept in `unknown` with their flags (less Extended Length); unknown optional
//! non-transitive ones are dropped. The codec does not do the semantic checks that need the
//! session (first AS of an eBGP path, LOCAL_PREF from eBGP, martian next hops).

use std::net::Ipv4Addr;

use super::{CodecContext, aspath, error::DecodeError, mp, reader::Reader};
use crate::message::{
    AS_TRANS, Aggregator, AsPath, ExtendedCommunity, LargeCommunity, Origin, PathAttributes,
    error_code,
};

pub const FLAG_OPTIONAL: u8 = 0x80;
pub const FLAG_TRANSITIVE: u8 = 0x40;
pub const FLAG_PARTIAL: u8 = 0x20;
pub const FLAG_EXTENDED_LENGTH: u8 = 0x10;

pub const ORIGIN: u8 = 1;
pub const AS_PATH: u8 = 2;
pub const NEXT_HOP: u8 = 3;
pub const MED: u8 = 4;
pub const LOCAL_PREF: u8 = 5;
pub const ATOMIC_AGGREGATE: u8 = 6;
pub const AGGREGATOR: u8 = 7;
pub const COMMUNITIES: u8 = 8;
pub const ORIGINATOR_ID: u8 = 9;
pub const CLUSTER_LIST: u8 = 10;
pub const MP_REACH_NLRI: u8 = 14;
pub const MP_UNREACH_NLRI: u8 = 15;
pub const EXTENDED_COMMUNITIES: u8 = 16;
pub const AS4_PATH: u8 = 17;
pub const AS4_AGGREGATOR: u8 = 18;
pub const LARGE_COMMUNITIES: u8 = 32;

/// The Optional and Transitive bits an attribute the codec knows must carry, if it knows it.
pub(super) fn expected_flags(code: u8) -> Option<u8> {
    match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => Some(FLAG_TRANSITIVE),
        MED | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => Some(FLAG_OPTIONAL),
        AGGREGATOR | COMMUNITIES | EXTENDED_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR
        | LARGE_COMMUNITIES => Some(FLAG_OPTIONAL | FLAG_TRANSITIVE),
        _ => None,
    }
}

/// The path attributes of an UPDATE and, if one was malformed so, why it is treated as a
/// withdrawal.
#[derive(Debug, Default)]
pub(super) struct DecodedAttributes {
    pub attributes: PathAttributes,
    pub withdraw: Option<String>,
}

#[derive(Default)]
struct As4 {
    path: Option<AsPath>,
    aggregator: Option<Aggregator>,
}

/// Decodes the Path Attributes field of an UPDATE.
pub(super) fn decode(
    field: &[u8],
    context: &CodecContext,
) -> Result<DecodedAttributes, DecodeError> {
    let mut decoded = DecodedAttributes::default();
    let mut as4 = As4::default();
    let mut seen = [false; 256];
    let mut reader = Reader::new(field);
    while !reader.is_empty() {
        let whole = reader.rest();
        let (Some(flags), Some(code)) = (reader.u8(), reader.u8()) else {
            decoded.withdraw("attribute field ends inside an attribute header");
            break;
        };
        let length = if flags & FLAG_EXTENDED_LENGTH != 0 {
            reader.u16().map(usize::from)
        } else {
            reader.u8().map(usize::from)
        };
        let header_len = whole.len() - reader.remaining();
        let Some(value) = length.and_then(|length| reader.take(length)) else {
            if matches!(code, MP_REACH_NLRI | MP_UNREACH_NLRI) {
                return Err(DecodeError::update(
                    error_code::OPTIONAL_ATTRIBUTE_ERROR,
                    whole,
                    format!("attribute {code} overruns the attribute field"),
                ));
            }
            decoded.withdraw(format!("attribute {code} overruns the attribute field"));
            break;
        };
        let raw = whole.get(..header_len + value.len()).unwrap_or(whole);
        let first = !std::mem::replace(&mut seen[usize::from(code)], true);
        if !first {
            if matches!(code, MP_REACH_NLRI | MP_UNREACH_NLRI) {
                return Err(DecodeError::update(
                    error_code::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                    format!("attribute {code} appears twice"),
                ));
            }
            continue;
        }
        let Some(expected) = expected_flags(code) else {
            unknown(&mut decoded.attributes, flags, code, value, raw)?;
            continue;
        };
        let result = if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) == expected {
            decode_one(&mut decoded.attributes, &mut as4, code, value, context)
        } else {
            Err(format!("flags {flags:#04x}"))
        };
        if let Err(reason) = result {
            let reason = format!("malformed attribute {code}: {reason}");
            match code {
                ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => {}
                MP_REACH_NLRI | MP_UNREACH_NLRI => {
                    return Err(DecodeError::update(
                        error_code::OPTIONAL_ATTRIBUTE_ERROR,
                        raw,
                        reason,
                    ));
                }
                _ => decoded.withdraw(reason),
            }
        }
    }
    if !context.four_octet_as {
        apply_as4(&mut decoded.attributes, as4);
    }
    Ok(decoded)
}

impl DecodedAttributes {
    fn withdraw(&mut self, reason: impl Into<String>) {
        self.withdraw.get_or_insert_with(|| reason.into());
    }
}

fn unknown(
    attributes: &mut PathAttributes,
    flags: u8,
    code: u8,
    value: &[u8],
    raw: &[u8],
) -> Result<(), DecodeError> {
    if flags & FLAG_OPTIONAL == 0 {
        return Err(DecodeError::update(
            error_code::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            raw,
            format!("unrecognized well-known attribute {code}"),
        ));
    }
    if flags & FLAG_TRANSITIVE != 0 {
        attributes.unknown.push(crate::message::RawAttribute {
            flags: flags & !FLAG_EXTENDED_LENGTH,
            type_code: code,
            value: value.to_vec(),
        });
    }
    Ok(())
}

fn u32_value(value: &[u8]) -> Result<u32, String> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_be_bytes)
        .map_err(|_| format!("length {}", value.len()))
}

/// A nonzero multiple of `size` bytes (COMMUNITIES, CLUSTER_LIST, EXTENDED_COMMUNITIES,
/// LARGE_COMMUNITIES).
fn list_value(value: &[u8], size: usize) -> Result<(), String> {
    if value.is_empty() || !value.len().is_multiple_of(size) {
        return Err(format!(
            "length {} is not a nonzero multiple of {size}",
            value.len()
        ));
    }
    Ok(())
}

fn aggregator(value: &[u8], four_octet: bool) -> Result<Aggregator, String> {
    let mut reader = Reader::new(value);
    let asn = if four_octet {
        reader.u32()
    } else {
        reader.u16().map(u32::from)
    };
    match (asn, reader.u32()) {
        (Some(asn), Some(address)) if reader.is_empty() => Ok(Aggregator {
            asn,
            address: Ipv4Addr::from(address),
        }),
        _ => Err(format!("length {}", value.len())),
    }
}

fn decode_one(
    attributes: &mut PathAttributes,
    as4: &mut As4,
    code: u8,
    value: &[u8],
    context: &CodecContext,
) -> Result<(), String> {
    match code {
        ORIGIN => {
            attributes.origin = Some(match value {
                [0] => Origin::Igp,
                [1] => Origin::Egp,
                [2] => Origin::Incomplete,
                _ => return Err(format!("value {value:?}")),
            });
        }
        AS_PATH => attributes.as_path = Some(aspath::decode(value, context.four_octet_as)?),
        NEXT_HOP => attributes.next_hop = Some(Ipv4Addr::from(u32_value(value)?)),
        MED => attributes.med = Some(u32_value(value)?),
        LOCAL_PREF => attributes.local_pref = Some(u32_value(value)?),
        ATOMIC_AGGREGATE if value.is_empty() => attributes.atomic_aggregate = true,
        ATOMIC_AGGREGATE => return Err(format!("length {}", value.len())),
        AGGREGATOR => attributes.aggregator = Some(aggregator(value, context.four_octet_as)?),
        COMMUNITIES => {
            list_value(value, 4)?;
            let words = value
                .chunks_exact(4)
                .filter_map(|c| c.first_chunk().copied());
            attributes.communities = words.map(u32::from_be_bytes).collect();
        }
        EXTENDED_COMMUNITIES => {
            list_value(value, 8)?;
            let entries = value
                .chunks_exact(8)
                .filter_map(|c| c.first_chunk::<8>().copied());
            attributes.extended_communities = entries.map(ExtendedCommunity::from_bytes).collect();
        }
        ORIGINATOR_ID => attributes.originator_id = Some(Ipv4Addr::from(u32_value(value)?)),
        CLUSTER_LIST => {
            list_value(value, 4)?;
            let words = value
                .chunks_exact(4)
                .filter_map(|c| c.first_chunk::<4>().copied());
            attributes.cluster_list = words.map(Ipv4Addr::from).collect();
        }
        MP_REACH_NLRI => attributes.mp_reach = mp::decode_reach(value, context)?,
        MP_UNREACH_NLRI => attributes.mp_unreach = mp::decode_unreach(value, context)?,
        AS4_PATH => {
            let path = aspath::decode(value, true)?;
            if aspath::has_confed(&path) {
                return Err("confederation segment in AS4_PATH".into());
            }
            as4.path = Some(path);
        }
        AS4_AGGREGATOR => as4.aggregator = Some(aggregator(value, true)?),
        LARGE_COMMUNITIES => {
            list_value(value, 12)?;
            let mut reader = Reader::new(value);
            let mut communities = Vec::with_capacity(value.len() / 12);
            while let (Some(global_admin), Some(local_data_1), Some(local_data_2)) =
                (reader.u32(), reader.u32(), reader.u32())
            {
                communities.push(LargeCommunity {
                    global_admin,
                    local_data_1,
                    local_data_2,
                });
            }
            attributes.large_communities = communities;
        }
        _ => {}
    }
    Ok(())
}

/// RFC 6793 §4.2.3 on a session with a 2-octet peer: AGGREGATOR other than AS_TRANS means
/// AS4_AGGREGATOR and AS4_PATH are ignored; else AS4_AGGREGATOR replaces AGGREGATOR and
/// AS4_PATH is merged into AS_PATH.
fn apply_as4(attributes: &mut PathAttributes, as4: As4) {
    if let Some(aggregator) = attributes.aggregator {
        if aggregator.asn != u32::from(AS_TRANS) {
            return;
        }
        if let Some(real) = as4.aggregator {
            attributes.aggregator = Some(real);
        }
    }
    // Without AS_PATH, AS4_PATH alone means nothing (the missing AS_PATH is caught later).
    if let Some(as4_path) = as4.path
        && let Some(as_path) = attributes.as_path.take()
    {
        attributes.as_path = Some(aspath::merge(as_path, as4_path));
    }
}
