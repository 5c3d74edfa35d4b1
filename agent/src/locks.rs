//! Per-container serialisation: one CNI operation at a time per container id, any number at
//! once across containers. In-memory only, no I/O.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct ContainerLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Held while an operation on one container runs; the map entry goes when the last holder
/// or waiter is done.
pub struct ContainerGuard<'a> {
    owner: &'a ContainerLocks,
    container_id: String,
    _guard: OwnedMutexGuard<()>,
}

impl ContainerLocks {
    pub async fn lock(&self, container_id: &str) -> ContainerGuard<'_> {
        let mutex = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            locks.entry(container_id.to_string()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        ContainerGuard {
            owner: self,
            container_id: container_id.to_string(),
            _guard: guard,
        }
    }

    /// Whether an operation on this container runs (or waits to run) now.
    pub fn is_locked(&self, container_id: &str) -> bool {
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(container_id)
    }

    pub fn held(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .owner
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Two references: the map's and the one inside our guard. More means someone waits.
        if locks
            .get(&self.container_id)
            .is_some_and(|mutex| Arc::strong_count(mutex) <= 2)
        {
            locks.remove(&self.container_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn same_container_waits_other_container_does_not() {
        let locks = Arc::new(ContainerLocks::default());
        let first = locks.lock("a").await;
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock("b")).await;
        assert!(other.is_ok(), "another container must not wait");
        drop(other);
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _guard = locks.lock("a").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap();
        assert_eq!(locks.held(), 0);
    }
}
