//! Self-tests of the e2e harness with the reference plugins (ptp + host-local + portmap), no
//! manul binary involved: namespaces are cleaned up, uplinks route, a conflist chain runs by
//! hand, podman in a node namespace calls CNI, the kernel-floor paths of the lab bench carry
//! traffic. Needs root; does I/O.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use manul_e2e::chain::{portmap_entry, ptp_conf};
use manul_e2e::cni::result_ipv4;
use manul_e2e::floor::{Floor, FloorPath};
use manul_e2e::{Chain, Netns, Node, NodeOptions, Podman, http_get, poll_until, unique_port};
use serde_json::{Value, json};

fn bare_node(tag: &str, pool: &str) -> Result<Node> {
    Node::start_with(NodeOptions {
        agent: false,
        pool: pool.to_string(),
        ..NodeOptions::new(tag)
    })
}

#[test]
fn netns_is_removed_on_drop_and_on_panic() -> Result<()> {
    let ns = Netns::new("drop")?;
    let path = ns.path();
    ensure!(path.exists());
    drop(ns);
    ensure!(!path.exists(), "{path:?} left behind");

    let (tx, rx) = std::sync::mpsc::channel();
    let res = std::thread::spawn(move || {
        let ns = Netns::new("panic").unwrap();
        tx.send(ns.path()).unwrap();
        panic!("deliberate");
    })
    .join();
    ensure!(res.is_err());
    let path = rx.recv()?;
    ensure!(!path.exists(), "{path:?} left behind after a panic");
    Ok(())
}

#[test]
fn tracked_processes_die_with_their_namespace() -> Result<()> {
    let ns = Netns::new("procs")?;
    let pid = ns.spawn_tracked(std::process::Command::new("sleep").arg("600"))?;
    ensure!(Path::new(&format!("/proc/{pid}")).exists());
    drop(ns);
    ensure!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "sleep {pid} survived"
    );
    Ok(())
}

#[test]
fn node_uplink_routes_to_upstream() -> Result<()> {
    let node = bare_node("uplink", "10.250.0.0/24")?;
    let up = node.upstream_ip().to_string();
    node.ns.exec_ok(&["busybox", "ping", "-c1", "-W2", &up])?;
    let default = node.routes()?.into_iter().find(|r| r["dst"] == "default");
    ensure!(default.is_some_and(|r| r["gateway"] == up.as_str()));
    let fwd = node.ns.exec_ok(&["cat", "/proc/sys/net/ipv4/ip_forward"])?;
    ensure!(fwd.trim() == "1", "ip_forward={fwd}");
    Ok(())
}

#[test]
fn reference_chain_by_hand_publishes_a_port() -> Result<()> {
    let node = bare_node("refchain", "10.251.0.0/24")?;
    let data = tempfile::tempdir()?;
    let ptp = ptp_conf("refnet", "10.251.0.0/24", data.path());
    let mut entry = ptp.clone();
    entry
        .as_object_mut()
        .context("object")?
        .retain(|k, _| k != "name" && k != "cniVersion");
    let conflist = json!({"cniVersion": "1.0.0", "name": "refnet",
        "plugins": [entry, portmap_entry()]});
    let port = unique_port();
    let chain = Chain::new(conflist)?
        .with_port_mappings(json!([{"hostPort": port, "containerPort": 8080, "protocol": "tcp"}]));
    let pod = Netns::new("refpod")?;
    let base = manul_e2e::CniCall {
        container_id: manul_e2e::cni::container_id(),
        netns: pod.path().display().to_string(),
        ..manul_e2e::CniCall::new("", "ADD", Value::Null)
    };
    let result = chain.add(&node.ns, &base)?;
    let ip = result_ipv4(&result).context("no ip in result")?;
    pod.spawn_tracked(std::process::Command::new("busybox").args([
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/usr/share/doc/busybox-static",
    ]))?;
    let addr = SocketAddr::new(node.uplink_ip().into(), port);
    poll_until(Duration::from_secs(10), "published port", || {
        Ok(Some(http_get(&node.upstream, addr)?).filter(|r| r.starts_with("HTTP/1.")))
    })?;
    for out in chain.del(&node.ns, &base, Some(&result)) {
        ensure!(out.success(), "DEL failed: {out:?}");
    }
    ensure!(
        !data.path().join("refnet").join(&ip).exists(),
        "{ip} still reserved"
    );
    ensure!(
        http_get(&node.upstream, addr).is_err(),
        "port still published after DEL"
    );
    Ok(())
}

