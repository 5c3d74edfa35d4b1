//! Links through rtnetlink: lookups, deletion and veth creation with the peer made directly in
//! the pod's namespace. Does I/O (netlink requests on the given handle).

use std::os::fd::AsRawFd;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::{
    Handle, LinkMessageBuilder, LinkUnspec, LinkVeth,
    packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage,
        NetlinkPayload,
    },
    packet_route::{
        RouteNetlinkMessage,
        link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage},
    },
};

use super::namespace::{connect_in_netns, open_netns};
use crate::netlink::{LinkDeletion, LinkInfo, NetlinkError, VethRequest};

pub(crate) const ENODEV: i32 = 19;
pub(crate) const EEXIST: i32 = 17;
pub(crate) const ESRCH: i32 = 3;

/// The errno of a netlink error answer, if the error is one.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}

fn link_error(name: &str, reason: impl ToString) -> NetlinkError {
    NetlinkError::Link {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// The fields manul cares about from a link message.
pub(crate) fn link_info(message: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: message.header.index,
        name: String::new(),
        mac: [0; 6],
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
        alias: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => info.name.clone_from(name),
            LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => info.alias = Some(alias.clone()),
            LinkAttribute::Address(address) => {
                if let Ok(mac) = <[u8; 6]>::try_from(address.as_slice()) {
                    info.mac = mac;
                }
            }
            _ => {}
        }
    }
    info
}

/// The index of a veth's peer (`IFLA_LINK`), if the link has one.
fn peer_index(message: &LinkMessage) -> Option<u32> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Link(index) => Some(*index),
            _ => None,
        })
}

fn is_veth(message: &LinkMessage) -> bool {
    message.attributes.iter().any(|attribute| match attribute {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|info| {
            matches!(
                info,
                rtnetlink::packet_route::link::LinkInfo::Kind(InfoKind::Veth)
            )
        }),
        _ => false,
    })
}

/// The raw message of the link of that name; None on ENODEV.
pub(crate) async fn link_message(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, NetlinkError> {
    let mut stream = handle.link().get().match_name(name).execute();
    match stream.try_next().await {
        Ok(message) => Ok(message),
        Err(error) if errno(&error) == Some(ENODEV) => Ok(None),
        Err(error) => Err(link_error(name, error)),
    }
}

pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkInfo>, NetlinkError> {
    Ok(link_message(handle, name).await?.as_ref().map(link_info))
}

pub(crate) async fn link_by_index(
    handle: &Handle,
    index: u32,
) -> Result<Option<LinkInfo>, NetlinkError> {
    let mut stream = handle.link().get().match_index(index).execute();
    match stream.try_next().await {
        Ok(message) => Ok(message.as_ref().map(link_info)),
        Err(error) if errno(&error) == Some(ENODEV) => Ok(None),
        Err(error) => Err(link_error(&format!("#{index}"), error)),
    }
}

pub(crate) async fn all_links(handle: &Handle) -> Result<Vec<LinkInfo>, NetlinkError> {
    let messages: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|error| NetlinkError::Other(format!("dumping links: {error}")))?;
    Ok(messages.iter().map(link_info).collect())
}

/// Deletes the link of that name when `owner` matches its alias (see `Netlink::delete_link`),
/// by the index read with the alias: a link of the same name made since is not touched.
pub(crate) async fn delete_link(
    handle: &Handle,
    name: &str,
    owner: Option<&str>,
) -> Result<LinkDeletion, NetlinkError> {
    let Some(link) = link_by_name(handle, name).await? else {
        return Ok(LinkDeletion::Gone);
    };
    if let (Some(owner), Some(alias)) = (owner, &link.alias)
        && owner != alias
    {
        return Ok(LinkDeletion::OwnedByOther(alias.clone()));
    }
    match handle.link().del(link.index).execute().await {
        Ok(()) => Ok(LinkDeletion::Deleted),
        Err(error) if errno(&error) == Some(ENODEV) => Ok(LinkDeletion::Gone),
        Err(error) => Err(link_error(name, error)),
    }
}

/// Brings a link up (a no-op when it is up already).
pub(crate) async fn set_up(handle: &Handle, link: &LinkInfo) -> Result<(), NetlinkError> {
    if link.up {
        return Ok(());
    }
    let message = LinkUnspec::new_with_index(link.index).up().build();
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(|error| link_error(&link.name, format!("setting up: {error}")))
}

