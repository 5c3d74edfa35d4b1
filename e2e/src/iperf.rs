//! iperf3 between two network namespaces for the lab benchmark: a server pinned to one core,
//! a client pinned to another, the receiver's rate from the client's JSON report; the raw
//! baseline (two fresh namespaces joined by one veth pair); and the sender's TSO/GSO switch
//! (ethtool). Does I/O (spawns iperf3, taskset, ethtool, ss; makes namespaces).

use std::{
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Netns, netns::stop_child, poll_until};

/// The port every server of the benchmark listens on (one server per namespace).
pub const PORT: u16 = 5201;

/// Programs the benchmark runs, with the Debian package that has each.
pub const PROGRAMS: [(&str, &str); 4] = [
    ("iperf3", "iperf3"),
    ("ethtool", "ethtool"),
    ("taskset", "util-linux"),
    ("ss", "iproute2"),
];

/// A running `iperf3 -s` inside a namespace; stopped on drop.
pub struct Server {
    child: Option<Child>,
}

impl Server {
    /// Starts `iperf3 -s` pinned to `core` inside `ns` and waits until it listens.
    pub fn start(ns: &Netns, core: usize) -> Result<Server> {
        let mut command = Command::new("taskset");
        command
            .args([
                "-c",
                &core.to_string(),
                "iperf3",
                "-s",
                "-p",
                &PORT.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = Server {
            child: Some(ns.spawn(&mut command).context("starting iperf3 -s")?),
        };
        let filter = format!("sport = :{PORT}");
        poll_until(Duration::from_secs(10), "iperf3 -s to listen", || {
            let listening = ns.exec_ok(&["ss", "-Hltn", &filter])?;
            Ok((!listening.trim().is_empty()).then_some(()))
        })?;
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child, Duration::from_secs(3));
        }
    }
}

/// One client run from `client` to `server` for `seconds` (after one omitted second of slow
/// start), pinned to `core`; the receiver's rate in bit/s.
pub fn run_client(client: &Netns, server: Ipv4Addr, core: usize, seconds: u32) -> Result<f64> {
    let output = client.exec(&[
        "taskset",
        "-c",
        &core.to_string(),
        "iperf3",
        "-c",
        &server.to_string(),
        "-p",
        &PORT.to_string(),
        "-t",
        &seconds.to_string(),
        "-O",
        "1",
        "-J",
        "--connect-timeout",
        "3000",
    ])?;
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "iperf3 -c {server}: no JSON report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3 -c {server}: {error}");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3 -c {server}: no end.sum_received in the report"))
}

/// Turns TSO and GSO of `device` in `ns` on or off.
pub fn set_segmentation_offload(ns: &Netns, device: &str, on: bool) -> Result<()> {
    let state = if on { "on" } else { "off" };
    ns.exec_ok(&["ethtool", "-K", device, "tso", state, "gso", state])
        .map(drop)
        .with_context(|| format!("ethtool -K {device} tso/gso {state} in {}", ns.name()))
}

/// The baseline: two fresh namespaces joined by one veth pair (MTU 1500, as the lab's links),
/// each end called eth0 so that the offload switch names the same device as in a pod.
pub struct VethPair {
    pub client: Netns,
    pub server: Netns,
    pub server_address: Ipv4Addr,
}

impl VethPair {
    pub fn new() -> Result<VethPair> {
        let client = Netns::new("raw-a")?;
        let server = Netns::new("raw-b")?;
        client.ip(&[
            "link", "add", "eth0", "mtu", "1500", "type", "veth", "peer", "name", "peer0",
        ])?;
        client.ip(&["link", "set", "peer0", "netns", server.name()])?;
        server.ip(&["link", "set", "peer0", "name", "eth0"])?;
        let server_address = Ipv4Addr::new(10, 79, 0, 2);
        client.ip(&["addr", "add", "10.79.0.1/24", "dev", "eth0"])?;
        server.ip(&[
            "addr",
            "add",
            &format!("{server_address}/24"),
            "dev",
            "eth0",
        ])?;
        client.ip(&["link", "set", "eth0", "up"])?;
        server.ip(&["link", "set", "eth0", "up"])?;
        Ok(VethPair {
            client,
            server,
            server_address,
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
