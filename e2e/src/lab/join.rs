//! A node joining a running lab, timed: its namespace is wired, the ToR is told about it (a BIRD
//! protocol and a BGPPeer, as an operator provisions a rack port before the machine boots), then
//! its manul-bgpd and manul-agent start and its pods are added through the CNI plugin while a
//! watcher thread records when the agent answered, when its BGP sessions came up, when every
//! other node had a route to the new pods, and when every pod of every other node reached them
//! (a TCP connect to the probe port, the matrix's TCP column). Does I/O.
//!
//! ```text
//!   t0 ── bgpd + agent spawned
//!    ├─ agent ready          the agent's socket accepts
//!    ├─ pods added           the last CNI ADD returned (each ADD is timed on its own too)
//!    ├─ first Established    the new node's bgpd has a session up
//!    ├─ all Established      every session it should have is up
//!    ├─ ToR route            the ToR's kernel has a BIRD route covering every new pod
//!    ├─ routes everywhere    every other node has a manul route covering every new pod
//!    ├─ routes back          the new node has a manul route covering every other node's pod
//!    └─ reachable            every pod of every other node connects to every new pod
//! ```
//!
//! The watcher looks every 10 ms or so, one step after the other within a look, so two steps
//! that happen within one look may appear in either order; each (other pod, new pod) pair is
//! probed by a thread of its own, a connect attempt at most every 25 ms. With the ToR, every node's default
//! route points at it: the new pods are reachable as soon as the ToR has their route, before
//! the other nodes learn a direct one over the mesh.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use manul_proto::bgpd::{ListPeersRequest, bgpd_client::BgpdClient};
use nix::sched::CloneFlags;
use serde::Serialize;
use serde_json::Value;

use super::{Lab, status::PROBE_PORT, tor};

/// How often the watcher looks (each look is a few `ip` calls and connects).
const WATCH_INTERVAL: Duration = Duration::from_millis(10);
/// How long one probe connect may take before it is tried again (a SYN lost before the path
/// was there is not retransmitted for a second): the resolution of "reachable". The handshake
/// runs in the kernel's softirq on these veths, microseconds, whatever the load.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(20);
/// How long the probe's answer may take after the handshake (the listener is a user thread).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause after a probe that failed (at once, or after its timeout).
const PROBE_PAUSE: Duration = Duration::from_millis(5);

/// When each step of one join happened, counted from the daemons' start.
#[derive(Clone, Debug, Serialize)]
pub struct JoinTiming {
    pub node: String,
    pub subnet: char,
    pub agent_ready: Option<Duration>,
    /// Wall time of each pod's ADD (the pod's namespace creation and the CNI plugin run).
    pub pod_adds: Vec<Duration>,
    pub pods_added: Duration,
    pub first_established: Option<Duration>,
    pub all_established: Option<Duration>,
    pub tor_route: Option<Duration>,
    pub routes_everywhere: Option<Duration>,
    pub routes_back: Option<Duration>,
    pub reachable: Duration,
}

/// What the watcher records, each the first time it saw it.
#[derive(Default, Debug)]
struct Seen {
    agent_ready: Option<Duration>,
    first_established: Option<Duration>,
    all_established: Option<Duration>,
    tor_route: Option<Duration>,
    routes_everywhere: Option<Duration>,
    routes_back: Option<Duration>,
    reachable: Option<Duration>,
    /// Pairs (source pod, target) not reached yet, for the error message.
    unreached: Vec<String>,
}

/// The watcher's inputs, owned so that it runs while the lab is being changed.
struct Watch {
    t0: Instant,
    deadline: Instant,
    agent_socket: PathBuf,
    bgpd_socket: PathBuf,
    expected_peers: usize,
    /// Namespace names of the other nodes (`ip -n`).
    other_nodes: Vec<String>,
    /// The new node's namespace name.
    new_node: String,
    /// The ToR's namespace name, when it runs BGP.
    tor: Option<String>,
    /// The addresses of the other nodes' pods.
    other_pods: Vec<Ipv4Addr>,
    /// (name, namespace path) of every pod of the other nodes.
    sources: Vec<(String, PathBuf)>,
    /// The new pods' addresses, set once every ADD has returned.
    targets: Arc<Mutex<Option<Vec<Ipv4Addr>>>>,
    stop: Arc<AtomicBool>,
}

