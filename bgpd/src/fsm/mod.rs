//! The BGP session state machine (RFC 4271 §8, with RFC 6608, 9687, 4724, 2918, 6793, 7911):
//! events in, actions out. Sans-IO: no tokio, no sockets, no clock reads; the daemon moves bytes
//! and time around it (`Event::TimerExpired`, `Event::SendProgress`).
//!
//! ```text
//!                      ManualStart / IdleHold expired, passive: no Connect, wait for TcpAccepted
//!             ┌─────────────────────────────────────────────────────────────────┐
//!             │  ManualStart / IdleHold expired                                 ▼
//!         ┌──────┐  Connect, ConnectRetry  ┌─────────┐  TcpConnectFailed   ┌────────┐
//!         │ Idle │ ──────────────────────▶ │ Connect │ ──────────────────▶ │ Active │
//!         └──────┘                         └─────────┘ ◀────────────────── └────────┘
//!            ▲  ▲                               │     ConnectRetry expired:    │
//!            │  │                               │     Connect                  │
//!            │  │      TcpConnected/TcpAccepted │                              │ TcpAccepted
//!            │  │   Send OPEN, Hold = 4 min     ▼                              │
//!            │  │                          ┌──────────┐ ◀────────────────────────┘
//!            │  ├───────────────────────── │ OpenSent │
//!            │  │                          └──────────┘
//!            │  │  OPEN accepted: Send KEEPALIVE,│ (OPEN refused: NOTIFICATION 2/x)
//!            │  │  Hold, Keepalive negotiated    ▼
//!            │  │                        ┌─────────────┐
//!            │  ├─────────────────────── │ OpenConfirm │
//!            │  │                        └─────────────┘
//!            │  │  KEEPALIVE: Hold, SendHold,    │
//!            │  │  Established(Negotiated)       ▼
//!            │  │                        ┌─────────────┐  KEEPALIVE, UPDATE: restart Hold
//!            │  └─────────────────────── │ Established │  UPDATE, TreatAsWithdraw: Update
//!            │                           └─────────────┘  ROUTE-REFRESH: RouteRefresh
//!            │                                            Keepalive expired: Send KEEPALIVE
//!            │                                            SendProgress: restart SendHold
//!            └── from any state but Idle: ManualStop (Cease 6/2 when connected), no restart
//!
//!   Leaving OpenSent, OpenConfirm or Established (to Idle):
//!     TcpClosed                 CloseConnection, Down (stale when GR peer was Established)
//!     NOTIFICATION received     CloseConnection, Down
//!     DecodeError(n)            Send(n), CloseConnection, Down
//!     wrong message (RFC 6608)  Send(5/1 OpenSent, 5/2 OpenConfirm, 5/3 Established), ...
//!     Hold expired              Send(4/0), ...        SendHold expired   Send(8/0), ...
//!     CollisionDump             Send(6/7), CloseConnection (Down only from Established)
//!   then every running timer is stopped and, unless stopped by hand, IdleHold starts with the
//!   current backoff (ConnectRetry 5 s, 10 s, ... 120 s; back to the initial value on
//!   Established) and its expiry restarts the session.
//! ```
//!
//! One `Session` drives one TCP connection. A second connection from the same peer (RFC 4271
//! §6.8) is the daemon's business: it runs it in a second `Session`, and once both have the
//! peer's OPEN it asks [`resolve_collision`] which survives and feeds `Event::CollisionDump` to
//! the loser. Events that belong to a connection the session no longer has (a message, a close,
//! a timer that is not running) are ignored, so races between the daemon's tasks are harmless.

mod open;
mod timers;
mod transitions;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::time::Duration;

pub use open::{OpenError, check_open};
pub use timers::{LARGE_HOLD_TIME, MAX_CONNECT_RETRY, MIN_SEND_HOLD_TIME, send_hold_time};

use crate::message::{Family, Message, Notification, Open, Update};

/// The hold time proposed when the configuration says nothing else (RFC 4271 §10).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// The initial ConnectRetry interval (backed off up to [`MAX_CONNECT_RETRY`]).
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(5);

