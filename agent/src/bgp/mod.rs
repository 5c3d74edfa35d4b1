//! The agent's BGP side: it drives this node's manul-bgpd over bgpd's gRPC socket (bgpd speaks
//! BGP and nothing else; the agent is the only writer of the kernel) and programs what bgpd
//! learns. Two tasks, aborted when the `BgpDriver` is dropped:
//!
//! ```text
//!   mirrors of Node, BGPPeer, BGPConfiguration, IPPool, this node's BlockAffinities and
//!   WorkloadEndpoints (watches; `watch::Mirror`)
//!        │ (any change, or every RESYNC)
//!        v
//!   speaker task: inputs from the mirrors ─> speaker_config() (pure) ─> SpeakerSync ─gRPC─> manul-bgpd
//!        │ RouteContext (originated prefixes, pools)                              │
//!        v                                                                        │
//!   learned-routes task <──────────── WatchBestPaths stream ──────────────────────┘
//!        └─> remote_routes() (pure) ─> RouteApplier, source Bgp ─> kernel
//! ```
//!
//! If bgpd restarts, the speaker task's calls fail, it forgets what bgpd ran and applies
//! everything again; the learned routes stay (stale) until the new stream has them. If the
//! agent restarts, it reads back what bgpd runs and changes only what differs.

pub mod best_paths;
pub mod bgpd_api;
pub mod learned;
pub mod remote_routes;
pub mod speaker_config;
pub mod status;
pub mod sync;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::{path::PathBuf, sync::Arc, time::Duration};

use manul_store::{
    AffinityState, BgpConfiguration, BgpPassword, BgpPeer, BlockAffinity, IpPool, Node, Resource,
    StoreError, WorkloadEndpoint,
};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::{info, warn};

use self::{
    bgpd_api::{BgpdApi, BgpdError},
    learned::{LearnedRoutes, RouteContext},
    speaker_config::{SpeakerConfig, SpeakerInputs, speaker_config},
    status::{BgpStatus, Session},
    sync::{SpeakerSync, SyncReport, display_name},
};
use crate::{endpoint::Endpoints, netlink::Netlink, watch::Mirror};

/// How often the speaker task recomputes and syncs even without a datastore change (and polls
/// bgpd's sessions for readiness and metrics).
const RESYNC: Duration = Duration::from_secs(10);
/// Wait after a change before reading the inputs, so a burst of changes is one sync.
const DEBOUNCE: Duration = Duration::from_millis(50);
const RETRY: Duration = Duration::from_secs(1);
/// How long the start waits for the mirrors' first listing.
const FIRST_LISTING: Duration = Duration::from_secs(5);

/// The running BGP tasks; dropping it stops them.
pub struct BgpDriver {
    tasks: Vec<JoinHandle<()>>,
    bgpd: Arc<dyn BgpdApi>,
    pub status: Arc<BgpStatus>,
}

impl BgpDriver {
    /// This node leaves the cluster (its Node was deleted): stops the tasks, then withdraws
    /// every prefix and removes every peer from bgpd, so that the other nodes and the routers
    /// drop its routes at once instead of keeping them for a graceful-restart time.
    pub async fn leave_cluster(self) -> Result<SyncReport, BgpdError> {
        for task in &self.tasks {
            task.abort();
        }
        SpeakerSync::default()
            .withdraw_all(self.bgpd.as_ref())
            .await
    }
}

