//! Running a CNI conflist by hand, the way libcni does: ADD through the plugins in order, each
//! given the previous result as prevResult; DEL in reverse order with the final result; runtime
//! config (portMappings, ...) passed to the plugins whose capabilities ask for it. Does I/O.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::{CniCall, CniOutcome, Netns};

/// A conflist with the binary of each plugin resolved.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The conflist: cniVersion, name, plugins.
    pub conflist: Value,
    /// One binary per entry of `plugins`.
    pub binaries: Vec<PathBuf>,
    /// Runtime config offered to plugins by capability, e.g. `{"portMappings": [...]}`.
    pub runtime_config: Map<String, Value>,
}

impl Chain {
    /// Resolves each plugin's `type`: `manul` to the workspace binary, others to /usr/lib/cni.
    pub fn new(conflist: Value) -> Result<Chain> {
        let plugins = conflist["plugins"]
            .as_array()
            .context("conflist without plugins")?;
        let binaries = plugins
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("manul") => crate::bin_path("manul"),
                Some(t) => Ok(crate::reference_plugin(t)),
                None => anyhow::bail!("plugin without type: {p}"),
            })
            .collect::<Result<_>>()?;
        Ok(Chain {
            conflist,
            binaries,
            runtime_config: Map::new(),
        })
    }

    /// Offers `portMappings` (CNI convention: hostPort, containerPort, protocol).
    pub fn with_port_mappings(mut self, mappings: Value) -> Chain {
        self.runtime_config
            .insert("portMappings".to_string(), mappings);
        self
    }

    /// The config plugin `i` gets on stdin: its own entry plus name, cniVersion, the
    /// runtimeConfig its capabilities select, and prevResult when there is one.
    pub fn plugin_config(&self, i: usize, prev: Option<&Value>) -> Value {
        let mut conf = self.conflist["plugins"][i].clone();
        let obj = conf.as_object_mut().expect("plugin entry is an object");
        obj.insert("name".into(), self.conflist["name"].clone());
        obj.insert("cniVersion".into(), self.conflist["cniVersion"].clone());
        let caps = obj
            .get("capabilities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let rc: Map<String, Value> = self
            .runtime_config
            .iter()
            .filter(|(k, _)| caps.get(*k).and_then(Value::as_bool) == Some(true))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rc.is_empty() {
            obj.insert("runtimeConfig".into(), Value::Object(rc));
        }
        if let Some(prev) = prev {
            obj.insert("prevResult".into(), prev.clone());
        }
        conf
    }

    /// ADD through every plugin inside `ns`; returns the final result. On failure the outcome
    /// of the failing plugin is in the error (the caller should DEL, as a runtime does).
    pub fn add(&self, ns: &Netns, base: &CniCall) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for (i, bin) in self.binaries.iter().enumerate() {
            let out = self.call(i, bin, "ADD", prev.as_ref(), base).run_in(ns)?;
            let result = out
                .result()
                .with_context(|| format!("ADD of {}", bin.display()))?;
            prev = Some(result);
        }
        Ok(prev.unwrap_or(json!({})))
    }

    /// DEL through every plugin in reverse order with `result` (the ADD's) as prevResult.
    /// Best effort: runs them all; returns every outcome, last plugin first.
    pub fn del(&self, ns: &Netns, base: &CniCall, result: Option<&Value>) -> Vec<CniOutcome> {
        let mut outcomes = Vec::new();
        for (i, bin) in self.binaries.iter().enumerate().rev() {
            match self.call(i, bin, "DEL", result, base).run_in(ns) {
                Ok(out) => outcomes.push(out),
                Err(e) => outcomes.push(CniOutcome {
                    code: None,
                    stdout: String::new(),
                    stderr: format!("{e:#}"),
                    elapsed: Default::default(),
                }),
            }
        }
        outcomes
    }

    fn call(
        &self,
        i: usize,
        bin: &Path,
        command: &str,
        prev: Option<&Value>,
        base: &CniCall,
    ) -> CniCall {
        CniCall {
            plugin: bin.to_path_buf(),
            command: command.to_string(),
            config: self.plugin_config(i, prev),
            ..base.clone()
        }
    }
}

/// A standalone ptp + host-local network config (the reference plugin pair).
pub fn ptp_conf(name: &str, subnet: &str, data_dir: &std::path::Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "ptp",
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "subnet": subnet,
            "dataDir": data_dir,
            // Without it the pod only reaches its subnet: no answer to the upstream.
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    })
}

/// The portmap entry of a conflist.
pub fn portmap_entry() -> Value {
    json!({"type": "portmap", "capabilities": {"portMappings": true}})
}
