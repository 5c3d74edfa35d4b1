//! The sysctl applier: the one writer of the /proc/sys keys manul sets. Concerns hand it what
//! they want by owner (the node as a whole, or one host interface); it tracks desired against
//! applied and writes only the keys that differ (`Sysctl::set` reads before it writes). A
//! sysctl has nothing to delete: an interface's keys go with the interface, so dropping an
//! owner only forgets its keys. I/O only through the `Sysctl` trait.

use std::{collections::BTreeMap, sync::Arc};

use super::{ApplyObserver, delta::DeltaTracker};
use crate::sysctl::{Sysctl, SysctlError};

/// Who wants a sysctl.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SysctlOwner {
    /// Node-wide keys (forwarding).
    Node,
    /// The keys of one host interface.
    Interface(String),
}

/// What one apply did.
#[derive(Debug, Default)]
pub struct SysctlApplyReport {
    /// Keys whose value was written (it differed).
    pub changed: usize,
    pub errors: Vec<SysctlError>,
}

pub struct SysctlApplier {
    sysctl: Arc<dyn Sysctl>,
    owners: BTreeMap<SysctlOwner, Vec<(String, String)>>,
    tracker: DeltaTracker<String, String>,
    /// Told how long each apply that wrote something took (the metrics histogram).
    observer: Option<ApplyObserver>,
}

impl SysctlApplier {
    pub fn new(sysctl: Arc<dyn Sysctl>) -> SysctlApplier {
        SysctlApplier {
            sysctl,
            owners: BTreeMap::new(),
            tracker: DeltaTracker::default(),
            observer: None,
        }
    }

    /// Tells `observer` how long each apply that wrote something took.
    pub fn set_observer(&mut self, observer: ApplyObserver) {
        self.observer = Some(observer);
    }

    /// Replaces what `owner` wants.
    pub fn set(&mut self, owner: SysctlOwner, keys: Vec<(String, String)>) {
        self.owners.insert(owner, keys);
        self.recompute();
    }

    /// Replaces every interface owner at once (a reconcile); node-wide keys stay.
    pub fn set_interfaces(&mut self, interfaces: BTreeMap<String, Vec<(String, String)>>) {
        self.owners
            .retain(|owner, _| !matches!(owner, SysctlOwner::Interface(_)));
        for (name, keys) in interfaces {
            self.owners.insert(SysctlOwner::Interface(name), keys);
        }
        self.recompute();
    }

    pub fn remove(&mut self, owner: &SysctlOwner) {
        self.owners.remove(owner);
        self.recompute();
    }

    fn recompute(&mut self) {
        let wanted: BTreeMap<&String, &String> = self
            .owners
            .values()
            .flatten()
            .map(|(key, value)| (key, value))
            .collect();
        let stale: Vec<String> = self
            .tracker
            .desired()
            .map(|(key, _)| key)
            .filter(|key| !wanted.contains_key(key))
            .collect();
        for key in stale {
            self.tracker.remove_desired(&key);
            // Nothing to undo in the kernel: forget it.
            self.tracker.record_deleted(&key);
        }
        for (key, value) in wanted {
            self.tracker.set_desired(key.clone(), value.clone());
        }
    }

    /// Every key is read again on the next apply (someone may have changed one behind us).
    pub fn forget_applied(&mut self) {
        self.tracker.forget_applied();
    }

    /// Writes the keys that are pending; keeps going past failures.
    pub fn apply(&mut self) -> SysctlApplyReport {
        let pending = self.tracker.pending_updates();
        self.write(pending)
    }

    /// Writes the pending keys of one owner only.
    pub fn apply_owner(&mut self, owner: &SysctlOwner) -> SysctlApplyReport {
        let keys: Vec<String> = self
            .owners
            .get(owner)
            .map(|keys| keys.iter().map(|(key, _)| key.clone()).collect())
            .unwrap_or_default();
        let (pending, _) = self.tracker.pending_for(&keys);
        self.write(pending)
    }

    fn write(&mut self, pending: Vec<(String, String, bool)>) -> SysctlApplyReport {
        let mut report = SysctlApplyReport::default();
        if pending.is_empty() {
            return report;
        }
        let started = std::time::Instant::now();
        for (key, value, _) in pending {
            match self.sysctl.set(&key, &value) {
                Ok(changed) => {
                    report.changed += usize::from(changed);
                    self.tracker.record_applied(key, value);
                }
                Err(error) => report.errors.push(error),
            }
        }
        if let Some(observer) = &self.observer {
            observer(started.elapsed());
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::FakeSysctl;

    #[test]
    fn only_differing_keys_are_written_and_a_failure_does_not_stop_the_rest() {
        let fake = Arc::new(FakeSysctl::strict());
        fake.insert("net/ipv4/ip_forward", "0");
        fake.insert("net/ipv4/conf/cali1/proxy_arp", "1");
        let mut applier = SysctlApplier::new(fake.clone());
        applier.set(
            SysctlOwner::Node,
            vec![
                ("net/ipv4/ip_forward".into(), "1".into()),
                ("net/ipv6/conf/all/forwarding".into(), "1".into()),
            ],
        );
        applier.set(
            SysctlOwner::Interface("cali1".into()),
            vec![("net/ipv4/conf/cali1/proxy_arp".into(), "1".into())],
        );
        let report = applier.apply();
        assert_eq!(report.changed, 1);
        assert_eq!(
            report.errors.len(),
            1,
            "the IPv6 key does not exist in the fake"
        );
        assert_eq!(
            fake.get("net/ipv4/ip_forward").unwrap().as_deref(),
            Some("1")
        );
        let again = applier.apply();
        assert_eq!((again.changed, again.errors.len()), (0, 1));
    }
}
