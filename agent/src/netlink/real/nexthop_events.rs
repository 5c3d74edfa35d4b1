//! Watches for next-hop objects of manul's that the kernel removed on its own. When a device
//! loses its carrier (or goes down, or away) the kernel deletes the objects on it and every
//! route that names them, without a word on netlink (a route that spells its gateway out
//! stays, marked `linkdown`). So the link notifications say it: a device of one of manul's
//! objects without carrier. The routes must then be written again: until the carrier is back
//! the kernel refuses new objects on the device, so they are written spelled out, and they
//! come back into use with the carrier as before. An object deleted by hand (`ip nexthop del`)
//! is announced and handled alike. Does I/O: a netlink socket in the agent's namespace, joined
//! to the link and next-hop groups, read by a task that ends when the last `RealNetlink`
//! clone is dropped.

use std::sync::Arc;

use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, TokioSocket, protocols::NETLINK_ROUTE};
use tokio::{sync::Notify, task::JoinHandle};

use super::{
    nexthops::{RTM_DELNEXTHOP, parse_nexthop},
    route_batch::{RouteBatchSocket, messages},
};
use crate::netlink::{NetlinkError, ROUTE_PROTOCOL};

/// `RTNLGRP_LINK` and `RTNLGRP_NEXTHOP`: the kernel's notifications about links and next-hop
/// objects.
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEXTHOP: u32 = 32;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x10000;
/// The socket's queue overflowed: notifications were lost.
const ENOBUFS: i32 = 105;

/// Notified when the kernel removed routes of manul's (see the module doc).
pub(crate) struct LostRoutes {
    pub notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for LostRoutes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Joins the next-hop group in the calling thread's namespace and spawns the reading task on
/// the current tokio runtime.
pub(crate) fn watch(batch: Arc<RouteBatchSocket>) -> Result<LostRoutes, NetlinkError> {
    let failed = |error: std::io::Error| {
        NetlinkError::Other(format!("opening the next-hop events socket: {error}"))
    };
    let mut socket = TokioSocket::new(NETLINK_ROUTE).map_err(failed)?;
    socket.socket_mut().bind_auto().map_err(failed)?;
    for group in [RTNLGRP_LINK, RTNLGRP_NEXTHOP] {
        socket.socket_mut().add_membership(group).map_err(failed)?;
    }
    let notify = Arc::new(Notify::new());
    let task = tokio::spawn(read(socket, batch, notify.clone()));
    Ok(LostRoutes { notify, task })
}

async fn read(socket: TokioSocket, batch: Arc<RouteBatchSocket>, notify: Arc<Notify>) {
    loop {
        let datagram = match socket.recv_from_full().await {
            Ok((datagram, _)) => datagram,
            Err(error) if error.raw_os_error() == Some(ENOBUFS) => {
                tracing::warn!("next-hop notifications were lost; rewriting the routes");
                notify.notify_one();
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "next-hop notifications stopped: routes the kernel removes with a carrier are rewritten by the periodic reconcile only");
                return;
            }
        };
        let mut deleted = Vec::new();
        let mut without_carrier = Vec::new();
        for message in messages(&datagram) {
            match message.message_type() {
                RTM_DELNEXTHOP => deleted.extend(
                    parse_nexthop(message.payload())
                        .filter(|listed| listed.protocol == ROUTE_PROTOCOL)
                        .map(|listed| listed.id),
                ),
                kind @ (RTM_NEWLINK | RTM_DELLINK) => {
                    without_carrier.extend(link_without_carrier(kind, message.payload()));
                }
                _ => {}
            }
        }
        if deleted.is_empty() && without_carrier.is_empty() {
            continue;
        }
        // manul's own deletions forget their objects first: only the kernel's are news. The
        // batch socket's lock may be held by a long write, so it is taken off the runtime.
        let batch = batch.clone();
        let lost = tokio::task::spawn_blocking(move || {
            let by_id = batch.forget_nexthops(&deleted);
            let by_link = batch.forget_nexthops_on(&without_carrier);
            by_id || by_link
        })
        .await
        .unwrap_or(true);
        if lost {
            tracing::info!(
                "the kernel removed next-hop objects of manul's (a device lost its carrier): rewriting their routes"
            );
            notify.notify_one();
        }
    }
}

/// The index of a link the kernel flushes next-hop objects from: one deleted, down, or
/// neither running nor with its lower layer up (`ifinfomsg`: family, pad, type, index,
/// flags, change).
fn link_without_carrier(kind: u16, payload: &[u8]) -> Option<u32> {
    let index = u32::from_ne_bytes(payload.get(4..8)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(payload.get(8..12)?.try_into().ok()?);
    let flushed =
        kind == RTM_DELLINK || flags & IFF_UP == 0 || flags & (IFF_RUNNING | IFF_LOWER_UP) == 0;
    flushed.then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, flags: u32) -> Vec<u8> {
        let mut payload = vec![0u8; 16];
        payload[4..8].copy_from_slice(&index.to_ne_bytes());
        payload[8..12].copy_from_slice(&flags.to_ne_bytes());
        payload
    }

    #[test]
    fn a_link_loses_its_objects_when_deleted_down_or_without_carrier() {
        let running = IFF_UP | IFF_RUNNING | IFF_LOWER_UP;
        assert_eq!(link_without_carrier(RTM_NEWLINK, &link(3, running)), None);
        assert_eq!(
            link_without_carrier(RTM_NEWLINK, &link(3, IFF_UP | IFF_LOWER_UP)),
            None
        );
        assert_eq!(link_without_carrier(RTM_NEWLINK, &link(3, IFF_UP)), Some(3));
        assert_eq!(
            link_without_carrier(RTM_NEWLINK, &link(4, running & !IFF_UP)),
            Some(4)
        );
        assert_eq!(
            link_without_carrier(RTM_DELLINK, &link(5, running)),
            Some(5)
        );
        assert_eq!(
            link_without_carrier(RTM_NEWLINK, &link(3, running)[..10]),
            None
        );
    }
}
