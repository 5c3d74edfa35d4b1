//! Unit tests of the CNI flow against FakeNetlink, FakeSysctl and a real embedded store in a
//! temporary directory: no root needed.

use std::{path::PathBuf, sync::Arc};

use ipnet::IpNet;
use manul_store::{IpPool, embedded::EmbeddedStore};

use super::*;
use crate::{
    netlink::{Route, RouteTarget, fake::FakeNetlink},
    sysctl::FakeSysctl,
};

pub(super) struct Fixture {
    pub(super) endpoints: Arc<Endpoints>,
    pub(super) netlink: Arc<FakeNetlink>,
    pub(super) sysctl: Arc<FakeSysctl>,
    pub(super) dir: tempfile::TempDir,
}

pub(super) async fn fixture(pool: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let cidr: IpNet = pool.parse().unwrap();
    let block_size = IpPool::default_block_size(&cidr).max(cidr.prefix_len());
    Ipam::new(store.clone())
        .create_pool(&IpPool {
            block_size,
            ..IpPool::new("pool", cidr)
        })
        .await
        .unwrap();
    let netlink = Arc::new(FakeNetlink::new());
    netlink.set_default_route_mtu(Some(1450));
    let sysctl = Arc::new(FakeSysctl::new());
    let endpoints = Arc::new(Endpoints::new(
        "node1".into(),
        store,
        netlink.clone(),
        sysctl.clone(),
    ));
    Fixture {
        endpoints,
        netlink,
        sysctl,
        dir,
    }
}

impl Fixture {
    /// A request for a pod whose netns is a plain file in the temp dir (the fake only needs a
    /// path that exists).
    pub(super) fn request(&self, container_id: &str) -> EndpointRequest {
        let netns: PathBuf = self.dir.path().join(format!("netns-{container_id}"));
        std::fs::write(&netns, b"").unwrap();
        EndpointRequest {
            container_id: container_id.into(),
            netns: Some(netns),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: format!("pod-{container_id}"),
            network_name: "manul".into(),
            assign_ipv4: true,
            ..Default::default()
        }
    }

