//! Node IP selection, as calico/node's IP / IP_AUTODETECTION_METHOD: an explicit address, "none",
//! or an autodetection method (`first-found`, `interface=`, `skip-interface=`, `can-reach=`,
//! `cidr=`). Parsing and selection are pure functions over an interface listing and a route
//! lookup answer; `detect` feeds them from the `Netlink` trait (its only I/O).
//!
//! Rules shared by every method (Calico's): only interfaces that are up, in interface index
//! order; only global unicast addresses of the wanted family (no loopback, link-local,
//! multicast, unspecified or broadcast address), in the order the kernel lists them. The
//! address is kept with the prefix length of its subnet ("10.0.1.5/24"), as Calico stores it.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

use crate::netlink::{InterfaceAddresses, Netlink, NetlinkError, RouteLookup};

/// Interfaces `first-found` never picks (calico/node's DEFAULT_INTERFACES_TO_EXCLUDE).
pub const DEFAULT_INTERFACES_TO_EXCLUDE: [&str; 17] = [
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    r"^vxlan\.calico.*",
    r"^vxlan-v6\.calico.*",
    r"^wireguard\.cali.*",
    r"^wg-v6\.cali.*",
    "^nodelocaldns.*",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn holds(self, address: IpAddr) -> bool {
        matches!(
            (self, address),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An autodetection method.
#[derive(Clone, Debug)]
pub enum Method {
    /// The first address of an interface not in `DEFAULT_INTERFACES_TO_EXCLUDE`.
    FirstFound,
    /// The first address of the first interface whose name matches one of the regexes.
    Interface(Vec<Regex>),
    /// As first-found, but excluding the interfaces matching these regexes instead of the
    /// default list.
    SkipInterface(Vec<Regex>),
    /// The source address the kernel would use to reach this address.
    CanReach(IpAddr),
    /// The first address inside one of these CIDRs.
    Cidr(Vec<IpNet>),
}

/// Where a node address comes from (`--node-ip` with `--node-ip-autodetection`).
#[derive(Clone, Debug)]
pub enum AddressSetting {
    /// No address of this family.
    None,
    /// An address the operator gave with its prefix length.
    Explicit(IpNet),
    /// An address without prefix length: the prefix length of the interface that holds it
    /// (a host prefix when no interface does).
    ExplicitAddress(IpAddr),
    Autodetect(Method),
}

#[derive(Debug, thiserror::Error)]
pub enum AutodetectError {
    #[error("{flag} {value:?}: {reason}")]
    BadSetting {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "{family} autodetection method {method:?} found no address; interfaces looked at: {looked_at}"
    )]
    NothingFound {
        family: &'static str,
        method: String,
        looked_at: String,
    },
    #[error("listing interfaces for {family} autodetection: {source}")]
    Netlink {
        family: &'static str,
        source: NetlinkError,
    },
}

fn bad(flag: &'static str, value: &str, reason: impl ToString) -> AutodetectError {
    AutodetectError::BadSetting {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn regexes(flag: &'static str, method: &str, list: &str) -> Result<Vec<Regex>, AutodetectError> {
    list.split(',')
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(|text| Regex::new(text).map_err(|error| bad(flag, method, error)))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|all| {
            if all.is_empty() {
                Err(bad(flag, method, "needs at least one regular expression"))
            } else {
                Ok(all)
            }
        })
}

impl Method {
    /// Parses an IP_AUTODETECTION_METHOD value; `flag` names the flag in errors.
    pub fn parse(flag: &'static str, text: &str) -> Result<Method, AutodetectError> {
        let text = text.trim();
        if text == "first-found" || text.is_empty() {
            return Ok(Method::FirstFound);
        }
        if let Some(list) = text.strip_prefix("interface=") {
            return Ok(Method::Interface(regexes(flag, text, list)?));
        }
        if let Some(list) = text.strip_prefix("skip-interface=") {
            return Ok(Method::SkipInterface(regexes(flag, text, list)?));
        }
        if let Some(destination) = text.strip_prefix("can-reach=") {
            let address = destination.trim().parse().map_err(|_| {
                bad(
                    flag,
                    text,
                    "can-reach needs an IP address, e.g. can-reach=8.8.8.8",
                )
            })?;
            return Ok(Method::CanReach(address));
        }
        if let Some(list) = text.strip_prefix("cidr=") {
            let cidrs = list
                .split(',')
                .map(|cidr| cidr.trim().parse::<IpNet>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| bad(flag, text, format!("not a CIDR list: {error}")))?;
            return Ok(Method::Cidr(cidrs));
        }
        Err(bad(
            flag,
            text,
            "unknown method; use first-found, interface=REGEX, skip-interface=REGEX, \
             can-reach=IP or cidr=CIDR[,CIDR]",
        ))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |regexes: &[Regex]| {
            regexes
                .iter()
                .map(Regex::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Method::FirstFound => write!(formatter, "first-found"),
            Method::Interface(list) => write!(formatter, "interface={}", join(list)),
            Method::SkipInterface(list) => write!(formatter, "skip-interface={}", join(list)),
            Method::CanReach(address) => write!(formatter, "can-reach={address}"),
            Method::Cidr(cidrs) => write!(
                formatter,
                "cidr={}",
                cidrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl AddressSetting {
    /// Parses `--node-ip` ("autodetect", "none", an address or a CIDR) with its method.
    pub fn parse(
        ip_flag: &'static str,
        ip: &str,
        method_flag: &'static str,
        method: &str,
        family: Family,
    ) -> Result<AddressSetting, AutodetectError> {
        let ip = ip.trim();
        match ip {
            "none" => return Ok(AddressSetting::None),
            "autodetect" | "" => {
                return Ok(AddressSetting::Autodetect(Method::parse(
                    method_flag,
                    method,
                )?));
            }
            _ => {}
        }
        let (setting, address) = match ip.parse::<IpNet>() {
            Ok(cidr) => (AddressSetting::Explicit(cidr), cidr.addr()),
            Err(_) => {
                let address: IpAddr = ip.parse().map_err(|_| {
                    bad(
                        ip_flag,
                        ip,
                        "expected autodetect, none, an address or a CIDR",
                    )
                })?;
                (AddressSetting::ExplicitAddress(address), address)
            }
        };
        if !family.holds(address) {
            return Err(bad(
                ip_flag,
                ip,
                format!("not an {} address", family.name()),
            ));
        }
        Ok(setting)
    }
}

/// Go's `IP.IsGlobalUnicast`, which Calico's autodetection uses.
pub fn is_global_unicast(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

/// The usable addresses of an interface for `family`.
fn candidates(interface: &InterfaceAddresses, family: Family) -> impl Iterator<Item = IpNet> + '_ {
    interface
        .addresses
        .iter()
        .copied()
        .filter(move |cidr| family.holds(cidr.addr()) && is_global_unicast(cidr.addr()))
}

fn matches_any(regexes: &[Regex], name: &str) -> bool {
    regexes.iter().any(|regex| regex.is_match(name))
}

fn default_exclusions() -> Vec<Regex> {
    DEFAULT_INTERFACES_TO_EXCLUDE
        .iter()
        .filter_map(|pattern| Regex::new(pattern).ok())
        .collect()
}

/// Selects the node address of `family`. `reach` is the route lookup's answer for a
/// `CanReach` method (ignored otherwise). Ok(None) only for `AddressSetting::None`.
pub fn select(
    setting: &AddressSetting,
    family: Family,
    interfaces: &[InterfaceAddresses],
    reach: Option<&RouteLookup>,
) -> Result<Option<IpNet>, AutodetectError> {
    let method = match setting {
        AddressSetting::None => return Ok(None),
        AddressSetting::Explicit(cidr) => return Ok(Some(*cidr)),
        AddressSetting::ExplicitAddress(address) => {
            let on_interface = interfaces
                .iter()
                .flat_map(|interface| interface.addresses.iter())
                .find(|cidr| cidr.addr() == *address);
            let host = IpNet::from(*address);
            return Ok(Some(on_interface.copied().unwrap_or(host)));
        }
        AddressSetting::Autodetect(method) => method,
    };
    let up = || interfaces.iter().filter(|interface| interface.up);
    let first_of = |mut eligible: Box<dyn FnMut(&InterfaceAddresses) -> bool + '_>| {
        up().filter(|interface| eligible(interface))
            .find_map(|interface| candidates(interface, family).next())
    };
    let found = match method {
        Method::FirstFound => {
            let excluded = default_exclusions();
            first_of(Box::new(move |interface| {
                !matches_any(&excluded, &interface.name)
            }))
        }
        Method::Interface(regexes) => {
            first_of(Box::new(|interface| matches_any(regexes, &interface.name)))
        }
        Method::SkipInterface(regexes) => {
            first_of(Box::new(|interface| !matches_any(regexes, &interface.name)))
        }
        Method::Cidr(cidrs) => up().find_map(|interface| {
            candidates(interface, family)
                .find(|candidate| cidrs.iter().any(|cidr| cidr.contains(&candidate.addr())))
        }),
        Method::CanReach(_) => reach
            .and_then(|lookup| lookup.source)
            .filter(|source| family.holds(*source))
            .and_then(|source| {
                interfaces
                    .iter()
                    .flat_map(|interface| interface.addresses.iter())
                    .find(|cidr| cidr.addr() == source)
                    .copied()
            }),
    };
    found
        .map(Some)
        .ok_or_else(|| AutodetectError::NothingFound {
            family: family.name(),
            method: method.to_string(),
            looked_at: looked_at(interfaces, reach, method),
        })
}

/// "eth0 (up: 10.0.0.1/24), docker0 (down: none)", for the error message.
fn looked_at(
    interfaces: &[InterfaceAddresses],
    reach: Option<&RouteLookup>,
    method: &Method,
) -> String {
    let mut text = interfaces
        .iter()
        .map(|interface| {
            let addresses = if interface.addresses.is_empty() {
                "no address".to_string()
            } else {
                interface
                    .addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let state = if interface.up { "up" } else { "down" };
            format!("{} ({state}: {addresses})", interface.name)
        })
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        text = "none".to_string();
    }
    if let Method::CanReach(destination) = method {
        match reach {
            Some(lookup) => text.push_str(&format!(
                "; the route to {destination} goes out of {} with source {}",
                lookup.device,
                lookup
                    .source
                    .map_or("none".to_string(), |source| source.to_string())
            )),
            None => text.push_str(&format!("; there is no route to {destination}")),
        }
    }
    text
}

/// Selects the address of `family` from the kernel's interfaces (and, for can-reach, its route
/// lookup).
pub async fn detect(
    netlink: &dyn Netlink,
    setting: &AddressSetting,
    family: Family,
) -> Result<Option<IpNet>, AutodetectError> {
    let netlink_error = |source| AutodetectError::Netlink {
        family: family.name(),
        source,
    };
    let interfaces = match setting {
        AddressSetting::None | AddressSetting::Explicit(_) => Vec::new(),
        _ => netlink.interface_addresses().await.map_err(netlink_error)?,
    };
    let reach = match setting {
        AddressSetting::Autodetect(Method::CanReach(destination)) => netlink
            .route_lookup(*destination)
            .await
            .map_err(netlink_error)?,
        _ => None,
    };
    select(setting, family, &interfaces, reach.as_ref())
}

#[cfg(test)]
#[path = "autodetect_tests.rs"]
mod tests;
