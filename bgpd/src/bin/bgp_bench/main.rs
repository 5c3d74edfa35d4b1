//! manul-bgp-bench: manul-bgpd against BIRD 2 on bulk route transfer, in network namespaces of
//! its own. Each scenario runs once with manul-bgpd and once with BIRD in its place, one after
//! the other (which goes first alternates by repetition), and reports the time from session
//! up until every prefix is accepted, the peak RSS (VmHWM) of the process under test, and the
//! ratios manul/BIRD; in the 1M scenario manul-bgpd also feeds a WatchBestPaths subscriber
//! (stream.rs). The kernel scenario (kernel.rs) has the receiver install the routes into its
//! kernel: manul-bgpd + manul-agent against BIRD's kernel protocol. Needs root. Ctrl-C removes
//! the namespaces. Does I/O.

mod churn;
mod kernel;
mod lab;
mod probe;
mod report;
mod stream;
mod watch_wire;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use lab::{Lab, Ns, Scratch};
use probe::{BirdCtl, Probe, Snapshot, unix_now};
use report::{Row, Sample, print_table};

#[derive(Parser, Debug)]
#[command(about = "manul-bgpd vs BIRD 2: bulk route transfer time and peak memory")]
struct Flags {
    /// Repetitions of every scenario (medians are reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Multiplies every prefix count (0.1 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Scenarios to run: full (1M BIRD → X), reverse (100k X → BIRD), many (20 × 50k → X),
    /// kernel (1M BIRD → X into the kernel: manul-bgpd + manul-agent against BIRD's kernel
    /// protocol; needs etcd and etcdctl).
    #[arg(long, value_delimiter = ',', default_value = "full,reverse,many")]
    only: Vec<String>,
    /// Seconds a single measurement may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// manul-bgpd binary (default: next to this one).
    #[arg(long)]
    bgpd: Option<PathBuf>,
    /// manul-agent binary, for the kernel scenario (default: next to this one).
    #[arg(long)]
    agent: Option<PathBuf>,
    #[arg(long, default_value = "bird")]
    bird: String,
    /// Copies every lab's logs and configurations here before removing the lab.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Log filter of manul-bgpd.
    #[arg(long, default_value = "info")]
    bgpd_log: String,
    /// No WatchBestPaths subscriber on manul-bgpd in the 1M scenario.
    #[arg(long)]
    no_watch: bool,
    /// "X → BIRD": manul-bgpd reads its prefixes from `originate = [...]` in its config file
    /// instead of getting them through AddPrefixes after it starts.
    #[arg(long)]
    originate_in_config: bool,
    /// Instead of the scenarios: churn 1M prefixes (times --scale) for this many seconds
    /// with a subscriber that does not read, and without one (churn.rs).
    #[arg(long)]
    churn: Option<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Manul,
    Bird,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Manul => "manul-bgpd",
            Side::Bird => "BIRD",
        }
    }
}

struct Scenario {
    key: &'static str,
    label: String,
    peers: usize,
    per_peer: usize,
    /// true: the process under test originates and a BIRD receives.
    reverse: bool,
}

impl Scenario {
    fn total(&self) -> u64 {
        (self.peers * self.per_peer) as u64
    }
}

struct Env<'a> {
    flags: &'a Flags,
    bgpd: PathBuf,
    agent: PathBuf,
    bird: PathBuf,
    scratch: &'a Path,
}

fn scenarios(scale: f64) -> Vec<Scenario> {
    let n = |count: f64| ((count * scale).round() as usize).max(1);
    let (full, reverse, many) = (n(1_000_000.0), n(100_000.0), n(50_000.0));
    vec![
        Scenario {
            key: "full",
            label: format!("BIRD → X, {full} prefixes"),
            peers: 1,
            per_peer: full,
            reverse: false,
        },
        Scenario {
            key: "reverse",
            label: format!("X → BIRD, {reverse} prefixes"),
            peers: 1,
            per_peer: reverse,
            reverse: true,
        },
        Scenario {
            key: "many",
            label: format!("BIRD → X, 20 peers × {many}"),
            peers: 20,
            per_peer: many,
            reverse: false,
        },
        Scenario {
            key: "kernel",
            label: format!("BIRD → X → kernel FIB, {full}"),
            peers: 1,
            per_peer: full,
            reverse: false,
        },
    ]
}