/// What one session proposes and expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds; 0 means no keepalives and no hold timer. 1 and 2 are
    /// invalid (RFC 4271 §4.2): the configuration loader must refuse them.
    pub hold_time: u16,
    /// Initial ConnectRetry; doubles on consecutive failures up to `max(120 s, initial)`, back
    /// to the initial value on Established.
    pub connect_retry: Duration,
    /// Never connects; waits in Active for `TcpAccepted`.
    pub passive: bool,
    /// Advertised with the Multiprotocol capability; empty means IPv4 unicast only, implicitly.
    pub families: Vec<Family>,
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Families for which we advertise ADD-PATH receive (RFC 7911).
    pub add_path_receive: Vec<Family>,
    /// Advertise RFC 8950 IPv6 next hops for the configured IPv4 families.
    pub extended_next_hop: bool,
    /// RFC 9687 SendHoldTime. `None`: the RFC's default, max(8 min, 2 × negotiated hold time).
    /// `Some(0)`: disabled. A value not greater than the negotiated hold time (RFC 9687 §4.4
    /// MUST) is replaced by the default. Never running when the negotiated hold time is 0.
    pub send_hold_time: Option<Duration>,
}

impl SessionConfig {
    /// A configuration with the defaults: hold time 90 s, ConnectRetry 5 s, active, IPv4
    /// unicast, no graceful restart, no ADD-PATH, no extended next hop, default SendHoldTime.
    pub fn new(local_as: u32, peer_as: u32, router_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_as,
            peer_as,
            router_id,
            hold_time: DEFAULT_HOLD_TIME,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
            families: vec![Family::IPV4_UNICAST],
            graceful_restart: None,
            add_path_receive: Vec::new(),
            extended_next_hop: false,
            send_hold_time: None,
        }
    }
}

/// Our graceful restart capability (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds (12 bits on the wire; larger values are sent as 4095).
    pub restart_time: u16,
    /// Set the Restart State (R) bit: we are coming back from a restart.
    pub restarting: bool,
    /// Set the Forwarding State (F) bit for every advertised family.
    pub forwarding_preserved: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    SendHold,
    IdleHold,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    ManualStart,
    ManualStop,
    /// Our outgoing connection succeeded.
    TcpConnected,
    /// The daemon handed us an incoming connection.
    TcpAccepted,
    TcpConnectFailed,
    TcpClosed,
    /// A decoded message.
    Message(Message),
    /// The decoder turned an UPDATE into withdrawals (RFC 7606): deliver it, keep the session.
    TreatAsWithdraw(Update),
    /// The decoder says: reset the session with this NOTIFICATION.
    DecodeError(Notification),
    TimerExpired(Timer),
    /// The daemon could write to the socket (restarts the send hold timer).
    SendProgress,
    /// RFC 4271 Event 23 (OpenCollisionDump): this connection lost a collision
    /// ([`resolve_collision`]); send Cease 6/7 and close. Added to the agreed API.
    CollisionDump,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer, abandoning any attempt still in progress.
    Connect,
    /// Write this message. A NOTIFICATION that precedes `CloseConnection` is best effort: the
    /// daemon must not let a blocked socket delay the close (RFC 9687 §4.3).
    Send(Message),
    /// Close the connection, or abandon the connection attempt in progress.
    CloseConnection,
    /// Start the timer, or restart it when it is running.
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    Established(Negotiated),
    /// The session ended. Also emitted when a session fails before Established and on
    /// ManualStop; `keep_routes_stale` then repeats the previous verdict so the stale routes of
    /// an earlier graceful restart stay stale (false after a NOTIFICATION or ManualStop).
    Down {
        reason: String,
        keep_routes_stale: bool,
    },
    /// Deliver to the RIB (End-of-RIB markers included: `Update::end_of_rib_family`).
    Update(Update),
    /// The peer asked us to resend the Adj-RIB-Out of this family.
    RouteRefresh(Family),
}

