//! Node documents: metadata.labels and Calico's v3 spec (bgp {asNumber, ipv4Address,
//! ipv6Address, routeReflectorClusterID}, ipv4VXLANTunnelAddr, vxlanTunnelMACAddr,
//! ipv6VXLANTunnelAddr, vxlanTunnelMACAddrV6) <->
//! manul-store's `Node`, and the table columns of `get node` as calicoctl prints them.
//! Pure, no I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use manul_store::{Node, NodeBgpSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    document::Metadata,
    fields::{FieldError, Unsupported, check_keys, decode, parse},
    resources::{TableContext, check_asn, check_mac},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgp>,
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_vxlan_tunnel_addr: Option<String>,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
    #[serde(
        default,
        rename = "ipv6VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_vxlan_tunnel_addr: Option<String>,
    #[serde(
        default,
        rename = "vxlanTunnelMACAddrV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr_v6: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeBgp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<String>,
}

const FIELDS: [&str; 5] = [
    "bgp",
    "ipv4VXLANTunnelAddr",
    "vxlanTunnelMACAddr",
    "ipv6VXLANTunnelAddr",
    "vxlanTunnelMACAddrV6",
];
const BGP_FIELDS: [&str; 4] = [
    "asNumber",
    "ipv4Address",
    "ipv6Address",
    "routeReflectorClusterID",
];

const UNSUPPORTED: [Unsupported; 5] = [
    Unsupported {
        field: "orchRefs",
        advice: "remove it",
    },
    Unsupported {
        field: "addresses",
        advice: "give the node's addresses in spec.bgp.ipv4Address/ipv6Address",
    },
    Unsupported {
        field: "wireguard",
        advice: "WireGuard is not available; remove it",
    },
    Unsupported {
        field: "interfaces",
        advice: "remove it",
    },
    Unsupported {
        field: "ipv4WireguardInterfaceAddr",
        advice: "WireGuard is not available; remove it",
    },
];

const BGP_UNSUPPORTED: [Unsupported; 1] = [Unsupported {
    field: "ipv4IPIPTunnelAddr",
    advice: "there is no IP-in-IP in manul; remove it",
}];

pub const PS_COLUMNS: &[&str] = &["NAME"];
pub const WIDE_COLUMNS: &[&str] = &["NAME", "ASN", "IPV4", "IPV6"];

pub fn from_document(metadata: &Metadata, spec: &Value) -> Result<Node, FieldError> {
    check_keys(spec, "spec", &FIELDS, &UNSUPPORTED)?;
    if let Some(bgp) = spec.get("bgp") {
        check_keys(bgp, "spec.bgp", &BGP_FIELDS, &BGP_UNSUPPORTED)?;
    }
    let spec: NodeSpec = decode(spec, "spec")?;
    let bgp = match spec.bgp {
        None => None,
        Some(bgp) => Some(NodeBgpSpec {
            ipv4_address: address("spec.bgp.ipv4Address", bgp.ipv4_address.as_deref(), false)?,
            ipv6_address: address("spec.bgp.ipv6Address", bgp.ipv6_address.as_deref(), true)?,
            as_number: bgp
                .as_number
                .map(|asn| check_asn("spec.bgp.asNumber", asn))
                .transpose()?,
            route_reflector_cluster_id: bgp
                .route_reflector_cluster_id
                .as_deref()
                .map(|text| {
                    parse::<Ipv4Addr>(
                        "spec.bgp.routeReflectorClusterID",
                        text,
                        "an IPv4-style cluster ID such as 224.0.0.1",
                    )
                })
                .transpose()?,
        }),
    };
    let tunnel = spec
        .ipv4_vxlan_tunnel_addr
        .as_deref()
        .map(|text| parse("spec.ipv4VXLANTunnelAddr", text, "an IPv4 address"))
        .transpose()?;
    let tunnel_v6 = spec
        .ipv6_vxlan_tunnel_addr
        .as_deref()
        .map(|text| parse::<Ipv6Addr>("spec.ipv6VXLANTunnelAddr", text, "an IPv6 address"))
        .transpose()?;
    let mac = spec.vxlan_tunnel_mac_addr;
    if let Some(mac) = &mac {
        check_mac("spec.vxlanTunnelMACAddr", mac)?;
    }
    let mac_v6 = spec.vxlan_tunnel_mac_addr_v6;
    if let Some(mac) = &mac_v6 {
        check_mac("spec.vxlanTunnelMACAddrV6", mac)?;
    }
    Ok(Node {
        name: metadata.name.clone(),
        bgp,
        ipv4_vxlan_tunnel_addr: tunnel,
        vxlan_tunnel_mac_addr: mac,
        ipv6_vxlan_tunnel_addr: tunnel_v6,
        vxlan_tunnel_mac_addr_v6: mac_v6,
        ..Default::default()
    })
}

