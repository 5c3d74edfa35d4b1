//! BGPPeer documents: Calico's v3 spec (node, nodeSelector, peerIP, peerSelector, asNumber,
//! password, sourceAddress, maxRestartTime, keepaliveTime, ttlSecurity, nextHopMode,
//! keepOriginalNextHop, numAllowedLocalASNumbers) <-> manul-store's `BgpPeer`, checked by the
//! store's own validation plus the selectors, and calicoctl's table columns. Pure, no I/O.

use manul_store::{BgpPassword, BgpPeer, NextHopMode, SecretKeyRef, SourceAddress};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    document::Metadata,
    fields::{FieldError, Unsupported, check_keys, decode, in_range, is_false},
    resources::{check_asn, check_selector},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_selector: String,
    #[serde(default, rename = "peerIP", skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_selector: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<String>,
    /// Calico's older spelling of nextHopMode: Keep; read, never written out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_original_next_hop: bool,
    #[serde(
        default,
        rename = "numAllowedLocalASNumbers",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_allowed_local_as_numbers: Option<i64>,
}

/// Calico's secretKeyRef, or manul's `file` (a password file on the node, outside
/// Kubernetes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRefSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRefSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key: String,
}

const FIELDS: [&str; 13] = [
    "node",
    "nodeSelector",
    "peerIP",
    "peerSelector",
    "asNumber",
    "password",
    "sourceAddress",
    "maxRestartTime",
    "keepaliveTime",
    "ttlSecurity",
    "nextHopMode",
    "keepOriginalNextHop",
    "numAllowedLocalASNumbers",
];

const UNSUPPORTED: [Unsupported; 5] = [
    Unsupported {
        field: "filters",
        advice: "BGP filters are not implemented; remove the field",
    },
    Unsupported {
        field: "reachableBy",
        advice: "remove it; next hops are resolved through the kernel's routes",
    },
    Unsupported {
        field: "localWorkloadSelector",
        advice: "peering with workloads is not implemented; remove it",
    },
    Unsupported {
        field: "reversePeering",
        advice: "remove it",
    },
    Unsupported {
        field: "localASNumber",
        advice: "set the node's AS in its Node (spec.bgp.asNumber) or the BGPConfiguration",
    },
];

pub const COLUMNS: &[&str] = &["NAME", "PEERIP", "NODE", "ASN"];

pub fn from_document(metadata: &Metadata, spec: &Value) -> Result<BgpPeer, FieldError> {
    check_keys(spec, "spec", &FIELDS, &UNSUPPORTED)?;
    let spec: BgpPeerSpec = decode(spec, "spec")?;
    let as_number = match spec.as_number {
        None | Some(0) => 0,
        Some(asn) => check_asn("spec.asNumber", asn)?,
    };
    for (field, selector) in [
        ("spec.nodeSelector", &spec.node_selector),
        ("spec.peerSelector", &spec.peer_selector),
    ] {
        if !selector.is_empty() {
            check_selector(field, selector)?;
        }
    }
    let next_hop_mode = match (spec.next_hop_mode.as_deref(), spec.keep_original_next_hop) {
        (None, true) | (Some("Keep"), _) => NextHopMode::Keep,
        (None | Some("Auto"), false) => NextHopMode::Auto,
        (Some("Self"), false) => NextHopMode::SelfAddress,
        (Some("Auto" | "Self"), true) => {
            return Err(FieldError::new(
                "spec.keepOriginalNextHop",
                "contradicts spec.nextHopMode; keep only nextHopMode",
            ));
        }
        (Some(other), _) => {
            return Err(FieldError::new(
                "spec.nextHopMode",
                format!("{other:?} is not a mode: use Auto, Self or Keep"),
            ));
        }
    };
    let source_address = match spec.source_address.as_deref() {
        None | Some("UseNodeIP") => SourceAddress::UseNodeIP,
        Some("None") => SourceAddress::None,
        Some(other) => {
            return Err(FieldError::new(
                "spec.sourceAddress",
                format!("{other:?} is not a source address mode: use UseNodeIP or None"),
            ));
        }
    };
    let peer = BgpPeer {
        metadata: Default::default(),
        name: metadata.name.clone(),
        node: spec.node,
        node_selector: spec.node_selector,
        peer_ip: spec.peer_ip,
        peer_selector: spec.peer_selector,
        as_number,
        password: spec.password.map(|password| BgpPassword {
            secret_key_ref: password.secret_key_ref.map(|reference| SecretKeyRef {
                name: reference.name,
                key: reference.key,
            }),
            file: password.file,
        }),
        source_address,
        max_restart_time: spec.max_restart_time,
        keepalive_time: spec.keepalive_time,
        ttl_security: spec
            .ttl_security
            .map(|hops| in_range("spec.ttlSecurity", hops, 0, 255))
            .transpose()?,
        next_hop_mode,
        num_allowed_local_as_numbers: spec
            .num_allowed_local_as_numbers
            .map(|count| in_range("spec.numAllowedLocalASNumbers", count, 0, 255))
            .transpose()?
            .unwrap_or(0),
    };
    peer.validate().map_err(store_field_error)?;
    Ok(peer)
}

