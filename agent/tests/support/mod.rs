//! What the agent's namespace test suites share on top of the workspace's namespace helper
//! (`manul-netns`: a uniquely named namespace removed on drop, `ip -n` in it, code run on a
//! thread that entered it): prerequisites, wiring, JSON fields. Does I/O.

#![allow(dead_code)]

use std::process::Command;

use anyhow::{Result, bail};
use serde_json::Value;

pub use manul_netns::Netns;

pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        bail!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Panics unless this process is root: a missing prerequisite fails the test.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root: run as root (scripts/test.sh)"
    );
}

/// A veth pair between two namespaces with an address on each end (`a/len`, `b/len`), up.
pub fn wire(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["addr", "add", a_addr, "dev", a_if])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["addr", "add", b_addr, "dev", b_if])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn has_route(routes: &[Value], dst: &str, key: &str, wanted: &str) -> bool {
    routes
        .iter()
        .any(|route| field(route, "dst") == dst && field(route, key) == wanted)
}

/// An uplink in the host namespace: up0 (10.99.0.1/24, mtu 9000) with the default route.
pub fn add_uplink(host: &Netns) -> Result<()> {
    host.ip(&[
        "link", "add", "up0", "mtu", "9000", "type", "veth", "peer", "name", "up1",
    ])?;
    host.ip(&["link", "set", "up0", "up"])?;
    host.ip(&["link", "set", "up1", "up"])?;
    host.ip(&["addr", "add", "10.99.0.1/24", "dev", "up0"])?;
    Ok(())
}

/// Panics unless every one of `programs` is on the PATH: a missing prerequisite fails the test.
pub fn require_programs(programs: &[&str]) {
    for program in programs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            found,
            "needs {program}: install it (scripts/install-deps.sh)"
        );
    }
}