impl Lab {
    /// Adds node `n<len>` with `pods` pods and times it (see the module comment). The new pods
    /// serve the probe port like those of [`super::status::start_probes`]. Fails if the pods
    /// are not reachable from every other node within `timeout`.
    pub fn add_node(&mut self, pods: usize, timeout: Duration) -> Result<JoinTiming> {
        if !self.opts.bgp {
            bail!("adding a node is timed over BGP: this lab runs without it");
        }
        let index = self.nodes.len();
        let node = self.wire_node(index)?;
        self.nodes.push(node);
        if self.tor_bgp() {
            tor::reconfigure(self)?;
            tor::create_peers(self)?;
        }
        let targets = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let new = &self.nodes[index];
        let others = index;
        let t0 = Instant::now();
        let watch = Watch {
            t0,
            deadline: t0 + timeout,
            agent_socket: new.agent_socket(),
            bgpd_socket: new.bgpd_socket(),
            expected_peers: if self.opts.route_reflector { 1 } else { others }
                + usize::from(self.tor_bgp()),
            other_nodes: self.nodes[..index]
                .iter()
                .map(|node| node.ns.name().to_string())
                .collect(),
            new_node: new.ns.name().to_string(),
            tor: self.tor_bgp().then(|| self.tor.name().to_string()),
            other_pods: self.pods.iter().map(|pod| pod.address).collect(),
            sources: self
                .pods
                .iter()
                .map(|pod| (pod.name.clone(), pod.ns.path()))
                .collect(),
            targets: targets.clone(),
            stop: stop.clone(),
        };
        let watcher = std::thread::spawn(move || watch.run());
        let added = self.start_and_add_pods(index, pods, &targets);
        if added.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        let seen = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the join watcher panicked"))?;
        let (pod_adds, pods_added) = added?;
        let new = &self.nodes[index];
        let Some(reachable) = seen.reachable else {
            bail!(
                "{} joined but its pods were not reachable within {timeout:?} \
                 (seen: {seen:?})\n--- {} agent log ---\n{}",
                new.name,
                new.name,
                new.log("agent")
            );
        };
        Ok(JoinTiming {
            node: new.name.clone(),
            subnet: new.subnet,
            agent_ready: seen.agent_ready,
            pod_adds,
            pods_added: pods_added - t0,
            first_established: seen.first_established,
            all_established: seen.all_established,
            tor_route: seen.tor_route,
            routes_everywhere: seen.routes_everywhere,
            routes_back: seen.routes_back,
            reachable,
        })
    }

    /// Starts the node's daemons, adds its pods (each ADD timed) and hands their addresses to
    /// the watcher; returns the ADD times and when the last one returned.
    fn start_and_add_pods(
        &mut self,
        index: usize,
        pods: usize,
        targets: &Mutex<Option<Vec<Ipv4Addr>>>,
    ) -> Result<(Vec<Duration>, Instant)> {
        self.start_node(index)?;
        let mut adds = Vec::new();
        let mut addresses = Vec::new();
        for _ in 0..pods {
            let started = Instant::now();
            let pod = self.add_pod_to(index)?;
            adds.push(started.elapsed());
            super::status::serve_probe(&pod.ns)?;
            addresses.push(pod.address);
        }
        let done = Instant::now();
        *targets.lock().unwrap_or_else(|e| e.into_inner()) = Some(addresses);
        Ok((adds, done))
    }
}

impl Watch {
    fn run(self) -> Seen {
        let mut seen = Seen::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        std::thread::scope(|scope| {
            let mut probes = Vec::new();
            while Instant::now() < self.deadline && !self.stop.load(Ordering::SeqCst) {
                let since = self.t0.elapsed();
                if seen.agent_ready.is_none() && UnixStream::connect(&self.agent_socket).is_ok() {
                    seen.agent_ready = Some(since);
                }
                if seen.all_established.is_none()
                    && let Ok(runtime) = &runtime
                    && let Ok(established) = runtime.block_on(established(&self.bgpd_socket))
                {
                    if established > 0 && seen.first_established.is_none() {
                        seen.first_established = Some(since);
                    }
                    if established >= self.expected_peers {
                        seen.all_established = Some(since);
                    }
                }
                let targets = self
                    .targets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(targets) = targets {
                    if probes.is_empty() {
                        probes = self.start_probes(scope, &targets);
                    }
                    self.look_at_routes(&mut seen, &targets);
                }
                let probed =
                    !probes.is_empty() && probes.iter().all(|(_, probe)| probe.is_finished());
                if probed
                    && seen.routes_everywhere.is_some()
                    && seen.routes_back.is_some()
                    && (seen.tor_route.is_some() || self.tor.is_none())
                    && seen.all_established.is_some()
                {
                    break;
                }
                std::thread::sleep(WATCH_INTERVAL);
            }
            let mut latest = (!probes.is_empty()).then_some(Duration::ZERO);
            for (pair, probe) in probes {
                match probe.join() {
                    Ok(Some(at)) => latest = latest.map(|latest| latest.max(at)),
                    _ => {
                        seen.unreached.push(pair);
                        latest = None;
                    }
                }
            }
            seen.reachable = latest;
        });
        seen
    }

