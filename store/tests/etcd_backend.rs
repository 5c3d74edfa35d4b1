//! What only the etcd backend has: a watch that survives its member's death, an error that
//! says which members were tried, key prefixes that keep clusters apart, and the etcd URL in
//! `open_datastore_with_options`. Real etcd members on 127.0.0.1, killed when a test ends.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use manul_store::{
    Datastore, DatastoreOptions, Kind, StoreError, WatchEvent, WatchStream,
    etcd::{EtcdConfig, EtcdStore, EtcdTls},
    open_datastore_with_options,
    testing::etcd::EtcdCluster,
};

const EVENT_WITHIN: Duration = Duration::from_secs(30);

async fn next_put(watch: &mut WatchStream) -> (String, Vec<u8>) {
    match tokio::time::timeout(EVENT_WITHIN, watch.next()).await {
        Ok(Some(Ok(WatchEvent::Put(kv)))) => (kv.name, kv.value),
        other => panic!("expected a put, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_its_member_is_killed_and_restarted_without_loss_or_repeat() {
    let mut etcd = EtcdCluster::start_one().unwrap_or_else(|error| panic!("{error}"));
    let store = EtcdStore::new(&etcd.config("/resume", Duration::from_secs(30))).unwrap();
    let listing = store.list(Kind::Node, "").await.unwrap();
    let mut watch = store
        .watch(Kind::Node, "", &listing.revision)
        .await
        .unwrap();
    for i in 0..3 {
        store
            .create(Kind::Node, &format!("before-{i}"), vec![i])
            .await
            .unwrap();
    }
    for i in 0..3 {
        assert_eq!(next_put(&mut watch).await, (format!("before-{i}"), vec![i]));
    }

    etcd.kill(0);
    let restarted = tokio::task::spawn_blocking(move || etcd.restart(0).map(|()| etcd));
    // Written while the member comes back: the store retries until it answers.
    for i in 0..3 {
        store
            .create(Kind::Node, &format!("after-{i}"), vec![10 + i])
            .await
            .unwrap();
    }
    let _etcd = restarted
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("{error}"));
    for i in 0..3 {
        assert_eq!(
            next_put(&mut watch).await,
            (format!("after-{i}"), vec![10 + i])
        );
    }
    store.create(Kind::Node, "last", vec![99]).await.unwrap();
    assert_eq!(next_put(&mut watch).await, ("last".to_string(), vec![99]));
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_backend_error_naming_the_members_tried() {
    // Ports that were free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = EtcdConfig::from_url(&format!("etcd://127.0.0.1:{port}"))
        .unwrap()
        .with_retry_for(Duration::from_secs(1));
    let store = EtcdStore::new(&config).unwrap();
    let error = store.get(Kind::Node, "n").await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Backend(_)), "{message}");
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}")),
        "{message}"
    );
    assert!(
        message.contains("check that the etcd members run"),
        "{message}"
    );
}

#[tokio::test]
async fn open_datastore_reads_etcd_urls_and_prefixes_keep_stores_apart() {
    let etcd = EtcdCluster::start_one().unwrap_or_else(|error| panic!("{error}"));
    let open = |prefix: &str| {
        open_datastore_with_options(
            &etcd.url(),
            &DatastoreOptions {
                etcd_prefix: Some(prefix.to_string()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let (a, a_again, b): (Arc<dyn Datastore>, _, _) = (open("/a"), open("/a/"), open("/b"));
    a.create(Kind::Node, "n", b"in a".to_vec()).await.unwrap();
    let seen = a_again.get(Kind::Node, "n").await.unwrap().unwrap();
    assert_eq!(seen.value, b"in a");
    assert!(b.get(Kind::Node, "n").await.unwrap().is_none());
    assert!(b.list(Kind::Node, "").await.unwrap().items.is_empty());
    b.create(Kind::Node, "n", b"in b".to_vec()).await.unwrap();
    assert_eq!(a.list(Kind::Node, "").await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn a_tls_cluster_is_reached_with_its_ca_and_a_client_certificate_only() {
    let etcd = EtcdCluster::start_tls(1).unwrap_or_else(|error| panic!("{error}"));
    let tls = etcd.client_tls().unwrap().clone();
    let store = open_datastore_with_options(
        &etcd.url(),
        &DatastoreOptions {
            etcd_ca_file: tls.ca_file.clone(),
            etcd_cert_file: tls.cert_file.clone(),
            etcd_key_file: tls.key_file.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let revision = store
        .create(Kind::Node, "n", b"tls".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get(Kind::Node, "n").await.unwrap().unwrap().revision,
        revision
    );

    let short = Duration::from_secs(1);
    let without_certificate = etcd.config("/manul/v1", short).with_tls(EtcdTls {
        ca_file: tls.ca_file.clone(),
        ..Default::default()
    });
    let without_tls = EtcdConfig::from_url(&etcd.url())
        .unwrap()
        .with_retry_for(short);
    for config in [without_certificate, without_tls] {
        let error = EtcdStore::new(&config)
            .unwrap()
            .get(Kind::Node, "n")
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error}");
        assert!(error.to_string().contains("TLS files"), "{error}");
    }
}

#[tokio::test]
async fn a_list_longer_than_a_page_reads_every_page_at_one_revision() {
    let etcd = EtcdCluster::start_one().unwrap_or_else(|error| panic!("{error}"));
    let config = etcd
        .config("/paged", Duration::from_secs(10))
        .with_list_page(2);
    let store = EtcdStore::new(&config).unwrap();
    let names: Vec<String> = (0..7).map(|i| format!("a{i}")).collect();
    for name in names.iter().rev() {
        store
            .create(Kind::IPAMBlock, name, name.as_bytes().to_vec())
            .await
            .unwrap();
    }
    store
        .create(Kind::IPAMBlock, "b", b"b".to_vec())
        .await
        .unwrap();
    store
        .create(Kind::IPAMHandle, "a9", b"other kind".to_vec())
        .await
        .unwrap();
    let listing = store.list(Kind::IPAMBlock, "a").await.unwrap();
    let listed: Vec<&str> = listing.items.iter().map(|kv| kv.name.as_str()).collect();
    assert_eq!(listed, names);
    assert_eq!(
        store.list(Kind::IPAMBlock, "").await.unwrap().items.len(),
        8
    );
    // The listing's revision is the store's at the first page: a watch from it sees the next
    // write and nothing before it.
    let mut watch = store
        .watch(Kind::IPAMBlock, "", &listing.revision)
        .await
        .unwrap();
    store
        .create(Kind::IPAMBlock, "c", b"c".to_vec())
        .await
        .unwrap();
    assert_eq!(next_put(&mut watch).await, ("c".to_string(), b"c".to_vec()));
}
