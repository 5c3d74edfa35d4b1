//! `manul-agent cleanup`: what uninstalling manul from a node removes, and only that. The
//! kernel side goes through the `Netlink` and `Nft` traits (routes with proto manul in the
//! tables manul owns and the next-hop objects they named, links named `cali*`, `vxlan.calico`
//! and `vxlan-v6.calico`, the nft table `inet manul`); the files are the CNI plugin and
//! conflist `install-cni` wrote and the route protocol name the agent registered. Best effort: every step runs and every failure is
//! reported. I/O only through the traits and `install::remove_file`.

use std::path::PathBuf;

use crate::{
    install::{CniPaths, FileError, FileOutcome, remove_file},
    naming::HOST_INTERFACE_PREFIX,
    netlink::{LinkDeletion, Netlink, NetlinkError, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6},
    nft::{Nft, NftError, TABLE_FAMILY, TABLE_NAME},
};

/// One step of the cleanup that failed (the others still ran).
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("{step}: {source}")]
    Netlink { step: String, source: NetlinkError },
    #[error("removing the nft table: {0}")]
    Nft(#[from] NftError),
    #[error("removing a file: {0}")]
    File(#[from] FileError),
}

/// What a cleanup removed, and what it could not.
#[derive(Debug, Default)]
pub struct CleanupReport {
    /// Each route deleted, as `ip route` shows it.
    pub routes: Vec<String>,
    pub links: Vec<String>,
    pub nft_table: bool,
    pub files: Vec<PathBuf>,
    pub errors: Vec<CleanupError>,
}

impl CleanupReport {
    /// One line per thing removed, then one per failure.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("deleted route {r}"))
            .collect();
        lines.extend(self.links.iter().map(|link| format!("deleted link {link}")));
        if self.nft_table {
            lines.push(format!("deleted nft table {TABLE_FAMILY} {TABLE_NAME}"));
        }
        lines.extend(
            self.files
                .iter()
                .map(|file| format!("removed {}", file.display())),
        );
        lines.extend(self.errors.iter().map(|error| format!("failed: {error}")));
        lines
    }
}

/// The nft script that deletes manul's table (and nothing else).
pub fn delete_table_script() -> String {
    format!("delete table {TABLE_FAMILY} {TABLE_NAME}\n")
}

/// Removes manul's routes (main table and `tables`), links and nft table from the namespace
/// the traits act on.
pub async fn clean_kernel(
    netlink: &dyn Netlink,
    nft: &dyn Nft,
    tables: &[u32],
    report: &mut CleanupReport,
) {
    let netlink_error = |step: String| move |source| CleanupError::Netlink { step, source };
    // Routes first: those via a link go with it anyway, but blackholes and routes via an uplink
    // would stay.
    match netlink.manul_routes(tables).await {
        Ok(routes) => {
            for route in routes {
                match netlink.delete_route(&route).await {
                    Ok(()) => report.routes.push(route.to_string()),
                    Err(error) => report
                        .errors
                        .push(netlink_error(format!("deleting {route}"))(error)),
                }
            }
        }
        Err(error) => report
            .errors
            .push(netlink_error("listing manul's routes".into())(error)),
    }
    // Listing again deletes, on a real kernel, the next-hop objects of manul's that the
    // deleted routes named (netlink/real/nexthops.rs: objects no route names go after a dump).
    if let Err(error) = netlink.manul_routes(tables).await {
        report
            .errors
            .push(netlink_error("deleting manul's next-hop objects".into())(
                error,
            ));
    }
    let mut names = Vec::new();
    match netlink.links_with_prefix(HOST_INTERFACE_PREFIX).await {
        Ok(links) => names.extend(links.into_iter().map(|link| link.name)),
        Err(error) => report
            .errors
            .push(netlink_error("listing cali* links".into())(error)),
    }
    names.extend([VXLAN_DEVICE_V4.to_string(), VXLAN_DEVICE_V6.to_string()]);
    names.sort();
    names.dedup();
    for name in names {
        match netlink.delete_link(&name, None).await {
            Ok(LinkDeletion::Deleted) => report.links.push(name),
            Ok(LinkDeletion::Gone | LinkDeletion::OwnedByOther(_)) => {}
            Err(error) => report
                .errors
                .push(netlink_error(format!("deleting link {name}"))(error)),
        }
    }
    match nft.list_table().await {
        Ok(None) => {}
        Ok(Some(_)) => match nft.apply(&delete_table_script()).await {
            Ok(()) => report.nft_table = true,
            Err(error) => report.errors.push(error.into()),
        },
        Err(error) => report.errors.push(error.into()),
    }
}

/// Removes the files manul put on the host: the CNI plugin and conflist, and `extra` (the
/// route protocol name file).
pub fn remove_files(paths: &CniPaths, extra: &[PathBuf], report: &mut CleanupReport) {
    for file in [paths.conflist(), paths.plugin()]
        .into_iter()
        .chain(extra.iter().cloned())
    {
        match remove_file(&file) {
            Ok(FileOutcome::Removed) => report.files.push(file),
            Ok(_) => {}
            Err(error) => report.errors.push(error.into()),
        }
    }
}

#[cfg(test)]
#[path = "cleanup_tests.rs"]
mod tests;
