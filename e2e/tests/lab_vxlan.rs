//! VXLAN, NAT and node moves in the lab (issue 8): the full matrix in each vxlanMode, each
//! pair over the path its mode prescribes (the route, and packets counted on vxlan.calico),
//! mode switches followed without restarting anything; VXLAN alone (BGP off) carrying the
//! cluster over IPv4 and IPv6 (vxlan-v6.calico); a VXLAN datagram from an unknown host
//! dropped while the same one from a node is delivered; a node's address change followed by
//! every FDB entry; natOutgoing switched off and on. Needs root, etcd and BIRD (fails naming what to install). Namespaces are removed
//! when the lab is dropped.

use std::{
    net::{Ipv4Addr, UdpSocket},
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use manul_e2e::{
    Netns,
    lab::{Lab, LabNode, LabOptions, status},
    poll_until,
};
use manul_store::{EncapsulationMode, IpPool};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(90);

fn set_mode(lab: &mut Lab, mode: EncapsulationMode) -> Result<()> {
    let change: fn(&mut IpPool) = match mode {
        EncapsulationMode::Never => |pool| pool.vxlan_mode = EncapsulationMode::Never,
        EncapsulationMode::CrossSubnet => |pool| pool.vxlan_mode = EncapsulationMode::CrossSubnet,
        EncapsulationMode::Always => |pool| pool.vxlan_mode = EncapsulationMode::Always,
    };
    lab.update_pool(change)
}

/// Whether the mode sends traffic from `from` to `to` through VXLAN.
fn encapsulated(mode: EncapsulationMode, from: &LabNode, to: &LabNode) -> bool {
    match mode {
        EncapsulationMode::Never => false,
        EncapsulationMode::Always => true,
        EncapsulationMode::CrossSubnet => from.subnet != to.subnet,
    }
}

/// The node of the pod (or None for the outside host).
fn node_of<'a>(lab: &'a Lab, pod: &str) -> Option<&'a LabNode> {
    let pod = lab.pods.iter().find(|candidate| candidate.name == pod)?;
    Some(&lab.nodes[pod.node])
}

/// The cells whose path is not the one `mode` prescribes (a VXLAN pair shows "⇒ … (vxlan)").
fn wrong_paths(lab: &Lab, cells: &[status::Cell], mode: EncapsulationMode) -> Vec<String> {
    cells
        .iter()
        .filter_map(|cell| {
            let from = node_of(lab, &cell.from)?;
            let vxlan = match node_of(lab, &cell.to) {
                Some(to) if to.name == from.name => false,
                Some(to) => encapsulated(mode, from, to),
                None => false,
            };
            (vxlan != cell.path.ends_with("(vxlan)"))
                .then(|| format!("{} → {}: {}", cell.from, cell.to, cell.path))
        })
        .collect()
}

/// Polls until every cell passes over the path `mode` prescribes.
fn converge_in(lab: &Lab, mode: EncapsulationMode) -> Result<Vec<status::Cell>> {
    let mut last = Vec::new();
    let outcome = poll_until(CONVERGE, "every pair over its mode's path", || {
        let cells = status::matrix(lab);
        let wrong = wrong_paths(lab, &cells, mode);
        let ok = cells.iter().all(status::Cell::ok) && wrong.is_empty();
        last = cells.clone();
        Ok(ok.then_some(cells))
    });
    outcome.with_context(|| {
        format!(
            "mode {mode:?}: wrong paths {:?}\n{}\n--- n0 agent ---\n{}",
            wrong_paths(lab, &last, mode),
            status::report(lab, &last).unwrap_or_default(),
            lab.nodes[0].log("agent")
        )
    })
}

/// Packets sent through vxlan.calico on `node` (None: no such device).
fn vxlan_tx_packets(node: &LabNode) -> Option<u64> {
    let text = node
        .ns
        .ip(&["-j", "-s", "link", "show", "dev", status::VXLAN_DEVICE])
        .ok()?;
    let links: Value = serde_json::from_str(&text).ok()?;
    links[0]["stats64"]["tx"]["packets"].as_u64()
}

