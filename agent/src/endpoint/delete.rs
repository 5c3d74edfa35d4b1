//! CNI DEL: best effort, keeps going past failures and reports all of them. Succeeds when the
//! netns, the link or the allocation is already gone, and when it comes twice. I/O through
//! the agent's traits only.

use std::{path::Path, time::Instant};

use manul_ipam::retry::CasRetry;
use manul_store::{DatastoreExt, StoreError, WorkloadEndpoint};
use tracing::info;

use super::{EndpointError, EndpointRequest, Endpoints, validate_common};
use crate::{
    dataplane::{RouteSource, SysctlOwner},
    naming,
    netlink::{LinkDeletion, Route, RouteKey, RouteTarget},
};

impl Endpoints {
    /// Returns the addresses given back to the pool.
    pub async fn delete(
        &self,
        request: &EndpointRequest,
    ) -> Result<Vec<std::net::IpAddr>, EndpointError> {
        validate_common(request)?;
        let started = Instant::now();
        let _container = self.locks.lock(&request.container_id).await;
        let _epoch = self.kernel_epoch.read().await;
        let waited = started.elapsed();
        let mut errors = Vec::new();

        let existing = self.find(&request.container_id, &request.ifname).await?;
        match &existing {
            Some(endpoint) => {
                if let Err(error) = self
                    .teardown(&endpoint.value, request.netns.as_deref())
                    .await
                {
                    errors.push(error);
                }
            }
            None => {
                // No record (an ADD that never finished, or a second DEL): remove the link the
                // name points at, unless another endpoint of this node owns it.
                let host_name = naming::host_interface_name(
                    &request.pod_namespace,
                    &request.pod_name,
                    &request.container_id,
                );
                match self
                    .owned_by_other_endpoint(&host_name, &request.container_id)
                    .await
                {
                    Ok(false) => {
                        if let Err(error) = self
                            .netlink
                            .delete_link(&host_name, Some(&request.container_id))
                            .await
                        {
                            errors.push(error.into());
                        }
                    }
                    Ok(true) => {}
                    Err(error) => errors.push(error),
                }
                if let Some(netns) = &request.netns
                    && let Err(error) = self
                        .netlink
                        .delete_pod_interface(netns, &request.ifname)
                        .await
                {
                    errors.push(error.into());
                }
            }
        }

        let kernel = started.elapsed();
        let handle = naming::ipam_handle(&request.container_id, &request.ifname);
        let released = match self.release(&handle).await {
            Ok(released) => released,
            Err(error) => {
                errors.push(error.into());
                Vec::new()
            }
        };
        if let Some(endpoint) = existing
            && let Err(error) = self.forget(&endpoint.value.name).await
        {
            errors.push(error);
        }
        if let Err(error) = self.store.sync().await {
            errors.push(error.into());
        }
        info!(
            container = %request.container_id,
            ?released,
            waited_ms = waited.as_secs_f64() * 1e3,
            kernel_ms = (kernel - waited).as_secs_f64() * 1e3,
            ipam_and_record_ms = (started.elapsed() - kernel).as_secs_f64() * 1e3,
            "endpoint deleted"
        );
        match errors.len() {
            0 => Ok(released),
            1 => Err(errors.remove(0)),
            _ => Err(EndpointError::Several(errors)),
        }
    }

    /// Removes the kernel side of an endpoint: host link, pod interface, host routes. The host
    /// link goes only while it is this endpoint's own: a newer sandbox of the same pod has the
    /// same name, and its link, routes and sysctls are left alone.
    pub(crate) async fn teardown(
        &self,
        endpoint: &WorkloadEndpoint,
        netns: Option<&Path>,
    ) -> Result<(), EndpointError> {
        let mut errors: Vec<EndpointError> = Vec::new();
        // Deleting the host end removes the pod end with it, from the agent's own netlink
        // socket; the pod's namespace is only entered when the host end is not this
        // endpoint's (gone, or another sandbox's) and the pod end might have been left.
        let deletion = self
            .netlink
            .delete_link(&endpoint.interface_name, Some(&endpoint.container_id))
            .await;
        let host_end_deleted = match deletion {
            Ok(LinkDeletion::Deleted) => true,
            Ok(LinkDeletion::Gone) => false,
            Ok(LinkDeletion::OwnedByOther(owner)) => {
                info!(link = %endpoint.interface_name, container = %endpoint.container_id, %owner,
                    "the host link belongs to a newer sandbox of this pod; leaving it");
                false
            }
            Err(error) => {
                errors.push(error.into());
                false
            }
        };
        if !host_end_deleted {
            let recorded = Path::new(&endpoint.netns);
            let netns = netns
                .filter(|path| !path.as_os_str().is_empty())
                .unwrap_or(recorded);
            if !netns.as_os_str().is_empty()
                && let Err(error) = self
                    .netlink
                    .delete_pod_interface(netns, &endpoint.endpoint)
                    .await
            {
                errors.push(error.into());
            }
        }
        // The routes of this endpoint's addresses (the kernel dropped them with the link; this
        // keeps the applier's books and removes them if the link was another's).
        let keys: Vec<RouteKey> = endpoint
            .ip_networks
            .iter()
            .map(|address| {
                Route::main(
                    *address,
                    RouteTarget::Device(endpoint.interface_name.clone()),
                )
                .key()
            })
            .collect();
        if let Err(error) = self.remove_pod_routes(&keys).await {
            errors.push(error);
        }
        if host_end_deleted {
            self.dataplane
                .sysctls()
                .remove(&SysctlOwner::Interface(endpoint.interface_name.clone()));
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(EndpointError::Several(errors)),
        }
    }

    /// Drops pod routes from the route applier and deletes them from the kernel.
    pub(crate) async fn remove_pod_routes(&self, keys: &[RouteKey]) -> Result<(), EndpointError> {
        let mut applier = self.dataplane.routes.lock().await;
        for key in keys {
            applier.remove(RouteSource::PodRoutes, *key);
        }
        let mut report = applier.apply_keys(keys).await;
        match report.errors.len() {
            0 => Ok(()),
            1 => Err(report.errors.remove(0).into()),
            _ => Err(EndpointError::Several(
                report.errors.into_iter().map(EndpointError::from).collect(),
            )),
        }
    }

    async fn owned_by_other_endpoint(
        &self,
        host_name: &str,
        container_id: &str,
    ) -> Result<bool, EndpointError> {
        Ok(self.list().await?.iter().any(|endpoint| {
            endpoint.value.interface_name == host_name
                && endpoint.value.container_id != container_id
        }))
    }

    /// Deletes the endpoint record (CAS; a lost race is retried from a fresh read by
    /// `CasRetry`); gone already is fine.
    pub(crate) async fn forget(&self, name: &str) -> Result<(), EndpointError> {
        let mut retry = CasRetry::new(|| format!("deleting endpoint {name}"));
        loop {
            let Some(current) = self.store.get_resource::<WorkloadEndpoint>(name).await? else {
                return Ok(());
            };
            match self
                .store
                .delete_resource::<WorkloadEndpoint>(name, &current.revision)
                .await
            {
                Ok(()) | Err(StoreError::NotFound { .. }) => return Ok(()),
                Err(error) => retry.lost(error).await?,
            }
        }
    }
}
