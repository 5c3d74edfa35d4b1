//! The agent daemon: opens the datastore, makes sure a pool exists, registers this node (its
//! addresses autodetected, `crate::node`), registers the route protocol name, reconciles the
//! kernel at start and periodically, watches Node deletions, serves health and metrics over
//! HTTP (`crate::health`) and gRPC on a Unix socket (mode 0600: the CNI service and the raw
//! store for manulctl, `crate::raw_store`) until SIGTERM/SIGINT, or until
//! this node's Node is deleted (then it fails). Does I/O.

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use ipnet::IpNet;
use manul_ipam::{Ipam, IpamError};
use manul_proto::agent::agent_server::AgentServer;
use manul_store::{Datastore, EncapsulationMode, IpPool, StoreError};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};

use crate::{
    dataplane::SysctlOwner,
    endpoint::Endpoints,
    health::{
        HealthError, HealthState, Liveness, Metrics, MetricsSource, Readiness,
        metrics::observe_applies, serve,
    },
    netlink::{Netlink, ROUTE_PROTOCOL, ROUTE_PROTOCOL_NAME, real::RealNetlink},
    node::{NodeError, NodeSettings, NodeWatcher, register_node},
    pods::{KubePodDirectory, PodDirectory, gc::PodGc},
    server::AgentService,
    sysctl::{ProcSysctl, Sysctl, node_sysctls},
};

