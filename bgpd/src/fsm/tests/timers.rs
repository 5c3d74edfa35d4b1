//! Tests of the timers: ConnectRetry backoff, IdleHold restart, hold and keepalive timers, and
//! the RFC 9687 send hold timer. Events in, exact actions out; no I/O.

use super::*;
use crate::fsm::send_hold_time;
use crate::message::error_code;

#[test]
fn connect_retry_backs_off_from_5_to_120_seconds() {
    let mut session = Session::new(config());
    assert_eq!(
        session.handle(Event::ManualStart),
        [Action::Connect, start(Timer::ConnectRetry, 5)]
    );
    let mut waits = Vec::new();
    for _ in 0..7 {
        let actions = session.handle(Event::TcpConnectFailed);
        assert_eq!(session.state(), State::Active);
        let [Action::StartTimer(Timer::ConnectRetry, wait)] = actions[..] else {
            panic!("{actions:?}");
        };
        waits.push(wait.as_secs());
        let actions = expire(&mut session, Timer::ConnectRetry);
        assert_eq!(actions[0], Action::Connect);
        assert_eq!(session.state(), State::Connect);
    }
    assert_eq!(waits, [5, 10, 20, 40, 80, 120, 120]);
    assert_eq!(session.last_error(), Some("connection failed"));
}

#[test]
fn connect_retry_expiry_in_active_connects_and_in_connect_retries() {
    let mut session = Session::new(config());
    session.handle(Event::ManualStart);
    // The attempt timed out: abandon it, try again, back off.
    let actions = expire(&mut session, Timer::ConnectRetry);
    assert_eq!(actions, [Action::Connect, start(Timer::ConnectRetry, 5)]);
    assert_eq!(session.state(), State::Connect);
    assert_eq!(
        session.handle(Event::TcpConnectFailed),
        [start(Timer::ConnectRetry, 10)]
    );
    let actions = expire(&mut session, Timer::ConnectRetry);
    assert_eq!(actions, [Action::Connect, start(Timer::ConnectRetry, 20)]);
    assert_eq!(session.state(), State::Connect);
}

#[test]
fn backoff_is_capped_at_the_initial_value_when_that_is_larger() {
    let mut session = Session::new(SessionConfig {
        connect_retry: secs(300),
        ..config()
    });
    session.handle(Event::ManualStart);
    assert_eq!(
        session.handle(Event::TcpConnectFailed),
        [start(Timer::ConnectRetry, 300)]
    );
    expire(&mut session, Timer::ConnectRetry);
    assert_eq!(
        session.handle(Event::TcpConnectFailed),
        [start(Timer::ConnectRetry, 300)]
    );
}

#[test]
fn failed_sessions_hold_down_with_backoff_and_established_resets_it() {
    let mut session = Session::new(config());
    session.handle(Event::ManualStart);
    for idle_hold in [5, 10, 20] {
        session.handle(Event::TcpConnected);
        let actions = session.handle(Event::TcpClosed);
        assert_eq!(actions.last(), Some(&start(Timer::IdleHold, idle_hold)));
        assert_eq!(session.state(), State::Idle);
        let actions = expire(&mut session, Timer::IdleHold);
        assert_eq!(
            actions,
            [Action::Connect, start(Timer::ConnectRetry, idle_hold * 2)]
        );
    }
    session.handle(Event::TcpConnected);
    session.handle(Event::Message(Message::Open(peer_open(90))));
    session.handle(Event::Message(Message::Keepalive));
    assert_eq!(session.state(), State::Established);
    let actions = session.handle(Event::TcpClosed);
    assert_eq!(
        actions,
        established_teardown(None, "connection closed", false, 5)
    );
    // ManualStart while holding down starts at once.
    let actions = session.handle(Event::ManualStart);
    assert_eq!(
        actions,
        [
            stop(Timer::IdleHold),
            Action::Connect,
            start(Timer::ConnectRetry, 10)
        ]
    );
}

