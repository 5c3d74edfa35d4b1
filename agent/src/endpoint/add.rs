//! CNI ADD: validate, allocate, wire the veth and the pod, install host routes and sysctls,
//! record the WorkloadEndpoint; on any failure undo what was done, in reverse order, and
//! release the addresses. I/O through the agent's traits only.

use std::{collections::BTreeMap, path::Path, time::Instant};

use ipnet::IpNet;
use manul_ipam::{AssignIpRequest, AutoAssignRequest, IpamError, retry::CasRetry};
use manul_store::{DatastoreExt, WorkloadEndpoint};
use tracing::{debug, info, warn};

use super::{EndpointError, EndpointRequest, Endpoints, validate_common};
use crate::{
    dataplane::{RouteSource, SysctlOwner},
    naming,
    netlink::{
        HOST_SIDE_MAC, LinkDeletion, LinkInfo, NetlinkError, PodInterface, PodInterfaceConfig,
        Route, RouteKey, RouteTarget, VethRequest, format_mac,
    },
    sysctl::{host_interface_sysctls, node_sysctls},
};

/// What ADD made: the CNI result is built from it.
#[derive(Clone, Debug, PartialEq)]
pub struct AddedEndpoint {
    pub host: LinkInfo,
    pub pod: PodInterface,
    pub pod_ifname: String,
    pub netns: String,
    pub addresses: Vec<IpNet>,
}

/// When the datastore branch of an ADD finished each step (since the start of the wiring).
#[derive(Default)]
struct DatastoreTimes {
    allocated: std::time::Duration,
    recorded: Option<std::time::Duration>,
    synced: std::time::Duration,
}

/// How long the kernel branch of an ADD took: the veth (since the start of the wiring), then
/// the pod side and the host side (since both branches had what they need).
#[derive(Default)]
struct KernelTimes {
    veth: std::time::Duration,
    pod: std::time::Duration,
    host: std::time::Duration,
}

/// Something ADD did that a failure must undo.
enum Undo {
    Release(String),
    Forget(String),
    /// The host end, by name and owner (never another sandbox's link).
    DeleteLink {
        name: String,
        owner: String,
    },
    /// The pod's host routes (keys of the route applier's pod routes).
    RemoveRoutes(Vec<RouteKey>),
    ForgetSysctls(String),
}

impl Endpoints {
    pub async fn add(&self, request: &EndpointRequest) -> Result<AddedEndpoint, EndpointError> {
        let received = Instant::now();
        validate_common(request)?;
        let netns = request
            .netns
            .clone()
            .ok_or_else(|| EndpointError::InvalidRequest("netns is required for ADD".into()))?;
        if !netns.exists() {
            return Err(EndpointError::InvalidRequest(format!(
                "netns {} does not exist",
                netns.display()
            )));
        }
        if !request.assign_ipv4 && !request.assign_ipv6 && request.requested_ips.is_empty() {
            return Err(EndpointError::InvalidRequest(
                "ipam: neither assign_ipv4 nor assign_ipv6 is set; nothing to assign".into(),
            ));
        }
        let (ipv4_filters, ipv6_filters) = self.pool_filters(request).await?;
        let ipv4_pools = self.resolve_pools(&ipv4_filters, true).await?;
        let ipv6_pools = self.resolve_pools(&ipv6_filters, false).await?;

        let _container = self.locks.lock(&request.container_id).await;
        let _epoch = self.kernel_epoch.read().await;

        if let Some(existing) = self.existing_endpoint(request, &netns).await? {
            return Ok(existing);
        }
        let mut undo = Vec::new();
        let result = match self
            .wire(request, &netns, ipv4_pools, ipv6_pools, &mut undo)
            .await
        {
            // `wire` made its writes durable.
            Ok(added) => Ok(added),
            Err(error) => {
                warn!(container = %request.container_id, %error, "ADD failed; rolling back");
                self.roll_back(undo).await;
                // The rollback's writes are durable before the answer too.
                self.store.sync().await?;
                Err(error)
            }
        };
        debug!(
            container = %request.container_id,
            total_ms = received.elapsed().as_secs_f64() * 1e3,
            "ADD answered"
        );
        result
    }

