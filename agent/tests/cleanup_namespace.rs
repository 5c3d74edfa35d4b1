//! `manul-agent cleanup` against the kernel, in a namespace made for the test: manul's links
//! (a cali* veth, vxlan.calico), its proto-manul routes (main table and a table it is told
//! about), its nft table and its CNI files go; a foreign link, a proto-static route, a foreign
//! nft table and other CNI files stay. Needs root, ip and nft (fails otherwise).

mod support;

use std::{path::Path, process::Command};

use anyhow::Result;
use support::{Netns, require_programs, require_root, wire};

const AGENT: &str = env!("CARGO_BIN_EXE_manul-agent");

fn link_names(ns: &Netns) -> Result<Vec<String>> {
    Ok(ns
        .ip_json(&["link", "show"])?
        .iter()
        .filter_map(|link| link["ifname"].as_str().map(str::to_string))
        .collect())
}

fn routes(ns: &Netns, table: &str) -> Result<String> {
    ns.ip(&["route", "show", "table", table])
}

fn put(path: &Path, content: &str) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(path, content)?;
    Ok(())
}

#[test]
fn cleanup_removes_only_what_is_manuls() -> Result<()> {
    require_root();
    require_programs(&["ip", "nft"]);
    let (node, pod) = (Netns::new("agent")?, Netns::new("agent")?);
    wire(
        &node,
        "cali0123456789a",
        "10.244.0.1/32",
        &pod,
        "eth0",
        "10.244.0.7/32",
    )?;
    wire(
        &node,
        "keep0",
        "192.168.78.1/24",
        &pod,
        "keep1",
        "192.168.78.2/24",
    )?;
    node.ip(&[
        "link",
        "add",
        "vxlan.calico",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "dev",
        "keep0",
    ])?;
    node.ip(&["link", "set", "vxlan.calico", "up"])?;
    node.ip(&[
        "route",
        "add",
        "10.244.0.7/32",
        "dev",
        "cali0123456789a",
        "proto",
        "109",
    ])?;
    node.ip(&[
        "route",
        "add",
        "10.244.5.0/26",
        "via",
        "192.168.78.2",
        "proto",
        "109",
    ])?;
    node.ip(&["route", "add", "blackhole", "10.244.6.0/26", "proto", "109"])?;
    // A next-hop object of manul's and a route naming it, and another owner's object.
    for (id, protocol) in [("77", "109"), ("78", "static")] {
        node.ip(&[
            "nexthop",
            "add",
            "id",
            id,
            "via",
            "192.168.78.2",
            "dev",
            "keep0",
            "proto",
            protocol,
        ])?;
    }
    node.ip(&[
        "route",
        "add",
        "10.244.8.0/26",
        "nhid",
        "77",
        "proto",
        "109",
    ])?;
    node.ip(&[
        "route",
        "add",
        "blackhole",
        "10.244.7.0/26",
        "proto",
        "109",
        "table",
        "200",
    ])?;
    node.ip(&[
        "route",
        "add",
        "10.99.0.0/16",
        "via",
        "192.168.78.2",
        "proto",
        "static",
    ])?;
    node.ip(&[
        "route",
        "add",
        "blackhole",
        "10.98.0.0/16",
        "proto",
        "static",
        "table",
        "200",
    ])?;
    node.exec_ok(&["nft", "add", "table", "inet", "manul"])?;
    node.exec_ok(&["nft", "add", "chain", "inet", "manul", "postrouting"])?;
    node.exec_ok(&["nft", "add", "table", "inet", "foreign"])?;
    node.exec_ok(&["nft", "add", "chain", "inet", "foreign", "input"])?;

    let host = tempfile::tempdir()?;
    let ours = [
        host.path().join("opt/cni/bin/manul"),
        host.path().join("etc/cni/net.d/10-manul.conflist"),
        host.path().join("etc/iproute2/rt_protos.d/manul.conf"),
    ];
    let theirs = [
        host.path().join("opt/cni/bin/portmap"),
        host.path().join("etc/cni/net.d/05-other.conflist"),
    ];
    for file in ours.iter().chain(&theirs) {
        put(file, "x")?;
    }

    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            node.name(),
            AGENT,
            "cleanup",
            "--route-table",
            "200",
        ])
        .arg("--host-root")
        .arg(host.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cleanup failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let links = link_names(&node)?;
    assert!(
        !links.iter().any(|name| name.starts_with("cali")),
        "{links:?}"
    );
    assert!(!links.contains(&"vxlan.calico".to_string()), "{links:?}");
    assert!(links.contains(&"keep0".to_string()), "{links:?}");
    let main = routes(&node, "main")?;
    assert!(!main.contains("10.244."), "manul's routes left:\n{main}");
    assert!(
        main.contains("10.99.0.0/16"),
        "a foreign route was deleted:\n{main}"
    );
    let objects = node.ip(&["nexthop", "show"])?;
    assert!(
        !objects.contains("id 77 "),
        "manul's object left:\n{objects}"
    );
    assert!(
        objects.contains("id 78 "),
        "another owner's object was deleted:\n{objects}"
    );
    let table = routes(&node, "200")?;
    assert!(!table.contains("10.244.7.0"), "{table}");
    assert!(table.contains("10.98.0.0/16"), "{table}");
    let tables = node.exec_ok(&["nft", "list", "tables"])?;
    assert!(!tables.contains("inet manul"), "{tables}");
    assert!(tables.contains("inet foreign"), "{tables}");
    for file in &ours {
        assert!(!file.exists(), "{} left", file.display());
    }
    for file in &theirs {
        assert!(file.exists(), "{} removed", file.display());
    }
    assert!(stdout.contains("deleted nft table inet manul"), "{stdout}");

    // A second run finds nothing and succeeds.
    let again = Command::new("ip")
        .args(["netns", "exec", node.name(), AGENT, "cleanup"])
        .arg("--host-root")
        .arg(host.path())
        .output()?;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), "");
    Ok(())
}
