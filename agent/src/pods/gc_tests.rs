//! Tests of the IPAM garbage collector over a real embedded store and the fake directory.

use std::sync::atomic::{AtomicUsize, Ordering};

use manul_ipam::AutoAssignRequest;
use manul_store::{IpPool, embedded::EmbeddedStore};

use super::*;
use crate::pods::FakePodDirectory;

const GRACE: Duration = Duration::from_secs(60);

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
}

fn pod_on(node: &str) -> PodInfo {
    PodInfo {
        node: node.into(),
        ..Default::default()
    }
}

/// A store with a pool and one address for shop/<pod> on node n1 per pod; the handles.
async fn store_with_pods(pods: &[&str]) -> (tempfile::TempDir, Arc<dyn Datastore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
    let ipam = Ipam::new(store.clone());
    ipam.create_pool(&IpPool::new("p", "10.244.0.0/16".parse().unwrap()))
        .await
        .unwrap();
    for pod in pods {
        let attributes = [("node", "n1"), ("namespace", "shop"), ("pod", pod)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ipam.auto_assign(&AutoAssignRequest {
            handle_id: format!("k8s-pod-network.{pod}"),
            node: "n1".into(),
            num_ipv4: 1,
            num_ipv6: 0,
            ipv4_pools: Vec::new(),
            ipv6_pools: Vec::new(),
            attributes,
        })
        .await
        .unwrap();
    }
    (dir, store)
}

async fn held(store: &Arc<dyn Datastore>, pod: &str) -> usize {
    Ipam::new(store.clone())
        .addresses_by_handle(&format!("k8s-pod-network.{pod}"))
        .await
        .unwrap_or_default()
        .len()
}

#[test]
fn only_absent_pods_and_pods_on_other_nodes_are_orphans() {
    assert!(orphaned("n1", None));
    assert!(orphaned("n1", Some(&pod_on("n2"))));
    assert!(!orphaned("n1", Some(&pod_on("n1"))));
    assert!(
        !orphaned("n1", Some(&pod_on(""))),
        "not yet scheduled: not ours to judge"
    );
}

#[test]
fn a_handle_is_due_after_the_grace_period_of_continuous_orphanhood() {
    let mut tracker = GcTracker::new(GRACE);
    let orphans: BTreeSet<String> = ["h".to_string()].into();
    assert!(tracker.due(at(0), &orphans).is_empty());
    assert!(tracker.due(at(59), &orphans).is_empty());
    assert!(
        tracker.due(at(61), &BTreeSet::new()).is_empty(),
        "seen live: forgotten"
    );
    assert!(
        tracker.due(at(100), &orphans).is_empty(),
        "the grace period starts again"
    );
    assert_eq!(tracker.due(at(160), &orphans), ["h"]);
}

#[tokio::test]
async fn addresses_of_gone_and_moved_pods_go_after_the_grace_period_and_live_pods_keep_theirs() {
    let (_dir, store) = store_with_pods(&["gone", "moved", "live"]).await;
    let directory = FakePodDirectory::default();
    directory.put_pod("shop", "moved", pod_on("n2"));
    directory.put_pod("shop", "live", pod_on("n1"));
    let mut gc = PodGc::new("n1", store.clone(), Arc::new(directory), GRACE);

    assert!(
        gc.run_once(at(0)).await.unwrap().is_empty(),
        "first sighting"
    );
    assert!(
        gc.run_once(at(30)).await.unwrap().is_empty(),
        "within the grace period"
    );
    let released = gc.run_once(at(61)).await.unwrap();
    assert_eq!(released.len(), 2, "{released:?}");
    assert_eq!(
        (held(&store, "gone").await, held(&store, "moved").await),
        (0, 0)
    );
    assert_eq!(held(&store, "live").await, 1);
    for later in [120, 600] {
        assert!(gc.run_once(at(later)).await.unwrap().is_empty());
    }
    assert_eq!(
        held(&store, "live").await,
        1,
        "a live pod's address is never released"
    );
}

#[tokio::test]
async fn a_pod_that_reappears_within_the_grace_period_keeps_its_address() {
    let (_dir, store) = store_with_pods(&["web"]).await;
    let directory = FakePodDirectory::default();
    let mut gc = PodGc::new("n1", store.clone(), Arc::new(directory.clone()), GRACE);
    assert!(gc.run_once(at(0)).await.unwrap().is_empty());
    directory.put_pod("shop", "web", pod_on("n1"));
    assert!(gc.run_once(at(30)).await.unwrap().is_empty());
    directory.remove_pod("shop", "web");
    // Gone again at 40: a new grace period from there, not from 0.
    assert!(gc.run_once(at(40)).await.unwrap().is_empty());
    assert!(gc.run_once(at(90)).await.unwrap().is_empty());
    assert_eq!(held(&store, "web").await, 1);
    assert_eq!(gc.run_once(at(100)).await.unwrap().len(), 1);
}

/// A directory where the pod "shop/web" exists from the `appears_at`-th lookup on (a get or a
/// list of the node's pods).
struct AppearsLater {
    lookups: AtomicUsize,
    appears_at: usize,
}

impl AppearsLater {
    fn exists_now(&self) -> bool {
        self.lookups.fetch_add(1, Ordering::SeqCst) + 1 >= self.appears_at
    }
}

#[async_trait::async_trait]
impl PodDirectory for AppearsLater {
    async fn pod(&self, _: &str, _: &str) -> Result<Option<PodInfo>, PodDirectoryError> {
        Ok(self.exists_now().then(|| pod_on("n1")))
    }

    async fn pods_on_node(&self, _: &str) -> Result<BTreeSet<(String, String)>, PodDirectoryError> {
        let web = ("shop".to_string(), "web".to_string());
        Ok(self.exists_now().then_some(web).into_iter().collect())
    }

    async fn namespace(
        &self,
        _: &str,
    ) -> Result<Option<BTreeMap<String, String>>, PodDirectoryError> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_pod_that_appears_between_the_scan_and_the_release_keeps_its_address() {
    let (_dir, store) = store_with_pods(&["web"]).await;
    // Lookups: pass 1 scan (absent), pass 2 scan (absent), pass 2 re-validation (present).
    let directory = Arc::new(AppearsLater {
        lookups: AtomicUsize::new(0),
        appears_at: 3,
    });
    let mut gc = PodGc::new("n1", store.clone(), directory.clone(), GRACE);
    assert!(gc.run_once(at(0)).await.unwrap().is_empty());
    assert!(gc.run_once(at(61)).await.unwrap().is_empty());
    assert_eq!(
        directory.lookups.load(Ordering::SeqCst),
        3,
        "re-validated before release"
    );
    assert_eq!(held(&store, "web").await, 1);
}
