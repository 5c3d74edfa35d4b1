//! manulctl's `node status`, `bgp peers -o json` and `bgp routes` against a real manul-bgpd
//! peered with a real BIRD 2, each in a namespace of the test's own: the session shows
//! Established (state "up") with the peer type from the BGPPeer in the datastore (node
//! specific), and the prefix BIRD originates is a route with BIRD as next hop, found by a
//! covering filter and not by a disjoint one. Needs root, bird, birdc and the manulctl binary
//! of the same profile (`cargo build --release -p manul-ctl`). Does I/O: processes, netns.

mod common;

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use anyhow::{Context, Result, bail, ensure};
use common::{
    Lab,
    bgpd::{self, Paths, established},
    peers::{Bird, bird_bgp, bird_static},
};

/// manulctl of the profile this test was built in (target/<profile>/manulctl).
fn manulctl_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("no directory")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("manulctl");
    if !path.is_file() {
        bail!(
            "{} not found: build it first (`cargo build --release -p manul-ctl`, the profile \
             of this test)",
            path.display()
        );
    }
    Ok(path)
}

/// manulctl with `args` against the lab's bgpd socket and datastore.
fn manulctl(lab: &Lab, args: &[&str]) -> Result<Output> {
    let config = lab.write("manulctl.yaml", "")?;
    let store = format!("embedded://{}", lab.path("store.redb").display());
    let mut command = Command::new(manulctl_binary()?);
    for variable in ["MANUL_DATASTORE", "MANULCTL_CONFIG", "MANUL_AGENT_SOCKET"] {
        command.env_remove(variable);
    }
    Ok(command
        .arg("--config")
        .arg(config)
        .args(["--datastore", &store, "--bgpd-socket"])
        .arg(lab.path("bgpd.sock"))
        .args(args)
        .output()?)
}

fn ok(lab: &Lab, args: &[&str]) -> Result<String> {
    let output = manulctl(lab, args)?;
    ensure!(
        output.status.success(),
        "manulctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn bgpd_config(me: &common::Node, bird: &common::Node) -> String {
    format!(
        r#"[global]
asn = 65001
router_id = "{me}"
listen_address = "{me}"

[[peer]]
name = "peer-tor~0a0b0c0d"
address = "{bird}"
local_address = "{me}"
asn = 65002
hold_time = 9
connect_retry = 1
import = {{ default = "accept" }}
export = {{ default = "reject" }}
"#,
        me = me.address,
        bird = bird.address,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_status_and_bgp_routes_show_a_session_with_bird() -> Result<()> {
    common::require_root();
    common::require_programs(&["bird", "birdc"]);
    let mut lab = Lab::new("ctl")?;
    let result = node_status(&mut lab).await;
    lab.finish(result)
}

async fn node_status(lab: &mut Lab) -> Result<()> {
    let (me, peer) = (lab.node("bgpd")?, lab.node("bird")?);
    // Before bgpd runs: not running, exit 1, what to do.
    let output = manulctl(lab, &["node", "status"])?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success()
            && text.contains("manul process is not running.")
            && text.contains("start manul-bgpd"),
        "{text}"
    );
    let bird_config = bird_static("originated", &["10.2.0.0/24"])
        + &bird_bgp(
            "bgpd",
            (&peer, 65002),
            (&me, 65001),
            "hold time 9;",
            "import all; export all;",
        );
    let _bird = Bird::start(lab, "bird", &peer, &bird_config).await?;
    // The BGPPeer behind the session's name: for one node only.
    let peer_file = lab.write(
        "tor.yaml",
        &format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  \
             node: node-1\n  peerIP: {}\n  asNumber: 65002\n",
            peer.address
        ),
    )?;
    ok(lab, &["apply", "-f", peer_file.to_str().context("path")?])?;
    let mut client = bgpd::start(lab, "bgpd", &me, &bgpd_config(&me, &peer)).await?;
    let bird_address = peer.address.to_string();
    bgpd::wait_peer(&mut client, &bird_address, "Established", established).await?;
    let mut paths = Paths::watch(&mut client).await?;
    paths.wait_prefix("10.2.0.0/24").await?;

    let status = ok(lab, &["node", "status"])?;
    ensure!(
        status.starts_with("manul process is running.\n"),
        "{status}"
    );
    let row = status
        .lines()
        .find(|line| line.contains(&format!("| {bird_address} ")))
        .with_context(|| status.clone())?;
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    ensure!(
        cells[1..6]
            == [
                bird_address.as_str(),
                "node specific",
                "up",
                cells[4],
                "Established"
            ],
        "{status}"
    );
    ensure!(
        cells[4].ends_with('Z') && cells[4].len() == 20,
        "SINCE: {status}"
    );
    ensure!(
        status.contains("IPv4 BGP status") && status.contains("No IPv6 peers found."),
        "{status}"
    );

    let peers: serde_json::Value =
        serde_json::from_str(&ok(lab, &["bgp", "peers", "-o", "json"])?)?;
    ensure!(
        peers[0]["address"] == bird_address.as_str()
            && peers[0]["state"] == "Established"
            && peers[0]["name"] == "peer-tor"
            && peers[0]["prefixesAccepted"] == 1,
        "{peers}"
    );

    let routes: serde_json::Value =
        serde_json::from_str(&ok(lab, &["bgp", "routes", "10.2.0.7", "-o", "json"])?)?;
    ensure!(
        routes.as_array().map(Vec::len) == Some(1)
            && routes[0]["prefix"] == "10.2.0.0/24"
            && routes[0]["nextHops"][0] == bird_address.as_str()
            && routes[0]["asPath"][0] == 65002
            && routes[0]["origin"] == "IGP",
        "{routes}"
    );
    let table = ok(lab, &["bgp", "routes"])?;
    ensure!(
        table.contains(&format!("| 10.2.0.0/24 | {bird_address} | 65002   | IGP ")),
        "{table}"
    );
    eprintln!("{status}\n{table}");
    let none = ok(lab, &["bgp", "routes", "10.3.0.0/24", "-o", "json"])?;
    ensure!(none.trim() == "[]", "{none}");
    Ok(())
}