#[test]
fn hold_timer_expiry_sends_4_0_and_goes_down() {
    let mut session = established();
    let actions = expire(&mut session, Timer::Hold);
    let expected = vec![
        send_notification(error_code::HOLD_TIMER_EXPIRED, 0),
        Action::CloseConnection,
        stop(Timer::Keepalive),
        stop(Timer::SendHold),
        down("hold timer expired", false),
        start(Timer::IdleHold, 5),
    ];
    assert_eq!(actions, expected);
    assert_eq!(session.state(), State::Idle);

    // The 4-minute timer of OpenSent too.
    let mut session = open_sent(config());
    let actions = expire(&mut session, Timer::Hold);
    let expected = vec![
        send_notification(error_code::HOLD_TIMER_EXPIRED, 0),
        Action::CloseConnection,
        down("hold timer expired", false),
        start(Timer::IdleHold, 5),
    ];
    assert_eq!(actions, expected);
}

#[test]
fn keepalive_timer_sends_keepalive_and_restarts() {
    let mut session = open_confirm(config(), peer_open(90));
    let actions = expire(&mut session, Timer::Keepalive);
    assert_eq!(
        actions,
        [
            Action::Send(Message::Keepalive),
            start(Timer::Keepalive, 30)
        ]
    );
    let mut session = established();
    let actions = expire(&mut session, Timer::Keepalive);
    assert_eq!(
        actions,
        [
            Action::Send(Message::Keepalive),
            start(Timer::Keepalive, 30)
        ]
    );
}

#[test]
fn stale_timer_expiries_are_ignored() {
    let mut session = established();
    session.handle(Event::TcpClosed);
    assert_eq!(expire(&mut session, Timer::Hold), []);
    assert_eq!(expire(&mut session, Timer::Keepalive), []);
    assert_eq!(expire(&mut session, Timer::SendHold), []);
    assert_eq!(expire(&mut session, Timer::ConnectRetry), []);
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn send_progress_restarts_the_send_hold_timer_when_established() {
    let mut session = open_confirm(config(), peer_open(90));
    assert_eq!(session.handle(Event::SendProgress), []);
    let mut session = established();
    assert_eq!(
        session.handle(Event::SendProgress),
        [start(Timer::SendHold, 480)]
    );
    let mut session = established_with(
        SessionConfig {
            hold_time: 300,
            ..config()
        },
        peer_open(300),
    );
    assert_eq!(
        session.handle(Event::SendProgress),
        [start(Timer::SendHold, 600)]
    );
}

#[test]
fn send_hold_expiry_sends_8_0_best_effort_and_closes() {
    let mut session = established();
    let actions = expire(&mut session, Timer::SendHold);
    let expected = vec![
        send_notification(error_code::SEND_HOLD_TIMER_EXPIRED, 0),
        Action::CloseConnection,
        stop(Timer::Hold),
        stop(Timer::Keepalive),
        down("send hold timer expired", false),
        start(Timer::IdleHold, 5),
    ];
    assert_eq!(actions, expected);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.last_error(), Some("send hold timer expired"));
}

#[test]
fn configured_send_hold_time_is_used_and_zero_disables_it() {
    let config_with = |send_hold_time| SessionConfig {
        send_hold_time,
        ..config()
    };
    let mut session = open_confirm(config_with(Some(secs(100))), peer_open(90));
    let actions = session.handle(Event::Message(Message::Keepalive));
    assert_eq!(
        actions[..2],
        [start(Timer::Hold, 90), start(Timer::SendHold, 100)]
    );

    let mut session = open_confirm(config_with(Some(Duration::ZERO)), peer_open(90));
    let actions = session.handle(Event::Message(Message::Keepalive));
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0], start(Timer::Hold, 90));
    assert_eq!(session.handle(Event::SendProgress), []);
}

#[test]
fn send_hold_time_follows_rfc_9687() {
    assert_eq!(send_hold_time(None, 90), Some(secs(480)));
    assert_eq!(send_hold_time(None, 300), Some(secs(600)));
    assert_eq!(send_hold_time(None, 0), None);
    assert_eq!(send_hold_time(Some(secs(600)), 0), None);
    assert_eq!(send_hold_time(Some(Duration::ZERO), 90), None);
    assert_eq!(send_hold_time(Some(secs(91)), 90), Some(secs(91)));
    // Not greater than the hold time (RFC 9687 §4.4): the default instead.
    assert_eq!(send_hold_time(Some(secs(90)), 90), Some(secs(480)));
}
