//! Installing the CNI plugin on a node (`manul-agent install-cni`, run by the DaemonSet's init
//! container): the conflist rendered from a template (`conflist`, pure) and the files written
//! into the host's CNI directories atomically and only when they differ (`files`, does I/O).
//! Also the host paths that `manul-agent cleanup` removes again.

pub mod conflist;
pub mod files;

use std::path::{Path, PathBuf};

pub use conflist::{ConflistError, ConflistSettings, DEFAULT_TEMPLATE, render};
pub use files::{FileError, FileOutcome, install_file, remove_file};

/// The file name of the conflist manul installs (sorted before most others, as Calico's 10-).
pub const CONFLIST_FILE_NAME: &str = "10-manul.conflist";
/// The file name of the CNI plugin binary.
pub const PLUGIN_FILE_NAME: &str = "manul";
/// Where CNI runtimes look for plugins and configs on the host.
pub const DEFAULT_CNI_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// `dir` (a path on the host, absolute or not) seen from a container that mounts the host's
/// root at `host_root`: `/host` + `/opt/cni/bin` is `/host/opt/cni/bin`.
pub fn under_host_root(host_root: &Path, dir: &Path) -> PathBuf {
    let relative: PathBuf = dir
        .components()
        .filter(|component| matches!(component, std::path::Component::Normal(_)))
        .collect();
    host_root.join(relative)
}

/// The host's CNI directories as this process sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniPaths {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
}

impl CniPaths {
    pub fn new(host_root: &Path, cni_bin_dir: &Path, cni_conf_dir: &Path) -> CniPaths {
        CniPaths {
            bin_dir: under_host_root(host_root, cni_bin_dir),
            conf_dir: under_host_root(host_root, cni_conf_dir),
        }
    }

    pub fn plugin(&self) -> PathBuf {
        self.bin_dir.join(PLUGIN_FILE_NAME)
    }

    pub fn conflist(&self) -> PathBuf {
        self.conf_dir.join(CONFLIST_FILE_NAME)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read the plugin binary {path} (pass --plugin-binary): {source}")]
    ReadPlugin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    File(#[from] FileError),
}

/// What one `install_cni` changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallReport {
    pub plugin: FileOutcome,
    pub conflist: FileOutcome,
}

/// Installs the plugin binary read from `plugin_binary`, then the rendered `conflist` (in that
/// order: a runtime that sees the conflist finds the plugin).
pub fn install_cni(
    plugin_binary: &Path,
    conflist: &str,
    paths: &CniPaths,
) -> Result<InstallReport, InstallError> {
    let plugin = std::fs::read(plugin_binary).map_err(|source| InstallError::ReadPlugin {
        path: plugin_binary.to_path_buf(),
        source,
    })?;
    let plugin = install_file(&paths.plugin(), &plugin, 0o755)?;
    let conflist = install_file(&paths.conflist(), conflist.as_bytes(), 0o644)?;
    Ok(InstallReport { plugin, conflist })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_the_plugin_before_the_conflist_and_only_once() {
        let host = tempfile::tempdir().unwrap();
        let source = host.path().join("build/manul");
        std::fs::create_dir_all(source.parent().unwrap()).unwrap();
        std::fs::write(&source, b"\x7fELF plugin").unwrap();
        let paths = CniPaths::new(
            host.path(),
            Path::new(DEFAULT_CNI_BIN_DIR),
            Path::new(DEFAULT_CNI_CONF_DIR),
        );
        let report = install_cni(&source, "{}\n", &paths).unwrap();
        assert_eq!(
            report,
            InstallReport {
                plugin: FileOutcome::Written,
                conflist: FileOutcome::Written
            }
        );
        assert_eq!(std::fs::read(paths.plugin()).unwrap(), b"\x7fELF plugin");
        let again = install_cni(&source, "{}\n", &paths).unwrap();
        assert_eq!(again.plugin, FileOutcome::Unchanged);
        assert_eq!(again.conflist, FileOutcome::Unchanged);
    }

    #[test]
    fn a_missing_plugin_binary_writes_nothing() {
        let host = tempfile::tempdir().unwrap();
        let paths = CniPaths::new(host.path(), Path::new("bin"), Path::new("conf"));
        let error = install_cni(&host.path().join("nope"), "{}", &paths).unwrap_err();
        assert!(error.to_string().contains("--plugin-binary"), "{error}");
        assert!(!paths.conflist().exists());
    }

    #[test]
    fn host_dirs_are_joined_under_the_host_root() {
        let paths = CniPaths::new(
            Path::new("/host"),
            Path::new("/opt/cni/bin"),
            Path::new("etc/cni/net.d"),
        );
        assert_eq!(paths.plugin(), Path::new("/host/opt/cni/bin/manul"));
        assert_eq!(
            paths.conflist(),
            Path::new("/host/etc/cni/net.d/10-manul.conflist")
        );
    }

    #[test]
    fn parent_components_cannot_escape_the_host_root() {
        assert_eq!(
            under_host_root(Path::new("/host"), Path::new("/../../etc")),
            Path::new("/host/etc")
        );
        assert_eq!(
            under_host_root(Path::new("/"), Path::new("/opt/cni/bin")),
            Path::new("/opt/cni/bin")
        );
    }
}
