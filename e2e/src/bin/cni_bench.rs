//! manul-cni-bench: CNI ADD/DEL latency of the `manul` plugin (with its agent) against Debian's
//! reference `ptp` + `host-local`, on one node namespace, in one run. Does I/O; needs root.
//!
//! Phases: (a) `--pods` pods one after another, ADD then DEL, the two variants alternating pod
//! by pod (and which goes first alternating too); (b) `--concurrent` ADDs at once per variant,
//! then their DELs. Latency is the wall time of the plugin process, exec included. Pods are
//! namespaces made and removed here; Ctrl-C removes them and the node before exiting.
//!
//! Build it in the profile you want to measure: `cargo run --release -p manul-e2e --bin
//! manul-cni-bench` builds manul-e2e only, so build the plugin and agent first
//! (`cargo build --release --workspace`, which `e2e/bench.sh` does).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use manul_e2e::bench::{BenchPod, Stats, Variant, concurrent, timed};
use manul_e2e::chain::ptp_conf;
use manul_e2e::{Node, NodeOptions};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "CNI ADD/DEL latency: manul vs ptp+host-local")]
struct Args {
    /// Pods created and deleted one after another, per variant.
    #[arg(long, default_value_t = 200)]
    pods: usize,
    /// Pods whose ADDs (then DELs) run at once, per variant.
    #[arg(long, default_value_t = 50)]
    concurrent: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// manul-agent --log-level during the run.
    #[arg(long, default_value = "warn")]
    agent_log_level: String,
    /// Measure ptp+host-local alone (no agent): checks the bench itself.
    #[arg(long)]
    reference_only: bool,
    /// Keep manul-agent's log: copied to this file when the run ends (with
    /// `--agent-log-level info` it holds each ADD's phases in milliseconds).
    #[arg(long)]
    agent_log: Option<PathBuf>,
    /// The manul plugin binary to measure: by default the workspace build's `manul` (dynamically
    /// linked); `e2e/bench.sh` passes the one that ships, `target/release/static/manul`.
    #[arg(long)]
    plugin: Option<PathBuf>,
}

/// The latencies of one (phase, variant).
struct Row {
    phase: &'static str,
    variant: String,
    latencies: Vec<Duration>,
    makespan: Option<Duration>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    manul_e2e::require_root()?;
    install_ctrl_c();
    let opts = NodeOptions {
        log_level: args.agent_log_level.clone(),
        agent: !args.reference_only,
        ..NodeOptions::new("bench")
    };
    let node = Node::start_with(opts).context("start the node and its manul-agent")?;
    let data = tempfile::Builder::new()
        .prefix("manul-bench-hostlocal-")
        .tempdir()?;
    let dirs = [node.dir().to_path_buf(), data.path().to_path_buf()];
    TEMP_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(dirs);
    let mut variants = Vec::new();
    if !args.reference_only {
        let plugin = match &args.plugin {
            Some(path) => path.clone(),
            None => manul_e2e::bin_path("manul")?,
        };
        println!("manul plugin: {}", plugin.display());
        variants.push(Variant {
            label: "manul".into(),
            plugin,
            config: node.manul_conf("benchnet"),
        });
    }
    variants.push(Variant {
        label: "ptp+host-local".into(),
        plugin: manul_e2e::reference_plugin("ptp"),
        config: ptp_conf("ptpnet", "10.123.0.0/16", data.path()),
    });
    let bars = MultiProgress::new();
    let rows = run(&args, &node, &variants, &bars);
    if let Err(e) = &rows {
        eprintln!(
            "benchmark failed: {e:#}\n--- agent log ---\n{}",
            node.agent_log()
        );
    }
    if let Some(path) = &args.agent_log {
        std::fs::copy(node.agent_log_path(), path)
            .with_context(|| format!("copy the agent's log to {}", path.display()))?;
        println!("agent log written to {}", path.display());
    }
    let rows = rows?;
    print_summary(&args, &variants, &rows);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&to_json(&args, &rows))?)?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn bar(bars: &MultiProgress, len: usize, label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:40}] {pos:>4}/{len:4} {elapsed}")
        .expect("valid template")
        .progress_chars("=> ");
    let pb = bars.add(ProgressBar::new(len as u64).with_style(style));
    pb.set_prefix(label.to_string());
    pb
}

fn make_pods(bars: &MultiProgress, n: usize, tag: &str) -> Result<Vec<BenchPod>> {
    let pb = bar(bars, n, &format!("namespaces ({tag})"));
    let pods = (0..n)
        .map(|i| {
            pb.inc(1);
            BenchPod::new(&format!("{tag}{i}"))
        })
        .collect();
    pb.finish();
    pods
}