/// Name of the pool made on first start, as Calico names it.
pub const DEFAULT_IPV4_POOL_NAME: &str = "default-ipv4-ippool";
/// Name of the IPv6 pool made when `--default-ipv6-pool` is given and no IPv6 pool exists.
pub const DEFAULT_IPV6_POOL_NAME: &str = "default-ipv6-ippool";
/// How long a node leaving the cluster waits for bgpd to take its withdrawal.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub node_name: String,
    pub socket: PathBuf,
    pub datastore: String,
    /// TLS files and key prefix for an etcd datastore (the agent always defers the embedded
    /// store's durability to its per-request sync, whatever this says).
    pub datastore_options: manul_store::DatastoreOptions,
    pub state_dir: PathBuf,
    /// None: create no pool.
    pub default_ipv4_pool: Option<IpNet>,
    /// Block size, VXLAN mode and natOutgoing of that pool (CALICO_IPV4POOL_* as in Calico).
    pub default_ipv4_pool_settings: DefaultPoolSettings,
    /// None: create no IPv6 pool.
    pub default_ipv6_pool: Option<IpNet>,
    pub reconcile_interval: Duration,
    /// This node's blocks that stay empty this long are released (None: never).
    pub empty_block_grace: Option<Duration>,
    /// Where the route protocol's name is registered (None: skip).
    pub rt_protos_dir: Option<PathBuf>,
    /// manul-bgpd's socket: the agent drives it and programs what it learns (None: no BGP).
    pub bgpd_socket: Option<PathBuf>,
    /// What goes into this node's Node (addresses to detect, AS, labels).
    pub node: NodeSettings,
    /// Address of the health and metrics HTTP server (None: no server).
    pub health_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error("ipam: {0}")]
    Ipam(#[from] IpamError),
    #[error("kernel: {0}")]
    Netlink(#[from] crate::netlink::NetlinkError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("node: {0}")]
    Node(#[from] NodeError),
    #[error(transparent)]
    Health(#[from] HealthError),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// How long an address stays allocated to a pod that is gone before the collector releases
/// it (Calico's kube-controllers default, leakGracePeriod, is 15 minutes).
const POD_GC_GRACE: Duration = Duration::from_secs(15 * 60);
/// How often the collector looks.
const POD_GC_INTERVAL: Duration = Duration::from_secs(60);

/// The pod directory of the Kubernetes datastore (pool annotations, the IPAM collector);
/// None for the other datastores.
fn kubernetes_pods(config: &DaemonConfig) -> Result<Option<Arc<dyn PodDirectory>>, DaemonError> {
    let url = config.datastore.as_str();
    if url != "kubernetes" && !url.starts_with("kubernetes://") {
        return Ok(None);
    }
    let kubeconfig = config.datastore_options.kubeconfig.clone();
    let source = manul_store::kubernetes::ClientSource::from_url(url, kubeconfig)?;
    Ok(Some(Arc::new(KubePodDirectory::new(source))))
}

/// Releases the addresses of pods that are gone, every `POD_GC_INTERVAL`; runs until aborted.
async fn collect_pod_addresses(mut gc: PodGc) {
    loop {
        tokio::time::sleep(POD_GC_INTERVAL).await;
        if let Err(error) = gc.run_once(std::time::SystemTime::now()).await {
            tracing::warn!(%error, "the IPAM garbage collector failed; trying again");
        }
    }
}

/// Runs the agent until a termination signal arrives.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&config.state_dir).map_err(file_error(&config.state_dir))?;
    // The agent syncs the store before it answers each request: one disk flush per request.
    let options = manul_store::DatastoreOptions {
        deferred_durability: true,
        ..config.datastore_options.clone()
    };
    let store = manul_store::open_datastore_with_options(&config.datastore, &options)?;
    ensure_default_pool(
        &store,
        config.default_ipv4_pool,
        &config.default_ipv4_pool_settings,
    )
    .await?;
    ensure_default_ipv6_pool(&store, config.default_ipv6_pool).await?;
    let netlink: Arc<dyn Netlink> = Arc::new(RealNetlink::new()?);
    register_node(&store, netlink.as_ref(), &config.node_name, &config.node).await?;
    store.sync().await?;
    if let Some(dir) = &config.rt_protos_dir {
        register_route_protocol(dir);
    }
    let sysctl: Arc<dyn Sysctl> = Arc::new(ProcSysctl::default());
    let mut endpoints = Endpoints::new(
        config.node_name.clone(),
        store.clone(),
        netlink.clone(),
        sysctl,
    )
    .with_empty_block_grace(config.empty_block_grace);
    let pod_gc = match kubernetes_pods(&config)? {
        Some(pods) => {
            endpoints = endpoints.with_pod_directory(pods.clone());
            let gc = PodGc::new(&config.node_name, store.clone(), pods, POD_GC_GRACE);
            Some(tokio::spawn(collect_pod_addresses(gc)))
        }
        None => None,
    };
    let endpoints = Arc::new(endpoints);
    let (readiness, liveness, metrics) =
        (Readiness::new(), Liveness::new(), Arc::new(Metrics::new()));
    observe_applies(&endpoints, &metrics).await;
    let raw_store = crate::raw_store::RawStoreService::server(
        store.clone(),
        crate::raw_store::AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            node_name: config.node_name.clone(),
            datastore: config.datastore.clone(),
        },
    );
    let node_watcher = NodeWatcher::new(store, &config.node_name, readiness.clone());
    let (node_lost_tx, node_lost) = tokio::sync::oneshot::channel();
    let node_watch = tokio::spawn(async move {
        let _ = node_lost_tx.send(node_watcher.run().await);
    });
    liveness.watch("node-watch", node_watch.abort_handle());
    let (bgp_readiness, bgp_metrics) = (readiness.clone(), metrics.clone());
    let health = match config.health_listen {
        Some(address) => {
            let listener = crate::health::server::bind(address).await?;
            info!(%address, "serving /livez, /readyz and /metrics");
            let state = HealthState {
                readiness,
                liveness: liveness.clone(),
                metrics,
                source: Some(endpoints.clone() as Arc<dyn MetricsSource>),
            };
            Some(tokio::spawn(serve_health(listener, state)))
        }
        None => None,
    };

    let bgp = match &config.bgpd_socket {
        Some(socket) => {
            info!(socket = %socket.display(), "driving manul-bgpd");
            let bgpd = Arc::new(crate::bgp::bgpd_api::RealBgpd::new(socket));
            let driver = crate::bgp::start(endpoints.clone(), netlink.clone(), bgpd).await;
            bgp_readiness.require("bgp", "manul-bgpd has not answered yet");
            let (status, readiness, metrics) = (
                driver.status.clone(),
                bgp_readiness.clone(),
                bgp_metrics.clone(),
            );
            let publisher = tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_secs(1));
                loop {
                    ticker.tick().await;
                    status.publish(&readiness, &metrics);
                }
            });
            Some((driver, publisher))
        }
        None => None,
    };

    // NAT outgoing (manul's own nft table) and VXLAN (the tunnel endpoint, vxlan.calico and
    // the routes through it), from the pools.
    let pool_dataplane = crate::pool_dataplane::start(
        endpoints.clone(),
        Arc::new(crate::nft::real::NftCommand::default()),
        netlink.clone(),
        config.bgpd_socket.is_some(),
    )
    .await;

    // A routed node forwards: pods reach each other and the world through it (IPv6 too when
    // an IPv6 pool exists; the reconciler keeps this current).
    let ipv6_in_use = endpoints.ipv6_in_use().await?;
    {
        let mut sysctls = endpoints.dataplane().sysctls();
        sysctls.set(SysctlOwner::Node, node_sysctls(ipv6_in_use));
        for error in sysctls.apply().errors {
            warn!(%error, "cannot enable forwarding");
        }
    }
    match endpoints.reconcile().await {
        Ok(report) => info!(?report, "initial reconcile done"),
        Err(error) => warn!(%error, "initial reconcile failed; retrying periodically"),
    }
    let reconciler = {
        let (endpoints, rewriting) = (endpoints.clone(), endpoints.clone());
        tokio::spawn(reconcile_periodically(
            move || {
                let endpoints = endpoints.clone();
                async move { endpoints.reconcile().await.map(drop) }
            },
            move || {
                let endpoints = rewriting.clone();
                async move { endpoints.rewrite_lost_routes().await.map(drop) }
            },
            config.reconcile_interval,
            netlink.lost_routes(),
        ))
    };
    liveness.watch("reconciler", reconciler.abort_handle());
    let lost = Arc::new(std::sync::Mutex::new(None));
    let shutdown = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                () = shutdown_signal() => {}
                Ok(error) = node_lost => {
                    *lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                }
            }
        }
    };

    let listener = bind_socket(&config.socket)?;
    info!(socket = %config.socket.display(), node = %config.node_name, "manul-agent serving");
    let served = tonic::transport::Server::builder()
        .add_service(AgentServer::new(AgentService::new(endpoints)))
        .add_service(raw_store)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    reconciler.abort();
    let lost = lost
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some((driver, publisher)) = bgp {
        publisher.abort();
        if matches!(lost, Some(NodeError::OwnNodeDeleted { .. })) {
            // Leaving the cluster: the routes to this node's pods go everywhere now.
            match tokio::time::timeout(LEAVE_TIMEOUT, driver.leave_cluster()).await {
                Ok(Ok(report)) => info!(?report, "withdrew this node from BGP"),
                Ok(Err(error)) => warn!(%error, "cannot withdraw this node from BGP"),
                Err(_) => warn!("manul-bgpd did not take the withdrawal within {LEAVE_TIMEOUT:?}"),
            }
        }
    }
    drop(pool_dataplane);
    if let Some(pod_gc) = pod_gc {
        pod_gc.abort();
    }
    node_watch.abort();
    if let Some(health) = health {
        health.abort();
    }
    let _ = std::fs::remove_file(&config.socket);
    info!("manul-agent stopped");
    match lost {
        Some(error) => Err(error.into()),
        None => Ok(served?),
    }
}

