//! Many CNI requests at once on one node, as a kubelet starting a deployment sends them: every
//! ADD succeeds with its own address, every DEL succeeds, nothing is left. (Found by the
//! benchmark: concurrent route dumps on one netlink socket failed with EBUSY.) Needs root.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use manul_e2e::{Node, Pod, cni::result_ipv4};

const PODS: usize = 16;

#[test]
fn concurrent_adds_and_dels_all_succeed_with_distinct_addresses() -> Result<()> {
    manul_e2e::require_root()?;
    let node = Node::start("concurrent")?;
    let pods: Vec<Pod> = (0..PODS)
        .map(|index| Pod::new(&node, &format!("c{index}")))
        .collect::<Result<_>>()?;

    let results: Vec<Result<serde_json::Value>> = std::thread::scope(|scope| {
        let running: Vec<_> = pods.iter().map(|pod| scope.spawn(|| pod.add())).collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("ADD thread panicked")))
            })
            .collect()
    });
    let mut addresses = BTreeSet::new();
    for (index, result) in results.into_iter().enumerate() {
        let result = result.with_context(|| format!("ADD of pod {index}"))?;
        let address = result_ipv4(&result).context("no IPv4 address in the result")?;
        ensure!(
            addresses.insert(address.clone()),
            "address {address} given twice"
        );
    }
    ensure!(
        node.cali_links()?.len() == PODS,
        "cali links: {:?}",
        node.cali_links()?
    );

    let deleted: Vec<Result<()>> = std::thread::scope(|scope| {
        let running: Vec<_> = pods.iter().map(|pod| scope.spawn(|| pod.del())).collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("DEL thread panicked")))
            })
            .collect()
    });
    for (index, outcome) in deleted.into_iter().enumerate() {
        outcome.with_context(|| format!("DEL of pod {index}"))?;
    }
    ensure!(
        node.cali_links()?.is_empty(),
        "cali links left: {:?}",
        node.cali_links()?
    );
    ensure!(
        node.endpoints()?.is_empty(),
        "endpoints left: {:?}",
        node.endpoints()?
    );
    Ok(())
}
