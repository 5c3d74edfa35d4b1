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
    Datastore, DatastoreExt, Node,
    embedded::EmbeddedStore,
    testing::interposed::{Interposed, Write},
};

/// A store whose next update is preceded by another writer's update of the same Node
/// (labels {"other": "writer"}), made through the same real store; `armed` until it ran.
struct RacingWriter {
    store: Arc<dyn Datastore>,
    armed: Arc<AtomicBool>,
}

fn racing_writer(inner: Arc<dyn Datastore>) -> RacingWriter {
    let armed = Arc::new(AtomicBool::new(true));
    let rival = (inner.clone(), armed.clone());
    let store = Interposed::new(inner, move |write, _kind, name| {
        let (inner, armed) = rival.clone();
        let name = name.to_string();
        Box::pin(async move {
            if write != Write::Update || !armed.swap(false, Ordering::SeqCst) {
                return Ok(());
            }
            let mut node = inner
                .get_resource::<Node>(&name)
                .await?
                .expect("the node exists");
            node.value
                .metadata
                .labels
                .insert("other".into(), "writer".into());
            inner.update_resource(&node.value, &node.revision).await?;
            Ok(())
        })
    });
    RacingWriter {
        store: Arc::new(store),
        armed,
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
    let racing = Arc::new(racing_writer(inner.clone()));
    (inner, racing, dir)
}

#[tokio::test]
async fn apply_retries_a_lost_race_from_a_fresh_read() {
    let (inner, racing, _dir) = racing_store().await;
    let resources = Resources::new(racing.store.clone());
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
    let resources = Resources::new(racing.store.clone());
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
    let resources = Resources::new(racing.store.clone());
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
