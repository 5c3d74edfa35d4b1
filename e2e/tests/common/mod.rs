//! Helpers shared by the one-node, bad-input and reconcile tests: a node with a tiny pool
//! (seeded in its store before the agent starts), manul runs with a custom config, ping with a
//! deadline, and "nothing left behind" checks. Needs root; does I/O.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use manul_e2e::{CniOutcome, Netns, Node, NodeOptions, Pod, is_manul_proto, poll_until};
use serde_json::Value;

/// How long traffic and reconciles may take to converge.
pub const CONVERGE: Duration = Duration::from_secs(15);

/// A node whose only pool is `cidr` with blocks of the pool's own size (a /30: 4 addresses).
/// The agent refuses a default pool smaller than its /26 blocks, so the pool is written to the
/// store before the agent's first start (the agent then creates none).
pub fn tiny_pool_node(tag: &str, cidr: &str) -> Result<Node> {
    let mut node = Node::start_with(NodeOptions {
        agent: false,
        pool: cidr.to_string(),
        ..NodeOptions::new(tag)
    })?;
    node.opts.agent = true;
    let cidr: ipnet::IpNet = cidr.parse()?;
    let url = format!("embedded://{}", node.store_path().display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = manul_store::open_datastore(&url)?;
            let pool = manul_store::IpPool {
                block_size: cidr.prefix_len(),
                ..manul_store::IpPool::new("tiny", cidr)
            };
            manul_ipam::Ipam::new(store).create_pool(&pool).await?;
            anyhow::Ok(())
        })
        .context("seed the tiny pool")?;
    node.start_agent()?;
    Ok(node)
}

/// Runs `command` of `manul` for `pod` with `conf` on stdin.
pub fn manul_with(pod: &Pod, command: &str, conf: Value) -> Result<CniOutcome> {
    pod.call(manul_e2e::bin_path("manul")?, command, conf)
        .run_in(&pod.node.ns)
}

/// Polls `busybox ping -c1 -W2 <ip>` from `from` until it answers.
pub fn ping(from: &Netns, ip: &str) -> Result<()> {
    poll_until(CONVERGE, &format!("ping {ip} from {}", from.name()), || {
        let out = from.exec(&["busybox", "ping", "-c1", "-W2", ip])?;
        Ok(out.status.success().then_some(()))
    })
}

/// The node's proto-manul /32 routes (destinations without prefix, e.g. "10.244.0.5").
pub fn manul_host_routes(node: &Node) -> Result<Vec<String>> {
    Ok(node
        .routes()?
        .iter()
        .filter(|r| is_manul_proto(r) && r["type"] != "blackhole")
        .filter_map(|r| r["dst"].as_str())
        .filter(|d| !d.contains('/'))
        .map(str::to_string)
        .collect())
}

/// `proxy_arp` of `link` as the node's kernel has it.
pub fn proxy_arp(node: &Node, link: &str) -> Result<String> {
    let path = format!("/proc/sys/net/ipv4/conf/{link}/proxy_arp");
    Ok(node.ns.exec_ok(&["cat", &path])?.trim().to_string())
}

/// No cali link, no proto-manul /32 route, no endpoint on `node`.
pub fn assert_clean(node: &Node) -> Result<()> {
    ensure!(
        node.cali_links()?.is_empty(),
        "cali links left: {:?}",
        node.cali_links()?
    );
    let routes = manul_host_routes(node)?;
    ensure!(routes.is_empty(), "proto-manul /32 routes left: {routes:?}");
    let endpoints = node.endpoints()?;
    ensure!(endpoints.is_empty(), "endpoints left: {endpoints:?}");
    Ok(())
}

/// ADDs one fresh pod per address of a pool of `n` and returns them (all must succeed).
pub fn fill<'n>(node: &'n Node, tag: &str, n: usize) -> Result<Vec<(Pod<'n>, String)>> {
    (0..n)
        .map(|i| {
            let pod = Pod::new(node, &format!("{tag}{i}"))?;
            let result = pod.add().with_context(|| format!("ADD {tag}{i}"))?;
            let ip = manul_e2e::cni::result_ipv4(&result).context("no IPv4")?;
            Ok((pod, ip))
        })
        .collect()
}
