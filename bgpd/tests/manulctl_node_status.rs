//! manulctl's `node status`, `bgp peers -o json` and `bgp routes` against a real manul-bgpd
//! peered with a real BIRD 2, each in a namespace of the test's own: the session shows
//! Established (state "up") with the peer type from the BGPPeer in the datastore (node
//! specific), and the prefixes BIRD originates are routes with BIRD as next hop and as peer
//! (ListRoutes), bgpd's own originated prefix has peer "local", and the covering, exact and
//! `--longer` filters return exactly the routes they should. Needs root, bird, birdc and the manulctl binary
//! of the same profile (`cargo build --release -p manul-ctl`). Does I/O: processes, netns.

mod common;

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use common::{
    Lab,
    bgpd::{self, Paths, established},
    peers::{Bird, bird_bgp, bird_static},
};
use manul_proto::bgpd as proto;

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
    let bird_config = bird_static("originated", &BIRD_PREFIXES)
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
    for prefix in BIRD_PREFIXES {
        paths.wait_prefix(prefix).await?;
    }
    // One route of bgpd's own: "local" as its peer.
    client
        .add_prefixes(proto::AddPrefixesRequest {
            prefixes: vec![proto::OriginatedPrefix {
                prefix: "10.50.0.0/24".to_string(),
                ..Default::default()
            }],
        })
        .await?;

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
            && peers[0]["prefixesAccepted"] == BIRD_PREFIXES.len(),
        "{peers}"
    );

    // Every route, BIRD's with BIRD as their peer, bgpd's own as "local" (polled: the
    // origination reaches the RIB after AddPrefixes returns).
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let all = routes(lab, &["bgp", "routes", "-o", "json"])?;
        if all.iter().any(|route| route["prefix"] == "10.50.0.0/24") || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut expected: Vec<&str> = BIRD_PREFIXES.to_vec();
    expected.push("10.50.0.0/24");
    expected.sort_by_key(|prefix| prefix.parse::<ipnet::IpNet>().ok());
    ensure!(prefixes(&all) == expected, "{all:?}");
    for route in &all {
        let local = route["prefix"] == "10.50.0.0/24";
        ensure!(
            if local {
                route["peer"] == "local" && route.get("peerAsn").is_none()
            } else {
                route["peer"] == bird_address.as_str()
                    && route["peerAsn"] == 65002
                    && route["nextHops"][0] == bird_address.as_str()
                    && route["asPath"][0] == 65002
                    && route["origin"] == "IGP"
            },
            "{route}"
        );
    }

    // Filters: covering an address, exact, and every route a prefix covers.
    let covering = routes(lab, &["bgp", "routes", "10.2.0.7", "-o", "json"])?;
    ensure!(prefixes(&covering) == ["10.2.0.0/24"], "{covering:?}");
    let covering = routes(lab, &["bgp", "routes", "10.2.0.200", "-o", "json"])?;
    ensure!(
        prefixes(&covering) == ["10.2.0.0/24", "10.2.0.128/25"],
        "{covering:?}"
    );
    let exact = routes(
        lab,
        &["bgp", "routes", "10.2.0.0/24", "--exact", "-o", "json"],
    )?;
    ensure!(prefixes(&exact) == ["10.2.0.0/24"], "{exact:?}");
    let longer = routes(
        lab,
        &["bgp", "routes", "10.2.0.0/16", "--longer", "-o", "json"],
    )?;
    ensure!(
        prefixes(&longer) == ["10.2.0.0/24", "10.2.0.128/25", "10.2.1.0/24"],
        "{longer:?}"
    );
    let none = routes(lab, &["bgp", "routes", "10.3.0.0/24", "-o", "json"])?;
    ensure!(none.is_empty(), "{none:?}");

    let table = ok(lab, &["bgp", "routes", "10.2.0.0/24", "--exact"])?;
    let row = table
        .lines()
        .find(|line| line.contains("| 10.2.0.0/24 "))
        .with_context(|| table.clone())?;
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    ensure!(
        cells[1..6]
            == [
                "10.2.0.0/24",
                bird_address.as_str(),
                format!("{bird_address} (AS 65002)").as_str(),
                "65002",
                "IGP"
            ],
        "{table}"
    );
    ensure!(
        table
            .lines()
            .nth(1)
            .is_some_and(|line| line.contains("| PEER ")),
        "{table}"
    );
    let whole = ok(lab, &["bgp", "routes"])?;
    ensure!(
        whole
            .lines()
            .any(|line| line.contains("| 10.50.0.0/24 ") && line.contains("| local ")),
        "{whole}"
    );
    eprintln!("{status}\n{whole}");
    Ok(())
}

/// What BIRD originates: nested and disjoint prefixes for the filters.
const BIRD_PREFIXES: [&str; 4] = ["10.2.0.0/24", "10.2.0.128/25", "10.2.1.0/24", "10.9.0.0/16"];

/// `manulctl ARGS` (with `-o json`) as a list of routes.
fn routes(lab: &Lab, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    Ok(serde_json::from_str(&ok(lab, args)?)?)
}

fn prefixes(routes: &[serde_json::Value]) -> Vec<&str> {
    routes
        .iter()
        .filter_map(|route| route["prefix"].as_str())
        .collect()
}
