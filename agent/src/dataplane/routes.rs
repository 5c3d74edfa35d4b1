//! The route applier: the one writer of manul's routes. Each concern (pod routes, block
//! blackholes, routes kept by a refused deletion, remote blocks through VXLAN, and the routes
//! learned over BGP) hands it the routes it wants as a whole set or one by one; the applier
//! merges them (a key wanted by two sources goes to the earlier source in `RouteSource` order),
//! tracks desired against applied, and pushes the difference in concurrent batches. I/O only
//! through the `Netlink` trait.
//!
//! Memory: the maps hold a `TargetId` per key, not the target itself (`super::targets`).
//!
//! Learned routes are written in the background (`start_apply_keys`): one write at a time runs
//! in a task of its own while the caller folds in its next batch, and is recorded before the
//! next write is computed, by the caller (`settle_if_done`) or by any other apply.
//!
//! Ownership: a key the applier has seen holding a route of manul's is replaced; any other key
//! is created without replace, and when the kernel answers that the key is taken, the applier
//! looks at manul's routes: if the key is not among them, the route belongs to someone else
//! and is left alone (`RouteNotOurs`).

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use tokio::{sync::Notify, task::JoinHandle};
use tracing::warn;

use super::{
    ApplyObserver,
    delta::{DeltaTracker, Slot},
    kernel_routes::KernelRoutes,
    route_keys::RouteKeyMap,
    targets::{TargetId, TargetTable},
};
use crate::netlink::{Netlink, NetlinkError, Route, RouteKey, RouteTarget, RouteWrite as Write};

/// Where a wanted route comes from; earlier sources win a key wanted twice. Bgp must stay the
/// last: its wants are held in the tracker's slots and lose to every other source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteSource {
    /// `<pod-ip>/32 dev cali…`, one per endpoint address.
    PodRoutes,
    /// Routes of links whose deletion the reconciler refused: kept as they are.
    Kept,
    /// `blackhole <block>` for each block this node has affinity to.
    BlockBlackholes,
    /// Remote blocks of encapsulating IPv4 pools, as their pool's vxlanMode says (through
    /// vxlan.calico, or straight to a same-subnet node without BGP): they win over BGP's.
    Vxlan,
    /// The same for IPv6 pools (vxlan-v6.calico).
    VxlanV6,
    /// Routes through the next hops of what manul-bgpd learned: other nodes' blocks and
    /// borrowed addresses, and routes from top-of-rack routers.
    Bgp,
}

/// What one apply pushed, and what failed.
#[derive(Debug, Default)]
pub struct RouteApplyReport {
    pub added: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub errors: Vec<NetlinkError>,
}

pub struct RouteApplier {
    netlink: Arc<dyn Netlink>,
    /// Extra tables manul owns besides main (none yet).
    tables: Vec<u32>,
    /// What each source but Bgp wants (a few routes each).
    sources: BTreeMap<RouteSource, BTreeMap<RouteKey, TargetId>>,
    /// Desired and applied per key, and what Bgp wants there (its million learned routes need
    /// no map of their own: the slot's extra value).
    tracker: Tracker,
    /// How many keys Bgp wants.
    bgp_len: usize,
    /// The targets the ids of `sources` and `tracker` stand for.
    targets: TargetTable,
    /// While set, gateway routes in the kernel that no source wants are kept: after a restart
    /// the BGP routes of the previous run stay until bgpd's view is known again (graceful
    /// restart), instead of being removed by the first reconcile and added back seconds later.
    hold_gateway_routes: bool,
    /// Told how long each apply that wrote something took (the metrics histogram).
    observer: Option<ApplyObserver>,
    /// The write `start_apply_keys` left running, recorded by the next call that settles.
    in_flight: Option<InFlight>,
    /// Notified when the write in flight is done (see `write_done`).
    write_done: Arc<Notify>,
}

/// A batch of writes running in a task of its own while the caller prepares the next one.
struct InFlight {
    task: JoinHandle<Vec<(Write, Result<(), NetlinkError>)>>,
    started: Instant,
}

/// Desired and applied target per route key, and Bgp's want as the slot's extra value, in the
/// compact map (`route_keys`).
type Tracker = DeltaTracker<
    RouteKey,
    TargetId,
    Option<TargetId>,
    RouteKeyMap<Slot<TargetId, Option<TargetId>>>,
