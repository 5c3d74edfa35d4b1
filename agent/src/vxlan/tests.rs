//! Unit tests of the VXLAN decisions: the VTEP MAC, the tunnel address decision and its
//! datastore reconcile (embedded store), and the routes by pool mode.

use std::sync::Arc;

use ipnet::IpNet;
use manul_ipam::Ipam;
use manul_store::{
    Datastore, DatastoreExt, EncapsulationMode, IpPool, Node, NodeBgpSpec, embedded::EmbeddedStore,
};

use super::{
    Family,
    desired::{VxlanInputs, vxlan_state},
    tunnel::{TunnelDecision, decide, reconcile_tunnel, vtep_mac},
};
use crate::netlink::{NextHop, RouteTarget};

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn pool(mode: EncapsulationMode) -> IpPool {
    IpPool {
        vxlan_mode: mode,
        ..IpPool::new("pool", net("10.244.0.0/16"))
    }
}

fn node(name: &str, address: &str, tunnel: Option<&str>) -> Node {
    node_v6(name, address, tunnel, None, None)
}

/// A dual-stack node: IPv4 address and tunnel, and optionally an IPv6 address and tunnel.
fn node_v6(
    name: &str,
    address: &str,
    tunnel: Option<&str>,
    address6: Option<&str>,
    tunnel6: Option<&str>,
) -> Node {
    Node {
        name: name.into(),
        bgp: Some(NodeBgpSpec {
            ipv4_address: Some(net(address)),
            ipv6_address: address6.map(net),
            ..Default::default()
        }),
        ipv4_vxlan_tunnel_addr: tunnel.map(|text| text.parse().unwrap()),
        vxlan_tunnel_mac_addr: tunnel.map(|_| vtep_mac(name, Family::V4)),
        ipv6_vxlan_tunnel_addr: tunnel6.map(|text| text.parse().unwrap()),
        vxlan_tunnel_mac_addr_v6: tunnel6.map(|_| vtep_mac(name, Family::V6)),
        ..Default::default()
    }
}

#[test]
fn the_vtep_mac_is_stable_locally_administered_unicast_and_distinct_per_node() {
    let mac = vtep_mac("node-1", Family::V4);
    assert_eq!(mac, vtep_mac("node-1", Family::V4));
    assert_ne!(mac, vtep_mac("node-2", Family::V4));
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0b10, 0b10, "locally administered: {mac}");
    assert_eq!(first & 0b01, 0, "unicast: {mac}");
    assert_eq!(mac.len(), 17);
}

#[test]
fn the_tunnel_address_is_kept_allocated_or_released_as_the_pools_say() {
    let vxlan = pool(EncapsulationMode::CrossSubnet);
    let address: std::net::IpAddr = "10.244.1.0".parse().unwrap();
    let held = [address];
    assert_eq!(
        decide(Some(address), &held, &[&vxlan]),
        TunnelDecision::Keep(address)
    );
    // Recorded but not held (released behind our back), or held but not recorded.
    assert_eq!(
        decide(Some(address), &[], &[&vxlan]),
        TunnelDecision::Allocate(vec![vxlan.cidr])
    );
    assert_eq!(
        decide(None, &held, &[&vxlan]),
        TunnelDecision::Allocate(vec![vxlan.cidr])
    );
    // An address outside every VXLAN pool (its pool went back to Never, another one is on).
    let other = IpPool {
        vxlan_mode: EncapsulationMode::Always,
        ..IpPool::new("other", net("10.99.0.0/16"))
    };
    assert_eq!(
        decide(Some(address), &held, &[&other]),
        TunnelDecision::Allocate(vec![other.cidr])
    );
    assert_eq!(decide(Some(address), &held, &[]), TunnelDecision::Release);
}