/// Starts a BIRD in `ns` with `config`; returns its pid and control connection.
async fn start_bird(
    env: &Env<'_>,
    lab: &mut Lab,
    ns: Ns,
    name: &str,
    config: &str,
    deadline: Instant,
) -> Result<(u32, BirdCtl)> {
    let conf = lab.dir.join(format!("{name}.conf"));
    let socket = lab.dir.join(format!("{name}.ctl"));
    std::fs::write(&conf, config)?;
    let (conf_arg, socket_arg) = (conf.display().to_string(), socket.display().to_string());
    let args = ["-f", "-c", &conf_arg, "-s", &socket_arg];
    let pid = lab.spawn(ns, name, &env.bird, &args)?;
    loop {
        let attempt = Instant::now() + Duration::from_millis(200);
        match BirdCtl::connect(&socket, attempt).await {
            Ok(ctl) => return Ok((pid, ctl)),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => lab.check_alive()?,
        }
    }
}

async fn start_manul(
    env: &Env<'_>,
    lab: &mut Lab,
    ns: Ns,
    name: &str,
    config: &str,
    deadline: Instant,
) -> Result<(u32, probe::Client)> {
    let conf = lab.dir.join(format!("{name}.toml"));
    let socket = lab.dir.join(format!("{name}.sock"));
    std::fs::write(&conf, config)?;
    let (conf_arg, socket_arg) = (conf.display().to_string(), socket.display().to_string());
    let args = [
        "--config",
        &conf_arg,
        "--socket",
        &socket_arg,
        "--log-level",
        &env.flags.bgpd_log,
    ];
    let pid = lab.spawn(ns, name, &env.bgpd, &args)?;
    loop {
        let attempt = Instant::now() + Duration::from_millis(200);
        match probe::manul_client(&socket, attempt).await {
            Ok(client) => return Ok((pid, client)),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => lab.check_alive()?,
        }
    }
}