/// What the two OPENs agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_router_id: Ipv4Addr,
    /// min(ours, theirs) in seconds; 0: no keepalives, no hold timer.
    pub hold_time: u16,
    /// hold_time / 3.
    pub keepalive: u16,
    pub four_octet_as: bool,
    /// Families both advertised (a side without Multiprotocol capability means IPv4 unicast).
    pub families: Vec<Family>,
    /// We receive path identifiers for these (we advertised receive, the peer send or both).
    pub add_path_receive: Vec<Family>,
    /// Always empty: we never advertise ADD-PATH send.
    pub add_path_send: Vec<Family>,
    pub route_refresh: bool,
    pub extended_next_hop: bool,
    pub peer_graceful_restart: Option<PeerGracefulRestart>,
    /// We advertised graceful restart.
    pub local_graceful_restart: bool,
}

/// The peer's graceful restart capability, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    pub restart_time: u16,
    pub restart_state: bool,
    /// Each family with its Forwarding State bit.
    pub families: Vec<(Family, bool)>,
}

/// One BGP session: its state, timers and negotiated parameters.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    /// Started by hand and not stopped: restarts itself after failures.
    started: bool,
    /// The current ConnectRetry / IdleHold interval (exponential backoff).
    retry: Duration,
    running: timers::Running,
    negotiated: Option<Negotiated>,
    last_error: Option<String>,
    /// The last Down said keep_routes_stale and nothing has flushed them since.
    stale_held: bool,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            retry: config.connect_retry,
            config,
            state: State::Idle,
            started: false,
            running: timers::Running::default(),
            negotiated: None,
            last_error: None,
            stale_held: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The negotiated parameters from OpenConfirm (the peer's OPEN was accepted) until the
    /// session goes down; the peer's BGP identifier for collision resolution is here.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Why the session last went down or the last connection attempt failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The OPEN we send: capabilities from the configuration, `my_as` = AS_TRANS when the
    /// local AS needs 4 octets.
    pub fn open_message(&self) -> Open {
        open::build_open(&self.config)
    }
}

// Connection collision resolution (RFC 4271 §6.8, RFC 6286 §2.3): the connection initiated by
// the speaker with the higher BGP identifier survives. Both speakers apply the rule to the same
// pair of connections and so close the same one. With equal identifiers (possible between
// different ASes, RFC 6286), the connection initiated by the larger AS survives.

/// Which connection survives a collision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollisionWinner {
    /// The connection that was there first.
    Existing,
    /// The connection that just arrived (the other one).
    Incoming,
}

/// RFC 4271 §6.8: `existing_is_outgoing` says whether we initiated the existing connection (the
/// other one was then initiated by the peer, and the reverse). With equal identifiers this
/// keeps the existing connection; callers that can have equal identifiers (eBGP) should use
/// [`resolve_collision_with_as`].
pub fn resolve_collision(
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    existing_is_outgoing: bool,
) -> CollisionWinner {
    if local_id == remote_id {
        return CollisionWinner::Existing;
    }
    winner(
        u32::from(local_id) > u32::from(remote_id),
        existing_is_outgoing,
    )
}

/// RFC 4271 §6.8 with the RFC 6286 §2.3 tie break on equal identifiers: the connection
/// initiated by the larger AS survives.
pub fn resolve_collision_with_as(
    local_id: Ipv4Addr,
    local_as: u32,
    remote_id: Ipv4Addr,
    remote_as: u32,
    existing_is_outgoing: bool,
) -> CollisionWinner {
    let ours_survives = if local_id == remote_id {
        local_as > remote_as
    } else {
        u32::from(local_id) > u32::from(remote_id)
    };
    winner(ours_survives, existing_is_outgoing)
}

/// `ours_survives`: the connection we initiated is the one to keep.
fn winner(ours_survives: bool, existing_is_outgoing: bool) -> CollisionWinner {
    if ours_survives == existing_is_outgoing {
        CollisionWinner::Existing
    } else {
        CollisionWinner::Incoming
    }
}
