//! The Kubernetes backend against kube's mock service (tower-test), driven by a scripted API
//! (tests/kube_mock): compare-and-swap conflicts and a caller's retry, get/list round trips
//! for every kind, watches with bookmarks, resumption, 410 Gone and a relist, Node records
//! in Node annotations and WorkloadEndpoints from Pods. No API server: see README.md for what
//! that leaves open.

mod kube_mock;

use std::fmt::Debug;

use futures::StreamExt;
use http::Method;
use kube_mock::{Reply, Step, bookmark, custom, event, list, scripted, status};
use manul_store::{
    AffinityState, AllocationAttribute, BgpConfiguration, BgpPeer, BlockAffinity, Datastore,
    DatastoreExt, IpPool, IpPoolIndex, IpamBlock, IpamConfiguration, IpamHandle, Kind, Node,
    NodeBgpSpec, Resource, Revision, StoreError, WatchEvent, WorkloadEndpoint,
    kubernetes::{KubernetesStore, names::object_name, objects::plural},
};
use serde_json::json;

const POOLS: &str = "/apis/manul.dev/v1/ippools";

fn path(kind: Kind, name: &str) -> String {
    format!(
        "/apis/manul.dev/v1/{}/{}",
        plural(kind),
        object_name(name).unwrap()
    )
}

#[tokio::test]
async fn a_stale_update_conflicts_and_a_callers_compare_and_swap_retry_succeeds() {
    let pool = IpPool::new("default-ipv4-ippool", "10.244.0.0/16".parse().unwrap());
    let at = |version| {
        custom(
            "IPPool",
            &pool.name,
            version,
            serde_json::to_value(&pool).unwrap(),
        )
    };
    let name_path = path(Kind::IPPool, &pool.name);
    let (client, served) = scripted(vec![
        Step::new(Method::POST, POOLS, Reply::Echo(201, "1")),
        Step::new(
            Method::POST,
            POOLS,
            Reply::Json(409, status(409, "AlreadyExists")),
        ),
        // Another writer moved the pool to 2: our update from 1 loses.
        Step::new(
            Method::PUT,
            &name_path,
            Reply::Json(409, status(409, "Conflict")),
        ),
        // The caller's retry: read again, write from 2.
        Step::get(&name_path, Reply::Json(200, at("2"))),
        Step::new(Method::PUT, &name_path, Reply::Echo(200, "3")),
        Step::new(
            Method::DELETE,
            &name_path,
            Reply::Json(409, status(409, "Conflict")),
        ),
        Step::new(
            Method::DELETE,
            &name_path,
            Reply::Json(200, status(200, "Success")),
        ),
    ]);
    let store = KubernetesStore::with_client(client);

    let created = store.create_resource(&pool).await.unwrap();
    assert_eq!(created, Revision("1".into()));
    let again = store.create_resource(&pool).await.unwrap_err();
    assert!(matches!(again, StoreError::AlreadyExists { .. }), "{again}");

    let mut expected = created;
    let mut tries = 0;
    let written = loop {
        tries += 1;
        let mut changed = pool.clone();
        changed.nat_outgoing = true;
        match store.update_resource(&changed, &expected).await {
            Ok(revision) => break revision,
            Err(error) if error.is_conflict() => {
                assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
                expected = store
                    .get_resource::<IpPool>(&pool.name)
                    .await
                    .unwrap()
                    .unwrap()
                    .revision;
            }
            Err(error) => panic!("{error}"),
        }
    };
    assert_eq!((tries, &written), (2, &Revision("3".into())));

    let stale = store
        .delete(Kind::IPPool, &pool.name, &Revision("2".into()))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale}");
    store
        .delete(Kind::IPPool, &pool.name, &written)
        .await
        .unwrap();

    let bodies = served.bodies().await;
    assert_eq!(
        bodies[2]["metadata"]["resourceVersion"], "1",
        "the first PUT carries 1"
    );
    assert_eq!(
        bodies[4]["metadata"]["resourceVersion"], "2",
        "the retry carries 2"
    );
    assert_eq!(bodies[4]["spec"]["natOutgoing"], true);
    assert_eq!(bodies[5]["preconditions"]["resourceVersion"], "2");
    assert_eq!(bodies[6]["preconditions"]["resourceVersion"], "3");
}

