//! BGP extended communities (RFC 4360, RFC 5668) as typed values, their 8-octet wire form and
//! their text form ("rt:65000:100", "ro:192.0.2.1:7", "rt:4200000000:1", "raw:<16 hex>").
//! No I/O.
//!
//! The two-octet AS, IPv4 address and four-octet AS specific types (0x00-0x02, and their
//! non-transitive forms 0x40-0x42) are decoded into fields; every other type is kept raw.
//! Decoding and encoding are exact inverses. Text: route target (sub-type 0x02) and route
//! origin (0x03) of the transitive typed forms are written "rt:"/"ro:" (a four-octet AS
//! number below 65536 gets an "L" suffix, as Junos writes it: "rt:65000L:100"); everything
//! else is "raw:" and the 16 hex digits of the wire form.

use std::fmt;
use std::net::Ipv4Addr;

/// Sub-type of a route target (RFC 4360 §4).
pub const ROUTE_TARGET: u8 = 0x02;
/// Sub-type of a route origin (RFC 4360 §5).
pub const ROUTE_ORIGIN: u8 = 0x03;

/// Bit of the type octet set on non-transitive extended communities (RFC 4360 §2).
const NON_TRANSITIVE: u8 = 0x40;
const TWO_OCTET_AS: u8 = 0x00;
const IPV4_ADDRESS: u8 = 0x01;
const FOUR_OCTET_AS: u8 = 0x02;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtendedCommunity {
    /// Type 0x00 / 0x40 (RFC 4360 §3.1).
    TwoOctetAs {
        transitive: bool,
        subtype: u8,
        asn: u16,
        local: u32,
    },
    /// Type 0x01 / 0x41 (RFC 4360 §3.2).
    Ipv4Address {
        transitive: bool,
        subtype: u8,
        address: Ipv4Addr,
        local: u16,
    },
    /// Type 0x02 / 0x42 (RFC 5668).
    FourOctetAs {
        transitive: bool,
        subtype: u8,
        asn: u32,
        local: u16,
    },
    /// Any other type, as on the wire.
    Raw([u8; 8]),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtendedCommunityError {
    #[error(
        "{0:?} is not an extended community (rt:ASN:N, ro:ASN:N, rt:IPV4:N, raw:16 hex digits)"
    )]
    Syntax(String),
    #[error("{0:?}: the local part does not fit its field")]
    LocalTooLarge(String),
}

impl ExtendedCommunity {
    /// A transitive route target with a two-octet AS (four-octet when `asn` needs it).
    pub fn route_target(asn: u32, local: u32) -> Option<ExtendedCommunity> {
        typed_as(ROUTE_TARGET, asn, local, false)
    }

    pub fn from_bytes(bytes: [u8; 8]) -> ExtendedCommunity {
        let [kind, subtype, a, b, c, d, e, f] = bytes;
        let transitive = kind & NON_TRANSITIVE == 0;
        match kind & !NON_TRANSITIVE {
            TWO_OCTET_AS => ExtendedCommunity::TwoOctetAs {
                transitive,
                subtype,
                asn: u16::from_be_bytes([a, b]),
                local: u32::from_be_bytes([c, d, e, f]),
            },
            IPV4_ADDRESS => ExtendedCommunity::Ipv4Address {
                transitive,
                subtype,
                address: Ipv4Addr::new(a, b, c, d),
                local: u16::from_be_bytes([e, f]),
            },
            FOUR_OCTET_AS => ExtendedCommunity::FourOctetAs {
                transitive,
                subtype,
                asn: u32::from_be_bytes([a, b, c, d]),
                local: u16::from_be_bytes([e, f]),
            },
            _ => ExtendedCommunity::Raw(bytes),
        }
    }

    pub fn to_bytes(&self) -> [u8; 8] {
        let kind = |base: u8, transitive: bool| {
            if transitive {
                base
            } else {
                base | NON_TRANSITIVE
            }
        };
        let mut out = [0u8; 8];
        let (head, value) = out.split_at_mut(2);
        match *self {
            ExtendedCommunity::TwoOctetAs {
                transitive,
                subtype,
                asn,
                local,
            } => {
                head.copy_from_slice(&[kind(TWO_OCTET_AS, transitive), subtype]);
                value[..2].copy_from_slice(&asn.to_be_bytes());
                value[2..].copy_from_slice(&local.to_be_bytes());
            }
            ExtendedCommunity::Ipv4Address {
                transitive,
                subtype,
                address,
                local,
            } => {
                head.copy_from_slice(&[kind(IPV4_ADDRESS, transitive), subtype]);
                value[..4].copy_from_slice(&address.octets());
                value[4..].copy_from_slice(&local.to_be_bytes());
            }
            ExtendedCommunity::FourOctetAs {
                transitive,
                subtype,
                asn,
                local,
            } => {
                head.copy_from_slice(&[kind(FOUR_OCTET_AS, transitive), subtype]);
                value[..4].copy_from_slice(&asn.to_be_bytes());
                value[4..].copy_from_slice(&local.to_be_bytes());
            }
            ExtendedCommunity::Raw(bytes) => return bytes,
        }
        out
    }

    /// RFC 4360 §2: the Transitive bit (0x40 of the type octet) is clear.
    pub fn is_transitive(&self) -> bool {
        self.to_bytes()[0] & NON_TRANSITIVE == 0
    }

