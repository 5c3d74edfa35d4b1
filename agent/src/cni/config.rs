//! The network config on stdin: decoding, and validation of every field `manul` reads, with
//! errors that name the field (`ipam.ipv4_pools[0]: ...`). No I/O.
//!
//! Fields are read from a `serde_json::Value` by hand rather than through a derived struct, so
//! that each error names the exact field. Unknown top-level keys are ignored (runtimes add
//! `capabilities`, `dns`, `ipMasq`, Calico conflists carry `log_level`, `kubernetes`, ...).
//! Unknown keys inside `ipam` are refused with code 2: IPAM is `manul`'s own, and a key it does
//! not honour (host-local's `subnet`, a misspelt `ipv4_pool`) would silently change nothing.
//!
//! Requested addresses are gathered, in this order and without duplicates, from CNI_ARGS `IP=`
//! (see `environment`), `args.cni.ips`, `runtimeConfig.ips`, and the Calico annotation
//! `cni.projectcalico.org/ipAddrs` (a JSON list inside a string) found directly in
//! `runtimeConfig` or `args.cni`, or in their `annotations` / `podAnnotations` maps. A prefix
//! (`10.0.0.5/24`) is accepted and dropped: the agent hands out /32 and /128.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::{
    addresses::{ip_addrs_annotation, parse_pool, parse_requested_ip, push_unique},
    version::{CniVersion, VersionError},
};

/// Where the agent listens unless the config says otherwise.
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/manul/agent.sock";

/// A config that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON (code 6).
    #[error("cannot decode the network config: {0}")]
    Decode(String),
    /// `cniVersion` missing or unsupported (code 1).
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A field with a bad value (code 7).
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
    /// A field `manul` does not support (code 2).
    #[error("{field}: unsupported field")]
    Unsupported { field: String },
}

pub(super) fn bad(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// `ipam` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConf {
    pub assign_ipv4: bool,
    pub assign_ipv6: bool,
    /// CIDRs (normalised) or pool names.
    pub ipv4_pools: Vec<String>,
    pub ipv6_pools: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAttachment {
    pub container_id: String,
    pub ifname: String,
}

/// A validated network config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    pub name: String,
    pub plugin_type: String,
    pub agent_socket: PathBuf,
    /// 0: the agent picks (host MTU).
    pub mtu: u32,
    pub ipam: IpamConf,
    /// Addresses of `prevResult.ips` (with prefix); `None` when there is no prevResult.
    pub prev_result_ips: Option<Vec<String>>,
    /// From args.cni.ips, runtimeConfig.ips and the ipAddrs annotation (CNI_ARGS `IP=` is
    /// merged in by the plugin).
    pub requested_ips: Vec<IpAddr>,
    /// `cni.dev/valid-attachments`; `None` when absent.
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

/// Decodes stdin into a JSON object (code 6 otherwise).
pub fn decode(bytes: &[u8]) -> Result<Map<String, Value>, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::Decode("stdin is empty".into()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::Decode(format!(
            "expected a JSON object, found {}",
            kind(&other)
        ))),
        Err(e) => Err(ConfigError::Decode(e.to_string())),
    }
}

/// The config's `cniVersion` (code 1 when missing or unsupported, 7 when not a string).
pub fn cni_version(map: &Map<String, Value>) -> Result<CniVersion, ConfigError> {
    let raw = opt_str(map, "cniVersion", "cniVersion")?;
    Ok(CniVersion::negotiate(raw)?)
}

impl NetConf {
    /// Decodes and validates a whole config.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, ConfigError> {
        let map = decode(bytes)?;
        NetConf::from_map(&map)
    }

    /// Validates a decoded config.
    pub fn from_map(map: &Map<String, Value>) -> Result<NetConf, ConfigError> {
        let cni_version = cni_version(map)?;
        let name = opt_str(map, "name", "name")?.ok_or_else(|| bad("name", "missing"))?;
        check_network_name(name)?;
        let plugin_type = opt_str(map, "type", "type")?.ok_or_else(|| bad("type", "missing"))?;
        let agent_socket = match opt_str(map, "agent_socket", "agent_socket")? {
            None => PathBuf::from(DEFAULT_AGENT_SOCKET),
            Some(s) if Path::new(s).is_absolute() => PathBuf::from(s),
            Some(s) => {
                return Err(bad(
                    "agent_socket",
                    format!("{s:?} is not an absolute path"),
                ));
            }
        };
        let mtu = match map.get("mtu") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_u64() {
                Some(0) => 0,
                Some(m @ 68..=65535) => m as u32,
                Some(m) => return Err(bad("mtu", format!("{m} is outside 68..=65535 (0: auto)"))),
                None => return Err(bad("mtu", format!("expected an integer, found {v}"))),
            },
        };
        let ipam = parse_ipam(map.get("ipam"))?;
        let prev_result_ips = parse_prev_result(map.get("prevResult"))?;

        let mut requested_ips = Vec::new();
        let args_cni = opt_object(map, "args", "args")?
            .map(|args| opt_object(args, "cni", "args.cni"))
            .transpose()?
            .flatten();
        if let Some(cni) = args_cni {
            for ip in opt_str_list(cni, "ips", "args.cni.ips")? {
                requested_ips.push(ip);
            }
        }
        let runtime = opt_object(map, "runtimeConfig", "runtimeConfig")?;
        if let Some(rc) = runtime {
            for ip in opt_str_list(rc, "ips", "runtimeConfig.ips")? {
                requested_ips.push(ip);
            }
        }
        let mut requested: Vec<IpAddr> = Vec::new();
        for (field, raw) in &requested_ips {
            push_unique(&mut requested, parse_requested_ip(raw, field)?);
        }
        for (section, path) in [(runtime, "runtimeConfig"), (args_cni, "args.cni")] {
            if let Some(section) = section {
                for ip in ip_addrs_annotation(section, path)? {
                    push_unique(&mut requested, ip);
                }
            }
        }

        let valid_attachments = parse_attachments(map.get("cni.dev/valid-attachments"))?;
        Ok(NetConf {
            cni_version,
            name: name.to_owned(),
            plugin_type: plugin_type.to_owned(),
            agent_socket,
            mtu,
            ipam,
            prev_result_ips,
            requested_ips: requested,
            valid_attachments,
        })
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(field, format!("expected a string, found {}", kind(v)))),
    }
}

