//! Codec tests: byte-exact vectors both ways, RFC 7606 outcomes, splitting, property tests.
//! No I/O.

mod errors;
mod extended_communities;
mod proptests;
mod split;
mod vectors_open;
mod vectors_update;

use super::{CodecContext, Decoded, HEADER_LEN, MARKER, decode_message, encode_message};
use crate::message::Message;

/// Bytes from hex text; whitespace and `|` (field separators in the vectors) are ignored.
pub(super) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits in {text}");
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

/// A whole message: marker, length, type, then the body given in hex.
pub(super) fn framed(kind: u8, body: &str) -> Vec<u8> {
    let body = hex(body);
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(
        &u16::try_from(HEADER_LEN + body.len())
            .unwrap()
            .to_be_bytes(),
    );
    bytes.push(kind);
    bytes.extend_from_slice(&body);
    bytes
}

/// Decodes exactly one message that takes the whole buffer.
pub(super) fn decode(bytes: &[u8], context: &CodecContext) -> Decoded {
    let (decoded, consumed) = decode_message(bytes, context)
        .unwrap()
        .expect("a whole message");
    assert_eq!(consumed, bytes.len());
    decoded
}

/// Encode gives exactly `bytes` and decode gives exactly `message`.
pub(super) fn both_ways(message: &Message, context: &CodecContext, bytes: &[u8]) {
    assert_eq!(
        hex_string(&encode_message(message, context).unwrap()),
        hex_string(bytes),
        "encode of {message:?}"
    );
    assert_eq!(
        decode(bytes, context),
        Decoded::Message(message.clone()),
        "decode"
    );
}

pub(super) fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
