//! WorkloadEndpoint documents: metadata.namespace and Calico's v3 spec (orchestrator, node,
//! containerID, pod, endpoint, interfaceName, mac, ipNetworks) plus manul's own ipamHandle,
//! netns and network <-> manul-store's `WorkloadEndpoint`, and the table columns. The agent
//! writes these; documents exist for inspection and repair. Pure, no I/O.

use ipnet::IpNet;
use manul_store::WorkloadEndpoint;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    document::Metadata,
    fields::{FieldError, Unsupported, check_keys, decode, parse},
    resources::check_mac,
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    #[serde(default)]
    pub orchestrator: String,
    #[serde(default)]
    pub node: String,
    #[serde(default, rename = "containerID")]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub interface_name: String,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub ip_networks: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipam_handle: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
}

const FIELDS: [&str; 11] = [
    "orchestrator",
    "node",
    "containerID",
    "pod",
    "endpoint",
    "interfaceName",
    "mac",
    "ipNetworks",
    "ipamHandle",
    "netns",
    "network",
];

const UNSUPPORTED: [Unsupported; 8] = [
    Unsupported {
        field: "workload",
        advice: "name the pod in spec.pod",
    },
    Unsupported {
        field: "serviceAccountName",
        advice: "remove it",
    },
    Unsupported {
        field: "ipNATs",
        advice: "floating IPs are not implemented; remove it",
    },
    Unsupported {
        field: "ipv4Gateway",
        advice: "the gateway is always 169.254.1.1; remove it",
    },
    Unsupported {
        field: "ipv6Gateway",
        advice: "the gateway is the host end's link-local address; remove it",
    },
    Unsupported {
        field: "profiles",
        advice: "policy profiles do not exist yet; remove it",
    },
    Unsupported {
        field: "ports",
        advice: "named ports are not implemented; remove it",
    },
    Unsupported {
        field: "allowSpoofedSourcePrefixes",
        advice: "remove it",
    },
];

pub const PS_COLUMNS: &[&str] = &["NAMESPACE", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE"];
pub const WIDE_COLUMNS: &[&str] = &[
    "NAMESPACE",
    "NAME",
    "WORKLOAD",
    "NODE",
    "ORCHESTRATOR",
    "NETWORKS",
    "INTERFACE",
    "CONTAINERID",
];

pub fn from_document(metadata: &Metadata, spec: &Value) -> Result<WorkloadEndpoint, FieldError> {
    check_keys(spec, "spec", &FIELDS, &UNSUPPORTED)?;
    let spec: WorkloadEndpointSpec = decode(spec, "spec")?;
    for (field, value) in [
        ("spec.node", &spec.node),
        ("spec.containerID", &spec.container_id),
        ("spec.interfaceName", &spec.interface_name),
    ] {
        if value.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
    }
    if !spec.mac.is_empty() {
        check_mac("spec.mac", &spec.mac)?;
    }
    let ip_networks = spec
        .ip_networks
        .iter()
        .enumerate()
        .map(|(index, text)| {
            parse::<IpNet>(
                &format!("spec.ipNetworks[{index}]"),
                text,
                "an address with its prefix length, such as 10.244.0.7/32",
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WorkloadEndpoint {
        metadata: Default::default(),
        name: metadata.name.clone(),
        node: spec.node,
        orchestrator: spec.orchestrator,
        namespace: metadata.namespace.clone().unwrap_or_default(),
        pod: spec.pod,
        container_id: spec.container_id,
        endpoint: spec.endpoint,
        interface_name: spec.interface_name,
        mac: spec.mac,
        ip_networks,
        ipam_handle: spec.ipam_handle,
        netns: spec.netns,
        network: spec.network,
    })
}

pub fn to_spec(endpoint: &WorkloadEndpoint) -> WorkloadEndpointSpec {
    WorkloadEndpointSpec {
        orchestrator: endpoint.orchestrator.clone(),
        node: endpoint.node.clone(),
        container_id: endpoint.container_id.clone(),
        pod: endpoint.pod.clone(),
        endpoint: endpoint.endpoint.clone(),
        interface_name: endpoint.interface_name.clone(),
        mac: endpoint.mac.clone(),
        ip_networks: endpoint.ip_networks.iter().map(IpNet::to_string).collect(),
        ipam_handle: endpoint.ipam_handle.clone(),
        netns: endpoint.netns.clone(),
        network: endpoint.network.clone(),
    }
}

pub fn row(endpoint: &WorkloadEndpoint, wide: bool) -> Vec<String> {
    let workload = if endpoint.pod.is_empty() {
        endpoint.container_id.chars().take(12).collect()
    } else {
        endpoint.pod.clone()
    };
    let networks = endpoint
        .ip_networks
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if !wide {
        return vec![
            endpoint.namespace.clone(),
            workload,
            endpoint.node.clone(),
            networks,
            endpoint.interface_name.clone(),
        ];
    }
    vec![
        endpoint.namespace.clone(),
        endpoint.name.clone(),
        workload,
        endpoint.node.clone(),
        endpoint.orchestrator.clone(),
        networks,
        endpoint.interface_name.clone(),
        endpoint.container_id.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn calico_spellings_round_trip_and_refusals_name_the_field() {
        let metadata = Metadata {
            namespace: Some("default".into()),
            ..Metadata::named("node--1-cni-abc-eth0")
        };
        let spec = json!({"orchestrator": "k8s", "node": "node-1", "containerID": "abc",
            "pod": "web-0", "endpoint": "eth0", "interfaceName": "cali0123456789a",
            "mac": "ee:ee:ee:ee:ee:ee", "ipNetworks": ["10.244.0.7/32"],
            "ipamHandle": "k8s-pod-network.abc"});
        let endpoint = from_document(&metadata, &spec).unwrap();
        assert_eq!(endpoint.namespace, "default");
        assert_eq!(serde_json::to_value(to_spec(&endpoint)).unwrap(), spec);
        let mut bad = spec.clone();
        bad["ipNetworks"] = json!(["10.244.0.7/32", "10.244.0.300/32"]);
        assert_eq!(
            from_document(&metadata, &bad).unwrap_err().field,
            "spec.ipNetworks[1]"
        );
        let mut bad = spec.clone();
        bad["profiles"] = json!(["kns.default"]);
        assert_eq!(
            from_document(&metadata, &bad).unwrap_err().field,
            "spec.profiles"
        );
    }
}
