//! The conformance suite of the `Datastore` trait: async checks that take any backend and
//! panic (as tests do) when it breaks the trait's contract. Each backend's test file runs every
//! check on a fresh store. I/O only through the store under test.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;

use crate::datastore::{Datastore, Kind, Revision, StoreError, WatchEvent, WatchStream};

/// How long a check waits for a watch event before it fails.
const EVENT_WITHIN: Duration = Duration::from_secs(20);

/// Makes the history up to a revision unavailable to watches, the way the backend does it
/// (etcd: a compaction; the embedded store: writing past its kept-event window).
#[async_trait::async_trait]
pub trait Compactor: Send + Sync {
    async fn compact_through(&self, revision: &Revision);
}

fn names(items: &[crate::KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.name.as_str()).collect()
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_WITHIN, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => panic!("the watch failed: {error}"),
        Ok(None) => panic!("the watch ended"),
        Err(_) => panic!("no watch event within {EVENT_WITHIN:?}"),
    }
}

/// get returns what create stored; list returns one kind, filtered by name prefix, in name
/// order.
pub async fn get_and_list_by_kind_and_prefix_in_name_order(store: Arc<dyn Datastore>) {
    let mut revisions = Vec::new();
    for name in ["b", "a", "ab", "a/x", "c"] {
        let value = format!("{{\"name\":\"{name}\"}}").into_bytes();
        revisions.push((name, store.create(Kind::IPPool, name, value).await.unwrap()));
    }
    store
        .create(Kind::IPPoolIndex, "a", b"{}".to_vec())
        .await
        .unwrap();
    store.create(Kind::Node, "a", b"{}".to_vec()).await.unwrap();

    for (name, revision) in &revisions {
        let got = store.get(Kind::IPPool, name).await.unwrap().unwrap();
        assert_eq!((got.kind, got.name.as_str()), (Kind::IPPool, *name));
        assert_eq!(got.value, format!("{{\"name\":\"{name}\"}}").into_bytes());
        assert_eq!(&got.revision, revision);
    }
    assert!(store.get(Kind::IPPool, "zz").await.unwrap().is_none());
    assert!(store.get(Kind::Node, "b").await.unwrap().is_none());

    let all = store.list(Kind::IPPool, "").await.unwrap();
    assert_eq!(names(&all.items), ["a", "a/x", "ab", "b", "c"]);
    assert!(all.items.iter().all(|kv| kv.kind == Kind::IPPool));
    let prefixed = store.list(Kind::IPPool, "a").await.unwrap();
    assert_eq!(names(&prefixed.items), ["a", "a/x", "ab"]);
    assert_eq!(
        names(&store.list(Kind::Node, "").await.unwrap().items),
        ["a"]
    );
    assert!(
        store
            .list(Kind::BGPPeer, "")
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// A second create of a name is AlreadyExists and leaves the first value.
pub async fn create_of_an_existing_name_is_already_exists(store: Arc<dyn Datastore>) {
    let first = store
        .create(Kind::Node, "n1", b"first".to_vec())
        .await
        .unwrap();
    let error = store
        .create(Kind::Node, "n1", b"second".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { kind: Kind::Node, name } if name == "n1"),
        "{error}"
    );
    let stored = store.get(Kind::Node, "n1").await.unwrap().unwrap();
    assert_eq!(
        (stored.value.as_slice(), &stored.revision),
        (&b"first"[..], &first)
    );
}

/// update and delete with a stale revision are Conflict and change nothing; update and delete
/// of a missing name are NotFound.
pub async fn stale_writes_conflict_and_writes_of_missing_names_are_not_found(
    store: Arc<dyn Datastore>,
) {
    let first = store.create(Kind::Node, "n", b"1".to_vec()).await.unwrap();
    let second = store
        .update(Kind::Node, "n", b"2".to_vec(), &first)
        .await
        .unwrap();
    assert_ne!(first, second);
    let error = store
        .update(Kind::Node, "n", b"3".to_vec(), &first)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    let error = store.delete(Kind::Node, "n", &first).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    let stored = store.get(Kind::Node, "n").await.unwrap().unwrap();
    assert_eq!(
        (stored.value.as_slice(), &stored.revision),
        (&b"2"[..], &second)
    );

    store.delete(Kind::Node, "n", &second).await.unwrap();
    assert!(store.get(Kind::Node, "n").await.unwrap().is_none());
    let error = store.delete(Kind::Node, "n", &second).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error}");
    let error = store
        .update(Kind::Node, "n", b"4".to_vec(), &second)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error}");
    let error = store
        .delete(Kind::Node, "never", &second)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error}");
    // A name freed by a delete can be created again.
    store.create(Kind::Node, "n", b"5".to_vec()).await.unwrap();
}

