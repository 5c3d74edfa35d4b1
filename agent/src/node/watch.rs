//! The Node deletion watcher every agent runs: it lists the Nodes, watches them from the list's
//! revision, and for a Node deleted (seen as a watch event, missing from a re-list after the
//! watch broke, or deleted while no agent ran: block affinities naming a node that has no Node
//! at a list) releases that node's IPAM blocks and affinities (`Ipam::release_node`, safe
//! when every agent does it at once). When the deleted Node is this agent's own, it returns
//! `NodeError::OwnNodeDeleted`: an operator removed the node, and the agent exits rather than
//! re-register it (as calico/node does). It sets the datastore readiness condition while the
//! watch runs. I/O through the `Datastore` trait only.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::StreamExt;
use manul_ipam::Ipam;
use manul_store::{BlockAffinity, Datastore, DatastoreExt, Kind, Node, WatchEvent};
use tracing::{error, info, warn};

use super::NodeError;
use crate::health::{DATASTORE_CONDITION, Readiness};

/// Pause before listing again after the datastore failed (not a synchronisation: a back-off).
const RELIST_BACKOFF: Duration = Duration::from_secs(2);

pub struct NodeWatcher {
    store: Arc<dyn Datastore>,
    own: String,
    readiness: Readiness,
}

impl NodeWatcher {
    pub fn new(store: Arc<dyn Datastore>, own: &str, readiness: Readiness) -> NodeWatcher {
        readiness.require(
            DATASTORE_CONDITION,
            "the first datastore list and watch are pending",
        );
        NodeWatcher {
            store,
            own: own.to_string(),
            readiness,
        }
    }

    /// Runs until this node's own Node is deleted (the only way it returns).
    pub async fn run(self) -> NodeError {
        let mut known: Option<BTreeSet<String>> = None;
        loop {
            if let Err(error) = self.list_and_watch(&mut known).await {
                if matches!(error, NodeError::OwnNodeDeleted { .. }) {
                    self.readiness
                        .set_failing(DATASTORE_CONDITION, "this node's Node was deleted");
                    return error;
                }
                warn!(%error, "node watch failed; listing again");
                self.readiness.set_failing(DATASTORE_CONDITION, &error);
                tokio::time::sleep(RELIST_BACKOFF).await;
            }
        }
    }

    /// One list and the watch that follows it, until the watch fails or ends.
    async fn list_and_watch(&self, known: &mut Option<BTreeSet<String>>) -> Result<(), NodeError> {
        // Affinities first: a node has its Node before it claims a block, so an affinity read
        // before the Node list whose node is not in the list belongs to a deleted node.
        let affinity_nodes: BTreeSet<String> = self
            .store
            .list_resources::<BlockAffinity>("")
            .await?
            .into_iter()
            .map(|affinity| affinity.value.node)
            .collect();
        let listing = self.store.list(Kind::Node, "").await?;
        let names: BTreeSet<String> = listing.items.iter().map(|kv| kv.name.clone()).collect();
        let mut gone: BTreeSet<&String> = affinity_nodes.difference(&names).collect();
        if let Some(before) = known.as_ref() {
            gone.extend(before.difference(&names));
        }
        for name in gone {
            self.deleted(name).await?;
        }
        if !names.contains(&self.own) {
            // Registered before the watcher started: gone since.
            return Err(NodeError::OwnNodeDeleted {
                node: self.own.clone(),
            });
        }
        *known = Some(names);
        let mut events = self.store.watch(Kind::Node, "", &listing.revision).await?;
        self.readiness.set_ready(DATASTORE_CONDITION);
        while let Some(event) = events.next().await {
            match event? {
                WatchEvent::Put(kv) => {
                    if let Some(names) = known.as_mut() {
                        names.insert(kv.name);
                    }
                }
                WatchEvent::Deleted { name, .. } => {
                    if let Some(names) = known.as_mut() {
                        names.remove(&name);
                    }
                    self.deleted(&name).await?;
                }
            }
        }
        Err(NodeError::WatchEnded)
    }

    /// A Node was deleted: exit for our own, release another's IPAM state.
    async fn deleted(&self, name: &str) -> Result<(), NodeError> {
        if name == self.own {
            error!(node = %name, "this node's Node resource was deleted; exiting (restart the agent to register it again)");
            return Err(NodeError::OwnNodeDeleted {
                node: name.to_string(),
            });
        }
        // Deleted and registered again meanwhile (its agent restarted): nothing to release.
        if self.store.get_resource::<Node>(name).await?.is_some() {
            return Ok(());
        }
        match Ipam::new(self.store.clone()).release_node(name).await {
            Ok(release) => {
                info!(node = %name, deleted_blocks = ?release.deleted_blocks, orphaned_blocks = ?release.orphaned_blocks, "released the IPAM blocks of a deleted node");
                if let Err(error) = self.store.sync().await {
                    warn!(%error, "cannot sync the datastore");
                }
            }
            Err(error) => {
                warn!(node = %name, %error, "cannot release the IPAM blocks of a deleted node (another agent may)");
            }
        }
        Ok(())
    }
}
