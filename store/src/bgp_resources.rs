//! The BGP resources: BGPConfiguration (cluster-wide, or per node as "node.<name>") and
//! BGPPeer, with Calico v3's field names and defaults, and their validation. No I/O.
//!
//! | Calico field (v3)             | here                                  | default        |
//! |-------------------------------|---------------------------------------|----------------|
//! | asNumber                      | BgpConfiguration::as_number           | 64512          |
//! | nodeToNodeMeshEnabled         | node_to_node_mesh_enabled             | true           |
//! | listenPort                    | listen_port                           | 179            |
//! | logSeverityScreen             | log_severity_screen                   | Info           |
//! | communities                   | communities (name -> value)           | none           |
//! | prefixAdvertisements          | prefix_advertisements                 | none           |
//! | serviceClusterIPs/ExternalIPs/LoadBalancerIPs | service_*_ips (CIDRs) | none           |
//! | nodeMeshMaxRestartTime        | node_mesh_max_restart_time            | 120s           |
//! | BGPPeer.node / nodeSelector   | which nodes peer ("" + "" = all)      | every node     |
//! | BGPPeer.peerIP ("ip[:port]")  | peer_ip                               |                |
//! | BGPPeer.peerSelector          | peers are the selected nodes          |                |
//! | BGPPeer.password.secretKeyRef | password (secretKeyRef or file)       | none           |
//! | BGPPeer.sourceAddress         | UseNodeIP or None                     | UseNodeIP      |
//! | BGPPeer.maxRestartTime        | max_restart_time                      | 120s           |
//! | BGPPeer.keepaliveTime         | keepalive_time (hold = 3 x keepalive) | 30s            |
//! | BGPPeer.ttlSecurity           | ttl_security (hops; >0 = GTSM)        | 0              |
//! | BGPPeer.nextHopMode           | Auto, Self or Keep                    | Auto           |
//! | BGPPeer.numAllowedLocalASNumbers | num_allowed_local_as_numbers       | 0              |

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{datastore::Kind, metadata::ResourceMeta, typed::Resource};

