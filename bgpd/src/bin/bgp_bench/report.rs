//! The bench's results: one sample per measurement, and the final table of medians, ratios
//! manul/BIRD and targets (time at most BIRD's, peak RSS at most 1.5× BIRD's). No I/O but
//! printing.

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub seconds: f64,
    /// From the first session up until the last one (when several).
    pub all_up: f64,
    /// VmHWM of the process under test (receiver, or sender in reverse; in the kernel scenario
    /// bgpd's and the agent's summed), KiB.
    pub hwm_kib: u64,
    /// The WatchBestPaths subscriber (manul-bgpd receiving 1M only).
    pub stream: Option<StreamSample>,
    /// CPU time (user + system) of the processes under test: over the transfer (from just
    /// before the sender is enabled until every prefix is accepted), in the kernel scenario
    /// from their start to the end of the measurement.
    pub cpu_seconds: Option<f64>,
    /// CPU time of the BIRD at the other end over the transfer (not in the kernel scenario).
    pub counterpart_cpu_seconds: Option<f64>,
    /// CPU time of the bench's FIB probe (the kernel scenario), which shares the cores.
    pub probe_cpu_seconds: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
pub struct StreamSample {
    /// From the first session up until the watcher had every prefix.
    pub after_up: f64,
    /// The same, from the poll that saw every prefix accepted (negative: the watcher was first).
    pub after_accept: f64,
    /// Prefixes the watcher had when the poll saw every prefix accepted.
    pub live_at_accept: u64,
    /// Largest number of accepted prefixes the watcher had not seen yet, at a poll.
    pub max_backlog: u64,
    /// From the poll that saw 99% of the prefixes accepted until the watcher had 99%.
    pub lag_99: Option<f64>,
    pub batches: u64,
    pub largest_batch: usize,
    /// CPU time of the bench's own process over the transfer: the subscriber, which shares
    /// the two cores with the daemons (and the polls, which cost next to nothing).
    pub subscriber_cpu: f64,
}

impl StreamSample {
    pub fn describe(&self, total: u64) -> String {
        format!(
            "stream: all {total} best paths delivered after {:.2} s ({:+.2} s after accepted; \
             {} at accept), lag at 99% {}, backlog up to {}, {} batches of up to {}, subscriber \
             CPU {:.2} s",
            self.after_up,
            self.after_accept,
            self.live_at_accept,
            cell(self.lag_99, "s", 2),
            self.max_backlog,
            self.batches,
            self.largest_batch,
            self.subscriber_cpu
        )
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

pub struct Row {
    pub label: String,
    pub samples: [Vec<Sample>; 2],
}

fn cell(value: Option<f64>, unit: &str, digits: usize) -> String {
    value.map_or("failed".to_string(), |v| format!("{v:.digits$} {unit}"))
}

fn verdict(ratio: Option<f64>, limit: f64) -> &'static str {
    match ratio {
        Some(ratio) if ratio <= limit => "met",
        _ => "MISSED",
    }
}

pub fn print_table(rows: &[Row]) {
    let header = [
        "scenario",
        "manul time",
        "BIRD time",
        "time ratio",
        "manul peak RSS",
        "BIRD peak RSS",
        "RSS ratio",
        "time ≤ 1×",
        "RSS ≤ 1.5×",
    ];
    let mut lines = vec![header.map(String::from).to_vec()];
    for row in rows {
        let seconds = |side: usize| median(row.samples[side].iter().map(|s| s.seconds).collect());
        let mib = |side: usize| {
            median(
                row.samples[side]
                    .iter()
                    .map(|s| s.hwm_kib as f64 / 1024.0)
                    .collect(),
            )
        };
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let time_ratio = ratio(seconds(0), seconds(1));
        let rss_ratio = ratio(mib(0), mib(1));
        lines.push(vec![
            row.label.clone(),
            cell(seconds(0), "s", 2),
            cell(seconds(1), "s", 2),
            cell(time_ratio, "×", 2),
            cell(mib(0), "MiB", 0),
            cell(mib(1), "MiB", 0),
            cell(rss_ratio, "×", 2),
            verdict(time_ratio, 1.0).to_string(),
            verdict(rss_ratio, 1.5).to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (index, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
        if index == 0 {
            let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("| {} |", rules.join(" | "));
        }
    }
    for row in rows {
        let streams: Vec<(StreamSample, u64)> = row.samples[0]
            .iter()
            .filter_map(|s| s.stream.map(|stream| (stream, s.hwm_kib)))
            .collect();
        if streams.is_empty() {
            continue;
        }
        let after_up = median(streams.iter().map(|(s, _)| s.after_up).collect());
        let after_accept = median(streams.iter().map(|(s, _)| s.after_accept).collect());
        let mib = median(
            streams
                .iter()
                .map(|(_, kib)| *kib as f64 / 1024.0)
                .collect(),
        );
        let lag = median(streams.iter().filter_map(|(s, _)| s.lag_99).collect());
        let backlog = median(streams.iter().map(|(s, _)| s.max_backlog as f64).collect());
        let subscriber = median(streams.iter().map(|(s, _)| s.subscriber_cpu).collect());
        println!(
            "{}, manul-bgpd with a WatchBestPaths subscriber: every best path delivered after {} \
             ({} after accepted), lag at 99% {}, backlog up to {}, peak RSS {}, the subscriber's \
             CPU {} (medians of {})",
            row.label,
            cell(after_up, "s", 2),
            cell(after_accept, "s", 2),
            cell(lag, "s", 2),
            cell(backlog, "paths", 0),
            cell(mib, "MiB", 0),
            cell(subscriber, "s", 2),
            streams.len()
        );
    }
    for row in rows {
        let cpu = |side: usize| {
            median(
                row.samples[side]
                    .iter()
                    .filter_map(|s| s.cpu_seconds)
                    .collect(),
            )
        };
        if let (Some(manul), Some(bird)) = (cpu(0), cpu(1)) {
            println!(
                "{}: CPU time of the processes under test {manul:.2} s (manul) against {bird:.2} s \
                 (BIRD), {:.2}× (medians)",
                row.label,
                manul / bird
            );
        }
    }
    println!(
        "(medians; \"X → BIRD\": peak RSS of the originating process under test, the receiver \
         being BIRD in both runs)"
    );
}