    /// ADD of a container that is already wired returns the same result (the runtime may
    /// retry); a stale record of it (its pod interface is gone) is cleaned first.
    async fn existing_endpoint(
        &self,
        request: &EndpointRequest,
        netns: &Path,
    ) -> Result<Option<AddedEndpoint>, EndpointError> {
        let Some(existing) = self.find(&request.container_id, &request.ifname).await? else {
            return Ok(None);
        };
        let endpoint = existing.value;
        let host = self.netlink.link(&endpoint.interface_name).await?;
        let pod = self.netlink.pod_interface(netns, &request.ifname).await?;
        if let (Some(host), Some(pod), true) =
            (host, pod, endpoint.netns == netns.to_string_lossy())
        {
            self.ensure_host_side(&endpoint.interface_name, &endpoint.ip_networks)
                .await?;
            return Ok(Some(AddedEndpoint {
                host,
                pod,
                pod_ifname: request.ifname.clone(),
                netns: endpoint.netns.clone(),
                addresses: endpoint.ip_networks.clone(),
            }));
        }
        info!(container = %request.container_id, "ADD again for a stale endpoint; re-creating it");
        self.teardown(&endpoint, Some(netns)).await?;
        Ok(None)
    }

    async fn wire(
        &self,
        request: &EndpointRequest,
        netns: &Path,
        ipv4_pools: Vec<IpNet>,
        ipv6_pools: Vec<IpNet>,
        undo: &mut Vec<Undo>,
    ) -> Result<AddedEndpoint, EndpointError> {
        let started = Instant::now();
        let host_name = naming::host_interface_name(
            &request.pod_namespace,
            &request.pod_name,
            &request.container_id,
        );
        let handle = naming::ipam_handle(&request.container_id, &request.ifname);
        let mtu = match request.mtu {
            Some(mtu) => mtu,
            None => self.pod_mtu().await?,
        };

        // Two branches run at once, for they do not depend on each other: the datastore's
        // (allocate, record the endpoint, one disk flush for both) and the kernel's (the veth).
        // The pod end's MAC is chosen here, so that the record does not wait for the kernel.
        // They meet for what needs both: the pod's addresses and routes, the host's routes and
        // sysctls. A crash after the flush leaves a record whose interface is missing, which
        // the next ADD, DEL or GC cleans up.
        let pod_mac = naming::pod_mac(&request.container_id, &request.ifname);
        let veth = VethRequest {
            host_name: host_name.clone(),
            owner: request.container_id.clone(),
            host_mac: HOST_SIDE_MAC,
            pod_netns: netns.to_path_buf(),
            pod_ifname: request.ifname.clone(),
            pod_mac,
            mtu,
        };
        let unaddressed = self.endpoint_record(request, netns, &host_name, &pod_mac, &handle);
        let endpoint_name = unaddressed.name.clone();
        let mut datastore_times = DatastoreTimes::default();
        let (addresses_sender, addresses_receiver) = tokio::sync::oneshot::channel();
        let datastore = async {
            let addresses = self
                .allocate(request, &handle, ipv4_pools, ipv6_pools)
                .await?;
            datastore_times.allocated = started.elapsed();
            // The kernel branch goes on with the addresses while they are recorded.
            let _ = addresses_sender.send(addresses.clone());
            let endpoint = WorkloadEndpoint {
                ip_networks: addresses.clone(),
                ..unaddressed
            };
            self.record(&endpoint).await?;
            datastore_times.recorded = Some(started.elapsed());
            self.store.sync().await?;
            datastore_times.synced = started.elapsed();
            Ok::<_, EndpointError>(addresses)
        };
        let mut kernel_times = KernelTimes::default();
        let mut kernel_undo = Vec::new();
        let kernel = async {
            let created = self.create_veth(&veth).await;
            kernel_times.veth = started.elapsed();
            if created.is_ok() {
                kernel_undo.push(Undo::DeleteLink {
                    name: host_name.clone(),
                    owner: request.container_id.clone(),
                });
            }
            let host = created?;
            // Only the node's forwarding gets slower without it: the pod is wired regardless,
            // and the next reconcile tries again.
            match self.enable_gro(&host).await {
                Ok(true) => {}
                Ok(false) => debug!(link = %host.name, "GRO left off: no ethtool netlink"),
                Err(error) => warn!(%error, "turning GRO on at a pod's host end"),
            }
            // Without addresses the datastore branch failed, and its error is the answer.
            let Ok(addresses) = addresses_receiver.await else {
                return Ok(None);
            };
            let met = started.elapsed();
            // The pod side and the host side do not depend on each other: the host end
            // exists, and a route to an address the pod does not hold yet is harmless.
            let pod_side = async {
                let pod = self
                    .netlink
                    .configure_pod_interface(&PodInterfaceConfig {
                        netns: netns.to_path_buf(),
                        ifname: request.ifname.clone(),
                        addresses: addresses.clone(),
                    })
                    .await;
                (pod, started.elapsed())
            };
            let host_side = async {
                let result = self
                    .wire_host_side(&host_name, &addresses, &mut kernel_undo)
                    .await;
                (result, started.elapsed())
            };
            let ((pod, pod_done), (host_side, host_done)) = tokio::join!(pod_side, host_side);
            kernel_times.pod = pod_done - met;
            kernel_times.host = host_done - met;
            host_side?;
            Ok::<_, EndpointError>(Some((host, pod?)))
        };
        let (addressed, wired) = tokio::join!(datastore, kernel);
        undo.push(Undo::Release(handle.clone()));
        undo.append(&mut kernel_undo);
        if datastore_times.recorded.is_some() {
            undo.push(Undo::Forget(endpoint_name));
        }
        let addresses = addressed?;
        // The datastore branch sent its addresses before it could succeed, so the kernel
        // branch went on with them: None here would be a broken invariant, not a request's fault.
        let Some((host, pod)) = wired? else {
            return Err(EndpointError::Netlink(NetlinkError::Other(
                "the pod was not wired although addresses were allocated".into(),
            )));
        };
        let milliseconds = |duration: std::time::Duration| duration.as_secs_f64() * 1e3;
        info!(
            container = %request.container_id,
            interface = %host_name,
            ?addresses,
            ipam_ms = milliseconds(datastore_times.allocated),
            record_ms = milliseconds(datastore_times.recorded.unwrap_or_default()),
            sync_ms = milliseconds(datastore_times.synced),
            veth_ms = milliseconds(kernel_times.veth),
            pod_ms = milliseconds(kernel_times.pod),
            host_ms = milliseconds(kernel_times.host),
            total_ms = milliseconds(started.elapsed()),
            "endpoint added (times since the start of wiring)"
        );
        Ok(AddedEndpoint {
            host,
            pod,
            pod_ifname: request.ifname.clone(),
            netns: netns.to_string_lossy().into_owned(),
            addresses,
        })
    }

