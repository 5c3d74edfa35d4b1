//! The RIB actor: one OS thread owning the `rib::Rib`, fed by `RibHandle`s over an unbounded
//! channel, handing each session's writer its Adj-RIB-Out changes (through its
//! `OutboundQueue`) and each best-path watcher its changes (through its `Watcher`, on
//! request). Does I/O only in the sense of threads and channels.
//!
//! A thread, not a tokio task: `peer_up` of a peer with a million prefixes computes for about
//! a second, and that must not stall the two runtime workers that move the bytes. Received
//! UPDATEs come in batches, and a semaphore bounds the batches in flight (a peer task waits for
//! a permit, which is its back-pressure towards TCP), so the channel can stay unbounded and the
//! owner's `Drop` can always deliver `Stop`.
//!
//! Watchers have a channel of their own, which the actor reads before every command of the
//! main one: a watcher's request for its next chunk does not wait behind the received updates
//! queued before it (up to `RECEIVE_PERMITS` batches, about a second of work during a full
//! table transfer), so the stream keeps up with the transfer instead of trailing it by
//! seconds. Its registration goes the same way (the snapshot is taken whenever it is handled;
//! the changes after it are marked in order either way). Requests are answered at the end of
//! a round of commands; while received updates are still queued, at most every
//! `WATCH_SERVE_INTERVAL`, so that the stream yields to the receive path but never starves.
//!
//! Consumers never get a queue of copies: a slow peer's pending changes are coalesced per
//! prefix in its `OutboundQueue`, and a watcher only has a queue of dirty prefixes (each once), resolved
//! against the current best paths when it asks for its next chunk (see `watch`). Memory
//! towards a consumer that does not read is bounded by the table, not by the churn.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::{debug, trace, warn};

use super::{
    outbound::OutboundQueue,
    watch::{Best, WatchChunk, WatchedRib, Watcher},
};
use crate::{
    config::PrefixSettings,
    message::{Family, Update},
    rib::{
        LocalConfig, PeerConfig, PeerCounters, PeerId, Position, Rib, RibOutput, RouteFilter,
        RouteView, SessionInfo,
    },
};

/// Batches of received updates allowed in flight to the RIB, over all peers.
const RECEIVE_PERMITS: usize = 64;
/// Best-path changes per chunk handed to a watcher (the stream splits it into messages). A
/// request is served between two received batches (it has a channel of its own), and the
/// stream asks for the next chunk while it converts the current one.
pub const WATCH_CHUNK: usize = 16384;
/// Commands handled before the peers' queues are filled and waiting watchers served.
const COMMANDS_PER_ROUND: usize = 64;
/// While received updates are queued, waiting watchers are served at most this often (once
/// per round when nothing is queued): their chunks cost the RIB thread and, downstream, the
/// API task and the client CPU that the receive path needs during a table transfer. This
/// bounds how far a watcher that keeps asking trails the RIB while it is busy.
const WATCH_SERVE_INTERVAL: Duration = Duration::from_millis(200);

pub(crate) enum RibCommand {
    AddPeer {
        id: PeerId,
        config: PeerConfig,
    },
    RemovePeer(PeerId),
    /// The session came up: `local_address` is our end of it (the next hop we advertise);
    /// its writer sends what the RIB puts in `outbound`.
    PeerUp {
        id: PeerId,
        outbound: Arc<OutboundQueue>,
        info: SessionInfo,
        local_address: IpAddr,
    },
    PeerDown {
        id: PeerId,
        keep_stale: bool,
    },
    Receive {
        id: PeerId,
        updates: Vec<Update>,
        _permit: Option<OwnedSemaphorePermit>,
    },
    StaleTimeout(PeerId),
    RouteRefresh(PeerId, Family),
    Originate(Vec<PrefixSettings>),
    Withdraw(Vec<IpNet>),
    Counters(Vec<PeerId>, oneshot::Sender<Vec<PeerCounters>>),
    /// The prefixes a route listing will resolve, page by page, with `Routes`.
    RoutePrefixes(RouteFilter, oneshot::Sender<Vec<IpNet>>),
    Routes(Vec<IpNet>, oneshot::Sender<Vec<RouteView>>),
    /// A new watcher: its snapshot is every current best path.
    Watch(u64),
    /// The watcher's next chunk, sent as soon as it has one.
    WatchNext(u64, oneshot::Sender<WatchChunk>),
    /// Prefixes the watcher has not been handed yet.
    WatchPending(u64, oneshot::Sender<usize>),
    Unwatch(u64),
    /// Nothing: wakes the actor for a command on the watcher channel.
    Wake,
    Stop,
}

