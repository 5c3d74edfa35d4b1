//! Tests of import (no I/O): loop checks, import policy, RFC 8212, counters, add-path, IPv6.

use super::*;
use crate::message::LargeCommunity;
use crate::rib::{PeerCounters, PolicyAction, PolicyRule, Position, PrefixMatch};

fn ebgp_rib(import: Policy) -> Rib {
    let mut rib = new_rib();
    up(
        &mut rib,
        1,
        PeerConfig {
            import,
            ..config("10.1.0.1", 65001)
        },
    );
    rib
}

fn accepted(rib: &Rib) -> Vec<IpNet> {
    rib.best_paths().map(|(prefix, _, _)| prefix).collect()
}

#[test]
fn own_as_in_path_is_dropped_unless_allowed() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    up(
        &mut rib,
        2,
        PeerConfig {
            allow_own_as: 1,
            ..config("10.1.0.2", 65002)
        },
    );
    let looped = attrs(&[65001, LOCAL_ASN, 65003], "10.1.0.1");
    assert!(
        rib.receive(PeerId(1), announce(&["10.10.0.0/16"], looped.clone()))
            .is_empty()
    );
    rib.receive(PeerId(2), announce(&["10.20.0.0/16"], looped.clone()));
    let twice = attrs(&[65002, LOCAL_ASN, LOCAL_ASN], "10.1.0.2");
    rib.receive(PeerId(2), announce(&["10.30.0.0/16"], twice));
    assert_eq!(accepted(&rib), vec![net("10.20.0.0/16")]);
}

#[test]
fn reflection_loops_are_dropped() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", LOCAL_ASN));
    let ours = PathAttributes {
        originator_id: Some(ip4("10.0.0.1")),
        ..attrs(&[], "10.1.0.1")
    };
    rib.receive(PeerId(1), announce(&["10.10.0.0/16"], ours));
    let cluster = PathAttributes {
        cluster_list: vec![ip4("10.0.0.1")],
        ..attrs(&[], "10.1.0.1")
    };
    rib.receive(PeerId(1), announce(&["10.20.0.0/16"], cluster));
    let fine = PathAttributes {
        cluster_list: vec![ip4("10.0.0.2")],
        ..attrs(&[], "10.1.0.1")
    };
    rib.receive(PeerId(1), announce(&["10.30.0.0/16"], fine));
    assert_eq!(accepted(&rib), vec![net("10.30.0.0/16")]);
}

#[test]
fn rejected_reannouncement_withdraws_the_previous_path() {
    let mut rib = new_rib();
    up(&mut rib, 1, config("10.1.0.1", 65001));
    rib.receive(
        PeerId(1),
        announce(&["10.10.0.0/16"], attrs(&[65001], "10.1.0.1")),
    );
    let looped = attrs(&[65001, LOCAL_ASN], "10.1.0.1");
    let out = rib.receive(PeerId(1), announce(&["10.10.0.0/16"], looped));
    assert_eq!(agent(&rib, &out, "10.10.0.0/16"), Some(None));
    assert_eq!(rib.len(), 0);
}

#[test]
fn rfc8212_default_policy_accepts_nothing() {
    let mut rib = ebgp_rib(Policy::default());
    rib.receive(
        PeerId(1),
        announce(&["10.10.0.0/16"], attrs(&[65001], "10.1.0.1")),
    );
    assert!(accepted(&rib).is_empty());
    let counters = PeerCounters {
        received: 1,
        accepted: 0,
        advertised: 0,
    };
    assert_eq!(rib.counters(PeerId(1)), counters);
}

