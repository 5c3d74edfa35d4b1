//! Host routes carrying manul's protocol number, through rtnetlink. Does I/O (netlink
//! requests on the given handle); message building and parsing are pure functions at the
//! bottom.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
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

use super::{
    links::{self, EEXIST, ENODEV, ESRCH},
    nexthops::{Hop, HopSet, ListedNexthop, NexthopKind},
    route_batch::{BatchedRoute, RouteBatchSocket, RouteRequest, remove_next_hops},
    route_dump::RouteDumpSocket,
};
use crate::netlink::{NetlinkError, NextHop, ROUTE_PROTOCOL, Route, RouteTarget, RouteWrite};

pub(super) fn route_error(destination: &IpNet, reason: impl ToString) -> NetlinkError {
    NetlinkError::Route {
        destination: destination.to_string(),
        reason: reason.to_string(),
    }
}

/// `ip route add <route> proto manul` (create, never replace).
pub(crate) async fn add_route(
    handle: &Handle,
    batch: &Arc<RouteBatchSocket>,
    route: &Route,
) -> Result<(), NetlinkError> {
    write_one(handle, batch, RouteWrite::Add(route.clone())).await
}

/// `ip route replace <route> proto manul`; fails when a device of the route does not exist.
pub(crate) async fn replace_route(
    handle: &Handle,
    batch: &Arc<RouteBatchSocket>,
    route: &Route,
) -> Result<(), NetlinkError> {
    write_one(handle, batch, RouteWrite::Replace(route.clone())).await
}

/// `ip route del <route> proto manul`; Ok when the route (or its device) is gone. Only a route
/// with manul's protocol matches, so another owner's route to the same prefix is never deleted.
pub(crate) async fn delete_route(
    handle: &Handle,
    batch: &Arc<RouteBatchSocket>,
    route: &Route,
) -> Result<(), NetlinkError> {
    write_one(handle, batch, RouteWrite::Delete(route.clone())).await
}

async fn write_one(
    handle: &Handle,
    batch: &Arc<RouteBatchSocket>,
    write: RouteWrite,
) -> Result<(), NetlinkError> {
    write_routes(handle, batch, vec![write])
        .await
        .pop()
        .map_or_else(
            || Err(NetlinkError::Other("no answer".into())),
            |(_, result)| result,
        )
}

/// A batch of writes: each device is looked up once for the whole batch, then the requests go
/// to the kernel in bulk on `batch` (route_batch.rs); each write ends as the single call above
/// would end it.
pub(crate) async fn write_routes(
    handle: &Handle,
    batch: &Arc<RouteBatchSocket>,
    writes: Vec<RouteWrite>,
) -> Vec<(RouteWrite, Result<(), NetlinkError>)> {
    let mut devices: HashMap<String, Result<Option<u32>, String>> = HashMap::new();
    for write in &writes {
        for device in write.route().target.devices() {
            if !devices.contains_key(device) {
                let index = links::link_by_name(handle, device)
                    .await
                    .map(|link| link.map(|link| link.index))
                    .map_err(|error| error.to_string());
                devices.insert(device.to_string(), index);
            }
        }
    }
    // Writes settled without the kernel (a device missing), and the requests of the others.
    let mut settled: Vec<Option<Result<(), NetlinkError>>> = Vec::with_capacity(writes.len());
    let mut requests = Vec::new();
    let mut sets = NexthopSets::default();
    for write in &writes {
        match request_for(write, &devices) {
            Ok((request, message)) => {
                let set = match (write, &write.route().target) {
                    (
                        RouteWrite::Add(route) | RouteWrite::Replace(route),
                        RouteTarget::Via(hops),
                    ) => sets.index_of(route, hops, &devices),
                    _ => None,
                };
                requests.push(BatchedRoute {
                    request,
                    message,
                    set,
                });
                settled.push(None);
            }
            Err(result) => settled.push(Some(result)),
        }
    }
    let count = requests.len();
    let batch = batch.clone();
    let sets = sets.sets;
    let answers = tokio::task::spawn_blocking(move || batch.write(requests, &sets))
        .await
        .unwrap_or_else(|error| Err(NetlinkError::Other(format!("route batch: {error}"))));
    let mut answers = match answers {
        Ok(answers) => answers.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(error) => (0..count).map(|_| Err(error.to_string())).collect(),
    }
    .into_iter();
    writes
        .into_iter()
        .zip(settled)
        .map(|(write, settled)| {
            let result = match settled {
                Some(result) => result,
                None => match answers.next() {
                    Some(Ok(errno)) => result_of(&write, errno),
                    Some(Err(error)) => Err(route_error(&write.route().destination, error)),
                    None => Err(route_error(&write.route().destination, "no answer")),
                },
            };
            (write, result)
        })
        .collect()
}

