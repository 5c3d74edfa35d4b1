//! Creating and deleting IP pools under the pools index (`IpPoolIndex`, one object holding
//! every pool's name and CIDR). I/O only through the Datastore trait.
//!
//! Why an index: the overlap check reads the pools and then writes a new one; two creators
//! of overlapping pools can both read before either writes. The index makes the read and the
//! claim one compare-and-swap: a creator reads the index, checks its pool against the index's
//! entries and the stored pools, and writes the index with its entry at the revision it read.
//! Of two concurrent creators one index write loses, and its retry sees the other's entry.
//! Only then is the pool object created.
//!
//! Order and crash states: index entry first, pool second. A crash in between leaves an entry
//! without pool: it still blocks overlapping pools (safe), `check` reports it as a leftover,
//! repeating the same `create_pool` (same name and CIDR) completes it, and `delete_pool`
//! removes it. Deletion goes the other way: pool first, entry second. Pools written straight
//! to the store (without the index) are still checked: the stored pools are read too, and
//! the next index write takes them in.

use manul_store::{DatastoreExt, IpPool, IpPoolIndex, Versioned};

use crate::{Ipam, IpamError, pools, retry::CasRetry};

impl Ipam {
    /// Validates (cidr is a network address, blockSize in 20..=32 for IPv4 / 116..=128 for
    /// IPv6 and not shorter than the pool's prefix, no overlap with an existing pool, name not
    /// empty, nodeSelector parses) and creates the pool. blockSize 0 means the default. Of
    /// concurrent creators of overlapping pools exactly one succeeds (see the module comment).
    pub async fn create_pool(&self, pool: &IpPool) -> Result<(), IpamError> {
        let store = self.store.as_ref();
        let mut retry = CasRetry::new(|| format!("creating IP pool {:?}", pool.name));
        let pool = loop {
            let index = store.get_resource::<IpPoolIndex>(IpPoolIndex::NAME).await?;
            let stored = self.pools().await?;
            let entries = index
                .as_ref()
                .map(|index| index.value.pools.clone())
                .unwrap_or_default();
            // An entry of this very pool without its object: an interrupted create; finish it.
            let interrupted = entries.get(&pool.name) == Some(&pool.cidr)
                && !stored.iter().any(|other| other.name == pool.name);
            let mut known = stored.clone();
            known.extend(
                entries
                    .iter()
                    .filter(|(name, _)| !stored.iter().any(|other| other.name == **name))
                    .filter(|(name, _)| !(interrupted && **name == pool.name))
                    .map(|(name, cidr)| IpPool::new(name, *cidr)),
            );
            let validated = pools::validate(pool, &known)?;
            if interrupted {
                break validated;
            }
            let mut updated = IpPoolIndex { pools: entries };
            for other in &stored {
                updated.pools.insert(other.name.clone(), other.cidr);
            }
            updated.pools.insert(validated.name.clone(), validated.cidr);
            let written = match &index {
                Some(Versioned { revision, .. }) => store.update_resource(&updated, revision).await,
                None => store.create_resource(&updated).await,
            };
            match written {
                Ok(_) => break validated,
                Err(error) => retry.lost(error).await?,
            }
        };
        match store.create_resource(&pool).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_conflict() => {
                // Written past the index by someone else: our entry must not stay behind.
                self.remove_index_entry(&pool.name).await?;
                Err(IpamError::InvalidPool {
                    field: "name",
                    reason: format!("a pool named {:?} already exists", pool.name),
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the pool named `name` and its index entry; Ok(false) when neither exists.
    /// Blocks carved from the pool stay (their addresses stay allocated); `check` reports
    /// blocks in no pool as leftovers.
    pub async fn delete_pool(&self, name: &str) -> Result<bool, IpamError> {
        let store = self.store.as_ref();
        let mut retry = CasRetry::new(|| format!("deleting IP pool {name:?}"));
        let deleted = loop {
            let Some(current) = store.get_resource::<IpPool>(name).await? else {
                break false;
            };
            match store
                .delete_resource::<IpPool>(name, &current.revision)
                .await
            {
                Ok(()) => break true,
                Err(error) => retry.lost(error).await?,
            }
        };
        let removed = self.remove_index_entry(name).await?;
        Ok(deleted || removed)
    }

    /// Removes `name` from the index; Ok(false) when it was not there.
    async fn remove_index_entry(&self, name: &str) -> Result<bool, IpamError> {
        let store = self.store.as_ref();
        let mut retry = CasRetry::new(|| format!("removing IP pool {name:?} from the index"));
        loop {
            let Some(mut index) = store.get_resource::<IpPoolIndex>(IpPoolIndex::NAME).await?
            else {
                return Ok(false);
            };
            if index.value.pools.remove(name).is_none() {
                return Ok(false);
            }
            match store.update_resource(&index.value, &index.revision).await {
                Ok(_) => return Ok(true),
                Err(error) => retry.lost(error).await?,
            }
        }
    }
}
