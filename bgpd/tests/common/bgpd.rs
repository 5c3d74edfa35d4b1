//! manul-bgpd in a lab: starting it from a TOML text, its API client, polling ListPeers until
//! a condition holds (with a deadline), and a WatchBestPaths follower whose state tests wait
//! on. Does I/O (the daemon process, its Unix socket).

use std::{collections::BTreeMap, path::Path, time::Instant};

use anyhow::{Context, Result, bail};
use manul_bgpd::daemon::api::connect;
use manul_proto::bgpd::{self as proto, BestPath, PeerStatus};
use tokio::sync::watch;
use tokio_stream::StreamExt;

use super::{DEADLINE, Lab, Node, POLL};

pub type Client = proto::bgpd_client::BgpdClient<tonic::transport::Channel>;

/// Starts manul-bgpd in `node` with `config` (TOML) and returns its API client. Logs at
/// debug level, or as MANUL_INTEROP_BGPD_LOG says.
pub async fn start(lab: &mut Lab, name: &str, node: &Node, config: &str) -> Result<Client> {
    let config = lab.write(&format!("{name}.toml"), config)?;
    let socket = lab.path(&format!("{name}.sock"));
    let level = std::env::var("MANUL_INTEROP_BGPD_LOG");
    let level = level.as_deref().unwrap_or("info,manul_bgpd=debug");
    let args = [
        "--config",
        config.to_str().context("path")?,
        "--socket",
        socket.to_str().context("path")?,
        "--log-level",
        level,
    ];
    lab.spawn(
        name,
        node,
        Path::new(env!("CARGO_BIN_EXE_manul-bgpd")),
        &args,
    )?;
    let start = Instant::now();
    loop {
        if socket.exists()
            && let Ok(client) = connect(&socket).await
        {
            return Ok(client);
        }
        if start.elapsed() > DEADLINE {
            bail!("no API on {}", socket.display());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The status of the peer at `address`.
pub async fn peer(client: &mut Client, address: &str) -> Result<PeerStatus> {
    let peers = client
        .list_peers(proto::ListPeersRequest {
            address: address.to_string(),
        })
        .await?
        .into_inner()
        .peers;
    peers.into_iter().next().context("peer not listed")
}

/// Polls ListPeers until the peer at `address` satisfies `ready` (fails after `DEADLINE`).
pub async fn wait_peer(
    client: &mut Client,
    address: &str,
    what: &str,
    mut ready: impl FnMut(&PeerStatus) -> bool,
) -> Result<PeerStatus> {
    let start = Instant::now();
    loop {
        let status = peer(client, address).await?;
        if ready(&status) {
            return Ok(status);
        }
        if start.elapsed() > DEADLINE {
            bail!("peer {address}: {what} did not happen in {DEADLINE:?}: {status:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

pub fn established(status: &PeerStatus) -> bool {
    status.state == "Established"
}

/// What a WatchBestPaths stream has shown so far.
#[derive(Clone, Debug, Default)]
pub struct PathState {
    /// The current best path of each prefix.
    pub best: BTreeMap<String, BestPath>,
    /// Every prefix withdrawn since the watch began, in order.
    pub withdrawn: Vec<String>,
    pub snapshot_done: bool,
    /// Why the stream ended, if it did.
    pub ended: Option<String>,
}

/// Follows WatchBestPaths in a task (aborted on drop).
pub struct Paths {
    state: watch::Receiver<PathState>,
    task: tokio::task::JoinHandle<()>,
}

impl Paths {
    pub async fn watch(client: &mut Client) -> Result<Paths> {
        let mut stream = client
            .watch_best_paths(proto::WatchBestPathsRequest {})
            .await?
            .into_inner();
        let (tx, state) = watch::channel(PathState::default());
        let task = tokio::spawn(async move {
            let ended = loop {
                match stream.next().await {
                    None => break "end of stream".to_string(),
                    Some(Err(status)) => break status.to_string(),
                    Some(Ok(mut batch)) => tx.send_modify(|state| {
                        batch.resolve_shared();
                        for path in batch.paths {
                            if path.withdrawn {
                                state.best.remove(&path.prefix);
                                state.withdrawn.push(path.prefix);
                            } else {
                                state.best.insert(path.prefix.clone(), path);
                            }
                        }
                        state.snapshot_done |= batch.snapshot_done;
                    }),
                }
            };
            tx.send_modify(|state| state.ended = Some(ended));
        });
        let mut paths = Paths { state, task };
        paths
            .wait("the snapshot", |state| state.snapshot_done)
            .await?;
        Ok(paths)
    }

    pub fn now(&self) -> PathState {
        self.state.borrow().clone()
    }

    /// Waits until the state satisfies `ready` (fails after `DEADLINE` or if the stream ends).
    pub async fn wait(
        &mut self,
        what: &str,
        mut ready: impl FnMut(&PathState) -> bool,
    ) -> Result<PathState> {
        let wait = self
            .state
            .wait_for(|state| ready(state) || state.ended.is_some());
        let outcome = match tokio::time::timeout(DEADLINE, wait).await {
            Ok(Ok(state)) => Ok(state.clone()),
            Ok(Err(_)) => Err(format!("watcher gone before {what}")),
            Err(_) => Err(format!("{what} did not happen in {DEADLINE:?}")),
        };
        match outcome {
            Ok(state) if state.ended.is_none() => Ok(state),
            Ok(state) => bail!("best paths: stream ended before {what}: {state:?}"),
            Err(error) => bail!("best paths: {error}: {:?}", *self.state.borrow()),
        }
    }

    /// Waits for the best path of `prefix` and returns it.
    pub async fn wait_prefix(&mut self, prefix: &str) -> Result<BestPath> {
        let state = self
            .wait(&format!("{prefix} arriving"), |state| {
                state.best.contains_key(prefix)
            })
            .await?;
        Ok(state.best[prefix].clone())
    }
}

impl Drop for Paths {
    fn drop(&mut self) {
        self.task.abort();
    }
}
