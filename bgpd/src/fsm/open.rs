//! The OPEN we send, and the checks and capability negotiation of the OPEN we receive (RFC 4271
//! §6.2, RFC 5492, 4760, 6793, 7911, 4724, 2918, 8950). Pure functions, no I/O.

use std::net::Ipv4Addr;

use thiserror::Error;

use super::{Negotiated, PeerGracefulRestart, SessionConfig};
use crate::message::{
    AS_TRANS, AddPathMode, Capability, Family, GracefulRestartFamily, Notification, Open,
    error_code,
};

/// The only BGP version we speak.
const VERSION: u8 = 4;
/// The Restart Time field has 12 bits (RFC 4724 §3).
const MAX_RESTART_TIME: u16 = 0x0fff;
/// AFI of the next hops RFC 8950 lets us carry for IPv4 NLRI.
const AFI_IPV6: u16 = 2;

/// Why we refuse the peer's OPEN; each maps to the NOTIFICATION we send.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    #[error("bad peer AS {received} (expected {expected})")]
    BadPeerAs { expected: u32, received: u32 },
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
}

impl OpenError {
    /// The NOTIFICATION for this error (RFC 4271 §6.2).
    pub fn notification(&self) -> Notification {
        let (subcode, data) = match self {
            // The data is the largest version we support, 2 octets.
            OpenError::UnsupportedVersion(_) => (
                error_code::UNSUPPORTED_VERSION,
                u16::from(VERSION).to_be_bytes().to_vec(),
            ),
            OpenError::BadPeerAs { .. } => (error_code::BAD_PEER_AS, Vec::new()),
            OpenError::UnacceptableHoldTime(_) => (error_code::UNACCEPTABLE_HOLD_TIME, Vec::new()),
            OpenError::BadBgpIdentifier(_) => (error_code::BAD_BGP_IDENTIFIER, Vec::new()),
        };
        Notification {
            code: error_code::OPEN_MESSAGE,
            subcode,
            data,
        }
    }
}

/// The families we advertise: the configured ones, IPv4 unicast when none are.
fn local_families(config: &SessionConfig) -> Vec<Family> {
    if config.families.is_empty() {
        return vec![Family::IPV4_UNICAST];
    }
    let mut families = Vec::with_capacity(config.families.len());
    for family in &config.families {
        if !families.contains(family) {
            families.push(*family);
        }
    }
    families
}

/// The RFC 8950 tuples we advertise: every configured IPv4 family with IPv6 next hops.
fn local_extended_next_hops(config: &SessionConfig) -> Vec<(Family, u16)> {
    if !config.extended_next_hop {
        return Vec::new();
    }
    local_families(config)
        .into_iter()
        .filter(|family| family.afi == Family::IPV4_UNICAST.afi)
        .map(|family| (family, AFI_IPV6))
        .collect()
}

/// The OPEN we send. We always advertise 4-octet AS and route refresh.
pub(super) fn build_open(config: &SessionConfig) -> Open {
    let mut capabilities: Vec<Capability> = config
        .families
        .iter()
        .copied()
        .map(Capability::Multiprotocol)
        .collect();
    capabilities.push(Capability::RouteRefresh);
    let extended_next_hops = local_extended_next_hops(config);
    if !extended_next_hops.is_empty() {
        capabilities.push(Capability::ExtendedNextHop(extended_next_hops));
    }
    if let Some(gr) = &config.graceful_restart {
        let families = local_families(config)
            .into_iter()
            .map(|family| GracefulRestartFamily {
                family,
                forwarding_preserved: gr.forwarding_preserved,
            })
            .collect();
        capabilities.push(Capability::GracefulRestart {
            restart_state: gr.restarting,
            restart_time: gr.restart_time.min(MAX_RESTART_TIME),
            families,
        });
    }
    capabilities.push(Capability::FourOctetAs(config.local_as));
    if !config.add_path_receive.is_empty() {
        let add_path = config
            .add_path_receive
            .iter()
            .map(|family| (*family, AddPathMode::Receive))
            .collect();
        capabilities.push(Capability::AddPath(add_path));
    }
    Open {
        version: VERSION,
        my_as: u16::try_from(config.local_as).unwrap_or(AS_TRANS),
        hold_time: config.hold_time,
        bgp_identifier: config.router_id,
        capabilities,
    }
}

