//! The task of one peer: owns its `fsm::Session` (two during a connection collision), their
//! timers (deadlines keyed by `fsm::Timer`), the connections, the graceful-restart timer, and
//! the flow of UPDATEs between the connection and the RIB actor. Does I/O (through
//! `connection` and `transport`).
//!
//! Collisions (RFC 4271 §6.8): an accepted connection while our own is in Connect or Active
//! replaces the attempt; while it is in OpenSent or OpenConfirm it runs in a second session
//! ("incoming" slot) until one of them has the peer's OPEN, then `resolve_collision_with_as`
//! picks the survivor and the other gets `Event::CollisionDump`. While Established, a new
//! connection is refused, unless the peer does graceful restart: then it is the peer coming
//! back (RFC 4724 §4.2), the old session ends with its routes kept stale, the new one runs.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpStream, sync::mpsc, time::Instant};
use tracing::{debug, info};

use super::{
    AbortOnDrop,
    connection::{Connection, Tagged, WriterCommand},
    outbound::OutboundQueue,
    rib_actor::{RibCommand, RibHandle},
    transport,
};
use crate::{
    config::PeerSettings,
    fsm::{Event, Negotiated, Session, SessionConfig, State, Timer},
    message::Update,
    rib::PeerId,
};

/// Reader batches handled before the accumulated UPDATEs go to the RIB.
const DRAIN_BATCHES: usize = 64;
/// Stale routes kept after a graceful restart re-establishes without End-of-RIB.
const STALE_AFTER_RESTART: Duration = Duration::from_secs(300);

pub(crate) enum PeerCommand {
    Accepted(TcpStream),
    /// Stop the session (Cease) and end the task.
    Shutdown,
}

/// What `ListPeers` shows, kept current by the peer task.
#[derive(Clone, Debug)]
pub struct PeerStatus {
    pub state: State,
    pub established_at: Option<std::time::Instant>,
    pub last_error: Option<String>,
    pub negotiated: Option<Negotiated>,
    pub established_transitions: u64,
}

/// The owner of a peer task: aborts it when dropped.
pub struct PeerHandle {
    pub commands: mpsc::UnboundedSender<PeerCommand>,
    pub status: Arc<Mutex<PeerStatus>>,
    task: AbortOnDrop,
}

