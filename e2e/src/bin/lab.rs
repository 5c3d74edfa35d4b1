//! manul-lab: a small manul cluster in network namespaces on this machine (etcd, a top-of-rack
//! router running BIRD, nodes running manul-agent and manul-bgpd, pods through the CNI plugin),
//! and what talks to what. `run` builds it, waits for BGP to converge, prints the status and
//! the connectivity matrix, removes everything and exits non-zero when a path fails. `up`
//! builds it in a background process that holds it (state in /run/manul-lab), prints the
//! same and returns; `status` prints it again; `down` removes it. Needs root; does I/O.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;
use manul_e2e::{
    bench::spinner,
    lab::{
        Lab, LabOptions,
        state::{DEFAULT_STATE_DIR, LabState},
        status,
    },
};
use manul_store::EncapsulationMode;

/// How long BGP may take to carry every route (polled).
const CONVERGE: Duration = Duration::from_secs(90);
/// How long building the lab may take before `up` gives up on its holder.
const BUILD: Duration = Duration::from_secs(300);
/// The prefix of the lab's namespaces (`ip netns list | grep manul-lab-`).
const NAMESPACE_PREFIX: &str = "manul-lab-";
/// The file the holder writes its current step to (read by `up` for its progress line).
const PROGRESS_FILE: &str = "progress";

#[derive(Parser, Debug)]
#[command(
    name = "manul-lab",
    about = "A manul cluster in network namespaces, and what talks to what"
)]
struct Flags {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Build, converge, print the status and the matrix, tear down; non-zero if a path fails.
    Run(Options),
    /// Build the lab and keep it (a background process holds it); print like run.
    Up(HeldOptions),
    /// Print the status and the matrix of the lab that `up` built; non-zero if a path fails.
    Status(StateDir),
    /// Remove the lab that `up` built (processes, namespaces, files).
    Down(StateDir),
    /// The background process of `up` (not for direct use).
    #[command(hide = true)]
    Hold(HeldOptions),
}

#[derive(clap::Args, Debug, Clone)]
struct Options {
    /// Number of nodes (half on each subnet with the ToR).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 2)]
    pods: usize,
    /// mesh: every node peers with every node; route-reflector: n0 reflects for the others.
    #[arg(long, value_enum, default_value_t = Topology::Mesh)]
    topology: Topology,
    /// The top-of-rack router: two subnets, and with BGP its sessions with every node (off: one
    /// subnet, no routes outside the cluster).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    tor: Switch,
    /// manul-bgpd on every node (off: the routes between nodes come from VXLAN alone).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    bgp: Switch,
    /// The pool's vxlanMode: never (BGP only), crosssubnet (VXLAN toward other subnets),
    /// always (VXLAN between all nodes).
    #[arg(long, value_enum, default_value_t = VxlanMode::Never)]
    vxlan_mode: VxlanMode,
    /// The pool's natOutgoing: pod traffic to the outside leaves with the node's address.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    nat_outgoing: Switch,
    /// Dual stack: IPv6 on every link, an IPv6 pool (fd00:244::/48, same vxlanMode and
    /// natOutgoing) and an IPv6 address for every pod; the matrix has a cell per family.
    #[arg(long, value_enum, default_value_t = Switch::Off)]
    ipv6: Switch,
    /// Members of the etcd cluster on the ToR: 1 or 3.
    #[arg(long, default_value_t = 1)]
    etcd_members: usize,
}

