//! UPDATE encoding: one message, or an update split into as many 4096-byte messages as its
//! prefixes need, repeating the attributes. No I/O; one buffer per message and no heap
//! allocation per prefix.
//!
//! Split layout (only when the update does not fit in one message): classic withdrawals
//! (no attributes), then MP_UNREACH withdrawals (that attribute alone), then classic NLRI
//! (all attributes but MP_*), then MP_REACH NLRI (all attributes but MP_UNREACH). Withdrawals
//! go first so that a prefix both withdrawn and announced ends up announced.

use super::{
    CodecContext, EncodeError, HEADER_LEN, MAX_MESSAGE_LEN,
    attributes::{FLAG_OPTIONAL, MP_REACH_NLRI, MP_UNREACH_NLRI},
    attributes_encode::{self, EncodedAttributes, attribute},
    begin, finish, mp,
    nlri::{self, AFI_IPV4},
    reader::patch,
};
use crate::message::{Family, MpReach, Nlri, Update};

/// Room for prefixes and attributes in one UPDATE: 4096 - header - the two length fields.
const BODY_BUDGET: usize = MAX_MESSAGE_LEN - HEADER_LEN - 4;
/// An attribute header with a 2-byte length.
const ATTRIBUTE_HEADER: usize = 4;

/// What one UPDATE message carries.
#[derive(Clone, Copy, Default)]
struct Piece<'a> {
    withdrawn: &'a [Nlri],
    attributes: Option<&'a EncodedAttributes>,
    reach: Option<(&'a MpReach, &'a [Nlri])>,
    unreach: Option<(Family, &'a [Nlri])>,
    nlri: &'a [Nlri],
}

/// Appends one whole UPDATE; `EncodeError::TooLong` if it does not fit.
pub(super) fn encode_update_into(
    update: &Update,
    context: &CodecContext,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let attributes = attributes_encode::encode(&update.attributes, context)?;
    let next_hop = next_hop(update, context)?;
    let piece = whole(update, &attributes);
    write_piece(out, &piece, next_hop.as_ref(), context)
}

fn whole<'a>(update: &'a Update, attributes: &'a EncodedAttributes) -> Piece<'a> {
    Piece {
        withdrawn: &update.withdrawn,
        attributes: Some(attributes),
        reach: update
            .attributes
            .mp_reach
            .as_ref()
            .map(|reach| (reach, reach.nlri.as_slice())),
        unreach: update
            .attributes
            .mp_unreach
            .as_ref()
            .map(|unreach| (unreach.family, unreach.withdrawn.as_slice())),
        nlri: &update.nlri,
    }
}

fn next_hop(
    update: &Update,
    context: &CodecContext,
) -> Result<Option<([u8; 32], usize)>, EncodeError> {
    update
        .attributes
        .mp_reach
        .as_ref()
        .map(|reach| mp::next_hop_field(reach, context))
        .transpose()
}

