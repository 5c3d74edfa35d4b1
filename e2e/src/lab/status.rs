//! What the lab shows: its nodes, every BGP session (each node's bgpd and the ToR's BIRD), each
//! node's manul routes by kind, and the connectivity matrix (ping and a TCP connect for every
//! pod pair and from each pod to the outside host) with the path each pair took. Does I/O.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Read,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result};
use manul_proto::bgpd::{ListPeersRequest, bgpd_client::BgpdClient};
use serde_json::Value;

use super::{Lab, LabNode, OUTSIDE, tor::birdc};
use crate::Netns;

/// Calico's VXLAN devices.
pub const VXLAN_DEVICE: &str = "vxlan.calico";
pub const VXLAN_DEVICE_V6: &str = "vxlan-v6.calico";

/// The TCP port every pod and the outside host listen on.
pub const PROBE_PORT: u16 = 7070;

/// One BGP session as a node's bgpd reports it.
#[derive(Clone, Debug)]
pub struct Session {
    pub node: String,
    pub peer: String,
    pub name: String,
    pub state: String,
    pub accepted: u64,
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub from: String,
    pub to: String,
    /// Over IPv6 (a dual-stack lab has a cell per family).
    pub ipv6: bool,
    pub ping: bool,
    pub tcp: bool,
    pub path: String,
}

impl Cell {
    pub fn ok(&self) -> bool {
        self.ping && self.tcp
    }
}

/// Every session of every node's bgpd.
pub fn sessions(lab: &Lab) -> Result<Vec<Session>> {
    if !lab.opts.bgp {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut sessions = Vec::new();
    for node in &lab.nodes {
        let socket = node.bgpd_socket();
        let peers = runtime.block_on(async {
            let channel = manul_agent::client::unix_channel(&socket, Default::default()).await?;
            let response = BgpdClient::new(channel)
                .list_peers(ListPeersRequest::default())
                .await?;
            anyhow::Ok(response.into_inner().peers)
        });
        let peers = match peers {
            Ok(peers) => peers,
            Err(error) => {
                sessions.push(Session {
                    node: node.name.clone(),
                    peer: "-".into(),
                    name: "manul-bgpd".into(),
                    state: format!("unreachable: {error:#}"),
                    accepted: 0,
                });
                continue;
            }
        };
        for status in peers {
            let Some(peer) = status.peer else { continue };
            sessions.push(Session {
                node: node.name.clone(),
                peer: peer.address,
                name: peer.name.split('~').next().unwrap_or_default().to_string(),
                state: status.state,
                accepted: status.prefixes_accepted,
            });
        }
    }
    Ok(sessions)
}

/// Every BGP session of the lab is Established (the nodes' and the ToR's), and every node has
/// a learned route to each other node's pods: BGP has converged.
pub fn bgp_converged(lab: &Lab) -> bool {
    if !lab.opts.bgp {
        return true;
    }
    let established = |state: &str| state == "Established";
    let nodes_up = sessions(lab).is_ok_and(|sessions| {
        !sessions.is_empty() && sessions.iter().all(|session| established(&session.state))
    });
    let tor_up = tor_sessions(lab).is_ok_and(|sessions| {
        sessions.len() == if lab.tor_bgp() { lab.nodes.len() } else { 0 }
            && sessions.iter().all(|(_, state)| established(state))
    });
    let routes_in = lab.nodes.iter().all(|node| {
        routes_by_kind(node, true).is_ok_and(|kinds| {
            let learned: usize = ["learned block", "learned /32", "vxlan block", "vxlan /32"]
                .iter()
                .map(|kind| kinds.get(*kind).map_or(0, Vec::len))
                .sum();
            learned + 1 >= lab.nodes.len()
        })
    });
    nodes_up && tor_up && routes_in
}

/// The ToR's sessions ("n0 Established"), from `birdc show protocols`.
pub fn tor_sessions(lab: &Lab) -> Result<Vec<(String, String)>> {
    if !lab.tor_bgp() {
        return Ok(Vec::new());
    }
    let text = birdc(lab, &["show", "protocols"])?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 6 && fields[1] == "BGP")
                .then(|| (fields[0].to_string(), fields[5].to_string()))
        })
        .collect())
}