#[test]
fn prefix_lists_match_exact_and_ranges() {
    let rule = |prefixes| PolicyRule {
        prefixes,
        ..PolicyRule::default()
    };
    let policy = Policy {
        default_accept: false,
        rules: vec![
            rule(vec![PrefixMatch::exact(net("10.1.0.0/16"))]),
            rule(vec![PrefixMatch {
                prefix: net("10.2.0.0/16"),
                min_len: 24,
                max_len: 26,
            }]),
        ],
    };
    let mut rib = ebgp_rib(policy);
    let prefixes = [
        "10.1.0.0/16",
        "10.1.0.0/24",
        "10.2.0.0/16",
        "10.2.3.0/24",
        "10.2.3.0/26",
        "10.2.3.0/27",
        "10.3.0.0/24",
    ];
    rib.receive(PeerId(1), announce(&prefixes, attrs(&[65001], "10.1.0.1")));
    let expected = vec![net("10.1.0.0/16"), net("10.2.3.0/24"), net("10.2.3.0/26")];
    assert_eq!(accepted(&rib), expected);
    assert_eq!(rib.counters(PeerId(1)).received, 7);
    assert_eq!(rib.counters(PeerId(1)).accepted, 3);
}

#[test]
fn first_matching_rule_decides_and_communities_match() {
    let policy = Policy {
        default_accept: true,
        rules: vec![PolicyRule {
            communities_any: vec![666, 667],
            action: PolicyAction::Reject,
            ..PolicyRule::default()
        }],
    };
    let mut rib = ebgp_rib(policy);
    let bad = PathAttributes {
        communities: vec![1, 667],
        ..attrs(&[65001], "10.1.0.1")
    };
    rib.receive(PeerId(1), announce(&["10.10.0.0/16"], bad));
    let good = PathAttributes {
        communities: vec![1],
        ..attrs(&[65001], "10.1.0.1")
    };
    rib.receive(PeerId(1), announce(&["10.20.0.0/16"], good));
    assert_eq!(accepted(&rib), vec![net("10.20.0.0/16")]);
}

#[test]
fn accepting_rule_modifies_attributes() {
    let large = LargeCommunity {
        global_admin: 65000,
        local_data_1: 1,
        local_data_2: 2,
    };
    let policy = Policy {
        default_accept: false,
        rules: vec![PolicyRule {
            add_communities: vec![7],
            add_large_communities: vec![large],
            set_med: Some(33),
            set_local_pref: Some(250),
            ..PolicyRule::default()
        }],
    };
    let mut rib = ebgp_rib(policy);
    let out = rib.receive(
        PeerId(1),
        announce(&["10.10.0.0/16"], attrs(&[65001], "10.1.0.1")),
    );
    let (_, stored) = agent(&rib, &out, "10.10.0.0/16").unwrap().unwrap();
    assert_eq!(stored.communities, vec![7]);
    assert_eq!(stored.large_communities, vec![large]);
    assert_eq!(stored.med, Some(33));
    assert_eq!(stored.local_pref, Some(250));
}

#[test]
fn counters_follow_the_adj_rib_in() {
    let mut rib = ebgp_rib(Policy::accept_all());
    rib.receive(
        PeerId(1),
        announce(&["10.1.0.0/16", "10.2.0.0/16"], attrs(&[65001], "10.1.0.1")),
    );
    rib.receive(
        PeerId(1),
        announce(&["10.1.0.0/16"], attrs(&[65001, 65009], "10.1.0.1")),
    );
    rib.receive(PeerId(1), withdraw(&["10.2.0.0/16", "10.3.0.0/16"]));
    let counters = PeerCounters {
        received: 3,
        accepted: 1,
        advertised: 0,
    };
    assert_eq!(rib.counters(PeerId(1)), counters);
    assert_eq!(rib.counters(PeerId(9)), PeerCounters::default());
}

#[test]
fn add_path_keys_paths_by_prefix_and_path_id() {
    let mut rib = new_rib();
    rib.add_peer(PeerId(1), config("10.1.0.1", 65001));
    let info = SessionInfo {
        add_path_receive: vec![Family::IPV4_UNICAST],
        ..session("10.1.0.1")
    };
    rib.peer_up(PeerId(1), info);
    let mut update = announce(&["10.10.0.0/16"], attrs(&[65001], "10.1.0.7"));
    update.nlri[0].path_id = Some(1);
    rib.receive(PeerId(1), update.clone());
    update.nlri[0].path_id = Some(2);
    update.attributes.next_hop = Some(ip4("10.1.0.8"));
    rib.receive(PeerId(1), update);
    assert_eq!(
        best_hops(&rib, "10.10.0.0/16").unwrap(),
        vec![ip("10.1.0.7"), ip("10.1.0.8")]
    );
    assert_eq!(rib.counters(PeerId(1)).accepted, 2);
    let mut gone = withdraw(&["10.10.0.0/16"]);
    gone.withdrawn[0].path_id = Some(1);
    rib.receive(PeerId(1), gone);
    assert_eq!(
        best_hops(&rib, "10.10.0.0/16").unwrap(),
        vec![ip("10.1.0.8")]
    );
}

