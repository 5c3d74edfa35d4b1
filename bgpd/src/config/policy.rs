//! Import/export policy settings (prefix lists with ge/le, communities, extended communities
//! and large communities to match and add, MED and local-pref) and the text forms of
//! communities. Converted to `rib::Policy` by the daemon.
//! No I/O.

use ipnet::IpNet;

use super::{ConfigError, field_error, parse_prefix, raw::RawPolicy};
use crate::message::{ExtendedCommunity, LargeCommunity};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySettings {
    pub default_accept: bool,
    pub rules: Vec<RuleSettings>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSettings {
    /// Empty: every prefix matches.
    pub prefixes: Vec<PrefixMatchSettings>,
    /// Empty: no community condition.
    pub communities_any: Vec<u32>,
    /// Empty: no extended community condition.
    pub extended_communities_any: Vec<ExtendedCommunity>,
    /// Matches only routes the speaker originates itself.
    pub originated: bool,
    pub accept: bool,
    pub add_communities: Vec<u32>,
    pub add_extended_communities: Vec<ExtendedCommunity>,
    pub add_large_communities: Vec<LargeCommunity>,
    pub set_med: Option<u32>,
    pub set_local_pref: Option<u32>,
}

/// `prefix` with a length in `min_len..=max_len` (both default to the prefix's own length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixMatchSettings {
    pub prefix: IpNet,
    pub min_len: u8,
    pub max_len: u8,
}

impl PolicySettings {
    /// A policy accepting everything (what an explicit `default = "accept"` gives).
    pub fn accept_all() -> PolicySettings {
        PolicySettings {
            default_accept: true,
            rules: Vec::new(),
        }
    }

    pub fn reject_all() -> PolicySettings {
        PolicySettings::default()
    }
}