/// A cloneable way to talk to the RIB actor.
#[derive(Clone)]
pub struct RibHandle {
    tx: mpsc::UnboundedSender<RibCommand>,
    /// Watcher commands, read before each command of `tx`; each is followed by a `Wake` on
    /// `tx` so that an idle actor sees it.
    watch_tx: mpsc::UnboundedSender<RibCommand>,
    permits: Arc<Semaphore>,
    next_watch: Arc<AtomicU64>,
}

/// The owner: stops the actor when dropped (after the command it is running).
pub struct RibActor {
    handle: RibHandle,
}

impl RibActor {
    pub fn spawn(local: LocalConfig) -> RibActor {
        let (tx, rx) = mpsc::unbounded_channel();
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("bgpd-rib".into())
            .spawn(move || run(Rib::new(local), rx, watch_rx));
        if let Err(error) = spawned {
            // Without a thread the handle's sends fail and every caller sees "RIB stopped".
            warn!(%error, "cannot start the RIB thread");
        }
        RibActor {
            handle: RibHandle {
                tx,
                watch_tx,
                permits: Arc::new(Semaphore::new(RECEIVE_PERMITS)),
                next_watch: Arc::new(AtomicU64::new(1)),
            },
        }
    }

    pub fn handle(&self) -> RibHandle {
        self.handle.clone()
    }
}

impl Drop for RibActor {
    fn drop(&mut self) {
        let _ = self.handle.tx.send(RibCommand::Stop);
    }
}

impl RibHandle {
    pub(crate) fn send(&self, command: RibCommand) {
        if self.tx.send(command).is_err() {
            debug!("RIB stopped; command dropped");
        }
    }

    /// Sends a watcher command on the watcher channel, ahead of queued updates.
    fn send_watch(&self, command: RibCommand) -> Result<(), ()> {
        self.watch_tx.send(command).map_err(|_| ())?;
        self.tx.send(RibCommand::Wake).map_err(|_| ())
    }

    /// Hands a batch of received updates to the RIB, waiting while too many are in flight.
    pub async fn receive(&self, id: PeerId, updates: Vec<Update>) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        self.send(RibCommand::Receive {
            id,
            updates,
            _permit: Some(permit),
        });
    }

    pub async fn counters(&self, ids: Vec<PeerId>) -> Option<Vec<PeerCounters>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(RibCommand::Counters(ids, reply)).ok()?;
        answer.await.ok()
    }

    /// The prefixes of the Loc-RIB routes `filter` keeps (one walk of the table at most).
    pub async fn route_prefixes(&self, filter: RouteFilter) -> Option<Vec<IpNet>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(RibCommand::RoutePrefixes(filter, reply))
            .ok()?;
        answer.await.ok()
    }

    /// The current best paths of `prefixes` (one page of a listing).
    pub async fn routes(&self, prefixes: Vec<IpNet>) -> Option<Vec<RouteView>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(RibCommand::Routes(prefixes, reply)).ok()?;
        answer.await.ok()
    }

    /// A new best-path watcher: its chunks are the snapshot (the last one flagged
    /// `snapshot_done`), then changes.
    pub fn watch(&self) -> WatchHandle {
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        if self.send_watch(RibCommand::Watch(id)).is_err() {
            debug!("RIB stopped; watch dropped");
        }
        WatchHandle {
            id,
            rib: self.clone(),
        }
    }

    pub fn originate(&self, prefixes: Vec<PrefixSettings>) {
        self.send(RibCommand::Originate(prefixes));
    }

    pub fn withdraw(&self, prefixes: Vec<IpNet>) {
        self.send(RibCommand::Withdraw(prefixes));
    }
}

/// A registered watcher: the RIB reads its next chunk only when asked (see `watch`).
pub struct WatchHandle {
    id: u64,
    rib: RibHandle,
}

impl WatchHandle {
    /// Asks for the next chunk now; the answer comes when there is one (an error once the
    /// RIB stopped).
    pub fn request(&self) -> oneshot::Receiver<WatchChunk> {
        let (reply, answer) = oneshot::channel();
        // When the RIB is gone the command, and with it `reply`, is dropped: `answer` fails.
        let _ = self.rib.send_watch(RibCommand::WatchNext(self.id, reply));
        answer
    }

    /// The next chunk, when there is one; `None` once the RIB stopped.
    pub async fn next(&self) -> Option<WatchChunk> {
        self.request().await.ok()
    }

    /// How many prefixes wait to be handed out (for tests and the benchmark).
    pub async fn pending(&self) -> Option<usize> {
        let (reply, answer) = oneshot::channel();
        self.rib
            .tx
            .send(RibCommand::WatchPending(self.id, reply))
            .ok()?;
        answer.await.ok()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.rib.send_watch(RibCommand::Unwatch(self.id));
    }
}

