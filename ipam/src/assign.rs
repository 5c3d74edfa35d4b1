//! Allocation: auto-assign from affine blocks, then newly claimed blocks, then borrowed ones;
//! assignment of one given address (release lives in release.rs). I/O only through the
//! Datastore trait, each block write a compare-and-swap retried from a fresh read; the handle's
//! count is raised before the block records the allocation (see handles.rs).

use std::{collections::BTreeMap, net::IpAddr};

use ipnet::IpNet;
use manul_store::{
    DatastoreExt, IpPool, IpamBlock, IpamConfiguration, Kind, StoreError, Versioned,
};

use crate::{
    AssignIpRequest, Assignment, AutoAssignRequest, Ipam, IpamError, affinity,
    block::{self, OrdinalRefused, address_of, host_affinity, host_net, ordinal_of},
    error::version_name,
    handles::HandleCounter,
    pools,
    retry::{CasRetry, RETRIES},
};

/// Whether a block must be affine to the node (first stage) or may belong to anyone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Affine,
    Borrow,
}

pub(crate) fn check_block(block: &Versioned<IpamBlock>, name: &str) -> Result<(), IpamError> {
    let problems = block::problems(&block.value);
    if problems.is_empty() && IpamBlock::name_for(&block.value.cidr) == name {
        return Ok(());
    }
    Err(IpamError::Corrupt {
        kind: "IPAMBlock",
        name: name.to_string(),
        reason: if problems.is_empty() {
            format!("holds the block {}", block.value.cidr)
        } else {
            problems.join("; ")
        },
    })
}

fn validate_names(handle_id: &str, node: &str) -> Result<(), IpamError> {
    if handle_id.is_empty() || handle_id.contains('/') {
        return Err(IpamError::InvalidRequest(format!(
            "handle id {handle_id:?} must be non-empty and without '/'"
        )));
    }
    if node.is_empty() {
        return Err(IpamError::InvalidRequest("the node name is empty".into()));
    }
    Ok(())
}

/// One request in flight: what it took, so that a failure gives everything back.
struct Assigner<'a> {
    ipam: &'a Ipam,
    node: &'a str,
    handle_id: &'a str,
    attributes: &'a BTreeMap<String, String>,
    config: IpamConfiguration,
    counter: HandleCounter<'a>,
    taken: Vec<(IpNet, u32)>,
}