>;

/// How many routes of each shape the kernel is believed to hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedRouteCounts {
    /// `dev <cali…>`: pod routes.
    pub pod: usize,
    /// `blackhole`: this node's blocks.
    pub blackhole: usize,
    /// `via`: remote blocks.
    pub remote: usize,
}

impl RouteApplier {
    pub fn new(netlink: Arc<dyn Netlink>) -> RouteApplier {
        RouteApplier {
            netlink,
            tables: Vec::new(),
            sources: BTreeMap::new(),
            tracker: DeltaTracker::default(),
            bgp_len: 0,
            targets: TargetTable::default(),
            hold_gateway_routes: false,
            observer: None,
            in_flight: None,
            write_done: Arc::new(Notify::new()),
        }
    }

    /// See `hold_gateway_routes`: set at start when BGP is on, cleared once bgpd's routes are
    /// known (or its restart time ran out).
    pub fn set_hold_gateway_routes(&mut self, hold: bool) {
        self.hold_gateway_routes = hold;
    }

    /// Tells `observer` how long each apply that wrote something took.
    pub fn set_observer(&mut self, observer: ApplyObserver) {
        self.observer = Some(observer);
    }

    /// Counts of the applied routes by shape, without copying them.
    pub fn applied_counts(&self) -> AppliedRouteCounts {
        let mut counts = AppliedRouteCounts::default();
        for (_, id) in self.tracker.applied() {
            match self.targets.get(*id) {
                RouteTarget::Device(_) => counts.pod += 1,
                RouteTarget::Blackhole => counts.blackhole += 1,
                RouteTarget::Via(_) => counts.remote += 1,
            }
        }
        counts
    }

    pub fn tables(&self) -> &[u32] {
        &self.tables
    }

    /// Replaces everything `source` wants.
    pub fn set_source(&mut self, source: RouteSource, routes: impl IntoIterator<Item = Route>) {
        let new: BTreeMap<RouteKey, TargetId> = routes
            .into_iter()
            .map(|route| (route.key(), self.targets.intern(route.target)))
            .collect();
        if source == RouteSource::Bgp {
            let gone: Vec<RouteKey> = self
                .tracker
                .extras()
                .filter(|(key, _)| !new.contains_key(key))
                .map(|(key, _)| key)
                .collect();
            for key in gone {
                self.set_bgp(key, None);
            }
            for (key, id) in new {
                self.set_bgp(key, Some(id));
            }
        } else {
            let old = self.sources.insert(source, new).unwrap_or_default();
            let current = &self.sources[&source];
            let changed: Vec<RouteKey> = old
                .keys()
                .filter(|key| !current.contains_key(key))
                .chain(current.keys())
                .copied()
                .collect();
            for key in changed {
                self.recompute(key);
            }
        }
        self.sweep_if_due();
    }

    /// Drops the targets no key refers to any more, once enough were made since the last time.
    fn sweep_if_due(&mut self) {
        if !self.targets.sweep_due() {
            return;
        }
        let in_sources = self.sources.values().flat_map(|routes| routes.values());
        let in_tracker = self
            .tracker
            .desired()
            .chain(self.tracker.applied())
            .map(|(_, id)| id);
        let of_bgp = self.tracker.extras().filter_map(|(_, id)| id.as_ref());
        self.targets
            .sweep(in_sources.chain(in_tracker).chain(of_bgp).copied());
    }

    /// Adds or changes one route of `source`.
    pub fn upsert(&mut self, source: RouteSource, route: Route) {
        let key = route.key();
        let id = self.targets.intern(route.target);
        if source == RouteSource::Bgp {
            self.set_bgp(key, Some(id));
        } else {
            self.sources.entry(source).or_default().insert(key, id);
            self.recompute(key);
        }
    }

    /// Removes one route of `source`.
    pub fn remove(&mut self, source: RouteSource, key: RouteKey) {
        if source == RouteSource::Bgp {
            self.set_bgp(key, None);
            return;
        }
        if let Some(routes) = self.sources.get_mut(&source) {
            routes.remove(&key);
        }
        self.recompute(key);
    }

    /// Forgets what was applied at these keys (their device was just made anew, and the kernel
    /// dropped the routes of the old one): the next apply writes them.
    pub fn forget_applied(&mut self, keys: &[RouteKey]) {
        for key in keys {
            self.tracker.record_deleted(key);
        }
    }

