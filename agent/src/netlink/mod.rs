//! The narrow kernel interface of the agent: links, routes and the pod side of a veth, as a
//! trait, so that the CNI flow and the reconciler are unit-tested against `fake::FakeNetlink`
//! without root. `real::RealNetlink` is the rtnetlink implementation (tested in namespaces).
//! This module only defines types; it does no I/O.

pub mod fake;
pub mod real;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
}

/// A veth to create: the host end stays in the agent's namespace, the peer is created directly
/// inside the pod's namespace with its final name (no rename race on the host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethRequest {
    pub host_name: String,
    pub host_mac: [u8; 6],
    pub pod_netns: PathBuf,
    pub pod_ifname: String,
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

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteTarget {
    /// `<dst> dev <device> scope link`
    Device(String),
    /// `blackhole <dst>`
    Blackhole,
    /// `<dst> via <gateway> dev <device> [onlink]` (remote blocks; later issues).
    Gateway {
        gateway: IpAddr,
        device: String,
        onlink: bool,
    },
}

/// A route in the main table carrying `ROUTE_PROTOCOL`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub destination: IpNet,
    pub target: RouteTarget,
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network namespace {path}: {reason}")]
    Namespace { path: String, reason: String },
    #[error("link {name}: {reason}")]
    Link { name: String, reason: String },
    #[error("route {destination}: {reason}")]
    Route { destination: String, reason: String },
    #[error("address {address} on {interface}: {reason}")]
    Address {
        address: String,
        interface: String,
        reason: String,
    },
    #[error("netlink: {0}")]
    Other(String),
}

/// Links, routes and pod interfaces. Every change is idempotent: creating what exists with the
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

    /// Deletes a link in the agent's namespace; Ok when it does not exist.
    async fn delete_link(&self, name: &str) -> Result<(), NetlinkError>;

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

    /// `ip route replace ... proto manul`.
    async fn replace_route(&self, route: &Route) -> Result<(), NetlinkError>;

    /// Deletes a proto-manul route; Ok when it does not exist.
    async fn delete_route(&self, route: &Route) -> Result<(), NetlinkError>;

    /// Every route of the main table (IPv4 and IPv6) carrying `ROUTE_PROTOCOL`.
    async fn manul_routes(&self) -> Result<Vec<Route>, NetlinkError>;

    /// MTU of the interface the default IPv4 route goes out of, if there is one.
    async fn default_route_mtu(&self) -> Result<Option<u32>, NetlinkError>;
}

/// Formats a MAC as aa:bb:cc:dd:ee:ff.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
