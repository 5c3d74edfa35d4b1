//! The reconciler: converges the kernel to what this node's endpoints and blocks want, at start
//! and periodically. `plan` computes the wanted state and refuses deletions nothing justifies
//! (pure); this module reads the inputs and hands the plan to the appliers (`crate::dataplane`),
//! which write only the difference. Only proto-manul routes and cali* links are ever looked at.
//!
//! Order of a pass: the routing tables are read first, without the exclusive lock (the kernel
//! filters the dump to manul's routes, but it still walks every table, and CNI requests must not
//! wait for it); then, under the exclusive lock (no CNI operation half done), the links and the
//! store are read, the plan made, stray links deleted by owner, and routes and sysctls applied.
//! A failed write is reported and retried on the next pass; it never stops the pass. Restarting
//! the agent changes nothing in a converged kernel, so running pods are not disturbed.

pub mod plan;

#[cfg(test)]
mod golden;

use std::{collections::BTreeMap, sync::atomic::Ordering};

use manul_store::{DatastoreExt, WorkloadEndpoint};
use tracing::{debug, error, info, warn};

pub use plan::{Inputs, Plan, Refusal, plan};

use crate::{
    dataplane::{
        Dataplane, RouteApplyReport, RouteSource, SysctlApplyReport, SysctlOwner,
        kernel_routes::KernelRoutes,
    },
    endpoint::{EndpointError, Endpoints},
    naming::HOST_INTERFACE_PREFIX,
    netlink::{LinkDeletion, LinkInfo, Netlink, Route},
};

/// What one pass changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub routes_added: usize,
    pub routes_replaced: usize,
    pub routes_deleted: usize,
    pub links_deleted: usize,
    pub sysctls_changed: usize,
    /// Host ends whose GRO was turned on.
    pub gro_enabled: usize,
    pub missing_links: Vec<String>,
    /// Deletions refused, with the reason.
    pub refusals: Vec<String>,
    /// Writes that failed (retried on the next pass).
    pub errors: Vec<String>,
}

impl Endpoints {
    /// Writes again what the kernel dropped on its own (`Netlink::lost_routes`: routes that
    /// named next-hop objects on a device that lost its carrier): the route applier's wanted
    /// routes against a fresh read of the kernel. Reads no datastore, which may be out of reach
    /// over the very uplink that lost its carrier.
    pub async fn rewrite_lost_routes(&self) -> Result<RouteApplyReport, EndpointError> {
        let kernel_routes = self.read_kernel_routes().await?;
        let mut routes = self.dataplane.routes.lock().await;
        routes.finish_resync(kernel_routes);
        let (installing, removing) = routes.pending();
        log_pending(&installing, &removing);
        let report = routes.apply().await;
        self.lost_routes_rewritten
            .fetch_add((report.added + report.replaced) as u64, Ordering::Relaxed);
        Ok(report)
    }

    /// The kernel's manul routes, read after the route applier's `begin_resync` (for its
    /// `finish_resync`), compactly as the dump comes: a node may hold a million BGP routes.
    async fn read_kernel_routes(&self) -> Result<KernelRoutes, EndpointError> {
        let tables = {
            let mut routes = self.dataplane.routes.lock().await;
            routes.begin_resync();
            routes.tables().to_vec()
        };
        let mut kernel_routes = KernelRoutes::default();
        self.netlink
            .visit_manul_routes(&tables, &mut |route| kernel_routes.insert(route))
            .await?;
        Ok(kernel_routes)
    }

