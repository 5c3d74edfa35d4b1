//! Tests of the session state machine, driven purely by events and asserting exact action
//! sequences: helpers that drive a session to a given state, and a property test that feeds
//! arbitrary event sequences. No I/O.

mod down;
mod negotiation;
mod timers;
mod transitions;

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{Action, Event, Session, SessionConfig, State, Timer};
use crate::message::{AS_TRANS, Capability, Family, Message, Notification, Open};

pub(super) const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(super) const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub(super) const LOCAL_AS: u32 = 65001;
pub(super) const PEER_AS: u32 = 65002;

pub(super) fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// eBGP, defaults: hold 90, ConnectRetry 5 s, IPv4 unicast.
pub(super) fn config() -> SessionConfig {
    SessionConfig::new(LOCAL_AS, PEER_AS, LOCAL_ID)
}

/// The OPEN of a plain peer: AS `PEER_AS`, IPv4 unicast, route refresh, 4-octet AS.
pub(super) fn peer_open(hold_time: u16) -> Open {
    Open {
        version: 4,
        my_as: u16::try_from(PEER_AS).unwrap_or(AS_TRANS),
        hold_time,
        bgp_identifier: PEER_ID,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(PEER_AS),
        ],
    }
}

/// ManualStart, TcpConnected: OpenSent.
pub(super) fn open_sent(config: SessionConfig) -> Session {
    let mut session = Session::new(config);
    session.handle(Event::ManualStart);
    let passive = session.config().passive;
    session.handle(if passive {
        Event::TcpAccepted
    } else {
        Event::TcpConnected
    });
    assert_eq!(session.state(), State::OpenSent);
    session
}

/// ... and the peer's OPEN accepted: OpenConfirm.
pub(super) fn open_confirm(config: SessionConfig, open: Open) -> Session {
    let mut session = open_sent(config);
    let actions = session.handle(Event::Message(Message::Open(open)));
    assert_eq!(session.state(), State::OpenConfirm, "{actions:?}");
    session
}

/// ... and the peer's KEEPALIVE: Established.
pub(super) fn established_with(config: SessionConfig, open: Open) -> Session {
    let mut session = open_confirm(config, open);
    session.handle(Event::Message(Message::Keepalive));
    assert_eq!(session.state(), State::Established);
    session
}

/// The default session, Established with the plain peer (hold 90).
pub(super) fn established() -> Session {
    established_with(config(), peer_open(90))
}

pub(super) fn send_notification(code: u8, subcode: u8) -> Action {
    Action::Send(Message::Notification(Notification {
        code,
        subcode,
        data: Vec::new(),
    }))
}

pub(super) fn down(reason: &str, keep_routes_stale: bool) -> Action {
    Action::Down {
        reason: reason.to_string(),
        keep_routes_stale,
    }
}

pub(super) fn start(timer: Timer, seconds: u64) -> Action {
    Action::StartTimer(timer, secs(seconds))
}

pub(super) fn stop(timer: Timer) -> Action {
    Action::StopTimer(timer)
}

pub(super) fn expire(session: &mut Session, timer: Timer) -> Vec<Action> {
    session.handle(Event::TimerExpired(timer))
}

/// The actions of tearing down an Established default session after `first` (the NOTIFICATION
/// we send, if any): close, stop the running timers, Down, IdleHold with `idle_hold` seconds.
pub(super) fn established_teardown(
    first: Option<Action>,
    reason: &str,
    stale: bool,
    idle_hold: u64,
) -> Vec<Action> {
    let mut actions: Vec<Action> = first.into_iter().collect();
    actions.extend([
        Action::CloseConnection,
        stop(Timer::Hold),
        stop(Timer::Keepalive),
        stop(Timer::SendHold),
        down(reason, stale),
        start(Timer::IdleHold, idle_hold),
    ]);
    actions
}

mod arbitrary_events {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::message::{AddPathMode, RouteRefresh, Update};