pub(super) fn validate_policy(raw: RawPolicy, path: &str) -> Result<PolicySettings, ConfigError> {
    let default_accept = parse_action(raw.default.as_deref(), &format!("{path}.default"), false)?;
    let rules = raw
        .rule
        .into_iter()
        .enumerate()
        .map(|(index, rule)| {
            let path = format!("{path}.rule[{index}]");
            let prefixes = rule
                .prefixes
                .iter()
                .enumerate()
                .map(|(i, text)| parse_prefix_match(text, &format!("{path}.prefixes[{i}]")))
                .collect::<Result<_, _>>()?;
            let number = |value: Option<i64>, name: &str| {
                value
                    .map(|value| {
                        u32::try_from(value).map_err(|_| {
                            field_error(&format!("{path}.{name}"), format!("{value} is not a u32"))
                        })
                    })
                    .transpose()
            };
            Ok(RuleSettings {
                prefixes,
                communities_any: parse_communities(
                    &rule.communities_any,
                    &format!("{path}.communities_any"),
                )?,
                extended_communities_any: parse_extended_communities(
                    &rule.extended_communities_any,
                    &format!("{path}.extended_communities_any"),
                )?,
                originated: rule.originated,
                accept: parse_action(rule.action.as_deref(), &format!("{path}.action"), true)?,
                add_communities: parse_communities(
                    &rule.add_communities,
                    &format!("{path}.add_communities"),
                )?,
                add_extended_communities: parse_extended_communities(
                    &rule.add_extended_communities,
                    &format!("{path}.add_extended_communities"),
                )?,
                add_large_communities: parse_large_communities(
                    &rule.add_large_communities,
                    &format!("{path}.add_large_communities"),
                )?,
                set_med: number(rule.set_med, "set_med")?,
                set_local_pref: number(rule.set_local_pref, "set_local_pref")?,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    Ok(PolicySettings {
        default_accept,
        rules,
    })
}

fn parse_action(text: Option<&str>, field: &str, default: bool) -> Result<bool, ConfigError> {
    match text {
        None | Some("") => Ok(default),
        Some("accept") => Ok(true),
        Some("reject") => Ok(false),
        Some(other) => Err(field_error(
            field,
            format!("{other:?} is not accept or reject"),
        )),
    }
}

/// "10.0.0.0/8", optionally followed by "ge N" and/or "le N".
pub fn parse_prefix_match(text: &str, field: &str) -> Result<PrefixMatchSettings, ConfigError> {
    let mut words = text.split_whitespace();
    let prefix = parse_prefix(words.next().unwrap_or_default(), field)?;
    let (mut min_len, mut max_len) = (prefix.prefix_len(), prefix.prefix_len());
    let mut ge_seen = false;
    while let Some(keyword) = words.next() {
        let value = words
            .next()
            .and_then(|value| value.parse::<u8>().ok())
            .filter(|value| *value <= prefix.max_prefix_len() && *value >= prefix.prefix_len())
            .ok_or_else(|| {
                field_error(
                    field,
                    format!(
                        "{text:?}: {keyword} needs a length in {}..={}",
                        prefix.prefix_len(),
                        prefix.max_prefix_len()
                    ),
                )
            })?;
        match keyword {
            "ge" => {
                min_len = value;
                ge_seen = true;
            }
            "le" => max_len = value,
            _ => {
                return Err(field_error(
                    field,
                    format!("{text:?}: {keyword:?} is not ge or le"),
                ));
            }
        }
    }
    // "ge N" alone means up to the longest length, as in Cisco and BIRD prefix lists.
    if ge_seen && !text.contains(" le ") {
        max_len = prefix.max_prefix_len();
    }
    if min_len > max_len {
        return Err(field_error(field, format!("{text:?}: ge is above le")));
    }
    Ok(PrefixMatchSettings {
        prefix,
        min_len,
        max_len,
    })
}

/// "65000:100" or a well-known name (RFC 1997, RFC 8326).
pub fn parse_community(text: &str, field: &str) -> Result<u32, ConfigError> {
    let well_known = match text {
        "no-export" => Some(0xFFFF_FF01),
        "no-advertise" => Some(0xFFFF_FF02),
        "no-export-subconfed" => Some(0xFFFF_FF03),
        "graceful-shutdown" => Some(0xFFFF_0000),
        "blackhole" => Some(0xFFFF_029A),
        _ => None,
    };
    if let Some(value) = well_known {
        return Ok(value);
    }
    let bad = || field_error(field, format!("{text:?} is not a community (ASN:VALUE)"));
    let (high, low) = text.split_once(':').ok_or_else(bad)?;
    let high: u16 = high.parse().map_err(|_| bad())?;
    let low: u16 = low.parse().map_err(|_| bad())?;
    Ok(u32::from(high) << 16 | u32::from(low))
}

/// "65000:1:2" (RFC 8092).
pub fn parse_large_community(text: &str, field: &str) -> Result<LargeCommunity, ConfigError> {
    let bad = || field_error(field, format!("{text:?} is not a large community (A:B:C)"));
    let parts = text
        .split(':')
        .map(|part| part.parse::<u32>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    match parts[..] {
        [global_admin, local_data_1, local_data_2] => Ok(LargeCommunity {
            global_admin,
            local_data_1,
            local_data_2,
        }),
        _ => Err(bad()),
    }
}

pub(super) fn parse_communities(texts: &[String], field: &str) -> Result<Vec<u32>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| parse_community(text, &format!("{field}[{index}]")))
        .collect()
}

pub(super) fn parse_extended_communities(
    texts: &[String],
    field: &str,
) -> Result<Vec<ExtendedCommunity>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            ExtendedCommunity::parse(text)
                .map_err(|error| field_error(&format!("{field}[{index}]"), error.to_string()))
        })
        .collect()
}

pub(super) fn parse_large_communities(
    texts: &[String],
    field: &str,
) -> Result<Vec<LargeCommunity>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| parse_large_community(text, &format!("{field}[{index}]")))
        .collect()
}

pub fn format_community(value: u32) -> String {
    format!("{}:{}", value >> 16, value & 0xFFFF)
}

pub fn format_large_community(value: &LargeCommunity) -> String {
    format!(
        "{}:{}:{}",
        value.global_admin, value.local_data_1, value.local_data_2
    )
}
