//! The configuration as written: TOML (serde) shapes with every field optional and addresses,
//! prefixes and communities as text, so that validation (in `super`) can name the field that is
//! wrong. The gRPC API fills the same shapes. No I/O.

use serde::Deserialize;

/// The whole file: `[global]`, `[[peer]]`, `[[prefix]]` and `originate = [...]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub global: Option<RawGlobal>,
    #[serde(default)]
    pub peer: Vec<RawPeer>,
    #[serde(default)]
    pub prefix: Vec<RawPrefix>,
    /// Shorthand for `[[prefix]]` tables without communities.
    #[serde(default)]
    pub originate: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    pub asn: Option<i64>,
    pub router_id: Option<String>,
    /// One address or a list (`listen_address = "0.0.0.0"` or `["0.0.0.0", "::"]`); "none"
    /// or an empty list: do not listen.
    pub listen_address: Option<OneOrMany>,
    pub listen_port: Option<i64>,
    pub cluster_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    /// A name for logs and the API (default: the address).
    pub name: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub local_address: Option<String>,
    pub local_port: Option<i64>,
    pub asn: Option<i64>,
    pub passive: Option<bool>,
    pub hold_time: Option<i64>,
    pub connect_retry: Option<i64>,
    pub md5_password: Option<String>,
    pub ttl_security: Option<bool>,
    pub route_reflector_client: Option<bool>,
    pub next_hop_self: Option<bool>,
    /// How many times our own ASN may appear in a received AS_PATH (0: never).
    pub allow_own_as: Option<i64>,
    /// "ipv4-unicast", "ipv6-unicast" (also "ipv4", "ipv6").
    pub families: Option<Vec<String>>,
    pub graceful_restart: Option<RawGracefulRestart>,
    pub add_path_receive: Option<bool>,
    pub extended_next_hop: Option<bool>,
    pub import: Option<RawPolicy>,
    pub export: Option<RawPolicy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGracefulRestart {
    /// Advertise the capability at all (the helper side is always on when it is).
    pub enabled: Option<bool>,
    /// Restarting-speaker mode: set the R bit and "forwarding preserved".
    pub restarting: Option<bool>,
    pub restart_time: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// "accept" or "reject": what happens to a route no rule matched (default "reject").
    pub default: Option<String>,
    #[serde(default)]
    pub rule: Vec<RawRule>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// "10.0.0.0/8", "10.0.0.0/8 ge 24", "10.0.0.0/8 le 24", "10.0.0.0/8 ge 16 le 24".
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Matches when the route carries any of these ("65000:100", "no-export", ...).
    #[serde(default)]
    pub communities_any: Vec<String>,
    /// Matches when the route carries any of these ("rt:65000:100", "ro:192.0.2.1:7",
    /// "rt:4200000000:1", "raw:0002fde800000064").
    #[serde(default)]
    pub extended_communities_any: Vec<String>,
    /// true: matches only routes this speaker originates (not learned from a peer).
    #[serde(default)]
    pub originated: bool,
    /// "accept" or "reject" (default "accept").
    pub action: Option<String>,
    #[serde(default)]
    pub add_communities: Vec<String>,
    #[serde(default)]
    pub add_extended_communities: Vec<String>,
    /// "65000:1:2".
    #[serde(default)]
    pub add_large_communities: Vec<String>,
    pub set_med: Option<i64>,
    pub set_local_pref: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrefix {
    pub prefix: Option<String>,
    #[serde(default)]
    pub communities: Vec<String>,
    #[serde(default)]
    pub large_communities: Vec<String>,
}