/// A watch from a listing's revision yields exactly the later changes of its kind and name
/// prefix, puts and deletes, in order, with the revisions the writes returned.
pub async fn watch_from_a_listing_yields_exactly_the_later_changes_in_order(
    store: Arc<dyn Datastore>,
) {
    let a1 = store
        .create(Kind::IPPool, "a1", b"1".to_vec())
        .await
        .unwrap();
    let a2 = store
        .create(Kind::IPPool, "a2", b"2".to_vec())
        .await
        .unwrap();
    store
        .create(Kind::IPPool, "b1", b"x".to_vec())
        .await
        .unwrap();
    let listing = store.list(Kind::IPPool, "a").await.unwrap();
    assert_eq!(names(&listing.items), ["a1", "a2"]);
    let mut watch = store
        .watch(Kind::IPPool, "a", &listing.revision)
        .await
        .unwrap();

    let a1_updated = store
        .update(Kind::IPPool, "a1", b"1b".to_vec(), &a1)
        .await
        .unwrap();
    store
        .create(Kind::IPPool, "b2", b"x".to_vec())
        .await
        .unwrap();
    store.create(Kind::Node, "a9", b"x".to_vec()).await.unwrap();
    // Same name prefix in a kind whose name starts like this one's.
    store
        .create(Kind::IPPoolIndex, "a9", b"x".to_vec())
        .await
        .unwrap();
    let a3 = store
        .create(Kind::IPPool, "a3", b"3".to_vec())
        .await
        .unwrap();
    store.delete(Kind::IPPool, "a2", &a2).await.unwrap();
    let a2_deleted = store.get(Kind::IPPool, "a2").await.unwrap();
    assert!(a2_deleted.is_none());
    let sentinel = store
        .create(Kind::IPPool, "a-last", b"end".to_vec())
        .await
        .unwrap();

    match next_event(&mut watch).await {
        WatchEvent::Put(kv) => {
            assert_eq!((kv.name.as_str(), kv.value.as_slice()), ("a1", &b"1b"[..]));
            assert_eq!(kv.revision, a1_updated);
        }
        other => panic!("expected the update of a1, got {other:?}"),
    }
    match next_event(&mut watch).await {
        WatchEvent::Put(kv) => {
            assert_eq!((kv.name.as_str(), kv.value.as_slice()), ("a3", &b"3"[..]));
            assert_eq!(kv.revision, a3);
        }
        other => panic!("expected the create of a3, got {other:?}"),
    }
    match next_event(&mut watch).await {
        WatchEvent::Deleted { kind, name, .. } => {
            assert_eq!((kind, name.as_str()), (Kind::IPPool, "a2"));
        }
        other => panic!("expected the delete of a2, got {other:?}"),
    }
    match next_event(&mut watch).await {
        WatchEvent::Put(kv) => {
            assert_eq!((kv.name.as_str(), &kv.revision), ("a-last", &sentinel));
        }
        other => panic!("expected the sentinel a-last and nothing before it, got {other:?}"),
    }
}

/// A watch from a revision whose history is gone fails with Compacted (at once or as its
/// first item), so the caller lists again.
pub async fn watch_from_a_compacted_revision_is_compacted(
    store: Arc<dyn Datastore>,
    compactor: &dyn Compactor,
) {
    let listing = store.list(Kind::Node, "").await.unwrap();
    let mut revision = store.create(Kind::Node, "c", b"0".to_vec()).await.unwrap();
    for round in 1..4 {
        let value = format!("{round}").into_bytes();
        revision = store
            .update(Kind::Node, "c", value, &revision)
            .await
            .unwrap();
    }
    compactor.compact_through(&revision).await;
    let error = match store.watch(Kind::Node, "", &listing.revision).await {
        Err(error) => error,
        Ok(mut watch) => match tokio::time::timeout(EVENT_WITHIN, watch.next()).await {
            Ok(Some(Err(error))) => error,
            other => panic!("a watch from a compacted revision gave {other:?}"),
        },
    };
    assert!(matches!(error, StoreError::Compacted { .. }), "{error}");
    // A fresh listing's revision can be watched again.
    let fresh = store.list(Kind::Node, "").await.unwrap();
    let mut watch = store.watch(Kind::Node, "", &fresh.revision).await.unwrap();
    let next = store
        .update(Kind::Node, "c", b"after".to_vec(), &revision)
        .await
        .unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), &next);
}

/// Tasks that each add one to a shared counter many times through read + compare-and-swap,
/// retrying lost races, lose no increment.
pub async fn concurrent_compare_and_swap_increments_lose_nothing(store: Arc<dyn Datastore>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    store
        .create(Kind::IPAMHandle, "counter", b"0".to_vec())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..INCREMENTS {
                loop {
                    let current = store.get(Kind::IPAMHandle, "counter").await.unwrap();
                    let current = current.expect("the counter exists");
                    let count: u64 = std::str::from_utf8(&current.value)
                        .unwrap()
                        .parse()
                        .unwrap();
                    let next = (count + 1).to_string().into_bytes();
                    match store
                        .update(Kind::IPAMHandle, "counter", next, &current.revision)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(error) => panic!("increment failed: {error}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let stored = store
        .get(Kind::IPAMHandle, "counter")
        .await
        .unwrap()
        .unwrap();
    let count: usize = std::str::from_utf8(&stored.value).unwrap().parse().unwrap();
    assert_eq!(
        count,
        TASKS * INCREMENTS,
        "increments were lost ({conflicts} conflicts were retried)"
    );
}