/// Calico's default AS number when neither the node nor the BGPConfiguration sets one.
pub const DEFAULT_AS_NUMBER: u32 = 64512;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Community {
    pub name: String,
    /// "aa:nn" (standard) or "aa:nn:mm" (large).
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrefixAdvertisement {
    #[schemars(schema_with = "crate::schema::cidr")]
    pub cidr: IpNet,
    /// Community names (from `communities`) or literal values.
    #[serde(default)]
    pub communities: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceCidr {
    #[schemars(schema_with = "crate::schema::cidr")]
    pub cidr: IpNet,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfiguration {
    /// "default" for the cluster, "node.<node name>" for one node's overrides.
    pub name: String,
    /// Labels, annotations, uid and creation time. Not part of the CRD's spec: the
    /// Kubernetes backend keeps them in the object's own metadata.
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    #[schemars(skip)]
    pub metadata: ResourceMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<ServiceCidr>,
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<ServiceCidr>,
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<ServiceCidr>,
    /// Graceful-restart time offered to mesh peers ("120s").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<String>,
}

impl BgpConfiguration {
    pub const DEFAULT_NAME: &'static str = "default";

    pub fn named(name: &str) -> BgpConfiguration {
        BgpConfiguration {
            name: name.to_string(),
            as_number: None,
            node_to_node_mesh_enabled: None,
            listen_port: None,
            log_severity_screen: None,
            communities: Vec::new(),
            prefix_advertisements: Vec::new(),
            service_cluster_ips: Vec::new(),
            service_external_ips: Vec::new(),
            service_load_balancer_ips: Vec::new(),
            node_mesh_max_restart_time: None,
            metadata: ResourceMeta::default(),
        }
    }

    /// The name of one node's configuration.
    pub fn node_name(node: &str) -> String {
        format!("node.{node}")
    }

    pub fn as_number_or_default(&self) -> u32 {
        self.as_number.unwrap_or(DEFAULT_AS_NUMBER)
    }

    pub fn mesh_enabled(&self) -> bool {
        self.node_to_node_mesh_enabled.unwrap_or(true)
    }

    pub fn listen_port_or_default(&self) -> u16 {
        self.listen_port.unwrap_or(179)
    }

    /// The value of a community given by name or literally.
    pub fn community_value<'a>(&'a self, name_or_value: &'a str) -> &'a str {
        self.communities
            .iter()
            .find(|community| community.name == name_or_value)
            .map_or(name_or_value, |community| community.value.as_str())
    }

    /// Checks every field; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(asn) = self.as_number {
            validate_asn("spec.asNumber", asn)?;
        }
        if self.listen_port == Some(0) {
            return Err("spec.listenPort: must be between 1 and 65535".into());
        }
        for (index, community) in self.communities.iter().enumerate() {
            validate_community(
                &format!("spec.communities[{index}].value"),
                &community.value,
            )?;
        }
        for (index, advertisement) in self.prefix_advertisements.iter().enumerate() {
            require_network(
                &format!("spec.prefixAdvertisements[{index}].cidr"),
                &advertisement.cidr,
            )?;
            for (position, community) in advertisement.communities.iter().enumerate() {
                let value = self.community_value(community);
                validate_community(
                    &format!("spec.prefixAdvertisements[{index}].communities[{position}]"),
                    value,
                )
                .map_err(|reason| {
                    format!("{reason} (not the name of an entry of spec.communities either)")
                })?;
            }
        }
        for (field, list) in [
            ("serviceClusterIPs", &self.service_cluster_ips),
            ("serviceExternalIPs", &self.service_external_ips),
            ("serviceLoadBalancerIPs", &self.service_load_balancer_ips),
        ] {
            for (index, service) in list.iter().enumerate() {
                require_network(&format!("spec.{field}[{index}].cidr"), &service.cidr)?;
            }
        }
        if let Some(text) = &self.node_mesh_max_restart_time {
            parse_duration(text)
                .map_err(|reason| format!("spec.nodeMeshMaxRestartTime: {reason}"))?;
        }
        Ok(())
    }
}

impl Resource for BgpConfiguration {
    const KIND: Kind = Kind::BGPConfiguration;
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Where a BGP password comes from: a Kubernetes secret (Calico's secretKeyRef) or, outside
/// Kubernetes, a file on the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPassword {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SourceAddress {
    #[default]
    UseNodeIP,
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NextHopMode {
    /// Next hop self toward eBGP peers and for originated routes, unchanged toward iBGP.
    #[default]
    Auto,
    #[serde(rename = "Self")]
    SelfAddress,
    Keep,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeer {
    pub name: String,
    /// Labels, annotations, uid and creation time. Not part of the CRD's spec: the
    /// Kubernetes backend keeps them in the object's own metadata.
    #[serde(default, skip_serializing_if = "ResourceMeta::is_empty")]
    #[schemars(skip)]
    pub metadata: ResourceMeta,
    /// The one node that peers ("" with an empty `node_selector`: every node).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The nodes that peer (Calico selector); exclusive with `node`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    /// "10.0.0.1", "10.0.0.1:1179", "fd00::1" or "[fd00::1]:1179"; exclusive with
    /// `peer_selector`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    /// The peers are the nodes this selector chooses, at their node addresses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_selector: String,
    #[serde(default)]
    pub as_number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    #[serde(default)]
    pub source_address: SourceAddress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Hops for GTSM (RFC 5082); 0: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    #[serde(default)]
    pub next_hop_mode: NextHopMode,
    #[serde(default, rename = "numAllowedLocalASNumbers")]
    pub num_allowed_local_as_numbers: u32,
}

impl BgpPeer {
    /// A global peer (every node) at `peer_ip` in `as_number`.
    pub fn global(name: &str, peer_ip: &str, as_number: u32) -> BgpPeer {
        BgpPeer {
            name: name.to_string(),
            node: String::new(),
            node_selector: String::new(),
            peer_ip: peer_ip.to_string(),
            peer_selector: String::new(),
            as_number,
            password: None,
            source_address: SourceAddress::UseNodeIP,
            max_restart_time: None,
            keepalive_time: None,
            ttl_security: None,
            next_hop_mode: NextHopMode::Auto,
            num_allowed_local_as_numbers: 0,
            metadata: ResourceMeta::default(),
        }
    }

    /// The address and port of `peer_ip` (port 179 unless given).
    pub fn peer_socket(&self) -> Result<SocketAddr, String> {
        parse_peer_ip(&self.peer_ip).map_err(|reason| format!("spec.peerIP: {reason}"))
    }

    pub fn max_restart(&self) -> Result<Option<Duration>, String> {
        self.max_restart_time
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|reason| format!("spec.maxRestartTime: {reason}"))
    }

    pub fn keepalive(&self) -> Result<Option<Duration>, String> {
        self.keepalive_time
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|reason| format!("spec.keepaliveTime: {reason}"))
    }

    /// Checks every field; the error names the field and the reason. Selectors are checked by
    /// the caller, which owns the selector parser.
    pub fn validate(&self) -> Result<(), String> {
        if !self.node.is_empty() && !self.node_selector.is_empty() {
            return Err("spec.node and spec.nodeSelector: set one or neither, not both".into());
        }
        match (self.peer_ip.is_empty(), self.peer_selector.is_empty()) {
            (true, true) => return Err("spec.peerIP or spec.peerSelector: one is required".into()),
            (false, false) => {
                return Err("spec.peerIP and spec.peerSelector: set one, not both".into());
            }
            (false, true) => {
                self.peer_socket()?;
                validate_asn("spec.asNumber", self.as_number)?;
            }
            (true, false) => {
                if self.as_number != 0 {
                    validate_asn("spec.asNumber", self.as_number)?;
                }
            }
        }
        if let Some(password) = &self.password {
            match (&password.secret_key_ref, &password.file) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err("spec.password: give exactly one of secretKeyRef and file".into());
                }
                (Some(reference), None)
                    if reference.name.is_empty() || reference.key.is_empty() =>
                {
                    return Err("spec.password.secretKeyRef: name and key are required".into());
                }
                _ => {}
            }
        }
        self.max_restart()?;
        if let Some(keepalive) = self.keepalive()?
            && !(1..=21845).contains(&keepalive.as_secs())
        {
            return Err(
                "spec.keepaliveTime: must be between 1s and 21845s (the hold time, 3 x keepalive, is at most 65535 s)".into(),
            );
        }
        Ok(())
    }
}