    /// The routes `source` wants, in key order.
    pub fn source_routes(&self, source: RouteSource) -> Box<dyn Iterator<Item = Route> + '_> {
        if source == RouteSource::Bgp {
            let mut routes: Vec<Route> = self
                .tracker
                .extras()
                .filter_map(|(key, id)| Some(route(&key, self.targets.get((*id)?))))
                .collect();
            routes.sort();
            return Box::new(routes.into_iter());
        }
        Box::new(
            self.sources
                .get(&source)
                .into_iter()
                .flatten()
                .map(|(key, id)| route(key, self.targets.get(*id))),
        )
    }

    /// How many routes `source` wants.
    pub fn source_len(&self, source: RouteSource) -> usize {
        if source == RouteSource::Bgp {
            return self.bgp_len;
        }
        self.sources.get(&source).map_or(0, BTreeMap::len)
    }

    /// Whether `source` wants this key.
    pub fn wants(&self, source: RouteSource, key: &RouteKey) -> bool {
        if source == RouteSource::Bgp {
            return self.tracker.extra(key).is_some_and(Option::is_some);
        }
        self.sources
            .get(&source)
            .is_some_and(|routes| routes.contains_key(key))
    }

    /// What the other sources want at `key` (they all come before Bgp).
    fn other_want(&self, key: &RouteKey) -> Option<TargetId> {
        self.sources
            .values()
            .find_map(|routes| routes.get(key))
            .copied()
    }

    /// Sets what Bgp wants at `key` (held in the tracker's slot) and the key's desired target.
    fn set_bgp(&mut self, key: RouteKey, want: Option<TargetId>) {
        let other = self.other_want(&key);
        let had = self
            .tracker
            .set_extra(key, want, |bgp| other.or(*bgp))
            .is_some();
        match (had, want.is_some()) {
            (false, true) => self.bgp_len += 1,
            (true, false) => self.bgp_len -= 1,
            _ => {}
        }
    }

    /// The key's desired target after a change of a source other than Bgp.
    fn recompute(&mut self, key: RouteKey) {
        let bgp = self.tracker.extra(&key).copied().flatten();
        match self.other_want(&key).or(bgp) {
            Some(id) => {
                if self.tracker.desired_at(&key) != Some(&id) {
                    self.tracker.set_desired(key, id);
                }
            }
            None => self.tracker.remove_desired(&key),
        }
    }

    /// The routes manul wants, merged, in order.
    pub fn desired(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = self
            .tracker
            .desired()
            .map(|(key, id)| route(&key, self.targets.get(*id)))
            .collect();
        routes.sort();
        routes
    }

    /// The routes of manul's the kernel is believed to hold, in order.
    pub fn applied(&self) -> Vec<Route> {
        let mut routes: Vec<Route> = self
            .tracker
            .applied()
            .map(|(key, id)| route(&key, self.targets.get(*id)))
            .collect();
        routes.sort();
        routes
    }

    /// What the next apply would write: routes to install (new or changed) and routes to
    /// remove, without copying the rest (a node may hold a million routes).
    pub fn pending(&self) -> (Vec<Route>, Vec<Route>) {
        let installing = self
            .tracker
            .pending_updates()
            .iter()
            .map(|(key, id, _)| route(key, self.targets.get(*id)))
            .collect::<Vec<_>>();
        let removing = self
            .tracker
            .pending_deletes()
            .iter()
            .map(|(key, id)| route(key, self.targets.get(*id)))
            .collect::<Vec<_>>();
        (sorted(installing), sorted(removing))
    }

    pub fn in_sync(&self) -> bool {
        self.tracker.in_sync()
    }

    /// Call before `Netlink::manul_routes` for `finish_resync`.
    pub fn begin_resync(&mut self) {
        self.tracker.begin_resync();
    }

    /// What the kernel held at the read (routes written since keep what the write recorded).
    /// Each distinct target of the read is interned once.
    pub fn finish_resync(&mut self, kernel: KernelRoutes) {
        let (kernel, targets) = kernel.into_compact();
        let ids: Vec<TargetId> = targets
            .into_iter()
            .map(|target| self.targets.intern(target))
            .collect();
        // Indices come from `into_compact`, so each has its id (a missing one, a bug, would
        // leave its key out of the read rather than panic).
        self.tracker
            .finish_resync(kernel, |index| ids.get(*index as usize).copied());
        self.sweep_if_due();
    }

    /// Pushes every pending change: deletions first (a key may move between shapes), then
    /// additions and replacements. Keeps going past failures; a failed write stays pending.
    pub async fn apply(&mut self) -> RouteApplyReport {
        self.settle_quietly().await;
        let updates = self.tracker.pending_updates();
        let mut deletes = self.tracker.pending_deletes();
        if self.hold_gateway_routes {
            deletes.retain(|(_, id)| !matches!(self.targets.get(*id), RouteTarget::Via(_)));
        }
        self.push(updates, deletes).await
    }

    /// Pushes the pending changes of some keys only (an ADD's or a DEL's own routes).
    pub async fn apply_keys(&mut self, keys: &[RouteKey]) -> RouteApplyReport {
        self.settle_quietly().await;
        let (updates, deletes) = self.tracker.pending_for(keys);
        self.push(updates, deletes).await
    }

    /// Like `apply_keys`, but the writes run in a task of their own and this returns at once,
    /// so that the caller prepares its next batch while the kernel takes this one (a table of
    /// a million learned routes costs the agent and the kernel about as much each). The
    /// write before this one is recorded first (waiting for it if need be), so writes of one
    /// key never overtake each other; `settle` records the last one, and `write_done` says
    /// when it is done. What failed stays pending and is logged.
    pub async fn start_apply_keys(&mut self, keys: &[RouteKey]) {
        self.settle_quietly().await;
        let (updates, deletes) = self.tracker.pending_for(keys);
        if updates.is_empty() && deletes.is_empty() {
            return;
        }
        let (deletions, changes) = self.writes_of(updates, deletes);
        let netlink = self.netlink.clone();
        let done = self.write_done.clone();
        let task = tokio::spawn(async move {
            let mut results = Vec::with_capacity(deletions.len() + changes.len());
            for writes in [deletions, changes] {
                if !writes.is_empty() {
                    results.extend(netlink.write_routes(writes).await);
                }
            }
            done.notify_one();
            results
        });
        self.in_flight = Some(InFlight {
            task,
            started: Instant::now(),
        });
    }

    /// Notified each time a write of `start_apply_keys` is done (a permit is kept when nobody
    /// waits): the caller then calls `settle_if_done`.
    pub fn write_done(&self) -> Arc<Notify> {
        self.write_done.clone()
    }

    /// Waits for the write `start_apply_keys` left running, if any, and records it.
    pub async fn settle(&mut self) -> RouteApplyReport {
        let mut report = RouteApplyReport::default();
        let Some(InFlight { task, started }) = self.in_flight.take() else {
            return report;
        };
        match task.await {
            Ok(results) => {
                let taken = self.record(results, &mut report);
                if !taken.is_empty() {
                    self.claim_taken_keys(taken, &mut report).await;
                }
            }
            // Nothing recorded: the keys stay pending and the next apply writes them again.
            Err(error) => report
                .errors
                .push(NetlinkError::Other(format!("route write task: {error}"))),
        }
        self.after_write(started);
        report
    }

    /// `settle`, for callers whose report is about their own routes: failures of the earlier
    /// write are logged, not handed to them.
    async fn settle_quietly(&mut self) {
        for error in self.settle().await.errors.iter().take(10) {
            warn!(%error, "installing a route failed; retried on the next change or reconcile");
        }
    }

    /// `settle`, if the write in flight is done: a notification of `write_done` may be left
    /// over from a write that an apply has already settled, and must not make the caller wait
    /// for the write started since.
    pub async fn settle_if_done(&mut self) -> RouteApplyReport {
        match &self.in_flight {
            Some(in_flight) if in_flight.task.is_finished() => self.settle().await,
            _ => RouteApplyReport::default(),
        }
    }

    /// The writes for pending work: deletions, then additions and replacements (a key may
    /// move between shapes: its deletion must be done before its new route is written).
    fn writes_of(
        &self,
        updates: Vec<(RouteKey, TargetId, bool)>,
        deletes: Vec<(RouteKey, TargetId)>,
    ) -> (Vec<Write>, Vec<Write>) {
        let deletions = deletes
            .into_iter()
            .map(|(key, id)| Write::Delete(route(&key, self.targets.get(id))))
            .collect();
        let changes = updates
            .into_iter()
            .map(|(key, id, ours)| {
                let route = route(&key, self.targets.get(id));
                if ours {
                    Write::Replace(route)
                } else {
                    Write::Add(route)
                }
            })
            .collect();
        (deletions, changes)
    }

    async fn push(
        &mut self,
        updates: Vec<(RouteKey, TargetId, bool)>,
        deletes: Vec<(RouteKey, TargetId)>,
    ) -> RouteApplyReport {
        let mut report = RouteApplyReport::default();
        if updates.is_empty() && deletes.is_empty() {
            return report;
        }
        let started = Instant::now();
        let (deletions, changes) = self.writes_of(updates, deletes);
        self.write_batch(deletions, &mut report).await;
        let taken = self.write_batch(changes, &mut report).await;
        if !taken.is_empty() {
            self.claim_taken_keys(taken, &mut report).await;
        }
        self.after_write(started);
        report
    }

    /// After a write started at `started` is recorded: unused targets go when due, and the
    /// observer gets its duration.
    fn after_write(&mut self, started: Instant) {
        self.sweep_if_due();
        if let Some(observer) = &self.observer {
            observer(started.elapsed());
        }
    }

    /// Runs the writes (`Netlink::write_routes`, in order) and records what succeeded.
    /// Returns the additions whose key was taken.
    async fn write_batch(
        &mut self,
        writes: Vec<Write>,
        report: &mut RouteApplyReport,
    ) -> Vec<Route> {
        if writes.is_empty() {
            return Vec::new();
        }
        let results = self.netlink.write_routes(writes).await;
        self.record(results, report)
    }

    /// Records the writes that succeeded. Returns the additions whose key was taken.
    fn record(
        &mut self,
        results: Vec<(Write, Result<(), NetlinkError>)>,
        report: &mut RouteApplyReport,
    ) -> Vec<Route> {
        let mut taken = Vec::new();
        for (write, result) in results {
            match (write, result) {
                (Write::Add(route), Ok(())) => {
                    report.added += 1;
                    let key = route.key();
                    let id = self.targets.intern(route.target);
                    self.tracker.record_applied(key, id);
                }
                (Write::Replace(route), Ok(())) => {
                    report.replaced += 1;
                    let key = route.key();
                    let id = self.targets.intern(route.target);
                    self.tracker.record_applied(key, id);
                }
                (Write::Delete(route), Ok(())) => {
                    report.deleted += 1;
                    self.tracker.record_deleted(&route.key());
                }
                (Write::Add(route), Err(NetlinkError::RouteExists { .. })) => taken.push(route),
                (_, Err(error)) => report.errors.push(error),
            }
        }
        taken
    }

    /// Additions whose key holds a route already: replaced when that route is manul's (a
    /// leftover the applier had not seen), left alone and reported when it is not.
    async fn claim_taken_keys(&mut self, taken: Vec<Route>, report: &mut RouteApplyReport) {
        // Only the taken keys are kept from the dump (a node may hold a million routes).
        let mut ours: BTreeMap<RouteKey, Option<RouteTarget>> =
            taken.iter().map(|route| (route.key(), None)).collect();
        let mut keep = |route: Route| {
            if let Some(target) = ours.get_mut(&route.key()) {
                *target = Some(route.target);
            }
        };
        if let Err(error) = self
            .netlink
            .visit_manul_routes(&self.tables, &mut keep)
            .await
        {
            report.errors.push(error);
            return;
        }
        let mut replacements = Vec::new();
        for route in taken {
            match ours.get(&route.key()).and_then(Option::as_ref) {
                Some(present) if *present == route.target => {
                    let key = route.key();
                    let id = self.targets.intern(route.target);
                    self.tracker.record_applied(key, id);
                }
                Some(_) => replacements.push(Write::Replace(route)),
                None => report.errors.push(NetlinkError::RouteNotOurs {
                    destination: route.to_string(),
                    protocol: "other than manul".to_string(),
                }),
            }
        }
        self.write_batch(replacements, report).await;
    }
}

fn sorted(mut routes: Vec<Route>) -> Vec<Route> {
    routes.sort();
    routes
}

fn route(key: &RouteKey, target: &RouteTarget) -> Route {
    Route {
        table: key.table,
        destination: key.destination,
        metric: key.metric,
        target: target.clone(),
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
