//! Capabilities in an OPEN (RFC 5492): multiprotocol, route refresh, extended next hop,
//! graceful restart, 4-octet AS, add-path; anything else kept as `Unknown`. No I/O.
//!
//! A known capability whose value is malformed (wrong length, add-path mode 0, a SAFI above
//! 255 in extended next hop) is kept as `Unknown` with its bytes: the session then behaves as
//! if the peer had not advertised it, rather than failing the OPEN.

use super::{EncodeError, error::DecodeError, reader::Reader};
use crate::message::{AddPathMode, Capability, Family, GracefulRestartFamily};

pub const MULTIPROTOCOL: u8 = 1;
pub const ROUTE_REFRESH: u8 = 2;
pub const EXTENDED_NEXT_HOP: u8 = 5;
pub const GRACEFUL_RESTART: u8 = 64;
pub const FOUR_OCTET_AS: u8 = 65;
pub const ADD_PATH: u8 = 69;

/// Graceful restart: Restart State (R) bit of the flags/time word, F bit per family.
const RESTART_STATE: u16 = 0x8000;
const RESTART_TIME_MASK: u16 = 0x0fff;
const FORWARDING_PRESERVED: u8 = 0x80;

/// Decodes the capabilities of one Capabilities optional parameter, appending to `out`.
pub(super) fn decode_capabilities(
    value: &[u8],
    out: &mut Vec<Capability>,
) -> Result<(), DecodeError> {
    let mut reader = Reader::new(value);
    while !reader.is_empty() {
        let (Some(code), Some(length)) = (reader.u8(), reader.u8()) else {
            return Err(DecodeError::open(0, "truncated capability header"));
        };
        let Some(value) = reader.take(usize::from(length)) else {
            return Err(DecodeError::open(
                0,
                format!("capability {code} overruns its parameter"),
            ));
        };
        out.push(
            decode_capability(code, value).unwrap_or_else(|| Capability::Unknown {
                code,
                value: value.to_vec(),
            }),
        );
    }
    Ok(())
}

/// One capability, or `None` when it is unknown or malformed.
fn decode_capability(code: u8, value: &[u8]) -> Option<Capability> {
    let mut reader = Reader::new(value);
    let capability = match code {
        MULTIPROTOCOL => {
            let (afi, _reserved, safi) = (reader.u16()?, reader.u8()?, reader.u8()?);
            Capability::Multiprotocol(Family { afi, safi })
        }
        ROUTE_REFRESH => Capability::RouteRefresh,
        EXTENDED_NEXT_HOP => {
            let mut entries = Vec::with_capacity(value.len() / 6);
            while !reader.is_empty() {
                let (afi, safi, next_hop_afi) = (reader.u16()?, reader.u16()?, reader.u16()?);
                entries.push((
                    Family {
                        afi,
                        safi: u8::try_from(safi).ok()?,
                    },
                    next_hop_afi,
                ));
            }
            Capability::ExtendedNextHop(entries)
        }
        GRACEFUL_RESTART => {
            let word = reader.u16()?;
            let mut families = Vec::with_capacity(value.len() / 4);
            while !reader.is_empty() {
                let (afi, safi, flags) = (reader.u16()?, reader.u8()?, reader.u8()?);
                families.push(GracefulRestartFamily {
                    family: Family { afi, safi },
                    forwarding_preserved: flags & FORWARDING_PRESERVED != 0,
                });
            }
            Capability::GracefulRestart {
                restart_state: word & RESTART_STATE != 0,
                restart_time: word & RESTART_TIME_MASK,
                families,
            }
        }
        FOUR_OCTET_AS => Capability::FourOctetAs(reader.u32()?),
        ADD_PATH => {
            let mut entries = Vec::with_capacity(value.len() / 4);
            while !reader.is_empty() {
                let (afi, safi, mode) = (reader.u16()?, reader.u8()?, reader.u8()?);
                let mode = match mode {
                    1 => AddPathMode::Receive,
                    2 => AddPathMode::Send,
                    3 => AddPathMode::Both,
                    _ => return None,
                };
                entries.push((Family { afi, safi }, mode));
            }
            Capability::AddPath(entries)
        }
        _ => return None,
    };
    // Trailing bytes make the capability malformed.
    reader.is_empty().then_some(capability)
}

/// Appends code, length and value of one capability.
pub(super) fn encode_capability(
    capability: &Capability,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let code = match capability {
        Capability::Multiprotocol(family) => {
            out.extend_from_slice(&family.afi.to_be_bytes());
            out.extend_from_slice(&[0, family.safi]);
            MULTIPROTOCOL
        }
        Capability::RouteRefresh => ROUTE_REFRESH,
        Capability::ExtendedNextHop(entries) => {
            for (family, next_hop_afi) in entries {
                out.extend_from_slice(&family.afi.to_be_bytes());
                out.extend_from_slice(&u16::from(family.safi).to_be_bytes());
                out.extend_from_slice(&next_hop_afi.to_be_bytes());
            }
            EXTENDED_NEXT_HOP
        }
        Capability::GracefulRestart {
            restart_state,
            restart_time,
            families,
        } => {
            if *restart_time > RESTART_TIME_MASK {
                out.truncate(start);
                return Err(EncodeError::invalid(format!(
                    "graceful restart time {restart_time} exceeds 4095 seconds"
                )));
            }
            let word = restart_time | if *restart_state { RESTART_STATE } else { 0 };
            out.extend_from_slice(&word.to_be_bytes());
            for entry in families {
                out.extend_from_slice(&entry.family.afi.to_be_bytes());
                let flags = if entry.forwarding_preserved {
                    FORWARDING_PRESERVED
                } else {
                    0
                };
                out.extend_from_slice(&[entry.family.safi, flags]);
            }
            GRACEFUL_RESTART
        }
        Capability::FourOctetAs(asn) => {
            out.extend_from_slice(&asn.to_be_bytes());
            FOUR_OCTET_AS
        }
        Capability::AddPath(entries) => {
            for (family, mode) in entries {
                out.extend_from_slice(&family.afi.to_be_bytes());
                out.extend_from_slice(&[family.safi, *mode as u8]);
            }
            ADD_PATH
        }
        Capability::Unknown { code, value } => {
            out.extend_from_slice(value);
            *code
        }
    };
    let Ok(length) = u8::try_from(out.len() - start - 2) else {
        out.truncate(start);
        return Err(EncodeError::invalid(format!(
            "capability {code} value exceeds 255 bytes"
        )));
    };
    super::patch(out, start, &[code, length]);
    Ok(())
}
