//! The daemon's configuration: validated settings for the speaker, its peers and its originated
//! prefixes, built from the TOML file (`load`) or from gRPC requests (which fill the same `raw`
//! shapes). Every error names its field ("peer[1].asn: missing"). No I/O except `load`.
//!
//! ```toml
//! originate = ["10.0.0.0/24"]
//! [global]
//! asn = 65001
//! router_id = "192.0.2.1"
//! listen_address = ["0.0.0.0", "::"]   # or "none"
//! listen_port = 179
//!
//! [[peer]]
//! address = "192.0.2.2"
//! asn = 65002
//! import = { default = "accept" }
//! export = { default = "accept" }
//!
//! [[prefix]]
//! prefix = "10.1.0.0/24"
//! communities = ["65001:100"]
//! ```

mod policy;
pub mod raw;
#[cfg(test)]
mod tests;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
};

use ipnet::IpNet;

pub use self::policy::{
    PolicySettings, PrefixMatchSettings, RuleSettings, format_community, format_large_community,
    parse_community, parse_large_community, parse_prefix_match,
};
use self::raw::{RawFile, RawGlobal, RawPeer, RawPrefix};
use crate::message::{Family, LargeCommunity};

pub const DEFAULT_PORT: u16 = 179;
pub const DEFAULT_HOLD_TIME: u16 = 90;
pub const DEFAULT_CONNECT_RETRY: u16 = 5;
pub const DEFAULT_RESTART_TIME: u16 = 120;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
}

