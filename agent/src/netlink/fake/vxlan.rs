//! The VXLAN part of `FakeNetlink`: devices, permanent neighbours and FDB entries, with the
//! kernel's rules (an immutable attribute change re-creates the device and drops its entries; the
//! MTU may not exceed the parent's minus the encapsulation; FDB entries only on VXLAN devices
//! and of the device's family). No I/O.

use super::{FakeLink, FakeNetlink, FakeState};
use crate::netlink::{FdbEntry, LinkInfo, NetlinkError, VxlanDevice, VxlanLink, VxlanNeighbour};

/// The attributes of a fake VXLAN device besides the link's own (MTU, MAC, up).
#[derive(Debug)]
pub(super) struct FakeVxlan {
    device: VxlanDevice,
    learning: bool,
}

fn link_error(name: &str, reason: impl ToString) -> NetlinkError {
    NetlinkError::Link {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

fn entry_error(device: &str, entry: impl ToString, reason: &str) -> NetlinkError {
    NetlinkError::Neighbour {
        device: device.to_string(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

impl FakeState {
    fn vxlan_link(link: &FakeLink) -> Option<VxlanLink> {
        let vxlan = link.vxlan.as_ref()?;
        Some(VxlanLink {
            index: link.info.index,
            device: VxlanDevice {
                mtu: link.info.mtu,
                mac: link.info.mac,
                ..vxlan.device.clone()
            },
            up: link.info.up,
            learning: vxlan.learning,
        })
    }

    pub(super) fn vxlan_device(&self, name: &str) -> Result<Option<VxlanLink>, NetlinkError> {
        let Some(link) = self.links.get(name) else {
            return Ok(None);
        };
        Self::vxlan_link(link)
            .map(Some)
            .ok_or_else(|| link_error(name, "exists and is not a vxlan device"))
    }

    pub(super) fn ensure_vxlan(&mut self, wanted: &VxlanDevice) -> Result<LinkInfo, NetlinkError> {
        if let Some(parent) = &wanted.parent {
            let Some(parent) = self.links.get(parent) else {
                return Err(link_error(
                    &wanted.name,
                    format!("no parent device {parent}"),
                ));
            };
            if wanted.mtu.saturating_add(wanted.overhead()) > parent.info.mtu {
                return Err(link_error(
                    &wanted.name,
                    format!(
                        "mtu {} too large for parent mtu {}",
                        wanted.mtu, parent.info.mtu
                    ),
                ));
            }
        }
        let existing = self.links.get(&wanted.name).and_then(Self::vxlan_link);
        if let Some(existing) = existing
            && !existing.learning
            && !existing.device.needs_recreation(wanted)
            && let Some(link) = self.links.get_mut(&wanted.name)
        {
            link.info.mtu = wanted.mtu;
            link.info.mac = wanted.mac;
            link.info.up = true;
            return Ok(link.info.clone());
        }
        // Anything else of that name goes, with its entries and routes.
        Ok(self.insert_vxlan(wanted, false, true))
    }

    /// A new VXLAN link with a fresh index, in place of any link of that name.
    fn insert_vxlan(&mut self, device: &VxlanDevice, learning: bool, up: bool) -> LinkInfo {
        self.remove_link(&device.name);
        let info = LinkInfo {
            index: self.allocate_index(),
            name: device.name.clone(),
            mac: device.mac,
            mtu: device.mtu,
            up,
            alias: None,
        };
        let vxlan = FakeVxlan {
            device: device.clone(),
            learning,
        };
        let link = FakeLink {
            info: info.clone(),
            peer: None,
            vxlan: Some(vxlan),
            gro: false,
        };
        self.links.insert(device.name.clone(), link);
        info
    }

    pub(super) fn vxlan_neighbours(&self, device: &str) -> Vec<VxlanNeighbour> {
        self.neighbours
            .iter()
            .filter(|((name, _), _)| name == device)
            .map(|((_, ip), mac)| VxlanNeighbour { ip: *ip, mac: *mac })
            .collect()
    }

    pub(super) fn replace_neighbour(
        &mut self,
        device: &str,
        neighbour: &VxlanNeighbour,
    ) -> Result<(), NetlinkError> {
        if !self.links.contains_key(device) {
            return Err(entry_error(device, neighbour, "no such device"));
        }
        self.neighbours
            .insert((device.to_string(), neighbour.ip), neighbour.mac);
        Ok(())
    }

    pub(super) fn vxlan_fdb(&self, device: &str) -> Vec<FdbEntry> {
        self.fdb
            .iter()
            .filter(|((name, _), _)| name == device)
            .map(|((_, mac), destination)| FdbEntry {
                mac: *mac,
                destination: *destination,
            })
            .collect()
    }

    pub(super) fn replace_fdb(
        &mut self,
        device: &str,
        entry: &FdbEntry,
    ) -> Result<(), NetlinkError> {
        let Some(link) = self.links.get(device) else {
            return Err(entry_error(device, entry, "no such device"));
        };
        let Some(vxlan) = &link.vxlan else {
            return Err(entry_error(device, entry, "not a vxlan device"));
        };
        if vxlan.device.local.is_ipv4() != entry.destination.is_ipv4() {
            return Err(entry_error(device, entry, "address family not supported"));
        }
        self.fdb
            .insert((device.to_string(), entry.mac), entry.destination);
        Ok(())
    }

    /// Only the entry with that destination goes, as in the kernel.
    pub(super) fn delete_fdb(&mut self, device: &str, entry: &FdbEntry) {
        let key = (device.to_string(), entry.mac);
        if self.fdb.get(&key) == Some(&entry.destination) {
            self.fdb.remove(&key);
        }
    }
}

impl FakeNetlink {
    /// Puts a VXLAN device in the kernel without recording a call (left by an earlier run, or
    /// by another agent: `learning` on, or down).
    pub fn preload_vxlan(&self, device: &VxlanDevice, learning: bool, up: bool) -> LinkInfo {
        self.lock().insert_vxlan(device, learning, up)
    }

    /// Every permanent neighbour as (device, entry).
    pub fn neighbours(&self) -> Vec<(String, VxlanNeighbour)> {
        let state = self.lock();
        state
            .neighbours
            .iter()
            .map(|((device, ip), mac)| (device.clone(), VxlanNeighbour { ip: *ip, mac: *mac }))
            .collect()
    }

    /// Every FDB entry as (device, entry).
    pub fn fdb_entries(&self) -> Vec<(String, FdbEntry)> {
        let state = self.lock();
        state
            .fdb
            .iter()
            .map(|((device, mac), destination)| {
                let entry = FdbEntry {
                    mac: *mac,
                    destination: *destination,
                };
                (device.clone(), entry)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "vxlan_tests.rs"]
mod tests;