/// Checks the peer's OPEN in the order of RFC 4271 §6.2 (version, AS, hold time, identifier)
/// and negotiates the session parameters. Capabilities we do not know are ignored (RFC 5492).
pub fn check_open(config: &SessionConfig, open: &Open) -> Result<Negotiated, OpenError> {
    if open.version != VERSION {
        return Err(OpenError::UnsupportedVersion(open.version));
    }
    let peer_as = open.asn();
    if peer_as != config.peer_as {
        return Err(OpenError::BadPeerAs {
            expected: config.peer_as,
            received: peer_as,
        });
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(OpenError::UnacceptableHoldTime(open.hold_time));
    }
    let id = open.bgp_identifier;
    // RFC 6286: any non-zero identifier, unique within the AS.
    if id.is_unspecified() || (config.local_as == config.peer_as && id == config.router_id) {
        return Err(OpenError::BadBgpIdentifier(id));
    }
    Ok(negotiate(config, open, peer_as))
}

/// The capabilities both sides advertised.
fn negotiate(config: &SessionConfig, open: &Open, peer_as: u32) -> Negotiated {
    let capabilities = &open.capabilities;
    let mut peer_families = Vec::new();
    let mut peer_add_path = Vec::new();
    let mut peer_extended_next_hops = Vec::new();
    let mut peer_graceful_restart = None;
    let (mut four_octet_as, mut route_refresh) = (false, false);
    for capability in capabilities {
        match capability {
            Capability::Multiprotocol(family) => peer_families.push(*family),
            Capability::RouteRefresh => route_refresh = true,
            Capability::ExtendedNextHop(tuples) => peer_extended_next_hops.extend(tuples),
            Capability::GracefulRestart {
                restart_state,
                restart_time,
                families,
            } => {
                // RFC 4724 §3: only the first instance counts.
                peer_graceful_restart.get_or_insert_with(|| PeerGracefulRestart {
                    restart_time: *restart_time,
                    restart_state: *restart_state,
                    families: families
                        .iter()
                        .map(|family| (family.family, family.forwarding_preserved))
                        .collect(),
                });
            }
            Capability::FourOctetAs(_) => four_octet_as = true,
            Capability::AddPath(tuples) => peer_add_path.extend(tuples),
            Capability::Unknown { .. } => {}
        }
    }
    if peer_families.is_empty() {
        // RFC 4760 §8: without the capability, IPv4 unicast only.
        peer_families.push(Family::IPV4_UNICAST);
    }
    let families: Vec<Family> = local_families(config)
        .into_iter()
        .filter(|family| peer_families.contains(family))
        .collect();
    let mut add_path_receive = Vec::new();
    for family in &config.add_path_receive {
        let peer_sends = peer_add_path.iter().any(|(peer_family, mode)| {
            peer_family == family && matches!(mode, AddPathMode::Send | AddPathMode::Both)
        });
        if peer_sends && families.contains(family) && !add_path_receive.contains(family) {
            add_path_receive.push(*family);
        }
    }
    let extended_next_hop = local_extended_next_hops(config)
        .iter()
        .any(|tuple| peer_extended_next_hops.contains(tuple));
    let hold_time = config.hold_time.min(open.hold_time);
    Negotiated {
        peer_as,
        peer_router_id: open.bgp_identifier,
        hold_time,
        keepalive: hold_time / 3,
        four_octet_as,
        families,
        add_path_receive,
        add_path_send: Vec::new(),
        route_refresh,
        extended_next_hop,
        peer_graceful_restart,
        local_graceful_restart: config.graceful_restart.is_some(),
    }
}
