//! Bad input to the real `manul` plugin on a node with a running agent: each case gets the CNI
//! error code agent/src/cni/error.rs documents for it, and leaves no cali link, no endpoint and
//! no new proto-manul /32 route behind. Needs root and the workspace binaries
//! (`cargo test --workspace`); does I/O.

mod common;

use anyhow::{Context, Result, ensure};
use common::{assert_clean, fill, manul_host_routes, manul_with, tiny_pool_node};
use manul_e2e::cni::result_ipv4;
use manul_e2e::{CniCall, CniOutcome, Node, Pod};
use serde_json::json;

/// Fails unless `out` is a CNI error object with `code` (and a non-zero exit).
fn expect_code(out: &CniOutcome, code: u64) -> Result<()> {
    ensure!(
        !out.success(),
        "expected CNI error {code}, the plugin succeeded: {out:?}"
    );
    let json = out.json()?;
    ensure!(
        json["code"].as_u64() == Some(code) && json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "expected CNI error {code}, got {out:?}"
    );
    Ok(())
}

/// A `manul` call for `pod` with its default config.
fn call(pod: &Pod, command: &str) -> Result<CniCall> {
    let conf = pod.node.manul_conf(&pod.network);
    Ok(pod.call(manul_e2e::bin_path("manul")?, command, conf))
}

#[test]
fn malformed_json_is_code_6() -> Result<()> {
    let node = Node::start("badjson")?;
    let pod = Pod::new(&node, "j")?;
    let out = call(&pod, "ADD")?.run_with_stdin_in(&node.ns, b"{\"cniVersion\": \"1.0.0\", ")?;
    expect_code(&out, 6)?;
    assert_clean(&node)
}

#[test]
fn unknown_cni_version_is_code_1() -> Result<()> {
    let node = Node::start("badver")?;
    let pod = Pod::new(&node, "v")?;
    let mut conf = node.manul_conf(&pod.network);
    conf["cniVersion"] = json!("9.9.9");
    expect_code(&manul_with(&pod, "ADD", conf)?, 1)?;
    assert_clean(&node)
}

#[test]
fn add_without_netns_is_code_4() -> Result<()> {
    let node = Node::start("nonetns")?;
    let pod = Pod::new(&node, "n")?;
    let add = CniCall {
        netns: String::new(),
        ..call(&pod, "ADD")?
    };
    expect_code(&add.run_in(&node.ns)?, 4)?;
    assert_clean(&node)
}

#[test]
fn exhausted_pool_is_code_100_until_an_address_is_freed() -> Result<()> {
    let node = tiny_pool_node("full", "10.245.0.0/30")?;
    let pods = fill(&node, "p", 4)?;
    let (links, mut routes) = (node.cali_links()?, manul_host_routes(&node)?);
    let late = Pod::new(&node, "late")?;
    expect_code(&late.manul("ADD")?, 100)?;
    ensure!(
        node.cali_links()? == links,
        "links changed: {:?}",
        node.cali_links()?
    );
    let mut now = manul_host_routes(&node)?;
    routes.sort();
    now.sort();
    ensure!(now == routes, "routes changed: {now:?} vs {routes:?}");
    ensure!(node.endpoints()?.len() == 4, "{:?}", node.endpoints()?);
    ensure!(
        !node
            .endpoints()?
            .iter()
            .any(|e| e.container_id == late.container_id)
    );

    pods[2].0.del()?;
    let ip = result_ipv4(&late.add()?).context("no IPv4")?;
    ensure!(ip == pods[2].1, "got {ip}, freed {}", pods[2].1);
    late.del()?;
    for (i, (pod, _)) in pods.iter().enumerate() {
        if i != 2 {
            pod.del()?;
        }
    }
    assert_clean(&node)
}

#[test]
fn agent_down_is_code_11_and_del_succeeds_once_it_is_back() -> Result<()> {
    let node = Node::start("down")?;
    let wired = Pod::new(&node, "w")?;
    wired.add()?;
    let links = node.cali_links()?;
    let routes = manul_host_routes(&node)?;
    let del = call(&wired, "DEL")?;

    node.stop_agent()?;
    let fresh = Pod::new(&node, "f")?;
    let add = call(&fresh, "ADD")?;
    expect_code(&add.run_in(&node.ns)?, 11)?;
    expect_code(&del.run_in(&node.ns)?, 11)?;
    // Nothing was done without the agent: the wired pod is intact, the new one has nothing.
    ensure!(
        node.cali_links()? == links,
        "links: {:?}",
        node.cali_links()?
    );
    ensure!(manul_host_routes(&node)? == routes);
    ensure!(!fresh.ns.link_names()?.contains(&"eth0".to_string()));

    node.start_agent()?;
    del.run_in(&node.ns)?
        .result()
        .context("DEL after the restart")?;
    // A DEL of the container whose ADD failed succeeds too (the runtime sends one).
    call(&fresh, "DEL")?.run_in(&node.ns)?.result()?;
    assert_clean(&node)
}

#[test]
fn requested_ip_outside_every_pool_is_code_7() -> Result<()> {
    let node = Node::start("outside")?;
    let pod = Pod::new(&node, "o")?;
    let add = CniCall {
        args: "IgnoreUnknown=1;IP=172.31.9.9".into(),
        ..call(&pod, "ADD")?
    };
    expect_code(&add.run_in(&node.ns)?, 7)?;
    assert_clean(&node)
}

#[test]
fn requested_ip_in_use_is_code_101() -> Result<()> {
    let node = Node::start("inuse")?;
    let first = Pod::new(&node, "a")?;
    let ip = result_ipv4(&first.add()?).context("no IPv4")?;
    let links = node.cali_links()?;

    let second = Pod::new(&node, "b")?;
    let add = CniCall {
        args: format!("IgnoreUnknown=1;IP={ip}"),
        ..call(&second, "ADD")?
    };
    expect_code(&add.run_in(&node.ns)?, 101)?;
    ensure!(
        node.cali_links()? == links,
        "links: {:?}",
        node.cali_links()?
    );
    ensure!(manul_host_routes(&node)? == vec![ip.clone()]);
    let endpoints = node.endpoints()?;
    ensure!(
        endpoints.len() == 1 && endpoints[0].container_id == first.container_id,
        "{endpoints:?}"
    );
    // The holder keeps its address: it still answers from it.
    common::ping(&first.ns, &node.uplink_ip().to_string())?;
    first.del()?;

    // Once free, the same address can be requested.
    let got = result_ipv4(&add.run_in(&node.ns)?.result()?).context("no IPv4")?;
    ensure!(got == ip, "requested {ip}, got {got}");
    second.del()?;
    assert_clean(&node)
}