fn run(args: &Args, node: &Node, variants: &[Variant], bars: &MultiProgress) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    // (a) Sequential: pod i of each variant, alternating which variant goes first.
    let mut by_variant: Vec<Vec<BenchPod>> = (0..variants.len())
        .map(|v| make_pods(bars, args.pods, &format!("s{v}-")))
        .collect::<Result<_>>()?;
    let mut pods: Vec<Vec<BenchPod>> = (0..args.pods).map(|_| Vec::new()).collect();
    for column in &mut by_variant {
        for (i, pod) in column.drain(..).enumerate() {
            pods[i].push(pod);
        }
    }
    for command in ["ADD", "DEL"] {
        let pb = bar(
            bars,
            args.pods * variants.len(),
            &format!("sequential {command}"),
        );
        let mut lat = vec![Vec::with_capacity(args.pods); variants.len()];
        node.ns.run_in(|| -> Result<()> {
            for (i, pair) in pods.iter().enumerate() {
                for k in 0..variants.len() {
                    let v = (i + k) % variants.len();
                    lat[v].push(timed(&variants[v], &pair[v], command)?);
                    pb.inc(1);
                }
            }
            Ok(())
        })??;
        pb.finish();
        for (v, latencies) in lat.into_iter().enumerate() {
            let phase = if command == "ADD" {
                "sequential ADD"
            } else {
                "sequential DEL"
            };
            rows.push(Row {
                phase,
                variant: variants[v].label.clone(),
                latencies,
                makespan: None,
            });
        }
    }
    drop(pods);
    // (b) Concurrent: one batch per variant, ADDs then DELs.
    for (v, variant) in variants.iter().enumerate() {
        let pods = make_pods(bars, args.concurrent, &format!("c{v}-"))?;
        for command in ["ADD", "DEL"] {
            let label = format!("concurrent {command} {}", variant.label);
            let pb = bar(bars, args.concurrent, &label);
            let (latencies, makespan) =
                concurrent(&node.ns, variant, &pods, command, &|| pb.inc(1))?;
            pb.finish();
            let phase = if command == "ADD" {
                "concurrent ADD"
            } else {
                "concurrent DEL"
            };
            let variant = variant.label.clone();
            rows.push(Row {
                phase,
                variant,
                latencies,
                makespan: Some(makespan),
            });
        }
    }
    Ok(rows)
}

fn stats_of(rows: &[Row], phase: &str, variant: &str) -> Option<(Stats, Option<Duration>)> {
    rows.iter()
        .find(|r| r.phase == phase && r.variant == variant)
        .map(|r| (Stats::of(&r.latencies), r.makespan))
}

const PHASES: [&str; 4] = [
    "sequential ADD",
    "sequential DEL",
    "concurrent ADD",
    "concurrent DEL",
];

fn print_summary(args: &Args, variants: &[Variant], rows: &[Row]) {
    println!();
    println!(
        "CNI latency, ms (wall time of the plugin process; {} sequential pods, {} concurrent)",
        args.pods, args.concurrent
    );
    println!(
        "{:<16} {:<16} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "phase", "plugin", "p50", "p99", "mean", "max", "batch"
    );
    println!("{}", "-".repeat(80));
    for phase in PHASES {
        for v in variants {
            if let Some((s, makespan)) = stats_of(rows, phase, &v.label) {
                let batch = makespan.map(|m| format!("{:.1}", m.as_secs_f64() * 1e3));
                println!(
                    "{:<16} {:<16} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10}",
                    phase,
                    v.label,
                    s.p50_ms,
                    s.p99_ms,
                    s.mean_ms,
                    s.max_ms,
                    batch.unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    println!("{}", "-".repeat(80));
    let [ours, theirs] = variants else {
        return;
    };
    let (ours, theirs) = (&ours.label, &theirs.label);
    println!("ratio {ours}/{theirs} (lower is better for {ours}):");
    for phase in PHASES {
        if let (Some((a, _)), Some((b, _))) =
            (stats_of(rows, phase, ours), stats_of(rows, phase, theirs))
        {
            println!(
                "  {:<16} p50 {:>5.2}x   p99 {:>5.2}x",
                phase,
                a.p50_ms / b.p50_ms,
                a.p99_ms / b.p99_ms
            );
        }
    }
}

fn to_json(args: &Args, rows: &[Row]) -> serde_json::Value {
    let results: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "phase": r.phase,
                "plugin": r.variant,
                "stats": Stats::of(&r.latencies),
                "batch_ms": r.makespan.map(|m| m.as_secs_f64() * 1e3),
            })
        })
        .collect();
    json!({"pods": args.pods, "concurrent": args.concurrent, "plugin": args.plugin, "results": results})
}

/// Temporary directories to remove on Ctrl-C (exit skips their destructors).
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// On Ctrl-C (or SIGTERM): remove this process's namespaces (which kills the agent and
/// anything else inside them) and temporary directories, then exit 130.
fn install_ctrl_c() {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(rt) = rt else { return };
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => t.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
        });
        eprintln!("\ninterrupted: removing the benchmark's namespaces");
        manul_e2e::netns::remove_all_of(std::process::id());
        for dir in TEMP_DIRS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}
