//! What the IP pools ask of this node's dataplane besides pod routes: the VXLAN tunnel endpoint
//! (address and MAC on the Node, `vxlan::tunnel`) and manul's nftables table (NAT outgoing for
//! pools with natOutgoing, VXLAN accepted only from known nodes). One task, aborted when the
//! `PoolDataplane` is dropped:
//!
//! ```text
//!   datastore watches (Node, IPPool, BlockAffinity)   every RESYNC
//!        └──────────────┬────────────────────────────────┘
//!                       v
//!   reconcile_tunnel ─> read Nodes, pools ─> nft_state() (pure) ─> NftApplier ─> nft -f
//!                                        └─> the pods' MTU overhead (50 while a pool uses VXLAN)
//! ```
//!
//! I/O through the Datastore trait and the `Nft` trait.

pub mod desired;

use std::{sync::Arc, time::Duration};

use manul_store::{Datastore, DatastoreExt, EncapsulationMode, IpPool, Kind, Node};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::{info, warn};

pub use desired::nft_state;

use crate::{
    endpoint::Endpoints,
    nft::{Nft, NftApplier, NftOutcome},
    vxlan::{VXLAN_OVERHEAD, reconcile_tunnel},
};

/// How often the task checks everything even without a change (a table deleted behind its
/// back comes back within this time).
const RESYNC: Duration = Duration::from_secs(10);
/// Wait after a change before reading, so a burst of changes is one pass.
const DEBOUNCE: Duration = Duration::from_millis(50);

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

/// Runs one pass now (so that the first pods get the right MTU), then starts the task.
pub async fn start(endpoints: Arc<Endpoints>, nft: Arc<dyn Nft>) -> PoolDataplane {
    let store = endpoints.store();
    let changed = Arc::new(Notify::new());
    let mut tasks: Vec<JoinHandle<()>> = [Kind::Node, Kind::IPPool, Kind::BlockAffinity]
        .into_iter()
        .map(|kind| {
            tokio::spawn(crate::watch::notify_on_change(
                store.clone(),
                kind,
                String::new(),
                changed.clone(),
            ))
        })
        .collect();
    let mut task = PoolTask {
        store,
        node: endpoints.node().to_string(),
        endpoints,
        nft: NftApplier::new(nft),
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
    node: String,
    endpoints: Arc<Endpoints>,
    nft: NftApplier,
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

    async fn pass(&mut self) -> Result<(), String> {
        let pools: Vec<IpPool> = self
            .endpoints
            .ipam()
            .pools()
            .await
            .map_err(|error| error.to_string())?;
        let tunnel = match reconcile_tunnel(&self.store, &self.node, &pools).await {
            Ok(tunnel) => tunnel,
            Err(error) => {
                warn!(%error, "cannot reconcile this node's VXLAN tunnel address");
                None
            }
        };
        // After the tunnel reconcile: it may have just written this node's Node.
        let nodes: Vec<Node> = self
            .store
            .list_resources::<Node>("")
            .await
            .map_err(|error| error.to_string())?
            .into_iter()
            .map(|node| node.value)
            .collect();
        let vxlan_in_use = pools.iter().any(|pool| {
            pool.cidr.addr().is_ipv4()
                && !pool.disabled
                && pool.vxlan_mode != EncapsulationMode::Never
        });
        self.endpoints
            .set_encapsulation_overhead(if vxlan_in_use { VXLAN_OVERHEAD } else { 0 });
        let state = nft_state(&self.node, &nodes, &pools, tunnel.is_some());
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
