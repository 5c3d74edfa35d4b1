//! Release: by handle (only the blocks the handle lists), by address, and the read-only
//! listing of a handle's addresses. I/O only through the Datastore trait; each block write is a
//! compare-and-swap retried from a fresh read, and a block drops an allocation BEFORE its
//! handle's count is lowered (a crash in between leaves an over-count, a harmless leftover).

use std::net::IpAddr;

use ipnet::IpNet;
use manul_store::{DatastoreExt, IpamBlock, IpamHandle};

use crate::{
    Ipam, IpamError,
    assign::check_block,
    block::{self, address_of, ordinal_of},
    handles::adjust,
    pools,
    retry::CasRetry,
};

impl Ipam {
    /// Frees the handle's addresses in one block: the given ordinals, or all when None.
    /// Returns the freed addresses. Does not touch the handle.
    pub(crate) async fn release_in_block(
        &self,
        cidr: &IpNet,
        ordinals: Option<&[u32]>,
        handle_id: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let name = IpamBlock::name_for(cidr);
        self.release_in_block_named(&name, ordinals, handle_id)
            .await
    }

    async fn release_in_block_named(
        &self,
        name: &str,
        ordinals: Option<&[u32]>,
        handle_id: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let store = self.store.as_ref();
        let mut retry = CasRetry::new(|| format!("releasing handle {handle_id:?} in block {name}"));
        loop {
            let Some(current) = store.get_resource::<IpamBlock>(name).await? else {
                return Ok(Vec::new());
            };
            check_block(&current, name)?;
            let mut updated = current.value.clone();
            let freed = match ordinals {
                Some(ordinals) => block::release_ordinals(&mut updated, ordinals, Some(handle_id)),
                None => block::release_handle(&mut updated, handle_id),
            };
            if freed.is_empty() {
                return Ok(Vec::new());
            }
            match store.update_resource(&updated, &current.revision).await {
                Ok(_) => {
                    let cidr = updated.cidr;
                    return Ok(freed
                        .into_iter()
                        .filter_map(|ordinal| address_of(&cidr, ordinal))
                        .collect());
                }
                Err(error) => retry.lost(error).await?,
            }
        }
    }

    /// Releases every address of the handle, then deletes the handle. Idempotent: Ok(vec![])
    /// when the handle is gone. Touches only the blocks the handle lists.
    pub async fn release_by_handle(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        let store = self.store.as_ref();
        let mut released = Vec::new();
        let mut retry = CasRetry::new(|| format!("releasing handle {handle_id:?}"));
        loop {
            let Some(handle) = store.get_resource::<IpamHandle>(handle_id).await? else {
                return Ok(released);
            };
            for block_name in handle.value.block.keys() {
                released.extend(
                    self.release_in_block_named(block_name, None, handle_id)
                        .await?,
                );
            }
            match store
                .delete_resource::<IpamHandle>(handle_id, &handle.revision)
                .await
            {
                Ok(()) => return Ok(released),
                Err(error) => retry.lost(error).await?,
            }
        }
    }

    /// Releases single addresses, whoever holds them, and lowers their handles' counts.
    /// Returns those that were allocated. Addresses outside every pool are skipped.
    pub async fn release_ips(&self, addresses: &[IpAddr]) -> Result<Vec<IpAddr>, IpamError> {
        let all_pools = self.pools().await?;
        let mut released = Vec::new();
        for &address in addresses {
            let Some(pool) = pools::containing(&all_pools, address) else {
                continue;
            };
            let Ok(cidr) = IpNet::new(address, pool.block_size).map(|cidr| cidr.trunc()) else {
                continue;
            };
            let Some(ordinal) = ordinal_of(&cidr, address) else {
                continue;
            };
            let name = IpamBlock::name_for(&cidr);
            let owner = self
                .store
                .get_resource::<IpamBlock>(&name)
                .await?
                .and_then(|block| block::owner_of(&block.value, ordinal).map(str::to_string));
            let Some(owner) = owner else { continue };
            let freed = self
                .release_in_block(&cidr, Some(&[ordinal]), &owner)
                .await?;
            if !freed.is_empty() {
                adjust(self.store.as_ref(), &owner, &name, -1).await?;
                released.extend(freed);
            }
        }
        Ok(released)
    }

    /// Releases `address` only while `handle_id` holds it, and lowers the handle's count:
    /// false when the address is free or held by another handle (a leak that was reused).
    /// The block's compare-and-swap makes the test and the release one step.
    pub async fn release_ip_of_handle(
        &self,
        address: IpAddr,
        handle_id: &str,
    ) -> Result<bool, IpamError> {
        let blocks = self.store.list_resources::<IpamBlock>("").await?;
        let Some(cidr) = blocks
            .iter()
            .map(|block| block.value.cidr)
            .find(|cidr| cidr.contains(&address))
        else {
            return Ok(false);
        };
        let Some(ordinal) = ordinal_of(&cidr, address) else {
            return Ok(false);
        };
        let freed = self
            .release_in_block(&cidr, Some(&[ordinal]), handle_id)
            .await?;
        if freed.is_empty() {
            return Ok(false);
        }
        adjust(
            self.store.as_ref(),
            handle_id,
            &IpamBlock::name_for(&cidr),
            -1,
        )
        .await?;
        Ok(true)
    }

    /// The addresses the handle holds, in block and ordinal order.
    pub async fn addresses_by_handle(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        let store = self.store.as_ref();
        let Some(handle) = store.get_resource::<IpamHandle>(handle_id).await? else {
            return Ok(Vec::new());
        };
        let mut addresses = Vec::new();
        for block_name in handle.value.block.keys() {
            if let Some(block) = store.get_resource::<IpamBlock>(block_name).await? {
                check_block(&block, block_name)?;
                addresses.extend(
                    block::ordinals_of_handle(&block.value, handle_id)
                        .into_iter()
                        .filter_map(|ordinal| address_of(&block.value.cidr, ordinal)),
                );
            }
        }
        Ok(addresses)
    }
}