/// Pings `address` five times from `pod` and says whether node `node`'s vxlan.calico sent them.
fn pings_cross_vxlan(lab: &Lab, node: usize, pod: &Netns, address: Ipv4Addr) -> Result<bool> {
    let before = vxlan_tx_packets(&lab.nodes[node]);
    let output = pod.exec(&[
        "ping",
        "-c",
        "5",
        "-i",
        "0.05",
        "-W",
        "1",
        &address.to_string(),
    ])?;
    ensure!(
        output.status.success(),
        "ping {address}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let after = vxlan_tx_packets(&lab.nodes[node]);
    Ok(matches!((before, after), (Some(before), Some(after)) if after >= before + 5))
}

fn agent_starts(node: &LabNode) -> usize {
    node.log("agent").matches("manul-agent serving").count()
}

#[test]
fn each_vxlan_mode_carries_the_matrix_over_its_path_and_follows_a_switch_without_restarts()
-> Result<()> {
    let mut lab = status::up_probed(LabOptions {
        nodes: 4,
        pods_per_node: 1,
        ..LabOptions::default()
    })?;
    status::require_converged(&lab, CONVERGE)?;
    let (same_subnet, other_subnet) = (lab.pods[1].address, lab.pods[2].address);
    ensure!(
        lab.nodes[0].subnet == lab.nodes[1].subnet && lab.nodes[0].subnet != lab.nodes[2].subnet,
        "the lab's layout changed: n0 and n1 on one subnet, n2 on the other"
    );
    for mode in [
        EncapsulationMode::CrossSubnet,
        EncapsulationMode::Always,
        EncapsulationMode::Never,
        EncapsulationMode::CrossSubnet,
    ] {
        set_mode(&mut lab, mode)?;
        converge_in(&lab, mode)?;
        let pod = &lab.pods[0].ns;
        assert_eq!(
            pings_cross_vxlan(&lab, 0, pod, same_subnet)?,
            mode == EncapsulationMode::Always,
            "{mode:?}: n0 → n1 (same subnet) through vxlan.calico?"
        );
        assert_eq!(
            pings_cross_vxlan(&lab, 0, pod, other_subnet)?,
            mode != EncapsulationMode::Never,
            "{mode:?}: n0 → n2 (other subnet) through vxlan.calico?"
        );
        if mode == EncapsulationMode::Never {
            poll_until(Duration::from_secs(10), "vxlan.calico to go", || {
                Ok(lab
                    .nodes
                    .iter()
                    .all(|node| vxlan_tx_packets(node).is_none())
                    .then_some(()))
            })?;
        }
    }
    for node in &lab.nodes {
        assert_eq!(agent_starts(node), 1, "{} was restarted", node.name);
    }

    // natOutgoing: the ToR routes to the pods, so without NAT the outside host sees the pod.
    let pod = &lab.pods[0];
    let seen = status::source_seen(&pod.ns, &lab.outside, manul_e2e::lab::OUTSIDE)?;
    assert_eq!(seen, std::net::IpAddr::from(lab.nodes[0].address), "NAT on");
    lab.update_pool(|pool| pool.nat_outgoing = false)?;
    let pod = &lab.pods[0];
    poll_until(
        Duration::from_secs(10),
        "the pod's own address outside",
        || {
            let seen = status::source_seen(&pod.ns, &lab.outside, manul_e2e::lab::OUTSIDE)?;
            Ok((seen == std::net::IpAddr::from(pod.address)).then_some(()))
        },
    )?;
    Ok(())
}

/// A VXLAN datagram (VNI 4096) carrying an IPv4/UDP packet `source:5555 → destination:port`
/// with `payload`, addressed to the VTEP MAC `mac`.
fn vxlan_datagram(
    mac: [u8; 6],
    source: Ipv4Addr,
    destination: Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut packet = vec![0x08, 0, 0, 0, 0x00, 0x10, 0x00, 0];
    packet.extend_from_slice(&mac);
    packet.extend_from_slice(&[0x66, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&source.octets());
    ip.extend_from_slice(&destination.octets());
    let sum: u32 = ip
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    packet.extend_from_slice(&ip);
    packet.extend_from_slice(&5555u16.to_be_bytes());
    packet.extend_from_slice(&port.to_be_bytes());
    packet.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    packet
}

/// The packet count of the rule that drops VXLAN from unknown hosts on `node`.
fn spoofed_vxlan_drops(node: &LabNode) -> Result<u64> {
    let text = node
        .ns
        .exec_ok(&["nft", "list", "chain", "inet", "manul", "input"])?;
    let line = text
        .lines()
        .find(|line| line.contains("VXLAN from unknown hosts"))
        .context("no VXLAN rule in manul's input chain")?;
    let packets = line
        .split_whitespace()
        .skip_while(|word| *word != "packets")
        .nth(1)
        .context("the rule has no counter")?;
    Ok(packets.parse()?)
}

fn send_from(ns: &Netns, datagram: Vec<u8>, to: Ipv4Addr) -> Result<()> {
    ns.run_in(move || -> Result<()> {
        let socket = UdpSocket::bind(("0.0.0.0", 0))?;
        socket.send_to(&datagram, (to, 4789))?;
        Ok(())
    })?
}

fn fdb_destinations(node: &LabNode) -> Result<Vec<String>> {
    let text = node
        .ns
        .exec_ok(&["bridge", "-j", "fdb", "show", "dev", status::VXLAN_DEVICE])?;
    let entries: Value = serde_json::from_str(&text)?;
    Ok(entries
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["dst"].as_str().map(str::to_string))
        .collect())
}

#[test]
fn without_bgp_dual_stack_vxlan_alone_carries_the_cluster_drops_unknown_senders_and_follows_a_moved_node()
-> Result<()> {
    let mut lab = status::up_probed(LabOptions {
        nodes: 4,
        pods_per_node: 1,
        bgp: false,
        ipv6: true,
        vxlan_mode: EncapsulationMode::CrossSubnet,
        ..LabOptions::default()
    })?;
    let cells = converge_in(&lab, EncapsulationMode::CrossSubnet)?;
    assert_eq!(
        cells.len(),
        (4 * 3 + 4) * 2,
        "pod pairs and the outside (NAT), over IPv4 and IPv6"
    );
    assert!(status::sessions(&lab)?.is_empty());
    for node in &lab.nodes {
        let kinds = status::routes_by_kind(node, false)?;
        assert!(
            !kinds.keys().any(|kind| kind.starts_with("learned")),
            "{}: {kinds:?}",
            node.name
        );
        assert_eq!(
            kinds.get("direct block").map_or(0, Vec::len),
            2,
            "the same-subnet node's IPv4 and IPv6 blocks: {kinds:?}"
        );
        assert_eq!(
            kinds.get("vxlan block").map_or(0, Vec::len),
            4,
            "the other subnet's two nodes, both families: {kinds:?}"
        );
        let device = node
            .ns
            .json(&["-d", "link", "show", status::VXLAN_DEVICE_V6])?;
        assert_eq!(
            device[0]["mtu"], 1430,
            "{}: the uplink's 1500 less 70",
            node.name
        );
        assert_eq!(
            device[0]["linkinfo"]["info_data"]["local6"].as_str(),
            node.address6.map(|address| address.to_string()).as_deref(),
            "{}: vxlan-v6.calico's local address",
            node.name
        );
    }
    let n3_v6 = lab.nodes[3]
        .address6
        .context("n3's IPv6 address")?
        .to_string();
    let n0_fdb6 =
        lab.nodes[0]
            .ns
            .exec_ok(&["bridge", "fdb", "show", "dev", status::VXLAN_DEVICE_V6])?;
    assert!(n0_fdb6.contains(&format!("dst {n3_v6}")), "{n0_fdb6}");
    let peers6 =
        lab.nodes[0]
            .ns
            .exec_ok(&["nft", "list", "set", "inet", "manul", "vxlan-peers-v6"])?;
    assert!(peers6.contains(&n3_v6), "{peers6}");
    let tor_routes = lab
        .tor
        .ip(&["route", "show", "root", manul_e2e::lab::POOL])?;
    assert_eq!(tor_routes.trim(), "", "the ToR knows no pod route");

    // A VXLAN datagram for n0-p0: from the outside host it is dropped, from n2 delivered.
    let target = &lab.pods[0];
    let inner_source = lab.pods[2].address;
    let listener = target.ns.run_in(|| -> Result<UdpSocket> {
        let socket = UdpSocket::bind(("0.0.0.0", 7072))?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(socket)
    })??;
    let mac = manul_agent::vxlan::parse_mac(&manul_agent::vxlan::vtep_mac(
        "n0",
        manul_agent::vxlan::Family::V4,
    ))
    .context("the VTEP MAC")?;
    let n0 = lab.nodes[0].address;
    let dropped = spoofed_vxlan_drops(&lab.nodes[0])?;
    let spoofed = vxlan_datagram(mac, inner_source, target.address, 7072, b"spoofed");
    send_from(&lab.outside, spoofed, n0)?;
    poll_until(
        Duration::from_secs(5),
        "the drop counter to count it",
        || Ok((spoofed_vxlan_drops(&lab.nodes[0])? > dropped).then_some(())),
    )?;
    let genuine = vxlan_datagram(mac, inner_source, target.address, 7072, b"from-n2");
    send_from(&lab.nodes[2].ns, genuine, n0)?;
    let mut buffer = [0u8; 64];
    let (length, sender) = listener
        .recv_from(&mut buffer)
        .context("receiving in n0-p0")?;
    assert_eq!(
        &buffer[..length],
        b"from-n2",
        "the first datagram delivered"
    );
    assert_eq!(sender.ip(), std::net::IpAddr::from(inner_source));

    // n3 moves to another address: every other node's FDB entry for it follows.
    let (old, new) = (lab.nodes[3].address, Ipv4Addr::new(10, 80, 2, 23));
    lab.change_node_address(3, new)?;
    poll_until(CONVERGE, "every FDB entry of n3 to follow it", || {
        for node in &lab.nodes[..3] {
            let destinations = fdb_destinations(node)?;
            if !destinations.contains(&new.to_string()) || destinations.contains(&old.to_string()) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    for node in &lab.nodes[..3] {
        let peers = node
            .ns
            .exec_ok(&["nft", "list", "set", "inet", "manul", "vxlan-peers"])?;
        if !peers.contains(&new.to_string()) || peers.contains(&old.to_string()) {
            bail!("{}: vxlan-peers does not follow n3: {peers}", node.name);
        }
    }
    converge_in(&lab, EncapsulationMode::CrossSubnet)?;
    Ok(())
}
