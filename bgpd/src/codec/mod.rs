//! BGP-4 wire codec: bytes <-> `crate::message` values (RFC 4271, 4760, 6793, 7606, 7911,
//! 8950, 9072). No I/O: the session task hands it buffers and writes the bytes it returns.
//!
//! Decisions (see also the module comments of `attributes` and `update`):
//! - `decode_message` needs the whole message in the buffer; it checks the header (marker 1/1,
//!   length 1/2 with the length as data, type 1/3 with the type as data) as soon as 19 bytes
//!   are there, before the rest arrives.
//! - UPDATE errors follow RFC 7606: session reset (`Err(DecodeError)`), treat-as-withdraw
//!   (`Decoded::TreatAsWithdraw`) or attribute discard (the attribute is left out).
//! - 2-octet sessions (`!four_octet_as`): AS_TRANS + AS4_PATH/AS4_AGGREGATOR on encode, merged
//!   back on decode; AS4_* never appear in a decoded value.
//! - Unknown optional transitive attributes are re-encoded with the Partial bit set by the
//!   encoder (the caller need not set it); unknown optional non-transitive ones are dropped on
//!   decode.

mod aspath;
mod attributes;
mod attributes_encode;
mod capabilities;
mod error;
mod mp;
mod nlri;
mod open;
mod reader;
mod update;
mod update_encode;

#[cfg(test)]
mod tests;

pub use error::{DecodeError, EncodeError};
pub use update_encode::encode_update_split;

use crate::message::{Family, Message, Notification, RouteRefresh, Update, error_code};
use reader::{Reader, patch};

/// RFC 4271 maximum message size (extended messages, RFC 8654, are not negotiated).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Marker (16) + length (2) + type (1).
pub const HEADER_LEN: usize = 19;
/// The all-ones marker that starts every message.
pub const MARKER: [u8; 16] = [0xff; 16];

/// Message type codes (RFC 4271 §4.1, RFC 2918).
pub mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// What was negotiated on the session, which changes the wire format of UPDATEs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Families whose received NLRI carry a path identifier (RFC 7911).
    pub add_path_receive: Vec<Family>,
    /// Families whose sent NLRI carry a path identifier.
    pub add_path_send: Vec<Family>,
    /// IPv4 NLRI with an IPv6 next hop may be sent in MP_REACH (RFC 8950).
    pub extended_next_hop: bool,
}

impl CodecContext {
    /// A 4-octet session without add-path or extended next hop.
    pub fn four_octet() -> Self {
        CodecContext {
            four_octet_as: true,
            ..CodecContext::default()
        }
    }

    pub(crate) fn receives_path_id(&self, family: Family) -> bool {
        self.add_path_receive.contains(&family)
    }

    pub(crate) fn sends_path_id(&self, family: Family) -> bool {
        self.add_path_send.contains(&family)
    }
}

/// A decoded message, or an UPDATE that RFC 7606 says to treat as a withdrawal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Message(Message),
    /// RFC 7606 treat-as-withdraw: the update's NLRI (classic + MP_REACH) turned into
    /// withdrawals (classic `withdrawn` and `attributes.mp_unreach`; no other attribute is
    /// set), with the reason.
    TreatAsWithdraw {
        update: Update,
        reason: String,
    },
}

/// Splits one message off the front of a byte buffer: Ok(None) when more bytes are needed;
/// Ok(Some((message, consumed))) or an error that maps to a NOTIFICATION (header errors: bad
/// marker -> 1/1, bad length -> 1/2 with the length as data, bad type -> 1/3).
pub fn decode_message(
    buffer: &[u8],
    context: &CodecContext,
) -> Result<Option<(Decoded, usize)>, DecodeError> {
    let Some(header) = buffer.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut reader = Reader::new(header);
    let (Some(marker), Some(length), Some(kind)) = (reader.take(16), reader.u16(), reader.u8())
    else {
        return Ok(None);
    };
    if marker != MARKER {
        return Err(DecodeError::header(
            error_code::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
            "message marker is not all ones",
        ));
    }
    let minimum = match kind {
        message_type::OPEN => 29,
        message_type::UPDATE => 23,
        message_type::NOTIFICATION => 21,
        message_type::KEEPALIVE | message_type::ROUTE_REFRESH => HEADER_LEN,
        other => {
            return Err(DecodeError::header(
                error_code::BAD_MESSAGE_TYPE,
                vec![other],
                format!("unknown message type {other}"),
            ));
        }
    };
    let size = usize::from(length);
    if size < minimum || size > MAX_MESSAGE_LEN || (kind == message_type::KEEPALIVE && size != 19) {
        return Err(DecodeError::bad_length(
            length,
            format!("bad length {length} for type {kind}"),
        ));
    }
    let Some(message) = buffer.get(..size) else {
        return Ok(None);
    };
    let body = message.get(HEADER_LEN..).unwrap_or_default();
    let decoded = match kind {
        message_type::OPEN => Decoded::Message(Message::Open(open::decode_open(body)?)),
        message_type::UPDATE => update::decode_update(body, context)?,
        message_type::NOTIFICATION => {
            Decoded::Message(Message::Notification(decode_notification(body)))
        }
        message_type::KEEPALIVE => Decoded::Message(Message::Keepalive),
        _ => Decoded::Message(Message::RouteRefresh(decode_route_refresh(
            message, length,
        )?)),
    };
    Ok(Some((decoded, size)))
}

