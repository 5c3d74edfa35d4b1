//! A `Datastore` for tests that forwards every call to another store and runs a hook before
//! each write: the place for a rival writer (the hook writes through the inner store first)
//! or a lost race (the hook answers an error, and the write never reaches the inner store).
//! No I/O of its own.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{Datastore, KeyValue, Kind, Listing, Revision, StoreError, WatchStream};

/// Which write the hook runs before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Create,
    Update,
    Delete,
}

/// Runs before a write of (`Write`, kind, name): `Ok(())` lets the write through, an error is
/// the write's answer.
pub type BeforeWrite =
    dyn Fn(Write, Kind, &str) -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync;

/// Forwards to `inner`, running `before_write` before every create, update and delete.
pub struct Interposed {
    inner: Arc<dyn Datastore>,
    before_write: Box<BeforeWrite>,
}

impl Interposed {
    pub fn new(
        inner: Arc<dyn Datastore>,
        before_write: impl Fn(Write, Kind, &str) -> BoxFuture<'static, Result<(), StoreError>>
        + Send
        + Sync
        + 'static,
    ) -> Interposed {
        Interposed {
            inner,
            before_write: Box::new(before_write),
        }
    }
}

#[async_trait::async_trait]
impl Datastore for Interposed {
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(kind, name).await
    }

    async fn list(&self, kind: Kind, name_prefix: &str) -> Result<Listing, StoreError> {
        self.inner.list(kind, name_prefix).await
    }

    async fn create(&self, kind: Kind, name: &str, value: Vec<u8>) -> Result<Revision, StoreError> {
        (self.before_write)(Write::Create, kind, name).await?;
        self.inner.create(kind, name, value).await
    }

    async fn update(
        &self,
        kind: Kind,
        name: &str,
        value: Vec<u8>,
        expected: &Revision,
    ) -> Result<Revision, StoreError> {
        (self.before_write)(Write::Update, kind, name).await?;
        self.inner.update(kind, name, value, expected).await
    }

    async fn delete(&self, kind: Kind, name: &str, expected: &Revision) -> Result<(), StoreError> {
        (self.before_write)(Write::Delete, kind, name).await?;
        self.inner.delete(kind, name, expected).await
    }

    async fn watch(
        &self,
        kind: Kind,
        name_prefix: &str,
        after: &Revision,
    ) -> Result<WatchStream, StoreError> {
        self.inner.watch(kind, name_prefix, after).await
    }
}
