//! Puts a `VxlanState` into the kernel through the `Netlink` trait: the family's device
//! (vxlan.calico or vxlan-v6.calico; created or converged, or deleted when no tunnel is
//! wanted), its tunnel address, and exactly the wanted
//! permanent neighbour entries (tunnel address -> VTEP MAC) and FDB entries (VTEP MAC -> node
//! address): stale ones removed, missing or different ones replaced, equal ones untouched.
//! The routes through the device go through the route applier (source Vxlan), after the
//! device exists and before it is deleted.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::desired::{VXLAN_PORT, VXLAN_VNI, VxlanState, vxlan_mtu};
use crate::netlink::{FdbEntry, Netlink, NetlinkError, VxlanDevice, VxlanNeighbour};

/// What one apply changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanApplyReport {
    /// The device's interface index when it exists after the apply (a new index means it was
    /// made anew, and the kernel dropped the routes through the old one).
    pub device_index: Option<u32>,
    pub device_deleted: bool,
    pub neighbours_replaced: usize,
    pub neighbours_deleted: usize,
    pub fdb_replaced: usize,
    pub fdb_deleted: usize,
    /// VTEPs left out because their MAC does not parse.
    pub problems: Vec<String>,
}

impl VxlanApplyReport {
    pub fn changed(&self) -> bool {
        self.device_deleted
            || self.neighbours_replaced
                + self.neighbours_deleted
                + self.fdb_replaced
                + self.fdb_deleted
                > 0
    }
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|part| u8::from_str_radix(part, 16).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// Applies the device, its address, neighbours and FDB. `uplink` is the device holding the
/// node's address (the parent) and its MTU.
pub async fn apply_vxlan(
    netlink: &dyn Netlink,
    state: &VxlanState,
    uplink: Option<(&str, u32)>,
) -> Result<VxlanApplyReport, NetlinkError> {
    let mut report = VxlanApplyReport::default();
    let name = state.family.device();
    let Some(own) = &state.device else {
        if netlink.link(name).await?.is_some() {
            netlink.delete_link(name, None).await?;
            report.device_deleted = true;
        }
        return Ok(report);
    };
    let Some(own_mac) = parse_mac(&own.mac) else {
        return Err(NetlinkError::Other(format!(
            "this node's VTEP MAC {:?} ({name}) is not a MAC address",
            own.mac
        )));
    };
    let device = VxlanDevice {
        name: name.to_string(),
        vni: VXLAN_VNI,
        port: VXLAN_PORT,
        local: own.node_address,
        parent: uplink.map(|(name, _)| name.to_string()),
        mtu: vxlan_mtu(uplink.map_or(1500, |(_, mtu)| mtu), state.family),
        mac: own_mac,
    };
    report.device_index = Some(netlink.ensure_vxlan(&device).await?.index);
    netlink
        .set_link_addresses(name, &[IpNet::from(own.tunnel_address)])
        .await?;

    let mut neighbours = BTreeMap::new();
    let mut fdb = BTreeSet::new();
    for vtep in &state.vteps {
        let Some(mac) = parse_mac(&vtep.mac) else {
            report.problems.push(format!(
                "node {:?} has vxlanTunnelMACAddr {:?}, not a MAC address",
                vtep.node, vtep.mac
            ));
            continue;
        };
        neighbours.insert(vtep.tunnel_address, mac);
        fdb.insert(FdbEntry {
            mac,
            destination: vtep.node_address,
        });
    }

    for present in netlink.vxlan_neighbours(name).await? {
        match neighbours.get(&present.ip) {
            Some(mac) if *mac == present.mac => {
                neighbours.remove(&present.ip);
            }
            Some(_) => {}
            None => {
                netlink.delete_neighbour(name, present.ip).await?;
                report.neighbours_deleted += 1;
            }
        }
    }
    for (ip, mac) in neighbours {
        netlink
            .replace_neighbour(name, &VxlanNeighbour { ip, mac })
            .await?;
        report.neighbours_replaced += 1;
    }

    for present in netlink.vxlan_fdb(name).await? {
        if !fdb.remove(&present) {
            netlink.delete_fdb(name, &present).await?;
            report.fdb_deleted += 1;
        }
    }
    for entry in fdb {
        netlink.replace_fdb(name, &entry).await?;
        report.fdb_replaced += 1;
    }
    Ok(report)
}
