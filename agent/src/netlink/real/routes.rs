//! Host routes carrying manul's protocol number, and the default route's MTU, through
//! rtnetlink. Does I/O (netlink requests on the given handle); message building and parsing are
//! pure functions at the bottom.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{
    Handle, RouteMessageBuilder, RouteNextHopBuilder,
    packet_route::{
        AddressFamily,
        route::{
            RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
            RouteProtocol, RouteScope, RouteType, RouteVia,
        },
    },
};

use super::links::{self, EEXIST, ENODEV, ESRCH, errno};
use crate::netlink::{NetlinkError, NextHop, ROUTE_PROTOCOL, Route, RouteLookup, RouteTarget};

fn route_error(destination: &IpNet, reason: impl ToString) -> NetlinkError {
    NetlinkError::Route {
        destination: destination.to_string(),
        reason: reason.to_string(),
    }
}

/// The interface index of every device of the route, in the order of `devices()`; None when
/// one of them does not exist.
async fn device_indexes(handle: &Handle, route: &Route) -> Result<Option<Vec<u32>>, NetlinkError> {
    let mut indexes = Vec::new();
    for device in route.target.devices() {
        match links::link_by_name(handle, device).await? {
            Some(link) => indexes.push(link.index),
            None => return Ok(None),
        }
    }
    Ok(Some(indexes))
}

async fn resolved_message(handle: &Handle, route: &Route) -> Result<RouteMessage, NetlinkError> {
    let Some(indexes) = device_indexes(handle, route).await? else {
        return Err(route_error(
            &route.destination,
            format!("no device {}", route.target.devices().join(" or ")),
        ));
    };
    route_message(route, &indexes)
}

/// `ip route add <route> proto manul` (create, never replace).
pub(crate) async fn add_route(handle: &Handle, route: &Route) -> Result<(), NetlinkError> {
    let message = resolved_message(handle, route).await?;
    match handle.route().add(message).execute().await {
        Ok(()) => Ok(()),
        Err(error) if errno(&error) == Some(EEXIST) => Err(NetlinkError::RouteExists {
            destination: route.destination.to_string(),
        }),
        Err(error) => Err(route_error(&route.destination, error)),
    }
}

/// `ip route replace <route> proto manul`; fails when a device of the route does not exist.
pub(crate) async fn replace_route(handle: &Handle, route: &Route) -> Result<(), NetlinkError> {
    let message = resolved_message(handle, route).await?;
    replace_message(handle, message, &route.destination).await
}

/// `ip route replace` of a prepared message (host routes here, the pod's routes in `pod`).
pub(crate) async fn replace_message(
    handle: &Handle,
    message: RouteMessage,
    destination: &IpNet,
) -> Result<(), NetlinkError> {
    handle
        .route()
        .add(message)
        .replace()
        .execute()
        .await
        .map_err(|error| route_error(destination, error))
}

/// `ip route del <route> proto manul`; Ok when the route (or its device) is gone. Only a route
/// with manul's protocol matches, so another owner's route to the same prefix is never deleted.
pub(crate) async fn delete_route(handle: &Handle, route: &Route) -> Result<(), NetlinkError> {
    let Some(indexes) = device_indexes(handle, route).await? else {
        // The kernel removed the route with its device.
        return Ok(());
    };
    let mut message = route_message(route, &indexes)?;
    // Like `ip route del`: match any scope.
    message.header.scope = RouteScope::NoWhere;
    match handle.route().del(message).execute().await {
        Ok(()) => Ok(()),
        Err(error) if matches!(errno(&error), Some(ESRCH) | Some(ENODEV)) => Ok(()),
        Err(error) => Err(route_error(&route.destination, error)),
    }
}

