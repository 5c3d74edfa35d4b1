//! manul-lab-bench: the lab's benchmarks, in one run on one lab (etcd, a ToR running BIRD,
//! `--nodes` nodes on two subnets, one pod each). Needs root; does I/O.
//!
//! - iperf3 pod to pod, against iperf3 over one raw veth pair between two fresh namespaces:
//!   the client in n0's pod, the server in a pod of a node on the same subnet (n0 → n1, the
//!   packet crosses the ToR's bridge) and in a pod of a node on the other subnet (n0 → tor →
//!   n2, routed by the ToR); and node to node over the same two paths (the lab's fabric
//!   without the pods' veths: what no CNI can beat). Client pinned to core 0, server to core 1; the variants take
//!   turns within each repetition (which goes first rotates), once with TSO/GSO on and once
//!   off on the sender's eth0; medians of `--reps` runs of `--seconds` each, and their ratio to
//!   the raw veth (issue 7's goal: at least 0.97×).
//!   With `--vxlan-mode crosssubnet` (the default) the path across the ToR goes through
//!   vxlan.calico: that pod-to-pod path is measured against issue 8's goal (0.85×), the
//!   same-subnet one (routed) against issue 7's. Each pod-to-pod path also runs beside its
//!   kernel floor ([`manul_e2e::floor`]): the same wiring by hand in fresh namespaces, static
//!   routes and nothing of manul, so that the report tells what the kernel's path costs from
//!   what manul adds to it.
//! - ping round trips: bursts of `--pings` echo requests 1 ms apart over raw veth, between two
//!   pods of one node, routed to a node on the same subnet, and through VXLAN to one on the
//!   other subnet; the paths take turns within each of `--reps` rounds; medians.
//! - node join: `--joins` nodes join one after another ([`Lab::add_node`]); for each, from the
//!   start of its bgpd and agent until every pod of every other node reaches its pods, with
//!   the steps in between; then the lab settles (every session up) before the next.
//!
//! Ctrl-C removes the lab's namespaces (and with them its processes).

use std::{path::PathBuf, sync::Mutex, time::Duration};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use indicatif::ProgressBar;
use manul_e2e::{
    Netns,
    floor::{Floor, FloorPath},
    iperf::{self, Server, VethPair, median},
    lab::{Lab, LabOptions, join::JoinTiming, status},
    ping, poll_until,
};
use manul_store::EncapsulationMode;
use serde_json::{Value, json};

/// How long the lab may take to converge, and a join to complete.
const CONVERGE: Duration = Duration::from_secs(90);
const JOIN: Duration = Duration::from_secs(60);
/// Issue 7's goal for routed pod-to-pod throughput against raw veth.
const GOAL: f64 = 0.97;
/// Issue 8's goal for pod-to-pod throughput through VXLAN against raw veth.
const VXLAN_GOAL: f64 = 0.85;
const CLIENT_CORE: usize = 0;
const SERVER_CORE: usize = 1;

/// The lab's directory, removed by the Ctrl-C handler (the namespaces go by name).
static LAB_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

#[derive(Parser, Debug)]
#[command(
    name = "manul-lab-bench",
    about = "The lab's benchmarks: iperf3 pod to pod vs raw veth, and node join time"
)]
struct Args {
    /// Nodes of the lab before any join (at least 3 for both iperf3 paths).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Nodes that join one after another.
    #[arg(long, default_value_t = 3)]
    joins: usize,
    /// Pods of each joining node.
    #[arg(long, default_value_t = 1)]
    join_pods: usize,
    /// iperf3 repetitions (each runs every variant with offloads on and off).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds of each iperf3 run (after one omitted second).
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Echo requests per ping burst.
    #[arg(long, default_value_t = 500)]
    pings: u32,
    /// The pool's vxlanMode (crosssubnet: the path across the ToR goes through VXLAN).
    #[arg(long, value_enum, default_value_t = VxlanMode::Crosssubnet)]
    vxlan_mode: VxlanMode,
    /// Which benchmarks to run.
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
    /// The ToR's BGP (off: one subnet, the nodes reach each other's pods over the mesh only;
    /// no iperf3 path across the ToR).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    tor: Switch,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Copy the lab's directory (logs, configs) here before it is removed.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// --log-level of the lab's agents and bgpds.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Only {
    All,
    Iperf,
    Ping,
    Join,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum VxlanMode {
    Never,
    Crosssubnet,
    Always,
}

/// One iperf3 path under measurement.
struct IperfPath<'a> {
    label: String,
    client: &'a Netns,
    server: &'a Netns,
    address: std::net::Ipv4Addr,
    /// For a pod-to-pod path: the label of the node-to-node path over the same fabric.
    fabric: Option<String>,
    /// For a pod-to-pod path: the label of the same path wired by hand without manul.
    floor: Option<String>,
    /// The ratio to raw veth it should reach (pod-to-pod paths).
    goal: Option<f64>,
}

