//! The rtnetlink implementation of `Netlink`. Does I/O: one netlink connection in the agent's
//! namespace, plus short-lived connections opened inside pod namespaces on dedicated threads.
//!
//! Submodules: `addresses` (listing every interface's addresses), `links` (lookups, veth),
//! `lookups` (point lookups in the FIB), `routes` (proto-manul host routes), `route_batch`
//! (bulk route writes), `route_dump` (dumps of manul's routes read in place), `pod` (the pod
//! end of a veth), `namespace` (connections bound to another namespace), `vxlan` (the VXLAN
//! device), `neighbours` (permanent neighbour and FDB entries), `ethtool` (interface features:
//! GRO at the host ends).

mod addresses;
mod ethtool;
mod links;
mod lookups;
mod namespace;
mod neighbours;
mod nexthop_events;
mod nexthops;
mod pod;
mod route_batch;
mod route_dump;
mod routes;
mod vxlan;

use std::{net::IpAddr, path::Path, sync::Arc};

use ipnet::IpNet;
use rtnetlink::Handle;
use tokio::sync::Mutex;

use super::{
    FdbEntry, InterfaceAddresses, LinkDeletion, LinkInfo, Netlink, NetlinkError, PodInterface,
    PodInterfaceConfig, Route, RouteLookup, RouteWrite, VethRequest, VxlanDevice, VxlanLink,
    VxlanNeighbour,
};

/// `Netlink` over rtnetlink. Cheap to clone: clones share the connection, which ends when the
/// last clone is dropped.
#[derive(Clone)]
pub struct RealNetlink {
    handle: Handle,
    /// A connection with strict checking (`NETLINK_GET_STRICT_CHK`), for route dumps: the
    /// kernel then filters them by table and protocol, so the agent never reads the routes of
    /// others (a node may hold a million BGP routes of another daemon).
    dump_handle: Handle,
    /// The kernel runs one dump at a time per netlink socket and answers a second one with
    /// EBUSY, so concurrent CNI requests take turns for dumps (requests are not affected).
    dumps: Arc<Mutex<()>>,
    /// Route writes go in bulk on a socket of their own (route_batch.rs).
    route_batch: Arc<route_batch::RouteBatchSocket>,
    /// Dumps of manul's routes are read on a socket of their own (route_dump.rs).
    route_dump: Arc<route_dump::RouteDumpSocket>,
    /// Feature requests (ethtool.rs); None when the kernel has no ethtool netlink family.
    ethtool: Option<Arc<ethtool::EthtoolSocket>>,
    /// Next-hop objects the kernel removed with a carrier (nexthop_events.rs); None when the
    /// socket could not join the group (then only the periodic reconcile rewrites the routes).
    lost_routes: Option<Arc<nexthop_events::LostRoutes>>,
}

impl RealNetlink {
    /// Opens a netlink connection in the calling thread's network namespace and spawns it on
    /// the current tokio runtime (panics outside one, like `tokio::spawn`).
    pub fn new() -> Result<RealNetlink, NetlinkError> {
        let (connection, handle, _messages) = rtnetlink::new_connection()
            .map_err(|error| NetlinkError::Other(format!("opening netlink socket: {error}")))?;
        tokio::spawn(connection);
        let (connection, dump_handle, _messages) = rtnetlink::new_connection_with_strict_check()
            .map_err(|error| NetlinkError::Other(format!("opening netlink socket: {error}")))?;
        tokio::spawn(connection);
        let route_batch = Arc::new(route_batch::RouteBatchSocket::open()?);
        let lost_routes = match nexthop_events::watch(route_batch.clone()) {
            Ok(lost_routes) => Some(Arc::new(lost_routes)),
            Err(error) => {
                tracing::warn!(%error, "routes the kernel removes with a carrier are rewritten by the periodic reconcile only");
                None
            }
        };
        Ok(RealNetlink {
            handle,
            dump_handle,
            dumps: Arc::new(Mutex::new(())),
            route_batch,
            lost_routes,
            route_dump: Arc::new(route_dump::RouteDumpSocket::open()?),
            ethtool: match ethtool::EthtoolSocket::open() {
                Ok(socket) => Some(Arc::new(socket)),
                Err(error) => {
                    tracing::warn!(%error, "no ethtool netlink: pods' host ends keep GRO off (needs Linux 5.6+)");
                    None
                }
            },
        })
    }
}

