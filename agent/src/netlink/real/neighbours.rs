//! Permanent neighbour entries (`ip neigh`) and VXLAN FDB entries (`bridge fdb ... self`) of a
//! device, through rtnetlink. Does I/O (netlink requests on the given handles); reading the
//! kernel's messages into manul's types is pure, at the bottom.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::{
    Handle,
    packet_route::{
        AddressFamily,
        neighbour::{
            NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
        },
    },
};

use super::links::{self, ENODEV, errno};
use crate::netlink::{FdbEntry, NetlinkError, VxlanNeighbour};

const ENOENT: i32 = 2;

fn entry_error(device: &str, entry: impl ToString, reason: impl ToString) -> NetlinkError {
    NetlinkError::Neighbour {
        device: device.to_string(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

async fn index_of(handle: &Handle, device: &str) -> Result<Option<u32>, NetlinkError> {
    Ok(links::link_by_name(handle, device)
        .await?
        .map(|link| link.index))
}

async fn required_index(
    handle: &Handle,
    device: &str,
    entry: impl ToString,
) -> Result<u32, NetlinkError> {
    index_of(handle, device)
        .await?
        .ok_or_else(|| entry_error(device, entry, "no such device"))
}

/// Which entries of a device a dump asks for.
#[derive(Clone, Copy)]
enum Table {
    /// The neighbour tables (IPv4 and IPv6), filtered by device through `NDA_IFINDEX`
    /// (strict checking wants the header's ifindex 0).
    Neighbours,
    /// The FDB (family AF_BRIDGE), filtered by the port in the header's ifindex.
    Fdb,
}

/// The permanent entries of `device` in `table`, read by `parse`; the kernel filters the dump
/// by device (`dump_handle` has strict checking on, which the filters need). Empty when the
/// device is missing.
async fn permanent_entries<T>(
    handle: &Handle,
    dump_handle: &Handle,
    device: &str,
    table: Table,
    parse: fn(&NeighbourMessage) -> Option<T>,
) -> Result<Vec<T>, NetlinkError> {
    let Some(index) = index_of(handle, device).await? else {
        return Ok(Vec::new());
    };
    let mut request = NeighbourMessage::default();
    match table {
        Table::Neighbours => request.attributes.push(NeighbourAttribute::IfIndex(index)),
        Table::Fdb => {
            request.header.family = AddressFamily::Bridge;
            request.header.ifindex = index;
        }
    }
    let mut get = dump_handle.neighbours().get();
    *get.message_mut() = request;
    let messages: Vec<NeighbourMessage> = get.execute().try_collect().await.map_err(|error| {
        NetlinkError::Other(format!("dumping the entries of {device}: {error}"))
    })?;
    Ok(messages
        .iter()
        .filter(|message| {
            message.header.ifindex == index && message.header.state == NeighbourState::Permanent
        })
        .filter_map(parse)
        .collect())
}

/// The permanent neighbours of `device` (IPv4 and IPv6); empty when the device is missing.
pub(crate) async fn neighbours(
    handle: &Handle,
    dump_handle: &Handle,
    device: &str,
) -> Result<Vec<VxlanNeighbour>, NetlinkError> {
    permanent_entries(
        handle,
        dump_handle,
        device,
        Table::Neighbours,
        parse_neighbour,
    )
    .await
}

/// `ip neigh replace <ip> lladdr <mac> dev <device> nud permanent`.
pub(crate) async fn replace_neighbour(
    handle: &Handle,
    device: &str,
    neighbour: &VxlanNeighbour,
) -> Result<(), NetlinkError> {
    let index = required_index(handle, device, neighbour).await?;
    handle
        .neighbours()
        .add(index, neighbour.ip)
        .link_layer_address(&neighbour.mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(|error| entry_error(device, neighbour, error))
}

/// `ip neigh del <ip> dev <device>`; Ok when the entry or the device is gone.
pub(crate) async fn delete_neighbour(
    handle: &Handle,
    device: &str,
    ip: IpAddr,
) -> Result<(), NetlinkError> {
    let Some(index) = index_of(handle, device).await? else {
        return Ok(());
    };
    let mut message = NeighbourMessage::default();
    message.header.family = family(ip);
    message.header.ifindex = index;
    message
        .attributes
        .push(NeighbourAttribute::Destination(ip.into()));
    ignore_gone(handle.neighbours().del(message).execute().await)
        .map_err(|error| entry_error(device, ip, format!("deleting: {error}")))
}

/// The permanent FDB entries of the VXLAN device; empty when the device is missing.
pub(crate) async fn fdb(
    handle: &Handle,
    dump_handle: &Handle,
    device: &str,
) -> Result<Vec<FdbEntry>, NetlinkError> {
    permanent_entries(handle, dump_handle, device, Table::Fdb, parse_fdb_entry).await
}

/// `bridge fdb replace <mac> dev <device> dst <destination> self permanent`.
pub(crate) async fn replace_fdb(
    handle: &Handle,
    device: &str,
    entry: &FdbEntry,
) -> Result<(), NetlinkError> {
    let index = required_index(handle, device, entry).await?;
    handle
        .neighbours()
        .add_bridge(index, &entry.mac)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(entry.destination)
        .replace()
        .execute()
        .await
        .map_err(|error| entry_error(device, entry, error))
}

/// `bridge fdb del <mac> dev <device> dst <destination> self`; Ok when the entry (with that
/// destination) or the device is gone.
pub(crate) async fn delete_fdb(
    handle: &Handle,
    device: &str,
    entry: &FdbEntry,
) -> Result<(), NetlinkError> {
    let Some(index) = index_of(handle, device).await? else {
        return Ok(());
    };
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = index;
    message.header.flags = NeighbourFlags::Own;
    message.attributes.extend([
        NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()),
        NeighbourAttribute::Destination(entry.destination.into()),
    ]);
    ignore_gone(handle.neighbours().del(message).execute().await)
        .map_err(|error| entry_error(device, entry, format!("deleting: {error}")))
}

/// A deletion of what is not there (ENOENT) or of a device that went (ENODEV) succeeds.
fn ignore_gone(result: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match result {
        Err(error) if matches!(errno(&error), Some(ENOENT | ENODEV)) => Ok(()),
        other => other,
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn mac_of(message: &NeighbourMessage) -> Option<[u8; 6]> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                <[u8; 6]>::try_from(bytes.as_slice()).ok()
            }
            _ => None,
        })
}

/// `NDA_DST`: typed for IPv4/IPv6 messages, raw bytes in FDB (AF_BRIDGE) messages.
fn destination_of(message: &NeighbourMessage) -> Option<IpAddr> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                if let Ok(v4) = <[u8; 4]>::try_from(bytes.as_slice()) {
                    Some(IpAddr::V4(Ipv4Addr::from(v4)))
                } else {
                    <[u8; 16]>::try_from(bytes.as_slice())
                        .ok()
                        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
                }
            }
            _ => None,
        })
}

fn parse_neighbour(message: &NeighbourMessage) -> Option<VxlanNeighbour> {
    Some(VxlanNeighbour {
        ip: destination_of(message)?,
        mac: mac_of(message)?,
    })
}

fn parse_fdb_entry(message: &NeighbourMessage) -> Option<FdbEntry> {
    Some(FdbEntry {
        mac: mac_of(message)?,
        destination: destination_of(message)?,
    })
}
