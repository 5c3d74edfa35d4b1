//! The learned-routes task: follows manul-bgpd's WatchBestPaths stream and keeps the route
//! applier's `RouteSource::Bgp` equal to the routes for bgpd's best paths. Does I/O (the
//! stream, next-hop lookups, the applier).
//!
//! Restarts lose no route:
//! - The agent restarts, bgpd keeps running: the kernel keeps the routes, the applier holds
//!   them (`set_hold_gateway_routes`) until the stream's snapshot is in and bgpd's peers are
//!   settled; the snapshot then replaces the set at once, so unchanged routes are not touched.
//! - bgpd restarts (or the stream breaks): the routes of the old stream become stale and stay;
//!   the new stream's paths replace them as they come; what is still stale when every peer has
//!   been Established for `SETTLE` (or the graceful-restart time ran out) is removed.
//!
//! ```text
//!   bgpd WatchBestPaths ──batches──> best paths ─┐
//!   speaker task ──(originated, pools)──────────┼─> remote_routes() ─> RouteApplier (Bgp)
//!   kernel next-hop lookups (every RESOLVE) ─────┘
//! ```
//!
//! The applier writes a batch's routes in the background while the next batch is read and
//! folded in (`RouteApplier::start_apply_keys`); the loop records each write when the applier
//! says it is done.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use ipnet::IpNet;
use manul_proto::bgpd as proto;
use manul_store::IpPool;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use super::{
    bgpd_api::BgpdApi,
    remote_routes::{
        BestPaths, LEARNED_METRIC, NextHopLookups, PathHops, SharedNextHops, SharedPathHops,
        next_hops_of, remote_route, remote_routes,
    },
    status::BgpStatus,
};
use crate::{
    dataplane::RouteSource,
    endpoint::Endpoints,
    netlink::{MAIN_TABLE, Netlink, Route, RouteKey, RouteTarget},
};

/// How long every peer must have been Established before stale routes go.
const SETTLE: Duration = Duration::from_secs(5);
/// How often next hops are looked up again (the path to another subnet may change).
const RESOLVE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(1);
/// The first wait before asking for the stream again; it doubles up to `RETRY`. At start-up
/// bgpd refuses the stream until the speaker task has given it its global settings, a few
/// milliseconds later: a whole `RETRY` there delayed every new node's routes by a second.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// What the speaker task tells this one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteContext {
    pub originated: BTreeSet<IpNet>,
    pub pools: Vec<IpPool>,
    /// How long stale routes may stay without a bgpd (the graceful-restart time).
    pub restart_time: Duration,
}

pub struct LearnedRoutes {
    pub bgpd: Arc<dyn BgpdApi>,
    pub netlink: Arc<dyn Netlink>,
    /// Owns the route applier.
    pub endpoints: Arc<Endpoints>,
    pub context: watch::Receiver<RouteContext>,
    pub status: Arc<BgpStatus>,
    /// Poked when the speaker task has given bgpd its global settings: a stream bgpd refused
    /// for want of them is asked for again at once instead of after `RETRY`.
    pub bgpd_configured: Arc<Notify>,
}

struct State {
    /// Best paths of the current stream (complete once its snapshot is done).
    best: BestPaths,
    /// Paths of an earlier stream not seen again yet; installed until purged.
    stale: BestPaths,
    /// When stale routes go at the latest.
    stale_deadline: Option<Instant>,
    /// Kernel routes of an earlier agent run are still held.
    holding: bool,
    lookups: NextHopLookups,
    /// The next-hop lists of `best`, `stale` and the applier's Bgp routes, each held once.
    shared: SharedNextHops,
}

