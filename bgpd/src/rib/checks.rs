//! RFC checks of the RIB, no I/O: which received paths are unusable (confederation segments
//! from an eBGP peer, martian or own next hops) and which best paths a peer must not be sent
//! (well-known communities), plus the confederation strip on export.

use std::net::IpAddr;

use crate::message::{AsPath, PathAttributes, SegmentKind};

/// RFC 1997 well-known communities.
pub(crate) const NO_EXPORT: u32 = 0xFFFF_FF01;
pub(crate) const NO_ADVERTISE: u32 = 0xFFFF_FF02;
pub(crate) const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;

/// RFC 1997: NO_ADVERTISE goes to no peer; NO_EXPORT and NO_EXPORT_SUBCONFED not outside the
/// AS (we run no confederation, so every eBGP peer is outside it). Checked on the best path's
/// communities before export policy, as BIRD and FRR do.
pub(crate) fn communities_allow(attrs: &PathAttributes, target_ibgp: bool) -> bool {
    let has = |community| attrs.communities.contains(&community);
    if has(NO_ADVERTISE) {
        return false;
    }
    target_ibgp || !(has(NO_EXPORT) || has(NO_EXPORT_SUBCONFED))
}

pub(crate) fn has_confederation_segment(path: &AsPath) -> bool {
    path.segments.iter().any(|segment| {
        matches!(
            segment.kind,
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet
        )
    })
}

/// RFC 5065 §5.3: AS_CONFED_SEQUENCE and AS_CONFED_SET never leave the confederation.
pub(crate) fn strip_confederation_segments(path: &AsPath) -> AsPath {
    let segments = path.segments.iter().filter(|segment| {
        !matches!(
            segment.kind,
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet
        )
    });
    AsPath {
        segments: segments.cloned().collect(),
    }
}

/// Why a received next hop makes a route unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextHopProblem {
    /// 0.0.0.0, loopback, multicast, broadcast, class E; ::, ::1, multicast.
    Martian,
    /// One of our own addresses.
    Own,
}

impl NextHopProblem {
    pub fn describe(self) -> &'static str {
        match self {
            NextHopProblem::Martian => "martian next hop (RFC 7606 §7.3: treat-as-withdraw)",
            NextHopProblem::Own => "next hop is our own address (RFC 4271 §6.3: unusable)",
        }
    }
}

/// RFC 4271 §6.3 (NEXT_HOP) and §5.1.3, RFC 4760 §3 (MP_REACH next hop): a next hop that is
/// not a unicast address, or is the receiving speaker's own address, cannot be used.
/// `peer_on_loopback`: the session itself runs over loopback (two speakers on one host, as
/// in tests), where a loopback next hop is the peer's real address and is allowed.
pub(crate) fn next_hop_problem(
    next_hop: IpAddr,
    own: &[IpAddr],
    peer_on_loopback: bool,
) -> Option<NextHopProblem> {
    let loopback = next_hop.is_loopback() && !peer_on_loopback;
    let martian = loopback
        || match next_hop {
            IpAddr::V4(address) => {
                address.is_unspecified()
                    || address.is_multicast()
                    || address.is_broadcast()
                    // 240.0.0.0/4, reserved (class E).
                    || address.octets()[0] >= 240
            }
            IpAddr::V6(address) => address.is_unspecified() || address.is_multicast(),
        };
    if martian {
        return Some(NextHopProblem::Martian);
    }
    own.contains(&next_hop).then_some(NextHopProblem::Own)
}
