//! manul-agent: the per-node daemon. Parses flags, sets up logging, runs the daemon; or runs
//! one of the one-shot subcommands `install-cni` and `cleanup`.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use ipnet::IpNet;
use manul_agent::{
    commands::{CleanupFlags, InstallCniFlags},
    daemon::{DaemonConfig, DefaultPoolSettings, run},
    node::NodeFlags,
};
use manul_store::{DatastoreOptions, EncapsulationMode};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "manul's per-node agent: IPAM, pod wiring and kernel reconciliation"
)]
struct Flags {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// This node's name (default: the hostname).
    #[arg(long, env = "MANUL_NODE_NAME")]
    node_name: Option<String>,
    /// The gRPC Unix socket the CNI plugin and manulctl talk to.
    #[arg(
        long,
        env = "MANUL_AGENT_SOCKET",
        default_value = "/var/run/manul/agent.sock"
    )]
    socket: PathBuf,
    /// Datastore URL: embedded:///path/store.redb, etcd://host:port[,host:port...] or
    /// kubernetes (in-cluster, or KUBECONFIG / ~/.kube/config; kubernetes:///path/to/kubeconfig).
    #[arg(
        long,
        env = "MANUL_DATASTORE",
        default_value = "embedded:///var/lib/manul/store.redb"
    )]
    datastore: String,
    /// etcd: the CA certificate of the members (any etcd TLS file switches to https).
    #[arg(long, env = "ETCD_CA_CERT_FILE")]
    etcd_ca_file: Option<PathBuf>,
    /// etcd: the client certificate, for members that require one (with --etcd-key-file).
    #[arg(long, env = "ETCD_CERT_FILE")]
    etcd_cert_file: Option<PathBuf>,
    /// etcd: the client certificate's key.
    #[arg(long, env = "ETCD_KEY_FILE")]
    etcd_key_file: Option<PathBuf>,
    /// etcd: the key prefix, so several clusters can share one etcd.
    #[arg(long, env = "MANUL_ETCD_PREFIX", default_value = "/manul/v1")]
    etcd_prefix: String,
    /// kubernetes datastore: the kubeconfig file (default: the in-cluster service account).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Directory for the agent's own state.
    #[arg(long, env = "MANUL_STATE_DIR", default_value = "/var/lib/manul")]
    state_dir: PathBuf,
    /// The IPv4 pool created on first start when the datastore has none ("none" for no pool).
    #[arg(long, env = "CALICO_IPV4POOL_CIDR", default_value = "192.168.0.0/16")]
    default_ipv4_pool: String,
    /// The default IPv4 pool's block size (prefix length of its blocks; default 26).
    #[arg(long, env = "CALICO_IPV4POOL_BLOCK_SIZE")]
    default_ipv4_pool_block_size: Option<u8>,
    /// The default IPv4 pool's vxlanMode: Never, Always or CrossSubnet.
    #[arg(long, env = "CALICO_IPV4POOL_VXLAN", default_value = "Never")]
    default_ipv4_pool_vxlan: String,
    /// The default IPv4 pool's natOutgoing.
    #[arg(long, env = "CALICO_IPV4POOL_NAT_OUTGOING", default_value_t = true, action = clap::ArgAction::Set)]
    default_ipv4_pool_nat_outgoing: bool,
    /// An IPv6 pool created on start when the datastore has no IPv6 pool ("none": no pool).
    #[arg(long, env = "CALICO_IPV6POOL_CIDR", default_value = "none")]
    default_ipv6_pool: String,
    /// Seconds between periodic reconciles of the kernel state.
    #[arg(long, default_value_t = 30)]
    reconcile_interval: u64,
    /// Seconds a block of this node may stay empty before it is released, when the node keeps
    /// another block with room in the pool (0: never release).
    #[arg(long, default_value_t = 600)]
    empty_block_grace: u64,
    /// Where `ip` looks up route protocol names ("" to skip registering).
    #[arg(long, default_value = "/etc/iproute2/rt_protos.d")]
    rt_protos_dir: String,
    /// manul-bgpd's gRPC socket: the agent configures bgpd from the BGP resources and programs
    /// the routes it learns ("none": BGP off, as Calico's CALICO_NETWORKING_BACKEND=none).
    #[arg(long, env = "MANUL_BGPD_SOCKET", default_value = "none")]
    bgpd_socket: String,
    #[command(flatten)]
    node: NodeFlags,
    /// Address of the /livez, /readyz and /metrics HTTP server ("none": no server).
    #[arg(long, env = "MANUL_HEALTH_LISTEN", default_value = "127.0.0.1:9099")]
    health_listen: String,
    /// Log filter, e.g. info, debug, manul_agent=trace.
    #[arg(long, env = "MANUL_LOG", default_value = "info")]
    log_level: String,
}