    pub(super) async fn handle_addresses(&self, container_id: &str) -> Vec<std::net::IpAddr> {
        let handle = crate::naming::ipam_handle(container_id, "eth0");
        self.endpoints
            .ipam()
            .addresses_by_handle(&handle)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn add_wires_pod_host_routes_sysctls_and_records_the_endpoint() {
    let fixture = fixture("10.10.0.0/16").await;
    let request = fixture.request("c1");
    let added = fixture.endpoints.add(&request).await.unwrap();
    let host = crate::naming::host_interface_name("default", "pod-c1", "c1");
    assert_eq!(added.host.name, host);
    assert_eq!(
        added.host.mtu, 1450,
        "MTU comes from the default route's interface"
    );
    assert_eq!(added.addresses.len(), 1);
    let address = added.addresses[0];
    assert_eq!(address.prefix_len(), 32);
    assert!(
        "10.10.0.0/16"
            .parse::<IpNet>()
            .unwrap()
            .contains(&address.addr())
    );
    let routes = fixture.netlink.routes();
    assert!(routes.contains(&Route::main(address, RouteTarget::Device(host.clone()),)));
    assert!(routes.iter().any(
        |route| route.target == RouteTarget::Blackhole && route.destination.prefix_len() == 26
    ));
    let values = fixture.sysctl.values();
    assert_eq!(
        values
            .get(&format!("net/ipv4/conf/{host}/proxy_arp"))
            .map(String::as_str),
        Some("1")
    );
    let recorded = fixture
        .endpoints
        .find("c1", "eth0")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(recorded.ip_networks, vec![address]);
    assert_eq!(recorded.interface_name, host);
    assert_eq!(recorded.metadata.uid.len(), 36, "a new record gets a uid");
    assert!(!recorded.metadata.creation_timestamp.is_empty());
}

#[tokio::test]
async fn add_twice_returns_the_same_endpoint() {
    let fixture = fixture("10.10.0.0/16").await;
    let request = fixture.request("c1");
    let first = fixture.endpoints.add(&request).await.unwrap();
    let second = fixture.endpoints.add(&request).await.unwrap();
    assert_eq!(first.addresses, second.addresses);
    assert_eq!(
        fixture
            .netlink
            .calls()
            .iter()
            .filter(|call| call.starts_with("create_veth"))
            .count(),
        1
    );
    assert_eq!(fixture.handle_addresses("c1").await.len(), 1);
}

async fn assert_nothing_left(fixture: &Fixture, container_id: &str) {
    assert!(
        fixture.netlink.links().is_empty(),
        "links left: {:?}",
        fixture.netlink.links()
    );
    assert!(
        fixture
            .netlink
            .routes()
            .iter()
            .all(|route| route.target == RouteTarget::Blackhole),
        "routes left: {:?}",
        fixture.netlink.routes()
    );
    assert!(
        fixture.handle_addresses(container_id).await.is_empty(),
        "allocation left"
    );
    assert!(
        fixture
            .endpoints
            .find(container_id, "eth0")
            .await
            .unwrap()
            .is_none(),
        "endpoint record left"
    );
}

#[tokio::test]
async fn a_failure_at_any_kernel_step_rolls_everything_back() {
    for method in ["create_veth", "configure_pod_interface", "add_route"] {
        let fixture = fixture("10.10.0.0/16").await;
        fixture.netlink.fail_on(method);
        let error = fixture
            .endpoints
            .add(&fixture.request("c1"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, EndpointError::Netlink(_)),
            "{method}: {error}"
        );
        assert_nothing_left(&fixture, "c1").await;
        // The address went back to the pool: the next pod can be wired.
        fixture.endpoints.add(&fixture.request("c2")).await.unwrap();
    }
}

#[tokio::test]
async fn an_exhausted_pool_is_reported_and_leaves_nothing() {
    let fixture = fixture("10.20.0.0/30").await;
    for index in 0..4 {
        fixture
            .endpoints
            .add(&fixture.request(&format!("c{index}")))
            .await
            .unwrap();
    }
    let error = fixture
        .endpoints
        .add(&fixture.request("c9"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            EndpointError::Ipam(manul_ipam::IpamError::NoAddressesAvailable { .. })
        ),
        "{error}"
    );
    assert!(
        fixture
            .endpoints
            .find("c9", "eth0")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(fixture.netlink.links().len(), 4);
}

#[tokio::test]
async fn a_requested_address_is_honoured_or_refused() {
    let fixture = fixture("10.10.0.0/16").await;
    let mut request = fixture.request("c1");
    request.requested_ips = vec!["10.10.3.7".parse().unwrap()];
    let added = fixture.endpoints.add(&request).await.unwrap();
    assert_eq!(
        added.addresses,
        vec!["10.10.3.7/32".parse::<IpNet>().unwrap()]
    );
    let mut again = fixture.request("c2");
    again.requested_ips = vec!["10.10.3.7".parse().unwrap()];
    let error = fixture.endpoints.add(&again).await.unwrap_err();
    assert!(
        matches!(
            error,
            EndpointError::Ipam(manul_ipam::IpamError::AddressInUse { .. })
        ),
        "{error}"
    );
    assert_nothing_left_for(&fixture, "c2").await;
}

async fn assert_nothing_left_for(fixture: &Fixture, container_id: &str) {
    assert!(fixture.handle_addresses(container_id).await.is_empty());
    assert!(
        fixture
            .endpoints
            .find(container_id, "eth0")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn delete_releases_everything_and_succeeds_twice_and_without_netns() {
    let fixture = fixture("10.10.0.0/16").await;
    let request = fixture.request("c1");
    let added = fixture.endpoints.add(&request).await.unwrap();
    let released = fixture.endpoints.delete(&request).await.unwrap();
    assert_eq!(released, vec![added.addresses[0].addr()]);
    assert_nothing_left(&fixture, "c1").await;
    assert!(fixture.endpoints.delete(&request).await.unwrap().is_empty());
    let without_netns = EndpointRequest {
        netns: None,
        ..request
    };
    assert!(
        fixture
            .endpoints
            .delete(&without_netns)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn delete_after_the_netns_vanished_still_cleans_the_host() {
    let fixture = fixture("10.10.0.0/16").await;
    let request = fixture.request("c1");
    fixture.endpoints.add(&request).await.unwrap();
    fixture
        .netlink
        .remove_netns(request.netns.as_ref().unwrap());
    fixture.endpoints.delete(&request).await.unwrap();
    assert_nothing_left(&fixture, "c1").await;
}

#[tokio::test]
async fn invalid_requests_are_refused_before_any_kernel_call() {
    let fixture = fixture("10.10.0.0/16").await;
    let cases = vec![
        EndpointRequest {
            container_id: String::new(),
            ..fixture.request("c1")
        },
        EndpointRequest {
            ifname: "much-too-long-ifname".into(),
            ..fixture.request("c1")
        },
        EndpointRequest {
            netns: Some("/nonexistent/netns".into()),
            ..fixture.request("c1")
        },
        EndpointRequest {
            ipv4_pools: vec!["no-such-pool".into()],
            ..fixture.request("c1")
        },
        EndpointRequest {
            ipv4_pools: vec!["fd00::/64".into()],
            ..fixture.request("c1")
        },
        EndpointRequest {
            assign_ipv4: false,
            ..fixture.request("c1")
        },
    ];
    for request in cases {
        let error = fixture.endpoints.add(&request).await.unwrap_err();
        assert!(
            matches!(error, EndpointError::InvalidRequest(_)),
            "{request:?}: {error}"
        );
    }
    assert!(
        fixture.netlink.calls().is_empty(),
        "{:?}",
        fixture.netlink.calls()
    );
}

#[tokio::test]
async fn check_passes_on_a_wired_pod_and_fails_when_a_route_is_gone() {
    let fixture = fixture("10.10.0.0/16").await;
    let request = fixture.request("c1");
    let added = fixture.endpoints.add(&request).await.unwrap();
    fixture.endpoints.check(&request).await.unwrap();
    let route = Route::main(
        added.addresses[0],
        RouteTarget::Device(added.host.name.clone()),
    );
    fixture.netlink.delete_route(&route).await.unwrap();
    let error = fixture.endpoints.check(&request).await.unwrap_err();
    assert!(matches!(error, EndpointError::CheckFailed(_)), "{error}");
    let unknown = fixture
        .endpoints
        .check(&fixture.request("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, EndpointError::UnknownContainer { .. }),
        "{unknown}"
    );
}

#[tokio::test]
async fn gc_releases_only_attachments_that_are_not_valid() {
    let fixture = fixture("10.10.0.0/16").await;
    for id in ["keep", "drop"] {
        fixture.endpoints.add(&fixture.request(id)).await.unwrap();
    }
    let valid = vec![check::Attachment {
        container_id: "keep".into(),
        ifname: "eth0".into(),
    }];
    let released = fixture
        .endpoints
        .garbage_collect("manul", &valid)
        .await
        .unwrap();
    assert_eq!(
        released,
        vec![check::Attachment {
            container_id: "drop".into(),
            ifname: "eth0".into()
        }]
    );
    assert!(fixture.handle_addresses("drop").await.is_empty());
    assert_eq!(fixture.handle_addresses("keep").await.len(), 1);
}

/// A pod added, then its host route removed from the kernel behind the agent's back.
async fn pod_without_its_route(fixture: &Fixture) -> (AddedEndpoint, Route) {
    let added = fixture.endpoints.add(&fixture.request("c1")).await.unwrap();
    let own = Route::main(
        added.addresses[0],
        RouteTarget::Device(added.host.name.clone()),
    );
    fixture.netlink.delete_route(&own).await.unwrap();
    (added, own)
}

/// The rewrite after a carrier's loss puts back what the kernel dropped, from the applier's
/// state alone, and counts it.
#[tokio::test]
async fn lost_routes_are_written_again_and_counted() {
    let fixture = fixture("10.10.0.0/16").await;
    let (_, own) = pod_without_its_route(&fixture).await;
    assert_eq!(fixture.endpoints.lost_routes_rewritten(), 0);
    let report = fixture.endpoints.rewrite_lost_routes().await.unwrap();
    assert_eq!(report.added + report.replaced, 1, "{report:?}");
    assert!(fixture.netlink.routes().contains(&own));
    assert_eq!(fixture.endpoints.lost_routes_rewritten(), 1);
    let again = fixture.endpoints.rewrite_lost_routes().await.unwrap();
    assert_eq!(again.added + again.replaced, 0, "nothing was lost since");
    assert_eq!(fixture.endpoints.lost_routes_rewritten(), 1);
}

#[tokio::test]
async fn reconcile_restores_missing_routes_and_removes_strays_only() {
    let fixture = fixture("10.10.0.0/16").await;
    let (added, own) = pod_without_its_route(&fixture).await;
    fixture.netlink.add_link("cali0000000000", 1500);
    fixture.netlink.add_link("eth1", 1500);
    let report = fixture.endpoints.reconcile().await.unwrap();
    assert_eq!(report.routes_added, 1);
    assert_eq!(report.links_deleted, 1);
    assert!(fixture.netlink.routes().contains(&own));
    let names: Vec<String> = fixture
        .netlink
        .links()
        .into_iter()
        .map(|link| link.name)
        .collect();
    assert!(names.contains(&"eth1".to_string()) && names.contains(&added.host.name));
    assert!(!names.contains(&"cali0000000000".to_string()));
    let again = fixture.endpoints.reconcile().await.unwrap();
    assert_eq!(
        (
            again.routes_added,
            again.routes_deleted,
            again.links_deleted
        ),
        (0, 0, 0),
        "converged"
    );
}

#[tokio::test]
async fn pods_lose_the_vxlan_overhead_from_their_mtu_while_a_pool_uses_vxlan() {
    let fixture = fixture("10.10.0.0/16").await;
    fixture
        .endpoints
        .set_encapsulation_overhead(crate::vxlan::VXLAN_OVERHEAD);
    let added = fixture.endpoints.add(&fixture.request("c1")).await.unwrap();
    assert_eq!(
        added.host.mtu, 1400,
        "1450 on the uplink, less 50 for VXLAN"
    );
    fixture.endpoints.set_encapsulation_overhead(0);
    let added = fixture.endpoints.add(&fixture.request("c2")).await.unwrap();
    assert_eq!(added.host.mtu, 1450);
}

/// In Kubernetes mode an ADD takes its pools from the pod's annotation, over the CNI config's.
#[tokio::test]
async fn an_add_uses_the_pool_the_pods_annotation_names() {
    let Fixture { dir, .. } = fixture("10.1.0.0/16").await;
    let store: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("annotated.redb")).unwrap());
    let ipam = Ipam::new(store.clone());
    for (name, cidr) in [("configured", "10.1.0.0/16"), ("annotated", "10.2.0.0/16")] {
        ipam.create_pool(&IpPool::new(name, cidr.parse().unwrap()))
            .await
            .unwrap();
    }
    let pods = crate::pods::FakePodDirectory::default();
    let annotations = [(
        crate::pods::pools::IPV4_POOLS.to_string(),
        r#"["annotated"]"#.to_string(),
    )];
    let pod = crate::pods::PodInfo {
        node: "node1".into(),
        annotations: annotations.into(),
        ..Default::default()
    };
    pods.put_pod("default", "pod-c1", pod);
    let endpoints = Endpoints::new(
        "node1".into(),
        store,
        Arc::new(FakeNetlink::new()),
        Arc::new(FakeSysctl::new()),
    )
    .with_pod_directory(Arc::new(pods));
    let fixture = Fixture {
        endpoints: Arc::new(endpoints),
        netlink: Arc::new(FakeNetlink::new()),
        sysctl: Arc::new(FakeSysctl::new()),
        dir,
    };
    let mut request = fixture.request("c1");
    request.ipv4_pools = vec!["configured".into()];
    let added = fixture.endpoints.add(&request).await.unwrap();
    let annotated: IpNet = "10.2.0.0/16".parse().unwrap();
    assert!(
        added
            .addresses
            .iter()
            .all(|a| annotated.contains(&a.addr())),
        "{:?}",
        added.addresses
    );
}

/// GRO at the host end: turned on at ADD; a failure there costs the pod nothing, and the
/// reconciler turns it on where the agent has not (a failed try, or a host end made by an
/// older agent), once.
#[tokio::test]
async fn gro_is_turned_on_at_add_and_by_the_reconciler_where_it_is_missing() {
    let fixture = fixture("10.10.0.0/16").await;
    let first = fixture.endpoints.add(&fixture.request("c1")).await.unwrap();
    assert_eq!(fixture.netlink.gro_enabled(&first.host.name), Some(true));
    fixture.netlink.fail_on("enable_gro");
    let second = fixture.endpoints.add(&fixture.request("c2")).await.unwrap();
    assert_eq!(
        fixture.netlink.gro_enabled(&second.host.name),
        Some(false),
        "the failure was injected"
    );
    let report = fixture.endpoints.reconcile().await.unwrap();
    assert_eq!(
        (report.gro_enabled, report.errors.len()),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(fixture.netlink.gro_enabled(&second.host.name), Some(true));
    let requests = |netlink: &crate::netlink::fake::FakeNetlink| {
        netlink
            .calls()
            .iter()
            .filter(|call| call.starts_with("enable_gro"))
            .count()
    };
    let before = requests(&fixture.netlink);
    assert_eq!(before, 3, "c1, the failed c2, the reconciler's c2");
    let again = fixture.endpoints.reconcile().await.unwrap();
    assert_eq!(again.gro_enabled, 0);
    assert_eq!(requests(&fixture.netlink), before, "converged: no request");
}
