//! The lab: a small manul cluster on this machine, in network namespaces made for it. Does I/O.
//!
//! ```text
//!                      outside host 10.80.9.1 (default via the ToR)
//!                            │ out0
//!   ToR namespace: BIRD 2 (AS 65000, eBGP to every node), etcd on :2379, routes between
//!     r-a 10.80.1.254/24 (into br-a)     r-b 10.80.2.254/24 (into br-b)
//!      │            │                      │            │
//!    n0 .10       n1 .11                 n2 .12       n3 .13      (AS 64512, mesh or RR)
//!    manul-agent + manul-bgpd per node; pods through the real CNI plugin
//! ```
//!
//! Without the ToR (`tor: false`) every node is on subnet a, the router still forwards to the
//! outside host but runs no BGP, and nothing outside the cluster learns the pod routes. Without
//! BGP (`bgp: false`) no node runs manul-bgpd and the ToR runs no BIRD: the routes between nodes
//! come from VXLAN alone (the pool's `vxlan_mode`; CrossSubnet routes same-subnet nodes
//! directly), as Calico's VXLAN-only mode. The lab makes the pool itself (`POOL`, with
//! `vxlan_mode` and `nat_outgoing`) before any agent starts. With
//! `etcd_members: 3` the ToR runs a 3-member etcd cluster (client ports 2379, 2479, 2579) and the
//! agents get all three endpoints.
//! Everything is removed when the `Lab` is dropped (processes killed, namespaces deleted),
//! except for a lab attached from its state file (`manul-lab status`): dropping that one
//! leaves everything running.

pub mod join;
mod pools;
pub mod state;
pub mod status;
mod tor;
mod wiring;

pub use tor::{birdc, with_store};
pub use wiring::OUTSIDE6;
pub(crate) use wiring::add_subnet;
use wiring::subnet_gateway;

use std::{
    fs::File,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tempfile::TempDir;

use manul_store::EncapsulationMode;

use crate::{CniCall, Netns, cni::container_id, netns::stop_child, poll_until};

/// The lab's pool (made by the lab before the agents start).
pub const POOL: &str = "10.244.0.0/16";
pub const POOL_NAME: &str = "default-ipv4-ippool";
/// The IPv6 pool of a dual-stack lab (`ipv6: true`).
pub const POOL_V6: &str = "fd00:244::/48";
pub const POOL_V6_NAME: &str = "default-ipv6-ippool";
/// The cluster's AS number (Calico's default) and the ToR's.
pub const NODE_ASN: u32 = 64512;
pub const TOR_ASN: u32 = 65000;
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 80, 9, 1);
pub const TOR_OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 80, 9, 254);
/// The route reflectors' cluster ID (route-reflector mode: node n0 reflects).
pub const CLUSTER_ID: &str = "224.0.0.1";

