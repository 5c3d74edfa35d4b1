//! The kernel scenario: a BIRD sends 1M prefixes (times --scale) to a receiver that installs
//! them into its namespace's kernel FIB: manul-bgpd driven by manul-agent (the agent programs
//! what bgpd learns through its route applier), or BIRD with a `protocol kernel` exporting
//! everything. Timed from the receiver's session Established until the receiver namespace's
//! FIB holds every prefix; memory is the peak RSS of bgpd + agent summed, against BIRD's.
//! Does I/O (namespaces, daemons, etcd, /proc).
//!
//! The agent reads its BGPPeer from an etcd started in the receiver's namespace (written with
//! etcdctl before the agent starts, as an operator would), so the bench needs no datastore
//! code of its own; etcd's memory is not counted (BIRD needs no datastore at all).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;

use crate::{
    Env, Ns, Side,
    lab::{self, Lab, RECEIVER, RECEIVER_ASN, SENDER_ASN},
    poll_until,
    probe::{self, Probe, unix_now},
    report::Sample,
    start_bird, start_manul,
};

/// The etcd client URL inside the receiver's namespace (a namespace of the bench's own, so
/// the port is free).
const ETCD: &str = "http://127.0.0.1:2379";
/// The receiver's node name in the datastore.
const NODE: &str = "receiver";

/// One measurement of `side` receiving `total` prefixes into the kernel.
pub async fn measure_in(
    env: &Env<'_>,
    lab: &mut Lab,
    total: u64,
    side: Side,
    bar: &ProgressBar,
) -> Result<Sample> {
    let deadline = Instant::now() + Duration::from_secs(env.flags.timeout);
    bar.set_length(total);
    bar.set_position(0);
    bar.set_message("loading the sender");
    // The sender waits for the receiver to connect: the agent configures bgpd's peer as
    // active (as Calico does for a BGPPeer), and the BIRD receiver is made active alike.
    let config = lab::bird_sender(env.scratch, 1, total as usize, true)?;
    let (_, ctl) = start_bird(env, lab, Ns::Sender, "sender", &config, deadline).await?;
    let mut sender = Probe::Bird(ctl);
    poll_until(lab, &mut sender, deadline, "the sender's routes", |s| {
        s.originated == total
    })
    .await?;
    bar.set_message("session");
    let polled_up = unix_now();
    let (pids, mut probe, baseline) = match side {
        Side::Bird => {
            let config = bird_kernel_receiver();
            let (pid, ctl) =
                start_bird(env, lab, Ns::Receiver, "receiver", &config, deadline).await?;
            // Read before its first connection attempt (`connect delay time 1`).
            (vec![pid], Probe::Bird(ctl), fib_prefixes(pid)?)
        }
        Side::Manul => {
            start_etcd(lab, deadline).await?;
            write_peer(lab)?;
            let (bgpd, client) = start_manul(env, lab, Ns::Receiver, "receiver", "", deadline)
                .await
                .context("manul-bgpd")?;
            let baseline = fib_prefixes(bgpd)?;
            let agent = start_agent(env, lab)?;
            (vec![bgpd, agent], Probe::Manul(client), baseline)
        }
    };
    let up = poll_until(lab, &mut probe, deadline, "the session", |s| {
        s.established > 0
    })
    .await?;
    bar.set_message("kernel routes");
    let target = baseline + total;
    let probe_cpu_before = lab::cpu_seconds(std::process::id())?;
    let mut previous: Option<(Instant, u64)> = None;
    let finished = loop {
        let read = Instant::now();
        let count = fib_prefixes(pids[0])?;
        let now = unix_now();
        bar.set_position(count.saturating_sub(baseline).min(total));
        if count >= target {
            break now;
        }
        lab.check_alive()?;
        if Instant::now() > deadline {
            bail!("timed out with {count} of {target} prefixes in the receiver's FIB");
        }
        // The read walks the whole trie (0.1 s at 1M): poll at most a quarter of the time,
        // so the probe takes little CPU from the receiver on a small machine; and while the
        // rate since the last read says the end is far, wait half of what is left (at most
        // 1 s), which leaves the daemons the cores for most of the transfer. Near the end
        // the polls come as often as before, so the end is seen as late as before.
        let least = (read.elapsed() * 3).max(Duration::from_millis(50));
        let wait = match previous {
            Some((at, before)) if count > before => {
                let rate = (count - before) as f64 / at.elapsed().as_secs_f64();
                let left = Duration::from_secs_f64((target - count) as f64 / rate / 2.0);
                left.min(Duration::from_secs(1)).max(least)
            }
            _ => least,
        };
        previous = Some((read, count));
        tokio::time::sleep(wait).await;
    };
    let probe_cpu = lab::cpu_seconds(std::process::id())? - probe_cpu_before;
    let first_up = match side {
        Side::Bird => up.first_up,
        Side::Manul => probe::manul_first_up(&lab.dir.join("receiver.log")),
    }
    .context("no time of Established")?;
    anyhow::ensure!(
        first_up >= polled_up - 1.0 && first_up <= finished,
        "implausible time of Established: {first_up} (polling from {polled_up})"
    );
    let (mut hwm_kib, mut cpu_seconds) = (0, 0.0);
    for pid in &pids {
        hwm_kib += lab::vm_hwm_kib(*pid)?;
        cpu_seconds += lab::cpu_seconds(*pid)?;
    }
    Ok(Sample {
        seconds: finished - first_up,
        all_up: 0.0,
        hwm_kib,
        stream: None,
        cpu_seconds: Some(cpu_seconds),
        counterpart_cpu_seconds: None,
        probe_cpu_seconds: Some(probe_cpu),
    })
}