/// Create, get and list of one record through the scripted API: the same record comes out.
async fn round_trip<T: Resource + PartialEq + Debug>(record: T) {
    let name = record.name();
    let collection = format!("/apis/manul.dev/v1/{}", plural(T::KIND));
    let (client, served) = scripted(vec![
        Step::new(Method::POST, &collection, Reply::Echo(201, "11")),
        Step::get(&path(T::KIND, &name), Reply::Last),
        Step::get(&collection, Reply::ListOfLast("12")),
    ]);
    let store = KubernetesStore::with_client(client);
    assert_eq!(
        store.create_resource(&record).await.unwrap(),
        Revision("11".into())
    );
    let read = store.get_resource::<T>(&name).await.unwrap().unwrap();
    assert_eq!(
        (&read.value, &read.revision.0[..]),
        (&record, "11"),
        "{}",
        T::KIND
    );
    let listing = store.list(T::KIND, "").await.unwrap();
    assert_eq!(listing.revision, Revision("12".into()));
    assert_eq!(listing.items.len(), 1);
    let listed: T = serde_json::from_slice(&listing.items[0].value).unwrap();
    assert_eq!((&listed, &listing.items[0].name), (&record, &name));
    let bodies = served.bodies().await;
    assert_eq!(bodies[0]["kind"], T::KIND.as_str());
    assert_eq!(bodies[0]["apiVersion"], "manul.dev/v1");
    assert!(manul_store::kubernetes::names::is_object_name(
        bodies[0]["metadata"]["name"].as_str().unwrap()
    ));
}

#[tokio::test]
async fn every_custom_kind_round_trips_its_record() {
    let cidr = "10.244.0.0/26".parse().unwrap();
    let mut allocations = vec![None; 64];
    allocations[0] = Some(0);
    round_trip(IpPool::new(
        "default-ipv4-ippool",
        "10.244.0.0/16".parse().unwrap(),
    ))
    .await;
    round_trip(IpamBlock {
        cidr,
        affinity: Some("host:node-1".into()),
        allocations,
        unallocated: (1..64).collect(),
        attributes: vec![AllocationAttribute {
            handle_id: Some("k8s-pod-network.abc".into()),
            secondary: [("node".to_string(), "node-1".to_string())].into(),
        }],
        strict_affinity: false,
        deleted: false,
        sequence_number: 4,
        empty_since: None,
    })
    .await;
    round_trip(BlockAffinity {
        node: "node-1".into(),
        cidr,
        state: AffinityState::Confirmed,
        deleted: false,
    })
    .await;
    // A handle whose name Kubernetes refuses (upper case, '/'): stored under an encoded name.
    round_trip(IpamHandle {
        handle_id: "k8s-pod-network.ABC/eth1".into(),
        block: [(IpamBlock::name_for(&cidr), 1)].into(),
        deleted: false,
    })
    .await;
    round_trip(IpamConfiguration {
        strict_affinity: true,
        ..Default::default()
    })
    .await;
    round_trip(IpPoolIndex {
        pools: [(
            "default-ipv4-ippool".to_string(),
            "10.244.0.0/16".parse().unwrap(),
        )]
        .into(),
    })
    .await;
    let mut peer = BgpPeer::global("rack-tor", "10.0.0.1:1179", 65001);
    peer.keepalive_time = Some("10s".into());
    round_trip(peer).await;
    let mut config = BgpConfiguration::named("node.node-1");
    config.as_number = Some(64513);
    round_trip(config).await;
}