/// Creates the veth (see `Netlink::create_veth`). When the host end exists already and is the
/// peer of `request.pod_ifname` in `request.pod_netns`, it is brought up and returned; when it
/// exists and is anything else, the answer is `Link { reason: "exists ..." }`.
pub(crate) async fn create_veth(
    handle: &Handle,
    request: &VethRequest,
) -> Result<LinkInfo, NetlinkError> {
    let netns =
        open_netns(&request.pod_netns).map_err(|error| error.into_error(&request.pod_netns))?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(request.pod_ifname.clone())
        .address(request.pod_mac.to_vec())
        .mtu(request.mtu)
        .setns_by_fd(netns.as_raw_fd())
        // No `up()` here: the kernel opens the peer before pairing it (ENOTCONN). The pod end
        // comes up in `configure_pod_interface`.
        .build();
    let message = LinkVeth::new(&request.host_name, &request.pod_ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .address(request.host_mac.to_vec())
        .mtu(request.mtu)
        .up()
        .build();
    // Created first and looked at only when the name is taken: the common case is one round
    // trip, and the kernel echoes the new link (NLM_F_ECHO) so no lookup follows it.
    let created = create_link_echoed(handle, message).await;
    // The fd is read by the kernel while it handles the request; keep it open until then.
    drop(netns);
    let host = match created {
        Ok(Some(host)) => host,
        // A kernel that does not echo link creation (before Linux 6.3).
        Ok(None) => link_by_name(handle, &request.host_name)
            .await?
            .ok_or_else(|| link_error(&request.host_name, "vanished right after creation"))?,
        Err(error) if errno(&error) == Some(EEXIST) => {
            // A retried ADD, a lost race with another creator, or the pod side name is taken.
            if let Some(existing) = link_message(handle, &request.host_name).await? {
                return adopt_existing(handle, request, &existing).await;
            }
            return Err(link_error(
                &request.host_name,
                format!("creating veth: {error} (is {} taken?)", request.pod_ifname),
            ));
        }
        Err(error) => {
            return Err(link_error(
                &request.host_name,
                format!("creating veth: {error}"),
            ));
        }
    };
    set_owner(handle, &host, &request.owner).await?;
    Ok(LinkInfo {
        alias: Some(request.owner.clone()),
        ..host
    })
}

/// `RTM_NEWLINK` with NLM_F_ECHO: the new link as the kernel made it, or None when the kernel
/// answers with the acknowledgement alone.
async fn create_link_echoed(
    handle: &Handle,
    message: LinkMessage,
) -> Result<Option<LinkInfo>, rtnetlink::Error> {
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewLink(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
    let mut responses = handle.clone().request(request)?;
    let mut echoed = None;
    while let Some(response) = responses.next().await {
        match response.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                echoed = Some(link_info(&link));
            }
            NetlinkPayload::Error(error) if error.code.is_some() => {
                return Err(rtnetlink::Error::NetlinkError(error));
            }
            _ => {}
        }
    }
    Ok(echoed)
}

/// Writes the owner into the link's alias. The kernel ignores `IFLA_IFALIAS` in a request that
/// creates a link, so it takes a request of its own.
async fn set_owner(handle: &Handle, link: &LinkInfo, owner: &str) -> Result<(), NetlinkError> {
    if link.alias.as_deref() == Some(owner) {
        return Ok(());
    }
    let message = LinkUnspec::new_with_index(link.index).alias(owner).build();
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(|error| link_error(&link.name, format!("setting the owner alias: {error}")))
}

/// Accepts an existing host end when its peer is the pod's interface, else fails.
async fn adopt_existing(
    handle: &Handle,
    request: &VethRequest,
    existing: &LinkMessage,
) -> Result<LinkInfo, NetlinkError> {
    let host = link_info(existing);
    let exists = |detail: &str| link_error(&request.host_name, format!("exists and {detail}"));
    if !is_veth(existing) {
        return Err(exists("is not a veth"));
    }
    let pod_handle = connect_in_netns(&request.pod_netns)
        .await
        .map_err(|error| error.into_error(&request.pod_netns))?;
    let Some(pod) = link_message(&pod_handle, &request.pod_ifname).await? else {
        return Err(exists("its peer is not in the pod's namespace"));
    };
    if peer_index(existing) != Some(pod.header.index) || peer_index(&pod) != Some(host.index) {
        return Err(exists("is not the peer of the pod's interface"));
    }
    set_up(handle, &host).await?;
    set_owner(handle, &host, &request.owner).await?;
    Ok(LinkInfo {
        up: true,
        alias: Some(request.owner.clone()),
        ..host
    })
}
