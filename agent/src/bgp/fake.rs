//! A recording, in-memory fake of manul-bgpd's API for the agent's unit tests: keeps global
//! settings, peers (echoed as bgpd does: no password) and prefixes, records every call, can
//! "restart" (forget everything), and serves best-path streams fed by the test. No I/O.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use manul_proto::bgpd as proto;
use tokio::sync::mpsc;

use super::bgpd_api::{BestPathStream, BgpdApi, BgpdError};

#[derive(Default)]
pub struct FakeBgpd {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<String>,
    down: bool,
    global: Option<proto::Global>,
    peers: BTreeMap<String, proto::Peer>,
    peer_states: BTreeMap<String, (String, u64)>,
    prefixes: BTreeMap<String, proto::OriginatedPrefix>,
    streams: Vec<mpsc::UnboundedSender<Result<proto::BestPathBatch, BgpdError>>>,
}

impl FakeBgpd {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call(&self, line: String) -> Result<MutexGuard<'_, FakeState>, BgpdError> {
        let mut state = self.lock();
        if state.down {
            return Err(BgpdError::Unreachable {
                socket: "fake".into(),
                cause: "down".into(),
            });
        }
        state.calls.push(line);
        Ok(state)
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// A restart: everything is forgotten and open streams end.
    pub fn restart(&self) {
        let mut state = self.lock();
        state.global = None;
        state.peers.clear();
        state.prefixes.clear();
        state.streams.clear();
    }

    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
        if down {
            self.lock().streams.clear();
        }
    }

    pub fn set_peer_state(&self, address: &str, state: &str, uptime_seconds: u64) {
        self.lock()
            .peer_states
            .insert(address.to_string(), (state.to_string(), uptime_seconds));
    }

    /// Sends a batch to every open stream.
    pub fn send(&self, batch: proto::BestPathBatch) {
        self.lock()
            .streams
            .retain(|stream| stream.send(Ok(batch.clone())).is_ok());
    }

    pub fn open_streams(&self) -> usize {
        self.lock().streams.len()
    }
}

#[async_trait::async_trait]
impl BgpdApi for FakeBgpd {
    async fn get_global(&self) -> Result<Option<proto::Global>, BgpdError> {
        Ok(self.call("get_global".into())?.global.clone())
    }

    async fn set_global(&self, global: proto::Global) -> Result<(), BgpdError> {
        let mut state = self.call(format!("set_global {}", global.router_id))?;
        state.global = Some(global);
        Ok(())
    }

    async fn list_peers(&self) -> Result<Vec<proto::PeerStatus>, BgpdError> {
        let state = self.call("list_peers".into())?;
        Ok(state
            .peers
            .values()
            .map(|peer| {
                let (session, uptime) = state
                    .peer_states
                    .get(&peer.address)
                    .cloned()
                    .unwrap_or(("Active".into(), 0));
                proto::PeerStatus {
                    peer: Some(proto::Peer {
                        md5_password: String::new(),
                        ..peer.clone()
                    }),
                    state: session,
                    uptime_seconds: uptime,
                    ..Default::default()
                }
            })
            .collect())
    }

    async fn add_peer(&self, peer: proto::Peer) -> Result<(), BgpdError> {
        let mut state = self.call(format!("add_peer {}", peer.address))?;
        state.peers.insert(peer.address.clone(), peer);
        Ok(())
    }

    async fn update_peer(&self, peer: proto::Peer) -> Result<(), BgpdError> {
        let mut state = self.call(format!("update_peer {}", peer.address))?;
        state.peers.insert(peer.address.clone(), peer);
        Ok(())
    }

    async fn delete_peer(&self, address: String) -> Result<(), BgpdError> {
        let mut state = self.call(format!("delete_peer {address}"))?;
        state.peers.remove(&address);
        Ok(())
    }

    async fn list_prefixes(&self) -> Result<Vec<proto::OriginatedPrefix>, BgpdError> {
        Ok(self
            .call("list_prefixes".into())?
            .prefixes
            .values()
            .cloned()
            .collect())
    }

    async fn add_prefixes(&self, prefixes: Vec<proto::OriginatedPrefix>) -> Result<(), BgpdError> {
        let names: Vec<&str> = prefixes.iter().map(|p| p.prefix.as_str()).collect();
        let mut state = self.call(format!("add_prefixes {}", names.join(" ")))?;
        for prefix in prefixes {
            state.prefixes.insert(prefix.prefix.clone(), prefix);
        }
        Ok(())
    }

    async fn delete_prefixes(&self, prefixes: Vec<String>) -> Result<(), BgpdError> {
        let mut state = self.call(format!("delete_prefixes {}", prefixes.join(" ")))?;
        for prefix in prefixes {
            state.prefixes.remove(&prefix);
        }
        Ok(())
    }

    async fn watch_best_paths(&self) -> Result<BestPathStream, BgpdError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.call("watch_best_paths".into())?.streams.push(sender);
        Ok(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(receiver),
        ))
    }
}
