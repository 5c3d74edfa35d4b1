//! Tests of how sessions end: ManualStop, NOTIFICATION received or sent for a decode error,
//! graceful restart (which Down keeps routes stale) and connection collisions. Events in, exact
//! actions out; no I/O.

use super::*;
use crate::fsm::{CollisionWinner, resolve_collision, resolve_collision_with_as};
use crate::message::{GracefulRestartFamily, error_code};

#[test]
fn manual_stop_when_established_sends_cease_administrative_shutdown_and_stays_down() {
    let mut session = established();
    let actions = session.handle(Event::ManualStop);
    let mut expected = established_teardown(
        Some(send_notification(
            error_code::CEASE,
            error_code::ADMINISTRATIVE_SHUTDOWN,
        )),
        "administrative shutdown",
        false,
        0,
    );
    expected.pop(); // no IdleHold: stopped by hand
    assert_eq!(actions, expected);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.negotiated(), None);
    assert_eq!(session.last_error(), Some("administrative shutdown"));
    assert_eq!(session.handle(Event::ManualStop), []);
    assert_eq!(
        session.handle(Event::TcpAccepted),
        [Action::CloseConnection]
    );
}

#[test]
fn manual_stop_while_connecting_abandons_the_attempt() {
    let mut session = Session::new(config());
    session.handle(Event::ManualStart);
    let actions = session.handle(Event::ManualStop);
    assert_eq!(
        actions,
        [
            Action::CloseConnection,
            stop(Timer::ConnectRetry),
            down("administrative shutdown", false)
        ]
    );
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn received_notification_ends_the_session_without_answering() {
    let mut session = established();
    let cease = Notification {
        code: 6,
        subcode: 2,
        data: Vec::new(),
    };
    let actions = session.handle(Event::Message(Message::Notification(cease)));
    let expected = established_teardown(None, "received NOTIFICATION 6/2", false, 5);
    assert_eq!(actions, expected);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.last_error(), Some("received NOTIFICATION 6/2"));
}

#[test]
fn decode_error_sends_the_decoders_notification() {
    let mut session = established();
    let malformed = Notification {
        code: 3,
        subcode: 1,
        data: vec![1, 2],
    };
    let actions = session.handle(Event::DecodeError(malformed.clone()));
    let reason = "malformed message: sent NOTIFICATION 3/1";
    let send = Action::Send(Message::Notification(malformed));
    assert_eq!(actions, established_teardown(Some(send), reason, false, 5));
}

fn graceful_peer_open() -> Open {
    let mut open = peer_open(90);
    open.capabilities.push(Capability::GracefulRestart {
        restart_state: false,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            forwarding_preserved: true,
        }],
    });
    open
}

#[test]
fn tcp_close_keeps_routes_stale_only_for_a_graceful_restart_peer() {
    let mut session = established_with(config(), graceful_peer_open());
    let actions = session.handle(Event::TcpClosed);
    assert_eq!(
        actions,
        established_teardown(None, "connection closed", true, 5)
    );

    // The restarting peer comes back but fails before Established: routes stay stale ...
    expire(&mut session, Timer::IdleHold);
    session.handle(Event::TcpConnected);
    let actions = session.handle(Event::TcpClosed);
    assert!(
        actions.contains(&down("connection closed", true)),
        "{actions:?}"
    );
    // ... until a NOTIFICATION ends an attempt (no RFC 8538 N bit: no GR after a NOTIFICATION).
    expire(&mut session, Timer::IdleHold);
    session.handle(Event::TcpConnected);
    let actions = session.handle(Event::Message(Message::Open(Open {
        version: 3,
        ..peer_open(90)
    })));
    assert!(
        actions.contains(&down("unsupported BGP version 3", false)),
        "{actions:?}"
    );

    let mut session = established();
    let actions = session.handle(Event::TcpClosed);
    assert_eq!(
        actions,
        established_teardown(None, "connection closed", false, 5)
    );
}

#[test]
fn notification_from_a_graceful_restart_peer_flushes_its_routes() {
    let mut session = established_with(config(), graceful_peer_open());
    let cease = Notification {
        code: 6,
        subcode: 4,
        data: Vec::new(),
    };
    let actions = session.handle(Event::Message(Message::Notification(cease)));
    assert_eq!(
        actions,
        established_teardown(None, "received NOTIFICATION 6/4", false, 5)
    );
}

#[test]
fn collision_dump_sends_cease_7_and_closes_without_restart() {
    let mut session = open_confirm(config(), peer_open(90));
    let actions = session.handle(Event::CollisionDump);
    assert_eq!(
        actions,
        [
            send_notification(
                error_code::CEASE,
                error_code::CONNECTION_COLLISION_RESOLUTION
            ),
            Action::CloseConnection,
            stop(Timer::Hold),
            stop(Timer::Keepalive),
        ]
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(expire(&mut session, Timer::IdleHold), []);
}

#[test]
fn the_connection_initiated_by_the_higher_identifier_survives() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 2);
    // We are higher: keep the connection we initiated.
    assert_eq!(
        resolve_collision(high, low, true),
        CollisionWinner::Existing
    );
    assert_eq!(
        resolve_collision(high, low, false),
        CollisionWinner::Incoming
    );
    // We are lower: keep the connection the peer initiated.
    assert_eq!(
        resolve_collision(low, high, true),
        CollisionWinner::Incoming
    );
    assert_eq!(
        resolve_collision(low, high, false),
        CollisionWinner::Existing
    );
    // Compared as numbers, not as strings or octets one by one.
    let ten = Ipv4Addr::new(9, 255, 255, 255);
    assert_eq!(
        resolve_collision(Ipv4Addr::new(10, 0, 0, 0), ten, true),
        CollisionWinner::Existing
    );
    // Equal identifiers (RFC 6286): the larger AS keeps the connection it initiated.
    assert_eq!(
        resolve_collision_with_as(low, 65002, low, 65001, true),
        CollisionWinner::Existing
    );
    assert_eq!(
        resolve_collision_with_as(low, 65001, low, 65002, true),
        CollisionWinner::Incoming
    );
    assert_eq!(
        resolve_collision_with_as(high, 1, low, 2, true),
        CollisionWinner::Existing
    );
}
