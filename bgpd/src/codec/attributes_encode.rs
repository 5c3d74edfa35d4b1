//! Path attribute encoding, in type-code order, with the Extended Length flag when a value is
//! longer than 255 bytes. No I/O.
//!
//! The attributes other than MP_REACH/MP_UNREACH are encoded once per update into two byte
//! runs (type codes below 14 and above 15) that every message split from the update repeats
//! around its MP attribute. On a 2-octet session (RFC 6793 §4.2.2) AS_PATH carries AS_TRANS
//! for large ASNs and AS4_PATH the real path (without confederation segments); AGGREGATOR
//! carries AS_TRANS and AS4_AGGREGATOR the real one when its ASN is large *or* AS4_PATH is
//! sent (so that the receiver's §4.2.3 rule "AGGREGATOR other than AS_TRANS: ignore AS4_PATH"
//! does not throw the real path away). Unknown optional transitive attributes are written
//! with the Partial bit set; an `unknown` entry with a type code the codec knows is refused.

use super::{
    CodecContext, EncodeError, aspath,
    attributes::{
        self as code, FLAG_EXTENDED_LENGTH, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE,
    },
    reader::patch,
};
use crate::message::{AS_TRANS, Aggregator, PathAttributes, RawAttribute};

/// The encoded attributes of one update, less MP_REACH and MP_UNREACH.
#[derive(Debug, Default)]
pub(super) struct EncodedAttributes {
    /// Type codes 1..=13.
    pub before_mp: Vec<u8>,
    /// Type codes 16..=255.
    pub after_mp: Vec<u8>,
}

impl EncodedAttributes {
    pub(super) fn len(&self) -> usize {
        self.before_mp.len() + self.after_mp.len()
    }
}

/// Appends one attribute whose value `write` appends; picks the length form afterwards.
pub(super) fn attribute(
    out: &mut Vec<u8>,
    flags: u8,
    type_code: u8,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, type_code, 0, 0]);
    write(out)?;
    let length = out.len() - start - 4;
    if let Ok(short) = u8::try_from(length) {
        patch(
            out,
            start,
            &[flags & !FLAG_EXTENDED_LENGTH, type_code, short],
        );
        out.remove(start + 3);
    } else if let Ok(long) = u16::try_from(length) {
        patch(out, start + 2, &long.to_be_bytes());
    } else {
        out.truncate(start);
        return Err(EncodeError::invalid(format!(
            "attribute {type_code} exceeds 65535 bytes"
        )));
    }
    Ok(())
}

fn fixed(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) -> Result<(), EncodeError> {
    attribute(out, flags, type_code, |out| {
        out.extend_from_slice(value);
        Ok(())
    })
}

fn aggregator_value(aggregator: &Aggregator, asn_four_octet: bool, asn: u32) -> Vec<u8> {
    let mut value = Vec::with_capacity(8);
    if asn_four_octet {
        value.extend_from_slice(&asn.to_be_bytes());
    } else {
        value.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS).to_be_bytes());
    }
    value.extend_from_slice(&aggregator.address.octets());
    value
}

