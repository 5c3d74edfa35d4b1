//! The agent's reconciler against the real kernel: a restart leaves running pods alone (same
//! links, same routes, traffic flows), missing routes and sysctls come back (at restart and
//! periodically), and stray cali links and proto-manul routes go while foreign links and
//! routes stay. Needs root and the workspace binaries (`cargo test --workspace`); does I/O.

mod common;

use anyhow::{Context, Result, ensure};
use common::{CONVERGE, assert_clean, manul_host_routes, ping, proxy_arp};
use manul_e2e::cni::result_ipv4;
use manul_e2e::{Node, NodeOptions, Pod, is_manul_proto, poll_until};
use serde_json::Value;

/// A node whose agent reconciles every second.
fn fast_node(tag: &str) -> Result<Node> {
    Node::start_with(NodeOptions {
        reconcile_interval: Some(1),
        ..NodeOptions::new(tag)
    })
}

/// ADDs a pod; returns it with its address and host interface.
fn wired<'n>(node: &'n Node, name: &str) -> Result<(Pod<'n>, String, String)> {
    let pod = Pod::new(node, name)?;
    let ip = result_ipv4(&pod.add()?).context("no IPv4")?;
    let cali = node
        .endpoints()?
        .into_iter()
        .find(|e| e.container_id == pod.container_id)
        .context("no endpoint")?
        .interface_name;
    Ok((pod, ip, cali))
}

/// `(name, ifindex)` of every cali link, sorted.
fn cali_ifindexes(node: &Node) -> Result<Vec<(String, u64)>> {
    let mut links: Vec<(String, u64)> = node
        .ns
        .json(&["link", "show"])?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["ifname"].as_str()?.to_string(), l["ifindex"].as_u64()?)))
        .filter(|(name, _)| name.starts_with("cali"))
        .collect();
    links.sort();
    Ok(links)
}

/// Every proto-manul route of the node, as `ip -j` prints them, sorted.
fn manul_routes(node: &Node) -> Result<Vec<Value>> {
    let mut routes: Vec<Value> = node.routes()?.into_iter().filter(is_manul_proto).collect();
    routes.sort_by_key(|r| r.to_string());
    Ok(routes)
}

fn restart(node: &Node) -> Result<()> {
    node.stop_agent()?;
    node.start_agent()
}

#[test]
fn restart_does_not_disturb_running_pods() -> Result<()> {
    let node = Node::start("restart")?;
    let (a, ip_a, _) = wired(&node, "a")?;
    let (b, ip_b, _) = wired(&node, "b")?;
    ping(&a.ns, &ip_b)?;
    let links = cali_ifindexes(&node)?;
    let routes = manul_routes(&node)?;
    ensure!(
        links.len() == 2 && routes.len() == 3,
        "{links:?} {routes:?}"
    );

    node.stop_agent()?;
    // Traffic needs no agent.
    ping(&b.ns, &ip_a)?;
    node.start_agent()?;

    ensure!(
        cali_ifindexes(&node)? == links,
        "links recreated: {:?}",
        cali_ifindexes(&node)?
    );
    ensure!(
        manul_routes(&node)? == routes,
        "routes changed: {:?}",
        manul_routes(&node)?
    );
    ping(&a.ns, &ip_b)?;
    ping(&b.ns, &ip_a)?;
    ensure!(node.endpoints()?.len() == 2);
    a.del()?;
    b.del()?;
    assert_clean(&node)
}

/// Removes `ip`'s host route and sets `cali`'s proxy_arp to 0, by hand.
fn break_pod(node: &Node, ip: &str, cali: &str) -> Result<()> {
    node.ns.ip(&["route", "del", &format!("{ip}/32")])?;
    node.ns
        .sysctl(&format!("net.ipv4.conf.{cali}.proxy_arp"), "0")?;
    ensure!(node.route_to(ip)?.is_none() && proxy_arp(node, cali)? == "0");
    Ok(())
}

/// Polls until `ip`'s proto-manul /32 via `cali` and proxy_arp=1 are back.
fn wait_restored(node: &Node, ip: &str, cali: &str) -> Result<()> {
    poll_until(
        CONVERGE,
        &format!("route to {ip} and proxy_arp of {cali}"),
        || {
            let route = node.route_to(ip)?;
            let ok = route.is_some_and(|r| r["dev"] == cali && is_manul_proto(&r))
                && proxy_arp(node, cali)? == "1";
            Ok(ok.then_some(()))
        },
    )
}

