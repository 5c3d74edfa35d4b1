//! Unit tests of what happens around and between CNI operations: two sandboxes of one pod, GC
//! racing ADD, a caller that goes away mid-ADD, the reconciler's lock. FakeNetlink's gates hold
//! a call where the test wants it; every wait polls with a deadline. No root needed.

use std::time::{Duration, Instant};

use manul_proto::agent::{CniRequest, GcRequest, agent_server::Agent};
use manul_store::IpPool;
use tonic::Request;

use super::{tests::fixture, *};
use crate::{
    netlink::{Route, RouteTarget},
    server::AgentService,
};

/// Polls `condition` every few milliseconds until it holds; panics after 10 s.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn same_pod(mut request: EndpointRequest) -> EndpointRequest {
    request.pod_namespace = "web".into();
    request.pod_name = "db-0".into();
    request
}

#[tokio::test]
async fn a_late_del_of_the_old_sandbox_leaves_the_new_sandbox_of_the_same_pod_working() {
    let fixture = fixture("10.30.0.0/16").await;
    let old = same_pod(fixture.request("old"));
    let new = same_pod(fixture.request("new"));
    let first = fixture.endpoints.add(&old).await.unwrap();
    // The kubelet makes the new sandbox before the old one's DEL comes.
    let second = fixture.endpoints.add(&new).await.unwrap();
    assert_eq!(first.host.name, second.host.name, "one pod, one name");
    fixture.endpoints.delete(&old).await.unwrap();

    let link = fixture.netlink.link(&second.host.name).await.unwrap();
    assert_eq!(
        link.and_then(|link| link.alias),
        Some("new".to_string()),
        "the new sandbox's host link must stay"
    );
    let pods = fixture.netlink.pod_interfaces();
    assert!(
        pods.contains(&(new.netns.clone().unwrap(), "eth0".into())),
        "{pods:?}"
    );
    let route = Route::main(
        second.addresses[0],
        RouteTarget::Device(second.host.name.clone()),
    );
    assert!(
        fixture.netlink.routes().contains(&route),
        "the new pod's route must stay"
    );
    fixture.endpoints.check(&new).await.unwrap();
    assert!(fixture.handle_addresses("old").await.is_empty());
    assert_eq!(fixture.handle_addresses("new").await.len(), 1);
    // A reconcile agrees.
    let report = fixture.endpoints.reconcile().await.unwrap();
    assert_eq!(
        (report.links_deleted, report.routes_deleted),
        (0, 0),
        "{report:?}"
    );
    assert!(fixture.netlink.routes().contains(&route));
}