/// a and b share 10.0.1.0/24, c is on 10.0.2.0/24; each has one block.
fn three_nodes() -> (Vec<Node>, Vec<(IpNet, String)>) {
    let nodes = vec![
        node("a", "10.0.1.1/24", Some("10.244.1.0")),
        node("b", "10.0.1.2/24", Some("10.244.2.0")),
        node("c", "10.0.2.3/24", Some("10.244.3.0")),
    ];
    let blocks = vec![
        (net("10.244.1.0/26"), "a".to_string()),
        (net("10.244.2.0/26"), "b".to_string()),
        (net("10.244.3.0/26"), "c".to_string()),
    ];
    (nodes, blocks)
}

fn routes_of(mode: EncapsulationMode, bgp: bool, nodes: &[Node]) -> super::VxlanState {
    let (_, blocks) = three_nodes();
    vxlan_state(&VxlanInputs {
        family: Family::V4,
        node: "a",
        nodes,
        pools: &[pool(mode)],
        blocks: &blocks,
        borrowed: &[],
        uplink: Some("eth0"),
        bgp,
    })
}

fn via(gateway: &str, device: &str, onlink: bool) -> RouteTarget {
    RouteTarget::via(vec![NextHop {
        gateway: gateway.parse().unwrap(),
        device: device.into(),
        onlink,
    }])
}