/// A node address with its subnet's prefix length ("10.0.0.5/24"), of the right family.
fn address(field: &str, text: Option<&str>, v6: bool) -> Result<Option<IpNet>, FieldError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let example = if v6 { "fd00::5/64" } else { "10.0.0.5/24" };
    let net: IpNet = parse(
        field,
        text,
        &format!("an address with its prefix length, such as {example}"),
    )?;
    if matches!(net, IpNet::V6(_)) != v6 {
        return Err(FieldError::new(
            field,
            format!("{text:?} is of the wrong IP version; use e.g. {example}"),
        ));
    }
    Ok(Some(net))
}

pub fn to_spec(node: &Node) -> NodeSpec {
    NodeSpec {
        bgp: node.bgp.as_ref().map(|bgp| NodeBgp {
            as_number: bgp.as_number.map(i64::from),
            ipv4_address: bgp.ipv4_address.map(|net| net.to_string()),
            ipv6_address: bgp.ipv6_address.map(|net| net.to_string()),
            route_reflector_cluster_id: bgp.route_reflector_cluster_id.map(|id| id.to_string()),
        }),
        ipv4_vxlan_tunnel_addr: node.ipv4_vxlan_tunnel_addr.map(|addr| addr.to_string()),
        vxlan_tunnel_mac_addr: node.vxlan_tunnel_mac_addr.clone(),
        ipv6_vxlan_tunnel_addr: node.ipv6_vxlan_tunnel_addr.map(|addr| addr.to_string()),
        vxlan_tunnel_mac_addr_v6: node.vxlan_tunnel_mac_addr_v6.clone(),
    }
}

/// calicoctl's columns: the ASN in parentheses when the node inherits the cluster's.
pub fn row(node: &Node, wide: bool, context: &TableContext) -> Vec<String> {
    if !wide {
        return vec![node.name.clone()];
    }
    let bgp = node.bgp.clone().unwrap_or_default();
    vec![
        node.name.clone(),
        match bgp.as_number {
            Some(asn) => asn.to_string(),
            None => format!("({})", context.default_as_number),
        },
        bgp.ipv4_address.map(|a| a.to_string()).unwrap_or_default(),
        bgp.ipv6_address.map(|a| a.to_string()).unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn metadata() -> Metadata {
        Metadata {
            labels: [("rack".to_string(), "a".to_string())].into(),
            ..Metadata::named("node-1")
        }
    }

    #[test]
    fn calico_spellings_round_trip() {
        let spec = json!({
            "bgp": {"asNumber": 64513, "ipv4Address": "10.0.0.5/24", "ipv6Address": "fd00::5/64",
                    "routeReflectorClusterID": "224.0.0.1"},
            "ipv4VXLANTunnelAddr": "10.244.0.1",
            "vxlanTunnelMACAddr": "66:0f:3e:2a:01:02",
            "ipv6VXLANTunnelAddr": "fd00:10::1",
            "vxlanTunnelMACAddrV6": "66:0f:3e:2a:01:03"
        });
        let node = from_document(&metadata(), &spec).unwrap();
        assert_eq!(node.bgp.as_ref().unwrap().as_number, Some(64513));
        assert_eq!(serde_json::to_value(to_spec(&node)).unwrap(), spec);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (json!({"bgp": {"asNumber": 0}}), "spec.bgp.asNumber"),
            (
                json!({"bgp": {"asNumber": 4294967296_i64}}),
                "spec.bgp.asNumber",
            ),
            (
                json!({"bgp": {"ipv4Address": "fd00::1/64"}}),
                "spec.bgp.ipv4Address",
            ),
            (
                json!({"bgp": {"ipv4IPIPTunnelAddr": "10.0.0.1"}}),
                "spec.bgp.ipv4IPIPTunnelAddr",
            ),
            (
                json!({"vxlanTunnelMACAddr": "zz"}),
                "spec.vxlanTunnelMACAddr",
            ),
            (json!({"orchRefs": []}), "spec.orchRefs"),
        ];
        for (spec, field) in cases {
            let error = from_document(&metadata(), &spec).unwrap_err();
            assert_eq!(error.field, field, "{spec}: {error}");
        }
    }
}
