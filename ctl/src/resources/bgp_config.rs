//! BGPConfiguration documents ("default" for the cluster, "node.<name>" for one node):
//! Calico's v3 spec (asNumber, nodeToNodeMeshEnabled, listenPort, logSeverityScreen,
//! communities, prefixAdvertisements, service*IPs, nodeMeshMaxRestartTime) <-> manul-store's
//! `BgpConfiguration`, checked by the store's validation, and calicoctl's table columns.
//! Pure, no I/O.

use manul_store::{BgpConfiguration, Community, PrefixAdvertisement, ServiceCidr};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    document::Metadata,
    fields::{FieldError, Unsupported, check_keys, decode, in_range, parse},
    resources::{bgp_peer::store_field_error, check_asn},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpConfigurationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunitySpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisementSpec>,
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_cluster_ips: Vec<ServiceCidrSpec>,
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_external_ips: Vec<ServiceCidrSpec>,
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub service_load_balancer_ips: Vec<ServiceCidrSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunitySpec {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixAdvertisementSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCidrSpec {
    pub cidr: String,
}

const FIELDS: [&str; 10] = [
    "logSeverityScreen",
    "nodeToNodeMeshEnabled",
    "asNumber",
    "listenPort",
    "communities",
    "prefixAdvertisements",
    "serviceClusterIPs",
    "serviceExternalIPs",
    "serviceLoadBalancerIPs",
    "nodeMeshMaxRestartTime",
];

const UNSUPPORTED: [Unsupported; 6] = [
    Unsupported {
        field: "nodeMeshPassword",
        advice: "mesh sessions have no password yet; remove it",
    },
    Unsupported {
        field: "bindMode",
        advice: "bgpd listens on every address; remove it",
    },
    Unsupported {
        field: "ignoredInterfaces",
        advice: "remove it",
    },
    Unsupported {
        field: "localWorkloadPeeringIPV4",
        advice: "peering with workloads is not implemented; remove it",
    },
    Unsupported {
        field: "localWorkloadPeeringIPV6",
        advice: "peering with workloads is not implemented; remove it",
    },
    Unsupported {
        field: "programClusterRoutes",
        advice: "the agent always programs the routes it learns; remove it",
    },
];

const SEVERITIES: [&str; 5] = ["Debug", "Info", "Warning", "Error", "Fatal"];

pub const COLUMNS: &[&str] = &["NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"];

pub fn from_document(metadata: &Metadata, spec: &Value) -> Result<BgpConfiguration, FieldError> {
    let name = &metadata.name;
    let node_config = name
        .strip_prefix("node.")
        .is_some_and(|node| !node.is_empty());
    if name != BgpConfiguration::DEFAULT_NAME && !node_config {
        return Err(FieldError::new(
            "metadata.name",
            format!(
                "{name:?}: use \"default\" (the cluster's) or \"node.<node name>\" (one node's)"
            ),
        ));
    }
    check_keys(spec, "spec", &FIELDS, &UNSUPPORTED)?;
    let spec: BgpConfigurationSpec = decode(spec, "spec")?;
    if let Some(severity) = spec.log_severity_screen.as_deref()
        && !SEVERITIES
            .iter()
            .any(|known| known.eq_ignore_ascii_case(severity))
    {
        return Err(FieldError::new(
            "spec.logSeverityScreen",
            format!(
                "{severity:?} is not a severity: use {}",
                SEVERITIES.join(", ")
            ),
        ));
    }
    let services = |field: &str, list: Vec<ServiceCidrSpec>| {
        list.into_iter()
            .enumerate()
            .map(|(index, service)| {
                Ok(ServiceCidr {
                    cidr: parse(
                        &format!("spec.{field}[{index}].cidr"),
                        &service.cidr,
                        "a CIDR",
                    )?,
                })
            })
            .collect::<Result<Vec<_>, FieldError>>()
    };
    let config = BgpConfiguration {
        metadata: Default::default(),
        name: name.clone(),
        as_number: spec
            .as_number
            .map(|asn| check_asn("spec.asNumber", asn))
            .transpose()?,
        node_to_node_mesh_enabled: spec.node_to_node_mesh_enabled,
        listen_port: spec
            .listen_port
            .map(|port| in_range("spec.listenPort", port, 1, 65535))
            .transpose()?,
        log_severity_screen: spec.log_severity_screen,
        communities: spec
            .communities
            .into_iter()
            .map(|community| Community {
                name: community.name,
                value: community.value,
            })
            .collect(),
        prefix_advertisements: spec
            .prefix_advertisements
            .into_iter()
            .enumerate()
            .map(|(index, advertisement)| {
                Ok(PrefixAdvertisement {
                    cidr: parse(
                        &format!("spec.prefixAdvertisements[{index}].cidr"),
                        &advertisement.cidr,
                        "a CIDR",
                    )?,
                    communities: advertisement.communities,
                })
            })
            .collect::<Result<_, FieldError>>()?,
        service_cluster_ips: services("serviceClusterIPs", spec.service_cluster_ips)?,
        service_external_ips: services("serviceExternalIPs", spec.service_external_ips)?,
        service_load_balancer_ips: services(
            "serviceLoadBalancerIPs",
            spec.service_load_balancer_ips,
        )?,
        node_mesh_max_restart_time: spec.node_mesh_max_restart_time,
    };
    config.validate().map_err(store_field_error)?;
    Ok(config)
}

pub fn to_spec(config: &BgpConfiguration) -> BgpConfigurationSpec {
    let services = |list: &[ServiceCidr]| {
        list.iter()
            .map(|service| ServiceCidrSpec {
                cidr: service.cidr.to_string(),
            })
            .collect()
    };
    BgpConfigurationSpec {
        log_severity_screen: config.log_severity_screen.clone(),
        node_to_node_mesh_enabled: config.node_to_node_mesh_enabled,
        as_number: config.as_number.map(i64::from),
        listen_port: config.listen_port.map(i64::from),
        communities: config
            .communities
            .iter()
            .map(|community| CommunitySpec {
                name: community.name.clone(),
                value: community.value.clone(),
            })
            .collect(),
        prefix_advertisements: config
            .prefix_advertisements
            .iter()
            .map(|advertisement| PrefixAdvertisementSpec {
                cidr: advertisement.cidr.to_string(),
                communities: advertisement.communities.clone(),
            })
            .collect(),
        service_cluster_ips: services(&config.service_cluster_ips),
        service_external_ips: services(&config.service_external_ips),
        service_load_balancer_ips: services(&config.service_load_balancer_ips),
        node_mesh_max_restart_time: config.node_mesh_max_restart_time.clone(),
    }
}

/// calicoctl's columns. The cluster's configuration shows the values in effect where it
/// leaves them out; a node's shows only what it overrides (blank: the cluster's value).
pub fn row(config: &BgpConfiguration) -> Vec<String> {
    if config.name != BgpConfiguration::DEFAULT_NAME {
        return vec![
            config.name.clone(),
            config.log_severity_screen.clone().unwrap_or_default(),
            config
                .node_to_node_mesh_enabled
                .map(|enabled| enabled.to_string())
                .unwrap_or_default(),
            config
                .as_number
                .map(|asn| asn.to_string())
                .unwrap_or_default(),
        ];
    }
    vec![
        config.name.clone(),
        config
            .log_severity_screen
            .clone()
            .unwrap_or_else(|| "Info".into()),
        config.mesh_enabled().to_string(),
        config.as_number_or_default().to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_calico_configuration_round_trips() {
        let spec = json!({"asNumber": 64513, "nodeToNodeMeshEnabled": false,
            "logSeverityScreen": "Info", "listenPort": 1179,
            "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
            "communities": [{"name": "lab", "value": "64513:100"}],
            "prefixAdvertisements": [{"cidr": "10.96.0.0/12", "communities": ["lab"]}],
            "nodeMeshMaxRestartTime": "120s"});
        let config = from_document(&Metadata::named("default"), &spec).unwrap();
        assert_eq!(serde_json::to_value(to_spec(&config)).unwrap(), spec);
        from_document(&Metadata::named("node.n1"), &json!({})).unwrap();
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                Metadata::named("default"),
                json!({"asNumber": 0}),
                "spec.asNumber",
            ),
            (
                Metadata::named("default"),
                json!({"asNumber": 99999999999_i64}),
                "spec.asNumber",
            ),
            (
                Metadata::named("default"),
                json!({"listenPort": 70000}),
                "spec.listenPort",
            ),
            (
                Metadata::named("default"),
                json!({"logSeverityScreen": "loud"}),
                "spec.logSeverityScreen",
            ),
            (
                Metadata::named("default"),
                json!({"bindMode": "NodeIP"}),
                "spec.bindMode",
            ),
            (
                Metadata::named("default"),
                json!({"serviceClusterIPs": [{"cidr": "10.96.0.1/12"}]}),
                "spec.serviceClusterIPs[0].cidr",
            ),
            (Metadata::named("global"), json!({}), "metadata.name"),
        ];
        for (metadata, spec, field) in cases {
            let error = from_document(&metadata, &spec).unwrap_err();
            assert_eq!(error.field, field, "{spec}: {error}");
        }
    }
}