#[test]
fn without_add_path_a_path_id_does_not_add_a_path() {
    let mut rib = ebgp_rib(Policy::accept_all());
    let mut update = announce(&["10.10.0.0/16"], attrs(&[65001], "10.1.0.7"));
    update.nlri[0].path_id = Some(1);
    rib.receive(PeerId(1), update.clone());
    update.nlri[0].path_id = Some(2);
    update.attributes.next_hop = Some(ip4("10.1.0.8"));
    rib.receive(PeerId(1), update);
    assert_eq!(
        best_hops(&rib, "10.10.0.0/16").unwrap(),
        vec![ip("10.1.0.8")]
    );
}

#[test]
fn ipv6_routes_come_in_mp_reach_and_leave_in_mp_unreach() {
    let mut rib = ebgp_rib(Policy::accept_all());
    let update = announce_v6(
        &["2001:db8:1::/48"],
        attrs(&[65001], "0.0.0.0"),
        "2001:db8::1",
    );
    let out = rib.receive(PeerId(1), update);
    let (hops, stored) = agent(&rib, &out, "2001:db8:1::/48").unwrap().unwrap();
    assert_eq!(hops, vec![ip("2001:db8::1")]);
    assert!(stored.mp_reach.as_ref().is_some_and(|r| r.nlri.is_empty()));
    let unreach = crate::message::MpUnreach {
        family: Family::IPV6_UNICAST,
        withdrawn: vec![Nlri {
            prefix: net("2001:db8:1::/48"),
            path_id: None,
        }],
    };
    let attributes = PathAttributes {
        mp_unreach: Some(unreach),
        ..PathAttributes::default()
    };
    let out = rib.receive(
        PeerId(1),
        Update {
            attributes,
            ..Update::default()
        },
    );
    assert_eq!(agent(&rib, &out, "2001:db8:1::/48"), Some(None));
    assert!(rib.is_empty());
}

#[test]
fn updates_from_a_down_or_unknown_peer_are_ignored() {
    let mut rib = new_rib();
    rib.add_peer(PeerId(1), config("10.1.0.1", 65001));
    let update = announce(&["10.10.0.0/16"], attrs(&[65001], "10.1.0.1"));
    assert!(rib.receive(PeerId(1), update.clone()).is_empty());
    assert!(rib.receive(PeerId(2), update).is_empty());
    assert!(rib.is_empty());
}

#[test]
fn best_changes_carry_where_their_table_entry_is() {
    let mut rib = ebgp_rib(Policy::accept_all());
    let changes = |out: &[RibOutput]| -> Vec<(IpNet, Position)> {
        out.iter()
            .filter_map(|o| match o {
                RibOutput::BestChanged { prefix, position } => Some((*prefix, *position)),
                _ => None,
            })
            .collect()
    };
    let first = ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"];
    let out = rib.receive(PeerId(1), announce(&first, attrs(&[65001], "10.1.0.1")));
    let changed = changes(&out);
    assert_eq!(changed.len(), 4);
    for (prefix, position) in changed {
        // Without removals the hint is exact: set_watch_mark finds the entry there.
        let found = rib.set_watch_mark(&prefix, Position(u32::MAX), 4);
        assert_eq!(found, Some((false, position)), "{prefix}");
    }
    // Withdrawing the first entry moves the last one into its slot; a withdrawal and a
    // re-announcement in one update take the grouped path.
    let mut update = announce(
        &["10.0.4.0/24", "10.0.2.0/24"],
        attrs(&[65001, 7], "10.1.0.1"),
    );
    update.withdrawn = nlri(&["10.0.0.0/24", "10.0.2.0/24"]);
    let out = rib.receive(PeerId(1), update);
    let changed = changes(&out);
    assert_eq!(changed.len(), 2, "{out:?}");
    for (prefix, position) in changed {
        // The hint is where set_watch_mark finds the entry, unless a later removal in the
        // same update moved it (then the mark still lands, found through the index).
        let (_, found) = rib.set_watch_mark(&prefix, position, 1).expect("an entry");
        let (_, again) = rib
            .set_watch_mark(&prefix, Position(u32::MAX), 2)
            .expect("an entry");
        assert_eq!(found, again, "{prefix}");
    }
    assert_eq!(agent(&rib, &out, "10.0.0.0/24"), Some(None));
}