/// Encodes every attribute but MP_REACH/MP_UNREACH.
pub(super) fn encode(
    attributes: &PathAttributes,
    context: &CodecContext,
) -> Result<EncodedAttributes, EncodeError> {
    let mut unknown: Vec<&RawAttribute> = attributes.unknown.iter().collect();
    if let Some(known) = unknown
        .iter()
        .find(|raw| code::expected_flags(raw.type_code).is_some())
    {
        return Err(EncodeError::invalid(format!(
            "unknown attribute with known type code {}",
            known.type_code
        )));
    }
    unknown.sort_by_key(|raw| raw.type_code);
    let mut unknown = unknown.into_iter().peekable();
    let mut encoded = EncodedAttributes::default();
    let wide = context.four_octet_as;
    let as4_path = attributes
        .as_path
        .as_ref()
        .filter(|path| !wide && aspath::needs_four_octets(path));
    let as4_aggregator = attributes
        .aggregator
        .filter(|aggregator| !wide && (aggregator.asn > u32::from(u16::MAX) || as4_path.is_some()));
    let well_known = FLAG_TRANSITIVE;
    let optional = FLAG_OPTIONAL;
    let optional_transitive = FLAG_OPTIONAL | FLAG_TRANSITIVE;
    let order = [
        code::ORIGIN,
        code::AS_PATH,
        code::NEXT_HOP,
        code::MED,
        code::LOCAL_PREF,
        code::ATOMIC_AGGREGATE,
        code::AGGREGATOR,
        code::COMMUNITIES,
        code::ORIGINATOR_ID,
        code::CLUSTER_LIST,
        code::EXTENDED_COMMUNITIES,
        code::AS4_PATH,
        code::AS4_AGGREGATOR,
        code::LARGE_COMMUNITIES,
    ];
    for type_code in order.into_iter().chain([u8::MAX]) {
        while let Some(raw) =
            unknown.next_if(|raw| raw.type_code < type_code || type_code == u8::MAX)
        {
            let out = if raw.type_code < code::MP_REACH_NLRI {
                &mut encoded.before_mp
            } else {
                &mut encoded.after_mp
            };
            let partial = if raw.flags & optional_transitive == optional_transitive {
                FLAG_PARTIAL
            } else {
                0
            };
            fixed(out, raw.flags | partial, raw.type_code, &raw.value)?;
        }
        let out = if type_code < code::MP_REACH_NLRI {
            &mut encoded.before_mp
        } else {
            &mut encoded.after_mp
        };
        match type_code {
            code::ORIGIN => {
                if let Some(origin) = attributes.origin {
                    fixed(out, well_known, type_code, &[origin as u8])?;
                }
            }
            code::AS_PATH => {
                if let Some(path) = &attributes.as_path {
                    attribute(out, well_known, type_code, |out| {
                        aspath::encode(out, path, wide, false);
                        Ok(())
                    })?;
                }
            }
            code::NEXT_HOP => {
                if let Some(next_hop) = attributes.next_hop {
                    fixed(out, well_known, type_code, &next_hop.octets())?;
                }
            }
            code::MED => {
                if let Some(med) = attributes.med {
                    fixed(out, optional, type_code, &med.to_be_bytes())?;
                }
            }
            code::LOCAL_PREF => {
                if let Some(local_pref) = attributes.local_pref {
                    fixed(out, well_known, type_code, &local_pref.to_be_bytes())?;
                }
            }
            code::ATOMIC_AGGREGATE if attributes.atomic_aggregate => {
                fixed(out, well_known, type_code, &[])?;
            }
            code::AGGREGATOR => {
                if let Some(aggregator) = &attributes.aggregator {
                    let asn = if as4_aggregator.is_some() {
                        u32::from(AS_TRANS)
                    } else {
                        aggregator.asn
                    };
                    fixed(
                        out,
                        optional_transitive,
                        type_code,
                        &aggregator_value(aggregator, wide, asn),
                    )?;
                }
            }
            code::COMMUNITIES if !attributes.communities.is_empty() => {
                attribute(out, optional_transitive, type_code, |out| {
                    attributes
                        .communities
                        .iter()
                        .for_each(|c| out.extend_from_slice(&c.to_be_bytes()));
                    Ok(())
                })?;
            }
            code::ORIGINATOR_ID => {
                if let Some(originator) = attributes.originator_id {
                    fixed(out, optional, type_code, &originator.octets())?;
                }
            }
            code::CLUSTER_LIST if !attributes.cluster_list.is_empty() => {
                attribute(out, optional, type_code, |out| {
                    attributes
                        .cluster_list
                        .iter()
                        .for_each(|id| out.extend_from_slice(&id.octets()));
                    Ok(())
                })?;
            }
            code::EXTENDED_COMMUNITIES if !attributes.extended_communities.is_empty() => {
                attribute(out, optional_transitive, type_code, |out| {
                    attributes
                        .extended_communities
                        .iter()
                        .for_each(|c| out.extend_from_slice(&c.to_bytes()));
                    Ok(())
                })?;
            }
            code::AS4_PATH => {
                if let Some(path) = as4_path {
                    attribute(out, optional_transitive, type_code, |out| {
                        aspath::encode(out, path, true, true);
                        Ok(())
                    })?;
                }
            }
            code::AS4_AGGREGATOR => {
                if let Some(aggregator) = &as4_aggregator {
                    fixed(
                        out,
                        optional_transitive,
                        type_code,
                        &aggregator_value(aggregator, true, aggregator.asn),
                    )?;
                }
            }
            code::LARGE_COMMUNITIES if !attributes.large_communities.is_empty() => {
                attribute(out, optional_transitive, type_code, |out| {
                    for community in &attributes.large_communities {
                        out.extend_from_slice(&community.global_admin.to_be_bytes());
                        out.extend_from_slice(&community.local_data_1.to_be_bytes());
                        out.extend_from_slice(&community.local_data_2.to_be_bytes());
                    }
                    Ok(())
                })?;
            }
            _ => {}
        }
    }
    Ok(encoded)
}
