//! The narrow kernel interface of the agent: links, routes, the pod side of a veth and the VXLAN
//! device with its neighbour and FDB entries, as a trait, so that the CNI flow and the reconciler are unit-tested against `fake::FakeNetlink`
//! without root. `real::RealNetlink` is the rtnetlink implementation (tested in namespaces).
//! This module only defines types; it does no I/O.

pub mod fake;
pub mod real;
mod vxlan;

pub use vxlan::{
    FdbEntry, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6, VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6, VXLAN_PORT,
    VXLAN_VNI, VxlanDevice, VxlanLink, VxlanNeighbour,
};

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::Arc,
};

use ipnet::IpNet;

/// manul's route protocol number ("proto manul"); registered in /etc/iproute2/rt_protos.d/.
pub const ROUTE_PROTOCOL: u8 = 109;
/// Name printed by `ip route` for `ROUTE_PROTOCOL`.
pub const ROUTE_PROTOCOL_NAME: &str = "manul";
/// The MAC of every host-side cali* interface.
pub const HOST_SIDE_MAC: [u8; 6] = [0xee; 6];
/// The phantom IPv4 gateway every pod routes through.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 gateway of every pod: the link-local address of the host end (from its MAC).
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;
/// The metric the kernel gives an IPv6 route added without one (`IP6_RT_PRIO_USER`).
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
    /// `IFLA_IFALIAS`. manul writes the owning container's id there when it creates a host end,
    /// so that a DEL or a reconcile never removes the link of a newer sandbox of the same pod
    /// (both sandboxes get the same name, derived from namespace and pod).
    pub alias: Option<String>,
}

/// What `Netlink::delete_link` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkDeletion {
    Deleted,
    /// There was no link of that name.
    Gone,
    /// The link belongs to another owner (its alias names another container): left alone.
    OwnedByOther(String),
}

/// A veth to create: the host end stays in the agent's namespace, the peer is created directly
/// inside the pod's namespace with its final name (no rename race on the host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethRequest {
    pub host_name: String,
    /// Written to the host end's `IFLA_IFALIAS`: the id of the container that owns it.
    pub owner: String,
    pub host_mac: [u8; 6],
    pub pod_netns: PathBuf,
    pub pod_ifname: String,
    /// The pod end's MAC (see `naming::pod_mac`).
    pub pod_mac: [u8; 6],
    pub mtu: u32,
}

/// What the pod end of a veth gets inside the pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInterfaceConfig {
    pub netns: PathBuf,
    pub ifname: String,
    /// Host routes of the pod: /32 and /128.
    pub addresses: Vec<IpNet>,
}

/// The pod end as the kernel holds it (CNI result and CHECK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInterface {
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub addresses: Vec<IpNet>,
    /// Present when `default via 169.254.1.1` (and for IPv6, via fe80::ecee:eeff:feee:eeee) is
    /// installed for each family that has an address.
    pub has_default_routes: bool,
}

/// One next hop of a gateway route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    pub gateway: IpAddr,
    pub device: String,
    pub onlink: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteTarget {
    /// `<dst> dev <device> scope link`
    Device(String),
    /// `blackhole <dst>`
    Blackhole,
    /// `<dst> via <gateway> dev <device> [onlink]`; with several next hops, one multipath
    /// (ECMP) route. Kept sorted, so that equal sets compare equal. Shared: the routes through
    /// one gateway (a million learned over BGP, say) hold one copy of it (see `NextHopSets`).
    Via(Arc<[NextHop]>),
}

impl RouteTarget {
    /// A gateway route; the next hops are sorted and deduplicated.
    pub fn via(mut next_hops: Vec<NextHop>) -> RouteTarget {
        next_hops.sort();
        next_hops.dedup();
        RouteTarget::Via(next_hops.into())
    }

    /// Every device the route goes out of, in order (no allocation: a million learned routes
    /// are written through this).
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        let (device, hops) = match self {
            RouteTarget::Device(device) => (Some(device.as_str()), &[][..]),
            RouteTarget::Blackhole => (None, &[][..]),
            RouteTarget::Via(next_hops) => (None, &next_hops[..]),
        };
        device
            .into_iter()
            .chain(hops.iter().map(|hop| hop.device.as_str()))
    }
}

/// What identifies a route in the kernel: table, destination and metric (IPv4's tos is always
/// 0 for manul). A second route with the same key replaces the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub table: u32,
    pub destination: IpNet,
    pub metric: u32,
}