#[test]
fn a_prefix_repeated_in_one_update_changes_its_best_path_once() {
    let mut rib = ebgp_rib(Policy::accept_all());
    let best_changes = |out: &[RibOutput], wanted: &str| {
        out.iter()
            .filter(
                |o| matches!(o, RibOutput::BestChanged { prefix, .. } if *prefix == net(wanted)),
            )
            .count()
    };
    rib.receive(
        PeerId(1),
        announce(&["10.0.0.0/24"], attrs(&[65001], "10.1.0.1")),
    );
    // A new prefix twice (the second finds the entry the first inserted) and a known one
    // twice (its old best path is the one from before the update).
    let repeated = ["10.0.5.0/24", "10.0.0.0/24", "10.0.5.0/24", "10.0.0.0/24"];
    let out = rib.receive(
        PeerId(1),
        announce(&repeated, attrs(&[65001, 7], "10.1.0.1")),
    );
    assert_eq!(best_changes(&out, "10.0.5.0/24"), 1, "{out:?}");
    assert_eq!(best_changes(&out, "10.0.0.0/24"), 1, "{out:?}");
    // A withdrawal of an unknown prefix and its announcement in the same update.
    let mut update = announce(&["10.0.9.0/24"], attrs(&[65001], "10.1.0.1"));
    update.withdrawn = nlri(&["10.0.9.0/24"]);
    let out = rib.receive(PeerId(1), update);
    assert_eq!(best_changes(&out, "10.0.9.0/24"), 1, "{out:?}");
    assert_eq!(rib.len(), 3);
}

#[test]
fn first_touch_tells_the_first_change_of_each_prefix_in_an_update() {
    use crate::rib::import::FirstTouch;
    use crate::rib::table::{Paths, Table};
    let mut table: Table<Paths> = Table::default();
    table.get_or_default(net("10.0.0.0/24"));
    let mut first = FirstTouch::new(&table);
    let mut touched = Vec::new();
    let announce =
        |table: &mut Table<Paths>, first: &mut FirstTouch, touched: &mut Vec<_>, prefix: &str| {
            let (_, position, inserted) = table.entry_or_default(net(prefix));
            let is_first = first.announced(net(prefix), position, inserted);
            if is_first {
                touched.push((net(prefix), position, None));
            }
            is_first
        };
    // A prefix this update inserted, then again: found past the slab's old end.
    assert!(announce(
        &mut table,
        &mut first,
        &mut touched,
        "10.0.5.0/24"
    ));
    assert!(!announce(
        &mut table,
        &mut first,
        &mut touched,
        "10.0.5.0/24"
    ));
    // A prefix that was there before: through the set.
    assert!(announce(
        &mut table,
        &mut first,
        &mut touched,
        "10.0.0.0/24"
    ));
    assert!(!announce(
        &mut table,
        &mut first,
        &mut touched,
        "10.0.0.0/24"
    ));
    // A withdrawal switches to the set, seeded with what was touched.
    assert!(first.withdrawn(net("10.0.9.0/24"), &touched));
    assert!(!first.withdrawn(net("10.0.5.0/24"), &touched));
    assert!(!first.withdrawn(net("10.0.9.0/24"), &touched));
    assert!(!announce(
        &mut table,
        &mut first,
        &mut touched,
        "10.0.0.0/24"
    ));
}