#[async_trait::async_trait]
impl Netlink for RealNetlink {
    async fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        links::link_by_name(&self.handle, name).await
    }

    async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<LinkInfo>, NetlinkError> {
        let mut all = {
            let _dump = self.dumps.lock().await;
            links::all_links(&self.handle).await?
        };
        all.retain(|link| link.name.starts_with(prefix));
        Ok(all)
    }

    /// Idempotent: when the host end exists and is the peer of the pod's interface, it is
    /// brought up and returned; when a link of that name exists and is anything else, the
    /// answer is `NetlinkError::Link { reason: "exists and ..." }`.
    async fn create_veth(&self, request: &VethRequest) -> Result<LinkInfo, NetlinkError> {
        links::create_veth(&self.handle, request).await
    }

    /// On the blocking pool: the kernel restarts the veth's NAPI inside the request.
    async fn enable_gro(&self, link: &LinkInfo) -> Result<bool, NetlinkError> {
        let Some(ethtool) = self.ethtool.clone() else {
            return Ok(false);
        };
        let index = link.index;
        tokio::task::spawn_blocking(move || ethtool.set_feature(index, ethtool::GRO, true))
            .await
            .map_err(|error| NetlinkError::Other(format!("ethtool thread: {error}")))??;
        Ok(true)
    }

    /// On a thread and a socket of its own. The kernel does a link deletion inside the
    /// sender's `sendmsg`, waiting there for RCU grace periods (tens of milliseconds): on a
    /// tokio worker that would stall every other request of the agent, and on the shared
    /// socket deletions would queue behind each other. On the blocking pool, concurrent DELs
    /// wait side by side, as separate plugin processes would.
    async fn delete_link(
        &self,
        name: &str,
        owner: Option<&str>,
    ) -> Result<LinkDeletion, NetlinkError> {
        let name = name.to_string();
        let owner = owner.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|error| NetlinkError::Other(format!("deletion runtime: {error}")))?;
            runtime.block_on(async {
                let (connection, handle, _messages) =
                    rtnetlink::new_connection().map_err(|error| {
                        NetlinkError::Other(format!("opening netlink socket: {error}"))
                    })?;
                let connection = tokio::spawn(connection);
                let deleted = links::delete_link(&handle, &name, owner.as_deref()).await;
                connection.abort();
                deleted
            })
        })
        .await
        .map_err(|error| NetlinkError::Other(format!("deletion thread: {error}")))?
    }

    /// Also removes global addresses of the interface that are not in `config` (so a retried
    /// ADD with another address converges), and brings `lo` up.
    async fn configure_pod_interface(
        &self,
        config: &PodInterfaceConfig,
    ) -> Result<PodInterface, NetlinkError> {
        pod::configure(config).await
    }

    async fn pod_interface(
        &self,
        netns: &Path,
        ifname: &str,
    ) -> Result<Option<PodInterface>, NetlinkError> {
        pod::interface(netns, ifname).await
    }

    async fn delete_pod_interface(&self, netns: &Path, ifname: &str) -> Result<(), NetlinkError> {
        pod::delete(netns, ifname).await
    }

    async fn add_route(&self, route: &Route) -> Result<(), NetlinkError> {
        routes::add_route(&self.handle, &self.route_batch, route).await
    }

    async fn replace_route(&self, route: &Route) -> Result<(), NetlinkError> {
        routes::replace_route(&self.handle, &self.route_batch, route).await
    }

    async fn delete_route(&self, route: &Route) -> Result<(), NetlinkError> {
        routes::delete_route(&self.handle, &self.route_batch, route).await
    }

    async fn write_routes(
        &self,
        writes: Vec<RouteWrite>,
    ) -> Vec<(RouteWrite, Result<(), NetlinkError>)> {
        routes::write_routes(&self.handle, &self.route_batch, writes).await
    }

    async fn manul_routes(&self, tables: &[u32]) -> Result<Vec<Route>, NetlinkError> {
        let mut routes = Vec::new();
        self.visit_manul_routes(tables, &mut |route| routes.push(route))
            .await?;
        Ok(routes)
    }

    fn lost_routes(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.lost_routes
            .as_ref()
            .map(|lost_routes| lost_routes.notify.clone())
    }

    async fn visit_manul_routes(
        &self,
        tables: &[u32],
        visit: &mut (dyn FnMut(Route) + Send),
    ) -> Result<(), NetlinkError> {
        let _dump = self.dumps.lock().await;
        routes::visit_manul_routes(
            &self.handle,
            &self.route_dump,
            &self.route_batch,
            tables,
            visit,
        )
        .await
    }

    async fn default_route_mtu(&self) -> Result<Option<u32>, NetlinkError> {
        let _dump = self.dumps.lock().await;
        lookups::default_route_mtu(&self.handle, &self.dump_handle).await
    }

    async fn manul_route_of(&self, prefix: IpNet) -> Result<Option<Route>, NetlinkError> {
        lookups::manul_route_of(&self.handle, prefix).await
    }

    async fn route_lookup(&self, destination: IpAddr) -> Result<Option<RouteLookup>, NetlinkError> {
        lookups::route_lookup(&self.handle, destination).await
    }

    async fn interface_addresses(&self) -> Result<Vec<InterfaceAddresses>, NetlinkError> {
        let _dump = self.dumps.lock().await;
        addresses::interface_addresses(&self.handle).await
    }

    async fn ensure_vxlan(&self, device: &VxlanDevice) -> Result<LinkInfo, NetlinkError> {
        vxlan::ensure_vxlan(&self.handle, device).await
    }

    async fn set_link_addresses(
        &self,
        device: &str,
        addresses: &[IpNet],
    ) -> Result<(), NetlinkError> {
        let link = links::link_by_name(&self.handle, device)
            .await?
            .ok_or_else(|| NetlinkError::Link {
                name: device.to_string(),
                reason: "no such device".to_string(),
            })?;
        let _dump = self.dumps.lock().await;
        addresses::set_global_addresses(&self.handle, &link, addresses).await
    }

    async fn vxlan_device(&self, name: &str) -> Result<Option<VxlanLink>, NetlinkError> {
        vxlan::vxlan_device(&self.handle, name).await
    }

    async fn vxlan_neighbours(&self, device: &str) -> Result<Vec<VxlanNeighbour>, NetlinkError> {
        let _dump = self.dumps.lock().await;
        neighbours::neighbours(&self.handle, &self.dump_handle, device).await
    }

    async fn replace_neighbour(
        &self,
        device: &str,
        neighbour: &VxlanNeighbour,
    ) -> Result<(), NetlinkError> {
        neighbours::replace_neighbour(&self.handle, device, neighbour).await
    }

    async fn delete_neighbour(&self, device: &str, ip: IpAddr) -> Result<(), NetlinkError> {
        neighbours::delete_neighbour(&self.handle, device, ip).await
    }

    async fn vxlan_fdb(&self, device: &str) -> Result<Vec<FdbEntry>, NetlinkError> {
        let _dump = self.dumps.lock().await;
        neighbours::fdb(&self.handle, &self.dump_handle, device).await
    }

    async fn replace_fdb(&self, device: &str, entry: &FdbEntry) -> Result<(), NetlinkError> {
        neighbours::replace_fdb(&self.handle, device, entry).await
    }

    async fn delete_fdb(&self, device: &str, entry: &FdbEntry) -> Result<(), NetlinkError> {
        neighbours::delete_fdb(&self.handle, device, entry).await
    }
}
