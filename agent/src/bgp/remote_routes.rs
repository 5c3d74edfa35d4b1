//! The kernel routes for what manul-bgpd learned, with no I/O: each best path becomes one
//! route through its next hops (one multipath route when several tie), in manul's protocol.
//!
//! - A next hop on a connected network is used as it is. One that is not (a node in another
//!   subnet, learned over iBGP) is resolved recursively, as BIRD's `gateway recursive` does:
//!   the route goes via the gateway the kernel uses to reach that next hop. A next hop the
//!   kernel cannot reach leaves the prefix out (reported).
//! - Prefixes inside a pool (other nodes' blocks and borrowed addresses) get the kernel's
//!   default metric; anything else learned (a default route from a top-of-rack router) gets
//!   `LEARNED_METRIC`, so it does not collide with the host's own routes of metric 0 and a
//!   static default route of the host still wins.
//! - What this node originates itself is never installed from BGP.
//!
//! A borrowed /32 beats its owner's block by longest-prefix match.
//!
//! Memory: a node may learn a million prefixes through a handful of gateways, so the next-hop
//! lists of the best paths and of the routes are shared (`SharedSlices`): each distinct list is
//! held once, and every path or route through it holds a reference.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    hash::Hash,
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;
use manul_store::IpPool;

pub use super::best_paths::{BestPaths, PathHops, SharedPathHops};
use crate::netlink::{NextHop, Route, RouteLookup, RouteTarget};

/// Metric of learned routes outside every pool (BIRD's kernel protocol uses 32 as well).
pub const LEARNED_METRIC: u32 = 32;

/// Hands out one shared copy of each distinct list: equal lists come back as the same `Arc`.
#[derive(Debug)]
pub struct SharedSlices<T> {
    lists: HashSet<Arc<[T]>>,
    /// The list shared last: compared before hashing (most routes share one list).
    last: Option<Arc<[T]>>,
}

impl<T> Default for SharedSlices<T> {
    fn default() -> Self {
        SharedSlices {
            lists: HashSet::new(),
            last: None,
        }
    }
}

impl<T: Eq + Hash + Clone> SharedSlices<T> {
    /// The shared copy of `list`, made on first use.
    pub fn share(&mut self, list: &[T]) -> Arc<[T]> {
        if let Some(last) = &self.last
            && **last == *list
        {
            return last.clone();
        }
        let shared = match self.lists.get(list) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<[T]> = list.into();
                self.lists.insert(shared.clone());
                shared
            }
        };
        self.last = Some(shared.clone());
        shared
    }

    /// Drops the lists nothing else holds any more.
    pub fn drop_unused(&mut self) {
        self.last = None;
        self.lists.retain(|list| Arc::strong_count(list) > 1);
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

/// The shared next-hop lists of best paths and of the routes made from them.
#[derive(Debug, Default)]
pub struct SharedNextHops {
    pub paths: SharedPathHops,
    pub routes: SharedSlices<NextHop>,
}

/// How the kernel reaches each next hop (None: unreachable).
pub type NextHopLookups = BTreeMap<IpAddr, Option<RouteLookup>>;

/// The routes for every best path, and the prefixes left out with the reason.
pub fn remote_routes(
    best: &BestPaths,
    originated: &BTreeSet<IpNet>,
    pools: &[IpPool],
    lookups: &NextHopLookups,
    shared: &mut SharedSlices<NextHop>,
) -> (Vec<Route>, Vec<String>) {
    let mut routes = Vec::with_capacity(best.len());
    let mut problems = Vec::new();
    for (prefix, next_hops) in best.iter() {
        match remote_route(prefix, next_hops, originated, pools, lookups, shared) {
            Ok(Some(route)) => routes.push(route),
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    (routes, problems)
}

/// The route for one best path: None when the node originates the prefix itself.
pub fn remote_route(
    prefix: IpNet,
    next_hops: &[IpAddr],
    originated: &BTreeSet<IpNet>,
    pools: &[IpPool],
    lookups: &NextHopLookups,
    shared: &mut SharedSlices<NextHop>,
) -> Result<Option<Route>, String> {
    if originated.contains(&prefix) {
        return Ok(None);
    }
    let mut resolved = Vec::new();
    for next_hop in next_hops {
        if next_hop.is_ipv4() != prefix.addr().is_ipv4() {
            // An IPv4 prefix over an IPv6 next hop (RFC 8950) needs `via inet6`, which the
            // route model does not carry yet.
            continue;
        }
        if let Some(Some(lookup)) = lookups.get(next_hop) {
            resolved.push(NextHop {
                gateway: lookup.gateway.unwrap_or(*next_hop),
                device: lookup.device.clone(),
                onlink: false,
            });
        }
    }
    if resolved.is_empty() {
        return Err(format!(
            "{prefix}: no next hop of {} is reachable from this node (of the same family)",
            next_hops
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    resolved.sort();
    resolved.dedup();
    let mut route = Route::main(prefix, RouteTarget::Via(shared.share(&resolved)));
    if !pools.iter().any(|pool| pool.cidr.contains(&prefix)) {
        route.metric = LEARNED_METRIC;
    }
    Ok(Some(route))
}

/// Every next hop the best paths use (to look up in the kernel).
pub fn next_hops_of(best: &BestPaths) -> BTreeSet<IpAddr> {
    best.values()
        .flat_map(|hops| hops.iter())
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lists_are_held_once_until_unused() {
        let mut shared = SharedSlices::default();
        let first = shared.share(&[1, 2]);
        let second = shared.share(&[1, 2]);
        let other = shared.share(&[3]);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(shared.len(), 2);
        drop(other);
        shared.drop_unused();
        assert_eq!(shared.len(), 1);
        drop((first, second));
        shared.drop_unused();
        assert!(shared.is_empty());
    }
}