impl Drop for BgpDriver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the speaker and learned-routes tasks for `endpoints`' node. Call it before the first
/// reconcile: from here on, gateway routes in the kernel (BGP routes of an earlier run) are
/// kept until bgpd's view is known.
pub async fn start(
    endpoints: Arc<Endpoints>,
    netlink: Arc<dyn Netlink>,
    bgpd: Arc<dyn BgpdApi>,
) -> BgpDriver {
    endpoints
        .dataplane()
        .routes
        .lock()
        .await
        .set_hold_gateway_routes(true);
    let status = Arc::new(BgpStatus::default());
    let changed = Arc::new(Notify::new());
    let (context_sender, context) = tokio::sync::watch::channel(RouteContext {
        restart_time: Duration::from_secs(u64::from(speaker_config::DEFAULT_RESTART_SECONDS)),
        ..Default::default()
    });
    let inputs = SpeakerMirrors::start(&endpoints, &changed).await;
    let mut tasks = Vec::new();
    let bgpd_configured = Arc::new(Notify::new());
    let speaker = SpeakerTask {
        endpoints: endpoints.clone(),
        inputs,
        bgpd: bgpd.clone(),
        changed,
        context: context_sender,
        status: status.clone(),
        bgpd_configured: bgpd_configured.clone(),
    };
    tasks.push(tokio::spawn(speaker.run()));
    let learned = LearnedRoutes {
        bgpd: bgpd.clone(),
        netlink,
        endpoints: endpoints.clone(),
        context,
        status: status.clone(),
        bgpd_configured,
    };
    tasks.push(tokio::spawn(learned.run()));
    BgpDriver {
        tasks,
        bgpd,
        status,
    }
}

/// What the speaker task reads, kept in memory by watches: a pod started on this node or a Node
/// changed elsewhere costs a recomputation, not a listing of every kind from the datastore.
struct SpeakerMirrors {
    nodes: Mirror<Node>,
    peers: Mirror<BgpPeer>,
    configurations: Mirror<BgpConfiguration>,
    pools: Mirror<IpPool>,
    /// This node's block affinities (their names start with the node's).
    affinities: Mirror<BlockAffinity>,
    /// This node's WorkloadEndpoints.
    endpoints: Mirror<WorkloadEndpoint>,
}

impl SpeakerMirrors {
    /// Starts the mirrors; waits a little for their first listing, so the first sync has them.
    async fn start(endpoints: &Endpoints, changed: &Arc<Notify>) -> SpeakerMirrors {
        let store = endpoints.store();
        let node = endpoints.node();
        let mirrors = SpeakerMirrors {
            nodes: Mirror::start(store.clone(), changed.clone()),
            peers: Mirror::start(store.clone(), changed.clone()),
            configurations: Mirror::start(store.clone(), changed.clone()),
            pools: Mirror::start(store.clone(), changed.clone()),
            affinities: Mirror::start_under(store.clone(), format!("{node}-"), changed.clone()),
            endpoints: Mirror::start_under(
                store.clone(),
                WorkloadEndpoint::node_prefix(node),
                changed.clone(),
            ),
        };
        let listed = [
            mirrors.nodes.wait_listed(FIRST_LISTING).await,
            mirrors.peers.wait_listed(FIRST_LISTING).await,
            mirrors.configurations.wait_listed(FIRST_LISTING).await,
            mirrors.pools.wait_listed(FIRST_LISTING).await,
            mirrors.affinities.wait_listed(FIRST_LISTING).await,
            mirrors.endpoints.wait_listed(FIRST_LISTING).await,
        ];
        if listed.contains(&false) {
            warn!("the datastore has not answered a listing yet; the first BGP sync waits for it");
        }
        mirrors
    }
}

/// Every object a mirror holds, or why there is nothing yet.
fn mirrored<T: Resource>(mirror: &Mirror<T>) -> Result<Vec<T>, StoreError> {
    mirror
        .snapshot()
        .ok_or_else(|| StoreError::Backend(format!("the {}s have not been listed yet", T::KIND)))
}

struct SpeakerTask {
    endpoints: Arc<Endpoints>,
    inputs: SpeakerMirrors,
    bgpd: Arc<dyn BgpdApi>,
    changed: Arc<Notify>,
    context: tokio::sync::watch::Sender<RouteContext>,
    status: Arc<BgpStatus>,
    /// Poked when a sync gave bgpd its global settings (the learned-routes task waits for them).
    bgpd_configured: Arc<Notify>,
}

