//! The agent's metric families (prometheus-client), their registration under manul_* names,
//! and `MetricsSource`, the hook that brings gauges up to date before each scrape. The
//! `Endpoints` source reads the datastore and the route applier (I/O through their traits);
//! the rest is pure.

use std::sync::Arc;

use manul_store::{DatastoreExt, IpamBlock};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tracing::warn;

use crate::{dataplane::ApplyObserver, endpoint::Endpoints};

/// `kind` of manul_routes_programmed: pod, blackhole, remote.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// `state` of manul_bgp_peers (BGP FSM state names, e.g. established, idle).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// The BGP session states (RFC 4271), lower case, as `state` of manul_bgp_peers.
pub const BGP_STATES: [&str; 6] = [
    "idle",
    "connect",
    "active",
    "opensent",
    "openconfirm",
    "established",
];

/// `direction` of manul_bgp_prefixes: advertised, received.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    pub direction: String,
}

/// Every metric the agent exports. Cheap handles: clone a field to update it elsewhere.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// manul_endpoints: workload endpoints of this node.
    pub endpoints: Gauge,
    /// manul_routes_programmed{kind}: routes of manul's the kernel holds, by kind.
    pub routes_programmed: Family<KindLabel, Gauge>,
    /// manul_apply_duration_seconds: duration of each route or sysctl apply that wrote.
    pub apply_duration: Histogram,
    /// manul_bgp_peers{state}: BGP peers by session state (set by the BGP module).
    pub bgp_peers: Family<StateLabel, Gauge>,
    /// manul_bgp_prefixes{direction}: prefixes advertised and received (set by the BGP module).
    pub bgp_prefixes: Family<DirectionLabel, Gauge>,
    /// manul_ipam_blocks: blocks this node has affinity to.
    pub ipam_blocks: Gauge,
    /// manul_ipam_addresses_in_use: allocated addresses in this node's blocks.
    pub ipam_addresses_in_use: Gauge,
    /// manul_reconcile_refused_deletions_total: deletions the reconciler refused.
    pub refused_deletions: Counter,
    /// manul_lost_routes_rewritten_total: routes written again after the kernel dropped them
    /// with a device's carrier (they named next-hop objects on it).
    pub lost_routes_rewritten: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let endpoints = Gauge::default();
        let routes_programmed = Family::<KindLabel, Gauge>::default();
        // 100 µs to about 3 s.
        let apply_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
        );
        let bgp_peers = Family::<StateLabel, Gauge>::default();
        let bgp_prefixes = Family::<DirectionLabel, Gauge>::default();
        let ipam_blocks = Gauge::default();
        let ipam_addresses_in_use = Gauge::default();
        let refused_deletions = Counter::default();
        let lost_routes_rewritten = Counter::default();
        registry.register(
            "manul_endpoints",
            "Workload endpoints of this node",
            endpoints.clone(),
        );
        registry.register(
            "manul_routes_programmed",
            "Routes of manul's in the kernel, by kind (pod, blackhole, remote)",
            routes_programmed.clone(),
        );
        registry.register(
            "manul_apply_duration_seconds",
            "Duration of route and sysctl applies that wrote to the kernel",
            apply_duration.clone(),
        );
        registry.register(
            "manul_bgp_peers",
            "BGP peers by session state",
            bgp_peers.clone(),
        );
        registry.register(
            "manul_bgp_prefixes",
            "BGP prefixes by direction (advertised, received)",
            bgp_prefixes.clone(),
        );
        registry.register(
            "manul_ipam_blocks",
            "IPAM blocks this node has affinity to",
            ipam_blocks.clone(),
        );
        registry.register(
            "manul_ipam_addresses_in_use",
            "Allocated addresses in this node's IPAM blocks",
            ipam_addresses_in_use.clone(),
        );
        registry.register(
            "manul_reconcile_refused_deletions",
            "Deletions the reconciler refused because nothing justified them",
            refused_deletions.clone(),
        );
        registry.register(
            "manul_lost_routes_rewritten",
            "Routes written again after the kernel dropped them with a device's carrier",
            lost_routes_rewritten.clone(),
        );
        // Zero series, so that the families are exported before the BGP module sets them.
        for state in BGP_STATES {
            bgp_peers
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(0);
        }
        for direction in ["advertised", "received"] {
            bgp_prefixes
                .get_or_create(&DirectionLabel {
                    direction: direction.into(),
                })
                .set(0);
        }
        Metrics {
            registry,
            endpoints,
            routes_programmed,
            apply_duration,
            bgp_peers,
            bgp_prefixes,
            ipam_blocks,
            ipam_addresses_in_use,
            refused_deletions,
            lost_routes_rewritten,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// An observer for the appliers that records into manul_apply_duration_seconds.
    pub fn apply_observer(&self) -> ApplyObserver {
        let histogram = self.apply_duration.clone();
        Arc::new(move |duration| histogram.observe(duration.as_secs_f64()))
    }

    /// Sets a counter that mirrors a count kept elsewhere to `total`.
    pub fn mirror_counter(counter: &Counter, total: u64) {
        let current = counter.get();
        if total > current {
            counter.inc_by(total - current);
        }
    }
}

/// Brings gauges up to date before a scrape.
#[async_trait::async_trait]
pub trait MetricsSource: Send + Sync + 'static {
    async fn refresh(&self, metrics: &Metrics);
}

/// Saturating conversion for gauge values.
fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl MetricsSource for Endpoints {
    /// Endpoints and IPAM from the datastore, routes from the route applier, refusals from the
    /// reconciler's count. A failed read keeps the previous values and logs.
    async fn refresh(&self, metrics: &Metrics) {
        match self.list().await {
            Ok(endpoints) => {
                metrics.endpoints.set(gauge_value(endpoints.len()));
            }
            Err(error) => warn!(%error, "metrics: cannot list this node's endpoints"),
        }
        let counts = self.dataplane().routes.lock().await.applied_counts();
        for (kind, count) in [
            ("pod", counts.pod),
            ("blackhole", counts.blackhole),
            ("remote", counts.remote),
        ] {
            metrics
                .routes_programmed
                .get_or_create(&KindLabel { kind: kind.into() })
                .set(gauge_value(count));
        }
        Metrics::mirror_counter(&metrics.refused_deletions, self.refused_deletions());
        Metrics::mirror_counter(&metrics.lost_routes_rewritten, self.lost_routes_rewritten());
        match self.ipam().affine_blocks(self.node()).await {
            Ok(blocks) => {
                metrics.ipam_blocks.set(gauge_value(blocks.len()));
                let mut in_use = 0usize;
                for cidr in &blocks {
                    match self
                        .store()
                        .get_resource::<IpamBlock>(&IpamBlock::name_for(cidr))
                        .await
                    {
                        Ok(Some(block)) => {
                            in_use += block.value.allocations.iter().flatten().count();
                        }
                        Ok(None) => {}
                        Err(error) => {
                            warn!(%error, %cidr, "metrics: cannot read a block");
                            return;
                        }
                    }
                }
                metrics.ipam_addresses_in_use.set(gauge_value(in_use));
            }
            Err(error) => warn!(%error, "metrics: cannot list this node's blocks"),
        }
    }
}

/// Makes the route and sysctl appliers observe manul_apply_duration_seconds.
pub async fn observe_applies(endpoints: &Endpoints, metrics: &Metrics) {
    let dataplane = endpoints.dataplane();
    dataplane
        .routes
        .lock()
        .await
        .set_observer(metrics.apply_observer());
    dataplane.sysctls().set_observer(metrics.apply_observer());
}