/// A route carrying `ROUTE_PROTOCOL`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub table: u32,
    pub destination: IpNet,
    /// The route's priority (`metric` in `ip route`); 0 is the kernel's default.
    pub metric: u32,
    pub target: RouteTarget,
}

impl Route {
    /// A route in the main table with the kernel's default metric (0 for IPv4; IPv6 routes
    /// without one get `IPV6_DEFAULT_METRIC` from the kernel, so they carry it here too).
    pub fn main(destination: IpNet, target: RouteTarget) -> Route {
        let metric = match destination {
            IpNet::V4(_) => 0,
            IpNet::V6(_) => IPV6_DEFAULT_METRIC,
        };
        Route {
            table: MAIN_TABLE,
            destination: destination.trunc(),
            metric,
            target,
        }
    }

    pub fn key(&self) -> RouteKey {
        RouteKey {
            table: self.table,
            destination: self.destination,
            metric: self.metric,
        }
    }
}

impl std::fmt::Display for Route {
    /// As `ip route` prints it.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            RouteTarget::Device(device) => write!(formatter, "{} dev {device}", self.destination)?,
            RouteTarget::Blackhole => write!(formatter, "blackhole {}", self.destination)?,
            RouteTarget::Via(next_hops) => {
                write!(formatter, "{}", self.destination)?;
                for hop in next_hops.iter() {
                    let nexthop = if next_hops.len() > 1 { " nexthop" } else { "" };
                    write!(
                        formatter,
                        "{nexthop} via {} dev {}",
                        hop.gateway, hop.device
                    )?;
                    if hop.onlink {
                        write!(formatter, " onlink")?;
                    }
                }
            }
        }
        if self.table != MAIN_TABLE {
            write!(formatter, " table {}", self.table)?;
        }
        if self.metric != 0 {
            write!(formatter, " metric {}", self.metric)?;
        }
        Ok(())
    }
}

/// One route write of a batch (`Netlink::write_routes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteWrite {
    /// As `Netlink::add_route`.
    Add(Route),
    /// As `Netlink::replace_route`.
    Replace(Route),
    /// As `Netlink::delete_route`.
    Delete(Route),
}

impl RouteWrite {
    pub fn route(&self) -> &Route {
        match self {
            RouteWrite::Add(route) | RouteWrite::Replace(route) | RouteWrite::Delete(route) => {
                route
            }
        }
    }
}

/// How many route writes of a batch are in flight at once.
pub const ROUTE_WRITES_IN_FLIGHT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network namespace {path}: {reason}")]
    Namespace { path: String, reason: String },
    #[error("link {name}: {reason}")]
    Link { name: String, reason: String },
    #[error("route {destination}: {reason}")]
    Route { destination: String, reason: String },
    /// `add_route` found a route with the same key (table, destination, metric).
    #[error("route {destination}: a route with this destination and metric exists already")]
    RouteExists { destination: String },
    /// The route's key is taken by a route manul did not write: it is left alone.
    #[error(
        "route {destination}: held by a route of protocol {protocol}, which manul does not own"
    )]
    RouteNotOurs {
        destination: String,
        protocol: String,
    },
    #[error("address {address} on {interface}: {reason}")]
    Address {
        address: String,
        interface: String,
        reason: String,
    },
    /// A neighbour or FDB entry (`entry` as `ip neigh` / `bridge fdb` print it).
    #[error("{entry} on {device}: {reason}")]
    Neighbour {
        device: String,
        entry: String,
        reason: String,
    },
    #[error("netlink: {0}")]
    Other(String),
}