impl SpeakerTask {
    async fn run(self) {
        let mut sync = SpeakerSync::default();
        let mut last_problems = Vec::new();
        let mut ticker = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                _ = self.changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                _ = ticker.tick() => {}
            }
            let desired = match self.desired().await {
                Ok(desired) => desired,
                Err(error) => {
                    warn!(%error, "cannot read the BGP resources; retrying");
                    tokio::time::sleep(RETRY).await;
                    self.changed.notify_one();
                    continue;
                }
            };
            if desired.problems != last_problems {
                for problem in &desired.problems {
                    warn!(%problem, "BGP configuration problem");
                }
                last_problems = desired.problems.clone();
            }
            match sync.sync(self.bgpd.as_ref(), &desired).await {
                Ok(report) => {
                    self.status.set_bgpd_up(true);
                    if report.changed() {
                        info!(?report, "manul-bgpd updated");
                    }
                    if report.global_set {
                        self.bgpd_configured.notify_one();
                    }
                }
                Err(error) => {
                    self.status.set_bgpd_up(false);
                    warn!(%error, "cannot bring manul-bgpd up to date; retrying");
                    tokio::time::sleep(RETRY).await;
                    self.changed.notify_one();
                    continue;
                }
            }
            self.poll_sessions().await;
        }
    }

    async fn desired(&self) -> Result<SpeakerConfig, StoreError> {
        let node = self.endpoints.node();
        let nodes = mirrored(&self.inputs.nodes)?;
        let peers = mirrored(&self.inputs.peers)?;
        let configurations = mirrored(&self.inputs.configurations)?;
        let pools = mirrored(&self.inputs.pools)?;
        let mut affine_blocks: Vec<ipnet::IpNet> = mirrored(&self.inputs.affinities)?
            .into_iter()
            .filter(|affinity| {
                affinity.node == node
                    && !affinity.deleted
                    && affinity.state == AffinityState::Confirmed
            })
            .map(|affinity| affinity.cidr)
            .collect();
        affine_blocks.sort();
        let endpoint_addresses: Vec<_> = mirrored(&self.inputs.endpoints)?
            .into_iter()
            .flat_map(|endpoint| endpoint.ip_networks)
            .map(|network| ipnet::IpNet::from(network.addr()))
            .collect();
        let config = speaker_config(&SpeakerInputs {
            node,
            nodes: &nodes,
            peers: &peers,
            configurations: &configurations,
            pools: &pools,
            affine_blocks: &affine_blocks,
            endpoint_addresses: &endpoint_addresses,
            password: &read_password,
        });
        let restart_time = config
            .peers
            .values()
            .filter_map(|peer| peer.graceful_restart.as_ref())
            .map(|graceful| graceful.restart_time)
            .max()
            .unwrap_or(speaker_config::DEFAULT_RESTART_SECONDS);
        self.context.send_if_modified(|context| {
            let new = RouteContext {
                originated: config.originated(),
                pools: pools.clone(),
                restart_time: Duration::from_secs(u64::from(restart_time)),
            };
            let changed = *context != new;
            *context = new;
            changed
        });
        Ok(config)
    }

    async fn poll_sessions(&self) {
        match self.bgpd.list_peers().await {
            Ok(peers) => {
                let sessions = peers
                    .into_iter()
                    .filter_map(|status| {
                        let peer = status.peer?;
                        Some(Session {
                            address: peer.address,
                            name: display_name(&peer.name).to_string(),
                            state: status.state,
                            prefixes_accepted: status.prefixes_accepted,
                            prefixes_advertised: status.prefixes_advertised,
                        })
                    })
                    .collect();
                self.status.set_sessions(sessions);
            }
            Err(error) => {
                self.status.set_bgpd_up(false);
                warn!(%error, "cannot list manul-bgpd's sessions");
            }
        }
    }
}

/// A BGP password from a file on the node; secrets need the Kubernetes datastore.
fn read_password(password: &BgpPassword) -> Result<String, String> {
    if let Some(path) = &password.file {
        let path = PathBuf::from(path);
        return std::fs::read_to_string(&path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|error| format!("cannot read {}: {error}", path.display()));
    }
    Err(
        "secretKeyRef needs the Kubernetes datastore, which this agent does not use: give password.file instead"
            .into(),
    )
}