/// A node's manul routes by kind: "pod", "own block", "vxlan block", "vxlan /32" (through
/// vxlan.calico), "learned block", "learned /32" (via another node, learned over BGP; "direct
/// block" and "direct /32" without BGP: straight to a same-subnet node), "learned other".
pub fn routes_by_kind(node: &LabNode, bgp: bool) -> Result<BTreeMap<String, Vec<String>>> {
    let mut routes: Vec<Value> = Vec::new();
    let families: &[&str] = if node.address6.is_some() {
        &["-4", "-6"]
    } else {
        &["-4"]
    };
    for family in families {
        let output = node
            .ns
            .ip(&["-j", family, "route", "show", "proto", "manul"])?;
        let listed: Vec<Value> = serde_json::from_str(&output).unwrap_or_default();
        routes.extend(listed);
    }
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in routes {
        let destination = route["dst"].as_str().unwrap_or_default().to_string();
        let kind = if route["type"] == "blackhole" {
            "own block"
        } else if route["dev"]
            .as_str()
            .is_some_and(|dev| dev.starts_with("cali"))
        {
            "pod"
        } else if !destination.starts_with("10.244.") && !destination.starts_with("fd00:244:") {
            "learned other"
        } else if route["dev"] == VXLAN_DEVICE || route["dev"] == VXLAN_DEVICE_V6 {
            if destination.contains('/') {
                "vxlan block"
            } else {
                "vxlan /32"
            }
        } else if !bgp {
            if destination.contains('/') {
                "direct block"
            } else {
                "direct /32"
            }
        } else if destination.contains('/') {
            "learned block"
        } else {
            "learned /32"
        };
        let via = route["gateway"]
            .as_str()
            .map(|gateway| format!(" via {gateway}"))
            .or_else(|| {
                route["nexthops"].as_array().map(|hops| {
                    let gateways: Vec<&str> = hops
                        .iter()
                        .filter_map(|hop| hop["gateway"].as_str())
                        .collect();
                    format!(" via {}", gateways.join(" & "))
                })
            })
            .unwrap_or_default();
        kinds
            .entry(kind.to_string())
            .or_default()
            .push(format!("{destination}{via}"));
    }
    Ok(kinds)
}

/// Listens on `PROBE_PORT` inside `ns` and answers every connection with "ok" (for a pod
/// added after [`start_probes`]).
pub fn serve_probe(ns: &Netns) -> Result<()> {
    // "::" takes IPv4 connections too (bindv6only is 0).
    let listener = ns
        .run_in(|| TcpListener::bind(("::", PROBE_PORT)))?
        .with_context(|| format!("listening on {PROBE_PORT} in {}", ns.name()))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = std::io::Write::write_all(&mut stream, b"ok");
        }
    });
    Ok(())
}

/// Starts the probe listeners of every pod and the outside host (once per lab).
pub fn start_probes(lab: &Lab) -> Result<()> {
    for pod in &lab.pods {
        serve_probe(&pod.ns)?;
    }
    serve_probe(&lab.outside)
}

fn ping(ns: &Netns, address: IpAddr) -> bool {
    ns.exec(&["ping", "-c", "1", "-W", "1", &address.to_string()])
        .is_ok_and(|output| output.status.success())
}

fn tcp(ns: &Netns, address: IpAddr) -> bool {
    ns.run_in(|| -> std::io::Result<bool> {
        let target = SocketAddr::from((address, PROBE_PORT));
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut answer = [0u8; 2];
        stream.read_exact(&mut answer)?;
        Ok(&answer == b"ok")
    })
    .is_ok_and(|answer| answer.unwrap_or(false))
}

/// The hops a packet from a pod of node `from` to `address` takes, from the nodes' routes.
fn path(lab: &Lab, from: usize, to_node: Option<usize>, address: IpAddr) -> String {
    let source = &lab.nodes[from];
    if to_node == Some(from) {
        return format!("{} (same node)", source.name);
    }
    let route = source
        .ns
        .ip(&["-j", "route", "get", &address.to_string()])
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .map(|routes| routes[0].clone())
        .unwrap_or_default();
    let target = to_node.map_or("outside".to_string(), |node| lab.nodes[node].name.clone());
    if route["dev"] == VXLAN_DEVICE || route["dev"] == VXLAN_DEVICE_V6 {
        return format!("{} ⇒ {target} (vxlan)", source.name);
    }
    let Some(gateway) = route["gateway"].as_str() else {
        return format!("{} → ? (no route)", source.name);
    };
    match lab.nodes.iter().position(|node| {
        node.address.to_string() == gateway
            || node
                .address6
                .is_some_and(|address6| address6.to_string() == gateway)
    }) {
        Some(next) if Some(next) == to_node => format!("{} → {target}", source.name),
        Some(next) => format!("{} → {} → {target}", source.name, lab.nodes[next].name),
        None if gateway == source.gateway().to_string()
            || gateway == super::wiring::subnet_gateway6(source.subnet).to_string() =>
        {
            format!("{} → tor → {target}", source.name)
        }
        None => format!("{} → {gateway} → {target}", source.name),
    }
}

/// Pings and connects every pair (and each pod to the outside host).
pub fn matrix(lab: &Lab) -> Vec<Cell> {
    let mut cells = Vec::new();
    let cell = |from: &super::LabPod, to: &str, to_node: Option<usize>, address: IpAddr| Cell {
        from: from.name.clone(),
        to: to.to_string(),
        ipv6: address.is_ipv6(),
        ping: ping(&from.ns, address),
        tcp: tcp(&from.ns, address),
        path: path(lab, from.node, to_node, address),
    };
    for from in &lab.pods {
        for to in &lab.pods {
            if from.name == to.name {
                continue;
            }
            cells.push(cell(from, &to.name, Some(to.node), to.address.into()));
            if let (Some(_), Some(address6)) = (from.address6, to.address6) {
                cells.push(cell(from, &to.name, Some(to.node), address6.into()));
            }
        }
        if lab.outside_reachable() {
            cells.push(cell(from, "outside", None, OUTSIDE.into()));
            if from.address6.is_some() {
                cells.push(cell(from, "outside", None, super::OUTSIDE6.into()));
            }
        }
    }
    cells
}

