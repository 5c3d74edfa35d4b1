//! Tests of the OPEN we send, the checks of the OPEN we receive (RFC 4271 §6.2) and capability
//! negotiation. Events in, exact actions out; no I/O.

use super::*;
use crate::fsm::{GracefulRestartConfig, OpenError, PeerGracefulRestart, check_open};
use crate::message::{AddPathMode, GracefulRestartFamily, error_code};

/// The actions of refusing an OPEN in OpenSent with `notification`.
fn refused(notification: Notification, reason: &str) -> Vec<Action> {
    vec![
        Action::Send(Message::Notification(notification)),
        Action::CloseConnection,
        stop(Timer::Hold),
        down(reason, false),
        start(Timer::IdleHold, 5),
    ]
}

fn receive_open(config: SessionConfig, open: Open) -> (Session, Vec<Action>) {
    let mut session = open_sent(config);
    let actions = session.handle(Event::Message(Message::Open(open)));
    (session, actions)
}

fn open_error(subcode: u8) -> Notification {
    Notification {
        code: error_code::OPEN_MESSAGE,
        subcode,
        data: Vec::new(),
    }
}

#[test]
fn open_message_carries_the_configured_capabilities() {
    let config = SessionConfig {
        local_as: 4_200_000_001,
        hold_time: 30,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 5000,
            restarting: true,
            forwarding_preserved: true,
        }),
        add_path_receive: vec![Family::IPV4_UNICAST],
        extended_next_hop: true,
        ..config()
    };
    let open = Session::new(config).open_message();
    let gr_family = |family| GracefulRestartFamily {
        family,
        forwarding_preserved: true,
    };
    let expected = Open {
        version: 4,
        my_as: AS_TRANS,
        hold_time: 30,
        bgp_identifier: LOCAL_ID,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::ExtendedNextHop(vec![(Family::IPV4_UNICAST, 2)]),
            Capability::GracefulRestart {
                restart_state: true,
                restart_time: 4095,
                families: vec![
                    gr_family(Family::IPV4_UNICAST),
                    gr_family(Family::IPV6_UNICAST),
                ],
            },
            Capability::FourOctetAs(4_200_000_001),
            Capability::AddPath(vec![(Family::IPV4_UNICAST, AddPathMode::Receive)]),
        ],
    };
    assert_eq!(open, expected);

    let plain = Session::new(super::config()).open_message();
    assert_eq!(plain.my_as, 65001);
    assert_eq!(
        plain.capabilities,
        [
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001)
        ]
    );
}

