//! Every interface's addresses through rtnetlink (a link dump and an address dump, joined by
//! interface index), for node IP autodetection; the global addresses of one link and setting
//! them (the pod side's addresses, the tunnel address of vxlan.calico). Does I/O (netlink
//! requests on the given handle).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{
    Handle,
    packet_route::address::{
        AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
    },
};

use super::links::{self, ENODEV, errno};
use crate::netlink::{InterfaceAddresses, LinkInfo, NetlinkError};

fn address_error(address: &IpNet, interface: &str, reason: impl ToString) -> NetlinkError {
    NetlinkError::Address {
        address: address.to_string(),
        interface: interface.to_string(),
        reason: reason.to_string(),
    }
}

/// The address of an address message with its prefix length: `IFA_LOCAL` (the interface's own
/// address on point-to-point links), else `IFA_ADDRESS`.
pub(crate) fn message_address(message: &AddressMessage) -> Option<IpNet> {
    let find = |local: bool| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Local(address) if local => Some(*address),
                AddressAttribute::Address(address) if !local => Some(*address),
                _ => None,
            })
    };
    let address = find(true).or_else(|| find(false))?;
    IpNet::new(address, message.header.prefix_len).ok()
}

pub(crate) async fn interface_addresses(
    handle: &Handle,
) -> Result<Vec<InterfaceAddresses>, NetlinkError> {
    let links = links::all_links(handle).await?;
    let messages: Vec<AddressMessage> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|error| NetlinkError::Other(format!("dumping addresses: {error}")))?;
    let mut by_index: BTreeMap<u32, Vec<IpNet>> = BTreeMap::new();
    for message in &messages {
        if let Some(address) = message_address(message) {
            by_index
                .entry(message.header.index)
                .or_default()
                .push(address);
        }
    }
    let mut interfaces: Vec<(u32, InterfaceAddresses)> = links
        .into_iter()
        .map(|link| {
            let addresses = by_index.remove(&link.index).unwrap_or_default();
            (
                link.index,
                InterfaceAddresses {
                    name: link.name,
                    up: link.up,
                    addresses,
                },
            )
        })
        .collect();
    interfaces.sort_by_key(|(index, _)| *index);
    Ok(interfaces
        .into_iter()
        .map(|(_, interface)| interface)
        .collect())
}

/// Addresses of universe scope on the link (link-local ones are the kernel's).
pub(crate) async fn global_addresses(
    handle: &Handle,
    link: &LinkInfo,
) -> Result<Vec<(IpNet, AddressMessage)>, NetlinkError> {
    let result: Result<Vec<AddressMessage>, _> = handle
        .address()
        .get()
        .set_link_index_filter(link.index)
        .execute()
        .try_collect()
        .await;
    let messages = match result {
        Ok(messages) => messages,
        Err(error) if errno(&error) == Some(ENODEV) => Vec::new(),
        Err(error) => {
            return Err(NetlinkError::Link {
                name: link.name.clone(),
                reason: format!("listing addresses: {error}"),
            });
        }
    };
    Ok(messages
        .into_iter()
        .filter(|message| message.header.scope == AddressScope::Universe)
        .filter_map(|message| {
            let net = message_address(&message)?;
            Some((net, message))
        })
        .collect())
}

/// Makes the link's universe-scope addresses exactly `wanted`: removes the others, adds the
/// missing ones (IPv6 without duplicate address detection: a host address on a point-to-point
/// or tunnel device only waits for it). No write for what is there already.
pub(crate) async fn set_global_addresses(
    handle: &Handle,
    link: &LinkInfo,
    wanted: &[IpNet],
) -> Result<(), NetlinkError> {
    let present = global_addresses(handle, link).await?;
    for (stale, message) in present.iter().filter(|(net, _)| !wanted.contains(net)) {
        handle
            .address()
            .del(message.clone())
            .execute()
            .await
            .map_err(|error| address_error(stale, &link.name, format!("removing: {error}")))?;
    }
    let missing = wanted
        .iter()
        .filter(|address| !present.iter().any(|(net, _)| net == *address));
    for address in missing {
        let mut request = handle
            .address()
            .add(link.index, address.addr(), address.prefix_len())
            .replace();
        if address.addr().is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(|error| address_error(address, &link.name, error))?;
    }
    Ok(())
}
