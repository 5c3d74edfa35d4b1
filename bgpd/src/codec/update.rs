//! UPDATE decoding (RFC 4271 §4.3) and the RFC 7606 outcome: a message, a treat-as-withdraw,
//! or a session reset. No I/O.
//!
//! - Withdrawn Routes Length or Total Path Attribute Length overrunning the message: the
//!   NLRI cannot be located, so session reset 3/1.
//! - A malformed Withdrawn Routes or NLRI field (prefix length above 32, a prefix or path
//!   identifier overrunning the field): session reset 3/10 (RFC 7606 §5.3).
//! - NLRI (classic or MP_REACH) without ORIGIN or AS_PATH, or classic NLRI without NEXT_HOP:
//!   treat-as-withdraw (RFC 7606 §3(d)). An UPDATE with only withdrawals needs no attribute.
//! - A treat-as-withdraw update carries the classic withdrawals plus the classic NLRI in
//!   `withdrawn`, and MP_UNREACH plus MP_REACH NLRI in `attributes.mp_unreach`. IPv4 unicast
//!   MP NLRI goes to `withdrawn` when MP_REACH and MP_UNREACH are of different families; two
//!   families other than IPv4 unicast cannot be withdrawn in one value: session reset 3/1.

use super::{
    CodecContext, Decoded, attributes,
    error::DecodeError,
    nlri::{self, AFI_IPV4},
    reader::Reader,
};
use crate::message::{Family, Message, MpUnreach, Nlri, PathAttributes, Update, error_code};

pub(super) fn decode_update(body: &[u8], context: &CodecContext) -> Result<Decoded, DecodeError> {
    let mut reader = Reader::new(body);
    let overrun = |what: &str| {
        DecodeError::update(
            error_code::MALFORMED_ATTRIBUTE_LIST,
            &[],
            format!("{what} overruns the UPDATE"),
        )
    };
    let withdrawn_len = reader
        .u16()
        .ok_or_else(|| overrun("withdrawn routes length"))?;
    let withdrawn_field = reader
        .take(usize::from(withdrawn_len))
        .ok_or_else(|| overrun("withdrawn routes"))?;
    let attributes_len = reader
        .u16()
        .ok_or_else(|| overrun("total path attribute length"))?;
    let attributes_field = reader
        .take(usize::from(attributes_len))
        .ok_or_else(|| overrun("path attributes"))?;
    let nlri_field = reader.rest();

    let add_path = context.receives_path_id(Family::IPV4_UNICAST);
    let invalid_network = |reason: String| {
        DecodeError::update(
            error_code::INVALID_NETWORK_FIELD,
            &[],
            format!("malformed NLRI: {reason}"),
        )
    };
    let mut withdrawn = Vec::new();
    nlri::decode_prefixes(withdrawn_field, AFI_IPV4, add_path, &mut withdrawn)
        .map_err(invalid_network)?;
    let mut nlri = Vec::new();
    nlri::decode_prefixes(nlri_field, AFI_IPV4, add_path, &mut nlri).map_err(invalid_network)?;

    let decoded = attributes::decode(attributes_field, context)?;
    let attributes = decoded.attributes;
    let mut withdraw = decoded.withdraw;
    let mp_nlri = attributes
        .mp_reach
        .as_ref()
        .is_some_and(|reach| !reach.nlri.is_empty());
    if !nlri.is_empty() || mp_nlri {
        let missing = if attributes.origin.is_none() {
            Some("ORIGIN")
        } else if attributes.as_path.is_none() {
            Some("AS_PATH")
        } else if !nlri.is_empty() && attributes.next_hop.is_none() {
            Some("NEXT_HOP")
        } else {
            None
        };
        if let Some(missing) = missing {
            withdraw.get_or_insert_with(|| format!("missing well-known attribute {missing}"));
        }
    }
    match withdraw {
        None => Ok(Decoded::Message(Message::Update(Update {
            withdrawn,
            attributes,
            nlri,
        }))),
        Some(reason) => Ok(Decoded::TreatAsWithdraw {
            update: as_withdrawal(withdrawn, nlri, attributes)?,
            reason,
        }),
    }
}

/// The withdrawals an update turns into when treated as withdraw.
fn as_withdrawal(
    mut withdrawn: Vec<Nlri>,
    nlri: Vec<Nlri>,
    attributes: PathAttributes,
) -> Result<Update, DecodeError> {
    withdrawn.extend(nlri);
    let mut unreach = attributes.mp_unreach;
    if let Some(reach) = attributes.mp_reach {
        unreach = match unreach {
            Some(mut unreach) if unreach.family == reach.family => {
                unreach.withdrawn.extend(reach.nlri);
                Some(unreach)
            }
            other if reach.family == Family::IPV4_UNICAST => {
                withdrawn.extend(reach.nlri);
                other
            }
            Some(unreach) if unreach.family == Family::IPV4_UNICAST => {
                withdrawn.extend(unreach.withdrawn);
                Some(MpUnreach {
                    family: reach.family,
                    withdrawn: reach.nlri,
                })
            }
            None => Some(MpUnreach {
                family: reach.family,
                withdrawn: reach.nlri,
            }),
            Some(_) => {
                return Err(DecodeError::update(
                    error_code::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                    "malformed UPDATE with MP_REACH and MP_UNREACH of two other families",
                ));
            }
        };
    }
    let attributes = PathAttributes {
        mp_unreach: unreach,
        ..PathAttributes::default()
    };
    Ok(Update {
        withdrawn,
        attributes,
        nlri: Vec::new(),
    })
}
