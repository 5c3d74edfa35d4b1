//! The VXLAN device through rtnetlink: create it, read it back, converge MTU/MAC/up in place or
//! re-create it when an attribute the kernel cannot change differs. Does I/O (netlink requests on
//! the given handle); reading a link message into a `VxlanDevice` is a pure function.

use std::net::IpAddr;

use rtnetlink::{
    Handle, LinkUnspec, LinkVxlan,
    packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkMessage},
};

use super::links::{self, EEXIST, ENODEV, errno};
use crate::netlink::{LinkInfo, NetlinkError, VxlanDevice, VxlanLink};

fn vxlan_error(name: &str, reason: impl ToString) -> NetlinkError {
    NetlinkError::Link {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// The kind of a link (`vxlan`, `veth`, ...), if the message says.
fn kind(message: &LinkMessage) -> Option<&InfoKind> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                rtnetlink::packet_route::link::LinkInfo::Kind(kind) => Some(kind),
                _ => None,
            }),
            _ => None,
        })
}

/// The VXLAN attributes of a link; None when it is no VXLAN device.
fn vxlan_attributes(message: &LinkMessage) -> Option<&[InfoVxlan]> {
    if kind(message) != Some(&InfoKind::Vxlan) {
        return None;
    }
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                rtnetlink::packet_route::link::LinkInfo::Data(InfoData::Vxlan(data)) => {
                    Some(data.as_slice())
                }
                _ => None,
            }),
            _ => None,
        })
}

/// A VXLAN link as read from the kernel, with the index of its parent (0: none) still to be
/// named. Pure.
fn parse_vxlan(message: &LinkMessage) -> Option<(VxlanLink, u32)> {
    let attributes = vxlan_attributes(message)?;
    let info = links::link_info(message);
    let mut device = VxlanDevice {
        name: info.name,
        vni: 0,
        port: 0,
        local: IpAddr::from([0, 0, 0, 0]),
        parent: None,
        mtu: info.mtu,
        mac: info.mac,
    };
    // The kernel's default when the attribute is absent.
    let mut learning = true;
    let mut parent = 0;
    for attribute in attributes {
        match attribute {
            InfoVxlan::Id(vni) => device.vni = *vni,
            InfoVxlan::Port(port) => device.port = *port,
            InfoVxlan::Local(address) => device.local = IpAddr::V4(*address),
            InfoVxlan::Local6(address) => device.local = IpAddr::V6(*address),
            InfoVxlan::Learning(on) => learning = *on,
            InfoVxlan::Link(index) => parent = *index,
            _ => {}
        }
    }
    let link = VxlanLink {
        index: info.index,
        device,
        up: info.up,
        learning,
    };
    Some((link, parent))
}

/// The VXLAN device of that name (see `Netlink::vxlan_device`).
pub(crate) async fn vxlan_device(
    handle: &Handle,
    name: &str,
) -> Result<Option<VxlanLink>, NetlinkError> {
    let Some(message) = links::link_message(handle, name).await? else {
        return Ok(None);
    };
    match read_vxlan(handle, &message).await? {
        Some(link) => Ok(Some(link)),
        None => {
            let kind = kind(&message).map_or("unknown".to_string(), ToString::to_string);
            Err(vxlan_error(
                name,
                format!("exists and is a {kind} device, not vxlan"),
            ))
        }
    }
}

/// The link as a VXLAN device with its parent named; None when it is no VXLAN device.
async fn read_vxlan(
    handle: &Handle,
    message: &LinkMessage,
) -> Result<Option<VxlanLink>, NetlinkError> {
    let Some((mut link, parent)) = parse_vxlan(message) else {
        return Ok(None);
    };
    if parent != 0 {
        let parent_link = links::link_by_index(handle, parent).await?;
        // A parent that vanished reads as an index, so it never equals a wanted name.
        link.device.parent = Some(parent_link.map_or(format!("#{parent}"), |parent| parent.name));
    }
    Ok(Some(link))
}

