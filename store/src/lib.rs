//! manul-store: the resource model (Calico v3 shaped) and the `Datastore` trait that every
//! backend implements. This module does no I/O; backends live in their own modules.

pub mod datastore;
pub mod embedded;
pub mod resources;
pub mod typed;

pub use datastore::{
    Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchEvent, WatchStream,
};
pub use resources::*;
pub use typed::{DatastoreExt, Resource, Versioned};

use std::sync::Arc;

/// Opens the datastore named by a URL. `embedded:///path/to/store.redb` is the only backend
/// today; etcd and Kubernetes backends implement the same trait.
pub fn open_datastore(url: &str) -> Result<Arc<dyn Datastore>, StoreError> {
    if let Some(path) = url.strip_prefix("embedded://") {
        if path.is_empty() {
            return Err(StoreError::BadUrl {
                url: url.to_string(),
                reason: "the embedded backend needs a file path, e.g. embedded:///var/lib/manul/store.redb".into(),
            });
        }
        return Ok(Arc::new(embedded::EmbeddedStore::open(
            std::path::Path::new(path),
        )?));
    }
    Err(StoreError::BadUrl {
        url: url.to_string(),
        reason: "unknown scheme; supported: embedded:///<path>".into(),
    })
}