struct Peer {
    config: PeerConfig,
    /// The queue of the established session (`None`: down). Each RIB output goes there as
    /// it comes: one output holds each prefix at most once, so the queue keeps the first
    /// unsplit and coalesces from the second on (see `outbound`).
    outbound: Option<Arc<OutboundQueue>>,
}

struct WatchEntry {
    watcher: Watcher,
    /// A request waiting for the watcher's next chunk.
    waiting: Option<oneshot::Sender<WatchChunk>>,
}

struct Actor {
    rib: Rib,
    peers: HashMap<PeerId, Peer>,
    watchers: HashMap<u64, WatchEntry>,
    /// Mark bits of the prefix table no watcher holds.
    free_bits: u8,
}

impl WatchedRib for Rib {
    fn set_mark(&mut self, prefix: &IpNet, hint: Position, bit: u8) -> Option<(bool, Position)> {
        self.set_watch_mark(prefix, hint, bit)
    }

    fn clear_mark(&mut self, prefix: &IpNet, hint: Position, bit: u8) -> (bool, Option<Best>) {
        self.clear_watch_mark(prefix, hint, bit)
    }

    fn best(&self, prefix: &IpNet) -> Option<Best> {
        self.best_path(prefix)
    }
}

/// Gives a gone watcher's mark bit back, cleared everywhere.
fn release(watcher: &Watcher, rib: &mut Rib, free_bits: &mut u8) {
    if let Some(bit) = watcher.bit() {
        rib.clear_watch_mark_everywhere(bit);
        *free_bits |= bit;
    }
}

fn run(
    rib: Rib,
    mut rx: mpsc::UnboundedReceiver<RibCommand>,
    mut watch_rx: mpsc::UnboundedReceiver<RibCommand>,
) {
    let mut actor = Actor {
        rib,
        peers: HashMap::new(),
        watchers: HashMap::new(),
        free_bits: u8::MAX,
    };
    let mut served_at = Instant::now();
    while let Some(command) = rx.blocking_recv() {
        if matches!(command, RibCommand::Stop) {
            break;
        }
        actor.handle_watch_commands(&mut watch_rx);
        actor.handle(command);
        // Take whatever else is queued, so peers and watchers get large batches.
        for _ in 1..COMMANDS_PER_ROUND {
            actor.handle_watch_commands(&mut watch_rx);
            match rx.try_recv() {
                Ok(RibCommand::Stop) => return,
                Ok(command) => actor.handle(command),
                Err(_) => break,
            }
        }
        if rx.is_empty() || served_at.elapsed() >= WATCH_SERVE_INTERVAL {
            actor.serve_watchers();
            served_at = Instant::now();
        }
    }
    debug!("RIB actor stopped");
}

impl Actor {
    fn handle_watch_commands(&mut self, watch_rx: &mut mpsc::UnboundedReceiver<RibCommand>) {
        while let Ok(command) = watch_rx.try_recv() {
            self.handle(command);
        }
    }

