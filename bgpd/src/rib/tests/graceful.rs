//! Tests of session loss and the graceful restart helper (no I/O).

use super::*;

const P4: &str = "10.10.0.0/16";
const Q4: &str = "10.20.0.0/16";
const P6: &str = "2001:db8:1::/48";

/// Peer 1 (eBGP, restarting) announced P4, Q4 and P6; peer 2 (eBGP) listens.
fn setup() -> Rib {
    setup_with(session("10.1.0.1"))
}

/// `setup` with peer 1's session given.
fn setup_with(peer_1: SessionInfo) -> Rib {
    let mut rib = new_rib();
    rib.add_peer(PeerId(1), config("10.1.0.1", 65001));
    rib.peer_up(PeerId(1), peer_1);
    up(&mut rib, 2, config("10.2.0.1", 65002));
    rib.receive(PeerId(1), announce(&[P4, Q4], attrs(&[65001], "10.1.0.1")));
    let v6 = announce_v6(&[P6], attrs(&[65001], "0.0.0.0"), "2001:db8::1");
    rib.receive(PeerId(1), v6);
    rib
}

#[test]
fn peer_down_withdraws_its_routes() {
    let mut rib = setup();
    let out = rib.peer_down(PeerId(1), false);
    assert_eq!(agent(&rib, &out, P4), Some(None));
    assert_eq!(agent(&rib, &out, P6), Some(None));
    assert_eq!(withdrawn(&out, 2), vec![net(P4), net(Q4), net(P6)]);
    assert!(rib.is_empty());
    assert_eq!(rib.counters(PeerId(1)).accepted, 0);
}

#[test]
fn remove_peer_withdraws_and_forgets() {
    let mut rib = setup();
    let out = rib.remove_peer(PeerId(1));
    assert_eq!(withdrawn(&out, 2).len(), 3);
    assert!(rib.is_empty());
    assert!(
        rib.receive(PeerId(1), announce(&[P4], attrs(&[65001], "10.1.0.1")))
            .is_empty()
    );
}

#[test]
fn down_peer_gets_nothing_and_its_adj_rib_out_is_reset() {
    let mut rib = setup();
    rib.peer_down(PeerId(2), false);
    assert_eq!(rib.counters(PeerId(2)).advertised, 0);
    let out = rib.receive(PeerId(1), withdraw(&[P4]));
    assert!(sent(&out, 2).is_empty());
}

#[test]
fn keep_stale_keeps_routes_selectable_and_marked() {
    let mut rib = setup();
    let out = rib.peer_down(PeerId(1), true);
    assert!(out.is_empty(), "{out:?}");
    assert!(rib.is_stale(PeerId(1), &net(P4)));
    assert!(rib.is_stale(PeerId(1), &net(P6)));
    assert_eq!(best_hops(&rib, P4), Some(vec![ip("10.1.0.1")]));
    assert_eq!(
        rib.counters(PeerId(2)).advertised,
        3,
        "still advertised to others"
    );
}

#[test]
fn reannouncement_clears_the_stale_flag() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    let out = up(&mut rib, 1, config("10.1.0.1", 65001));
    assert!(
        announced(&out, 1).is_empty(),
        "its own routes are not sent back"
    );
    let out = rib.receive(PeerId(1), announce(&[P4], attrs(&[65001], "10.1.0.1")));
    assert!(out.is_empty(), "same route again: nothing changes {out:?}");
    assert!(!rib.is_stale(PeerId(1), &net(P4)));
    assert!(rib.is_stale(PeerId(1), &net(Q4)));
}

#[test]
fn end_of_rib_sweeps_that_familys_stale_routes() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    up(&mut rib, 1, config("10.1.0.1", 65001));
    rib.receive(PeerId(1), announce(&[P4], attrs(&[65001], "10.1.0.1")));
    let out = rib.receive(PeerId(1), Update::end_of_rib(Family::IPV4_UNICAST));
    assert_eq!(agent(&rib, &out, Q4), Some(None));
    assert_eq!(withdrawn(&out, 2), vec![net(Q4)]);
    assert!(best_hops(&rib, P4).is_some());
    assert!(
        rib.is_stale(PeerId(1), &net(P6)),
        "IPv6 waits for its own End-of-RIB"
    );
    let out = rib.receive(PeerId(1), Update::end_of_rib(Family::IPV6_UNICAST));
    assert_eq!(agent(&rib, &out, P6), Some(None));
    assert_eq!(rib.len(), 1);
}

