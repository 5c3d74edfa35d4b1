//! OPEN message body: version, AS, hold time, BGP identifier and optional parameters
//! (capabilities, RFC 5492), with RFC 9072 extended parameter lengths. No I/O.
//!
//! Encode puts all capabilities in one Capabilities parameter; when that would exceed 255
//! bytes it uses the RFC 9072 extended form. Decode accepts any number of Capabilities
//! parameters, in either form, and concatenates them; any other parameter type is 2/4.

use std::net::Ipv4Addr;

use super::{EncodeError, capabilities, error::DecodeError, reader::Reader};
use crate::message::{Open, error_code};

/// Optional parameter type of Capabilities (RFC 5492).
const PARAMETER_CAPABILITIES: u8 = 2;
/// RFC 9072: this value in both the length and the first type octet marks the extended form.
const EXTENDED_PARAMETERS: u8 = 255;

pub(super) fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let mut reader = Reader::new(body);
    let (Some(version), Some(my_as), Some(hold_time), Some(identifier), Some(parameters_len)) = (
        reader.u8(),
        reader.u16(),
        reader.u16(),
        reader.u32(),
        reader.u8(),
    ) else {
        return Err(DecodeError::open(0, "OPEN shorter than 10 bytes"));
    };
    if version != 4 {
        return Err(DecodeError::new(
            error_code::OPEN_MESSAGE,
            error_code::UNSUPPORTED_VERSION,
            vec![0, 4],
            format!("unsupported BGP version {version}"),
        ));
    }
    let mut parameters_len = usize::from(parameters_len);
    let extended = parameters_len == usize::from(EXTENDED_PARAMETERS)
        && reader.rest().first() == Some(&EXTENDED_PARAMETERS);
    if extended {
        let _ = reader.u8();
        parameters_len = reader
            .u16()
            .map(usize::from)
            .ok_or_else(|| DecodeError::open(0, "truncated extended optional parameters length"))?;
    }
    let parameters = reader
        .take(parameters_len)
        .ok_or_else(|| DecodeError::open(0, "optional parameters overrun the OPEN message"))?;
    if !reader.is_empty() {
        return Err(DecodeError::open(0, "bytes after the optional parameters"));
    }
    let mut capabilities = Vec::new();
    let mut reader = Reader::new(parameters);
    while !reader.is_empty() {
        let kind = reader.u8();
        let length = if extended {
            reader.u16().map(usize::from)
        } else {
            reader.u8().map(usize::from)
        };
        let (Some(kind), Some(length)) = (kind, length) else {
            return Err(DecodeError::open(0, "truncated optional parameter header"));
        };
        let value = reader
            .take(length)
            .ok_or_else(|| DecodeError::open(0, "optional parameter overruns its field"))?;
        if kind != PARAMETER_CAPABILITIES {
            return Err(DecodeError::open(
                error_code::UNSUPPORTED_OPTIONAL_PARAMETER,
                format!("unsupported optional parameter {kind}"),
            ));
        }
        capabilities::decode_capabilities(value, &mut capabilities)?;
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_identifier: Ipv4Addr::from(identifier),
        capabilities,
    })
}

/// Writes the OPEN body after a header written by `begin`.
pub(super) fn encode_open(open: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(open.version);
    out.extend_from_slice(&open.my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.bgp_identifier.octets());
    if open.capabilities.is_empty() {
        out.push(0);
        return Ok(());
    }
    let mut value = Vec::with_capacity(64);
    for capability in &open.capabilities {
        capabilities::encode_capability(capability, &mut value)?;
    }
    match u8::try_from(value.len() + 2) {
        Ok(total) if total < EXTENDED_PARAMETERS => {
            out.extend_from_slice(&[total, PARAMETER_CAPABILITIES, total - 2]);
        }
        _ => {
            let inner = u16::try_from(value.len())
                .map_err(|_| EncodeError::invalid("capabilities exceed 65535 bytes"))?;
            let total = u16::try_from(value.len() + 3)
                .map_err(|_| EncodeError::invalid("capabilities exceed 65535 bytes"))?;
            out.extend_from_slice(&[EXTENDED_PARAMETERS, EXTENDED_PARAMETERS]);
            out.extend_from_slice(&total.to_be_bytes());
            out.push(PARAMETER_CAPABILITIES);
            out.extend_from_slice(&inner.to_be_bytes());
        }
    }
    out.extend_from_slice(&value);
    Ok(())
}
