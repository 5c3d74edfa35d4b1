//! The kernel side of the agent, in felix's shape: each concern computes the state it wants with
//! no I/O (pod routes and block blackholes in `crate::reconcile`, host-interface and node
//! sysctls in `crate::sysctl`), and one applier per kind of kernel object owns desired against
//! applied (`delta::DeltaTracker`) and pushes the difference in batches: `routes::RouteApplier`
//! for every route manul writes, `sysctls::SysctlApplier` for /proc/sys. CNI requests and the
//! reconciler both go through them; nothing else writes routes or sysctls.
//!
//! Links are not tracked here: a host link is made and removed by the CNI operation that owns
//! it (and by the reconciler for links nothing owns).

pub mod delta;
pub mod kernel_routes;
pub mod route_keys;
pub mod routes;
pub mod sysctls;
pub mod targets;

use std::sync::Arc;

use crate::{netlink::Netlink, sysctl::Sysctl};

pub use routes::{AppliedRouteCounts, RouteApplier, RouteApplyReport, RouteSource};
pub use sysctls::{SysctlApplier, SysctlApplyReport, SysctlOwner};

/// Called with the duration of each apply that wrote something (the metrics histogram).
pub type ApplyObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// The appliers of one agent. Route writes take turns (the applier is the single writer); the
/// sysctl applier is synchronous and quick.
pub struct Dataplane {
    pub routes: tokio::sync::Mutex<RouteApplier>,
    pub sysctls: std::sync::Mutex<SysctlApplier>,
}

impl Dataplane {
    pub fn new(netlink: Arc<dyn Netlink>, sysctl: Arc<dyn Sysctl>) -> Dataplane {
        Dataplane {
            routes: tokio::sync::Mutex::new(RouteApplier::new(netlink)),
            sysctls: std::sync::Mutex::new(SysctlApplier::new(sysctl)),
        }
    }

    /// The sysctl applier (a poisoned lock only follows a panic in a test).
    pub fn sysctls(&self) -> std::sync::MutexGuard<'_, SysctlApplier> {
        self.sysctls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
