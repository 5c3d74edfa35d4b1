//! The plugin as it ships (`scripts/build-plugin.sh`: `target/release/static/manul`) is
//! statically linked, so that it runs on any node's host whatever its C library, and it wires a
//! pod through the real agent: ADD, the node reaches the pod, DEL leaves nothing. Needs root and
//! the static build; does I/O.

mod common;

use anyhow::{Context, Result, ensure};
use common::{assert_clean, ping};
use manul_e2e::cni::result_ipv4;
use manul_e2e::{Node, Pod};

#[test]
#[ignore = "needs target/release/static/manul: run scripts/build-plugin.sh first (scripts/test.sh builds it and runs this test)"]
fn the_shipped_plugin_is_static_and_wires_a_pod() -> Result<()> {
    let plugin = manul_e2e::bin_dir()?.join("static").join("manul");
    ensure!(
        plugin.is_file(),
        "{} is missing: run scripts/build-plugin.sh",
        plugin.display()
    );
    let headers = std::process::Command::new("readelf")
        .args(["--program-headers", "--wide"])
        .arg(&plugin)
        .output()
        .context("run readelf (binutils)")?;
    ensure!(
        headers.status.success(),
        "readelf failed on {}",
        plugin.display()
    );
    let headers = String::from_utf8_lossy(&headers.stdout);
    ensure!(
        !headers.contains("INTERP"),
        "{} asks for a program interpreter: it is dynamically linked",
        plugin.display()
    );

    let node = Node::start("static")?;
    let pod = Pod::new(&node, "a")?;
    let config = node.manul_conf(&pod.network);
    let added = pod
        .call(&plugin, "ADD", config.clone())
        .run_in(&node.ns)?
        .result()?;
    let address = result_ipv4(&added).with_context(|| format!("no IPv4 in {added}"))?;
    ping(&node.ns, &address)?;
    pod.call(&plugin, "DEL", config)
        .run_in(&node.ns)?
        .result()?;
    assert_clean(&node)
}