impl LearnedRoutes {
    /// Runs until aborted. The caller has set the route applier to hold gateway routes.
    pub async fn run(mut self) {
        let started = Instant::now();
        let mut state = State {
            best: BestPaths::new(),
            stale: BestPaths::new(),
            stale_deadline: None,
            holding: true,
            lookups: NextHopLookups::new(),
            shared: SharedNextHops::default(),
        };
        let mut failures = 0;
        loop {
            match self.bgpd.watch_best_paths().await {
                Ok(stream) => {
                    failures = 0;
                    self.follow(stream, &mut state, started).await;
                    self.status.set_stream_up(false);
                }
                Err(error) => {
                    self.status.set_stream_up(false);
                    failures += 1;
                    if failures == 1 {
                        debug!(%error, "manul-bgpd does not stream best paths yet; retrying");
                    } else {
                        warn!(%error, "cannot follow manul-bgpd's best paths; retrying");
                    }
                }
            }
            // The paths of the stream that ended stay, stale, for the restart time.
            let restart_time = self.context.borrow().restart_time;
            let current = std::mem::take(&mut state.best);
            state.stale.extend(current);
            if state.stale_deadline.is_none() {
                state.stale_deadline = Some(Instant::now() + restart_time);
            }
            if state.holding && started.elapsed() > restart_time {
                self.release_hold(&mut state).await;
            }
            if state
                .stale_deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                info!(
                    routes = state.stale.len(),
                    "manul-bgpd stayed away longer than the restart time: removing its routes"
                );
                state.stale.clear();
                state.stale_deadline = None;
                self.install_all(&mut state).await;
            }
            // Soon after a refusal (bgpd had no global settings yet), at once when the
            // speaker task has just configured it.
            tokio::select! {
                _ = tokio::time::sleep(retry_delay(failures)) => {}
                _ = self.bgpd_configured.notified() => {}
            }
        }
    }

    async fn follow(
        &mut self,
        mut stream: super::bgpd_api::BestPathStream,
        state: &mut State,
        started: Instant,
    ) {
        // The snapshot's batches are installed as they come (the best paths of the stream
        // before are stale by now: each prefix the snapshot names replaces its stale route),
        // so a table of a million routes starts reaching the kernel at once.
        let mut in_snapshot = true;
        let mut context_changed_in_snapshot = false;
        let mut resolve = tokio::time::interval(RESOLVE);
        let mut settle_check = tokio::time::interval(RETRY);
        let write_done = self.endpoints.dataplane().routes.lock().await.write_done();
        loop {
            tokio::select! {
                () = write_done.notified() => self.settle_writes().await,
                item = stream.next() => {
                    let Some(Ok(batch)) = item else {
                        if let Some(Err(error)) = item {
                            warn!(%error, "manul-bgpd's best-path stream broke");
                        }
                        return;
                    };
                    self.apply_changes(state, &batch).await;
                    if in_snapshot && batch.snapshot_done {
                        in_snapshot = false;
                        self.status.set_stream_up(true);
                        info!(paths = state.best.len(), "manul-bgpd's best paths are in");
                        if context_changed_in_snapshot {
                            self.install_all(state).await;
                        }
                    }
                }
                changed = self.context.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if in_snapshot {
                        context_changed_in_snapshot = true;
                    } else {
                        self.install_all(state).await;
                    }
                }
                _ = resolve.tick() => {
                    if !in_snapshot && self.refresh_lookups(state).await {
                        self.install_all(state).await;
                    }
                }
                _ = settle_check.tick() => {
                    let restart_time = self.context.borrow().restart_time;
                    let expired = state
                        .stale_deadline
                        .map_or(started.elapsed() > restart_time, |deadline| {
                            Instant::now() >= deadline
                        });
                    if !in_snapshot
                        && (state.holding || !state.stale.is_empty())
                        && (expired || self.settled().await)
                    {
                        let had_stale = !state.stale.is_empty();
                        state.stale.clear();
                        state.stale_deadline = None;
                        if state.holding {
                            self.release_hold(state).await;
                        }
                        // Without stale paths the applier has exactly the best paths already.
                        if had_stale {
                            self.install_all(state).await;
                        }
                    }
                }
            }
        }
    }

    /// Every peer bgpd has has been Established for `SETTLE`, and there is at least one.
    async fn settled(&self) -> bool {
        match self.bgpd.list_peers().await {
            Ok(peers) => {
                !peers.is_empty()
                    && peers.iter().all(|peer| {
                        peer.state == "Established" && peer.uptime_seconds >= SETTLE.as_secs()
                    })
            }
            Err(_) => false,
        }
    }

    async fn release_hold(&self, state: &mut State) {
        state.holding = false;
        info!("BGP routes of the previous run that bgpd no longer has are removed now");
        let mut routes = self.endpoints.dataplane().routes.lock().await;
        routes.set_hold_gateway_routes(false);
        let report = routes.apply().await;
        for error in &report.errors {
            warn!(%error, "removing a stale BGP route failed; the reconciler retries");
        }
    }

    /// Looks up every next hop again; true when an answer changed.
    async fn refresh_lookups(&self, state: &mut State) -> bool {
        let mut changed = false;
        let next_hops: BTreeSet<IpAddr> = next_hops_of(&state.best)
            .into_iter()
            .chain(next_hops_of(&state.stale))
            .collect();
        state
            .lookups
            .retain(|address, _| next_hops.contains(address));
        for next_hop in next_hops {
            let answer = match self.netlink.route_lookup(next_hop).await {
                Ok(answer) => answer,
                Err(error) => {
                    warn!(%next_hop, %error, "cannot look up a BGP next hop");
                    continue;
                }
            };
            if state.lookups.get(&next_hop) != Some(&answer) {
                state.lookups.insert(next_hop, answer);
                changed = true;
            }
        }
        changed
    }

    /// Looks up the next hops not looked up yet.
    async fn lookup_new_hops(
        &self,
        lookups: &mut NextHopLookups,
        next_hops: impl IntoIterator<Item = IpAddr>,
    ) {
        for next_hop in next_hops {
            if lookups.contains_key(&next_hop) {
                continue;
            }
            match self.netlink.route_lookup(next_hop).await {
                Ok(answer) => {
                    lookups.insert(next_hop, answer);
                }
                Err(error) => warn!(%next_hop, %error, "cannot look up a BGP next hop"),
            }
        }
    }

    /// Recomputes every route (best paths over stale ones) and replaces the applier's set.
    async fn install_all(&self, state: &mut State) {
        // Without stale paths (the common case) the best paths are used as they are: a copy of
        // a million paths is what this avoids.
        let merged;
        let effective = if state.stale.is_empty() {
            &state.best
        } else {
            let mut paths = state.stale.clone();
            paths.extend(state.best.clone());
            merged = paths;
            &merged
        };
        let next_hops = next_hops_of(effective);
        self.lookup_new_hops(&mut state.lookups, next_hops).await;
        let context = self.context.borrow().clone();
        let (routes, problems) = remote_routes(
            effective,
            &context.originated,
            &context.pools,
            &state.lookups,
            &mut state.shared.routes,
        );
        for problem in problems.iter().take(10) {
            warn!(%problem, "a learned route cannot be installed");
        }
        self.status.set_routes(routes.len());
        let mut applier = self.endpoints.dataplane().routes.lock().await;
        applier.set_source(RouteSource::Bgp, routes);
        let report = applier.apply().await;
        drop(applier);
        state.shared.routes.drop_unused();
        state.shared.paths.drop_unused();
        for error in report.errors.iter().take(10) {
            warn!(%error, "installing a learned route failed; retried on the next change or reconcile");
        }
    }

    /// Applies one batch of changes after the snapshot: only the prefixes it names.
    async fn apply_changes(&self, state: &mut State, batch: &proto::BestPathBatch) {
        let mut touched = Vec::with_capacity(batch.paths.len());
        let changed = apply_batch(&mut state.best, batch, &mut state.shared.paths);
        let new_hops: BTreeSet<IpAddr> = changed
            .iter()
            .flat_map(|change| {
                change
                    .next_hops
                    .iter()
                    .flat_map(|hops| hops.iter().copied())
            })
            .collect();
        self.lookup_new_hops(&mut state.lookups, new_hops).await;
        let context = self.context.borrow().clone();
        let mut applier = self.endpoints.dataplane().routes.lock().await;
        for Change {
            prefix,
            next_hops,
            had_path,
        } in changed
        {
            let had_stale_path = !state.stale.is_empty() && state.stale.remove(&prefix).is_some();
            let route = match next_hops.as_deref() {
                None => None,
                Some(next_hops) => match remote_route(
                    prefix,
                    next_hops,
                    &context.originated,
                    &context.pools,
                    &state.lookups,
                    &mut state.shared.routes,
                ) {
                    Ok(route) => route,
                    Err(problem) => {
                        warn!(%problem, "a learned route cannot be installed");
                        None
                    }
                },
            };
            let new_key = route.as_ref().map(Route::key);
            // Whatever else the applier had at this prefix goes (the metric may change the key).
            // The applier's BGP routes all come from best or stale paths: a prefix that had
            // neither has none, and the two lookups are saved (the common case of a snapshot).
            let metrics = if had_path || had_stale_path {
                &[
                    Route::main(prefix, RouteTarget::Blackhole).metric,
                    LEARNED_METRIC,
                ][..]
            } else {
                &[][..]
            };
            for &metric in metrics {
                let old = RouteKey {
                    table: MAIN_TABLE,
                    destination: prefix.trunc(),
                    metric,
                };
                if Some(old) != new_key && applier.wants(RouteSource::Bgp, &old) {
                    applier.remove(RouteSource::Bgp, old);
                    touched.push(old);
                }
            }
            if let Some(route) = route {
                touched.push(route.key());
                applier.upsert(RouteSource::Bgp, route);
            }
        }
        self.status.set_routes(applier.source_len(RouteSource::Bgp));
        // The kernel takes this batch while the next one is read and folded in.
        applier.start_apply_keys(&touched).await;
    }

    /// Records the write `apply_changes` left running once it is done.
    async fn settle_writes(&self) {
        let mut routes = self.endpoints.dataplane().routes.lock().await;
        let report = routes.settle_if_done().await;
        for error in report.errors.iter().take(10) {
            warn!(%error, "installing a learned route failed; retried on the next change or reconcile");
        }
    }
}

