//! What this node's manul-bgpd should be running, computed from the datastore's resources with
//! no I/O: global settings, peers (the node-to-node mesh or route reflection, and BGPPeers) and
//! the prefixes to originate (affine blocks, borrowed addresses, service ranges, with
//! communities). Calico's rules, as its confd templates render them for BIRD:
//!
//! - ASN: the Node's asNumber, else the BGPConfiguration's, else 64512. Router ID: the node's
//!   IPv4 address. Listen port: BGPConfiguration listenPort (a "node.<name>" configuration
//!   overrides the "default" one field by field).
//! - Mesh (nodeToNodeMeshEnabled, default true): every node peers with every other node of the
//!   same address family; of each pair the lower address connects and the higher waits
//!   (passive), so the pair never races two connections. Nodes with a routeReflectorClusterID
//!   leave the mesh: when there are any, an ordinary node peers only with them, and they peer
//!   with everyone, treating ordinary nodes as route-reflector clients.
//! - BGPPeer: applies to this node when `node` names it, or `nodeSelector` selects it, or
//!   neither is set; its peers are `peerIP`, or the nodes `peerSelector` selects (at their
//!   addresses). A BGPPeer overrides a mesh session to the same address.
//! - Export: to eBGP peers only the node's own prefixes (a top-of-rack router learns each block
//!   from its owner, never via another node); to iBGP peers also what lies in a pool (route
//!   reflectors reflect). Import: everything.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use manul_ipam::pools::Selector;
use manul_proto::bgpd as proto;
use manul_store::{
    BgpConfiguration, BgpPassword, BgpPeer, DEFAULT_AS_NUMBER, IpPool, NextHopMode, Node,
    SourceAddress,
};

/// Graceful-restart time when nothing sets one (Calico's and BIRD's default).
pub const DEFAULT_RESTART_SECONDS: u32 = 120;
/// Seconds between connection attempts toward other nodes (bgpd's default is 5).
const MESH_CONNECT_RETRY_SECONDS: u32 = 2;

/// Everything the computation reads.
pub struct SpeakerInputs<'a> {
    pub node: &'a str,
    pub nodes: &'a [Node],
    pub peers: &'a [BgpPeer],
    pub configurations: &'a [BgpConfiguration],
    pub pools: &'a [IpPool],
    /// This node's affine blocks.
    pub affine_blocks: &'a [IpNet],
    /// Addresses of this node's endpoints (host prefixes, /32 and /128).
    pub endpoint_addresses: &'a [IpNet],
    /// Reads a BGPPeer's password (a file, or a secret); the error says why it cannot.
    pub password: &'a dyn Fn(&BgpPassword) -> Result<String, String>,
}

/// What bgpd should run. Peers and prefixes are keyed by address and prefix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpeakerConfig {
    /// None: this node cannot speak BGP (no Node, or no IPv4 address for a router ID).
    pub global: Option<proto::Global>,
    pub peers: BTreeMap<IpAddr, proto::Peer>,
    pub prefixes: BTreeMap<IpNet, proto::OriginatedPrefix>,
    /// Resources that could not be used, with the reason (logged; the rest still applies).
    pub problems: Vec<String>,
}

impl SpeakerConfig {
    /// The prefixes this node originates.
    pub fn originated(&self) -> BTreeSet<IpNet> {
        self.prefixes.keys().copied().collect()
    }
}

/// The effective BGP configuration for `node`: "node.<name>" over "default".
pub fn effective_configuration(
    configurations: &[BgpConfiguration],
    node: &str,
) -> BgpConfiguration {
    let find = |name: &str| configurations.iter().find(|config| config.name == name);
    let mut merged = find(BgpConfiguration::DEFAULT_NAME)
        .cloned()
        .unwrap_or_else(|| BgpConfiguration::named(BgpConfiguration::DEFAULT_NAME));
    if let Some(own) = find(&BgpConfiguration::node_name(node)) {
        merged.as_number = own.as_number.or(merged.as_number);
        merged.node_to_node_mesh_enabled = own
            .node_to_node_mesh_enabled
            .or(merged.node_to_node_mesh_enabled);
        merged.listen_port = own.listen_port.or(merged.listen_port);
        merged.log_severity_screen = own
            .log_severity_screen
            .clone()
            .or(merged.log_severity_screen);
        if !own.prefix_advertisements.is_empty() {
            merged.prefix_advertisements = own.prefix_advertisements.clone();
        }
    }
    merged
}