#[tokio::test]
async fn a_watch_skips_bookmarks_resumes_from_the_last_version_and_ends_compacted_on_gone() {
    let spec = |name: &str| json!({"name": name});
    let (client, served) = scripted(vec![
        Step::get(
            POOLS,
            Reply::Json(200, list(vec![custom("IPPool", "a", "4", spec("a"))], "5")),
        ),
        Step::get(
            POOLS,
            Reply::Events(vec![
                event("ADDED", custom("IPPool", "b", "6", spec("b"))),
                event("ADDED", custom("IPPool", "zz", "7", spec("zz"))),
                bookmark("IPPool", "8"),
            ]),
        )
        .query("watch=true")
        .query("allowWatchBookmarks=true")
        .query("resourceVersion=5"),
        // The server ended the stream: the watch resumes from the bookmark's version.
        Step::get(
            POOLS,
            Reply::Events(vec![
                event("MODIFIED", custom("IPPool", "b", "9", spec("b"))),
                event("ERROR", status(410, "Expired")),
            ]),
        )
        .query("watch=true")
        .query("resourceVersion=8"),
        // The caller lists again and watches from the new list.
        Step::get(
            POOLS,
            Reply::Json(200, list(vec![custom("IPPool", "b", "9", spec("b"))], "20")),
        ),
        Step::get(
            POOLS,
            Reply::Events(vec![event(
                "DELETED",
                custom("IPPool", "b", "21", spec("b")),
            )]),
        )
        .query("resourceVersion=20"),
        // And a watch whose version is gone when it opens.
        Step::get(POOLS, Reply::Json(410, status(410, "Gone"))).query("resourceVersion=3"),
    ]);
    let store = KubernetesStore::with_client(client);
    let listing = store.list(Kind::IPPool, "").await.unwrap();
    assert_eq!(listing.revision, Revision("5".into()));
    let mut events = store
        .watch(Kind::IPPool, "b", &listing.revision)
        .await
        .unwrap();
    let put = |name: &str, version: &str| {
        WatchEvent::Put(manul_store::KeyValue {
            kind: Kind::IPPool,
            name: name.into(),
            value: serde_json::to_vec(&spec(name)).unwrap(),
            revision: Revision(version.into()),
        })
    };
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        put("b", "6"),
        "zz is not under the prefix b"
    );
    assert_eq!(events.next().await.unwrap().unwrap(), put("b", "9"));
    let error = events.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&error, StoreError::Compacted { requested, .. } if requested.0 == "9"),
        "{error}"
    );
    assert!(events.next().await.is_none(), "an error ends the stream");

    let relisted = store.list(Kind::IPPool, "").await.unwrap();
    assert_eq!(
        first_event(&store, Kind::IPPool, "", &relisted.revision).await,
        WatchEvent::Deleted {
            kind: Kind::IPPool,
            name: "b".into(),
            revision: Revision("21".into())
        }
    );

    let mut gone = store
        .watch(Kind::IPPool, "", &Revision("3".into()))
        .await
        .unwrap();
    let error = gone.next().await.unwrap().unwrap_err();
    assert!(matches!(error, StoreError::Compacted { .. }), "{error}");
    served.bodies().await;
}

/// The first event of a watch, which is then dropped.
async fn first_event(
    store: &KubernetesStore,
    kind: Kind,
    prefix: &str,
    after: &Revision,
) -> WatchEvent {
    let mut events = store.watch(kind, prefix, after).await.unwrap();
    events.next().await.unwrap().unwrap()
}

fn kubernetes_node(version: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "resourceVersion": version, "labels": {"kubernetes.io/os": "linux"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}})
}

