//! The one-shot subcommands of `manul-agent`: `install-cni` (the DaemonSet's init container puts
//! the plugin and its conflist on the host) and `cleanup` (uninstall: removes manul's links,
//! routes, nft table and CNI files from a node). Flags and the glue between them and `install`
//! / `cleanup`. Does I/O (the filesystem, and netlink and nft for cleanup).

use std::path::{Path, PathBuf};

use crate::{
    cleanup::{CleanupReport, clean_kernel, remove_files},
    cni::config::DEFAULT_AGENT_SOCKET,
    install::{
        CniPaths, ConflistError, ConflistSettings, DEFAULT_TEMPLATE, FileOutcome, InstallError,
        render, under_host_root,
    },
    netlink::{NetlinkError, real::RealNetlink},
    nft::real::NftCommand,
};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot read the conflist template {path}: {source}")]
    Template {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find the plugin next to this executable (pass --plugin-binary): {0}")]
    OwnPath(std::io::Error),
    #[error(transparent)]
    Conflist(#[from] ConflistError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("cannot open netlink: {0}")]
    Netlink(#[from] NetlinkError),
}

/// Where the host's CNI directories are, as paths on the host.
#[derive(clap::Args, Clone, Debug)]
pub struct CniDirFlags {
    /// The host's CNI plugin directory.
    #[arg(long, env = "CNI_BIN_DIR", default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// The host's CNI config directory.
    #[arg(long, env = "CNI_CONF_DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
}

/// `manul-agent install-cni`.
#[derive(clap::Args, Clone, Debug)]
pub struct InstallCniFlags {
    /// Where the host's root filesystem is mounted in this container.
    #[arg(long, env = "MANUL_HOST_ROOT", default_value = "/host")]
    pub host_root: PathBuf,
    #[command(flatten)]
    pub dirs: CniDirFlags,
    /// A conflist template with __AGENT_SOCKET__ and __CNI_MTU__ placeholders (default: manul
    /// then portmap, built in).
    #[arg(long, env = "MANUL_CONFLIST_TEMPLATE")]
    pub conflist_template: Option<PathBuf>,
    /// The `manul` plugin binary to install (default: `manul` next to this executable).
    #[arg(long, env = "MANUL_PLUGIN_BINARY")]
    pub plugin_binary: Option<PathBuf>,
    /// The agent's socket, as the plugin on the host will reach it.
    #[arg(long, env = "MANUL_AGENT_SOCKET", default_value = DEFAULT_AGENT_SOCKET)]
    pub agent_socket: PathBuf,
    /// The pod MTU written into the conflist (0: the agent uses the host's MTU).
    #[arg(long, env = "MANUL_CNI_MTU", default_value_t = 0)]
    pub mtu: u32,
}

/// `manul-agent cleanup`.
#[derive(clap::Args, Clone, Debug)]
pub struct CleanupFlags {
    /// Where the host's root filesystem is (from a container that mounts it: /host).
    #[arg(long, env = "MANUL_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    #[command(flatten)]
    pub dirs: CniDirFlags,
    /// A routing table besides main whose proto-manul routes are removed (repeatable).
    #[arg(long = "route-table")]
    pub route_tables: Vec<u32>,
    /// Where the agent registered the route protocol name (manul.conf there is removed).
    #[arg(long, default_value = "/etc/iproute2/rt_protos.d")]
    pub rt_protos_dir: PathBuf,
}

fn paths(host_root: &Path, dirs: &CniDirFlags) -> CniPaths {
    CniPaths::new(host_root, &dirs.cni_bin_dir, &dirs.cni_conf_dir)
}

/// Installs the plugin and the conflist; returns one line per file saying what it did.
pub fn install_cni(flags: &InstallCniFlags) -> Result<Vec<String>, CommandError> {
    let template = match &flags.conflist_template {
        Some(path) => std::fs::read_to_string(path).map_err(|source| CommandError::Template {
            path: path.clone(),
            source,
        })?,
        None => DEFAULT_TEMPLATE.to_string(),
    };
    let conflist = render(
        &template,
        &ConflistSettings {
            agent_socket: &flags.agent_socket,
            mtu: flags.mtu,
        },
    )?;
    let plugin = match &flags.plugin_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(CommandError::OwnPath)?
            .with_file_name(crate::install::PLUGIN_FILE_NAME),
    };
    let paths = paths(&flags.host_root, &flags.dirs);
    let report = crate::install::install_cni(&plugin, &conflist, &paths)?;
    let describe = |outcome: FileOutcome, path: PathBuf| match outcome {
        FileOutcome::Unchanged => format!("unchanged {}", path.display()),
        _ => format!("installed {}", path.display()),
    };
    Ok(vec![
        describe(report.plugin, paths.plugin()),
        describe(report.conflist, paths.conflist()),
    ])
}

/// Cleans this network namespace and the host's files; the report says what it removed.
pub async fn cleanup(flags: &CleanupFlags) -> Result<CleanupReport, CommandError> {
    let netlink = RealNetlink::new()?;
    let mut report = CleanupReport::default();
    clean_kernel(
        &netlink,
        &NftCommand::default(),
        &flags.route_tables,
        &mut report,
    )
    .await;
    let protos = under_host_root(&flags.host_root, &flags.rt_protos_dir)
        .join(crate::daemon::ROUTE_PROTOCOL_FILE);
    remove_files(
        &paths(&flags.host_root, &flags.dirs),
        &[protos],
        &mut report,
    );
    Ok(report)
}
