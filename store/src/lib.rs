//! manul-store: the resource model (Calico v3 shaped) and the `Datastore` trait that every
//! backend implements, and `open_datastore` that picks a backend by URL. No I/O here;
//! backends live in their own modules (embedded: a redb file; etcd: an etcd cluster;
//! kubernetes: custom resources and annotations on Nodes and Pods).

pub mod bgp_resources;
pub mod datastore;
pub mod embedded;
pub mod etcd;
pub mod kubernetes;
pub mod metadata;
pub mod resources;
mod schema;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod timestamp;
pub mod typed;

pub use bgp_resources::{
    BgpConfiguration, BgpPassword, BgpPeer, Community, DEFAULT_AS_NUMBER, NextHopMode,
    PrefixAdvertisement, SecretKeyRef, ServiceCidr, SourceAddress,
};
pub use datastore::{
    Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchEvent, WatchStream,
};
pub use metadata::{HasMetadata, ResourceMeta};
pub use resources::*;
pub use typed::{DatastoreExt, Resource, Versioned, decode};

use std::{path::PathBuf, sync::Arc};

/// How to open a datastore, beyond its URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatastoreOptions {
    /// Embedded backend: defer durability to `Datastore::sync` (the agent, which syncs before
    /// it answers). Other backends are durable on every write anyway.
    pub deferred_durability: bool,
    /// etcd: the CA that signed the members' certificates (TLS when any etcd file is set).
    pub etcd_ca_file: Option<PathBuf>,
    /// etcd: the client certificate, with `etcd_key_file`, for members that require one.
    pub etcd_cert_file: Option<PathBuf>,
    pub etcd_key_file: Option<PathBuf>,
    /// etcd: the key prefix (default `/manul/v1`), so several clusters can share one etcd.
    pub etcd_prefix: Option<String>,
    /// Kubernetes: the kubeconfig file (else the URL's path, KUBECONFIG, ~/.kube/config or
    /// the in-cluster service account).
    pub kubeconfig: Option<PathBuf>,
}

/// Opens the datastore named by a URL: `embedded:///path/to/store.redb`,
/// `etcd://host:port[,host:port...]` or `kubernetes[:///path/to/kubeconfig]`.
pub fn open_datastore(url: &str) -> Result<Arc<dyn Datastore>, StoreError> {
    open_datastore_with_options(url, &DatastoreOptions::default())
}

/// `open_datastore`, with the embedded backend's durability deferred to `Datastore::sync` when
/// `deferred_durability`.
pub fn open_datastore_with(
    url: &str,
    deferred_durability: bool,
) -> Result<Arc<dyn Datastore>, StoreError> {
    open_datastore_with_options(
        url,
        &DatastoreOptions {
            deferred_durability,
            ..Default::default()
        },
    )
}

/// Opens the datastore named by `url` with `options`. Opening etcd does no network I/O (the
/// store connects on its first request) but reads the TLS files; opening Kubernetes does no
/// I/O (the client is built on the first request).
pub fn open_datastore_with_options(
    url: &str,
    options: &DatastoreOptions,
) -> Result<Arc<dyn Datastore>, StoreError> {
    if url.starts_with("etcd://") {
        let config = etcd::EtcdConfig::from_url(url)?
            .with_prefix(options.etcd_prefix.as_deref().unwrap_or_default())
            .with_tls(etcd::EtcdTls {
                ca_file: options.etcd_ca_file.clone(),
                cert_file: options.etcd_cert_file.clone(),
                key_file: options.etcd_key_file.clone(),
            });
        return Ok(Arc::new(etcd::EtcdStore::new(&config)?));
    }
    if url == "kubernetes" || url.starts_with("kubernetes://") {
        let source = kubernetes::ClientSource::from_url(url, options.kubeconfig.clone())?;
        return Ok(Arc::new(kubernetes::KubernetesStore::new(source)));
    }
    if let Some(path) = url.strip_prefix("embedded://") {
        if path.is_empty() {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                reason: "the embedded backend needs a file path, e.g. embedded:///var/lib/manul/store.redb".into(),
            });
        }
        let store = embedded::EmbeddedStore::open(std::path::Path::new(path))?;
        return Ok(Arc::new(if options.deferred_durability {
            store.with_deferred_durability()
        } else {
            store
        }));
    }
    Err(StoreError::BadUrl {
        url: url.to_string(),
        reason: "unknown scheme; supported: embedded:///<path>, etcd://host:port[,host:port...], kubernetes[:///<kubeconfig>]"
            .into(),
    })
}
