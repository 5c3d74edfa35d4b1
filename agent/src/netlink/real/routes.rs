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
    Handle, RouteMessageBuilder,
    packet_route::route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
        RouteScope, RouteType, RouteVia,
    },
};

use super::links::{self, ENODEV, ESRCH, errno};
use crate::netlink::{NetlinkError, ROUTE_PROTOCOL, Route, RouteTarget};

fn route_error(destination: &IpNet, reason: impl ToString) -> NetlinkError {
    NetlinkError::Route {
        destination: destination.to_string(),
        reason: reason.to_string(),
    }
}

/// The device a route goes out of, if it names one.
fn route_device(route: &Route) -> Option<&str> {
    match &route.target {
        RouteTarget::Device(device) | RouteTarget::Gateway { device, .. } => Some(device),
        RouteTarget::Blackhole => None,
    }
}

/// `ip route replace <route> proto manul`; fails when the route's device does not exist.
pub(crate) async fn replace_route(handle: &Handle, route: &Route) -> Result<(), NetlinkError> {
    let oif = match route_device(route) {
        Some(device) => match links::link_by_name(handle, device).await? {
            Some(link) => Some(link.index),
            None => {
                return Err(route_error(
                    &route.destination,
                    format!("no device {device}"),
                ));
            }
        },
        None => None,
    };
    let message = route_message(route, oif)?;
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
    let oif = match route_device(route) {
        Some(device) => match links::link_by_name(handle, device).await? {
            Some(link) => Some(link.index),
            // The kernel removed the route with its device.
            None => return Ok(()),
        },
        None => None,
    };
    let mut message = route_message(route, oif)?;
    // Like `ip route del`: match any scope.
    message.header.scope = RouteScope::NoWhere;
    match handle.route().del(message).execute().await {
        Ok(()) => Ok(()),
        Err(error) if matches!(errno(&error), Some(ESRCH) | Some(ENODEV)) => Ok(()),
        Err(error) => Err(route_error(&route.destination, error)),
    }
}

async fn dump_main_routes(handle: &Handle) -> Result<Vec<RouteMessage>, NetlinkError> {
    let mut all = Vec::new();
    for request in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let mut messages: Vec<RouteMessage> = handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|error| NetlinkError::Other(format!("dumping routes: {error}")))?;
        all.append(&mut messages);
    }
    all.retain(|message| table(message) == u32::from(RouteHeader::RT_TABLE_MAIN));
    Ok(all)
}

/// Every proto-manul route of the main table, IPv4 and IPv6.
pub(crate) async fn manul_routes(handle: &Handle) -> Result<Vec<Route>, NetlinkError> {
    let messages = dump_main_routes(handle).await?;
    let names: HashMap<u32, String> = links::all_links(handle)
        .await?
        .into_iter()
        .map(|link| (link.index, link.name))
        .collect();
    Ok(messages
        .iter()
        .filter(|message| message.header.protocol == RouteProtocol::from(ROUTE_PROTOCOL))
        .filter_map(|message| parse_route(message, &names))
        .collect())
}

/// MTU of the interface of the IPv4 default route with the lowest metric.
pub(crate) async fn default_route_mtu(handle: &Handle) -> Result<Option<u32>, NetlinkError> {
    let messages = dump_main_routes(handle).await?;
    let best = messages
        .iter()
        .filter(|message| {
            message.header.address_family == rtnetlink::packet_route::AddressFamily::Inet
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

/// The kernel message for a route of ours (`oif` resolved from the route's device).
fn route_message(route: &Route, oif: Option<u32>) -> Result<RouteMessage, NetlinkError> {
    let destination = route.destination.trunc();
    let invalid = |error| route_error(&route.destination, error);
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .map_err(invalid)?
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
    match &route.target {
        RouteTarget::Device(_) => builder = builder.scope(RouteScope::Link),
        RouteTarget::Blackhole => builder = builder.kind(RouteType::BlackHole),
        RouteTarget::Gateway {
            gateway, onlink, ..
        } => {
            builder = builder.gateway(*gateway).map_err(invalid)?;
            if *onlink {
                builder = builder.onlink();
            }
        }
    }
    if let Some(index) = oif {
        builder = builder.output_interface(index);
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
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
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
        (None, rtnetlink::packet_route::AddressFamily::Inet) => Ipv4Addr::UNSPECIFIED.into(),
        (None, rtnetlink::packet_route::AddressFamily::Inet6) => Ipv6Addr::UNSPECIFIED.into(),
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
            let device = names.get(&output_interface(message)?)?.clone();
            match gateway(message) {
                Some(gateway) => RouteTarget::Gateway {
                    gateway,
                    device,
                    onlink: message.header.flags.contains(RouteFlags::Onlink),
                },
                None => RouteTarget::Device(device),
            }
        }
        _ => return None,
    };
    Some(Route {
        destination,
        target,
    })
}