#[test]
fn podman_runs_reference_plugins_inside_a_node_namespace() -> Result<()> {
    let node = bare_node("podref", "10.252.0.0/24")?;
    let data = tempfile::tempdir()?;
    let ptp = ptp_conf("podref", "10.252.0.0/24", data.path());
    let conflist = json!({"cniVersion": "1.0.0", "name": "podref", "plugins": [
        {"type": "ptp", "ipMasq": false, "ipam": ptp["ipam"]}, portmap_entry()]});
    let podman = Podman::new(&node.ns, &conflist)?;
    let port = unique_port();
    podman.run("a", &[], &["sleep", "3600"])?;
    podman.run(
        "b",
        &["-p", &format!("{port}:8080")],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    )?;
    let (a, b) = (podman.ip_of("a")?, podman.ip_of("b")?);
    ensure!(a != b);
    let ping = podman.exec("a", &["ping", "-c1", "-W2", &b])?;
    ensure!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    // The host ends are on the node, not in the root namespace.
    let veths = node
        .ns
        .link_names()?
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    ensure!(veths == 2, "expected 2 host veths on the node, got {veths}");
    let addr = SocketAddr::new(node.uplink_ip().into(), port);
    let reply = poll_until(Duration::from_secs(10), "published port", || {
        Ok(Some(http_get(&node.upstream, addr)?).filter(|r| r.contains("hello")))
    })?;
    ensure!(reply.starts_with("HTTP/1."), "{reply}");
    podman.rm(&["a", "b"])?;
    let left = std::fs::read_dir(data.path().join("podref"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("10."))
        .collect::<Vec<_>>();
    ensure!(left.is_empty(), "host-local still holds {left:?}");
    ensure!(
        node.ns.link_names()?.iter().all(|l| !l.starts_with("veth")),
        "veths left"
    );
    Ok(())
}

/// Packets `device` in `ns` has sent.
fn tx_packets(ns: &Netns, device: &str) -> Result<u64> {
    let links = ns.ip_json(&["-s", "link", "show", device])?;
    links
        .first()
        .and_then(|link| link["stats64"]["tx"]["packets"].as_u64())
        .with_context(|| format!("no tx counter of {device}"))
}

#[test]
fn kernel_floor_paths_reach_the_server_pod_the_way_the_lab_does() -> Result<()> {
    manul_e2e::require_root()?;
    for path in [FloorPath::Routed, FloorPath::Vxlan] {
        let floor = Floor::new(path, 1450)?;
        let (node, server) = (&floor.nodes[0], floor.server_address.to_string());
        let tunnel_before = match path {
            FloorPath::Vxlan => tx_packets(node, "vxlan.calico")?,
            FloorPath::Routed => 0,
        };
        manul_e2e::ping::round_trip(&floor.client, floor.server_address, 5)
            .with_context(|| format!("{path:?}"))?;
        let route = node.ip(&["route", "get", &server])?;
        match path {
            FloorPath::Routed => ensure!(
                route.contains("via 10.78.1.11 dev eth0"),
                "routed via the other node: {route}"
            ),
            FloorPath::Vxlan => {
                ensure!(route.contains("dev vxlan.calico"), "through VXLAN: {route}");
                let sent = tx_packets(node, "vxlan.calico")? - tunnel_before;
                ensure!(sent >= 5, "{sent} packets crossed vxlan.calico");
            }
        }
    }
    Ok(())
}
