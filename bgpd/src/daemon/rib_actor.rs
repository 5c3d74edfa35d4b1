//! The RIB actor: one OS thread owning the `rib::Rib`, fed by `RibHandle`s over an unbounded
//! channel, sending each peer its updates and each best-path watcher its changes. Does I/O
//! only in the sense of threads and channels.
//!
//! A thread, not a tokio task: `peer_up` of a peer with a million prefixes computes for about
//! a second, and that must not stall the two runtime workers that move the bytes. Received
//! UPDATEs come in batches, and a semaphore bounds the batches in flight (a peer task waits for
//! a permit, which is its back-pressure towards TCP), so the channel can stay unbounded and the
//! owner's `Drop` can always deliver `Stop`.

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::{debug, trace, warn};

use super::peer::PeerCommand;
use crate::{
    config::PrefixSettings,
    message::{Family, PathAttributes, Update},
    rib::{LocalConfig, PeerConfig, PeerCounters, PeerId, Rib, RibOutput, SessionInfo},
};

/// Batches of received updates allowed in flight to the RIB, over all peers.
const RECEIVE_PERMITS: usize = 64;
/// Best-path changes per `WatchItem::Paths` of a snapshot.
const SNAPSHOT_CHUNK: usize = 8192;

/// One best-path change: `None` is a withdrawal.
#[derive(Clone, Debug)]
pub struct BestEvent {
    pub prefix: IpNet,
    pub best: Option<(Vec<IpAddr>, Arc<PathAttributes>)>,
}

#[derive(Clone, Debug)]
pub enum WatchItem {
    Paths(Arc<Vec<BestEvent>>),
    SnapshotDone,
}

