//! `ipam check [--show-problem-ips] [-o report.json]`, `ipam release --from-report FILE` and
//! `ipam show --show-borrowed`. The checks are manul-ipam's (`Ipam::check` over the stored
//! objects, `audit::audit` over a snapshot); here they are formatted, written as the JSON
//! report (docs/manulctl.md describes the format) and read back. A release from a report
//! re-checks every address against a fresh snapshot and skips one that is in use since. I/O
//! through `Resources`, the report file and the output `Write`.

use std::{io::Write, net::IpAddr, path::Path};

use ipnet::IpNet;
use manul_ipam::{
    CheckReport,
    audit::{self, Audit, BorrowedAddress},
    vxlan_tunnel_handle_id, vxlan_v6_tunnel_handle_id,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::CtlError, kinds::OUTPUT_API_VERSION, store_access::Resources, timestamp,
    verbs::ipam::write_bordered,
};

pub const REPORT_KIND: &str = "IPAMCheckReport";

/// The report `ipam check -o FILE` writes and `ipam release --from-report FILE` reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub api_version: String,
    pub kind: String,
    pub generated_at: String,
    pub counts: Counts,
    pub leaked_addresses: Vec<LeakedEntry>,
    pub endpoints_without_allocation: Vec<EndpointEntry>,
    pub blocks_of_missing_nodes: Vec<BlockEntry>,
    pub handle_mismatches: Vec<HandleEntry>,
    /// manul-ipam's other findings (block internals, affinities), as text.
    pub problems: Vec<String>,
    /// Harmless states an interrupted write leaves (not counted as problems).
    pub leftovers: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub blocks: usize,
    pub handles: usize,
    pub allocated_addresses: usize,
    pub nodes: usize,
    pub workload_endpoints: usize,
    pub problems: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakedEntry {
    pub address: IpAddr,
    pub handle: String,
    pub block: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointEntry {
    pub workload_endpoint: String,
    pub node: String,
    pub address: IpAddr,
    pub handle: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockEntry {
    pub block: IpNet,
    pub node: String,
    pub allocated_addresses: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleEntry {
    pub handle: String,
    pub block: String,
    pub counted: u32,
    pub held: u32,
}

/// The report of one check. Handles that under-count are problems (the check lists them in
/// `problems` already), over-counts leftovers; the audit's mismatch list carries both.
pub fn report(check: &CheckReport, audit: &Audit, nodes: usize, endpoints: usize) -> Report {
    let problems = check.problems.len()
        + audit.leaked.len()
        + audit.endpoints_without_allocation.len()
        + audit.blocks_of_missing_nodes.len();
    Report {
        api_version: OUTPUT_API_VERSION.into(),
        kind: REPORT_KIND.into(),
        generated_at: timestamp::now(),
        counts: Counts {
            blocks: check.blocks,
            handles: check.handles,
            allocated_addresses: check.allocated,
            nodes,
            workload_endpoints: endpoints,
            problems,
        },
        leaked_addresses: audit
            .leaked
            .iter()
            .map(|leak| LeakedEntry {
                address: leak.address,
                handle: leak.handle.clone(),
                block: leak.block,
                node: leak.node.clone(),
                reason: leak.reason.clone(),
            })
            .collect(),
        endpoints_without_allocation: audit
            .endpoints_without_allocation
            .iter()
            .map(|entry| EndpointEntry {
                workload_endpoint: entry.endpoint.clone(),
                node: entry.node.clone(),
                address: entry.address,
                handle: entry.handle.clone(),
            })
            .collect(),
        blocks_of_missing_nodes: audit
            .blocks_of_missing_nodes
            .iter()
            .map(|entry| BlockEntry {
                block: entry.block,
                node: entry.node.clone(),
                allocated_addresses: entry.allocated,
            })
            .collect(),
        handle_mismatches: audit
            .handle_mismatches
            .iter()
            .map(|entry| HandleEntry {
                handle: entry.handle.clone(),
                block: entry.block.clone(),
                counted: entry.counted,
                held: entry.held,
            })
            .collect(),
        problems: check.problems.clone(),
        leftovers: check.leftovers.clone(),
    }
}

/// `ipam check`: Err (exit 1) when it finds a problem; leftovers are listed only.
pub async fn check(
    resources: &Resources,
    show_problem_ips: bool,
    report_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    writeln!(out, "Checking IPAM for inconsistencies...")?;
    let check = resources.ipam().check().await?;
    let snapshot = resources.ipam().snapshot().await?;
    let audit = audit::audit(&snapshot);
    let report = report(
        &check,
        &audit,
        snapshot.nodes.len(),
        snapshot.endpoints.len(),
    );
    writeln!(
        out,
        "Found {} block(s), {} handle(s), {} allocated address(es), {} node(s), {} workload \
         endpoint(s).",
        check.blocks,
        check.handles,
        check.allocated,
        snapshot.nodes.len(),
        snapshot.endpoints.len()
    )?;
    let sections = [
        ("Allocations without a live endpoint", audit.leaked.len()),
        (
            "Endpoints without an allocation",
            audit.endpoints_without_allocation.len(),
        ),
        (
            "Blocks whose affinity names a missing node",
            audit.blocks_of_missing_nodes.len(),
        ),
        (
            "Handles that disagree with blocks",
            audit.handle_mismatches.len(),
        ),
    ];
    for (title, count) in sections {
        writeln!(out, "{title}: {count}")?;
    }
    if show_problem_ips {
        write_problem_ips(&report, out)?;
    }
    for problem in &check.problems {
        writeln!(out, "problem: {problem}")?;
    }
    for leftover in &check.leftovers {
        writeln!(out, "leftover (harmless): {leftover}")?;
    }
    if let Some(path) = report_file {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|error| CtlError::Usage(format!("cannot encode the report: {error}")))?;
        std::fs::write(path, text + "\n").map_err(|source| CtlError::File {
            path: path.to_path_buf(),
            source,
        })?;
        writeln!(out, "Report written to {}", path.display())?;
    }
    writeln!(
        out,
        "Check complete; found {} problem(s) and {} leftover(s).",
        report.counts.problems,
        check.leftovers.len()
    )?;
    if report.counts.problems == 0 {
        return Ok(());
    }
    let hint = if audit.leaked.is_empty() {
        ""
    } else {
        "; `manulctl ipam check -o report.json` then `manulctl ipam release --from-report \
         report.json` releases the leaked addresses"
    };
    Err(CtlError::Usage(format!(
        "IPAM check found {} problem(s); see above{hint}",
        report.counts.problems
    )))
}

fn write_problem_ips(report: &Report, out: &mut dyn Write) -> Result<(), CtlError> {
    for leak in &report.leaked_addresses {
        writeln!(
            out,
            "  leaked {} (handle {:?}, block {}, node {}): {}",
            leak.address,
            leak.handle,
            leak.block,
            leak.node.as_deref().unwrap_or("unknown"),
            leak.reason
        )?;
    }
    for entry in &report.endpoints_without_allocation {
        writeln!(
            out,
            "  endpoint {} (node {}) lists {}, which no block attributes to handle {:?}",
            entry.workload_endpoint, entry.node, entry.address, entry.handle
        )?;
    }
    for entry in &report.blocks_of_missing_nodes {
        writeln!(
            out,
            "  block {} has affinity to node {:?}, which does not exist ({} address(es) \
             allocated)",
            entry.block, entry.node, entry.allocated_addresses
        )?;
    }
    for entry in &report.handle_mismatches {
        writeln!(
            out,
            "  handle {:?} counts {} address(es) in block {}, which attributes {} to it",
            entry.handle, entry.counted, entry.block, entry.held
        )?;
    }
    Ok(())
}

/// Reads a report written by `ipam check -o FILE`.
pub fn read_report(path: &Path) -> Result<Report, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtlError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text).map_err(|error| {
        CtlError::Usage(format!(
            "{} is not a report of `manulctl ipam check -o FILE`: {error}",
            path.display()
        ))
    })?;
    if report.kind != REPORT_KIND {
        return Err(CtlError::Usage(format!(
            "{}: kind {:?} is not {REPORT_KIND}",
            path.display(),
            report.kind
        )));
    }
    Ok(report)
}

