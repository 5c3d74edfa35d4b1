//! Reads and compare-and-swap writes of whole objects through the Datastore trait (embedded
//! and etcd alike). IPPools are created and deleted through manul-ipam's pool functions,
//! which keep the pools index that guards against overlapping pools. I/O through the trait.

use std::sync::Arc;

use manul_ipam::Ipam;
use manul_store::{BgpConfiguration, Datastore, DatastoreExt, Revision};

use crate::{
    error::CtlError,
    identity,
    kinds::ResourceKind,
    object::Object,
    resources::{TableContext, ippool},
};

/// An object and the revision it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub object: Object,
    pub revision: Revision,
}

/// The resources of one datastore.
#[derive(Clone)]
pub struct Resources {
    store: Arc<dyn Datastore>,
    ipam: Ipam,
}

impl Resources {
    pub fn new(store: Arc<dyn Datastore>) -> Resources {
        Resources {
            ipam: Ipam::new(store.clone()),
            store,
        }
    }

    pub fn store(&self) -> &Arc<dyn Datastore> {
        &self.store
    }

    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    pub async fn get(&self, kind: ResourceKind, name: &str) -> Result<Option<Stored>, CtlError> {
        let Some(kv) = self.store.get(kind.store_kind(), name).await? else {
            return Ok(None);
        };
        let revision = kv.revision.clone();
        Ok(Some(Stored {
            object: Object::decode(kind, kv)?,
            revision,
        }))
    }

    /// Every object of `kind` in name order, and the revision of the listing.
    pub async fn list(&self, kind: ResourceKind) -> Result<(Vec<Stored>, Revision), CtlError> {
        let listing = self.store.list(kind.store_kind(), "").await?;
        let objects = listing
            .items
            .into_iter()
            .map(|kv| {
                let revision = kv.revision.clone();
                Object::decode(kind, kv).map(|object| Stored { object, revision })
            })
            .collect::<Result<_, _>>()?;
        Ok((objects, listing.revision))
    }

    /// Creates `object`; `AlreadyExists` when its name is taken. Pools go through
    /// `Ipam::create_pool` (overlap check and pools index).
    /// The object gets a new uid and creationTimestamp (`identity::stamp_new`).
    pub async fn create(&self, object: &Object) -> Result<(), CtlError> {
        let (kind, name) = (object.kind(), object.name());
        let mut object = object.clone();
        identity::stamp_new(object.metadata_mut());
        if let Object::IpPool(pool) = &object {
            if self.get(kind, &name).await?.is_some() {
                return Err(CtlError::AlreadyExists { kind, name });
            }
            return self
                .ipam
                .create_pool(pool)
                .await
                .map_err(|error| pool_error(&name, error));
        }
        self.store
            .create(kind.store_kind(), &name, object.encode()?)
            .await
            .map(|_| ())
            .map_err(|error| CtlError::from_store(kind, &name, error))
    }

    /// Replaces `current` (read at its revision) with `object`: `Conflict` when someone wrote
    /// it since. A pool's CIDR and blockSize cannot change; uid and creationTimestamp stay
    /// the stored ones (`identity::keep_stored`).
    pub async fn update(&self, object: &Object, current: &Stored) -> Result<(), CtlError> {
        let (kind, name) = (object.kind(), object.name());
        let mut object = object.clone();
        identity::keep_stored(object.metadata_mut(), current.object.metadata()).map_err(
            |error| CtlError::Refused {
                kind,
                name: name.clone(),
                error,
            },
        )?;
        if let (Object::IpPool(new), Object::IpPool(old)) = (&object, &current.object) {
            ippool::check_update(old, new).map_err(|error| CtlError::Refused {
                kind,
                name: name.clone(),
                error,
            })?;
        }
        self.store
            .update(
                kind.store_kind(),
                &name,
                object.encode()?,
                &current.revision,
            )
            .await
            .map(|_| ())
            .map_err(|error| CtlError::from_store(kind, &name, error))
    }

    /// Deletes `current` if it is still at the revision it was read at. Pools go through
    /// `Ipam::delete_pool`, which also removes their pools-index entry.
    pub async fn delete(&self, current: &Stored) -> Result<(), CtlError> {
        let (kind, name) = (current.object.kind(), current.object.name());
        if kind == ResourceKind::IpPool {
            match self.get(kind, &name).await? {
                Some(now) if now.revision == current.revision => {}
                Some(_) => return Err(CtlError::Conflict { kind, name }),
                None => return Err(CtlError::NotFound { kind, name }),
            }
            self.ipam
                .delete_pool(&name)
                .await
                .map_err(|error| pool_error(&name, error))?;
            return Ok(());
        }
        self.store
            .delete(kind.store_kind(), &name, &current.revision)
            .await
            .map_err(|error| CtlError::from_store(kind, &name, error))
    }

    /// What tables need: the cluster's AS number from the "default" BGPConfiguration.
    pub async fn table_context(&self, kind: ResourceKind) -> Result<TableContext, CtlError> {
        let mut context = TableContext::default();
        if kind == ResourceKind::Node
            && let Some(config) = self
                .store
                .get_resource::<BgpConfiguration>(BgpConfiguration::DEFAULT_NAME)
                .await?
        {
            context.default_as_number = config.value.as_number_or_default();
        }
        Ok(context)
    }
}

fn pool_error(name: &str, error: manul_ipam::IpamError) -> CtlError {
    match error {
        error @ manul_ipam::IpamError::InvalidPool { .. } => CtlError::Refused {
            kind: ResourceKind::IpPool,
            name: name.to_string(),
            error: ippool::pool_field_error(error),
        },
        manul_ipam::IpamError::Store(error) => {
            CtlError::from_store(ResourceKind::IpPool, name, error)
        }
        other => CtlError::Ipam(other),
    }
}
