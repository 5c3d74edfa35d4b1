//! Connections from addresses that are no peer yet, held for a moment instead of closed. When a
//! node joins a cluster, the other nodes' agents configure their bgpd to peer with it a few
//! milliseconds before its own agent has configured this bgpd: their first connection arrives
//! before the peer exists. Closed, it costs the other side a ConnectRetry interval (2 s in
//! Calico's mesh) before the session can start; held, it goes to the peer the moment the peer
//! is added. Bounded in time (`HOLD`) and number (`MAX_HELD`, the oldest goes first), and
//! never handed to a peer with an MD5 password or GTSM: those check the handshake itself, which
//! a held connection made without them. No I/O (dropping a stream closes it).

use std::{
    collections::VecDeque,
    net::IpAddr,
    time::{Duration, Instant},
};

/// How long an unclaimed connection is kept.
pub const HOLD: Duration = Duration::from_secs(3);
/// At most this many connections are held at once.
pub const MAX_HELD: usize = 64;

/// Held connections in arrival order. Generic over the stream so that it is tested without
/// sockets.
pub struct HeldConnections<S> {
    held: VecDeque<(IpAddr, Instant, S)>,
}

impl<S> Default for HeldConnections<S> {
    fn default() -> Self {
        HeldConnections {
            held: VecDeque::new(),
        }
    }
}

impl<S> HeldConnections<S> {
    /// Keeps `stream` from `address`, accepted at `now`; drops expired ones and, when full, the
    /// oldest.
    pub fn hold(&mut self, address: IpAddr, stream: S, now: Instant) {
        self.expire(now);
        if self.held.len() >= MAX_HELD {
            self.held.pop_front();
        }
        self.held.push_back((address, now, stream));
    }

    /// The newest unexpired connection from `address`, if any; older ones from it are dropped
    /// (the peer retried: only its last attempt matters).
    pub fn take(&mut self, address: IpAddr, now: Instant) -> Option<S> {
        self.expire(now);
        let newest = self
            .held
            .iter()
            .rposition(|(from, _, _)| *from == address)?;
        let (_, _, stream) = self.held.remove(newest)?;
        self.held.retain(|(from, _, _)| *from != address);
        Some(stream)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Drops (closes) the connections held for `HOLD` or longer: the listener calls it every
    /// second, so that an address that never becomes a peer sees its connection closed and
    /// retries later instead of waiting in OpenSent.
    pub fn expire(&mut self, now: Instant) {
        self.held
            .retain(|(_, at, _)| now.saturating_duration_since(*at) < HOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_held_connection_goes_to_its_address_once_and_only_within_the_hold_time() {
        let start = Instant::now();
        let mut held = HeldConnections::default();
        held.hold(address(1), "first", start);
        held.hold(address(1), "retry", start + Duration::from_millis(10));
        held.hold(address(2), "other", start);
        assert_eq!(held.take(address(3), start), None);
        assert_eq!(
            held.take(address(1), start + Duration::from_millis(20)),
            Some("retry"),
            "the newest attempt"
        );
        assert_eq!(held.take(address(1), start), None, "older ones are gone");
        assert_eq!(held.len(), 1);
        assert_eq!(held.take(address(2), start + HOLD), None, "expired");
        assert!(held.is_empty());

        held.hold(address(4), "idle", start);
        held.expire(start + HOLD - Duration::from_millis(1));
        assert_eq!(held.len(), 1);
        held.expire(start + HOLD);
        assert!(held.is_empty(), "closed once the hold time is over");
    }

    #[test]
    fn at_most_max_held_are_kept_the_oldest_dropped_first() {
        let now = Instant::now();
        let mut held = HeldConnections::default();
        for index in 0..=MAX_HELD {
            held.hold(address((index % 250) as u8), index, now);
        }
        assert_eq!(held.len(), MAX_HELD);
        assert_eq!(
            held.take(address(0), now),
            None,
            "the first one was dropped"
        );
        assert_eq!(held.take(address(1), now), Some(1));
    }
}