/// Polls until `done` holds, failing at the deadline or when a daemon died.
async fn poll_until(
    lab: &mut Lab,
    probe: &mut Probe,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut(&Snapshot) -> bool,
) -> Result<Snapshot> {
    loop {
        let snapshot = probe.snapshot().await?;
        if done(&snapshot) {
            return Ok(snapshot);
        }
        lab.check_alive()?;
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: {snapshot:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One measurement of `side` in `scenario`, in a lab of its own.
async fn measure(
    env: &Env<'_>,
    scenario: &Scenario,
    side: Side,
    bar: &ProgressBar,
) -> Result<Sample> {
    let mut lab = Lab::new(env.scratch, scenario.peers)?;
    let result = if scenario.key == "kernel" {
        kernel::measure_in(env, &mut lab, scenario.total(), side, bar).await
    } else {
        measure_in(env, &mut lab, scenario, side, bar).await
    };
    if result.is_err() {
        bar.suspend(|| eprintln!("{}", lab.log_tails()));
    }
    if let Some(keep) = &env.flags.keep_logs {
        let target = keep.join(format!("{}-{}", scenario.key, side.name()));
        lab.copy_logs(&target)?;
    }
    result
}

async fn measure_in(
    env: &Env<'_>,
    lab: &mut Lab,
    scenario: &Scenario,
    side: Side,
    bar: &ProgressBar,
) -> Result<Sample> {
    let deadline = Instant::now() + Duration::from_secs(env.flags.timeout);
    let total = scenario.total();
    bar.set_length(total);
    bar.set_position(0);
    // The sender, loaded before the receiver starts.
    bar.set_message("loading the sender");
    let sender_side = if scenario.reverse { side } else { Side::Bird };
    let mut sender_ctl = None;
    let sender_pid = match sender_side {
        Side::Bird => {
            let config = lab::bird_sender(
                env.scratch,
                scenario.peers,
                scenario.per_peer,
                scenario.reverse,
            )?;
            let (pid, ctl) = start_bird(env, lab, Ns::Sender, "sender", &config, deadline).await?;
            let mut probe = Probe::Bird(ctl);
            poll_until(lab, &mut probe, deadline, "the sender's routes", |s| {
                s.originated == total
            })
            .await?;
            sender_ctl = Some(probe);
            pid
        }
        Side::Manul => {
            let in_config = env.flags.originate_in_config;
            let config = lab::manul_sender(if in_config { scenario.per_peer } else { 0 });
            let (pid, mut client) =
                start_manul(env, lab, Ns::Sender, "sender", &config, deadline).await?;
            if !in_config {
                probe::originate(&mut client, scenario.per_peer).await?;
            }
            pid
        }
    };
    // The receiver: active towards a passive sender in reverse, passive otherwise (then the
    // sender BIRD connects every session at once, to either receiver alike).
    bar.set_message("session");
    let receiver_side = if scenario.reverse { Side::Bird } else { side };
    let mut watcher = None;
    let (receiver_pid, mut probe) = match receiver_side {
        Side::Bird => {
            let config = lab::bird_receiver(scenario.peers, !scenario.reverse);
            let (pid, ctl) =
                start_bird(env, lab, Ns::Receiver, "receiver", &config, deadline).await?;
            (pid, Probe::Bird(ctl))
        }
        Side::Manul => {
            let config = lab::manul_receiver(scenario.peers);
            let (pid, client) =
                start_manul(env, lab, Ns::Receiver, "receiver", &config, deadline).await?;
            if scenario.key == "full" && !env.flags.no_watch {
                let socket = lab.dir.join("receiver.sock");
                watcher = Some(stream::Watcher::start(&socket, total).await?);
            }
            (pid, Probe::Manul(client))
        }
    };
    // CPU time of both processes over the transfer (both have loaded their configuration).
    let cpu_before = (
        lab::cpu_seconds(sender_pid)?,
        lab::cpu_seconds(receiver_pid)?,
        lab::cpu_seconds(std::process::id())?,
    );
    if !scenario.reverse
        && let Some(Probe::Bird(ctl)) = &mut sender_ctl
    {
        ctl.command("enable \"p*\"").await?;
    }
    // Timed from the first session's Established as the receiver recorded it (BIRD's
    // "Since", manul-bgpd's log line), until a poll sees every prefix accepted.
    let polled_up = unix_now();
    let up = poll_until(lab, &mut probe, deadline, "a session", |s| {
        s.established > 0
    })
    .await?;
    bar.set_message("transfer");
    let mut all_up = None;
    let done = poll_until(lab, &mut probe, deadline, "every prefix", |s| {
        bar.set_position(s.accepted);
        if let Some(watcher) = &mut watcher {
            watcher.poll(s.accepted);
        }
        if s.established == scenario.peers && all_up.is_none() {
            all_up = Some(unix_now());
        }
        s.accepted >= total
    })
    .await?;
    let finished = unix_now();
    let sender_cpu = lab::cpu_seconds(sender_pid)? - cpu_before.0;
    let receiver_cpu = lab::cpu_seconds(receiver_pid)? - cpu_before.1;
    let first_up = match receiver_side {
        Side::Bird => done.first_up.or(up.first_up),
        Side::Manul => probe::manul_first_up(&lab.dir.join("receiver.log")),
    }
    .context("no time of Established")?;
    anyhow::ensure!(
        first_up >= polled_up - 1.0 && first_up <= finished,
        "implausible time of Established: {first_up} (polling from {polled_up})"
    );
    let seconds = finished - first_up;
    let stream = match watcher {
        Some(watcher) => Some(
            watcher
                .finish(deadline, first_up, finished, cpu_before.2)
                .await?,
        ),
        None => None,
    };
    let (pid, cpu_seconds, counterpart_cpu_seconds) = if scenario.reverse {
        (sender_pid, sender_cpu, receiver_cpu)
    } else {
        (receiver_pid, receiver_cpu, sender_cpu)
    };
    Ok(Sample {
        seconds,
        all_up: all_up.map_or(seconds, |t| t - first_up),
        hwm_kib: lab::vm_hwm_kib(pid)?,
        stream,
        cpu_seconds: Some(cpu_seconds),
        counterpart_cpu_seconds: Some(counterpart_cpu_seconds),
        probe_cpu_seconds: None,
    })
}

async fn run(flags: &Flags) -> Result<()> {
    let beside = |name: &str| -> Result<PathBuf> {
        Ok(std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join(name))
    };
    let bgpd = match &flags.bgpd {
        Some(path) => path.clone(),
        None => beside("manul-bgpd")?,
    };
    anyhow::ensure!(bgpd.exists(), "no {}: build it first", bgpd.display());
    let agent = match &flags.agent {
        Some(path) => path.clone(),
        None => beside("manul-agent")?,
    };
    if flags.only.iter().any(|key| key == "kernel") {
        anyhow::ensure!(
            agent.exists(),
            "no {}: build it first (cargo build --release -p manul-agent)",
            agent.display()
        );
    }
    let scratch = Scratch::new()?;
    let env = Env {
        flags,
        bgpd,
        agent,
        bird: PathBuf::from(&flags.bird),
        scratch: &scratch.0,
    };
    if let Some(seconds) = flags.churn {
        let count = ((1_000_000.0 * flags.scale).round() as usize).max(1);
        for rep in 0..flags.reps {
            for watcher in [true, false] {
                let sample = churn::measure(&env, count, seconds, watcher).await;
                let line = sample.map_or_else(|e| format!("FAILED: {e:#}"), |s| s.describe());
                println!("rep {} churn of {count} prefixes: {line}", rep + 1);
            }
        }
        return Ok(());
    }
    let chosen: Vec<Scenario> = scenarios(flags.scale)
        .into_iter()
        .filter(|s| flags.only.iter().any(|key| key == s.key))
        .collect();
    let progress = MultiProgress::new();
    let overall = progress.add(ProgressBar::new((chosen.len() * flags.reps * 2) as u64));
    overall.set_style(ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed}",
    )?);
    overall.set_prefix("measurements");
    let bar = progress.add(ProgressBar::new(1));
    bar.set_style(ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} {msg} {elapsed}",
    )?);
    let mut rows: Vec<Row> = chosen
        .iter()
        .map(|s| Row {
            label: s.label.clone(),
            samples: [Vec::new(), Vec::new()],
        })
        .collect();
    for rep in 0..flags.reps {
        for (scenario, row) in chosen.iter().zip(&mut rows) {
            let order = if rep % 2 == 0 {
                [Side::Manul, Side::Bird]
            } else {
                [Side::Bird, Side::Manul]
            };
            for side in order {
                bar.set_prefix(side.name());
                bar.reset_elapsed();
                let outcome = measure(&env, scenario, side, &bar).await;
                let line = match outcome {
                    Ok(sample) => {
                        row.samples[side as usize].push(sample);
                        let stream = sample.stream.map(|s| s.describe(scenario.total()));
                        let cpu = sample.cpu_seconds.map(|s| format!(", CPU {s:.2} s"));
                        let counterpart = sample
                            .counterpart_cpu_seconds
                            .map(|s| format!(" (the BIRD at the other end: {s:.2} s)"));
                        let probe = sample
                            .probe_cpu_seconds
                            .map(|s| format!(", the bench's FIB probe {s:.2} s"));
                        let cpu = cpu.map(|cpu| {
                            cpu + &counterpart.unwrap_or_default() + &probe.unwrap_or_default()
                        });
                        format!(
                            "{:.2} s (all sessions up at {:.2} s), peak RSS {:.0} MiB{}{}",
                            sample.seconds,
                            sample.all_up,
                            sample.hwm_kib as f64 / 1024.0,
                            cpu.unwrap_or_default(),
                            stream.map_or(String::new(), |s| format!("; {s}"))
                        )
                    }
                    Err(error) => format!("FAILED: {error:#}"),
                };
                progress.suspend(|| {
                    println!(
                        "rep {} {:<30} {:<10} {line}",
                        rep + 1,
                        scenario.label,
                        side.name()
                    )
                });
                overall.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    overall.finish_and_clear();
    print_table(&rows);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let flags = Flags::parse();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Dropping `run` on Ctrl-C or SIGTERM drops the labs: daemons killed, namespaces removed.
    tokio::select! {
        result = run(&flags) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
    }
}
