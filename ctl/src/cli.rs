//! manulctl's command line (clap): global flags with their environment variables, and the
//! commands. Definitions only, no I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "manulctl",
    version,
    about = "manul's command line: resources in the datastore (calicoctl-style) and IPAM",
    after_help = "Kinds: ippool, ipamconfig, node, bgppeer, bgpconfig, workloadendpoint \
                  (plurals and short names as in kubectl and calicoctl).\n\
                  Examples:\n  manulctl apply -f pools.yaml\n  manulctl get ippool -o wide\n  \
                  manulctl patch ippool pool-a -p '{\"spec\":{\"natOutgoing\":true}}'\n  \
                  manulctl label node node-1 rack=a"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Debug, Default, Args)]
pub struct GlobalFlags {
    /// Datastore URL, as the agent's: embedded:///path/store.redb or
    /// etcd://host:port[,host:port...] [default: embedded:///var/lib/manul/store.redb]
    #[arg(long, global = true, env = "MANUL_DATASTORE")]
    pub datastore: Option<String>,
    /// A YAML file with datastore, agentSocket, bgpdSocket, etcdPrefix, etcdCAFile,
    /// etcdCertFile, etcdKeyFile [default: /etc/manul/manulctl.yaml when it exists]
    #[arg(long, global = true, env = "MANULCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// manul-agent's gRPC socket [default: /var/run/manul/agent.sock]
    #[arg(long, global = true, env = "MANUL_AGENT_SOCKET")]
    pub agent_socket: Option<PathBuf>,
    /// manul-bgpd's gRPC socket [default: /var/run/manul/bgpd.sock]
    #[arg(long, global = true, env = "MANUL_BGPD_SOCKET")]
    pub bgpd_socket: Option<PathBuf>,
    /// etcd: the key prefix the agents use [default: /manul/v1]
    #[arg(long, global = true, env = "MANUL_ETCD_PREFIX")]
    pub etcd_prefix: Option<String>,
    /// etcd: the CA certificate of the members (any etcd TLS file switches to https)
    #[arg(long, global = true, env = "ETCD_CA_CERT_FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// etcd: the client certificate
    #[arg(long, global = true, env = "ETCD_CERT_FILE")]
    pub etcd_cert_file: Option<PathBuf>,
    /// etcd: the client certificate's key
    #[arg(long, global = true, env = "ETCD_KEY_FILE")]
    pub etcd_key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create resources from a file; fails for a name that exists
    Create(WriteArgs),
    /// Create resources or update existing ones (a lost race is retried)
    Apply(WriteArgs),
    /// Replace existing resources (fails when a resourceVersion is stale)
    Replace(WriteArgs),
    /// Delete resources named in a file or on the command line
    Delete(DeleteArgs),
    /// Show resources as a table, YAML or JSON
    Get(GetArgs),
    /// Change a resource with a JSON merge patch
    Patch(PatchArgs),
    /// Add, change or remove a label (Node)
    Label(LabelArgs),
    /// Check documents without writing anything
    Validate(FileArgs),
    /// IP address management
    #[command(subcommand)]
    Ipam(IpamCommand),
    /// This node: whether manul runs, and its BGP sessions
    #[command(subcommand)]
    Node(NodeCommand),
    /// manul-bgpd's peers and routes
    #[command(subcommand)]
    Bgp(BgpCommand),
    /// Print manulctl's version, and the cluster's when reachable
    Version,
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Clone, Debug, Args)]
pub struct FileArgs {
    /// A YAML or JSON file with one or more documents ("-" for standard input)
    #[arg(short = 'f', long = "filename")]
    pub filename: String,
}

#[derive(Clone, Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// create: skip documents whose resource exists instead of failing
    #[arg(long)]
    pub skip_exists: bool,
}

#[derive(Clone, Debug, Args)]
pub struct DeleteArgs {
    /// A file naming the resources to delete ("-" for standard input)
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "names"])]
    pub filename: Option<String>,
    /// The kind (ippool, node, bgppeer, ...)
    #[arg(required_unless_present = "filename")]
    pub kind: Option<String>,
    /// Names of the resources
    #[arg(requires = "kind")]
    pub names: Vec<String>,
    /// Succeed for resources that do not exist
    #[arg(long)]
    pub skip_not_exists: bool,
}

