//! What a cluster would turn into outages, on a real node: a late DEL of an old sandbox of a
//! pod must not cut off its new sandbox; an agent restarted under another node name must not
//! wipe the node's pods; IPv6 pods are routed off the node. Needs root and the workspace
//! binaries; does I/O in namespaces of its own.

mod common;

use anyhow::{Context, Result, ensure};
use common::{CONVERGE, manul_with, ping};
use manul_e2e::{Node, NodeOptions, Pod, cni::result_ipv4, poll_until};
use serde_json::Value;

#[test]
fn a_late_del_of_an_old_sandbox_leaves_the_new_sandbox_of_the_pod_reachable() -> Result<()> {
    let node = Node::start("sandbox")?;
    let peer = Pod::new(&node, "peer")?;
    let ip_peer = result_ipv4(&peer.add()?).context("no IPv4 for peer")?;
    // Two sandboxes of one pod (a StatefulSet pod recreated): the same namespace and name, so
    // the same host interface name.
    let old = Pod::new(&node, "db-0")?;
    old.add()?;
    let new = Pod::new(&node, "db-0")?;
    let result_new = new.add()?;
    let ip_new = result_ipv4(&result_new).context("no IPv4 for the new sandbox")?;
    ping(&peer.ns, &ip_new)?;
    // The kubelet's DEL of the old sandbox comes after the new sandbox's ADD.
    old.del()?;
    ping(&peer.ns, &ip_new)?;
    ping(&new.ns, &ip_peer)?;
    let route = node
        .route_to(&ip_new)?
        .with_context(|| format!("no route to {ip_new}"))?;
    ensure!(
        route["dev"]
            .as_str()
            .is_some_and(|dev| dev.starts_with("cali")),
        "route to {ip_new}: {route}"
    );
    let mut conf = node.manul_conf(&new.network);
    conf["prevResult"] = result_new;
    let check = manul_with(&new, "CHECK", conf)?;
    ensure!(
        check.success(),
        "CHECK of the new sandbox: {}",
        check.stdout
    );
    ensure!(node.endpoints()?.len() == 2, "{:?}", node.endpoints()?);
    new.del()?;
    peer.del()
}

#[test]
fn an_agent_restarted_under_another_node_name_keeps_the_running_pods() -> Result<()> {
    let node = Node::start_with(NodeOptions {
        reconcile_interval: Some(1),
        ..NodeOptions::new("rename")
    })?;
    let a = Pod::new(&node, "a")?;
    let b = Pod::new(&node, "b")?;
    let ip_a = result_ipv4(&a.add()?).context("no IPv4 for a")?;
    let ip_b = result_ipv4(&b.add()?).context("no IPv4 for b")?;
    let links = node.cali_links()?;
    node.stop_agent()?;
    node.start_agent_named("not-this-node")?;
    // The refusal is logged by the first reconcile; wait for two periodic ones as well.
    poll_until(CONVERGE, "the agent to refuse the deletion", || {
        Ok((node
            .agent_log()
            .matches("reconcile refused a deletion")
            .count()
            >= 3)
            .then_some(()))
    })?;
    ensure!(
        node.cali_links()? == links,
        "links removed: {:?}",
        node.cali_links()?
    );
    ping(&a.ns, &ip_b)?;
    ping(&b.ns, &ip_a)?;
    // Back under its own name, it finds its pods and removes nothing either.
    node.stop_agent()?;
    node.start_agent()?;
    ensure!(
        node.cali_links()? == links,
        "links removed: {:?}",
        node.cali_links()?
    );
    ping(&a.ns, &ip_b)?;
    a.del()?;
    b.del()
}

fn result_ipv6(result: &Value) -> Option<String> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .find(|address| address.contains(':'))
        .and_then(|address| address.split('/').next())
        .map(str::to_string)
}

#[test]
fn an_ipv6_pod_reaches_a_host_beyond_the_node() -> Result<()> {
    let node = Node::start_with(NodeOptions {
        ipv6_pool: Some("fd00:244::/112".to_string()),
        ..NodeOptions::new("ipv6")
    })?;
    let pod = Pod::new(&node, "v6")?;
    let mut conf = node.manul_conf(&pod.network);
    conf["ipam"]["assign_ipv6"] = Value::Bool(true);
    let result = manul_with(&pod, "ADD", conf.clone())?.result()?;
    let ip6 = result_ipv6(&result).with_context(|| format!("no IPv6 in {result}"))?;
    let upstream = node.upstream_ipv6().to_string();
    // Pod -> node -> upstream and back: the node must forward IPv6.
    poll_until(CONVERGE, &format!("ping {upstream} from the pod"), || {
        let out = pod
            .ns
            .exec(&["busybox", "ping", "-6", "-c1", "-W2", &upstream])?;
        Ok(out.status.success().then_some(()))
    })?;
    poll_until(CONVERGE, &format!("ping {ip6} from upstream"), || {
        let out = node
            .upstream
            .exec(&["busybox", "ping", "-6", "-c1", "-W2", &ip6])?;
        Ok(out.status.success().then_some(()))
    })?;
    let forwarding = node
        .ns
        .exec_ok(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"])?;
    ensure!(forwarding.trim() == "1", "forwarding {forwarding}");
    let del = manul_with(&pod, "DEL", conf)?;
    ensure!(del.success(), "DEL: {}", del.stdout);
    Ok(())
}

#[test]
fn what_an_answered_add_wrote_survives_a_kill_9_of_the_agent() -> Result<()> {
    let node = Node::start("crash")?;
    let pods: Vec<Pod> = (0..3)
        .map(|index| Pod::new(&node, &format!("p{index}")))
        .collect::<Result<_>>()?;
    let mut addresses = Vec::new();
    for pod in &pods {
        addresses.push(result_ipv4(&pod.add()?).context("no IPv4")?);
    }
    // The agent defers its store's flushes to one per request: an answered request must be on
    // disk all the same.
    node.kill_agent()?;
    node.start_agent()?;
    let mut recorded: Vec<String> = node
        .endpoints()?
        .iter()
        .flat_map(|endpoint| endpoint.addresses.clone())
        .map(|address| address.split('/').next().unwrap_or_default().to_string())
        .collect();
    recorded.sort();
    addresses.sort();
    ensure!(
        recorded == addresses,
        "recorded {recorded:?}, added {addresses:?}"
    );
    for pod in &pods {
        pod.del()?;
    }
    Ok(())
}