/// The request of one write, or its result when it needs no kernel call (or cannot be made).
fn request_for(
    write: &RouteWrite,
    devices: &HashMap<String, Result<Option<u32>, String>>,
) -> Result<(RouteRequest, RouteMessage), Result<(), NetlinkError>> {
    let route = write.route();
    let mut indexes = Some(Vec::new());
    for device in route.target.devices() {
        match devices.get(device) {
            Some(Ok(Some(index))) => {
                if let Some(indexes) = &mut indexes {
                    indexes.push(*index);
                }
            }
            Some(Err(error)) => {
                return Err(Err(NetlinkError::Link {
                    name: device.to_string(),
                    reason: error.clone(),
                }));
            }
            _ => indexes = None,
        }
    }
    let Some(indexes) = indexes else {
        return Err(missing_device(write));
    };
    let mut message = route_message(route, &indexes).map_err(Err)?;
    let request = match write {
        RouteWrite::Add(_) => RouteRequest::Add,
        RouteWrite::Replace(_) => RouteRequest::Replace,
        RouteWrite::Delete(_) => {
            // Like `ip route del`: match any scope.
            message.header.scope = RouteScope::NoWhere;
            if matches!(route.target, RouteTarget::Via(_)) {
                // By its key alone: a route that names a next-hop object matches no request
                // that spells next hops out.
                remove_next_hops(&mut message);
            }
            RouteRequest::Delete
        }
    };
    Ok((request, message))
}

/// The distinct next-hop sets of a batch's gateway routes, each once. Routes of one target
/// share its next hops (`RouteTarget::Via` holds them behind an `Arc`), so a million routes
/// through one gateway cost a lookup by address each, not a set built and hashed each.
#[derive(Default)]
struct NexthopSets {
    sets: Vec<HopSet>,
    by_set: HashMap<HopSet, usize>,
    by_target: HashMap<(usize, bool), Option<usize>>,
}

impl NexthopSets {
    /// The index of the route's set, or None when its next hops cannot be an object: a
    /// gateway of the other family (an IPv4 route via IPv6 is left spelled out) or a device
    /// the batch did not find.
    fn index_of(
        &mut self,
        route: &Route,
        hops: &Arc<[NextHop]>,
        devices: &HashMap<String, Result<Option<u32>, String>>,
    ) -> Option<usize> {
        let target = (
            Arc::as_ptr(hops) as *const NextHop as usize,
            route.destination.addr().is_ipv4(),
        );
        if let Some(index) = self.by_target.get(&target) {
            return *index;
        }
        let family_matches =
            |gateway: &IpAddr| gateway.is_ipv4() == route.destination.addr().is_ipv4();
        let set: Option<HopSet> = hops
            .iter()
            .map(|hop| match devices.get(&hop.device) {
                Some(Ok(Some(interface))) if family_matches(&hop.gateway) => Some(Hop {
                    gateway: hop.gateway,
                    interface: *interface,
                    onlink: hop.onlink,
                }),
                _ => None,
            })
            .collect();
        let index = set.map(|mut set| {
            set.sort();
            let next = self.sets.len();
            *self.by_set.entry(set.clone()).or_insert_with(|| {
                self.sets.push(set);
                next
            })
        });
        self.by_target.insert(target, index);
        index
    }
}

/// A write whose device does not exist: a deletion is done (the kernel removed the route with
/// its device), anything else fails.
fn missing_device(write: &RouteWrite) -> Result<(), NetlinkError> {
    let route = write.route();
    match write {
        RouteWrite::Delete(_) => Ok(()),
        RouteWrite::Add(_) | RouteWrite::Replace(_) => Err(route_error(
            &route.destination,
            format!(
                "no device {}",
                route.target.devices().collect::<Vec<_>>().join(" or ")
            ),
        )),
    }
}

