//! Direct CNI invocation (the way a runtime does it: env vars, config on stdin, JSON on stdout)
//! and `Pod`, a pod namespace on a [`Node`] wired by the `manul` plugin. Does I/O.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Netns, Node};

/// One execution of a CNI plugin.
#[derive(Clone, Debug)]
pub struct CniCall {
    pub plugin: PathBuf,
    /// ADD, DEL, CHECK, VERSION, ...
    pub command: String,
    pub container_id: String,
    /// CNI_NETNS: a path, or empty (the second DEL of a real runtime).
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS, e.g. `IgnoreUnknown=1;K8S_POD_NAMESPACE=e2e;K8S_POD_NAME=p`.
    pub args: String,
    /// The network config written to stdin (with prevResult/runtimeConfig when chaining).
    pub config: Value,
}

/// What a plugin run produced.
#[derive(Clone, Debug)]
pub struct CniOutcome {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit, exec included.
    pub elapsed: Duration,
}

impl CniCall {
    pub fn new(plugin: impl Into<PathBuf>, command: &str, config: Value) -> CniCall {
        CniCall {
            plugin: plugin.into(),
            command: command.to_string(),
            container_id: String::new(),
            netns: String::new(),
            ifname: "eth0".to_string(),
            args: String::new(),
            config,
        }
    }

    /// Runs the plugin inside `ns` (the node: where the plugin and its agent live).
    pub fn run_in(&self, ns: &Netns) -> Result<CniOutcome> {
        ns.run_in(|| self.run_here())?
    }

    /// Runs the plugin in the calling thread's network namespace.
    pub fn run_here(&self) -> Result<CniOutcome> {
        self.run_here_with_stdin(&serde_json::to_vec(&self.config)?)
    }

    /// Runs the plugin inside `ns` with `input` on stdin instead of `config` (malformed
    /// configs).
    pub fn run_with_stdin_in(&self, ns: &Netns, input: &[u8]) -> Result<CniOutcome> {
        ns.run_in(|| self.run_here_with_stdin(input))?
    }

    fn run_here_with_stdin(&self, input: &[u8]) -> Result<CniOutcome> {
        let plugin_dir = self.plugin.parent().unwrap_or(Path::new("."));
        let cni_path = format!("{}:{}", plugin_dir.display(), crate::REFERENCE_PLUGIN_DIR);
        let start = Instant::now();
        let mut child = Command::new(&self.plugin)
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", self.plugin.display()))?;
        child.stdin.take().context("stdin")?.write_all(input)?;
        let out = child.wait_with_output()?;
        let elapsed = start.elapsed();
        Ok(CniOutcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        })
    }
}

impl CniOutcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout parsed as JSON (the result, or the error object on failure); Null when empty.
    pub fn json(&self) -> Result<Value> {
        if self.stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.stdout).with_context(|| format!("not JSON: {}", self.stdout))
    }

    /// The result JSON of a successful run; an error carrying the CNI error otherwise.
    pub fn result(&self) -> Result<Value> {
        if !self.success() {
            bail!(
                "plugin failed (exit {:?}): {}\nstderr: {}",
                self.code,
                self.stdout.trim(),
                self.stderr.trim()
            );
        }
        self.json()
    }

    /// The `code` field of a CNI error object.
    pub fn error_code(&self) -> Option<u64> {
        self.json().ok()?.get("code")?.as_u64()
    }
}

/// The first IPv4 address (without prefix) of a CNI result.
pub fn result_ipv4(result: &Value) -> Option<String> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?.split('/').next()?;
        addr.contains('.').then(|| addr.to_string())
    })
}

/// The first IPv6 address of a CNI result, without its prefix length.
pub fn result_ipv6(result: &Value) -> Option<String> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?.split('/').next()?;
        addr.contains(':').then(|| addr.to_string())
    })
}

/// A fresh container id, 64 hex characters like a runtime's.
pub fn container_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!(
        "{:016x}{:016x}{:032x}",
        std::process::id(),
        crate::next_id(),
        nanos
    )
}

/// A pod namespace on a node; CNI calls run inside the node namespace, like a runtime there.
pub struct Pod<'n> {
    pub ns: Netns,
    pub node: &'n Node,
    pub name: String,
    pub container_id: String,
    pub ifname: String,
    /// The network name of [`Node::manul_conf`].
    pub network: String,
}

impl<'n> Pod<'n> {
    pub fn new(node: &'n Node, name: &str) -> Result<Pod<'n>> {
        Ok(Pod {
            ns: Netns::new(name)?,
            node,
            name: name.to_string(),
            container_id: container_id(),
            ifname: "eth0".to_string(),
            network: "manulnet".to_string(),
        })
    }

    /// A call of `plugin` for this pod, with kubelet-like CNI_ARGS.
    pub fn call(&self, plugin: impl Into<PathBuf>, command: &str, config: Value) -> CniCall {
        CniCall {
            container_id: self.container_id.clone(),
            netns: self.ns.path().display().to_string(),
            ifname: self.ifname.clone(),
            args: format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=e2e;K8S_POD_NAME={}",
                self.name
            ),
            ..CniCall::new(plugin, command, config)
        }
    }

    /// Runs `command` of the `manul` plugin for this pod (no prevResult).
    pub fn manul(&self, command: &str) -> Result<CniOutcome> {
        let conf = self.node.manul_conf(&self.network);
        self.call(crate::bin_path("manul")?, command, conf)
            .run_in(&self.node.ns)
    }

    /// manul ADD that must succeed; returns the CNI result.
    pub fn add(&self) -> Result<Value> {
        self.manul("ADD")?.result()
    }

    /// manul DEL that must succeed.
    pub fn del(&self) -> Result<()> {
        self.manul("DEL")?.result().map(drop)
    }
}
