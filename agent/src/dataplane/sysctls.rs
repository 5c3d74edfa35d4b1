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
    /// Per key, the value each owner wants; the greatest owner's wins (in practice an
    /// interface's keys are its own). Kept so that a change of one owner touches only its keys,
    /// not every key of every pod.
    claims: BTreeMap<String, BTreeMap<SysctlOwner, String>>,
    tracker: DeltaTracker<String, String>,
    /// Told how long each apply that wrote something took (the metrics histogram).
    observer: Option<ApplyObserver>,
}

impl SysctlApplier {
    pub fn new(sysctl: Arc<dyn Sysctl>) -> SysctlApplier {
        SysctlApplier {
            sysctl,
            owners: BTreeMap::new(),
            claims: BTreeMap::new(),
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
        let previous = self.owners.insert(owner.clone(), keys.clone());
        self.replace_claims(&owner, previous.unwrap_or_default(), keys);
    }

    /// Replaces every interface owner at once (a reconcile); node-wide keys stay.
    pub fn set_interfaces(&mut self, interfaces: BTreeMap<String, Vec<(String, String)>>) {
        let gone: Vec<SysctlOwner> = self
            .owners
            .keys()
            .filter(|owner| match owner {
                SysctlOwner::Interface(name) => !interfaces.contains_key(name),
                SysctlOwner::Node => false,
            })
            .cloned()
            .collect();
        for owner in gone {
            self.remove(&owner);
        }
        for (name, keys) in interfaces {
            self.set(SysctlOwner::Interface(name), keys);
        }
    }

    pub fn remove(&mut self, owner: &SysctlOwner) {
        if let Some(previous) = self.owners.remove(owner) {
            self.replace_claims(owner, previous, Vec::new());
        }
    }

    /// Moves `owner`'s claims from `previous` to `keys` and brings the desired value of every
    /// key it touched up to date: work in the size of one owner, not of all of them.
    fn replace_claims(
        &mut self,
        owner: &SysctlOwner,
        previous: Vec<(String, String)>,
        keys: Vec<(String, String)>,
    ) {
        let mut touched = Vec::with_capacity(previous.len() + keys.len());
        for (key, _) in previous {
            if let Some(claims) = self.claims.get_mut(&key) {
                claims.remove(owner);
            }
            touched.push(key);
        }
        for (key, value) in keys {
            self.claims
                .entry(key.clone())
                .or_default()
                .insert(owner.clone(), value);
            touched.push(key);
        }
        for key in touched {
            let winner = self
                .claims
                .get(&key)
                .and_then(|claims| claims.values().next_back())
                .cloned();
            match winner {
                Some(value) => {
                    if self.tracker.desired_at(&key) != Some(&value) {
                        self.tracker.set_desired(key, value);
                    }
                }
                None => {
                    self.claims.remove(&key);
                    if self.tracker.desired_at(&key).is_some() {
                        self.tracker.remove_desired(&key);
                        // Nothing to undo in the kernel: forget it.
                        self.tracker.record_deleted(&key);
                    }
                }
            }
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

    proptest::proptest! {
        /// Owner by owner, the desired keys are those of a recomputation from every owner
        /// (the greatest owner's value winning a key that two owners want).
        #[test]
        fn desired_keys_follow_the_owners(
            changes in proptest::collection::vec(
                (0u8..4, proptest::option::of(proptest::collection::vec((0u8..6, 0u8..3), 0..4))),
                0..40,
            )
        ) {
            let mut applier = SysctlApplier::new(Arc::new(FakeSysctl::new()));
            let mut model: BTreeMap<SysctlOwner, Vec<(String, String)>> = BTreeMap::new();
            for (owner, keys) in changes {
                let owner = match owner {
                    0 => SysctlOwner::Node,
                    n => SysctlOwner::Interface(format!("cali{n}")),
                };
                match keys {
                    Some(keys) => {
                        let keys: Vec<(String, String)> = keys
                            .into_iter()
                            .map(|(key, value)| (format!("key{key}"), format!("{value}")))
                            .collect();
                        model.insert(owner.clone(), keys.clone());
                        applier.set(owner, keys);
                    }
                    None => {
                        model.remove(&owner);
                        applier.remove(&owner);
                    }
                }
                let expected: BTreeMap<String, String> =
                    model.values().flatten().cloned().collect();
                let desired: BTreeMap<String, String> = applier
                    .tracker
                    .desired()
                    .map(|(key, value)| (key, value.clone()))
                    .collect();
                proptest::prop_assert_eq!(desired, expected);
            }
        }
    }
}