/// The result of a write the kernel answered with `errno` (0: done).
fn result_of(write: &RouteWrite, errno: i32) -> Result<(), NetlinkError> {
    let route = write.route();
    match (write, errno) {
        (_, 0) => Ok(()),
        (RouteWrite::Add(_), EEXIST) => Err(NetlinkError::RouteExists {
            destination: route.destination.to_string(),
        }),
        (RouteWrite::Delete(_), ESRCH | ENODEV) => Ok(()),
        (_, errno) => Err(route_error(
            &route.destination,
            std::io::Error::from_raw_os_error(errno),
        )),
    }
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

/// Every route of the given family in `table`, filtered by the kernel (the handle must have
/// strict checking on: without it the kernel ignores the filter and sends everything), each
/// handed to `visit` as it arrives (a million messages are never held).
pub(super) async fn dump_table(
    handle: &Handle,
    request: RouteMessage,
    table: u32,
    protocol: Option<u8>,
    mut visit: impl FnMut(&RouteMessage),
) -> Result<(), NetlinkError> {
    let request = dump_request(request, table, protocol);
    let mut messages = handle.route().get(request).execute();
    while let Some(message) = messages
        .try_next()
        .await
        .map_err(|error| NetlinkError::Other(format!("dumping table {table}: {error}")))?
    {
        if is_asked_for(&message, table, protocol) {
            visit(&message);
        }
    }
    Ok(())
}

/// Whether a dumped route is of `table` (and `protocol`, when given). The kernel filters with
/// strict checking; this keeps the answer right without it.
fn is_asked_for(message: &RouteMessage, table: u32, protocol: Option<u8>) -> bool {
    self::table(message) == table
        && protocol.is_none_or(|protocol| message.header.protocol == RouteProtocol::from(protocol))
}

/// A dump request for `table` (and `protocol`, when given), for a strict-checking socket.
fn dump_request(mut request: RouteMessage, table: u32, protocol: Option<u8>) -> RouteMessage {
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
    request
}

pub(super) fn family_requests() -> [RouteMessage; 2] {
    [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ]
}

/// Routes a dump hands over at a time from the blocking reader to the async visitor.
const DUMP_BATCH: usize = 4096;

/// Hands every proto-manul route of the main table and of `tables`, IPv4 and IPv6, to `visit`
/// as the dump delivers it. The dump is read on `dump` (strict checking on, so the kernel sends
/// only manul's routes) in the blocking pool; parsed routes come over in batches through a
/// channel of two, so the reader, and with it the kernel's dump, waits for the visitor.
///
/// The dump covers manul's routes in every table, so that it sees every next-hop object they
/// name; a dump that ran to its end then deletes manul's objects that none names (nexthops.rs).
pub(crate) async fn visit_manul_routes(
    handle: &Handle,
    dump: &Arc<RouteDumpSocket>,
    batch: &Arc<RouteBatchSocket>,
    tables: &[u32],
    visit: &mut (dyn FnMut(Route) + Send),
) -> Result<(), NetlinkError> {
    let main = u32::from(RouteHeader::RT_TABLE_MAIN);
    let mut wanted_tables: HashSet<u32> = tables.iter().copied().collect();
    wanted_tables.insert(main);
    let names: HashMap<u32, String> = links::all_links(handle)
        .await?
        .into_iter()
        .map(|link| (link.index, link.name))
        .collect();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Route>>(2);
    let dump = dump.clone();
    let batch = batch.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let since = batch.nexthop_generation();
        let listing = match batch.list_nexthops() {
            Ok(listing) => Some(listing),
            Err(error) => {
                tracing::debug!(%error, "no next-hop objects to read");
                None
            }
        };
        let objects: HashMap<u32, &ListedNexthop> = listing
            .iter()
            .flatten()
            .map(|listed| (listed.id, listed))
            .collect();
        let mut referenced = HashSet::new();
        // A node may hold a million routes through a handful of gateways: each distinct
        // next-hop list is kept once (a list and a device name per route would double the
        // dump's memory).
        let mut lists: HashSet<Arc<[NextHop]>> = HashSet::new();
        let mut batch_of_routes = Vec::with_capacity(DUMP_BATCH);
        let mut wanted = true;
        for request in family_requests() {
            // Table 0: every table.
            let request = dump_request(request, 0, Some(ROUTE_PROTOCOL));
            dump.dump(request, |message| {
                if message.header.protocol != RouteProtocol::from(ROUTE_PROTOCOL) {
                    return true;
                }
                if let Some(id) = nexthop_id(message) {
                    referenced.insert(id);
                }
                if !wanted_tables.contains(&table(message)) {
                    return true;
                }
                let Some(mut route) = parse_route(message, &names, &objects) else {
                    return true;
                };
                if let RouteTarget::Via(hops) = &route.target {
                    match lists.get(hops) {
                        Some(shared) => route.target = RouteTarget::Via(shared.clone()),
                        None => {
                            lists.insert(hops.clone());
                        }
                    }
                }
                batch_of_routes.push(route);
                if batch_of_routes.len() == DUMP_BATCH {
                    let full =
                        std::mem::replace(&mut batch_of_routes, Vec::with_capacity(DUMP_BATCH));
                    // The visitor is gone (its caller was cancelled): the rest is read, not
                    // handed over.
                    wanted = sender.blocking_send(full).is_ok();
                }
                wanted
            })?;
            if !wanted {
                return Ok(());
            }
        }
        if !batch_of_routes.is_empty() {
            let _ = sender.blocking_send(batch_of_routes);
        }
        drop(sender);
        if let Some(listing) = &listing {
            match batch.delete_unused_nexthops(listing, &referenced, since) {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted next-hop objects no route names"),
                Err(error) => {
                    tracing::warn!(%error, "deleting unused next-hop objects failed; retried on the next reconcile")
                }
            }
        }
        Ok::<(), NetlinkError>(())
    });
    while let Some(batch) = receiver.recv().await {
        for route in batch {
            visit(route);
        }
    }
    reader
        .await
        .map_err(|error| NetlinkError::Other(format!("the route dump reader failed: {error}")))?
}

