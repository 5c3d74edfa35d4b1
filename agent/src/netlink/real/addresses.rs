//! Every interface's addresses through rtnetlink (a link dump and an address dump, joined by
//! interface index), for node IP autodetection; and the address of one address message, shared
//! with the pod side. Does I/O (netlink dumps on the given handle).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{
    Handle,
    packet_route::address::{AddressAttribute, AddressMessage},
};

use super::links;
use crate::netlink::{InterfaceAddresses, NetlinkError};

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
