//! The lab as a test: a 4-node cluster over BGP (etcd, a ToR running BIRD, two subnets, two
//! pods per node through the CNI plugin) must reach the full connectivity matrix, with the
//! node-to-node mesh and with a route reflector; a deleted pod's route goes everywhere;
//! restarting a node's agent, then its bgpd, loses no ping. Needs root, etcd and BIRD (fails
//! with what to install otherwise). Namespaces are removed when the lab is dropped.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use manul_e2e::lab::{Lab, LabOptions, status};

const CONVERGE: Duration = Duration::from_secs(90);

fn require_programs() -> Result<()> {
    for (program, package) in [
        ("etcd", "etcd-server"),
        ("bird", "bird2"),
        ("birdc", "bird2"),
    ] {
        if std::process::Command::new("which")
            .arg(program)
            .output()
            .map(|output| !output.status.success())
            .unwrap_or(true)
        {
            bail!(
                "{program} is missing: apt-get install {package} (or run scripts/install-deps.sh)"
            );
        }
    }
    Ok(())
}

fn up(opts: LabOptions) -> Result<Lab> {
    manul_e2e::require_root()?;
    require_programs()?;
    let lab = Lab::up(opts, &mut |_| {})?;
    status::start_probes(&lab)?;
    Ok(lab)
}

/// Polls the matrix until every cell is ok; fails with the report otherwise.
fn converge(lab: &Lab) -> Result<Vec<status::Cell>> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let cells = status::matrix(lab);
        if cells.iter().all(status::Cell::ok) {
            return Ok(cells);
        }
        if Instant::now() >= deadline {
            bail!(
                "the matrix did not converge in {CONVERGE:?}:\n{}\n--- n0 agent ---\n{}",
                status::report(lab, &cells)?,
                lab.nodes[0].log("agent")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_full_matrix_passes_over_the_mesh_across_two_subnets() -> Result<()> {
    let lab = up(LabOptions::default())?;
    let cells = converge(&lab)?;
    assert_eq!(cells.len(), 8 * 7 + 8, "pairs and the outside host");
    // Across subnets the packet goes through the ToR; on one subnet straight to the node.
    let across = cells
        .iter()
        .find(|cell| cell.from == "n0-p0" && cell.to == "n3-p0")
        .expect("cell");
    assert_eq!(across.path, "n0 → tor → n3", "{across:?}");
    let same_subnet = cells
        .iter()
        .find(|cell| cell.from == "n0-p0" && cell.to == "n1-p0")
        .expect("cell");
    assert_eq!(same_subnet.path, "n0 → n1", "{same_subnet:?}");
    let sessions = status::sessions(&lab)?;
    assert!(
        sessions
            .iter()
            .all(|session| session.state == "Established"),
        "{sessions:?}"
    );
    assert_eq!(sessions.len(), 4 * 4, "3 mesh peers and the ToR per node");
    Ok(())
}

#[test]
fn the_full_matrix_passes_with_a_route_reflector() -> Result<()> {
    let lab = up(LabOptions {
        route_reflector: true,
        ..LabOptions::default()
    })?;
    converge(&lab)?;
    let sessions = status::sessions(&lab)?;
    let n1_peers: Vec<&str> = sessions
        .iter()
        .filter(|session| session.node == "n1")
        .map(|session| session.peer.as_str())
        .collect();
    assert_eq!(
        n1_peers,
        ["10.80.1.10", "10.80.1.254"],
        "the reflector and the ToR"
    );
    Ok(())
}

#[test]
fn a_deleted_pod_is_gone_everywhere_and_restarts_lose_no_ping() -> Result<()> {
    let mut lab = up(LabOptions {
        nodes: 2,
        ..LabOptions::default()
    })?;
    converge(&lab)?;
    // n0-p0's address is in n0's block: after DEL nothing routes to it as a /32 anywhere, and
    // no pod reaches it.
    let deleted = lab.delete_pod("n0-p0")?;
    let address = deleted.address.to_string();
    manul_e2e::poll_until(Duration::from_secs(10), "the pod's /32 to go", || {
        let held = lab.nodes.iter().any(|node| {
            node.ns
                .ip(&["route", "show", &format!("{address}/32")])
                .is_ok_and(|out| !out.trim().is_empty())
        });
        Ok((!held).then_some(()))
    })?;
    converge(&lab)?;

    // Restart n1's agent, then its bgpd, while n0-p1 pings n1-p0 every 50 ms: no ping lost.
    let from = lab
        .pods
        .iter()
        .find(|pod| pod.name == "n0-p1")
        .expect("pod");
    let to = lab
        .pods
        .iter()
        .find(|pod| pod.name == "n1-p0")
        .expect("pod")
        .address;
    let mut ping = from.ns.spawn(
        std::process::Command::new("ping")
            .args(["-i", "0.05", "-W", "1", &to.to_string()])
            .stdout(std::process::Stdio::piped()),
    )?;
    lab.restart_agent(1)?;
    lab.restart_bgpd(1)?;
    converge(&lab)?;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ping.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let output = ping.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let summary = text
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .unwrap_or_default()
        .to_string();
    assert!(
        summary.contains(" 0% packet loss"),
        "pings lost across the restarts: {summary}"
    );
    Ok(())
}
