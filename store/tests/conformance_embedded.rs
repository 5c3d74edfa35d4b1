//! The Datastore conformance suite on the embedded (redb) backend, one fresh store per check.

use std::sync::Arc;

use manul_store::{
    Datastore, Kind, Revision,
    embedded::EmbeddedStore,
    testing::conformance::{self, Compactor},
};

/// Events the store keeps for watchers in these tests: small, so a few writes compact.
const EVENTS_KEPT: u64 = 4;

struct Fixture {
    store: Arc<EmbeddedStore>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_keeping(&dir.path().join("s.redb"), EVENTS_KEPT).unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: dir,
    }
}

fn store(fixture: &Fixture) -> Arc<dyn Datastore> {
    fixture.store.clone()
}

/// Compacts by writing past the kept-event window.
struct WriteOverWindow(Arc<EmbeddedStore>);

#[async_trait::async_trait]
impl Compactor for WriteOverWindow {
    async fn compact_through(&self, _revision: &Revision) {
        let mut revision = self
            .0
            .create(Kind::BGPPeer, "filler", b"0".to_vec())
            .await
            .unwrap();
        for round in 0..3 * EVENTS_KEPT {
            let value = round.to_string().into_bytes();
            revision = self
                .0
                .update(Kind::BGPPeer, "filler", value, &revision)
                .await
                .unwrap();
        }
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
    // Keep every event of this check: the window is not what it tests.
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    conformance::watch_from_a_listing_yields_exactly_the_later_changes_in_order(Arc::new(store))
        .await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_compacted() {
    let fixture = fixture();
    let compactor = WriteOverWindow(fixture.store.clone());
    conformance::watch_from_a_compacted_revision_is_compacted(store(&fixture), &compactor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_compare_and_swap_increments_lose_nothing() {
    let fixture = fixture();
    conformance::concurrent_compare_and_swap_increments_lose_nothing(store(&fixture)).await;
}