    /// Parses the text form (see the module comment); case-insensitive prefixes.
    pub fn parse(text: &str) -> Result<ExtendedCommunity, ExtendedCommunityError> {
        let syntax = || ExtendedCommunityError::Syntax(text.to_string());
        let (prefix, rest) = text.split_once(':').ok_or_else(syntax)?;
        let subtype = match prefix.to_ascii_lowercase().as_str() {
            "rt" => ROUTE_TARGET,
            "ro" => ROUTE_ORIGIN,
            "raw" => {
                let digits = rest.strip_prefix("0x").unwrap_or(rest);
                let value = u64::from_str_radix(digits, 16).map_err(|_| syntax())?;
                if digits.len() != 16 {
                    return Err(syntax());
                }
                return Ok(ExtendedCommunity::from_bytes(value.to_be_bytes()));
            }
            _ => return Err(syntax()),
        };
        let (administrator, local) = rest.rsplit_once(':').ok_or_else(syntax)?;
        let local: u32 = local.parse().map_err(|_| syntax())?;
        let too_large = || ExtendedCommunityError::LocalTooLarge(text.to_string());
        if let Ok(address) = administrator.parse::<Ipv4Addr>() {
            return Ok(ExtendedCommunity::Ipv4Address {
                transitive: true,
                subtype,
                address,
                local: u16::try_from(local).map_err(|_| too_large())?,
            });
        }
        let (digits, four_octet) = match administrator.strip_suffix(['L', 'l']) {
            Some(digits) => (digits, true),
            None => (administrator, false),
        };
        let asn: u32 = digits.parse().map_err(|_| syntax())?;
        typed_as(subtype, asn, local, four_octet).ok_or_else(too_large)
    }
}

fn typed_as(subtype: u8, asn: u32, local: u32, four_octet: bool) -> Option<ExtendedCommunity> {
    match u16::try_from(asn) {
        Ok(asn) if !four_octet => Some(ExtendedCommunity::TwoOctetAs {
            transitive: true,
            subtype,
            asn,
            local,
        }),
        _ => Some(ExtendedCommunity::FourOctetAs {
            transitive: true,
            subtype,
            asn,
            local: u16::try_from(local).ok()?,
        }),
    }
}

impl fmt::Display for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |subtype: u8| match subtype {
            ROUTE_TARGET => Some("rt"),
            ROUTE_ORIGIN => Some("ro"),
            _ => None,
        };
        match *self {
            ExtendedCommunity::TwoOctetAs {
                transitive: true,
                subtype,
                asn,
                local,
            } if name(subtype).is_some() => {
                write!(f, "{}:{asn}:{local}", name(subtype).unwrap_or_default())
            }
            ExtendedCommunity::Ipv4Address {
                transitive: true,
                subtype,
                address,
                local,
            } if name(subtype).is_some() => {
                write!(f, "{}:{address}:{local}", name(subtype).unwrap_or_default())
            }
            ExtendedCommunity::FourOctetAs {
                transitive: true,
                subtype,
                asn,
                local,
            } if name(subtype).is_some() => {
                let suffix = if asn <= u32::from(u16::MAX) { "L" } else { "" };
                let prefix = name(subtype).unwrap_or_default();
                write!(f, "{prefix}:{asn}{suffix}:{local}")
            }
            _ => write!(f, "raw:{:016x}", u64::from_be_bytes(self.to_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_forms_decode_and_encode_exactly() {
        let cases: [([u8; 8], &str); 6] = [
            ([0x00, 0x02, 0xfd, 0xe8, 0, 0, 0, 100], "rt:65000:100"),
            ([0x00, 0x03, 0xfd, 0xe8, 0, 0, 0, 7], "ro:65000:7"),
            ([0x01, 0x02, 192, 0, 2, 1, 0, 5], "rt:192.0.2.1:5"),
            (
                [0x02, 0x02, 0xfa, 0x56, 0xea, 0x00, 0, 1],
                "rt:4200000000:1",
            ),
            ([0x02, 0x02, 0, 0, 0xfd, 0xe8, 0, 1], "rt:65000L:1"),
            // Non-transitive two-octet AS (0x40), and an opaque type (0x03).
            ([0x40, 0x02, 0xfd, 0xe8, 0, 0, 0, 1], "raw:4002fde800000001"),
        ];
        for (bytes, text) in cases {
            let community = ExtendedCommunity::from_bytes(bytes);
            assert_eq!(community.to_bytes(), bytes, "{text}");
            assert_eq!(community.to_string(), text);
            assert_eq!(ExtendedCommunity::parse(text), Ok(community), "{text}");
        }
        let opaque = [0x03, 0x0c, 0, 0, 0, 0, 0, 8];
        let community = ExtendedCommunity::from_bytes(opaque);
        assert_eq!(community, ExtendedCommunity::Raw(opaque));
        assert_eq!(community.to_bytes(), opaque);
    }

    #[test]
    fn the_transitive_bit_is_read_from_the_type() {
        let transitive = ExtendedCommunity::from_bytes([0x00, 0x02, 0, 1, 0, 0, 0, 1]);
        let non_transitive = ExtendedCommunity::from_bytes([0x40, 0x02, 0, 1, 0, 0, 0, 1]);
        let opaque_non_transitive = ExtendedCommunity::from_bytes([0x43, 0x0c, 0, 0, 0, 0, 0, 1]);
        assert!(transitive.is_transitive());
        assert!(!non_transitive.is_transitive());
        assert!(!opaque_non_transitive.is_transitive());
    }

    #[test]
    fn bad_text_is_refused() {
        for text in [
            "65000:100",
            "rt:65000",
            "rt:x:1",
            "rt:4200000000:70000",
            "rt:192.0.2.1:70000",
            "raw:12",
            "xx:1:2",
        ] {
            assert!(ExtendedCommunity::parse(text).is_err(), "{text}");
        }
    }
}