#[tokio::test]
async fn gc_leaves_a_running_add_and_does_not_free_its_address() {
    let fixture = fixture("10.31.0.0/16").await;
    let request = fixture.request("busy");
    // Hold the ADD after its allocation and record, before its pod side.
    fixture.netlink.close_gate("configure_pod_interface");
    let add = {
        let endpoints = fixture.endpoints.clone();
        let request = request.clone();
        tokio::spawn(async move { endpoints.add(&request).await })
    };
    wait_until("the ADD to reach the pod side", || {
        fixture.netlink.arrived_at_gate("configure_pod_interface") > 0
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fixture
        .endpoints
        .find("busy", "eth0")
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the ADD never wrote its record");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(fixture.handle_addresses("busy").await.len(), 1);
    // The runtime's list of valid attachments predates the ADD.
    let released = tokio::time::timeout(
        Duration::from_secs(10),
        fixture.endpoints.garbage_collect("manul", &[]),
    )
    .await
    .expect("GC must not wait for the ADD")
    .unwrap();
    assert!(released.is_empty(), "GC released {released:?}");
    fixture.netlink.open_gate("configure_pod_interface");
    let added = add.await.unwrap().unwrap();
    assert_eq!(
        fixture.handle_addresses("busy").await,
        vec![added.addresses[0].addr()],
        "the pod's address must stay allocated"
    );
    fixture.endpoints.check(&request).await.unwrap();
}

fn cni_request(request: &EndpointRequest) -> CniRequest {
    CniRequest {
        container_id: request.container_id.clone(),
        netns: request
            .netns
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        ifname: request.ifname.clone(),
        pod_namespace: request.pod_namespace.clone(),
        pod_name: request.pod_name.clone(),
        network_name: request.network_name.clone(),
        assign_ipv4: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn an_add_whose_caller_goes_away_finishes_and_the_next_del_leaves_nothing() {
    let fixture = fixture("10.32.0.0/16").await;
    let service = Arc::new(AgentService::new(fixture.endpoints.clone()));
    let request = fixture.request("cut");
    fixture.netlink.close_gate("configure_pod_interface");
    let call = {
        let service = service.clone();
        let message = cni_request(&request);
        tokio::spawn(async move { service.add(Request::new(message)).await })
    };
    wait_until("the ADD to reach the pod side", || {
        fixture.netlink.arrived_at_gate("configure_pod_interface") > 0
    })
    .await;
    // The plugin is killed: tonic drops the call's future.
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    fixture.netlink.open_gate("configure_pod_interface");
    // The ADD runs to its end: a whole endpoint, not half of one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if fixture
            .endpoints
            .find("cut", "eth0")
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the cut-off ADD never finished");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fixture.endpoints.check(&request).await.unwrap();
    // The runtime follows a failed ADD with a DEL.
    service
        .del(Request::new(cni_request(&request)))
        .await
        .unwrap();
    assert!(fixture.netlink.links().is_empty());
    assert!(fixture.handle_addresses("cut").await.is_empty());
    assert!(
        fixture
            .endpoints
            .find("cut", "eth0")
            .await
            .unwrap()
            .is_none()
    );
    let gc = service
        .gc(Request::new(GcRequest {
            network_name: "manul".into(),
            valid_attachments: Vec::new(),
        }))
        .await
        .unwrap();
    assert!(gc.into_inner().released.is_empty());
}

#[tokio::test]
async fn the_reconciler_reads_the_routing_tables_without_blocking_cni_requests() {
    let fixture = fixture("10.33.0.0/16").await;
    fixture.netlink.close_gate("manul_routes");
    let reconcile = {
        let endpoints = fixture.endpoints.clone();
        tokio::spawn(async move { endpoints.reconcile().await })
    };
    wait_until("the reconciler to dump the routes", || {
        fixture.netlink.arrived_at_gate("manul_routes") > 0
    })
    .await;
    // The dump is slow (a million routes): an ADD must not wait for it.
    let added = tokio::time::timeout(
        Duration::from_secs(10),
        fixture.endpoints.add(&fixture.request("during")),
    )
    .await
    .expect("ADD waited for the reconciler's route dump")
    .unwrap();
    fixture.netlink.open_gate("manul_routes");
    let report = reconcile.await.unwrap().unwrap();
    // The dump predates the ADD's route: the applier must not take it for missing or stray.
    assert_eq!(
        (report.routes_added, report.routes_deleted),
        (0, 0),
        "{report:?}"
    );
    let route = Route::main(
        added.addresses[0],
        RouteTarget::Device(added.host.name.clone()),
    );
    assert!(fixture.netlink.routes().contains(&route));
}

#[tokio::test]
async fn an_ipv6_pod_turns_ipv6_forwarding_on() {
    let fixture = fixture("10.34.0.0/16").await;
    fixture
        .endpoints
        .ipam()
        .create_pool(&IpPool::new("v6", "fd00:34::/112".parse().unwrap()))
        .await
        .unwrap();
    let mut request = fixture.request("dual");
    request.assign_ipv6 = true;
    fixture.endpoints.add(&request).await.unwrap();
    assert_eq!(
        fixture
            .sysctl
            .values()
            .get("net/ipv6/conf/all/forwarding")
            .map(String::as_str),
        Some("1"),
        "IPv6 pods must be routable off the node"
    );
}

#[tokio::test]
async fn the_reconciler_releases_a_block_that_stayed_empty_and_withdraws_its_blackhole() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> = Arc::new(
        manul_store::embedded::EmbeddedStore::open(&dir.path().join("store.redb")).unwrap(),
    );
    // Blocks of 4 addresses: the fifth pod opens a second block.
    Ipam::new(store.clone())
        .create_pool(&IpPool {
            block_size: 30,
            ..IpPool::new("small-blocks", "10.35.0.0/24".parse().unwrap())
        })
        .await
        .unwrap();
    let netlink = Arc::new(crate::netlink::fake::FakeNetlink::new());
    let endpoints = Endpoints::new(
        "node1".into(),
        store,
        netlink.clone(),
        Arc::new(crate::sysctl::FakeSysctl::new()),
    )
    .with_empty_block_grace(Some(Duration::ZERO));
    let request = |index: usize| {
        let netns = dir.path().join(format!("netns-{index}"));
        std::fs::write(&netns, b"").unwrap();
        EndpointRequest {
            container_id: format!("c{index}"),
            netns: Some(netns),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: format!("pod-{index}"),
            assign_ipv4: true,
            ..Default::default()
        }
    };
    let mut added = Vec::new();
    for index in 0..6 {
        added.push(endpoints.add(&request(index)).await.unwrap());
    }
    let blackholes = || {
        netlink
            .routes()
            .into_iter()
            .filter(|route| route.target == RouteTarget::Blackhole)
            .map(|route| route.destination)
            .collect::<Vec<_>>()
    };
    assert_eq!(blackholes().len(), 2, "{:?}", netlink.routes());
    // Empty the second block; the first keeps room (a node keeps one block with room).
    for index in 3..6 {
        endpoints.delete(&request(index)).await.unwrap();
    }
    let second_block: ipnet::IpNet = format!("{}/30", added[4].addresses[0].addr())
        .parse::<ipnet::IpNet>()
        .unwrap()
        .trunc();
    // The first pass marks the block empty, the next one (grace zero) releases it.
    endpoints.reconcile().await.unwrap();
    endpoints.reconcile().await.unwrap();
    assert_eq!(
        endpoints.ipam().affine_blocks("node1").await.unwrap().len(),
        1,
        "the empty block must be released"
    );
    assert!(
        !blackholes().contains(&second_block),
        "its blackhole must go: {:?}",
        blackholes()
    );
    // The node's last block stays, however long it is empty.
    for index in 0..3 {
        endpoints.delete(&request(index)).await.unwrap();
    }
    endpoints.reconcile().await.unwrap();
    endpoints.reconcile().await.unwrap();
    assert_eq!(
        endpoints.ipam().affine_blocks("node1").await.unwrap().len(),
        1
    );
    assert_eq!(blackholes().len(), 1);
}
