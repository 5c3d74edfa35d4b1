//! `Node`: a node namespace with an uplink to an "upstream" namespace and a running
//! `manul-agent` of its own (socket, store and state dir in a tempdir). Does I/O.
//!
//! Layout for uplink index n (reserved with a lock file, see [`Node::start_with`]):
//!
//! ```text
//!   [upstream ns] down0 10.99.n.2/24 ── veth ── eth0 10.99.n.1/24 [node ns] manul-agent
//!                 route <pool> via 10.99.n.1          default via 10.99.n.2, ip_forward=1
//! ```

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::netns::{Netns, stop_child};

/// How to build a [`Node`].
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Short tag used in namespace names and as the agent's `--node-name`.
    pub tag: String,
    /// `--default-ipv4-pool` of the agent.
    pub pool: String,
    /// Start `manul-agent` (false: namespaces and uplink only, for harness self-tests).
    pub agent: bool,
    /// `--log-level` of the agent (env `MANUL_E2E_LOG` overrides the default "info").
    pub log_level: String,
    /// How long the agent may take to answer on its socket.
    pub start_timeout: Duration,
    /// `--reconcile-interval` of the agent in seconds (None: the agent's default).
    pub reconcile_interval: Option<u64>,
    /// `--default-ipv6-pool` of the agent; also gives the uplink IPv6 addresses
    /// (fd00:99:<index>::1 on the node, ::2 upstream) and routes the pool back to the node.
    pub ipv6_pool: Option<String>,
}

impl NodeOptions {
    pub fn new(tag: &str) -> NodeOptions {
        NodeOptions {
            tag: tag.to_string(),
            pool: "10.244.0.0/16".to_string(),
            agent: true,
            log_level: std::env::var("MANUL_E2E_LOG").unwrap_or_else(|_| "info".to_string()),
            start_timeout: Duration::from_secs(20),
            reconcile_interval: None,
            ipv6_pool: None,
        }
    }
}

/// A node of the lab. Dropping it stops the agent (SIGTERM, then SIGKILL), prints the agent's
/// log when the thread is panicking, and removes both namespaces.
pub struct Node {
    pub ns: Netns,
    pub upstream: Netns,
    pub opts: NodeOptions,
    index: u8,
    dir: TempDir,
    /// The running agent; behind a lock so that it can restart while pods borrow the node.
    agent: Mutex<Option<Child>>,
    _uplink_lock: File,
}

impl Node {
    /// A node with a running agent and the default pool 10.244.0.0/16.
    pub fn start(tag: &str) -> Result<Node> {
        Node::start_with(NodeOptions::new(tag))
    }

    pub fn start_with(opts: NodeOptions) -> Result<Node> {
        crate::require_root()?;
        let (index, lock) = reserve_uplink()?;
        let ns = Netns::new(&opts.tag)?;
        let upstream = Netns::new(&format!("{}-up", opts.tag))?;
        let dir = tempfile::Builder::new()
            .prefix("manul-e2e-node-")
            .tempdir()?;
        let node = Node {
            ns,
            upstream,
            opts,
            index,
            dir,
            agent: Mutex::new(None),
            _uplink_lock: lock,
        };
        node.wire_uplink()?;
        if node.opts.agent {
            node.start_agent()?;
        }
        Ok(node)
    }

