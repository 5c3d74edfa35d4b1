//! Where the Kubernetes client's configuration comes from: `kubernetes` / `kubernetes://`
//! infer it (KUBECONFIG, ~/.kube/config, then the in-cluster service account), and
//! `kubernetes:///path/to/kubeconfig` or `--kubeconfig` name a file. Reads that file and the
//! service account's files when the first request needs a client.

use std::path::PathBuf;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::datastore::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientSource {
    /// KUBECONFIG or ~/.kube/config when there is one, else in-cluster.
    Infer,
    Kubeconfig(PathBuf),
}

impl ClientSource {
    /// The source a datastore URL names, with `kubeconfig` (a flag) taking precedence over
    /// the URL's path.
    pub fn from_url(url: &str, kubeconfig: Option<PathBuf>) -> Result<ClientSource, StoreError> {
        let path = match url {
            "kubernetes" | "kubernetes://" => "",
            other => other
                .strip_prefix("kubernetes://")
                .ok_or_else(|| StoreError::BadUrl {
                    url: url.to_string(),
                    reason:
                        "expected kubernetes, kubernetes:// or kubernetes:///path/to/kubeconfig"
                            .into(),
                })?,
        };
        if let Some(file) = kubeconfig {
            return Ok(ClientSource::Kubeconfig(file));
        }
        if path.is_empty() {
            return Ok(ClientSource::Infer);
        }
        if !path.starts_with('/') {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                reason: "the kubeconfig path must be absolute: kubernetes:///path/to/kubeconfig"
                    .into(),
            });
        }
        Ok(ClientSource::Kubeconfig(PathBuf::from(path)))
    }

    /// A client for this source. Needs a tokio runtime (the client spawns its buffer task).
    pub async fn client(&self) -> Result<Client, StoreError> {
        let config = match self {
            ClientSource::Infer => Config::infer().await.map_err(|error| {
                StoreError::Backend(format!("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {error}"))
            })?,
            ClientSource::Kubeconfig(path) => {
                let file = Kubeconfig::read_from(path).map_err(|error| {
                    StoreError::Backend(format!("kubeconfig {}: {error}", path.display()))
                })?;
                Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|error| StoreError::Backend(format!("kubeconfig {}: {error}", path.display())))?
            }
        };
        Client::try_from(config)
            .map_err(|error| StoreError::Backend(format!("Kubernetes client: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_inferred_config_or_a_kubeconfig_file() {
        assert_eq!(
            ClientSource::from_url("kubernetes", None).unwrap(),
            ClientSource::Infer
        );
        assert_eq!(
            ClientSource::from_url("kubernetes://", None).unwrap(),
            ClientSource::Infer
        );
        assert_eq!(
            ClientSource::from_url("kubernetes:///etc/kc", None).unwrap(),
            ClientSource::Kubeconfig("/etc/kc".into())
        );
        assert_eq!(
            ClientSource::from_url("kubernetes", Some("/k".into())).unwrap(),
            ClientSource::Kubeconfig("/k".into())
        );
        assert!(ClientSource::from_url("kubernetes://host/x", None).is_err());
        assert!(ClientSource::from_url("kube", None).is_err());
    }
}
