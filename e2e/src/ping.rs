//! Round-trip times with `ping` from inside a namespace: many echo requests in a burst, the
//! summary line parsed. Does I/O (runs ping).

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};

use crate::Netns;

/// What one burst measured, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundTrip {
    pub min_us: f64,
    pub avg_us: f64,
    pub max_us: f64,
}

/// Sends `count` echo requests 1 ms apart from `ns` to `address` (root may go this fast);
/// fails if any is lost.
pub fn round_trip(ns: &Netns, address: Ipv4Addr, count: u32) -> Result<RoundTrip> {
    let output = ns.exec(&[
        "ping",
        "-q",
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        "0.001",
        "-W",
        "1",
        &address.to_string(),
    ])?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("ping {address} from {}: {text}", ns.name());
    }
    parse_summary(&text).with_context(|| format!("ping {address}: no rtt line in {text:?}"))
}

/// Parses "rtt min/avg/max/mdev = 0.010/0.015/0.090/0.004 ms".
pub fn parse_summary(text: &str) -> Option<RoundTrip> {
    let line = text.lines().find(|line| line.contains("min/avg/max"))?;
    let values = line.split('=').nth(1)?.split_whitespace().next()?;
    let mut numbers = values.split('/').map(|value| value.parse::<f64>().ok());
    let (min, avg, max) = (numbers.next()??, numbers.next()??, numbers.next()??);
    Some(RoundTrip {
        min_us: min * 1000.0,
        avg_us: avg * 1000.0,
        max_us: max * 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_read_in_microseconds() {
        let text = "--- 10.0.0.2 ping statistics ---\n200 packets transmitted, 200 received, 0% packet loss, time 254ms\nrtt min/avg/max/mdev = 0.010/0.015/0.090/0.004 ms\n";
        let summary = parse_summary(text).unwrap();
        assert!((summary.min_us - 10.0).abs() < 1e-9);
        assert!((summary.avg_us - 15.0).abs() < 1e-9);
        assert!((summary.max_us - 90.0).abs() < 1e-9);
        assert_eq!(parse_summary("no summary"), None);
    }
}
