//! BGP-4 messages as values: OPEN (with capabilities), UPDATE (with path attributes and NLRI),
//! NOTIFICATION, KEEPALIVE, ROUTE-REFRESH. Pure data shared by the codec, the session state
//! machine and the RIB; no I/O. The wire format lives in `crate::codec`.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

mod extended_community;

pub use extended_community::{
    ExtendedCommunity, ExtendedCommunityError, ROUTE_ORIGIN, ROUTE_TARGET,
};

/// An address family and subsequent address family (AFI/SAFI), unknown values kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: u16,
    pub safi: u8,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// The family of a prefix (unicast).
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::IPV4_UNICAST,
            IpNet::V6(_) => Family::IPV6_UNICAST,
        }
    }
}

/// AS_TRANS (RFC 6793): the 2-octet stand-in for a 4-octet AS number.
pub const AS_TRANS: u16 = 23456;

/// UPDATE is by far the most common message and the largest variant: boxing it would cost an
/// allocation per message on the hot path, so the size difference is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// Always 4.
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the real ASN needs 4 octets).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_identifier: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The speaker's ASN: the 4-octet AS capability when present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|capability| match capability {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive = 1,
    Send = 2,
    Both = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub family: Family,
    pub forwarding_preserved: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760 (code 1).
    Multiprotocol(Family),
    /// RFC 2918 (code 2).
    RouteRefresh,
    /// RFC 8950 (code 5): NLRI family, next-hop AFI.
    ExtendedNextHop(Vec<(Family, u16)>),
    /// RFC 4724 (code 64).
    GracefulRestart {
        restart_state: bool,
        restart_time: u16,
        families: Vec<GracefulRestartFamily>,
    },
    /// RFC 6793 (code 65).
    FourOctetAs(u32),
    /// RFC 7911 (code 69).
    AddPath(Vec<(Family, AddPathMode)>),
    /// Anything else, kept as received.
    Unknown { code: u8, value: Vec<u8> },
}

/// One prefix of an UPDATE, with its path identifier when add-path is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub prefix: IpNet,
    pub path_id: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 withdrawn routes (the classic field).
    pub withdrawn: Vec<Nlri>,
    pub attributes: PathAttributes,
    /// IPv4 NLRI (the classic field).
    pub nlri: Vec<Nlri>,
}

impl Update {
    /// An End-of-RIB marker (RFC 4724): an empty UPDATE for IPv4 unicast, an empty
    /// MP_UNREACH for other families.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                }),
                ..PathAttributes::default()
            },
            ..Update::default()
        }
    }

    /// The family this update marks the end of the RIB for, if it is an End-of-RIB.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || self.attributes.mp_reach.is_some()
        {
            return None;
        }
        match &self.attributes.mp_unreach {
            None if self.attributes == PathAttributes::default() => Some(Family::IPV4_UNICAST),
            Some(unreach) if unreach.withdrawn.is_empty() => {
                let only_unreach = PathAttributes {
                    mp_unreach: None,
                    ..self.attributes.clone()
                };
                (only_unreach == PathAttributes::default()).then_some(unreach.family)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    #[default]
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

/// AS_PATH with 4-octet ASNs. On a 2-octet session the codec writes AS_TRANS in AS_PATH and
/// the real path in AS4_PATH, and merges them back on decode (RFC 6793).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// Path length for best-path selection: a set counts 1, confederation segments 0.
    pub fn length(&self) -> usize {
        self.segments
            .iter()
            .map(|segment| match segment.kind {
                SegmentKind::Sequence => segment.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments
            .iter()
            .any(|segment| segment.asns.contains(&asn))
    }

    pub fn count(&self, asn: u32) -> usize {
        self.segments
            .iter()
            .map(|segment| segment.asns.iter().filter(|a| **a == asn).count())
            .sum()
    }

    /// The neighbouring AS: the first ASN of a leading AS_SEQUENCE.
    pub fn first_asn(&self) -> Option<u32> {
        self.segments
            .first()
            .filter(|segment| segment.kind == SegmentKind::Sequence)?
            .asns
            .first()
            .copied()
    }

    /// Prepends `asn` as eBGP export does.
    pub fn prepend(&self, asn: u32) -> AsPath {
        let mut segments = self.segments.clone();
        match segments.first_mut() {
            Some(first) if first.kind == SegmentKind::Sequence && first.asns.len() < 255 => {
                first.asns.insert(0, asn)
            }
            _ => segments.insert(
                0,
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
        AsPath { segments }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data_1: u32,
    pub local_data_2: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub family: Family,
    /// One next hop, or for IPv6 a global and a link-local one.
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<Nlri>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Nlri>,
}

/// An attribute the codec does not interpret, kept for pass-through (optional transitive ones
/// are re-advertised with the Partial bit set).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The decoded path attributes of an UPDATE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<u32>,
    /// RFC 4360 (type code 16).
    pub extended_communities: Vec<ExtendedCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub unknown: Vec<RawAttribute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

/// NOTIFICATION error codes and subcodes (RFC 4271 §4.5, RFC 9687).
pub mod error_code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;

    // Message header
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    // OPEN
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    // UPDATE
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
    // Cease (RFC 4486)
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    /// 0 normal request; 1 BoRR and 2 EoRR (RFC 7313).
    pub subtype: u8,
}