    /// One reconcile pass. Fails only when its inputs cannot be read (then it changes nothing);
    /// failed writes are in the report.
    pub async fn reconcile(&self) -> Result<ReconcileReport, EndpointError> {
        let mut errors = Vec::new();
        if let Some(grace) = self.empty_block_grace {
            let _turn = self.ipam_writes.lock().await;
            match self
                .ipam()
                .release_empty_blocks(self.node(), grace, std::time::SystemTime::now())
                .await
            {
                Ok(released) => {
                    for block in released {
                        info!(%block, grace_seconds = grace.as_secs(), "released a block that stayed empty");
                    }
                }
                Err(error) => errors.push(format!("releasing empty blocks: {error}")),
            }
            if let Err(error) = self.store.sync().await {
                errors.push(format!("syncing the datastore: {error}"));
            }
        }
        let mut kernel_routes = self.read_kernel_routes().await?;
        self.refresh_default_mtu().await?;

        let epoch = self.kernel_epoch();
        let _exclusive = epoch.write().await;
        let links = self
            .netlink
            .links_with_prefix(HOST_INTERFACE_PREFIX)
            .await?;
        let endpoints: Vec<WorkloadEndpoint> = self
            .list()
            .await?
            .into_iter()
            .map(|versioned| versioned.value)
            .collect();
        let affine_blocks = self.ipam().affine_blocks(self.node()).await?;
        let ipv6_in_use = self.ipv6_in_use().await?;
        let mut inputs = Inputs {
            endpoints,
            affine_blocks,
            elsewhere: BTreeMap::new(),
            links,
            routes: std::mem::take(&mut kernel_routes.listed),
            ipv6_in_use,
        };
        if plan::stray_links(&inputs.endpoints, &inputs.links)
            .iter()
            .any(|link| link.alias.is_some())
        {
            inputs.elsewhere = self.endpoints_on_other_nodes().await?;
        }
        let plan = plan(&inputs);
        // The plan is made: the kernel's routes go on to the applier without a copy.
        kernel_routes.listed = std::mem::take(&mut inputs.routes);
        let mut report = ReconcileReport {
            missing_links: plan.missing_links.clone(),
            refusals: plan.refusals.iter().map(ToString::to_string).collect(),
            errors,
            ..Default::default()
        };
        if !plan.refusals.is_empty() {
            self.refused_deletions
                .fetch_add(plan.refusals.len() as u64, Ordering::Relaxed);
            for refusal in &plan.refusals {
                error!(%refusal, "reconcile refused a deletion");
            }
        }

        apply_plan(
            self.netlink.as_ref(),
            &self.dataplane,
            &plan,
            kernel_routes,
            &mut report,
        )
        .await;
        // GRO at the host ends that stay, where this agent has not turned it on yet (made
        // by an older agent, or a failed attempt at ADD).
        let kept: Vec<&LinkInfo> = inputs
            .links
            .iter()
            .filter(|link| plan.interface_sysctls.contains_key(&link.name))
            .collect();
        for link in self.links_without_gro(&kept) {
            match self.enable_gro(link).await {
                Ok(true) => report.gro_enabled += 1,
                Ok(false) => {}
                Err(error) => report
                    .errors
                    .push(format!("turning GRO on at {}: {error}", link.name)),
            }
        }
        for name in &plan.missing_links {
            warn!(link = %name, "an endpoint's host interface is missing; its pod is gone (DEL or GC will release it)");
        }
        for error in &report.errors {
            warn!(%error, "reconcile: a write failed; retrying on the next pass");
        }
        debug!(?report, "reconciled");
        Ok(report)
    }

    /// Container id -> node of every endpoint recorded on another node.
    async fn endpoints_on_other_nodes(&self) -> Result<BTreeMap<String, String>, EndpointError> {
        Ok(self
            .store
            .list_resources::<WorkloadEndpoint>("")
            .await?
            .into_iter()
            .map(|versioned| versioned.value)
            .filter(|endpoint| endpoint.node != self.node())
            .map(|endpoint| (endpoint.container_id, endpoint.node))
            .collect())
    }
}

/// Deletes the plan's stray links (by owner) and hands its routes and sysctls to the appliers,
/// which write the difference from `kernel_routes` (the kernel's manul routes, read since the
/// route applier's `begin_resync`).
pub(crate) async fn apply_plan(
    netlink: &dyn Netlink,
    dataplane: &Dataplane,
    plan: &Plan,
    kernel_routes: KernelRoutes,
    report: &mut ReconcileReport,
) {
    for (name, owner) in &plan.delete_links {
        match netlink.delete_link(name, owner.as_deref()).await {
            Ok(LinkDeletion::Deleted) => {
                info!(link = %name, owner = ?owner, "removed a cali link that belongs to no endpoint");
                report.links_deleted += 1;
            }
            Ok(LinkDeletion::Gone | LinkDeletion::OwnedByOther(_)) => {}
            Err(error) => report.errors.push(error.to_string()),
        }
    }
    let routes_report = {
        let mut routes = dataplane.routes.lock().await;
        routes.finish_resync(kernel_routes);
        routes.set_source(RouteSource::PodRoutes, plan.pod_routes.clone());
        routes.set_source(RouteSource::Kept, plan.kept_routes.clone());
        routes.set_source(RouteSource::BlockBlackholes, plan.blackholes.clone());
        let (installing, removing) = routes.pending();
        log_pending(&installing, &removing);
        routes.apply().await
    };
    let sysctls_report = {
        let mut sysctls = dataplane.sysctls();
        sysctls.set(SysctlOwner::Node, plan.node_sysctls.clone());
        sysctls.set_interfaces(plan.interface_sysctls.clone());
        sysctls.forget_applied();
        sysctls.apply()
    };
    merge(report, routes_report, sysctls_report);
}

/// Logs what the pass is about to change, at info: an operator reading the log sees why (the
/// first `LOGGED_CHANGES` of each kind, then a count: a node may hold a million BGP routes).
fn log_pending(installing: &[Route], removing: &[Route]) {
    const LOGGED_CHANGES: usize = 20;
    for route in installing.iter().take(LOGGED_CHANGES) {
        info!(%route, "installing a manul route");
    }
    for route in removing.iter().take(LOGGED_CHANGES) {
        info!(%route, "removing a manul route that nothing wants");
    }
    if installing.len() > LOGGED_CHANGES || removing.len() > LOGGED_CHANGES {
        info!(
            installing = installing.len(),
            removing = removing.len(),
            "more route changes than logged one by one"
        );
    }
}

fn merge(report: &mut ReconcileReport, routes: RouteApplyReport, sysctls: SysctlApplyReport) {
    report.routes_added += routes.added;
    report.routes_replaced += routes.replaced;
    report.routes_deleted += routes.deleted;
    report.sysctls_changed += sysctls.changed;
    report
        .errors
        .extend(routes.errors.iter().map(ToString::to_string));
    report
        .errors
        .extend(sysctls.errors.iter().map(ToString::to_string));
}