/// An error about one field.
pub(crate) fn field_error(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.to_string(),
        message: message.into(),
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub global: Option<GlobalSettings>,
    pub peers: Vec<PeerSettings>,
    pub prefixes: Vec<PrefixSettings>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalSettings {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Empty: do not listen (every peer connects out).
    pub listen_addresses: Vec<IpAddr>,
    pub listen_port: u16,
    pub cluster_id: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestartSettings {
    pub restarting: bool,
    pub restart_time: u16,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PeerSettings {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub local_address: Option<IpAddr>,
    /// 0: any.
    pub local_port: u16,
    pub asn: u32,
    pub passive: bool,
    pub hold_time: u16,
    pub connect_retry: u16,
    pub md5_password: Option<String>,
    pub ttl_security: bool,
    pub route_reflector_client: bool,
    pub next_hop_self: bool,
    pub allow_own_as: u8,
    pub families: Vec<Family>,
    /// None: the capability is not advertised (no helper either).
    pub graceful_restart: Option<GracefulRestartSettings>,
    pub add_path_receive: bool,
    pub extended_next_hop: bool,
    /// None: no policy configured (RFC 8212 decides, see `daemon`).
    pub import: Option<PolicySettings>,
    pub export: Option<PolicySettings>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixSettings {
    pub prefix: IpNet,
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Validates a configuration text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawFile =
        toml::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
    let global = raw
        .global
        .map(|global| validate_global(global, "global"))
        .transpose()?;
    let peers = raw
        .peer
        .into_iter()
        .enumerate()
        .map(|(index, peer)| validate_peer(peer, &format!("peer[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, peer) in peers.iter().enumerate() {
        if let Some(first) = peers[..index]
            .iter()
            .position(|p| p.address == peer.address)
        {
            return Err(field_error(
                &format!("peer[{index}].address"),
                format!("{} is already peer[{first}]", peer.address),
            ));
        }
    }
    let mut prefixes = raw
        .originate
        .iter()
        .enumerate()
        .map(|(index, text)| parse_prefix(text, &format!("originate[{index}]")))
        .map(|prefix| prefix.map(PrefixSettings::plain))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, prefix) in raw.prefix.into_iter().enumerate() {
        prefixes.push(validate_prefix(prefix, &format!("prefix[{index}]"))?);
    }
    Ok(Config {
        global,
        peers,
        prefixes,
    })
}

impl PrefixSettings {
    pub fn plain(prefix: IpNet) -> PrefixSettings {
        PrefixSettings {
            prefix,
            communities: Vec::new(),
            large_communities: Vec::new(),
        }
    }
}

pub fn validate_global(raw: RawGlobal, path: &str) -> Result<GlobalSettings, ConfigError> {
    let asn = parse_asn(raw.asn, &format!("{path}.asn"))?;
    let router_id_field = format!("{path}.router_id");
    let router_id = parse_ipv4(raw.router_id.as_deref(), &router_id_field)?
        .ok_or_else(|| field_error(&router_id_field, "missing"))?;
    if router_id.is_unspecified() {
        return Err(field_error(&router_id_field, "must not be 0.0.0.0"));
    }
    let listen_addresses = match raw.listen_address.map(raw::OneOrMany::into_vec) {
        None => vec![IpAddr::from([0, 0, 0, 0])],
        Some(list) if list.iter().any(|text| text == "none") => Vec::new(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(index, text)| parse_ip(text, &format!("{path}.listen_address[{index}]")))
            .collect::<Result<_, _>>()?,
    };
    let listen_port = parse_port(raw.listen_port, &format!("{path}.listen_port"))?;
    let cluster_id = parse_ipv4(raw.cluster_id.as_deref(), &format!("{path}.cluster_id"))?;
    Ok(GlobalSettings {
        asn,
        router_id,
        listen_addresses,
        listen_port: listen_port.unwrap_or(DEFAULT_PORT),
        cluster_id,
    })
}

pub fn validate_peer(raw: RawPeer, path: &str) -> Result<PeerSettings, ConfigError> {
    let field = |name: &str| format!("{path}.{name}");
    let address_text = raw
        .address
        .as_deref()
        .ok_or_else(|| field_error(&field("address"), "missing"))?;
    let address = parse_ip(address_text, &field("address"))?;
    let asn = parse_asn(raw.asn, &field("asn"))?;
    let local_address = raw
        .local_address
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(|text| parse_ip(text, &field("local_address")))
        .transpose()?;
    if let Some(local) = local_address
        && local.is_ipv4() != address.is_ipv4()
    {
        return Err(field_error(
            &field("local_address"),
            "not of the peer address's family",
        ));
    }
    let hold_time = parse_int(raw.hold_time, &field("hold_time"), 0, 65535)?;
    let hold_time = hold_time.map_or(DEFAULT_HOLD_TIME, |value| value as u16);
    if (1..3).contains(&hold_time) {
        return Err(field_error(
            &field("hold_time"),
            "must be 0 or at least 3 (RFC 4271)",
        ));
    }
    let connect_retry = parse_int(raw.connect_retry, &field("connect_retry"), 1, 65535)?;
    let md5_password = raw.md5_password.filter(|password| !password.is_empty());
    if md5_password
        .as_ref()
        .is_some_and(|password| password.len() > 80)
    {
        return Err(field_error(&field("md5_password"), "longer than 80 bytes"));
    }
    let families = match raw.families {
        None => vec![Family::of(&IpNet::from(address))],
        Some(list) if list.is_empty() => {
            return Err(field_error(&field("families"), "empty"));
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(index, text)| parse_family(text, &format!("{path}.families[{index}]")))
            .collect::<Result<_, _>>()?,
    };
    let graceful_restart = match raw.graceful_restart.unwrap_or_default() {
        gr if gr.enabled == Some(false) => None,
        gr => Some(GracefulRestartSettings {
            restarting: gr.restarting.unwrap_or(false),
            restart_time: parse_int(
                gr.restart_time,
                &field("graceful_restart.restart_time"),
                0,
                4095,
            )?
            .map_or(DEFAULT_RESTART_TIME, |value| value as u16),
        }),
    };
    let import = raw
        .import
        .map(|policy| policy::validate_policy(policy, &field("import")))
        .transpose()?;
    let export = raw
        .export
        .map(|policy| policy::validate_policy(policy, &field("export")))
        .transpose()?;
    Ok(PeerSettings {
        name: raw
            .name
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| address.to_string()),
        address,
        port: parse_port(raw.port, &field("port"))?.unwrap_or(DEFAULT_PORT),
        local_address,
        local_port: parse_port(raw.local_port, &field("local_port"))?.unwrap_or(0),
        asn,
        passive: raw.passive.unwrap_or(false),
        hold_time,
        connect_retry: connect_retry.map_or(DEFAULT_CONNECT_RETRY, |value| value as u16),
        md5_password,
        ttl_security: raw.ttl_security.unwrap_or(false),
        route_reflector_client: raw.route_reflector_client.unwrap_or(false),
        next_hop_self: raw.next_hop_self.unwrap_or(false),
        allow_own_as: parse_int(raw.allow_own_as, &field("allow_own_as"), 0, 10)?.unwrap_or(0)
            as u8,
        families,
        graceful_restart,
        add_path_receive: raw.add_path_receive.unwrap_or(false),
        extended_next_hop: raw.extended_next_hop.unwrap_or(false),
        import,
        export,
    })
}

pub fn validate_prefix(raw: RawPrefix, path: &str) -> Result<PrefixSettings, ConfigError> {
    let field = format!("{path}.prefix");
    let text = raw
        .prefix
        .as_deref()
        .ok_or_else(|| field_error(&field, "missing"))?;
    Ok(PrefixSettings {
        prefix: parse_prefix(text, &field)?,
        communities: policy::parse_communities(&raw.communities, &format!("{path}.communities"))?,
        large_communities: policy::parse_large_communities(
            &raw.large_communities,
            &format!("{path}.large_communities"),
        )?,
    })
}

fn parse_int(
    value: Option<i64>,
    field: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ConfigError> {
    match value {
        Some(value) if !(min..=max).contains(&value) => Err(field_error(
            field,
            format!("{value} is not in {min}..={max}"),
        )),
        value => Ok(value),
    }
}

fn parse_asn(value: Option<i64>, field: &str) -> Result<u32, ConfigError> {
    let value = parse_int(value, field, 1, i64::from(u32::MAX))?;
    Ok(value.ok_or_else(|| field_error(field, "missing"))? as u32)
}

fn parse_port(value: Option<i64>, field: &str) -> Result<Option<u16>, ConfigError> {
    Ok(parse_int(value, field, 0, 65535)?.map(|value| value as u16))
}

fn parse_ip(text: &str, field: &str) -> Result<IpAddr, ConfigError> {
    text.parse()
        .map_err(|_| field_error(field, format!("{text:?} is not an IP address")))
}

fn parse_ipv4(text: Option<&str>, field: &str) -> Result<Option<Ipv4Addr>, ConfigError> {
    text.filter(|text| !text.is_empty())
        .map(|text| {
            text.parse()
                .map_err(|_| field_error(field, format!("{text:?} is not an IPv4 address")))
        })
        .transpose()
}

/// A prefix in canonical form ("10.0.0.1/24" is refused: host bits set).
pub fn parse_prefix(text: &str, field: &str) -> Result<IpNet, ConfigError> {
    let prefix: IpNet = text
        .parse()
        .map_err(|_| field_error(field, format!("{text:?} is not a prefix")))?;
    if prefix.trunc() != prefix {
        return Err(field_error(field, format!("{text:?} has host bits set")));
    }
    Ok(prefix)
}

pub fn parse_family(text: &str, field: &str) -> Result<Family, ConfigError> {
    match text {
        "ipv4-unicast" | "ipv4" => Ok(Family::IPV4_UNICAST),
        "ipv6-unicast" | "ipv6" => Ok(Family::IPV6_UNICAST),
        _ => Err(field_error(
            field,
            format!("{text:?} is not ipv4-unicast or ipv6-unicast"),
        )),
    }
}

pub fn family_name(family: Family) -> String {
    match family {
        Family::IPV4_UNICAST => "ipv4-unicast".to_string(),
        Family::IPV6_UNICAST => "ipv6-unicast".to_string(),
        Family { afi, safi } => format!("afi{afi}-safi{safi}"),
    }
}