/// The AS number of `node`.
pub fn as_number(node: &Node, configuration: &BgpConfiguration) -> u32 {
    node.bgp
        .as_ref()
        .and_then(|bgp| bgp.as_number)
        .or(configuration.as_number)
        .unwrap_or(DEFAULT_AS_NUMBER)
}

pub fn speaker_config(inputs: &SpeakerInputs<'_>) -> SpeakerConfig {
    let mut config = SpeakerConfig::default();
    let Some(this) = inputs.nodes.iter().find(|node| node.name == inputs.node) else {
        config.problems.push(format!(
            "Node {:?} is not in the datastore yet",
            inputs.node
        ));
        return config;
    };
    let Some(router_id) = this.ipv4() else {
        config.problems.push(format!(
            "Node {:?} has no bgp.ipv4Address: BGP needs one (it is the router ID)",
            inputs.node
        ));
        return config;
    };
    let configuration = effective_configuration(inputs.configurations, inputs.node);
    if let Err(reason) = configuration.validate() {
        config
            .problems
            .push(format!("BGPConfiguration: {reason}; using the defaults"));
    }
    let local_asn = as_number(this, &configuration);
    let mut listen_addresses = vec![router_id.to_string()];
    if let Some(ipv6) = this.ipv6() {
        listen_addresses.push(ipv6.to_string());
    }
    config.global = Some(proto::Global {
        asn: local_asn,
        router_id: router_id.to_string(),
        listen_addresses,
        listen_port: u32::from(configuration.listen_port_or_default()),
        cluster_id: this
            .route_reflector_cluster_id()
            .map(|id| id.to_string())
            .unwrap_or_default(),
    });
    let context = PeerContext {
        this,
        local_asn,
        configuration: &configuration,
        pools: inputs.pools,
    };
    if configuration.mesh_enabled() {
        mesh_peers(&context, inputs.nodes, &mut config.peers);
    }
    for peer in inputs.peers {
        if let Err(problem) = explicit_peers(&context, inputs, peer, &mut config.peers) {
            config
                .problems
                .push(format!("BGPPeer {:?}: {problem}", peer.name));
        }
    }
    config.prefixes = originated_prefixes(inputs, &configuration);
    config
}

struct PeerContext<'a> {
    this: &'a Node,
    local_asn: u32,
    configuration: &'a BgpConfiguration,
    pools: &'a [IpPool],
}

impl PeerContext<'_> {
    fn address_of_family(&self, node: &Node, ipv6: bool) -> Option<IpAddr> {
        if ipv6 {
            node.ipv6().map(IpAddr::V6)
        } else {
            node.ipv4().map(IpAddr::V4)
        }
    }

    fn restart_seconds(&self) -> u32 {
        self.configuration
            .node_mesh_max_restart_time
            .as_deref()
            .and_then(|text| manul_store::bgp_resources::parse_duration(text).ok())
            .map_or(DEFAULT_RESTART_SECONDS, |time| {
                u32::try_from(time.as_secs()).unwrap_or(u32::MAX)
            })
    }

    /// A session to another node at `address` (lower address active).
    fn node_peer(&self, other: &Node, address: IpAddr, local: IpAddr) -> proto::Peer {
        let other_asn = as_number(other, self.configuration);
        let this_reflects = self.this.route_reflector_cluster_id();
        let other_reflects = other.route_reflector_cluster_id();
        proto::Peer {
            address: address.to_string(),
            local_address: local.to_string(),
            asn: other_asn,
            passive: local > address,
            connect_retry: Some(MESH_CONNECT_RETRY_SECONDS),
            route_reflector_client: this_reflects.is_some() && this_reflects != other_reflects,
            graceful_restart: Some(graceful_restart(self.restart_seconds())),
            import: Some(accept_all()),
            export: Some(self.export_policy(other_asn != self.local_asn)),
            name: format!("node-{}", other.name),
            ..Default::default()
        }
    }

    /// Own prefixes to everyone; to iBGP peers also whatever lies in a pool (reflection).
    fn export_policy(&self, ebgp: bool) -> proto::Policy {
        let mut rules = vec![proto::PolicyRule {
            originated: true,
            ..Default::default()
        }];
        if !ebgp {
            let pools: Vec<String> = self
                .pools
                .iter()
                .filter(|pool| !pool.disable_bgp_export)
                .map(|pool| {
                    let last = if pool.cidr.addr().is_ipv4() { 32 } else { 128 };
                    format!("{} le {last}", pool.cidr)
                })
                .collect();
            if !pools.is_empty() {
                rules.push(proto::PolicyRule {
                    prefixes: pools,
                    ..Default::default()
                });
            }
        }
        proto::Policy {
            default_accept: false,
            rules,
        }
    }
}