fn opt_object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(bad(field, format!("expected an object, found {}", kind(v)))),
    }
}

/// A list of strings, each paired with its field path (`field[i]`).
fn opt_str_list(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{field}[{i}]");
                match item {
                    Value::String(s) => Ok((path, s.clone())),
                    v => Err(bad(path, format!("expected a string, found {}", kind(v)))),
                }
            })
            .collect(),
        Some(v) => Err(bad(field, format!("expected a list, found {}", kind(v)))),
    }
}

/// A boolean, also accepting Calico's `"true"` / `"false"` strings.
fn opt_bool(map: &Map<String, Value>, key: &str, field: &str) -> Result<Option<bool>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(bad(field, format!("expected true or false, found {v}"))),
    }
}

/// Spec: alphanumeric first, then alphanumerics, `_`, `.` or `-`.
fn check_network_name(name: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "name",
            format!(
                "{name:?} must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
            ),
        ))
    }
}

fn parse_ipam(value: Option<&Value>) -> Result<IpamConf, ConfigError> {
    let mut ipam = IpamConf {
        assign_ipv4: true,
        assign_ipv6: false,
        ipv4_pools: Vec::new(),
        ipv6_pools: Vec::new(),
    };
    let map = match value {
        None | Some(Value::Null) => return Ok(ipam),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(bad(
                "ipam",
                format!("expected an object, found {}", kind(v)),
            ));
        }
    };
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "type" | "assign_ipv4" | "assign_ipv6" | "ipv4_pools" | "ipv6_pools"
        ) {
            return Err(ConfigError::Unsupported {
                field: format!("ipam.{key}"),
            });
        }
    }
    opt_str(map, "type", "ipam.type")?;
    if let Some(b) = opt_bool(map, "assign_ipv4", "ipam.assign_ipv4")? {
        ipam.assign_ipv4 = b;
    }
    if let Some(b) = opt_bool(map, "assign_ipv6", "ipam.assign_ipv6")? {
        ipam.assign_ipv6 = b;
    }
    for (field, raw) in opt_str_list(map, "ipv4_pools", "ipam.ipv4_pools")? {
        ipam.ipv4_pools.push(parse_pool(&raw, false, &field)?);
    }
    for (field, raw) in opt_str_list(map, "ipv6_pools", "ipam.ipv6_pools")? {
        ipam.ipv6_pools.push(parse_pool(&raw, true, &field)?);
    }
    Ok(ipam)
}

fn parse_prev_result(value: Option<&Value>) -> Result<Option<Vec<String>>, ConfigError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(bad(
                "prevResult",
                format!("expected an object, found {}", kind(v)),
            ));
        }
    };
    let ips = match map.get("ips") {
        None | Some(Value::Null) => return Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(bad(
                "prevResult.ips",
                format!("expected a list, found {}", kind(v)),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let field = format!("prevResult.ips[{i}].address");
        let addr = ip
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&field, "missing or not a string"))?;
        let net: IpNet = addr.parse().map_err(|_| {
            bad(
                &field,
                format!("{addr:?}: not an address with prefix length"),
            )
        })?;
        out.push(net.to_string());
    }
    Ok(Some(out))
}

fn parse_attachments(value: Option<&Value>) -> Result<Option<Vec<ValidAttachment>>, ConfigError> {
    const FIELD: &str = "cni.dev/valid-attachments";
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(v) => return Err(bad(FIELD, format!("expected a list, found {}", kind(v)))),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{FIELD}[{i}]");
        let Value::Object(m) = item else {
            return Err(bad(at, format!("expected an object, found {}", kind(item))));
        };
        let container_id = opt_str(m, "containerID", &format!("{at}.containerID"))?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("{at}.containerID"), "missing"))?;
        let ifname = opt_str(m, "ifname", &format!("{at}.ifname"))?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("{at}.ifname"), "missing"))?;
        out.push(ValidAttachment {
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