    fn family() -> impl Strategy<Value = Family> {
        prop_oneof![
            Just(Family::IPV4_UNICAST),
            Just(Family::IPV6_UNICAST),
            (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi }),
        ]
    }

    fn capability() -> impl Strategy<Value = Capability> {
        prop_oneof![
            family().prop_map(Capability::Multiprotocol),
            Just(Capability::RouteRefresh),
            prop_oneof![Just(PEER_AS), any::<u32>()].prop_map(Capability::FourOctetAs),
            proptest::collection::vec((family(), any::<u16>()), 0..3)
                .prop_map(Capability::ExtendedNextHop),
            proptest::collection::vec(
                (
                    family(),
                    prop_oneof![Just(AddPathMode::Receive), Just(AddPathMode::Both)]
                ),
                0..3
            )
            .prop_map(Capability::AddPath),
            (any::<bool>(), any::<u16>()).prop_map(|(restart_state, restart_time)| {
                Capability::GracefulRestart {
                    restart_state,
                    restart_time,
                    families: Vec::new(),
                }
            }),
        ]
    }

    fn open() -> impl Strategy<Value = Open> {
        let version = prop_oneof![Just(4u8), any::<u8>()];
        let hold = prop_oneof![Just(90u16), 0u16..4, any::<u16>()];
        let id = prop_oneof![
            Just(PEER_ID),
            Just(LOCAL_ID),
            any::<u32>().prop_map(Ipv4Addr::from)
        ];
        let caps = proptest::collection::vec(capability(), 0..6);
        (version, any::<u16>(), hold, id, caps).prop_map(
            |(version, my_as, hold_time, bgp_identifier, capabilities)| Open {
                version,
                my_as,
                hold_time,
                bgp_identifier,
                capabilities,
            },
        )
    }

    fn event() -> impl Strategy<Value = Event> {
        let timer = prop_oneof![
            Just(Timer::ConnectRetry),
            Just(Timer::Hold),
            Just(Timer::Keepalive),
            Just(Timer::SendHold),
            Just(Timer::IdleHold),
        ];
        let notification = (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..4),
        )
            .prop_map(|(code, subcode, data)| Notification {
                code,
                subcode,
                data,
            });
        prop_oneof![
            Just(Event::ManualStart),
            Just(Event::ManualStop),
            Just(Event::TcpConnected),
            Just(Event::TcpAccepted),
            Just(Event::TcpConnectFailed),
            Just(Event::TcpClosed),
            Just(Event::SendProgress),
            Just(Event::CollisionDump),
            Just(Event::Message(Message::Keepalive)),
            Just(Event::Message(Message::Update(Update::default()))),
            Just(Event::TreatAsWithdraw(Update::default())),
            (family(), any::<u8>()).prop_map(|(family, subtype)| {
                Event::Message(Message::RouteRefresh(RouteRefresh { family, subtype }))
            }),
            Just(Event::Message(Message::Open(peer_open(90)))),
            open().prop_map(|open| Event::Message(Message::Open(open))),
            notification
                .clone()
                .prop_map(|n| Event::Message(Message::Notification(n))),
            notification.prop_map(Event::DecodeError),
            timer.prop_map(Event::TimerExpired),
        ]
    }

    proptest! {
        /// Whatever arrives, the machine does not panic, a passive session never connects,
        /// timers it stops are timers it started, and Down always leaves it Idle.
        #[test]
        fn arbitrary_event_sequences_keep_the_invariants(
            passive in any::<bool>(),
            hold_time in prop_oneof![Just(90u16), Just(0u16), 3u16..1000],
            events in proptest::collection::vec(event(), 0..60),
        ) {
            let mut session = Session::new(SessionConfig { passive, hold_time, ..config() });
            let mut running = HashSet::new();
            for event in events {
                if let Event::TimerExpired(timer) = &event {
                    running.remove(timer);
                }
                for action in session.handle(event) {
                    match action {
                        Action::Connect => prop_assert!(!passive),
                        Action::StartTimer(timer, after) => {
                            prop_assert!(!after.is_zero(), "{timer:?}");
                            running.insert(timer);
                        }
                        Action::StopTimer(timer) => prop_assert!(running.remove(&timer)),
                        Action::Down { .. } => prop_assert_eq!(session.state(), State::Idle),
                        Action::Established(_) => {
                            prop_assert_eq!(session.state(), State::Established)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
