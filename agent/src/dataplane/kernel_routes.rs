//! The kernel's manul routes as a resync reads them, in a compact form. A node may hold a
//! million gateway routes (BGP's): each is kept as its destination (5 bytes for IPv4) and the
//! index of its target in a `RouteKeyMap`, about 19 bytes a route, where a `Vec<Route>` and a
//! `BTreeMap<RouteKey, _>` of it took over a hundred (a resync at 1M routes grew the agent by
//! 140 MiB). The few other routes (pod routes, blackholes, routes out of cali links) are kept
//! whole, for the reconcile plan to look at. Pure, no I/O.

use std::collections::HashMap;

use super::{delta::SlotMap, route_keys::RouteKeyMap};
use crate::{
    naming::HOST_INTERFACE_PREFIX,
    netlink::{Route, RouteTarget},
};

/// The index of a target in `KernelRoutes::targets`.
pub type TargetIndex = u32;

/// See the module comment.
#[derive(Debug, Default)]
pub struct KernelRoutes {
    /// Every route but the gateway routes out of devices other than cali links: what the
    /// reconcile plan reads (it decides about pod routes and blackholes, and keeps the routes
    /// of links whose deletion it refuses).
    pub listed: Vec<Route>,
    /// The gateway routes out of other devices (BGP's and VXLAN's), by key.
    gateways: RouteKeyMap<TargetIndex>,
    /// The distinct targets of `gateways`.
    targets: Vec<RouteTarget>,
    indices: HashMap<RouteTarget, TargetIndex>,
    /// The target of the last gateway route: a dump shares one list among the routes through
    /// the same gateways, so most routes are matched by pointer, without hashing their list.
    last: Option<(RouteTarget, TargetIndex)>,
}

impl KernelRoutes {
    /// Takes in one route of the dump.
    pub fn insert(&mut self, route: Route) {
        if !is_gateway_route(&route) {
            self.listed.push(route);
            return;
        }
        let key = route.key();
        let index = match (&self.last, &route.target) {
            (Some((RouteTarget::Via(last), index)), RouteTarget::Via(hops))
                if std::sync::Arc::ptr_eq(last, hops) =>
            {
                *index
            }
            _ => {
                let index = self.index_of(&route.target);
                self.last = Some((route.target, index));
                index
            }
        };
        self.gateways.insert(key, index);
    }

    fn index_of(&mut self, target: &RouteTarget) -> TargetIndex {
        if let Some(index) = self.indices.get(target) {
            return *index;
        }
        let index = TargetIndex::try_from(self.targets.len()).unwrap_or(TargetIndex::MAX);
        self.targets.push(target.clone());
        self.indices.insert(target.clone(), index);
        index
    }

    /// How many routes were read.
    pub fn len(&self) -> usize {
        self.listed.len() + self.gateways.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every route as (key, target index), and the targets by index: the listed routes join
    /// the gateway routes in the one compact map.
    pub fn into_compact(mut self) -> (RouteKeyMap<TargetIndex>, Vec<RouteTarget>) {
        for route in std::mem::take(&mut self.listed) {
            let index = TargetIndex::try_from(self.targets.len()).unwrap_or(TargetIndex::MAX);
            self.gateways.insert(route.key(), index);
            self.targets.push(route.target);
        }
        (self.gateways, self.targets)
    }

    /// Every route, rebuilt.
    #[cfg(test)]
    fn routes(&self) -> Vec<Route> {
        let mut routes = self.listed.clone();
        routes.extend(self.gateways.iter().filter_map(|(key, index)| {
            Some(Route {
                table: key.table,
                destination: key.destination,
                metric: key.metric,
                target: self.targets.get(*index as usize)?.clone(),
            })
        }));
        routes.sort();
        routes
    }
}

impl From<Vec<Route>> for KernelRoutes {
    fn from(routes: Vec<Route>) -> KernelRoutes {
        routes.into_iter().collect()
    }
}

impl FromIterator<Route> for KernelRoutes {
    fn from_iter<I: IntoIterator<Item = Route>>(routes: I) -> KernelRoutes {
        let mut kernel = KernelRoutes::default();
        for route in routes {
            kernel.insert(route);
        }
        kernel
    }
}

/// A route through gateways, none of them out of a cali link.
fn is_gateway_route(route: &Route) -> bool {
    match &route.target {
        RouteTarget::Via(hops) => !hops
            .iter()
            .any(|hop| hop.device.starts_with(HOST_INTERFACE_PREFIX)),
        RouteTarget::Device(_) | RouteTarget::Blackhole => false,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::netlink::{MAIN_TABLE, NextHop, RouteKey};

    fn via(destination: &str, gateway: &str, device: &str) -> Route {
        let gateway: IpAddr = gateway.parse().unwrap();
        Route::main(
            destination.parse().unwrap(),
            RouteTarget::via(vec![NextHop {
                gateway,
                device: device.to_string(),
                onlink: false,
            }]),
        )
    }

    fn device(destination: &str, device: &str) -> Route {
        Route::main(
            destination.parse().unwrap(),
            RouteTarget::Device(device.to_string()),
        )
    }

    #[test]
    fn only_routes_off_cali_links_are_compacted() {
        let routes = vec![
            via("10.1.0.0/26", "192.168.0.2", "eth0"),
            via("10.1.1.0/26", "192.168.0.2", "eth0"),
            via("10.1.2.0/26", "10.0.0.9", "cali0123456789a"),
            device("10.0.0.1/32", "cali0123456789a"),
            Route::main("10.0.0.0/26".parse().unwrap(), RouteTarget::Blackhole),
        ];
        let kernel: KernelRoutes = routes.clone().into();
        assert_eq!(kernel.len(), 5);
        assert_eq!(
            kernel.listed,
            vec![routes[2].clone(), routes[3].clone(), routes[4].clone()]
        );
        // One target for the two routes through the same gateway.
        let (compact, targets) = KernelRoutes::from(routes.clone()).into_compact();
        assert_eq!(compact.len(), 5);
        assert_eq!(targets.len(), 4);
        let mut expected = routes;
        expected.sort();
        assert_eq!(kernel.routes(), expected);
        let key = RouteKey {
            table: MAIN_TABLE,
            destination: "10.1.1.0/26".parse().unwrap(),
            metric: 0,
        };
        assert_eq!(compact.get(&key), Some(&0));
    }

    #[test]
    fn routes_sharing_a_list_share_its_index() {
        let first = via("10.1.0.0/26", "192.168.0.2", "eth0");
        let mut same_list = first.clone();
        same_list.destination = "10.1.3.0/26".parse().unwrap();
        let other = via("10.1.1.0/26", "192.168.0.3", "eth0");
        let mut kernel = KernelRoutes::default();
        for route in [
            first,
            other,
            same_list,
            via("10.1.4.0/26", "192.168.0.2", "eth0"),
        ] {
            kernel.insert(route);
        }
        let (compact, targets) = kernel.into_compact();
        assert_eq!(targets.len(), 2);
        let indices: Vec<TargetIndex> = compact.iter().map(|(_, index)| *index).collect();
        assert_eq!(indices, vec![0, 1, 0, 0]);
    }
}
