//! What the IP pools ask of this node's dataplane besides pod routes: the VXLAN tunnel endpoint
//! (address and MAC on the Node, `vxlan::tunnel`), vxlan.calico with the routes of remote blocks
//! by pool mode (`vxlan::VxlanStep`), and manul's nftables table (NAT outgoing for pools with
//! natOutgoing, VXLAN accepted only from known nodes). One task, aborted when the
//! `PoolDataplane` is dropped:
//!
//! ```text
//!   mirrors of IPPools, Nodes and IPAM blocks (watches)      every RESYNC
//!        │ a change: inputs (pools, Nodes, block owners)          │
//!        │ as the last clean pass saw them? ──yes──> nothing      │
//!        └──────────────┬ no ─────────────────────────────────────┘
//!                       v
//!   reconcile_tunnel ─> this node's tunnel address on its Node
//!        ├─> vxlan_state() (pure) ─> vxlan.calico, neighbours, FDB ─> route applier (Vxlan)
//!        ├─> nft_state() (pure) ─> NftApplier ─> nft -f
//!        └─> the pods' MTU overhead (50 while a pool uses VXLAN)
//! ```
//!
//! Pools, Nodes and blocks come from `watch::Mirror`s, not from a listing per pass, and a
//! change wakes the task on every block change anywhere in the cluster (each pod start takes an
//! address). Of the blocks a pass needs only their owners and the borrowed addresses, which
//! such a change leaves as they were: the task compares the inputs with those of the last pass
//! that left nothing to retry and does nothing when they are equal, so a pod start costs the
//! other nodes a comparison, not a pass (a dump of the host's addresses, netlink reads, an
//! `nft list` process). The pass every RESYNC checks everything regardless.
//!
//! I/O through the Datastore, `Netlink` and `Nft` traits.

pub mod desired;
pub mod vxlan;

use std::{sync::Arc, time::Duration};

use manul_store::{Datastore, DatastoreExt, IpPool, IpamBlock, Node};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::{info, warn};

pub use desired::nft_state;
pub use vxlan::{VxlanStep, VxlanStepReport};

use crate::{
    endpoint::Endpoints,
    netlink::Netlink,
    nft::{Nft, NftApplier, NftOutcome},
    vxlan::{
        Family,
        desired::{BlockOwners, block_owners},
        reconcile_tunnel,
        tunnel::encapsulates,
    },
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
    /// The task owns the mirrors: aborting it stops their watches too.
    task: JoinHandle<()>,
}

impl Drop for PoolDataplane {
    fn drop(&mut self) {
        self.task.abort();
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
    let pools = Mirror::start(store.clone(), changed.clone());
    let nodes = Mirror::start(store.clone(), changed.clone());
    let blocks = Mirror::start(store.clone(), changed.clone());
    for listed in [
        pools.wait_listed(FIRST_LISTING).await,
        nodes.wait_listed(FIRST_LISTING).await,
        blocks.wait_listed(FIRST_LISTING).await,
    ] {
        if !listed {
            warn!("the datastore has not answered a listing yet; the first pass waits for it");
        }
    }
    let mut task = PoolTask {
        store,
        pools,
        nodes,
        blocks,
        node: endpoints.node().to_string(),
        endpoints,
        nft: NftApplier::new(nft),
        vxlan: Family::ALL
            .map(|family| VxlanStep::new(family, netlink.clone(), bgp))
            .into(),
        changed,
        last_clean: None,
    };
    if let Err(error) = task.pass().await {
        warn!(%error, "cannot bring the pools' dataplane up to date; retrying");
    }
    PoolDataplane {
        task: tokio::spawn(task.run()),
    }
}

struct PoolTask {
    store: Arc<dyn Datastore>,
    pools: Mirror<IpPool>,
    nodes: Mirror<Node>,
    blocks: Mirror<IpamBlock>,
    node: String,
    endpoints: Arc<Endpoints>,
    nft: NftApplier,
    /// One per address family.
    vxlan: Vec<VxlanStep>,
    changed: Arc<Notify>,
    /// The inputs of the last pass that left nothing to retry.
    last_clean: Option<PassInputs>,
}

/// What a pass reads of the datastore. A wake-up that finds them as the last clean pass left
/// them has no kernel work to do: the usual wake-up, an address taken or freed inside a block
/// by the block's own node (every pod start or stop in the cluster), changes none of them.
#[derive(Clone, Debug, PartialEq)]
struct PassInputs {
    pools: Vec<IpPool>,
    nodes: Vec<Node>,
    owners: BlockOwners,
}

impl PoolTask {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(RESYNC);
        loop {
            let resync = tokio::select! {
                _ = self.changed.notified() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    false
                }
                _ = ticker.tick() => true,
            };
            let result = if resync {
                self.pass().await
            } else {
                self.pass_if_changed().await
            };
            if let Err(error) = result {
                warn!(%error, "cannot bring the pools' dataplane up to date; retrying");
            }
        }
    }

    /// The pools, Nodes and block owners as the mirrors hold them.
    fn inputs(&self) -> Result<PassInputs, String> {
        Ok(PassInputs {
            pools: self
                .pools
                .snapshot()
                .ok_or("the IP pools have not been listed yet")?,
            nodes: self
                .nodes
                .snapshot()
                .ok_or("the Nodes have not been listed yet")?,
            owners: self
                .blocks
                .read(|blocks| block_owners(blocks))
                .ok_or("the IPAM blocks have not been listed yet")?,
        })
    }

    /// A pass when the inputs differ from the last clean pass's (or it left work to retry).
    async fn pass_if_changed(&mut self) -> Result<(), String> {
        let inputs = self.inputs()?;
        if self.last_clean.as_ref() == Some(&inputs) {
            return Ok(());
        }
        self.pass_with(inputs).await
    }

    /// One pass over everything, whatever changed: the kernel and the nftables table are
    /// checked too (something deleted behind the agent's back comes back).
    async fn pass(&mut self) -> Result<(), String> {
        let inputs = self.inputs()?;
        self.pass_with(inputs).await
    }

    async fn pass_with(&mut self, inputs: PassInputs) -> Result<(), String> {
        self.last_clean = None;
        let mut clean = true;
        let pools = &inputs.pools;
        let mut tunnels = Vec::new();
        for family in Family::ALL {
            match reconcile_tunnel(&self.store, &self.node, pools, family).await {
                Ok(Some(_)) => tunnels.push(family),
                Ok(None) => {}
                Err(error) => {
                    clean = false;
                    warn!(%error, ?family, "cannot reconcile this node's VXLAN tunnel address")
                }
            }
        }
        let mut nodes = inputs.nodes.clone();
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
        for step in &mut self.vxlan {
            let device = step.family().device();
            match step
                .apply(&self.endpoints, &nodes, pools, &inputs.owners)
                .await
            {
                Ok(report) => {
                    clean &= report.problems.is_empty();
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
                    clean = false;
                    warn!(%error, device, "cannot bring the VXLAN device up to date; retrying")
                }
            }
        }
        let state = nft_state(
            &self.node,
            &nodes,
            pools,
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
        if clean {
            self.last_clean = Some(inputs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
