//! The speaker: the one place that changes the daemon's configuration at run time (from the
//! config file at start, then from gRPC). It owns the RIB actor, the listeners and the peer
//! tasks, and turns `config` settings into `fsm::SessionConfig` and `rib::PeerConfig`
//! (RFC 8212 included). Does I/O (binds sockets, spawns tasks).

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
};

use ipnet::IpNet;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Mutex, mpsc},
};
use tracing::{debug, info, warn};

use super::{
    AbortOnDrop,
    convert::{rib_peer_config, session_config},
    held::HeldConnections,
    peer::{self, PeerCommand, PeerHandle, PeerStatus},
    rib_actor::{RibActor, RibCommand, RibHandle, WatchHandle},
    transport::{self, TransportError},
};
use crate::{
    config::{Config, GlobalSettings, PeerSettings, PrefixSettings},
    rib::{LocalConfig, PeerCounters, PeerId},
};

/// Peer tasks by remote address, for the listeners.
type Directory = Arc<RwLock<HashMap<IpAddr, mpsc::UnboundedSender<PeerCommand>>>>;
/// Connections from addresses that are no peer yet (`held`).
type Held = Arc<std::sync::Mutex<HeldConnections<TcpStream>>>;

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("the global settings (ASN, router ID) are not set")]
    NoGlobal,
    #[error("peer {0} already exists")]
    PeerExists(IpAddr),
    #[error("no peer {0}")]
    UnknownPeer(IpAddr),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the RIB is not running")]
    RibStopped,
}

/// A peer as `ListPeers` reports it.
#[derive(Clone, Debug)]
pub struct PeerReport {
    pub settings: Arc<PeerSettings>,
    pub status: PeerStatus,
    pub counters: PeerCounters,
}

struct PeerEntry {
    id: PeerId,
    settings: Arc<PeerSettings>,
    /// None until the global settings exist.
    handle: Option<PeerHandle>,
}

struct Listener {
    socket: Arc<TcpListener>,
    _task: AbortOnDrop,
}

#[derive(Default)]
struct State {
    global: Option<GlobalSettings>,
    rib: Option<RibActor>,
    peers: BTreeMap<IpAddr, PeerEntry>,
    prefixes: BTreeMap<IpNet, PrefixSettings>,
    listeners: Vec<Listener>,
    next_id: u32,
}

#[derive(Default)]
pub struct Speaker {
    state: Mutex<State>,
    directory: Directory,
    held: Held,
}

impl Speaker {
    pub fn new() -> Arc<Speaker> {
        Arc::new(Speaker::default())
    }

    /// Applies a configuration file's contents (the seed; gRPC changes it later).
    pub async fn apply_config(&self, config: Config) -> Result<(), SpeakerError> {
        if let Some(global) = config.global {
            self.set_global(global).await?;
        }
        for peer in config.peers {
            self.add_peer(peer).await?;
        }
        self.add_prefixes(config.prefixes).await
    }

    /// Listens on `addresses` before the global settings exist, so that a peer that connects
    /// before this speaker is configured finds a listener: its connection is held (`held`)
    /// instead of refused, and a refused peer would back off for seconds. `set_global`
    /// replaces these listeners. Does nothing once the global settings exist.
    pub async fn listen_early(&self, addresses: &[SocketAddr]) -> Result<(), SpeakerError> {
        let mut state = self.state.lock().await;
        if state.global.is_some() {
            return Ok(());
        }
        for address in addresses {
            let listener = self.listener(*address)?;
            state.listeners.push(listener);
        }
        Ok(())
    }

    /// A listener on `address` whose connections go to the peers (or are held).
    fn listener(&self, address: SocketAddr) -> Result<Listener, SpeakerError> {
        let socket = Arc::new(transport::listen(address)?);
        info!(%address, "listening");
        let task = tokio::spawn(listen_loop(
            socket.clone(),
            self.directory.clone(),
            self.held.clone(),
        ));
        Ok(Listener {
            socket,
            _task: AbortOnDrop::new(task),
        })
    }

    pub async fn global(&self) -> Option<GlobalSettings> {
        self.state.lock().await.global.clone()
    }