    /// The WorkloadEndpoint an ADD records, without its addresses.
    fn endpoint_record(
        &self,
        request: &EndpointRequest,
        netns: &Path,
        host_name: &str,
        pod_mac: &[u8; 6],
        handle: &str,
    ) -> WorkloadEndpoint {
        WorkloadEndpoint {
            metadata: Default::default(),
            name: WorkloadEndpoint::name_for(&self.node, &request.container_id, &request.ifname),
            node: self.node.clone(),
            orchestrator: if request.pod_namespace.is_empty() {
                "cni".into()
            } else {
                "k8s".into()
            },
            namespace: request.pod_namespace.clone(),
            pod: request.pod_name.clone(),
            container_id: request.container_id.clone(),
            endpoint: request.ifname.clone(),
            interface_name: host_name.to_string(),
            mac: format_mac(pod_mac),
            ip_networks: Vec::new(),
            ipam_handle: handle.to_string(),
            netns: netns.to_string_lossy().into_owned(),
            network: request.network_name.clone(),
        }
    }

    /// The veth, replacing a leftover host end of this name. A link of this name is of an
    /// earlier attempt of this container (then `create_veth` adopts it), or of an earlier
    /// sandbox of the same pod (the name comes from namespace and pod), whose DEL may still
    /// come. The new sandbox needs the name; the old sandbox's DEL will see that the link is no
    /// longer its own (the alias names this container) and leave it alone. The name is looked
    /// up only when the creation fails: most ADDs make one request.
    async fn create_veth(&self, veth: &VethRequest) -> Result<LinkInfo, EndpointError> {
        let error = match self.netlink.create_veth(veth).await {
            Ok(host) => return Ok(host),
            Err(error) => error,
        };
        let Some(existing) = self.netlink.link(&veth.host_name).await? else {
            return Err(error.into());
        };
        let owner = existing.alias.unwrap_or_else(|| "unknown".into());
        info!(link = %veth.host_name, %owner, container = %veth.owner,
            "replacing the host end of an earlier sandbox of this pod");
        self.netlink.delete_link(&veth.host_name, None).await?;
        Ok(self.netlink.create_veth(veth).await?)
    }

