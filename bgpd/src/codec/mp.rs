//! MP_REACH_NLRI and MP_UNREACH_NLRI values (RFC 4760), with IPv6 link-local next hops
//! (RFC 2545: 16 or 32 bytes) and IPv6 next hops for IPv4 NLRI (RFC 8950). No I/O.
//!
//! Only the unicast and multicast SAFIs of IPv4 and IPv6 are understood; an MP attribute of
//! any other family is ignored on decode (it was not negotiated) and refused on encode. On
//! decode a 16- or 32-byte next hop is accepted for IPv4 NLRI whatever the context says; on
//! encode it needs `context.extended_next_hop`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    CodecContext, EncodeError,
    nlri::{self, AFI_IPV4, AFI_IPV6},
    reader::Reader,
};
use crate::message::{Family, MpReach, MpUnreach, Nlri};

/// Whether the NLRI of this family use the plain prefix encoding the codec knows.
pub(super) fn supported(family: Family) -> bool {
    matches!(family.afi, AFI_IPV4 | AFI_IPV6) && matches!(family.safi, 1 | 2)
}

fn read_family(reader: &mut Reader<'_>) -> Result<Family, String> {
    match (reader.u16(), reader.u8()) {
        (Some(afi), Some(safi)) => Ok(Family { afi, safi }),
        _ => Err("truncated AFI/SAFI".into()),
    }
}

/// Decodes MP_REACH_NLRI; `Ok(None)` for a family the codec does not know.
pub(super) fn decode_reach(
    value: &[u8],
    context: &CodecContext,
) -> Result<Option<MpReach>, String> {
    let mut reader = Reader::new(value);
    let family = read_family(&mut reader)?;
    let length = reader.u8().ok_or("truncated next hop length")?;
    let next_hop = reader
        .take(usize::from(length))
        .ok_or("next hop overruns the attribute")?;
    let _reserved = reader.u8().ok_or("missing reserved octet")?;
    if !supported(family) {
        return Ok(None);
    }
    let next_hops = match (family.afi, next_hop.len()) {
        (AFI_IPV4, 4) => ipv4(next_hop).map(IpAddr::V4).into_iter().collect(),
        (_, 16) => ipv6(next_hop).map(IpAddr::V6).into_iter().collect(),
        (_, 32) => {
            let (global, link_local) = next_hop.split_at(16);
            [ipv6(global), ipv6(link_local)]
                .into_iter()
                .flatten()
                .map(IpAddr::V6)
                .collect()
        }
        (_, other) => return Err(format!("next hop length {other} for AFI {}", family.afi)),
    };
    let mut nlri = Vec::new();
    nlri::decode_prefixes(
        reader.rest(),
        family.afi,
        context.receives_path_id(family),
        &mut nlri,
    )?;
    Ok(Some(MpReach {
        family,
        next_hops,
        nlri,
    }))
}

/// Decodes MP_UNREACH_NLRI; `Ok(None)` for a family the codec does not know.
pub(super) fn decode_unreach(
    value: &[u8],
    context: &CodecContext,
) -> Result<Option<MpUnreach>, String> {
    let mut reader = Reader::new(value);
    let family = read_family(&mut reader)?;
    if !supported(family) {
        return Ok(None);
    }
    let mut withdrawn = Vec::new();
    nlri::decode_prefixes(
        reader.rest(),
        family.afi,
        context.receives_path_id(family),
        &mut withdrawn,
    )?;
    Ok(Some(MpUnreach { family, withdrawn }))
}

fn ipv4(bytes: &[u8]) -> Option<Ipv4Addr> {
    bytes
        .first_chunk::<4>()
        .map(|octets| Ipv4Addr::from(*octets))
}

fn ipv6(bytes: &[u8]) -> Option<Ipv6Addr> {
    bytes
        .first_chunk::<16>()
        .map(|octets| Ipv6Addr::from(*octets))
}

/// The next hop field of an MP_REACH: up to 32 bytes and its length.
pub(super) fn next_hop_field(
    reach: &MpReach,
    context: &CodecContext,
) -> Result<([u8; 32], usize), EncodeError> {
    let mut field = [0u8; 32];
    let invalid = || {
        EncodeError::invalid(format!(
            "next hops {:?} for family {:?}",
            reach.next_hops, reach.family
        ))
    };
    if !supported(reach.family) {
        return Err(invalid());
    }
    let length = match (reach.family.afi, reach.next_hops.as_slice()) {
        (AFI_IPV4, [IpAddr::V4(address)]) => {
            field
                .iter_mut()
                .zip(address.octets())
                .for_each(|(slot, byte)| *slot = byte);
            4
        }
        (AFI_IPV4, [IpAddr::V6(_), ..]) if !context.extended_next_hop => {
            return Err(EncodeError::invalid(
                "IPv6 next hop for IPv4 NLRI without the extended next hop capability",
            ));
        }
        (_, [IpAddr::V6(global)]) => {
            field
                .iter_mut()
                .zip(global.octets())
                .for_each(|(slot, byte)| *slot = byte);
            16
        }
        (_, [IpAddr::V6(global), IpAddr::V6(link_local)]) => {
            let octets = global.octets().into_iter().chain(link_local.octets());
            field
                .iter_mut()
                .zip(octets)
                .for_each(|(slot, byte)| *slot = byte);
            32
        }
        _ => return Err(invalid()),
    };
    Ok((field, length))
}

/// Bytes of an MP_REACH value before its NLRI: AFI, SAFI, next hop length, next hop, reserved.
pub(super) fn reach_overhead(next_hop_len: usize) -> usize {
    5 + next_hop_len
}

/// Appends an MP_REACH value carrying `nlris` (a chunk of `reach.nlri`).
pub(super) fn encode_reach_value(
    out: &mut Vec<u8>,
    reach: &MpReach,
    next_hop: (&[u8; 32], usize),
    nlris: &[Nlri],
    context: &CodecContext,
) -> Result<(), EncodeError> {
    let (field, length) = next_hop;
    out.extend_from_slice(&reach.family.afi.to_be_bytes());
    out.push(reach.family.safi);
    out.push(u8::try_from(length).unwrap_or(0));
    out.extend(field.iter().take(length));
    out.push(0);
    nlri::encode_prefixes(
        out,
        nlris,
        reach.family.afi,
        context.sends_path_id(reach.family),
    )
}

/// Appends an MP_UNREACH value carrying `withdrawn` (a chunk of the attribute's list).
pub(super) fn encode_unreach_value(
    out: &mut Vec<u8>,
    family: Family,
    withdrawn: &[Nlri],
    context: &CodecContext,
) -> Result<(), EncodeError> {
    if !supported(family) {
        return Err(EncodeError::invalid(format!(
            "MP_UNREACH for unsupported family {family:?}"
        )));
    }
    out.extend_from_slice(&family.afi.to_be_bytes());
    out.push(family.safi);
    nlri::encode_prefixes(out, withdrawn, family.afi, context.sends_path_id(family))
}