#[test]
fn version_other_than_4_is_refused_with_the_supported_version() {
    let (session, actions) = receive_open(
        config(),
        Open {
            version: 3,
            ..peer_open(90)
        },
    );
    let notification = Notification {
        data: vec![0, 4],
        ..open_error(error_code::UNSUPPORTED_VERSION)
    };
    assert_eq!(actions, refused(notification, "unsupported BGP version 3"));
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn peer_as_mismatch_is_refused_with_bad_peer_as() {
    let (_, actions) = receive_open(
        SessionConfig {
            peer_as: 65003,
            ..config()
        },
        peer_open(90),
    );
    let reason = "bad peer AS 65002 (expected 65003)";
    assert_eq!(
        actions,
        refused(open_error(error_code::BAD_PEER_AS), reason)
    );
}

#[test]
fn peer_as_comes_from_the_four_octet_capability_when_present() {
    let big = 4_200_000_002;
    let config = || SessionConfig {
        peer_as: big,
        ..config()
    };
    let mut open = peer_open(90);
    open.my_as = AS_TRANS;
    open.capabilities = vec![Capability::FourOctetAs(big)];
    let (session, _) = receive_open(config(), open.clone());
    assert_eq!(session.state(), State::OpenConfirm);
    assert_eq!(session.negotiated().unwrap().peer_as, big);
    assert!(session.negotiated().unwrap().four_octet_as);

    open.capabilities.clear();
    let (_, actions) = receive_open(config(), open);
    let reason = "bad peer AS 23456 (expected 4200000002)";
    assert_eq!(
        actions,
        refused(open_error(error_code::BAD_PEER_AS), reason)
    );
}

#[test]
fn hold_time_1_or_2_is_unacceptable_and_3_gives_a_one_second_keepalive() {
    for hold in [1, 2] {
        let (_, actions) = receive_open(config(), peer_open(hold));
        let reason = format!("unacceptable hold time {hold}");
        assert_eq!(
            actions,
            refused(open_error(error_code::UNACCEPTABLE_HOLD_TIME), &reason)
        );
    }
    let (session, actions) = receive_open(config(), peer_open(3));
    assert_eq!(
        actions,
        [
            Action::Send(Message::Keepalive),
            start(Timer::Keepalive, 1),
            start(Timer::Hold, 3)
        ]
    );
    assert_eq!(
        (
            session.negotiated().unwrap().hold_time,
            session.negotiated().unwrap().keepalive
        ),
        (3, 1)
    );
}

#[test]
fn hold_time_is_the_smaller_proposal() {
    let (session, actions) = receive_open(config(), peer_open(30));
    assert_eq!(
        actions,
        [
            Action::Send(Message::Keepalive),
            start(Timer::Keepalive, 10),
            start(Timer::Hold, 30)
        ]
    );
    assert_eq!(session.negotiated().unwrap().hold_time, 30);
    let (session, _) = receive_open(config(), peer_open(180));
    assert_eq!(session.negotiated().unwrap().keepalive, 30);
}

#[test]
fn hold_time_zero_runs_no_keepalive_hold_or_send_hold_timer() {
    let (mut session, actions) = receive_open(config(), peer_open(0));
    assert_eq!(
        actions,
        [Action::Send(Message::Keepalive), stop(Timer::Hold)]
    );
    let actions = session.handle(Event::Message(Message::Keepalive));
    assert_eq!(
        actions,
        [Action::Established(session.negotiated().cloned().unwrap())]
    );
    assert_eq!(session.handle(Event::Message(Message::Keepalive)), []);
    assert_eq!(session.handle(Event::SendProgress), []);
    assert_eq!(expire(&mut session, Timer::Keepalive), []);
    assert_eq!(expire(&mut session, Timer::Hold), []);
    assert_eq!(session.state(), State::Established);

    let (_, actions) = receive_open(
        SessionConfig {
            hold_time: 0,
            ..config()
        },
        peer_open(90),
    );
    assert_eq!(
        actions,
        [Action::Send(Message::Keepalive), stop(Timer::Hold)]
    );
}

#[test]
fn bgp_identifier_zero_or_ours_within_the_as_is_refused() {
    let open = Open {
        bgp_identifier: Ipv4Addr::UNSPECIFIED,
        ..peer_open(90)
    };
    let (_, actions) = receive_open(config(), open);
    let notification = open_error(error_code::BAD_BGP_IDENTIFIER);
    assert_eq!(
        actions,
        refused(notification.clone(), "bad BGP identifier 0.0.0.0")
    );

    let ibgp = || SessionConfig {
        peer_as: LOCAL_AS,
        ..config()
    };
    let ours = Open {
        my_as: 65001,
        bgp_identifier: LOCAL_ID,
        capabilities: vec![Capability::FourOctetAs(LOCAL_AS)],
        ..peer_open(90)
    };
    let (_, actions) = receive_open(ibgp(), ours.clone());
    assert_eq!(
        actions,
        refused(notification, "bad BGP identifier 10.0.0.1")
    );
    // Between ASes the same identifier is allowed (RFC 6286).
    let ebgp_same_id = Open {
        bgp_identifier: LOCAL_ID,
        ..peer_open(90)
    };
    assert_eq!(
        receive_open(config(), ebgp_same_id).0.state(),
        State::OpenConfirm
    );
    let ibgp_other_id = Open {
        bgp_identifier: PEER_ID,
        ..ours
    };
    assert_eq!(
        receive_open(ibgp(), ibgp_other_id).0.state(),
        State::OpenConfirm
    );
}

#[test]
fn open_errors_map_to_their_notifications() {
    let error = OpenError::UnsupportedVersion(5);
    assert_eq!(error.notification().data, [0, 4]);
    assert_eq!(OpenError::UnacceptableHoldTime(1).notification().subcode, 6);
    let refused = check_open(
        &config(),
        &Open {
            hold_time: 2,
            ..peer_open(90)
        },
    );
    assert_eq!(refused, Err(OpenError::UnacceptableHoldTime(2)));
}

#[test]
fn capabilities_are_negotiated() {
    let config = SessionConfig {
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        graceful_restart: Some(GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
        }),
        add_path_receive: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        extended_next_hop: true,
        ..config()
    };
    let evpn = Family { afi: 25, safi: 70 };
    let open = Open {
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(evpn),
            Capability::ExtendedNextHop(vec![(Family::IPV4_UNICAST, 2)]),
            Capability::GracefulRestart {
                restart_state: true,
                restart_time: 90,
                families: vec![GracefulRestartFamily {
                    family: Family::IPV6_UNICAST,
                    forwarding_preserved: true,
                }],
            },
            Capability::AddPath(vec![
                (Family::IPV4_UNICAST, AddPathMode::Both),
                (Family::IPV6_UNICAST, AddPathMode::Receive),
            ]),
            Capability::Unknown {
                code: 73,
                value: vec![1, 2, 3],
            },
        ],
        ..peer_open(90)
    };
    let negotiated = check_open(&config, &open).unwrap();
    assert_eq!(
        negotiated.families,
        [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    // The peer only receives IPv6 paths, so we do not receive path ids there.
    assert_eq!(negotiated.add_path_receive, [Family::IPV4_UNICAST]);
    assert!(negotiated.add_path_send.is_empty());
    assert!(negotiated.extended_next_hop);
    assert!(!negotiated.four_octet_as);
    assert!(!negotiated.route_refresh);
    assert!(negotiated.local_graceful_restart);
    let peer_gr = PeerGracefulRestart {
        restart_time: 90,
        restart_state: true,
        families: vec![(Family::IPV6_UNICAST, true)],
    };
    assert_eq!(negotiated.peer_graceful_restart, Some(peer_gr));
}

#[test]
fn a_peer_without_multiprotocol_capability_speaks_ipv4_unicast() {
    let open = Open {
        capabilities: Vec::new(),
        ..peer_open(90)
    };
    let dual = SessionConfig {
        families: vec![Family::IPV6_UNICAST, Family::IPV4_UNICAST],
        ..config()
    };
    let negotiated = check_open(&dual, &open).unwrap();
    assert_eq!(negotiated.families, [Family::IPV4_UNICAST]);
    let v6_only = SessionConfig {
        families: vec![Family::IPV6_UNICAST],
        ..config()
    };
    assert!(check_open(&v6_only, &open).unwrap().families.is_empty());
    // Neither extended next hop nor add-path without the peer's capability.
    let wants = SessionConfig {
        extended_next_hop: true,
        add_path_receive: vec![Family::IPV4_UNICAST],
        ..config()
    };
    let negotiated = check_open(&wants, &open).unwrap();
    assert!(!negotiated.extended_next_hop && negotiated.add_path_receive.is_empty());
    assert!(negotiated.peer_graceful_restart.is_none() && !negotiated.local_graceful_restart);
    let plain = check_open(&config(), &peer_open(90)).unwrap();
    assert!(plain.four_octet_as && plain.route_refresh);
}