async fn serve_health(listener: tokio::net::TcpListener, state: HealthState) {
    if let Err(error) = serve(listener, state).await {
        warn!(%error, "the health server stopped");
    }
}

/// Reconciles every `interval`, and rewrites the routes the kernel removed on its own at once
/// when told (`Netlink::lost_routes`).
async fn reconcile_periodically<Reconcile, Rewrite, Pass, RewritePass, Error>(
    mut reconcile: Reconcile,
    mut rewrite_lost_routes: Rewrite,
    interval: Duration,
    lost_routes: Option<Arc<tokio::sync::Notify>>,
) where
    Reconcile: FnMut() -> Pass,
    Pass: Future<Output = Result<(), Error>>,
    Rewrite: FnMut() -> RewritePass,
    RewritePass: Future<Output = Result<(), Error>>,
    Error: std::fmt::Display,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    let lost = async || match &lost_routes {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(error) = reconcile().await {
                    warn!(%error, "reconcile failed");
                }
            }
            () = lost() => {
                info!("rewriting the routes the kernel removed");
                if let Err(error) = rewrite_lost_routes().await {
                    warn!(%error, "rewriting the routes the kernel removed failed; the next reconcile retries");
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("termination signal received");
}

/// Binds the socket with mode 0600, replacing a stale socket file of an earlier run.
fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(file_error(parent))?;
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(file_error(path))?;
    }
    let listener = UnixListener::bind(path).map_err(file_error(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(file_error(path))?;
    Ok(listener)
}

/// Creates the default IPv4 pool when the store has no pool at all.
/// The settings of the default IPv4 pool besides its CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultPoolSettings {
    /// None: the pool's default (26).
    pub block_size: Option<u8>,
    pub vxlan_mode: EncapsulationMode,
    pub nat_outgoing: bool,
}

