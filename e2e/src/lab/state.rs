//! The lab's state file: what `manul-lab up` built (namespaces, addresses, pods, its files and
//! the pid of the process that holds it), so that `manul-lab status` and `down`, run as other
//! processes, find the same lab. Written atomically (temporary file, rename). Does file I/O.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{Lab, LabDir, LabNode, LabOptions, LabPod};
use crate::Netns;

/// Where the state of the lab lives unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/manul-lab";
/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct LabState {
    /// The process that holds the lab (it removes everything on SIGTERM).
    pub holder_pid: u32,
    /// The prefix of every namespace of this lab (`<prefix><holder_pid>-`).
    pub namespace_prefix: String,
    pub opts: LabOptions,
    pub dir: PathBuf,
    pub tor: String,
    pub outside: String,
    pub nodes: Vec<NodeState>,
    pub pods: Vec<PodState>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub namespace: String,
    pub address: Ipv4Addr,
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    pub subnet: char,
    pub dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    pub node: usize,
    pub namespace: String,
    pub container_id: String,
    pub address: Ipv4Addr,
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
}

impl LabState {
    /// What `lab` is, held by this process.
    pub fn of(lab: &Lab) -> LabState {
        LabState {
            holder_pid: std::process::id(),
            namespace_prefix: crate::netns::name_prefix().to_string(),
            opts: lab.opts.clone(),
            dir: lab.dir().to_path_buf(),
            tor: lab.tor.name().to_string(),
            outside: lab.outside.name().to_string(),
            nodes: lab
                .nodes
                .iter()
                .map(|node| NodeState {
                    name: node.name.clone(),
                    namespace: node.ns.name().to_string(),
                    address: node.address,
                    address6: node.address6,
                    subnet: node.subnet,
                    dir: node.dir.clone(),
                })
                .collect(),
            pods: lab
                .pods
                .iter()
                .map(|pod| PodState {
                    name: pod.name.clone(),
                    node: pod.node,
                    namespace: pod.ns.name().to_string(),
                    container_id: pod.container_id.clone(),
                    address: pod.address,
                    address6: pod.address6,
                })
                .collect(),
        }
    }

    /// Writes the state to `dir/state.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(STATE_FILE);
        let temporary = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&temporary, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&temporary, &path)?;
        Ok(())
    }

    /// The state in `dir`, or None when no lab is up there.
    pub fn load(dir: &Path) -> Result<Option<LabState>> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a lab state file (remove it if no lab runs)",
                    path.display()
                )
            })?)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The process holding the lab still runs.
    pub fn holder_alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.holder_pid)).exists()
    }

    /// The lab this state describes, attached: its namespaces and processes belong to the
    /// holder, so dropping the returned `Lab` leaves everything as it is.
    pub fn attach(&self) -> Result<Lab> {
        let nodes = self
            .nodes
            .iter()
            .map(|node| {
                Ok(LabNode {
                    name: node.name.clone(),
                    ns: Netns::attach(&node.namespace)?,
                    address: node.address,
                    address6: node.address6,
                    subnet: node.subnet,
                    dir: node.dir.clone(),
                    agent: None,
                    bgpd: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pods = self
            .pods
            .iter()
            .map(|pod| {
                Ok(LabPod {
                    name: pod.name.clone(),
                    node: pod.node,
                    ns: Netns::attach(&pod.namespace)?,
                    container_id: pod.container_id.clone(),
                    address: pod.address,
                    address6: pod.address6,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Lab {
            opts: self.opts.clone(),
            tor: Netns::attach(&self.tor)?,
            outside: Netns::attach(&self.outside)?,
            nodes,
            pods,
            dir: LabDir::Attached(self.dir.clone()),
            services: Vec::new(),
            etcd: Vec::new(),
        })
    }
}