#[test]
fn cross_subnet_encapsulates_only_blocks_of_nodes_on_other_subnets() {
    let (nodes, _) = three_nodes();
    let state = routes_of(EncapsulationMode::CrossSubnet, true, &nodes);
    let routes: Vec<(IpNet, RouteTarget)> = state
        .routes
        .iter()
        .map(|route| (route.destination, route.target.clone()))
        .collect();
    assert_eq!(
        routes,
        vec![(
            net("10.244.3.0/26"),
            via("10.244.3.0", "vxlan.calico", true)
        )],
        "b's block is BGP's (same subnet), c's goes through the tunnel"
    );
    assert_eq!(
        state
            .vteps
            .iter()
            .map(|vtep| vtep.node.as_str())
            .collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert_eq!(
        state.vteps[1].node_address,
        "10.0.2.3".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(state.vteps[1].mac, vtep_mac("c", Family::V4));
    assert!(state.device.is_some());

    // Without BGP, the same-subnet block is routed straight to its node on the uplink.
    let state = routes_of(EncapsulationMode::CrossSubnet, false, &nodes);
    assert_eq!(state.routes.len(), 2);
    assert_eq!(state.routes[0].destination, net("10.244.2.0/26"));
    assert_eq!(state.routes[0].target, via("10.0.1.2", "eth0", false));
}

#[test]
fn always_encapsulates_every_remote_block_and_never_none() {
    let (nodes, _) = three_nodes();
    let state = routes_of(EncapsulationMode::Always, true, &nodes);
    let targets: Vec<RouteTarget> = state
        .routes
        .iter()
        .map(|route| route.target.clone())
        .collect();
    assert_eq!(
        targets,
        vec![
            via("10.244.2.0", "vxlan.calico", true),
            via("10.244.3.0", "vxlan.calico", true)
        ]
    );
    let state = routes_of(EncapsulationMode::Never, false, &nodes);
    assert!(state.routes.is_empty());
}

#[test]
fn a_node_without_a_vtep_gets_no_route_and_a_problem_and_no_tunnel_means_no_device() {
    let (mut nodes, _) = three_nodes();
    nodes[2].ipv4_vxlan_tunnel_addr = None;
    let state = routes_of(EncapsulationMode::Always, true, &nodes);
    assert_eq!(state.routes.len(), 1);
    assert_eq!(state.problems.len(), 1);
    assert!(state.problems[0].contains("\"c\""), "{:?}", state.problems);

    nodes[0].ipv4_vxlan_tunnel_addr = None;
    let state = routes_of(EncapsulationMode::Always, true, &nodes);
    assert_eq!(state, super::VxlanState::default());
}

#[tokio::test]
async fn the_tunnel_address_follows_the_pools_through_the_datastore() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Datastore> =
        Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let ipam = Ipam::new(store.clone());
    store
        .create_resource(&node("a", "10.0.1.1/24", None))
        .await
        .unwrap();
    ipam.create_pool(&pool(EncapsulationMode::Never))
        .await
        .unwrap();
    assert_eq!(
        reconcile_tunnel(&store, "a", &ipam.pools().await.unwrap(), Family::V4)
            .await
            .unwrap(),
        None
    );
    assert!(
        ipam.addresses_by_handle("vxlan-tunnel-addr-a")
            .await
            .unwrap()
            .is_empty()
    );

    // The pool turns to CrossSubnet: one address from it, recorded on the Node with the MAC.
    let stored = store.get_resource::<IpPool>("pool").await.unwrap().unwrap();
    let mut crossing = stored.value.clone();
    crossing.vxlan_mode = EncapsulationMode::CrossSubnet;
    store
        .update_resource(&crossing, &stored.revision)
        .await
        .unwrap();
    let endpoint = reconcile_tunnel(&store, "a", &ipam.pools().await.unwrap(), Family::V4)
        .await
        .unwrap()
        .unwrap();
    assert!(crossing.cidr.contains(&endpoint.address));
    assert_eq!(endpoint.mac, vtep_mac("a", Family::V4));
    let recorded = store.get_resource::<Node>("a").await.unwrap().unwrap();
    assert_eq!(
        recorded
            .value
            .ipv4_vxlan_tunnel_addr
            .map(std::net::IpAddr::V4),
        Some(endpoint.address)
    );
    assert_eq!(
        recorded.value.vxlan_tunnel_mac_addr,
        Some(vtep_mac("a", Family::V4))
    );
    assert_eq!(
        ipam.addresses_by_handle("vxlan-tunnel-addr-a")
            .await
            .unwrap(),
        vec![endpoint.address]
    );

    // Again: nothing changes, not even the Node's revision.
    assert_eq!(
        reconcile_tunnel(&store, "a", &ipam.pools().await.unwrap(), Family::V4)
            .await
            .unwrap(),
        Some(endpoint)
    );
    let again = store.get_resource::<Node>("a").await.unwrap().unwrap();
    assert_eq!(again.revision, recorded.revision);

    // Back to Never: released and cleared.
    let stored = store.get_resource::<IpPool>("pool").await.unwrap().unwrap();
    let mut never = stored.value.clone();
    never.vxlan_mode = EncapsulationMode::Never;
    store
        .update_resource(&never, &stored.revision)
        .await
        .unwrap();
    assert_eq!(
        reconcile_tunnel(&store, "a", &ipam.pools().await.unwrap(), Family::V4)
            .await
            .unwrap(),
        None
    );
    let cleared = store
        .get_resource::<Node>("a")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(cleared.ipv4_vxlan_tunnel_addr, None);
    assert_eq!(cleared.vxlan_tunnel_mac_addr, None);
    assert!(
        ipam.addresses_by_handle("vxlan-tunnel-addr-a")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ipam.check().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn the_kernel_gets_the_device_and_exactly_the_wanted_neighbours_and_fdb_entries() {
    use crate::netlink::{Netlink, fake::FakeNetlink};

    use super::kernel::{apply_vxlan, parse_mac};

    let netlink = FakeNetlink::new();
    netlink.add_link("eth0", 1500);
    let (nodes, _) = three_nodes();
    let state = routes_of(EncapsulationMode::CrossSubnet, true, &nodes);
    let report = apply_vxlan(&netlink, &state, Some(("eth0", 1500)))
        .await
        .unwrap();
    assert_eq!((report.neighbours_replaced, report.fdb_replaced), (2, 2));
    let device = netlink.vxlan_device("vxlan.calico").await.unwrap().unwrap();
    assert_eq!(device.device.vni, 4096);
    assert_eq!(device.device.port, 4789);
    assert_eq!(device.device.mtu, 1450, "uplink 1500 less 50");
    assert_eq!(
        device.device.local,
        "10.0.1.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        Some(device.device.mac),
        parse_mac(&vtep_mac("a", Family::V4))
    );
    assert!(!device.learning);
    assert_eq!(
        netlink.link_addresses("vxlan.calico"),
        vec![net("10.244.1.0/32")]
    );
    let fdb = netlink.vxlan_fdb("vxlan.calico").await.unwrap();
    assert!(
        fdb.iter()
            .any(|entry| entry.destination.to_string() == "10.0.2.3"
                && Some(entry.mac) == parse_mac(&vtep_mac("c", Family::V4)))
    );

    // Again: nothing to do.
    let report = apply_vxlan(&netlink, &state, Some(("eth0", 1500)))
        .await
        .unwrap();
    assert!(!report.changed(), "{report:?}");

    // c leaves: its neighbour and FDB entry go, b's stay.
    let state = routes_of(EncapsulationMode::CrossSubnet, true, &nodes[..2]);
    let report = apply_vxlan(&netlink, &state, Some(("eth0", 1500)))
        .await
        .unwrap();
    assert_eq!((report.neighbours_deleted, report.fdb_deleted), (1, 1));
    assert_eq!(
        netlink
            .vxlan_neighbours("vxlan.calico")
            .await
            .unwrap()
            .len(),
        1
    );

    // No tunnel wanted: the device goes.
    let report = apply_vxlan(
        &netlink,
        &super::VxlanState::default(),
        Some(("eth0", 1500)),
    )
    .await
    .unwrap();
    assert!(report.device_deleted);
    assert!(
        netlink
            .vxlan_device("vxlan.calico")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn ipv6_blocks_go_through_vxlan_v6_calico_to_the_ipv6_tunnel_addresses() {
    let nodes = vec![
        node_v6(
            "a",
            "10.0.1.1/24",
            None,
            Some("fd80:1::1/64"),
            Some("fd00:244:0:1::"),
        ),
        node_v6(
            "b",
            "10.0.1.2/24",
            None,
            Some("fd80:1::2/64"),
            Some("fd00:244:0:2::"),
        ),
        node_v6(
            "c",
            "10.0.2.3/24",
            None,
            Some("fd80:2::3/64"),
            Some("fd00:244:0:3::"),
        ),
    ];
    let blocks = vec![
        (net("fd00:244:0:2::/122"), "b".to_string()),
        (net("fd00:244:0:3::/122"), "c".to_string()),
        (net("10.244.3.0/26"), "c".to_string()),
    ];
    let pools = [
        IpPool {
            vxlan_mode: EncapsulationMode::CrossSubnet,
            ..IpPool::new("v6", net("fd00:244::/48"))
        },
        pool(EncapsulationMode::Always),
    ];
    let state_of = |family| {
        vxlan_state(&VxlanInputs {
            family,
            node: "a",
            nodes: &nodes,
            pools: &pools,
            blocks: &blocks,
            borrowed: &[],
            uplink: Some("eth0"),
            bgp: true,
        })
    };
    let state = state_of(Family::V6);
    let own = state.device.clone().expect("a has an IPv6 tunnel endpoint");
    assert_eq!(own.node_address.to_string(), "fd80:1::1");
    assert_eq!(own.mac, vtep_mac("a", Family::V6));
    assert_ne!(own.mac, vtep_mac("a", Family::V4), "the two devices differ");
    assert_eq!(
        state
            .routes
            .iter()
            .map(|route| (route.destination, route.target.clone()))
            .collect::<Vec<_>>(),
        vec![(
            net("fd00:244:0:3::/122"),
            via("fd00:244:0:3::", "vxlan-v6.calico", true)
        )],
        "b is on a's IPv6 subnet (BGP's), c is not; the IPv4 block is the IPv4 device's"
    );
    assert_eq!(state.vteps.len(), 2);
    assert_eq!(state.vteps[1].node_address.to_string(), "fd80:2::3");

    // The IPv4 device of the same nodes: none, no IPv4 tunnel addresses.
    let v4 = state_of(Family::V4);
    assert_eq!(v4.device, None);
    assert!(v4.routes.is_empty());
}
