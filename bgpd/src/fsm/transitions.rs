//! The transitions of the session state machine: one event in, the actions it causes out
//! (RFC 4271 §8.2.2, RFC 6608 subcodes, RFC 9687 send hold timer). No I/O.

use super::{Action, Event, Session, State, Timer, open};
use crate::message::{Message, Notification, Open, RouteRefresh, Update, error_code};

/// How a connection ended, for `Action::Down`.
pub(super) enum Ending {
    /// We send this NOTIFICATION before closing.
    Send(Notification),
    /// The peer sent a NOTIFICATION.
    Received,
    /// No NOTIFICATION either way (TCP closed).
    Silent,
}

impl Session {
    /// Feeds one event to the state machine and returns what the daemon must do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ManualStart => self.manual_start(&mut out),
            Event::ManualStop => self.manual_stop(&mut out),
            Event::TcpConnected => self.connection_up(true, &mut out),
            Event::TcpAccepted => self.connection_up(false, &mut out),
            Event::TcpConnectFailed => self.connect_failed(&mut out),
            Event::TcpClosed => {
                if self.connected() {
                    self.end(Ending::Silent, "connection closed".to_string(), &mut out);
                }
            }
            Event::Message(message) => {
                if self.connected() {
                    self.message(message, &mut out);
                }
            }
            Event::TreatAsWithdraw(update) => {
                if self.connected() {
                    self.update(update, &mut out);
                }
            }
            Event::DecodeError(notification) => {
                if self.connected() {
                    let reason = format!(
                        "malformed message: sent NOTIFICATION {}/{}",
                        notification.code, notification.subcode
                    );
                    self.end(Ending::Send(notification), reason, &mut out);
                }
            }
            Event::TimerExpired(timer) => {
                if self.take_expiry(timer) {
                    self.timer_expired(timer, &mut out);
                }
            }
            Event::SendProgress => {
                if self.state == State::Established && self.is_running(Timer::SendHold) {
                    self.restart_send_hold_timer(&mut out);
                }
            }
            Event::CollisionDump => self.collision_dump(&mut out),
        }
        out
    }

    /// A TCP connection exists (OpenSent, OpenConfirm, Established).
    pub(super) fn connected(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn manual_start(&mut self, out: &mut Vec<Action>) {
        if self.state != State::Idle {
            return;
        }
        self.started = true;
        self.stop_timer(out, Timer::IdleHold);
        self.start_connecting(out);
    }

    /// Idle → Connect (open a connection) or, passive, Active (wait for one).
    pub(super) fn start_connecting(&mut self, out: &mut Vec<Action>) {
        if self.config.passive {
            self.state = State::Active;
        } else {
            out.push(Action::Connect);
            self.start_timer(out, Timer::ConnectRetry, self.retry);
            self.state = State::Connect;
        }
    }

    fn manual_stop(&mut self, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        self.started = false;
        self.reset_backoff();
        let reason = "administrative shutdown".to_string();
        if self.connected() {
            let cease = cease(error_code::ADMINISTRATIVE_SHUTDOWN);
            self.end(Ending::Send(cease), reason, out);
            return;
        }
        if self.state == State::Connect {
            out.push(Action::CloseConnection);
        }
        self.stop_all_timers(out);
        self.state = State::Idle;
        self.stale_held = false;
        out.push(Action::Down {
            reason: reason.clone(),
            keep_routes_stale: false,
        });
        self.last_error = Some(reason);
    }

    /// `outgoing`: our connection succeeded (TcpConnected), else the peer's was accepted.
    fn connection_up(&mut self, outgoing: bool, out: &mut Vec<Action>) {
        match self.state {
            // Not started, or holding down after a failure: refuse.
            State::Idle => out.push(Action::CloseConnection),
            State::Connect | State::Active if !(outgoing && self.config.passive) => {
                self.stop_timer(out, Timer::ConnectRetry);
                out.push(Action::Send(Message::Open(self.open_message())));
                self.start_timer(out, Timer::Hold, super::LARGE_HOLD_TIME);
                self.state = State::OpenSent;
            }
            // A passive session never connects; a second connection is the daemon's to
            // resolve (module header).
            _ => {}
        }
    }

    fn connect_failed(&mut self, out: &mut Vec<Action>) {
        if self.state != State::Connect {
            return;
        }
        self.last_error = Some("connection failed".to_string());
        self.start_timer(out, Timer::ConnectRetry, self.retry);
        self.back_off();
        self.state = State::Active;
    }

    /// A message on the connection (the state is OpenSent, OpenConfirm or Established).
    fn message(&mut self, message: Message, out: &mut Vec<Action>) {
        match (message, self.state) {
            (Message::Notification(received), _) => {
                let reason = format!(
                    "received NOTIFICATION {}/{}",
                    received.code, received.subcode
                );
                self.end(Ending::Received, reason, out);
            }
            (Message::Open(open), State::OpenSent) => self.open_received(&open, out),
            (Message::Keepalive, State::OpenConfirm) => self.established(out),
            (Message::Keepalive, State::Established) => self.restart_hold_timer(out),
            (Message::Update(update), State::Established) => self.update(update, out),
            (Message::RouteRefresh(request), State::Established) => {
                self.route_refresh(request, out)
            }
            (message, state) => self.fsm_error(&message, state, out),
        }
    }

    fn open_received(&mut self, open: &Open, out: &mut Vec<Action>) {
        match open::check_open(&self.config, open) {
            Err(error) => self.end(Ending::Send(error.notification()), error.to_string(), out),
            Ok(negotiated) => {
                self.negotiated = Some(negotiated);
                out.push(Action::Send(Message::Keepalive));
                if self.hold_time() == 0 {
                    self.stop_timer(out, Timer::Hold);
                } else {
                    self.restart_keepalive_timer(out);
                    self.restart_hold_timer(out);
                }
                self.state = State::OpenConfirm;
            }
        }
    }

    fn established(&mut self, out: &mut Vec<Action>) {
        self.reset_backoff();
        self.restart_hold_timer(out);
        self.restart_send_hold_timer(out);
        self.state = State::Established;
        if let Some(negotiated) = &self.negotiated {
            out.push(Action::Established(negotiated.clone()));
        }
    }

    /// An UPDATE (or one the decoder turned into withdrawals): only valid when Established.
    fn update(&mut self, update: Update, out: &mut Vec<Action>) {
        if self.state != State::Established {
            self.fsm_error(&Message::Update(update), self.state, out);
            return;
        }
        self.restart_hold_timer(out);
        out.push(Action::Update(update));
    }

    /// RFC 2918 §4 and RFC 7313 §5: requests for families we did not advertise, and subtypes
    /// other than a plain request (we do not advertise enhanced route refresh), are ignored.
    fn route_refresh(&mut self, request: RouteRefresh, out: &mut Vec<Action>) {
        let negotiated = self.negotiated.as_ref();
        if request.subtype == 0
            && negotiated.is_some_and(|negotiated| negotiated.families.contains(&request.family))
        {
            out.push(Action::RouteRefresh(request.family));
        }
    }

    /// RFC 6608: a message not allowed in this state.
    fn fsm_error(&mut self, message: &Message, state: State, out: &mut Vec<Action>) {
        let subcode = match state {
            State::OpenSent => 1,
            State::OpenConfirm => 2,
            _ => 3,
        };
        let kind = match message {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh(_) => "ROUTE-REFRESH",
        };
        let reason = format!("unexpected {kind} in {state:?}");
        self.end(
            Ending::Send(notification(error_code::FSM, subcode)),
            reason,
            out,
        );
    }

    fn collision_dump(&mut self, out: &mut Vec<Action>) {
        if !self.connected() {
            return;
        }
        let was_established = self.state == State::Established;
        self.started = false;
        out.push(Action::Send(Message::Notification(cease(
            error_code::CONNECTION_COLLISION_RESOLUTION,
        ))));
        out.push(Action::CloseConnection);
        self.stop_all_timers(out);
        self.state = State::Idle;
        self.negotiated = None;
        let reason = "connection collision resolution".to_string();
        if was_established {
            self.stale_held = false;
            out.push(Action::Down {
                reason: reason.clone(),
                keep_routes_stale: false,
            });
        }
        self.last_error = Some(reason);
    }

    /// Tears the connection down: NOTIFICATION (if ours to send), close, stop the timers,
    /// report Down, and unless stopped by hand hold down for the backoff interval.
    pub(super) fn end(&mut self, ending: Ending, reason: String, out: &mut Vec<Action>) {
        let keep_routes_stale = match ending {
            Ending::Send(_) | Ending::Received => false,
            Ending::Silent if self.state == State::Established => self
                .negotiated
                .as_ref()
                .is_some_and(|negotiated| negotiated.peer_graceful_restart.is_some()),
            Ending::Silent => self.stale_held,
        };
        if let Ending::Send(notification) = ending {
            out.push(Action::Send(Message::Notification(notification)));
        }
        out.push(Action::CloseConnection);
        self.stop_all_timers(out);
        self.state = State::Idle;
        self.negotiated = None;
        self.stale_held = keep_routes_stale;
        out.push(Action::Down {
            reason: reason.clone(),
            keep_routes_stale,
        });
        self.last_error = Some(reason);
        if self.started {
            self.start_timer(out, Timer::IdleHold, self.retry);
            self.back_off();
        }
    }
}

pub(super) fn notification(code: u8, subcode: u8) -> Notification {
    Notification {
        code,
        subcode,
        data: Vec::new(),
    }
}

fn cease(subcode: u8) -> Notification {
    notification(error_code::CEASE, subcode)
}