impl Resource for BgpPeer {
    const KIND: Kind = Kind::BGPPeer;
    fn name(&self) -> String {
        self.name.clone()
    }
}

fn validate_asn(field: &str, asn: u32) -> Result<(), String> {
    if asn == 0 || asn == 23456 || asn == u32::MAX {
        return Err(format!(
            "{field}: {asn} is not a usable AS number (0, 23456 and 4294967295 are reserved)"
        ));
    }
    Ok(())
}

fn require_network(field: &str, cidr: &IpNet) -> Result<(), String> {
    if cidr.trunc() != *cidr {
        return Err(format!(
            "{field}: {cidr} is not a network address (did you mean {}?)",
            cidr.trunc()
        ));
    }
    Ok(())
}

/// "aa:nn" with 16-bit parts, or "aa:nn:mm" with 32-bit parts.
pub fn validate_community(field: &str, value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split(':').collect();
    let ok = match parts.len() {
        2 => parts.iter().all(|part| part.parse::<u16>().is_ok()),
        3 => parts.iter().all(|part| part.parse::<u32>().is_ok()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field}: {value:?} is not a community: use aa:nn (two 16-bit numbers) or aa:nn:mm (three 32-bit numbers)"
        ))
    }
}

/// "10.0.0.1", "10.0.0.1:1179", "fd00::1", "[fd00::1]:1179".
pub fn parse_peer_ip(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(address, 179));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!(
            "{text:?} is not an address: use 10.0.0.1, 10.0.0.1:1179, fd00::1 or [fd00::1]:1179"
        )
    })
}

/// Go-style durations as Calico writes them: "120s", "2m", "1m30s", "500ms", "1h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let error = || format!("{text:?} is not a duration: use e.g. 120s, 2m, 1m30s or 500ms");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(error());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
        if digits == 0 {
            return Err(error());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| error())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(error()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "s", "10", "10x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn peer_addresses_take_an_optional_port() {
        assert_eq!(
            parse_peer_ip("10.0.0.1").unwrap(),
            "10.0.0.1:179".parse().unwrap()
        );
        assert_eq!(
            parse_peer_ip("[fd00::1]:1179").unwrap(),
            "[fd00::1]:1179".parse().unwrap()
        );
        assert!(parse_peer_ip("10.0.0.256").is_err());
    }

    #[test]
    fn calico_documents_decode_with_their_spellings() {
        let peer: BgpPeer = serde_json::from_str(
            r#"{"name":"tor","peerIP":"10.0.0.1:1179","asNumber":65001,"nodeSelector":"rack == 'a'",
                "password":{"secretKeyRef":{"name":"bgp","key":"tor"}},"keepaliveTime":"10s",
                "nextHopMode":"Self","numAllowedLocalASNumbers":2,"sourceAddress":"None"}"#,
        )
        .unwrap();
        assert_eq!(peer.next_hop_mode, NextHopMode::SelfAddress);
        assert_eq!(peer.source_address, SourceAddress::None);
        assert_eq!(peer.num_allowed_local_as_numbers, 2);
        peer.validate().unwrap();
        let config: BgpConfiguration = serde_json::from_str(
            r#"{"name":"default","asNumber":64513,"nodeToNodeMeshEnabled":false,
                "serviceClusterIPs":[{"cidr":"10.96.0.0/12"}],
                "communities":[{"name":"lab","value":"64513:100"}],
                "prefixAdvertisements":[{"cidr":"10.96.0.0/12","communities":["lab","64513:7"]}]}"#,
        )
        .unwrap();
        assert!(!config.mesh_enabled());
        assert_eq!(config.community_value("lab"), "64513:100");
        config.validate().unwrap();
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut peer = BgpPeer::global("p", "10.0.0.1", 0);
        assert!(peer.validate().unwrap_err().starts_with("spec.asNumber"));
        peer.as_number = 65000;
        peer.keepalive_time = Some("0s".into());
        assert!(
            peer.validate()
                .unwrap_err()
                .starts_with("spec.keepaliveTime")
        );
        peer.keepalive_time = None;
        peer.peer_selector = "all()".into();
        assert!(peer.validate().unwrap_err().contains("spec.peerSelector"));
        let mut config = BgpConfiguration::named("default");
        config.prefix_advertisements.push(PrefixAdvertisement {
            cidr: "10.96.0.1/12".parse().unwrap(),
            communities: vec![],
        });
        assert!(
            config
                .validate()
                .unwrap_err()
                .starts_with("spec.prefixAdvertisements[0].cidr")
        );
        config.prefix_advertisements[0].cidr = "10.96.0.0/12".parse().unwrap();
        config.prefix_advertisements[0].communities = vec!["unknown".into()];
        assert!(config.validate().unwrap_err().contains("communities[0]"));
    }
}
