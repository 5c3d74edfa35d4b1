//! A pool dataplane pass against the embedded store, the recording netlink fake and the nft
//! fake: vxlan.calico and its routes follow the pools' mode, in the safe order, and come back
//! when the device is deleted behind the agent's back.

use std::{sync::Arc, time::Duration};

use ipnet::IpNet;
use manul_ipam::Ipam;
use manul_store::{
    Datastore, DatastoreExt, EncapsulationMode, IpPool, IpamBlock, Node, NodeBgpSpec,
    embedded::EmbeddedStore,
};
use tokio::sync::Notify;

use super::{PoolTask, VxlanStep};
use crate::{
    endpoint::Endpoints,
    netlink::{InterfaceAddresses, Route, RouteTarget, fake::FakeNetlink},
    nft::{NftApplier, fake::FakeNft},
    sysctl::FakeSysctl,
    vxlan::{Family, VXLAN_DEVICE, reconcile_tunnel},
    watch::Mirror,
};

struct Fixture {
    store: Arc<dyn Datastore>,
    netlink: Arc<FakeNetlink>,
    nft: Arc<FakeNft>,
    task: PoolTask,
    _dir: tempfile::TempDir,
}

fn node(name: &str, address: &str) -> Node {
    let address6 = match name {
        "a" => "fd80:1::1/64",
        "b" => "fd80:2::2/64",
        _ => "fd80:1::3/64",
    };
    Node {
        name: name.into(),
        bgp: Some(NodeBgpSpec {
            ipv4_address: Some(address.parse().unwrap()),
            ipv6_address: Some(address6.parse().unwrap()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Node a (10.0.1.1/24 and fd80:1::1/64 on eth0, this node) and node b (10.0.2.2/24,
/// fd80:2::2/64: another subnet) with its tunnel endpoints already allocated, one pool in
/// `mode`.
async fn fixture(mode: EncapsulationMode, bgp: bool) -> Fixture {
    fixture_with(
        vec![IpPool {
            vxlan_mode: mode,
            ..IpPool::new("pool", "10.244.0.0/16".parse().unwrap())
        }],
        bgp,
    )
    .await
}

async fn fixture_with(pools: Vec<IpPool>, bgp: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let ipam = Ipam::new(store.clone());
    for pool in &pools {
        ipam.create_pool(pool).await.unwrap();
    }
    for (name, address) in [("a", "10.0.1.1/24"), ("b", "10.0.2.2/24")] {
        store.create_resource(&node(name, address)).await.unwrap();
    }
    for family in Family::ALL {
        reconcile_tunnel(&store, "b", &ipam.pools().await.unwrap(), family)
            .await
            .unwrap();
    }
    let netlink = Arc::new(FakeNetlink::new());
    netlink.add_link("eth0", 1500);
    netlink.set_interface_addresses(vec![InterfaceAddresses {
        name: "eth0".into(),
        up: true,
        addresses: vec![
            "10.0.1.1/24".parse().unwrap(),
            "fd80:1::1/64".parse().unwrap(),
        ],
    }]);
    let endpoints = Arc::new(Endpoints::new(
        "a".into(),
        store.clone(),
        netlink.clone(),
        Arc::new(FakeSysctl::new()),
    ));
    let changed = Arc::new(Notify::new());
    let nft = Arc::new(FakeNft::default());
    let task = PoolTask {
        store: store.clone(),
        pools: Mirror::start(store.clone(), changed.clone()),
        nodes: Mirror::start(store.clone(), changed.clone()),
        blocks: Mirror::start(store.clone(), changed.clone()),
        node: "a".into(),
        endpoints,
        nft: NftApplier::new(nft.clone()),
        vxlan: Family::ALL
            .map(|family| VxlanStep::new(family, netlink.clone(), bgp))
            .into(),
        changed,
        last_clean: None,
    };
    Fixture {
        store,
        netlink,
        nft,
        task,
        _dir: dir,
    }
}

impl Fixture {
    /// One pass, once the mirrors hold what the store holds.
    async fn pass(&mut self) {
        self.catch_up().await;
        self.task.pass().await.unwrap();
    }

    /// What a wake-up by a change does, once the mirrors hold what the store holds.
    async fn pass_if_changed(&mut self) {
        self.catch_up().await;
        self.task.pass_if_changed().await.unwrap();
    }

    async fn catch_up(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let pools = values::<IpPool>(&self.store).await;
            let nodes = values::<Node>(&self.store).await;
            let blocks = values::<IpamBlock>(&self.store).await;
            if self.task.pools.snapshot() == Some(pools)
                && self.task.nodes.snapshot() == Some(nodes)
                && self.task.blocks.snapshot() == Some(blocks)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the mirrors did not catch up with the store"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Another node `name` at `address` with its IPv4 tunnel endpoint.
    async fn add_node(&self, name: &str, address: &str) {
        self.store
            .create_resource(&node(name, address))
            .await
            .unwrap();
        let pools = Ipam::new(self.store.clone()).pools().await.unwrap();
        reconcile_tunnel(&self.store, name, &pools, Family::V4)
            .await
            .unwrap();
    }

    /// `holder` takes the `nth` address of `block` (borrowed unless the block is its own).
    async fn take_address(&self, holder: &str, block: IpNet, nth: usize) -> IpNet {
        Ipam::new(self.store.clone())
            .assign_ip(&manul_ipam::AssignIpRequest {
                address: block.hosts().nth(nth).unwrap(),
                handle_id: format!("{holder}-{nth}"),
                node: holder.into(),
                attributes: [("node".to_string(), holder.to_string())].into(),
            })
            .await
            .unwrap()
    }

    /// The kernel and nftables operations so far (netlink calls, nft listings and scripts).
    fn kernel_work(&self) -> (usize, usize, usize) {
        (
            self.netlink.calls().len(),
            self.nft.listings(),
            self.nft.applied().len(),
        )
    }

    async fn set_mode(&self, mode: EncapsulationMode) {
        let stored = self
            .store
            .get_resource::<IpPool>("pool")
            .await
            .unwrap()
            .unwrap();
        let mut pool = stored.value.clone();
        pool.vxlan_mode = mode;
        self.store
            .update_resource(&pool, &stored.revision)
            .await
            .unwrap();
    }

    async fn node(&self, name: &str) -> Node {
        self.store
            .get_resource::<Node>(name)
            .await
            .unwrap()
            .unwrap()
            .value
    }

    /// The routes through vxlan.calico: (destination, gateway).
    fn tunnel_routes(&self) -> Vec<(IpNet, String)> {
        self.netlink
            .routes()
            .into_iter()
            .filter_map(|route| match &route.target {
                RouteTarget::Via(hops) if hops[0].device == VXLAN_DEVICE && hops[0].onlink => {
                    Some((route.destination, hops[0].gateway.to_string()))
                }
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn the_device_comes_before_its_routes_and_goes_after_them() {
    let mut fixture = fixture(EncapsulationMode::CrossSubnet, true).await;
    fixture.pass().await;

    let b = fixture.node("b").await;
    let b_tunnel = b.ipv4_vxlan_tunnel_addr.unwrap();
    let device = fixture
        .netlink
        .links()
        .into_iter()
        .find(|link| link.name == VXLAN_DEVICE)
        .expect("vxlan.calico is made while a pool uses VXLAN");
    assert_eq!(device.mtu, 1450, "the uplink's MTU less 50");
    let a_tunnel = fixture.node("a").await.ipv4_vxlan_tunnel_addr.unwrap();
    assert_eq!(
        fixture.netlink.link_addresses(VXLAN_DEVICE),
        vec![IpNet::from(std::net::IpAddr::V4(a_tunnel))]
    );
    let neighbours = fixture.netlink.neighbours();
    assert_eq!(neighbours.len(), 1);
    assert_eq!(neighbours[0].1.ip, std::net::IpAddr::V4(b_tunnel));
    let fdb = fixture.netlink.fdb_entries();
    assert_eq!(fdb.len(), 1);
    assert_eq!(fdb[0].1.destination.to_string(), "10.0.2.2");
    let routes = fixture.tunnel_routes();
    assert_eq!(routes.len(), 1, "b's block, b being on another subnet");
    assert!(routes[0].0.contains(&std::net::IpAddr::V4(b_tunnel)));
    assert_eq!(routes[0].1, b_tunnel.to_string());

    // A second pass changes nothing in the kernel.
    let calls = fixture.netlink.calls().len();
    fixture.pass().await;
    let writes: Vec<String> = fixture.netlink.calls()[calls..]
        .iter()
        .filter(|call| !call.starts_with("interface_addresses") && !call.starts_with("link "))
        .filter(|call| !call.starts_with("vxlan_neighbours") && !call.starts_with("vxlan_fdb"))
        .filter(|call| !call.starts_with("ensure_vxlan") && !call.starts_with("set_link"))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // Never: the routes go first, then the device.
    fixture.set_mode(EncapsulationMode::Never).await;
    let calls = fixture.netlink.calls().len();
    fixture.pass().await;
    assert!(fixture.tunnel_routes().is_empty());
    assert!(
        fixture
            .netlink
            .links()
            .iter()
            .all(|link| link.name != VXLAN_DEVICE)
    );
    let later: Vec<String> = fixture.netlink.calls()[calls..].to_vec();
    let route_out = later.iter().position(|call| {
        call.contains("delete") && call.contains(VXLAN_DEVICE) && call.contains("via")
    });
    let device_out = later
        .iter()
        .position(|call| call == &format!("delete_link {VXLAN_DEVICE}"));
    assert!(
        matches!((route_out, device_out), (Some(route), Some(device)) if route < device),
        "route deleted before the device: {later:?}"
    );
    assert_eq!(fixture.node("a").await.ipv4_vxlan_tunnel_addr, None);
}

#[tokio::test]
async fn a_device_deleted_behind_the_agents_back_comes_back_with_its_routes() {
    let mut fixture = fixture(EncapsulationMode::Always, true).await;
    fixture.pass().await;
    assert_eq!(fixture.tunnel_routes().len(), 1);
    use crate::netlink::Netlink as _;
    fixture
        .netlink
        .delete_link(VXLAN_DEVICE, None)
        .await
        .unwrap();
    assert!(fixture.tunnel_routes().is_empty(), "the kernel drops them");
    fixture.pass().await;
    assert_eq!(fixture.tunnel_routes().len(), 1);
    assert_eq!(fixture.netlink.neighbours().len(), 1);
    assert_eq!(fixture.netlink.fdb_entries().len(), 1);
}

#[tokio::test]
async fn without_bgp_a_same_subnet_node_is_routed_straight_and_a_borrowed_address_follows_its_node()
{
    let mut fixture = fixture(EncapsulationMode::CrossSubnet, false).await;
    // c shares a's subnet and holds an address of b's block (borrowed).
    fixture.add_node("c", "10.0.1.3/24").await;
    let ipam = Ipam::new(fixture.store.clone());
    let b_block = ipam.affine_blocks("b").await.unwrap()[0];
    let borrowed = fixture.take_address("c", b_block, 5).await;
    fixture.pass().await;

    let b_tunnel = fixture.node("b").await.ipv4_vxlan_tunnel_addr.unwrap();
    let c_block = ipam.affine_blocks("c").await.unwrap()[0];
    let routes: Vec<(IpNet, RouteTarget)> = fixture
        .netlink
        .routes()
        .into_iter()
        .filter(|route| matches!(route.target, RouteTarget::Via(_)))
        .map(|route| (route.destination, route.target))
        .collect();
    let via = |gateway: &str, device: &str, onlink| {
        RouteTarget::via(vec![crate::netlink::NextHop {
            gateway: gateway.parse().unwrap(),
            device: device.into(),
            onlink,
        }])
    };
    assert!(
        routes.contains(&(b_block, via(&b_tunnel.to_string(), VXLAN_DEVICE, true))),
        "b is on another subnet: through the tunnel; {routes:?}"
    );
    assert!(
        routes.contains(&(c_block, via("10.0.1.3", "eth0", false))),
        "c is on this subnet and BGP is off: straight to it; {routes:?}"
    );
    assert!(
        routes.contains(&(borrowed, via("10.0.1.3", "eth0", false))),
        "the address c borrowed from b's block goes to c; {routes:?}"
    );
}

#[tokio::test]
async fn an_ipv6_pool_gets_vxlan_v6_calico_beside_the_ipv4_device() {
    let mut fixture = fixture_with(
        vec![
            IpPool {
                vxlan_mode: EncapsulationMode::Always,
                ..IpPool::new("pool", "10.244.0.0/16".parse().unwrap())
            },
            IpPool {
                vxlan_mode: EncapsulationMode::Always,
                ..IpPool::new("pool-v6", "fd00:244::/48".parse().unwrap())
            },
        ],
        true,
    )
    .await;
    fixture.pass().await;

    let links = fixture.netlink.links();
    let mtu = |name: &str| {
        links
            .iter()
            .find(|link| link.name == name)
            .map(|link| link.mtu)
    };
    assert_eq!(mtu(VXLAN_DEVICE), Some(1450));
    assert_eq!(mtu("vxlan-v6.calico"), Some(1430), "the uplink's less 70");
    let b = fixture.node("b").await;
    let b_tunnel6 = b.ipv6_vxlan_tunnel_addr.expect("b's IPv6 tunnel address");
    let fdb: Vec<(String, String)> = fixture
        .netlink
        .fdb_entries()
        .into_iter()
        .map(|(device, entry)| (device, entry.destination.to_string()))
        .collect();
    assert!(
        fdb.contains(&("vxlan-v6.calico".into(), "fd80:2::2".into())),
        "{fdb:?}"
    );
    assert!(
        fdb.contains(&(VXLAN_DEVICE.into(), "10.0.2.2".into())),
        "{fdb:?}"
    );
    let v6_routes: Vec<Route> = fixture
        .netlink
        .routes()
        .into_iter()
        .filter(|route| route.destination.addr().is_ipv6())
        .collect();
    assert_eq!(v6_routes.len(), 1, "{v6_routes:?}");
    assert_eq!(
        v6_routes[0].target,
        RouteTarget::via(vec![crate::netlink::NextHop {
            gateway: std::net::IpAddr::V6(b_tunnel6),
            device: "vxlan-v6.calico".into(),
            onlink: true,
        }])
    );
    assert_eq!(
        fixture.task.endpoints.encapsulation_overhead(),
        70,
        "one pod MTU for both families: the larger overhead"
    );
}

async fn values<T: manul_store::Resource>(store: &Arc<dyn Datastore>) -> Vec<T> {
    store
        .list_resources::<T>("")
        .await
        .unwrap()
        .into_iter()
        .map(|versioned| versioned.value)
        .collect()
}

#[tokio::test]
async fn an_address_taken_inside_a_block_costs_no_kernel_work_and_a_borrowed_one_does() {
    let mut fixture = fixture(EncapsulationMode::CrossSubnet, true).await;
    fixture.pass().await;
    // The first pass wrote a's tunnel address on its Node: one more pass sees that.
    fixture.pass_if_changed().await;
    let ipam = Ipam::new(fixture.store.clone());
    let b_block = ipam.affine_blocks("b").await.unwrap()[0];

    // b takes an address of its own block: a block change that moves no route.
    let before = fixture.kernel_work();
    fixture.take_address("b", b_block, 3).await;
    fixture.pass_if_changed().await;
    assert_eq!(
        fixture.kernel_work(),
        before,
        "no netlink call, no nft listing or script for an address b took in its own block"
    );

    // A third node borrows an address of b's block: that one is routed to its holder.
    fixture.add_node("c", "10.0.2.3/24").await;
    let borrowed = fixture.take_address("c", b_block, 5).await;
    fixture.pass_if_changed().await;
    let c_tunnel = fixture.node("c").await.ipv4_vxlan_tunnel_addr.unwrap();
    assert!(
        fixture
            .tunnel_routes()
            .contains(&(borrowed, c_tunnel.to_string())),
        "the borrowed address goes to c's tunnel: {:?}",
        fixture.tunnel_routes()
    );

    // A pool's mode change is acted on by a wake-up too.
    fixture.set_mode(EncapsulationMode::Never).await;
    fixture.pass_if_changed().await;
    assert!(fixture.tunnel_routes().is_empty());
}
