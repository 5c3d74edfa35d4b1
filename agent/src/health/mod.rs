//! Health and metrics of the agent on one HTTP port (Calico's 9099): `/livez` (the agent's
//! long-running tasks are alive), `/readyz` (every readiness condition holds), `/metrics`
//! (Prometheus/OpenMetrics text). `Readiness` and `Liveness` are shared state that other
//! modules set (no I/O); `metrics` holds the metric families; `server` serves them (I/O).

pub mod metrics;
pub mod server;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

pub use metrics::{Metrics, MetricsSource};
pub use server::{HealthError, HealthState, serve};

/// The readiness condition the node watcher sets: the first list and watch of the datastore
/// succeeded, and the watch is still running.
pub const DATASTORE_CONDITION: &str = "datastore";

/// Named readiness conditions. A condition is registered failing (`require`) by the module
/// that owns it and set as it changes; `/readyz` answers 200 when all hold.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// Condition name -> None when it holds, Some(reason) when not.
    conditions: Arc<Mutex<BTreeMap<String, Option<String>>>>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    fn conditions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<String>>> {
        self.conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `name` as failing with `reason` until it is set ready.
    pub fn require(&self, name: &str, reason: &str) {
        self.conditions()
            .insert(name.to_string(), Some(reason.to_string()));
    }

    pub fn set_ready(&self, name: &str) {
        self.conditions().insert(name.to_string(), None);
    }

    pub fn set_failing(&self, name: &str, reason: impl ToString) {
        self.conditions()
            .insert(name.to_string(), Some(reason.to_string()));
    }

    /// The conditions that do not hold, with their reasons, in name order.
    pub fn failing(&self) -> Vec<(String, String)> {
        self.conditions()
            .iter()
            .filter_map(|(name, reason)| Some((name.clone(), reason.clone()?)))
            .collect()
    }
}

/// The agent's long-running tasks; `/livez` fails when one of them has ended.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    tasks: Arc<Mutex<Vec<(String, tokio::task::AbortHandle)>>>,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// Watches a task that should run as long as the agent does.
    pub fn watch(&self, name: &str, task: tokio::task::AbortHandle) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.to_string(), task));
    }

    /// Names of the watched tasks that have ended.
    pub fn ended(&self) -> Vec<String> {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, task)| task.is_finished())
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_lists_failing_conditions_until_each_is_set() {
        let readiness = Readiness::new();
        assert!(readiness.failing().is_empty());
        readiness.require(DATASTORE_CONDITION, "not synced yet");
        readiness.require("bgp", "bgpd not started");
        assert_eq!(
            readiness.failing(),
            vec![
                ("bgp".to_string(), "bgpd not started".to_string()),
                ("datastore".to_string(), "not synced yet".to_string())
            ]
        );
        readiness.set_ready(DATASTORE_CONDITION);
        assert_eq!(readiness.failing().len(), 1);
        readiness.set_ready("bgp");
        assert!(readiness.failing().is_empty());
        readiness.set_failing(DATASTORE_CONDITION, "watch ended");
        assert_eq!(readiness.failing()[0].1, "watch ended");
    }

    #[tokio::test]
    async fn liveness_names_tasks_that_ended() {
        let liveness = Liveness::new();
        let forever = tokio::spawn(std::future::pending::<()>());
        let done = tokio::spawn(async {});
        liveness.watch("reconciler", forever.abort_handle());
        liveness.watch("node-watch", done.abort_handle());
        done.await.unwrap();
        assert_eq!(liveness.ended(), vec!["node-watch".to_string()]);
        forever.abort();
    }
}