/// Graceful restart with "forwarding preserved": the agent keeps the kernel routes while bgpd
/// restarts, so peers may keep theirs toward this node too (RFC 4724 §4.2: without the F bit a
/// helper drops them the moment the session is back, before this node re-announced anything).
/// bgpd sets the R bit together with F, which only tells peers not to wait for this node's
/// End-of-RIB before sending theirs.
fn graceful_restart(restart_time: u32) -> proto::GracefulRestart {
    proto::GracefulRestart {
        enabled: true,
        restarting: true,
        restart_time,
    }
}

fn accept_all() -> proto::Policy {
    proto::Policy {
        default_accept: true,
        rules: Vec::new(),
    }
}

/// The node-to-node mesh, or the sessions to and from route reflectors when there are any.
fn mesh_peers(
    context: &PeerContext<'_>,
    nodes: &[Node],
    peers: &mut BTreeMap<IpAddr, proto::Peer>,
) {
    let any_reflector = nodes
        .iter()
        .any(|node| node.route_reflector_cluster_id().is_some());
    let this_reflects = context.this.route_reflector_cluster_id().is_some();
    for other in nodes.iter().filter(|node| node.name != context.this.name) {
        let other_reflects = other.route_reflector_cluster_id().is_some();
        if any_reflector && !this_reflects && !other_reflects {
            continue;
        }
        for ipv6 in [false, true] {
            let (Some(local), Some(address)) = (
                context.address_of_family(context.this, ipv6),
                context.address_of_family(other, ipv6),
            ) else {
                continue;
            };
            if address == local {
                continue;
            }
            peers.insert(address, context.node_peer(other, address, local));
        }
    }
}

fn explicit_peers(
    context: &PeerContext<'_>,
    inputs: &SpeakerInputs<'_>,
    peer: &BgpPeer,
    peers: &mut BTreeMap<IpAddr, proto::Peer>,
) -> Result<(), String> {
    peer.validate()?;
    let this = context.this;
    let applies = if !peer.node.is_empty() {
        peer.node == this.name
    } else if !peer.node_selector.is_empty() {
        Selector::parse(&peer.node_selector)
            .map_err(|reason| format!("spec.nodeSelector: {reason}"))?
            .matches(&this.metadata.labels)
    } else {
        true
    };
    if !applies {
        return Ok(());
    }
    if !peer.peer_selector.is_empty() {
        let selector = Selector::parse(&peer.peer_selector)
            .map_err(|reason| format!("spec.peerSelector: {reason}"))?;
        for other in inputs
            .nodes
            .iter()
            .filter(|node| node.name != this.name && selector.matches(&node.metadata.labels))
        {
            for ipv6 in [false, true] {
                let (Some(local), Some(address)) = (
                    context.address_of_family(this, ipv6),
                    context.address_of_family(other, ipv6),
                ) else {
                    continue;
                };
                let mut session = context.node_peer(other, address, local);
                if peer.as_number != 0 {
                    session.asn = peer.as_number;
                }
                customise(context, inputs, peer, &mut session)?;
                peers.insert(address, session);
            }
        }
        return Ok(());
    }
    let socket = peer.peer_socket()?;
    let address = socket.ip();
    let local = context.address_of_family(this, address.is_ipv6());
    let ebgp = peer.as_number != context.local_asn;
    let mut session = proto::Peer {
        address: address.to_string(),
        port: if socket.port() == 179 {
            0
        } else {
            u32::from(socket.port())
        },
        asn: peer.as_number,
        local_address: local.map(|local| local.to_string()).unwrap_or_default(),
        graceful_restart: Some(graceful_restart(DEFAULT_RESTART_SECONDS)),
        import: Some(accept_all()),
        export: Some(context.export_policy(ebgp)),
        name: format!("peer-{}", peer.name),
        ..Default::default()
    };
    customise(context, inputs, peer, &mut session)?;
    peers.insert(address, session);
    Ok(())
}

