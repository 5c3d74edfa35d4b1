//! The peer task's glue between its sessions and the world: feeds events to a session,
//! carries out the actions it returns (connect, send, close, timers, RIB), accepts incoming
//! connections and resolves collisions. Does I/O through `connection` and the RIB handle.

use tokio::{net::TcpStream, time::Instant};
use tracing::{debug, info, warn};

use super::{
    AbortOnDrop,
    connection::{ConnEvent, Connection, WriterCommand},
    peer::{PeerTask, Slot, Which},
    rib_actor::RibCommand,
    transport,
};
use crate::{
    codec::CodecContext,
    fsm::{Action, CollisionWinner, Event, Negotiated, State, resolve_collision_with_as},
    message::Message,
};

/// How long one connection attempt may take (the session's ConnectRetry may abandon it sooner).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The codec context a negotiated session implies.
pub fn codec_context(negotiated: &Negotiated) -> CodecContext {
    CodecContext {
        four_octet_as: negotiated.four_octet_as,
        add_path_receive: negotiated.add_path_receive.clone(),
        add_path_send: negotiated.add_path_send.clone(),
        extended_next_hop: negotiated.extended_next_hop,
    }
}

impl PeerTask {
    /// Hands `event` to the session in `which` and carries out its actions.
    pub(super) fn feed(&mut self, which: Which, event: Event) {
        let is_open = matches!(event, Event::Message(Message::Open(_)));
        let Some(slot) = self.slot_mut(which) else {
            return;
        };
        let actions = slot.session.handle(event);
        if is_open {
            // The reader waits for this after every OPEN (see `connection`).
            let context = slot
                .session
                .negotiated()
                .map(codec_context)
                .unwrap_or_default();
            if let Some(conn) = &slot.conn {
                conn.send(WriterCommand::Context(context.clone()));
                let _ = conn.reader_context.send(context);
            }
        }
        for action in actions {
            self.apply(which, action);
        }
    }

    fn apply(&mut self, which: Which, action: Action) {
        let primary = which == Which::Primary;
        match action {
            // An incoming session never connects out: it has its connection already.
            Action::Connect if primary => self.connect(),
            Action::Connect => {}
            Action::Send(message) => {
                if let Some(conn) = self.slot_mut(which).and_then(|slot| slot.conn.as_ref()) {
                    conn.send(WriterCommand::Message(Box::new(message)));
                }
            }
            Action::CloseConnection => {
                if let Some(slot) = self.slot_mut(which) {
                    slot.connecting = None;
                    if let Some(conn) = slot.conn.take() {
                        conn.close();
                    }
                }
            }
            Action::StartTimer(timer, after) => {
                if let Some(slot) = self.slot_mut(which) {
                    slot.timers.insert(timer, Instant::now() + after);
                }
            }
            Action::StopTimer(timer) => {
                if let Some(slot) = self.slot_mut(which) {
                    slot.timers.remove(&timer);
                }
            }
            Action::Established(negotiated) if primary => self.on_established(negotiated),
            Action::Down {
                reason,
                keep_routes_stale,
            } if primary => {
                self.on_down(reason, keep_routes_stale);
            }
            Action::Update(update) if primary && self.established => self.to_rib.push(update),
            Action::RouteRefresh(family) if primary && self.established => {
                self.rib.send(RibCommand::RouteRefresh(self.id, family));
            }
            other => {
                debug!(peer = %self.name(), ?which, ?other, "action of a secondary session ignored")
            }
        }
    }

    pub(super) fn on_conn_event(&mut self, conn: u64, event: ConnEvent) {
        match event {
            ConnEvent::Events(events) => {
                for event in events {
                    // A collision may move the connection between slots mid-batch.
                    let Some(which) = self.which_conn(conn) else {
                        return;
                    };
                    self.feed(which, event);
                    self.check_collision();
                }
            }
            ConnEvent::SendProgress => {
                if let Some(which) = self.which_conn(conn) {
                    self.feed(which, Event::SendProgress);
                }
            }
            ConnEvent::Closed(reason) => {
                let Some(which) = self.which_conn(conn) else {
                    return;
                };
                debug!(peer = %self.name(), %reason, "connection closed");
                self.feed(which, Event::TcpClosed);
                if let Some(slot) = self.slot_mut(which)
                    && slot.conn.as_ref().is_some_and(|c| c.id == conn)
                {
                    slot.conn = None;
                }
                self.check_collision();
            }
        }
    }

    pub(super) fn on_accepted(&mut self, stream: TcpStream) {
        if let Err(error) = transport::prepare_accepted(&stream, &self.settings) {
            warn!(peer = %self.name(), %error, "refusing an incoming connection");
            return;
        }
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        match self.primary.session.state() {
            State::Connect | State::Active => {
                debug!(peer = %self.name(), "incoming connection replaces our attempt");
                self.primary.connecting = None;
                self.primary.conn = Some(self.start_connection(id, stream, false));
                self.feed(Which::Primary, Event::TcpAccepted);
                return;
            }
            State::Established => {
                let restarts = self
                    .primary
                    .session
                    .negotiated()
                    .is_some_and(|negotiated| negotiated.peer_graceful_restart.is_some());
                if !restarts {
                    debug!(peer = %self.name(), "refusing a second connection: established");
                    return;
                }
                info!(peer = %self.name(), "new connection while established: peer restarting");
                self.feed(Which::Primary, Event::TcpClosed);
            }
            State::Idle | State::OpenSent | State::OpenConfirm => {}
        }
        if let Some(mut old) = self.incoming.take()
            && let Some(conn) = old.conn.take()
        {
            conn.close();
        }
        let mut slot = Slot::new(self.session_config.clone());
        slot.conn = Some(self.start_connection(id, stream, false));
        self.incoming = Some(slot);
        self.feed(Which::Incoming, Event::ManualStart);
        self.feed(Which::Incoming, Event::TcpAccepted);
        self.check_collision();
    }

