//! manul-lab: a small manul cluster in network namespaces on this machine (etcd, a top-of-rack
//! router running BIRD, nodes running manul-agent and manul-bgpd, pods through the CNI plugin),
//! and what talks to what. `run` builds it, waits for BGP to converge, prints the status and
//! the connectivity matrix, removes everything and exits non-zero when a path fails; `up` does
//! the same but keeps the lab until Ctrl-C. Needs root; does I/O.

use std::{
    io::IsTerminal,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use manul_e2e::lab::{Lab, LabOptions, status};

/// How long BGP may take to carry every route (polled).
const CONVERGE: Duration = Duration::from_secs(90);

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
    /// Build and print like run, then keep everything until Ctrl-C.
    Up(Options),
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
    /// The top-of-rack router's BGP (off: one subnet, no routes outside the cluster).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    tor: Switch,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Topology {
    Mesh,
    RouteReflector,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Switch {
    On,
    Off,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let (options, keep) = match flags.command {
        Verb::Run(options) => (options, false),
        Verb::Up(options) => (options, true),
    };
    match run(options, keep) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("manul-lab failed: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(options: Options, keep: bool) -> Result<bool> {
    let opts = LabOptions {
        nodes: options.nodes,
        pods_per_node: options.pods,
        route_reflector: matches!(options.topology, Topology::RouteReflector),
        tor: options.tor == Switch::On,
        ..LabOptions::default()
    };
    let started = Instant::now();
    let progress = spinner();
    let lab = Lab::up(opts, &mut |step| {
        progress.set_message(format!("building: {step}"))
    })?;
    status::start_probes(&lab)?;
    progress.set_message("waiting for BGP to carry every route");
    let deadline = Instant::now() + CONVERGE;
    let cells = loop {
        let cells = status::matrix(&lab);
        let ok = cells.iter().filter(|cell| cell.ok()).count();
        progress.set_message(format!("converging: {ok} of {} paths ok", cells.len()));
        if ok == cells.len() || Instant::now() >= deadline {
            break cells;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    progress.finish_and_clear();
    print!("{}", status::report(&lab, &cells)?);
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
    if keep {
        println!("the lab stays up; namespaces: ip netns list | grep manul; Ctrl-C removes it");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        ctrl_c(move || flag.store(true, Ordering::SeqCst));
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
    } else if !passed {
        // Keep the logs: the tempdir goes with the lab, so copy them first.
        let saved = std::env::temp_dir().join(format!("manul-lab-logs-{}", std::process::id()));
        copy_logs(lab.dir(), &saved);
        println!("logs copied to {}", saved.display());
    }
    drop(lab);
    Ok(passed)
}

fn copy_logs(from: &std::path::Path, to: &std::path::Path) {
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

fn ctrl_c(handler: impl Fn() + Send + 'static) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(runtime) = runtime {
            runtime.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            handler();
        }
    });
}

fn spinner() -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