/// Every route of the given family in `table`, filtered by the kernel (the handle must have
/// strict checking on: without it the kernel ignores the filter and sends everything).
async fn dump_table(
    handle: &Handle,
    mut request: RouteMessage,
    table: u32,
    protocol: Option<u8>,
) -> Result<Vec<RouteMessage>, NetlinkError> {
    if let Ok(small) = u8::try_from(table) {
        request.header.table = small;
    } else {
        request.header.table = RouteHeader::RT_TABLE_UNSPEC;
        request.attributes.push(RouteAttribute::Table(table));
    }
    if let Some(protocol) = protocol {
        request.header.protocol = RouteProtocol::from(protocol);
    }
    // The builder's default type is unicast, which a strict dump would filter by.
    request.header.kind = RouteType::Unspec;
    request.header.scope = RouteScope::Universe;
    let mut messages: Vec<RouteMessage> = handle
        .route()
        .get(request)
        .execute()
        .try_collect()
        .await
        .map_err(|error| NetlinkError::Other(format!("dumping table {table}: {error}")))?;
    // The kernel filters with strict checking; this keeps the answer right without it.
    messages.retain(|message| {
        self::table(message) == table
            && protocol
                .is_none_or(|protocol| message.header.protocol == RouteProtocol::from(protocol))
    });
    Ok(messages)
}

fn family_requests() -> [RouteMessage; 2] {
    [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ]
}

/// Every proto-manul route of the main table and of `tables`, IPv4 and IPv6. `dump_handle`
/// has strict checking on, so the kernel sends only those routes.
pub(crate) async fn manul_routes(
    handle: &Handle,
    dump_handle: &Handle,
    tables: &[u32],
) -> Result<Vec<Route>, NetlinkError> {
    let main = u32::from(RouteHeader::RT_TABLE_MAIN);
    let mut all_tables = vec![main];
    all_tables.extend(tables.iter().copied().filter(|table| *table != main));
    all_tables.dedup();
    let mut messages = Vec::new();
    for table in all_tables {
        for request in family_requests() {
            messages
                .append(&mut dump_table(dump_handle, request, table, Some(ROUTE_PROTOCOL)).await?);
        }
    }
    let names: HashMap<u32, String> = links::all_links(handle)
        .await?
        .into_iter()
        .map(|link| (link.index, link.name))
        .collect();
    Ok(messages
        .iter()
        .filter_map(|message| parse_route(message, &names))
        .collect())
}

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
    let request = match destination {
        IpAddr::V4(address) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(address, 32)
            .build(),
        IpAddr::V6(address) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(address, 128)
            .build(),
    };
    let mut answer = handle.route().get(request).execute();
    let message = match answer.try_next().await {
        Ok(Some(message)) => message,
        Ok(None) => return Ok(None),
        Err(error)
            if matches!(
                errno(&error),
                Some(ENETUNREACH | EHOSTUNREACH | EINVAL | EACCES)
            ) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(route_error(&IpNet::from(destination), error)),
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
    let mut messages = Vec::new();
    for request in family_requests() {
        messages.append(
            &mut dump_table(
                dump_handle,
                request,
                u32::from(RouteHeader::RT_TABLE_MAIN),
                None,
            )
            .await?,
        );
    }
    let best = messages
        .iter()
        .filter(|message| {
            message.header.address_family == AddressFamily::Inet
                && message.header.destination_prefix_length == 0
                && message.header.kind == RouteType::Unicast
        })
        .filter_map(|message| Some((priority(message), output_interface(message)?)))
        .min();
    let Some((_, index)) = best else {
        return Ok(None);
    };
    Ok(links::link_by_index(handle, index)
        .await?
        .map(|link| link.mtu))
}

