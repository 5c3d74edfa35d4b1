//! Tests of the embedded backend: CAS semantics, listing by prefix, watches, reopening.

use futures::StreamExt;

use super::*;
use crate::{DatastoreExt, IpPool, Versioned};

fn pool(name: &str, cidr: &str) -> IpPool {
    IpPool::new(name, cidr.parse().unwrap())
}

#[tokio::test]
async fn create_is_refused_when_the_name_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    store
        .create_resource(&pool("a", "10.0.0.0/16"))
        .await
        .unwrap();
    let error = store
        .create_resource(&pool("a", "10.1.0.0/16"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::AlreadyExists { .. }), "{error}");
    let stored: Versioned<IpPool> = store.get_resource("a").await.unwrap().unwrap();
    assert_eq!(stored.value.cidr.to_string(), "10.0.0.0/16");
}

#[tokio::test]
async fn update_with_a_stale_revision_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    let first = store
        .create_resource(&pool("a", "10.0.0.0/16"))
        .await
        .unwrap();
    let second = store
        .update_resource(&pool("a", "10.2.0.0/16"), &first)
        .await
        .unwrap();
    assert_ne!(first, second);
    let error = store
        .update_resource(&pool("a", "10.3.0.0/16"), &first)
        .await
        .unwrap_err();
    assert!(error.is_conflict(), "{error}");
    let error = store
        .delete_resource::<IpPool>("a", &first)
        .await
        .unwrap_err();
    assert!(error.is_conflict(), "{error}");
    store.delete_resource::<IpPool>("a", &second).await.unwrap();
    assert!(store.get_resource::<IpPool>("a").await.unwrap().is_none());
    let error = store
        .update_resource(&pool("a", "10.3.0.0/16"), &second)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error}");
}

#[tokio::test]
async fn list_returns_only_the_kind_and_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    for name in ["node-a", "node-b", "other"] {
        store
            .create_resource(&pool(name, "10.0.0.0/16"))
            .await
            .unwrap();
    }
    store
        .create(Kind::Node, "node-z", b"{}".to_vec())
        .await
        .unwrap();
    let names: Vec<String> = store
        .list(Kind::IPPool, "node-")
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|kv| kv.name)
        .collect();
    assert_eq!(names, vec!["node-a", "node-b"]);
    assert_eq!(store.list(Kind::IPPool, "").await.unwrap().items.len(), 3);
}

#[tokio::test]
async fn watch_replays_from_a_revision_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    store
        .create_resource(&pool("before", "10.0.0.0/16"))
        .await
        .unwrap();
    let listing = store.list(Kind::IPPool, "").await.unwrap();
    let mut events = store
        .watch(Kind::IPPool, "", &listing.revision)
        .await
        .unwrap();
    let revision = store
        .create_resource(&pool("after", "10.1.0.0/16"))
        .await
        .unwrap();
    store
        .create(Kind::Node, "ignored", b"{}".to_vec())
        .await
        .unwrap();
    store
        .delete_resource::<IpPool>("after", &revision)
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, WatchEvent::Put(kv) if kv.name == "after"),
        "{first:?}"
    );
    let second = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&second, WatchEvent::Deleted { name, .. } if name == "after"),
        "{second:?}"
    );
}

#[tokio::test]
async fn reopening_keeps_objects_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let revision = {
        let store = EmbeddedStore::open(&path).unwrap();
        store
            .create_resource(&pool("a", "10.0.0.0/16"))
            .await
            .unwrap()
    };
    let store = EmbeddedStore::open(&path).unwrap();
    let stored: Versioned<IpPool> = store.get_resource("a").await.unwrap().unwrap();
    assert_eq!(stored.revision, revision);
    let next = store
        .create_resource(&pool("b", "10.1.0.0/16"))
        .await
        .unwrap();
    assert!(next.as_number().unwrap() > revision.as_number().unwrap());
}

#[test]
fn event_records_round_trip_and_garbage_is_rejected() {
    let record = encode_event(false, Kind::Node, "n1", b"{\"a\":1}");
    let event = decode_event(7, &record).unwrap();
    assert_eq!(
        event,
        WatchEvent::Put(KeyValue {
            kind: Kind::Node,
            name: "n1".into(),
            value: b"{\"a\":1}".to_vec(),
            revision: Revision::from_number(7)
        })
    );
    assert!(decode_event(1, &[0, 99, 0, 0]).is_none());
    assert!(decode_event(1, &[0, 1, 200, 0, b'x']).is_none());
}

/// A watcher that does not read while the store compacts past it must get `Compacted`, after
/// an unbroken run of events: never a silent jump over the compacted ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_the_kept_events_gets_compacted_not_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_keeping(&dir.path().join("s.redb"), 10).unwrap();
    let start = store.list(Kind::Node, "").await.unwrap().revision;
    let mut events = store.watch(Kind::Node, "", &start).await.unwrap();
    // More writes than the watch buffers (1024) plus the kept events, none of them read yet.
    let writes = 3000u64;
    for index in 0..writes {
        store
            .create(Kind::Node, &format!("n{index}"), b"{}".to_vec())
            .await
            .unwrap();
    }
    assert!(store.kept_events().unwrap() <= 11);
    let mut expected = start.as_number().unwrap() + 1;
    let outcome = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("the watch neither delivered nor failed within 10 s");
        match next {
            Some(Ok(event)) => {
                let revision = event.revision().as_number().unwrap();
                assert_eq!(revision, expected, "the watch skipped events");
                expected += 1;
            }
            Some(Err(error)) => break error,
            None => panic!("the watch ended without an error after revision {expected}"),
        }
    };
    assert!(matches!(outcome, StoreError::Compacted { .. }), "{outcome}");
    assert!(
        expected <= writes,
        "every event arrived, nothing was compacted"
    );
    let after_error = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap();
    assert!(after_error.is_none(), "the watch went on after Compacted");
}

/// With deferred durability a write runs on the caller's thread when no other write is in
/// progress, else on the blocking pool behind the other one: concurrent CAS writers on one
/// key, some of each kind, must still lose no increment, and a sync in between loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deferred_writes_and_syncs_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Arc::new(
        EmbeddedStore::open(&path)
            .unwrap()
            .with_deferred_durability(),
    );
    store
        .create(Kind::IPAMBlock, "counter", b"0".to_vec())
        .await
        .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for increment in 0..25 {
                    loop {
                        let current = store
                            .get(Kind::IPAMBlock, "counter")
                            .await
                            .unwrap()
                            .unwrap();
                        let value: u64 = std::str::from_utf8(&current.value)
                            .unwrap()
                            .parse()
                            .unwrap();
                        let next = (value + 1).to_string().into_bytes();
                        match store
                            .update(Kind::IPAMBlock, "counter", next, &current.revision)
                            .await
                        {
                            Ok(_) => break,
                            Err(error) if error.is_conflict() => continue,
                            Err(error) => panic!("{error}"),
                        }
                    }
                    if (writer + increment) % 7 == 0 {
                        store.sync().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    store.sync().await.unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(&path).unwrap();
    let counter = reopened
        .get(Kind::IPAMBlock, "counter")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counter.value, b"200");
}