    /// A new ASN, router ID or cluster ID rebuilds the RIB and restarts every session; new
    /// listen addresses rebind the listeners.
    pub async fn set_global(&self, global: GlobalSettings) -> Result<(), SpeakerError> {
        let mut state = self.state.lock().await;
        let old = state.global.clone();
        if old.as_ref() == Some(&global) {
            return Ok(());
        }
        let listen_changed = old.as_ref().is_none_or(|old| {
            (&old.listen_addresses, old.listen_port)
                != (&global.listen_addresses, global.listen_port)
        });
        let rib_changed = old.as_ref().is_none_or(|old| {
            (old.asn, old.router_id, old.cluster_id)
                != (global.asn, global.router_id, global.cluster_id)
        });
        if listen_changed {
            // A listener on an address still wanted is kept (an early one, `listen_early`: its
            // socket cannot be bound twice); the others close.
            let mut old = std::mem::take(&mut state.listeners);
            let mut listeners = Vec::new();
            for address in &global.listen_addresses {
                let address = SocketAddr::new(*address, global.listen_port);
                match old
                    .iter()
                    .position(|listener| listener.socket.local_addr().ok() == Some(address))
                {
                    Some(kept) => listeners.push(old.swap_remove(kept)),
                    None => listeners.push(self.listener(address)?),
                }
            }
            drop(old);
            for entry in state.peers.values() {
                set_md5(&listeners, &entry.settings, true);
            }
            state.listeners = listeners;
        }
        state.global = Some(global.clone());
        if rib_changed {
            info!(asn = global.asn, router_id = %global.router_id, "starting the RIB");
            for entry in state.peers.values_mut() {
                if let Some(handle) = entry.handle.take() {
                    handle.shutdown().await;
                }
            }
            state.rib = Some(RibActor::spawn(LocalConfig {
                asn: global.asn,
                router_id: global.router_id,
                cluster_id: global.cluster_id,
            }));
            let addresses: Vec<IpAddr> = state.peers.keys().copied().collect();
            for address in addresses {
                self.start_peer(&mut state, address);
            }
            let prefixes = state.prefixes.values().cloned().collect();
            if let Some(rib) = &state.rib {
                rib.handle().originate(prefixes);
            }
        }
        Ok(())
    }

    pub async fn add_peer(&self, settings: PeerSettings) -> Result<(), SpeakerError> {
        let mut state = self.state.lock().await;
        let address = settings.address;
        if state.peers.contains_key(&address) {
            return Err(SpeakerError::PeerExists(address));
        }
        state.next_id += 1;
        let entry = PeerEntry {
            id: PeerId(state.next_id),
            settings: Arc::new(settings),
            handle: None,
        };
        set_md5(&state.listeners, &entry.settings, true);
        state.peers.insert(address, entry);
        self.start_peer(&mut state, address);
        Ok(())
    }

    /// Replaces a peer's settings and restarts its session (its received routes are
    /// withdrawn: import policy is applied on receipt, so a new one needs them again).
    pub async fn update_peer(&self, settings: PeerSettings) -> Result<(), SpeakerError> {
        self.delete_peer(settings.address).await?;
        self.add_peer(settings).await
    }

