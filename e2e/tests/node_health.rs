//! The real `manul-agent` in a node namespace: it registers its Node with the uplink address it
//! autodetected (first-found, with the subnet's prefix length), and serves /readyz, /livez and
//! /metrics on 127.0.0.1:9099 inside the namespace, with the endpoint count after one ADD.
//! Needs root and the workspace binaries; does I/O.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, ensure};
use manul_e2e::{Node, Pod, http_get_path, poll_until};
use manul_store::{DatastoreExt, embedded::EmbeddedStore};

const HEALTH: &str = "127.0.0.1:9099";

/// (status line, body) of a GET inside the node's namespace.
fn get(node: &Node, path: &str) -> Result<(String, String)> {
    let address: SocketAddr = HEALTH.parse()?;
    let reply = http_get_path(&node.ns, address, path)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

#[test]
fn the_agent_registers_its_autodetected_address_and_serves_health_and_metrics() -> Result<()> {
    manul_e2e::require_root()?;
    let node = Node::start("health")?;
    let ready = poll_until(Duration::from_secs(20), "/readyz 200", || {
        let (status, body) = get(&node, "/readyz")?;
        Ok(status.contains(" 200 ").then_some(body))
    })?;
    assert_eq!(ready, "ready\n");
    let (status, body) = get(&node, "/livez")?;
    ensure!(
        status.contains(" 200 ") && body == "alive\n",
        "{status} {body}"
    );

    let pod = Pod::new(&node, "a")?;
    pod.add()?;
    let (status, metrics) = get(&node, "/metrics")?;
    ensure!(status.contains(" 200 "), "{status}");
    for line in [
        "manul_endpoints 1",
        "manul_routes_programmed{kind=\"pod\"} 1",
        "manul_ipam_blocks 1",
        "manul_ipam_addresses_in_use 1",
        "manul_reconcile_refused_deletions_total 0",
        "# TYPE manul_apply_duration_seconds histogram",
        "# TYPE manul_bgp_peers gauge",
        "# TYPE manul_bgp_prefixes gauge",
    ] {
        ensure!(
            metrics.lines().any(|l| l == line || l.starts_with(line)),
            "{line:?} missing:\n{metrics}"
        );
    }

    node.stop_agent()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stored = runtime.block_on(async {
        let store = EmbeddedStore::open(&node.store_path())?;
        store
            .get_resource::<manul_store::Node>(&node.opts.tag)
            .await
    })?;
    let stored = stored.context("the agent registered no Node")?.value;
    let address = stored.bgp.and_then(|bgp| bgp.ipv4_address);
    assert_eq!(
        address,
        Some(format!("{}/24", node.uplink_ip()).parse()?),
        "the uplink's address with its subnet's prefix length"
    );
    Ok(())
}
