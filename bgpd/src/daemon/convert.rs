//! From validated settings to what the session and the RIB take: `fsm::SessionConfig`,
//! `rib::PeerConfig` and `rib::Policy`, with RFC 8212 for peers that have no policy. No I/O
//! (logs a warning for RFC 8212).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use tracing::warn;

use crate::{
    config::{GlobalSettings, PeerSettings, PolicySettings},
    fsm::{GracefulRestartConfig, SessionConfig},
    rib::{PeerConfig, Policy, PolicyAction, PolicyRule, PrefixMatch},
};

pub fn session_config(settings: &PeerSettings, global: &GlobalSettings) -> SessionConfig {
    SessionConfig {
        local_as: global.asn,
        peer_as: settings.asn,
        router_id: global.router_id,
        hold_time: settings.hold_time,
        connect_retry: Duration::from_secs(settings.connect_retry.into()),
        passive: settings.passive,
        families: settings.families.clone(),
        graceful_restart: settings
            .graceful_restart
            .as_ref()
            .map(|restart| GracefulRestartConfig {
                restart_time: restart.restart_time,
                restarting: restart.restarting,
                forwarding_preserved: restart.restarting,
            }),
        add_path_receive: if settings.add_path_receive {
            settings.families.clone()
        } else {
            Vec::new()
        },
        extended_next_hop: settings.extended_next_hop,
        send_hold_time: None,
    }
}

/// The RIB's view of a peer. The local address is the configured source, else unspecified
/// until the session is up (the peer task then tells the RIB the socket's address).
pub fn rib_peer_config(settings: &PeerSettings, global: &GlobalSettings) -> PeerConfig {
    let ebgp = settings.asn != global.asn;
    let unspecified = if settings.address.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    PeerConfig {
        address: settings.address,
        asn: settings.asn,
        route_reflector_client: settings.route_reflector_client,
        next_hop_self: settings.next_hop_self,
        allow_own_as: settings.allow_own_as,
        local_address: settings.local_address.unwrap_or(unspecified),
        local_address_v6: None,
        import: policy_or_default(settings.import.as_ref(), ebgp, &settings.name, "import"),
        export: policy_or_default(settings.export.as_ref(), ebgp, &settings.name, "export"),
    }
}

/// RFC 8212: an eBGP peer without a policy exchanges nothing; an iBGP one everything.
fn policy_or_default(
    policy: Option<&PolicySettings>,
    ebgp: bool,
    peer: &str,
    direction: &str,
) -> Policy {
    match policy {
        Some(policy) => rib_policy(policy),
        None if ebgp => {
            warn!(
                %peer,
                "eBGP peer {peer} has no {direction} policy: no routes will be {} (RFC 8212)",
                if direction == "import" { "accepted from it" } else { "advertised to it" }
            );
            Policy::default()
        }
        None => Policy::accept_all(),
    }
}

pub fn rib_policy(policy: &PolicySettings) -> Policy {
    Policy {
        default_accept: policy.default_accept,
        rules: policy
            .rules
            .iter()
            .map(|rule| PolicyRule {
                prefixes: rule
                    .prefixes
                    .iter()
                    .map(|m| PrefixMatch {
                        prefix: m.prefix,
                        min_len: m.min_len,
                        max_len: m.max_len,
                    })
                    .collect(),
                communities_any: rule.communities_any.clone(),
                extended_communities_any: rule.extended_communities_any.clone(),
                originated: rule.originated,
                action: if rule.accept {
                    PolicyAction::Accept
                } else {
                    PolicyAction::Reject
                },
                add_communities: rule.add_communities.clone(),
                add_extended_communities: rule.add_extended_communities.clone(),
                add_large_communities: rule.add_large_communities.clone(),
                set_med: rule.set_med,
                set_local_pref: rule.set_local_pref,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const CONFIG: &str = r#"
[global]
asn = 65001
router_id = "192.0.2.1"
[[peer]]
address = "192.0.2.2"
asn = 65002
add_path_receive = true
graceful_restart = { restarting = true, restart_time = 30 }
[[peer]]
address = "192.0.2.3"
asn = 65001
[[peer]]
address = "192.0.2.4"
asn = 65004
[peer.import]
default = "reject"
[[peer.import.rule]]
prefixes = ["10.0.0.0/8 le 24"]
action = "accept"
set_local_pref = 50
"#;

    #[test]
    fn rfc8212_and_session_settings() {
        let config = parse(CONFIG).unwrap();
        let global = config.global.unwrap();
        let ebgp = rib_peer_config(&config.peers[0], &global);
        assert_eq!(ebgp.import, Policy::default());
        assert_eq!(ebgp.export, Policy::default());
        let ibgp = rib_peer_config(&config.peers[1], &global);
        assert_eq!(ibgp.import, Policy::accept_all());
        let filtered = rib_peer_config(&config.peers[2], &global);
        let rule = &filtered.import.rules[0];
        assert_eq!(rule.prefixes[0].max_len, 24);
        assert_eq!(rule.set_local_pref, Some(50));
        assert_eq!(filtered.export, Policy::default());

        let session = session_config(&config.peers[0], &global);
        assert_eq!((session.local_as, session.peer_as), (65001, 65002));
        assert_eq!(session.add_path_receive, config.peers[0].families);
        let restart = session.graceful_restart.unwrap();
        assert!(restart.restarting && restart.forwarding_preserved);
        assert_eq!(restart.restart_time, 30);
    }
}
