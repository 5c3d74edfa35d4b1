//! The pieces of the CNI latency benchmark (`manul-cni-bench`): plugin variants, timed runs
//! one after another or all at once, percentiles; and the benchmarks' progress spinner. Does
//! I/O (spawns plugins, makes namespaces).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

use crate::{CniCall, Netns};

/// A plugin under measurement with its network config.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Label in the report, e.g. "manul" or "ptp+host-local".
    pub label: String,
    pub plugin: PathBuf,
    pub config: Value,
}

/// One pod of the benchmark: its namespace and container id, per variant.
pub struct BenchPod {
    pub ns: Netns,
    pub name: String,
    pub container_id: String,
}

impl BenchPod {
    pub fn new(tag: &str) -> Result<BenchPod> {
        Ok(BenchPod {
            ns: Netns::new(tag)?,
            name: tag.to_string(),
            container_id: crate::cni::container_id(),
        })
    }

    /// The CNI call of `variant` for this pod.
    pub fn call(&self, variant: &Variant, command: &str) -> CniCall {
        CniCall {
            container_id: self.container_id.clone(),
            netns: self.ns.path().display().to_string(),
            args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={}",
                self.name
            ),
            ..CniCall::new(&variant.plugin, command, variant.config.clone())
        }
    }
}

/// Runs one plugin call in the calling thread's namespace; its wall time, or the failure.
pub fn timed(variant: &Variant, pod: &BenchPod, command: &str) -> Result<Duration> {
    let out = pod.call(variant, command).run_here()?;
    if !out.success() {
        bail!(
            "{} {command} for {} failed (exit {:?}): {} {}",
            variant.label,
            pod.name,
            out.code,
            out.stdout.trim(),
            out.stderr.trim()
        );
    }
    Ok(out.elapsed)
}

/// Runs `command` for every pod at once, one thread each, released together inside `node`.
/// Returns each call's latency and the makespan of the whole batch.
pub fn concurrent(
    node: &Netns,
    variant: &Variant,
    pods: &[BenchPod],
    command: &str,
    tick: &(dyn Fn() + Sync),
) -> Result<(Vec<Duration>, Duration)> {
    let barrier = Arc::new(Barrier::new(pods.len() + 1));
    std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|pod| {
                let barrier = barrier.clone();
                s.spawn(move || -> Result<Duration> {
                    let entered = node.enter_current_thread();
                    barrier.wait();
                    entered?;
                    let d = timed(variant, pod, command);
                    tick();
                    d
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut latencies = Vec::with_capacity(pods.len());
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(d)) => latencies.push(d),
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(_) => first_err = first_err.or(Some(anyhow::anyhow!("worker panicked"))),
            }
        }
        let makespan = start.elapsed();
        match first_err {
            Some(e) => Err(e),
            None => Ok((latencies, makespan)),
        }
    })
}

/// A spinner with the elapsed time and a message on stderr (hidden when stderr is not a
/// terminal), ticking on its own.
pub fn spinner() -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Summary of a set of latencies.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Stats {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn of(latencies: &[Duration]) -> Stats {
        let mut v: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Stats::default();
        }
        Stats {
            n: v.len(),
            p50_ms: percentile(&v, 50.0),
            p99_ms: percentile(&v, 99.0),
            mean_ms: v.iter().sum::<f64>() / v.len() as f64,
            max_ms: v[v.len() - 1],
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 100.0);
        assert_eq!(percentile(&v, 99.0), 198.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        let s = Stats::of(&[Duration::from_millis(2), Duration::from_millis(4)]);
        assert_eq!((s.n, s.p50_ms, s.max_ms, s.mean_ms), (2, 2.0, 4.0, 3.0));
    }
}
