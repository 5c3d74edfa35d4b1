//! Conversions between bgpd.proto messages and the daemon's settings and reports. Requests go
//! through `config::raw` so that the API validates exactly as the config file does and names
//! fields the same way. No I/O.

use std::{sync::Arc, time::Instant};

use manul_proto::bgpd as proto;

use super::{speaker::PeerReport, watch::BestEvent};
use crate::{
    config::{
        self, ConfigError, GlobalSettings, PeerSettings, PolicySettings, PrefixSettings,
        format_community, format_large_community, raw,
    },
    fsm::State,
    message::{Origin, PathAttributes},
    rib::NextHops,
    rib::RouteView,
};

fn text(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn nonzero(value: u32) -> Option<i64> {
    (value != 0).then_some(i64::from(value))
}

pub fn global_from_proto(global: Option<proto::Global>) -> Result<GlobalSettings, ConfigError> {
    let global = global.unwrap_or_default();
    let raw = raw::RawGlobal {
        asn: nonzero(global.asn),
        router_id: text(global.router_id),
        listen_address: (!global.listen_addresses.is_empty())
            .then_some(raw::OneOrMany::Many(global.listen_addresses)),
        listen_port: nonzero(global.listen_port),
        cluster_id: text(global.cluster_id),
    };
    config::validate_global(raw, "global")
}

pub fn global_to_proto(global: &GlobalSettings) -> proto::Global {
    let listen_addresses = if global.listen_addresses.is_empty() {
        vec!["none".to_string()]
    } else {
        global
            .listen_addresses
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    proto::Global {
        asn: global.asn,
        router_id: global.router_id.to_string(),
        listen_addresses,
        listen_port: u32::from(global.listen_port),
        cluster_id: global
            .cluster_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

pub fn peer_from_proto(peer: Option<proto::Peer>) -> Result<PeerSettings, ConfigError> {
    let peer = peer.unwrap_or_default();
    let raw = raw::RawPeer {
        name: text(peer.name),
        address: text(peer.address),
        port: nonzero(peer.port),
        local_address: text(peer.local_address),
        local_port: nonzero(peer.local_port),
        asn: nonzero(peer.asn),
        passive: Some(peer.passive),
        hold_time: peer.hold_time.map(i64::from),
        connect_retry: peer.connect_retry.map(i64::from),
        md5_password: text(peer.md5_password),
        ttl_security: Some(peer.ttl_security),
        route_reflector_client: Some(peer.route_reflector_client),
        next_hop_self: Some(peer.next_hop_self),
        allow_own_as: Some(i64::from(peer.allow_own_as)),
        families: (!peer.families.is_empty()).then_some(peer.families),
        graceful_restart: peer
            .graceful_restart
            .map(|restart| raw::RawGracefulRestart {
                enabled: Some(restart.enabled),
                restarting: Some(restart.restarting),
                restart_time: nonzero(restart.restart_time),
            }),
        add_path_receive: Some(peer.add_path_receive),
        extended_next_hop: Some(peer.extended_next_hop),
        import: peer.import.map(policy_from_proto),
        export: peer.export.map(policy_from_proto),
    };
    config::validate_peer(raw, "peer")
}

fn policy_from_proto(policy: proto::Policy) -> raw::RawPolicy {
    raw::RawPolicy {
        default: Some(
            if policy.default_accept {
                "accept"
            } else {
                "reject"
            }
            .to_string(),
        ),
        rule: policy
            .rules
            .into_iter()
            .map(|rule| raw::RawRule {
                action: Some(
                    match rule.action() {
                        proto::PolicyAction::Accept => "accept",
                        proto::PolicyAction::Reject => "reject",
                    }
                    .to_string(),
                ),
                prefixes: rule.prefixes,
                communities_any: rule.communities_any,
                extended_communities_any: rule.extended_communities_any,
                originated: rule.originated,
                add_communities: rule.add_communities,
                add_extended_communities: rule.add_extended_communities,
                add_large_communities: rule.add_large_communities,
                set_med: rule.set_med.map(i64::from),
                set_local_pref: rule.set_local_pref.map(i64::from),
            })
            .collect(),
    }
}

fn policy_to_proto(policy: &PolicySettings) -> proto::Policy {
    let rules = policy.rules.iter().map(|rule| {
        let prefixes = rule
            .prefixes
            .iter()
            .map(|m| format!("{} ge {} le {}", m.prefix, m.min_len, m.max_len));
        proto::PolicyRule {
            prefixes: prefixes.collect(),
            communities_any: rule
                .communities_any
                .iter()
                .map(|c| format_community(*c))
                .collect(),
            action: if rule.accept {
                proto::PolicyAction::Accept
            } else {
                proto::PolicyAction::Reject
            } as i32,
            add_communities: rule
                .add_communities
                .iter()
                .map(|c| format_community(*c))
                .collect(),
            add_large_communities: rule
                .add_large_communities
                .iter()
                .map(format_large_community)
                .collect(),
            extended_communities_any: rule
                .extended_communities_any
                .iter()
                .map(ToString::to_string)
                .collect(),
            add_extended_communities: rule
                .add_extended_communities
                .iter()
                .map(ToString::to_string)
                .collect(),
            set_med: rule.set_med,
            set_local_pref: rule.set_local_pref,
            originated: rule.originated,
        }
    });
    proto::Policy {
        default_accept: policy.default_accept,
        rules: rules.collect(),
    }
}

pub fn peer_to_proto(settings: &PeerSettings) -> proto::Peer {
    proto::Peer {
        address: settings.address.to_string(),
        port: u32::from(settings.port),
        local_address: settings
            .local_address
            .map(|a| a.to_string())
            .unwrap_or_default(),
        local_port: u32::from(settings.local_port),
        asn: settings.asn,
        passive: settings.passive,
        hold_time: Some(u32::from(settings.hold_time)),
        connect_retry: Some(u32::from(settings.connect_retry)),
        // Never echoed.
        md5_password: String::new(),
        ttl_security: settings.ttl_security,
        route_reflector_client: settings.route_reflector_client,
        next_hop_self: settings.next_hop_self,
        allow_own_as: u32::from(settings.allow_own_as),
        families: settings
            .families
            .iter()
            .map(|f| config::family_name(*f))
            .collect(),
        graceful_restart: Some(match &settings.graceful_restart {
            Some(restart) => proto::GracefulRestart {
                enabled: true,
                restarting: restart.restarting,
                restart_time: u32::from(restart.restart_time),
            },
            None => proto::GracefulRestart::default(),
        }),
        add_path_receive: settings.add_path_receive,
        import: settings.import.as_ref().map(policy_to_proto),
        export: settings.export.as_ref().map(policy_to_proto),
        name: settings.name.clone(),
        extended_next_hop: settings.extended_next_hop,
    }
}

pub fn prefixes_from_proto(
    prefixes: Vec<proto::OriginatedPrefix>,
) -> Result<Vec<PrefixSettings>, ConfigError> {
    prefixes
        .into_iter()
        .enumerate()
        .map(|(index, prefix)| {
            let raw = raw::RawPrefix {
                prefix: text(prefix.prefix),
                communities: prefix.communities,
                large_communities: prefix.large_communities,
            };
            config::validate_prefix(raw, &format!("prefixes[{index}]"))
        })
        .collect()
}

pub fn prefix_to_proto(prefix: &PrefixSettings) -> proto::OriginatedPrefix {
    proto::OriginatedPrefix {
        prefix: prefix.prefix.to_string(),
        communities: prefix
            .communities
            .iter()
            .map(|c| format_community(*c))
            .collect(),
        large_communities: prefix
            .large_communities
            .iter()
            .map(format_large_community)
            .collect(),
    }
}

pub fn state_name(state: State) -> &'static str {
    match state {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

pub fn report_to_proto(report: &PeerReport, now: Instant) -> proto::PeerStatus {
    let status = &report.status;
    let negotiated = status.negotiated.as_ref().map(|n| {
        let names = |families: &[crate::message::Family]| {
            families
                .iter()
                .map(|f| config::family_name(*f))
                .collect::<Vec<_>>()
        };
        proto::Negotiated {
            peer_as: n.peer_as,
            peer_router_id: n.peer_router_id.to_string(),
            hold_time: u32::from(n.hold_time),
            keepalive: u32::from(n.keepalive),
            four_octet_as: n.four_octet_as,
            families: names(&n.families),
            add_path_receive: names(&n.add_path_receive),
            add_path_send: names(&n.add_path_send),
            route_refresh: n.route_refresh,
            extended_next_hop: n.extended_next_hop,
            peer_restart_time: n
                .peer_graceful_restart
                .as_ref()
                .map_or(0, |r| u32::from(r.restart_time)),
            peer_graceful_restart: n.peer_graceful_restart.is_some(),
        }
    });
    proto::PeerStatus {
        peer: Some(peer_to_proto(&report.settings)),
        state: state_name(status.state).to_string(),
        uptime_seconds: status
            .established_at
            .map_or(0, |at| now.duration_since(at).as_secs()),
        last_error: status.last_error.clone().unwrap_or_default(),
        prefixes_received: report.counters.received,
        prefixes_accepted: report.counters.accepted,
        prefixes_advertised: report.counters.advertised,
        negotiated,
        established_transitions: status.established_transitions,
    }
}

/// A Loc-RIB route of a listing, with the peer it came from.
pub fn route_to_proto(route: &RouteView) -> proto::Route {
    let event = BestEvent {
        prefix: route.prefix,
        best: Some((
            NextHops::from_vec(route.next_hops.clone()),
            Arc::clone(&route.attributes),
        )),
    };
    let (peer_address, peer_asn) = route.peer.map_or((String::new(), 0), |(address, asn)| {
        (address.to_string(), asn)
    });
    proto::Route {
        path: Some(best_to_proto(&event)),
        peer_address,
        peer_asn,
    }
}

pub fn best_to_proto(event: &BestEvent) -> proto::BestPath {
    let Some((next_hops, attributes)) = &event.best else {
        return proto::BestPath {
            prefix: event.prefix.to_string(),
            withdrawn: true,
            ..Default::default()
        };
    };
    let attributes: &Arc<PathAttributes> = attributes;
    proto::BestPath {
        prefix: event.prefix.to_string(),
        withdrawn: false,
        next_hops: next_hops
            .as_slice()
            .iter()
            .map(ToString::to_string)
            .collect(),
        as_path: attributes
            .as_path
            .iter()
            .flat_map(|path| {
                path.segments
                    .iter()
                    .flat_map(|segment| segment.asns.iter().copied())
            })
            .collect(),
        local_pref: attributes.local_pref,
        med: attributes.med,
        communities: attributes
            .communities
            .iter()
            .map(|c| format_community(*c))
            .collect(),
        large_communities: attributes
            .large_communities
            .iter()
            .map(format_large_community)
            .collect(),
        extended_communities: attributes
            .extended_communities
            .iter()
            .map(ToString::to_string)
            .collect(),
        origin: match attributes.origin {
            Some(Origin::Igp) | None => "IGP",
            Some(Origin::Egp) => "EGP",
            Some(Origin::Incomplete) => "INCOMPLETE",
        }
        .to_string(),
        shared: 0,
    }
}
