//! The VXLAN step of a pool dataplane pass, one per address family: from the Nodes, pools and
//! IPAM blocks to vxlan.calico (IPv6: vxlan-v6.calico) with its neighbour and FDB entries (`vxlan::apply_vxlan`) and to the routes
//! through it (the route applier's `RouteSource::Vxlan` or `VxlanV6`), in an order that never leaves a route
//! without its device: the device first, then its routes; the routes out before the device
//! goes. I/O through the `Netlink` trait and the route applier.

use std::{net::IpAddr, sync::Arc};

use manul_store::{IpPool, Node};
use tracing::{info, warn};

use crate::{
    dataplane::RouteSource,
    endpoint::Endpoints,
    netlink::{Netlink, NetlinkError, RouteKey},
    vxlan::{Family, VxlanInputs, apply_vxlan, desired::BlockOwners, vxlan_state},
};

/// What one VXLAN step left in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VxlanStepReport {
    /// vxlan.calico exists.
    pub device: bool,
    pub vteps: usize,
    /// Routes the applier now wants through VXLAN (or straight to same-subnet nodes).
    pub routes: usize,
    /// Something changed in the kernel: the device, an entry, or a route.
    pub changed: bool,
    /// Blocks that cannot be routed yet, VTEPs with bad MACs, route writes that failed.
    pub problems: Vec<String>,
}

/// The VXLAN part of the pool dataplane; remembers the device's interface index to notice when
/// it was made anew (the kernel then dropped the routes through it).
pub struct VxlanStep {
    family: Family,
    netlink: Arc<dyn Netlink>,
    /// Whether BGP carries the routes VXLAN leaves alone (else same-subnet nodes are routed
    /// directly, as Calico does in VXLAN-only mode).
    bgp: bool,
    device_index: Option<u32>,
}

impl VxlanStep {
    pub fn new(family: Family, netlink: Arc<dyn Netlink>, bgp: bool) -> VxlanStep {
        VxlanStep {
            family,
            netlink,
            bgp,
            device_index: None,
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The device holding `address` (the node's uplink: VXLAN's parent) and its MTU.
    async fn uplink(&self, address: IpAddr) -> Result<Option<(String, u32)>, NetlinkError> {
        let interfaces = self.netlink.interface_addresses().await?;
        let Some(interface) = interfaces
            .into_iter()
            .find(|interface| interface.addresses.iter().any(|net| net.addr() == address))
        else {
            return Ok(None);
        };
        let mtu = match self.netlink.link(&interface.name).await? {
            Some(link) => link.mtu,
            None => return Ok(None),
        };
        Ok(Some((interface.name, mtu)))
    }

    /// Brings vxlan.calico and its routes to what the inputs call for.
    pub async fn apply(
        &mut self,
        endpoints: &Endpoints,
        nodes: &[Node],
        pools: &[IpPool],
        owners: &BlockOwners,
    ) -> Result<VxlanStepReport, NetlinkError> {
        let node = endpoints.node();
        let own_address = nodes
            .iter()
            .find(|other| other.name == node)
            .and_then(|own| match self.family {
                Family::V4 => own.ipv4().map(IpAddr::V4),
                Family::V6 => own.ipv6().map(IpAddr::V6),
            });
        let uplink = match own_address {
            Some(address) => self.uplink(address).await?,
            None => None,
        };
        let state = vxlan_state(&VxlanInputs {
            family: self.family,
            node,
            nodes,
            pools,
            blocks: &owners.affine,
            borrowed: &owners.borrowed,
            uplink: uplink.as_ref().map(|(name, _)| name.as_str()),
            bgp: self.bgp,
        });
        let mut report = VxlanStepReport {
            device: state.device.is_some(),
            vteps: state.vteps.len(),
            routes: state.routes.len(),
            problems: state.problems.clone(),
            ..VxlanStepReport::default()
        };
        let uplink = uplink.as_ref().map(|(name, mtu)| (name.as_str(), *mtu));
        let source = match self.family {
            Family::V4 => RouteSource::Vxlan,
            Family::V6 => RouteSource::VxlanV6,
        };
        let mut routes = endpoints.dataplane().routes.lock().await;
        if state.device.is_some() {
            let kernel = apply_vxlan(self.netlink.as_ref(), &state, uplink).await?;
            report.changed |= kernel.changed();
            report.problems.extend(kernel.problems);
            if kernel.device_index != self.device_index {
                let keys: Vec<RouteKey> = routes
                    .source_routes(source)
                    .map(|route| route.key())
                    .collect();
                routes.forget_applied(&keys);
                if self.device_index.is_some() {
                    info!(
                        device = self.family.device(),
                        "the VXLAN device was made anew"
                    );
                }
                self.device_index = kernel.device_index;
                report.changed = true;
            }
            routes.set_source(source, state.routes);
            report.changed |= !routes.in_sync();
            push(&mut routes, &mut report).await;
        } else {
            routes.set_source(source, Vec::new());
            report.changed |= !routes.in_sync();
            push(&mut routes, &mut report).await;
            drop(routes);
            let kernel = apply_vxlan(self.netlink.as_ref(), &state, uplink).await?;
            report.changed |= kernel.changed();
            self.device_index = None;
        }
        Ok(report)
    }
}

/// Applies every pending route change; failures are reported (and retried on the next pass or
/// reconcile).
async fn push(routes: &mut crate::dataplane::RouteApplier, report: &mut VxlanStepReport) {
    let applied = routes.apply().await;
    for error in applied.errors.iter().take(10) {
        warn!(%error, "writing a VXLAN route failed; retried on the next pass");
        report.problems.push(error.to_string());
    }
}
