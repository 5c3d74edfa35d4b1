//! Point lookups in the kernel's FIB, through rtnetlink: the default route's MTU, where the
//! kernel would send a packet (`ip route get`), and the route of manul's that matches a prefix
//! (`ip route get fibmatch`). Each is one request, not a dump, so a node with a million routes
//! answers as fast as an empty one. Does I/O.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{
    Handle, RouteMessageBuilder,
    packet_route::{
        AddressFamily,
        route::{
            RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteType,
            RouteVia,
        },
    },
};

use super::{
    links::{self, errno},
    routes::{
        destination, dump_table, family_requests, output_interface, parse_route, priority,
        route_address, route_error,
    },
};
use crate::netlink::{NetlinkError, ROUTE_PROTOCOL, Route, RouteLookup};

/// An address no network uses (TEST-NET-1, RFC 5737): a FIB lookup of it lands on the default
/// route. The lookup sends nothing.
const UNROUTED_PROBE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ENETUNREACH: i32 = 101;
const EHOSTUNREACH: i32 = 113;
const EINVAL: i32 = 22;
const EACCES: i32 = 13;

/// MTU of the interface of the IPv4 default route: one FIB lookup (`ip route get fibmatch`),
/// not a dump, so a node with a million routes answers as fast as an empty one. Falls back to
/// a dump of the main table when something more specific than the default covers the probe.
pub(crate) async fn default_route_mtu(
    handle: &Handle,
    dump_handle: &Handle,
) -> Result<Option<u32>, NetlinkError> {
    let mut request = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(UNROUTED_PROBE, 32)
        .build();
    request.header.flags |= RouteFlags::FibMatch;
    let mut answer = handle.route().get(request).execute();
    match answer.try_next().await {
        Ok(Some(message))
            if message.header.destination_prefix_length == 0
                && message.header.kind == RouteType::Unicast =>
        {
            let Some(index) = output_interface(&message) else {
                return Ok(None);
            };
            return Ok(links::link_by_index(handle, index)
                .await?
                .map(|link| link.mtu));
        }
        Ok(_) => {}
        Err(error) if errno(&error) == Some(ENETUNREACH) => return Ok(None),
        Err(_) => {}
    }
    default_route_mtu_by_dump(handle, dump_handle).await
}

/// `ip route get <destination>`: the kernel's choice of gateway, device and source.
pub(crate) async fn route_lookup(
    handle: &Handle,
    destination: IpAddr,
) -> Result<Option<RouteLookup>, NetlinkError> {
    let Some(message) = get_route(handle, destination, RouteFlags::empty()).await? else {
        return Ok(None);
    };
    if message.header.kind != RouteType::Unicast && message.header.kind != RouteType::Local {
        return Ok(None);
    }
    let Some(index) = output_interface(&message) else {
        return Ok(None);
    };
    let Some(link) = links::link_by_index(handle, index).await? else {
        return Ok(None);
    };
    let mut lookup = RouteLookup {
        gateway: None,
        device: link.name,
        source: None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Gateway(address) => lookup.gateway = route_address(address),
            RouteAttribute::Via(RouteVia::Inet(address)) => {
                lookup.gateway = Some(IpAddr::V4(*address));
            }
            RouteAttribute::Via(RouteVia::Inet6(address)) => {
                lookup.gateway = Some(IpAddr::V6(*address));
            }
            RouteAttribute::PrefSource(address) => lookup.source = route_address(address),
            _ => {}
        }
    }
    Ok(Some(lookup))
}

async fn default_route_mtu_by_dump(
    handle: &Handle,
    dump_handle: &Handle,
) -> Result<Option<u32>, NetlinkError> {
    let mut defaults = Vec::new();
    for request in family_requests() {
        let default = |message: &RouteMessage| {
            let is_default = message.header.address_family == AddressFamily::Inet
                && message.header.destination_prefix_length == 0
                && message.header.kind == RouteType::Unicast;
            if is_default && let Some(interface) = output_interface(message) {
                defaults.push((priority(message), interface));
            }
        };
        let main = u32::from(RouteHeader::RT_TABLE_MAIN);
        dump_table(dump_handle, request, main, None, default).await?;
    }
    let best = defaults.into_iter().min();
    let Some((_, index)) = best else {
        return Ok(None);
    };
    Ok(links::link_by_index(handle, index)
        .await?
        .map(|link| link.mtu))
}

/// The route of manul's (`proto manul`) that the FIB matches for `prefix`'s address
/// (`ip route get fibmatch`), if it is exactly `prefix`: None when no route carries our
/// protocol there, a wider or narrower one matches, or a blackhole does (the lookup answers
/// its error). A route that names a next-hop object reads back only while the kernel also
/// spells its next hops out (`nexthop_compat_mode` 1, the default).
pub(crate) async fn manul_route_of(
    handle: &Handle,
    prefix: IpNet,
) -> Result<Option<Route>, NetlinkError> {
    let Some(message) = get_route(handle, prefix.addr(), RouteFlags::FibMatch).await? else {
        return Ok(None);
    };
    if message.header.protocol != RouteProtocol::from(ROUTE_PROTOCOL)
        || destination(&message) != Some(prefix.trunc())
    {
        return Ok(None);
    }
    let mut names = HashMap::new();
    for index in interfaces_of(&message) {
        if let Some(link) = links::link_by_index(handle, index).await? {
            names.insert(index, link.name);
        }
    }
    Ok(parse_route(&message, &names, &HashMap::new()))
}

/// One `RTM_GETROUTE` of `address` with `flags`: the kernel's answer, None when no route
/// leads there (or the lookup lands on a blackhole, unreachable or prohibit route).
async fn get_route(
    handle: &Handle,
    address: IpAddr,
    flags: RouteFlags,
) -> Result<Option<RouteMessage>, NetlinkError> {
    let mut request = match address {
        IpAddr::V4(address) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(address, 32)
            .build(),
        IpAddr::V6(address) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(address, 128)
            .build(),
    };
    request.header.flags |= flags;
    let mut answer = handle.route().get(request).execute();
    match answer.try_next().await {
        Ok(message) => Ok(message),
        Err(error)
            if matches!(
                errno(&error),
                Some(ENETUNREACH | EHOSTUNREACH | EINVAL | EACCES)
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(route_error(&IpNet::from(address), error)),
    }
}

/// The interface indexes a route message names: its output interface and its multipath hops'.
fn interfaces_of(message: &RouteMessage) -> Vec<u32> {
    let mut indexes: Vec<u32> = output_interface(message).into_iter().collect();
    for attribute in &message.attributes {
        if let RouteAttribute::MultiPath(hops) = attribute {
            indexes.extend(hops.iter().map(|hop| hop.interface_index));
        }
    }
    indexes
}
