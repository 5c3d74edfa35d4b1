//! One node, one running agent, the real `manul` plugin called directly: pods are wired (host
//! routes, proxy ARP, block blackhole, pod routes, CNI result) and reach each other and the
//! node; DEL, repeated ADD/DEL, failed ADDs and CHECK leave exactly the state they should.
//! Needs root and the workspace binaries (`cargo test --workspace`); does I/O.

mod common;

use anyhow::{Context, Result, ensure};
use common::{assert_clean, fill, manul_host_routes, manul_with, ping, proxy_arp, tiny_pool_node};
use manul_e2e::cni::result_ipv4;
use manul_e2e::{Node, Pod, is_manul_proto};
use serde_json::{Value, json};

const TINY: &str = "10.245.0.0/30";

/// The host (cali) interface named in a CNI result: the entry without a sandbox.
fn host_ifname(result: &Value) -> Result<String> {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["sandbox"].as_str().is_none_or(str::is_empty))
        .and_then(|i| i["name"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no host interface in {result}"))
}

/// The /26 block holding `ip`, e.g. "10.244.3.64/26".
fn block_of(ip: &str) -> Result<String> {
    let net: ipnet::Ipv4Net = format!("{ip}/26").parse()?;
    Ok(net.trunc().to_string())
}

#[test]
fn two_pods_are_wired_and_ping_each_other_and_the_node() -> Result<()> {
    let node = Node::start("wire")?;
    let a = Pod::new(&node, "a")?;
    let b = Pod::new(&node, "b")?;
    let ra = a.add()?;
    let rb = b.add()?;
    let ip_a = result_ipv4(&ra).context("no IPv4 for a")?;
    let ip_b = result_ipv4(&rb).context("no IPv4 for b")?;
    ensure!(ip_a != ip_b, "both pods got {ip_a}");

    // The CNI result.
    ensure!(ra["cniVersion"] == "1.0.0", "cniVersion: {ra}");
    ensure!(ra["ips"][0]["address"] == format!("{ip_a}/32"), "ips: {ra}");
    let cali_a = host_ifname(&ra)?;
    ensure!(cali_a.starts_with("cali"), "host end {cali_a}");
    let sandbox = a.ns.path().display().to_string();
    let pod_end = ra["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == "eth0" && i["sandbox"] == sandbox.as_str());
    ensure!(pod_end.is_some(), "no eth0 with sandbox {sandbox}: {ra}");

    // The node: a /32 per pod on its cali link, proxy ARP, the block's blackhole.
    let cali_b = host_ifname(&rb)?;
    for (ip, cali) in [(&ip_a, &cali_a), (&ip_b, &cali_b)] {
        let route = node
            .route_to(ip)?
            .with_context(|| format!("no route to {ip}"))?;
        ensure!(
            route["dev"] == cali.as_str() && route["scope"] == "link" && is_manul_proto(&route),
            "route to {ip}: {route}"
        );
        ensure!(proxy_arp(&node, cali)? == "1", "proxy_arp of {cali}");
    }
    let block = block_of(&ip_a)?;
    let blackhole = node
        .routes()?
        .into_iter()
        .find(|r| r["type"] == "blackhole" && r["dst"] == block.as_str());
    ensure!(
        blackhole.as_ref().is_some_and(is_manul_proto),
        "blackhole {block}: {blackhole:?} in {:?}",
        node.routes()?
    );

    // The pod: eth0 with the /32, the link-local gateway, the default route through it.
    let eth0 = a.ns.json(&["-4", "addr", "show", "dev", "eth0"])?;
    let addr = &eth0[0]["addr_info"][0];
    ensure!(
        addr["local"] == ip_a.as_str() && addr["prefixlen"] == 32,
        "pod eth0: {eth0}"
    );
    let routes = a.ns.json(&["-4", "route", "show"])?;
    let routes = routes.as_array().context("routes")?;
    ensure!(
        routes
            .iter()
            .any(|r| r["dst"] == "169.254.1.1" && r["dev"] == "eth0" && r["scope"] == "link"),
        "no 169.254.1.1 scope link in {routes:?}"
    );
    ensure!(
        routes
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "169.254.1.1"),
        "no default via 169.254.1.1 in {routes:?}"
    );

    // Traffic: pod to pod both ways, pod to the node's uplink address.
    ping(&a.ns, &ip_b)?;
    ping(&b.ns, &ip_a)?;
    ping(&a.ns, &node.uplink_ip().to_string())?;
    a.del()?;
    b.del()?;
    assert_clean(&node)
}

#[test]
fn cni_version_of_the_config_is_echoed() -> Result<()> {
    let node = Node::start("ver")?;
    let pod = Pod::new(&node, "v")?;
    let mut conf = node.manul_conf(&pod.network);
    conf["cniVersion"] = json!("0.4.0");
    let result = manul_with(&pod, "ADD", conf)?.result()?;
    ensure!(result["cniVersion"] == "0.4.0", "result: {result}");
    pod.del()?;
    assert_clean(&node)
}

#[test]
fn del_removes_link_route_endpoint_and_address() -> Result<()> {
    let node = tiny_pool_node("del", TINY)?;
    let pods = fill(&node, "p", 4)?;
    ensure!(node.endpoints()?.len() == 4);
    let extra = Pod::new(&node, "extra")?;
    ensure!(
        extra.manul("ADD")?.error_code() == Some(100),
        "5th ADD of 4"
    );

    let (gone, gone_ip) = &pods[1];
    let gone_cali = node
        .endpoints()?
        .into_iter()
        .find(|e| e.container_id == gone.container_id)
        .context("no endpoint of the pod to delete")?
        .interface_name;
    gone.del()?;
    ensure!(!node.cali_links()?.contains(&gone_cali), "{gone_cali} left");
    ensure!(node.route_to(gone_ip)?.is_none(), "route to {gone_ip} left");
    ensure!(node.endpoints()?.len() == 3, "{:?}", node.endpoints()?);

    // The address went back to the pool: the next pod gets exactly it.
    let again = result_ipv4(&extra.add()?).context("no IPv4")?;
    ensure!(&again == gone_ip, "got {again}, freed {gone_ip}");

    extra.del()?;
    for (pod, _) in &pods {
        pod.del()?;
    }
    assert_clean(&node)
}

#[test]
fn add_twice_is_idempotent() -> Result<()> {
    let node = Node::start("twice")?;
    let pod = Pod::new(&node, "t")?;
    let first = pod.add()?;
    let second = pod.add()?;
    let ip = result_ipv4(&first).context("no IPv4")?;
    ensure!(
        result_ipv4(&second) == Some(ip.clone()),
        "{first} vs {second}"
    );
    ensure!(node.cali_links()?.len() == 1, "{:?}", node.cali_links()?);
    ensure!(manul_host_routes(&node)? == vec![ip.clone()]);
    ensure!(node.endpoints()?.len() == 1);
    ping(&pod.ns, &node.uplink_ip().to_string())?;
    pod.del()?;
    assert_clean(&node)
}

#[test]
fn del_twice_and_del_without_netns_succeed() -> Result<()> {
    let node = Node::start("deldel")?;
    let pod = Pod::new(&node, "d")?;
    pod.add()?;
    pod.del()?;
    pod.del()?;
    let bare = manul_e2e::CniCall {
        netns: String::new(),
        ..pod.call(
            manul_e2e::bin_path("manul")?,
            "DEL",
            node.manul_conf(&pod.network),
        )
    };
    bare.run_in(&node.ns)?.result()?;
    // Without netns also when the pod is still wired: the host side must go.
    let other = Pod::new(&node, "e")?;
    other.add()?;
    let bare = manul_e2e::CniCall {
        container_id: other.container_id.clone(),
        ..bare
    };
    bare.run_in(&node.ns)?.result()?;
    assert_clean(&node)
}

#[test]
fn failed_add_leaves_nothing_behind() -> Result<()> {
    let node = tiny_pool_node("fail", TINY)?;

    // CNI_NETNS is a regular file: the address is allocated, then the veth cannot be made.
    let file = node.dir().join("not-a-netns");
    std::fs::write(&file, "")?;
    let pod = Pod::new(&node, "f")?;
    let call = manul_e2e::CniCall {
        netns: file.display().to_string(),
        ..pod.call(
            manul_e2e::bin_path("manul")?,
            "ADD",
            node.manul_conf(&pod.network),
        )
    };
    let out = call.run_in(&node.ns)?;
    ensure!(!out.success(), "ADD into a regular file succeeded: {out:?}");
    ensure!(out.error_code().is_some_and(|c| c != 0), "{out:?}");
    assert_clean(&node)?;

    // The pod already has an eth0: the veth's pod end cannot be created.
    let busy = Pod::new(&node, "busy")?;
    busy.ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])?;
    let out = busy.manul("ADD")?;
    ensure!(
        !out.success(),
        "ADD over an existing eth0 succeeded: {out:?}"
    );
    ensure!(out.error_code().is_some_and(|c| c != 0), "{out:?}");
    assert_clean(&node)?;

    // An MTU no link can have.
    let mut conf = node.manul_conf(&pod.network);
    conf["mtu"] = json!(100000);
    let out = manul_with(&pod, "ADD", conf)?;
    ensure!(out.error_code() == Some(7), "mtu 100000: {out:?}");
    assert_clean(&node)?;

    // Every address of the pool is free again (released ones go to the end of the free list).
    let pods = fill(&node, "p", 4)?;
    for (pod, _) in &pods {
        pod.del()?;
    }
    busy.del()?;
    assert_clean(&node)
}