/// The number of prefixes in the FIB of `ns` ("Prefixes" of the main trie in
/// /proc/PID/net/fib_triestat, PID being any process in that namespace): exact and cheap
/// (0.1 s at 1M routes, where a route dump takes seconds).
fn fib_prefixes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/net/fib_triestat");
    let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Prefixes:"))
        .context("no Prefixes line in fib_triestat")?
        .trim()
        .parse()
        .context("fib_triestat Prefixes")
}

/// The BIRD receiver of the "BIRD → X" scenarios, active, plus a kernel protocol that
/// exports every route it learns into the main table (metric 32, like the agent's learned
/// routes outside every pool).
fn bird_kernel_receiver() -> String {
    let mut text = lab::bird_receiver(1, false);
    text.push_str("protocol kernel {\n  ipv4 { import none; export all; };\n  metric 32;\n}\n");
    text
}

/// etcd in the receiver's namespace, answering.
async fn start_etcd(lab: &mut Lab, deadline: Instant) -> Result<()> {
    let data = lab.dir.join("etcd");
    let data = data.display().to_string();
    let args = [
        "--name",
        "bench",
        "--data-dir",
        &data,
        "--listen-client-urls",
        ETCD,
        "--advertise-client-urls",
        ETCD,
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "bench=http://127.0.0.1:2380",
    ];
    lab.spawn(Ns::Receiver, "etcd", Path::new("etcd"), &args)
        .context("starting etcd (apt-get install etcd-server etcd-client)")?;
    loop {
        let health = lab.exec(
            Ns::Receiver,
            Command::new("etcdctl").args(["--endpoints", ETCD, "endpoint", "health"]),
        );
        if health.is_ok() {
            return Ok(());
        }
        lab.check_alive()?;
        if Instant::now() > deadline {
            return health.context("etcd did not answer");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The BGPPeer of the receiver's node toward the sender, as the etcd backend stores it
/// (`/manul/v1/BGPPeer/<name>` holding its JSON).
fn write_peer(lab: &Lab) -> Result<()> {
    let peer = format!(
        r#"{{"name":"sender","node":"{NODE}","peerIP":"{}","asNumber":{SENDER_ASN}}}"#,
        lab::sender_address(0, 1)
    );
    lab.exec(
        Ns::Receiver,
        Command::new("etcdctl").args([
            "--endpoints",
            ETCD,
            "put",
            "/manul/v1/BGPPeer/sender",
            &peer,
        ]),
    )
    .context("writing the BGPPeer with etcdctl")
}

/// manul-agent in the receiver's namespace, driving the bgpd the bench started there. No
/// pool (the learned prefixes get the metric of routes outside every pool, 32, as BIRD's),
/// no health server, no rt_protos file outside the lab.
fn start_agent(env: &Env<'_>, lab: &mut Lab) -> Result<u32> {
    let dir = lab.dir.display().to_string();
    let (socket, state, bgpd_socket) = (
        format!("{dir}/agent.sock"),
        format!("{dir}/agent-state"),
        format!("{dir}/receiver.sock"),
    );
    let node_ip = format!("{RECEIVER}/24");
    let asn = RECEIVER_ASN.to_string();
    let datastore = ETCD.replace("http", "etcd");
    let args = [
        "--node-name",
        NODE,
        "--socket",
        &socket,
        "--datastore",
        &datastore,
        "--state-dir",
        &state,
        "--default-ipv4-pool",
        "none",
        "--bgpd-socket",
        &bgpd_socket,
        "--node-ip",
        &node_ip,
        "--as-number",
        &asn,
        "--rt-protos-dir",
        "",
        "--health-listen",
        "none",
        "--log-level",
        &env.flags.bgpd_log,
    ];
    lab.spawn(Ns::Receiver, "agent", &env.agent, &args)
}