impl Default for DefaultPoolSettings {
    /// As Calico's defaults: /26 blocks, no encapsulation, natOutgoing on.
    fn default() -> DefaultPoolSettings {
        DefaultPoolSettings {
            block_size: None,
            vxlan_mode: EncapsulationMode::Never,
            nat_outgoing: true,
        }
    }
}

pub async fn ensure_default_pool(
    store: &Arc<dyn Datastore>,
    cidr: Option<IpNet>,
    settings: &DefaultPoolSettings,
) -> Result<(), DaemonError> {
    let Some(cidr) = cidr else { return Ok(()) };
    let ipam = Ipam::new(store.clone());
    if !ipam.pools().await?.is_empty() {
        return Ok(());
    }
    let defaults = IpPool::new(DEFAULT_IPV4_POOL_NAME, cidr);
    let pool = IpPool {
        nat_outgoing: settings.nat_outgoing,
        vxlan_mode: settings.vxlan_mode,
        block_size: settings.block_size.unwrap_or(defaults.block_size),
        ..defaults
    };
    match ipam.create_pool(&pool).await {
        Ok(()) => {
            info!(%cidr, "created the default IPv4 pool");
            Ok(())
        }
        // Another agent made one first (its pool wins the name or the range).
        Err(error) => {
            if ipam.pools().await?.is_empty() {
                Err(error.into())
            } else {
                info!(%cidr, "another agent created a pool first");
                Ok(())
            }
        }
    }
}

