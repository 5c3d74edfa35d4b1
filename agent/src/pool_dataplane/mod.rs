//! What the IP pools ask of this node's dataplane besides pod routes: the VXLAN tunnel endpoint
//! (address and MAC on the Node, `vxlan::tunnel`), vxlan.calico with the routes of remote blocks
//! by pool mode (`vxlan::VxlanStep`), and manul's nftables table (NAT outgoing for pools with
//! natOutgoing, VXLAN accepted only from known nodes). One task, aborted when the
//! `PoolDataplane` is dropped:
//!
//! ```text
//!   mirrors of Nodes and IPAM blocks, watch of IPPools   every RESYNC
//!        └──────────────┬─────────────────────────────────────┘
//!                       v
//!   reconcile_tunnel ─> Nodes and blocks from the mirrors, pools from the store
//!        ├─> vxlan_state() (pure) ─> vxlan.calico, neighbours, FDB ─> route applier (Vxlan)
//!        ├─> nft_state() (pure) ─> NftApplier ─> nft -f
//!        └─> the pods' MTU overhead (50 while a pool uses VXLAN)
//! ```
//!
//! Nodes and blocks come from `watch::Mirror`s, not from a listing per pass: a pass runs on
//! every block change anywhere in the cluster (each pod start may take an address), and
//! listing every block each time made each node's work grow with nodes × pod events.
//!
//! I/O through the Datastore, `Netlink` and `Nft` traits.

pub mod desired;
pub mod vxlan;

use std::{sync::Arc, time::Duration};

use manul_store::{Datastore, DatastoreExt, IpPool, IpamBlock, Kind, Node};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::{info, warn};

pub use desired::nft_state;
pub use vxlan::{VxlanStep, VxlanStepReport};

use crate::{
    endpoint::Endpoints,
    netlink::Netlink,
    nft::{Nft, NftApplier, NftOutcome},
    vxlan::{Family, reconcile_tunnel, tunnel::encapsulates},
    watch::Mirror,
};

/// How often the task checks everything even without a change (a table deleted behind its
/// back comes back within this time).
const RESYNC: Duration = Duration::from_secs(10);
/// Wait after a change before reading, so a burst of changes is one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long the first pass waits for the mirrors' first listing.
const FIRST_LISTING: Duration = Duration::from_secs(5);

/// The running task; dropping it stops it.
pub struct PoolDataplane {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PoolDataplane {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs one pass now (so that the first pods get the right MTU), then starts the task. `bgp`:
/// whether manul-bgpd carries the routes that VXLAN leaves alone.
pub async fn start(
    endpoints: Arc<Endpoints>,
    nft: Arc<dyn Nft>,
    netlink: Arc<dyn Netlink>,
    bgp: bool,
) -> PoolDataplane {
    let store = endpoints.store();
    let changed = Arc::new(Notify::new());
    let mut tasks = vec![tokio::spawn(crate::watch::notify_on_change(
        store.clone(),
        Kind::IPPool,
        String::new(),
        changed.clone(),
    ))];
    let nodes = Mirror::start(store.clone(), changed.clone());
    let blocks = Mirror::start(store.clone(), changed.clone());
    for listed in [
        nodes.wait_listed(FIRST_LISTING).await,
        blocks.wait_listed(FIRST_LISTING).await,
    ] {
        if !listed {
            warn!("the datastore has not answered a listing yet; the first pass waits for it");
        }
    }
    let mut task = PoolTask {
        store,
        nodes,
        blocks,
        node: endpoints.node().to_string(),
        endpoints,
        nft: NftApplier::new(nft),
        vxlan: Family::ALL
            .map(|family| VxlanStep::new(family, netlink.clone(), bgp))
            .into(),
        changed,
    };
    if let Err(error) = task.pass().await {
        warn!(%error, "cannot bring the pools' dataplane up to date; retrying");
    }
    tasks.push(tokio::spawn(task.run()));
    PoolDataplane { tasks }
}

struct PoolTask {
    store: Arc<dyn Datastore>,
    nodes: Mirror<Node>,
    blocks: Mirror<IpamBlock>,
    node: String,
    endpoints: Arc<Endpoints>,
    nft: NftApplier,
    /// One per address family.
    vxlan: Vec<VxlanStep>,
    changed: Arc<Notify>,
}

impl PoolTask {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                _ = self.changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.pass().await {
                warn!(%error, "cannot bring the pools' dataplane up to date; retrying");
            }
        }
    }

    /// One pass over everything.
    async fn pass(&mut self) -> Result<(), String> {
        let pools: Vec<IpPool> = self
            .endpoints
            .ipam()
            .pools()
            .await
            .map_err(|error| error.to_string())?;
        let mut tunnels = Vec::new();
        for family in Family::ALL {
            match reconcile_tunnel(&self.store, &self.node, &pools, family).await {
                Ok(Some(_)) => tunnels.push(family),
                Ok(None) => {}
                Err(error) => {
                    warn!(%error, ?family, "cannot reconcile this node's VXLAN tunnel address")
                }
            }
        }
        let mut nodes: Vec<Node> = self
            .nodes
            .snapshot()
            .ok_or("the Nodes have not been listed yet")?;
        // The tunnel reconcile may have just written this node's Node: the mirror may not
        // have it yet.
        if let Some(own) = self
            .store
            .get_resource::<Node>(&self.node)
            .await
            .map_err(|error| error.to_string())?
        {
            nodes.retain(|node| node.name != self.node);
            nodes.push(own.value);
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
        }
        // One MTU for both families in a pod: the larger overhead of the families in use.
        let overhead = Family::ALL
            .into_iter()
            .filter(|family| pools.iter().any(|pool| encapsulates(pool, *family)))
            .map(Family::overhead)
            .max()
            .unwrap_or(0);
        self.endpoints.set_encapsulation_overhead(overhead);
        let blocks: Vec<IpamBlock> = self
            .blocks
            .snapshot()
            .ok_or("the IPAM blocks have not been listed yet")?;
        for step in &mut self.vxlan {
            let device = step.family().device();
            match step.apply(&self.endpoints, &nodes, &pools, &blocks).await {
                Ok(report) => {
                    for problem in report.problems.iter().take(10) {
                        warn!(%problem, device, "VXLAN");
                    }
                    if report.changed {
                        info!(
                            device,
                            present = report.device,
                            vteps = report.vteps,
                            routes = report.routes,
                            "VXLAN dataplane updated"
                        );
                    }
                }
                Err(error) => {
                    warn!(%error, device, "cannot bring the VXLAN device up to date; retrying")
                }
            }
        }
        let state = nft_state(
            &self.node,
            &nodes,
            &pools,
            tunnels.contains(&Family::V4),
            tunnels.contains(&Family::V6),
        );
        match self.nft.apply(&state).await {
            Ok(NftOutcome::Replaced) => info!(
                masquerade = state.masquerade_pools.len(),
                vxlan = state.vxlan,
                peers = state.vxlan_peers.len(),
                "manul's nftables table replaced"
            ),
            Ok(NftOutcome::Unchanged) => {}
            Err(error) => return Err(error.to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
