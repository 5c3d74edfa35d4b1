//! The churn scenario: a BIRD announces N prefixes to manul-bgpd, then withdraws and
//! re-announces all of them (its static protocol disabled and enabled) round after round for
//! a given time, while a WatchBestPaths subscriber reads the snapshot and then nothing. At the
//! end the subscriber reads until it has every prefix; the figure is manul-bgpd's peak RSS
//! (VmHWM), against the same run without a subscriber. Does I/O (namespaces, daemons, API).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use manul_bgpd::daemon::api::connect;
use manul_proto::bgpd as proto;

use crate::{
    Env, Ns, Probe, lab, poll_until,
    probe::{BirdCtl, unix_now},
    start_bird, start_manul,
};

/// The subscriber's stream is read to its end once it is this quiet.
const QUIET: Duration = Duration::from_secs(1);

/// One churn run.
#[derive(Clone, Copy, Debug)]
pub struct ChurnSample {
    pub watcher: bool,
    /// Withdraw + re-announce rounds of all N prefixes.
    pub rounds: u32,
    pub churn_seconds: f64,
    /// Seconds the subscriber took to read its backlog after the churn.
    pub catch_up_seconds: Option<f64>,
    /// Paths the subscriber read after the churn (withdrawals included).
    pub paths_read: u64,
    pub hwm_kib: u64,
    /// RSS at the end (after the subscriber caught up).
    pub rss_kib: u64,
}

impl ChurnSample {
    pub fn describe(&self) -> String {
        let catch_up = self.catch_up_seconds.map_or(String::new(), |s| {
            format!(", caught up in {s:.2} s reading {} paths", self.paths_read)
        });
        format!(
            "{} subscriber: {} rounds in {:.0} s{catch_up}; peak RSS {:.0} MiB, RSS at the end {:.0} MiB",
            if self.watcher { "with a" } else { "no" },
            self.rounds,
            self.churn_seconds,
            self.hwm_kib as f64 / 1024.0,
            self.rss_kib as f64 / 1024.0,
        )
    }
}

/// Runs the churn for `seconds` over `count` prefixes, with or without a subscriber.
pub async fn measure(
    env: &Env<'_>,
    count: usize,
    seconds: u64,
    watcher: bool,
) -> Result<ChurnSample> {
    let mut lab = lab::Lab::new(env.scratch, 1)?;
    let result = measure_in(env, &mut lab, count, seconds, watcher).await;
    if result.is_err() {
        eprintln!("{}", lab.log_tails());
    }
    if let Some(keep) = &env.flags.keep_logs {
        let name = if watcher { "churn-watch" } else { "churn" };
        lab.copy_logs(&keep.join(name))?;
    }
    result
}

async fn measure_in(
    env: &Env<'_>,
    lab: &mut lab::Lab,
    count: usize,
    seconds: u64,
    with_watcher: bool,
) -> Result<ChurnSample> {
    let total = count as u64;
    let deadline = Instant::now() + Duration::from_secs(env.flags.timeout + seconds);
    let config = lab::bird_sender(env.scratch, 1, count, false)?;
    let (_, ctl) = start_bird(env, lab, Ns::Sender, "sender", &config, deadline).await?;
    let mut sender = Probe::Bird(ctl);
    poll_until(lab, &mut sender, deadline, "the sender's routes", |s| {
        s.originated == total
    })
    .await?;
    let config = lab::manul_receiver(1);
    let (pid, client) = start_manul(env, lab, Ns::Receiver, "receiver", &config, deadline).await?;
    let mut probe = Probe::Manul(client);
    // The subscriber reads the (empty) snapshot, then nothing until the churn is over.
    let mut stream = None;
    if with_watcher {
        let mut client = connect(&lab.dir.join("receiver.sock")).await?;
        let mut watch = client
            .watch_best_paths(proto::WatchBestPathsRequest {})
            .await
            .context("WatchBestPaths")?
            .into_inner();
        let first = watch.message().await?.context("no snapshot")?;
        anyhow::ensure!(
            first.snapshot_done,
            "the first message does not end the snapshot"
        );
        stream = Some((client, watch));
    }
    let Probe::Bird(ctl) = &mut sender else {
        unreachable!("the sender is a BIRD")
    };
    ctl.command("enable \"p*\"").await?;
    poll_until(lab, &mut probe, deadline, "every prefix", |s| {
        s.accepted == total
    })
    .await?;
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        toggle(&mut sender, "disable s0").await?;
        poll_until(lab, &mut probe, deadline, "every withdrawal", |s| {
            s.accepted == 0
        })
        .await?;
        toggle(&mut sender, "enable s0").await?;
        poll_until(lab, &mut probe, deadline, "every prefix", |s| {
            s.accepted == total
        })
        .await?;
        rounds += 1;
    }
    let churn_seconds = start.elapsed().as_secs_f64();
    let mut catch_up_seconds = None;
    let mut paths_read = 0;
    if let Some((_client, mut watch)) = stream {
        // Reads until every prefix is live and the stream has been quiet for a second (a
        // daemon that queues copies of changes still has a backlog when the count is
        // reached); the catch-up ends at the last message.
        let started = unix_now();
        let mut last = started;
        let mut live = HashSet::new();
        loop {
            let quiet = tokio::time::timeout(QUIET, watch.message()).await;
            let batch = match quiet {
                Err(_) if live.len() as u64 >= total => break,
                Err(_) => {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "the subscriber's catch-up timed out"
                    );
                    continue;
                }
                Ok(message) => message?.context("the stream ended")?,
            };
            last = unix_now();
            paths_read += batch.paths.len() as u64;
            for path in batch.paths {
                if path.withdrawn {
                    live.remove(&path.prefix);
                } else {
                    live.insert(path.prefix);
                }
            }
        }
        catch_up_seconds = Some(last - started);
    }
    Ok(ChurnSample {
        watcher: with_watcher,
        rounds,
        churn_seconds,
        catch_up_seconds,
        paths_read,
        hwm_kib: lab::vm_hwm_kib(pid)?,
        rss_kib: vm_rss_kib(pid)?,
    })
}

async fn toggle(sender: &mut Probe, command: &str) -> Result<()> {
    if let Probe::Bird(ctl) = sender {
        let ctl: &mut BirdCtl = ctl;
        ctl.command(command).await?;
    }
    Ok(())
}

fn vm_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS format")?
        .parse()?)
}
