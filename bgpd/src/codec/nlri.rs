//! Prefixes on the wire (RFC 4271 §4.3, RFC 4760 §5), with the RFC 7911 path identifier in
//! front when add-path is in use. No I/O, and no heap allocation per prefix: decode pushes
//! into one `Vec`, encode appends to one buffer.
//!
//! Decode clears the bits past the prefix length (RFC 4271 says they are irrelevant); encode
//! writes the network address, so host bits in an `IpNet` never leak. On encode a path
//! identifier is written only for add-path families (0 when the `Nlri` has none) and dropped
//! otherwise.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{EncodeError, reader::Reader};
use crate::message::Nlri;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;

/// Bytes one prefix takes on the wire.
pub(super) fn wire_len(nlri: &Nlri, add_path: bool) -> usize {
    let path_id = if add_path { 4 } else { 0 };
    path_id + 1 + usize::from(nlri.prefix.prefix_len()).div_ceil(8)
}

/// Bytes a list of prefixes takes on the wire.
pub(super) fn list_wire_len(nlris: &[Nlri], add_path: bool) -> usize {
    nlris.iter().map(|nlri| wire_len(nlri, add_path)).sum()
}

/// How many prefixes from the front of `nlris` fit in `budget` bytes.
pub(super) fn fitting(nlris: &[Nlri], add_path: bool, budget: usize) -> usize {
    let mut used = 0;
    for (count, nlri) in nlris.iter().enumerate() {
        used += wire_len(nlri, add_path);
        if used > budget {
            return count;
        }
    }
    nlris.len()
}

/// Appends prefixes of address family `afi`; a prefix of the other family is an error.
pub(super) fn encode_prefixes(
    out: &mut Vec<u8>,
    nlris: &[Nlri],
    afi: u16,
    add_path: bool,
) -> Result<(), EncodeError> {
    out.reserve(list_wire_len(nlris, add_path));
    for nlri in nlris {
        if add_path {
            out.extend_from_slice(&nlri.path_id.unwrap_or(0).to_be_bytes());
        }
        let length = nlri.prefix.prefix_len();
        let bytes = usize::from(length).div_ceil(8);
        out.push(length);
        match (nlri.prefix, afi) {
            (IpNet::V4(net), AFI_IPV4) => {
                out.extend(net.network().octets().iter().take(bytes));
            }
            (IpNet::V6(net), AFI_IPV6) => {
                out.extend(net.network().octets().iter().take(bytes));
            }
            (prefix, _) => {
                return Err(EncodeError::invalid(format!(
                    "prefix {prefix} in an AFI {afi} field"
                )));
            }
        }
    }
    Ok(())
}

/// Decodes a whole NLRI or withdrawn field of family `afi`, appending to `out`.
pub(super) fn decode_prefixes(
    bytes: &[u8],
    afi: u16,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), String> {
    let mut reader = Reader::new(bytes);
    out.reserve(bytes.len() / if add_path { 8 } else { 4 });
    while !reader.is_empty() {
        let path_id = if add_path {
            Some(reader.u32().ok_or("truncated path identifier")?)
        } else {
            None
        };
        let length = reader.u8().ok_or("truncated prefix length")?;
        let bytes_needed = usize::from(length).div_ceil(8);
        let prefix = match afi {
            AFI_IPV4 if length <= 32 => {
                let bytes = reader
                    .take(bytes_needed)
                    .ok_or("prefix overruns its field")?;
                let mut octets = [0u8; 4];
                octets
                    .iter_mut()
                    .zip(bytes)
                    .for_each(|(slot, byte)| *slot = *byte);
                let mask = u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0);
                let address = Ipv4Addr::from(u32::from_be_bytes(octets) & mask);
                IpNet::V4(Ipv4Net::new(address, length).map_err(|error| error.to_string())?)
            }
            AFI_IPV6 if length <= 128 => {
                let bytes = reader
                    .take(bytes_needed)
                    .ok_or("prefix overruns its field")?;
                let mut octets = [0u8; 16];
                octets
                    .iter_mut()
                    .zip(bytes)
                    .for_each(|(slot, byte)| *slot = *byte);
                let mask = u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0);
                let address = Ipv6Addr::from(u128::from_be_bytes(octets) & mask);
                IpNet::V6(Ipv6Net::new(address, length).map_err(|error| error.to_string())?)
            }
            _ => return Err(format!("prefix length {length} too long for AFI {afi}")),
        };
        out.push(Nlri { prefix, path_id });
    }
    Ok(())
}