#[test]
fn restart_restores_a_missing_route_and_proxy_arp() -> Result<()> {
    let node = Node::start("restore")?;
    let (pod, ip, cali) = wired(&node, "r")?;
    let index = cali_ifindexes(&node)?;
    break_pod(&node, &ip, &cali)?;
    restart(&node)?;
    wait_restored(&node, &ip, &cali)?;
    ensure!(cali_ifindexes(&node)? == index, "link recreated");
    ping(&pod.ns, &node.uplink_ip().to_string())?;
    pod.del()?;
    assert_clean(&node)
}

#[test]
fn periodic_reconcile_restores_a_missing_route_and_proxy_arp() -> Result<()> {
    let node = fast_node("periodic")?;
    let (pod, ip, cali) = wired(&node, "p")?;
    break_pod(&node, &ip, &cali)?;
    wait_restored(&node, &ip, &cali)?;
    ping(&pod.ns, &node.uplink_ip().to_string())?;
    pod.del()?;
    assert_clean(&node)
}

/// Adds, by hand: a stray cali veth and a stray proto-109 route (ours by name and protocol,
/// belonging to nothing), a proto-static route and a foreign veth (not ours).
fn add_strays_and_foreign(node: &Node) -> Result<()> {
    let ns = &node.ns;
    ns.ip(&[
        "link",
        "add",
        "cali0badc0ffee",
        "type",
        "veth",
        "peer",
        "name",
        "tmpx",
    ])?;
    ns.ip(&["link", "set", "cali0badc0ffee", "up"])?;
    ns.ip(&[
        "link",
        "add",
        "vethforeign",
        "type",
        "veth",
        "peer",
        "name",
        "vethforeignp",
    ])?;
    ns.ip(&[
        "route",
        "add",
        "10.250.0.0/24",
        "dev",
        "eth0",
        "proto",
        "109",
    ])?;
    ns.ip(&[
        "route",
        "add",
        "10.251.0.0/24",
        "dev",
        "eth0",
        "proto",
        "static",
    ])?;
    Ok(())
}

/// Polls until the strays are gone, then checks the foreign state and the pod survived.
fn check_strays_gone(node: &Node, pod_ip: &str, pod_cali: &str) -> Result<()> {
    poll_until(
        CONVERGE,
        "stray cali link and proto-109 route removed",
        || {
            let link_gone = !node.ns.link_names()?.iter().any(|l| l == "cali0badc0ffee");
            let route_gone = node.route_to("10.250.0.0/24")?.is_none();
            Ok((link_gone && route_gone).then_some(()))
        },
    )?;
    let links = node.ns.link_names()?;
    ensure!(
        links.iter().any(|l| l == "vethforeign"),
        "vethforeign removed: {links:?}"
    );
    let stat = node.route_to("10.251.0.0/24")?;
    ensure!(
        stat.as_ref().is_some_and(|r| r["protocol"] == "static"),
        "proto static route: {stat:?}"
    );
    ensure!(
        links.iter().any(|l| l == pod_cali),
        "the pod's {pod_cali} removed"
    );
    ensure!(manul_host_routes(node)? == vec![pod_ip.to_string()]);
    Ok(())
}

#[test]
fn periodic_reconcile_removes_strays_and_keeps_foreign_state() -> Result<()> {
    let node = fast_node("strays")?;
    let (pod, ip, cali) = wired(&node, "s")?;
    add_strays_and_foreign(&node)?;
    check_strays_gone(&node, &ip, &cali)?;
    ping(&pod.ns, &node.uplink_ip().to_string())?;
    pod.del()?;
    assert_clean(&node)
}

#[test]
fn restart_removes_strays_and_keeps_foreign_state() -> Result<()> {
    let node = Node::start("straysr")?;
    let (pod, ip, cali) = wired(&node, "s")?;
    node.stop_agent()?;
    add_strays_and_foreign(&node)?;
    node.start_agent()?;
    check_strays_gone(&node, &ip, &cali)?;
    ping(&pod.ns, &node.uplink_ip().to_string())?;
    pod.del()?;
    assert_clean(&node)
}