    /// RFC 4271 §6.8, once the peer's BGP identifier is known on either connection.
    pub(super) fn check_collision(&mut self) {
        let Some(incoming) = &self.incoming else {
            return;
        };
        let incoming_state = incoming.session.state();
        if incoming_state == State::Idle || incoming.conn.is_none() {
            self.incoming = None;
            return;
        }
        match self.primary.session.state() {
            State::Established => self.dump(Which::Incoming),
            State::Idle | State::Connect | State::Active => {
                if matches!(incoming_state, State::OpenConfirm | State::Established) {
                    self.promote();
                }
            }
            State::OpenSent | State::OpenConfirm => {
                let remote = incoming
                    .session
                    .negotiated()
                    .or(self.primary.session.negotiated())
                    .map(|negotiated| negotiated.peer_router_id);
                let Some(remote_id) = remote else { return };
                let existing_is_outgoing = self.primary.conn.as_ref().is_some_and(|c| c.outgoing);
                let config = &self.session_config;
                let winner = resolve_collision_with_as(
                    config.router_id,
                    config.local_as,
                    remote_id,
                    config.peer_as,
                    existing_is_outgoing,
                );
                info!(peer = %self.name(), ?winner, "connection collision resolved");
                match winner {
                    CollisionWinner::Existing => self.dump(Which::Incoming),
                    CollisionWinner::Incoming => {
                        self.feed(Which::Primary, Event::CollisionDump);
                        self.promote();
                    }
                }
            }
        }
    }

    /// The incoming session loses: Cease 6/7, close, forget it.
    fn dump(&mut self, which: Which) {
        self.feed(which, Event::CollisionDump);
        if which == Which::Incoming
            && let Some(mut slot) = self.incoming.take()
            && let Some(conn) = slot.conn.take()
        {
            conn.close();
        }
    }

    /// The incoming session becomes the peer's session; the old one is dropped with its
    /// timers and connection attempt.
    fn promote(&mut self) {
        if let Some(incoming) = self.incoming.take() {
            let old = std::mem::replace(&mut self.primary, incoming);
            if let Some(conn) = old.conn {
                conn.close();
            }
            debug!(peer = %self.name(), "incoming connection is now the session");
        }
    }
}

/// Connections and slot lookup.
impl PeerTask {
    pub(super) fn on_connect_result(&mut self, attempt: u64, result: Result<TcpStream, String>) {
        if self.primary.connecting.as_ref().map(|(id, _)| *id) != Some(attempt) {
            return;
        }
        self.primary.connecting = None;
        match result {
            Ok(stream) => {
                debug!(peer = %self.name(), "connected");
                self.primary.conn = Some(self.start_connection(attempt, stream, true));
                self.feed(Which::Primary, Event::TcpConnected);
            }
            Err(error) => {
                debug!(peer = %self.name(), %error, "connection attempt failed");
                self.status.lock().unwrap().last_error = Some(error);
                self.feed(Which::Primary, Event::TcpConnectFailed);
            }
        }
        self.check_collision();
    }

    pub(super) fn start_connection(
        &mut self,
        id: u64,
        stream: TcpStream,
        outgoing: bool,
    ) -> Connection {
        Connection::start(
            id,
            stream,
            outgoing,
            self.settings.name.clone(),
            self.events_tx.clone(),
            self.writer_events_tx.clone(),
        )
    }

    /// Starts an outgoing connection attempt, abandoning any earlier one.
    pub(super) fn connect(&mut self) {
        let attempt = self.next_conn_id;
        self.next_conn_id += 1;
        let settings = self.settings.clone();
        let results = self.connect_tx.clone();
        let task = tokio::spawn(async move {
            let result = transport::connect(&settings, CONNECT_TIMEOUT).await;
            let _ = results.send((attempt, result.map_err(|error| error.to_string())));
        });
        self.primary.connecting = Some((attempt, AbortOnDrop::new(task)));
    }
}

impl PeerTask {
    pub(super) fn slot_mut(&mut self, which: Which) -> Option<&mut Slot> {
        match which {
            Which::Primary => Some(&mut self.primary),
            Which::Incoming => self.incoming.as_mut(),
        }
    }

    pub(super) fn which_conn(&self, conn: u64) -> Option<Which> {
        if self.primary.conn.as_ref().is_some_and(|c| c.id == conn) {
            Some(Which::Primary)
        } else if self
            .incoming
            .as_ref()
            .and_then(|s| s.conn.as_ref())
            .is_some_and(|c| c.id == conn)
        {
            Some(Which::Incoming)
        } else {
            None
        }
    }
}