/// The rates of one (path, offload) cell, bit/s, in run order.
struct Cell {
    path: String,
    offload: bool,
    fabric: Option<String>,
    floor: Option<String>,
    goal: Option<f64>,
    rates: Vec<f64>,
}

fn main() {
    let args = Args::parse();
    install_ctrl_c();
    if let Err(error) = run(&args) {
        eprintln!("manul-lab-bench failed: {error:#}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<()> {
    manul_e2e::require_root()?;
    require_programs()?;
    if args.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let started = (date(), load());
    let progress = manul_e2e::bench::spinner();
    let mut lab = Lab::up(
        LabOptions {
            nodes: args.nodes,
            pods_per_node: 1,
            route_reflector: false,
            tor: args.tor == Switch::On,
            etcd_members: 1,
            log_level: args.log_level.clone(),
            vxlan_mode: match args.vxlan_mode {
                VxlanMode::Never => EncapsulationMode::Never,
                VxlanMode::Crosssubnet => EncapsulationMode::CrossSubnet,
                VxlanMode::Always => EncapsulationMode::Always,
            },
            ..LabOptions::default()
        },
        &mut |step| progress.set_message(format!("lab: {step}")),
    )?;
    *LAB_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(lab.dir().to_path_buf());
    // A second pod on n0, for the same-node round trip.
    lab.add_pod_to(0)?;
    status::start_probes(&lab)?;
    progress.set_message("lab: waiting for every path");
    converge(&lab)?;
    let cells = if matches!(args.only, Only::All | Only::Iperf) {
        iperf_phase(args, &lab, &progress)?
    } else {
        Vec::new()
    };
    let round_trips = if matches!(args.only, Only::All | Only::Ping) {
        ping_phase(args, &lab, &progress)?
    } else {
        Vec::new()
    };
    let joins = if matches!(args.only, Only::All | Only::Join) {
        join_phase(args, &mut lab, &progress)?
    } else {
        Vec::new()
    };
    progress.finish_and_clear();
    if let Some(dest) = &args.keep_logs {
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(lab.dir())
            .arg(dest)
            .status()?;
        if !copied.success() {
            bail!(
                "copying {} to {} failed",
                lab.dir().display(),
                dest.display()
            );
        }
    }
    println!(
        "manul-lab-bench {} (load average {}) to {} (load average {})",
        started.0,
        started.1,
        date(),
        load()
    );
    if !cells.is_empty() {
        print_iperf(args, &cells);
    }
    if !round_trips.is_empty() {
        print_round_trips(args, &round_trips);
    }
    if !joins.is_empty() {
        print_joins(args, &joins);
    }
    if let Some(path) = &args.json {
        let figures = json!({
            "started": started.0, "load_start": started.1, "load_end": load(),
            "iperf": cells.iter().map(|cell| json!({
                "path": cell.path, "tso_gso": cell.offload, "fabric": cell.fabric,
                "floor": cell.floor,
                "bits_per_second": cell.rates,
            })).collect::<Vec<Value>>(),
            "ping": round_trips.iter().map(|path| json!({
                "path": path.label, "avg_us": path.avg_us, "min_us": path.min_us,
            })).collect::<Vec<Value>>(),
            "joins": joins.iter().map(join_json).collect::<Vec<Value>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn require_programs() -> Result<()> {
    manul_e2e::require_programs(&manul_e2e::lab::PROGRAMS)?;
    manul_e2e::require_programs(&iperf::PROGRAMS)
}

/// Polls until every cell of the matrix is ok.
fn converge(lab: &Lab) -> Result<()> {
    poll_until(CONVERGE, "every path of the lab", || {
        Ok(
            (status::bgp_converged(lab) && status::matrix(lab).iter().all(status::Cell::ok))
                .then_some(()),
        )
    })
}

fn iperf_phase(args: &Args, lab: &Lab, progress: &ProgressBar) -> Result<Vec<Cell>> {
    let raw = VethPair::new()?;
    let pod_of = |node: usize| lab.pods.iter().find(|pod| pod.node == node);
    let client = pod_of(0).context("n0 has no pod")?;
    // The lab's pod-to-pod paths, each with the same path wired by hand without manul.
    let mut pod_paths = Vec::new();
    for (subnet, label) in [('a', "same subnet"), ('b', "across the ToR")] {
        let node = (1..lab.nodes.len()).find(|&node| lab.nodes[node].subnet == subnet);
        let (Some(node), Some(server)) = (node, node.and_then(pod_of)) else {
            continue;
        };
        let vxlan = through_vxlan(lab, server.address);
        // The floors model the two paths of CrossSubnet: routed on one subnet, VXLAN across
        // the ToR. Other modes' paths (routed by the ToR, VXLAN on one subnet) have none.
        let kind = match (subnet, vxlan) {
            ('a', false) => Some((
                FloorPath::Routed,
                "kernel floor: pod → pod routed, no manul",
            )),
            ('b', true) => Some((
                FloorPath::Vxlan,
                "kernel floor: pod → pod over VXLAN, no manul",
            )),
            _ => None,
        };
        let floor = match kind {
            Some((kind, label)) => {
                Some((Floor::new(kind, interface_mtu(&client.ns, "eth0")?)?, label))
            }
            None => None,
        };
        pod_paths.push((node, server, label, vxlan, floor));
    }
    let mut paths = vec![IperfPath {
        label: "raw veth".into(),
        client: &raw.client,
        server: &raw.server,
        address: raw.server_address,
        fabric: None,
        floor: None,
        goal: None,
    }];
    for (node, server, label, vxlan, floor) in &pod_paths {
        let (from, to) = (&lab.nodes[0], &lab.nodes[*node]);
        let fabric = format!("node → node, {label} ({} → {})", from.name, to.name);
        paths.push(IperfPath {
            label: fabric.clone(),
            client: &from.ns,
            server: &to.ns,
            address: to.address,
            fabric: None,
            floor: None,
            goal: None,
        });
        if let Some((floor, floor_label)) = floor {
            paths.push(IperfPath {
                label: floor_label.to_string(),
                client: &floor.client,
                server: &floor.server,
                address: floor.server_address,
                fabric: None,
                floor: None,
                goal: None,
            });
        }
        paths.push(IperfPath {
            label: format!(
                "pod → pod, {label}{} ({} → {})",
                if *vxlan { " over VXLAN" } else { "" },
                client.name,
                server.name
            ),
            client: &client.ns,
            server: &server.ns,
            address: server.address,
            fabric: Some(fabric),
            floor: floor.as_ref().map(|(_, label)| label.to_string()),
            goal: Some(if *vxlan { VXLAN_GOAL } else { GOAL }),
        });
    }
    let _servers = paths
        .iter()
        .map(|path| Server::start(path.server, SERVER_CORE))
        .collect::<Result<Vec<_>>>()?;
    let mut cells: Vec<Cell> = [true, false]
        .into_iter()
        .flat_map(|offload| {
            paths.iter().map(move |path| Cell {
                path: path.label.clone(),
                offload,
                fabric: path.fabric.clone(),
                floor: path.floor.clone(),
                goal: path.goal,
                rates: Vec::new(),
            })
        })
        .collect();
    let runs = args.reps * cells.len();
    progress.set_message(format!(
        "iperf3: {runs} runs of {} s, about {} s",
        args.seconds,
        runs * (args.seconds as usize + 2)
    ));
    let mut done = 0;
    // Each client's offload state as the bench last set it.
    let mut offloads: Vec<(&str, bool)> = Vec::new();
    for rep in 0..args.reps {
        let modes = if rep % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for offload in modes {
            for turn in 0..paths.len() {
                let index = (turn + rep) % paths.len();
                let path = &paths[index];
                // Only this run's sender: a node's eth0 is also the client of a node → node
                // path, and with its offloads off a pod's traffic would be cut into MTU-sized
                // packets again on the way out of the node.
                for other in &paths {
                    let sender = std::ptr::eq(other.client, path.client);
                    let wanted = offload || !sender;
                    let name = other.client.name();
                    match offloads.iter_mut().find(|(client, _)| *client == name) {
                        Some((_, state)) if *state == wanted => continue,
                        Some((_, state)) => *state = wanted,
                        None => offloads.push((name, wanted)),
                    }
                    iperf::set_segmentation_offload(other.client, "eth0", wanted)?;
                }
                let rate = iperf::run_client(path.client, path.address, CLIENT_CORE, args.seconds)
                    .with_context(|| path.label.clone())?;
                let cell = (if offload { 0 } else { paths.len() }) + index;
                cells[cell].rates.push(rate);
                done += 1;
                progress.set_message(format!(
                    "iperf3: run {done} of {runs}: {} {:.1} Gbit/s",
                    path.label,
                    rate / 1e9
                ));
            }
        }
    }
    for path in &paths {
        iperf::set_segmentation_offload(path.client, "eth0", true)?;
    }
    Ok(cells)
}

/// The MTU of `device` in `ns`.
fn interface_mtu(ns: &Netns, device: &str) -> Result<u32> {
    let links = ns.ip_json(&["link", "show", device])?;
    links
        .first()
        .and_then(|link| link["mtu"].as_u64())
        .and_then(|mtu| u32::try_from(mtu).ok())
        .with_context(|| format!("no MTU of {device} in {}", ns.name()))
}

/// Whether n0 routes `address` through vxlan.calico.
fn through_vxlan(lab: &Lab, address: std::net::Ipv4Addr) -> bool {
    lab.nodes[0]
        .ns
        .ip(&["route", "get", &address.to_string()])
        .is_ok_and(|route| route.contains(status::VXLAN_DEVICE))
}

/// The round trips of one path: medians over the rounds.
struct RoundTripPath {
    label: String,
    avg_us: f64,
    min_us: f64,
}

fn ping_phase(args: &Args, lab: &Lab, progress: &ProgressBar) -> Result<Vec<RoundTripPath>> {
    let raw = VethPair::new()?;
    let on_node = |node: usize| lab.pods.iter().filter(move |pod| pod.node == node);
    let mut local = on_node(0);
    let (client, neighbour) = (
        local.next().context("n0 has no pod")?,
        local.next().context("n0 has one pod only")?,
    );
    let mut paths = vec![
        ("raw veth".to_string(), &raw.client, raw.server_address),
        (
            format!("same node ({} → {})", client.name, neighbour.name),
            &client.ns,
            neighbour.address,
        ),
    ];
    for subnet in ['a', 'b'] {
        let Some(server) = (1..lab.nodes.len())
            .find(|&node| lab.nodes[node].subnet == subnet)
            .and_then(|node| on_node(node).next())
        else {
            continue;
        };
        let how = if through_vxlan(lab, server.address) {
            "over VXLAN"
        } else {
            "routed"
        };
        paths.push((
            format!("{how} ({} → {})", client.name, server.name),
            &client.ns,
            server.address,
        ));
    }
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); paths.len()];
    for rep in 0..args.reps {
        for turn in 0..paths.len() {
            let index = (turn + rep) % paths.len();
            let (label, ns, address) = &paths[index];
            progress.set_message(format!("ping: round {} of {}: {label}", rep + 1, args.reps));
            let trip = ping::round_trip(ns, *address, args.pings)?;
            samples[index].0.push(trip.avg_us);
            samples[index].1.push(trip.min_us);
        }
    }
    Ok(paths
        .iter()
        .zip(samples)
        .map(|((label, _, _), (avg, min))| RoundTripPath {
            label: label.clone(),
            avg_us: median(&avg),
            min_us: median(&min),
        })
        .collect())
}

fn print_round_trips(args: &Args, paths: &[RoundTripPath]) {
    println!(
        "
ping round trips, µs: medians over {} rounds of {} echo requests 1 ms apart; VS RAW: \
         average to raw veth's",
        args.reps, args.pings
    );
    let width = column_width("PATH", paths.iter().map(|path| path.label.as_str()));
    println!(
        "  {:<width$} {:>8} {:>8} {:>8}",
        "PATH", "AVG", "MIN", "VS RAW"
    );
    let raw = paths.first().map_or(0.0, |path| path.avg_us);
    for path in paths {
        println!(
            "  {:<width$} {:>8.1} {:>8.1} {:>7.2}×",
            path.label,
            path.avg_us,
            path.min_us,
            if raw > 0.0 { path.avg_us / raw } else { 0.0 }
        );
    }
}

fn join_phase(args: &Args, lab: &mut Lab, progress: &ProgressBar) -> Result<Vec<JoinTiming>> {
    let mut joins = Vec::new();
    for number in 0..args.joins {
        progress.set_message(format!("join {} of {}", number + 1, args.joins));
        let timing = lab.add_node(args.join_pods, JOIN)?;
        progress.set_message(format!(
            "join {} of {}: {} reachable after {:.2} s; settling",
            number + 1,
            args.joins,
            timing.node,
            timing.reachable.as_secs_f64()
        ));
        joins.push(timing);
        poll_until(CONVERGE, "the lab to settle after a join", || {
            Ok(status::bgp_converged(lab).then_some(()))
        })?;
    }
    Ok(joins)
}

/// The width of a table's first column: its longest entry, in characters as `format!` pads.
fn column_width<'a>(header: &str, entries: impl Iterator<Item = &'a str>) -> usize {
    entries
        .map(|entry| entry.chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0)
}

fn print_iperf(args: &Args, cells: &[Cell]) {
    println!(
        "\niperf3, one TCP stream, Gbit/s: medians of {} runs of {} s (after 1 s omitted); \
         client on core {CLIENT_CORE}, server on core {SERVER_CORE}; TSO/GSO switched on the \
         sender's eth0. RATIO: to raw veth (goal for pod → pod: {GOAL}× routed, {VXLAN_GOAL}× \
         over VXLAN); VS NODES: to node → node over the same fabric (what the pods' veths, the \
         nodes' routing and the encapsulation cost); VS FLOOR: to the same pod → pod path wired \
         by hand with static routes and nothing of manul (what manul itself costs)",
        args.reps, args.seconds
    );
    let width = column_width("PATH", cells.iter().map(|cell| cell.path.as_str()));
    println!(
        "  {:<width$} {:<7} {:>7} {:>7} {:>8} {:>8}  RUNS",
        "PATH", "TSO/GSO", "MEDIAN", "RATIO", "VS NODES", "VS FLOOR"
    );
    let median_of = |path: &str, offload: bool| {
        cells
            .iter()
            .find(|cell| cell.path == path && cell.offload == offload)
            .map_or(0.0, |cell| median(&cell.rates))
    };
    let ratio = |value: f64, reference: f64| {
        if reference > 0.0 {
            value / reference
        } else {
            0.0
        }
    };
    for cell in cells {
        let value = median(&cell.rates);
        let to_raw = ratio(value, median_of("raw veth", cell.offload));
        let to = |reference: &Option<String>| {
            reference.as_ref().map_or(String::new(), |reference| {
                format!("{:.3}×", ratio(value, median_of(reference, cell.offload)))
            })
        };
        let (to_nodes, to_floor) = (to(&cell.fabric), to(&cell.floor));
        let verdict = match cell.goal {
            Some(goal) if to_raw >= goal => format!("  met ({goal}×)"),
            Some(goal) => format!("  MISSED ({goal}×)"),
            None => String::new(),
        };
        let runs: Vec<String> = cell
            .rates
            .iter()
            .map(|rate| format!("{:.1}", rate / 1e9))
            .collect();
        println!(
            "  {:<width$} {:<7} {:>7.2} {:>6.3}× {:>8} {:>8}  {}{verdict}",
            cell.path,
            if cell.offload { "on" } else { "off" },
            value / 1e9,
            to_raw,
            to_nodes,
            to_floor,
            runs.join(" ")
        );
    }
}

fn print_joins(args: &Args, joins: &[JoinTiming]) {
    println!(
        "\nNode join: {} nodes{}, then {} join one after another ({} pod each); seconds \
         from the start of the new node's bgpd and agent",
        args.nodes,
        if args.tor == Switch::On {
            " + ToR (BGP)"
        } else {
            ", no ToR BGP (mesh only)"
        },
        args.joins,
        args.join_pods
    );
    let header = [
        "NODE",
        "SUBNET",
        "AGENT READY",
        "POD ADD",
        "PODS ADDED",
        "FIRST EST.",
        "ALL EST.",
        "TOR ROUTE",
        "ROUTES",
        "BACK",
        "REACHABLE",
    ];
    println!("  {}", row(&header.map(str::to_string)));
    let seconds = |value: Option<Duration>| {
        value.map_or("-".to_string(), |value| {
            format!("{:.3}", value.as_secs_f64())
        })
    };
    for join in joins {
        let adds: Vec<String> = join
            .pod_adds
            .iter()
            .map(|add| seconds(Some(*add)))
            .collect();
        println!(
            "  {}",
            row(&[
                join.node.clone(),
                join.subnet.to_string(),
                seconds(join.agent_ready),
                adds.join(","),
                seconds(Some(join.pods_added)),
                seconds(join.first_established),
                seconds(join.all_established),
                seconds(join.tor_route),
                seconds(join.routes_everywhere),
                seconds(join.routes_back),
                seconds(Some(join.reachable)),
            ])
        );
    }
    let column = |pick: &dyn Fn(&JoinTiming) -> Option<Duration>| {
        let values: Vec<f64> = joins
            .iter()
            .filter_map(pick)
            .map(|value| value.as_secs_f64())
            .collect();
        if values.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3}", median(&values))
        }
    };
    let adds: Vec<f64> = joins
        .iter()
        .flat_map(|join| join.pod_adds.iter().map(Duration::as_secs_f64))
        .collect();
    println!(
        "  {}",
        row(&[
            "median".into(),
            String::new(),
            column(&|join| join.agent_ready),
            format!("{:.3}", median(&adds)),
            column(&|join| Some(join.pods_added)),
            column(&|join| join.first_established),
            column(&|join| join.all_established),
            column(&|join| join.tor_route),
            column(&|join| join.routes_everywhere),
            column(&|join| join.routes_back),
            column(&|join| Some(join.reachable)),
        ])
    );
}

fn row(cells: &[String; 11]) -> String {
    let widths = [6, 6, 11, 9, 10, 10, 9, 9, 8, 8, 9];
    cells
        .iter()
        .zip(widths)
        .map(|(cell, width)| format!("{cell:<width$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn join_json(join: &JoinTiming) -> Value {
    let seconds = |value: Option<Duration>| value.map(|value| value.as_secs_f64());
    json!({
        "node": join.node,
        "subnet": join.subnet.to_string(),
        "agent_ready_s": seconds(join.agent_ready),
        "pod_add_s": join.pod_adds.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "pods_added_s": join.pods_added.as_secs_f64(),
        "first_established_s": seconds(join.first_established),
        "all_established_s": seconds(join.all_established),
        "tor_route_s": seconds(join.tor_route),
        "routes_everywhere_s": seconds(join.routes_everywhere),
        "routes_back_s": seconds(join.routes_back),
        "reachable_s": join.reachable.as_secs_f64(),
    })
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn install_ctrl_c() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else { return };
        runtime.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        eprintln!("\ninterrupted: removing the lab's namespaces");
        manul_e2e::netns::remove_all_of(std::process::id());
        if let Some(dir) = LAB_DIR.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}
