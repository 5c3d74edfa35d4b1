//! Tests of extended communities in the RIB (no I/O): propagation by transitivity (RFC 4360
//! §2), matching and adding them in policy.

use super::*;
use crate::message::ExtendedCommunity;
use crate::rib::{PolicyAction, PolicyRule};

const P: &str = "10.10.0.0/16";

fn rt(text: &str) -> ExtendedCommunity {
    ExtendedCommunity::parse(text).unwrap()
}

fn non_transitive() -> ExtendedCommunity {
    ExtendedCommunity::from_bytes([0x40, 0x04, 0xfd, 0xe9, 0, 0, 0, 1])
}

fn with_extended(communities: Vec<ExtendedCommunity>) -> PathAttributes {
    PathAttributes {
        extended_communities: communities,
        ..attrs(&[65001], "10.1.0.1")
    }
}

/// Peer 1 eBGP (source), 2 eBGP, 3 iBGP client.
fn rib3(export_2: Policy) -> Rib {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    let ebgp = PeerConfig {
        export: export_2,
        ..config("10.2.0.1", 65002)
    };
    up(&mut rib, 2, ebgp);
    let client = PeerConfig {
        route_reflector_client: true,
        ..config("10.3.0.1", LOCAL_ASN)
    };
    up(&mut rib, 3, client);
    rib
}

fn sent_extended(out: &[RibOutput], peer: u32) -> Vec<ExtendedCommunity> {
    let routes = announced(out, peer);
    assert_eq!(routes.len(), 1, "{out:?}");
    routes[0].1.extended_communities.clone()
}

#[test]
fn non_transitive_extended_communities_are_not_sent_to_ebgp_peers() {
    let mut rib = rib3(Policy::accept_all());
    let received = vec![rt("rt:65001:100"), non_transitive()];
    let out = rib.receive(PeerId(1), announce(&[P], with_extended(received.clone())));
    assert_eq!(sent_extended(&out, 2), vec![rt("rt:65001:100")]);
    assert_eq!(sent_extended(&out, 3), received, "all of them to iBGP");
    let (_, best) = agent(&rib, &out, P).unwrap().unwrap();
    assert_eq!(
        best.extended_communities, received,
        "the agent sees them all"
    );
}

#[test]
fn policy_matches_and_adds_extended_communities() {
    let export = Policy {
        default_accept: false,
        rules: vec![PolicyRule {
            extended_communities_any: vec![rt("rt:65001:100"), rt("rt:192.0.2.1:5")],
            action: PolicyAction::Accept,
            add_extended_communities: vec![rt("ro:65000:7")],
            ..PolicyRule::default()
        }],
    };
    let mut rib = rib3(export);
    let out = rib.receive(
        PeerId(1),
        announce(&[P], with_extended(vec![rt("rt:65001:100")])),
    );
    assert_eq!(
        sent_extended(&out, 2),
        vec![rt("rt:65001:100"), rt("ro:65000:7")]
    );
    let other = with_extended(vec![rt("rt:65001:101")]);
    let out = rib.receive(PeerId(1), announce(&["10.11.0.0/16"], other));
    assert!(announced(&out, 2).is_empty(), "no rule matched: {out:?}");
}

#[test]
fn import_policy_rejects_by_extended_community() {
    let mut rib = new_rib();
    let import = Policy {
        default_accept: true,
        rules: vec![PolicyRule {
            extended_communities_any: vec![rt("rt:65001:666")],
            action: PolicyAction::Reject,
            ..PolicyRule::default()
        }],
    };
    up(
        &mut rib,
        1,
        PeerConfig {
            import,
            ..config("10.1.0.1", 65001)
        },
    );
    rib.receive(
        PeerId(1),
        announce(&[P], with_extended(vec![rt("rt:65001:666")])),
    );
    let kept = with_extended(vec![rt("rt:65001:667")]);
    rib.receive(PeerId(1), announce(&["10.11.0.0/16"], kept));
    let prefixes: Vec<IpNet> = rib.best_paths().map(|(prefix, _, _)| prefix).collect();
    assert_eq!(prefixes, vec![net("10.11.0.0/16")]);
}
