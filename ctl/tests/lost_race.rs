//! Compare-and-swap under a concurrent writer, through the library on a real embedded store:
//! another writer changes the object between manulctl's read and its write. `apply` loses
//! the race, reads again and writes its change on top; `replace` and `patch` with a
//! resourceVersion report the conflict and write nothing. Without CAS the other writer's
//! change would be overwritten silently.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use manul_ctl::{
    input::parse_documents,
    store_access::Resources,
    verbs::{
        parse_all,
        write::{WriteMode, write},
    },
};
use manul_store::{
    Datastore, DatastoreExt, Kind, Listing, Node, Revision, StoreError, WatchStream,
    embedded::EmbeddedStore,
};

/// A store whose next update is preceded by another writer's update of the same object
/// (labels {"other": "writer"}), made through the same real store.
struct RacingWriter {
    inner: Arc<dyn Datastore>,
    armed: AtomicBool,
}

#[async_trait::async_trait]
impl Datastore for RacingWriter {
    async fn get(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<manul_store::KeyValue>, StoreError> {
        self.inner.get(kind, name).await
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        self.inner.list(kind, name_prefix).await
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        self.inner.create(kind, name, value).await
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let mut node = self
                .inner
                .get_resource::<Node>(name)
                .await?
                .expect("the node exists");
            node.value
                .metadata
                .labels
                .insert("other".into(), "writer".into());
            self.inner
                .update_resource(&node.value, &node.revision)
                .await?;
        }
        self.inner.update(kind, name, value, expected).await
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
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

const NODE: &str =
    "apiVersion: manul.dev/v1\nkind: Node\nmetadata:\n  name: node-1\n  labels:\n    rack: a\n";

async fn racing_store() -> (Arc<dyn Datastore>, Arc<RacingWriter>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    inner
        .create_resource(&Node {
            name: "node-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let racing = Arc::new(RacingWriter {
        inner: inner.clone(),
        armed: AtomicBool::new(true),
    });
    (inner, racing, dir)
}

#[tokio::test]
async fn apply_retries_a_lost_race_from_a_fresh_read() {
    let (inner, racing, _dir) = racing_store().await;
    let resources = Resources::new(racing.clone());
    let documents = parse_all(&parse_documents(NODE, "node.yaml").unwrap()).unwrap();
    let mut out = Vec::new();
    write(&resources, &documents, WriteMode::Apply, false, &mut out)
        .await
        .unwrap();
    assert!(
        !racing.armed.load(Ordering::SeqCst),
        "the other writer never ran"
    );
    let node = inner.get_resource::<Node>("node-1").await.unwrap().unwrap();
    // Apply writes the whole document: its labels replace the other writer's, but only after
    // re-reading (the first write, at the stale revision, was refused by the store).
    assert_eq!(
        node.value.metadata.labels.get("rack").map(String::as_str),
        Some("a")
    );
    assert_eq!(node.value.metadata.labels.get("other"), None);
}

#[tokio::test]
async fn replace_reports_a_lost_race_and_writes_nothing() {
    let (inner, racing, _dir) = racing_store().await;
    let resources = Resources::new(racing.clone());
    let documents = parse_all(&parse_documents(NODE, "node.yaml").unwrap()).unwrap();
    let mut out = Vec::new();
    let error = write(&resources, &documents, WriteMode::Replace, false, &mut out)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("Node \"node-1\" was changed by another writer while this command wrote it"),
        "{error}"
    );
    let node = inner.get_resource::<Node>("node-1").await.unwrap().unwrap();
    assert_eq!(
        node.value.metadata.labels.get("other").map(String::as_str),
        Some("writer")
    );
    assert_eq!(
        node.value.metadata.labels.get("rack"),
        None,
        "replace wrote after losing"
    );
}

#[tokio::test]
async fn label_retries_a_lost_race_and_keeps_the_other_writers_change() {
    let (inner, racing, _dir) = racing_store().await;
    let resources = Resources::new(racing.clone());
    let mut out = Vec::new();
    manul_ctl::verbs::patch::label(
        &resources,
        manul_ctl::kinds::ResourceKind::Node,
        "node-1",
        "zone=z1",
        false,
        &mut out,
    )
    .await
    .unwrap();
    let node = inner.get_resource::<Node>("node-1").await.unwrap().unwrap();
    assert_eq!(
        node.value.metadata.labels.get("zone").map(String::as_str),
        Some("z1")
    );
    assert_eq!(
        node.value.metadata.labels.get("other").map(String::as_str),
        Some("writer"),
        "the label was written over the other writer's change"
    );
}