#[derive(clap::Args, Debug, Clone)]
struct StateDir {
    /// Where the state of a held lab is kept.
    #[arg(long, env = "MANUL_LAB_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(clap::Args, Debug, Clone)]
struct HeldOptions {
    #[command(flatten)]
    options: Options,
    #[command(flatten)]
    state: StateDir,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Topology {
    Mesh,
    RouteReflector,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum VxlanMode {
    Never,
    #[value(name = "crosssubnet")]
    CrossSubnet,
    Always,
}

impl VxlanMode {
    fn encapsulation(self) -> EncapsulationMode {
        match self {
            VxlanMode::Never => EncapsulationMode::Never,
            VxlanMode::CrossSubnet => EncapsulationMode::CrossSubnet,
            VxlanMode::Always => EncapsulationMode::Always,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Switch {
    On,
    Off,
}

impl Options {
    fn lab_options(&self) -> LabOptions {
        LabOptions {
            nodes: self.nodes,
            pods_per_node: self.pods,
            route_reflector: matches!(self.topology, Topology::RouteReflector),
            tor: self.tor == Switch::On,
            bgp: self.bgp == Switch::On,
            vxlan_mode: self.vxlan_mode.encapsulation(),
            nat_outgoing: self.nat_outgoing == Switch::On,
            ipv6: self.ipv6 == Switch::On,
            etcd_members: self.etcd_members,
            ..LabOptions::default()
        }
    }

    /// The same options as command-line arguments (for the holder process).
    fn to_args(&self) -> Vec<String> {
        let topology = match self.topology {
            Topology::Mesh => "mesh",
            Topology::RouteReflector => "route-reflector",
        };
        let switch = |value: Switch| if value == Switch::On { "on" } else { "off" };
        let vxlan_mode = match self.vxlan_mode {
            VxlanMode::Never => "never",
            VxlanMode::CrossSubnet => "crosssubnet",
            VxlanMode::Always => "always",
        };
        [
            ("--nodes", self.nodes.to_string()),
            ("--pods", self.pods.to_string()),
            ("--topology", topology.to_string()),
            ("--tor", switch(self.tor).to_string()),
            ("--bgp", switch(self.bgp).to_string()),
            ("--vxlan-mode", vxlan_mode.to_string()),
            ("--nat-outgoing", switch(self.nat_outgoing).to_string()),
            ("--ipv6", switch(self.ipv6).to_string()),
            ("--etcd-members", self.etcd_members.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
    }
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    manul_e2e::netns::set_name_prefix(NAMESPACE_PREFIX);
    let outcome = match flags.command {
        Verb::Run(options) => run(&options),
        Verb::Up(held) => up(&held),
        Verb::Status(state) => show_status(&state.state_dir),
        Verb::Down(state) => down(&state.state_dir).map(|()| true),
        Verb::Hold(held) => hold(&held).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("manul-lab: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Converges, prints the report and the summary line; true when every path passed.
fn converge_and_print(lab: &Lab, started: Instant, progress: &ProgressBar) -> Result<bool> {
    let cells = status::converge(lab, CONVERGE, &mut |step| {
        progress.set_message(step.to_string())
    });
    progress.finish_and_clear();
    print!("{}", status::report(lab, &cells)?);
    let passed = cells.iter().all(status::Cell::ok);
    println!(
        "lab {} in {:.1} s: {} nodes, {} pods{}",
        if passed { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        lab.nodes.len(),
        lab.pods.len(),
        if passed {
            String::new()
        } else {
            format!("; logs under {}", lab.dir().display())
        }
    );
    Ok(passed)
}

fn run(options: &Options) -> Result<bool> {
    let started = Instant::now();
    let progress = spinner();
    let lab = Lab::up(options.lab_options(), &mut |step| {
        progress.set_message(format!("building: {step}"))
    })?;
    status::start_probes(&lab)?;
    let passed = converge_and_print(&lab, started, &progress)?;
    if !passed {
        // Keep the logs: the tempdir goes with the lab, so copy them first.
        let saved = std::env::temp_dir().join(format!("manul-lab-logs-{}", std::process::id()));
        copy_logs(lab.dir(), &saved);
        println!("logs copied to {}", saved.display());
    }
    drop(lab);
    Ok(passed)
}

/// Starts the holder in the background, waits until it has built the lab, then prints it.
fn up(held: &HeldOptions) -> Result<bool> {
    let state_dir = &held.state.state_dir;
    if let Some(state) = LabState::load(state_dir)? {
        if state.holder_alive() {
            bail!(
                "a lab is up already (held by pid {}): `manul-lab status` shows it, `manul-lab down` removes it",
                state.holder_pid
            );
        }
        println!("removing what a lab whose holder died left behind");
        remove_remains(state_dir, &state);
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let _ = std::fs::remove_file(state_dir.join(PROGRESS_FILE));
    let log_path = state_dir.join("holder.log");
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut holder = Command::new(std::env::current_exe()?)
        .arg("hold")
        .args(held.options.to_args())
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for `up` does not reach the lab.
        .process_group(0)
        .spawn()
        .context("starting the lab's holder process")?;
    let progress = spinner();
    let deadline = Instant::now() + BUILD;
    loop {
        if let Some(state) = LabState::load(state_dir)?
            && state.holder_pid == holder.id()
        {
            break;
        }
        if let Some(exit) = holder.try_wait()? {
            progress.finish_and_clear();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("building the lab failed ({exit}):\n{log}");
        }
        if Instant::now() >= deadline {
            bail!(
                "the lab was not built within {BUILD:?}; see {} and run `manul-lab down`",
                log_path.display()
            );
        }
        if let Ok(step) = std::fs::read_to_string(state_dir.join(PROGRESS_FILE)) {
            progress.set_message(format!("building: {}", step.trim()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let lab = LabState::load(state_dir)?
        .context("the lab's state file vanished")?
        .attach()?;
    let passed = converge_and_print(&lab, started, &progress)?;
    println!(
        "the lab stays up (pid {}): `manul-lab status` prints this again, `manul-lab down` removes it",
        holder.id()
    );
    Ok(passed)
}

/// The background process: builds the lab, serves the pods' probes, writes the state file,
/// and removes everything on SIGTERM or SIGINT.
fn hold(held: &HeldOptions) -> Result<()> {
    let state_dir = &held.state.state_dir;
    let progress_path = state_dir.join(PROGRESS_FILE);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    on_terminate(move || flag.store(true, Ordering::SeqCst));
    let lab = Lab::up(held.options.lab_options(), &mut |step| {
        let _ = std::fs::write(&progress_path, step);
    })?;
    status::start_probes(&lab)?;
    LabState::of(&lab).save(state_dir)?;
    println!("lab up; waiting for SIGTERM");
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("removing the lab");
    drop(lab);
    let _ = std::fs::remove_file(state_dir.join(manul_e2e::lab::state::STATE_FILE));
    let _ = std::fs::remove_file(&progress_path);
    Ok(())
}

fn show_status(state_dir: &Path) -> Result<bool> {
    let state = held_lab(state_dir)?;
    let lab = state.attach()?;
    let progress = spinner();
    progress.set_message("probing every path");
    let cells = status::matrix(&lab);
    progress.finish_and_clear();
    print!("{}", status::report(&lab, &cells)?);
    Ok(cells.iter().all(status::Cell::ok))
}

fn down(state_dir: &Path) -> Result<()> {
    let Some(state) = LabState::load(state_dir)? else {
        println!("no lab is up (no state in {})", state_dir.display());
        return Ok(());
    };
    let started = Instant::now();
    if state.holder_alive() {
        let progress = spinner();
        progress.set_message(format!(
            "stopping the lab (holder pid {})",
            state.holder_pid
        ));
        let pid = nix::unistd::Pid::from_raw(state.holder_pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let gone = manul_e2e::poll_until(Duration::from_secs(60), "the holder to exit", || {
            Ok((!state.holder_alive()).then_some(()))
        });
        if gone.is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        progress.finish_and_clear();
    }
    let left = remove_remains(state_dir, &state);
    println!(
        "lab removed in {:.1} s: {} nodes, {} pods{}",
        started.elapsed().as_secs_f64(),
        state.nodes.len(),
        state.pods.len(),
        if left > 0 {
            format!(" ({left} namespaces were left behind and are removed)")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The state of a lab whose holder runs, or an error that says what to do.
fn held_lab(state_dir: &Path) -> Result<LabState> {
    let Some(state) = LabState::load(state_dir)? else {
        bail!(
            "no lab is up (no state in {}): `manul-lab up` builds one",
            state_dir.display()
        );
    };
    if !state.holder_alive() {
        bail!(
            "the process that held the lab (pid {}) is gone: `manul-lab down` cleans up",
            state.holder_pid
        );
    }
    Ok(state)
}

/// Removes what a lab left (namespaces, state file); returns how many namespaces there were.
fn remove_remains(state_dir: &Path, state: &LabState) -> usize {
    let left = manul_e2e::netns::remove_all_with_prefix(&format!(
        "{}{}-",
        state.namespace_prefix, state.holder_pid
    ));
    let _ = std::fs::remove_file(state_dir.join(manul_e2e::lab::state::STATE_FILE));
    let _ = std::fs::remove_file(state_dir.join(PROGRESS_FILE));
    left
}

fn copy_logs(from: &Path, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_logs(&path, &to.join(entry.file_name()));
        } else if path
            .extension()
            .is_some_and(|ext| ext == "log" || ext == "conf")
        {
            let _ = std::fs::copy(&path, to.join(entry.file_name()));
        }
    }
}

/// Calls `handler` on SIGTERM or SIGINT.
fn on_terminate(handler: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(runtime) = runtime {
            runtime.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut terminate), Ok(mut interrupt)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            });
            handler();
        }
    });
}