impl Assigner<'_> {
    /// Up to `count` addresses from the block `cidr`.
    async fn take_from_block(
        &mut self,
        cidr: IpNet,
        count: u32,
        stage: Stage,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let store = self.ipam.store.as_ref();
        let name = IpamBlock::name_for(&cidr);
        let ours = host_affinity(self.node);
        let mut retry = CasRetry::new(|| format!("allocating in block {cidr}"));
        loop {
            let Some(current) = store.get_resource::<IpamBlock>(&name).await? else {
                return Ok(Vec::new());
            };
            check_block(&current, &name)?;
            let affine = current.value.affinity.as_deref() == Some(&ours);
            let refused = match stage {
                Stage::Affine => !affine,
                Stage::Borrow => current.value.strict_affinity && !affine,
            };
            if refused {
                return Ok(Vec::new());
            }
            let mut updated = current.value.clone();
            let ordinals = block::allocate(&mut updated, count, self.handle_id, self.attributes);
            if ordinals.is_empty() {
                return Ok(Vec::new());
            }
            let got = ordinals.len() as u32;
            self.counter.reserve(&name, got).await?;
            match store.update_resource(&updated, &current.revision).await {
                Ok(_) => {
                    self.counter.used(&name, got);
                    self.taken
                        .extend(ordinals.iter().map(|ordinal| (cidr, *ordinal)));
                    return Ok(ordinals
                        .into_iter()
                        .filter_map(|ordinal| address_of(&cidr, ordinal))
                        .collect());
                }
                Err(error) => retry.lost(error).await?,
            }
        }
    }

    /// `count` addresses of one IP version.
    async fn assign_version(
        &mut self,
        all_pools: &[IpPool],
        labels: &BTreeMap<String, String>,
        v6: bool,
        count: u32,
        requested: &[IpNet],
    ) -> Result<Vec<IpNet>, IpamError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let store = self.ipam.store.clone();
        let selected: Vec<IpPool> = pools::select(all_pools, v6, requested, self.node, labels)?
            .into_iter()
            .cloned()
            .collect();
        let in_pools = |cidr: &IpNet| selected.iter().any(|pool| pool.cidr.contains(cidr));
        let is_version = |cidr: &IpNet| (cidr.max_prefix_len() == 128) == v6;
        let mut got: Vec<IpAddr> = Vec::new();
        let mut reason = String::from("all blocks are full");
        for _round in 0..RETRIES {
            let affine = affinity::settled_affine_blocks(store.as_ref(), self.node).await?;
            let of_version = affine.iter().filter(|cidr| is_version(cidr)).count() as u32;
            for cidr in affine
                .iter()
                .filter(|cidr| is_version(cidr) && in_pools(cidr))
            {
                let remaining = count - got.len() as u32;
                if remaining == 0 {
                    break;
                }
                got.extend(
                    self.take_from_block(*cidr, remaining, Stage::Affine)
                        .await?,
                );
            }
            if got.len() as u32 == count {
                break;
            }
            if !self.config.auto_allocate_blocks {
                reason = "the node's blocks are full and autoAllocateBlocks is false".into();
                break;
            }
            let max = self.config.max_blocks_per_host;
            if max != 0 && of_version >= max {
                reason =
                    format!("the node's {of_version} blocks are full (maxBlocksPerHost {max})");
                break;
            }
            if !self.claim_one(&selected).await? {
                reason = "every block of the usable pools is claimed and full".into();
                break;
            }
        }
        if (got.len() as u32) < count && !self.config.strict_affinity {
            let ours = host_affinity(self.node);
            let blocks = store.list_resources::<IpamBlock>("").await?;
            for candidate in blocks {
                let remaining = count - got.len() as u32;
                if remaining == 0 {
                    break;
                }
                let block = &candidate.value;
                if is_version(&block.cidr)
                    && in_pools(&block.cidr)
                    && block.affinity.as_deref() != Some(&ours)
                    && !block.strict_affinity
                    && !block.unallocated.is_empty()
                {
                    got.extend(
                        self.take_from_block(block.cidr, remaining, Stage::Borrow)
                            .await?,
                    );
                }
            }
        } else if (got.len() as u32) < count {
            reason += "; strictAffinity forbids borrowing from other nodes' blocks";
        }
        if (got.len() as u32) < count {
            return Err(IpamError::NoAddressesAvailable {
                version: version_name(v6),
                node: self.node.to_string(),
                requested: count,
                assigned: got.len() as u32,
                reason,
            });
        }
        Ok(got.into_iter().map(host_net).collect())
    }

    /// Claims one free block of the pools for the node; false when there is none.
    async fn claim_one(&mut self, selected: &[IpPool]) -> Result<bool, IpamError> {
        let store = self.ipam.store.as_ref();
        let mut taken: std::collections::BTreeSet<IpNet> = store
            .list_resources::<IpamBlock>("")
            .await?
            .into_iter()
            .map(|block| block.value.cidr)
            .collect();
        for pool in selected {
            while let Some(cidr) = affinity::free_block(pool, &taken, self.node) {
                if affinity::claim(store, self.node, &cidr, self.config.strict_affinity).await? {
                    return Ok(true);
                }
                taken.insert(cidr);
            }
        }
        Ok(false)
    }

    /// Gives back every address this request took (after a failure).
    async fn roll_back(&mut self) -> Result<(), IpamError> {
        let mut by_block: BTreeMap<IpNet, Vec<u32>> = BTreeMap::new();
        for (cidr, ordinal) in self.taken.drain(..) {
            by_block.entry(cidr).or_default().push(ordinal);
        }
        for (cidr, ordinals) in by_block {
            let freed = self
                .ipam
                .release_in_block(&cidr, Some(&ordinals), self.handle_id)
                .await?;
            self.counter
                .unused(&IpamBlock::name_for(&cidr), freed.len() as u32);
        }
        Ok(())
    }
}

