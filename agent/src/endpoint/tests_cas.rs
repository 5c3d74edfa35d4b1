//! The endpoint record's compare-and-swap writes under lost races: a store that refuses the
//! first writes of every WorkloadEndpoint with a conflict, as another writer would make them.
//! ADD and DEL retry through `CasRetry` (a pause and a fresh read each time) and succeed. No
//! root needed: FakeNetlink, FakeSysctl and a real embedded store.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use manul_store::{
    Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchStream, embedded::EmbeddedStore,
};

use super::tests::fixture;
use super::*;

/// Lost races to answer per kind of write (create, delete) of WorkloadEndpoint; more
/// than the ten attempts the agent's own loops used to allow.
const LOST_RACES: u32 = 20;

/// An embedded store whose WorkloadEndpoint creates and deletes lose `LOST_RACES` races each.
struct LosingRaces {
    inner: Arc<dyn Datastore>,
    creates: AtomicU32,
    deletes: AtomicU32,
}

impl LosingRaces {
    fn lose(&self, kind: Kind, counter: &AtomicU32, name: &str) -> Result<(), StoreError> {
        let lost = kind == Kind::WorkloadEndpoint
            && counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
        match lost {
            true => Err(StoreError::Conflict {
                kind,
                name: name.to_string(),
            }),
            false => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Datastore for LosingRaces {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(kind, name).await
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        self.inner.list(kind, name_prefix).await
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        self.lose(kind, &self.creates, name)?;
        self.inner.create(kind, name, value).await
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        self.inner.update(kind, name, value, expected).await
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
        self.lose(kind, &self.deletes, name)?;
        self.inner.delete(kind, name, expected).await
    }

    async fn watch(
        &self,
        kind: Kind,
        name_prefix: &str,
        after: &Revision,
    ) -> Result<WatchStream, StoreError> {
        self.inner.watch(kind, name_prefix, after).await
    }
}

#[tokio::test]
async fn add_and_del_retry_the_endpoint_record_past_lost_races() {
    let base = fixture("10.10.0.0/16").await;
    let inner: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&base.dir.path().join("racing.redb")).unwrap());
    manul_ipam::Ipam::new(inner.clone())
        .create_pool(&manul_store::IpPool::new(
            "pool",
            "10.10.0.0/16".parse().unwrap(),
        ))
        .await
        .unwrap();
    let store = Arc::new(LosingRaces {
        inner: inner.clone(),
        creates: AtomicU32::new(LOST_RACES),
        deletes: AtomicU32::new(LOST_RACES),
    });
    let endpoints = Endpoints::new(
        "node1".into(),
        store.clone(),
        base.netlink.clone(),
        base.sysctl.clone(),
    );
    let request = base.request("c1");
    let records = || async {
        inner
            .list(Kind::WorkloadEndpoint, "")
            .await
            .unwrap()
            .items
            .len()
    };
    // ADD creates the record, DEL deletes it: each after its lost races.
    endpoints.add(&request).await.unwrap();
    assert_eq!(
        store.creates.load(Ordering::SeqCst),
        0,
        "every race was lost"
    );
    assert_eq!(records().await, 1);
    endpoints.delete(&request).await.unwrap();
    assert_eq!(
        store.deletes.load(Ordering::SeqCst),
        0,
        "every race was lost"
    );
    assert_eq!(records().await, 0);
}
