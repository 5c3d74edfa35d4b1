//! The bench's results: one sample per measurement, and the final table of medians, ratios
//! manul/BIRD and targets (time at most BIRD's, peak RSS at most 1.5× BIRD's). No I/O but
//! printing.

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub seconds: f64,
    /// From the first session up until the last one (when several).
    pub all_up: f64,
    /// VmHWM of the process under test (receiver, or sender in reverse), KiB.
    pub hwm_kib: u64,
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
    println!(
        "(medians; \"X → BIRD\": peak RSS of the originating process under test, the receiver \
         being BIRD in both runs)"
    );
}
