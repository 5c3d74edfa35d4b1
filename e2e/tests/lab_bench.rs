//! `manul-lab-bench` at a tiny size (one repetition of one second, 20 pings, one join): it must
//! build the lab (pool in CrossSubnet), measure every iperf3 path with TSO/GSO on and off (the
//! one across subnets through VXLAN, each pod-to-pod path beside the same path wired by hand
//! without manul), the ping round trip of every path, time a join to
//! reachability, and write all of it as JSON. Asserts that figures exist, never how fast they are. Needs
//! root, etcd, BIRD, iperf3, ethtool (fails with what to install otherwise); the bench removes
//! its namespaces when it exits.

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

#[test]
fn the_lab_bench_measures_every_path_and_a_join_at_a_tiny_size() -> Result<()> {
    manul_e2e::require_root()?;
    manul_e2e::require_programs(&manul_e2e::lab::PROGRAMS)?;
    manul_e2e::require_programs(&manul_e2e::iperf::PROGRAMS)?;
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("figures.json");
    let output = Command::new(manul_e2e::bin_path("manul-lab-bench")?)
        .args([
            "--joins",
            "1",
            "--reps",
            "1",
            "--seconds",
            "1",
            "--pings",
            "20",
        ])
        .arg("--json")
        .arg(&json)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "manul-lab-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let iperf = figures["iperf"].as_array().context("iperf figures")?;
    let paths: Vec<(&str, bool)> = iperf
        .iter()
        .map(|cell| {
            (
                cell["path"].as_str().unwrap_or_default(),
                cell["tso_gso"] == true,
            )
        })
        .collect();
    assert_eq!(
        paths,
        [true, false]
            .map(|offload| [
                ("raw veth", offload),
                ("node → node, same subnet (n0 → n1)", offload),
                ("kernel floor: pod → pod routed, no manul", offload),
                ("pod → pod, same subnet (n0-p0 → n1-p0)", offload),
                ("node → node, across the ToR (n0 → n2)", offload),
                ("kernel floor: pod → pod over VXLAN, no manul", offload),
                (
                    "pod → pod, across the ToR over VXLAN (n0-p0 → n2-p0)",
                    offload
                ),
            ])
            .concat()
    );
    for cell in iperf {
        // Each pod-to-pod path names the hand-wired path it is compared with.
        let path = cell["path"].as_str().unwrap_or_default();
        if let Some(rest) = path.strip_prefix("pod → pod, ") {
            let floor = if rest.contains("VXLAN") {
                "kernel floor: pod → pod over VXLAN, no manul"
            } else {
                "kernel floor: pod → pod routed, no manul"
            };
            assert_eq!(cell["floor"], floor, "{cell}");
        }
        let rates = cell["bits_per_second"].as_array().context("rates")?;
        assert!(
            rates.len() == 1 && rates[0].as_f64().is_some_and(|rate| rate > 0.0),
            "one measured run per cell: {cell}"
        );
    }
    let pings: Vec<&str> = figures["ping"]
        .as_array()
        .context("ping figures")?
        .iter()
        .filter(|path| path["avg_us"].as_f64().is_some_and(|avg| avg > 0.0))
        .filter_map(|path| path["path"].as_str())
        .collect();
    assert_eq!(
        pings,
        [
            "raw veth",
            "same node (n0-p0 → n0-p1)",
            "routed (n0-p0 → n1-p0)",
            "over VXLAN (n0-p0 → n2-p0)"
        ]
    );
    let joins = figures["joins"].as_array().context("join figures")?;
    assert_eq!(joins.len(), 1, "{joins:?}");
    assert_eq!(joins[0]["node"], "n3");
    for step in ["agent_ready_s", "first_established_s", "reachable_s"] {
        assert!(joins[0][step].is_f64(), "{step} missing: {}", joins[0]);
    }
    assert!(stdout.contains("REACHABLE"), "{stdout}");
    Ok(())
}