/// The next-hop object a route names (`RTA_NH_ID`).
fn nexthop_id(message: &RouteMessage) -> Option<u32> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::NhId(id) => Some(*id),
            _ => None,
        })
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

pub(super) fn priority(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Priority(priority) => Some(*priority),
            _ => None,
        })
        .unwrap_or(0)
}

pub(super) fn output_interface(message: &RouteMessage) -> Option<u32> {
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

/// Reads a kernel route back into manul's shape; None for shapes manul never writes. A route
/// that names a next-hop object carries its next hops too, unless the namespace has
/// `net.ipv4.nexthop_compat_mode` at 0: then they are read from `objects`.
pub(super) fn parse_route(
    message: &RouteMessage,
    names: &HashMap<u32, String>,
    objects: &HashMap<u32, &ListedNexthop>,
) -> Option<Route> {
    let destination = destination(message)?;
    let spelled_out = message.attributes.iter().any(|attribute| {
        matches!(
            attribute,
            RouteAttribute::Oif(_) | RouteAttribute::MultiPath(_)
        )
    });
    let target = match message.header.kind {
        RouteType::BlackHole => RouteTarget::Blackhole,
        RouteType::Unicast if !spelled_out => {
            let object = objects.get(&nexthop_id(message)?)?;
            let hops: Vec<Hop> = match &object.kind {
                NexthopKind::Single(hop) => vec![*hop],
                NexthopKind::Group(members) => members
                    .iter()
                    .map(|id| match objects.get(id).map(|member| &member.kind) {
                        Some(NexthopKind::Single(hop)) => Some(*hop),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
                NexthopKind::Other => return None,
            };
            let next_hops = hops
                .into_iter()
                .map(|hop| {
                    Some(NextHop {
                        gateway: hop.gateway,
                        device: names.get(&hop.interface)?.clone(),
                        onlink: hop.onlink,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            RouteTarget::via(next_hops)
        }
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
