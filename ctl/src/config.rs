//! Where manulctl finds the datastore, the agent and bgpd: flags (and their environment
//! variables) win over the config file (`--config FILE`, or /etc/manul/manulctl.yaml when it
//! exists), which wins over the defaults the agent uses. Reads the config file.
//!
//! The config file is small YAML with the flags' names:
//!
//! ```yaml
//! datastore: etcd://10.0.0.1:2379,10.0.0.2:2379
//! agentSocket: /var/run/manul/agent.sock
//! bgpdSocket: /var/run/manul/bgpd.sock
//! etcdPrefix: /manul/v1
//! etcdCAFile: /etc/manul/etcd-ca.pem
//! etcdCertFile: /etc/manul/etcd-client.pem
//! etcdKeyFile: /etc/manul/etcd-client-key.pem
//! ```

use std::path::{Path, PathBuf};

use manul_store::DatastoreOptions;
use serde::Deserialize;

use crate::cli::GlobalFlags;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/manul/manulctl.yaml";
pub const DEFAULT_DATASTORE: &str = "embedded:///var/lib/manul/store.redb";
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/manul/agent.sock";
pub const DEFAULT_BGPD_SOCKET: &str = "/var/run/manul/bgpd.sock";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}; fix --config or MANULCTL_CONFIG")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The config file's settings, each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    pub datastore: Option<String>,
    pub agent_socket: Option<PathBuf>,
    pub bgpd_socket: Option<PathBuf>,
    pub etcd_prefix: Option<String>,
    #[serde(rename = "etcdCAFile")]
    pub etcd_ca_file: Option<PathBuf>,
    pub etcd_cert_file: Option<PathBuf>,
    pub etcd_key_file: Option<PathBuf>,
}

/// What the commands use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub datastore: String,
    pub datastore_options: DatastoreOptions,
    pub agent_socket: PathBuf,
    /// The agent socket was named (flag, environment or config file): the embedded store is
    /// then reached only through the agent.
    pub agent_socket_given: bool,
    pub bgpd_socket: PathBuf,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ConfigFile::parse(&text).map_err(|reason| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_yaml_ng::from_str(text).map_err(|error| error.to_string())
    }
}

/// Flags over the config file over the defaults.
pub fn resolve(flags: &GlobalFlags) -> Result<Settings, ConfigError> {
    let file = match &flags.config {
        Some(path) => ConfigFile::read(path)?,
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            ConfigFile::read(Path::new(DEFAULT_CONFIG_FILE))?
        }
        None => ConfigFile::default(),
    };
    Ok(merge(flags, file))
}

fn merge(flags: &GlobalFlags, file: ConfigFile) -> Settings {
    let agent_socket_given = flags.agent_socket.is_some() || file.agent_socket.is_some();
    Settings {
        agent_socket_given,
        datastore: flags
            .datastore
            .clone()
            .or(file.datastore)
            .unwrap_or_else(|| DEFAULT_DATASTORE.into()),
        datastore_options: DatastoreOptions {
            deferred_durability: false,
            etcd_ca_file: flags.etcd_ca_file.clone().or(file.etcd_ca_file),
            etcd_cert_file: flags.etcd_cert_file.clone().or(file.etcd_cert_file),
            etcd_key_file: flags.etcd_key_file.clone().or(file.etcd_key_file),
            etcd_prefix: flags.etcd_prefix.clone().or(file.etcd_prefix),
            // kubernetes:///path/to/kubeconfig names one; else KUBECONFIG or in-cluster.
            kubeconfig: None,
        },
        agent_socket: flags
            .agent_socket
            .clone()
            .or(file.agent_socket)
            .unwrap_or_else(|| DEFAULT_AGENT_SOCKET.into()),
        bgpd_socket: flags
            .bgpd_socket
            .clone()
            .or(file.bgpd_socket)
            .unwrap_or_else(|| DEFAULT_BGPD_SOCKET.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file = ConfigFile::parse(
            "datastore: etcd://127.0.0.1:2379\nagentSocket: /run/a.sock\netcdCAFile: /ca.pem\n",
        )
        .unwrap();
        let flags = GlobalFlags {
            agent_socket: Some("/flag.sock".into()),
            ..Default::default()
        };
        let settings = merge(&flags, file);
        assert_eq!(settings.datastore, "etcd://127.0.0.1:2379");
        assert_eq!(settings.agent_socket, PathBuf::from("/flag.sock"));
        assert!(settings.agent_socket_given);
        assert_eq!(settings.bgpd_socket, PathBuf::from(DEFAULT_BGPD_SOCKET));
        assert_eq!(
            settings.datastore_options.etcd_ca_file,
            Some(PathBuf::from("/ca.pem"))
        );
        let defaults = merge(&GlobalFlags::default(), ConfigFile::default());
        assert_eq!(defaults.datastore, DEFAULT_DATASTORE);
        assert!(!defaults.agent_socket_given);
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let error = ConfigFile::parse("datastor: etcd://x:1\n").unwrap_err();
        assert!(error.contains("datastor"), "{error}");
    }
}
