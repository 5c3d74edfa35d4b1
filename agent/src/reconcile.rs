//! The reconciler: computes the kernel state this node wants from its endpoints and affine
//! blocks (pure), diffs it against what the kernel holds (only proto-manul routes and cali*
//! links are looked at), and applies the delta. Restarting the agent converges the kernel
//! without disturbing pods: present state is left as it is, only the missing is added and only
//! what is ours and unwanted is removed. The apply step does I/O through the traits.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use manul_store::WorkloadEndpoint;
use tracing::{debug, info, warn};

use crate::{
    endpoint::{EndpointError, Endpoints},
    naming::HOST_INTERFACE_PREFIX,
    netlink::{LinkInfo, Route, RouteTarget},
    sysctl::host_interface_sysctls,
};

/// What this node wants in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub routes: BTreeSet<Route>,
    /// Host interface -> its sysctls.
    pub interfaces: BTreeMap<String, Vec<(String, String)>>,
}

/// Pure: endpoints and affine blocks -> routes and per-interface sysctls.
pub fn desired_state(endpoints: &[WorkloadEndpoint], affine_blocks: &[IpNet]) -> DesiredState {
    let mut desired = DesiredState::default();
    for block in affine_blocks {
        desired.routes.insert(Route {
            destination: *block,
            target: RouteTarget::Blackhole,
        });
    }
    for endpoint in endpoints {
        let has_ipv6 = endpoint
            .ip_networks
            .iter()
            .any(|address| matches!(address, IpNet::V6(_)));
        desired.interfaces.insert(
            endpoint.interface_name.clone(),
            host_interface_sysctls(&endpoint.interface_name, has_ipv6),
        );
        for address in &endpoint.ip_networks {
            desired.routes.insert(Route {
                destination: *address,
                target: RouteTarget::Device(endpoint.interface_name.clone()),
            });
        }
    }
    desired
}

/// The changes that take the kernel from `present` to `desired`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub add_routes: Vec<Route>,
    pub delete_routes: Vec<Route>,
    pub delete_links: Vec<String>,
    /// Interfaces an endpoint names but the kernel does not have: the pod's end is gone too,
    /// so nothing can be recreated; their routes are skipped and a DEL or GC will clean up.
    pub missing_links: Vec<String>,
}

/// Pure: the delta between the desired state and the kernel's proto-manul routes and cali*
/// links.
pub fn delta(desired: &DesiredState, routes: &[Route], links: &[LinkInfo]) -> Delta {
    let present_routes: BTreeSet<&Route> = routes.iter().collect();
    let present_links: BTreeSet<&str> = links.iter().map(|link| link.name.as_str()).collect();
    let missing_links: Vec<String> = desired
        .interfaces
        .keys()
        .filter(|name| !present_links.contains(name.as_str()))
        .cloned()
        .collect();
    let add_routes = desired
        .routes
        .iter()
        .filter(|route| !present_routes.contains(route))
        .filter(|route| match &route.target {
            RouteTarget::Device(device) => present_links.contains(device.as_str()),
            _ => true,
        })
        .cloned()
        .collect();
    let delete_routes = routes
        .iter()
        .filter(|route| !desired.routes.contains(route))
        .cloned()
        .collect();
    let delete_links = links
        .iter()
        .filter(|link| {
            link.name.starts_with(HOST_INTERFACE_PREFIX)
                && !desired.interfaces.contains_key(&link.name)
        })
        .map(|link| link.name.clone())
        .collect();
    Delta {
        add_routes,
        delete_routes,
        delete_links,
        missing_links,
    }
}

/// What one pass changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub routes_added: usize,
    pub routes_deleted: usize,
    pub links_deleted: usize,
    pub sysctls_changed: usize,
    pub missing_links: Vec<String>,
}

