//! Tests of the RFC 4271 states and transitions, RFC 6608 FSM errors, passive sessions and
//! messages in Established. Events in, exact actions out; no I/O.

use super::*;
use crate::message::{Nlri, RouteRefresh, Update, error_code};

#[test]
fn walks_idle_connect_open_sent_open_confirm_established() {
    let mut session = Session::new(config());
    assert_eq!(session.state(), State::Idle);

    let actions = session.handle(Event::ManualStart);
    assert_eq!(actions, [Action::Connect, start(Timer::ConnectRetry, 5)]);
    assert_eq!(session.state(), State::Connect);

    let actions = session.handle(Event::TcpConnected);
    let open = Action::Send(Message::Open(session.open_message()));
    assert_eq!(
        actions,
        [stop(Timer::ConnectRetry), open, start(Timer::Hold, 240)]
    );
    assert_eq!(session.state(), State::OpenSent);

    let actions = session.handle(Event::Message(Message::Open(peer_open(90))));
    assert_eq!(
        actions,
        [
            Action::Send(Message::Keepalive),
            start(Timer::Keepalive, 30),
            start(Timer::Hold, 90)
        ]
    );
    assert_eq!(session.state(), State::OpenConfirm);
    let negotiated = session.negotiated().cloned().unwrap();
    assert_eq!(negotiated.peer_router_id, PEER_ID);

    let actions = session.handle(Event::Message(Message::Keepalive));
    assert_eq!(
        actions,
        [
            start(Timer::Hold, 90),
            start(Timer::SendHold, 480),
            Action::Established(negotiated)
        ]
    );
    assert_eq!(session.state(), State::Established);
}

#[test]
fn passive_session_never_connects_and_waits_in_active() {
    let mut session = Session::new(SessionConfig {
        passive: true,
        ..config()
    });
    assert_eq!(session.handle(Event::ManualStart), []);
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.handle(Event::TcpConnected), []);
    assert_eq!(session.handle(Event::TimerExpired(Timer::ConnectRetry)), []);
    assert_eq!(session.state(), State::Active);

    let actions = session.handle(Event::TcpAccepted);
    let open = Action::Send(Message::Open(session.open_message()));
    assert_eq!(actions, [open, start(Timer::Hold, 240)]);

    // After a failure it holds down, then waits in Active again, still without connecting.
    let actions = session.handle(Event::TcpClosed);
    assert_eq!(
        actions,
        [
            Action::CloseConnection,
            stop(Timer::Hold),
            down("connection closed", false),
            start(Timer::IdleHold, 5)
        ]
    );
    assert_eq!(expire(&mut session, Timer::IdleHold), []);
    assert_eq!(session.state(), State::Active);
}

#[test]
fn active_session_accepts_incoming_connections_too() {
    let mut session = Session::new(config());
    session.handle(Event::ManualStart);
    let actions = session.handle(Event::TcpAccepted);
    let open = Action::Send(Message::Open(session.open_message()));
    assert_eq!(
        actions,
        [stop(Timer::ConnectRetry), open, start(Timer::Hold, 240)]
    );
}

#[test]
fn idle_refuses_connections() {
    let mut session = Session::new(config());
    assert_eq!(
        session.handle(Event::TcpAccepted),
        [Action::CloseConnection]
    );
    assert_eq!(session.state(), State::Idle);
}

