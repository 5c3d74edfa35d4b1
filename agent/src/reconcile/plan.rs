//! The reconciler's pure half: from this node's endpoints and blocks and the kernel's cali*
//! links and manul routes, the routes, sysctls and link deletions the node wants, with the
//! deletions that nothing justifies refused. No I/O.
//!
//! A deletion must be justified by what the store knows. The reconciler refuses:
//! - every deletion, when the store knows nothing of this node (no endpoint, no block) while the
//!   kernel holds manul state: a new or emptied store, or a changed `--node-name`;
//! - a link whose owner (its alias, a container id) has an endpoint recorded on another node: the
//!   agent runs under a name that is not the one the pods were made under;
//! - every link deletion, when more than `MASS_DELETION_MINIMUM` links and more than half of the
//!   node's cali links would go at once: leftovers come one or two at a time, not by the dozen.
//!
//! Routes through a link that stays are kept as they are (`kept_routes`).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use manul_store::WorkloadEndpoint;

use crate::{
    naming::HOST_INTERFACE_PREFIX,
    netlink::{LinkInfo, Route, RouteTarget},
    sysctl::{host_interface_sysctls, node_sysctls},
};

/// More stray links than this, and more than half of them all, is a mass deletion.
pub const MASS_DELETION_MINIMUM: usize = 3;

/// What the reconciler reads.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// This node's endpoints, from the store.
    pub endpoints: Vec<WorkloadEndpoint>,
    /// Blocks this node has affinity to.
    pub affine_blocks: Vec<IpNet>,
    /// Container id -> node, for endpoints recorded on other nodes (only the owners of stray
    /// candidates need to be in it).
    pub elsewhere: BTreeMap<String, String>,
    /// The kernel's cali* links.
    pub links: Vec<LinkInfo>,
    /// The kernel's manul routes.
    pub routes: Vec<Route>,
    /// Whether an IPv6 pool exists (IPv6 forwarding on the node).
    pub ipv6_in_use: bool,
}

/// Why a deletion was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The store has no endpoint and no block of this node, yet the kernel has manul state.
    StoreKnowsNothing { links: usize, routes: usize },
    /// The link's owner is recorded on another node.
    RecordedOnOtherNode {
        link: String,
        container: String,
        node: String,
    },
    /// Too many links at once.
    MassDeletion { links: usize, of: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::StoreKnowsNothing { links, routes } => write!(
                formatter,
                "the datastore has no endpoint and no block of this node, but the kernel has {links} cali links and {routes} manul routes: \
                 is this the right datastore and --node-name? nothing is removed"
            ),
            Refusal::RecordedOnOtherNode {
                link,
                container,
                node,
            } => write!(
                formatter,
                "{link} belongs to container {container}, whose endpoint is recorded on node {node}: \
                 was --node-name changed? the link is kept"
            ),
            Refusal::MassDeletion { links, of } => write!(
                formatter,
                "{links} of {of} cali links belong to no endpoint: refusing a mass deletion; \
                 remove them by hand if they are truly stale"
            ),
        }
    }
}

/// What the node wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub pod_routes: Vec<Route>,
    pub blackholes: Vec<Route>,
    /// Kernel routes kept because a deletion they depend on was refused.
    pub kept_routes: Vec<Route>,
    /// Host interface -> its sysctls.
    pub interface_sysctls: BTreeMap<String, Vec<(String, String)>>,
    /// Node-wide sysctls (forwarding).
    pub node_sysctls: Vec<(String, String)>,
    /// (link, owner to check at deletion) of the links that go.
    pub delete_links: Vec<(String, Option<String>)>,
    /// Interfaces an endpoint names but the kernel does not have: the pod's end is gone too,
    /// so nothing can be recreated; their routes are skipped and a DEL or GC will clean up.
    pub missing_links: Vec<String>,
    /// Endpoints whose interface name now belongs to a newer sandbox of the pod.
    pub superseded: Vec<String>,
    pub refusals: Vec<Refusal>,
}

/// Whether the link is this endpoint's: its alias names the endpoint's container (a link
/// without an alias predates owner aliases and is taken as the endpoint's).
fn owns(endpoint: &WorkloadEndpoint, link: &LinkInfo) -> bool {
    link.alias
        .as_deref()
        .is_none_or(|alias| alias == endpoint.container_id)
}

