//! CNI CHECK (is the endpoint still wired as ADD left it?) and GC (release every attachment the
//! runtime no longer knows). I/O through the agent's traits only.

use std::collections::BTreeSet;

use ipnet::IpNet;
use manul_store::{DatastoreExt, IpamHandle};
use tracing::info;

use super::{EndpointError, EndpointRequest, Endpoints, validate_common};
use crate::{
    naming,
    netlink::{Route, RouteTarget},
    sysctl::host_interface_sysctls,
};

/// An attachment as the runtime names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

impl Endpoints {
    pub async fn check(&self, request: &EndpointRequest) -> Result<(), EndpointError> {
        validate_common(request)?;
        let _container = self.locks.lock(&request.container_id).await;
        let unknown = || EndpointError::UnknownContainer {
            container_id: request.container_id.clone(),
            ifname: request.ifname.clone(),
        };
        let endpoint = self
            .find(&request.container_id, &request.ifname)
            .await?
            .ok_or_else(unknown)?
            .value;
        let netns = request
            .netns
            .clone()
            .unwrap_or_else(|| endpoint.netns.clone().into());
        let failed = |what: String| Err(EndpointError::CheckFailed(what));

        if self.netlink.link(&endpoint.interface_name).await?.is_none() {
            return failed(format!(
                "host interface {} is missing",
                endpoint.interface_name
            ));
        }
        let Some(pod) = self.netlink.pod_interface(&netns, &request.ifname).await? else {
            return failed(format!(
                "{} is missing in {}",
                request.ifname,
                netns.display()
            ));
        };
        let held: BTreeSet<IpNet> = pod.addresses.iter().copied().collect();
        for address in endpoint.ip_networks.iter().chain(&request.prev_result_ips) {
            if !held.contains(address) {
                return failed(format!("{} does not hold {address}", request.ifname));
            }
        }
        if !pod.has_default_routes {
            return failed(format!(
                "the default route via 169.254.1.1 is missing in {}",
                netns.display()
            ));
        }
        // One FIB lookup per address, not a dump of every route (a node may hold a million).
        for address in &endpoint.ip_networks {
            let route = Route::main(
                *address,
                RouteTarget::Device(endpoint.interface_name.clone()),
            );
            if self.netlink.manul_route_of(*address).await?.as_ref() != Some(&route) {
                return failed(format!(
                    "host route {address} dev {} is missing",
                    endpoint.interface_name
                ));
            }
        }
        let has_ipv6 = endpoint
            .ip_networks
            .iter()
            .any(|address| matches!(address, IpNet::V6(_)));
        for (key, value) in host_interface_sysctls(&endpoint.interface_name, has_ipv6) {
            let current = self.sysctl.get(&key)?;
            if current.as_deref().map(str::trim) != Some(value.as_str()) {
                return failed(format!("sysctl {key} is {current:?}, want {value}"));
            }
        }
        Ok(())
    }

    /// Releases every endpoint of this node on `network` (all networks when empty) and every
    /// allocation in this node's blocks whose attachment is not in `valid`. Returns what went.
    pub async fn garbage_collect(
        &self,
        network: &str,
        valid: &[Attachment],
    ) -> Result<Vec<Attachment>, EndpointError> {
        let valid: BTreeSet<&Attachment> = valid.iter().collect();
        let mut released = Vec::new();
        let mut errors = Vec::new();
        let mut known = BTreeSet::new();
        for endpoint in self.list().await? {
            let endpoint = endpoint.value;
            let attachment = Attachment {
                container_id: endpoint.container_id.clone(),
                ifname: endpoint.endpoint.clone(),
            };
            known.insert(endpoint.ipam_handle.clone());
            if valid.contains(&attachment) || (!network.is_empty() && endpoint.network != network) {
                continue;
            }
            // An ADD of this container is running: the runtime's list predates it (ADD writes
            // the record before it wires the pod).
            if self.locks.is_locked(&endpoint.container_id) {
                continue;
            }
            let request = EndpointRequest {
                container_id: endpoint.container_id.clone(),
                ifname: endpoint.endpoint.clone(),
                pod_namespace: endpoint.namespace.clone(),
                pod_name: endpoint.pod.clone(),
                ..EndpointRequest::default()
            };
            match self.delete(&request).await {
                Ok(_) => released.push(attachment),
                Err(error) => errors.push(error),
            }
        }
        // Allocations without an endpoint record (an ADD cut short by a crash), in this node's
        // blocks only: other nodes' runtimes vouch for theirs.
        let blocks = self.ipam.affine_blocks(&self.node).await?;
        for handle in self
            .store
            .list_resources::<IpamHandle>("k8s-pod-network.")
            .await?
        {
            let handle_id = handle.value.handle_id;
            let Some((container_id, ifname)) = naming::attachment_of_handle(&handle_id) else {
                continue;
            };
            let attachment = Attachment {
                container_id,
                ifname,
            };
            if known.contains(&handle_id) || valid.contains(&attachment) {
                continue;
            }
            let addresses = self.ipam.addresses_by_handle(&handle_id).await?;
            if !addresses
                .iter()
                .any(|address| blocks.iter().any(|block| block.contains(address)))
            {
                continue;
            }
            // An ADD of this container may be between its allocation and its record: wait for
            // it (ADD holds the container's lock throughout), then look again.
            let _container = self.locks.lock(&attachment.container_id).await;
            match self
                .find(&attachment.container_id, &attachment.ifname)
                .await
            {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            }
            match self.release(&handle_id).await {
                Ok(_) => released.push(attachment),
                Err(error) => errors.push(error.into()),
            }
        }
        if let Err(error) = self.store.sync().await {
            errors.push(error.into());
        }
        info!(released = released.len(), "garbage collection done");
        if errors.is_empty() {
            Ok(released)
        } else {
            Err(EndpointError::Several(errors))
        }
    }
}