#[derive(Clone, Debug, Args)]
pub struct GetArgs {
    /// The kind (ippool, ipamconfig, node, bgppeer, bgpconfig, workloadendpoint)
    pub kind: String,
    /// Names; all resources of the kind when none is given
    pub names: Vec<String>,
    /// ps, wide, yaml or json
    #[arg(short = 'o', long = "output", default_value = "ps")]
    pub output: OutputFormat,
}

#[derive(Clone, Debug, Args)]
pub struct PatchArgs {
    pub kind: String,
    pub name: String,
    /// A JSON merge patch, e.g. '{"spec":{"natOutgoing":true}}'
    #[arg(short = 'p', long = "patch")]
    pub patch: String,
}

#[derive(Clone, Debug, Args)]
pub struct LabelArgs {
    pub kind: String,
    pub name: String,
    /// key=value to set, key- to remove
    pub label: String,
    /// Change the value of a label that exists
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Clone, Debug, Subcommand)]
pub enum IpamCommand {
    /// Addresses in use per pool, and optionally blocks or one address
    Show(IpamShowArgs),
    /// Check blocks, handles, affinities, nodes and endpoints against each other
    Check(IpamCheckArgs),
    /// Release addresses, whoever holds them, or the leaked addresses of a check's report
    Release(IpamReleaseArgs),
    /// Change the IPAM configuration (the singleton `default`)
    Configure(IpamConfigureArgs),
}

#[derive(Clone, Debug, Args)]
pub struct IpamReleaseArgs {
    /// An address to release (repeat for several)
    #[arg(
        long,
        required_unless_present = "from_report",
        conflicts_with = "from_report"
    )]
    pub ip: Vec<std::net::IpAddr>,
    /// The report of `ipam check -o FILE`: release its leaked addresses that are still leaked
    #[arg(long)]
    pub from_report: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct IpamCheckArgs {
    /// List every address, endpoint, block and handle with a problem
    #[arg(long)]
    pub show_problem_ips: bool,
    /// Write the report as JSON to this file (for `ipam release --from-report`)
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct IpamConfigureArgs {
    /// Only a node's own blocks may hand out its addresses (no borrowing)
    #[arg(long = "strictaffinity", action = clap::ArgAction::Set)]
    pub strict_affinity: Option<bool>,
    /// Blocks a node may claim (0: no limit)
    #[arg(long)]
    pub max_blocks_per_host: Option<u32>,
    /// Whether nodes claim new blocks when theirs are full
    #[arg(long = "autoallocateblocks", action = clap::ArgAction::Set)]
    pub auto_allocate_blocks: Option<bool>,
}

#[derive(Clone, Debug, Args)]
pub struct IpamShowArgs {
    /// Show what holds this address
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// Also list every block
    #[arg(long)]
    pub show_blocks: bool,
    /// Also show the IPAM configuration
    #[arg(long)]
    pub show_configuration: bool,
    /// List the addresses allocated from a block affine to another node
    #[arg(long)]
    pub show_borrowed: bool,
}

#[derive(Clone, Debug, Subcommand)]
pub enum NodeCommand {
    /// calicoctl's node status: the processes, then the IPv4 and IPv6 BGP peers
    Status,
}

#[derive(Clone, Debug, Subcommand)]
pub enum BgpCommand {
    /// Every BGP session of manul-bgpd with its state and counters
    Peers {
        /// table or json
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: crate::verbs::bgp::BgpOutput,
    },
    /// The best routes of manul-bgpd (Loc-RIB: learned, and originated as "local") with the
    /// peer each came from; with PREFIX only those equal to or covering it (an address is a
    /// /32 or /128), or with --exact the one equal to it, or with --longer those it covers
    Routes {
        prefix: Option<String>,
        /// Only the route of exactly PREFIX
        #[arg(long, requires = "prefix", conflicts_with = "longer")]
        exact: bool,
        /// The routes PREFIX covers (equal or more specific) instead of those covering it
        #[arg(long, requires = "prefix")]
        longer: bool,
        /// table or json
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: crate::verbs::bgp::BgpOutput,
    },
}
