//! The VXLAN side of the `Netlink` trait: the shape of a vxlan.calico device, its permanent
//! neighbour entries (tunnel address -> VTEP MAC) and FDB entries (VTEP MAC -> node address).
//! Types only; no I/O.

use std::net::IpAddr;

use super::format_mac;

/// Name of the IPv4 VXLAN device, as Calico names it.
pub const VXLAN_DEVICE_V4: &str = "vxlan.calico";
/// Name of the IPv6 VXLAN device.
pub const VXLAN_DEVICE_V6: &str = "vxlan-v6.calico";
/// Calico's VNI.
pub const VXLAN_VNI: u32 = 4096;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// Bytes VXLAN adds to a packet over IPv4 (outer IP 20, UDP 8, VXLAN 8, inner Ethernet 14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// Bytes VXLAN adds over IPv6 (outer IP 40).
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// A VXLAN device as manul wants it: learning off, up, no default remote (every remote VTEP
/// comes from a permanent FDB entry). `ensure_vxlan` changes `mtu` and `mac` in place; a
/// difference in `vni`, `port`, `local` or `parent` re-creates the device (the kernel cannot
/// change them on a live device).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// The source address of the outer packets: the node's address. Its family is the
    /// device's: FDB destinations must be of the same family.
    pub local: IpAddr,
    /// The underlying device (`dev` in `ip link add ... type vxlan`), if bound to one.
    pub parent: Option<String>,
    pub mtu: u32,
    /// The VTEP MAC, derived from the node's name and stored on its Node.
    pub mac: [u8; 6],
}

impl VxlanDevice {
    /// Bytes the encapsulation adds, by the family of `local`.
    pub fn overhead(&self) -> u32 {
        match self.local {
            IpAddr::V4(_) => VXLAN_OVERHEAD_V4,
            IpAddr::V6(_) => VXLAN_OVERHEAD_V6,
        }
    }

    /// True when `self` and `other` differ in an attribute the kernel cannot change in place.
    pub fn needs_recreation(&self, other: &VxlanDevice) -> bool {
        (self.vni, self.port, self.local, &self.parent)
            != (other.vni, other.port, other.local, &other.parent)
    }
}

impl std::fmt::Display for VxlanDevice {
    /// As the arguments of `ip link add`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} vni {} port {} local {}",
            self.name, self.vni, self.port, self.local
        )?;
        if let Some(parent) = &self.parent {
            write!(formatter, " dev {parent}")?;
        }
        write!(formatter, " mtu {} mac {}", self.mtu, format_mac(&self.mac))
    }
}

/// A VXLAN device as the kernel holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanLink {
    pub index: u32,
    pub device: VxlanDevice,
    pub up: bool,
    /// Source-address learning; manul keeps it off.
    pub learning: bool,
}

impl VxlanLink {
    /// True when `ensure_vxlan(wanted)` has nothing to do.
    pub fn is(&self, wanted: &VxlanDevice) -> bool {
        self.up && !self.learning && &self.device == wanted
    }
}

/// A permanent neighbour entry (`ip neigh replace <ip> lladdr <mac> dev <device> nud
/// permanent`): the remote node's tunnel address resolves to its VTEP MAC without ARP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VxlanNeighbour {
    pub ip: IpAddr,
    pub mac: [u8; 6],
}

impl std::fmt::Display for VxlanNeighbour {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} lladdr {}", self.ip, format_mac(&self.mac))
    }
}

/// A permanent FDB entry of a VXLAN device (`bridge fdb replace <mac> dev <device> dst
/// <destination> self permanent`): frames to the VTEP MAC go to that node's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    pub destination: IpAddr,
}

impl std::fmt::Display for FdbEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} dst {}",
            format_mac(&self.mac),
            self.destination
        )
    }
}
