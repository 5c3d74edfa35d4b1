//! The pod end of a veth, inside the pod's network namespace: addresses, the phantom-gateway
//! routes, reading it back and deleting it. Does I/O (netlink in the pod's namespace through a
//! connection opened by `namespace::connect_in_netns`).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{
    Handle, RouteMessageBuilder,
    packet_route::route::{RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope},
};

use super::{
    addresses::{global_addresses, set_global_addresses},
    links,
    namespace::{NamespaceOpenError, connect_in_netns},
    routes,
};
use crate::netlink::{
    LinkInfo, NetlinkError, POD_GATEWAY_V4, POD_GATEWAY_V6, PodInterface, PodInterfaceConfig,
};

/// Protocol of the routes inside the pod: they are the pod's, not manul's host routes.
const POD_ROUTE_PROTOCOL: RouteProtocol = RouteProtocol::Boot;

/// Index of `lo` in every network namespace (the kernel makes it first).
const LOOPBACK_INDEX: u32 = 1;

/// Brings `lo` and the interface up and sets its addresses at once (they do not depend on each
/// other), then the routes (the default route needs the interface up and the gateway route).
/// The answer is built from what was written, not read back: each write was acknowledged.
pub(crate) async fn configure(config: &PodInterfaceConfig) -> Result<PodInterface, NetlinkError> {
    let handle = connect_in_netns(&config.netns)
        .await
        .map_err(|error| error.into_error(&config.netns))?;
    let ifname = &config.ifname;
    let link = links::link_by_name(&handle, ifname)
        .await?
        .ok_or_else(|| NetlinkError::Link {
            name: ifname.clone(),
            reason: format!("missing in {}", config.netns.display()),
        })?;
    let loopback = LinkInfo {
        index: LOOPBACK_INDEX,
        name: "lo".to_string(),
        mac: [0; 6],
        mtu: 0,
        up: false,
        alias: None,
    };
    let wanted: Vec<IpNet> = config.addresses.clone();
    let (loopback_up, link_up, addresses) = tokio::join!(
        links::set_up(&handle, &loopback),
        links::set_up(&handle, &link),
        set_global_addresses(&handle, &link, &wanted)
    );
    loopback_up?;
    link_up?;
    addresses?;
    let gateway_v4 = IpNet::from(IpAddr::V4(POD_GATEWAY_V4));
    if wanted.iter().any(|address| address.addr().is_ipv4()) {
        let scope_link = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(POD_GATEWAY_V4, 32)
            .scope(RouteScope::Link)
            .output_interface(link.index)
            .protocol(POD_ROUTE_PROTOCOL)
            .build();
        routes::replace_message(&handle, scope_link, &gateway_v4).await?;
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(POD_GATEWAY_V4)
            .output_interface(link.index)
            .protocol(POD_ROUTE_PROTOCOL)
            .build();
        routes::replace_message(&handle, default, &IpNet::V4(ipnet::Ipv4Net::default())).await?;
    }
    if wanted.iter().any(|address| address.addr().is_ipv6()) {
        let default = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(POD_GATEWAY_V6)
            .output_interface(link.index)
            .protocol(POD_ROUTE_PROTOCOL)
            .build();
        routes::replace_message(&handle, default, &IpNet::from(IpAddr::V6(POD_GATEWAY_V6))).await?;
    }
    Ok(PodInterface {
        index: link.index,
        mac: link.mac,
        mtu: link.mtu,
        has_default_routes: !wanted.is_empty(),
        addresses: wanted,
    })
}

/// The pod's interface; None when the namespace or the interface is gone.
pub(crate) async fn interface(
    netns: &Path,
    ifname: &str,
) -> Result<Option<PodInterface>, NetlinkError> {
    let handle = match connect_in_netns(netns).await {
        Ok(handle) => handle,
        Err(NamespaceOpenError::Gone) => return Ok(None),
        Err(NamespaceOpenError::Failed(error)) => return Err(error),
    };
    read(&handle, ifname).await
}

/// Deletes the pod's interface; Ok when the namespace or the interface is gone.
pub(crate) async fn delete(netns: &Path, ifname: &str) -> Result<(), NetlinkError> {
    let handle = match connect_in_netns(netns).await {
        Ok(handle) => handle,
        Err(NamespaceOpenError::Gone) => return Ok(()),
        Err(NamespaceOpenError::Failed(error)) => return Err(error),
    };
    links::delete_link(&handle, ifname, None).await.map(|_| ())
}

async fn read(handle: &Handle, ifname: &str) -> Result<Option<PodInterface>, NetlinkError> {
    let Some(link) = links::link_by_name(handle, ifname).await? else {
        return Ok(None);
    };
    let addresses: Vec<IpNet> = global_addresses(handle, &link)
        .await?
        .into_iter()
        .map(|(net, _)| net)
        .collect();
    let has_default_routes = has_default_routes(handle, &link, &addresses).await?;
    Ok(Some(PodInterface {
        index: link.index,
        mac: link.mac,
        mtu: link.mtu,
        addresses,
        has_default_routes,
    }))
}

/// Whether each family with an address has its default route via the phantom gateway.
async fn has_default_routes(
    handle: &Handle,
    link: &LinkInfo,
    addresses: &[IpNet],
) -> Result<bool, NetlinkError> {
    let mut requests = Vec::new();
    if addresses.iter().any(|address| address.addr().is_ipv4()) {
        requests.push((
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            IpAddr::V4(POD_GATEWAY_V4),
        ));
    }
    if addresses.iter().any(|address| address.addr().is_ipv6()) {
        requests.push((
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
            IpAddr::V6(POD_GATEWAY_V6),
        ));
    }
    if requests.is_empty() {
        return Ok(false);
    }
    for (request, wanted_gateway) in requests {
        let messages: Vec<RouteMessage> = handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|error| NetlinkError::Other(format!("dumping pod routes: {error}")))?;
        let found = messages.iter().any(|message| {
            message.header.table == RouteHeader::RT_TABLE_MAIN
                && message.header.destination_prefix_length == 0
                && routes::gateway(message) == Some(wanted_gateway)
                && message
                    .attributes
                    .iter()
                    .any(|attribute| matches!(attribute, RouteAttribute::Oif(index) if *index == link.index))
        });
        if !found {
            return Ok(false);
        }
    }
    Ok(true)
}