/// The options a BGPPeer sets on each of its sessions.
fn customise(
    context: &PeerContext<'_>,
    inputs: &SpeakerInputs<'_>,
    peer: &BgpPeer,
    session: &mut proto::Peer,
) -> Result<(), String> {
    if let Some(password) = &peer.password {
        session.md5_password =
            (inputs.password)(password).map_err(|reason| format!("spec.password: {reason}"))?;
    }
    if peer.source_address == SourceAddress::None {
        session.local_address.clear();
    }
    if let Some(restart) = peer.max_restart()?
        && let Some(graceful) = session.graceful_restart.as_mut()
    {
        graceful.restart_time = u32::try_from(restart.as_secs()).unwrap_or(u32::MAX);
    }
    if let Some(keepalive) = peer.keepalive()? {
        session.hold_time = Some(u32::try_from(keepalive.as_secs() * 3).unwrap_or(u32::MAX));
    }
    match peer.ttl_security {
        None | Some(0) => {}
        Some(1) => session.ttl_security = true,
        Some(hops) => {
            return Err(format!(
                "spec.ttlSecurity: {hops} hops is not supported (manul-bgpd does GTSM for directly connected peers only: use 1)"
            ));
        }
    }
    let ebgp = session.asn != context.local_asn;
    match peer.next_hop_mode {
        NextHopMode::Auto => {}
        NextHopMode::SelfAddress => session.next_hop_self = true,
        NextHopMode::Keep if ebgp => {
            return Err(
                "spec.nextHopMode: Keep toward an eBGP peer is not supported yet (use Auto or Self)"
                    .into(),
            );
        }
        NextHopMode::Keep => {}
    }
    session.allow_own_as = peer.num_allowed_local_as_numbers;
    Ok(())
}

/// The node's affine blocks and borrowed addresses in exportable pools, and the configured
/// service ranges, each with the communities of the prefix advertisements that cover it.
fn originated_prefixes(
    inputs: &SpeakerInputs<'_>,
    configuration: &BgpConfiguration,
) -> BTreeMap<IpNet, proto::OriginatedPrefix> {
    let exportable = |prefix: &IpNet| {
        inputs
            .pools
            .iter()
            .find(|pool| pool.cidr.contains(prefix))
            .is_some_and(|pool| !pool.disable_bgp_export)
    };
    let mut prefixes: BTreeSet<IpNet> = inputs
        .affine_blocks
        .iter()
        .filter(|block| exportable(block))
        .copied()
        .collect();
    for address in inputs.endpoint_addresses {
        let own_block = inputs
            .affine_blocks
            .iter()
            .any(|block| block.contains(address));
        if !own_block && exportable(address) {
            prefixes.insert(*address);
        }
    }
    for service in configuration
        .service_cluster_ips
        .iter()
        .chain(&configuration.service_external_ips)
        .chain(&configuration.service_load_balancer_ips)
    {
        prefixes.insert(service.cidr);
    }
    prefixes
        .into_iter()
        .map(|prefix| {
            let mut originated = proto::OriginatedPrefix {
                prefix: prefix.to_string(),
                ..Default::default()
            };
            for advertisement in configuration
                .prefix_advertisements
                .iter()
                .filter(|advertisement| advertisement.cidr.contains(&prefix))
            {
                for community in &advertisement.communities {
                    let value = configuration.community_value(community).to_string();
                    let list = if value.matches(':').count() == 2 {
                        &mut originated.large_communities
                    } else {
                        &mut originated.communities
                    };
                    if !list.contains(&value) {
                        list.push(value);
                    }
                }
            }
            (prefix, originated)
        })
        .collect()
}