/// `ipam release --from-report FILE`: releases each leaked address of the report that a
/// fresh check still finds leaked with the same handle; skips the others, saying why.
pub async fn release_from_report(
    resources: &Resources,
    path: &Path,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let report = read_report(path)?;
    let audit = audit::audit(&resources.ipam().snapshot().await?);
    let (mut released, mut skipped) = (0, 0);
    for leak in &report.leaked_addresses {
        let freed = match audit.still_leaked(leak.address, &leak.handle) {
            Some(_) => {
                resources
                    .ipam()
                    .release_ip_of_handle(leak.address, &leak.handle)
                    .await?
            }
            None => false,
        };
        if freed {
            released += 1;
            writeln!(out, "Released {} (handle {:?})", leak.address, leak.handle)?;
        } else {
            skipped += 1;
            writeln!(
                out,
                "Skipped {}: it is no longer leaked by handle {:?} (in use or released since \
                 the report)",
                leak.address, leak.handle
            )?;
        }
    }
    writeln!(
        out,
        "Released {released} leaked address(es) of {}; skipped {skipped}.",
        report.leaked_addresses.len()
    )?;
    Ok(())
}

/// calicoctl's `ipam show --show-borrowed` table.
pub async fn show_borrowed(resources: &Resources, out: &mut dyn Write) -> Result<(), CtlError> {
    let snapshot = resources.ipam().snapshot().await?;
    let rows: Vec<Vec<String>> = audit::borrowed(&snapshot.blocks)
        .iter()
        .map(borrowed_row)
        .collect();
    write_bordered(
        out,
        &[
            "ADDRESS",
            "BORROWING-NODE",
            "BLOCK",
            "BLOCK OWNER",
            "TYPE",
            "ALLOCATED-TO",
        ],
        &rows,
    )
}

fn borrowed_row(entry: &BorrowedAddress) -> Vec<String> {
    let tunnel = entry.handle == vxlan_tunnel_handle_id(&entry.borrowing_node)
        || entry.handle == vxlan_v6_tunnel_handle_id(&entry.borrowing_node);
    let (kind, allocated_to) = match (&entry.workload, tunnel) {
        (_, true) => ("vxlanTunnelAddress", entry.borrowing_node.clone()),
        (Some(workload), false) => ("pod", workload.clone()),
        (None, false) => ("ipam", entry.handle.clone()),
    };
    vec![
        entry.address.to_string(),
        entry.borrowing_node.clone(),
        entry.block.to_string(),
        entry.block_owner.clone(),
        kind.to_string(),
        allocated_to,
    ]
}
