//! The lab as a test: a 4-node cluster over BGP (etcd, a ToR running BIRD, two subnets, two
//! pods per node through the CNI plugin) must reach the full connectivity matrix, with the
//! node-to-node mesh, with a route reflector and without the ToR; a deleted pod's route goes
//! everywhere; a deleted node's blocks go from every node and the ToR within 5 s; restarting a
//! node's agent, then its bgpd, loses no ping; an etcd member killed while pods come and go
//! loses nothing; routes the kernel drops with an uplink's carrier are written again at once.
//! Needs root, etcd and BIRD (fails with what to install otherwise). Namespaces
//! are removed when the lab is dropped. `manul-lab up|status|down` is tested in lab_cli.rs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use manul_e2e::lab::{Lab, LabOptions, birdc, status, with_store};
use manul_store::{BlockAffinity, DatastoreExt, Node};

const CONVERGE: Duration = Duration::from_secs(90);

fn up(opts: LabOptions) -> Result<Lab> {
    status::up_probed(opts)
}

fn converge(lab: &Lab) -> Result<Vec<status::Cell>> {
    status::require_converged(lab, CONVERGE)
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
    let ping = from.ns.spawn(
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

#[test]
fn without_the_tor_the_nodes_share_one_subnet_and_peer_only_with_each_other() -> Result<()> {
    let lab = up(LabOptions {
        nodes: 3,
        tor: false,
        ..LabOptions::default()
    })?;
    let cells = converge(&lab)?;
    assert_eq!(
        cells.len(),
        6 * 5 + 6,
        "pod pairs, and each pod to the outside host through NAT"
    );
    assert!(lab.nodes.iter().all(|node| node.subnet == 'a'));
    let across = cells
        .iter()
        .find(|cell| cell.from == "n0-p0" && cell.to == "n2-p0")
        .context("cell")?;
    assert_eq!(across.path, "n0 → n2", "{across:?}");
    let sessions = status::sessions(&lab)?;
    assert_eq!(
        sessions.len(),
        3 * 2,
        "a mesh of three, no ToR: {sessions:?}"
    );
    assert!(
        sessions
            .iter()
            .all(|session| session.name.starts_with("node-")),
        "{sessions:?}"
    );
    assert!(status::tor_sessions(&lab)?.is_empty());
    // The router has no route to any pod: it learns none.
    let tor_routes = lab
        .tor
        .ip(&["route", "show", "10.244.0.0/16", "root", "10.244.0.0/16"])?;
    assert_eq!(
        tor_routes.trim(),
        "",
        "the ToR learned pod routes without BGP"
    );
    Ok(())
}

#[test]
fn a_deleted_node_is_withdrawn_from_every_node_and_the_tor_within_5_s() -> Result<()> {
    let lab = up(LabOptions {
        nodes: 3,
        pods_per_node: 1,
        ..LabOptions::default()
    })?;
    converge(&lab)?;
    // n2 is alone on subnet b; n0 and n1 reach its block through the ToR.
    let blocks = status::routes_by_kind(&lab.nodes[2], true)?
        .remove("own block")
        .context("n2 has no block")?;
    assert!(!blocks.is_empty());
    let held_somewhere = |block: &str| -> Result<Vec<String>> {
        let mut holders = Vec::new();
        for node in &lab.nodes[..2] {
            if !node
                .ns
                .ip(&["route", "show", block, "proto", "manul"])?
                .trim()
                .is_empty()
            {
                holders.push(node.name.clone());
            }
        }
        if !lab.tor.ip(&["route", "show", block])?.trim().is_empty() {
            holders.push("tor kernel".into());
        }
        if birdc(&lab, &["show", "route", "for", block])?.contains(block) {
            holders.push("tor BIRD".into());
        }
        Ok(holders)
    };
    for block in &blocks {
        assert_eq!(
            held_somewhere(block)?,
            ["n0", "n1", "tor kernel", "tor BIRD"],
            "before the deletion every node and the ToR route {block}"
        );
    }

    let deleted = Instant::now();
    with_store(&lab, |store| async move {
        let node = store
            .get_resource::<Node>("n2")
            .await?
            .context("no Node n2")?;
        store.delete_resource::<Node>("n2", &node.revision).await?;
        Ok(())
    })?;
    manul_e2e::poll_until(
        Duration::from_secs(5),
        "n2's blocks to be withdrawn from n0, n1 and the ToR",
        || {
            for block in &blocks {
                if !held_somewhere(block)?.is_empty() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .with_context(|| {
        format!(
            "still held: {:?}\n--- n2 agent ---\n{}",
            blocks
                .iter()
                .map(|block| (block, held_somewhere(block).unwrap_or_default()))
                .collect::<Vec<_>>(),
            lab.nodes[2].log("agent")
        )
    })?;
    println!(
        "withdrawn everywhere {:?} after the deletion",
        deleted.elapsed()
    );
    // Its affinities are released (the routes may go first: the release is a series of
    // datastore writes of its own), and n0 and n1 still reach each other.
    let affinities_of_n2 = || {
        with_store(&lab, |store| async move {
            Ok(store
                .list_resources::<BlockAffinity>("")
                .await?
                .into_iter()
                .filter(|affinity| affinity.value.node == "n2")
                .count())
        })
    };
    manul_e2e::poll_until(
        Duration::from_secs(5),
        "n2's block affinities to be released after its Node",
        || Ok((affinities_of_n2()? == 0).then_some(())),
    )?;
    let cells = status::matrix(&lab);
    for cell in cells
        .iter()
        .filter(|cell| !cell.from.starts_with("n2") && !cell.to.starts_with("n2"))
    {
        assert!(cell.ok(), "{cell:?}");
    }
    Ok(())
}

#[test]
fn an_etcd_member_killed_while_pods_come_and_go_loses_nothing() -> Result<()> {
    let mut lab = up(LabOptions {
        nodes: 2,
        pods_per_node: 1,
        tor: false,
        etcd_members: 3,
        ..LabOptions::default()
    })?;
    converge(&lab)?;
    // Member 0 is every agent's first endpoint: killing it makes them fail over.
    for round in 0..16 {
        if round == 5 {
            lab.kill_etcd_member(0)?;
        }
        let pod = lab
            .add_pod_to(round % 2)
            .with_context(|| format!("ADD in round {round}"))?;
        status::serve_probe(&pod.ns)?;
        if round % 3 == 2 {
            let oldest = lab.pods[0].name.clone();
            lab.delete_pod(&oldest)
                .with_context(|| format!("DEL of {oldest} in round {round}"))?;
        }
    }
    let mut addresses: Vec<_> = lab.pods.iter().map(|pod| pod.address).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(
        addresses.len(),
        lab.pods.len(),
        "an address was handed out twice"
    );
    let pods = lab.pods.len();
    let report = with_store(&lab, |store| async move {
        Ok(manul_ipam::Ipam::new(store).check().await?)
    })?;
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(
        report.allocated, pods,
        "every live pod holds one address and no deleted pod still does: {report:?}"
    );
    converge(&lab)?;
    Ok(())
}

#[test]
fn pool_traffic_to_the_outside_is_masqueraded_and_pod_to_pod_keeps_its_address() -> Result<()> {
    let lab = up(LabOptions {
        nodes: 2,
        pods_per_node: 1,
        tor: false,
        ..LabOptions::default()
    })?;
    converge(&lab)?;
    let (n0_pod, n1_pod) = (&lab.pods[0], &lab.pods[1]);
    // Without the ToR nothing outside knows the pod routes: only NAT makes the outside host
    // reachable, and it sees the node's address.
    let seen = status::source_seen(&n0_pod.ns, &lab.outside, manul_e2e::lab::OUTSIDE)?;
    assert_eq!(
        seen,
        std::net::IpAddr::from(lab.nodes[0].address),
        "natOutgoing"
    );
    let seen = status::source_seen(&n0_pod.ns, &n1_pod.ns, n1_pod.address)?;
    assert_eq!(
        seen,
        std::net::IpAddr::from(n0_pod.address),
        "no NAT between pods"
    );
    let table = lab.nodes[0]
        .ns
        .exec_ok(&["nft", "list", "table", "inet", "manul"])?;
    assert!(table.contains("masquerade"), "{table}");
    Ok(())
}

/// A node's uplink loses its carrier: the kernel drops the routes that name next-hop objects on
/// it (silently), and the agent writes them again at once, spelled out, so that they carry
/// traffic the moment the carrier is back (the periodic reconcile would take up to 10 s here).
#[test]
fn routes_dropped_with_an_uplinks_carrier_are_written_again_at_once() -> Result<()> {
    let lab = up(LabOptions {
        nodes: 3,
        ..LabOptions::default()
    })?;
    converge(&lab)?;
    let node = &lab.nodes[0];
    let neighbour = lab
        .nodes
        .iter()
        .skip(1)
        .find(|other| other.subnet == node.subnet)
        .context("a node on n0's subnet")?;
    let via = format!("via {} dev eth0", neighbour.address);
    let routes_via_neighbour = || -> Result<String> {
        Ok(node
            .ns
            .ip(&["route", "show", "proto", "109"])?
            .lines()
            .filter(|line| line.contains(&via))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let before = routes_via_neighbour()?;
    assert!(
        before.contains("nhid"),
        "the routes name next-hop objects: {before}"
    );
    let port = format!("p-{}", node.name);
    lab.tor.ip(&["link", "set", &port, "down"])?;
    let rewritten = manul_e2e::poll_until(
        Duration::from_secs(3),
        "n0's routes via its neighbour written again, spelled out",
        || {
            let routes = routes_via_neighbour()?;
            let back = routes.lines().count() == before.lines().count()
                && routes.lines().all(|line| line.contains("linkdown"));
            Ok(back.then_some(routes))
        },
    );
    lab.tor.ip(&["link", "set", &port, "up"])?;
    let rewritten = rewritten?;
    assert!(!rewritten.contains("nhid"), "{rewritten}");
    converge(&lab)?;
    Ok(())
}
