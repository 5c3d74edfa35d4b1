//! podman (CNI backend) as the runtime of a manul network on a node namespace: containers get
//! pool addresses, reach each other through the node's routes, and give everything back on
//! `podman rm`. Needs root and the workspace binaries (`cargo test --workspace`); does I/O.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use manul_e2e::chain::portmap_entry;
use manul_e2e::{Node, Podman, is_manul_proto, poll_until};
use serde_json::Value;

/// Checks the node side of one pod address: a /32 route of ours via a cali link with the
/// MAC ee:ee:ee:ee:ee:ee and proxy ARP on.
fn assert_host_side(node: &Node, ip: &str) -> Result<String> {
    let route = node
        .route_to(ip)?
        .with_context(|| format!("no host route to {ip}"))?;
    ensure!(
        is_manul_proto(&route),
        "route to {ip} not proto manul: {route}"
    );
    ensure!(
        route["scope"] == "link",
        "route to {ip} not scope link: {route}"
    );
    let dev = route["dev"]
        .as_str()
        .context("route without dev")?
        .to_string();
    ensure!(
        dev.starts_with("cali") && dev.len() == 15,
        "unexpected host interface {dev}"
    );
    let link = node.ns.json(&["link", "show", "dev", &dev])?;
    ensure!(
        link[0]["address"] == "ee:ee:ee:ee:ee:ee",
        "{dev} MAC: {}",
        link[0]["address"]
    );
    let proxy = node
        .ns
        .exec_ok(&["cat", &format!("/proc/sys/net/ipv4/conf/{dev}/proxy_arp")])?;
    ensure!(proxy.trim() == "1", "proxy_arp on {dev} is {proxy}");
    Ok(dev)
}

fn has_blackhole(node: &Node) -> Result<bool> {
    Ok(node
        .routes()?
        .iter()
        .any(|r: &Value| r["type"] == "blackhole" && is_manul_proto(r)))
}

#[test]
fn podman_containers_get_pool_addresses_ping_and_release() -> Result<()> {
    let node = Node::start("podman")?;
    let conflist = node.manul_conflist("manulnet", &[portmap_entry()]);
    let podman = Podman::new(&node.ns, &conflist)?;
    podman.run("a", &[], &["sleep", "3600"])?;
    podman.run("b", &[], &["sleep", "3600"])?;
    let (a, b) = (podman.ip_of("a")?, podman.ip_of("b")?);
    ensure!(a != b, "both containers got {a}");
    for ip in [&a, &b] {
        ensure!(
            ip.starts_with("10.244."),
            "{ip} is not from the pool 10.244.0.0/16"
        );
    }

    let held = node.endpoints()?;
    let addrs: Vec<String> = held.iter().flat_map(|e| e.addresses.clone()).collect();
    for ip in [&a, &b] {
        ensure!(
            addrs.iter().any(|x| x.split('/').next() == Some(ip)),
            "{ip} not in {held:?}"
        );
    }
    let dev_a = assert_host_side(&node, &a)?;
    let dev_b = assert_host_side(&node, &b)?;
    ensure!(dev_a != dev_b);
    ensure!(
        has_blackhole(&node)?,
        "no blackhole route for the node's block"
    );

    let routes = podman.exec("a", &["ip", "route"])?;
    let routes = String::from_utf8_lossy(&routes.stdout);
    ensure!(
        routes.contains("default via 169.254.1.1"),
        "pod routes: {routes}"
    );
    ensure!(
        routes.contains("169.254.1.1 dev eth0"),
        "pod routes: {routes}"
    );

    let ping = podman.exec("a", &["ping", "-c1", "-W2", &b])?;
    ensure!(
        ping.status.success(),
        "a -> b: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let ping = podman.exec("b", &["ping", "-c1", "-W2", &a])?;
    ensure!(
        ping.status.success(),
        "b -> a: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    podman.rm(&["a", "b"])?;
    poll_until(Duration::from_secs(10), "endpoints released", || {
        Ok(node.endpoints()?.is_empty().then_some(()))
    })?;
    let links = node.cali_links()?;
    ensure!(links.is_empty(), "cali links left on the node: {links:?}");
    for ip in [&a, &b] {
        ensure!(node.route_to(ip)?.is_none(), "host route to {ip} left");
    }
    Ok(())
}

#[test]
fn podman_reuses_released_addresses_without_leaks() -> Result<()> {
    let node = Node::start("podreuse")?;
    let podman = Podman::new(&node.ns, &node.manul_conflist("manulnet", &[]))?;
    for round in 0..3 {
        let name = format!("c{round}");
        podman.run(&name, &[], &["sleep", "3600"])?;
        ensure!(
            node.endpoints()?.len() == 1,
            "round {round}: {:?}",
            node.endpoints()?
        );
        podman.rm(&[&name])?;
        ensure!(
            node.endpoints()?.is_empty(),
            "round {round}: endpoint not released"
        );
        ensure!(
            node.cali_links()?.is_empty(),
            "round {round}: cali link left"
        );
    }
    Ok(())
}