    /// Records when the ToR, every other node and the new node first have their routes.
    fn look_at_routes(&self, seen: &mut Seen, targets: &[Ipv4Addr]) {
        if seen.tor_route.is_none()
            && let Some(tor) = &self.tor
            && covers_all(tor, "bird", targets)
        {
            seen.tor_route = Some(self.t0.elapsed());
        }
        if seen.routes_everywhere.is_none()
            && self
                .other_nodes
                .iter()
                .all(|node| covers_all(node, "manul", targets))
        {
            seen.routes_everywhere = Some(self.t0.elapsed());
        }
        if seen.routes_back.is_none() && covers_all(&self.new_node, "manul", &self.other_pods) {
            seen.routes_back = Some(self.t0.elapsed());
        }
    }

    /// One thread per (source pod, target) pair, each connecting until it gets through; it
    /// returns when that was, or None at the deadline.
    fn start_probes<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        targets: &[Ipv4Addr],
    ) -> Vec<(
        String,
        std::thread::ScopedJoinHandle<'scope, Option<Duration>>,
    )> {
        self.sources
            .iter()
            .flat_map(|(name, ns)| targets.iter().map(move |target| (name, ns, *target)))
            .map(|(name, ns, target)| {
                let probe = scope.spawn(move || self.probe(ns, target));
                (format!("{name} → {target}"), probe)
            })
            .collect()
    }

    fn probe(&self, ns: &Path, target: Ipv4Addr) -> Option<Duration> {
        let file = File::open(ns).ok()?;
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).ok()?;
        while Instant::now() < self.deadline && !self.stop.load(Ordering::SeqCst) {
            if let Some(stream) = connect(target) {
                let at = self.t0.elapsed();
                if answers(stream) {
                    return Some(at);
                }
            }
            std::thread::sleep(PROBE_PAUSE);
        }
        None
    }
}

/// How many of the sessions of the bgpd at `socket` are Established.
async fn established(socket: &Path) -> Result<usize> {
    let channel = manul_agent::client::unix_channel(socket, Default::default()).await?;
    let peers = BgpdClient::new(channel)
        .list_peers(ListPeersRequest::default())
        .await?
        .into_inner()
        .peers;
    Ok(peers
        .iter()
        .filter(|peer| peer.state == "Established")
        .count())
}

/// Whether namespace `ns` has a route of protocol `proto` (not a blackhole) covering each of
/// `targets`.
fn covers_all(ns: &str, proto: &str, targets: &[Ipv4Addr]) -> bool {
    let Ok(output) = std::process::Command::new("ip")
        .args(["-n", ns, "-j", "route", "show", "proto", proto])
        .output()
    else {
        return false;
    };
    let routes: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let prefixes: Vec<(u32, u32)> = routes
        .iter()
        .filter(|route| route["type"] != "blackhole")
        .filter_map(|route| parse_prefix(route["dst"].as_str()?))
        .collect();
    targets.iter().all(|target| {
        let address = u32::from(*target);
        prefixes
            .iter()
            .any(|(network, mask)| address & mask == *network)
    })
}

/// "10.244.1.64/26" or "10.244.1.65" as (network, mask).
fn parse_prefix(text: &str) -> Option<(u32, u32)> {
    let (address, length) = text.split_once('/').unwrap_or((text, "32"));
    let address: Ipv4Addr = address.parse().ok()?;
    let length: u32 = length.parse().ok().filter(|length| *length <= 32)?;
    let mask = u32::MAX.checked_shl(32 - length).unwrap_or(0);
    Some((u32::from(address) & mask, mask))
}

/// A TCP connection to `target`'s probe port from the calling thread's namespace (the
/// handshake went both ways), if it gets through within `CONNECT_TIMEOUT`.
fn connect(target: Ipv4Addr) -> Option<TcpStream> {
    let address = SocketAddr::from((target, PROBE_PORT));
    TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).ok()
}

/// Whether the probe listener at the other end answers "ok".
fn answers(mut stream: TcpStream) -> bool {
    let mut answer = [0u8; 2];
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).is_ok()
        && std::io::Read::read_exact(&mut stream, &mut answer).is_ok()
        && &answer == b"ok"
}

#[cfg(test)]
mod tests {
    use super::parse_prefix;

    #[test]
    fn prefixes_parse_with_and_without_length() {
        let block = parse_prefix("10.244.1.64/26").expect("block");
        assert_eq!(block, (0x0af4_0140, 0xffff_ffc0));
        assert_eq!(parse_prefix("10.244.1.65"), Some((0x0af4_0141, u32::MAX)));
        assert_eq!(parse_prefix("0.0.0.0/0"), Some((0, 0)));
        assert_eq!(parse_prefix("10.244.1.0/33"), None);
        assert_eq!(parse_prefix("default"), None);
    }
}
