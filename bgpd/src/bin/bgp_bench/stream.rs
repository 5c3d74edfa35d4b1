//! A WatchBestPaths subscriber on manul-bgpd's API, attached before the session comes up: it
//! counts the distinct prefixes with a best path (snapshot, then adds less withdraws) and
//! notes when that count reaches 99% of the target and the target. The bench's polls of
//! ListPeers feed it the accepted count, giving the stream's backlog and its lag at 99% (the
//! last few prefixes of a BIRD sender can come seconds after the rest, so "all delivered"
//! mostly times the sender). It reads the stream with `watch_wire`'s counting decoder. Does
//! I/O (the API socket).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

use crate::{
    lab,
    probe::unix_now,
    report::StreamSample,
    watch_wire::{self, LivePrefixes},
};

/// What the watcher saw by the time it had every prefix (or the stream ended).
#[derive(Clone, Copy, Debug)]
pub struct Watched {
    /// When the count first reached the target (Unix seconds); None: it never did.
    pub complete_at: Option<f64>,
    /// When it first reached 99% of the target.
    pub mark_at: Option<f64>,
    /// Prefixes in the initial snapshot.
    pub snapshot_paths: u64,
    /// Messages (BestPathBatch) received.
    pub batches: u64,
    /// Paths received, withdrawals included.
    pub paths: u64,
    pub largest_batch: usize,
}

pub struct Watcher {
    /// Prefixes with a best path, as of the last message.
    live: Arc<AtomicU64>,
    /// 99% of the target.
    mark: u64,
    /// `live` at the last poll (the one that saw every prefix accepted).
    live_at_accept: u64,
    /// Largest accepted count less `live` at a poll.
    max_backlog: u64,
    /// When a poll first saw `mark` prefixes accepted.
    mark_accepted_at: Option<f64>,
    task: JoinHandle<Result<Watched>>,
}

impl Watcher {
    /// Subscribes (the call returns once the daemon has registered the watch) and reads the
    /// stream in a task until `target` prefixes have a best path.
    pub async fn start(socket: &Path, target: u64) -> Result<Watcher> {
        let mut stream = watch_wire::subscribe(socket).await?;
        let live = Arc::new(AtomicU64::new(0));
        let counter = live.clone();
        let mark = target - target / 100;
        let task = tokio::spawn(async move {
            let mut prefixes = LivePrefixes::for_generated(target as usize);
            let mut snapshot = true;
            let mut watched = Watched {
                complete_at: None,
                mark_at: None,
                snapshot_paths: 0,
                batches: 0,
                paths: 0,
                largest_batch: 0,
            };
            while let Some(message) = stream.message().await? {
                let batch = prefixes.apply(&message)?;
                watched.batches += 1;
                watched.paths += batch.paths as u64;
                watched.largest_batch = watched.largest_batch.max(batch.paths);
                if snapshot {
                    watched.snapshot_paths = prefixes.len() as u64;
                    snapshot = !batch.snapshot_done;
                }
                counter.store(prefixes.len() as u64, Ordering::Relaxed);
                if prefixes.len() as u64 >= mark && watched.mark_at.is_none() {
                    watched.mark_at = Some(unix_now());
                }
                if prefixes.len() as u64 >= target {
                    watched.complete_at = Some(unix_now());
                    break;
                }
            }
            Ok(watched)
        });
        Ok(Watcher {
            live,
            mark,
            live_at_accept: 0,
            max_backlog: 0,
            mark_accepted_at: None,
            task,
        })
    }

    /// Notes, at a poll that saw `accepted` prefixes accepted, how far the watcher got.
    pub fn poll(&mut self, accepted: u64) {
        let live = self.live.load(Ordering::Relaxed);
        self.live_at_accept = live;
        self.max_backlog = self.max_backlog.max(accepted.saturating_sub(live));
        if accepted >= self.mark && self.mark_accepted_at.is_none() {
            self.mark_accepted_at = Some(unix_now());
        }
    }

    /// Waits for the watcher to have every prefix (failing past `deadline` with the count it
    /// had); times relative to the session's `first_up` and the poll that saw every prefix
    /// accepted (`accepted`), Unix seconds. The subscriber's CPU is this process's since
    /// `cpu_before`, read once the watcher has every path (it may finish just after the poll).
    pub async fn finish(
        self,
        deadline: Instant,
        first_up: f64,
        accepted: f64,
        cpu_before: f64,
    ) -> Result<StreamSample> {
        let (live_at_accept, max_backlog) = (self.live_at_accept, self.max_backlog);
        let mark_accepted_at = self.mark_accepted_at;
        let watched = self.join(deadline).await?;
        let subscriber_cpu = lab::cpu_seconds(std::process::id())? - cpu_before;
        let complete = watched.complete_at.context("the stream ended early")?;
        Ok(StreamSample {
            after_up: complete - first_up,
            after_accept: complete - accepted,
            live_at_accept,
            max_backlog,
            lag_99: watched.mark_at.zip(mark_accepted_at).map(|(w, a)| w - a),
            batches: watched.batches,
            largest_batch: watched.largest_batch,
            subscriber_cpu,
        })
    }

    async fn join(mut self, deadline: Instant) -> Result<Watched> {
        let deadline = tokio::time::Instant::from_std(deadline);
        match tokio::time::timeout_at(deadline, &mut self.task).await {
            Ok(joined) => joined?,
            Err(_) => {
                self.task.abort();
                anyhow::bail!(
                    "the watcher had {} best paths at the deadline",
                    self.live.load(Ordering::Relaxed)
                )
            }
        }
    }
}
