//! Tests of the agent's BGP side without root or bgpd: the speaker configuration computed from
//! resources, the sync against a fake bgpd (no session reset on repeat or agent restart), and
//! the learned routes through the fake netlink (graceful restart keeps routes).

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use manul_proto::bgpd as proto;
use manul_store::{
    BgpConfiguration, BgpPeer, IpPool, Node, NodeBgpSpec, PrefixAdvertisement, ServiceCidr,
    embedded::EmbeddedStore,
};

use super::{
    bgpd_api::BgpdApi,
    fake::FakeBgpd,
    learned::{LearnedRoutes, RouteContext},
    remote_routes::{BestPaths, LEARNED_METRIC, SharedSlices, remote_routes},
    speaker_config::{SpeakerConfig, SpeakerInputs, speaker_config},
    status::BgpStatus,
    sync::SpeakerSync,
};
use crate::{
    dataplane::RouteSource,
    endpoint::Endpoints,
    netlink::{NextHop, Route, RouteLookup, RouteTarget, fake::FakeNetlink},
    sysctl::FakeSysctl,
};

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn node(name: &str, address: &str, cluster: Option<&str>) -> Node {
    Node {
        name: name.into(),
        bgp: Some(NodeBgpSpec {
            ipv4_address: Some(net(address)),
            route_reflector_cluster_id: cluster.map(|id| id.parse().unwrap()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn no_password(_: &manul_store::BgpPassword) -> Result<String, String> {
    Err("no passwords here".into())
}

struct Inputs {
    nodes: Vec<Node>,
    peers: Vec<BgpPeer>,
    configurations: Vec<BgpConfiguration>,
    pools: Vec<IpPool>,
    affine: Vec<IpNet>,
    endpoints: Vec<IpNet>,
}

impl Inputs {
    fn new(nodes: Vec<Node>) -> Inputs {
        Inputs {
            nodes,
            peers: Vec::new(),
            configurations: Vec::new(),
            pools: vec![IpPool::new("pool", net("10.244.0.0/16"))],
            affine: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    fn config(&self, node: &str) -> SpeakerConfig {
        speaker_config(&SpeakerInputs {
            node,
            nodes: &self.nodes,
            peers: &self.peers,
            configurations: &self.configurations,
            pools: &self.pools,
            affine_blocks: &self.affine,
            endpoint_addresses: &self.endpoints,
            password: &no_password,
        })
    }
}

fn peer_summary(config: &SpeakerConfig) -> Vec<(String, bool, bool)> {
    config
        .peers
        .values()
        .map(|peer| {
            (
                peer.address.clone(),
                peer.passive,
                peer.route_reflector_client,
            )
        })
        .collect()
}

#[test]
fn a_full_mesh_has_the_lower_address_connect() {
    let inputs = Inputs::new(vec![
        node("a", "10.0.0.1/24", None),
        node("b", "10.0.0.2/24", None),
        node("c", "10.0.1.3/24", None),
    ]);
    let config = inputs.config("b");
    let global = config.global.clone().unwrap();
    assert_eq!((global.asn, global.router_id.as_str()), (64512, "10.0.0.2"));
    assert_eq!(
        peer_summary(&config),
        vec![
            ("10.0.0.1".into(), true, false),
            ("10.0.1.3".into(), false, false)
        ]
    );
    let mut disabled = inputs;
    disabled.configurations.push(BgpConfiguration {
        node_to_node_mesh_enabled: Some(false),
        ..BgpConfiguration::named("default")
    });
    assert!(disabled.config("b").peers.is_empty());
}

#[test]
fn route_reflectors_leave_the_mesh_and_reflect_for_the_others() {
    let inputs = Inputs::new(vec![
        node("rr", "10.0.0.1/24", Some("224.0.0.1")),
        node("b", "10.0.0.2/24", None),
        node("c", "10.0.0.3/24", None),
    ]);
    assert_eq!(
        peer_summary(&inputs.config("b")),
        vec![("10.0.0.1".into(), true, false)],
        "an ordinary node peers with the reflector only"
    );
    let reflector = inputs.config("rr");
    assert_eq!(
        peer_summary(&reflector),
        vec![
            ("10.0.0.2".into(), false, true),
            ("10.0.0.3".into(), false, true)
        ]
    );
    assert_eq!(reflector.global.unwrap().cluster_id, "224.0.0.1");
}

#[test]
fn a_top_of_rack_peer_gets_only_the_nodes_own_prefixes() {
    let mut inputs = Inputs::new(vec![node("a", "10.0.0.1/24", None)]);
    let mut tor = BgpPeer::global("tor", "10.0.0.254", 65000);
    tor.keepalive_time = Some("10s".into());
    inputs.peers.push(tor);
    let mut rack_b = BgpPeer::global("rack-b", "10.0.1.254", 65001);
    rack_b.node_selector = "rack == 'b'".into();
    inputs.peers.push(rack_b);
    let config = inputs.config("a");
    assert_eq!(config.peers.len(), 1, "{:?}", config.peers);
    let peer = &config.peers[&ip("10.0.0.254")];
    assert_eq!(
        (
            peer.asn,
            peer.passive,
            peer.hold_time,
            peer.local_address.as_str()
        ),
        (65000, false, Some(30), "10.0.0.1")
    );
    let export = peer.export.as_ref().unwrap();
    assert!(!export.default_accept);
    assert_eq!(export.rules.len(), 1);
    assert!(export.rules[0].originated);
}

#[test]
fn prefixes_are_affine_blocks_borrowed_addresses_and_services_with_communities() {
    let mut inputs = Inputs::new(vec![node("a", "10.0.0.1/24", None)]);
    inputs.pools.push(IpPool {
        disable_bgp_export: true,
        ..IpPool::new("quiet", net("10.250.0.0/16"))
    });
    inputs.affine = vec![net("10.244.1.0/26"), net("10.250.0.0/26")];
    inputs.endpoints = vec![
        net("10.244.1.5/32"),
        net("10.244.7.9/32"),
        net("10.250.3.3/32"),
    ];
    let mut configuration = BgpConfiguration::named("default");
    configuration.service_cluster_ips = vec![ServiceCidr {
        cidr: net("10.96.0.0/12"),
    }];
    configuration.communities = vec![manul_store::Community {
        name: "svc".into(),
        value: "64512:300".into(),
    }];
    configuration.prefix_advertisements = vec![PrefixAdvertisement {
        cidr: net("10.96.0.0/12"),
        communities: vec!["svc".into(), "64512:1:2".into()],
    }];
    inputs.configurations.push(configuration);
    let config = inputs.config("a");
    assert_eq!(
        config
            .prefixes
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["10.96.0.0/12", "10.244.1.0/26", "10.244.7.9/32"]
    );
    let service = &config.prefixes[&net("10.96.0.0/12")];
    assert_eq!(service.communities, vec!["64512:300"]);
    assert_eq!(service.large_communities, vec!["64512:1:2"]);
}

#[test]
fn a_node_without_an_address_runs_no_speaker_and_says_why() {
    let inputs = Inputs::new(vec![Node {
        name: "a".into(),
        ..Default::default()
    }]);
    let config = inputs.config("a");
    assert!(config.global.is_none());
    assert!(
        config.problems[0].contains("ipv4Address"),
        "{:?}",
        config.problems
    );
    let mut bad = Inputs::new(vec![node("a", "10.0.0.1/24", None)]);
    bad.peers
        .push(BgpPeer::global("broken", "10.0.0.300", 65000));
    let config = bad.config("a");
    assert!(
        config.problems[0].starts_with("BGPPeer \"broken\": spec.peerIP"),
        "{:?}",
        config.problems
    );
}

fn writes(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|call| !call.starts_with("get_") && !call.starts_with("list_"))
        .cloned()
        .collect()
}

/// Nodes a and b; a has the block 10.244.1.0/26.
fn two_nodes_a_with_a_block() -> Inputs {
    let mut inputs = Inputs::new(vec![
        node("a", "10.0.0.1/24", None),
        node("b", "10.0.0.2/24", None),
    ]);
    inputs.affine = vec![net("10.244.1.0/26")];
    inputs
}

#[tokio::test]
async fn sync_changes_only_what_differs_and_an_agent_restart_changes_nothing() {
    let bgpd = FakeBgpd::default();
    let mut inputs = two_nodes_a_with_a_block();
    let desired = inputs.config("a");
    let mut sync = SpeakerSync::default();
    let report = sync.sync(&bgpd, &desired).await.unwrap();
    assert!(report.global_set && report.peers_added == 1 && report.prefixes_added == 1);
    bgpd.clear_calls();
    assert!(!sync.sync(&bgpd, &desired).await.unwrap().changed());
    assert_eq!(writes(&bgpd.calls()), Vec::<String>::new());

    // A new agent (empty memory) reads bgpd back and writes nothing.
    let mut restarted = SpeakerSync::default();
    assert!(!restarted.sync(&bgpd, &desired).await.unwrap().changed());
    assert_eq!(writes(&bgpd.calls()), Vec::<String>::new());

    // One node more, one block less: one peer added, one prefix withdrawn, nothing reset.
    inputs.nodes.push(node("c", "10.0.0.3/24", None));
    inputs.affine.clear();
    restarted.sync(&bgpd, &inputs.config("a")).await.unwrap();
    assert_eq!(
        writes(&bgpd.calls()),
        vec!["add_peer 10.0.0.3", "delete_prefixes 10.244.1.0/26"]
    );
}

#[tokio::test]
async fn a_restarted_bgpd_gets_everything_again() {
    let bgpd = FakeBgpd::default();
    let inputs = two_nodes_a_with_a_block();
    let desired = inputs.config("a");
    let mut sync = SpeakerSync::default();
    sync.sync(&bgpd, &desired).await.unwrap();
    bgpd.restart();
    bgpd.clear_calls();
    sync.sync(&bgpd, &desired).await.unwrap();
    assert_eq!(
        writes(&bgpd.calls()),
        vec![
            "set_global 10.0.0.1",
            "add_peer 10.0.0.2",
            "add_prefixes 10.244.1.0/26"
        ]
    );
    bgpd.set_down(true);
    assert!(sync.sync(&bgpd, &desired).await.is_err());
}

#[test]
fn learned_paths_route_through_resolved_next_hops() {
    let pools = vec![IpPool::new("pool", net("10.244.0.0/16"))];
    let lookups = BTreeMap::from([
        (
            ip("10.0.0.2"),
            Some(RouteLookup {
                gateway: None,
                device: "eth0".into(),
                source: None,
            }),
        ),
        (
            ip("10.0.1.3"),
            Some(RouteLookup {
                gateway: Some(ip("10.0.0.254")),
                device: "eth0".into(),
                source: None,
            }),
        ),
        (ip("10.9.9.9"), None),
    ]);
    let best: BestPaths = [
        (
            net("10.244.2.0/26"),
            Arc::from([ip("10.0.0.2"), ip("10.0.1.3")]),
        ),
        (net("10.244.1.0/26"), Arc::from([ip("10.0.0.2")])),
        (net("0.0.0.0/0"), Arc::from([ip("10.0.1.3")])),
        (net("10.244.9.0/26"), Arc::from([ip("10.9.9.9")])),
    ]
    .into_iter()
    .collect();
    let originated = [net("10.244.1.0/26")].into_iter().collect();
    let mut shared = SharedSlices::default();
    let (routes, problems) = remote_routes(&best, &originated, &pools, &lookups, &mut shared);
    let hop = |gateway: &str| NextHop {
        gateway: ip(gateway),
        device: "eth0".into(),
        onlink: false,
    };
    let mut default = Route::main(net("0.0.0.0/0"), RouteTarget::via(vec![hop("10.0.0.254")]));
    default.metric = LEARNED_METRIC;
    assert_eq!(
        routes,
        vec![
            default,
            Route::main(
                net("10.244.2.0/26"),
                RouteTarget::via(vec![hop("10.0.0.2"), hop("10.0.0.254")])
            ),
        ]
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
}

async fn wait_for(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn batch(paths: &[(&str, &str)], snapshot_done: bool) -> proto::BestPathBatch {
    proto::BestPathBatch {
        paths: paths
            .iter()
            .map(|(prefix, hop)| proto::BestPath {
                prefix: prefix.to_string(),
                withdrawn: hop.is_empty(),
                next_hops: if hop.is_empty() {
                    vec![]
                } else {
                    vec![hop.to_string()]
                },
                ..Default::default()
            })
            .collect(),
        snapshot_done,
        ..Default::default()
    }
}

/// The learned-routes task over `bgpd` and `netlink`, with endpoints on `store`; the sender
/// must live as long as the task.
fn spawn_learned(
    store: Arc<EmbeddedStore>,
    bgpd: &Arc<FakeBgpd>,
    netlink: &Arc<FakeNetlink>,
    context: RouteContext,
) -> (
    Arc<Endpoints>,
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<RouteContext>,
) {
    let endpoints = Arc::new(Endpoints::new(
        "a".into(),
        store,
        netlink.clone(),
        Arc::new(FakeSysctl::default()),
    ));
    let (sender, context) = tokio::sync::watch::channel(context);
    let task = tokio::spawn(
        LearnedRoutes {
            bgpd: bgpd.clone(),
            netlink: netlink.clone(),
            endpoints: endpoints.clone(),
            context,
            status: Arc::new(BgpStatus::default()),
            bgpd_configured: Arc::new(tokio::sync::Notify::new()),
        }
        .run(),
    );
    (endpoints, task, sender)
}

/// The learned-routes task over a fake bgpd and a fake kernel with eth0 on 10.0.0.0/24, for
/// the pool 10.244.0.0/16 with 120 s of graceful restart. The directory (the store) and the
/// context's sender must live as long as the task.
type LearnedOnEth0 = (
    tempfile::TempDir,
    Arc<FakeNetlink>,
    Arc<FakeBgpd>,
    Arc<Endpoints>,
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<RouteContext>,
);

fn learned_on_eth0() -> LearnedOnEth0 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let netlink = Arc::new(FakeNetlink::new());
    netlink.add_link("eth0", 1500);
    netlink.set_route_lookup(
        net("10.0.0.0/24"),
        Some(RouteLookup {
            gateway: None,
            device: "eth0".into(),
            source: None,
        }),
    );
    let bgpd = Arc::new(FakeBgpd::default());
    let context = RouteContext {
        pools: vec![IpPool::new("pool", net("10.244.0.0/16"))],
        restart_time: Duration::from_secs(120),
        ..Default::default()
    };
    let (endpoints, task, context) = spawn_learned(store, &bgpd, &netlink, context);
    (dir, netlink, bgpd, endpoints, task, context)
}

#[tokio::test]
async fn learned_routes_survive_a_bgpd_restart_until_its_peers_settle() {
    let (_dir, netlink, bgpd, endpoints, task, _context) = learned_on_eth0();
    let kernel_has = |prefix: &'static str| {
        let netlink = netlink.clone();
        async move || {
            netlink
                .routes()
                .iter()
                .any(|route| route.destination == net(prefix))
        }
    };
    wait_for("the stream", async || bgpd.open_streams() == 1).await;
    bgpd.send(batch(&[("10.244.2.0/26", "10.0.0.2")], false));
    bgpd.send(batch(&[("10.244.3.0/26", "10.0.0.3")], true));
    wait_for("both routes", async || {
        kernel_has("10.244.2.0/26")().await && kernel_has("10.244.3.0/26")().await
    })
    .await;
    bgpd.send(batch(&[("10.244.3.0/26", "")], false));
    wait_for("the withdrawal", async || {
        !kernel_has("10.244.3.0/26")().await
    })
    .await;

    // bgpd restarts: its new stream starts empty, the old route stays while peers are down.
    bgpd.restart();
    bgpd.add_peer(proto::Peer {
        address: "10.0.0.2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    wait_for("the new stream", async || bgpd.open_streams() == 1).await;
    bgpd.clear_calls();
    bgpd.send(batch(&[], true));
    let settle_checks = || {
        bgpd.calls()
            .iter()
            .filter(|call| *call == "list_peers")
            .count()
    };
    wait_for("two settle checks", async || settle_checks() >= 2).await;
    assert!(
        kernel_has("10.244.2.0/26")().await,
        "kept while the peer is not settled"
    );
    bgpd.set_peer_state("10.0.0.2", "Established", 60);
    wait_for("the stale route to go", async || {
        !kernel_has("10.244.2.0/26")().await
    })
    .await;
    assert!(
        endpoints
            .dataplane()
            .routes
            .lock()
            .await
            .source_routes(RouteSource::Bgp)
            .next()
            .is_none()
    );
    task.abort();
}

#[tokio::test]
async fn paths_that_name_a_shared_path_route_through_its_next_hops() {
    let (_dir, netlink, bgpd, _endpoints, task, _context) = learned_on_eth0();
    wait_for("the stream", async || bgpd.open_streams() == 1).await;
    let naming = |prefix: &str, shared: u32| proto::BestPath {
        prefix: prefix.into(),
        shared,
        ..Default::default()
    };
    let via = |hop: &str| proto::BestPath {
        next_hops: vec![hop.into()],
        ..Default::default()
    };
    bgpd.send(proto::BestPathBatch {
        paths: vec![
            naming("10.244.2.0/26", 2),
            naming("10.244.3.0/26", 1),
            naming("10.244.4.0/26", 2),
            // Past the batch's shared paths: no next hop, so no route.
            naming("10.244.5.0/26", 3),
        ],
        shared: vec![via("10.0.0.3"), via("10.0.0.2")],
        snapshot_done: true,
        ..Default::default()
    });
    let gateways = || {
        let mut routes: Vec<(String, String)> = netlink
            .routes()
            .iter()
            .filter_map(|route| match &route.target {
                RouteTarget::Via(hops) => Some((
                    route.destination.to_string(),
                    hops.iter().map(|hop| hop.gateway.to_string()).collect(),
                )),
                _ => None,
            })
            .collect();
        routes.sort();
        routes
    };
    wait_for("the three routes", async || gateways().len() == 3).await;
    assert_eq!(
        gateways(),
        [
            ("10.244.2.0/26", "10.0.0.2"),
            ("10.244.3.0/26", "10.0.0.3"),
            ("10.244.4.0/26", "10.0.0.2"),
        ]
        .map(|(prefix, gateway)| (prefix.to_string(), gateway.to_string()))
    );
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn the_best_path_stream_follows_soon_after_bgpd_first_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let netlink = Arc::new(FakeNetlink::new());
    // At an agent's start bgpd refuses the stream until the speaker task has set its global
    // settings, milliseconds later; the stream must not wait a whole second after that.
    let bgpd = Arc::new(FakeBgpd::default());
    bgpd.set_down(true);
    let (_endpoints, task, _context) =
        spawn_learned(store, &bgpd, &netlink, RouteContext::default());
    tokio::time::sleep(Duration::from_millis(10)).await;
    bgpd.set_down(false);
    let up = tokio::time::Instant::now();
    while bgpd.open_streams() == 0 {
        assert!(
            up.elapsed() < Duration::from_secs(5),
            "the stream never opened"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Virtual time (the clock is paused): the retry came after the first short wait.
    assert!(
        up.elapsed() <= Duration::from_millis(100),
        "the stream opened {:?} after bgpd accepted it",
        up.elapsed()
    );
    task.abort();
}

#[tokio::test]
async fn a_node_leaving_the_cluster_withdraws_its_prefixes_then_removes_its_peers() {
    let bgpd = FakeBgpd::default();
    let desired = two_nodes_a_with_a_block().config("a");
    SpeakerSync::default().sync(&bgpd, &desired).await.unwrap();
    bgpd.clear_calls();
    // A new SpeakerSync (as in the exiting agent's last step) reads bgpd back first.
    let report = SpeakerSync::default().withdraw_all(&bgpd).await.unwrap();
    assert_eq!(report.prefixes_deleted, 1);
    assert_eq!(report.peers_deleted, 1);
    assert_eq!(
        writes(&bgpd.calls()),
        vec!["delete_prefixes 10.244.1.0/26", "delete_peer 10.0.0.2"]
    );
    assert!(bgpd.list_prefixes().await.unwrap().is_empty());
    assert!(bgpd.list_peers().await.unwrap().is_empty());
}