    pub async fn delete_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        let mut state = self.state.lock().await;
        let entry = state
            .peers
            .remove(&address)
            .ok_or(SpeakerError::UnknownPeer(address))?;
        self.directory.write().unwrap().remove(&address);
        set_md5(&state.listeners, &entry.settings, false);
        if let Some(handle) = entry.handle {
            handle.shutdown().await;
        }
        if let Some(rib) = &state.rib {
            rib.handle().send(RibCommand::RemovePeer(entry.id));
        }
        info!(peer = %entry.settings.name, "peer deleted");
        Ok(())
    }

    pub async fn add_prefixes(&self, prefixes: Vec<PrefixSettings>) -> Result<(), SpeakerError> {
        let mut state = self.state.lock().await;
        for prefix in &prefixes {
            state.prefixes.insert(prefix.prefix, prefix.clone());
        }
        if let Some(rib) = &state.rib {
            rib.handle().originate(prefixes);
        }
        Ok(())
    }

    /// Every originated prefix, in prefix order (the map's).
    pub async fn prefixes(&self) -> Vec<PrefixSettings> {
        let state = self.state.lock().await;
        state.prefixes.values().cloned().collect()
    }

    /// Prefixes that were not originated are ignored.
    pub async fn delete_prefixes(&self, prefixes: Vec<IpNet>) -> Result<(), SpeakerError> {
        let mut state = self.state.lock().await;
        let known: Vec<IpNet> = prefixes
            .into_iter()
            .filter(|prefix| state.prefixes.remove(prefix).is_some())
            .collect();
        if let Some(rib) = &state.rib {
            rib.handle().withdraw(known);
        }
        Ok(())
    }

    pub async fn list_peers(&self, only: Option<IpAddr>) -> Result<Vec<PeerReport>, SpeakerError> {
        let state = self.state.lock().await;
        let entries: Vec<&PeerEntry> = state
            .peers
            .values()
            .filter(|entry| only.is_none_or(|a| a == entry.settings.address))
            .collect();
        if let Some(address) = only
            && entries.is_empty()
        {
            return Err(SpeakerError::UnknownPeer(address));
        }
        let counters = match &state.rib {
            Some(rib) => rib
                .handle()
                .counters(entries.iter().map(|entry| entry.id).collect())
                .await
                .ok_or(SpeakerError::RibStopped)?,
            None => vec![PeerCounters::default(); entries.len()],
        };
        Ok(entries
            .iter()
            .zip(counters)
            .map(|(entry, counters)| PeerReport {
                settings: entry.settings.clone(),
                status: entry
                    .handle
                    .as_ref()
                    .map_or_else(idle_status, |h| h.status.lock().unwrap().clone()),
                counters,
            })
            .collect())
    }

    /// The best paths: snapshot, `snapshot_done`, then changes (see `rib_actor`).
    pub async fn watch_best_paths(&self) -> Result<WatchHandle, SpeakerError> {
        Ok(self.rib().await?.watch())
    }

    /// The RIB's handle, for listings that page through it without holding the speaker.
    pub async fn rib(&self) -> Result<RibHandle, SpeakerError> {
        let state = self.state.lock().await;
        Ok(state
            .rib
            .as_ref()
            .ok_or(SpeakerError::NoGlobal)?
            .handle()
            .clone())
    }

    /// Ceases every session and stops the listeners and the RIB.
    pub async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        state.listeners.clear();
        for entry in state.peers.values_mut() {
            if let Some(handle) = entry.handle.take() {
                handle.shutdown().await;
            }
        }
        state.rib = None;
    }

    /// Starts the task of a known peer when the RIB runs.
    fn start_peer(&self, state: &mut State, address: IpAddr) {
        let (Some(global), Some(rib)) = (&state.global, &state.rib) else {
            return;
        };
        let Some(entry) = state.peers.get_mut(&address) else {
            return;
        };
        let settings = entry.settings.clone();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let config = rib_peer_config(&settings, global);
        rib.handle().send(RibCommand::AddPeer {
            id: entry.id,
            config,
        });
        let handle = peer::spawn(
            entry.id,
            settings.clone(),
            session_config(&settings, global),
            rib.handle(),
            commands.clone(),
            commands_rx,
        );
        entry.handle = Some(handle);
        self.directory
            .write()
            .unwrap()
            .insert(address, commands.clone());
        debug!(peer = %settings.name, "peer started");
        // A connection it made before it was configured here (see `held`).
        if settings.md5_password.is_none() && !settings.ttl_security {
            let stream = self
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(address, std::time::Instant::now());
            if let Some(stream) = stream {
                debug!(peer = %settings.name, "taking the connection it made before it was added");
                let _ = commands.send(PeerCommand::Accepted(stream));
            }
        }
    }
}

fn idle_status() -> PeerStatus {
    PeerStatus {
        state: crate::fsm::State::Idle,
        established_at: None,
        last_error: Some("waiting for the global settings".into()),
        negotiated: None,
        established_transitions: 0,
    }
}

/// Installs (or removes) the peer's MD5 key on every listener of its address family.
fn set_md5(listeners: &[Listener], settings: &PeerSettings, install: bool) {
    let Some(password) = &settings.md5_password else {
        return;
    };
    let password = install.then_some(password.as_str());
    for listener in listeners {
        if let Err(error) =
            transport::set_listener_md5(&listener.socket, settings.address, password)
        {
            warn!(peer = %settings.name, %error, "cannot set the MD5 key on a listener");
        }
    }
}

/// Hands each accepted connection to the peer with that address; holds the others for a
/// moment (`held`: the peer may be added right after).
async fn listen_loop(listener: Arc<TcpListener>, directory: Directory, held: Held) {
    let held_map = || {
        held.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut sweep = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = sweep.tick() => {
                held_map().expire(std::time::Instant::now());
                continue;
            }
        };
        match accepted {
            Ok((stream, remote)) => {
                let address = transport::canonical(remote.ip());
                let peer = directory.read().unwrap().get(&address).cloned();
                match peer {
                    Some(peer) => {
                        let _ = peer.send(PeerCommand::Accepted(stream));
                    }
                    None => {
                        debug!(%remote, "connection from an address that is no peer: held");
                        held_map().hold(address, stream, std::time::Instant::now());
                    }
                }
            }
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
