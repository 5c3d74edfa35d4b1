//! VXLAN across subnets (Calico's vxlan.calico): this node's tunnel endpoint in the datastore
//! (`tunnel`: address from a VXLAN pool, VTEP MAC, both on the Node) and what the kernel needs
//! for it (`desired`: the other nodes' VTEPs and the routes of remote blocks by pool mode, with
//! no I/O). The device, neighbour and FDB writes go through the `Netlink` trait; the routes go
//! to the route applier as `RouteSource::Vxlan`.

pub mod desired;
pub mod tunnel;

#[cfg(test)]
mod tests;

pub use desired::{
    VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI, Vtep, VxlanInputs, VxlanState, vxlan_mtu,
    vxlan_state,
};
pub use tunnel::{TunnelEndpoint, TunnelError, reconcile_tunnel, vtep_mac};
