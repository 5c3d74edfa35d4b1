//! The Datastore conformance suite on the etcd backend: a real etcd member started per check
//! on 127.0.0.1 (free ports, temporary data directory), killed when the check ends.

use std::{sync::Arc, time::Duration};

use manul_store::{
    Datastore, Revision,
    etcd::EtcdStore,
    testing::{
        conformance::{self, Compactor},
        etcd::EtcdCluster,
    },
};

struct Fixture {
    store: Arc<EtcdStore>,
    _etcd: EtcdCluster,
}

fn fixture() -> Fixture {
    let etcd = EtcdCluster::start_one().unwrap_or_else(|error| panic!("{error}"));
    let config = etcd.config("/conformance", Duration::from_secs(10));
    Fixture {
        store: Arc::new(EtcdStore::new(&config).unwrap()),
        _etcd: etcd,
    }
}

fn store(fixture: &Fixture) -> Arc<dyn Datastore> {
    fixture.store.clone()
}

/// Compacts etcd's history through the client.
struct EtcdCompaction(Arc<EtcdStore>);

#[async_trait::async_trait]
impl Compactor for EtcdCompaction {
    async fn compact_through(&self, revision: &Revision) {
        self.0.compact(revision).await.unwrap();
    }
}

#[tokio::test]
async fn get_and_list_by_kind_and_prefix_in_name_order() {
    let fixture = fixture();
    conformance::get_and_list_by_kind_and_prefix_in_name_order(store(&fixture)).await;
}

#[tokio::test]
async fn create_of_an_existing_name_is_already_exists() {
    let fixture = fixture();
    conformance::create_of_an_existing_name_is_already_exists(store(&fixture)).await;
}

#[tokio::test]
async fn stale_writes_conflict_and_writes_of_missing_names_are_not_found() {
    let fixture = fixture();
    conformance::stale_writes_conflict_and_writes_of_missing_names_are_not_found(store(&fixture))
        .await;
}

#[tokio::test]
async fn watch_from_a_listing_yields_exactly_the_later_changes_in_order() {
    let fixture = fixture();
    conformance::watch_from_a_listing_yields_exactly_the_later_changes_in_order(store(&fixture))
        .await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_compacted() {
    let fixture = fixture();
    let compactor = EtcdCompaction(fixture.store.clone());
    conformance::watch_from_a_compacted_revision_is_compacted(store(&fixture), &compactor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_swap_increments_lose_nothing() {
    let fixture = fixture();
    conformance::concurrent_compare_and_swap_increments_lose_nothing(store(&fixture)).await;
}
