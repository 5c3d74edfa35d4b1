//! manul chained with the reference portmap plugin: a published port on the node's uplink
//! address reaches the pod from the upstream namespace, through podman and through a conflist
//! run by hand (ADD in order, DEL in reverse, then the runtime's second bare DEL). Needs root
//! and the workspace binaries (`cargo test --workspace`); does I/O.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use manul_e2e::chain::portmap_entry;
use manul_e2e::cni::result_ipv4;
use manul_e2e::{Chain, Node, Pod, Podman, http_get, poll_until, unique_port};
use serde_json::json;

/// Polls `GET /` from the node's upstream until the reply carries "hello".
fn get_hello(node: &Node, addr: SocketAddr) -> Result<String> {
    poll_until(
        Duration::from_secs(10),
        &format!("hello from {addr}"),
        || Ok(Some(http_get(&node.upstream, addr)?).filter(|r| r.contains("hello"))),
    )
}

#[test]
fn podman_published_port_reaches_the_pod() -> Result<()> {
    let node = Node::start("pmpodman")?;
    let podman = Podman::new(
        &node.ns,
        &node.manul_conflist("manulnet", &[portmap_entry()]),
    )?;
    let port = unique_port();
    let publish = format!("{port}:8080");
    podman.run(
        "web",
        &["-p", &publish],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    )?;
    let ip: IpAddr = podman.ip_of("web")?.parse()?;

    let reply = get_hello(&node, SocketAddr::new(node.uplink_ip().into(), port))?;
    ensure!(reply.starts_with("HTTP/1."), "{reply}");
    // Routed, no NAT: the upstream reaches the pod address itself too.
    get_hello(&node, SocketAddr::new(ip, 8080))?;

    podman.rm(&["web"])?;
    let addr = SocketAddr::new(node.uplink_ip().into(), port);
    ensure!(
        http_get(&node.upstream, addr).is_err(),
        "port still published after rm"
    );
    ensure!(
        node.endpoints()?.is_empty(),
        "endpoint left: {:?}",
        node.endpoints()?
    );
    Ok(())
}

#[test]
fn conflist_by_hand_add_then_del_in_reverse() -> Result<()> {
    let node = Node::start("pmchain")?;
    let port = unique_port();
    let chain = Chain::new(node.manul_conflist("manulnet", &[portmap_entry()]))?
        .with_port_mappings(json!([{"hostPort": port, "containerPort": 8080, "protocol": "tcp"}]));
    let pod = Pod::new(&node, "web")?;
    let base = pod.call("", "ADD", serde_json::Value::Null);

    let result = chain.add(&node.ns, &base)?;
    ensure!(result["cniVersion"] == "1.0.0", "result: {result}");
    let ip = result_ipv4(&result).context("no IPv4 in the chain's result")?;
    ensure!(ip.starts_with("10.244."), "{ip} not from the pool");
    let eth0 = pod.ns.json(&["-4", "addr", "show", "dev", "eth0"])?;
    let addr = &eth0[0]["addr_info"][0];
    ensure!(
        addr["local"] == ip.as_str() && addr["prefixlen"] == 32,
        "pod eth0: {eth0}"
    );

    let www = tempfile::tempdir()?;
    std::fs::write(www.path().join("index.html"), "hello\n")?;
    pod.ns.spawn_tracked(
        Command::new("busybox")
            .args(["httpd", "-f", "-p", "8080", "-h"])
            .arg(www.path()),
    )?;
    get_hello(&node, SocketAddr::new(node.uplink_ip().into(), port))?;
    get_hello(&node, SocketAddr::new(ip.parse()?, 8080))?;

    for out in chain.del(&node.ns, &base, Some(&result)) {
        ensure!(out.success(), "DEL: {out:?}");
    }
    let published = SocketAddr::new(node.uplink_ip().into(), port);
    ensure!(
        http_get(&node.upstream, published).is_err(),
        "port still published after DEL"
    );
    ensure!(
        node.endpoints()?.is_empty(),
        "endpoint left: {:?}",
        node.endpoints()?
    );
    ensure!(node.cali_links()?.is_empty(), "cali link left");
    ensure!(node.route_to(&ip)?.is_none(), "host route to {ip} left");

    // A runtime's second DEL: no netns, no prevResult. Every plugin must succeed.
    let bare = manul_e2e::CniCall {
        netns: String::new(),
        ..base
    };
    for out in chain.del(&node.ns, &bare, None) {
        ensure!(out.success(), "second DEL: {out:?}");
    }
    Ok(())
}

#[test]
fn failed_add_is_followed_by_a_clean_del() -> Result<()> {
    let node = Node::start("pmfail")?;
    // portmap refuses a mapping without a container port: the chain's ADD fails after manul.
    let chain = Chain::new(node.manul_conflist("manulnet", &[portmap_entry()]))?
        .with_port_mappings(json!([{"hostPort": unique_port(), "protocol": "bogus"}]));
    let pod = Pod::new(&node, "bad")?;
    let base = pod.call("", "ADD", serde_json::Value::Null);
    ensure!(
        chain.add(&node.ns, &base).is_err(),
        "ADD with a bad port mapping succeeded"
    );
    // DEL runs in reverse: portmap first (it refuses its own bad mapping again, which is
    // portmap's answer, not ours), then manul, which must succeed and clean up.
    let outcomes = chain.del(&node.ns, &base, None);
    let manul = outcomes.last().context("the chain ran no DEL")?;
    ensure!(manul.success(), "manul DEL after failed ADD: {manul:?}");
    ensure!(
        node.endpoints()?.is_empty(),
        "endpoint left: {:?}",
        node.endpoints()?
    );
    ensure!(node.cali_links()?.is_empty(), "cali link left");
    Ok(())
}
