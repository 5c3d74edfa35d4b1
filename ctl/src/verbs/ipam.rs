//! `ipam show [--ip IP] [--show-blocks] [--show-configuration]` (calicoctl's bordered table of
//! addresses per pool and block), `ipam release --ip IP...` (manul-ipam's release of
//! single addresses) and `ipam configure` (the IPAM configuration, compare-and-swap); `ipam
//! check`, `release --from-report` and `show --show-borrowed` are in `ipam_check`. I/O
//! through `Resources`; prints to `Write`.

use std::{io::Write, net::IpAddr};

use manul_ipam::{block, retry::CasRetry};
use manul_store::{DatastoreExt, IpPool, IpamBlock, IpamConfiguration, StoreError};

use crate::{
    cli::IpamConfigureArgs, error::CtlError, kinds::ResourceKind, object::Object,
    store_access::Resources,
};

pub async fn show(
    resources: &Resources,
    ip: Option<IpAddr>,
    show_blocks: bool,
    show_configuration: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let blocks: Vec<IpamBlock> = resources
        .store()
        .list_resources::<IpamBlock>("")
        .await?
        .into_iter()
        .map(|block| block.value)
        .collect();
    if let Some(ip) = ip {
        return show_address(&blocks, &resources.ipam().pools().await?, ip, out);
    }
    if show_configuration {
        let config = resources.ipam().config().await?;
        let rows = vec![
            vec!["StrictAffinity".into(), config.strict_affinity.to_string()],
            vec![
                "AutoAllocateBlocks".into(),
                config.auto_allocate_blocks.to_string(),
            ],
            vec![
                "MaxBlocksPerHost".into(),
                config.max_blocks_per_host.to_string(),
            ],
        ];
        return write_bordered(out, &["PROPERTY", "VALUE"], &rows);
    }
    let mut pools = resources.ipam().pools().await?;
    pools.sort_by_key(|pool| pool.cidr);
    let mut rows = Vec::new();
    for pool in &pools {
        let in_pool: Vec<&IpamBlock> = blocks
            .iter()
            .filter(|block| pool.cidr.contains(&block.cidr))
            .collect();
        let used: u128 = in_pool.iter().map(|block| used_in(block)).sum();
        rows.push(usage_row(
            "IP Pool",
            &pool.cidr.to_string(),
            size(pool),
            used,
        ));
        if show_blocks {
            for block in in_pool {
                let total = block::block_len(&block.cidr).map_or(0, u128::from);
                rows.push(usage_row(
                    "Block",
                    &block.cidr.to_string(),
                    total,
                    used_in(block),
                ));
            }
        }
    }
    write_bordered(
        out,
        &["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"],
        &rows,
    )
}