#[tokio::test]
async fn node_records_are_created_updated_and_deleted_in_the_nodes_annotations() {
    let node_path = "/api/v1/nodes/node-1";
    let (client, served) = scripted(vec![
        Step::get(
            "/api/v1/nodes/node-2",
            Reply::Json(404, status(404, "NotFound")),
        ),
        Step::get(node_path, Reply::Json(200, kubernetes_node("30"))),
        Step::new(
            Method::PATCH,
            node_path,
            Reply::MergePatch(Some(kubernetes_node("30")), "31"),
        ),
        Step::get(node_path, Reply::Last),
        // kubelet wrote status since our read: the update conflicts.
        Step::new(
            Method::PATCH,
            node_path,
            Reply::Json(409, status(409, "Conflict")),
        ),
        Step::new(Method::PATCH, node_path, Reply::MergePatch(None, "33")),
        Step::get(node_path, Reply::Last),
        Step::new(Method::PATCH, node_path, Reply::MergePatch(None, "34")),
        Step::get(node_path, Reply::Last),
        Step::get("/api/v1/nodes", Reply::ListOfLast("35")),
        Step::get(
            "/api/v1/nodes",
            Reply::Events(vec![event("MODIFIED", kubernetes_node("36"))]),
        ),
    ]);
    let store = KubernetesStore::with_client(client);
    let mut record = Node {
        name: "node-1".into(),
        metadata: manul_store::ResourceMeta {
            labels: [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
            ..Default::default()
        },
        bgp: Some(NodeBgpSpec {
            ipv4_address: Some("10.0.0.1/24".parse().unwrap()),
            ..Default::default()
        }),
        ipv4_vxlan_tunnel_addr: Some("10.244.1.0".parse().unwrap()),
        ..Default::default()
    };
    let missing = Node {
        name: "node-2".into(),
        ..Default::default()
    };
    let error = store.create_resource(&missing).await.unwrap_err();
    assert!(
        matches!(error, StoreError::NotFound { .. }),
        "kubelet owns Nodes: {error}"
    );

    let created = store.create_resource(&record).await.unwrap();
    assert_eq!(created, Revision("31".into()));
    let read = store.get_resource::<Node>("node-1").await.unwrap().unwrap();
    assert_eq!(read.value, record);

    record.bgp.as_mut().unwrap().as_number = Some(64600);
    let error = store
        .update_resource(&record, &Revision("30".into()))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    store
        .update_resource(&record, &read.revision)
        .await
        .unwrap();
    let updated = store.get_resource::<Node>("node-1").await.unwrap().unwrap();
    assert_eq!(updated.value, record);

    store
        .delete(Kind::Node, "node-1", &updated.revision)
        .await
        .unwrap();
    assert!(store.get(Kind::Node, "node-1").await.unwrap().is_none());
    let listing = store.list(Kind::Node, "").await.unwrap();
    assert!(
        listing.items.is_empty(),
        "a Node without our record is no store Node"
    );
    let mut events = store
        .watch(Kind::Node, "", &listing.revision)
        .await
        .unwrap();
    // A kubelet status update of a Node that never held a record is nothing to us; the stream
    // then resumes and the script has no more steps.
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.next()).await;
    assert!(
        !matches!(next, Ok(Some(Ok(_)))),
        "unexpected event {next:?}"
    );

    let bodies = served.bodies().await;
    let annotations = &bodies[2]["metadata"]["annotations"];
    assert_eq!(
        bodies[2]["metadata"]["resourceVersion"], "30",
        "create is conditional on the read"
    );
    assert_eq!(annotations["projectcalico.org/IPv4Address"], "10.0.0.1/24");
    assert_eq!(
        annotations["projectcalico.org/IPv4VXLANTunnelAddr"],
        "10.244.1.0"
    );
    assert!(
        !annotations["manul.dev/node"]
            .as_str()
            .unwrap()
            .contains("labels")
    );
    assert_eq!(
        bodies[5]["metadata"]["annotations"]["projectcalico.org/ASNumber"],
        "64600"
    );
    assert_eq!(
        bodies[7]["metadata"]["annotations"]["manul.dev/deleted"],
        "node-1"
    );
}

fn pod(version: &str, annotations: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": version, "annotations": annotations},
        "spec": {"nodeName": "node-1", "containers": []}})
}