    /// Sysctls of the host end, its /32 (/128) routes, and the blackholes of the node's blocks,
    /// through the appliers.
    async fn wire_host_side(
        &self,
        host_name: &str,
        addresses: &[IpNet],
        undo: &mut Vec<Undo>,
    ) -> Result<(), EndpointError> {
        let has_ipv6 = addresses
            .iter()
            .any(|address| matches!(address, IpNet::V6(_)));
        let owner = SysctlOwner::Interface(host_name.to_string());
        let report = {
            let mut sysctls = self.dataplane.sysctls();
            if has_ipv6 {
                // An IPv6 pool may be newer than the last reconcile: forwarding now.
                sysctls.set(SysctlOwner::Node, node_sysctls(true));
                let report = sysctls.apply_owner(&SysctlOwner::Node);
                if let Some(error) = report.errors.into_iter().next() {
                    return Err(error.into());
                }
            }
            // The link may be new under an old name (a new sandbox of the pod): its keys
            // have the kernel's defaults whatever was applied to the old one.
            sysctls.remove(&owner);
            sysctls.set(owner.clone(), host_interface_sysctls(host_name, has_ipv6));
            sysctls.apply_owner(&owner)
        };
        undo.push(Undo::ForgetSysctls(host_name.to_string()));
        if let Some(error) = report.errors.into_iter().next() {
            return Err(error.into());
        }
        let routes: Vec<Route> = addresses
            .iter()
            .map(|address| Route::main(*address, RouteTarget::Device(host_name.to_string())))
            .collect();
        let keys: Vec<RouteKey> = routes.iter().map(Route::key).collect();
        let block_known = {
            let mut applier = self.dataplane.routes.lock().await;
            applier.forget_applied(&keys);
            for route in routes {
                applier.upsert(RouteSource::PodRoutes, route);
            }
            undo.push(Undo::RemoveRoutes(keys.clone()));
            let report = applier.apply_keys(&keys).await;
            if let Some(error) = report.errors.into_iter().next() {
                return Err(error.into());
            }
            addresses.iter().all(|address| {
                applier
                    .source_routes(RouteSource::BlockBlackholes)
                    .any(|block| block.destination.contains(&address.addr()))
            })
        };
        if block_known {
            return Ok(());
        }
        self.ensure_block_routes().await
    }

    async fn allocate(
        &self,
        request: &EndpointRequest,
        handle: &str,
        ipv4_pools: Vec<IpNet>,
        ipv6_pools: Vec<IpNet>,
    ) -> Result<Vec<IpNet>, EndpointError> {
        let _turn = self.ipam_writes.lock().await;
        let mut attributes = BTreeMap::new();
        attributes.insert("node".to_string(), self.node.clone());
        attributes.insert("container".to_string(), request.container_id.clone());
        if !request.pod_namespace.is_empty() {
            attributes.insert("namespace".to_string(), request.pod_namespace.clone());
            attributes.insert("pod".to_string(), request.pod_name.clone());
        }
        if !request.requested_ips.is_empty() {
            let mut addresses = Vec::new();
            for address in &request.requested_ips {
                let assigned = self
                    .ipam
                    .assign_ip(&AssignIpRequest {
                        address: *address,
                        handle_id: handle.to_string(),
                        node: self.node.clone(),
                        attributes: attributes.clone(),
                    })
                    .await?;
                addresses.push(assigned);
            }
            return Ok(addresses);
        }
        let assignment = self
            .ipam
            .auto_assign(&AutoAssignRequest {
                handle_id: handle.to_string(),
                node: self.node.clone(),
                num_ipv4: u32::from(request.assign_ipv4),
                num_ipv6: u32::from(request.assign_ipv6),
                ipv4_pools,
                ipv6_pools,
                attributes,
            })
            .await?;
        Ok(assignment.ipv4.into_iter().chain(assignment.ipv6).collect())
    }