/// Links, routes, pod interfaces, VXLAN devices, neighbours and FDB entries. Every change is idempotent: creating what exists with the
/// same shape, replacing a route, deleting what is gone all succeed.
#[async_trait::async_trait]
pub trait Netlink: Send + Sync + 'static {
    /// The link of that name in the agent's namespace, if any.
    async fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError>;

    /// Every link in the agent's namespace whose name starts with `prefix`.
    async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<LinkInfo>, NetlinkError>;

    /// Creates the veth, sets the host end's MAC and MTU and brings the host end up (the pod
    /// end comes up in `configure_pod_interface`: the kernel refuses it before pairing). Returns the
    /// host end.
    async fn create_veth(&self, request: &VethRequest) -> Result<LinkInfo, NetlinkError>;

    /// Turns generic receive offload on at a host end (`ethtool -K <link> rx-gro on`): the
    /// node then routes a pod's TCP packets merged, not one by one. Changes nothing when it is
    /// on already. `Ok(false)`: this kernel cannot (no ethtool netlink family), nothing to retry.
    async fn enable_gro(&self, link: &LinkInfo) -> Result<bool, NetlinkError>;

    /// Deletes a link in the agent's namespace, only when `owner` is None or matches the link's
    /// alias (a link without an alias, made before manul recorded owners, matches any owner).
    /// The link is deleted by the index it had when its owner was checked, so a link of the same
    /// name made in between is never removed.
    async fn delete_link(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<LinkDeletion, NetlinkError>;

    /// Inside the pod: addresses on the interface, `169.254.1.1 dev <if> scope link`, default
    /// routes via the phantom gateways. Idempotent.
    async fn configure_pod_interface(
        &self,
        config: &PodInterfaceConfig,
    ) -> Result<PodInterface, NetlinkError>;

    /// The pod's interface, or None when the namespace or the interface is gone.
    async fn pod_interface(
        &self,
        netns: &std::path::Path,
        ifname: &str,
    ) -> Result<Option<PodInterface>, NetlinkError>;

    /// Deletes the pod's interface (and so the veth); Ok when the namespace or link is gone.
    async fn delete_pod_interface(
        &self,
        netns: &std::path::Path,
        ifname: &str,
    ) -> Result<(), NetlinkError>;

    /// `ip route add ... proto manul`: fails with `RouteExists` when a route with the same key
    /// is there, whoever owns it. Fails when a device of the route does not exist.
    async fn add_route(&self, route: &Route) -> Result<(), NetlinkError>;

    /// `ip route replace ... proto manul`. Only for a key the caller knows holds a route of
    /// manul's (the route applier checks): replacing overwrites whatever is there.
    async fn replace_route(&self, route: &Route) -> Result<(), NetlinkError>;

    /// Deletes a proto-manul route; Ok when it does not exist.
    async fn delete_route(&self, route: &Route) -> Result<(), NetlinkError>;

    /// Many route writes, `ROUTE_WRITES_IN_FLIGHT` at a time, each with the result the single
    /// call would give, in order. The real implementation looks each device up once per batch
    /// instead of once per route (a million BGP routes share one uplink).
    async fn write_routes(
        &self,
        writes: Vec<RouteWrite>,
    ) -> Vec<(RouteWrite, Result<(), NetlinkError>)> {
        use futures::StreamExt;
        futures::stream::iter(writes)
            .map(|write| async move {
                let result = match &write {
                    RouteWrite::Add(route) => self.add_route(route).await,
                    RouteWrite::Replace(route) => self.replace_route(route).await,
                    RouteWrite::Delete(route) => self.delete_route(route).await,
                };
                (write, result)
            })
            .buffered(ROUTE_WRITES_IN_FLIGHT)
            .collect()
            .await
    }

    /// Every route carrying `ROUTE_PROTOCOL` in the main table and in `tables` (IPv4 and IPv6),
    /// dumped with the kernel filtering by table and protocol: other routes are never read.
    async fn manul_routes(&self, tables: &[u32]) -> Result<Vec<Route>, NetlinkError>;

    /// The routes of `manul_routes`, each handed to `visit` as the dump delivers it: a node
    /// with a million BGP routes never holds them all as `Route`s (56 bytes each) at once.
    async fn visit_manul_routes(
        &self,
        tables: &[u32],
        visit: &mut (dyn FnMut(Route) + Send),
    ) -> Result<(), NetlinkError> {
        for route in self.manul_routes(tables).await? {
            visit(route);
        }
        Ok(())
    }

    /// The route of manul's in the main table whose destination is exactly `prefix`, found
    /// with one lookup of the kernel's FIB (the route that matches `prefix`'s address), not a
    /// dump: a node may hold a million routes. None when the matching route is another, is
    /// not manul's, or is a blackhole (a lookup that lands on one answers its error, not the
    /// route).
    async fn manul_route_of(&self, prefix: IpNet) -> Result<Option<Route>, NetlinkError> {
        Ok(self.manul_routes(&[]).await?.into_iter().find(|route| {
            route.destination == prefix.trunc()
                && route.table == MAIN_TABLE
                && route.target != RouteTarget::Blackhole
        }))
    }

    /// Notified when the kernel removed routes of manul's on its own: a device lost its
    /// carrier, and the kernel deleted the next-hop objects on it with every route naming
    /// them. The routes should be written again (a reconcile does it): until the carrier is
    /// back they are written spelled out, and then work again with the carrier. None: this
    /// implementation gives no such notice.
    fn lost_routes(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// MTU of the interface the default IPv4 route goes out of, if there is one.
    async fn default_route_mtu(&self) -> Result<Option<u32>, NetlinkError>;

    /// How the kernel would send a packet to `destination` (`ip route get`): through which
    /// gateway, if any, out of which device, from which source address. None when there is no
    /// route (or it is a blackhole or unreachable route). Nothing is sent.
    async fn route_lookup(&self, destination: IpAddr) -> Result<Option<RouteLookup>, NetlinkError>;

    /// Every interface of the agent's namespace with its addresses (all scopes, with their
    /// prefix lengths), in interface index order: the input of node IP autodetection.
    async fn interface_addresses(&self) -> Result<Vec<InterfaceAddresses>, NetlinkError>;

    /// Creates the VXLAN device (learning off, up) or converges the one there: MTU, MAC and
    /// up in place; a device that differs in VNI, port, local address, parent or learning, or a
    /// link of that name that is no VXLAN device, is deleted and created anew (the kernel drops
    /// its neighbours, FDB entries and routes with it). Fails when the parent is missing.
    /// Returns the device as a link. Makes no change when the device is as wanted.
    async fn ensure_vxlan(&self, device: &VxlanDevice) -> Result<LinkInfo, NetlinkError>;

    /// Makes the global (universe-scope) addresses of the link `device` exactly `addresses`
    /// (link-local ones are the kernel's and stay): removes the others, adds the missing; no
    /// write when they are as wanted. For the tunnel address on vxlan.calico (a /32 or /128).
    /// Fails when the device is missing.
    async fn set_link_addresses(
        &self,
        device: &str,
        addresses: &[IpNet],
    ) -> Result<(), NetlinkError>;

    /// The VXLAN device of that name; None when there is no link of that name; an error when the
    /// link is not a VXLAN device. (Deleting it is `delete_link(name, None)`.)
    async fn vxlan_device(&self, name: &str) -> Result<Option<VxlanLink>, NetlinkError>;

    /// The permanent neighbour entries of `device` (both families); empty when it is missing.
    async fn vxlan_neighbours(&self, device: &str) -> Result<Vec<VxlanNeighbour>, NetlinkError>;

    /// `ip neigh replace <ip> lladdr <mac> dev <device> nud permanent`. Fails when the device
    /// is missing.
    async fn replace_neighbour(
        &self,
        device: &str,
        neighbour: &VxlanNeighbour,
    ) -> Result<(), NetlinkError>;

    /// `ip neigh del <ip> dev <device>`; Ok when the entry or the device is gone.
    async fn delete_neighbour(&self, device: &str, ip: IpAddr) -> Result<(), NetlinkError>;

    /// The permanent FDB entries of the VXLAN device `device`; empty when it is missing.
    async fn vxlan_fdb(&self, device: &str) -> Result<Vec<FdbEntry>, NetlinkError>;

    /// `bridge fdb replace <mac> dev <device> dst <destination> self permanent`: the MAC's
    /// destination becomes `destination`. Fails when the device is missing.
    async fn replace_fdb(&self, device: &str, entry: &FdbEntry) -> Result<(), NetlinkError>;

    /// `bridge fdb del <mac> dev <device> dst <destination> self`; Ok when the entry (with that
    /// destination) or the device is gone.
    async fn delete_fdb(&self, device: &str, entry: &FdbEntry) -> Result<(), NetlinkError>;
}

/// An interface and its addresses, as `ip -o addr` lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddresses {
    pub name: String,
    pub up: bool,
    /// Each address with the prefix length of its subnet ("10.0.1.5/24").
    pub addresses: Vec<IpNet>,
}

/// The kernel's answer to `ip route get <destination>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteLookup {
    /// None: the destination is on a directly connected network.
    pub gateway: Option<IpAddr>,
    pub device: String,
    /// The preferred source address the kernel would use.
    pub source: Option<IpAddr>,
}

/// Formats a MAC as aa:bb:cc:dd:ee:ff.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