pub(crate) enum RibCommand {
    AddPeer {
        id: PeerId,
        config: PeerConfig,
        outbound: mpsc::UnboundedSender<PeerCommand>,
    },
    RemovePeer(PeerId),
    /// The session came up: `local_address` is our end of it (the next hop we advertise).
    PeerUp {
        id: PeerId,
        generation: u64,
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
    Watch(mpsc::UnboundedSender<WatchItem>),
    Stop,
}

/// A cloneable way to talk to the RIB actor.
#[derive(Clone)]
pub struct RibHandle {
    tx: mpsc::UnboundedSender<RibCommand>,
    permits: Arc<Semaphore>,
}

/// The owner: stops the actor when dropped (after the command it is running).
pub struct RibActor {
    handle: RibHandle,
}

impl RibActor {
    pub fn spawn(local: LocalConfig) -> RibActor {
        let (tx, rx) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("bgpd-rib".into())
            .spawn(move || run(Rib::new(local), rx));
        if let Err(error) = spawned {
            // Without a thread the handle's sends fail and every caller sees "RIB stopped".
            warn!(%error, "cannot start the RIB thread");
        }
        RibActor {
            handle: RibHandle {
                tx,
                permits: Arc::new(Semaphore::new(RECEIVE_PERMITS)),
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

    /// A stream of best-path changes: the snapshot, `SnapshotDone`, then changes.
    pub fn watch(&self) -> mpsc::UnboundedReceiver<WatchItem> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.send(RibCommand::Watch(tx));
        rx
    }

    pub fn originate(&self, prefixes: Vec<PrefixSettings>) {
        self.send(RibCommand::Originate(prefixes));
    }

    pub fn withdraw(&self, prefixes: Vec<IpNet>) {
        self.send(RibCommand::Withdraw(prefixes));
    }
}

struct Peer {
    config: PeerConfig,
    outbound: mpsc::UnboundedSender<PeerCommand>,
    /// The session generation the RIB's `Send`s belong to (0: down).
    generation: u64,
    /// Updates of this generation not yet sent (flushed once per batch of commands).
    pending: Vec<Update>,
}

struct Actor {
    rib: Rib,
    peers: HashMap<PeerId, Peer>,
    watchers: Vec<mpsc::UnboundedSender<WatchItem>>,
}

fn run(rib: Rib, mut rx: mpsc::UnboundedReceiver<RibCommand>) {
    let mut actor = Actor {
        rib,
        peers: HashMap::new(),
        watchers: Vec::new(),
    };
    while let Some(command) = rx.blocking_recv() {
        if matches!(command, RibCommand::Stop) {
            break;
        }
        let mut best = Vec::new();
        actor.handle(command, &mut best);
        // Coalesce whatever else is already queued, so watchers get large batches.
        while best.len() < SNAPSHOT_CHUNK {
            match rx.try_recv() {
                Ok(RibCommand::Stop) => return,
                Ok(command) => actor.handle(command, &mut best),
                Err(_) => break,
            }
        }
        actor.flush_sends();
        actor.publish(best);
    }
    debug!("RIB actor stopped");
}

impl Actor {
    fn handle(&mut self, command: RibCommand, best: &mut Vec<BestEvent>) {
        let outputs = match command {
            RibCommand::AddPeer {
                id,
                config,
                outbound,
            } => {
                self.rib.add_peer(id, config.clone());
                self.peers.insert(
                    id,
                    Peer {
                        config,
                        outbound,
                        generation: 0,
                        pending: Vec::new(),
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
                generation,
                info,
                local_address,
            } => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                peer.generation = generation;
                peer.pending.clear();
                if peer.config.local_address != local_address {
                    peer.config.local_address = local_address;
                    self.rib.add_peer(id, peer.config.clone());
                }
                self.rib.peer_up(id, info)
            }
            RibCommand::PeerDown { id, keep_stale } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.generation = 0;
                    peer.pending.clear();
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
                    outputs.extend(self.rib.receive(id, update));
                }
                trace!(?id, count, outputs = outputs.len(), "received updates");
                outputs
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
            RibCommand::Watch(watcher) => {
                // Changes computed before the snapshot go out first, to the other watchers.
                self.publish(std::mem::take(best));
                self.snapshot(watcher);
                Vec::new()
            }
            RibCommand::Stop => Vec::new(),
        };
        self.dispatch(outputs, best);
    }

    fn dispatch(&mut self, outputs: Vec<RibOutput>, best: &mut Vec<BestEvent>) {
        for output in outputs {
            match output {
                RibOutput::Send { peer, updates } => {
                    let Some(state) = self.peers.get(&peer) else {
                        continue;
                    };
                    if state.generation == 0 || updates.is_empty() {
                        continue;
                    }
                    let Some(state) = self.peers.get_mut(&peer) else {
                        continue;
                    };
                    for update in updates {
                        super::batching::push_merged(&mut state.pending, update);
                    }
                }
                RibOutput::BestChanged {
                    prefix,
                    next_hops,
                    attributes,
                } => {
                    best.push(BestEvent {
                        prefix,
                        best: Some((next_hops, attributes)),
                    });
                }
                RibOutput::BestWithdrawn { prefix } => best.push(BestEvent { prefix, best: None }),
            }
        }
    }

    /// Sends each peer what accumulated for it (merged, see `batching`).
    fn flush_sends(&mut self) {
        for peer in self.peers.values_mut() {
            if peer.pending.is_empty() {
                continue;
            }
            let updates = std::mem::take(&mut peer.pending);
            if peer.generation != 0 {
                let command = PeerCommand::Outbound {
                    generation: peer.generation,
                    updates,
                };
                let _ = peer.outbound.send(command);
            }
        }
    }

    fn publish(&mut self, best: Vec<BestEvent>) {
        if best.is_empty() || self.watchers.is_empty() {
            return;
        }
        let batch = Arc::new(best);
        self.watchers
            .retain(|watcher| watcher.send(WatchItem::Paths(batch.clone())).is_ok());
    }

    /// The snapshot goes into the watcher's channel before any later change can: the actor is
    /// single-threaded, so the stream has no gap and no duplicate.
    fn snapshot(&mut self, watcher: mpsc::UnboundedSender<WatchItem>) {
        let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK);
        for (prefix, next_hops, attributes) in self.rib.best_paths() {
            chunk.push(BestEvent {
                prefix,
                best: Some((next_hops, attributes)),
            });
            if chunk.len() == SNAPSHOT_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(SNAPSHOT_CHUNK));
                let _ = watcher.send(WatchItem::Paths(Arc::new(full)));
            }
        }
        if !chunk.is_empty() {
            let _ = watcher.send(WatchItem::Paths(Arc::new(chunk)));
        }
        if watcher.send(WatchItem::SnapshotDone).is_ok() {
            self.watchers.push(watcher);
        }
    }
}
