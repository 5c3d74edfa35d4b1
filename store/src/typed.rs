//! Typed access on top of the raw `Datastore`: resources encode to JSON, decode with the
//! revision they were read at. No I/O of its own.

use serde::{Serialize, de::DeserializeOwned};

use crate::datastore::{Datastore, KeyValue, Kind, Revision, StoreError};

/// A resource kind stored under `KIND`, named by `name()`.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;
    fn name(&self) -> String;
}

/// A decoded resource and the revision to hand back for a compare-and-swap.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: Revision,
}

pub fn encode<T: Resource>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Encode {
        kind: T::KIND,
        name: value.name(),
        reason: error.to_string(),
    })
}

pub fn decode<T: Resource>(kv: KeyValue) -> Result<Versioned<T>, StoreError> {
    let value = serde_json::from_slice(&kv.value).map_err(|error| StoreError::Decode {
        kind: kv.kind,
        name: kv.name.clone(),
        reason: error.to_string(),
    })?;
    Ok(Versioned {
        value,
        revision: kv.revision,
    })
}

/// Typed helpers for every `Datastore`, including `dyn Datastore`.
#[async_trait::async_trait]
pub trait DatastoreExt: Datastore {
    async fn get_resource<T: Resource>(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self.get(T::KIND, name).await? {
            Some(kv) => Ok(Some(decode(kv)?)),
            None => Ok(None),
        }
    }

    async fn list_resources<T: Resource>(
        &self,
        name_prefix: &str,
    ) -> Result<Vec<Versioned<T>>, StoreError> {
        let listing = self.list(T::KIND, name_prefix).await?;
        listing.items.into_iter().map(decode).collect()
    }

    async fn create_resource<T: Resource>(&self, value: &T) -> Result<Revision, StoreError> {
        let bytes = encode(value)?;
        self.create(T::KIND, &value.name(), bytes).await
    }

    async fn update_resource<T: Resource>(
        &self,
        value: &T,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        let bytes = encode(value)?;
        self.update(T::KIND, &value.name(), bytes, expected).await
    }

    async fn delete_resource<T: Resource>(
        &self,
        name: &str,
        expected: &Revision,
    ) -> Result<(), StoreError> {
        self.delete(T::KIND, name, expected).await
    }
}

impl<D: Datastore + ?Sized> DatastoreExt for D {}