impl Ipam {
    /// Allocates `num_ipv4` + `num_ipv6` addresses for the handle on the node: from the node's
    /// affine blocks, then from newly claimed blocks (up to maxBlocksPerHost, when
    /// autoAllocateBlocks), then, unless strictAffinity, borrowed from other blocks. All or
    /// nothing: on failure every address taken by this call is released.
    pub async fn auto_assign(&self, request: &AutoAssignRequest) -> Result<Assignment, IpamError> {
        validate_names(&request.handle_id, &request.node)?;
        let all_pools = self.pools().await?;
        let labels = self.node_labels(&request.node).await?;
        let mut assigner = Assigner {
            ipam: self,
            node: &request.node,
            handle_id: &request.handle_id,
            attributes: &request.attributes,
            config: self.config().await?,
            counter: HandleCounter::new(self.store.as_ref(), &request.handle_id),
            taken: Vec::new(),
        };
        let mut result = Ok(Assignment::default());
        for v6 in [false, true] {
            let (count, requested) = if v6 {
                (request.num_ipv6, &request.ipv6_pools)
            } else {
                (request.num_ipv4, &request.ipv4_pools)
            };
            match assigner
                .assign_version(&all_pools, &labels, v6, count, requested)
                .await
            {
                Ok(nets) => {
                    if let Ok(assignment) = &mut result {
                        if v6 {
                            assignment.ipv6 = nets
                        } else {
                            assignment.ipv4 = nets
                        }
                    }
                }
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        if result.is_err()
            && let Err(error) = assigner.roll_back().await
        {
            tracing::warn!(%error, handle = request.handle_id, "rolling back a failed assignment");
        }
        let finished = assigner.counter.finish().await;
        let assignment = result?;
        finished?;
        Ok(assignment)
    }

    /// Assigns exactly `request.address`: refused with AddressInUse, AddressNotInPool or
    /// PoolDisabled. The address's block is claimed for the node when it does not exist yet.
    pub async fn assign_ip(&self, request: &AssignIpRequest) -> Result<IpNet, IpamError> {
        validate_names(&request.handle_id, &request.node)?;
        let address = request.address;
        let all_pools = self.pools().await?;
        let pool = pools::containing(&all_pools, address)
            .ok_or(IpamError::AddressNotInPool { address })?;
        if pool.disabled {
            return Err(IpamError::PoolDisabled {
                pool: pool.name.clone(),
                cidr: pool.cidr,
            });
        }
        let cidr = IpNet::new(address, pool.block_size)
            .map_err(|error| IpamError::InvalidRequest(format!("pool {:?}: {error}", pool.name)))?
            .trunc();
        let ordinal = ordinal_of(&cidr, address).ok_or_else(|| {
            IpamError::InvalidRequest(format!("{address} does not fit the block {cidr}"))
        })?;
        let config = self.config().await?;
        let mut counter = HandleCounter::new(self.store.as_ref(), &request.handle_id);
        let result = self
            .assign_ordinal(request, cidr, ordinal, &config, &mut counter)
            .await;
        let finished = counter.finish().await;
        let assigned = result?;
        finished?;
        Ok(assigned)
    }

    async fn assign_ordinal(
        &self,
        request: &AssignIpRequest,
        cidr: IpNet,
        ordinal: u32,
        config: &IpamConfiguration,
        counter: &mut HandleCounter<'_>,
    ) -> Result<IpNet, IpamError> {
        let store = self.store.as_ref();
        let name = IpamBlock::name_for(&cidr);
        let ours = host_affinity(&request.node);
        let mut retry = CasRetry::new(|| format!("assigning {}", request.address));
        loop {
            let Some(current) = store.get_resource::<IpamBlock>(&name).await? else {
                affinity::claim(store, &request.node, &cidr, config.strict_affinity).await?;
                // Counted as a lost race: the next attempt reads the block just claimed.
                let vanished = StoreError::NotFound {
                    kind: Kind::IPAMBlock,
                    name: name.clone(),
                };
                retry.lost(vanished).await?;
                continue;
            };
            check_block(&current, &name)?;
            if current.value.strict_affinity && current.value.affinity.as_deref() != Some(&ours) {
                return Err(IpamError::InvalidRequest(format!(
                    "{} is in block {cidr}, which has strict affinity to {:?}; assign it on that node",
                    request.address,
                    current.value.affinity.as_deref().unwrap_or("no node")
                )));
            }
            let mut updated = current.value.clone();
            match block::allocate_ordinal(
                &mut updated,
                ordinal,
                &request.handle_id,
                &request.attributes,
            ) {
                Ok(()) => {}
                Err(OrdinalRefused::InUse(owner)) => {
                    return Err(IpamError::AddressInUse {
                        address: request.address,
                        handle: owner.unwrap_or_default(),
                    });
                }
                Err(OrdinalRefused::OutOfRange) => {
                    return Err(IpamError::AddressNotInPool {
                        address: request.address,
                    });
                }
            }
            counter.reserve(&name, 1).await?;
            match store.update_resource(&updated, &current.revision).await {
                Ok(_) => {
                    counter.used(&name, 1);
                    return Ok(host_net(request.address));
                }
                Err(error) => retry.lost(error).await?,
            }
        }
    }
}