impl Endpoints {
    /// One reconcile pass. Holds the kernel epoch exclusively, so no CNI operation is half done
    /// while it looks.
    pub async fn reconcile(&self) -> Result<ReconcileReport, EndpointError> {
        let epoch = self.kernel_epoch();
        let _exclusive = epoch.write().await;
        self.refresh_default_mtu().await?;
        let endpoints: Vec<WorkloadEndpoint> = self
            .list()
            .await?
            .into_iter()
            .map(|versioned| versioned.value)
            .collect();
        let blocks = self.ipam().affine_blocks(self.node()).await?;
        let desired = desired_state(&endpoints, &blocks);
        let routes = self.netlink.manul_routes().await?;
        let links = self
            .netlink
            .links_with_prefix(HOST_INTERFACE_PREFIX)
            .await?;
        let delta = delta(&desired, &routes, &links);
        let mut report = ReconcileReport {
            missing_links: delta.missing_links.clone(),
            ..Default::default()
        };

        for name in &delta.delete_links {
            info!(link = %name, "removing a cali link that belongs to no endpoint");
            self.netlink.delete_link(name).await?;
            report.links_deleted += 1;
        }
        for route in &delta.delete_routes {
            // Routes through a deleted link went with it.
            if let RouteTarget::Device(device) = &route.target
                && delta.delete_links.contains(device)
            {
                continue;
            }
            info!(destination = %route.destination, "removing a manul route that nothing wants");
            self.netlink.delete_route(route).await?;
            report.routes_deleted += 1;
        }
        for route in &delta.add_routes {
            info!(destination = %route.destination, "restoring a missing manul route");
            self.netlink.replace_route(route).await?;
            report.routes_added += 1;
        }
        for (interface, sysctls) in &desired.interfaces {
            if delta.missing_links.contains(interface) {
                continue;
            }
            for (key, value) in sysctls {
                if self.sysctl.set(key, value)? {
                    report.sysctls_changed += 1;
                }
            }
        }
        *self
            .block_routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = blocks.iter().copied().collect();
        for name in &delta.missing_links {
            warn!(link = %name, "an endpoint's host interface is missing; its pod is gone (DEL or GC will release it)");
        }
        debug!(?report, "reconciled");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(interface: &str, address: &str) -> WorkloadEndpoint {
        WorkloadEndpoint {
            name: format!("n-cni-{interface}"),
            interface_name: interface.into(),
            ip_networks: vec![address.parse().unwrap()],
            ..Default::default()
        }
    }

    fn link(name: &str) -> LinkInfo {
        LinkInfo {
            index: 1,
            name: name.into(),
            mac: [0xee; 6],
            mtu: 1500,
            up: true,
        }
    }

    fn device_route(address: &str, device: &str) -> Route {
        Route {
            destination: address.parse().unwrap(),
            target: RouteTarget::Device(device.into()),
        }
    }

    #[test]
    fn desired_state_has_host_routes_blackholes_and_sysctls() {
        let desired = desired_state(
            &[endpoint("cali1", "10.0.0.1/32")],
            &["10.0.0.0/26".parse().unwrap()],
        );
        assert!(
            desired
                .routes
                .contains(&device_route("10.0.0.1/32", "cali1"))
        );
        assert!(desired.routes.contains(&Route {
            destination: "10.0.0.0/26".parse().unwrap(),
            target: RouteTarget::Blackhole
        }));
        assert!(
            desired.interfaces["cali1"]
                .iter()
                .any(|(key, value)| key.ends_with("cali1/proxy_arp") && value == "1")
        );
    }

    #[test]
    fn delta_restores_missing_and_removes_unwanted_only() {
        let desired = desired_state(
            &[endpoint("cali1", "10.0.0.1/32")],
            &["10.0.0.0/26".parse().unwrap()],
        );
        let present_routes = vec![device_route("10.0.0.9/32", "cali9")];
        let links = vec![link("cali1"), link("cali9")];
        let delta = delta(&desired, &present_routes, &links);
        assert_eq!(delta.delete_links, vec!["cali9".to_string()]);
        assert_eq!(
            delta.delete_routes,
            vec![device_route("10.0.0.9/32", "cali9")]
        );
        assert_eq!(delta.add_routes.len(), 2);
        assert!(delta.missing_links.is_empty());
    }

    #[test]
    fn delta_of_a_converged_kernel_is_empty() {
        let desired = desired_state(&[endpoint("cali1", "10.0.0.1/32")], &[]);
        let routes: Vec<Route> = desired.routes.iter().cloned().collect();
        let delta = delta(&desired, &routes, &[link("cali1")]);
        assert_eq!(delta, Delta::default());
    }

    #[test]
    fn links_without_our_prefix_are_never_removed() {
        let delta = delta(
            &DesiredState::default(),
            &[],
            &[link("eth0"), link("vethabc")],
        );
        assert!(delta.delete_links.is_empty());
    }

    #[test]
    fn routes_of_a_missing_link_are_not_added() {
        let desired = desired_state(&[endpoint("cali1", "10.0.0.1/32")], &[]);
        let delta = delta(&desired, &[], &[]);
        assert!(delta.add_routes.is_empty());
        assert_eq!(delta.missing_links, vec!["cali1".to_string()]);
    }
}