/// The status report as text.
pub fn report(lab: &Lab, cells: &[Cell]) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "Nodes")?;
    writeln!(
        out,
        "  {:<6} {:<13} {:<7} {:<9}",
        "NAME", "ADDRESS", "SUBNET", "ROLE"
    )?;
    for (index, node) in lab.nodes.iter().enumerate() {
        let role = if lab.opts.route_reflector && index == 0 {
            "reflector"
        } else {
            "node"
        };
        writeln!(
            out,
            "  {:<6} {:<13} {:<7} {:<9}",
            node.name,
            node.address.to_string(),
            node.subnet,
            role
        )?;
    }
    writeln!(
        out,
        "\nPool {}: vxlanMode {:?}, natOutgoing {}; BGP {}",
        super::POOL,
        lab.opts.vxlan_mode,
        lab.opts.nat_outgoing,
        if lab.opts.bgp { "on" } else { "off" }
    )?;
    writeln!(out, "\nBGP sessions")?;
    writeln!(
        out,
        "  {:<6} {:<13} {:<12} {:<12} {:>8}",
        "NODE", "PEER", "NAME", "STATE", "PREFIXES"
    )?;
    for session in sessions(lab)? {
        writeln!(
            out,
            "  {:<6} {:<13} {:<12} {:<12} {:>8}",
            session.node, session.peer, session.name, session.state, session.accepted
        )?;
    }
    for (name, state) in tor_sessions(lab)? {
        writeln!(
            out,
            "  {:<6} {:<13} {:<12} {:<12}",
            "tor", name, "bird", state
        )?;
    }
    writeln!(out, "\nRoutes (proto manul)")?;
    for node in &lab.nodes {
        for (kind, routes) in routes_by_kind(node, lab.opts.bgp)? {
            writeln!(out, "  {:<6} {:<14} {}", node.name, kind, routes.join(", "))?;
        }
    }
    writeln!(out, "\nConnectivity (ping, tcp/{PROBE_PORT})")?;
    writeln!(
        out,
        "  {:<8} {:<8} {:<4} {:<5} {:<5} PATH",
        "FROM", "TO", "IP", "PING", "TCP"
    )?;
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    for cell in cells {
        writeln!(
            out,
            "  {:<8} {:<8} {:<4} {:<5} {:<5} {}",
            cell.from,
            cell.to,
            if cell.ipv6 { "v6" } else { "v4" },
            mark(cell.ping),
            mark(cell.tcp),
            cell.path
        )?;
    }
    let failed = cells.iter().filter(|cell| !cell.ok()).count();
    writeln!(
        out,
        "\n{} of {} paths ok{}",
        cells.len() - failed,
        cells.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    )?;
    Ok(out)
}

/// Waits (up to `timeout`) for BGP to converge and then for every cell of the matrix to pass;
/// returns the last matrix. `progress` is told what it waits for.
pub fn converge(lab: &Lab, timeout: Duration, progress: &mut dyn FnMut(&str)) -> Vec<Cell> {
    let deadline = std::time::Instant::now() + timeout;
    progress("waiting for BGP to carry every route");
    while !bgp_converged(lab) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    loop {
        let cells = matrix(lab);
        let ok = cells.iter().filter(|cell| cell.ok()).count();
        progress(&format!("converging: {ok} of {} paths ok", cells.len()));
        if ok == cells.len() || std::time::Instant::now() >= deadline {
            return cells;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Builds a lab and starts the probe listeners of its pods and outside host.
pub fn up_probed(opts: super::LabOptions) -> Result<Lab> {
    let lab = Lab::up(opts, &mut |_| {})?;
    start_probes(&lab)?;
    Ok(lab)
}

/// [`converge`], failing with the report and n0's agent log unless every cell passed.
pub fn require_converged(lab: &Lab, timeout: Duration) -> Result<Vec<Cell>> {
    let cells = converge(lab, timeout, &mut |_| {});
    if !cells.iter().all(Cell::ok) {
        anyhow::bail!(
            "the matrix did not converge in {timeout:?}:\n{}\n--- n0 agent ---\n{}",
            report(lab, &cells)?,
            lab.nodes[0].log("agent")
        );
    }
    Ok(cells)
}

/// The source address `to` sees for a TCP connection from `from` (a listener in `to` on port
/// 7071 accepts one connection).
pub fn source_seen(from: &Netns, to: &Netns, address: Ipv4Addr) -> Result<std::net::IpAddr> {
    let listener = to.run_in(|| std::net::TcpListener::bind(("0.0.0.0", 7071)))??;
    let accepted = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer.ip()));
    from.run_in(|| {
        std::net::TcpStream::connect_timeout(&(address, 7071).into(), Duration::from_secs(3))
    })??;
    accepted
        .join()
        .map_err(|_| anyhow::anyhow!("accept thread panicked"))?
        .context("accept")
}