/// What the lab runs besides manul: (program, Debian package).
pub const PROGRAMS: [(&str, &str); 4] = [
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("bird", "bird2"),
    ("birdc", "bird2"),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabOptions {
    pub nodes: usize,
    pub pods_per_node: usize,
    /// Node n0 is a route reflector; the other nodes peer only with it.
    pub route_reflector: bool,
    /// The nodes sit on two subnets behind the ToR; with `bgp` the ToR runs BIRD and peers with
    /// every node. Off: one subnet.
    pub tor: bool,
    /// Every node runs manul-bgpd (the mesh or route reflector, and the ToR's sessions).
    pub bgp: bool,
    /// The pool's vxlanMode.
    pub vxlan_mode: EncapsulationMode,
    /// The pool's natOutgoing.
    pub nat_outgoing: bool,
    /// Dual stack: nodes, router and outside host get IPv6 addresses (fd80:<subnet>::/64), the
    /// lab makes an IPv6 pool too (`POOL_V6`, same vxlanMode and natOutgoing) and pods get an
    /// address from each.
    #[serde(default)]
    pub ipv6: bool,
    /// Members of the etcd cluster on the ToR (1 or 3).
    pub etcd_members: usize,
    pub log_level: String,
}

impl Default for LabOptions {
    fn default() -> LabOptions {
        LabOptions {
            nodes: 4,
            pods_per_node: 2,
            route_reflector: false,
            tor: true,
            bgp: true,
            vxlan_mode: EncapsulationMode::Never,
            nat_outgoing: true,
            ipv6: false,
            etcd_members: 1,
            log_level: std::env::var("MANUL_LAB_LOG").unwrap_or_else(|_| "info".into()),
        }
    }
}

pub struct LabNode {
    pub name: String,
    pub ns: Netns,
    pub address: Ipv4Addr,
    /// In a dual-stack lab.
    pub address6: Option<Ipv6Addr>,
    /// 'a' or 'b'.
    pub subnet: char,
    pub dir: PathBuf,
    agent: Option<Child>,
    bgpd: Option<Child>,
}

impl LabNode {
    pub fn gateway(&self) -> Ipv4Addr {
        subnet_gateway(self.subnet)
    }

    pub fn agent_socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    pub fn bgpd_socket(&self) -> PathBuf {
        self.dir.join("bgpd.sock")
    }

    pub fn log(&self, process: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{process}.log"))).unwrap_or_default()
    }
}

pub struct LabPod {
    pub name: String,
    pub node: usize,
    pub ns: Netns,
    pub container_id: String,
    pub address: Ipv4Addr,
    /// In a dual-stack lab.
    pub address6: Option<Ipv6Addr>,
}

pub struct Lab {
    pub opts: LabOptions,
    pub tor: Netns,
    pub outside: Netns,
    pub nodes: Vec<LabNode>,
    pub pods: Vec<LabPod>,
    dir: LabDir,
    /// BIRD on the ToR.
    services: Vec<Child>,
    /// etcd member i, None once killed (or in an attached lab).
    etcd: Vec<Option<Child>>,
}

/// Where the lab keeps its files: a temporary directory it owns, or the directory of a lab
/// that another process runs.
enum LabDir {
    Owned(TempDir),
    Attached(PathBuf),
}

/// Client and peer port of etcd member `member` (inside the ToR namespace).
fn etcd_ports(member: usize) -> (u16, u16) {
    let offset = 100 * member as u16;
    (2379 + offset, 2380 + offset)
}

impl Lab {
    /// Builds the lab; `step` is told what happens (for a progress line).
    pub fn up(opts: LabOptions, step: &mut dyn FnMut(&str)) -> Result<Lab> {
        crate::require_root()?;
        crate::require_programs(&PROGRAMS)?;
        if opts.nodes == 0 || opts.nodes > 200 {
            bail!("--nodes must be between 1 and 200");
        }
        if !matches!(opts.etcd_members, 1 | 3) {
            bail!("--etcd-members must be 1 or 3");
        }
        step("namespaces and links");
        let dir = tempfile::Builder::new().prefix("manul-lab-").tempdir()?;
        let tor = Netns::new("tor")?;
        let outside = Netns::new("outside")?;
        let mut lab = Lab {
            opts,
            tor,
            outside,
            nodes: Vec::new(),
            pods: Vec::new(),
            dir: LabDir::Owned(dir),
            services: Vec::new(),
            etcd: Vec::new(),
        };
        lab.wire_router()?;
        for index in 0..lab.opts.nodes {
            let node = lab.wire_node(index)?;
            lab.nodes.push(node);
        }
        step("etcd");
        lab.start_etcd()?;
        lab.create_pools()?;
        if lab.tor_bgp() {
            step("BIRD on the ToR");
            let child = tor::start_bird(&lab)?;
            lab.services.push(child);
        }
        for index in 0..lab.nodes.len() {
            step(&format!("node {} of {}", index + 1, lab.nodes.len()));
            lab.start_node(index)?;
        }
        if lab.tor_bgp() {
            step("BGP peers toward the ToR");
            tor::create_peers(&lab)?;
        }
        for node in 0..lab.nodes.len() {
            for number in 0..lab.opts.pods_per_node {
                step(&format!("pod {}-p{number}", lab.nodes[node].name));
                let pod = lab.add_pod(node, number)?;
                lab.pods.push(pod);
            }
        }
        Ok(lab)
    }

    /// Whether the ToR runs BIRD and peers with the nodes.
    pub fn tor_bgp(&self) -> bool {
        self.opts.tor && self.opts.bgp
    }

    /// Whether the outside host can reach pods or be reached from them: through the ToR's
    /// routes to the pools, or through NAT.
    pub fn outside_reachable(&self) -> bool {
        self.tor_bgp() || self.opts.nat_outgoing
    }

    pub fn dir(&self) -> &Path {
        match &self.dir {
            LabDir::Owned(dir) => dir.path(),
            LabDir::Attached(path) => path,
        }
    }

    /// The datastore URL as seen from a node of `subnet` (every etcd member).
    pub fn datastore_url(&self, subnet: char) -> String {
        self.etcd_url(&subnet_gateway(subnet).to_string())
    }

    /// The datastore URL inside the ToR namespace.
    pub fn tor_datastore_url(&self) -> String {
        self.etcd_url("127.0.0.1")
    }

    fn etcd_url(&self, host: &str) -> String {
        let endpoints: Vec<String> = (0..self.opts.etcd_members)
            .map(|member| format!("{host}:{}", etcd_ports(member).0))
            .collect();
        format!("etcd://{}", endpoints.join(","))
    }

    /// SIGKILLs etcd member `member` (a crash: no graceful leave).
    pub fn kill_etcd_member(&mut self, member: usize) -> Result<()> {
        let mut child = self
            .etcd
            .get_mut(member)
            .and_then(Option::take)
            .with_context(|| format!("etcd member {member} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    fn start_etcd(&mut self) -> Result<()> {
        let members = self.opts.etcd_members;
        let cluster: Vec<String> = (0..members)
            .map(|member| format!("m{member}=http://127.0.0.1:{}", etcd_ports(member).1))
            .collect();
        for member in 0..members {
            let (client, peer) = etcd_ports(member);
            let log = File::create(self.dir().join(format!("etcd-m{member}.log")))?;
            let mut command = Command::new("etcd");
            command
                .args(["--name", &format!("m{member}"), "--data-dir"])
                .arg(self.dir().join(format!("etcd-m{member}")))
                .args([
                    "--listen-client-urls",
                    &format!("http://0.0.0.0:{client}"),
                    "--advertise-client-urls",
                    &format!("http://10.80.1.254:{client}"),
                    "--listen-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-cluster",
                    &cluster.join(","),
                    "--initial-cluster-state",
                    "new",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            let child = self
                .tor
                .spawn(&mut command)
                .context("starting etcd (apt-get install etcd-server)")?;
            self.etcd.push(Some(child));
        }
        let endpoints: Vec<String> = (0..members)
            .map(|member| format!("http://127.0.0.1:{}", etcd_ports(member).0))
            .collect();
        poll_until(Duration::from_secs(30), "etcd to answer", || {
            let output = self.tor.exec(&[
                "etcdctl",
                "--endpoints",
                &endpoints.join(","),
                "endpoint",
                "health",
            ])?;
            Ok(output.status.success().then_some(()))
        })
    }

    /// How node `index`'s agent is started.
    fn agent_launch(&self, index: usize) -> AgentLaunch {
        AgentLaunch {
            url: self.datastore_url(self.nodes[index].subnet),
            reflector: self.opts.route_reflector && index == 0,
            bgp: self.opts.bgp,
            log_level: self.opts.log_level.clone(),
        }
    }

    fn start_node(&mut self, index: usize) -> Result<()> {
        let launch = self.agent_launch(index);
        if self.opts.bgp {
            start_bgpd(&mut self.nodes[index], &launch.log_level)?;
        }
        start_agent(&mut self.nodes[index], &launch)
    }

    /// Restarts one node's agent (SIGTERM, then the same command line).
    pub fn restart_agent(&mut self, index: usize) -> Result<()> {
        let launch = self.agent_launch(index);
        let node = &mut self.nodes[index];
        if let Some(agent) = node.agent.take() {
            stop_child(agent, Duration::from_secs(5));
        }
        start_agent(node, &launch)
    }

    /// Restarts one node's bgpd (SIGTERM, then the same command line).
    pub fn restart_bgpd(&mut self, index: usize) -> Result<()> {
        if !self.opts.bgp {
            bail!("this lab runs without BGP");
        }
        let log_level = self.opts.log_level.clone();
        let node = &mut self.nodes[index];
        if let Some(bgpd) = node.bgpd.take() {
            stop_child(bgpd, Duration::from_secs(5));
        }
        start_bgpd(node, &log_level)
    }

    fn add_pod(&self, node: usize, number: usize) -> Result<LabPod> {
        let lab_node = &self.nodes[node];
        let name = format!("{}-p{number}", lab_node.name);
        let ns = Netns::new(&name)?;
        let container_id = container_id();
        let outcome = self.pod_call(lab_node, &ns, &container_id, &name, "ADD")?;
        let result = outcome.result().with_context(|| {
            format!(
                "CNI ADD of {name}\n--- agent log ---\n{}",
                lab_node.log("agent")
            )
        })?;
        let address = crate::cni::result_ipv4(&result)
            .context("the CNI result has no IPv4 address")?
            .parse()?;
        let address6 = match crate::cni::result_ipv6(&result) {
            Some(text) => Some(text.parse()?),
            None if self.opts.ipv6 => bail!("the CNI result of {name} has no IPv6 address"),
            None => None,
        };
        Ok(LabPod {
            name,
            node,
            ns,
            container_id,
            address,
            address6,
        })
    }

    fn pod_call(
        &self,
        node: &LabNode,
        ns: &Netns,
        container_id: &str,
        name: &str,
        command: &str,
    ) -> Result<crate::CniOutcome> {
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "lab",
            "type": "manul",
            "agent_socket": node.agent_socket(),
            "mtu": 0,
            "ipam": {"assign_ipv4": true, "assign_ipv6": self.opts.ipv6},
        });
        CniCall {
            container_id: container_id.to_string(),
            netns: ns.path().display().to_string(),
            ifname: "eth0".into(),
            args: format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME={name}"),
            ..CniCall::new(crate::bin_path("manul")?, command, conf)
        }
        .run_in(&node.ns)
    }

    /// Adds one more pod to node `node` through the CNI plugin (named `n<i>-p<next number>`).
    pub fn add_pod_to(&mut self, node: usize) -> Result<&LabPod> {
        let prefix = format!("{}-p", self.nodes[node].name);
        let number = self
            .pods
            .iter()
            .filter_map(|pod| pod.name.strip_prefix(&prefix)?.parse::<usize>().ok())
            .max()
            .map_or(0, |highest| highest + 1);
        let pod = self.add_pod(node, number)?;
        self.pods.push(pod);
        self.pods.last().context("the pod list is empty")
    }

    /// Deletes a pod through the CNI plugin (DEL) and forgets it.
    pub fn delete_pod(&mut self, name: &str) -> Result<LabPod> {
        let position = self
            .pods
            .iter()
            .position(|pod| pod.name == name)
            .with_context(|| format!("no pod {name}"))?;
        let pod = self.pods.remove(position);
        let node = &self.nodes[pod.node];
        self.pod_call(node, &pod.ns, &pod.container_id, &pod.name, "DEL")?
            .result()?;
        Ok(pod)
    }
}

/// What an agent's command line depends on besides its node.
struct AgentLaunch {
    url: String,
    reflector: bool,
    bgp: bool,
    log_level: String,
}

fn start_bgpd(node: &mut LabNode, log_level: &str) -> Result<()> {
    let log = File::options()
        .append(true)
        .create(true)
        .open(node.dir.join("bgpd.log"))?;
    let mut bgpd = Command::new(crate::bin_path("manul-bgpd")?);
    // Listening from the start: the other nodes may connect before the agent configured it.
    bgpd.arg("--socket")
        .arg(node.bgpd_socket())
        .args(["--log-level", log_level])
        .args(["--listen-early", &format!("{}:179", node.address)])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    node.bgpd = Some(node.ns.spawn(&mut bgpd)?);
    Ok(())
}

fn start_agent(node: &mut LabNode, launch: &AgentLaunch) -> Result<()> {
    let log = File::options()
        .append(true)
        .create(true)
        .open(node.dir.join("agent.log"))?;
    let mut agent = Command::new(crate::bin_path("manul-agent")?);
    agent
        .args(["--node-name", &node.name, "--socket"])
        .arg(node.agent_socket())
        .args(["--datastore", &launch.url, "--state-dir"])
        .arg(node.dir.join("state"))
        .args(["--default-ipv4-pool", "none"])
        .args(["--node-ip", &format!("{}/24", node.address)])
        .args(
            node.address6
                .map(|address6| ["--node-ip6".to_string(), format!("{address6}/64")])
                .into_iter()
                .flatten(),
        )
        .args([
            "--log-level",
            &launch.log_level,
            "--reconcile-interval",
            "10",
        ])
        .args(
            launch
                .bgp
                .then(|| ["--bgpd-socket".into(), node.bgpd_socket().into_os_string()])
                .into_iter()
                .flatten(),
        )
        .args(
            launch
                .reflector
                .then_some(["--route-reflector-cluster-id", CLUSTER_ID])
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let socket = node.agent_socket();
    let child = node.ns.spawn(&mut agent)?;
    let child = node.agent.insert(child);
    let waited = poll_until(Duration::from_secs(30), "manul-agent's socket", || {
        if let Some(status) = child.try_wait()? {
            bail!("manul-agent exited with {status}");
        }
        Ok(std::os::unix::net::UnixStream::connect(&socket)
            .ok()
            .map(|_| ()))
    });
    let name = node.name.clone();
    waited.with_context(|| format!("node {name}\n--- agent log ---\n{}", node.log("agent")))
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pod in self.pods.drain(..) {
            drop(pod.ns);
        }
        for node in &mut self.nodes {
            if let Some(agent) = node.agent.take() {
                stop_child(agent, Duration::from_secs(5));
            }
            if let Some(bgpd) = node.bgpd.take() {
                stop_child(bgpd, Duration::from_secs(5));
            }
        }
        for service in self.services.drain(..) {
            stop_child(service, Duration::from_secs(5));
        }
        for member in self.etcd.drain(..).flatten() {
            stop_child(member, Duration::from_secs(5));
        }
    }
}
