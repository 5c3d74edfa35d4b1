//! IP pools: validation of a new pool, node selectors, and the choice of pools for a request.
//! Pure functions; the callers in lib.rs read the pools and nodes through the Datastore trait.
//!
//! Node selectors are Calico's selector language, parsed by `selector` (re-exported here as
//! `pools::Selector`, the path the agent and manulctl use).

use std::collections::BTreeMap;

use ipnet::IpNet;
use manul_store::IpPool;

pub use crate::selector::Selector;
use crate::{IpamError, block::MAX_HOST_BITS, error::version_name};

fn invalid(field: &'static str, reason: impl Into<String>) -> IpamError {
    IpamError::InvalidPool {
        field,
        reason: reason.into(),
    }
}

/// Checks `pool` against the rules and the existing pools; returns it with defaults filled in
/// (blockSize 0 means the default, 26 or 122).
pub fn validate(pool: &IpPool, existing: &[IpPool]) -> Result<IpPool, IpamError> {
    let mut pool = pool.clone();
    if pool.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if pool.name.contains('/') {
        return Err(invalid("name", "must not contain '/'"));
    }
    if pool.cidr.trunc() != pool.cidr {
        return Err(invalid(
            "cidr",
            format!(
                "{} is not a network address; did you mean {}?",
                pool.cidr,
                pool.cidr.trunc()
            ),
        ));
    }
    if pool.block_size == 0 {
        pool.block_size = IpPool::default_block_size(&pool.cidr);
    }
    let max = pool.cidr.max_prefix_len();
    let min = max - MAX_HOST_BITS;
    if !(min..=max).contains(&pool.block_size) {
        return Err(invalid(
            "blockSize",
            format!(
                "{} is out of range for {}: use {min}..={max}",
                pool.block_size,
                version_name(max == 128)
            ),
        ));
    }
    if pool.block_size < pool.cidr.prefix_len() {
        return Err(invalid(
            "blockSize",
            format!(
                "/{} blocks do not fit in the pool {}; use a blockSize of at least {}",
                pool.block_size,
                pool.cidr,
                pool.cidr.prefix_len()
            ),
        ));
    }
    if let Err(reason) = Selector::parse(&pool.node_selector) {
        return Err(invalid("nodeSelector", reason));
    }
    use manul_store::EncapsulationMode::Never;
    if pool.vxlan_mode != Never && pool.ipip_mode != Never {
        return Err(invalid(
            "vxlanMode",
            "VXLAN and IP-in-IP cannot both be enabled on one pool",
        ));
    }
    for other in existing {
        if other.name == pool.name {
            return Err(invalid(
                "name",
                format!("a pool named {:?} already exists", pool.name),
            ));
        }
        if overlaps(&other.cidr, &pool.cidr) {
            return Err(invalid(
                "cidr",
                format!(
                    "{} overlaps pool {:?} ({})",
                    pool.cidr, other.name, other.cidr
                ),
            ));
        }
    }
    Ok(pool)
}

pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn selects(pool: &IpPool, labels: &BTreeMap<String, String>) -> bool {
    Selector::parse(&pool.node_selector)
        .map(|selector| selector.matches(labels))
        .unwrap_or(false)
}

/// Pools of one IP version usable for `node` (with `labels`), filtered by the CIDRs the
/// request names (empty: every enabled pool whose nodeSelector selects the node). A named
/// pool that is missing, disabled or does not select the node is an error naming it.
pub fn select<'a>(
    pools: &'a [IpPool],
    v6: bool,
    requested: &[IpNet],
    node: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<&'a IpPool>, IpamError> {
    let version = version_name(v6);
    let no_pool = |reason: String| IpamError::NoMatchingPool {
        version,
        node: node.to_string(),
        reason,
    };
    let mut candidates = Vec::new();
    if requested.is_empty() {
        candidates.extend(
            pools
                .iter()
                .filter(|pool| (pool.cidr.max_prefix_len() == 128) == v6 && !pool.disabled),
        );
    } else {
        for cidr in requested {
            if (cidr.max_prefix_len() == 128) != v6 {
                return Err(IpamError::InvalidRequest(format!(
                    "pool {cidr} is listed among the {version} pools"
                )));
            }
            let pool = pools.iter().find(|pool| pool.cidr == *cidr).ok_or_else(|| {
                no_pool(format!("the requested pool {cidr} does not exist; create it or fix the CNI configuration"))
            })?;
            if pool.disabled {
                return Err(IpamError::PoolDisabled {
                    pool: pool.name.clone(),
                    cidr: pool.cidr,
                });
            }
            if !selects(pool, labels) {
                return Err(IpamError::PoolNotForNode {
                    pool: pool.name.clone(),
                    cidr: pool.cidr,
                    selector: pool.node_selector.clone(),
                    node: node.to_string(),
                });
            }
            candidates.push(pool);
        }
    }
    if candidates.is_empty() {
        return Err(no_pool(format!(
            "there is no enabled {version} pool; create one"
        )));
    }
    let selected: Vec<&IpPool> = candidates
        .into_iter()
        .filter(|pool| selects(pool, labels))
        .collect();
    if selected.is_empty() {
        return Err(no_pool(
            "no enabled pool's nodeSelector selects this node; check the node's labels".into(),
        ));
    }
    Ok(selected)
}

/// The pool containing `address`, if any.
pub fn containing(pools: &[IpPool], address: std::net::IpAddr) -> Option<&IpPool> {
    pools.iter().find(|pool| pool.cidr.contains(&address))
}