    fn handle(&mut self, command: RibCommand) {
        let outputs = match command {
            RibCommand::AddPeer { id, config } => {
                self.rib.add_peer(id, config.clone());
                self.peers.insert(
                    id,
                    Peer {
                        config,
                        outbound: None,
                    },
                );
                Vec::new()
            }
            RibCommand::RemovePeer(id) => {
                self.peers.remove(&id);
                self.rib.remove_peer(id)
            }
            RibCommand::PeerUp {
                id,
                outbound,
                info,
                local_address,
            } => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                peer.outbound = Some(outbound);
                if peer.config.local_address != local_address {
                    peer.config.local_address = local_address;
                    self.rib.add_peer(id, peer.config.clone());
                }
                self.rib.peer_up(id, info)
            }
            RibCommand::PeerDown { id, keep_stale } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.outbound = None;
                }
                self.rib.peer_down(id, keep_stale)
            }
            RibCommand::Receive {
                id,
                updates,
                _permit,
            } => {
                let mut outputs = Vec::new();
                let count = updates.len();
                for update in updates {
                    let changes = self.rib.receive(id, update);
                    // Watchers are marked per UPDATE, while the entries it touched are still
                    // in the cache; peers get the whole batch's changes at once.
                    self.mark_watchers(&changes);
                    outputs.extend(changes);
                }
                trace!(?id, count, outputs = outputs.len(), "received updates");
                return self.send_to_peers(outputs);
            }
            RibCommand::StaleTimeout(id) => self.rib.stale_timeout(id),
            RibCommand::RouteRefresh(id, family) => self.rib.route_refresh(id, family),
            RibCommand::Originate(prefixes) => {
                let mut outputs = Vec::new();
                for prefix in prefixes {
                    outputs.extend(self.rib.originate(
                        prefix.prefix,
                        prefix.communities,
                        prefix.large_communities,
                    ));
                }
                outputs
            }
            RibCommand::Withdraw(prefixes) => prefixes
                .into_iter()
                .flat_map(|prefix| self.rib.withdraw_originated(prefix))
                .collect(),
            RibCommand::Counters(ids, reply) => {
                let _ = reply.send(ids.into_iter().map(|id| self.rib.counters(id)).collect());
                Vec::new()
            }
            RibCommand::RoutePrefixes(filter, reply) => {
                let _ = reply.send(self.rib.route_prefixes(&filter));
                Vec::new()
            }
            RibCommand::Routes(prefixes, reply) => {
                let _ = reply.send(self.rib.routes(&prefixes));
                Vec::new()
            }
            RibCommand::Watch(id) => {
                // The lowest free bit; none left: the watcher keeps a set of its own.
                let bit = (self.free_bits != 0).then(|| 1 << self.free_bits.trailing_zeros());
                self.free_bits &= !bit.unwrap_or(0);
                let snapshot: Vec<IpNet> =
                    self.rib.best_paths().map(|(prefix, _, _)| prefix).collect();
                let entry = WatchEntry {
                    watcher: Watcher::with_snapshot(bit, snapshot, &mut self.rib),
                    waiting: None,
                };
                self.watchers.insert(id, entry);
                Vec::new()
            }
            RibCommand::WatchNext(id, reply) => {
                // Answered by `serve_watchers` at the end of the round (or a later one while
                // updates are queued, see `WATCH_SERVE_INTERVAL`), once there is something.
                if let Some(entry) = self.watchers.get_mut(&id) {
                    entry.waiting = Some(reply);
                }
                Vec::new()
            }
            RibCommand::WatchPending(id, reply) => {
                if let Some(entry) = self.watchers.get(&id) {
                    let _ = reply.send(entry.watcher.pending());
                }
                Vec::new()
            }
            RibCommand::Unwatch(id) => {
                if let Some(entry) = self.watchers.remove(&id) {
                    release(&entry.watcher, &mut self.rib, &mut self.free_bits);
                }
                Vec::new()
            }
            RibCommand::Wake | RibCommand::Stop => Vec::new(),
        };
        self.dispatch(outputs);
    }

    fn dispatch(&mut self, outputs: Vec<RibOutput>) {
        self.mark_watchers(&outputs);
        self.send_to_peers(outputs);
    }

    /// Marks the prefixes whose best path changed in every watcher.
    fn mark_watchers(&mut self, outputs: &[RibOutput]) {
        // Entries removed while queued for a watcher: before any new mark.
        for (prefix, marks) in self.rib.take_evicted_watch_marks() {
            for entry in self.watchers.values_mut() {
                entry.watcher.evicted(prefix, marks);
            }
        }
        if self.watchers.is_empty() {
            return;
        }
        for output in outputs {
            let (prefix, hint) = match output {
                RibOutput::BestChanged { prefix, position } => (prefix, *position),
                RibOutput::BestWithdrawn { prefix } => (prefix, Position::default()),
                RibOutput::Send { .. } => continue,
            };
            for entry in self.watchers.values_mut() {
                entry.watcher.mark(*prefix, hint, &mut self.rib);
            }
        }
    }

    fn send_to_peers(&mut self, outputs: Vec<RibOutput>) {
        for output in outputs {
            match output {
                RibOutput::Send { peer, updates } => {
                    let Some(state) = self.peers.get(&peer) else {
                        continue;
                    };
                    if let Some(outbound) = &state.outbound {
                        outbound.push(updates);
                    }
                }
                RibOutput::BestChanged { .. } | RibOutput::BestWithdrawn { .. } => {}
            }
        }
    }

    /// Answers the watchers that asked for a chunk and have one; forgets those whose client
    /// left (the `WatchHandle`'s `Unwatch` also does, this is for a request dropped midway).
    fn serve_watchers(&mut self) {
        let Actor {
            rib,
            watchers,
            free_bits,
            ..
        } = self;
        watchers.retain(|_, entry| {
            let Some(reply) = entry.waiting.take() else {
                return true;
            };
            let keep = !reply.is_closed()
                && match entry.watcher.take(WATCH_CHUNK, rib) {
                    Some(chunk) => reply.send(chunk).is_ok(),
                    None => {
                        entry.waiting = Some(reply);
                        true
                    }
                };
            if !keep {
                release(&entry.watcher, rib, free_bits);
            }
            keep
        });
    }
}