    /// The request's pool filters, or in Kubernetes mode those of the pod's or its
    /// namespace's pool annotations when they have one.
    async fn pool_filters(
        &self,
        request: &EndpointRequest,
    ) -> Result<(Vec<String>, Vec<String>), EndpointError> {
        let configured = (&request.ipv4_pools[..], &request.ipv6_pools[..]);
        match &self.pods {
            Some(pods) if !request.pod_namespace.is_empty() && !request.pod_name.is_empty() => {
                let (namespace, pod) = (&request.pod_namespace, &request.pod_name);
                Ok(
                    crate::pods::pools::pool_filters(pods.as_ref(), namespace, pod, configured)
                        .await?,
                )
            }
            _ => Ok((configured.0.to_vec(), configured.1.to_vec())),
        }
    }

    /// Pool filters by CIDR or by name, resolved to CIDRs; each must be of the field's family.
    async fn resolve_pools(
        &self,
        filters: &[String],
        ipv4: bool,
    ) -> Result<Vec<IpNet>, EndpointError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let (v4, v6) = self
            .ipam
            .resolve_pools(filters)
            .await
            .map_err(|error| match error {
                IpamError::InvalidRequest(reason) => {
                    EndpointError::InvalidRequest(format!("ipam: {reason}"))
                }
                other => other.into(),
            })?;
        let (wanted, other) = if ipv4 { (v4, v6) } else { (v6, v4) };
        if let Some(cidr) = other.first() {
            let field = if ipv4 { "ipv4_pools" } else { "ipv6_pools" };
            return Err(EndpointError::InvalidRequest(format!(
                "ipam.{field}: {cidr} is of the other address family"
            )));
        }
        Ok(wanted)
    }

    /// Host routes and sysctls of an endpoint whose veth exists (idempotent; nothing to undo).
    pub(crate) async fn ensure_host_side(
        &self,
        host_name: &str,
        addresses: &[IpNet],
    ) -> Result<(), EndpointError> {
        self.wire_host_side(host_name, addresses, &mut Vec::new())
            .await
    }

    /// `blackhole <block> proto manul` for each block this node has affinity to (added ones
    /// only: a block that went is removed by the reconciler).
    pub(crate) async fn ensure_block_routes(&self) -> Result<(), EndpointError> {
        let blackholes: Vec<Route> = self
            .ipam
            .affine_blocks(&self.node)
            .await?
            .into_iter()
            .map(|block| Route::main(block, RouteTarget::Blackhole))
            .collect();
        let keys: Vec<RouteKey> = blackholes.iter().map(Route::key).collect();
        let mut applier = self.dataplane.routes.lock().await;
        applier.set_source(RouteSource::BlockBlackholes, blackholes);
        let report = applier.apply_keys(&keys).await;
        match report.errors.into_iter().next() {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Creates or replaces the endpoint record (CAS; a lost race is retried from a fresh read
    /// by `CasRetry`). A new record gets a uid and creationTimestamp; a replaced one keeps the
    /// stored ones.
    async fn record(&self, endpoint: &WorkloadEndpoint) -> Result<(), EndpointError> {
        let mut endpoint = endpoint.clone();
        let name = endpoint.name.clone();
        let mut retry = CasRetry::new(|| format!("writing endpoint {name}"));
        loop {
            let result = match self
                .store
                .get_resource::<WorkloadEndpoint>(&endpoint.name)
                .await?
            {
                Some(current) => {
                    endpoint.metadata.keep_identity(&current.value.metadata);
                    self.store
                        .update_resource(&endpoint, &current.revision)
                        .await
                        .map(|_| ())
                }
                None => {
                    endpoint.metadata.stamp_new();
                    self.store.create_resource(&endpoint).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(error) => retry.lost(error).await?,
            }
        }
    }

    async fn roll_back(&self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            let result = match &step {
                Undo::Release(handle) => self
                    .release(handle)
                    .await
                    .map(|_| ())
                    .map_err(EndpointError::from),
                Undo::Forget(name) => self.forget(name).await,
                Undo::DeleteLink { name, owner } => self
                    .netlink
                    .delete_link(name, Some(owner))
                    .await
                    .map(|_: LinkDeletion| ())
                    .map_err(EndpointError::from),
                Undo::RemoveRoutes(keys) => self.remove_pod_routes(keys).await,
                Undo::ForgetSysctls(name) => {
                    self.dataplane
                        .sysctls()
                        .remove(&SysctlOwner::Interface(name.clone()));
                    Ok(())
                }
            };
            if let Err(error) = result {
                warn!(%error, "rollback step failed; the reconciler will remove what is left");
            }
        }
    }
}
