//! Timer bookkeeping of a session: which timers run, the ConnectRetry backoff and the RFC 9687
//! send hold time. The daemon owns the clocks; this only emits `StartTimer`/`StopTimer` and
//! ignores expiries of timers it does not consider running. No I/O, no clock reads.

use std::time::Duration;

use super::transitions::{Ending, notification};
use super::{Action, Session, State, Timer};
use crate::message::{Message, error_code};

/// The hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);
/// The ConnectRetry backoff stops doubling here (or at the configured initial value if larger).
pub const MAX_CONNECT_RETRY: Duration = Duration::from_secs(120);
/// RFC 9687 §6: the default SendHoldTime is the greater of 8 minutes and twice the hold time.
pub const MIN_SEND_HOLD_TIME: Duration = Duration::from_secs(480);

impl Timer {
    const ALL: [Timer; 5] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::SendHold,
        Timer::IdleHold,
    ];

    fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
            Timer::SendHold => 3,
            Timer::IdleHold => 4,
        }
    }
}

/// The timers the session has started and not yet seen stopped or expired.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Running([bool; 5]);

/// The RFC 9687 SendHoldTime for a negotiated hold time (seconds), or `None` when the timer
/// must not run: the negotiated hold time is 0 or the configuration says 0. `None` configured
/// means the RFC 9687 §6 default, max(8 min, 2 × hold time); a configured value not greater
/// than the hold time (forbidden by RFC 9687 §4.4) is replaced by that default.
pub fn send_hold_time(configured: Option<Duration>, negotiated_hold: u16) -> Option<Duration> {
    if negotiated_hold == 0 {
        return None;
    }
    let hold = Duration::from_secs(u64::from(negotiated_hold));
    let default = MIN_SEND_HOLD_TIME.max(hold * 2);
    match configured {
        Some(time) if time.is_zero() => None,
        Some(time) if time > hold => Some(time),
        _ => Some(default),
    }
}

impl Session {
    pub(super) fn is_running(&self, timer: Timer) -> bool {
        self.running.0[timer.index()]
    }

    /// Starts (or restarts) `timer`.
    pub(super) fn start_timer(&mut self, out: &mut Vec<Action>, timer: Timer, after: Duration) {
        self.running.0[timer.index()] = true;
        out.push(Action::StartTimer(timer, after));
    }

    /// Stops `timer` if it runs.
    pub(super) fn stop_timer(&mut self, out: &mut Vec<Action>, timer: Timer) {
        if self.is_running(timer) {
            self.running.0[timer.index()] = false;
            out.push(Action::StopTimer(timer));
        }
    }

    /// Stops every running timer, in the order of [`Timer::ALL`].
    pub(super) fn stop_all_timers(&mut self, out: &mut Vec<Action>) {
        for timer in Timer::ALL {
            self.stop_timer(out, timer);
        }
    }

    /// Records that `timer` fired; false when it was not running (a stale expiry to ignore).
    pub(super) fn take_expiry(&mut self, timer: Timer) -> bool {
        std::mem::replace(&mut self.running.0[timer.index()], false)
    }

    /// One more consecutive failure: the next ConnectRetry / IdleHold interval doubles.
    pub(super) fn back_off(&mut self) {
        let cap = MAX_CONNECT_RETRY.max(self.config.connect_retry);
        self.retry = self.retry.saturating_mul(2).min(cap);
    }

    /// Established: the backoff starts over.
    pub(super) fn reset_backoff(&mut self) {
        self.retry = self.config.connect_retry;
    }

    /// The negotiated hold time, or 0 before an OPEN was accepted.
    pub(super) fn hold_time(&self) -> u16 {
        self.negotiated
            .as_ref()
            .map_or(0, |negotiated| negotiated.hold_time)
    }

    /// Starts the hold timer with the negotiated hold time, unless that is 0.
    pub(super) fn restart_hold_timer(&mut self, out: &mut Vec<Action>) {
        let hold = self.hold_time();
        if hold != 0 {
            self.start_timer(out, Timer::Hold, Duration::from_secs(u64::from(hold)));
        }
    }

    /// Starts the keepalive timer with the negotiated interval, unless the hold time is 0.
    pub(super) fn restart_keepalive_timer(&mut self, out: &mut Vec<Action>) {
        let keepalive = self
            .negotiated
            .as_ref()
            .map_or(0, |negotiated| negotiated.keepalive);
        if self.hold_time() != 0 {
            // hold time >= 3, so keepalive >= 1.
            self.start_timer(
                out,
                Timer::Keepalive,
                Duration::from_secs(u64::from(keepalive)),
            );
        }
    }

    /// Starts the send hold timer (RFC 9687) when it applies to this session.
    pub(super) fn restart_send_hold_timer(&mut self, out: &mut Vec<Action>) {
        if let Some(after) = send_hold_time(self.config.send_hold_time, self.hold_time()) {
            self.start_timer(out, Timer::SendHold, after);
        }
    }

    /// A running timer fired (`take_expiry` said so).
    pub(super) fn timer_expired(&mut self, timer: Timer, out: &mut Vec<Action>) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Connect) => {
                // The attempt timed out: try again, a failure for the backoff.
                self.last_error = Some("connection attempt timed out".to_string());
                out.push(Action::Connect);
                self.start_timer(out, Timer::ConnectRetry, self.retry);
                self.back_off();
            }
            (Timer::ConnectRetry, State::Active) => {
                out.push(Action::Connect);
                self.start_timer(out, Timer::ConnectRetry, self.retry);
                self.state = State::Connect;
            }
            (Timer::IdleHold, State::Idle) if self.started => self.start_connecting(out),
            (Timer::Hold, _) if self.connected() => {
                let notification = notification(error_code::HOLD_TIMER_EXPIRED, 0);
                self.end(
                    Ending::Send(notification),
                    "hold timer expired".to_string(),
                    out,
                );
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                out.push(Action::Send(Message::Keepalive));
                self.restart_keepalive_timer(out);
            }
            (Timer::SendHold, State::Established) => {
                // RFC 9687 §4.3: the NOTIFICATION is best effort (see `Action::Send`).
                let notification = notification(error_code::SEND_HOLD_TIMER_EXPIRED, 0);
                let reason = "send hold timer expired".to_string();
                self.end(Ending::Send(notification), reason, out);
            }
            _ => {}
        }
    }
}
