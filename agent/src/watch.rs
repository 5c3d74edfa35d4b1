//! Following the datastore for the agent's driver tasks (BGP, pool dataplane): a list, then a
//! watch from the list's revision, listing again after an error or a compaction. A `Mirror`
//! keeps the decoded objects and pokes a `Notify` on every change, so that a task woken by one
//! changed object reads the rest from memory instead of listing them all from the store again.
//! I/O through the Datastore trait.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::StreamExt;
use manul_store::{Datastore, KeyValue, Kind, Resource, WatchEvent, decode};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tracing::warn;

/// Pause before listing again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// What a follower is told.
enum Update {
    /// A fresh listing: everything there is now.
    Listing(Vec<KeyValue>),
    Event(WatchEvent),
}

/// Lists `kind` under `prefix`, hands the listing to `on_update`, then every event after it;
/// lists again after an error. Runs until aborted.
async fn follow(
    store: Arc<dyn Datastore>,
    kind: Kind,
    prefix: String,
    mut on_update: impl FnMut(Update) + Send,
) {
    loop {
        let listing = match store.list(kind, &prefix).await {
            Ok(listing) => listing,
            Err(error) => {
                warn!(%kind, %error, "cannot list for a watch; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        on_update(Update::Listing(listing.items));
        match store.watch(kind, &prefix, &listing.revision).await {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => on_update(Update::Event(event)),
                        Err(error) => {
                            warn!(%kind, %error, "a watch broke; listing again");
                            break;
                        }
                    }
                }
            }
            Err(error) => warn!(%kind, %error, "cannot watch; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The objects of one kind as the datastore holds them, kept by a task that follows the kind;
/// dropping the mirror stops the task. An object that does not decode is left out (logged).
/// After a broken watch the mirror keeps what it had until the next listing replaces it.
pub struct Mirror<T> {
    objects: Arc<RwLock<BTreeMap<String, T>>>,
    listed: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl<T> Drop for Mirror<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: Resource> Mirror<T> {
    /// Starts following every object of `T::KIND`; `changed` is poked after each listing and
    /// each event, once the mirror holds it.
    pub fn start(store: Arc<dyn Datastore>, changed: Arc<Notify>) -> Mirror<T> {
        Mirror::start_under(store, String::new(), changed)
    }

    /// [`Mirror::start`] for the objects whose names start with `prefix` only.
    pub fn start_under(
        store: Arc<dyn Datastore>,
        prefix: String,
        changed: Arc<Notify>,
    ) -> Mirror<T> {
        let objects = Arc::new(RwLock::new(BTreeMap::new()));
        let (listed_sender, listed) = watch::channel(false);
        let kept = objects.clone();
        let task = tokio::spawn(follow(store, T::KIND, prefix, move |update| {
            apply_update(&kept, update);
            listed_sender.send_replace(true);
            changed.notify_one();
        }));
        Mirror {
            objects,
            listed,
            task,
        }
    }

    /// Waits until the first listing is in, for at most `limit`; true when it is.
    pub async fn wait_listed(&self, limit: Duration) -> bool {
        let mut listed = self.listed.clone();
        matches!(
            tokio::time::timeout(limit, listed.wait_for(|listed| *listed)).await,
            Ok(Ok(_))
        )
    }

    /// Every object, in name order; None until the first listing is in (an empty mirror then
    /// would say "nothing exists", which is not known).
    pub fn snapshot(&self) -> Option<Vec<T>> {
        self.read(|objects| objects.cloned().collect())
    }

    /// What `read` makes of every object (in name order) without copying them; None until
    /// the first listing is in. The mirror's updates wait while `read` runs: keep it short.
    pub fn read<R>(&self, read: impl FnOnce(&mut dyn Iterator<Item = &T>) -> R) -> Option<R> {
        if !*self.listed.borrow() {
            return None;
        }
        let objects = self
            .objects
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(read(&mut objects.values()))
    }
}

fn apply_update<T: Resource>(objects: &RwLock<BTreeMap<String, T>>, update: Update) {
    let mut objects = objects
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match update {
        Update::Listing(items) => {
            objects.clear();
            for item in items {
                let name = item.name.clone();
                if let Some(value) = decoded(item) {
                    objects.insert(name, value);
                }
            }
        }
        Update::Event(WatchEvent::Put(item)) => {
            let name = item.name.clone();
            match decoded(item) {
                Some(value) => objects.insert(name, value),
                None => objects.remove(&name),
            };
        }
        Update::Event(WatchEvent::Deleted { name, .. }) => {
            objects.remove(&name);
        }
    }
}

fn decoded<T: Resource>(item: KeyValue) -> Option<T> {
    match decode::<T>(item) {
        Ok(versioned) => Some(versioned.value),
        Err(error) => {
            warn!(%error, "a stored object does not decode; left out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use manul_store::{DatastoreExt, IpPool, open_datastore};

    use super::*;

    async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn names(pools: &[IpPool]) -> Vec<&str> {
        pools.iter().map(|pool| pool.name.as_str()).collect()
    }

    #[tokio::test]
    async fn a_mirror_follows_creates_updates_deletes_and_skips_what_does_not_decode() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!(
            "embedded://{}",
            directory.path().join("store.redb").display()
        );
        let store = open_datastore(&url).unwrap();
        let first = IpPool::new("first", "10.1.0.0/16".parse().unwrap());
        store.create_resource(&first).await.unwrap();
        let changed = Arc::new(Notify::new());
        let mirror = Mirror::<IpPool>::start(store.clone(), changed.clone());
        assert!(mirror.wait_listed(Duration::from_secs(10)).await);
        assert_eq!(names(&mirror.snapshot().unwrap()), ["first"]);

        let second = IpPool::new("second", "10.2.0.0/16".parse().unwrap());
        store.create_resource(&second).await.unwrap();
        store
            .create(Kind::IPPool, "broken", b"{not json".to_vec())
            .await
            .unwrap();
        wait_until("the second pool", || {
            names(&mirror.snapshot().unwrap()) == ["first", "second"]
        })
        .await;
        let stored = store
            .get_resource::<IpPool>("first")
            .await
            .unwrap()
            .unwrap();
        store
            .delete_resource::<IpPool>("first", &stored.revision)
            .await
            .unwrap();
        wait_until("the first pool's deletion", || {
            names(&mirror.snapshot().unwrap()) == ["second"]
        })
        .await;
    }
}