#[test]
fn stale_timeout_drops_all_stale_routes() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    up(&mut rib, 1, config("10.1.0.1", 65001));
    rib.receive(PeerId(1), announce(&[P4], attrs(&[65001], "10.1.0.1")));
    let out = rib.stale_timeout(PeerId(1));
    assert_eq!(withdrawn(&out, 2), vec![net(Q4), net(P6)]);
    assert_eq!(rib.len(), 1);
    assert_eq!(rib.counters(PeerId(1)).accepted, 1);
}

#[test]
fn a_better_path_replaces_a_stale_one() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    up(&mut rib, 3, config("10.0.0.3", 65003));
    let out = rib.receive(PeerId(3), announce(&[P4], attrs(&[65003], "10.0.0.3")));
    assert_eq!(
        agent(&rib, &out, P4).unwrap().unwrap().0,
        vec![ip("10.0.0.3"), ip("10.1.0.1")]
    );
    let out = rib.stale_timeout(PeerId(1));
    assert_eq!(
        agent(&rib, &out, P4).unwrap().unwrap().0,
        vec![ip("10.0.0.3")]
    );
}

/// Peer 1's session as `setup` brought it up, but with this graceful restart capability.
fn restart_session(families: Option<Vec<(Family, bool)>>) -> SessionInfo {
    SessionInfo {
        peer_router_id: ip4("10.1.0.1"),
        graceful_restart: families,
        ..session("0.0.0.0")
    }
}

/// `setup`, but peer 1's capability listed only IPv4 unicast.
fn setup_ipv4_only_restart() -> Rib {
    let ipv4_only = Some(vec![(Family::IPV4_UNICAST, true)]);
    setup_with(restart_session(ipv4_only))
}

#[test]
fn only_families_of_the_previous_capability_are_kept_stale() {
    let mut rib = setup_ipv4_only_restart();
    let out = rib.peer_down(PeerId(1), true);
    assert_eq!(
        agent(&rib, &out, P6),
        Some(None),
        "IPv6 flushed at once: {out:?}"
    );
    assert_eq!(withdrawn(&out, 2), vec![net(P6)]);
    assert!(rib.is_stale(PeerId(1), &net(P4)));
    assert_eq!(best_hops(&rib, P4), Some(vec![ip("10.1.0.1")]));
    assert_eq!(rib.len(), 2);
}

#[test]
fn a_peer_without_the_capability_has_nothing_kept_stale() {
    let mut rib = new_rib();
    rib.add_peer(PeerId(1), config("10.1.0.1", 65001));
    rib.peer_up(PeerId(1), restart_session(None));
    rib.receive(PeerId(1), announce(&[P4], attrs(&[65001], "10.1.0.1")));
    let out = rib.peer_down(PeerId(1), true);
    assert_eq!(agent(&rib, &out, P4), Some(None));
    assert!(rib.is_empty());
}

#[test]
fn reestablished_without_the_forwarding_bit_flushes_that_family_at_once() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    let families = Some(vec![
        (Family::IPV4_UNICAST, false),
        (Family::IPV6_UNICAST, true),
    ]);
    let out = rib.peer_up(PeerId(1), restart_session(families));
    assert_eq!(agent(&rib, &out, P4), Some(None), "{out:?}");
    assert_eq!(agent(&rib, &out, Q4), Some(None));
    assert_eq!(withdrawn(&out, 2), vec![net(P4), net(Q4)]);
    assert!(
        rib.is_stale(PeerId(1), &net(P6)),
        "IPv6 waits for End-of-RIB"
    );
    assert_eq!(rib.len(), 1);
}

#[test]
fn reestablished_with_a_family_missing_flushes_that_family_at_once() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    let ipv6_only = Some(vec![(Family::IPV6_UNICAST, true)]);
    let out = rib.peer_up(PeerId(1), restart_session(ipv6_only));
    assert_eq!(withdrawn(&out, 2), vec![net(P4), net(Q4)]);
    assert!(rib.is_stale(PeerId(1), &net(P6)));
}

#[test]
fn reestablished_without_the_capability_flushes_everything_stale() {
    let mut rib = setup();
    rib.peer_down(PeerId(1), true);
    let out = rib.peer_up(PeerId(1), restart_session(None));
    assert_eq!(withdrawn(&out, 2), vec![net(P4), net(Q4), net(P6)]);
    assert!(rib.is_empty());
    let ends = sent(&out, 1)
        .iter()
        .filter(|u| u.end_of_rib_family().is_some())
        .count();
    assert_eq!(ends, 2, "the peer still gets its table and End-of-RIBs");
}