#[tokio::test]
async fn workload_endpoints_are_written_to_and_derived_from_their_pods() {
    let endpoint = WorkloadEndpoint {
        metadata: Default::default(),
        name: WorkloadEndpoint::name_for("node-1", "c0ffee", "eth0"),
        node: "node-1".into(),
        orchestrator: "k8s".into(),
        namespace: "shop".into(),
        pod: "web".into(),
        container_id: "c0ffee".into(),
        endpoint: "eth0".into(),
        interface_name: "cali0123456789a".into(),
        mac: "66:00:00:00:00:01".into(),
        ip_networks: vec!["10.244.0.5/32".parse().unwrap()],
        ipam_handle: "k8s-pod-network.c0ffee".into(),
        netns: "/var/run/netns/x".into(),
        network: "k8s-pod-network".into(),
    };
    let pod_path = "/api/v1/namespaces/shop/pods/web";
    let by_node = "fieldSelector=spec.nodeName%3Dnode-1";
    let (client, served) = scripted(vec![
        Step::get(pod_path, Reply::Json(200, pod("50", json!({})))),
        Step::new(
            Method::PATCH,
            pod_path,
            Reply::MergePatch(Some(pod("50", json!({}))), "51"),
        ),
        Step::get("/api/v1/pods", Reply::ListOfLast("52")).query(by_node),
        Step::get("/api/v1/pods", Reply::ListOfLast("53")).query(by_node),
        Step::get("/api/v1/pods", Reply::ListOfLast("54")).query(by_node),
        Step::new(Method::PATCH, pod_path, Reply::MergePatch(None, "55")),
        Step::get(
            "/api/v1/pods",
            Reply::Events(vec![event(
                "MODIFIED",
                pod("55", json!({"manul.dev/deleted": endpoint.name})),
            )]),
        )
        .query(by_node)
        .query("resourceVersion=54"),
    ]);
    let store = KubernetesStore::with_client(client);
    assert_eq!(
        store.create_resource(&endpoint).await.unwrap(),
        Revision("51".into())
    );
    let read = store
        .get_resource::<WorkloadEndpoint>(&endpoint.name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&read.value, &read.revision.0[..]), (&endpoint, "51"));
    let prefix = WorkloadEndpoint::node_prefix("node-1");
    let listing = store.list(Kind::WorkloadEndpoint, &prefix).await.unwrap();
    assert_eq!(listing.items.len(), 1);
    store
        .delete_resource::<WorkloadEndpoint>(&endpoint.name, &read.revision)
        .await
        .unwrap();
    assert_eq!(
        first_event(
            &store,
            Kind::WorkloadEndpoint,
            &prefix,
            &Revision("54".into())
        )
        .await,
        WatchEvent::Deleted {
            kind: Kind::WorkloadEndpoint,
            name: endpoint.name.clone(),
            revision: Revision("55".into())
        }
    );

    let bodies = served.bodies().await;
    let annotations = &bodies[1]["metadata"]["annotations"];
    assert_eq!(annotations["cni.projectcalico.org/podIP"], "10.244.0.5/32");
    assert_eq!(annotations["cni.projectcalico.org/podIPs"], "10.244.0.5/32");
    assert_eq!(annotations["cni.projectcalico.org/containerID"], "c0ffee");
    assert_eq!(
        bodies[5]["metadata"]["resourceVersion"], "51",
        "the delete is conditional"
    );
    assert!(bodies[5]["metadata"]["annotations"]["cni.projectcalico.org/podIP"].is_null());
}

#[tokio::test]
async fn a_write_without_an_expected_revision_is_refused_before_any_request() {
    let (client, served) = scripted(Vec::new());
    let store = KubernetesStore::with_client(client);
    let none = Revision(String::new());
    let error = store
        .update(Kind::IPPool, "p", br#"{"name":"p"}"#.to_vec(), &none)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    let error = store.delete(Kind::Node, "n1", &none).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    assert!(served.bodies().await.is_empty());
}