/// Creates the default IPv6 pool when one is asked for and the store has no IPv6 pool.
pub async fn ensure_default_ipv6_pool(
    store: &Arc<dyn Datastore>,
    cidr: Option<IpNet>,
) -> Result<(), DaemonError> {
    let Some(cidr) = cidr else { return Ok(()) };
    let ipam = Ipam::new(store.clone());
    let has_ipv6 = |pools: &[IpPool]| pools.iter().any(|pool| pool.cidr.addr().is_ipv6());
    if has_ipv6(&ipam.pools().await?) {
        return Ok(());
    }
    match ipam
        .create_pool(&IpPool::new(DEFAULT_IPV6_POOL_NAME, cidr))
        .await
    {
        Ok(()) => {
            info!(%cidr, "created the default IPv6 pool");
            Ok(())
        }
        Err(error) if has_ipv6(&ipam.pools().await?) => {
            info!(%error, "another agent created an IPv6 pool first");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// The file in iproute2's rt_protos.d that names manul's route protocol.
pub const ROUTE_PROTOCOL_FILE: &str = "manul.conf";

/// Writes "<number> manul" to <dir>/manul.conf so that `ip route` prints "proto manul".
fn register_route_protocol(dir: &Path) {
    let path = dir.join(ROUTE_PROTOCOL_FILE);
    let content = format!("{ROUTE_PROTOCOL}\t{ROUTE_PROTOCOL_NAME}\n");
    if std::fs::read_to_string(&path).is_ok_and(|current| current == content) {
        return;
    }
    if let Err(error) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, content)) {
        warn!(path = %path.display(), %error, "cannot register the route protocol name; routes show as proto 109");
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::PermissionsExt, sync::atomic::Ordering};

    use manul_store::embedded::EmbeddedStore;

    use super::*;

    fn store(dir: &Path) -> Arc<dyn Datastore> {
        Arc::new(EmbeddedStore::open(&dir.join("store.redb")).unwrap())
    }

    #[tokio::test]
    async fn the_default_pool_takes_block_size_vxlan_mode_and_nat_outgoing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let settings = DefaultPoolSettings {
            block_size: Some(28),
            vxlan_mode: EncapsulationMode::CrossSubnet,
            nat_outgoing: false,
        };
        ensure_default_pool(&store, Some("10.42.0.0/16".parse().unwrap()), &settings)
            .await
            .unwrap();
        let pools = Ipam::new(store).pools().await.unwrap();
        assert_eq!(
            (
                pools[0].block_size,
                pools[0].vxlan_mode,
                pools[0].nat_outgoing
            ),
            (28, EncapsulationMode::CrossSubnet, false)
        );
    }

    #[tokio::test]
    async fn the_default_pool_is_made_once_and_only_in_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let cidr: IpNet = "10.42.0.0/16".parse().unwrap();
        ensure_default_pool(&store, Some(cidr), &DefaultPoolSettings::default())
            .await
            .unwrap();
        ensure_default_pool(
            &store,
            Some("10.43.0.0/16".parse().unwrap()),
            &DefaultPoolSettings::default(),
        )
        .await
        .unwrap();
        let pools = Ipam::new(store.clone()).pools().await.unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!(
            (pools[0].name.as_str(), pools[0].cidr, pools[0].block_size),
            (DEFAULT_IPV4_POOL_NAME, cidr, 26)
        );

        let other = tempfile::tempdir().unwrap();
        let other_store = super::tests::store(other.path());
        Ipam::new(other_store.clone())
            .create_pool(&IpPool::new("mine", "10.50.0.0/16".parse().unwrap()))
            .await
            .unwrap();
        ensure_default_pool(&other_store, Some(cidr), &DefaultPoolSettings::default())
            .await
            .unwrap();
        let pools = Ipam::new(other_store).pools().await.unwrap();
        assert_eq!(
            pools
                .iter()
                .map(|pool| pool.name.as_str())
                .collect::<Vec<_>>(),
            vec!["mine"]
        );
    }

    #[tokio::test]
    async fn a_notice_of_lost_routes_rewrites_them_at_once() {
        let passes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lost = Arc::new(tokio::sync::Notify::new());
        let counted = passes.clone();
        let reconciler = tokio::spawn(reconcile_periodically(
            || std::future::ready(Ok::<(), String>(())),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Ok::<(), String>(()))
            },
            Duration::from_secs(3600),
            Some(lost.clone()),
        ));
        lost.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while passes.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no rewrite within 10 s of the notice"
            );
            tokio::task::yield_now().await;
        }
        reconciler.abort();
    }

    #[tokio::test]
    async fn the_socket_is_private_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/agent.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"stale").unwrap();
        let _listener = bind_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_route_protocol_name_is_registered_once() {
        let dir = tempfile::tempdir().unwrap();
        register_route_protocol(dir.path());
        register_route_protocol(dir.path());
        let content = std::fs::read_to_string(dir.path().join("manul.conf")).unwrap();
        assert_eq!(content, "109\tmanul\n");
    }
}