/// The wait before asking for the stream again after `failures` refusals in a row (none: the
/// stream ended): `FIRST_RETRY`, doubling, at most `RETRY`.
fn retry_delay(failures: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(RETRY)
}

/// One prefix of a batch, as `apply_batch` folded it in.
struct Change {
    prefix: IpNet,
    /// The new next hops; None: withdrawn.
    next_hops: Option<PathHops>,
    /// The prefix had a best path before.
    had_path: bool,
}

/// Folds a batch of best-path changes into `best`: each prefix with its new next hops, in the
/// batch's order, so that the caller needs neither a second parse nor a lookup in a million
/// paths. Paths whose prefix does not parse are left out. The next hops of the batch's shared
/// paths are parsed once each, for every path that names them.
fn apply_batch(
    best: &mut BestPaths,
    batch: &proto::BestPathBatch,
    shared: &mut SharedPathHops,
) -> Vec<Change> {
    let mut next_hops = Vec::new();
    let mut parse_hops = |path: &proto::BestPath, shared: &mut SharedPathHops| {
        next_hops.clear();
        next_hops.extend(
            path.next_hops
                .iter()
                .filter_map(|hop| hop.parse::<IpAddr>().ok()),
        );
        shared.share(&next_hops)
    };
    let shared_hops: Vec<PathHops> = batch
        .shared
        .iter()
        .map(|path| parse_hops(path, shared))
        .collect();
    let mut changed = Vec::with_capacity(batch.paths.len());
    for path in &batch.paths {
        let Ok(prefix) = path.prefix.parse::<IpNet>() else {
            continue;
        };
        if path.withdrawn {
            let had_path = best.remove(&prefix).is_some();
            changed.push(Change {
                prefix,
                next_hops: None,
                had_path,
            });
        } else {
            let hops = match path.shared {
                0 => parse_hops(path, shared),
                // An index past the batch's shared paths: no next hops, as a path without.
                index => match shared_hops.get(index as usize - 1) {
                    Some(hops) => hops.clone(),
                    None => shared.share(&[]),
                },
            };
            let had_path = best.insert(prefix, hops.clone());
            changed.push(Change {
                prefix,
                next_hops: Some(hops),
                had_path,
            });
        }
    }
    changed
}