/// The store's validation messages start with the field ("spec.asNumber: ..."); split them.
pub fn store_field_error(message: String) -> FieldError {
    match message.split_once(": ") {
        Some((field, reason)) if field.starts_with("spec.") && !field.contains(' ') => {
            FieldError::new(field, reason)
        }
        _ => FieldError::new("spec", message),
    }
}

pub fn to_spec(peer: &BgpPeer) -> BgpPeerSpec {
    BgpPeerSpec {
        node: peer.node.clone(),
        node_selector: peer.node_selector.clone(),
        peer_ip: peer.peer_ip.clone(),
        peer_selector: peer.peer_selector.clone(),
        as_number: (peer.as_number != 0).then_some(i64::from(peer.as_number)),
        password: peer.password.as_ref().map(|password| PasswordSpec {
            secret_key_ref: password
                .secret_key_ref
                .as_ref()
                .map(|reference| SecretKeyRefSpec {
                    name: reference.name.clone(),
                    key: reference.key.clone(),
                }),
            file: password.file.clone(),
        }),
        source_address: Some(
            match peer.source_address {
                SourceAddress::UseNodeIP => "UseNodeIP",
                SourceAddress::None => "None",
            }
            .into(),
        ),
        max_restart_time: peer.max_restart_time.clone(),
        keepalive_time: peer.keepalive_time.clone(),
        ttl_security: peer.ttl_security.map(i64::from),
        next_hop_mode: Some(
            match peer.next_hop_mode {
                NextHopMode::Auto => "Auto",
                NextHopMode::SelfAddress => "Self",
                NextHopMode::Keep => "Keep",
            }
            .into(),
        ),
        keep_original_next_hop: false,
        num_allowed_local_as_numbers: (peer.num_allowed_local_as_numbers != 0)
            .then_some(i64::from(peer.num_allowed_local_as_numbers)),
    }
}

/// calicoctl's columns: NODE is the node, else the node selector, else "(global)".
pub fn row(peer: &BgpPeer) -> Vec<String> {
    let node = if !peer.node.is_empty() {
        peer.node.clone()
    } else if !peer.node_selector.is_empty() {
        peer.node_selector.clone()
    } else {
        "(global)".into()
    };
    let peer_ip = if peer.peer_ip.is_empty() {
        peer.peer_selector.clone()
    } else {
        peer.peer_ip.clone()
    };
    let asn = if peer.as_number == 0 {
        String::new()
    } else {
        peer.as_number.to_string()
    };
    vec![peer.name.clone(), peer_ip, node, asn]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_calico_peer_decodes_and_round_trips() {
        let spec = json!({"peerIP": "10.0.0.1:1179", "asNumber": 65001,
            "nodeSelector": "rack == 'a'", "password": {"secretKeyRef": {"name": "bgp", "key": "tor"}},
            "keepaliveTime": "10s", "nextHopMode": "Self", "sourceAddress": "None",
            "numAllowedLocalASNumbers": 2, "ttlSecurity": 1, "maxRestartTime": "2m"});
        let peer = from_document(&Metadata::named("tor"), &spec).unwrap();
        assert_eq!(peer.next_hop_mode, NextHopMode::SelfAddress);
        assert_eq!(serde_json::to_value(to_spec(&peer)).unwrap(), spec);
        let keep = from_document(
            &Metadata::named("tor"),
            &json!({"peerIP": "10.0.0.1", "asNumber": 65001, "keepOriginalNextHop": true}),
        )
        .unwrap();
        assert_eq!(keep.next_hop_mode, NextHopMode::Keep);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                json!({"peerIP": "10.0.0.1", "asNumber": 0}),
                "spec.asNumber",
            ),
            (
                json!({"peerIP": "10.0.0.1", "asNumber": 4294967295_i64}),
                "spec.asNumber",
            ),
            (
                json!({"peerIP": "10.0.0.300", "asNumber": 65001}),
                "spec.peerIP",
            ),
            (json!({"asNumber": 65001}), "spec"),
            (
                json!({"peerSelector": "a ==", "asNumber": 65001}),
                "spec.peerSelector",
            ),
            (
                json!({"peerIP": "10.0.0.1", "asNumber": 1, "nextHopMode": "self"}),
                "spec.nextHopMode",
            ),
            (
                json!({"peerIP": "10.0.0.1", "asNumber": 1, "keepaliveTime": "0s"}),
                "spec.keepaliveTime",
            ),
            (
                json!({"peerIP": "10.0.0.1", "asNumber": 1, "filters": ["f"]}),
                "spec.filters",
            ),
            (
                json!({"peerIP": "10.0.0.1", "asNumber": 1, "password": {"secretKeyRef": {"name": "n"}, "x": 1}}),
                "spec.password",
            ),
        ];
        for (spec, field) in cases {
            let error = from_document(&Metadata::named("tor"), &spec).unwrap_err();
            assert!(error.field.starts_with(field), "{spec}: {error}");
        }
    }
}