/// Encodes one message. An UPDATE that does not fit in 4096 bytes is an error here; use
/// `encode_update_split` for those.
pub fn encode_message(message: &Message, context: &CodecContext) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode_message_into(message, context, &mut out)?;
    Ok(out)
}

/// Appends one encoded message to `out` (reusable buffer); on error `out` is left as it was.
pub fn encode_message_into(
    message: &Message,
    context: &CodecContext,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = match message {
        Message::Open(open) => {
            begin(out, message_type::OPEN);
            open::encode_open(open, out)
        }
        Message::Update(update) => update_encode::encode_update_into(update, context, out),
        Message::Notification(notification) => {
            begin(out, message_type::NOTIFICATION);
            out.extend_from_slice(&[notification.code, notification.subcode]);
            out.extend_from_slice(&notification.data);
            Ok(())
        }
        Message::Keepalive => {
            begin(out, message_type::KEEPALIVE);
            Ok(())
        }
        Message::RouteRefresh(refresh) => {
            begin(out, message_type::ROUTE_REFRESH);
            out.extend_from_slice(&refresh.family.afi.to_be_bytes());
            out.extend_from_slice(&[refresh.subtype, refresh.family.safi]);
            Ok(())
        }
    };
    match result.and_then(|()| finish(out, start)) {
        Ok(()) => Ok(()),
        Err(error) => {
            out.truncate(start);
            Err(error)
        }
    }
}

/// Writes a header with a placeholder length.
pub(crate) fn begin(out: &mut Vec<u8>, kind: u8) {
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, kind]);
}

/// Patches the length of the message that starts at `start`, checking the 4096-byte limit.
pub(crate) fn finish(out: &mut [u8], start: usize) -> Result<(), EncodeError> {
    let length = out.len().saturating_sub(start);
    let Ok(wire) = u16::try_from(length) else {
        return Err(EncodeError::TooLong { length });
    };
    if length > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong { length });
    }
    patch(out, start + 16, &wire.to_be_bytes());
    Ok(())
}

fn decode_notification(body: &[u8]) -> Notification {
    let mut reader = Reader::new(body);
    let code = reader.u8().unwrap_or_default();
    let subcode = reader.u8().unwrap_or_default();
    Notification {
        code,
        subcode,
        data: reader.rest().to_vec(),
    }
}

/// ROUTE-REFRESH: 4 bytes of body. A wrong length is 7/1 with the whole message as data for
/// the RFC 7313 subtypes 1 and 2, else 1/2 (RFC 2918).
fn decode_route_refresh(message: &[u8], length: u16) -> Result<RouteRefresh, DecodeError> {
    let mut reader = Reader::new(message.get(HEADER_LEN..).unwrap_or_default());
    let afi = reader.u16();
    let subtype = reader.u8();
    let safi = reader.u8();
    match (afi, subtype, safi) {
        (Some(afi), Some(subtype), Some(safi)) if reader.is_empty() => Ok(RouteRefresh {
            family: Family { afi, safi },
            subtype,
        }),
        (_, Some(1 | 2), _) => Err(DecodeError::new(
            error_code::ROUTE_REFRESH,
            1,
            message.to_vec(),
            "ROUTE-REFRESH of invalid length",
        )),
        _ => Err(DecodeError::bad_length(
            length,
            "ROUTE-REFRESH must be 23 bytes",
        )),
    }
}