#[derive(clap::Subcommand, Debug)]
enum Subcommand {
    /// Copy the `manul` CNI plugin and write its conflist into the host's CNI directories
    /// (atomically; files already right are left alone). The DaemonSet's init container.
    InstallCni(InstallCniFlags),
    /// Uninstall from this node: delete manul's links (cali*, vxlan.calico, vxlan-v6.calico),
    /// proto-manul routes, the nft table inet manul and the CNI plugin and conflist.
    Cleanup(CleanupFlags),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    match &flags.command {
        Some(Subcommand::InstallCni(install)) => {
            for line in manul_agent::commands::install_cni(install).context("install-cni")? {
                println!("{line}");
            }
            return Ok(());
        }
        Some(Subcommand::Cleanup(cleanup)) => {
            let report = manul_agent::commands::cleanup(cleanup)
                .await
                .context("cleanup")?;
            for line in report.lines() {
                println!("{line}");
            }
            if !report.errors.is_empty() {
                anyhow::bail!(
                    "cleanup: {} step(s) failed (see above)",
                    report.errors.len()
                );
            }
            return Ok(());
        }
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&flags.log_level).context("--log-level")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let node_name = match flags.node_name {
        Some(name) => name,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("cannot read the hostname; pass --node-name")?
            .trim()
            .to_string(),
    };
    let default_ipv4_pool = match flags.default_ipv4_pool.as_str() {
        "none" | "" => None,
        text => Some(
            text.parse::<IpNet>()
                .with_context(|| format!("--default-ipv4-pool {text:?} is not a CIDR"))?,
        ),
    };
    let default_ipv6_pool = match flags.default_ipv6_pool.as_str() {
        "none" | "" => None,
        text => match text.parse::<IpNet>() {
            Ok(cidr @ IpNet::V6(_)) => Some(cidr),
            _ => anyhow::bail!("--default-ipv6-pool {text:?} is not an IPv6 CIDR"),
        },
    };
    let vxlan_mode = match flags.default_ipv4_pool_vxlan.to_ascii_lowercase().as_str() {
        "never" => EncapsulationMode::Never,
        "always" => EncapsulationMode::Always,
        "crosssubnet" => EncapsulationMode::CrossSubnet,
        other => anyhow::bail!(
            "--default-ipv4-pool-vxlan {other:?}: expected Never, Always or CrossSubnet"
        ),
    };
    let health_listen = match flags.health_listen.as_str() {
        "none" | "" => None,
        text => Some(
            text.parse()
                .with_context(|| format!("--health-listen {text:?} is not ADDRESS:PORT"))?,
        ),
    };
    let config = DaemonConfig {
        node: flags.node.parse()?,
        health_listen,
        node_name,
        socket: flags.socket,
        datastore: flags.datastore,
        datastore_options: DatastoreOptions {
            deferred_durability: true,
            etcd_ca_file: flags.etcd_ca_file,
            etcd_cert_file: flags.etcd_cert_file,
            etcd_key_file: flags.etcd_key_file,
            etcd_prefix: Some(flags.etcd_prefix),
            kubeconfig: flags.kubeconfig,
        },
        state_dir: flags.state_dir,
        default_ipv4_pool,
        default_ipv4_pool_settings: DefaultPoolSettings {
            block_size: flags.default_ipv4_pool_block_size,
            vxlan_mode,
            nat_outgoing: flags.default_ipv4_pool_nat_outgoing,
        },
        default_ipv6_pool,
        reconcile_interval: Duration::from_secs(flags.reconcile_interval.max(1)),
        empty_block_grace: (flags.empty_block_grace > 0)
            .then(|| Duration::from_secs(flags.empty_block_grace)),
        rt_protos_dir: (!flags.rt_protos_dir.is_empty())
            .then(|| PathBuf::from(flags.rt_protos_dir)),
        bgpd_socket: match flags.bgpd_socket.as_str() {
            "none" | "" => None,
            path => Some(PathBuf::from(path)),
        },
    };
    run(config).await.context("manul-agent failed")
}
