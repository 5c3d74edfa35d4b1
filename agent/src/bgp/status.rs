//! What the BGP side of the agent knows about itself, for readiness and metrics: whether bgpd
//! answers and streams, its sessions by state, and how many learned routes are programmed.
//! Shared state, no I/O.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

#[derive(Debug, Default)]
pub struct BgpStatus {
    stream_up: AtomicBool,
    bgpd_up: AtomicBool,
    routes: AtomicUsize,
    sessions: Mutex<Vec<Session>>,
}

/// One of bgpd's sessions, as ListPeers last said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub address: String,
    pub name: String,
    pub state: String,
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
}

impl BgpStatus {
    pub fn set_stream_up(&self, up: bool) {
        self.stream_up.store(up, Ordering::Relaxed);
    }

    pub fn set_bgpd_up(&self, up: bool) {
        self.bgpd_up.store(up, Ordering::Relaxed);
    }

    pub fn set_routes(&self, routes: usize) {
        self.routes.store(routes, Ordering::Relaxed);
    }

    pub fn set_sessions(&self, sessions: Vec<Session>) {
        *self.sessions.lock().unwrap_or_else(PoisonError::into_inner) = sessions;
    }

    pub fn stream_up(&self) -> bool {
        self.stream_up.load(Ordering::Relaxed)
    }

    pub fn bgpd_up(&self) -> bool {
        self.bgpd_up.load(Ordering::Relaxed)
    }

    /// Learned routes handed to the route applier.
    pub fn routes(&self) -> usize {
        self.routes.load(Ordering::Relaxed)
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sessions by state ("Established" -> 3, ...).
    pub fn sessions_by_state(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for session in self.sessions() {
            *counts.entry(session.state).or_default() += 1;
        }
        counts
    }

    /// Sets the "bgp" readiness condition and the BGP metrics from what is known now.
    pub fn publish(
        &self,
        readiness: &crate::health::Readiness,
        metrics: &crate::health::metrics::Metrics,
    ) {
        match self.ready() {
            Ok(()) => readiness.set_ready("bgp"),
            Err(reason) => readiness.set_failing("bgp", reason),
        }
        let by_state = self.sessions_by_state();
        for state in crate::health::metrics::BGP_STATES {
            let count = by_state
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(state))
                .map(|(_, count)| *count)
                .sum::<usize>();
            metrics
                .bgp_peers
                .get_or_create(&crate::health::metrics::StateLabel {
                    state: state.into(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let sessions = self.sessions();
        for (direction, total) in [
            (
                "advertised",
                sessions.iter().map(|s| s.prefixes_advertised).sum::<u64>(),
            ),
            (
                "received",
                sessions.iter().map(|s| s.prefixes_accepted).sum::<u64>(),
            ),
        ] {
            metrics
                .bgp_prefixes
                .get_or_create(&crate::health::metrics::DirectionLabel {
                    direction: direction.into(),
                })
                .set(i64::try_from(total).unwrap_or(i64::MAX));
        }
    }

    /// Ready: bgpd answers, its stream is followed, and every session is Established. The
    /// error lists what is not.
    pub fn ready(&self) -> Result<(), String> {
        if !self.bgpd_up() {
            return Err("manul-bgpd does not answer on its socket".into());
        }
        if !self.stream_up() {
            return Err("the agent does not follow manul-bgpd's best paths yet".into());
        }
        let down: Vec<String> = self
            .sessions()
            .into_iter()
            .filter(|session| session.state != "Established")
            .map(|session| {
                format!(
                    "{} ({}) is {}",
                    session.address, session.name, session.state
                )
            })
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!("BGP sessions not established: {}", down.join(", ")))
        }
    }
}