/// The kernel message for a route of ours; `indexes` are the interface indexes of
/// `route.target.devices()`, in order.
fn route_message(route: &Route, indexes: &[u32]) -> Result<RouteMessage, NetlinkError> {
    let destination = route.destination.trunc();
    let invalid = |error| route_error(&route.destination, error);
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .map_err(invalid)?
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
        .table_id(route.table);
    if route.metric != 0 {
        builder = builder.priority(route.metric);
    }
    match &route.target {
        RouteTarget::Device(_) => builder = builder.scope(RouteScope::Link),
        RouteTarget::Blackhole => builder = builder.kind(RouteType::BlackHole),
        RouteTarget::Via(next_hops) if next_hops.len() == 1 => {
            let hop = &next_hops[0];
            builder = builder.gateway(hop.gateway).map_err(invalid)?;
            if hop.onlink {
                builder = builder.onlink();
            }
        }
        RouteTarget::Via(next_hops) => {
            let family = match destination {
                IpNet::V4(_) => AddressFamily::Inet,
                IpNet::V6(_) => AddressFamily::Inet6,
            };
            let mut hops = Vec::new();
            for (hop, index) in next_hops.iter().zip(indexes) {
                let mut next = RouteNextHopBuilder::new(family)
                    .interface(*index)
                    .via(hop.gateway)
                    .map_err(|error| route_error(&route.destination, error))?;
                if hop.onlink {
                    next = next.onlink();
                }
                hops.push(next.build());
            }
            builder = builder.multipath(hops);
        }
    }
    let single_device = match &route.target {
        RouteTarget::Via(next_hops) => next_hops.len() == 1,
        _ => true,
    };
    if single_device && let Some(index) = indexes.first() {
        builder = builder.output_interface(*index);
    }
    Ok(builder.build())
}

fn table(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table))
}

fn priority(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Priority(priority) => Some(*priority),
            _ => None,
        })
        .unwrap_or(0)
}

fn output_interface(message: &RouteMessage) -> Option<u32> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Oif(index) => Some(*index),
            RouteAttribute::MultiPath(hops) => hops.first().map(|hop| hop.interface_index),
            _ => None,
        })
}

pub(crate) fn route_address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The route's gateway (`RTA_GATEWAY`, or `RTA_VIA` for an IPv4 route via IPv6).
pub(crate) fn gateway(message: &RouteMessage) -> Option<IpAddr> {
    gateway_of(&message.attributes)
}

/// The gateway among a route's or a next hop's attributes.
fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|attribute| match attribute {
        RouteAttribute::Gateway(address) => route_address(address),
        RouteAttribute::Via(RouteVia::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Via(RouteVia::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

/// The route's destination; absent means the default route of its family.
pub(crate) fn destination(message: &RouteMessage) -> Option<IpNet> {
    let address = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Destination(address) => route_address(address),
            _ => None,
        });
    let address = match (address, message.header.address_family) {
        (Some(address), _) => address,
        (None, AddressFamily::Inet) => Ipv4Addr::UNSPECIFIED.into(),
        (None, AddressFamily::Inet6) => Ipv6Addr::UNSPECIFIED.into(),
        (None, _) => return None,
    };
    IpNet::new(address, message.header.destination_prefix_length).ok()
}

/// Reads a kernel route back into manul's shape; None for shapes manul never writes.
fn parse_route(message: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let destination = destination(message)?;
    let target = match message.header.kind {
        RouteType::BlackHole => RouteTarget::Blackhole,
        RouteType::Unicast => {
            let multipath = message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    RouteAttribute::MultiPath(hops) => Some(hops),
                    _ => None,
                });
            if let Some(hops) = multipath {
                let mut next_hops = Vec::new();
                for hop in hops {
                    let gateway = gateway_of(&hop.attributes)?;
                    next_hops.push(NextHop {
                        gateway,
                        device: names.get(&hop.interface_index)?.clone(),
                        onlink: hop.flags.contains(RouteNextHopFlags::Onlink),
                    });
                }
                RouteTarget::via(next_hops)
            } else {
                let device = names.get(&output_interface(message)?)?.clone();
                match gateway(message) {
                    Some(gateway) => RouteTarget::via(vec![NextHop {
                        gateway,
                        device,
                        onlink: message.header.flags.contains(RouteFlags::Onlink),
                    }]),
                    None => RouteTarget::Device(device),
                }
            }
        }
        _ => return None,
    };
    Some(Route {
        table: table(message),
        destination,
        metric: priority(message),
        target,
    })
}