#[test]
fn check_passes_on_a_wired_pod_and_fails_without_its_route() -> Result<()> {
    let node = Node::start("check")?;
    let pod = Pod::new(&node, "c")?;
    let result = pod.add()?;
    let ip = result_ipv4(&result).context("no IPv4")?;
    let mut conf = node.manul_conf(&pod.network);
    conf["prevResult"] = result;
    let out = manul_with(&pod, "CHECK", conf.clone())?;
    ensure!(out.success(), "CHECK of a wired pod: {out:?}");

    // The same route written by another owner is not manul's route.
    let shown = node.ns.ip(&["-o", "route", "show", &format!("{ip}/32")])?;
    let mut words = shown.split_whitespace();
    let device = words
        .find(|word| *word == "dev")
        .and_then(|_| words.next())
        .context("no device on the host route")?
        .to_string();
    node.ns.ip(&[
        "route",
        "replace",
        &format!("{ip}/32"),
        "dev",
        &device,
        "proto",
        "static",
    ])?;
    let out = manul_with(&pod, "CHECK", conf.clone())?;
    ensure!(
        !out.success(),
        "CHECK with another owner's host route succeeded"
    );

    node.ns.ip(&["route", "del", &format!("{ip}/32")])?;
    let out = manul_with(&pod, "CHECK", conf)?;
    ensure!(!out.success(), "CHECK without the host route succeeded");
    ensure!(out.error_code().is_some_and(|c| c != 0), "{out:?}");
    pod.del()?;
    assert_clean(&node)
}