impl PeerHandle {
    /// Sends a Cease and waits (briefly) for the task to end.
    pub async fn shutdown(mut self) {
        let _ = self.commands.send(PeerCommand::Shutdown);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Primary,
    Incoming,
}

pub(super) struct Slot {
    pub session: Session,
    pub conn: Option<Connection>,
    /// The outgoing connection attempt in progress, by id.
    pub connecting: Option<(u64, AbortOnDrop)>,
    pub timers: HashMap<Timer, Instant>,
}

impl Slot {
    pub fn new(config: SessionConfig) -> Slot {
        Slot {
            session: Session::new(config),
            conn: None,
            connecting: None,
            timers: HashMap::new(),
        }
    }
}

pub(super) struct PeerTask {
    pub id: PeerId,
    pub settings: Arc<PeerSettings>,
    pub session_config: SessionConfig,
    pub primary: Slot,
    pub incoming: Option<Slot>,
    pub next_conn_id: u64,
    pub events_tx: mpsc::Sender<Tagged>,
    pub writer_events_tx: mpsc::UnboundedSender<Tagged>,
    pub connect_tx: mpsc::UnboundedSender<(u64, Result<TcpStream, String>)>,
    pub rib: RibHandle,
    pub status: Arc<Mutex<PeerStatus>>,
    pub established: bool,
    pub gr_deadline: Option<Instant>,
    pub peer_restart_time: Option<u16>,
    pub to_rib: Vec<Update>,
}

/// Starts the task of a peer (it starts its session at once).
pub fn spawn(
    id: PeerId,
    settings: Arc<PeerSettings>,
    session_config: SessionConfig,
    rib: RibHandle,
    commands: mpsc::UnboundedSender<PeerCommand>,
    commands_rx: mpsc::UnboundedReceiver<PeerCommand>,
) -> PeerHandle {
    let status = Arc::new(Mutex::new(PeerStatus {
        state: State::Idle,
        established_at: None,
        last_error: None,
        negotiated: None,
        established_transitions: 0,
    }));
    let (events_tx, events_rx) = mpsc::channel(16);
    let (writer_events_tx, writer_events_rx) = mpsc::unbounded_channel();
    let (connect_tx, connect_rx) = mpsc::unbounded_channel();
    let task = PeerTask {
        id,
        primary: Slot::new(session_config.clone()),
        settings,
        session_config,
        incoming: None,
        next_conn_id: 1,
        events_tx,
        writer_events_tx,
        connect_tx,
        rib,
        status: status.clone(),
        established: false,
        gr_deadline: None,
        peer_restart_time: None,
        to_rib: Vec::new(),
    };
    let join = tokio::spawn(task.run(commands_rx, events_rx, writer_events_rx, connect_rx));
    PeerHandle {
        commands,
        status,
        task: AbortOnDrop::new(join),
    }
}

impl PeerTask {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<PeerCommand>,
        mut events: mpsc::Receiver<Tagged>,
        mut writer_events: mpsc::UnboundedReceiver<Tagged>,
        mut connects: mpsc::UnboundedReceiver<(u64, Result<TcpStream, String>)>,
    ) {
        self.feed(Which::Primary, Event::ManualStart);
        self.publish_status();
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    None | Some(PeerCommand::Shutdown) => break,
                    Some(PeerCommand::Accepted(stream)) => self.on_accepted(stream),
                },
                () = sleep_until(deadline), if deadline.is_some() => self.on_timers(),
                Some((attempt, result)) = connects.recv() => self.on_connect_result(attempt, result),
                Some((conn, event)) = writer_events.recv() => self.on_conn_event(conn, event),
                Some((conn, event)) = events.recv() => {
                    self.on_conn_event(conn, event);
                    for _ in 0..DRAIN_BATCHES {
                        match events.try_recv() {
                            Ok((conn, event)) => self.on_conn_event(conn, event),
                            Err(_) => break,
                        }
                    }
                }
            }
            if !self.to_rib.is_empty() {
                self.rib
                    .receive(self.id, std::mem::take(&mut self.to_rib))
                    .await;
            }
            self.publish_status();
        }
        self.feed(Which::Primary, Event::ManualStop);
        if self.incoming.is_some() {
            self.feed(Which::Incoming, Event::ManualStop);
        }
        self.flush_to_rib_now();
        self.publish_status();
        debug!(peer = %self.settings.name, "peer task stopped");
    }

    pub(super) fn name(&self) -> &str {
        &self.settings.name
    }

    fn next_deadline(&self) -> Option<Instant> {
        let slots = std::iter::once(&self.primary).chain(self.incoming.as_ref());
        slots
            .flat_map(|slot| slot.timers.values().copied())
            .chain(self.gr_deadline)
            .min()
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        for which in [Which::Primary, Which::Incoming] {
            let Some(slot) = self.slot_mut(which) else {
                continue;
            };
            let expired: Vec<Timer> = slot
                .timers
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(timer, _)| *timer)
                .collect();
            for timer in expired {
                if let Some(slot) = self.slot_mut(which) {
                    slot.timers.remove(&timer);
                }
                debug!(peer = %self.name(), ?timer, ?which, "timer expired");
                self.feed(which, Event::TimerExpired(timer));
            }
        }
        if self.gr_deadline.is_some_and(|at| at <= now) {
            self.gr_deadline = None;
            info!(peer = %self.name(), "graceful restart timer expired: dropping stale routes");
            self.rib.send(RibCommand::StaleTimeout(self.id));
        }
        self.check_collision();
    }

    pub(super) fn on_established(&mut self, negotiated: Negotiated) {
        self.established = true;
        info!(
            peer = %self.name(),
            address = %self.settings.address,
            hold_time = negotiated.hold_time,
            "peer {} established",
            self.name()
        );
        self.peer_restart_time = negotiated
            .peer_graceful_restart
            .as_ref()
            .map(|restart| restart.restart_time);
        if self.gr_deadline.is_some() {
            self.gr_deadline = Some(Instant::now() + STALE_AFTER_RESTART);
        }
        let local_address = self
            .primary
            .conn
            .as_ref()
            .and_then(|conn| conn.local)
            .map(|local| transport::canonical(local.ip()))
            .or(self.settings.local_address)
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let info = crate::rib::SessionInfo {
            peer_router_id: negotiated.peer_router_id,
            four_octet_as: negotiated.four_octet_as,
            families: negotiated.families.clone(),
            add_path_receive: negotiated.add_path_receive.clone(),
            graceful_restart: negotiated
                .peer_graceful_restart
                .as_ref()
                .map(|restart| restart.families.clone()),
            extended_next_hop: negotiated.extended_next_hop,
        };
        {
            let mut status = self.status.lock().unwrap();
            status.established_at = Some(std::time::Instant::now());
            status.established_transitions += 1;
            status.negotiated = Some(negotiated);
        }
        // A queue per session: the RIB fills it, this session's writer drains it.
        let outbound = OutboundQueue::new();
        if let Some(conn) = &self.primary.conn {
            conn.send(WriterCommand::Outbound(Arc::clone(&outbound)));
        }
        self.rib.send(RibCommand::PeerUp {
            id: self.id,
            outbound,
            info,
            local_address,
        });
    }

    pub(super) fn on_down(&mut self, reason: String, keep_routes_stale: bool) {
        if self.established {
            info!(peer = %self.name(), %reason, keep_routes_stale, "peer {} down", self.name());
        } else {
            debug!(peer = %self.name(), %reason, "session attempt ended");
        }
        self.established = false;
        self.flush_to_rib_now();
        {
            let mut status = self.status.lock().unwrap();
            status.established_at = None;
            status.last_error = Some(reason);
        }
        self.rib.send(RibCommand::PeerDown {
            id: self.id,
            keep_stale: keep_routes_stale,
        });
        match (keep_routes_stale, self.peer_restart_time) {
            (true, Some(restart_time)) if self.gr_deadline.is_none() => {
                info!(peer = %self.name(), restart_time, "graceful restart: keeping routes stale");
                self.gr_deadline = Some(Instant::now() + Duration::from_secs(restart_time.into()));
            }
            (true, _) => {}
            (false, _) => self.gr_deadline = None,
        }
    }

    /// Hands pending UPDATEs to the RIB without waiting for a permit (before a PeerDown, which
    /// must not overtake them).
    fn flush_to_rib_now(&mut self) {
        if !self.to_rib.is_empty() {
            let updates = std::mem::take(&mut self.to_rib);
            self.rib.send(RibCommand::Receive {
                id: self.id,
                updates,
                _permit: None,
            });
        }
    }

    fn publish_status(&self) {
        let mut status = self.status.lock().unwrap();
        status.state = self.primary.session.state();
        if status.state != State::Established {
            status.established_at = None;
        }
        if status.state == State::Idle || status.state == State::Connect {
            status.negotiated = None;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
