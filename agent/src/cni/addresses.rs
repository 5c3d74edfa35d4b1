//! Requested addresses and IP pools in the network config: CIDR/pool-name checks, addresses
//! with optional prefix, and the Calico `cni.projectcalico.org/ipAddrs` annotation. No I/O.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::config::{ConfigError, bad, kind};

/// The Calico pod annotation asking for specific addresses.
pub const IP_ADDRS_ANNOTATION: &str = "cni.projectcalico.org/ipAddrs";

pub(super) fn push_unique(list: &mut Vec<IpAddr>, ip: IpAddr) {
    if !list.contains(&ip) {
        list.push(ip);
    }
}

/// A pool is a CIDR of the right family with no host bits, or a pool name (a Kubernetes
/// object name: lower-case letters, digits, `-` and `.`). Anything that looks like an address
/// (has `/` or `:`, or only digits and dots) must be a valid CIDR.
pub(super) fn parse_pool(raw: &str, v6: bool, field: &str) -> Result<String, ConfigError> {
    let looks_like_cidr = raw.contains(['/', ':'])
        || (!raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if looks_like_cidr {
        let net: IpNet = raw
            .parse()
            .map_err(|_| bad(field, format!("{raw:?}: not a CIDR")))?;
        let family_ok = matches!((net, v6), (IpNet::V4(_), false) | (IpNet::V6(_), true));
        if !family_ok {
            let want = if v6 { "IPv6" } else { "IPv4" };
            return Err(bad(field, format!("{raw:?}: not an {want} CIDR")));
        }
        if net.trunc() != net {
            return Err(bad(
                field,
                format!("{raw:?}: host bits set (did you mean {}?)", net.trunc()),
            ));
        }
        return Ok(net.to_string());
    }
    let name_ok = !raw.is_empty()
        && raw.len() <= 253
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && raw.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name_ok {
        Ok(raw.to_owned())
    } else {
        Err(bad(field, format!("{raw:?}: not a CIDR or a pool name")))
    }
}

/// An address, with an optional prefix that is dropped.
pub(super) fn parse_requested_ip(raw: &str, field: &str) -> Result<IpAddr, ConfigError> {
    let raw = raw.trim();
    let addr = raw.split_once('/').map_or(raw, |(a, _)| a);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| bad(field, format!("{raw:?}: not an IP address")))?;
    if let Some((_, prefix)) = raw.split_once('/') {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if !prefix.parse::<u8>().is_ok_and(|p| p <= max) {
            return Err(bad(field, format!("{raw:?}: bad prefix length")));
        }
    }
    Ok(ip)
}

/// The ipAddrs annotation in `section`, directly or in its `annotations`/`podAnnotations`.
pub(super) fn ip_addrs_annotation(
    section: &Map<String, Value>,
    path: &str,
) -> Result<Vec<IpAddr>, ConfigError> {
    let mut found = Vec::new();
    let mut places = vec![(section, path.to_owned())];
    for nested in ["annotations", "podAnnotations"] {
        if let Some(Value::Object(m)) = section.get(nested) {
            places.push((m, format!("{path}.{nested}")));
        }
    }
    for (map, at) in places {
        let field = format!("{at}[\"{IP_ADDRS_ANNOTATION}\"]");
        let list: Vec<Value> = match map.get(IP_ADDRS_ANNOTATION) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items.clone(),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                bad(
                    &field,
                    format!("expected a JSON list of addresses in a string: {e}"),
                )
            })?,
            Some(v) => return Err(bad(&field, format!("expected a string, found {}", kind(v)))),
        };
        for (i, item) in list.iter().enumerate() {
            let item_field = format!("{field}[{i}]");
            match item {
                Value::String(s) => found.push(parse_requested_ip(s, &item_field)?),
                v => {
                    return Err(bad(
                        item_field,
                        format!("expected a string, found {}", kind(v)),
                    ));
                }
            }
        }
    }
    Ok(found)
}
