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

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use manul_store::IpPool;

use crate::netlink::{NextHop, Route, RouteLookup, RouteTarget};

/// Metric of learned routes outside every pool (BIRD's kernel protocol uses 32 as well).
pub const LEARNED_METRIC: u32 = 32;

/// One best path as the agent keeps it: the next hops bgpd chose.
pub type BestPaths = BTreeMap<IpNet, Vec<IpAddr>>;

/// How the kernel reaches each next hop (None: unreachable).
pub type NextHopLookups = BTreeMap<IpAddr, Option<RouteLookup>>;

/// The routes for every best path, and the prefixes left out with the reason.
pub fn remote_routes(
    best: &BestPaths,
    originated: &BTreeSet<IpNet>,
    pools: &[IpPool],
    lookups: &NextHopLookups,
) -> (Vec<Route>, Vec<String>) {
    let mut routes = Vec::with_capacity(best.len());
    let mut problems = Vec::new();
    for (prefix, next_hops) in best {
        match remote_route(*prefix, next_hops, originated, pools, lookups) {
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
    let mut route = Route::main(prefix, RouteTarget::via(resolved));
    if !pools.iter().any(|pool| pool.cidr.contains(&prefix)) {
        route.metric = LEARNED_METRIC;
    }
    Ok(Some(route))
}

/// Every next hop the best paths use (to look up in the kernel).
pub fn next_hops_of(best: &BestPaths) -> BTreeSet<IpAddr> {
    best.values().flatten().copied().collect()
}
