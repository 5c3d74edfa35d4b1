//! manul-store: the resource model (Calico v3 shaped) and the `Datastore` trait that every
//! backend implements. This module does no I/O; backends live in their own modules.

pub mod bgp_resources;
pub mod datastore;
pub mod embedded;
pub mod resources;
pub mod typed;

pub use bgp_resources::{
    BgpConfiguration, BgpPassword, BgpPeer, Community, DEFAULT_AS_NUMBER, NextHopMode,
    PrefixAdvertisement, SecretKeyRef, ServiceCidr, SourceAddress,
};
pub use datastore::{
    Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchEvent, WatchStream,
};
pub use resources::*;
pub use typed::{DatastoreExt, Resource, Versioned};

use std::sync::Arc;

/// Opens the datastore named by a URL. `embedded:///path/to/store.redb` is the only backend
/// today; etcd and Kubernetes backends implement the same trait.
pub fn open_datastore(url: &str) -> Result<Arc<dyn Datastore>, StoreError> {
    open_datastore_with(url, false)
}

/// `open_datastore`, with the embedded backend's durability deferred to `Datastore::sync` when
/// `deferred_durability` (the agent, which syncs before it answers; other backends are durable
/// on every write anyway).
pub fn open_datastore_with(
    url: &str,
    deferred_durability: bool,
) -> Result<Arc<dyn Datastore>, StoreError> {
    if let Some(path) = url.strip_prefix("embedded://") {
        if path.is_empty() {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                reason: "the embedded backend needs a file path, e.g. embedded:///var/lib/manul/store.redb".into(),
            });
        }
        let store = embedded::EmbeddedStore::open(std::path::Path::new(path))?;
        return Ok(Arc::new(if deferred_durability {
            store.with_deferred_durability()
        } else {
            store
        }));
    }
    Err(StoreError::BadUrl {
        url: url.to_string(),
        reason: "unknown scheme; supported: embedded:///<path>".into(),
    })
}