/// RFC 6608 subcodes: 1 OpenSent, 2 OpenConfirm, 3 Established.
#[test]
fn unexpected_messages_are_fsm_errors_with_the_rfc_6608_subcode() {
    let keepalive = Event::Message(Message::Keepalive);
    let mut session = open_sent(config());
    assert_eq!(
        session.handle(keepalive),
        [
            send_notification(error_code::FSM, 1),
            Action::CloseConnection,
            stop(Timer::Hold),
            down("unexpected KEEPALIVE in OpenSent", false),
            start(Timer::IdleHold, 5),
        ]
    );
    assert_eq!(session.state(), State::Idle);

    let refresh = RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: 0,
    };
    let mut session = open_sent(config());
    let actions = session.handle(Event::Message(Message::RouteRefresh(refresh)));
    assert_eq!(actions[0], send_notification(error_code::FSM, 1));

    let mut session = open_confirm(config(), peer_open(90));
    let actions = session.handle(Event::Message(Message::Update(Update::default())));
    assert_eq!(
        actions,
        [
            send_notification(error_code::FSM, 2),
            Action::CloseConnection,
            stop(Timer::Hold),
            stop(Timer::Keepalive),
            down("unexpected UPDATE in OpenConfirm", false),
            start(Timer::IdleHold, 5),
        ]
    );

    let mut session = open_confirm(config(), peer_open(90));
    let actions = session.handle(Event::TreatAsWithdraw(Update::default()));
    assert_eq!(actions[0], send_notification(error_code::FSM, 2));

    let mut session = open_confirm(config(), peer_open(90));
    let actions = session.handle(Event::Message(Message::Open(peer_open(90))));
    assert_eq!(actions[0], send_notification(error_code::FSM, 2));

    let mut session = established();
    let actions = session.handle(Event::Message(Message::Open(peer_open(90))));
    let expected = established_teardown(
        Some(send_notification(error_code::FSM, 3)),
        "unexpected OPEN in Established",
        false,
        5,
    );
    assert_eq!(actions, expected);
}

#[test]
fn keepalive_and_update_restart_the_hold_timer_and_updates_reach_the_rib() {
    let mut session = established();
    assert_eq!(
        session.handle(Event::Message(Message::Keepalive)),
        [start(Timer::Hold, 90)]
    );

    let update = Update {
        withdrawn: vec![Nlri {
            prefix: "10.1.0.0/24".parse().unwrap(),
            path_id: None,
        }],
        ..Update::default()
    };
    let actions = session.handle(Event::Message(Message::Update(update.clone())));
    assert_eq!(
        actions,
        [start(Timer::Hold, 90), Action::Update(update.clone())]
    );

    let actions = session.handle(Event::TreatAsWithdraw(update.clone()));
    assert_eq!(actions, [start(Timer::Hold, 90), Action::Update(update)]);

    let end_of_rib = Update::end_of_rib(Family::IPV4_UNICAST);
    let actions = session.handle(Event::Message(Message::Update(end_of_rib.clone())));
    assert_eq!(
        actions,
        [start(Timer::Hold, 90), Action::Update(end_of_rib)]
    );
    assert_eq!(session.state(), State::Established);
}

#[test]
fn route_refresh_for_a_negotiated_family_is_reported() {
    let mut session = established();
    let request =
        |family, subtype| Event::Message(Message::RouteRefresh(RouteRefresh { family, subtype }));
    let actions = session.handle(request(Family::IPV4_UNICAST, 0));
    assert_eq!(actions, [Action::RouteRefresh(Family::IPV4_UNICAST)]);
    // RFC 2918 §4: not advertised, ignored; RFC 7313: BoRR/EoRR are not requests.
    assert_eq!(session.handle(request(Family::IPV6_UNICAST, 0)), []);
    assert_eq!(session.handle(request(Family::IPV4_UNICAST, 1)), []);
    assert_eq!(session.state(), State::Established);
}

#[test]
fn events_of_a_connection_the_session_does_not_have_are_ignored() {
    let mut session = Session::new(config());
    assert_eq!(session.handle(Event::Message(Message::Keepalive)), []);
    assert_eq!(session.handle(Event::TcpClosed), []);
    assert_eq!(session.handle(Event::TimerExpired(Timer::Hold)), []);
    assert_eq!(session.handle(Event::SendProgress), []);
    session.handle(Event::ManualStart);
    assert_eq!(
        session.handle(Event::DecodeError(Notification {
            code: 1,
            subcode: 1,
            data: vec![]
        })),
        []
    );
    assert_eq!(session.handle(Event::ManualStart), []);
    assert_eq!(session.state(), State::Connect);
    // A second connection while one is open is the daemon's to resolve.
    let mut session = established();
    assert_eq!(session.handle(Event::TcpAccepted), []);
    assert_eq!(session.state(), State::Established);
}