    fn wire_uplink(&self) -> Result<()> {
        let node = self.ns.name();
        self.upstream.ip(&[
            "link", "add", "down0", "type", "veth", "peer", "name", "eth0",
        ])?;
        self.upstream.ip(&["link", "set", "eth0", "netns", node])?;
        self.ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", self.uplink_ip()),
            "dev",
            "eth0",
        ])?;
        self.ns.ip(&["link", "set", "eth0", "up"])?;
        self.upstream.ip(&[
            "addr",
            "add",
            &format!("{}/24", self.upstream_ip()),
            "dev",
            "down0",
        ])?;
        self.upstream.ip(&["link", "set", "down0", "up"])?;
        self.ns.ip(&[
            "route",
            "add",
            "default",
            "via",
            &self.upstream_ip().to_string(),
        ])?;
        let via = self.uplink_ip().to_string();
        self.upstream
            .ip(&["route", "add", &self.opts.pool, "via", &via])?;
        self.ns.sysctl("net.ipv4.ip_forward", "1")?;
        if let Some(pool) = &self.opts.ipv6_pool {
            let (node_v6, upstream_v6) = (self.uplink_ipv6(), self.upstream_ipv6());
            self.ns.ip(&[
                "addr",
                "add",
                &format!("{node_v6}/64"),
                "dev",
                "eth0",
                "nodad",
            ])?;
            self.upstream.ip(&[
                "addr",
                "add",
                &format!("{upstream_v6}/64"),
                "dev",
                "down0",
                "nodad",
            ])?;
            self.ns.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &upstream_v6.to_string(),
            ])?;
            self.upstream
                .ip(&["-6", "route", "add", pool, "via", &node_v6.to_string()])?;
        }
        Ok(())
    }

    /// The node's IPv6 address on its uplink (with `ipv6_pool`).
    pub fn uplink_ipv6(&self) -> std::net::Ipv6Addr {
        format!("fd00:99:{}::1", self.index)
            .parse()
            .unwrap_or(std::net::Ipv6Addr::LOCALHOST)
    }

    /// The upstream's IPv6 address on the node's uplink (with `ipv6_pool`).
    pub fn upstream_ipv6(&self) -> std::net::Ipv6Addr {
        format!("fd00:99:{}::2", self.index)
            .parse()
            .unwrap_or(std::net::Ipv6Addr::LOCALHOST)
    }

    /// Starts `manul-agent` on this node's store, state dir and socket (again, after
    /// [`Node::stop_agent`]) and waits until it answers on its socket. The log is appended to.
    pub fn start_agent(&self) -> Result<()> {
        self.start_agent_named(&self.opts.tag)
    }

    /// [`Node::start_agent`] with another `--node-name` (an operator's mistake, in tests).
    pub fn start_agent_named(&self, node_name: &str) -> Result<()> {
        let mut agent = self.agent.lock().unwrap_or_else(|e| e.into_inner());
        if agent.is_some() {
            bail!("the agent of {} is already running", self.ns.name());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.agent_log_path())?;
        let state = self.dir.path().join("state");
        std::fs::create_dir_all(&state)?;
        let store = format!("embedded://{}", self.store_path().display());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns.name()])
            .arg(crate::bin_path("manul-agent")?)
            .args(["--node-name", node_name, "--socket"])
            .arg(self.socket())
            .args(["--datastore", &store, "--state-dir"])
            .arg(&state)
            .args([
                "--default-ipv4-pool",
                &self.opts.pool,
                "--log-level",
                &self.opts.log_level,
            ])
            .args(
                self.opts
                    .reconcile_interval
                    .map(|s| format!("--reconcile-interval={s}")),
            )
            .args(
                self.opts
                    .ipv6_pool
                    .as_ref()
                    .map(|pool| format!("--default-ipv6-pool={pool}")),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().context("spawn manul-agent")?;
        let child = agent.insert(child);
        let socket = self.socket();
        // Ok(Some(Err)) ends the wait at once: an agent that exited will not come back.
        let res = crate::poll_until(self.opts.start_timeout, "manul-agent socket", || {
            if let Some(status) = child.try_wait().ok().flatten() {
                return Ok(Some(Err(anyhow::anyhow!(
                    "manul-agent exited with {status}"
                ))));
            }
            Ok(std::os::unix::net::UnixStream::connect(&socket)
                .ok()
                .map(|_| Ok(())))
        });
        if let Err(e) = res.and_then(|r| r) {
            bail!("{e:#}\n--- agent log ---\n{}", self.agent_log());
        }
        Ok(())
    }

    /// Stops the agent (SIGTERM, SIGKILL after 5 s) and reaps it; its socket file may stay.
    pub fn stop_agent(&self) -> Result<()> {
        let child = self
            .agent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .context("the agent is not running")?;
        stop_child(child, Duration::from_secs(5));
        Ok(())
    }

    /// Kills the agent with SIGKILL (a crash) and reaps it.
    pub fn kill_agent(&self) -> Result<()> {
        let mut child = self
            .agent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .context("the agent is not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// The agent's embedded datastore file (`embedded://<this>`).
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store.redb")
    }

    /// The node's address on its uplink, 10.99.n.1.
    pub fn uplink_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.index, 1)
    }

    /// The upstream end of the uplink, 10.99.n.2 (the node's default gateway).
    pub fn upstream_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, self.index, 2)
    }

    /// The node's private directory (agent socket, store, state, logs, podman storage).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    pub fn agent_log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.agent_log_path()).unwrap_or_default()
    }

    /// The CNI network config for the `manul` plugin talking to this node's agent.
    pub fn manul_conf(&self, network: &str) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": network,
            "type": "manul",
            "agent_socket": self.socket(),
            "mtu": 0,
            "ipam": {"assign_ipv4": true},
        })
    }

    /// A conflist for podman or [`crate::Chain`]: `manul`, then each entry of `then` (e.g.
    /// [`crate::chain::portmap_entry`]).
    pub fn manul_conflist(&self, network: &str, then: &[Value]) -> Value {
        let mut manul = self.manul_conf(network);
        let obj = manul.as_object_mut().expect("object");
        obj.remove("name");
        obj.remove("cniVersion");
        let mut plugins = vec![manul];
        plugins.extend_from_slice(then);
        json!({"cniVersion": "1.0.0", "name": network, "plugins": plugins})
    }

    /// The agent's endpoints (ListEndpoints on its socket).
    pub fn endpoints(&self) -> Result<Vec<manul_proto::agent::Endpoint>> {
        crate::agent_client::list_endpoints(&self.socket())
    }

    /// Names of the `cali*` links on the node.
    pub fn cali_links(&self) -> Result<Vec<String>> {
        Ok(self
            .ns
            .link_names()?
            .into_iter()
            .filter(|n| n.starts_with("cali"))
            .collect())
    }

    /// The node's IPv4 routes (`ip -j route show`), all tables' main view.
    pub fn routes(&self) -> Result<Vec<Value>> {
        Ok(self
            .ns
            .json(&["route", "show"])?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The route to `dst` (e.g. "10.244.0.5" for a /32), if the node has one.
    pub fn route_to(&self, dst: &str) -> Result<Option<Value>> {
        Ok(self.routes()?.into_iter().find(|r| r["dst"] == dst))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let agent = self.agent.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(child) = agent.take() {
            stop_child(child, Duration::from_secs(5));
        }
        if std::thread::panicking() && self.opts.agent {
            eprintln!(
                "--- manul-agent log of {} ---\n{}",
                self.ns.name(),
                self.agent_log()
            );
        }
    }
}

/// Reserves an uplink index 1..=254 with an exclusive lock file (released when the process
/// holding it exits, even by SIGKILL), so that no two live nodes share 10.99.n.0/24.
fn reserve_uplink() -> Result<(u8, File)> {
    let dir = Path::new("/tmp/manul-e2e-locks");
    std::fs::create_dir_all(dir)?;
    let start = (std::process::id() as usize * 7 + crate::next_id() as usize) % 254;
    for i in 0..254 {
        let n = (start + i) % 254 + 1;
        let file = File::create(dir.join(format!("uplink-{n}.lock")))?;
        if file.try_lock().is_ok() {
            return Ok((n as u8, file));
        }
    }
    bail!("no free uplink subnet 10.99.n.0/24 (254 nodes alive?)")
}