/// Creates or converges the device (see `Netlink::ensure_vxlan`).
pub(crate) async fn ensure_vxlan(
    handle: &Handle,
    wanted: &VxlanDevice,
) -> Result<LinkInfo, NetlinkError> {
    let parent = match &wanted.parent {
        Some(name) => {
            let parent = links::link_by_name(handle, name)
                .await?
                .ok_or_else(|| vxlan_error(&wanted.name, format!("no parent device {name}")))?;
            // The kernel would clamp a larger MTU at creation and refuse it on a change.
            if wanted.mtu.saturating_add(wanted.overhead()) > parent.mtu {
                return Err(vxlan_error(
                    &wanted.name,
                    format!("mtu {} too large for parent mtu {}", wanted.mtu, parent.mtu),
                ));
            }
            Some(parent.index)
        }
        None => None,
    };
    // Twice at most: a creator that lost a race (EEXIST) converges what the winner made.
    for _ in 0..2 {
        let Some(message) = links::link_message(handle, &wanted.name).await? else {
            if create(handle, wanted, parent).await? {
                return read_back(handle, &wanted.name).await;
            }
            continue;
        };
        match read_vxlan(handle, &message).await? {
            Some(existing) if !existing.learning && !existing.device.needs_recreation(wanted) => {
                update_in_place(handle, &existing, wanted).await?;
                return read_back(handle, &wanted.name).await;
            }
            _ => {
                delete(handle, &wanted.name, message.header.index).await?;
                if create(handle, wanted, parent).await? {
                    return read_back(handle, &wanted.name).await;
                }
            }
        }
    }
    Err(vxlan_error(
        &wanted.name,
        "another writer keeps re-creating the device",
    ))
}

/// `ip link add <name> type vxlan id <vni> dstport <port> local <ip> [dev <parent>]
/// nolearning` with the MAC and MTU, up. False when a link of that name appeared meanwhile.
async fn create(
    handle: &Handle,
    wanted: &VxlanDevice,
    parent: Option<u32>,
) -> Result<bool, NetlinkError> {
    let mut builder = LinkVxlan::new(&wanted.name, wanted.vni)
        .port(wanted.port)
        .learning(false);
    builder = match wanted.local {
        IpAddr::V4(address) => builder.local(address),
        IpAddr::V6(address) => builder.local6(address),
    };
    if let Some(parent) = parent {
        builder = builder.dev(parent);
    }
    let message = builder
        .address(wanted.mac.to_vec())
        .mtu(wanted.mtu)
        .up()
        .build();
    match handle.link().add(message).execute().await {
        Ok(()) => Ok(true),
        Err(error) if errno(&error) == Some(EEXIST) => Ok(false),
        Err(error) => Err(vxlan_error(
            &wanted.name,
            format!("creating vxlan ({wanted}): {error}"),
        )),
    }
}

async fn delete(handle: &Handle, name: &str, index: u32) -> Result<(), NetlinkError> {
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(error) if errno(&error) == Some(ENODEV) => Ok(()),
        Err(error) => Err(vxlan_error(name, format!("deleting to re-create: {error}"))),
    }
}

/// MTU, MAC and up in one request, only with what differs; nothing when all is as wanted.
async fn update_in_place(
    handle: &Handle,
    existing: &VxlanLink,
    wanted: &VxlanDevice,
) -> Result<(), NetlinkError> {
    if existing.is(wanted) {
        return Ok(());
    }
    let mut builder = LinkUnspec::new_with_index(existing.index);
    if existing.device.mtu != wanted.mtu {
        builder = builder.mtu(wanted.mtu);
    }
    if existing.device.mac != wanted.mac {
        builder = builder.address(wanted.mac.to_vec());
    }
    if !existing.up {
        builder = builder.up();
    }
    handle
        .link()
        .set(builder.build())
        .execute()
        .await
        .map_err(|error| vxlan_error(&wanted.name, format!("updating ({wanted}): {error}")))
}

async fn read_back(handle: &Handle, name: &str) -> Result<LinkInfo, NetlinkError> {
    links::link_by_name(handle, name)
        .await?
        .ok_or_else(|| vxlan_error(name, "vanished right after it was written"))
}
