//! The endpoint record's compare-and-swap writes under lost races: a store that refuses the
//! first writes of every WorkloadEndpoint with a conflict, as another writer would make them.
//! ADD and DEL retry through `CasRetry` (a pause and a fresh read each time) and succeed. No
//! root needed: FakeNetlink, FakeSysctl and a real embedded store.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use futures::FutureExt;
use manul_store::{
    Kind, StoreError,
    embedded::EmbeddedStore,
    testing::interposed::{Interposed, Write},
};

use super::tests::fixture;
use super::*;

/// Lost races per kind of write (create, delete) of WorkloadEndpoint: more than the ten
/// attempts the agent's own loops used to allow.
const LOST_RACES: u32 = 20;

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
    let creates = Arc::new(AtomicU32::new(LOST_RACES));
    let deletes = Arc::new(AtomicU32::new(LOST_RACES));
    let store = {
        let (creates, deletes) = (creates.clone(), deletes.clone());
        Interposed::new(inner.clone(), move |write, kind, name| {
            let left = match write {
                Write::Create => &creates,
                Write::Delete => &deletes,
                Write::Update => return async { Ok(()) }.boxed(),
            };
            let lost = kind == Kind::WorkloadEndpoint
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            let name = name.to_string();
            async move {
                match lost {
                    true => Err(StoreError::Conflict { kind, name }),
                    false => Ok(()),
                }
            }
            .boxed()
        })
    };
    let endpoints = Endpoints::new(
        "node1".into(),
        Arc::new(store),
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
    assert_eq!(creates.load(Ordering::SeqCst), 0, "every race was lost");
    assert_eq!(records().await, 1);
    endpoints.delete(&request).await.unwrap();
    assert_eq!(deletes.load(Ordering::SeqCst), 0, "every race was lost");
    assert_eq!(records().await, 0);
}