/// The cali links no endpoint of this node owns.
pub fn stray_links<'a>(endpoints: &[WorkloadEndpoint], links: &'a [LinkInfo]) -> Vec<&'a LinkInfo> {
    links
        .iter()
        .filter(|link| link.name.starts_with(HOST_INTERFACE_PREFIX))
        .filter(|link| {
            !endpoints
                .iter()
                .any(|endpoint| endpoint.interface_name == link.name && owns(endpoint, link))
        })
        .collect()
}

pub fn plan(inputs: &Inputs) -> Plan {
    let mut plan = Plan {
        node_sysctls: node_sysctls(inputs.ipv6_in_use),
        ..Plan::default()
    };
    let links: BTreeMap<&str, &LinkInfo> = inputs
        .links
        .iter()
        .map(|link| (link.name.as_str(), link))
        .collect();
    for block in &inputs.affine_blocks {
        plan.blackholes
            .push(Route::main(*block, RouteTarget::Blackhole));
    }
    for endpoint in &inputs.endpoints {
        match links.get(endpoint.interface_name.as_str()) {
            None => plan.missing_links.push(endpoint.interface_name.clone()),
            Some(link) if !owns(endpoint, link) => plan.superseded.push(endpoint.name.clone()),
            Some(_) => {
                let has_ipv6 = endpoint
                    .ip_networks
                    .iter()
                    .any(|address| matches!(address, IpNet::V6(_)));
                plan.interface_sysctls.insert(
                    endpoint.interface_name.clone(),
                    host_interface_sysctls(&endpoint.interface_name, has_ipv6),
                );
                for address in &endpoint.ip_networks {
                    plan.pod_routes.push(Route::main(
                        *address,
                        RouteTarget::Device(endpoint.interface_name.clone()),
                    ));
                }
            }
        }
    }

    let cali_links = inputs
        .links
        .iter()
        .filter(|link| link.name.starts_with(HOST_INTERFACE_PREFIX))
        .count();
    let mut kept_links: BTreeSet<String> = BTreeSet::new();
    // Gateway routes are BGP's (the route applier's Bgp source decides about them, whatever the
    // store says of this node): a node without pods may hold a million of them.
    let node_routes = || {
        inputs
            .routes
            .iter()
            .filter(|route| !matches!(route.target, RouteTarget::Via(_)))
    };
    if inputs.endpoints.is_empty()
        && inputs.affine_blocks.is_empty()
        && (cali_links > 0 || node_routes().next().is_some())
    {
        plan.refusals.push(Refusal::StoreKnowsNothing {
            links: cali_links,
            routes: node_routes().count(),
        });
        plan.kept_routes = node_routes().cloned().collect();
        return plan;
    }
    let mut candidates = Vec::new();
    for link in stray_links(&inputs.endpoints, &inputs.links) {
        let elsewhere = link
            .alias
            .as_ref()
            .and_then(|alias| inputs.elsewhere.get(alias).map(|node| (alias, node)));
        match elsewhere {
            Some((container, node)) => {
                plan.refusals.push(Refusal::RecordedOnOtherNode {
                    link: link.name.clone(),
                    container: container.clone(),
                    node: node.clone(),
                });
                kept_links.insert(link.name.clone());
            }
            None => candidates.push(link),
        }
    }
    if candidates.len() > MASS_DELETION_MINIMUM && candidates.len() * 2 > cali_links {
        plan.refusals.push(Refusal::MassDeletion {
            links: candidates.len(),
            of: cali_links,
        });
        kept_links.extend(candidates.iter().map(|link| link.name.clone()));
    } else {
        plan.delete_links = candidates
            .iter()
            .map(|link| (link.name.clone(), link.alias.clone()))
            .collect();
    }
    plan.kept_routes = inputs
        .routes
        .iter()
        .filter(|route| {
            route
                .target
                .devices()
                .any(|device| kept_links.contains(device))
        })
        .cloned()
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(container: &str, interface: &str, address: &str) -> WorkloadEndpoint {
        WorkloadEndpoint {
            name: format!("n-cni-{container}-eth0"),
            container_id: container.into(),
            interface_name: interface.into(),
            ip_networks: vec![address.parse().unwrap()],
            ..Default::default()
        }
    }

    fn link(name: &str, owner: Option<&str>) -> LinkInfo {
        LinkInfo {
            index: 1,
            name: name.into(),
            mac: [0xee; 6],
            mtu: 1500,
            up: true,
            alias: owner.map(str::to_string),
        }
    }

    fn device_route(address: &str, device: &str) -> Route {
        Route::main(address.parse().unwrap(), RouteTarget::Device(device.into()))
    }

    #[test]
    fn an_empty_store_removes_nothing() {
        let inputs = Inputs {
            links: vec![link("cali1", Some("c1"))],
            routes: vec![device_route("10.0.0.1/32", "cali1")],
            ..Default::default()
        };
        let plan = plan(&inputs);
        assert!(plan.delete_links.is_empty());
        assert_eq!(plan.kept_routes, inputs.routes);
        assert!(matches!(
            plan.refusals.as_slice(),
            [Refusal::StoreKnowsNothing {
                links: 1,
                routes: 1
            }]
        ));
    }

    #[test]
    fn bgp_routes_on_a_node_without_pods_are_not_a_refusal() {
        let via = Route::main(
            "10.9.0.0/24".parse().unwrap(),
            RouteTarget::via(vec![crate::netlink::NextHop {
                gateway: "192.0.2.1".parse().unwrap(),
                device: "eth0".into(),
                onlink: false,
            }]),
        );
        let inputs = Inputs {
            routes: vec![via],
            ..Default::default()
        };
        let plan = plan(&inputs);
        assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
        assert!(plan.kept_routes.is_empty());
    }

    #[test]
    fn a_link_whose_owner_is_recorded_on_another_node_is_kept() {
        let inputs = Inputs {
            endpoints: vec![endpoint("c2", "cali2", "10.0.0.2/32")],
            elsewhere: BTreeMap::from([("c1".to_string(), "old-name".to_string())]),
            links: vec![link("cali1", Some("c1")), link("cali2", Some("c2"))],
            routes: vec![device_route("10.0.0.1/32", "cali1")],
            ..Default::default()
        };
        let plan = plan(&inputs);
        assert!(plan.delete_links.is_empty());
        assert_eq!(plan.kept_routes, vec![device_route("10.0.0.1/32", "cali1")]);
        assert!(matches!(
            plan.refusals.as_slice(),
            [Refusal::RecordedOnOtherNode { .. }]
        ));
    }

    #[test]
    fn a_mass_deletion_is_refused_but_a_few_strays_go() {
        let mut links: Vec<LinkInfo> = (0..5)
            .map(|index| link(&format!("cali{index}"), Some(&format!("gone{index}"))))
            .collect();
        links.push(link("cali9", Some("c9")));
        let endpoints = vec![endpoint("c9", "cali9", "10.0.0.9/32")];
        let mass = plan(&Inputs {
            endpoints: endpoints.clone(),
            links: links.clone(),
            ..Default::default()
        });
        assert!(mass.delete_links.is_empty());
        assert!(matches!(
            mass.refusals.as_slice(),
            [Refusal::MassDeletion { links: 5, of: 6 }]
        ));
        let few = plan(&Inputs {
            endpoints,
            links: links[3..].to_vec(),
            ..Default::default()
        });
        assert_eq!(
            few.delete_links,
            vec![
                ("cali3".to_string(), Some("gone3".to_string())),
                ("cali4".to_string(), Some("gone4".to_string()))
            ]
        );
        assert!(few.refusals.is_empty());
    }

    #[test]
    fn an_endpoint_superseded_by_a_newer_sandbox_gets_no_routes() {
        let inputs = Inputs {
            endpoints: vec![
                endpoint("old", "cali1", "10.0.0.1/32"),
                endpoint("new", "cali1", "10.0.0.2/32"),
            ],
            links: vec![link("cali1", Some("new"))],
            ..Default::default()
        };
        let plan = plan(&inputs);
        assert_eq!(plan.pod_routes, vec![device_route("10.0.0.2/32", "cali1")]);
        assert_eq!(plan.superseded, vec!["n-cni-old-eth0".to_string()]);
        assert!(plan.delete_links.is_empty());
    }

    #[test]
    fn links_without_our_prefix_are_never_removed() {
        let plan = plan(&Inputs {
            endpoints: vec![endpoint("c1", "cali1", "10.0.0.1/32")],
            links: vec![
                link("cali1", Some("c1")),
                link("eth0", None),
                link("vethabc", None),
            ],
            ..Default::default()
        });
        assert!(plan.delete_links.is_empty());
    }

    #[test]
    fn routes_of_a_missing_link_are_not_wanted() {
        let plan = plan(&Inputs {
            endpoints: vec![endpoint("c1", "cali1", "10.0.0.1/32")],
            affine_blocks: vec!["10.0.0.0/26".parse().unwrap()],
            ..Default::default()
        });
        assert!(plan.pod_routes.is_empty());
        assert_eq!(plan.missing_links, vec!["cali1".to_string()]);
    }
}
