//! The IPAM garbage collector of Kubernetes mode: addresses allocated on this node to a pod
//! that no longer exists, or that now runs on another node, are released once they have
//! been orphaned for a grace period, after one more look at the pod right before the
//! release. A live pod's address is never released: a pod seen again (or seen on this node)
//! at any look clears its handle. The bookkeeping (`GcTracker`) is pure; `PodGc` reads the
//! blocks through the store, the pods through the `PodDirectory`, and releases through IPAM.
//!
//! The allocating pod comes from the block's allocation attributes (`namespace`, `pod`,
//! `node`, written at ADD), so borrowed addresses in other nodes' blocks are collected by the
//! node that allocated them. A DEL that never came (a node crash, a runtime that lost the
//! sandbox) is what this repairs; the pod's veth is the reconciler's.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use manul_ipam::{Ipam, IpamError};
use manul_store::{Datastore, DatastoreExt, IpamBlock, StoreError};
use tracing::info;

use super::{PodDirectory, PodDirectoryError, PodInfo};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Directory(#[from] PodDirectoryError),
}

/// True when the address of a pod in this state may go: the pod is gone, or it is scheduled
/// on another node (it moved; a pod keeps its name across a StatefulSet reschedule).
pub fn orphaned(node: &str, pod: Option<&PodInfo>) -> bool {
    match pod {
        None => true,
        Some(pod) => !pod.node.is_empty() && pod.node != node,
    }
}

/// When each orphaned handle was first seen orphaned.
#[derive(Debug)]
pub struct GcTracker {
    grace: Duration,
    first_seen: BTreeMap<String, SystemTime>,
}

impl GcTracker {
    pub fn new(grace: Duration) -> GcTracker {
        GcTracker {
            grace,
            first_seen: BTreeMap::new(),
        }
    }

    /// Records this pass's orphans, forgets the handles that are not orphaned any more, and
    /// returns those orphaned for at least the grace period.
    pub fn due(&mut self, now: SystemTime, orphans: &BTreeSet<String>) -> Vec<String> {
        self.first_seen.retain(|handle, _| orphans.contains(handle));
        for handle in orphans {
            self.first_seen.entry(handle.clone()).or_insert(now);
        }
        self.first_seen
            .iter()
            .filter(|(_, since)| now.duration_since(**since).unwrap_or_default() >= self.grace)
            .map(|(handle, _)| handle.clone())
            .collect()
    }

    pub fn forget(&mut self, handle: &str) {
        self.first_seen.remove(handle);
    }
}

/// The collector of one node.
pub struct PodGc {
    node: String,
    store: Arc<dyn Datastore>,
    ipam: Ipam,
    directory: Arc<dyn PodDirectory>,
    tracker: GcTracker,
}

impl PodGc {
    pub fn new(
        node: &str,
        store: Arc<dyn Datastore>,
        directory: Arc<dyn PodDirectory>,
        grace: Duration,
    ) -> PodGc {
        PodGc {
            node: node.to_string(),
            ipam: Ipam::new(store.clone()),
            store,
            directory,
            tracker: GcTracker::new(grace),
        }
    }

    /// Handle -> (namespace, pod) of every pod address this node allocated.
    async fn allocations(&self) -> Result<BTreeMap<String, (String, String)>, GcError> {
        let mut found = BTreeMap::new();
        for block in self.store.list_resources::<IpamBlock>("").await? {
            for attribute in &block.value.attributes {
                let field = |key: &str| attribute.secondary.get(key).cloned().unwrap_or_default();
                let (Some(handle), namespace, pod) =
                    (&attribute.handle_id, field("namespace"), field("pod"))
                else {
                    continue;
                };
                if field("node") == self.node && !namespace.is_empty() && !pod.is_empty() {
                    found.insert(handle.clone(), (namespace, pod));
                }
            }
        }
        Ok(found)
    }

    async fn is_orphan(&self, namespace: &str, pod: &str) -> Result<bool, GcError> {
        let info = self.directory.pod(namespace, pod).await?;
        Ok(orphaned(&self.node, info.as_ref()))
    }

    /// One pass at `now`: the addresses it released. The scan is one list of the pods on this
    /// node (a GET per pod each pass would load the API server with every node's pods); a
    /// handle whose pod is not in it is looked up by name before its release.
    pub async fn run_once(&mut self, now: SystemTime) -> Result<Vec<IpAddr>, GcError> {
        let allocations = self.allocations().await?;
        let here = self.directory.pods_on_node(&self.node).await?;
        let orphans: BTreeSet<String> = allocations
            .iter()
            .filter(|(_, (namespace, pod))| !here.contains(&(namespace.clone(), pod.clone())))
            .map(|(handle, _)| handle.clone())
            .collect();
        let mut released = Vec::new();
        for handle in self.tracker.due(now, &orphans) {
            let (namespace, pod) = &allocations[&handle];
            // Right before the release: the pod may have come back since the scan.
            if self.is_orphan(namespace, pod).await? {
                let addresses = self.ipam.release_by_handle(&handle).await?;
                info!(%handle, %namespace, %pod, ?addresses, "released the addresses of a pod that is gone");
                released.extend(addresses);
            }
            self.tracker.forget(&handle);
        }
        Ok(released)
    }
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