fn write_piece(
    out: &mut Vec<u8>,
    piece: &Piece<'_>,
    next_hop: Option<&([u8; 32], usize)>,
    context: &CodecContext,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = write_body(out, piece, next_hop, context).and_then(|()| finish(out, start));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_body(
    out: &mut Vec<u8>,
    piece: &Piece<'_>,
    next_hop: Option<&([u8; 32], usize)>,
    context: &CodecContext,
) -> Result<(), EncodeError> {
    let ipv4_path_id = context.sends_path_id(Family::IPV4_UNICAST);
    begin(out, super::message_type::UPDATE);
    let withdrawn_at = out.len();
    out.extend_from_slice(&[0, 0]);
    nlri::encode_prefixes(out, piece.withdrawn, AFI_IPV4, ipv4_path_id)?;
    let withdrawn_len = length_field(out.len() - withdrawn_at - 2)?;
    patch(out, withdrawn_at, &withdrawn_len);
    let attributes_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(attributes) = piece.attributes {
        out.extend_from_slice(&attributes.before_mp);
    }
    if let Some((reach, nlris)) = piece.reach {
        let next_hop = next_hop.ok_or_else(|| EncodeError::invalid("MP_REACH without next hop"))?;
        attribute(out, FLAG_OPTIONAL, MP_REACH_NLRI, |out| {
            mp::encode_reach_value(out, reach, (&next_hop.0, next_hop.1), nlris, context)
        })?;
    }
    if let Some((family, withdrawn)) = piece.unreach {
        attribute(out, FLAG_OPTIONAL, MP_UNREACH_NLRI, |out| {
            mp::encode_unreach_value(out, family, withdrawn, context)
        })?;
    }
    if let Some(attributes) = piece.attributes {
        out.extend_from_slice(&attributes.after_mp);
    }
    let attributes_len = length_field(out.len() - attributes_at - 2)?;
    patch(out, attributes_at, &attributes_len);
    nlri::encode_prefixes(out, piece.nlri, AFI_IPV4, ipv4_path_id)
}

fn length_field(length: usize) -> Result<[u8; 2], EncodeError> {
    u16::try_from(length)
        .map(u16::to_be_bytes)
        .map_err(|_| EncodeError::TooLong { length })
}

/// Encodes an update into as many messages (each <= 4096 bytes) as its NLRI/withdrawals
/// need, repeating the attributes (this is how the RIB sends 1M prefixes: keep it fast, no
/// per-prefix allocation).
pub fn encode_update_split(
    update: &Update,
    context: &CodecContext,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let attributes = attributes_encode::encode(&update.attributes, context)?;
    let next_hop = next_hop(update, context)?;
    let ipv4_path_id = context.sends_path_id(Family::IPV4_UNICAST);
    let next_hop_len = next_hop.map_or(0, |(_, length)| length);
    let reach = update.attributes.mp_reach.as_ref();
    let unreach = update.attributes.mp_unreach.as_ref();
    let reach_bytes = reach.map_or(0, |reach| {
        ATTRIBUTE_HEADER
            + mp::reach_overhead(next_hop_len)
            + nlri::list_wire_len(&reach.nlri, context.sends_path_id(reach.family))
    });
    let unreach_bytes = unreach.map_or(0, |unreach| {
        ATTRIBUTE_HEADER
            + 3
            + nlri::list_wire_len(&unreach.withdrawn, context.sends_path_id(unreach.family))
    });
    let total = nlri::list_wire_len(&update.withdrawn, ipv4_path_id)
        + nlri::list_wire_len(&update.nlri, ipv4_path_id)
        + attributes.len()
        + reach_bytes
        + unreach_bytes;
    let mut messages = Vec::new();
    if total <= BODY_BUDGET {
        let mut out = Vec::with_capacity(HEADER_LEN + 4 + total);
        write_piece(
            &mut out,
            &whole(update, &attributes),
            next_hop.as_ref(),
            context,
        )?;
        messages.push(out);
        return Ok(messages);
    }
    let mut emit = |piece: Piece<'_>| -> Result<(), EncodeError> {
        let mut out = Vec::with_capacity(MAX_MESSAGE_LEN);
        write_piece(&mut out, &piece, next_hop.as_ref(), context)?;
        messages.push(out);
        Ok(())
    };
    for chunk in Chunks::new(&update.withdrawn, ipv4_path_id, BODY_BUDGET, false)? {
        emit(Piece {
            withdrawn: chunk,
            ..Piece::default()
        })?;
    }
    if let Some(unreach) = unreach {
        let budget = BODY_BUDGET - ATTRIBUTE_HEADER - 3;
        for chunk in Chunks::new(
            &unreach.withdrawn,
            context.sends_path_id(unreach.family),
            budget,
            true,
        )? {
            emit(Piece {
                unreach: Some((unreach.family, chunk)),
                ..Piece::default()
            })?;
        }
    }
    let budget = BODY_BUDGET.saturating_sub(attributes.len());
    for chunk in Chunks::new(&update.nlri, ipv4_path_id, budget, false)? {
        emit(Piece {
            attributes: Some(&attributes),
            nlri: chunk,
            ..Piece::default()
        })?;
    }
    if let Some(reach) = reach {
        let budget = budget.saturating_sub(ATTRIBUTE_HEADER + mp::reach_overhead(next_hop_len));
        for chunk in Chunks::new(
            &reach.nlri,
            context.sends_path_id(reach.family),
            budget,
            true,
        )? {
            emit(Piece {
                attributes: Some(&attributes),
                reach: Some((reach, chunk)),
                ..Piece::default()
            })?;
        }
    }
    Ok(messages)
}

/// Consecutive runs of prefixes that each fit in `budget` bytes; an empty list gives one
/// empty run when `keep_empty` (an MP attribute with no prefixes still says something).
struct Chunks<'a> {
    rest: &'a [Nlri],
    add_path: bool,
    budget: usize,
    pending_empty: bool,
}

impl<'a> Chunks<'a> {
    fn new(
        list: &'a [Nlri],
        add_path: bool,
        budget: usize,
        keep_empty: bool,
    ) -> Result<Self, EncodeError> {
        if let Some(first) = list.first()
            && nlri::wire_len(first, add_path) > budget
        {
            return Err(EncodeError::invalid(
                "the attributes leave no room for a prefix in 4096 bytes",
            ));
        }
        Ok(Chunks {
            rest: list,
            add_path,
            budget,
            pending_empty: keep_empty && list.is_empty(),
        })
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [Nlri];

    fn next(&mut self) -> Option<&'a [Nlri]> {
        if std::mem::take(&mut self.pending_empty) {
            return Some(&[]);
        }
        if self.rest.is_empty() {
            return None;
        }
        let count = nlri::fitting(self.rest, self.add_path, self.budget).max(1);
        let (chunk, rest) = self.rest.split_at(count.min(self.rest.len()));
        self.rest = rest;
        Some(chunk)
    }
}
