//! The CNI_* environment: the command, the container, netns and interface, and CNI_ARGS
//! (`K=V;K=V`). Parses a snapshot of the variables handed in by the caller; no I/O.
//!
//! Which variables each command needs (missing or invalid -> code 4 naming the variable):
//! ADD and CHECK need CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH. DEL needs only
//! CNI_CONTAINERID and CNI_IFNAME: runtimes repeat DEL with an empty CNI_NETNS after the sandbox
//! is gone, and `manul` delegates to no other plugin, so it has no use for CNI_PATH. STATUS, GC
//! and VERSION need none.
//!
//! CNI_ARGS: keys `manul` knows are IgnoreUnknown, IP, K8S_POD_NAMESPACE, K8S_POD_NAME,
//! K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID. Any other key is an error (code 4, CNI_ARGS)
//! unless IgnoreUnknown=1 (or true) is present, as in the reference plugins: a misspelt `IP=`
//! must not be dropped silently. Kubelet runtimes and podman always send IgnoreUnknown=1.

use std::{collections::BTreeMap, ffi::OsString, fmt, net::IpAddr};

/// A CNI command (CNI_COMMAND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A missing or invalid environment variable (code 4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{var} is not set")]
    Missing { var: &'static str },
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
}

impl EnvError {
    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        match self {
            EnvError::Missing { var } | EnvError::Invalid { var, .. } => var,
        }
    }
}

/// A snapshot of the CNI_* variables (others are dropped). A value that is not UTF-8 is kept
/// as `None` so that it is reported as invalid rather than as missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvVars(BTreeMap<String, Option<String>>);

impl EnvVars {
    /// From the process environment, e.g. `EnvVars::from_os(std::env::vars_os())`.
    pub fn from_os(vars: impl IntoIterator<Item = (OsString, OsString)>) -> EnvVars {
        EnvVars(
            vars.into_iter()
                .filter_map(|(k, v)| {
                    let k = k.into_string().ok()?;
                    k.starts_with("CNI_").then(|| (k, v.into_string().ok()))
                })
                .collect(),
        )
    }

    /// From string pairs (tests, replay).
    pub fn from_pairs<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> EnvVars {
        EnvVars::from_os(
            vars.into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
    }

    /// The value of `var`; `Ok(None)` when unset.
    pub fn get(&self, var: &'static str) -> Result<Option<&str>, EnvError> {
        match self.0.get(var) {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(EnvError::Invalid {
                var,
                reason: "not valid UTF-8".into(),
            }),
        }
    }

    /// Set and not empty.
    fn require(&self, var: &'static str) -> Result<&str, EnvError> {
        match self.get(var)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(EnvError::Missing { var }),
        }
    }

    /// CNI_COMMAND, parsed.
    pub fn command(&self) -> Result<Command, EnvError> {
        let raw = self.require("CNI_COMMAND")?;
        Command::parse(raw).ok_or_else(|| EnvError::Invalid {
            var: "CNI_COMMAND",
            reason: format!(
                "unknown command {raw:?} (expected ADD, DEL, CHECK, STATUS, GC or VERSION)"
            ),
        })
    }
}

/// Parsed CNI_ARGS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ignore_unknown: bool,
    /// `IP=` (comma-separated; a `/prefix` is accepted and dropped).
    pub ips: Vec<IpAddr>,
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_infra_container_id: String,
    pub pod_uid: String,
}

/// The environment of one invocation, validated for its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub command: Command,
    /// Empty for STATUS, GC and VERSION.
    pub container_id: String,
    /// Empty on DEL after the sandbox is gone, and for STATUS, GC and VERSION.
    pub netns: String,
    pub ifname: String,
    pub path: String,
    pub args: CniArgs,
}

impl Environment {
    /// Validates the variables `command` needs (see the module comment).
    pub fn parse(vars: &EnvVars, command: Command) -> Result<Environment, EnvError> {
        let (needs_container, needs_netns, needs_path) = match command {
            Command::Add | Command::Check => (true, true, true),
            Command::Del => (true, false, false),
            Command::Status | Command::Gc | Command::Version => (false, false, false),
        };
        let mut env = Environment {
            command,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            path: vars.get("CNI_PATH")?.unwrap_or_default().to_owned(),
            args: parse_cni_args(vars.get("CNI_ARGS")?.unwrap_or_default())?,
        };
        if needs_container {
            env.container_id = vars.require("CNI_CONTAINERID")?.to_owned();
            check_container_id(&env.container_id)?;
            env.ifname = vars.require("CNI_IFNAME")?.to_owned();
            check_ifname(&env.ifname)?;
        }
        if needs_netns {
            env.netns = vars.require("CNI_NETNS")?.to_owned();
        } else {
            env.netns = vars.get("CNI_NETNS")?.unwrap_or_default().to_owned();
        }
        if !env.netns.is_empty() && !env.netns.starts_with('/') {
            return Err(EnvError::Invalid {
                var: "CNI_NETNS",
                reason: format!("{:?} is not an absolute path", env.netns),
            });
        }
        if needs_path {
            vars.require("CNI_PATH")?;
        }
        Ok(env)
    }
}

/// CNI spec: alphanumeric first, then alphanumerics, `_`, `.` or `-`.
fn check_container_id(id: &str) -> Result<(), EnvError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(EnvError::Invalid {
            var: "CNI_CONTAINERID",
            reason: format!(
                "{id:?} must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
            ),
        })
    }
}

/// A Linux interface name: 1..=15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
fn check_ifname(name: &str) -> Result<(), EnvError> {
    let reason = if name.len() > 15 {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("not a valid interface name")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(EnvError::Invalid {
            var: "CNI_IFNAME",
            reason: format!("{name:?}: {reason}"),
        }),
    }
}

fn invalid_args(reason: String) -> EnvError {
    EnvError::Invalid {
        var: "CNI_ARGS",
        reason,
    }
}

/// Parses CNI_ARGS (`K=V;K=V`; empty segments are skipped).
pub fn parse_cni_args(raw: &str) -> Result<CniArgs, EnvError> {
    let mut args = CniArgs::default();
    let mut unknown = Vec::new();
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(invalid_args(format!("{pair:?} is not KEY=VALUE")));
        };
        match key {
            "IgnoreUnknown" => {
                args.ignore_unknown = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(invalid_args(format!(
                            "IgnoreUnknown={value:?}: expected 1, 0, true or false"
                        )));
                    }
                }
            }
            "IP" => {
                for ip in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let addr = ip.split_once('/').map_or(ip, |(a, _)| a);
                    let parsed = addr
                        .parse()
                        .map_err(|_| invalid_args(format!("IP={ip:?}: not an IP address")))?;
                    args.ips.push(parsed);
                }
            }
            "K8S_POD_NAMESPACE" => args.pod_namespace = value.to_owned(),
            "K8S_POD_NAME" => args.pod_name = value.to_owned(),
            "K8S_POD_INFRA_CONTAINER_ID" => args.pod_infra_container_id = value.to_owned(),
            "K8S_POD_UID" => args.pod_uid = value.to_owned(),
            _ => unknown.push(key.to_owned()),
        }
    }
    if !unknown.is_empty() && !args.ignore_unknown {
        return Err(invalid_args(format!(
            "unknown key(s) {} (add IgnoreUnknown=1 to ignore them)",
            unknown.join(", ")
        )));
    }
    Ok(args)
}

#[cfg(test)]
#[path = "environment_tests.rs"]
mod tests;
