//! The datastore through the agent's socket: the `RawStore` service over a real embedded store,
//! served on a Unix socket in a temporary directory, and `RemoteDatastore` on the other end
//! passing manul-store's conformance checks (all but watch, which the socket does not offer):
//! get and list in name order, AlreadyExists, Conflict for stale revisions (ABORTED on the
//! wire), NotFound, and concurrent compare-and-swap increments losing nothing. Needs no root.

use std::{future::Future, pin::Pin, sync::Arc};

use manul_agent::{
    client::{Timeouts, unix_channel},
    raw_store::{AgentInfo, RawStoreService, RemoteDatastore},
};
use manul_store::{Datastore, Kind, Revision, embedded::EmbeddedStore, testing::conformance};
use tokio_stream::wrappers::UnixListenerStream;

/// An embedded store served on a socket, and a client of it; the server stops on drop.
struct Served {
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
    remote: RemoteDatastore,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> = Arc::new(
        EmbeddedStore::open(&dir.path().join("s.redb"))
            .unwrap()
            .with_deferred_durability(),
    );
    let socket = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let service = RawStoreService::server(
        store,
        AgentInfo {
            version: "9.9.9".into(),
            node_name: "node-1".into(),
            datastore: format!("embedded://{}", dir.path().join("s.redb").display()),
        },
    );
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
    let channel = unix_channel(&socket, Timeouts::default()).await.unwrap();
    Served {
        _dir: dir,
        server,
        remote: RemoteDatastore::new(channel),
    }
}

type Check = fn(Arc<dyn Datastore>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_through_the_socket_passes_the_conformance_checks() {
    let checks: [(&str, Check); 4] = [
        ("get and list", |store| {
            Box::pin(conformance::get_and_list_by_kind_and_prefix_in_name_order(
                store,
            ))
        }),
        ("already exists", |store| {
            Box::pin(conformance::create_of_an_existing_name_is_already_exists(
                store,
            ))
        }),
        ("conflict and not found", |store| {
            Box::pin(
                conformance::stale_writes_conflict_and_writes_of_missing_names_are_not_found(store),
            )
        }),
        ("concurrent increments", |store| {
            Box::pin(conformance::concurrent_compare_and_swap_increments_lose_nothing(store))
        }),
    ];
    for (name, check) in checks {
        eprintln!("check: {name}");
        let served = serve().await;
        check(Arc::new(served.remote.clone())).await;
    }
}

#[tokio::test]
async fn describe_names_the_agent_and_watch_is_refused_by_name() {
    let served = serve().await;
    let info = served.remote.describe().await.unwrap();
    assert_eq!(info.agent_version, "9.9.9");
    assert_eq!(info.node_name, "node-1");
    assert_eq!(info.datastore_type, "embedded");
    let error = match served
        .remote
        .watch(Kind::IPPool, "", &Revision::default())
        .await
    {
        Ok(_) => panic!("a watch through the socket must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("not offered through manul-agent's socket"),
        "{error}"
    );
}
