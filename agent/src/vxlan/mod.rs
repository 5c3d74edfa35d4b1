//! VXLAN across subnets (Calico's vxlan.calico, and vxlan-v6.calico for IPv6 pools): this
//! node's tunnel endpoint per family in the datastore (`tunnel`: address from a VXLAN pool,
//! VTEP MAC, both on the Node) and what the kernel needs for it (`desired`: the other nodes'
//! VTEPs and the routes of remote blocks by pool mode, with no I/O). The device, neighbour and FDB writes go through the `Netlink` trait; the routes go
//! to the route applier as `RouteSource::Vxlan`.

pub mod desired;
pub mod kernel;
pub mod tunnel;

#[cfg(test)]
mod tests;

pub use desired::{
    Family, OwnEndpoint, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI, Vtep, VxlanInputs,
    VxlanState, vxlan_mtu, vxlan_state,
};
pub use kernel::{VxlanApplyReport, apply_vxlan, parse_mac};
pub use tunnel::{TunnelEndpoint, TunnelError, reconcile_tunnel, vtep_mac};