fn size(pool: &IpPool) -> u128 {
    let bits = u32::from(pool.cidr.max_prefix_len() - pool.cidr.prefix_len());
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

fn used_in(block: &IpamBlock) -> u128 {
    block
        .allocations
        .iter()
        .filter(|slot| slot.is_some())
        .count() as u128
}

fn usage_row(grouping: &str, cidr: &str, total: u128, used: u128) -> Vec<String> {
    let percent = |part: u128| part.saturating_mul(100).checked_div(total).unwrap_or(0);
    let free = total.saturating_sub(used);
    vec![
        grouping.into(),
        cidr.into(),
        total.to_string(),
        format!("{used} ({}%)", percent(used)),
        format!("{free} ({}%)", percent(free)),
    ]
}

fn show_address(
    blocks: &[IpamBlock],
    pools: &[IpPool],
    ip: IpAddr,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let owner = blocks.iter().find_map(|block| {
        let ordinal = block::ordinal_of(&block.cidr, ip)?;
        let index = (*block.allocations.get(ordinal as usize)?)?;
        Some((block, block.attributes.get(index as usize)))
    });
    match owner {
        Some((block, attribute)) => {
            writeln!(out, "IP {ip} is in use (block {})", block.cidr)?;
            if let Some(attribute) = attribute {
                writeln!(out, "Attributes:")?;
                if let Some(handle) = &attribute.handle_id {
                    writeln!(out, "  handle: {handle}")?;
                }
                for (key, value) in &attribute.secondary {
                    writeln!(out, "  {key}: {value}")?;
                }
            }
        }
        None => match manul_ipam::pools::containing(pools, ip) {
            Some(pool) => writeln!(out, "IP {ip} is not assigned (pool {:?})", pool.name)?,
            None => writeln!(out, "IP {ip} is not assigned and is in no IP pool")?,
        },
    }
    Ok(())
}

/// calicoctl's tables for IPAM: bordered with `+---+` lines.
pub(crate) fn write_bordered(
    out: &mut dyn Write,
    headings: &[&str],
    rows: &[Vec<String>],
) -> Result<(), CtlError> {
    let mut widths: Vec<usize> = headings.iter().map(|h| h.len()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(widths.len()) {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let border: String = widths
        .iter()
        .map(|width| format!("+{}", "-".repeat(width + 2)))
        .collect::<String>()
        + "+";
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("| {cell:<width$} "))
            .collect::<String>()
            + "|"
    };
    writeln!(out, "{border}")?;
    let headings: Vec<String> = headings.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", line(&headings))?;
    writeln!(out, "{border}")?;
    for row in rows {
        writeln!(out, "{}", line(row))?;
    }
    writeln!(out, "{border}")?;
    Ok(())
}

/// Releases `addresses`; Err naming those that were not allocated (the others are released).
pub async fn release(
    resources: &Resources,
    addresses: &[IpAddr],
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let released = resources.ipam().release_ips(addresses).await?;
    for address in &released {
        writeln!(out, "Successfully released IP address {address}")?;
    }
    let missed: Vec<String> = addresses
        .iter()
        .filter(|address| !released.contains(address))
        .map(IpAddr::to_string)
        .collect();
    if missed.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Usage(format!(
            "not allocated, nothing released: {}; `manulctl ipam show --ip IP` shows an address",
            missed.join(", ")
        )))
    }
}

/// Changes the given settings of the IPAM configuration by compare-and-swap, creating it with
/// Calico's defaults when absent; a lost race is retried from a fresh read.
pub async fn configure(
    resources: &Resources,
    args: &IpamConfigureArgs,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    if args.strict_affinity.is_none()
        && args.max_blocks_per_host.is_none()
        && args.auto_allocate_blocks.is_none()
    {
        return Err(CtlError::Usage(
            "ipam configure: give --strictaffinity, --max-blocks-per-host or --autoallocateblocks"
                .into(),
        ));
    }
    let kind = ResourceKind::IpamConfiguration;
    let mut retry = CasRetry::new(|| "configuring IPAM".to_string());
    loop {
        let current = resources.get(kind, IpamConfiguration::NAME).await?;
        let mut config = match &current {
            Some(stored) => match &stored.object {
                Object::IpamConfiguration(config) => config.clone(),
                _ => IpamConfiguration::default(),
            },
            None => IpamConfiguration::default(),
        };
        if let Some(strict) = args.strict_affinity {
            config.strict_affinity = strict;
        }
        if let Some(max) = args.max_blocks_per_host {
            config.max_blocks_per_host = max;
        }
        if let Some(auto) = args.auto_allocate_blocks {
            config.auto_allocate_blocks = auto;
        }
        let object = Object::IpamConfiguration(config);
        let result = match &current {
            Some(stored) => resources.update(&object, stored).await,
            None => resources.create(&object).await,
        };
        match result {
            Ok(()) => break,
            Err(error) if error.is_lost_race() => {
                retry
                    .lost(StoreError::Conflict {
                        kind: kind.store_kind(),
                        name: IpamConfiguration::NAME.into(),
                    })
                    .await?
            }
            Err(error) => return Err(error),
        }
    }
    writeln!(out, "Successfully configured IPAM")?;
    Ok(())
}
